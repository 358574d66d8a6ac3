"""Run records aggregated into typed leaderboard rows: one :class:`Row` per (task, tier, method label).

This is where records meet statistics. Three rules shape it:

* **Which runs count.** Only the newest task version and method version of a group enter a table (results of
  different versions are not comparable, AlgoPerf's rule), one record per seed (a retried seed keeps its
  latest record), and only scoring seeds (development seeds, :func:`~phenomena_bench.core.seeds.is_dev_seed`,
  are left out unless asked for).
* **Every seed counts.** A run that is not ``ok`` (failed, diverged, timed out, over budget) is an
  observation, not a gap (:func:`observations`): on a time-to-event column (``Column.event``) it has not
  reached the event (censored at the horizon); on a bounded column with ``Column.floor`` it scores the
  floor; only a column with neither is summarised over the runs that report it, and its cell says how many
  of how many. A method that diverges on two seeds of three therefore never ranks on its one survivor.
* **Censoring.** A column with ``event`` set marks the value of a run whose event is false as censored (a
  lower bound); see :mod:`phenomena_bench.analysis.statistics`. Time-to-event rows rank by the median with
  not-reached at +inf, then by the restricted mean time to the horizon (:func:`table_horizons`).

Each row is compared with the family's reference by an exact sign-flip test of seed-paired differences,
Holm-adjusted across the table (:mod:`phenomena_bench.analysis.comparison`); random draws are seeded from
each group's identity (:func:`~phenomena_bench.core.seeds.group_seed`), so the same store always gives the same rows.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Literal, Protocol

import numpy as np
from pydantic import BaseModel, ConfigDict

from phenomena_bench.analysis.comparison import Comparison, Verdict, adjust, compare, table_mde
from phenomena_bench.analysis.statistics import (
    PROFILE_TAU_MAX,
    Direction,
    ErrorKind,
    Observations,
    Summary,
    as_error,
    central,
    error_floor,
    iqm,
    normalised_score,
    performance_profile,
    profile_score,
    stratified_bootstrap_iqm,
    summarise,
)
from phenomena_bench.core.family import STATUSES, Column, Status
from phenomena_bench.core.seeds import group_seed, is_dev_seed
from phenomena_bench.store import RunRecord, TuningBudget

#: Metric names (besides wall time) that measure what a run spent, shown as cost: matched on the part before
#: any "@" (hessian reports `hvps_used@300` per budget), by suffix, or by a `cost_` prefix.
COST_METRIC_SUFFIXES = ("flops", "hvps", "hvps_used", "steps_run", "epochs_run", "search_steps")
COST_METRIC_NAMES = frozenset({"steps", "hvps", "flops", "epochs"})
#: What a non-ok seed counts as on a column (see :func:`seed_rule`).
SeedRule = Literal["not reached", "floor", "reporting"]
#: How a row's hyperparameters were set (see :attr:`Row.selection`).
Selection = Literal["tuned", "default", "hand-picked"]


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
    is the central value of the primary column (``None`` when no seed gives one); `rank` is shared by ties and
    ``None`` for a row without a primary value. `horizon` and `restricted_mean` are the primary column's
    horizon and restricted mean time (time-to-event columns). `vs_reference` is the comparison with the
    reference (``None`` for the reference itself); `verdict`, `p_value` (Holm-adjusted), `n_paired` and
    `diff_interval` repeat it as flat fields, and `mde` is the table's minimum detectable effect at
    `mde_seeds` paired seeds (``None``: underpowered, fewer than 6).
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
    horizon: float | None = None
    restricted_mean: float | None = None
    rank: int | None = None
    is_reference: bool = False
    vs_reference: Comparison | None = None
    verdict: Verdict | None = None
    p_value: float | None = None
    n_paired: int = 0
    diff_interval: tuple[float | None, float | None] | None = None
    interval_method: str | None = None
    mde: float | None = None
    mde_seeds: int = 0
    #: How the hyperparameters were set: ``tuned`` (a stored ``tune`` choice, with its `tuning` budget),
    #: ``default`` (the method's defaults) or ``hand-picked`` (other values, by ``--hp``; never tuned).
    selection: Selection = "default"
    tuning: TuningBudget | None = None

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


def seed_rule(col: Column) -> SeedRule:
    """What a run that is not ok counts as on `col`: not reached (time-to-event), the floor, or nothing (the
    column is summarised over the runs that report it)."""
    if col.event is not None:
        return "not reached"
    return "floor" if col.floor is not None else "reporting"


def observations(recs: Sequence[RunRecord], col: Column, horizon: float | None = None) -> Observations:
    """The column's value for every seed that counts (a rate column's as 0/1), in seed order.

    An ok run contributes the value it reports. A run that is not ok contributes per :func:`seed_rule`: on a
    time-to-event column it is censored at `horizon` (+inf when no horizon is known), and so is an ok run
    that did not reach the event and records no value; on a floored column it scores the floor; otherwise it
    is left out. The exception is a run over budget at some settings only (a Hessian estimator refused at
    10 HVPs, scored at 100): the harness scored the settings it met, so the values it reports count and only
    the missing ones take the rule.
    """
    seeds: list[int] = []
    vals: list[float] = []
    cens: list[bool] = []
    not_reached = math.inf if horizon is None else horizon
    for r in recs:
        v: float | None
        if r.status != "ok" and not (r.status == "budget_exceeded" and _reports(r, col)):
            if col.event is not None:
                v, censored = not_reached, True
            elif col.floor is not None:
                v, censored = float(col.floor), False
            else:
                continue
        else:
            if col.kind == "rate":
                raw = r.metrics.get(col.metric)
                v = None if raw is None else float(bool(raw))
            else:
                v = _numeric(r.metrics.get(col.metric))
            censored = col.event is not None and not bool(r.metrics.get(col.event))
            if v is None:
                if not censored:
                    continue
                v = not_reached
        seeds.append(r.seed)
        vals.append(v)
        cens.append(censored)
    return Observations(tuple(seeds), tuple(vals), tuple(cens))


def _reports(record: RunRecord, col: Column) -> bool:
    """Whether `record` holds a scored value of the column's metric."""
    raw = record.metrics.get(col.metric)
    return raw is not None if col.kind == "rate" else _numeric(raw) is not None


def table_horizons(recs: Sequence[RunRecord], family: FamilyLike) -> dict[str, float | None]:
    """The horizon of each time-to-event column of one (task, tier) table: the family's
    :meth:`~phenomena_bench.core.family.Family.horizon` for the task, else the largest value of the metric
    any ok run of the table recorded (no run can be credited beyond what was observed), else ``None``."""
    out: dict[str, float | None] = {}
    latest = max(recs, key=lambda r: (r.finished_at, r.key))
    ask = getattr(family, "horizon", None)
    for col in family.columns():
        if col.event is None:
            continue
        try:
            declared = ask(latest.task, col.metric) if callable(ask) else None
        except (KeyError, TypeError, ValueError):  # a spec without the budget (hand-made or older record)
            declared = None
        if declared is not None:
            out[col.metric] = float(declared)
            continue
        seen = [v for r in recs if r.status == "ok" and (v := _numeric(r.metrics.get(col.metric))) is not None]
        out[col.metric] = max(seen) if seen else None
    return out


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
    """Records by (task, tier, method label). A held-out variant's runs are no table of their own: they are
    scored beside their public task's row (:mod:`phenomena_bench.analysis.variants`)."""
    groups: dict[tuple[str, str, str], list[RunRecord]] = defaultdict(list)
    for r in records:
        if r.variant is not None:
            continue
        groups[(r.task_id, r.tier, r.method.label)].append(r)
    return groups


# ------------------------------------------------------------------------------------------------ rows


def scoring_records(records: Iterable[RunRecord], include_dev: bool = False) -> list[RunRecord]:
    """The records a table is built from: scoring seeds only, unless `include_dev`."""
    return [r for r in records if include_dev or not is_dev_seed(r.seed)]


def aggregate(
    records: Iterable[RunRecord],
    families: Families = None,
    *,
    include_dev: bool = False,
    all_configurations: bool = False,
) -> list[Row]:
    """One row per (task, tier, method label), ranked within (task, tier), compared to the reference.

    `families` maps a family name to its family object (default: :func:`phenomena_bench.registry.get_family`);
    tests pass hand-made families. Development seeds are left out unless `include_dev` (``show --dev``). A
    method tuned on a task shows only its tuned row there (:func:`tuned_view`) unless `all_configurations`.
    """
    lookup = _family_lookup(families)
    selected: dict[tuple[str, str, str], list[RunRecord]] = {}
    for key, recs in sorted(_groups(scoring_records(records, include_dev)).items()):
        selected[key] = select_latest(recs)
    if not all_configurations:
        selected = tuned_view(selected)
    tables: dict[tuple[str, str], list[tuple[str, list[RunRecord]]]] = defaultdict(list)
    for (task_id, tier, label), recs in selected.items():
        tables[(task_id, tier)].append((label, recs))
    rows: list[Row] = []
    for (task_id, tier), groups in sorted(tables.items()):
        family = lookup(groups[0][1][0].family)
        horizons = table_horizons([r for _, recs in groups for r in recs], family)
        table = [_row(task_id, tier, label, recs, family, horizons) for label, recs in groups]
        _rank(table)
        _compare(table, {label: recs for label, recs in groups}, family, horizons)
        rows += table
    return rows


def _row(
    task_id: str,
    tier: str,
    label: str,
    recs: list[RunRecord],
    family: FamilyLike,
    horizons: Mapping[str, float | None],
) -> Row:
    latest = max(recs, key=lambda r: (r.finished_at, r.key))
    cols = family.columns()
    prim = primary_column(family)
    cells: dict[str, Summary] = {}
    for col in cols:
        horizon = horizons.get(col.metric)
        obs = observations(recs, col, horizon)
        cells[col.metric] = summarise(col.kind, obs.values, obs.censored, seeds=len(recs), horizon=horizon)
    prim_summary = cells[prim.metric]
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
        censored=prim_summary.censored,
        successes=reached,
        success_rate=reached / len(recs) if recs else None,
        cost=_cost(recs),
        primary=central(prim.kind, prim_summary) if prim_summary.n else None,
        primary_censored=prim.kind == "median_iqr" and prim_summary.median_censored,
        horizon=horizons.get(prim.metric),
        restricted_mean=prim_summary.restricted_mean,
        selection=selection_of(latest),
        tuning=latest.method.tuning,
    )


def selection_of(record: RunRecord) -> Selection:
    """``tuned`` for a stored tuning choice's run, ``default`` for the defaults, else ``hand-picked``."""
    if record.method.tuning is not None:
        return "tuned"
    return "default" if record.method.label == record.method.name else "hand-picked"


def tuned_view(groups: Mapping[tuple[str, str, str], list[RunRecord]]) -> dict[tuple[str, str, str], list[RunRecord]]:
    """One configuration per method where it was tuned: a (task, tier, method name) with a tuned group keeps
    only that group (its defaults and hand-picked variants are left out); an untuned method keeps all."""
    tuned = {(t, tier, r[0].method.name) for (t, tier, _), r in groups.items() if selection_of(r[-1]) == "tuned"}
    return {
        key: recs
        for key, recs in groups.items()
        if (key[0], key[1], recs[0].method.name) not in tuned or selection_of(recs[-1]) == "tuned"
    }


def tuning_notes(rows: Sequence[Row]) -> list[str]:
    """Lines under a table saying how each row's hyperparameters were set: every tuned row's budget, and,
    when tuned and untuned rows share the table, that their ranks compare different tuning budgets."""
    tuned = [r for r in rows if r.tuning is not None]
    picked = sorted({r.method_name for r in rows if r.selection == "hand-picked"})
    out = [f"{r.method}: {budget_text(r.tuning)}" for r in tuned if r.tuning is not None]
    if picked:
        out.append(f"hand-picked, not tuned (the values in brackets): {', '.join(picked)}")
    if tuned and len(tuned) < len(rows):
        out.append(
            f"ranks compare tuned rows with {len(rows) - len(tuned)} untuned row(s) (defaults or hand-picked): "
            "their tuning budgets differ"
        )
    return out


def budget_text(budget: TuningBudget) -> str:
    """``tuned: 16 trials x 2 dev seeds (1000000-1000001), 1.2 GFLOP, trial 7 chosen``."""
    seeds = budget.dev_seeds
    span = f"{seeds[0]}-{seeds[-1]}" if len(seeds) > 1 else str(seeds[0]) if seeds else "none"
    flops = "FLOPs not counted" if budget.flops is None else f"{budget.flops / 1e9:.3g} GFLOP"
    return (
        f"tuned: {budget.trials} trials x {len(seeds)} dev seed(s) ({span}), {flops}, "
        f"trial {budget.chosen_trial} chosen"
    )


def rank_key(row: Row) -> tuple[float, float, float] | None:
    """Smaller is better; ``None``: the row has no value to rank by.

    Time-to-event primary column: the median with not-reached seeds at +inf (its upper bound, so a median
    that censoring leaves open ranks after every observed one), then the restricted mean time to the
    horizon, then the success rate. Otherwise the central statistic over every seed (floors applied) in the
    metric's direction, then the success rate.
    """
    prim = row.primary_column
    s = row.cells[prim.metric]
    if s.n == 0:
        return None
    sign = 1.0 if row.direction == "min" else -1.0
    success = -(row.success_rate or 0.0)
    if prim.event is not None:
        median = math.inf if s.median_upper is None else s.median_upper
        rmst = math.inf if row.restricted_mean is None else row.restricted_mean
        return (sign * median, sign * rmst, success)
    value = central(prim.kind, s)
    return None if value is None else (sign * value, 0.0, success)


def _rank(table: list[Row]) -> None:
    keyed = sorted(((k, r) for r in table if (k := rank_key(r)) is not None), key=lambda kr: kr[0])
    prev: tuple[float, float, float] | None = None
    for i, (key, r) in enumerate(keyed, start=1):
        r.rank = keyed[i - 2][1].rank if prev == key else i
        prev = key


def _compare(
    table: list[Row],
    selected: Mapping[str, list[RunRecord]],
    family: FamilyLike,
    horizons: Mapping[str, float | None],
) -> None:
    """Every row against the reference by seed-paired sign-flip tests, Holm-adjusted across the table."""
    ref = _reference_row(table, family.reference_method)
    if ref is None:
        return
    ref.is_reference = True
    prim = primary_column(family)
    horizon = horizons.get(prim.metric) if prim.event else None
    ref_obs = observations(selected[ref.method], prim, horizon)
    others = [r for r in table if r is not ref]
    raw = [
        compare(
            family.direction,
            observations(selected[r.method], prim, horizon),
            ref_obs,
            horizon=horizon,
            seed=group_seed(r.task_id, r.tier, r.method, "vs", ref.method),
        )
        for r in others
    ]
    done = adjust(raw, family.direction)
    mde, mde_seeds = table_mde(done)
    for r in table:
        r.mde, r.mde_seeds = mde, mde_seeds
    for r, c in zip(others, done):
        r.vs_reference = c
        r.verdict = c.verdict
        r.p_value = c.p_adjusted
        r.n_paired = c.n_paired
        r.diff_interval = None if c.diff_low is None and c.diff_high is None else (c.diff_low, c.diff_high)
        r.interval_method = c.interval


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


def error_kind(col: Column, direction: Direction) -> ErrorKind:
    """How the profile and IQM read `col` as an error: the column's declared ``error``, else ``time`` for a
    time-to-event column, ``value`` for a "min" metric and ``one_minus`` for a "max" one."""
    if col.error is not None:
        return col.error
    if col.event is not None:
        return "time"
    return "value" if direction == "min" else "one_minus"


def row_error(row: Row, kind: ErrorKind) -> float:
    """A row's error on its task: for ``time`` the median with not-reached at +inf (its upper bound), else the
    central statistic over every seed read as an error (+inf without one)."""
    s = row.cells[row.primary_metric]
    if s.n == 0:
        return math.inf
    if kind == "time":
        return math.inf if s.median_upper is None else s.median_upper
    return as_error(kind, central(row.primary_column.kind, s))


def family_summary(
    rows: Sequence[Row],
    records: Iterable[RunRecord],
    families: Families = None,
    taus: Sequence[float] | None = None,
    *,
    include_dev: bool = False,
) -> list[FamilySummary]:
    """Per (family, tier, method): IQM of reference-normalised scores and the performance profile.

    Both read the primary metric as an error (:func:`error_kind`: 1 - accuracy, a relative error, a time
    with not-reached at +inf), floored at a relative epsilon so an exact answer is the best. The profile
    ratio is error / best error on the task. A run's IQM score is reference error / run error, clipped
    (:func:`~phenomena_bench.analysis.statistics.normalised_score`): 1 = as good as the reference, higher is
    better, a run that did not reach the event (or failed on a column without a floor) scores 0. Tasks whose
    reference has no finite error are skipped for the IQM.
    """
    lookup = _family_lookup(families)
    taus = list(taus) if taus is not None else [float(t) for t in np.linspace(1.0, PROFILE_TAU_MAX, 31)]
    recs_by_group = _groups(scoring_records(records, include_dev))
    by_family: dict[tuple[str, str], list[Row]] = defaultdict(list)
    for row in rows:
        by_family[(row.family, row.tier)].append(row)
    out: list[FamilySummary] = []
    for (fam_name, tier), fam_rows in sorted(by_family.items()):
        family = lookup(fam_name)
        prim = primary_column(family)
        kind = error_kind(prim, family.direction)
        tasks = sorted({r.task_id for r in fam_rows})
        methods = sorted({r.method for r in fam_rows})
        errors: dict[str, dict[str, float | None]] = {m: {} for m in methods}
        ref_error: dict[str, float] = {}
        horizon: dict[str, float | None] = {}
        for r in fam_rows:
            e = row_error(r, kind)
            errors[r.method][r.task_id] = e
            horizon[r.task_id] = r.horizon
            if r.is_reference and math.isfinite(e):
                ref_error[r.task_id] = e
        profile = performance_profile(errors, taus)
        for m in methods:
            scores: dict[str, list[float]] = {}
            for t in tasks:
                if t not in ref_error or (t, tier, m) not in recs_by_group:
                    continue
                recs = select_latest(recs_by_group[(t, tier, m)])
                obs = observations(recs, prim, horizon.get(t))
                run_errors = [as_error(kind, v, c) for v, c in zip(obs.values, obs.censored)]
                run_errors += [math.inf] * (len(recs) - len(obs.values))  # left out of a column with no floor
                floor = error_floor([ref_error[t], *run_errors])
                scores[t] = [normalised_score(e, ref_error[t], floor) for e in run_errors]
            pooled = [s for v in scores.values() for s in v]
            out.append(
                FamilySummary(
                    family=fam_name,
                    tier=tier,
                    method=m,
                    tasks=sum(1 for t in tasks if t in errors[m]),
                    tasks_total=len(tasks),
                    iqm=iqm(pooled) if pooled else None,
                    iqm_interval=stratified_bootstrap_iqm(scores, seed=group_seed(fam_name, tier, m, "iqm")),
                    profile_taus=taus,
                    profile=profile[m],
                    profile_score=profile_score(profile[m], taus),
                )
            )
    return out
