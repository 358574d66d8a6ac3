"""The static leaderboard site and the Markdown tables, built from the results store.

The site is plain files (HTML, one CSS file, one small script, inline SVG plots, the raw data as JSON): it
needs no server and loads nothing from the network, so it can be opened from disk, served by any static host
or attached to a release. Layout::

    index.html                 families, their tasks, the best method of each, cross-task IQM and profiles
    tasks/<slug>.html          per task: a sortable table per tier, plots of the curves, the spec as YAML
    methods/<slug>.html        per method: hyperparameters of each variant, source link, submitters, results
    data/records.json          every record the site was built from; data/leaderboard.json: the rows
    assets/style.css, assets/sort.js

Anything a submission controls (method names and labels, descriptions, hyperparameter values, URLs, author
names) is untrusted: every piece of text goes through :func:`html.escape`, and a URL becomes a link only if
it is an absolute http(s) URL (:func:`safe_url`). The pages also carry a Content-Security-Policy that allows
only the site's own script and stylesheet, a second line of defence should an escape ever be missed.

The build is deterministic: no clock, sorted inputs, seeded bootstrap — the same store gives the same bytes.
"""

from __future__ import annotations

import hashlib
import html
import json
import math
import re
import shutil
import sys
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib.resources import files
from pathlib import Path
from string import Template
from typing import Any
from urllib.parse import quote, urlsplit

import numpy as np
import yaml
from phenomena_bench import __version__
from phenomena_bench.analysis import statistics as stats
from phenomena_bench.core.errors import BenchmarkError
from phenomena_bench.core.family import Column
from phenomena_bench.store import RunRecord

ASSETS_DIR = Path(str(files("phenomena_bench.leaderboard")))
REPO_ROOT = Path(__file__).resolve().parents[2]
PALETTE = ("#0b5cad", "#d1242f", "#1a7f37", "#8250df", "#bf8700", "#0a7ea4", "#cf4f9e", "#57606a", "#e16f24",
           "#2da44e")


# ------------------------------------------------------------------------------------------- escaping


def esc(value: Any) -> str:
    """Text for HTML content or a quoted attribute."""
    return html.escape("" if value is None else str(value), quote=True)


_CONTROL = re.compile(r"[\x00-\x20\x7f]")


def safe_url(url: Any) -> str | None:
    """`url` if it is an absolute http(s) URL with a host and no whitespace or control characters, else None.

    Everything else (``javascript:``, ``data:``, relative paths, protocol-relative ``//host``) is refused: a
    link on the site must never run code or point somewhere the reader cannot see.
    """
    if not isinstance(url, str) or not url or _CONTROL.search(url):
        return None
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    if parts.scheme.lower() not in {"http", "https"} or not parts.netloc:
        return None
    return url


def link(url: Any, text: Any) -> str:
    """An external link if the URL is safe, else the text alone (escaped)."""
    safe = safe_url(url)
    if safe is None:
        return esc(text)
    return f'<a href="{esc(safe)}" rel="nofollow noopener noreferrer">{esc(text)}</a>'


def slug(name: str) -> str:
    """A file name for a task id or method label: readable, and unique (a hash is added when characters were
    replaced, so `a/b` and `a-b` do not collide)."""
    clean = re.sub(r"[^a-z0-9_.-]+", "-", name.lower()).strip("-.") or "x"
    if clean != name:
        clean = f"{clean[:60]}-{hashlib.sha256(name.encode('utf-8')).hexdigest()[:8]}"
    return clean


# ------------------------------------------------------------------------------------------- inputs


@dataclass
class TaskInfo:
    """What the site shows about a task besides results: title, description, references, spec text."""

    task_id: str
    family: str
    title: str
    description: str
    references: list[dict[str, Any]]
    spec_yaml: str
    tiers: list[str]


@dataclass
class SubmissionInfo:
    name: str
    authors: list[str]
    paper: str | None
    code: str | None
    entry_point: str
    description: str


@dataclass
class SiteData:
    records: list[RunRecord]
    rows: list[dict[str, Any]]
    summaries: list[dict[str, Any]]
    tasks: dict[str, TaskInfo]
    families: dict[str, str]
    submissions: list[SubmissionInfo] = field(default_factory=list)
    method_descriptions: dict[str, str] = field(default_factory=dict)
    source_url: str | None = None


def load_task_infos(tasks_dir: Path | Sequence[Path] | None, records: Sequence[RunRecord]) -> dict[str, TaskInfo]:
    """Task specs from the tasks folder(s) (the YAML as written, comments included), else from the records."""
    infos: dict[str, TaskInfo] = {}
    folders = [] if tasks_dir is None else [tasks_dir] if isinstance(tasks_dir, Path) else list(tasks_dir)
    folders = [f for f in folders if f.is_dir()]
    if folders:
        from phenomena_bench.registry import load_tasks

        try:
            found = load_tasks(folders)
        except BenchmarkError as err:
            print(f"leaderboard: task specs not used ({str(err).splitlines()[0]})", file=sys.stderr)
            found = {}
        for task_id, (path, spec) in found.items():
            infos[task_id] = TaskInfo(
                task_id=task_id,
                family=spec.family,
                title=spec.title,
                description=spec.description,
                references=[{"title": r.title, "url": str(r.url) if r.url else None} for r in spec.references],
                spec_yaml=path.read_text(encoding="utf-8"),
                tiers=list(spec.tiers),
            )
    for r in sorted(records, key=lambda r: (r.finished_at, r.key)):
        if r.task_id in infos:
            continue
        task = r.task
        infos[r.task_id] = TaskInfo(
            task_id=r.task_id,
            family=r.family,
            title=str(task.get("title") or r.task_id),
            description=str(task.get("description") or ""),
            references=[x for x in task.get("references") or [] if isinstance(x, dict)],
            spec_yaml=yaml.safe_dump(task, sort_keys=False, allow_unicode=True),
            tiers=[r.tier],
        )
    return infos


def load_submissions(submissions_dir: Path | None) -> list[SubmissionInfo]:
    """Manifests under `submissions/*/submission.yaml`; an invalid one is reported and skipped."""
    if submissions_dir is None or not submissions_dir.is_dir():
        return []
    from phenomena_bench.core.errors import SpecError
    from phenomena_bench.submission import load_manifest

    out = []
    for path in sorted(submissions_dir.glob("*/submission.yaml")):
        try:
            m = load_manifest(path)
        except (SpecError, BenchmarkError) as err:
            print(f"leaderboard: skipping {path} ({str(err).splitlines()[0]})", file=sys.stderr)
            continue
        out.append(SubmissionInfo(
            name=m.name,
            authors=[p.name + (f" ({p.affiliation})" if p.affiliation else "") for p in m.authors],
            paper=str(m.paper) if m.paper else None,
            code=str(m.code) if m.code else None,
            entry_point=m.entry_point,
            description=m.description,
        ))
    return out


def _installed_method_descriptions() -> dict[str, str]:
    """Descriptions of installed methods by name (the record stores no prose); empty if none load."""
    try:
        from phenomena_bench.registry import list_methods

        infos, _ = list_methods()
    except Exception:  # a broken third-party entry point must not stop the site from building
        return {}
    return {i.name: i.description for i in infos}


def collect(
    records: list[RunRecord],
    *,
    tasks_dir: Path | Sequence[Path] | None = None,
    submissions_dir: Path | None = None,
    source_url: str | None = None,
    families: Mapping[str, Any] | None = None,
    method_descriptions: Mapping[str, str] | None = None,
) -> SiteData:
    """Everything the site shows, computed once; `families` overrides the family registry (tests)."""
    rows = stats.aggregate(records, families)
    summaries = stats.family_summary(rows, records, families)
    if families is None:
        from phenomena_bench.registry import family_names, get_family

        fam_desc = {name: get_family(name).description for name in family_names()}
    else:
        fam_desc = {name: str(getattr(f, "description", "")) for name, f in families.items()}
    tasks = load_task_infos(tasks_dir, records)
    for t in tasks.values():
        fam_desc.setdefault(t.family, "")
    return SiteData(
        records=sorted(records, key=lambda r: r.key),
        rows=rows,
        summaries=summaries,
        tasks=tasks,
        families=dict(sorted(fam_desc.items())),
        submissions=load_submissions(submissions_dir),
        method_descriptions=dict(method_descriptions) if method_descriptions is not None
        else _installed_method_descriptions(),
        source_url=source_url,
    )


# ------------------------------------------------------------------------------------------- SVG plots


def _ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    if hi <= lo:
        return [lo]
    raw = (hi - lo) / n
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    start = math.ceil(lo / step) * step
    return [round(start + i * step, 12) for i in range(int((hi - start) / step + 1e-9) + 1)]


def _legend_layout(labels: Sequence[str], x0: float, width: float) -> list[tuple[str, str, float, int]]:
    """(label, shortened text, x, row) for each legend entry, wrapping onto new rows (no entry is dropped)."""
    placed, x, row = [], x0, 0
    for label in labels:
        text = label if len(label) <= 28 else label[:27] + "…"
        span = 24 + 6.8 * len(text)
        if x > x0 and x + span > x0 + width:
            x, row = x0, row + 1
        placed.append((label, text, x, row))
        x += span
    return placed


def svg_plot(
    series: Sequence[tuple[str, Sequence[float | None], Sequence[float | None]]],
    *,
    x_label: str,
    y_label: str,
    title: str,
    log_x: bool | None = None,
    log_y: bool | None = None,
    order: Sequence[str] = (),
) -> str:
    """A line chart as inline SVG: one colour per label (several series may share a label, e.g. seeds).

    The y range is the 0.5–99.5 percentile of all points (a diverging loss must not flatten every other curve;
    clipped points are drawn at the edge). An axis is logarithmic by default when its values are all positive
    and span more than two (x) or three (y) decades — HVP budgets, relative errors. The legend wraps onto as
    many rows as it needs, and the picture grows to hold them. `order` fixes each label's colour by its place
    in it (the table's order), so a method has the same colour in every plot of a page.
    """
    def finite(v: float | None) -> bool:
        return v is not None and math.isfinite(v)

    pts = [(x, y) for _, xs, ys in series for x, y in zip(xs, ys, strict=False) if finite(x) and finite(y)]
    if not pts:
        return f'<p class="muted">{esc(title)}: no finite points.</p>'
    xs_all = np.array([p[0] for p in pts], dtype=float)
    ys_all = np.array([p[1] for p in pts], dtype=float)
    if log_x is None:
        log_x = bool(xs_all.min() > 0 and xs_all.max() / xs_all.min() > 100)
    if log_y is None:
        log_y = bool(ys_all.min() > 0 and ys_all.max() / ys_all.min() > 1000)
    if log_x:
        xs_all = xs_all[xs_all > 0]
    if log_y:
        ys_all = ys_all[ys_all > 0]

    def fx(v: float) -> float:
        return math.log10(v) if log_x else v

    def fy(v: float) -> float:
        return math.log10(v) if log_y else v

    labels = list(dict.fromkeys(label for label, _, _ in series))
    slots = {label: i for i, label in enumerate(dict.fromkeys([*order, *labels]))}
    colour = {label: PALETTE[slots[label] % len(PALETTE)] for label in labels}
    dashed = {label: slots[label] >= len(PALETTE) for label in labels}
    w, left, right, top = 480, 56, 12, 12
    legend = _legend_layout(labels, left, w - left - right)
    rows = (legend[-1][3] + 1) if legend else 0
    bottom = 44 + 14 * rows
    h = 242 + bottom
    x_lo, x_hi = fx(float(xs_all.min())), fx(float(xs_all.max()))
    y_vals = np.array([fy(v) for v in ys_all])
    y_lo, y_hi = float(np.percentile(y_vals, 0.5)), float(np.percentile(y_vals, 99.5))
    if x_hi == x_lo:
        x_lo, x_hi = x_lo - 0.5, x_hi + 0.5
    if y_hi == y_lo:
        y_lo, y_hi = y_lo - 0.5, y_hi + 0.5
    pad = (y_hi - y_lo) * 0.04
    y_lo, y_hi = y_lo - pad, y_hi + pad

    def sx(v: float) -> float:
        return left + (fx(v) - x_lo) / (x_hi - x_lo) * (w - left - right)

    def sy(v: float) -> float:
        t = min(max(fy(v), y_lo), y_hi)
        return top + (y_hi - t) / (y_hi - y_lo) * (h - top - bottom)

    def ticks(lo: float, hi: float, log: bool) -> list[float]:
        if log:
            decades = list(range(math.ceil(lo), math.floor(hi) + 1))
            step = max(1, math.ceil(len(decades) / 6))
            return [10.0 ** e for e in decades[::step]] or [10.0 ** lo]
        return _ticks(lo, hi)

    out = [f'<svg viewBox="0 0 {w} {h}" role="img" aria-label="{esc(title)}" xmlns="http://www.w3.org/2000/svg">',
           f"<title>{esc(title)}</title>"]
    for t in ticks(y_lo, y_hi, log_y):
        y = sy(t)
        out.append(f'<line class="grid" x1="{left}" x2="{w - right}" y1="{y:.1f}" y2="{y:.1f}"/>')
        out.append(f'<text x="{left - 4}" y="{y + 4:.1f}" text-anchor="end">{esc(_tick_text(t, log_y))}</text>')
    for t in ticks(x_lo, x_hi, log_x):
        x = sx(t)
        out.append(f'<line class="grid" x1="{x:.1f}" x2="{x:.1f}" y1="{top}" y2="{h - bottom}"/>')
        out.append(f'<text x="{x:.1f}" y="{h - bottom + 14}" text-anchor="middle">{esc(_tick_text(t, log_x))}'
                   "</text>")
    out.append(f'<line class="axis" x1="{left}" x2="{left}" y1="{top}" y2="{h - bottom}"/>')
    out.append(f'<line class="axis" x1="{left}" x2="{w - right}" y1="{h - bottom}" y2="{h - bottom}"/>')
    out.append(f'<text x="{(left + w - right) / 2:.0f}" y="{h - bottom + 30}" text-anchor="middle">'
               f"{esc(x_label)}{' (log)' if log_x else ''}</text>")
    out.append(f'<text transform="translate(12 {(top + h - bottom) / 2:.0f}) rotate(-90)" text-anchor="middle">'
               f"{esc(y_label)}{' (log)' if log_y else ''}</text>")
    for label, xs, ys in series:
        coords = [f"{sx(x):.1f},{sy(y):.1f}" for x, y in zip(xs, ys, strict=False)
                  if finite(x) and finite(y) and (not log_x or x > 0) and (not log_y or y > 0)]
        dash = ' stroke-dasharray="4 3"' if dashed[label] else ""
        if len(coords) == 1:
            cx, cy = coords[0].split(",")
            out.append(f'<circle cx="{cx}" cy="{cy}" r="2.5" fill="{colour[label]}"/>')
        elif coords:
            out.append(f'<polyline fill="none" stroke="{colour[label]}" stroke-width="1.4" stroke-opacity="0.75"'
                       f'{dash} points="{" ".join(coords)}"><title>{esc(label)}</title></polyline>')
    for label, text, x, row in legend:
        y = h - bottom + 46 + 14 * row
        out.append(f'<rect x="{x:.1f}" y="{y - 8}" width="10" height="10" fill="{colour[label]}"/>')
        out.append(f'<text x="{x + 14:.1f}" y="{y + 1}">{esc(text)}</text>')
    out.append("</svg>")
    return "".join(out)


def _tick_text(value: float, log: bool) -> str:
    if log:
        exp = round(math.log10(value))
        return stats.format_number(value) if -2 <= exp <= 4 else f"1e{exp}"
    return stats.format_number(value)


# ------------------------------------------------------------------------------------------- pages


def _page(title: str, body: str, root: str) -> str:
    template = Template((ASSETS_DIR / "templates" / "page.html").read_text(encoding="utf-8"))
    return template.substitute(title=esc(title), body=body, root=root, version=esc(__version__))


def _cell(text: str, sort: Any = None, cls: str = "") -> str:
    sort_attr = "" if sort is None else f' data-sort="{esc(sort)}"'
    class_attr = f' class="{cls}"' if cls else ""
    return f"<td{class_attr}{sort_attr}>{text}</td>"


def _table(headers: Sequence[str], body_rows: Sequence[str], caption: str = "", sortable: bool = True) -> str:
    head = "".join(f'<th scope="col"><button type="button">{esc(h)}</button></th>' if sortable
                   else f'<th scope="col">{esc(h)}</th>' for h in headers)
    cap = f"<caption class=\"muted\">{esc(caption)}</caption>" if caption else ""
    cls = ' class="sortable"' if sortable else ""
    return (f'<div class="table-wrap"><table{cls}>{cap}<thead><tr>{head}</tr></thead>'
            f"<tbody>{''.join(body_rows)}</tbody></table></div>")


def _submitted_by(row: Mapping[str, Any], submissions: Sequence[SubmissionInfo]) -> SubmissionInfo | None:
    for s in submissions:
        if row["method_ref"] in {s.entry_point, s.name} or row["method_name"] == s.name:
            return s
    return None


def _central_sort(row: Mapping[str, Any], col: Mapping[str, Any]) -> float | None:
    prefix = col["metric"] + "."
    st = {k[len(prefix):]: v for k, v in row.items() if k.startswith(prefix)}
    return stats.central(Column(**col), st) if st.get("n") else None


def task_table(rows: Sequence[Mapping[str, Any]], submissions: Sequence[SubmissionInfo], root: str) -> str:
    """The sortable results table of one (task, tier)."""
    cols = rows[0]["columns"]
    success = stats.show_success_column(rows[0])
    headers = ["rank", "method", *[stats.column_header(c) for c in cols], *(["success"] if success else []),
               "seeds", "not ok", "vs reference", "cost", "submitted by", "version", "date"]
    body = []
    for r in rows:
        sub = _submitted_by(r, submissions)
        not_ok = ", ".join(f"{s} {r[s]}" for s in ("failed", "timeout", "diverged", "budget_exceeded") if r.get(s))
        if r.get("is_reference"):
            vs, vs_cls = "reference", "muted"
        else:
            vs = r.get("vs_reference") or "–"
            vs_cls = vs if vs in {"better", "worse"} else ""
        if r.get("vs_reference_paired") is not None and not r.get("is_reference"):
            vs += " (paired)" if r["vs_reference_paired"] else " (unpaired)"
        cells = [
            _cell(esc("–" if r["rank"] is None else r["rank"]), r["rank"], "num"),
            _cell(f'<a href="{root}methods/{esc(slug(r["method_name"]))}.html">{esc(r["method"])}</a>', r["method"],
                  "method"),
        ]
        for c in cols:
            value = _central_sort(r, c)
            censored = c["kind"] == "median_iqr" and r.get(f"{c['metric']}.median_censored")
            # a censored value sorts after every observed one in its direction
            sort = None if value is None else (value + (1e300 if censored and value >= 0 else 0))
            cells.append(_cell(esc(stats.format_cell(r, c)), sort, "num"))
        if success:
            cells.append(_cell(esc(f"{r['successes']}/{r['seeds']}"), r["success_rate"], "num"))
        cells += [
            _cell(esc(r["seeds"]), r["seeds"], "num"),
            _cell(esc(not_ok or "–"), sum(r.get(s, 0) for s in ("failed", "timeout", "diverged", "budget_exceeded"))),
            _cell(esc(vs), vs, vs_cls),
            _cell(esc(stats.format_cost(r["cost"])), r["cost"].get("wall_time_s"), "num"),
            _cell(esc(", ".join(sub.authors)) if sub else '<span class="muted">baseline</span>',
                  ", ".join(sub.authors) if sub else "baseline"),
            _cell(esc(r["version"]), r["version"]),
            _cell(esc(str(r["date"])[:10]), r["date"], "num"),
        ]
        body.append("<tr>" + "".join(cells) + "</tr>")
    return _table(headers, body)


def _curve_plots(task_id: str, tier: str, records: Sequence[RunRecord], labels_in_order: Sequence[str]) -> str:
    """One plot per curve name, every seed of every method drawn in the method's colour."""
    by_curve: dict[str, list[tuple[str, list[float], list[float]]]] = defaultdict(list)
    x_labels: dict[str, str] = {}
    order = {label: i for i, label in enumerate(labels_in_order)}
    recs = sorted((r for r in records if r.task_id == task_id and r.tier == tier and r.curves),
                  key=lambda r: (order.get(r.method.label, len(order)), r.method.label, r.seed))
    for r in recs:
        for name, curve in sorted(r.curves.items()):
            xs, ys = curve.get("x"), curve.get("y")
            if not isinstance(xs, list) or not isinstance(ys, list):
                continue
            by_curve[name].append((r.method.label, [_num(v) for v in xs], [_num(v) for v in ys]))
            x_labels.setdefault(name, str(curve.get("x_label") or "x"))
    if not by_curve:
        return ""
    figs = []
    for name, series in by_curve.items():
        title = f"{name} vs {x_labels[name]}"
        svg = svg_plot(series, x_label=x_labels[name], y_label=name, title=title, order=labels_in_order)
        figs.append(f"<figure>{svg}"
                    f"<figcaption>{esc(title)}, every seed of every method (tier {esc(tier)})</figcaption></figure>")
    return '<div class="plots">' + "".join(figs) + "</div>"


def _num(v: Any) -> float | None:
    if isinstance(v, bool) or not isinstance(v, int | float):
        return None
    return float(v)


def task_page(info: TaskInfo, data: SiteData) -> str:
    root = "../"
    parts = [f"<h1>{esc(info.title)}</h1>",
             f'<p class="lead"><code>{esc(info.task_id)}</code> · family '
             f'<a href="{root}index.html#family-{esc(slug(info.family))}">{esc(info.family)}</a></p>',
             f"<p>{esc(info.description)}</p>"]
    if info.references:
        refs = "".join(f"<li>{link(ref.get('url'), ref.get('title') or ref.get('url'))}</li>"
                       for ref in info.references)
        parts.append(f"<h2>References</h2><ul>{refs}</ul>")
    tables = {k: v for k, v in stats.table_rows(data.rows).items() if k[0] == info.task_id}
    if not tables:
        parts.append('<p class="muted">No results yet.</p>')
    for (_, tier), rows in sorted(tables.items(), key=lambda kv: _tier_order(kv[0][1])):
        first = rows[0]
        better = "lower" if first["direction"] == "min" else "higher"
        parts.append(f'<h2 id="tier-{esc(tier)}">Tier {esc(tier)}</h2>')
        parts.append(f'<p class="muted">Ranked by <code>{esc(first["primary_metric"])}</code> ({better} is better); '
                     f"compared with the reference <code>{esc(first['reference_method'])}</code> by a bootstrap "
                     "interval of the difference, paired by seed where both ran it. Click a header to sort.</p>")
        parts.append(task_table(rows, data.submissions, root))
        plots = _curve_plots(info.task_id, tier, data.records, [r["method"] for r in rows])
        if plots:
            parts.append(f"<h3>Curves behind the numbers (tier {esc(tier)})</h3>{plots}")
    parts.append(f"<h2>Task spec</h2><pre><code>{esc(info.spec_yaml)}</code></pre>")
    return _page(info.title, "\n".join(parts), root)


def _tier_order(tier: str) -> tuple[int, str]:
    order = {"full": 0, "default": 1, "smoke": 2}
    return order.get(tier, 3), tier


def method_page(name: str, data: SiteData) -> str:
    root = "../"
    rows = [r for r in data.rows if r["method_name"] == name]
    recs = [r for r in data.records if r.method.name == name]
    parts = [f"<h1>{esc(name)}</h1>"]
    desc = data.method_descriptions.get(name)
    if desc:
        parts.append(f"<p>{esc(desc)}</p>")
    families = sorted({r.family for r in recs})
    facts = [("family", ", ".join(families)), ("versions", ", ".join(sorted({r.method.version for r in recs}))),
             ("resolved as", ", ".join(sorted({r.method.ref for r in recs})))]
    dl = "".join(f"<dt>{esc(k)}</dt><dd>{esc(v)}</dd>" for k, v in facts)
    dl += f"<dt>source</dt><dd>{_source_links(recs, data.source_url)}</dd>"
    sub = _submitted_by({"method_ref": recs[0].method.ref, "method_name": name}, data.submissions) if recs else None
    if sub:
        dl += f"<dt>submitted by</dt><dd>{esc(', '.join(sub.authors))}</dd>"
        if sub.paper:
            dl += f"<dt>paper</dt><dd>{link(sub.paper, sub.paper)}</dd>"
        if sub.code:
            dl += f"<dt>code</dt><dd>{link(sub.code, sub.code)}</dd>"
        if sub.description:
            dl += f"<dt>description</dt><dd>{esc(sub.description)}</dd>"
    parts.append(f'<dl class="kv">{dl}</dl>')
    parts.append("<h2>Variants and hyperparameters</h2>")
    variants: dict[str, dict[str, Any]] = {}
    for r in sorted(recs, key=lambda r: (r.finished_at, r.key)):
        variants[r.method.label] = r.method.hyperparameters
    for label, hp in sorted(variants.items()):
        body = [f"<tr><td><code>{esc(k)}</code></td><td>{esc(json.dumps(v, sort_keys=True))}</td></tr>"
                for k, v in sorted(hp.items())]
        parts.append(f"<h3>{esc(label)}</h3>")
        parts.append(_table(["hyperparameter", "value"], body, sortable=False) if body
                     else '<p class="muted">No hyperparameters.</p>')
    parts.append("<h2>Results</h2>")
    body = []
    for r in sorted(rows, key=lambda r: (r["task_id"], _tier_order(r["tier"]), r["method"])):
        prim = next(c for c in r["columns"] if c["metric"] == r["primary_metric"]) if any(
            c["metric"] == r["primary_metric"] for c in r["columns"]) else r["columns"][0]
        body.append("<tr>" + "".join([
            _cell(f'<a href="{root}tasks/{esc(slug(r["task_id"]))}.html#tier-{esc(r["tier"])}">'
                  f'{esc(r["task_id"])}</a>', r["task_id"]),
            _cell(esc(r["tier"]), r["tier"]),
            _cell(esc(r["method"]), r["method"], "method"),
            _cell(esc(stats.format_cell(r, prim)), r["primary"], "num"),
            _cell(esc("–" if r["rank"] is None else r["rank"]), r["rank"], "num"),
            _cell(esc(f"{r['successes']}/{r['seeds']}"), r["success_rate"], "num"),
        ]) + "</tr>")
    parts.append(_table(["task", "tier", "variant", "primary metric", "rank", "success"], body))
    return _page(name, "\n".join(parts), root)


def _source_links(recs: Sequence[RunRecord], source_url: str | None) -> str:
    """Source of the method: an http(s) URL as a link; a file in this checkout linked under `source_url`
    (e.g. ``https://github.com/ORG/REPO/blob/main/``) or shown as its relative path; anything else as text."""
    out = []
    for src in sorted({r.method.source for r in recs if r.method.source}):
        if safe_url(src):
            out.append(link(src, src))
            continue
        path = Path(src)
        try:
            if not path.is_absolute():
                raise ValueError("a source path is recorded absolute; anything else is shown as text")
            rel = path.resolve().relative_to(REPO_ROOT).as_posix()
        except (ValueError, OSError):
            out.append(f"<code>{esc(src if not path.is_absolute() else path.name)}</code>")
            continue
        base = safe_url(source_url) if source_url else None
        out.append(link(base.rstrip("/") + "/" + quote(rel), rel) if base else f"<code>{esc(rel)}</code>")
    return ", ".join(out) or '<span class="muted">unknown</span>'


def index_page(data: SiteData) -> str:
    root = ""
    parts = ["<h1>phenomena-bench leaderboard</h1>",
             '<p class="lead">Deep-learning phenomena as benchmarks: one table per task, intervals over seeds, the '
             "curves behind every number.</p>"]
    tables = stats.table_rows(data.rows)
    for fam, desc in data.families.items():
        parts.append(f'<h2 id="family-{esc(slug(fam))}">{esc(fam)}</h2>')
        if desc:
            parts.append(f"<p>{esc(desc)}</p>")
        fam_tasks = sorted((t for t in data.tasks.values() if t.family == fam), key=lambda t: t.task_id)
        if not fam_tasks:
            parts.append('<p class="muted">No tasks.</p>')
            continue
        body = []
        for t in fam_tasks:
            results = sorted(((tier, rows) for (tid, tier), rows in tables.items() if tid == t.task_id),
                             key=lambda kv: _tier_order(kv[0]))
            href = f"tasks/{esc(slug(t.task_id))}.html"
            if not results:
                body.append("<tr>" + _cell(f'<a href="{href}">{esc(t.task_id)}</a>', t.task_id)
                            + _cell(esc(t.title)) + _cell("–") + _cell('<span class="muted">no results</span>', "")
                            + _cell("–") + _cell("–", 0) + "</tr>")
                continue
            for tier, rows in results:
                best = rows[0] if rows[0]["rank"] is not None else None
                prim = next((c for c in rows[0]["columns"] if c["metric"] == rows[0]["primary_metric"]),
                            rows[0]["columns"][0])
                best_cell = (f'<a href="methods/{esc(slug(best["method_name"]))}.html">{esc(best["method"])}</a>'
                             if best else '<span class="muted">none finished</span>')
                body.append("<tr>" + "".join([
                    _cell(f'<a href="{href}#tier-{esc(tier)}">{esc(t.task_id)}</a>', t.task_id),
                    _cell(esc(t.title), t.title),
                    _cell(esc(tier), tier),
                    _cell(best_cell, best["method"] if best else ""),
                    _cell(esc(stats.format_cell(best, prim)) if best else "–", best["primary"] if best else None,
                          "num"),
                    _cell(esc(len(rows)), len(rows), "num"),
                ]) + "</tr>")
        parts.append(_table(["task", "title", "tier", "best method", "its primary metric", "methods"], body))
        fam_summ = [s for s in data.summaries if s["family"] == fam]
        for tier in sorted({s["tier"] for s in fam_summ}, key=_tier_order):
            summ = sorted((s for s in fam_summ if s["tier"] == tier),
                          key=lambda s: (-(s["iqm"] if s["iqm"] is not None else -1), s["method"]))
            rows_html = []
            for s in summ:
                ci = s["iqm_ci"]
                iqm_text = "–" if s["iqm"] is None else stats.format_number(s["iqm"]) + (
                    f" [{stats.format_number(ci[0])}, {stats.format_number(ci[1])}]" if ci else "")
                rows_html.append("<tr>" + "".join([
                    _cell(esc(s["method"]), s["method"], "method"),
                    _cell(esc(iqm_text), s["iqm"], "num"),
                    _cell(esc(f"{s['profile_score']:.3f}"), s["profile_score"], "num"),
                    _cell(esc(f"{s['tasks']}/{s['tasks_total']}"), s["tasks"], "num"),
                ]) + "</tr>")
            parts.append(f"<h3>Across {esc(fam)} tasks, tier {esc(tier)}</h3>")
            parts.append('<p class="muted">IQM: interquartile mean over all runs of all tasks of the score relative '
                         "to the reference median (1 = as good as the reference, higher is better; a run censored "
                         "at the budget scores 0), with a stratified-bootstrap 95% interval. Profile score: area "
                         "under the Dolan–Moré performance profile up to 4× the best, in [0, 1].</p>")
            parts.append(_table(["method", "IQM [95% CI]", "profile score", "tasks"], rows_html))
            if summ:
                series = [(s["method"], s["profile_taus"], s["profile"]) for s in summ]
                parts.append('<div class="plots"><figure>' + svg_plot(
                    series, x_label="ratio to the best method (τ)", y_label="fraction of tasks",
                    title=f"performance profile, {fam}, tier {tier}", log_x=False)
                    + f"<figcaption>Performance profile ({esc(fam)}, tier {esc(tier)}): fraction of tasks on which "
                    "the method is within τ of the best.</figcaption></figure></div>")
    return _page("leaderboard", "\n".join(parts), root)


# ------------------------------------------------------------------------------------------- building


def build_site(data: SiteData, out: Path) -> list[Path]:
    """Write the site into `out` (created; files from an earlier build are replaced). Returns the pages."""
    out.mkdir(parents=True, exist_ok=True)
    for sub in ("tasks", "methods", "assets", "data"):
        if (out / sub).is_dir():
            shutil.rmtree(out / sub)
        (out / sub).mkdir()
    for asset in sorted((ASSETS_DIR / "assets").iterdir()):
        if asset.is_file():
            shutil.copyfile(asset, out / "assets" / asset.name)
    pages: list[Path] = []

    def write(rel: str, text: str) -> None:
        path = out / rel
        path.write_text(text, encoding="utf-8")
        pages.append(path)

    write("index.html", index_page(data))
    for task_id, info in sorted(data.tasks.items()):
        write(f"tasks/{slug(task_id)}.html", task_page(info, data))
    for name in sorted({r.method.name for r in data.records}):
        write(f"methods/{slug(name)}.html", method_page(name, data))
    (out / "data" / "records.json").write_text(
        json.dumps([r.model_dump(mode="json") for r in data.records], indent=1, sort_keys=True), encoding="utf-8")
    (out / "data" / "leaderboard.json").write_text(
        json.dumps({"benchmark_version": __version__, "rows": data.rows, "families": data.summaries},
                   indent=1, sort_keys=True, allow_nan=False), encoding="utf-8")
    return pages


def markdown(rows: Sequence[Mapping[str, Any]], summaries: Sequence[Mapping[str, Any]] = ()) -> str:
    """The leaderboard as GitHub Markdown: a table per (task, tier), then the cross-task summary per family."""
    parts = [f"## phenomena-bench results (benchmark {__version__})", stats.format_table(rows, fmt="github")]
    if summaries:
        from tabulate import tabulate

        body = [[stats._md_escape(s["family"]), s["tier"], stats._md_escape(s["method"]),
                 "–" if s["iqm"] is None else stats.format_number(s["iqm"]),
                 f"{s['profile_score']:.3f}", f"{s['tasks']}/{s['tasks_total']}"] for s in summaries]
        parts.append("### Across tasks (IQM of reference-normalised scores; performance-profile score)\n\n"
                     + tabulate(body, headers=["family", "tier", "method", "IQM", "profile score", "tasks"],
                                tablefmt="github", disable_numparse=True))
    return "\n\n".join(parts) + "\n"
