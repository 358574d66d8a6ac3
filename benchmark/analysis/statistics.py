"""Statistics over seeds: quantiles with censoring, bootstrap intervals, paired comparisons, IQM, profiles.

Numbers in, numbers out: nothing here knows about run records, families or formatting, so every function can
be checked against a hand computation. Every random draw takes an explicit seed, so the same inputs always
give the same outputs, byte for byte.

**Censoring.** A time-to-event value whose event did not happen (a run stopped at the budget before reaching
the target) is only a lower bound. A quantile is monotone in every input, so computing it once with censored
values at their recorded value (a lower bound) and once with them at +inf (an upper bound) brackets the
truth; when both agree the statistic is exact, otherwise it is reported as ``>= lower bound``. The mean of
values with any censored one is undefined (``None``).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from scipy import stats as sps
from scipy.integrate import trapezoid

BOOTSTRAP_SAMPLES = 2000
CONFIDENCE = 0.95
#: Fewest seeds (shared seeds when paired) for a verdict against the reference: a bootstrap over two values has
#: three distinct resamples, so "beyond the interval" would only mean "both seeds agree".
MIN_SEEDS_FOR_VERDICT = 3
#: AlgoPerf integrates the performance profile up to this ratio to the best; slower gets no credit.
PROFILE_TAU_MAX = 4.0

#: How a column summarises its values (the same names as :class:`~phenomena_bench.core.family.Column` kinds):
#: ``median_iqr`` ranks by the median, ``rate`` by the fraction of true values, ``mean_ci`` and ``mean`` by the mean.
Kind = Literal["median_iqr", "mean_ci", "rate", "mean"]
Direction = Literal["min", "max"]
Verdict = Literal["better", "worse", "tie"]


@dataclass(frozen=True)
class Summary:
    """The statistics of one metric over one group of seeds.

    `median`, `iqr` and their ``*_censored`` flags bracket censored values as described in the module doc (a
    flag set means "the value is a lower bound"). `interval` is the 95% bootstrap interval of the kind's central
    statistic; its upper end is ``None`` when censoring leaves it unbounded. `rate` is set for ``rate`` columns.
    """

    n: int
    censored: int
    median: float | None = None
    median_censored: bool = False
    iqr: tuple[float, float] | None = None
    iqr_censored: tuple[bool, bool] | None = None
    mean: float | None = None
    rate: float | None = None
    interval: tuple[float, float | None] | None = None


@dataclass(frozen=True)
class Observations:
    """The values of one metric in one group, each with the seed that produced it and whether it is censored."""

    seeds: tuple[int, ...]
    values: tuple[float, ...]
    censored: tuple[bool, ...]


@dataclass(frozen=True)
class Comparison:
    """A method against the reference: the verdict, whether seeds were paired, and the interval of the
    difference (method - reference) of the central statistic; an end is ``None`` when it is unbounded."""

    verdict: Verdict
    paired: bool
    diff_low: float | None
    diff_high: float | None


# ------------------------------------------------------------------------------------------------ quantiles


def quantile_bounds(values: Sequence[float], censored: Sequence[bool], q: float) -> tuple[float, float]:
    """Lower and upper bound of the `q`-quantile when censored values are only lower bounds.

    The quantile (linear interpolation, numpy's default) is monotone in each value, so evaluating it with
    censored values at their recorded value gives a lower bound and with them at +inf an upper bound
    (possibly inf). Without censoring both are the ordinary quantile.
    """
    if not values:
        raise ValueError("quantile of no values")
    low = np.asarray(values, dtype=float)
    high = np.where(np.asarray(censored, dtype=bool), np.inf, low)
    return float(np.quantile(low, q)), _inf_quantile(high, q)


def _inf_quantile(values: np.ndarray, q: float) -> float:
    """np.quantile, but a quantile interpolating towards +-inf is +-inf (numpy would give nan)."""
    srt = np.sort(values)
    pos = q * (len(srt) - 1)
    lo, hi = math.floor(pos), math.ceil(pos)
    frac = pos - lo
    if frac == 0 or srt[lo] == srt[hi]:
        return float(srt[lo])
    if srt[lo] == -math.inf:
        return -math.inf
    if srt[hi] == math.inf:
        return math.inf
    return float(srt[lo] + frac * (srt[hi] - srt[lo]))


def _batched_quantile(samples: np.ndarray, q: float) -> np.ndarray:
    """Row-wise quantile of a (B, n) matrix that may hold +inf, following :func:`_inf_quantile`."""
    srt = np.sort(samples, axis=1)
    pos = q * (srt.shape[1] - 1)
    lo, hi = math.floor(pos), math.ceil(pos)
    frac = pos - lo
    a, b = srt[:, lo], srt[:, hi]
    if frac == 0:
        return a
    with np.errstate(invalid="ignore"):
        out = a + frac * (b - a)
    out = np.where(a == b, a, out)
    return np.where(np.isinf(b), np.inf, out)


# ------------------------------------------------------------------------------------------------ intervals


def bootstrap_interval(
    values: Sequence[float],
    statistic: Literal["mean", "median"],
    *,
    censored: Sequence[bool] | None = None,
    seed: int = 0,
    samples: int = BOOTSTRAP_SAMPLES,
    confidence: float = CONFIDENCE,
) -> tuple[float, float | None] | None:
    """Percentile-bootstrap interval of the mean or median; ``None`` with fewer than two values.

    With censoring (median only) the lower end comes from the lower-bound statistic and the upper end from the
    upper-bound one; an upper end at infinity is returned as ``None`` (unbounded).
    """
    n = len(values)
    if n < 2:
        return None
    cens = np.zeros(n, dtype=bool) if censored is None else np.asarray(censored, dtype=bool)
    if statistic == "mean" and cens.any():
        raise ValueError("the mean of censored values is undefined")
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, n, size=(samples, n))
    low = np.asarray(values, dtype=float)[idx]
    alpha = (1 - confidence) / 2
    if statistic == "mean":
        est = low.mean(axis=1)
        return float(np.quantile(est, alpha)), float(np.quantile(est, 1 - alpha))
    high = np.where(cens[idx], np.inf, low)
    lo_est = _batched_quantile(low, 0.5)
    hi_est = _batched_quantile(high, 0.5)
    upper = _inf_quantile(hi_est, 1 - alpha)
    return float(np.quantile(lo_est, alpha)), (None if math.isinf(upper) else upper)


def summarise(kind: Kind, values: Sequence[float], censored: Sequence[bool], seed: int) -> Summary:
    """Median, IQR, mean, rate and the kind's bootstrap interval of one group's values (`seed`: bootstrap)."""
    n = len(values)
    count = int(sum(censored))
    if n == 0:
        return Summary(n=0, censored=count)
    med_lo, med_hi = quantile_bounds(values, censored, 0.5)
    q1_lo, q1_hi = quantile_bounds(values, censored, 0.25)
    q3_lo, q3_hi = quantile_bounds(values, censored, 0.75)
    any_censored = any(censored)
    rate: float | None = None
    interval: tuple[float, float | None] | None
    if kind == "rate":
        rate = float(np.mean(values))
        interval = bootstrap_interval(values, "mean", seed=seed)
    elif kind == "median_iqr":
        interval = bootstrap_interval(values, "median", censored=censored, seed=seed)
    elif any_censored:
        interval = None
    else:
        interval = bootstrap_interval(values, "mean", seed=seed)
    return Summary(
        n=n,
        censored=count,
        median=med_lo,
        median_censored=med_lo != med_hi,
        iqr=(q1_lo, q3_lo),
        iqr_censored=(q1_lo != q1_hi, q3_lo != q3_hi),
        mean=None if any_censored else float(np.mean(values)),
        rate=rate,
        interval=interval,
    )


def central(kind: Kind, summary: Summary) -> float | None:
    """The number that ranks a summary: median, mean or rate according to the kind."""
    if kind == "median_iqr":
        return summary.median
    if kind == "rate":
        return summary.rate
    return summary.mean


# ------------------------------------------------------------------------------------------------ comparison


def compare(
    kind: Kind,
    direction: Direction,
    method: Observations,
    reference: Observations,
    *,
    seed: int = 0,
    samples: int = BOOTSTRAP_SAMPLES,
    confidence: float = CONFIDENCE,
) -> Comparison | None:
    """Does the method differ from the reference beyond the bootstrap interval of the difference?

    Paired by seed when at least :data:`MIN_SEEDS_FOR_VERDICT` seeds are shared (the protocol fixes the split
    per seed, so seed s of both methods saw the same data): the same resampled seeds are used for both.
    Otherwise the two groups are resampled independently. The statistic is the kind's central one (median,
    or mean for every other kind, a rate being the mean of 0/1 values); with censored values the difference is
    bracketed by (lower bound of method - upper bound of reference, upper - lower).
    None when either side has fewer than :data:`MIN_SEEDS_FOR_VERDICT` observations.
    """
    common = sorted(set(method.seeds) & set(reference.seeds))
    rng = np.random.default_rng(seed)
    if len(common) >= MIN_SEEDS_FOR_VERDICT:
        mi = {s: i for i, s in enumerate(method.seeds)}
        ri = {s: i for i, s in enumerate(reference.seeds)}
        m_v = np.array([method.values[mi[s]] for s in common])
        m_c = np.array([method.censored[mi[s]] for s in common])
        r_v = np.array([reference.values[ri[s]] for s in common])
        r_c = np.array([reference.censored[ri[s]] for s in common])
        idx = rng.integers(0, len(common), size=(samples, len(common)))
        m_idx, r_idx, paired = idx, idx, True
    elif len(method.values) >= MIN_SEEDS_FOR_VERDICT and len(reference.values) >= MIN_SEEDS_FOR_VERDICT:
        m_v, m_c = np.array(method.values), np.array(method.censored)
        r_v, r_c = np.array(reference.values), np.array(reference.censored)
        m_idx = rng.integers(0, len(m_v), size=(samples, len(m_v)))
        r_idx = rng.integers(0, len(r_v), size=(samples, len(r_v)))
        paired = False
    else:
        return None
    m_lo, m_hi = _stat_bounds(kind, m_v[m_idx], m_c[m_idx])
    r_lo, r_hi = _stat_bounds(kind, r_v[r_idx], r_c[r_idx])
    with np.errstate(invalid="ignore"):
        d_lo = m_lo - r_hi
        d_hi = m_hi - r_lo
    d_lo = np.where(np.isnan(d_lo), -np.inf, d_lo)
    d_hi = np.where(np.isnan(d_hi), np.inf, d_hi)
    alpha = (1 - confidence) / 2
    lo = _inf_quantile(d_lo, alpha)
    hi = _inf_quantile(d_hi, 1 - alpha)
    if lo > 0:
        verdict: Verdict = "worse" if direction == "min" else "better"
    elif hi < 0:
        verdict = "better" if direction == "min" else "worse"
    else:
        verdict = "tie"
    return Comparison(verdict, paired, None if math.isinf(lo) else lo, None if math.isinf(hi) else hi)


def _stat_bounds(kind: Kind, vals: np.ndarray, cens: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per bootstrap sample, lower and upper bound of the kind's central statistic."""
    high = np.where(cens, np.inf, vals)
    if kind == "median_iqr":
        return _batched_quantile(vals, 0.5), _batched_quantile(high, 0.5)
    return vals.mean(axis=1), high.mean(axis=1)


# ------------------------------------------------------------------------------------------- across tasks


def iqm(values: Iterable[float]) -> float:
    """Interquartile mean (rliable): the mean of the middle 50% of values, robust yet efficient."""
    arr = np.asarray(list(values), dtype=float)
    if arr.size == 0:
        raise ValueError("IQM of no values")
    return float(sps.trim_mean(arr, 0.25))


def stratified_bootstrap_iqm(
    scores_by_task: Mapping[str, Sequence[float]],
    *,
    seed: int = 0,
    samples: int = BOOTSTRAP_SAMPLES,
    confidence: float = CONFIDENCE,
) -> tuple[float, float] | None:
    """rliable's stratified bootstrap: resample runs within each task, pool, take the IQM; percentile interval."""
    tasks = [np.asarray(v, dtype=float) for v in scores_by_task.values() if len(v)]
    if not tasks or sum(len(t) for t in tasks) < 2:
        return None
    rng = np.random.default_rng(seed)
    pooled = np.concatenate([t[rng.integers(0, len(t), size=(samples, len(t)))] for t in tasks], axis=1)
    est = sps.trim_mean(pooled, 0.25, axis=1)
    alpha = (1 - confidence) / 2
    return float(np.quantile(est, alpha)), float(np.quantile(est, 1 - alpha))


def performance_profile(
    values: Mapping[str, Mapping[str, float | None]],
    direction: Direction,
    taus: Sequence[float],
) -> dict[str, list[float]]:
    """Dolan–Moré performance profile: for each method, the fraction of tasks within `tau` of the best.

    `values[method][task]` is the method's value on the task (None or inf: did not finish, never within any
    tau). The ratio to the best is value/best for "min" metrics and best/value for "max" metrics, so 1 is
    the best and larger is worse. Tasks no method finished are left out.
    """
    tasks = sorted({t for per in values.values() for t in per})
    ratios: dict[str, list[float]] = {m: [] for m in values}
    counted = 0
    for task in tasks:
        finite: dict[str, float] = {}
        for m, per in values.items():
            v = per.get(task)
            if v is not None and math.isfinite(float(v)):
                finite[m] = float(v)
        if not finite:
            continue
        counted += 1
        best = min(finite.values()) if direction == "min" else max(finite.values())
        for m in values:
            value = finite.get(m)
            if value is None:
                ratios[m].append(math.inf)
            elif direction == "min":
                ratios[m].append(1.0 if value == best else (value / best if best > 0 else math.inf))
            else:
                ratios[m].append(1.0 if value == best else (best / value if value > 0 else math.inf))
    if counted == 0:
        return {m: [0.0 for _ in taus] for m in values}
    return {m: [sum(r <= tau for r in rs) / counted for tau in taus] for m, rs in ratios.items()}


def profile_score(profile: Sequence[float], taus: Sequence[float]) -> float:
    """AlgoPerf's benchmark score: the profile's area from tau=1 to the last tau, normalised to [0, 1]."""
    if len(taus) < 2:
        raise ValueError("need at least two taus")
    area = float(trapezoid(profile, taus))
    return area / (taus[-1] - taus[0])
