"""The one results-table model: which columns a (task, tier) table has, and the text and sort key of each cell.

The terminal, the Markdown output (CLI, leaderboard, Hub card) and the site all render tables built here, so a
number reads the same everywhere; they differ only in how they draw the grid (:mod:`phenomena_bench.report`).

Every table has all columns (:attr:`Table.columns`); :attr:`Table.default_keys` names the few that make a
readable default in 120 terminal columns (the primary metric with its interval, the success rate, the verdict
against the reference, FLOPs and wall time; the interval of the difference is in the full table), and
:meth:`Table.select` picks any subset by key. Keys are stable names for ``--columns``:
``rank``, ``method``, the metric of each family column (e.g. ``steps_to_target``; ``primary`` names the
primary one), ``success``, ``seeds``, ``not_ok``, ``vs_ref``, ``diff``, ``cost``, ``flops``, ``wall``,
``version``, ``date``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Literal

from phenomena_bench.analysis.rows import Row, by_table
from phenomena_bench.analysis.statistics import Summary, central
from phenomena_bench.core.errors import BenchmarkError
from phenomena_bench.core.family import STATUSES, Column

#: What the cell of a column holds, said once per column (under the header in the terminal).
KIND_DETAIL = {"median_iqr": "median [IQR]", "mean_ci": "mean [95% CI]", "rate": "", "mean": "mean"}
Tone = Literal["", "better", "worse", "muted"]


# ------------------------------------------------------------------------------------------------ numbers


def format_number(value: float | None, digits: int = 3) -> str:
    """Readable number: integers as integers, large values without exponent, small ones to `digits` figures."""
    if value is None:
        return "–"
    v = float(value)
    if math.isinf(v):
        return "∞" if v > 0 else "-∞"
    if v == int(v) and abs(v) >= 1:
        return str(int(v))
    if abs(v) >= 10**digits:
        return f"{v:.0f}"
    return f"{v:.{digits}g}"


def format_summary(col: Column, s: Summary) -> str:
    """The text of one column's cell: 'median [q1, q3]', 'mean [lo, hi]', 'k/n (p%)' or 'mean'; '≥' marks a
    value that censoring makes a lower bound."""
    d = col.digits
    if s.n == 0:
        return "–"
    if col.kind == "median_iqr":
        assert s.iqr is not None and s.iqr_censored is not None
        (q1, q3), (c1, c3) = s.iqr, s.iqr_censored
        return (
            f"{'≥' if s.median_censored else ''}{format_number(s.median, d)} "
            f"[{'≥' if c1 else ''}{format_number(q1, d)}, {'≥' if c3 else ''}{format_number(q3, d)}]"
        )
    if col.kind == "rate":
        rate = s.rate or 0.0
        return f"{round(rate * s.n)}/{s.n} ({rate:.0%})"
    if s.mean is None:
        return "censored"
    if col.kind == "mean_ci" and s.interval:
        lo, hi = s.interval
        return f"{format_number(s.mean, d)} [{format_number(lo, d)}, {format_number(hi, d)}]"
    return format_number(s.mean, d)


def format_interval(low: float | None, high: float | None, digits: int = 3) -> str:
    """'[lo, hi]' with an unbounded end shown as -∞ or ∞."""
    lo = "-∞" if low is None else format_number(low, digits)
    hi = "∞" if high is None else format_number(high, digits)
    return f"[{lo}, {hi}]"


def is_flops_metric(name: str) -> bool:
    """Cost metrics that count floating-point operations (shown in their own column)."""
    return "flop" in name.split("@", 1)[0]


# ------------------------------------------------------------------------------------------------ the model


@dataclass(frozen=True)
class TableColumn:
    """A column: its key (for ``--columns``), header, what its cells hold (`detail`, e.g. 'median [IQR]')."""

    key: str
    header: str
    detail: str = ""
    numeric: bool = False

    @property
    def title(self) -> str:
        """Header and detail on one line, for renderers that cannot break a header."""
        return f"{self.header} ({self.detail})" if self.detail else self.header


@dataclass(frozen=True)
class TableCell:
    """A cell's text, the value a sortable view orders it by (None: no value, sorts last), and its tone."""

    text: str
    sort: float | int | str | None = None
    tone: Tone = ""


@dataclass(frozen=True)
class TableRow:
    row: Row
    cells: tuple[TableCell, ...]


@dataclass(frozen=True)
class Table:
    """One (task, tier) results table, rows in rank order."""

    task_id: str
    task_version: int
    tier: str
    family: str
    primary_metric: str
    direction: str
    reference_method: str
    columns: tuple[TableColumn, ...]
    rows: tuple[TableRow, ...]
    default_keys: tuple[str, ...]

    @property
    def heading(self) -> str:
        best = "lower" if self.direction == "min" else "higher"
        return (
            f"{self.task_id} (v{self.task_version}, tier {self.tier}, family {self.family}): "
            f"ranked by {self.primary_metric}, {best} is better; reference {self.reference_method}"
        )

    @property
    def keys(self) -> tuple[str, ...]:
        return tuple(c.key for c in self.columns)

    def select(self, keys: Sequence[str]) -> Table:
        """The table with only these columns, in this order (``primary`` names the primary metric's column)."""
        wanted = [self.primary_metric if k == "primary" else k for k in keys]
        index = {c.key: i for i, c in enumerate(self.columns)}
        picked = [index[k] for k in dict.fromkeys(wanted) if k in index]
        return replace(
            self,
            columns=tuple(self.columns[i] for i in picked),
            rows=tuple(TableRow(r.row, tuple(r.cells[i] for i in picked)) for r in self.rows),
            default_keys=tuple(k for k in self.default_keys if k in set(wanted)),
        )

    def compact(self) -> Table:
        return self.select(self.default_keys)


# ------------------------------------------------------------------------------------------------ building


def build_tables(rows: Iterable[Row]) -> list[Table]:
    """One table per (task, tier), in task order."""
    return [build_table(group) for group in by_table(rows).values()]


def build_table(rows: Sequence[Row]) -> Table:
    """The table of one (task, tier) group of rows (as :func:`~phenomena_bench.analysis.rows.by_table` gives)."""
    first = rows[0]
    cols = first.columns
    prim = first.primary_column
    cost_names = sorted({k for r in rows for k in r.cost.metrics})
    flops = [n for n in cost_names if is_flops_metric(n)]
    other_cost = [n for n in cost_names if not is_flops_metric(n)]
    success_col = _success_column(first)

    columns: list[TableColumn] = [TableColumn("rank", "rank", numeric=True), TableColumn("method", "method")]
    columns += [TableColumn(c.metric, c.header, KIND_DETAIL[c.kind], numeric=True) for c in cols]
    if success_col is None:
        columns.append(TableColumn("success", "success", numeric=True))
    columns += [
        TableColumn("seeds", "seeds", numeric=True),
        TableColumn("not_ok", "not ok"),
        TableColumn("vs_ref", "vs ref"),
        TableColumn("diff", "Δ vs ref", "95% CI", numeric=True),
        TableColumn("cost", "cost"),
    ]
    if flops:
        columns.append(TableColumn("flops", "FLOPs", "median", numeric=True))
    columns += [
        TableColumn("wall", "wall s", "median", numeric=True),
        TableColumn("version", "version"),
        TableColumn("date", "date"),
    ]
    body = tuple(TableRow(r, tuple(_cell(r, c.key, cols, flops, other_cost) for c in columns)) for r in rows)
    default = ("rank", "method", prim.metric, success_col or "success", "vs_ref", "flops", "wall")
    return Table(
        task_id=first.task_id,
        task_version=first.task_version,
        tier=first.tier,
        family=first.family,
        primary_metric=first.primary_metric,
        direction=first.direction,
        reference_method=first.reference_method,
        columns=tuple(columns),
        rows=body,
        default_keys=tuple(k for k in default if k in {c.key for c in columns}),
    )


def _success_column(row: Row) -> str | None:
    """The rate column of the primary column's event when the family has one (the success column would repeat
    it), else None."""
    prim = row.primary_column
    if not prim.event:
        return None
    return next((c.metric for c in row.columns if c.kind == "rate" and c.metric == prim.event), None)


def _cell(r: Row, key: str, cols: Sequence[Column], flops: Sequence[str], other_cost: Sequence[str]) -> TableCell:
    col = next((c for c in cols if c.metric == key), None)
    if col is not None:
        s = r.cells[col.metric]
        value = central(col.kind, s) if s.n else None
        censored = col.kind == "median_iqr" and s.median_censored
        # a censored value sorts after every observed one in its direction
        sort = None if value is None else value + (1e300 if censored and value >= 0 else 0)
        return TableCell(format_summary(col, s), sort)
    if key == "rank":
        return TableCell("–" if r.rank is None else str(r.rank), r.rank)
    if key == "method":
        return TableCell(r.method, r.method)
    if key == "success":
        return TableCell(f"{r.successes}/{r.seeds}", r.success_rate)
    if key == "seeds":
        return TableCell(str(r.seeds), r.seeds)
    if key == "not_ok":
        bad = [(s, r.count(s)) for s in STATUSES if s != "ok" and r.count(s)]
        return TableCell(", ".join(f"{s} {n}" for s, n in bad) or "–", sum(n for _, n in bad))
    if key == "vs_ref":
        if r.is_reference:
            return TableCell("reference", "reference", "muted")
        if r.vs_reference is None:
            return TableCell("–")
        v = r.vs_reference.verdict
        text = f"{v} ({'paired' if r.vs_reference.paired else 'unpaired'})"
        return TableCell(text, text, "better" if v == "better" else "worse" if v == "worse" else "")
    if key == "diff":
        c = r.vs_reference
        if c is None:
            return TableCell("–")
        return TableCell(format_interval(c.diff_low, c.diff_high, r.primary_column.digits), c.diff_low)
    if key == "cost":
        parts = [f"{n}={format_number(x)}" for n in other_cost if (x := r.cost.metrics.get(n)) is not None]
        return TableCell(" ".join(parts) or "–", " ".join(parts) or None)
    if key == "flops":
        values = [x for n in flops if (x := r.cost.metrics.get(n)) is not None]
        return TableCell(" ".join(f"{x:.3g}" for x in values) or "–", values[0] if values else None)
    if key == "wall":
        wall = r.cost.wall_time_s
        return TableCell("–" if wall is None else f"{wall:.1f}", wall)
    if key == "version":
        return TableCell(r.version, r.version)
    if key == "date":
        return TableCell(r.date[:10], r.date)
    raise KeyError(key)


def choose_columns(tables: Sequence[Table], *, wide: bool = False, columns: Sequence[str] | None = None) -> list[Table]:
    """The tables as the CLI shows them: the default columns, every column (`wide`), or the named `columns`
    (``method`` is always kept, first, so a row says whose it is). An unknown column name is an error that
    lists the known ones."""
    if columns:
        known = {k for t in tables for k in t.keys} | {"primary"}
        unknown = [k for k in columns if k not in known]
        if unknown:
            raise BenchmarkError(
                f"unknown column(s) {', '.join(unknown)}; these tables have: {', '.join(sorted(known))}"
            )
        keys = ["method", *(k for k in columns if k != "method")] if "method" not in columns else list(columns)
        return [t.select(keys) for t in tables]
    return list(tables) if wide else [t.compact() for t in tables]
