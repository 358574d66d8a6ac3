"""Statistics over seeds: quantiles with censoring, intervals that cover, IQM and performance profiles.

Numbers in, numbers out: nothing here knows about run records, families or formatting, so every function can
be checked against a hand computation. Every random draw takes an explicit seed, so the same inputs always
give the same outputs, byte for byte. (Paired comparisons against the reference live in
:mod:`phenomena_bench.analysis.comparison`.)

**Censoring.** A time-to-event value whose event did not happen (a run stopped at the budget before reaching
the target, or a run that failed or diverged) is only a lower bound. A quantile is monotone in every input,
so computing it once with censored values at their recorded value (a lower bound) and once with them at +inf
(an upper bound) brackets the truth; when both agree the statistic is exact, otherwise it is reported as
``>= lower bound``. Both bounds come from the *same* quantile code (:func:`quantiles`), so without censoring
they are bit-identical and nothing is flagged by rounding. The mean of values with any censored one is
undefined (``None``); the *restricted* mean (every time capped at the horizon) is defined and is what ranks
two methods whose medians are both censored.

**Intervals.** Seeds are few (3 to 10), where a percentile bootstrap under-covers badly (a 95% bootstrap
interval of a mean covers the truth about half the time with two seeds). So a mean gets Student's t
interval, a rate the Wilson score interval, and a median the distribution-free order-statistic interval
(its coverage follows from the binomial distribution of how many seeds fall below the true median, whatever
the metric's distribution); below six seeds no pair of order statistics reaches 95%, and the interval is
unbounded rather than falsely narrow.
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
#: AlgoPerf integrates the performance profile up to this ratio to the best; slower gets no credit.
PROFILE_TAU_MAX = 4.0
#: Errors are floored at this fraction of the task's error scale (the largest finite error on the task, or 1
#: when every error is 0) before ratios are taken: an exact answer (error 0) is then the best, and a ratio to
#: it is finite. 1e-12 is below any error a float32 or float64 estimate distinguishes from exact at that scale.
ERROR_EPSILON = 1e-12
#: A reference-normalised run score (reference error / run error) is clipped to [0, SCORE_CLIP], so one
#: near-exact run cannot dominate the IQM; ten times better than the reference already counts as solved.
SCORE_CLIP = 10.0

#: How a column summarises its values (the same names as :class:`~phenomena_bench.core.family.Column` kinds):
#: ``median_iqr`` ranks by the median, ``rate`` by the fraction of true values, ``mean_ci`` and ``mean`` by the mean.
Kind = Literal["median_iqr", "mean_ci", "rate", "mean"]
Direction = Literal["min", "max"]
ErrorKind = Literal["time", "one_minus", "value"]
IntervalMethod = Literal["t", "wilson", "order statistics"]
#: Values over seeds: a sequence or a 1-D array.
Values = Sequence[float] | np.ndarray


@dataclass(frozen=True)
class Summary:
    """The statistics of one metric over one group of seeds.

    `n` values entered (every seed, for a column whose non-ok seeds are censored or floored; the runs that
    report it otherwise) out of `seeds` runs in the group. `median`, `iqr` and their ``*_censored`` flags
    bracket censored values as described in the module doc (a flag set means "the value is a lower bound");
    `median_upper` is the upper bound of the median (``None``: unbounded). A median whose lower bound is
    itself infinite (no finite value at all) is ``None`` with the flag set. `interval` is the 95% interval
    of the kind's central statistic by `interval_method`; an end is ``None`` when it is unbounded.
    `restricted_mean` is the mean of values capped at the column's horizon (censored ones at the horizon),
    for time-to-event columns with a horizon.
    """

    n: int
    censored: int
    seeds: int = 0
    median: float | None = None
    median_censored: bool = False
    median_upper: float | None = None
    iqr: tuple[float | None, float | None] | None = None
    iqr_censored: tuple[bool, bool] | None = None
    mean: float | None = None
    rate: float | None = None
    interval: tuple[float | None, float | None] | None = None
    interval_method: IntervalMethod | None = None
    restricted_mean: float | None = None


@dataclass(frozen=True)
class Observations:
    """The values of one metric in one group, each with the seed that produced it and whether it is censored."""

    seeds: tuple[int, ...]
    values: tuple[float, ...]
    censored: tuple[bool, ...]


def _finite(x: float) -> float | None:
    return x if math.isfinite(x) else None


# ------------------------------------------------------------------------------------------------ quantiles


def quantiles(samples: np.ndarray, q: float) -> np.ndarray:
    """Row-wise `q`-quantile (linear interpolation, numpy's default method) of a (B, n) matrix that may hold
    +-inf: a quantile interpolating towards +-inf is +-inf (numpy would give nan).

    The one quantile implementation of the package: both censoring bounds go through it, so equal inputs give
    bit-identical outputs.
    """
    if samples.ndim != 2 or samples.shape[1] == 0:
        raise ValueError("quantile of no values")
    srt = np.sort(samples, axis=1)
    pos = q * (srt.shape[1] - 1)
    lo, hi = math.floor(pos), math.ceil(pos)
    frac = pos - lo
    a, b = srt[:, lo], srt[:, hi]
    if frac == 0:
        return a.copy()
    with np.errstate(invalid="ignore"):
        out = a + frac * (b - a)
    out = np.where(a == b, a, out)
    out = np.where(np.isposinf(b), np.inf, out)
    return np.where(np.isneginf(a), -np.inf, out)


def quantile_bounds(values: Sequence[float], censored: Sequence[bool], q: float) -> tuple[float, float]:
    """Lower and upper bound of the `q`-quantile when censored values are only lower bounds.

    Evaluating the (monotone) quantile with censored values at their recorded value gives a lower bound and
    with them at +inf an upper bound (possibly inf). Without censoring both are the same number, bit for bit.
    """
    if not values:
        raise ValueError("quantile of no values")
    low = np.asarray(values, dtype=float)
    high = np.where(np.asarray(censored, dtype=bool), np.inf, low)
    both = quantiles(np.stack([low, high]), q)
    return float(both[0]), float(both[1])


# ------------------------------------------------------------------------------------------------ intervals


def t_interval(values: Values, confidence: float = CONFIDENCE) -> tuple[float, float] | None:
    """Student's t interval of the mean; ``None`` with fewer than two values (no spread to scale it by)."""
    arr = np.asarray(values, dtype=float)
    n = arr.size
    if n < 2:
        return None
    mean = float(arr.mean())
    half = float(sps.t.ppf(1 - (1 - confidence) / 2, n - 1)) * float(arr.std(ddof=1)) / math.sqrt(n)
    return mean - half, mean + half


def wilson_interval(successes: int, n: int, confidence: float = CONFIDENCE) -> tuple[float, float] | None:
    """Wilson score interval of a proportion (covers near 0 and 1 where the t interval collapses)."""
    if n == 0:
        return None
    z = float(sps.norm.ppf(1 - (1 - confidence) / 2))
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def order_statistic_rank(n: int, confidence: float = CONFIDENCE) -> int | None:
    """The largest k with P(Binomial(n, 1/2) <= k - 1) <= alpha/2, so that [x_(k), x_(n-k+1)] covers the
    median with probability >= `confidence` for any continuous distribution; ``None`` when no k >= 1 does
    (fewer than 6 values at 95%)."""
    if n == 0:
        return None
    alpha = (1 - confidence) / 2
    ks = np.arange(1, n // 2 + 1)
    ok = ks[sps.binom.cdf(ks - 1, n, 0.5) <= alpha]
    return int(ok.max()) if ok.size else None


def median_interval(
    values: Values, censored: Sequence[bool] | None = None, confidence: float = CONFIDENCE
) -> tuple[float | None, float | None]:
    """Distribution-free order-statistic interval of the median; an end is ``None`` when unbounded (too few
    values for the confidence, or the upper order statistic censored)."""
    n = len(values)
    k = order_statistic_rank(n, confidence)
    if k is None:
        return None, None
    low = np.sort(np.asarray(values, dtype=float))
    cens = np.zeros(n, dtype=bool) if censored is None else np.asarray(censored, dtype=bool)
    high = np.sort(np.where(cens, np.inf, np.asarray(values, dtype=float)))
    return _finite(float(low[k - 1])), _finite(float(high[n - k]))


# ------------------------------------------------------------------------------------------------ summaries


def restricted_mean(values: Sequence[float], censored: Sequence[bool], horizon: float) -> float | None:
    """Restricted mean time: the mean of min(value, horizon), a censored value counting as the horizon."""
    if not values:
        return None
    arr = np.asarray(values, dtype=float)
    capped = np.where(np.asarray(censored, dtype=bool), horizon, np.minimum(arr, horizon))
    return float(capped.mean())


def summarise(
    kind: Kind,
    values: Sequence[float],
    censored: Sequence[bool],
    *,
    seeds: int | None = None,
    horizon: float | None = None,
    confidence: float = CONFIDENCE,
) -> Summary:
    """Median, IQR, mean, rate, the kind's interval and (with a `horizon`) the restricted mean of one group.

    `seeds` is the number of runs in the group (default: the number of values), so a column summarised over
    the runs that report it can say "n of seeds".
    """
    n = len(values)
    total = n if seeds is None else seeds
    count = int(sum(censored))
    if n == 0:
        return Summary(n=0, censored=count, seeds=total)
    med_lo, med_hi = quantile_bounds(values, censored, 0.5)
    q1_lo, q1_hi = quantile_bounds(values, censored, 0.25)
    q3_lo, q3_hi = quantile_bounds(values, censored, 0.75)
    any_censored = count > 0
    rate: float | None = None
    interval: tuple[float | None, float | None] | None
    method: IntervalMethod | None
    if kind == "rate":
        rate = float(np.mean(values))
        interval, method = wilson_interval(int(round(rate * n)), n, confidence), "wilson"
    elif kind == "median_iqr":
        interval, method = median_interval(values, censored, confidence), "order statistics"
    elif any_censored:
        interval, method = None, None
    else:
        interval, method = t_interval(values, confidence), "t"
    return Summary(
        n=n,
        censored=count,
        seeds=total,
        median=_finite(med_lo),
        median_censored=med_lo != med_hi,
        median_upper=_finite(med_hi),
        iqr=(_finite(q1_lo), _finite(q3_lo)),
        iqr_censored=(q1_lo != q1_hi, q3_lo != q3_hi),
        mean=None if any_censored else float(np.mean(values)),
        rate=rate,
        interval=interval,
        interval_method=method if interval is not None else None,
        restricted_mean=None if horizon is None else restricted_mean(values, censored, horizon),
    )


def central(kind: Kind, summary: Summary) -> float | None:
    """The number that ranks a summary: median, mean or rate according to the kind."""
    if kind == "median_iqr":
        return summary.median
    if kind == "rate":
        return summary.rate
    return summary.mean


# ------------------------------------------------------------------------------------------------ errors


def as_error(kind: ErrorKind, value: float | None, censored: bool = False) -> float:
    """A value read as an error (lower is better, 0 is exact): ``time`` — the value, +inf when not reached;
    ``one_minus`` — 1 - value; ``value`` — the value. A missing value is +inf (never within any ratio)."""
    if value is None or (kind == "time" and censored):
        return math.inf
    return 1.0 - value if kind == "one_minus" else value


def error_floor(errors: Iterable[float]) -> float:
    """:data:`ERROR_EPSILON` times the scale of these errors (the largest finite one; 1 when all are 0)."""
    finite = [abs(e) for e in errors if math.isfinite(e)]
    scale = max(finite, default=0.0)
    return ERROR_EPSILON * (scale if scale > 0 else 1.0)


def normalised_score(error: float, reference_error: float, floor: float) -> float:
    """A run's score relative to the reference: reference error / run error, both floored at `floor`, clipped
    to [0, :data:`SCORE_CLIP`]; 1 = as good as the reference, higher is better, not reached scores 0.

    A ratio (not a log ratio) keeps "1 = the reference" and "0 = nothing", which the IQM's literature reads;
    the floor and the clip keep an exact answer from exploding it.
    """
    if not math.isfinite(error):
        return 0.0
    return float(min(SCORE_CLIP, max(reference_error, floor) / max(error, floor)))


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
    """rliable's stratified bootstrap: resample runs within each task, pool, take the IQM; percentile interval.

    (Across tasks the pool holds every run of every task, where the percentile bootstrap is what rliable
    validated; per task, with a handful of seeds, this package uses the intervals above instead.)
    """
    tasks = [np.asarray(v, dtype=float) for v in scores_by_task.values() if len(v)]
    if not tasks or sum(len(t) for t in tasks) < 2:
        return None
    rng = np.random.default_rng(seed)
    pooled = np.concatenate([t[rng.integers(0, len(t), size=(samples, len(t)))] for t in tasks], axis=1)
    est = sps.trim_mean(pooled, 0.25, axis=1)
    alpha = (1 - confidence) / 2
    return float(np.quantile(est, alpha)), float(np.quantile(est, 1 - alpha))


def performance_profile(
    errors: Mapping[str, Mapping[str, float | None]],
    taus: Sequence[float],
) -> dict[str, list[float]]:
    """Dolan–Moré performance profile: for each method, the fraction of tasks within `tau` of the best.

    `errors[method][task]` is the method's error on the task (lower is better, 0 exact; None or inf: not
    reached, never within any tau). Errors are floored at :func:`error_floor` of the task, so an exact
    answer is the best and the ratio error / best error is finite. Tasks no method has a finite error on
    are left out.
    """
    tasks = sorted({t for per in errors.values() for t in per})
    ratios: dict[str, list[float]] = {m: [] for m in errors}
    counted = 0
    for task in tasks:
        per_task = {m: (math.inf if (e := per.get(task)) is None else float(e)) for m, per in errors.items()}
        if not any(math.isfinite(e) for e in per_task.values()):
            continue
        counted += 1
        floor = error_floor(per_task.values())
        floored = {m: max(e, floor) for m, e in per_task.items()}
        best = min(floored.values())
        for m, e in floored.items():
            ratios[m].append(1.0 if e == best else e / best)
    if counted == 0:
        return {m: [0.0 for _ in taus] for m in errors}
    return {m: [sum(r <= tau for r in rs) / counted for tau in taus] for m, rs in ratios.items()}


def profile_score(profile: Sequence[float], taus: Sequence[float]) -> float:
    """AlgoPerf's benchmark score: the profile's area from tau=1 to the last tau, normalised to [0, 1]."""
    if len(taus) < 2:
        raise ValueError("need at least two taus")
    area = float(trapezoid(profile, taus))
    return area / (taus[-1] - taus[0])
