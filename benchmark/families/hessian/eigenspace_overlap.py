"""Do the largest parameters point along the top Hessian eigenspace? Fernandez et al.'s overlap, exact.

Fernandez, Schneider, Mahsereci & Hennig (TMLR 2025, "Connecting Parameter Magnitudes and Hessian
Eigenspaces at Scale using Sketched Methods") compare two k-dimensional subspaces of parameter space: the
span of the k coordinates of largest |θ| (a magnitude-pruning mask M_k) and the span U_k of the k Hessian
eigenvectors of largest |λ| (their SEIGH orders eigenpairs by descending magnitude). Their overlap is the
Grassmannian similarity ‖M_kᵀ U_k‖_F² / k = ‖U_k[mask_k]‖_F² / k ∈ [0, 1]: the fraction of the top-k
eigenspace's energy that sits on the k largest parameters. A mask of k coordinates drawn at random has
expected overlap exactly k/P (each row of U_k carries ‖·‖² summing to k over the P rows), the chance level;
the paper finds the magnitude mask consistently above it (≈2–16× chance, more for larger networks), with
sketched eigenvectors. Here P is small enough for the exact eigendecomposition, so nothing is estimated:
the overlap is measured on each hessian checkpoint (initialisation, early, trained, edge of stability) for
k = 10, 50, 100, with the algebraic top-k eigenspace (largest λ, the leaderboard's ``topk`` convention)
beside the paper's |λ| ordering.

The plain functions (:func:`top_magnitude_mask`, :func:`mask_overlap`, :func:`overlap_profile`) carry the
definitions and are tested on hand-made matrices; :class:`MagnitudeEigenspaceOverlap` wraps them as the
family's :class:`~phenomena_bench.core.measurement.Measurement`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import scipy.linalg
import torch

from phenomena_bench.core.costs import shared_work
from phenomena_bench.core.curves import Curve
from phenomena_bench.core.measurement import Measurement, MeasurementResult, MeasurementTable
from phenomena_bench.core.spec import TaskSpec
from phenomena_bench.families.hessian.checkpoints import _digits_split, _train_checkpoint, loss_value
from phenomena_bench.families.hessian.spec import HessianTask
from phenomena_bench.families.hessian.truth import dense_hessian

__all__ = [
    "MagnitudeEigenspaceOverlap",
    "OverlapProfile",
    "mask_overlap",
    "overlap_profile",
    "top_eigenspace",
    "top_magnitude_mask",
]

#: The subspace sizes of the table (the paper plots k up to a few hundred; 100 fits every smoke network).
TABLE_KS = (10, 50, 100)


def top_magnitude_mask(theta: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k largest |θ_i| (ties broken by index, so the mask is deterministic)."""
    order = np.argsort(-np.abs(np.asarray(theta, dtype=np.float64)), kind="stable")
    return np.sort(order[:k])


def mask_overlap(vectors: np.ndarray, mask: np.ndarray) -> float:
    """‖U[mask]‖_F² / k for orthonormal columns U (P × k) and a mask of k coordinates: the overlap of the
    coordinate subspace of the mask with span U (the squared cosines of their principal angles, averaged)."""
    k = vectors.shape[1]
    if len(mask) != k:
        raise ValueError(f"the mask has {len(mask)} coordinates, the eigenspace {k} dimensions")
    return float(np.sum(vectors[np.asarray(mask)] ** 2) / k)


def top_eigenspace(eigenvalues: np.ndarray, vectors: np.ndarray, k: int, by_magnitude: bool) -> np.ndarray:
    """The k eigenvectors of largest |λ| (`by_magnitude`, the paper's order) or largest λ, as P × k."""
    keys = -np.abs(eigenvalues) if by_magnitude else -np.asarray(eigenvalues)
    return vectors[:, np.argsort(keys, kind="stable")[:k]]


@dataclass(frozen=True)
class OverlapProfile:
    """The overlap of the top-k-magnitude mask with the top-k eigenspace, for each k of `ks`."""

    ks: list[int]
    by_magnitude: list[float]  # eigenspace of the k largest |λ| (Fernandez et al.)
    algebraic: list[float]  # eigenspace of the k largest λ
    num_params: int

    def chance(self, k: int) -> float:
        """Expected overlap of a random k-coordinate mask: exactly k/P."""
        return k / self.num_params


def extreme_eigenpairs(hessian: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The k largest and the k smallest eigenpairs of a symmetric matrix (the k largest |λ| are among them),
    without the other eigenvectors: two subset calls of LAPACK's ``syevr``."""
    dim = hessian.shape[0]
    k = min(k, dim)
    if 2 * k >= dim:
        return scipy.linalg.eigh(hessian, check_finite=False)
    low = scipy.linalg.eigh(hessian, subset_by_index=[0, k - 1], check_finite=False)
    high = scipy.linalg.eigh(hessian, subset_by_index=[dim - k, dim - 1], check_finite=False)
    return np.concatenate([low[0], high[0]]), np.concatenate([low[1], high[1]], axis=1)


def overlap_profile(theta: np.ndarray, hessian: np.ndarray, ks: list[int]) -> OverlapProfile:
    """Exact overlaps at θ for every k in `ks` (each at most P), from one partial eigendecomposition."""
    dim = hessian.shape[0]
    if max(ks) > dim:
        raise ValueError(f"k = {max(ks)} exceeds the {dim} parameters")
    eigenvalues, vectors = extreme_eigenpairs(0.5 * (hessian + hessian.T), max(ks))
    magnitude, algebraic = [], []
    for k in ks:
        mask = top_magnitude_mask(theta, k)
        magnitude.append(mask_overlap(top_eigenspace(eigenvalues, vectors, k, by_magnitude=True), mask))
        algebraic.append(mask_overlap(top_eigenspace(eigenvalues, vectors, k, by_magnitude=False), mask))
    return OverlapProfile(list(ks), magnitude, algebraic, dim)


def checkpoint_profile(task: HessianTask, seed: int, cache_dir: Path | None, ks: list[int]) -> OverlapProfile:
    """The profile of the task's checkpoint for run seed `seed`: the same (cached) parameters its runs use,
    the dense Hessian of the same full-batch loss (on the CPU: P ≤ 12k)."""
    with shared_work("hessian-checkpoint"):
        checkpoint = _train_checkpoint(task.data, task.model, task.training, seed, cache_dir)
    split = _digits_split(task.data)
    net = task.model.build()

    def loss_fn(params: torch.Tensor) -> torch.Tensor:
        return loss_value(task.training.loss, net.forward(params, split.x_train), split.y_train)

    hessian = dense_hessian(loss_fn, checkpoint.theta).numpy()
    return overlap_profile(checkpoint.theta.numpy(), hessian, ks)


def _profile_ks(num_params: int) -> list[int]:
    """k on a log grid from 1 to min(100, P/2) (the curve), with the table's k included."""
    top = max(1, min(max(TABLE_KS), num_params // 2))
    grid = {int(round(v)) for v in np.geomspace(1, top, 15)} | {k for k in TABLE_KS if k <= top}
    return sorted(grid)


def _sig(value: float, digits: int) -> float:
    """`value` to `digits` significant digits (overlaps near chance span decades: fixed decimals lose them)."""
    return float(f"{value:.{digits}g}")


class MagnitudeEigenspaceOverlap(Measurement):
    """Fernandez et al.'s overlap of the top-|θ| mask with the top Hessian eigenspace, against chance k/P,
    on the first ``seeds`` checkpoints of a hessian task (see the module docstring)."""

    id: ClassVar[str] = "hessian/magnitude-eigenspace-overlap"
    family: ClassVar[str] = "hessian"
    version: ClassVar[str] = "1"
    title: ClassVar[str] = "Parameter magnitudes vs the top Hessian eigenspace"
    description: ClassVar[str] = (
        "Overlap ‖U_k[mask_k]‖²/k between the k largest-|θ| coordinates and the top-k Hessian eigenspace "
        "(by |λ|, Fernandez et al. 2025; and by λ), exact, against its chance level k/P."
    )

    def __init__(self, seeds: int = 3) -> None:
        self.seeds = seeds

    def settings(self, task: TaskSpec) -> dict[str, Any]:
        return {"seeds": self._seeds(task)}

    def _seeds(self, task: TaskSpec) -> int:
        return max(1, min(self.seeds, task.seeds))

    def measure(self, task: TaskSpec, cache_dir: Path, device: str) -> MeasurementResult:
        assert isinstance(task, HessianTask)
        num_params = task.model.build().num_params
        ks = _profile_ks(num_params)
        profiles = [checkpoint_profile(task, seed, cache_dir, ks) for seed in range(self._seeds(task))]
        by_mag = np.array([p.by_magnitude for p in profiles])
        by_alg = np.array([p.algebraic for p in profiles])
        chance = np.array([k / num_params for k in ks])
        rows: list[list[str | float | int | None]] = []
        for index, k in enumerate(ks):
            if k not in TABLE_KS:
                continue
            mean_mag = float(by_mag[:, index].mean())
            rows.append(
                [
                    k,
                    _sig(mean_mag, 4),
                    _sig(float(by_mag[:, index].min()), 4),
                    _sig(float(by_mag[:, index].max()), 4),
                    _sig(float(by_alg[:, index].mean()), 4),
                    _sig(float(chance[index]), 4),
                    _sig(mean_mag / float(chance[index]), 3),
                ]
            )
        table = MeasurementTable(
            title=f"Overlap of the top-k |θ| mask with the top-k eigenspace (P = {num_params}, {len(profiles)} seeds)",
            columns=["k", "overlap |λ|", "min", "max", "overlap λ", "chance k/P", "× chance"],
            rows=rows,
            note="overlap |λ|: eigenspace of the k largest |λ| (the paper's); overlap λ: of the k largest λ; "
            "mean (min, max) over the task's first checkpoints; chance = a random k-coordinate mask's expectation.",
        )
        curves = {
            "overlap_by_magnitude": Curve(x=[float(k) for k in ks], y=by_mag.mean(axis=0).tolist(), x_label="k"),
            "overlap_algebraic": Curve(x=[float(k) for k in ks], y=by_alg.mean(axis=0).tolist(), x_label="k"),
            "chance": Curve(x=[float(k) for k in ks], y=chance.tolist(), x_label="k"),
        }
        k_summary = max(k for k in TABLE_KS if k in ks) if any(k in ks for k in TABLE_KS) else ks[-1]
        at = ks.index(k_summary)
        summary = (
            f"k={k_summary}: overlap {by_mag[:, at].mean():.4f} vs chance {chance[at]:.4f} "
            f"({by_mag[:, at].mean() / chance[at]:.1f}x)"
        )
        return MeasurementResult(
            measurement=self.id,
            version=self.version,
            family=self.family,
            task_id=task.id,
            tier="",
            tables=[table],
            curves=curves,
            summary=summary,
            cpu_seconds=0.0,
        )
