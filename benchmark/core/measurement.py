"""Measurements: a phenomenon measured on a task's data and recipe, shown beside the leaderboard, never ranked.

Some questions a paper asks are not "which method is best" but "how big is this effect here": how many
dropout subnetworks of a trained net still generalise, how much the top-magnitude weights overlap the top
Hessian eigenspace. A :class:`Measurement` answers one of them for a task at a tier, as tables and curves
(:class:`MeasurementResult`), with no method and no seed sweep: it is a property of the task's recipe.

- **Discovery.** A family lists its measurements as lazy ``module:attr`` references
  (:attr:`phenomena_bench.core.family.Family.measurements`); another distribution adds one through the
  entry-point group ``phenomena_bench.measurements`` (the entry point's name is the measurement's id,
  ``family/name``, so it is found without importing it). Nothing is imported until a measurement runs.
- **Keys and reuse.** A result is stored under :func:`measurement_key`, the hash of the measurement's id and
  version and the resolved task's key payload and tier: the same key is never computed twice, and a changed
  task or a bumped version never serves a stale result.
- **Storage.** ``<store>/measurements/<key>.json``, one file per result, written atomically
  (:mod:`phenomena_bench.core.atomic`); a file that does not parse is reported in one line and skipped.
- **Isolation.** :func:`run_measurements` runs each (task, measurement) on its own: one that raises is
  reported in one line and the others go on.
"""

from __future__ import annotations

import json
import math
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, ClassVar

from phenomena_bench.core.atomic import atomic_write_text
from phenomena_bench.core.curves import Curve
from phenomena_bench.core.hashing import content_key
from phenomena_bench.core.spec import TaskSpec, TierName, resolve_tier
from phenomena_bench.core.text import printable

__all__ = [
    "ENTRY_POINT_GROUP",
    "Measurement",
    "MeasurementReport",
    "MeasurementResult",
    "MeasurementStore",
    "MeasurementTable",
    "measurement_key",
    "run_measurements",
    "summary_line",
]

ENTRY_POINT_GROUP = "phenomena_bench.measurements"
MEASUREMENTS_DIR = "measurements"

Cell = str | float | int | None


@dataclass(frozen=True)
class MeasurementTable:
    """One table shown on a page (keep it within 120 columns in the terminal)."""

    title: str
    columns: list[str]
    rows: list[list[Cell]]
    note: str = ""


@dataclass(frozen=True)
class MeasurementResult:
    """What a measurement found for one task at one tier."""

    measurement: str  # the Measurement's id, e.g. "pruning/dropout-subnetworks"
    version: str
    family: str
    task_id: str  # the task whose data/recipe it measured
    tier: str
    tables: list[MeasurementTable]
    #: Plotted on the page (x_label set), one plot per name; curves named "<plot> | <series>" with the same
    #: x label are drawn as series of one plot.
    curves: dict[str, Curve]
    summary: str  # one line for the terminal
    cpu_seconds: float
    key: str = ""  # set by the harness: hash of (id, version, task key payload, tier)

    def to_json(self) -> dict[str, Any]:
        """Plain JSON (non-finite numbers become null: JSON has no NaN)."""
        return {
            "measurement": self.measurement,
            "version": self.version,
            "family": self.family,
            "task_id": self.task_id,
            "tier": self.tier,
            "tables": [
                {
                    "title": t.title,
                    "columns": list(t.columns),
                    "rows": [[_finite(c) for c in r] for r in t.rows],
                    "note": t.note,
                }
                for t in self.tables
            ],
            "curves": {
                name: {"x": [_finite(v) for v in c.x], "y": [_finite(v) for v in c.y], "x_label": c.x_label}
                for name, c in self.curves.items()
            },
            "summary": self.summary,
            "cpu_seconds": self.cpu_seconds,
            "key": self.key,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> MeasurementResult:
        """The inverse of :meth:`to_json`; raises KeyError/TypeError/ValueError on a malformed mapping."""
        tables = [
            MeasurementTable(
                str(t["title"]), [str(c) for c in t["columns"]], [list(r) for r in t["rows"]], str(t.get("note", ""))
            )
            for t in data["tables"]
        ]
        curves = {
            str(name): Curve(
                [float(v) if v is not None else math.nan for v in c["x"]],
                [float(v) if v is not None else math.nan for v in c["y"]],
                str(c["x_label"]),
            )
            for name, c in data["curves"].items()
        }
        return cls(
            measurement=str(data["measurement"]),
            version=str(data["version"]),
            family=str(data["family"]),
            task_id=str(data["task_id"]),
            tier=str(data["tier"]),
            tables=tables,
            curves=curves,
            summary=str(data["summary"]),
            cpu_seconds=float(data["cpu_seconds"]),
            key=str(data["key"]),
        )


def _finite(value: Cell) -> Cell:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


class Measurement(ABC):
    """A phenomenon measured on a task's data and recipe (see the module docstring)."""

    id: ClassVar[str]
    family: ClassVar[str]
    #: Bump when what :meth:`measure` produces changes: the stored result is then recomputed.
    version: ClassVar[str]
    title: ClassVar[str]
    description: ClassVar[str]

    def applies_to(self, task: TaskSpec) -> bool:
        """Whether this measurement is meaningful on `task` (resolved to its tier); the family's tasks by default."""
        return task.family == self.family

    def settings(self, task: TaskSpec) -> dict[str, Any]:
        """Everything besides the task's key payload that determines the result on `task` (resolved): widths,
        sample counts. Part of the key, so an instance configured differently (a test's tiny one) never
        shares a stored result with the standard one."""
        return {}

    @abstractmethod
    def measure(self, task: TaskSpec, cache_dir: Path, device: str) -> MeasurementResult:
        """Measure on `task` (resolved to its tier). `key` and `cpu_seconds` are (re)set by the harness."""


def measurement_key(measurement: Measurement, task: TaskSpec, tier: str) -> str:
    """Content hash of (id, version, resolved task's key payload, tier, the measurement's settings): equal
    keys mean equal results."""
    payload = {
        "measurement": measurement.id,
        "version": measurement.version,
        "task": task.key_payload(),
        "tier": tier,
        "settings": measurement.settings(task),
    }
    return content_key(payload)


# ------------------------------------------------------------------------------------------------ storage


class MeasurementStore:
    """``<store>/measurements/<key>.json``: one result per file, atomic writes, corrupt files reported."""

    def __init__(self, store_root: str | Path) -> None:
        self.root = Path(store_root) / MEASUREMENTS_DIR

    def path_for(self, key: str) -> Path:
        from phenomena_bench.store import check_key  # keys become file names: only a digest is accepted

        return self.root / f"{check_key(key)}.json"

    def get(self, key: str) -> MeasurementResult | None:
        """The stored result under `key`, or None when absent or unreadable (then it is recomputed)."""
        path = self.path_for(key)
        if not path.is_file():
            return None
        try:
            return _read(path)
        except ValueError:
            return None

    def put(self, result: MeasurementResult) -> Path:
        text = json.dumps(result.to_json(), indent=1, sort_keys=True, allow_nan=False)
        return atomic_write_text(self.path_for(result.key), text)

    def scan(self) -> tuple[list[MeasurementResult], list[str]]:
        """Every readable result (sorted by task, tier, measurement) and one line per unreadable file."""
        results: list[MeasurementResult] = []
        problems: list[str] = []
        if not self.root.is_dir():
            return results, problems
        for path in sorted(self.root.glob("*.json")):
            try:
                results.append(_read(path))
            except ValueError as err:
                problems.append(f"{path}: unreadable measurement ({printable(str(err))[:120]}); skipped")
        results.sort(key=lambda r: (r.task_id, r.tier, r.measurement))
        return results, problems


def _read(path: Path) -> MeasurementResult:
    """The result in `path`; ValueError (one line) when it does not parse or is not stored under its key."""
    try:
        result = MeasurementResult.from_json(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, json.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError) as err:
        raise ValueError(f"{type(err).__name__}: {err}") from None
    if result.key != path.stem:
        raise ValueError(f"its key {result.key[:12]!r} is not its file name")
    return result


# ------------------------------------------------------------------------------------------------ running


@dataclass
class MeasurementReport:
    """What :func:`run_measurements` did: results computed now, results reused, one line per failure."""

    computed: list[MeasurementResult] = field(default_factory=list)
    reused: list[MeasurementResult] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)

    @property
    def results(self) -> list[MeasurementResult]:
        return sorted([*self.computed, *self.reused], key=lambda r: (r.task_id, r.tier, r.measurement))


Loader = Callable[[str], list[tuple[str, Callable[[], Measurement]]]]


def run_measurements(
    tasks: Sequence[TaskSpec],
    tier: TierName,
    store: MeasurementStore,
    cache_dir: Path,
    device: str,
    loader: Loader | None = None,
    log: Callable[[str], None] = lambda line: None,
) -> MeasurementReport:
    """Every measurement that applies to each task at `tier`, each isolated: stored results are reused,
    one that fails (import, ``applies_to`` or ``measure`` raising, or a result of the wrong kind) adds one
    line to ``failed`` and the others go on. `loader` maps a family to its ``(ref, load)`` pairs (default:
    the registry's); the harness sets each result's `key` and `cpu_seconds` (process CPU time of
    ``measure``)."""
    if loader is None:
        from phenomena_bench.registry import family_measurements

        loader = family_measurements
    report = MeasurementReport()
    for task in tasks:
        resolved = resolve_tier(task, tier)
        try:
            entries = loader(task.family)
        except Exception as err:
            report.failed.append(f"{task.id}: listing the {task.family} measurements failed: {_one_line(err)}")
            continue
        for ref, load in entries:
            line = _measure_one(ref, load, resolved, tier, store, cache_dir, device, report)
            if line:
                log(line)
    return report


def _measure_one(
    ref: str,
    load: Callable[[], Measurement],
    task: TaskSpec,
    tier: str,
    store: MeasurementStore,
    cache_dir: Path,
    device: str,
    report: MeasurementReport,
) -> str | None:
    """Run (or reuse) one measurement on one resolved task; the log line, or None when it does not apply."""
    try:
        measurement = load()
        if not measurement.applies_to(task):
            return None
        key = measurement_key(measurement, task, tier)
        stored = store.get(key)
        if stored is not None:
            report.reused.append(stored)
            return f"{task.id} [{tier}] {measurement.id}: stored ({stored.summary})"
        start = time.process_time()
        result = measurement.measure(task, cache_dir, device)
        cpu = time.process_time() - start
        if not isinstance(result, MeasurementResult):
            raise TypeError(f"measure() returned a {type(result).__name__}, not a MeasurementResult")
        result = replace(result, key=key, cpu_seconds=round(cpu, 2), tier=tier, task_id=task.id)
        store.put(result)
    except Exception as err:
        line = f"{task.id} [{tier}] {ref}: failed: {_one_line(err)}"
        report.failed.append(line)
        return line
    report.computed.append(result)
    return f"{task.id} [{tier}] {measurement.id}: {result.summary} ({result.cpu_seconds:.1f} CPU-s)"


def _one_line(err: BaseException) -> str:
    text = " ".join(str(err).split())
    return printable(f"{type(err).__name__}: {text}")[:300]


def summary_line(result: MeasurementResult) -> str:
    """How `show` prints a stored result: task, tier, measurement, its summary, its cost."""
    return printable(
        f"{result.task_id} [{result.tier}] {result.measurement} v{result.version}: {result.summary} "
        f"({result.cpu_seconds:.1f} CPU-s)"
    )
