"""Held-out variant scores: each method's primary metric on the variants of a task, beside its public score.

A variant's runs (records with ``variant`` set, see :mod:`phenomena_bench.core.variants`) never form tables of
their own: :func:`phenomena_bench.analysis.rows.aggregate` leaves them out. Here they are pooled per
(public task, tier, method, salt) over every (variant, seed) run of the newest task version — one record per
variant and seed, the latest — and summarised with the primary column's own rule (a run that did not finish
ok is not reached, or scores the floor), so the held-out score reads exactly like the public one. The gap is
held-out minus public, in the metric's units: a method tuned to the public task (by hand or by search) shows
it here. Salts are never pooled: the published salt's variants are public too, and only a salt drawn at
scoring time is held out.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field

from phenomena_bench.analysis.rows import Families, Row, aggregate, observations, scoring_records, select_latest
from phenomena_bench.analysis.statistics import Direction, Summary, central, summarise
from phenomena_bench.analysis.tables import TableCell, TableColumn, format_number, format_summary
from phenomena_bench.core.family import Column
from phenomena_bench.store import RunRecord


class HeldOutRow(BaseModel):
    """One (public task, tier, method, salt): the public primary score, the held-out one and the gap."""

    model_config = ConfigDict(extra="forbid")

    task_id: str
    tier: str
    method: str
    salt: str
    task_version: int
    primary_metric: str
    direction: Direction
    column: Column
    variants: dict[str, str]
    runs: int
    public: Summary
    heldout: Summary
    public_value: float | None
    heldout_value: float | None
    gap: float | None
    per_variant: dict[str, float | None]
    #: The public row itself (its method identity, tuning budget...), for renderers; not repeated in JSON.
    public_row: Row = Field(exclude=True, repr=False)


def heldout_rows(
    records: Iterable[RunRecord], families: Families = None, *, include_dev: bool = False
) -> list[HeldOutRow]:
    """Every (public task, tier, method, salt) with variant runs and a public row of the same method.

    The column, its rule and the horizon are the public row's: a variant changes data, never the budget or
    the protocol, so both scores are read on the same scale.
    """
    records = scoring_records(records, include_dev)
    public = {(r.task_id, r.tier, r.method): r for r in aggregate(records, families, include_dev=include_dev)}
    groups: dict[tuple[str, str, str, str], list[RunRecord]] = defaultdict(list)
    for r in records:
        if r.variant is not None:
            groups[(r.variant.of, r.tier, r.method.label, r.variant.salt)].append(r)
    out = []
    for (task_id, tier, label, salt), recs in sorted(groups.items()):
        row = public.get((task_id, tier, label))
        if row is not None:
            out.append(_heldout_row(row, salt, recs))
    return out


def _heldout_row(public: Row, salt: str, recs: list[RunRecord]) -> HeldOutRow:
    """`public`'s method on the variants drawn with `salt`: their runs of the public row's task version."""
    by_variant: dict[str, list[RunRecord]] = defaultdict(list)
    for r in recs:
        if r.task_version == public.task_version:
            by_variant[r.task_id].append(r)
    chosen = {vid: select_latest(vrecs) for vid, vrecs in sorted(by_variant.items(), key=_by_index)}
    pooled = [r for vrecs in chosen.values() for r in vrecs]
    col = public.primary_column
    heldout = _summary(col, pooled, public.horizon)
    public_summary = public.cells[col.metric]
    public_value = central(col.kind, public_summary) if public_summary.n else None
    heldout_value = central(col.kind, heldout) if heldout.n else None
    per_variant = {vid: _summary(col, vrecs, public.horizon) for vid, vrecs in chosen.items()}
    return HeldOutRow(
        task_id=public.task_id,
        tier=public.tier,
        method=public.method,
        salt=salt,
        task_version=public.task_version,
        primary_metric=col.metric,
        direction=public.direction,
        column=col,
        variants={vid: _describe(vrecs) for vid, vrecs in chosen.items()},
        runs=len(pooled),
        public=public_summary,
        heldout=heldout,
        public_value=public_value,
        heldout_value=heldout_value,
        gap=None if public_value is None or heldout_value is None else heldout_value - public_value,
        per_variant={vid: central(col.kind, s) if s.n else None for vid, s in per_variant.items()},
        public_row=public,
    )


def _by_index(item: tuple[str, list[RunRecord]]) -> tuple[int, str]:
    origin = item[1][0].variant
    return (origin.index if origin else 0, item[0])


def _describe(recs: Sequence[RunRecord]) -> str:
    origin = recs[0].variant
    return origin.describe() if origin else recs[0].task_id


def _summary(col: Column, recs: Sequence[RunRecord], horizon: float | None) -> Summary:
    obs = observations(recs, col, horizon)
    return summarise(col.kind, obs.values, obs.censored, seeds=len(recs), horizon=horizon)


# ------------------------------------------------------------------------------------------------ tables


@dataclass(frozen=True)
class HeldOutTableRow:
    """A table line: `row` is the public row (what every table line carries), `heldout` its held-out scores."""

    row: Row
    heldout: HeldOutRow
    cells: tuple[TableCell, ...]


@dataclass(frozen=True)
class HeldOutTable:
    """One (public task, tier, salt): each method's public score, held-out score, gap and per-variant values.
    Drawn by the same renderers as a results table (terminal, Markdown)."""

    task_id: str
    tier: str
    salt: str
    variants: dict[str, str]
    direction: str
    primary_metric: str
    columns: tuple[TableColumn, ...]
    rows: tuple[HeldOutTableRow, ...]

    @property
    def heading(self) -> str:
        return (
            f"{self.task_id} (tier {self.tier}): held-out variants drawn with salt {self.salt!r}, "
            f"{self.primary_metric} on the public task and pooled over {len(self.variants)} variant(s)"
        )

    @property
    def notes(self) -> tuple[str, ...]:
        worse = "higher" if self.direction == "min" else "lower"
        listed = "; ".join(f"{i + 1}: {text}" for i, text in enumerate(self.variants.values()))
        return (
            f"variants (their data changes): {listed}",
            f"gap = held-out - public, in {self.primary_metric}; {worse} than 0 is worse on the variants. The "
            "held-out cell pools every (variant, seed) run with the same not-ok rule as the public table.",
        )


COLUMNS = (
    TableColumn("method", "method"),
    TableColumn("public", "public task", numeric=True),
    TableColumn("heldout", "held-out variants", numeric=True),
    TableColumn("gap", "gap", "held-out - public", numeric=True),
    TableColumn("per_variant", "per variant", "1 / 2 / ...", numeric=True),
    TableColumn("runs", "runs", numeric=True),
)


def heldout_tables(rows: Iterable[HeldOutRow]) -> list[HeldOutTable]:
    """One table per (public task, tier, salt), methods in order of their held-out score."""
    grouped: dict[tuple[str, str, str], list[HeldOutRow]] = defaultdict(list)
    for r in rows:
        grouped[(r.task_id, r.tier, r.salt)].append(r)
    tables = []
    for (task_id, tier, salt), group in sorted(grouped.items()):
        sign = 1.0 if group[0].direction == "min" else -1.0
        group.sort(key=lambda r: (r.heldout_value is None, sign * (r.heldout_value or 0.0), r.method))
        variants = {vid: text for r in group for vid, text in r.variants.items()}
        tables.append(
            HeldOutTable(
                task_id=task_id,
                tier=tier,
                salt=salt,
                variants=variants,
                direction=group[0].direction,
                primary_metric=group[0].primary_metric,
                columns=COLUMNS,
                rows=tuple(HeldOutTableRow(r.public_row, r, _cells(r, list(variants))) for r in group),
            )
        )
    return tables


def _cells(r: HeldOutRow, order: list[str]) -> tuple[TableCell, ...]:
    digits = r.column.digits
    per_variant = " / ".join(
        format_number(r.per_variant[vid], digits) if vid in r.per_variant else "–" for vid in order
    )
    return (
        TableCell(r.method, r.method),
        TableCell(format_summary(r.column, r.public), r.public_value),
        TableCell(format_summary(r.column, r.heldout), r.heldout_value),
        TableCell("–" if r.gap is None else f"{r.gap:+.{digits}g}", r.gap),
        TableCell(per_variant),
        TableCell(str(r.runs), r.runs),
    )
