"""Aggregation of run records into leaderboard rows: medians, bootstrap intervals, ranks, IQM, profiles.

Everything here is a pure function of the records (and of a fixed bootstrap seed), so the same store always
gives the same tables and the same site, byte for byte.

Two rules shape the code:

* **Censoring.** A time-to-event metric (a :class:`~phenomena_bench.core.family.Column` with ``event`` set, e.g.
  grokking's ``steps_to_target`` with event ``reached``) of a run whose event is false is only a lower bound:
  the run stopped at the budget without reaching the target. Such a value is never averaged as if it were
  finished. A median (or quartile) is monotone in every input, so computing it once with censored values at
  their recorded value (a lower bound) and once with them at +inf (an upper bound) brackets the truth; when
  both agree the statistic is exact, otherwise it is reported as ``>= lower bound`` (``*_censored: true``).
  The mean of a column with any censored run is ``None``.
* **Which runs count.** ``seeds`` counts every run of the group whatever its status; statistics of a metric
  use the ``ok`` runs that report it; the success rate is the fraction of *all* runs that finished ``ok`` and
  (when the primary column has an event) reached it. A diverged, failed or timed-out run is therefore a
  failure to reach the target, never a silently dropped seed.
"""

from __future__ import annotations

import hashlib
import math
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict
from typing import Any, Literal, Protocol

import numpy as np
from phenomena_bench.core.family import STATUSES, Column
from phenomena_bench.store import RunRecord
from scipy import stats as sps
from tabulate import tabulate

BOOTSTRAP_SAMPLES = 2000
CONFIDENCE = 0.95
#: Metric names (besides wall time) that measure what a run spent, shown as cost: matched on the part before
#: any "@" (hessian reports `hvps_used@300` per budget), by suffix, or by a `cost_` prefix.
COST_METRIC_SUFFIXES = ("flops", "hvps", "hvps_used", "steps_run", "epochs_run", "search_steps")
COST_METRIC_NAMES = frozenset({"steps", "hvps", "flops", "epochs"})
#: Fewest seeds (shared seeds when paired) for a verdict against the reference: a bootstrap over two values has
#: three distinct resamples, so "beyond the interval" would only mean "both seeds agree".
MIN_SEEDS_FOR_VERDICT = 3
#: AlgoPerf integrates the performance profile up to this ratio to the best; slower gets no credit.
PROFILE_TAU_MAX = 4.0

Verdict = Literal["better", "worse", "tie"]


class FamilyLike(Protocol):
    """What aggregation needs to know about a family (a :class:`~phenomena_bench.core.family.Family` fits)."""

    primary_metric: str
    direction: Literal["min", "max"]
    reference_method: str

    def columns(self) -> list[Column]: ...


# ------------------------------------------------------------------------------------------ basic statistics


def _seed_for(*parts: str) -> int:
    """A bootstrap seed derived from the group's identity: reproducible, yet independent between groups."""
    digest = hashlib.sha256("\x1f".join(parts).encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "little")


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
    direction: Literal["min", "max"],
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
        finite = {m: float(v[task]) for m, v in values.items()
                  if v.get(task) is not None and math.isfinite(float(v[task]))}
        if not finite:
            continue
        counted += 1
        best = min(finite.values()) if direction == "min" else max(finite.values())
        for m in values:
            v = finite.get(m)
            if v is None:
                ratios[m].append(math.inf)
            elif direction == "min":
                ratios[m].append(1.0 if v == best else (v / best if best > 0 else math.inf))
            else:
                ratios[m].append(1.0 if v == best else (best / v if v > 0 else math.inf))
    if counted == 0:
        return {m: [0.0 for _ in taus] for m in values}
    return {m: [sum(r <= tau for r in rs) / counted for tau in taus] for m, rs in ratios.items()}


def profile_score(profile: Sequence[float], taus: Sequence[float]) -> float:
    """AlgoPerf's benchmark score: the profile's area from tau=1 to the last tau, normalised to [0, 1]."""
    if len(taus) < 2:
        raise ValueError("need at least two taus")
    area = float(np.trapezoid(profile, taus)) if hasattr(np, "trapezoid") else float(np.trapz(profile, taus))
    return area / (taus[-1] - taus[0])


# ----------------------------------------------------------------------------------------------- the rows


def _numeric(value: Any) -> float | None:
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return None
    f = float(value)
    return f if math.isfinite(f) else None


def _select(records: list[RunRecord]) -> list[RunRecord]:
    """Records that belong in one table: latest task version, latest method version, one record per seed.

    Results of different task or method versions are not comparable, so only the newest of each enters the
    statistics (AlgoPerf's versioning rule); a seed run twice (a retried failure) keeps its latest record.
    """
    task_version = max(r.task_version for r in records)
    recs = [r for r in records if r.task_version == task_version]
    latest = max(recs, key=lambda r: (r.finished_at, r.key))
    recs = [r for r in recs if r.method.version == latest.method.version]
    by_seed: dict[int, RunRecord] = {}
    for r in sorted(recs, key=lambda r: (r.finished_at, r.key)):
        by_seed[r.seed] = r
    return [by_seed[s] for s in sorted(by_seed)]


def _observations(recs: list[RunRecord], col: Column) -> tuple[list[int], list[float], list[bool]]:
    """(seeds, values, censored flags) of the ok runs that report the column's metric."""
    seeds, vals, cens = [], [], []
    for r in recs:
        if r.status != "ok":
            continue
        if col.kind == "rate":
            raw = r.metrics.get(col.metric)
            if raw is None:
                continue
            v: float | None = float(bool(raw))
        else:
            v = _numeric(r.metrics.get(col.metric))
        if v is None:
            continue
        seeds.append(r.seed)
        vals.append(v)
        cens.append(bool(col.event) and not bool(r.metrics.get(col.event)))
    return seeds, vals, cens


def column_stats(col: Column, values: Sequence[float], censored: Sequence[bool], seed: int) -> dict[str, Any]:
    """The statistics of one column over one group's observations (keys without the metric prefix)."""
    n = len(values)
    out: dict[str, Any] = {"n": n, "censored": int(sum(censored))}
    if n == 0:
        out.update(median=None, median_censored=False, iqr=None, iqr_censored=None, mean=None, ci=None)
        if col.kind == "rate":
            out["rate"] = None
        return out
    med_lo, med_hi = quantile_bounds(values, censored, 0.5)
    q1_lo, q1_hi = quantile_bounds(values, censored, 0.25)
    q3_lo, q3_hi = quantile_bounds(values, censored, 0.75)
    out["median"] = med_lo
    out["median_censored"] = med_lo != med_hi
    out["iqr"] = [q1_lo, q3_lo]
    out["iqr_censored"] = [q1_lo != q1_hi, q3_lo != q3_hi]
    any_censored = any(censored)
    out["mean"] = None if any_censored else float(np.mean(values))
    if col.kind == "rate":
        out["rate"] = float(np.mean(values))
        out["ci"] = _as_list(bootstrap_interval(values, "mean", seed=seed))
    elif col.kind == "median_iqr":
        out["ci"] = _as_list(bootstrap_interval(values, "median", censored=censored, seed=seed))
    elif any_censored:
        out["ci"] = None
    else:
        out["ci"] = _as_list(bootstrap_interval(values, "mean", seed=seed))
    return out


def _as_list(interval: tuple[float, float | None] | None) -> list[float | None] | None:
    return None if interval is None else [interval[0], interval[1]]


def central(col: Column, st: Mapping[str, Any]) -> float | None:
    """The number that ranks a column: median, mean or rate according to its kind."""
    if col.kind == "median_iqr":
        return st["median"]
    if col.kind == "rate":
        return st.get("rate")
    return st["mean"]


def primary_column(family: FamilyLike) -> Column:
    cols = family.columns()
    for c in cols:
        if c.metric == family.primary_metric:
            return c
    return cols[0]


def is_cost_metric(name: str) -> bool:
    base = name.split("@", 1)[0]
    return base in COST_METRIC_NAMES or base.endswith(COST_METRIC_SUFFIXES) or base.startswith("cost_")


def _cost(recs: list[RunRecord]) -> dict[str, float | None]:
    """Median of each cost metric over the runs that report it, plus the median wall time of every run."""
    names = sorted({k for r in recs for k in r.metrics if is_cost_metric(k)})
    cost: dict[str, float | None] = {}
    for name in names:
        vals = [v for r in recs if (v := _numeric(r.metrics.get(name))) is not None]
        cost[name] = float(np.median(vals)) if vals else None
    cost["wall_time_s"] = float(np.median([r.wall_time_s for r in recs])) if recs else None
    return cost


def aggregate(
    records: Iterable[RunRecord],
    families: Mapping[str, FamilyLike] | Callable[[str], FamilyLike] | None = None,
) -> list[dict[str, Any]]:
    """One JSON-safe row per (task, tier, method label), ranked within (task, tier), compared to the reference.

    `families` maps a family name to its family object (default: :func:`phenomena_bench.registry.get_family`); tests
    pass hand-made families.
    """
    lookup = _family_lookup(families)
    groups: dict[tuple[str, str, str], list[RunRecord]] = defaultdict(list)
    for r in records:
        groups[(r.task_id, r.tier, r.method.label)].append(r)
    rows: list[dict[str, Any]] = []
    selected: dict[tuple[str, str, str], list[RunRecord]] = {}
    for (task_id, tier, label), recs in sorted(groups.items()):
        recs = _select(recs)
        selected[(task_id, tier, label)] = recs
        rows.append(_row(task_id, tier, label, recs, lookup(recs[0].family)))
    _rank_and_compare(rows, selected, lookup)
    return rows


def _family_lookup(families: Mapping[str, FamilyLike] | Callable[[str], FamilyLike] | None) -> Callable[[str], Any]:
    if families is None:
        from phenomena_bench.registry import get_family

        return get_family
    if callable(families) and not isinstance(families, Mapping):
        return families
    return lambda name: families[name]


def _row(task_id: str, tier: str, label: str, recs: list[RunRecord], family: FamilyLike) -> dict[str, Any]:
    latest = max(recs, key=lambda r: (r.finished_at, r.key))
    counts = {s: sum(r.status == s for r in recs) for s in STATUSES}
    cols = family.columns()
    prim = primary_column(family)
    row: dict[str, Any] = {
        "task_id": task_id,
        "task_version": latest.task_version,
        "tier": tier,
        "family": latest.family,
        "method": label,
        "method_name": latest.method.name,
        "method_ref": latest.method.ref,
        "version": latest.method.version,
        "hyperparameters": latest.method.hyperparameters,
        "source": latest.method.source,
        "benchmark_version": latest.benchmark_version,
        "date": latest.finished_at,
        "seeds": len(recs),
        "seed_list": [r.seed for r in recs],
        **counts,
        "primary_metric": prim.metric,
        "direction": family.direction,
        "reference_method": family.reference_method,
        "columns": [asdict(c) for c in cols],
    }
    censored_total = 0
    prim_st: dict[str, Any] = {}
    for col in cols:
        seeds, vals, cens = _observations(recs, col)
        st = column_stats(col, vals, cens, _seed_for(task_id, tier, label, col.metric))
        for k, v in st.items():
            row[f"{col.metric}.{k}"] = v
        if col.metric == prim.metric and not prim_st:
            censored_total = st["censored"]
            prim_st = st
    row["censored"] = censored_total
    ok = [r for r in recs if r.status == "ok"]
    if prim.event:
        reached = sum(bool(r.metrics.get(prim.event)) for r in ok)
    else:
        reached = sum(_numeric(r.metrics.get(prim.metric)) is not None or prim.kind == "rate" for r in ok)
    row["successes"] = reached
    row["success_rate"] = reached / len(recs) if recs else None
    row["cost"] = _cost(recs)
    row["primary"] = central(prim, prim_st) if prim_st else None
    row["primary_censored"] = bool(prim_st.get("median_censored")) if prim.kind == "median_iqr" else False
    return row


def _rank_key(row: dict[str, Any]) -> tuple[Any, ...]:
    """Smaller is better: uncensored before censored, then the primary value in its direction, then success."""
    value = row["primary"]
    sign = 1.0 if row["direction"] == "min" else -1.0
    return (row["primary_censored"], sign * value, -(row["success_rate"] or 0.0))


def _rank_and_compare(
    rows: list[dict[str, Any]], selected: Mapping[tuple[str, str, str], list[RunRecord]], lookup: Callable[[str], Any]
) -> None:
    by_table: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        by_table[(row["task_id"], row["tier"])].append(row)
    for (task_id, tier), table in by_table.items():
        ranked = sorted((r for r in table if r["primary"] is not None), key=_rank_key)
        for r in table:
            r["rank"] = None
        prev_key: tuple[Any, ...] | None = None
        for i, r in enumerate(ranked, start=1):
            key = _rank_key(r)
            r["rank"] = ranked[i - 2]["rank"] if prev_key == key else i
            prev_key = key
        family = lookup(table[0]["family"])
        prim = primary_column(family)
        ref = _reference_row(table, family.reference_method)
        for r in table:
            r["is_reference"] = r is ref
            r["vs_reference"] = None
            r["vs_reference_paired"] = None
            r["vs_reference_diff_ci"] = None
            if ref is None or r is ref:
                continue
            cmp = compare(
                prim,
                family.direction,
                selected[(task_id, tier, r["method"])],
                selected[(task_id, tier, ref["method"])],
                seed=_seed_for(task_id, tier, r["method"], "vs", ref["method"]),
            )
            if cmp is not None:
                r["vs_reference"], r["vs_reference_paired"], r["vs_reference_diff_ci"] = cmp


def _reference_row(table: list[dict[str, Any]], reference: str) -> dict[str, Any] | None:
    """The reference baseline with default hyperparameters (label = name), else any run of it."""
    for r in table:
        if r["method"] == reference:
            return r
    for r in table:
        if r["method_name"] == reference:
            return r
    return None


def compare(
    col: Column,
    direction: Literal["min", "max"],
    method_recs: list[RunRecord],
    reference_recs: list[RunRecord],
    *,
    seed: int = 0,
    samples: int = BOOTSTRAP_SAMPLES,
    confidence: float = CONFIDENCE,
) -> tuple[Verdict, bool, list[float | None]] | None:
    """Does the method differ from the reference beyond the bootstrap interval of the difference?

    Paired by seed when at least :data:`MIN_SEEDS_FOR_VERDICT` seeds are shared (the protocol fixes the split
    per seed, so seed s of both methods saw the same data): the same resampled seeds are used for both.
    Otherwise the two groups are resampled independently. The statistic is the column's central one (median,
    mean or rate); with censored values the difference is bracketed by (lower bound of method - upper bound of
    reference, upper - lower).
    Returns (verdict, paired, [lo, hi] of method - reference, None for unbounded), or None when either side
    has fewer than :data:`MIN_SEEDS_FOR_VERDICT` observations.
    """
    m_seeds, m_vals, m_cens = _observations(method_recs, col)
    r_seeds, r_vals, r_cens = _observations(reference_recs, col)
    common = sorted(set(m_seeds) & set(r_seeds))
    rng = np.random.default_rng(seed)
    if len(common) >= MIN_SEEDS_FOR_VERDICT:
        mi = {s: i for i, s in enumerate(m_seeds)}
        ri = {s: i for i, s in enumerate(r_seeds)}
        m_v = np.array([m_vals[mi[s]] for s in common])
        m_c = np.array([m_cens[mi[s]] for s in common])
        r_v = np.array([r_vals[ri[s]] for s in common])
        r_c = np.array([r_cens[ri[s]] for s in common])
        idx = rng.integers(0, len(common), size=(samples, len(common)))
        m_idx, r_idx, paired = idx, idx, True
    elif len(m_vals) >= MIN_SEEDS_FOR_VERDICT and len(r_vals) >= MIN_SEEDS_FOR_VERDICT:
        m_v, m_c, r_v, r_c = (np.array(m_vals), np.array(m_cens), np.array(r_vals), np.array(r_cens))
        m_idx = rng.integers(0, len(m_v), size=(samples, len(m_v)))
        r_idx = rng.integers(0, len(r_v), size=(samples, len(r_v)))
        paired = False
    else:
        return None
    m_lo, m_hi = _stat_bounds(col, m_v[m_idx], m_c[m_idx])
    r_lo, r_hi = _stat_bounds(col, r_v[r_idx], r_c[r_idx])
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
    return verdict, paired, [None if math.isinf(lo) else lo, None if math.isinf(hi) else hi]


def _stat_bounds(col: Column, vals: np.ndarray, cens: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per bootstrap sample, lower and upper bound of the column's central statistic."""
    high = np.where(cens, np.inf, vals)
    if col.kind == "median_iqr":
        return _batched_quantile(vals, 0.5), _batched_quantile(high, 0.5)
    return vals.mean(axis=1), high.mean(axis=1)


# ------------------------------------------------------------------------------------------- across tasks


def family_summary(rows: Sequence[Mapping[str, Any]], records: Iterable[RunRecord],
                   families: Mapping[str, FamilyLike] | Callable[[str], FamilyLike] | None = None,
                   taus: Sequence[float] | None = None) -> list[dict[str, Any]]:
    """Per (family, tier, method): IQM of reference-normalised scores with a stratified interval, and the
    Dolan–Moré performance profile with its AlgoPerf score.

    A run's normalised score on a task is value / reference median for "max" metrics and reference median /
    value for "min" metrics, so 1 means "as good as the reference" and higher is better everywhere; a run
    censored at the budget (or that did not finish) scores 0 on a "min" metric — it is no finite multiple of
    the reference. Tasks without a reference median are skipped for the IQM.
    """
    lookup = _family_lookup(families)
    taus = list(taus) if taus is not None else [float(t) for t in np.linspace(1.0, PROFILE_TAU_MAX, 31)]
    recs_by_group: dict[tuple[str, str, str], list[RunRecord]] = defaultdict(list)
    for r in records:
        recs_by_group[(r.task_id, r.tier, r.method.label)].append(r)
    by_family: dict[tuple[str, str], list[Mapping[str, Any]]] = defaultdict(list)
    for row in rows:
        by_family[(row["family"], row["tier"])].append(row)
    out: list[dict[str, Any]] = []
    for (fam_name, tier), fam_rows in sorted(by_family.items()):
        family = lookup(fam_name)
        prim = primary_column(family)
        tasks = sorted({r["task_id"] for r in fam_rows})
        methods = sorted({r["method"] for r in fam_rows})
        values: dict[str, dict[str, float | None]] = {m: {} for m in methods}
        ref_median: dict[str, float] = {}
        for r in fam_rows:
            v = r["primary"]
            values[r["method"]][r["task_id"]] = None if (v is None or r["primary_censored"]) else v
            if r.get("is_reference") and v is not None and not r["primary_censored"] and v != 0:
                ref_median[r["task_id"]] = v
        profile = performance_profile(values, family.direction, taus)
        for m in methods:
            scores: dict[str, list[float]] = {}
            for t in tasks:
                if t not in ref_median or (t, tier, m) not in recs_by_group:
                    continue
                scores[t] = _normalised_scores(_select(recs_by_group[(t, tier, m)]), prim, family.direction,
                                               ref_median[t])
            pooled = [s for v in scores.values() for s in v]
            out.append({
                "family": fam_name,
                "tier": tier,
                "method": m,
                "tasks": sum(1 for t in tasks if t in values[m]),
                "tasks_total": len(tasks),
                "iqm": iqm(pooled) if pooled else None,
                "iqm_ci": _as_list(stratified_bootstrap_iqm(scores, seed=_seed_for(fam_name, tier, m, "iqm"))),
                "profile_taus": taus,
                "profile": profile[m],
                "profile_score": profile_score(profile[m], taus),
            })
    return out


def _normalised_scores(recs: list[RunRecord], col: Column, direction: str, ref: float) -> list[float]:
    scores = []
    for r in recs:
        v = _numeric(r.metrics.get(col.metric)) if r.status == "ok" else None
        censored = bool(col.event) and not bool(r.metrics.get(col.event))
        if direction == "min":
            scores.append(0.0 if v is None or censored or v <= 0 else ref / v)
        else:
            scores.append(0.0 if v is None else v / ref)
    return scores


# ------------------------------------------------------------------------------------------------ tables


def format_number(value: float | None, digits: int = 3) -> str:
    """Readable number: integers as integers, large values without exponent, small ones to `digits` figures."""
    if value is None:
        return "–"
    v = float(value)
    if math.isinf(v):
        return "∞" if v > 0 else "-∞"
    if v == int(v) and abs(v) >= 1:
        return str(int(v))
    if abs(v) >= 10 ** digits:
        return f"{v:.0f}"
    return f"{v:.{digits}g}"


def format_cell(row: Mapping[str, Any], col: Mapping[str, Any]) -> str:
    """The text of one column's cell: 'median [q1, q3]', 'mean [lo, hi]', 'k/n (p%)' or 'mean'."""
    m, d, kind = col["metric"], col.get("digits", 3), col["kind"]
    if row.get(f"{m}.n", 0) == 0:
        return "–"
    if kind == "median_iqr":
        ge = "≥" if row[f"{m}.median_censored"] else ""
        q1, q3 = row[f"{m}.iqr"]
        c1, c3 = row[f"{m}.iqr_censored"]
        return (f"{ge}{format_number(row[f'{m}.median'], d)} "
                f"[{'≥' if c1 else ''}{format_number(q1, d)}, {'≥' if c3 else ''}{format_number(q3, d)}]")
    if kind == "rate":
        n = row[f"{m}.n"]
        rate = row[f"{m}.rate"]
        return f"{round(rate * n)}/{n} ({rate:.0%})"
    mean = row[f"{m}.mean"]
    if mean is None:
        return "censored"
    ci = row.get(f"{m}.ci")
    if kind == "mean_ci" and ci:
        return f"{format_number(mean, d)} [{format_number(ci[0], d)}, {format_number(ci[1], d)}]"
    return format_number(mean, d)


def column_header(col: Mapping[str, Any]) -> str:
    suffix = {"median_iqr": " (median [IQR])", "mean_ci": " (mean [95% CI])", "rate": "", "mean": " (mean)"}
    return col["header"] + suffix[col["kind"]]


def format_cost(cost: Mapping[str, float | None]) -> str:
    parts = [f"{k}={format_number(v)}" for k, v in cost.items() if k != "wall_time_s" and v is not None]
    wall = cost.get("wall_time_s")
    if wall is not None:
        parts.append(f"{wall:.1f}s")
    return " ".join(parts)


def table_rows(rows: Sequence[Mapping[str, Any]]) -> dict[tuple[str, str], list[Mapping[str, Any]]]:
    """Rows grouped by (task, tier), each group sorted by rank (unranked last), in task order."""
    grouped: dict[tuple[str, str], list[Mapping[str, Any]]] = defaultdict(list)
    for r in rows:
        grouped[(r["task_id"], r["tier"])].append(r)
    return {k: sorted(v, key=lambda r: (r["rank"] is None, r["rank"] or 0, r["method"]))
            for k, v in sorted(grouped.items())}


def table_for(rows: Sequence[Mapping[str, Any]]) -> tuple[list[str], list[list[str]]]:
    """Headers and cell texts of one (task, tier) table, shared by the terminal, Markdown and the site."""
    cols = rows[0]["columns"]
    success = show_success_column(rows[0])
    headers = ["rank", "method", *[column_header(c) for c in cols], *(["success"] if success else []), "seeds",
               "not ok", "vs ref", "cost"]
    body = []
    for r in rows:
        not_ok = ", ".join(f"{s} {r[s]}" for s in STATUSES if s != "ok" and r.get(s))
        vs = "reference" if r.get("is_reference") else (r.get("vs_reference") or "–")
        body.append([
            "–" if r["rank"] is None else str(r["rank"]),
            r["method"],
            *[format_cell(r, c) for c in cols],
            *([f"{r['successes']}/{r['seeds']}"] if success else []),
            str(r["seeds"]),
            not_ok or "–",
            vs,
            format_cost(r["cost"]),
        ])
    return headers, body


def show_success_column(row: Mapping[str, Any]) -> bool:
    """False when the family already shows the rate of the primary column's event (it would repeat it)."""
    prim = next((c for c in row["columns"] if c["metric"] == row["primary_metric"]), row["columns"][0])
    return not (prim.get("event") and any(c["kind"] == "rate" and c["metric"] == prim["event"]
                                          for c in row["columns"]))


def table_heading(row: Mapping[str, Any]) -> str:
    best = "lower" if row["direction"] == "min" else "higher"
    return (f"{row['task_id']} (v{row['task_version']}, tier {row['tier']}, family {row['family']}): "
            f"ranked by {row['primary_metric']}, {best} is better; reference {row['reference_method']}")


def format_table(rows: Sequence[Mapping[str, Any]], fmt: str = "simple") -> str:
    """One tabulate table per (task, tier) with a heading line; `fmt` is any tabulate format ("github" for
    Markdown)."""
    if not rows:
        return "no results"
    parts = []
    markdown = fmt in {"github", "pipe"}
    for group in table_rows(rows).values():
        headers, body = table_for(group)
        if markdown:
            body = [[_md_escape(c) for c in line] for line in body]
        heading = table_heading(group[0])
        parts.append(("### " + _md_escape(heading) if markdown else heading) + "\n\n"
                     + tabulate(body, headers=headers, tablefmt=fmt, disable_numparse=True))
    return "\n\n".join(parts)


def _md_escape(text: str) -> str:
    """Neutralise Markdown/HTML in a cell: submission names may hold pipes, tags or link syntax."""
    out = text.replace("\\", "\\\\").replace("|", "\\|").replace("&", "&amp;").replace("<", "&lt;")
    out = out.replace(">", "&gt;")
    for ch in "`*_[]":
        out = out.replace(ch, "\\" + ch)
    return out.replace("\n", " ")
