"""Printing results: the aggregated tables (terminal, Markdown) or the typed rows as JSON.

The terminal table shows the default columns (readable in 120 columns); ``--wide`` shows every column and
``--columns a,b`` picks columns by key (see :mod:`phenomena_bench.analysis.tables`). The JSON gives every
row its ``verdict``, Holm-adjusted ``p_value``, ``n_paired``, ``diff_interval`` (with ``interval_method``) and
its table's ``mde`` at ``mde_seeds`` paired seeds.

Under the tables, one line per run that is not ok says why (its status and the first line of its reason):
this is the one place a failure is printed, so a log shows each once.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence

from phenomena_bench.core.text import printable
from phenomena_bench.store import RunRecord

#: At most this many "why not ok" lines under the table; the rest are counted (`show --runs` lists all).
MAX_REASONS = 20


def _column_list(text: str) -> list[str]:
    keys = [part.strip() for part in text.split(",") if part.strip()]
    if not keys:
        raise argparse.ArgumentTypeError("name at least one column, e.g. --columns method,primary,success")
    return keys


def add_table_options(parser: argparse.ArgumentParser) -> None:
    """`--wide` and `--columns`: which columns the table (and Markdown) output shows."""
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--wide", action="store_true", help="show every column of the results table")
    group.add_argument(
        "--columns",
        type=_column_list,
        default=None,
        metavar="A,B",
        help="show these columns (keys such as rank, method, primary, a metric name, success, seeds, not_ok, "
        "vs_ref, p, paired, diff, cost, flops, wall, version, date); method is always shown",
    )


def print_results(
    records: list[RunRecord],
    fmt: str,
    *,
    wide: bool = False,
    columns: Sequence[str] | None = None,
    include_dev: bool = False,
    all_configurations: bool = False,
) -> None:
    from phenomena_bench.analysis.rows import aggregate
    from phenomena_bench.analysis.tables import build_tables, choose_columns
    from phenomena_bench.analysis.variants import heldout_rows, heldout_tables
    from phenomena_bench.report import markdown, terminal

    rows = aggregate(records, include_dev=include_dev, all_configurations=all_configurations)
    if fmt == "json":
        print(json.dumps([r.model_dump(mode="json") for r in rows], indent=1))
        return
    tables = choose_columns(build_tables(rows), wide=wide, columns=columns)
    render = markdown.render_all if fmt == "markdown" else terminal.render_all
    print(render(tables))
    held = heldout_tables(heldout_rows(records, include_dev=include_dev))
    if held:  # public and held-out-variant scores side by side, with their gap
        print("\n" + render(held))
    reasons = not_ok_reasons(records)
    if reasons:
        print("\nnot ok:\n" + "\n".join(f"  {line}" for line in reasons))


def reason_of(record: RunRecord, limit: int = 160) -> str:
    """The first line of a record's reason, printable and cut to `limit` characters."""
    lines = (record.error or "").strip().splitlines()
    text = printable(lines[0] if lines else "no reason recorded")
    return text if len(text) <= limit else text[: limit - 3] + "..."


def not_ok_reasons(records: Sequence[RunRecord]) -> list[str]:
    """One line per run that is not ok: task, tier, method, seed, status and why."""
    bad = sorted((r for r in records if r.status != "ok"), key=lambda r: (r.task_id, r.tier, r.method.label, r.seed))
    lines = [
        f"{printable(r.task_id)} [{r.tier}] {printable(r.method.label)} seed={r.seed}: {r.status}: {reason_of(r)}"
        for r in bad[:MAX_REASONS]
    ]
    if len(bad) > MAX_REASONS:
        lines.append(f"... and {len(bad) - MAX_REASONS} more (see `phenomena-bench show --runs`)")
    return lines
