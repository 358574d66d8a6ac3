"""Phenomenon gates: does each (task, tier) in a store still show the phenomenon it claims to measure?

A task declares its gates in ``expect:`` (:class:`~phenomena_bench.core.claims.Gate`): grokking's reference
must memorise well before it generalises (delay ratio >= 2) and generalise on every seed, IMP must beat the
random mask of its own seed at the top sparsity, the edge-of-stability checkpoint must sit at λ_max ≈ 2/η,
attention must find the witnesses. A tier whose reference fails a gate is measuring something else (plain
learning, noise), so its table must not be read as a measurement of the phenomenon: ``run`` and ``show``
warn, and the site badges the tier (:func:`tier_badges`).

The values are read exactly as the results tables read them (:mod:`phenomena_bench.analysis.rows`): the
newest task and method version, one record per scoring seed, the family's rule for a run that is not ok
(the floor of a bounded column, not reached on a time-to-event one); a metric without a table column is
read from the runs that report it. Censored values enter at their bound (a lower bound that meets ``>=``
meets it). An interval gate uses Student's t interval of the mean (:func:`statistics.t_interval`), or with
``versus`` the seed-paired comparison of :func:`comparison.compare` (the verdicts' machinery). A gate with
fewer seeds than its ``min_seeds`` is ``not_enough_runs`` (shown "not checked"), never a pass.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import ValidationError

from phenomena_bench.analysis.comparison import compare
from phenomena_bench.analysis.rows import (
    Families,
    FamilyLike,
    _family_lookup,
    observations,
    scoring_records,
    select_latest,
    table_horizons,
)
from phenomena_bench.analysis.statistics import Observations, t_interval
from phenomena_bench.core.claims import Gate
from phenomena_bench.core.errors import BenchmarkError
from phenomena_bench.core.family import Column
from phenomena_bench.core.seeds import group_seed
from phenomena_bench.core.spec import TaskSpec
from phenomena_bench.store import RunRecord

GateStatus = Literal["passed", "failed", "not_enough_runs"]
#: A (task, tier)'s badge: every gate passed, one failed, one could not be checked yet, or the tier declares
#: no gate (it does not claim the phenomenon: a smoke tier checks plumbing).
Badge = Literal["reproduced", "not_reproduced", "not_checked", "unclaimed"]
BADGE_TEXT: dict[Badge, str] = {
    "reproduced": "phenomenon reproduced",
    "not_reproduced": "not reproduced at this tier",
    "not_checked": "not checked (too few runs)",
    "unclaimed": "claims no phenomenon",
}
Groups = dict[tuple[str, str, str], list[RunRecord]]


@dataclass(frozen=True)
class GateResult:
    """One gate of one (task, tier): what was measured on whose runs, and whether it held.

    `value` is the statistic the gate tests (the median, the mean, the mean paired difference, or for
    ``every_seed`` the worst seed's value); `interval` the 95% t interval for an interval gate; `n` the seeds
    (paired seeds with ``versus``) read; `passing` the seeds that met an ``every_seed`` gate.
    """

    task: str
    tier: str
    gate: Gate
    method: str
    status: GateStatus
    value: float | None
    interval: tuple[float, float] | None
    n: int
    passing: int | None = None

    def measured(self) -> str:
        """The measured value as a short phrase: ``4.9``, ``+0.31 [+0.20, +0.42]``, ``5/6 seeds (worst 0)``."""
        if self.value is None:
            return f"no value ({self.n} seed(s))"
        if self.gate.statistic == "every_seed":
            return f"{self.passing}/{self.n} seeds (worst {_num(self.value)})"
        if self.interval is not None:
            return f"{_num(self.value)} [{_num(self.interval[0])}, {_num(self.interval[1])}] over {self.n} seeds"
        return f"{_num(self.value)} over {self.n} seeds"

    def warning(self) -> str:
        """The one line ``run`` and ``show`` print for a failed gate."""
        return (
            f"warning: phenomenon gate failed: {self.task} tier {self.tier}: {self.gate.describe()} "
            f"({self.method}); measured {self.measured()}: {self.gate.why}"
        )


def _num(x: float) -> str:
    if not math.isfinite(x):
        return "inf" if x > 0 else "-inf"
    return f"{x:.3g}" if abs(x) >= 1e-3 or x == 0 else f"{x:.2e}"


# ------------------------------------------------------------------------------------------------ reading


def latest_groups(records: Iterable[RunRecord]) -> Groups:
    """The records each (task, tier, method label) table reads: scoring seeds, :func:`rows.select_latest`."""
    groups: dict[tuple[str, str, str], list[RunRecord]] = defaultdict(list)
    for r in scoring_records(records):
        groups[(r.task_id, r.tier, r.method.label)].append(r)
    return {key: select_latest(recs) for key, recs in sorted(groups.items())}


def metric_column(family: FamilyLike, metric: str) -> Column:
    """The family's table column for `metric` (its floor and event rules), else a plain per-run mean."""
    return next((c for c in family.columns() if c.metric == metric), Column(metric, metric, "mean"))


def method_records(groups: Groups, task: str, tier: str, method: str) -> list[RunRecord]:
    """The runs of `method` with its default hyperparameters (label = name), else of any label of it."""
    exact = groups.get((task, tier, method))
    if exact:
        return exact
    return next(
        (recs for (t, ti, _), recs in groups.items() if (t, ti) == (task, tier) and recs[0].method.name == method), []
    )


def metric_observations(
    groups: Groups, task: str, tier: str, method: str, metric: str, family: FamilyLike
) -> tuple[Observations, float | None]:
    """`method`'s values of `metric` on (task, tier), read as its results table reads them, and the
    column's horizon (time-to-event columns; ``None`` otherwise)."""
    recs = method_records(groups, task, tier, method)
    if not recs:
        return Observations((), (), ()), None
    col = metric_column(family, metric)
    table = [r for (t, ti, _), rs in groups.items() if (t, ti) == (task, tier) for r in rs]
    horizon = table_horizons(table, family).get(metric) if col.event is not None else None
    return observations(recs, col, horizon), horizon


# ------------------------------------------------------------------------------------------------ gates


def load_specs(folders: Sequence[Path] | None = None) -> dict[str, TaskSpec]:
    """The task specs a user reads now (their ``expect:``), by id, from `folders` (default: the configured
    task folders); empty when they cannot be loaded, and the gates each run recorded are used instead."""
    from phenomena_bench.registry import load_tasks, task_dirs

    try:
        return {task_id: spec for task_id, (_, spec) in load_tasks(list(folders or task_dirs())).items()}
    except BenchmarkError:
        return {}


def gates_of(spec: TaskSpec | None, record: RunRecord, tier: str) -> list[Gate]:
    """The gates of `tier`: from the current spec when given, else from the spec the run recorded."""
    if spec is not None:
        gates = list(spec.expect)
    else:
        try:
            gates = [Gate.model_validate(g) for g in record.task.get("expect") or []]
        except ValidationError:  # a record from an older release with another gate vocabulary
            gates = []
    return [g for g in gates if tier in g.tiers]


def _holds(op: str, x: float, value: Any) -> bool:
    if op == "in":
        return bool(value[0] <= x <= value[1])
    target = float(value)
    return {">=": x >= target, ">": x > target, "<=": x <= target, "<": x < target, "==": x == target}[op]


def _interval_holds(op: str, low: float, high: float, value: Any) -> bool:
    """Whether the whole interval [low, high] satisfies `op value`."""
    if op == "in":
        return bool(value[0] <= low and high <= value[1])
    if op in (">", ">="):
        return _holds(op, low, value)
    return _holds(op, high, value)


def evaluate_gate(gate: Gate, groups: Groups, task: str, tier: str, family: FamilyLike) -> GateResult:
    """One gate against the stored runs of (task, tier)."""
    method = gate.method or family.reference_method
    obs, horizon = metric_observations(groups, task, tier, method, gate.metric, family)
    if gate.versus is not None:
        other, _ = metric_observations(groups, task, tier, gate.versus, gate.metric, family)
        c = compare(
            family.direction, obs, other, horizon=horizon, seed=group_seed(task, tier, method, "gate", gate.versus)
        )
        n, value = c.n_paired, c.diff_mean
        interval = None if c.diff_low is None or c.diff_high is None else (c.diff_low, c.diff_high)
    elif gate.statistic == "every_seed":
        return _every_seed(gate, groups, task, tier, method, obs)
    else:
        n = len(obs.values)
        vals = np.asarray(obs.values, dtype=float)
        value = None if n == 0 else float(np.median(vals) if gate.statistic == "median" else vals.mean())
        interval = t_interval(vals) if gate.statistic == "interval" else None
    if n < max(gate.min_seeds, 2 if gate.statistic == "interval" else 1) or value is None:
        return GateResult(task, tier, gate, method, status="not_enough_runs", value=value, interval=interval, n=n)
    if gate.statistic == "interval":
        ok = interval is not None and _interval_holds(gate.op, interval[0], interval[1], gate.value)
    else:
        ok = not math.isnan(value) and _holds(gate.op, value, gate.value)
    return GateResult(
        task, tier, gate, method, status="passed" if ok else "failed", value=value, interval=interval, n=n
    )


def _every_seed(gate: Gate, groups: Groups, task: str, tier: str, method: str, obs: Observations) -> GateResult:
    """Each of the method's seeds must meet the gate; a seed that reports no value does not."""
    n = len(method_records(groups, task, tier, method))
    passing = sum(_holds(gate.op, v, gate.value) for v in obs.values)
    if not obs.values:
        worst = None
    else:
        # The value furthest on the failing side: the smallest for >=, > and ==, the largest for <= and <.
        worst = max(obs.values) if gate.op in ("<", "<=") else min(obs.values)
        if gate.op == "in":
            worst = min(obs.values, key=lambda v: min(v - gate.value[0], gate.value[1] - v))  # type: ignore[index]
    status: GateStatus = "not_enough_runs" if n < gate.min_seeds else ("passed" if passing == n else "failed")
    return GateResult(task, tier, gate, method, status=status, value=worst, interval=None, n=n, passing=passing)


def evaluate_gates(
    records: Iterable[RunRecord], specs: Mapping[str, TaskSpec] | None = None, families: Families = None
) -> list[GateResult]:
    """Every gate of every (task, tier) in `records`, in (task, tier) order.

    `specs` maps task ids to their current specs (the ``expect:`` a user reads); a task missing from it is
    checked against the gates its newest run recorded. `families` as in :func:`rows.aggregate`.
    """
    groups = latest_groups(records)
    lookup = _family_lookup(families)
    tables: dict[tuple[str, str], RunRecord] = {}
    for (task, tier, _), recs in groups.items():
        newest = max(recs, key=lambda r: (r.finished_at, r.key))
        held = tables.get((task, tier))
        if held is None or (newest.finished_at, newest.key) > (held.finished_at, held.key):
            tables[(task, tier)] = newest
    out: list[GateResult] = []
    for (task, tier), newest in sorted(tables.items()):
        gates = gates_of((specs or {}).get(task), newest, tier)
        if not gates:
            continue
        family = lookup(newest.family)
        out += [evaluate_gate(g, groups, task, tier, family) for g in gates]
    return out


def tier_badges(
    results: Sequence[GateResult], tables: Iterable[tuple[str, str]] = ()
) -> dict[tuple[str, str], tuple[Badge, list[GateResult]]]:
    """Per (task, tier): its badge and the results behind it (the failed ones first).

    Any failed gate makes the tier ``not_reproduced``; else any gate without enough runs ``not_checked``;
    else ``reproduced``. A (task, tier) of `tables` without gates is ``unclaimed``.
    """
    by_table: dict[tuple[str, str], list[GateResult]] = defaultdict(list)
    for r in results:
        by_table[(r.task, r.tier)].append(r)
    out: dict[tuple[str, str], tuple[Badge, list[GateResult]]] = {t: ("unclaimed", []) for t in tables}
    order = {"failed": 0, "not_enough_runs": 1, "passed": 2}
    for key, rs in by_table.items():
        statuses = {r.status for r in rs}
        badge: Badge = (
            "not_reproduced"
            if "failed" in statuses
            else "not_checked"
            if "not_enough_runs" in statuses
            else "reproduced"
        )
        out[key] = (badge, sorted(rs, key=lambda r: order[r.status]))
    return out


def gate_warnings(results: Iterable[GateResult]) -> list[str]:
    """One line per failed gate (what ``run`` and ``show`` print to stderr)."""
    return [r.warning() for r in results if r.status == "failed"]
