"""Dropout robustness in multiple-instance learning: does a regulariser make a bag classifier robust?

Protocol (Ilse et al. 2018; MIL-Dropout, Zhu et al. ICML 2025; PDL 2023; the tasks' `references` cite
them). The harness trains a fixed gated-attention MIL model
(:class:`phenomena_bench.models.abmil.GatedABMIL`: instance MLP, gated attention pooling, linear head, BCE) with
the submitted regulariser (:mod:`phenomena_bench.families.mil_dropout.api`, all a submitter needs), for a
fixed number of epochs, keeps the *final* model (no early stopping, no test-set model selection) and scores:

- ``auc_clean`` / ``acc_clean``: bag ROC-AUC and accuracy at the spec's threshold (0.5) on clean test bags;
- ``auc/<name>``, ``acc/<name>``, ``drop/<name>`` (= ``auc_clean - auc/<name>``) for each perturbation of
  the spec: noise instances added, known-negative instances removed (smaller bags), real negative instances
  added (larger bags), Gaussian feature noise — all label-preserving, drawn from the seed only, identical
  for every method — and ``label_noise``, a second training on bags with a fraction of labels flipped,
  scored on the clean test bags;
- ``auc_robust``: the mean AUC over the perturbations — the primary metric, so the leaderboard's paired
  (same-seed) comparison with the reference ``mil-none`` is a robustness comparison; clean AUC is reported
  beside it and each ``drop/<name>`` shows where robustness is won or lost;
- ``attention_auc``: where instance labels are known (digits-bags), the mean over positive test bags of the
  within-bag ROC-AUC of the attention weights for the witnesses (localisation).

Runs. One run is (task, method, seed). On digits-bags the seed draws the disjoint image pools, the bags,
the initialisation and the perturbations; one model (plus one per label-noise perturbation) is trained.
On the classic data (MUSK1/MUSK2/ELEPHANT) the seed draws a stratified 10-fold assignment and *all* folds
are trained inside the run, features standardised on the training folds only; each metric is the mean over
folds, ``<metric>_fold_std`` its spread over folds, and the per-fold values are curves (x = fold). So
seeds are CV repetitions and intervals over seeds are intervals over repetitions. A training loss that
becomes non-finite ends the run as ``diverged``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from phenomena_bench.core.curves import Curve
from phenomena_bench.core.family import Column, Diverged, Family, RunContext, RunOutcome
from phenomena_bench.core.metering import Meter
from phenomena_bench.families.mil_dropout.api import MILDropoutMethod
from phenomena_bench.families.mil_dropout.score import attention_auc, auc_and_accuracy, predict, summarise
from phenomena_bench.families.mil_dropout.spec import MILDropoutTask
from phenomena_bench.families.mil_dropout.splits import Split, _make_splits
from phenomena_bench.families.mil_dropout.train import train_model

__all__ = ["FAMILY", "MILDropoutFamily", "run_task"]

# Perturbation names used by the shipped specs; each gets a drop column in the results table.
STANDARD_PERTURBATIONS: tuple[tuple[str, str], ...] = (
    ("noise_instances", "+noise inst"),
    ("remove_instances", "-negatives"),
    ("larger_bags", "larger bags"),
    ("feature_noise", "feat. noise"),
    ("label_noise", "label noise"),
)


def evaluate_split(
    task: MILDropoutTask,
    method: MILDropoutMethod[Any],
    split: Split,
    *,
    seed: int,
    device: str,
    meter: Meter,
    on_epoch: Iterator[None],
) -> tuple[dict[str, float | None], list[float]]:
    """Train on the split (plus once per label-noise condition) and score every condition."""
    threshold = task.evaluation.threshold
    model, losses = train_model(
        task,
        method,
        split.train,
        split.train.labels,
        seed=seed,
        fold=split.fold,
        device=device,
        meter=meter,
        on_epoch=on_epoch,
    )
    probs, attention = predict(model, split.test, device)
    scores: dict[str, float | None] = {}
    scores["auc_clean"], scores["acc_clean"] = auc_and_accuracy(split.test.labels, probs, threshold)
    scores["attention_auc"] = attention_auc(split.test, attention)
    for p in task.evaluation.perturbations:
        if p.kind == "label_noise":
            noisy_model, _ = train_model(
                task,
                method,
                split.train,
                split.flipped[p.name],
                seed=seed,
                fold=split.fold,
                device=device,
                meter=meter,
                on_epoch=on_epoch,
            )
            p_probs, _ = predict(noisy_model, split.test, device)
            labels = split.test.labels
        else:
            p_probs, _ = predict(model, split.perturbed[p.name], device)
            labels = split.perturbed[p.name].labels
        scores[f"auc/{p.name}"], scores[f"acc/{p.name}"] = auc_and_accuracy(labels, p_probs, threshold)
    return scores, losses


def run_task(task: MILDropoutTask, method: MILDropoutMethod[Any], ctx: RunContext) -> RunOutcome:
    """Train and score every split of one (task, seed) for one method."""
    splits = _make_splits(task, ctx.seed)
    meter = Meter()
    n_label_noise = sum(p.kind == "label_noise" for p in task.evaluation.perturbations)
    total = len(splits) * (1 + n_label_noise) * task.training.epochs

    def ticker() -> Iterator[None]:
        for done in range(1, total + 1):
            ctx.progress(done, total)
            yield
        while True:  # never raise StopIteration into the training loop
            yield

    tick = ticker()
    per_split: list[dict[str, float | None]] = []
    loss_curves: list[list[float]] = []
    try:
        for split in splits:
            scores, losses = evaluate_split(
                task, method, split, seed=ctx.seed, device=ctx.device, meter=meter, on_epoch=tick
            )
            per_split.append(scores)
            loss_curves.append(losses)
    except Diverged as err:
        return RunOutcome.diverged(str(err), err.metrics)
    metrics = summarise(task, per_split)
    metrics["final_train_loss"] = float(np.mean([c[-1] for c in loss_curves]))
    metrics.update(meter.metrics())
    metrics["epochs_run"] = task.training.epochs * len(splits) * (1 + n_label_noise)
    mean_loss = np.mean(np.array(loss_curves), axis=0)
    curves = {"train_loss": Curve([float(e + 1) for e in range(len(mean_loss))], mean_loss.tolist(), "epoch")}
    if len(per_split) > 1:
        folds = [float(s) for s in range(len(per_split))]
        for key in ("auc_clean", "acc_clean", "auc_robust"):
            values = [s[key] for s in per_split]
            finite = [v for v in values if v is not None]
            if len(finite) == len(values):
                curves[f"fold_{key}"] = Curve(folds, [float(v) for v in finite], "fold")
    return RunOutcome(status="ok", metrics=metrics, curves=curves)


class MILDropoutFamily(Family[MILDropoutTask, MILDropoutMethod[Any]]):
    name = "mil_dropout"
    description = (
        "Gated-attention MIL trained with a submitted dropout; bag AUC clean and under label-preserving "
        "perturbations (robust AUC), on digits-bags and MUSK1/MUSK2/ELEPHANT."
    )
    spec_model = MILDropoutTask
    method_base = MILDropoutMethod
    primary_metric = "auc_robust"
    direction = "max"
    reference_method = "mil-none"

    def run(self, task: MILDropoutTask, method: MILDropoutMethod[Any], ctx: RunContext) -> RunOutcome:
        return run_task(task, method, ctx)

    def columns(self) -> list[Column]:
        return [
            Column("robust AUC", "auc_robust", "mean_ci", floor=0.5, error="one_minus"),
            Column("clean AUC", "auc_clean", "mean_ci", floor=0.5),
            Column("acc@0.5", "acc_clean", "mean_ci", floor=0.5),
            *(Column(f"drop {label}", f"drop/{name}", "mean_ci") for name, label in STANDARD_PERTURBATIONS),
            Column("attention AUC", "attention_auc", "mean_ci", floor=0.5),
        ]


FAMILY = MILDropoutFamily()
