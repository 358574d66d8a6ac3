"""Printing results: the aggregated table (terminal, Markdown) or JSON rows."""

from __future__ import annotations

import json

from phenomena_bench.store import RunRecord


def print_results(records: list[RunRecord], fmt: str) -> None:
    from phenomena_bench.analysis import statistics as stats

    rows = stats.aggregate(records)
    if fmt == "json":
        print(json.dumps(rows, indent=1))
    else:
        print(stats.format_table(rows, fmt="github" if fmt == "markdown" else "simple"))
