"""The one results-table model: which columns a (task, tier) table has, and the text and sort key of each cell.

The terminal, the Markdown output (CLI, leaderboard, Hub card) and the site all render tables built here, so a
number reads the same everywhere; they differ only in how they draw the grid (:mod:`phenomena_bench.report`).

Every table has all columns (:attr:`Table.columns`); :attr:`Table.default_keys` names the few that make a
readable default in 120 terminal columns (the primary metric with its interval, the success rate, the verdict
against the reference with its Holm-adjusted p, FLOPs and wall time; the interval of the difference is in the
full table), and :meth:`Table.select` picks any subset by key. Keys are stable names for ``--columns``:
``rank``, ``method``, the metric of each family column (e.g. ``steps_to_target``; ``primary`` names the
primary one), ``success``, ``seeds``, ``not_ok``, ``vs_ref``, ``p``, ``paired``, ``diff``, ``cost``,
``flops``, ``wall``, ``version``, ``date``.

Every table also carries :attr:`Table.notes`: which rule each shown column applied to seeds that did not
finish ok (not reached, a floor, or left out with ``n=k/N`` in the cell), how verdicts are reached, and the
table's minimum detectable effect at its seed count.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Literal

from phenomena_bench.analysis.comparison import ALPHA, POWER, seeds_for_verdict
from phenomena_bench.analysis.rows import Row, by_table, seed_rule
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
    value that censoring makes a lower bound, 'not reached' a median no seed gives a finite value for. A
    column summarised over the runs that report it adds 'n=k/N' when some seeds did not."""
    text = _summary_text(col, s)
    if s.n and s.seeds > s.n and seed_rule(col) == "reporting":
        text += f" n={s.n}/{s.seeds}"
    return text


def _summary_text(col: Column, s: Summary) -> str:
    d = col.digits
    if s.n == 0:
        return "–"
    if col.kind == "median_iqr":
        if s.median is None:
            return "not reached"
        assert s.iqr is not None and s.iqr_censored is not None
        (q1, q3), (c1, c3) = s.iqr, s.iqr_censored
        return (
            f"{'≥' if s.median_censored else ''}{format_number(s.median, d)} "
            f"[{_bound_text(q1, c1, d)}, {_bound_text(q3, c3, d)}]"
        )
    if col.kind == "rate":
        rate = s.rate or 0.0
        return f"{round(rate * s.n)}/{s.n} ({rate:.0%})"
    if s.mean is None:
        return "censored"
    if col.kind == "mean_ci" and s.interval:
        lo, hi = s.interval
        return f"{format_number(s.mean, d)} {format_interval(lo, hi, d)}"
    return format_number(s.mean, d)


def _bound_text(value: float | None, censored: bool, digits: int) -> str:
    if value is None:
        return "∞"
    return f"{'≥' if censored else ''}{format_number(value, digits)}"


def format_p(p: float | None) -> str:
    """A p-value in two significant figures ('<0.001' below that)."""
    if p is None:
        return "–"
    return "<0.001" if p < 0.001 else f"{p:.2g}"


def format_interval(low: float | None, high: float | None, digits: int = 3) -> str:
    """'[lo, hi]' with an unbounded (or undefined) end shown as -∞ or ∞."""
    lo = "-∞" if low is None else format_number(low, digits)
    hi = "∞" if high is None else format_number(high, digits)
    return f"[{lo}, {hi}]"


def is_flops_metric(name: str) -> bool:
    """Cost metrics that count floating-point operations."""
    return "flop" in name.split("@", 1)[0]


#: The FLOP totals a table's FLOPs column shows, most inclusive first: a run's whole count (``flops``:
#: training plus the method's measured work) where the family has one, else the method's measured work.
HEADLINE_FLOPS = ("flops", "method_flops")


def headline_flops(names: Sequence[str]) -> list[str]:
    """The one FLOP metric of `names` the FLOPs column shows (others, such as a method's declared overhead
    kept as a cross-check, go to the cost column); any FLOP metric when neither headline total is there."""
    for name in HEADLINE_FLOPS:
        if name in names:
            return [name]
    return [n for n in names if is_flops_metric(n)][:1]


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
    #: (key, header, rule) of each family column: what a seed that did not finish ok counts as.
    seed_rules: tuple[tuple[str, str, str], ...] = ()
    #: The table's minimum detectable effect (None: underpowered or no comparison) at `mde_seeds` pairs.
    mde: float | None = None
    mde_seeds: int = 0
    mde_digits: int = 3
    comparisons: int = 0

    @property
    def notes(self) -> tuple[str, ...]:
        """Prose lines under the table: the not-ok rule of each shown column, the verdict rule and the MDE."""
        shown = set(self.keys)
        groups: dict[str, list[str]] = {}
        for key, header, rule in self.seed_rules:
            if key in shown:
                groups.setdefault(rule, []).append(header)
        out = []
        if groups:
            out.append("not-ok seeds: " + "; ".join(f"{rule} ({', '.join(h)})" for rule, h in groups.items()))
        if self.comparisons:
            out.append(
                f"verdict vs {self.reference_method}: exact sign-flip test on seed-paired differences of "
                f"{self.primary_metric}, Holm-adjusted over {self.comparisons} method(s), p < {ALPHA:g}; "
                f"needs >= {seeds_for_verdict(self.comparisons)} paired seeds at {self.comparisons} comparison(s) "
                "(Holm's first step: 2/2^n < 0.05/m), else underpowered"
            )
            if self.mde is None:
                out.append(f"MDE at {self.mde_seeds} paired seeds: none (underpowered)")
            else:
                out.append(
                    f"MDE at {self.mde_seeds} paired seeds ({POWER:.0%} power, alpha {ALPHA:g}): "
                    f"{format_number(self.mde, self.mde_digits)} in {self.primary_metric}"
                )
        return tuple(out)

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
    # a per-hook breakdown (``method_flops/<hook>``) stays in the records; the table shows totals
    cost_names = sorted({k for r in rows for k in r.cost.metrics if "/" not in k})
    flops = headline_flops(cost_names)
    other_cost = [n for n in cost_names if n not in flops]
    success_col = _success_column(first)

    columns: list[TableColumn] = [TableColumn("rank", "rank", numeric=True), TableColumn("method", "method")]
    columns += [TableColumn(c.metric, c.header, KIND_DETAIL[c.kind], numeric=True) for c in cols]
    if success_col is None:
        columns.append(TableColumn("success", "success", numeric=True))
    columns += [
        TableColumn("seeds", "seeds", numeric=True),
        TableColumn("not_ok", "not ok"),
        TableColumn("vs_ref", "vs ref", "Holm p"),
        TableColumn("p", "p", "Holm", numeric=True),
        TableColumn("paired", "paired", "seeds", numeric=True),
        TableColumn("diff", "Δ vs ref", "mean, 95% t", numeric=True),
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
        seed_rules=tuple((c.metric, c.header, _rule_text(c)) for c in cols),
        mde=first.mde,
        mde_seeds=first.mde_seeds,
        mde_digits=prim.digits,
        comparisons=sum(r.vs_reference is not None for r in rows),
    )


def _rule_text(col: Column) -> str:
    rule = seed_rule(col)
    if rule == "floor":
        return f"floor {format_number(col.floor)}"
    return "left out, n shown" if rule == "reporting" else rule


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
        # a censored value sorts after every observed one in its direction; a median never reached last
        if value is None and censored and s.n:
            value, censored = 1e300, False
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
        c = r.vs_reference
        if c is None:
            return TableCell("–")
        if c.verdict == "underpowered":
            text = f"underpowered n={c.n_paired}"
        else:
            text = f"{c.verdict} p={format_p(c.p_adjusted)}"
        return TableCell(text, text, "better" if c.verdict == "better" else "worse" if c.verdict == "worse" else "")
    if key == "p":
        p = r.vs_reference.p_adjusted if r.vs_reference else None
        return TableCell(format_p(p), p)
    if key == "paired":
        n = r.vs_reference.n_paired if r.vs_reference else None
        return TableCell("–" if n is None else str(n), n)
    if key == "diff":
        c = r.vs_reference
        if c is None or c.diff_mean is None:
            return TableCell("–")
        d = r.primary_column.digits
        text = f"{format_number(c.diff_mean, d)} {format_interval(c.diff_low, c.diff_high, d)}"
        return TableCell(text, c.diff_mean)
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
