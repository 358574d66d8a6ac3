"""Predicting generalisation from a trained network: how one run measures a population and is scored.

A method is a measure (:mod:`phenomena_bench.families.generalization.api`, all a submitter needs). One run
is one (task, measure, seed). The task fixes a population of digits MLPs trained with varied hyperparameters
(:mod:`phenomena_bench.families.generalization.population`: built once, cached, charged to no method); the
measure is called on every network with its training data and a counted oracle, and the harness ranks the
population by the measure against the task's target (Kendall's τ, the conditional τ per axis and the
granulated τ, with bootstrap intervals: :mod:`phenomena_bench.families.generalization.score`).

**What a seed means here.** The population is fixed by the spec, not by the seed: a seed picks the method's
random streams (one per network: Hutchinson probes, Lanczos starts) and the bootstrap resamples. A
deterministic measure therefore scores the same τ on every seed; its uncertainty is the bootstrap interval
over networks (``kendall_tau_lo``/``_hi``), which is the honest one here (a different population draw is
what a new seed of a trained-network study would change). Because resamples depend on the seed only, the
measures of one seed are scored on the same resamples: paired.

**The phenomenon gate.** The population must vary in generalisation: the interquartile range of the target
over the networks must be at least ``evaluation.min_gap_spread`` (recorded as ``target_iqr`` and
``gate_spread_ok``). The records also carry the τ of the exact λ_max and exact trace (from each network's
dense spectrum) against the target, the ceiling a sharpness estimator within its HVP budget is aiming at.
"""

from __future__ import annotations

import time
from collections import Counter
from typing import Any, ClassVar, Literal

import numpy as np
import torch

from phenomena_bench.core.errors import MethodError
from phenomena_bench.core.family import Column, Family, RunContext, RunOutcome, Scalar
from phenomena_bench.core.metering import Meter
from phenomena_bench.core.method import Method, checked_real, shown
from phenomena_bench.core.seeds import derive_seed, method_seed, seed_global_generators, stream_rng
from phenomena_bench.core.spec import TaskSpec
from phenomena_bench.data.digits import DIGITS_CLASSES
from phenomena_bench.families.generalization.api import (
    BudgetExceededError,
    GeneralizationMethod,
    Measurement,
    MeasureOracle,
    NetworkInfo,
    TrainedNetwork,
    TrainingData,
)
from phenomena_bench.families.generalization.population import (
    AXES,
    Network,
    build_population,
    hessian_sections,
    training_tensors,
)
from phenomena_bench.families.generalization.score import iqr, kendall_tau, prediction_error, tau_scores
from phenomena_bench.families.generalization.spec import GeneralizationTask

__all__ = ["FAMILY", "GeneralizationFamily"]


def network_seed(seed: int, index: int) -> int:
    """The method's stream for network `index` of run `seed` (derived from the method stream, never data)."""
    return derive_seed(method_seed(seed), "generalization-network", index)


def _measure_one(
    method: GeneralizationMethod[Any],
    task: GeneralizationTask,
    network: Network,
    index: int,
    seed: int,
    device: torch.device,
    meter: Meter,
) -> tuple[Measurement | None, MeasureOracle]:
    """Call the measure on one network; None when it went over a budget. A malformed answer is a MethodError."""
    x, y = training_tensors(task, network.config)
    model = hessian_sections(task, network.config)[1].build()
    x, y = x.to(device), y.to(device)
    theta = network.theta.to(device)
    oracle = MeasureOracle(model, theta, x, y, task.evaluation.hvps, task.evaluation.example_gradients, device)
    info = NetworkInfo(
        index=index,
        num_params=model.num_params,
        num_samples=int(x.shape[0]),
        train_loss=network.train_loss,
        train_acc=network.train_acc,
        rng_seed=network_seed(seed, index),
        device=str(device),
    )
    seed_global_generators(info.rng_seed)
    raw: object = None
    try:
        with meter.count("measure"):
            raw = method.measure(
                TrainedNetwork(model, theta), TrainingData(x.clone(), y.clone(), DIGITS_CLASSES), oracle, info
            )
    except BudgetExceededError:
        raw = None
    if oracle.refused:
        return None, oracle
    return _checked(raw, method.name, index), oracle


def _checked(raw: object, name: str, index: int) -> Measurement:
    hook = f"measure() on network {index}"
    if not isinstance(raw, Measurement):
        raise MethodError(f"method {name!r}: {hook} returned {shown(raw)}; expected a Measurement")
    value = checked_real(raw.value, name, hook, what="Measurement.value")
    predicted = raw.predicted_test_loss
    if predicted is not None:
        predicted = checked_real(predicted, name, hook, low=0.0, what="Measurement.predicted_test_loss")
    category = raw.category
    if category is not None and (not isinstance(category, str) or not 0 < len(category) <= 20):
        raise MethodError(f"method {name!r}: {hook}: Measurement.category must be a string of 1-20 characters")
    return Measurement(value=value, predicted_test_loss=predicted, category=category)


def population_metrics(task: GeneralizationTask, networks: list[Network]) -> dict[str, Scalar]:
    """What describes the population itself, the same for every method: its spread (the gate) and the τ of
    the exact sharpness and trace against the target."""
    target = np.array([n.target(task.evaluation.target) for n in networks])
    spread = iqr(target)
    lam = np.array([n.eigenvalues[0] for n in networks])
    trace = np.array([n.eigenvalues.sum() for n in networks])
    return {
        "networks": len(networks),
        "target_iqr": spread,
        "target_min": float(target.min()),
        "target_max": float(target.max()),
        "gate_spread_ok": spread >= task.evaluation.min_gap_spread,
        "mean_test_acc": float(np.mean([n.test_acc for n in networks])),
        "exact_lambda_max_tau": kendall_tau(lam, target),
        "exact_trace_tau": kendall_tau(trace, target),
    }


class GeneralizationFamily(Family[GeneralizationTask, GeneralizationMethod[Any]]):
    name: ClassVar[str] = "generalization"
    description: ClassVar[str] = (
        "Predict how well a trained network generalises from the network and its training data alone; scored "
        "by Kendall's τ and the granulated τ over a population of networks trained with varied hyperparameters."
    )
    spec_model: ClassVar[type[TaskSpec]] = GeneralizationTask
    method_base: ClassVar[type[Method[Any]]] = GeneralizationMethod
    primary_metric: ClassVar[str] = "granulated_tau"
    direction: ClassVar[Literal["min", "max"]] = "max"
    reference_method: ClassVar[str] = "gen-weight-norm"

    def run(self, task: GeneralizationTask, method: GeneralizationMethod[Any], ctx: RunContext) -> RunOutcome:
        networks, from_cache = build_population(task, ctx.cache_dir)
        device = torch.device(ctx.device)
        meter = Meter()
        start = time.perf_counter()
        answers: list[Measurement] = []
        over: list[MeasureOracle] = []
        hvps = grads = 0
        for index, network in enumerate(networks):
            answer, oracle = _measure_one(method, task, network, index, ctx.seed, device, meter)
            hvps, grads = max(hvps, oracle.hvp.requested), max(grads, oracle.gradients_used)
            if answer is None:
                over.append(oracle)
            else:
                answers.append(answer)
            ctx.progress(index + 1, len(networks))
        metrics: dict[str, Scalar] = {
            **population_metrics(task, networks),
            "population_from_cache": from_cache,
            "method_flops": meter.flops,
            "measure_wall_s": time.perf_counter() - start,
            "hvps_used": hvps,
            "example_gradients_used": grads,
            "budget_exceeded": bool(over),
        }
        if over:
            reason = f"over a per-network budget on {len(over)} of {len(networks)} networks"
            return RunOutcome(status="budget_exceeded", metrics=metrics, error=reason)
        metrics.update(self._scores(task, networks, answers, ctx.seed))
        return RunOutcome(status="ok", metrics=metrics)

    def _scores(
        self, task: GeneralizationTask, networks: list[Network], answers: list[Measurement], seed: int
    ) -> dict[str, Scalar]:
        target = np.array([n.target(task.evaluation.target) for n in networks])
        values = np.array([a.value for a in answers])
        keys = [(*n.config.axis_values(), float(n.config.init_seed)) for n in networks]
        rng = stream_rng(seed, 20)  # the seed's bootstrap stream: the same for every method (paired)
        out: dict[str, Scalar] = dict(tau_scores(values, target, keys, AXES, rng, task.evaluation.bootstrap))
        predicted = [a.predicted_test_loss for a in answers]
        if all(p is not None for p in predicted):
            test_loss = np.array([n.test_loss for n in networks])
            guess = np.array(predicted, dtype=float)
            out["test_loss_rel_err"] = prediction_error(guess, test_loss)
            out["test_loss_tau"] = kendall_tau(guess, test_loss)
        categories = Counter(a.category for a in answers if a.category is not None)
        if categories:
            out["categories"] = " ".join(f"{k}:{v}" for k, v in sorted(categories.items()))
        return out

    def columns(self) -> list[Column]:
        # A failed or over-budget measure ranks nothing: τ 0 (chance). The primary column is read by the
        # cross-task profile as 1 − τ (τ is bounded by 1).
        def tau(header: str, metric: str, error: Literal["one_minus"] | None = None) -> Column:
            return Column(header=header, metric=metric, kind="mean", digits=3, floor=0.0, error=error)

        columns = [tau("granulated τ", "granulated_tau", error="one_minus")]
        columns += [Column("gτ lo", "granulated_tau_lo", "mean"), Column("gτ hi", "granulated_tau_hi", "mean")]
        columns += [tau("Kendall τ", "kendall_tau")]
        columns += [Column("τ lo", "kendall_tau_lo", "mean"), Column("τ hi", "kendall_tau_hi", "mean")]
        columns += [Column(f"τ|{axis}", f"conditional_tau/{axis}", "mean") for axis in AXES]
        columns += [
            Column("test-loss err", "test_loss_rel_err", "mean"),
            Column("exact λmax τ", "exact_lambda_max_tau", "mean"),
            Column("over budget", "budget_exceeded", "rate"),
        ]
        return columns


FAMILY = GeneralizationFamily()
