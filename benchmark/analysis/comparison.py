"""A method against the reference: an exact sign-flip test on seed-paired differences, Holm across a table.

Why this test. The protocol fixes the data split per seed, so seed s of two methods saw the same data and the
per-seed difference removes the between-seed spread. Under "the two methods are exchangeable" each paired
difference is as likely to have either sign, so the null distribution of their sum is given by flipping
signs: all 2^n flips are enumerated up to :data:`EXACT_MAX_SEEDS` seeds (an exact test, valid for any
distribution of the differences), a fixed-seed Monte Carlo sample of flips above. The smallest two-sided p
of n pairs is 2 / 2^n: 0.25 at 3 seeds, 0.031 at 6, so no verdict is given below
:data:`MIN_PAIRED_SEEDS` (``underpowered``), where "better" would be a coin toss dressed as a finding.

Several methods are compared with one reference in a table, so p-values are Holm-adjusted across the
table's comparisons (family-wise error at most :data:`ALPHA`); the verdict is ``better``/``worse`` when the
adjusted p is below it. Holm's first step needs a p below alpha / m for m comparisons, so the seeds a verdict
needs grow with the table: 2/2^n < 0.05/m is 6 seeds for one comparison, 8 for 5, 9 for 7 or 8
(:func:`seeds_for_verdict`). A comparison with fewer pairs than that is ``underpowered`` (no data it could
show would give a verdict), not ``tie``; ``tie`` means a verdict was attainable and the data did not give one.

Time-to-event metrics are compared on *restricted* times, min(T, horizon) with a run that did not reach the
event at the horizon: two seeds that both failed to reach it differ by 0, and a failure is as bad as the
budget allows, never a gap.

The interval reported with a verdict is Student's t interval of the mean paired difference, and the minimum
detectable effect of a table is (t_{1-alpha/2} + t_{power}) * sd / sqrt(n) with n-1 degrees of freedom
(80% power, the paired t test's formula, which the sign-flip test matches closely from 6 seeds on).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from functools import cache
from typing import Literal

import numpy as np
from scipy import stats as sps

from phenomena_bench.analysis.statistics import CONFIDENCE, Direction, Observations, Values, t_interval

#: Fewest seed-paired differences for a verdict: the smallest two-sided sign-flip p is 2/2^n (0.031 at 6).
MIN_PAIRED_SEEDS = 6
#: Family-wise error rate of the verdicts of one table (Holm).
ALPHA = 0.05
#: Power the minimum detectable effect is stated at.
POWER = 0.8
#: Up to this many pairs every sign flip is enumerated (2^16 = 65536); above, a Monte Carlo sample.
EXACT_MAX_SEEDS = 16
MONTE_CARLO_FLIPS = 20_000
#: Keeps a (draws x flips) block of the vectorised test under ~32 MB.
_BLOCK = 4_000_000

Verdict = Literal["better", "worse", "tie", "underpowered"]
DIFF_INTERVAL = "t interval of the mean paired difference"


@dataclass(frozen=True)
class Comparison:
    """A method against the reference over `n_paired` seeds both ran.

    `p_value` is the raw two-sided sign-flip p, `p_adjusted` the Holm-adjusted one (what the verdict uses);
    `diff_mean` and [`diff_low`, `diff_high`] the mean paired difference (method - reference) and its 95%
    t interval (restricted times for a time-to-event metric), `diff_sd` their standard deviation; each is
    ``None`` when undefined (no pairs, or fewer than two). `mde` is the minimum detectable effect at this
    comparison's `n_paired`.
    """

    verdict: Verdict
    n_paired: int
    p_value: float | None
    p_adjusted: float | None
    diff_mean: float | None
    diff_low: float | None
    diff_high: float | None
    diff_sd: float | None
    mde: float | None
    interval: str = DIFF_INTERVAL


# ------------------------------------------------------------------------------------------------ the test


@cache
def _all_flips(n: int) -> np.ndarray:
    """Every sign vector of length n, as a read-only (2^n, n) matrix of +-1 (cached: tables reuse it)."""
    codes = np.arange(2**n, dtype=np.int64)[:, None]
    bits = (codes >> np.arange(n, dtype=np.int64)[None, :]) & 1
    flips = (1 - 2 * bits).astype(float)
    flips.flags.writeable = False
    return flips


def sign_flip_pvalues(diffs: np.ndarray, *, seed: int = 0) -> np.ndarray:
    """Two-sided sign-flip p-values of each row of a (draws, n) matrix of paired differences.

    The statistic is |sum of differences|; p is the fraction of sign flips whose statistic is at least the
    observed one (a relative tolerance of 1e-9 keeps ties from rounding). Exact up to
    :data:`EXACT_MAX_SEEDS` pairs; above, (1 + hits) / (1 + flips) over a Monte Carlo sample drawn from
    `seed`, which is a valid p-value. A row of zeros has p = 1.
    """
    d = np.asarray(diffs, dtype=float)
    if d.ndim != 2:
        raise ValueError("diffs must be a (draws, n) matrix")
    draws, n = d.shape
    if n == 0:
        return np.ones(draws)
    exact = n <= EXACT_MAX_SEEDS
    rng = np.random.default_rng(seed)
    flips = _all_flips(n) if exact else rng.choice([-1.0, 1.0], size=(MONTE_CARLO_FLIPS, n))
    observed = np.abs(d.sum(axis=1))
    tol = 1e-9 * np.abs(d).sum(axis=1)
    hits = np.empty(draws)
    step = max(1, _BLOCK // len(flips))
    for start in range(0, draws, step):
        block = slice(start, start + step)
        stats = np.abs(d[block] @ flips.T)
        hits[block] = (stats >= (observed[block] - tol[block])[:, None]).sum(axis=1)
    if exact:
        return hits / len(flips)
    return (1 + hits) / (1 + len(flips))


def sign_flip_pvalue(diffs: Values, *, seed: int = 0) -> float:
    """:func:`sign_flip_pvalues` of one vector of paired differences."""
    return float(sign_flip_pvalues(np.asarray(diffs, dtype=float)[None, :], seed=seed)[0])


def holm(pvalues: Sequence[float | None]) -> list[float | None]:
    """Holm's step-down adjustment (``None`` entries are not tests and stay ``None``)."""
    idx = [i for i, p in enumerate(pvalues) if p is not None]
    order = sorted(idx, key=lambda i: (pvalues[i], i))
    m = len(order)
    out: list[float | None] = [None] * len(pvalues)
    running = 0.0
    for rank, i in enumerate(order):
        p = pvalues[i]
        assert p is not None
        running = max(running, min(1.0, (m - rank) * p))
        out[i] = running
    return out


def mde(sd: float, n: int, *, alpha: float = ALPHA, power: float = POWER) -> float | None:
    """Minimum detectable mean paired difference at `n` pairs: (t_{1-alpha/2} + t_{power}) * sd / sqrt(n) with
    n - 1 degrees of freedom; ``None`` below :data:`MIN_PAIRED_SEEDS` pairs, where no verdict is possible."""
    if n < MIN_PAIRED_SEEDS or not math.isfinite(sd):
        return None
    factor = float(sps.t.ppf(1 - alpha / 2, n - 1) + sps.t.ppf(power, n - 1))
    return factor * sd / math.sqrt(n)


# ------------------------------------------------------------------------------------------------ pairing


def paired_differences(method: Observations, reference: Observations, horizon: float | None = None) -> np.ndarray:
    """Method - reference over the seeds both have, in seed order.

    With a `horizon` (a time-to-event metric), each value is the restricted time min(T, horizon), a censored
    one the horizon. Without one the values are used as they are; two infinite values (never reached, in a
    table where no run recorded a finite value to restrict at) differ by 0.
    """
    common = sorted(set(method.seeds) & set(reference.seeds))
    if not common:
        return np.zeros(0)
    mi = {s: i for i, s in enumerate(method.seeds)}
    ri = {s: i for i, s in enumerate(reference.seeds)}

    def restricted(obs: Observations, index: dict[int, int]) -> np.ndarray:
        vals = np.array([obs.values[index[s]] for s in common], dtype=float)
        if horizon is None:
            return vals
        cens = np.array([obs.censored[index[s]] for s in common], dtype=bool)
        return np.where(cens, horizon, np.minimum(vals, horizon))

    with np.errstate(invalid="ignore"):
        d = restricted(method, mi) - restricted(reference, ri)
    return np.where(np.isnan(d), 0.0, d)


def compare(
    direction: Direction,
    method: Observations,
    reference: Observations,
    *,
    horizon: float | None = None,
    seed: int = 0,
    confidence: float = CONFIDENCE,
) -> Comparison:
    """One comparison, before the table's Holm adjustment (``p_adjusted`` is the raw p; :func:`adjust` sets
    it and the verdict for a whole table)."""
    d = paired_differences(method, reference, horizon)
    n = int(d.size)
    finite = bool(np.isfinite(d).all())
    p = sign_flip_pvalue(d, seed=seed) if n and finite else None
    ci = t_interval(d, confidence) if finite else None
    sd = float(d.std(ddof=1)) if n >= 2 and finite else math.nan
    comparison = Comparison(
        verdict="underpowered",
        n_paired=n,
        p_value=p,
        p_adjusted=p,
        diff_mean=float(d.mean()) if n and finite else None,
        diff_low=None if ci is None else ci[0],
        diff_high=None if ci is None else ci[1],
        diff_sd=sd if math.isfinite(sd) else None,
        mde=mde(sd, n),
    )
    return _with_verdict(comparison, direction)


def smallest_p(n: int) -> float:
    """The smallest two-sided p the sign-flip test can give with `n` pairs (all differences of one sign)."""
    if n <= 0:
        return 1.0
    return 2.0 / 2**n if n <= EXACT_MAX_SEEDS else 1.0 / (1 + MONTE_CARLO_FLIPS)


def seeds_for_verdict(comparisons: int, alpha: float = ALPHA) -> int:
    """The fewest paired seeds at which a table of `comparisons` Holm-adjusted tests can give a verdict:
    Holm's first step needs p < alpha / m, and the smallest attainable p is :func:`smallest_p`."""
    m = max(1, comparisons)
    n = MIN_PAIRED_SEEDS
    while m * smallest_p(n) >= alpha:
        n += 1
    return n


def _with_verdict(
    c: Comparison, direction: Direction, alpha: float = ALPHA, needed: int = MIN_PAIRED_SEEDS
) -> Comparison:
    if c.n_paired < MIN_PAIRED_SEEDS or c.p_adjusted is None or c.diff_mean is None:
        verdict: Verdict = "underpowered"
    elif c.p_adjusted < alpha and c.diff_mean != 0:
        lower = c.diff_mean < 0
        verdict = "better" if lower == (direction == "min") else "worse"
    elif c.n_paired < needed:
        verdict = "underpowered"  # no outcome at this many seeds could pass the table's Holm threshold
    else:
        verdict = "tie"
    return replace(c, verdict=verdict)


def adjust(comparisons: Sequence[Comparison], direction: Direction, alpha: float = ALPHA) -> list[Comparison]:
    """The comparisons of one table with Holm-adjusted p-values and the verdicts they give."""
    adjusted = holm([c.p_value for c in comparisons])
    needed = seeds_for_verdict(sum(c.p_value is not None for c in comparisons), alpha)
    return [_with_verdict(replace(c, p_adjusted=p), direction, alpha, needed) for c, p in zip(comparisons, adjusted)]


def table_mde(comparisons: Sequence[Comparison]) -> tuple[float | None, int]:
    """The minimum detectable effect a table states, and the number of pairs it is stated at: :func:`mde` of
    the pooled paired spread (root mean of the comparisons' variances) at the fewest pairs any comparison
    has (the weakest comparison of the table bounds what the table can detect)."""
    if not comparisons:
        return None, 0
    n = min(c.n_paired for c in comparisons)
    sds = [c.diff_sd for c in comparisons if c.diff_sd is not None]
    if not sds:
        return None, n
    return mde(math.sqrt(sum(sd * sd for sd in sds) / len(sds)), n), n
