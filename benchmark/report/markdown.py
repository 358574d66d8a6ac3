"""Results tables as GitHub Markdown (``show --format markdown``, ``leaderboard markdown``, the Hub card).

Method labels, hyperparameters and family headers reach these tables; a label is submission-controlled, so
every piece of text goes through :func:`md_escape` (the single Markdown escaper) before it enters a table, and
loses its control characters on the way (Markdown is printed to terminals too).
"""

from __future__ import annotations

from collections.abc import Sequence

from tabulate import tabulate

from phenomena_bench import __version__
from phenomena_bench.analysis.rows import FamilySummary, tuning_notes
from phenomena_bench.analysis.tables import Table, format_interval, format_number
from phenomena_bench.analysis.variants import HeldOutTable
from phenomena_bench.core.text import printable


def md_escape(text: str) -> str:
    """Neutralise Markdown/HTML in a cell: submission names may hold pipes, tags or link syntax."""
    out = printable(text).replace("\\", "\\\\").replace("|", "\\|").replace("&", "&amp;").replace("<", "&lt;")
    out = out.replace(">", "&gt;")
    for ch in "`*_[]":
        out = out.replace(ch, "\\" + ch)
    return out.replace("\n", " ")


def render(table: Table | HeldOutTable) -> str:
    """A level-3 heading, the table and its notes (one paragraph line each)."""
    headers = [md_escape(c.title) for c in table.columns]
    body = [[md_escape(cell.text) for cell in row.cells] for row in table.rows]
    grid = tabulate(body, headers=headers, tablefmt="github", disable_numparse=True)
    all_notes = [*table.notes, *tuning_notes([r.row for r in table.rows])]  # tuned rows: their budget
    notes = "".join(f"\n\n{md_escape(note)}" for note in all_notes)
    return f"### {md_escape(table.heading)}\n\n{grid}{notes}"


def render_all(tables: Sequence[Table | HeldOutTable]) -> str:
    return "\n\n".join(render(t) for t in tables) if tables else "no results"


def summary_table(summaries: Sequence[FamilySummary]) -> str:
    """The cross-task summary (IQM and performance-profile score) of each (family, tier, method)."""
    body = [
        [
            md_escape(s.family),
            md_escape(s.tier),
            md_escape(s.method),
            "–" if s.iqm is None else format_number(s.iqm),
            "–" if s.iqm_interval is None else format_interval(*s.iqm_interval),
            f"{s.profile_score:.3f}",
            f"{s.tasks}/{s.tasks_total}",
        ]
        for s in summaries
    ]
    headers = ["family", "tier", "method", "IQM", "IQM 95% CI", "profile score", "tasks"]
    return tabulate(body, headers=headers, tablefmt="github", disable_numparse=True)


def leaderboard(tables: Sequence[Table], summaries: Sequence[FamilySummary] = ()) -> str:
    """The whole leaderboard as one Markdown document: a table per (task, tier), then the summary per family."""
    parts = [f"## phenomena-bench results (benchmark {__version__})", render_all(tables)]
    if summaries:
        parts.append(
            "### Across tasks (IQM of reference-normalised scores; performance-profile score)\n\n"
            + summary_table(summaries)
        )
    return "\n\n".join(parts) + "\n"
