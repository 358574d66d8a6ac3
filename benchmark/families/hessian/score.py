"""From an estimator's answer to the run's metrics: validate the estimate, then score each claimed target.

:func:`checked_estimate` converts and validates a :class:`SpectrumEstimate`: a malformed one (wrong type,
shape or length, weights not summing to 1, NaN or infinity) raises :class:`BadEstimate`, which the family
turns into a failed run naming the field: an estimate is the method's output, not a training that diverged.
:func:`score` computes every score of one
estimate against the exact spectrum, using the metric definitions of
:mod:`phenomena_bench.families.hessian.spectral`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from phenomena_bench.core.family import Scalar
from phenomena_bench.families.hessian.api import SpectrumEstimate
from phenomena_bench.families.hessian.spec import HessianEvaluation
from phenomena_bench.families.hessian.spectral import (
    RELATIVE_ERROR_FLOOR,
    density_scores,
    relative_error,
    subspace_overlap,
    topk_relative_error,
)
from phenomena_bench.families.hessian.truth import HessianTruth


class BadEstimate(ValueError):
    """A field of the estimate has the wrong type, shape or length, or holds NaN or infinity."""


def _array(value: Any, name: str, ndim: int) -> np.ndarray | None:
    if value is None:
        return None
    try:
        if isinstance(value, torch.Tensor):
            value = value.detach().cpu().numpy()
        array = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError, RuntimeError) as err:
        raise BadEstimate(f"SpectrumEstimate.{name} is not an array of real numbers ({type(value).__name__})") from err
    if array.ndim != ndim:
        raise BadEstimate(f"SpectrumEstimate.{name} must have {ndim} dimension(s), got shape {array.shape}")
    if not np.isfinite(array).all():
        raise BadEstimate(f"SpectrumEstimate.{name} holds NaN or infinity")
    return array


def _scalar(value: Any, name: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise BadEstimate(f"SpectrumEstimate.{name} must be a real number, got {type(value).__name__}")
    number = float(value)
    if not np.isfinite(number):
        raise BadEstimate(f"SpectrumEstimate.{name} is {number}, not finite")
    return number


def checked_estimate(estimate: SpectrumEstimate, dim: int) -> SpectrumEstimate:
    """A NumPy copy of `estimate`, every field validated; raises :class:`BadEstimate` naming the bad field."""
    scalars = {name: _scalar(getattr(estimate, name), name) for name in ("lambda_max", "lambda_min", "trace")}
    values = _array(estimate.topk_values, "topk_values", 1)
    vectors = _array(estimate.topk_vectors, "topk_vectors", 2)
    if values is not None and values.size > dim:
        raise BadEstimate(f"SpectrumEstimate.topk_values holds {values.size} values; the Hessian has only {dim}")
    if vectors is not None and (vectors.shape[0] != dim or vectors.shape[1] > dim):
        raise BadEstimate(f"SpectrumEstimate.topk_vectors must be ({dim}, k) with k <= {dim}, got {vectors.shape}")
    if vectors is not None and values is not None and vectors.shape[1] != values.size:
        raise BadEstimate(
            f"SpectrumEstimate.topk_vectors has {vectors.shape[1]} column(s) for {values.size} topk_values"
        )
    nodes = _array(estimate.density_nodes, "density_nodes", 1)
    weights = _array(estimate.density_weights, "density_weights", 1)
    if (nodes is None) != (weights is None) or (
        nodes is not None and weights is not None and nodes.shape != weights.shape
    ):
        raise BadEstimate("SpectrumEstimate.density_nodes and density_weights must be given together, same length")
    if weights is not None:
        if weights.size == 0 or (weights < -1e-12).any() or abs(weights.sum() - 1.0) > 1e-6:
            raise BadEstimate("SpectrumEstimate.density_weights must be non-negative and sum to 1")
        weights = np.clip(weights, 0.0, None)
        weights = weights / weights.sum()
    return SpectrumEstimate(
        topk_values=values, topk_vectors=vectors, density_nodes=nodes, density_weights=weights, **scalars
    )


def best_lambda_max(estimate: SpectrumEstimate) -> float | None:
    """The estimate's λ_max, else the largest of its top-k values, else None."""
    if estimate.lambda_max is not None:
        return estimate.lambda_max
    if estimate.topk_values is not None and len(estimate.topk_values):
        return float(np.max(estimate.topk_values))
    return None


def score_names(evaluation: HessianEvaluation) -> list[str]:
    names = ["lambda_max_rel_err", "lambda_min_rel_err"]
    for k in evaluation.topk:
        names += [f"top{k}_rel_err", f"top{k}_overlap"]
    return names + ["trace_rel_err", "trace_err_per_abs", "w1_range", "w1_mean_abs", "w1_symlog", "ks"]


def score(
    estimate: SpectrumEstimate | None, truth: HessianTruth, targets: frozenset[str], evaluation: HessianEvaluation
) -> dict[str, Scalar]:
    """Every score of one checked estimate; None for targets the method does not claim or when `estimate` is None."""
    names = score_names(evaluation)
    if estimate is None:
        return dict.fromkeys(names)
    out: dict[str, Scalar] = dict.fromkeys(names)
    if "lambda_max" in targets:
        out["lambda_max_rel_err"] = relative_error(best_lambda_max(estimate), truth.lambda_max)
    if "lambda_min" in targets:
        out["lambda_min_rel_err"] = relative_error(estimate.lambda_min, truth.lambda_min)
    for k in evaluation.topk:
        if "topk" in targets:
            out[f"top{k}_rel_err"] = topk_relative_error(estimate.topk_values, truth.eigenvalues, k)
        if "eigenvectors" in targets:
            vectors = estimate.topk_vectors
            values = estimate.topk_values
            if vectors is not None and values is not None and len(values) == vectors.shape[1]:
                vectors = vectors[:, np.argsort(-estimate.topk_values, kind="stable")]
            out[f"top{k}_overlap"] = subspace_overlap(truth.top_vectors, vectors, k)
    if "trace" in targets:
        error = abs((estimate.trace or 0.0) - truth.trace)
        out["trace_rel_err"] = relative_error(estimate.trace, truth.trace)
        out["trace_err_per_abs"] = max(error / truth.abs_sum if truth.abs_sum > 0 else error, RELATIVE_ERROR_FLOOR)
    if "density" in targets:
        out.update(
            density_scores(
                truth.eigenvalues, estimate.density_nodes, estimate.density_weights, evaluation.symlog_threshold_rel
            )
        )
    return out
