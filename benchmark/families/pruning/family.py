"""Pruned accuracy at sparsity: lottery tickets, pruning at initialisation and their sanity controls.

A method produces, in one ``prune`` call, a mask (or scores) for every target sparsity (its contract is
:mod:`.api`). The harness then owns everything that decides the score, identically for every method:

* **Conventions** (:mod:`.masks`). Prunable tensors are the weight matrices of the Linear layers (the output
  layer only when ``evaluation.prune_output_layer``); biases are never pruned. Sparsity = zeroed prunable
  weights / all prunable weights, and a mask must zero *exactly* ``floor(s * N + 0.5)`` of them.
* **Masks stay zero; retraining** (:mod:`.train`). Every mask is retrained with the spec's fixed recipe from
  the rewind point θ_k (the dense network after ``training.rewind_step`` steps; θ_0 when k = 0) for the
  remaining ``steps - k`` steps, with the seed's data order continuing where θ_k left it (OpenLTH's
  rewinding). A method may instead hand back a state it made through ``ctx.train`` (fine-tuning from
  trained weights): that run is labelled track ``trained`` rather than ``rewind``.
* **Scoring** (:mod:`.score`). Test accuracy at the end of the fixed budget (never the best accuracy seen),
  per sparsity; the area under accuracy vs log2-compression; per-layer density; a layer-collapse flag; and,
  on the same seed, the dense network, uniform random masks at every sparsity (:mod:`.controls`, cached),
  and at the control sparsities the method's own mask shuffled within each layer and the same mask with a
  fresh initialisation ("Missing the Mark", Frankle et al. 2021).

The method is charged the steps it asked ``ctx.train`` for, whether or not they were memoised, and one step
per batch it drew from ``ctx.train_batches``; the FLOPs of ``prune`` itself are measured
(:class:`~phenomena_bench.core.metering.Meter`; the recipe trainings it asked for are charged in steps
instead). Its random draws come from its own stream (``ctx.rng_seed``), never the data seed.
"""

from __future__ import annotations

import dataclasses
import math
import time
from pathlib import Path
from typing import Any, ClassVar, Literal

import torch

from phenomena_bench.core.curves import Curve
from phenomena_bench.core.family import Column, Family, RunContext, RunOutcome, Scalar
from phenomena_bench.core.metering import Meter
from phenomena_bench.core.method import Method
from phenomena_bench.core.seeds import derive_seed, seed_global_generators
from phenomena_bench.core.spec import TaskSpec
from phenomena_bench.families.pruning.api import PruningMethod, SearchBudgetExceeded, TrainedState
from phenomena_bench.families.pruning.context import _setup, make_context
from phenomena_bench.families.pruning.controls import shared_controls
from phenomena_bench.families.pruning.masks import make_generator, shuffle_within_layers, sparsity_label
from phenomena_bench.families.pruning.score import auc_log_compression, evaluate_mask, whole_model_compression
from phenomena_bench.families.pruning.spec import PruningTask
from phenomena_bench.families.pruning.train import HARNESS_VERSION

__all__ = ["FAMILY", "HARNESS_VERSION", "STANDARD_SPARSITIES", "PruningFamily", "PruningTask", "make_context"]

# The standard targets of the suite's specs; columns() shows these.
STANDARD_SPARSITIES: tuple[float, ...] = (0.5, 0.8, 0.9, 0.95, 0.98)


#: Chance accuracy on the shipped datasets (digits and MNIST-1D both have ten balanced classes): what a
#: run that is not ok scores on the accuracy columns.
CHANCE_ACCURACY = 0.1


class PruningFamily(Family[PruningTask, PruningMethod[Any]]):
    name: ClassVar[str] = "pruning"
    description: ClassVar[str] = (
        "Test accuracy of a network pruned to fixed sparsities and retrained with a fixed recipe, against the "
        "dense net, random masks and the method's own shuffled / reinitialised masks on the same seed."
    )
    spec_model: ClassVar[type[TaskSpec]] = PruningTask
    method_base: ClassVar[type[Method[Any]]] = PruningMethod
    #: Mean accuracy over log-compression (50-98 % on the standard specs): it uses the whole curve, and its
    #: spread over seeds is smaller than any single point's because seed effects are shared across sparsities.
    primary_metric: ClassVar[str] = "auc_log_compression"
    direction: ClassVar[Literal["min", "max"]] = "max"
    #: Random masks are in every record (paired); the leaderboard compares against lottery tickets.
    reference_method: ClassVar[str] = "prune-imp"

    def columns(self) -> list[Column]:
        """Accuracies floor at chance for a run that is not ok; the paired gaps count only finished runs."""
        chance = CHANCE_ACCURACY
        cols = [Column("AUC acc/log-compression", "auc_log_compression", "mean_ci", floor=chance, error="one_minus")]
        cols += [
            Column(f"acc@{sparsity_label(s)}", f"acc@{sparsity_label(s)}", "mean_ci", floor=chance)
            for s in STANDARD_SPARSITIES
        ]
        cols += [
            Column("gap vs random@95", "gap_vs_random@95", "mean_ci"),
            Column("gap vs random@98", "gap_vs_random@98", "mean_ci"),
            Column("gain over shuffle@98", "gain_over_shuffle@98", "mean_ci"),
            Column("dense", "acc_dense", "mean"),
            Column("collapse", "layer_collapse", "rate"),
            Column("search steps", "search_steps", "mean", digits=0),
        ]
        return cols

    # ------------------------------------------------------------------ run

    def run(self, task: PruningTask, method: PruningMethod[Any], ctx: RunContext) -> RunOutcome:
        pctx, test = _setup(task, ctx.seed, ctx.device, Path(ctx.cache_dir))
        trainer, init, rewind = pctx._trainer, pctx.init_state, pctx.rewind_state
        factory, prunable, shapes = trainer.model_factory, trainer.prunable, dict(pctx.prunable)
        sparsities = pctx.sparsities
        controls = len(task.evaluation.control_sparsities)
        total = len(sparsities) + 2 * controls
        done = 0

        # Controls shared by every method on this (task, seed): cached on disk.
        control_path = trainer.cache_dir / f"controls-{trainer.task_digest[:32]}.json"
        shared = shared_controls(trainer, test, init, rewind, shapes, sparsities, ctx.seed, control_path, task)
        if shared.get("diverged"):
            return RunOutcome.diverged(
                "the dense or random-mask control diverged under the spec's recipe",
                {"acc_dense": shared.get("acc_dense")},
            )

        # The method.
        t0 = time.perf_counter()
        meter = Meter()
        try:
            with torch.random.fork_rng(devices=[]):  # the method's draws never shift the harness's
                seed_global_generators(pctx.rng_seed)
                results = meter.call("prune", method.prune, pctx, sparsities)
        except SearchBudgetExceeded as err:
            return RunOutcome(
                status="budget_exceeded", metrics={"search_steps": pctx.steps_used, **meter.metrics()}, error=str(err)
            )
        prune_seconds = time.perf_counter() - t0
        pctx.check_issued(init, "ctx.init_state")
        pctx.check_issued(rewind, "ctx.rewind_state")
        masks_by_s, starts = pctx.check_results(results)

        metrics: dict[str, Scalar] = {"acc_dense": shared["acc_dense"]}
        accs: list[float] = []
        any_collapse = False
        tracks = set()
        diverged = False
        for s in sparsities:
            lab = sparsity_label(s)
            start = starts[s] or rewind
            tracks.add("rewind" if starts[s] is None else "trained")
            ev = evaluate_mask(trainer, test, masks_by_s[s], start, task)
            done += 1
            ctx.progress(done, total)
            if ev.diverged:
                diverged = True
                break
            acc_random = shared["acc_random"][lab]
            accs.append(ev.accuracy)
            collapsed = bool(ev.collapsed_layers) or ev.accuracy <= task.evaluation.collapse_accuracy
            any_collapse |= collapsed
            metrics[f"acc@{lab}"] = ev.accuracy
            metrics[f"acc_random@{lab}"] = acc_random
            metrics[f"gap_vs_random@{lab}"] = ev.accuracy - acc_random
            metrics[f"gap_vs_dense@{lab}"] = ev.accuracy - shared["acc_dense"]
            metrics[f"collapse@{lab}"] = collapsed
            metrics[f"achieved_sparsity@{lab}"] = 1.0 - sum(
                ev.densities[n] * math.prod(shapes[n]) for n in prunable
            ) / sum(math.prod(x) for x in shapes.values())
            metrics[f"compression@{lab}"] = whole_model_compression(init.weights, masks_by_s[s])
            for n in prunable:
                metrics[f"density/{n.removesuffix('.weight')}@{lab}"] = ev.densities[n]
            if s in task.evaluation.control_sparsities:
                shuffled = shuffle_within_layers(masks_by_s[s], make_generator(ctx.seed, "shuffle-control", lab))
                ev_shuffle = evaluate_mask(trainer, test, shuffled, start, task)
                done += 1
                ctx.progress(done, total)
                fresh = factory(derive_seed(ctx.seed, "reinit-control"))
                fresh_state = TrainedState({k2: v.detach().clone() for k2, v in fresh.state_dict().items()}, 0)
                ev_reinit = evaluate_mask(trainer, test, masks_by_s[s], fresh_state, task)
                done += 1
                ctx.progress(done, total)
                for tag, e in (("shuffled", ev_shuffle), ("reinit", ev_reinit)):
                    metrics[f"acc_{tag}@{lab}"] = None if e.diverged else e.accuracy
                metrics[f"gain_over_shuffle@{lab}"] = None if ev_shuffle.diverged else ev.accuracy - ev_shuffle.accuracy
                metrics[f"gain_over_reinit@{lab}"] = None if ev_reinit.diverged else ev.accuracy - ev_reinit.accuracy

        metrics["layer_collapse"] = any_collapse
        metrics["track"] = "+".join(sorted(tracks))
        metrics["search_steps"] = pctx.steps_used
        metrics["models_made"] = pctx.models_made
        metrics.update(meter.metrics())
        metrics["prune_seconds"] = round(prune_seconds, 3)
        metrics["trainings_computed"] = trainer.trainings
        metrics["prunable_weights"] = sum(math.prod(x) for x in shapes.values())
        curves: dict[str, Curve] = {}
        rand = [shared["acc_random"][sparsity_label(s)] for s in sparsities]
        xs = [math.log2(1.0 / (1.0 - s)) for s in sparsities]
        curves["random_vs_log2_compression"] = Curve(xs, rand, "log2 compression")
        auc_random = auc_log_compression(sparsities, rand)
        metrics["auc_random"] = auc_random
        if not diverged:
            auc = auc_log_compression(sparsities, accs)
            metrics["auc_log_compression"] = auc
            metrics["auc_gap_vs_random"] = auc - auc_random
            tol = task.evaluation.matching_tolerance
            matching = [s for s, a in zip(sparsities, accs, strict=True) if a >= shared["acc_dense"] - tol]
            metrics["max_matching_sparsity"] = max(matching) if matching else None
            curves["accuracy_vs_log2_compression"] = Curve(xs, accs, "log2 compression")
        if diverged:
            return dataclasses.replace(
                RunOutcome.diverged("retraining a pruned network diverged", metrics), curves=curves
            )
        return RunOutcome(status="ok", metrics=metrics, curves=curves)


FAMILY = PruningFamily()
