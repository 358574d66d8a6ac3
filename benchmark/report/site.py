"""The static leaderboard site, built from the results store and rendered from Jinja2 templates.

The site is plain files (HTML, one CSS file, one small script, inline SVG plots, the raw data as JSON): it
needs no server and loads nothing from the network, so it can be opened from disk, served by any static host
or attached to a release. Layout::

    index.html                 families, their tasks, the best method of each, cross-task IQM and profiles
    tasks/<slug>.html          per task: a sortable table per tier, plots of the curves, the spec as YAML
    methods/<slug>.html        per method: hyperparameters of each variant, source link, submitters, results
    data/records.json          every record the site was built from; data/leaderboard.json: the rows
    assets/style.css, assets/sort.js

Anything a submission controls (method names and labels, descriptions, hyperparameter values, URLs, author
names) is untrusted. This module builds view data only (text, sort keys, internal links made of
:func:`slug` names); the templates (``leaderboard/templates``) turn it into HTML with autoescaping on, so no
text is ever markup, and an external URL becomes a link only if :func:`safe_url` accepts it (the ``link``
macro). The pages also carry a Content-Security-Policy that allows only the site's own script and stylesheet,
a second line of defence should an escape ever be missed.

The build is deterministic: no clock, sorted inputs, seeded bootstrap — the same store gives the same bytes.
"""

from __future__ import annotations

import json
import re
import shutil
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from importlib.resources import files
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import jinja2
import yaml
from markupsafe import Markup

from phenomena_bench import __version__
from phenomena_bench.analysis.rows import (
    Families,
    FamilySummary,
    Row,
    aggregate,
    by_table,
    family_summary,
    scoring_records,
)
from phenomena_bench.analysis.tables import Table, build_table, format_interval, format_number, format_summary
from phenomena_bench.core.errors import BenchmarkError
from phenomena_bench.core.hashing import sha256_hex
from phenomena_bench.report.plots import Plot, line_plot
from phenomena_bench.store import RunRecord

ASSETS_DIR = Path(str(files("phenomena_bench.leaderboard")))
REPO_ROOT = Path(__file__).resolve().parents[2]
TIER_ORDER = {"full": 0, "default": 1, "smoke": 2}


# ------------------------------------------------------------------------------------------- URLs and names


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


#: What a slug with a hash looks like at its end; a name that already ends like this is hashed too.
_HASHED = re.compile(r"-[0-9a-f]{8}$")


def slug(name: str) -> str:
    """A file name for a task id or method label: readable, and unique.

    A name made only of ``[a-z0-9_.-]`` (not starting with ``.`` or ``-``, at most 80 characters, not ending
    in ``-`` and eight hex digits) is its own slug. Any other name gets a cleaned prefix plus ``-`` and eight
    hex digits of its hash, so two different labels never share a page (`a/b` and `a-b`, `A` and `a`, or a
    name spelled like another's hashed slug): unhashed slugs never end like hashed ones, and hashed ones
    differ in the hash.
    """
    clean = re.sub(r"[^a-z0-9_.-]+", "-", name.lower()).strip("-.") or "x"
    if clean != name or len(name) > 80 or _HASHED.search(name):
        clean = f"{clean[:60]}-{sha256_hex(name)[:8]}"
    return clean


@cache
def environment() -> jinja2.Environment:
    """The site's template environment: templates from the package, autoescaping on for every template."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(ASSETS_DIR / "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["slug"] = slug
    env.filters["safe_url"] = safe_url
    return env


def render_plot(plot: Plot) -> Markup:
    """A plot as inline SVG (or a note when it has no finite point)."""
    return Markup(environment().get_template("plot.svg").render(plot=plot))


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
    rows: list[Row]
    summaries: list[FamilySummary]
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
        out.append(
            SubmissionInfo(
                name=m.name,
                authors=[p.name + (f" ({p.affiliation})" if p.affiliation else "") for p in m.authors],
                paper=str(m.paper) if m.paper else None,
                code=str(m.code) if m.code else None,
                entry_point=m.entry_point,
                description=m.description,
            )
        )
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
    """Everything the site shows, computed once; `families` overrides the family registry (tests).

    Development seeds never reach the site: not in a table, a plot, a method page or the raw data.
    """
    records = scoring_records(records)
    lookup: Families = families
    rows = aggregate(records, lookup)
    summaries = family_summary(rows, records, lookup)
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
        method_descriptions=dict(method_descriptions)
        if method_descriptions is not None
        else _installed_method_descriptions(),
        source_url=source_url,
    )


# ------------------------------------------------------------------------------------------- view data


@dataclass(frozen=True)
class SiteCell:
    """A table cell as the ``table`` macro draws it: text, sort key, CSS class, an internal link, or muted."""

    text: str
    sort: float | int | str | None = None
    cls: str = ""
    href: str | None = None
    muted: bool = False


@dataclass(frozen=True)
class SiteTable:
    headers: list[str]
    rows: list[list[SiteCell]]
    sortable: bool = True


@dataclass(frozen=True)
class Figure:
    plot: Plot
    caption: str


@dataclass(frozen=True)
class SourceLink:
    """A method's source: an external link when `url` is set, else text shown as code."""

    text: str
    url: str | None = None


def tier_order(tier: str) -> tuple[int, str]:
    return TIER_ORDER.get(tier, 3), tier


def _submitted_by(ref: str, name: str, submissions: Sequence[SubmissionInfo]) -> SubmissionInfo | None:
    """The submission a method came from, matched by its entry point or name (None: a shipped baseline)."""
    return next((s for s in submissions if ref in {s.entry_point, s.name} or name == s.name), None)


def attribution(
    name: str, ref: str, records: Sequence[RunRecord], submissions: Sequence[SubmissionInfo]
) -> tuple[str, bool]:
    """Who a method is by, and whether that text is a muted default: the installed distribution's metadata
    (author, name, version) as recorded with its runs, the manifest's authors added to it; "baseline" only
    for a method this project ships (recorded as from the phenomena-bench distribution, or, for a record
    older than that field, a shipped baseline's name); anything else says it is unattributed."""
    sub = _submitted_by(ref, name, submissions)
    identities = [r.method for r in sorted(records, key=lambda r: r.finished_at) if r.method.name == name]
    latest = identities[-1] if identities else None
    dist = latest.distribution if latest else None
    shipped = dist == "phenomena-bench" or (
        dist is None and latest is not None and latest.code is None and name in _baseline_names()
    )
    people = list(sub.authors) if sub else []
    if latest is not None and latest.author and not shipped and latest.author not in people:
        people.append(latest.author)
    package = f"{dist} {latest.distribution_version or ''}".strip() if dist and latest and not shipped else None
    if people:
        return ", ".join(people) + (f" ({package})" if package else ""), False
    if package:
        return package, False
    if shipped:
        return "baseline", True
    return "unattributed (no manifest, not installed)", True


def _baseline_names() -> frozenset[str]:
    from phenomena_bench.registry import baseline_classes

    try:
        return frozenset(baseline_classes())
    except Exception:  # the site can be built where the baselines do not import: then none is assumed
        return frozenset()


def _method_href(root: str, method_name: str) -> str:
    return f"{root}methods/{slug(method_name)}.html"


def results_table(
    table: Table, submissions: Sequence[SubmissionInfo], root: str, records: Sequence[RunRecord] = ()
) -> SiteTable:
    """A (task, tier) table with every column, plus who submitted each method (:func:`attribution`); the
    method links to its page."""
    keep = [i for i, c in enumerate(table.columns) if c.key not in {"version", "date"}]
    tail = [i for i, c in enumerate(table.columns) if c.key in {"version", "date"}]
    headers = [table.columns[i].title for i in keep] + ["submitted by"] + [table.columns[i].title for i in tail]
    body = []
    for trow in table.rows:
        cells = []
        for i in [*keep, -1, *tail]:
            if i == -1:
                authors, muted = attribution(trow.row.method_name, trow.row.method_ref, records, submissions)
                cells.append(SiteCell(authors, authors, muted=muted))
                continue
            col, cell = table.columns[i], trow.cells[i]
            if col.key == "method":
                cells.append(SiteCell(cell.text, cell.sort, "method", _method_href(root, trow.row.method_name)))
            else:
                cls = cell.tone or ("num" if col.numeric else "")
                cells.append(SiteCell(cell.text, cell.sort, cls))
        body.append(cells)
    return SiteTable(headers, body)


def _curve_figures(
    task_id: str, tier: str, records: Sequence[RunRecord], labels_in_order: Sequence[str]
) -> list[Figure]:
    """One plot per curve name, every seed of every method drawn in the method's colour."""
    by_curve: dict[str, list[tuple[str, list[float | None], list[float | None]]]] = {}
    x_labels: dict[str, str] = {}
    order = {label: i for i, label in enumerate(labels_in_order)}
    recs = sorted(
        (r for r in records if r.task_id == task_id and r.tier == tier and r.curves),
        key=lambda r: (order.get(r.method.label, len(order)), r.method.label, r.seed),
    )
    for r in recs:
        for name, curve in sorted(r.curves.items()):
            xs, ys = curve.get("x"), curve.get("y")
            if not isinstance(xs, list) or not isinstance(ys, list):
                continue
            by_curve.setdefault(name, []).append((r.method.label, [_num(v) for v in xs], [_num(v) for v in ys]))
            x_labels.setdefault(name, str(curve.get("x_label") or "x"))
    figs = []
    for name, series in by_curve.items():
        title = f"{name} vs {x_labels[name]}"
        plot = line_plot(series, x_label=x_labels[name], y_label=name, title=title, order=labels_in_order)
        figs.append(Figure(plot, f"{title}, every seed of every method (tier {tier})"))
    return figs


def _num(v: Any) -> float | None:
    if isinstance(v, bool) or not isinstance(v, int | float):
        return None
    return float(v)


def _source_links(recs: Sequence[RunRecord], source_url: str | None) -> list[SourceLink]:
    """Source of the method: an http(s) URL as a link; a file in this checkout linked under `source_url`
    (e.g. ``https://github.com/ORG/REPO/blob/main/``) or shown as its relative path; anything else as text."""
    out = []
    for src in sorted({r.method.source for r in recs if r.method.source}):
        if safe_url(src):
            out.append(SourceLink(src, src))
            continue
        path = Path(src)
        try:
            if not path.is_absolute():
                raise ValueError("a source path is recorded absolute; anything else is shown as text")
            rel = path.resolve().relative_to(REPO_ROOT).as_posix()
        except (ValueError, OSError):
            out.append(SourceLink(src if not path.is_absolute() else path.name))
            continue
        base = safe_url(source_url) if source_url else None
        out.append(SourceLink(rel, base.rstrip("/") + "/" + quote(rel) if base else None))
    return out


def _primary_text(row: Row) -> str:
    col = row.primary_column
    return format_summary(col, row.cells[col.metric])


# ------------------------------------------------------------------------------------------- pages


def _render(template: str, title: str, root: str, **context: Any) -> str:
    return environment().get_template(template).render(title=title, root=root, version=__version__, **context)


def task_page(info: TaskInfo, data: SiteData) -> str:
    root = "../"
    groups = {k: v for k, v in by_table(data.rows).items() if k[0] == info.task_id}
    tiers = []
    for (_, tier), rows in sorted(groups.items(), key=lambda kv: tier_order(kv[0][1])):
        table = build_table(rows)
        tiers.append(
            {
                "tier": tier,
                "primary_metric": table.primary_metric,
                "better": "lower" if table.direction == "min" else "higher",
                "reference": table.reference_method,
                "table": results_table(table, data.submissions, root, data.records),
                "notes": list(table.notes),
                "figures": _curve_figures(info.task_id, tier, data.records, [r.method for r in rows]),
            }
        )
    return _render("task.html", info.title, root, info=info, tiers=tiers)


def method_page(name: str, data: SiteData) -> str:
    root = "../"
    rows = [r for r in data.rows if r.method_name == name]
    recs = [r for r in data.records if r.method.name == name]
    facts = [
        ("family", ", ".join(sorted({r.family for r in recs}))),
        ("versions", ", ".join(sorted({r.method.version for r in recs}))),
        ("resolved as", ", ".join(sorted({r.method.ref for r in recs}))),
    ]
    submission = _submitted_by(recs[0].method.ref, name, data.submissions) if recs else None
    by, _ = attribution(name, recs[0].method.ref if recs else name, recs, data.submissions)
    facts.append(("submitted by", by))
    variants: dict[str, dict[str, Any]] = {}
    for r in sorted(recs, key=lambda r: (r.finished_at, r.key)):
        variants[r.method.label] = r.method.hyperparameters
    variant_views = [
        {
            "label": label,
            "table": SiteTable(
                ["hyperparameter", "value"],
                [[SiteCell(k), SiteCell(json.dumps(v, sort_keys=True))] for k, v in sorted(hp.items())],
                sortable=False,
            ),
        }
        for label, hp in sorted(variants.items())
    ]
    results = SiteTable(
        ["task", "tier", "variant", "primary metric", "rank", "success"],
        [
            [
                SiteCell(r.task_id, r.task_id, href=f"{root}tasks/{slug(r.task_id)}.html#tier-{r.tier}"),
                SiteCell(r.tier, r.tier),
                SiteCell(r.method, r.method, "method"),
                SiteCell(_primary_text(r), r.primary, "num"),
                SiteCell("–" if r.rank is None else str(r.rank), r.rank, "num"),
                SiteCell(f"{r.successes}/{r.seeds}", r.success_rate, "num"),
            ]
            for r in sorted(rows, key=lambda r: (r.task_id, tier_order(r.tier), r.method))
        ],
    )
    return _render(
        "method.html",
        name,
        root,
        name=name,
        description=data.method_descriptions.get(name),
        facts=facts,
        sources=_source_links(recs, data.source_url),
        submission=submission,
        variants=variant_views,
        results=results,
    )


def _task_overview(tasks: Sequence[TaskInfo], groups: Mapping[tuple[str, str], list[Row]]) -> SiteTable:
    """One line per (task, tier) of a family: its best method and that method's primary metric."""
    body = []
    for t in tasks:
        href = f"tasks/{slug(t.task_id)}.html"
        results = sorted(
            ((tier, rows) for (tid, tier), rows in groups.items() if tid == t.task_id), key=lambda kv: tier_order(kv[0])
        )
        if not results:
            body.append(
                [
                    SiteCell(t.task_id, t.task_id, href=href),
                    SiteCell(t.title),
                    SiteCell("–"),
                    SiteCell("no results", "", muted=True),
                    SiteCell("–"),
                    SiteCell("–", 0),
                ]
            )
            continue
        for tier, rows in results:
            best = rows[0] if rows[0].rank is not None else None
            body.append(
                [
                    SiteCell(t.task_id, t.task_id, href=f"{href}#tier-{tier}"),
                    SiteCell(t.title, t.title),
                    SiteCell(tier, tier),
                    SiteCell(best.method, best.method, href=_method_href("", best.method_name))
                    if best
                    else SiteCell("none finished", "", muted=True),
                    SiteCell(_primary_text(best) if best else "–", best.primary if best else None, "num"),
                    SiteCell(str(len(rows)), len(rows), "num"),
                ]
            )
    return SiteTable(["task", "title", "tier", "best method", "its primary metric", "methods"], body)


def _summary_views(fam: str, summaries: Sequence[FamilySummary]) -> list[dict[str, Any]]:
    views = []
    for tier in sorted({s.tier for s in summaries}, key=tier_order):
        summ = sorted(
            (s for s in summaries if s.tier == tier), key=lambda s: (-(s.iqm if s.iqm is not None else -1), s.method)
        )
        table = SiteTable(
            ["method", "IQM [95% CI]", "profile score", "tasks"],
            [
                [
                    SiteCell(s.method, s.method, "method"),
                    SiteCell(_iqm_text(s), s.iqm, "num"),
                    SiteCell(f"{s.profile_score:.3f}", s.profile_score, "num"),
                    SiteCell(f"{s.tasks}/{s.tasks_total}", s.tasks, "num"),
                ]
                for s in summ
            ],
        )
        figures = []
        if summ:
            plot = line_plot(
                [(s.method, s.profile_taus, s.profile) for s in summ],
                x_label="ratio to the best method (τ)",
                y_label="fraction of tasks",
                title=f"performance profile, {fam}, tier {tier}",
                log_x=False,
            )
            figures.append(
                Figure(
                    plot,
                    f"Performance profile ({fam}, tier {tier}): fraction of tasks on which the "
                    "method is within τ of the best.",
                )
            )
        views.append({"tier": tier, "table": table, "figures": figures})
    return views


def _iqm_text(s: FamilySummary) -> str:
    if s.iqm is None:
        return "–"
    return format_number(s.iqm) + (f" {format_interval(*s.iqm_interval)}" if s.iqm_interval else "")


def index_page(data: SiteData) -> str:
    groups = by_table(data.rows)
    families = []
    for fam, desc in data.families.items():
        fam_tasks = sorted((t for t in data.tasks.values() if t.family == fam), key=lambda t: t.task_id)
        families.append(
            {
                "name": fam,
                "description": desc,
                "tasks": _task_overview(fam_tasks, groups) if fam_tasks else None,
                "summaries": _summary_views(fam, [s for s in data.summaries if s.family == fam]),
            }
        )
    return _render("index.html", "leaderboard", "", families=families)


# ------------------------------------------------------------------------------------------- building


def guide_page(family: str) -> str:
    """A family's submission guide (:mod:`phenomena_bench.report.guide`), with the shipped tasks' budgets."""
    from markupsafe import Markup

    from phenomena_bench.core.errors import BenchmarkError
    from phenomena_bench.registry import load_tasks, task_dirs
    from phenomena_bench.report.guide import family_guide, guide_html

    try:
        specs = [spec for _, spec in load_tasks(task_dirs()).values() if spec.family == family]
    except BenchmarkError:  # the guide does not need the budgets table to be useful
        specs = []
    body = Markup(guide_html(family_guide(family, specs)))  # noqa: S704  # every text piece is escaped
    return _render("guide.html", f"submitting a {family} method", "../", family=family, body=body)


def build_site(data: SiteData, out: Path) -> list[Path]:
    """Write the site into `out` (created; files from an earlier build are replaced). Returns the pages."""
    out.mkdir(parents=True, exist_ok=True)
    for sub in ("tasks", "methods", "guide", "assets", "data"):
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
    from phenomena_bench.registry import family_names

    for family in sorted(set(data.families) & set(family_names())):
        write(f"guide/{slug(family)}.html", guide_page(family))
    (out / "data" / "records.json").write_text(
        json.dumps([r.model_dump(mode="json") for r in data.records], indent=1, sort_keys=True), encoding="utf-8"
    )
    board = {
        "benchmark_version": __version__,
        "rows": [r.model_dump(mode="json") for r in data.rows],
        "families": [s.model_dump(mode="json") for s in data.summaries],
    }
    (out / "data" / "leaderboard.json").write_text(
        json.dumps(board, indent=1, sort_keys=True, allow_nan=False), encoding="utf-8"
    )
    return pages
