"""Scoring a trained MIL model: hook-free predictions, bag and attention AUCs, and the run's summary metrics.

Per split: ``auc_clean`` / ``acc_clean`` on the clean test bags, ``auc/<name>`` / ``acc/<name>`` per
perturbation, ``attention_auc`` where instance labels are known. Over the run: the mean over splits (folds)
of each, ``auc_robust`` (the mean AUC over the perturbations other than the poison test, the primary
metric), ``drop/<name>`` (clean minus perturbed AUC), and ``<metric>_fold_std`` when there are folds.
"""

from __future__ import annotations

import numpy as np
import torch
from sklearn.metrics import roc_auc_score

from phenomena_bench.core.family import Scalar
from phenomena_bench.data.bags import Bags, to_padded
from phenomena_bench.families.mil_dropout.spec import MILDropoutTask
from phenomena_bench.models.abmil import GatedABMIL


@torch.no_grad()
def predict(model: GatedABMIL, bags: Bags, device: str, batch_size: int = 64) -> tuple[np.ndarray, list[np.ndarray]]:
    """Bag probabilities and per-bag attention weights, no hooks (eval is hook-free by construction).

    Bags are batched in order of size so padding stays small (MUSK2 has bags of 1 to 1,044 instances).
    """
    model.eval()
    order = np.argsort(bags.sizes, kind="stable")
    probs = np.zeros(len(bags), dtype=np.float64)
    attention: list[np.ndarray] = [np.zeros(0)] * len(bags)
    for start in range(0, len(bags), batch_size):
        idx = order[start : start + batch_size]
        x, mask = to_padded([bags.instances[i] for i in idx], device)
        out = model(x, mask)
        p = torch.sigmoid(out.logits.double()).cpu().numpy()
        att = out.attention.double().cpu().numpy()
        for j, i in enumerate(idx):
            probs[i] = p[j]
            attention[i] = att[j, : len(bags.instances[i])]
    return probs, attention


def bag_auc(labels: np.ndarray, scores: np.ndarray) -> float | None:
    """ROC-AUC, or None when only one class is present (undefined)."""
    if len(np.unique(labels)) < 2 or not np.all(np.isfinite(scores)):
        return None
    return float(roc_auc_score(labels, scores))


def attention_auc(bags: Bags, attention: list[np.ndarray]) -> float | None:
    """Mean over positive bags (with both witnesses and negatives) of the within-bag AUC of attention.

    Within-bag, because attention weights are normalised per bag: pooling them across bags of different
    sizes would rank by bag size, not by witness-ness.
    """
    if bags.instance_labels is None:
        return None
    scores = [
        roc_auc_score(bags.instance_labels[i], attention[i])
        for i in range(len(bags))
        if bags.labels[i] == 1 and 0 < bags.instance_labels[i].sum() < len(bags.instance_labels[i])
    ]
    return float(np.mean(scores)) if scores else None


def auc_and_accuracy(labels: np.ndarray, probs: np.ndarray, threshold: float) -> tuple[float | None, float]:
    """Bag ROC-AUC (None when undefined) and accuracy at `threshold`."""
    return bag_auc(labels, probs), float(np.mean((probs > threshold).astype(np.int64) == labels))


def _mean(values: list[float | None]) -> float | None:
    """The mean, or None when any value is None (a metric undefined on one split is undefined for the run)."""
    finite = [v for v in values if v is not None]
    return float(np.mean(finite)) if len(finite) == len(values) and finite else None


def summarise(task: MILDropoutTask, per_split: list[dict[str, float | None]]) -> dict[str, Scalar]:
    """Fold means (and fold stds when there are folds), robust AUC, and per-perturbation drops.

    Adds ``auc_robust`` and ``drop/<name>`` to each split's scores in place (the fold curves use them)."""
    names = [p.name for p in task.evaluation.perturbations]
    robust = [p.name for p in task.evaluation.perturbations if p.kind != "poison"]
    for scores in per_split:
        aucs = [scores[f"auc/{n}"] for n in robust]
        scores["auc_robust"] = _mean(aucs)
        for n in names:
            clean, pert = scores["auc_clean"], scores[f"auc/{n}"]
            scores[f"drop/{n}"] = None if clean is None or pert is None else clean - pert
    metrics: dict[str, Scalar] = {}
    for key in per_split[0]:
        metrics[key] = _mean([s[key] for s in per_split])
    if len(per_split) > 1:
        for key in ("auc_clean", "acc_clean", "auc_robust"):
            values = [s[key] for s in per_split]
            finite = [v for v in values if v is not None]
            metrics[f"{key}_fold_std"] = float(np.std(finite)) if len(finite) == len(values) else None
    metrics["folds"] = len(per_split)
    return metrics
