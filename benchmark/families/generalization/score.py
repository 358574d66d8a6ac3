"""Rank-correlation scores of a measure over a population, with bootstrap intervals.

* **Kendall's τ** (τ-b, which counts ties correctly) between the measure and the target over every network:
  +1 when the measure orders the networks exactly as their generalisation does, 0 for chance.
* **Conditional τ per axis** (Jiang et al. 2020's granulated τ): for one hyperparameter axis, the networks
  are grouped so that within a group only that axis varies (every other axis and the initialisation equal);
  τ is taken within each group and averaged over groups. Their mean over the axes is the **granulated τ**.
  A measure that only tracks one axis (say the training-set size) scores well on that axis and near zero on
  the others, so the granulated τ cannot be won by tracking one axis, where the overall τ can.
* **Intervals**: percentile bootstrap. The overall τ resamples networks with replacement; the conditional
  τ resamples each axis's groups. The resamples are drawn from the run seed alone, never the method, so
  two measures scored with the same seed see the same resamples: their intervals (and differences) are
  paired.
* **Predicted test loss**: the median over networks of |predicted − true| / true.
"""

from __future__ import annotations

import warnings
from collections import defaultdict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import numpy as np

CONFIDENCE = 0.95


def _signs(values: np.ndarray) -> np.ndarray:
    """sign(v_i − v_j) over the last axis, as a (..., n, n) array."""
    return np.sign(values[..., :, None] - values[..., None, :])


def kendall_tau(measure: Sequence[float] | np.ndarray, target: Sequence[float] | np.ndarray) -> float:
    """Kendall's τ-b of two equally long sequences; NaN when either is constant (τ is then undefined)."""
    return float(kendall_tau_batch(np.asarray(measure, float)[None], np.asarray(target, float)[None])[0])


def kendall_tau_batch(measure: np.ndarray, target: np.ndarray) -> np.ndarray:
    """τ-b of each row pair of two (R, n) arrays (a bootstrap's resamples at once); NaN where undefined."""
    a, b = _signs(measure), _signs(target)
    concordance = (a * b).sum(axis=(-1, -2))
    untied = np.sqrt(np.abs(a).sum(axis=(-1, -2)) * np.abs(b).sum(axis=(-1, -2)))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(untied > 0, concordance / np.where(untied > 0, untied, 1.0), np.nan)


def axis_groups(keys: Sequence[tuple[float, ...]], axis: int) -> list[list[int]]:
    """Indices of the networks grouped by every key component but `axis` (groups of at least two)."""
    groups: dict[tuple[float, ...], list[int]] = defaultdict(list)
    for index, key in enumerate(keys):
        groups[key[:axis] + key[axis + 1 :]].append(index)
    return [members for members in groups.values() if len(members) >= 2]


def _group_taus(measure: np.ndarray, target: np.ndarray, groups: list[list[int]]) -> np.ndarray:
    return np.array([kendall_tau(measure[g], target[g]) for g in groups])


def _interval(samples: np.ndarray) -> tuple[float | None, float | None]:
    finite = samples[np.isfinite(samples)]
    if finite.size < 10:
        return None, None
    alpha = (1 - CONFIDENCE) / 2
    return float(np.quantile(finite, alpha)), float(np.quantile(finite, 1 - alpha))


def tau_scores(
    measure: np.ndarray,
    target: np.ndarray,
    keys: Sequence[tuple[float, ...]],
    axis_names: Sequence[str],
    rng: np.random.Generator,
    resamples: int,
) -> dict[str, float | None]:
    """τ, its interval, the conditional τ of every varying axis, the granulated τ and its interval.

    `keys[i]` holds network i's axis values (in `axis_names` order) then its initialisation seed; an axis
    with one value has no group and is left out. Undefined values (NaN) are reported as None.
    """
    n = len(measure)
    out: dict[str, float | None] = {"kendall_tau": _none_if_nan(kendall_tau(measure, target))}
    draws = rng.integers(0, n, size=(resamples, n))
    out["kendall_tau_lo"], out["kendall_tau_hi"] = _interval(kendall_tau_batch(measure[draws], target[draws]))
    axis_taus: list[np.ndarray] = []
    for axis, name in enumerate(axis_names):
        groups = axis_groups(keys, axis)
        if not groups:
            continue
        taus = _group_taus(measure, target, groups)
        out[f"conditional_tau/{name}"] = _none_if_nan(float(np.nanmean(taus)) if np.isfinite(taus).any() else np.nan)
        picks = rng.integers(0, len(taus), size=(resamples, len(taus)))
        with _quiet():
            axis_taus.append(np.nanmean(taus[picks], axis=1))
    if axis_taus:
        stacked = np.vstack(axis_taus)  # axes × resamples
        defined = [out[f"conditional_tau/{name}"] for name in axis_names if f"conditional_tau/{name}" in out]
        point = [v for v in defined if v is not None]
        out["granulated_tau"] = float(np.mean(point)) if point else None
        with _quiet():
            out["granulated_tau_lo"], out["granulated_tau_hi"] = _interval(np.nanmean(stacked, axis=0))
    return out


def prediction_error(predicted: np.ndarray, truth: np.ndarray) -> float:
    """Median relative error of predicted test losses."""
    return float(np.median(np.abs(predicted - truth) / np.abs(truth)))


def iqr(values: np.ndarray) -> float:
    """The interquartile range (the gate's measure of how much the population's generalisation varies)."""
    q1, q3 = np.quantile(values, [0.25, 0.75])
    return float(q3 - q1)


def _none_if_nan(value: float) -> float | None:
    return None if not np.isfinite(value) else float(value)


@contextmanager
def _quiet() -> Iterator[None]:
    """Silence NumPy's "mean of empty slice" warning (an all-NaN resample is expected, and left out)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        yield
