"""Run records aggregated into typed leaderboard rows: one :class:`Row` per (task, tier, method label).

This is where records meet statistics. Two rules shape it:

* **Which runs count.** Only the newest task version and method version of a group enter a table (results of
  different versions are not comparable, AlgoPerf's rule), one record per seed (a retried seed keeps its
  latest record). ``seeds`` counts every run of the group whatever its status; statistics of a metric use
  the ``ok`` runs that report it; the success rate is the fraction of *all* runs that finished ``ok`` and
  (when the primary column has an event) reached it. A diverged, failed or timed-out run is therefore a
  failure to reach the target, never a silently dropped seed.
* **Censoring.** A column with ``event`` set (grokking's ``steps_to_target`` with event ``reached``) marks the
  value of a run whose event is false as censored at the budget; see :mod:`phenomena_bench.analysis.statistics`.

Bootstrap seeds are derived from each group's identity (:func:`bootstrap_seed`), so the same store always
gives the same rows, and groups do not share random draws.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Protocol

import numpy as np
from pydantic import BaseModel, ConfigDict

from phenomena_bench.analysis.statistics import (
    PROFILE_TAU_MAX,
    Comparison,
    Direction,
    Observations,
    Summary,
    central,
    compare,
    iqm,
    performance_profile,
    profile_score,
    stratified_bootstrap_iqm,
    summarise,
)
from phenomena_bench.core.family import STATUSES, Column, Status
from phenomena_bench.core.seeds import group_seed
from phenomena_bench.store import RunRecord

#: Metric names (besides wall time) that measure what a run spent, shown as cost: matched on the part before
#: any "@" (hessian reports `hvps_used@300` per budget), by suffix, or by a `cost_` prefix.
COST_METRIC_SUFFIXES = ("flops", "hvps", "hvps_used", "steps_run", "epochs_run", "search_steps")
COST_METRIC_NAMES = frozenset({"steps", "hvps", "flops", "epochs"})


class FamilyLike(Protocol):
    """What aggregation needs to know about a family (a :class:`~phenomena_bench.core.family.Family` fits)."""

    @property
    def primary_metric(self) -> str: ...

    @property
    def direction(self) -> Direction: ...

    @property
    def reference_method(self) -> str: ...

    def columns(self) -> list[Column]: ...


Families = Mapping[str, FamilyLike] | Callable[[str], FamilyLike] | None


class Cost(BaseModel):
    """What a group of runs spent: the median of each cost metric over the runs reporting it, and the median
    wall time over every run."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    metrics: dict[str, float | None]
    wall_time_s: float | None


class Row(BaseModel):
    """One (task, tier, method label) of a results table: identity, per-column statistics, rank, comparison.

    `cells` maps each column's metric to its :class:`~phenomena_bench.analysis.statistics.Summary`. `primary`
    is the central value of the primary column (what ranks the row); `rank` is shared by ties and ``None``
    for a row without a primary value. `vs_reference` is ``None`` for the reference itself and when too few
    seeds allow a verdict.
    """

    model_config = ConfigDict(extra="forbid")

    task_id: str
    task_version: int
    tier: str
    family: str
    method: str
    method_name: str
    method_ref: str
    version: str
    hyperparameters: dict[str, Any]
    source: str | None
    benchmark_version: str
    date: str
    seeds: int
    seed_list: list[int]
    status_counts: dict[Status, int]
    primary_metric: str
    direction: Direction
    reference_method: str
    columns: list[Column]
    cells: dict[str, Summary]
    censored: int
    successes: int
    success_rate: float | None
    cost: Cost
    primary: float | None
    primary_censored: bool
    rank: int | None = None
    is_reference: bool = False
    vs_reference: Comparison | None = None

    @property
    def primary_column(self) -> Column:
        """The column of the primary metric (the first column if the family lists none for it)."""
        return next((c for c in self.columns if c.metric == self.primary_metric), self.columns[0])

    def count(self, status: Status) -> int:
        return self.status_counts.get(status, 0)


class FamilySummary(BaseModel):
    """One (family, tier, method) across tasks: IQM of reference-normalised scores with a stratified-bootstrap
    interval, and the Dolan–Moré performance profile with its AlgoPerf score."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    family: str
    tier: str
    method: str
    tasks: int
    tasks_total: int
    iqm: float | None
    iqm_interval: tuple[float, float] | None
    profile_taus: list[float]
    profile: list[float]
    profile_score: float


# ------------------------------------------------------------------------------------------------ helpers


def bootstrap_seed(*parts: str) -> int:
    """The bootstrap seed of a group (see :func:`phenomena_bench.core.seeds.group_seed`)."""
    return group_seed(*parts)


def is_cost_metric(name: str) -> bool:
    base = name.split("@", 1)[0]
    return base in COST_METRIC_NAMES or base.endswith(COST_METRIC_SUFFIXES) or base.startswith("cost_")


def _numeric(value: Any) -> float | None:
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return None
    f = float(value)
    return f if math.isfinite(f) else None


def select_latest(records: Sequence[RunRecord]) -> list[RunRecord]:
    """Records of one group that belong in its table: latest task version, latest method version, one record
    per seed (the latest), in seed order."""
    task_version = max(r.task_version for r in records)
    recs = [r for r in records if r.task_version == task_version]
    latest = max(recs, key=lambda r: (r.finished_at, r.key))
    recs = [r for r in recs if r.method.version == latest.method.version]
    by_seed: dict[int, RunRecord] = {}
    for r in sorted(recs, key=lambda r: (r.finished_at, r.key)):
        by_seed[r.seed] = r
    return [by_seed[s] for s in sorted(by_seed)]


def observations(recs: Sequence[RunRecord], col: Column) -> Observations:
    """The column's values over the ok runs that report its metric (a rate column's as 0/1)."""
    seeds: list[int] = []
    vals: list[float] = []
    cens: list[bool] = []
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
        cens.append(col.event is not None and not bool(r.metrics.get(col.event)))
    return Observations(tuple(seeds), tuple(vals), tuple(cens))


def primary_column(family: FamilyLike) -> Column:
    cols = family.columns()
    return next((c for c in cols if c.metric == family.primary_metric), cols[0])


def _cost(recs: Sequence[RunRecord]) -> Cost:
    names = sorted({k for r in recs for k in r.metrics if is_cost_metric(k)})
    metrics: dict[str, float | None] = {}
    for name in names:
        vals = [v for r in recs if (v := _numeric(r.metrics.get(name))) is not None]
        metrics[name] = float(np.median(vals)) if vals else None
    wall = float(np.median([r.wall_time_s for r in recs])) if recs else None
    return Cost(metrics=metrics, wall_time_s=wall)


def _family_lookup(families: Families) -> Callable[[str], FamilyLike]:
    if families is None:
        from phenomena_bench.registry import get_family

        def registered(name: str) -> FamilyLike:
            return get_family(name)

        return registered
    if callable(families) and not isinstance(families, Mapping):
        return families
    table = families
    return lambda name: table[name]


def _groups(records: Iterable[RunRecord]) -> dict[tuple[str, str, str], list[RunRecord]]:
    groups: dict[tuple[str, str, str], list[RunRecord]] = defaultdict(list)
    for r in records:
        groups[(r.task_id, r.tier, r.method.label)].append(r)
    return groups


# ------------------------------------------------------------------------------------------------ rows


def aggregate(records: Iterable[RunRecord], families: Families = None) -> list[Row]:
    """One row per (task, tier, method label), ranked within (task, tier), compared to the reference.

    `families` maps a family name to its family object (default: :func:`phenomena_bench.registry.get_family`);
    tests pass hand-made families.
    """
    lookup = _family_lookup(families)
    rows: list[Row] = []
    selected: dict[tuple[str, str, str], list[RunRecord]] = {}
    for (task_id, tier, label), recs in sorted(_groups(records).items()):
        recs = select_latest(recs)
        selected[(task_id, tier, label)] = recs
        rows.append(_row(task_id, tier, label, recs, lookup(recs[0].family)))
    _rank_and_compare(rows, selected, lookup)
    return rows


def _row(task_id: str, tier: str, label: str, recs: list[RunRecord], family: FamilyLike) -> Row:
    latest = max(recs, key=lambda r: (r.finished_at, r.key))
    cols = family.columns()
    prim = primary_column(family)
    cells: dict[str, Summary] = {}
    prim_summary: Summary | None = None
    for col in cols:
        obs = observations(recs, col)
        summary = summarise(col.kind, obs.values, obs.censored, bootstrap_seed(task_id, tier, label, col.metric))
        cells[col.metric] = summary
        if col.metric == prim.metric and prim_summary is None:
            prim_summary = summary
    ok = [r for r in recs if r.status == "ok"]
    if prim.event:
        reached = sum(bool(r.metrics.get(prim.event)) for r in ok)
    else:
        reached = sum(_numeric(r.metrics.get(prim.metric)) is not None or prim.kind == "rate" for r in ok)
    return Row(
        task_id=task_id,
        task_version=latest.task_version,
        tier=tier,
        family=latest.family,
        method=label,
        method_name=latest.method.name,
        method_ref=latest.method.ref,
        version=latest.method.version,
        hyperparameters=latest.method.hyperparameters,
        source=latest.method.source,
        benchmark_version=latest.benchmark_version,
        date=latest.finished_at,
        seeds=len(recs),
        seed_list=[r.seed for r in recs],
        status_counts={s: sum(r.status == s for r in recs) for s in STATUSES},
        primary_metric=prim.metric,
        direction=family.direction,
        reference_method=family.reference_method,
        columns=list(cols),
        cells=cells,
        censored=prim_summary.censored if prim_summary else 0,
        successes=reached,
        success_rate=reached / len(recs) if recs else None,
        cost=_cost(recs),
        primary=central(prim.kind, prim_summary) if prim_summary else None,
        primary_censored=bool(prim_summary and prim_summary.median_censored) if prim.kind == "median_iqr" else False,
    )


def _rank_key(row: Row) -> tuple[bool, float, float]:
    """Smaller is better: uncensored before censored, then the primary value in its direction, then success."""
    assert row.primary is not None
    sign = 1.0 if row.direction == "min" else -1.0
    return (row.primary_censored, sign * row.primary, -(row.success_rate or 0.0))


def _rank_and_compare(
    rows: list[Row], selected: Mapping[tuple[str, str, str], list[RunRecord]], lookup: Callable[[str], FamilyLike]
) -> None:
    by_table: dict[tuple[str, str], list[Row]] = defaultdict(list)
    for row in rows:
        by_table[(row.task_id, row.tier)].append(row)
    for (task_id, tier), table in by_table.items():
        ranked = sorted((r for r in table if r.primary is not None), key=_rank_key)
        prev_key: tuple[bool, float, float] | None = None
        for i, r in enumerate(ranked, start=1):
            key = _rank_key(r)
            r.rank = ranked[i - 2].rank if prev_key == key else i
            prev_key = key
        family = lookup(table[0].family)
        prim = primary_column(family)
        ref = _reference_row(table, family.reference_method)
        if ref is None:
            continue
        ref.is_reference = True
        ref_obs = observations(selected[(task_id, tier, ref.method)], prim)
        for r in table:
            if r is ref:
                continue
            r.vs_reference = compare(
                prim.kind,
                family.direction,
                observations(selected[(task_id, tier, r.method)], prim),
                ref_obs,
                seed=bootstrap_seed(task_id, tier, r.method, "vs", ref.method),
            )


def _reference_row(table: list[Row], reference: str) -> Row | None:
    """The reference baseline with default hyperparameters (label = name), else any run of it."""
    return next((r for r in table if r.method == reference), None) or next(
        (r for r in table if r.method_name == reference), None
    )


def by_table(rows: Iterable[Row]) -> dict[tuple[str, str], list[Row]]:
    """Rows grouped by (task, tier), each group sorted by rank (unranked last), in task order."""
    grouped: dict[tuple[str, str], list[Row]] = defaultdict(list)
    for r in rows:
        grouped[(r.task_id, r.tier)].append(r)
    return {k: sorted(v, key=lambda r: (r.rank is None, r.rank or 0, r.method)) for k, v in sorted(grouped.items())}


# ------------------------------------------------------------------------------------------- across tasks


def family_summary(
    rows: Sequence[Row],
    records: Iterable[RunRecord],
    families: Families = None,
    taus: Sequence[float] | None = None,
) -> list[FamilySummary]:
    """Per (family, tier, method): IQM of reference-normalised scores and the performance profile.

    A run's normalised score on a task is value / reference median for "max" metrics and reference median /
    value for "min" metrics, so 1 means "as good as the reference" and higher is better everywhere; a run
    censored at the budget (or that did not finish) scores 0 on a "min" metric — it is no finite multiple of
    the reference. Tasks without a reference median are skipped for the IQM.
    """
    lookup = _family_lookup(families)
    taus = list(taus) if taus is not None else [float(t) for t in np.linspace(1.0, PROFILE_TAU_MAX, 31)]
    recs_by_group = _groups(records)
    by_family: dict[tuple[str, str], list[Row]] = defaultdict(list)
    for row in rows:
        by_family[(row.family, row.tier)].append(row)
    out: list[FamilySummary] = []
    for (fam_name, tier), fam_rows in sorted(by_family.items()):
        family = lookup(fam_name)
        prim = primary_column(family)
        tasks = sorted({r.task_id for r in fam_rows})
        methods = sorted({r.method for r in fam_rows})
        values: dict[str, dict[str, float | None]] = {m: {} for m in methods}
        ref_median: dict[str, float] = {}
        for r in fam_rows:
            v = r.primary
            values[r.method][r.task_id] = None if (v is None or r.primary_censored) else v
            if r.is_reference and v is not None and not r.primary_censored and v != 0:
                ref_median[r.task_id] = v
        profile = performance_profile(values, family.direction, taus)
        for m in methods:
            scores: dict[str, list[float]] = {}
            for t in tasks:
                if t not in ref_median or (t, tier, m) not in recs_by_group:
                    continue
                recs = select_latest(recs_by_group[(t, tier, m)])
                scores[t] = _normalised_scores(recs, prim, family.direction, ref_median[t])
            pooled = [s for v in scores.values() for s in v]
            out.append(
                FamilySummary(
                    family=fam_name,
                    tier=tier,
                    method=m,
                    tasks=sum(1 for t in tasks if t in values[m]),
                    tasks_total=len(tasks),
                    iqm=iqm(pooled) if pooled else None,
                    iqm_interval=stratified_bootstrap_iqm(scores, seed=bootstrap_seed(fam_name, tier, m, "iqm")),
                    profile_taus=taus,
                    profile=profile[m],
                    profile_score=profile_score(profile[m], taus),
                )
            )
    return out


def _normalised_scores(recs: Sequence[RunRecord], col: Column, direction: Direction, ref: float) -> list[float]:
    scores = []
    for r in recs:
        v = _numeric(r.metrics.get(col.metric)) if r.status == "ok" else None
        censored = col.event is not None and not bool(r.metrics.get(col.event))
        if direction == "min":
            scores.append(0.0 if v is None or censored or v <= 0 else ref / v)
        else:
            scores.append(0.0 if v is None else v / ref)
    return scores
