"""Results tables as plain text for a terminal: readable in :data:`WIDTH` columns with the default columns.

A header goes on two lines (the column's name, then what its cells hold, e.g. ``median [IQR]``), columns are
two spaces apart, and a long method label wraps onto more lines instead of widening the whole table. The
table's notes (not-ok rule per column, verdict rule, minimum detectable effect) follow it, wrapped at
:data:`WIDTH`.

Method labels, task ids, tiers and every other text in a table come from run records, which a submission
controls: every piece goes through :func:`~phenomena_bench.core.text.printable`, so no escape sequence reaches
the terminal.
"""

from __future__ import annotations

import textwrap
import unicodedata
from collections.abc import Sequence

from phenomena_bench.analysis.rows import tuning_notes
from phenomena_bench.analysis.tables import Table
from phenomena_bench.analysis.variants import HeldOutTable
from phenomena_bench.core.text import printable

WIDTH = 120
#: A method label longer than this wraps (labels carry non-default hyperparameters and can grow long).
METHOD_WIDTH = 28
GAP = "  "


def display_width(text: str) -> int:
    """Terminal columns a line takes: wide East Asian characters count two, combining marks none."""
    total = 0
    for ch in text:
        if unicodedata.combining(ch):
            continue
        total += 2 if unicodedata.east_asian_width(ch) in {"W", "F"} else 1
    return total


def _pad(text: str, width: int, right: bool) -> str:
    fill = " " * (width - display_width(text))
    return fill + text if right else text + fill


def render(table: Table | HeldOutTable) -> str:
    """The heading line, a blank line, then the table: headers, a rule, one (or more, when wrapped) line per row."""
    headers = [[printable(c.header), printable(c.detail)] if c.detail else [printable(c.header)] for c in table.columns]
    body = [
        [
            textwrap.wrap(text, METHOD_WIDTH, break_on_hyphens=False) or [""]
            if col.key == "method" and display_width(text) > METHOD_WIDTH
            else [text]
            for col, text in ((col, _one_line(cell.text)) for col, cell in zip(table.columns, row.cells))
        ]
        for row in table.rows
    ]
    widths = [
        max(display_width(line) for lines in [headers[i], *(cells[i] for cells in body)] for line in lines)
        for i in range(len(table.columns))
    ]
    right = [c.numeric and c.key != "rank" for c in table.columns]

    def lines_of(cells: Sequence[list[str]]) -> list[str]:
        height = max(len(c) for c in cells)
        return [
            GAP.join(_pad(c[k] if k < len(c) else "", w, r) for c, w, r in zip(cells, widths, right)).rstrip()
            for k in range(height)
        ]

    out = [_one_line(table.heading), "", *lines_of(headers), GAP.join("-" * w for w in widths)]
    for cells in body:
        out += lines_of(cells)
    all_notes = [*table.notes, *tuning_notes([r.row for r in table.rows])]  # tuned rows: their budget
    notes = [line for note in all_notes for line in textwrap.wrap(_one_line(note), WIDTH, subsequent_indent="  ")]
    if notes:
        out += ["", *notes]
    return "\n".join(out)


def _one_line(text: str) -> str:
    """Record-derived text made safe for a terminal cell: control characters gone, whitespace one space."""
    return " ".join(printable(text).split()) if any(c in text for c in "\n\t\r") else printable(text)


def render_all(tables: Sequence[Table | HeldOutTable]) -> str:
    return "\n\n".join(render(t) for t in tables) if tables else "no results"


def width(text: str) -> int:
    """The widest line of the table part of a rendered text (heading lines are prose and may wrap)."""
    return max((display_width(line) for line in text.splitlines() if not _is_heading(line)), default=0)


def _is_heading(line: str) -> bool:
    return ": ranked by " in line
