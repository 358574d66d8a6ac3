"""Scores comparing an estimated Hessian spectrum with the exact one.

Conventions (shared by every function, so that no method can game a missing field):

* Relative errors are floored at :data:`RELATIVE_ERROR_FLOOR` (1e-10): float64 Krylov methods stop
  improving near 1e-15, and without a floor rounding noise would rank exact answers against each other
  (and the cross-task scores divide by the error). Every answer within the floor ties for best.
* Eigenvalues are ranked *algebraically* (largest first), since power iteration's largest-magnitude
  eigenvalue differs from λ_max at saddle-like checkpoints.
* A missing estimate scores as the zero estimate: a missing λ̂ or trace is 0 (relative error 1), missing
  top-k entries are 0, missing eigenvectors span nothing (overlap 0), a missing density is a point mass at 0
  — which is also what the zero-HVP floor predicts, so "1" means "no better than knowing nothing".
* Spectral measures are compared exactly, as discrete measures (no kernel width, no histogram): the true
  measure puts mass 1/P on each eigenvalue, the estimate puts its weights on its nodes. Wasserstein-1 is
  ∫|F − G| dx; normalised by the spectral range (Chen, Trogdon & Ubaru 2021) it is tiny whenever a few
  outliers set the range, so it is also reported normalised by mean |λ| and on a symmetric-log axis whose
  linear threshold is fixed by the benchmark relative to max |λ| (weighting bulk and outliers comparably).
"""

from __future__ import annotations

import numpy as np
import scipy.stats

#: Relative errors below this are read as exact (well above float64 rounding of Krylov methods, ~1e-15).
RELATIVE_ERROR_FLOOR = 1e-10


def relative_error(estimate: float | None, truth: float) -> float:
    """|x̂ − x| / |x| with a missing x̂ read as 0, floored at :data:`RELATIVE_ERROR_FLOOR`."""
    value = 0.0 if estimate is None else float(estimate)
    error = abs(value - truth) / abs(truth) if truth != 0 else abs(value)
    return max(error, RELATIVE_ERROR_FLOOR)


def topk_relative_error(estimates: np.ndarray | None, truth_desc: np.ndarray, k: int) -> float:
    """Largest rank-wise relative error over the top k: max_i |λ̂_i − λ_i| / |λ_i|, estimates sorted
    descending, missing ranks read as 0. The denominator is floored at 1e-12·|λ_1| so an exactly zero
    eigenvalue inside the top k cannot divide by zero; the result is floored at :data:`RELATIVE_ERROR_FLOOR`."""
    truth = np.asarray(truth_desc[:k], dtype=np.float64)
    est = np.zeros(k)
    if estimates is not None and len(estimates):
        ranked = np.sort(np.asarray(estimates, dtype=np.float64))[::-1][:k]
        est[: len(ranked)] = ranked
    floor = 1e-12 * max(abs(float(truth_desc[0])), 1e-300)
    return max(float(np.max(np.abs(est - truth) / np.maximum(np.abs(truth), floor))), RELATIVE_ERROR_FLOOR)


def subspace_overlap(true_vectors: np.ndarray, estimated: np.ndarray | None, k: int) -> float:
    """‖U_kᵀ Q‖_F² / k, U_k the true top-k eigenvectors, Q an orthonormal basis of the span of the first k
    estimated vectors (so repeated or non-orthogonal vectors cannot inflate the score); in [0, 1], chance k/P.
    Robust to degenerate eigenvalues inside the block, where individual eigenvectors are not defined."""
    if estimated is None or estimated.shape[1] == 0:
        return 0.0
    block = np.asarray(estimated[:, :k], dtype=np.float64)
    left, singular, _ = np.linalg.svd(block, full_matrices=False)
    rank = int(np.sum(singular > singular.max() * max(block.shape) * np.finfo(np.float64).eps)) if singular.size else 0
    basis = left[:, :rank]
    return float(np.sum((true_vectors[:, :k].T @ basis) ** 2) / k)


def wasserstein1(nodes_a: np.ndarray, weights_a: np.ndarray, nodes_b: np.ndarray, weights_b: np.ndarray) -> float:
    """Exact W1 = ∫ |F_a(x) − F_b(x)| dx between two discrete probability measures on the line."""
    return float(scipy.stats.wasserstein_distance(nodes_a, nodes_b, weights_a, weights_b))


def kolmogorov_smirnov(nodes_a: np.ndarray, weights_a: np.ndarray, nodes_b: np.ndarray, weights_b: np.ndarray) -> float:
    """sup_x |F_a(x) − F_b(x)| between two discrete measures (CDFs right-continuous)."""
    support = np.unique(np.concatenate([nodes_a, nodes_b]))
    order_a, order_b = np.argsort(nodes_a), np.argsort(nodes_b)
    cum_a = np.concatenate([[0.0], np.cumsum(np.asarray(weights_a)[order_a])])
    cum_b = np.concatenate([[0.0], np.cumsum(np.asarray(weights_b)[order_b])])
    cdf_a = cum_a[np.searchsorted(np.asarray(nodes_a)[order_a], support, side="right")]
    cdf_b = cum_b[np.searchsorted(np.asarray(nodes_b)[order_b], support, side="right")]
    return float(np.max(np.abs(cdf_a - cdf_b)))


def symlog(x: np.ndarray, threshold: float) -> np.ndarray:
    """sign(x)·log10(1 + |x|/threshold): linear within ±threshold, logarithmic (in decades) beyond."""
    return np.sign(x) * np.log10(1.0 + np.abs(x) / threshold)


def density_scores(
    truth_eigenvalues: np.ndarray,
    nodes: np.ndarray | None,
    weights: np.ndarray | None,
    symlog_threshold_rel: float,
) -> dict[str, float]:
    """W1 / range, W1 / mean|λ|, W1 on the symlog axis (threshold = rel · max|λ|, in decades) and KS."""
    truth = np.asarray(truth_eigenvalues, dtype=np.float64)
    uniform = np.full(truth.size, 1.0 / truth.size)
    if nodes is None or weights is None or len(nodes) == 0:
        nodes, weights = np.zeros(1), np.ones(1)
    nodes = np.asarray(nodes, dtype=np.float64)
    weights = np.asarray(weights, dtype=np.float64)
    w1 = wasserstein1(nodes, weights, truth, uniform)
    spread = float(truth.max() - truth.min())
    mean_abs = float(np.abs(truth).mean())
    threshold = symlog_threshold_rel * float(np.abs(truth).max())
    return {
        "w1_range": w1 / spread if spread > 0 else w1,
        "w1_mean_abs": w1 / mean_abs if mean_abs > 0 else w1,
        "w1_symlog": wasserstein1(symlog(nodes, threshold), weights, symlog(truth, threshold), uniform),
        "ks": kolmogorov_smirnov(nodes, weights, truth, uniform),
    }
