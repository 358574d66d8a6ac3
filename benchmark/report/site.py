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
from phenomena_bench.analysis.fidelity import FIDELITY_TEXT, FidelityResult, baseline_claims, evaluate_claims
from phenomena_bench.analysis.gates import BADGE_TEXT, Badge, GateResult, evaluate_gates, load_specs, tier_badges
from phenomena_bench.analysis.rows import (
    Families,
    FamilySummary,
    Row,
    aggregate,
    by_table,
    family_summary,
    scoring_records,
    tuning_notes,
)
from phenomena_bench.analysis.tables import Table, build_table, format_interval, format_number, format_summary
from phenomena_bench.analysis.variants import HeldOutRow, heldout_rows
from phenomena_bench.core.errors import BenchmarkError
from phenomena_bench.core.hashing import sha256_hex
from phenomena_bench.core.measurement import MeasurementResult, MeasurementTable
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
    #: Stored measurements (:mod:`phenomena_bench.core.measurement`), shown on their task's page.
    measurements: list[MeasurementResult] = field(default_factory=list)
    #: Per (task, tier): its phenomenon badge and the gate results behind it (:mod:`analysis.gates`).
    gates: dict[tuple[str, str], tuple[Badge, list[GateResult]]] = field(default_factory=dict)
    #: Every baseline claim checked on the runs (:mod:`analysis.fidelity`).
    fidelity: list[FidelityResult] = field(default_factory=list)
    #: Held-out variant scores per (public task, tier, method, salt) (:mod:`analysis.variants`).
    heldout: list[HeldOutRow] = field(default_factory=list)


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
        if r.task_id in infos or r.variant is not None:  # a held-out variant is shown on its public task's page
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
    measurements: Sequence[MeasurementResult] = (),
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
        measurements=sorted(measurements, key=lambda m: (m.task_id, tier_order(m.tier), m.measurement)),
        gates=tier_badges(
            evaluate_gates(records, load_specs(_folders(tasks_dir)), lookup), {(r.task_id, r.tier) for r in rows}
        ),
        fidelity=evaluate_claims(records, baseline_claims(), lookup),
        heldout=heldout_rows(records, lookup),
    )


def _folders(tasks_dir: Path | Sequence[Path] | None) -> list[Path] | None:
    """`tasks_dir` as a list of folders (``None``: the configured ones)."""
    return None if tasks_dir is None else [tasks_dir] if isinstance(tasks_dir, Path) else list(tasks_dir)


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
    table: Table,
    submissions: Sequence[SubmissionInfo],
    root: str,
    records: Sequence[RunRecord] = (),
    claims: Mapping[str, SiteCell] | None = None,
    heldout: Sequence[HeldOutRow] = (),
) -> SiteTable:
    """A (task, tier) table with every column, plus who submitted each method (:func:`attribution`) and, when
    `claims` has any (method name -> fidelity cell), whether each baseline reproduces its paper here; the
    method links to its page. With `heldout` rows (:mod:`analysis.variants`), each salt's held-out score and
    its gap to the public one sit right after the public columns."""
    salts = sorted({h.salt for h in heldout})
    by_method = {(h.method, h.salt): h for h in heldout}
    keep = [i for i, c in enumerate(table.columns) if c.key not in {"version", "date"}]
    tail = [i for i, c in enumerate(table.columns) if c.key in {"version", "date"}]
    extra = [-2] if claims else []
    order = [j for i in keep for j in ([i, -3] if salts and table.columns[i].key == table.primary_metric else [i])]
    headers = [h for i in order for h in ([table.columns[i].title] if i >= 0 else _heldout_headers(salts))]
    headers += ["paper's claim"] * len(extra) + ["submitted by"]
    headers += [table.columns[i].title for i in tail]
    body = []
    for trow in table.rows:
        cells = []
        for i in [*order, *extra, -1, *tail]:
            if i == -3:
                cells += [c for salt in salts for c in _heldout_cells(by_method.get((trow.row.method, salt)))]
                continue
            if i == -2:
                cells.append((claims or {}).get(trow.row.method_name) or SiteCell("–", "", muted=True))
                continue
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


def _heldout_headers(salts: Sequence[str]) -> list[str]:
    return [h for salt in salts for h in (f"held-out variants (salt {salt})", f"gap (salt {salt})")]


def _heldout_cells(row: HeldOutRow | None) -> list[SiteCell]:
    """A method's held-out score and its gap to the public score (muted dashes when it has none)."""
    if row is None:
        return [SiteCell("–", None, muted=True), SiteCell("–", None, muted=True)]
    gap = "–" if row.gap is None else f"{row.gap:+.{row.column.digits}g}"
    return [
        SiteCell(format_summary(row.column, row.heldout), row.heldout_value, "num"),
        SiteCell(gap, row.gap, "num"),
    ]


def _heldout_notes(rows: Sequence[HeldOutRow]) -> list[str]:
    """Under a tier's table: which variants each salt drew and how to read the gap."""
    notes = []
    for salt in sorted({h.salt for h in rows}):
        variants = {vid: text for h in rows if h.salt == salt for vid, text in h.variants.items()}
        listed = "; ".join(variants.values())
        notes.append(f"held-out variants drawn with salt {salt!r} ({len(variants)}): {listed}")
    if rows:
        worse = "higher" if rows[0].direction == "min" else "lower"
        notes.append(
            f"held-out: {rows[0].primary_metric} pooled over every (variant, seed) run, the same not-ok rule as the "
            f"public column; gap = held-out - public ({worse} than 0: worse on unseen variants of the task)"
        )
    return notes


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
        heldout = [h for h in data.heldout if h.task_id == info.task_id and h.tier == tier]
        tiers.append(
            {
                "tier": tier,
                "primary_metric": table.primary_metric,
                "better": "lower" if table.direction == "min" else "higher",
                "reference": table.reference_method,
                "badge": gate_badge(data, info.task_id, tier),  # shown above the table: what the tier measures
                "table": results_table(
                    table, data.submissions, root, data.records, fidelity_cells(data, info.task_id, tier), heldout
                ),
                "notes": [*table.notes, *tuning_notes(rows), *_heldout_notes(heldout)],  # tuned rows: their budget
                "figures": _curve_figures(info.task_id, tier, data.records, [r.method for r in rows]),
            }
        )
    measurements = [measurement_view(m) for m in data.measurements if m.task_id == info.task_id]
    return _render("task.html", info.title, root, info=info, tiers=tiers, measurements=measurements)


#: CSS class of each phenomenon badge and fidelity result (``.badge-*`` in assets/style.css).
_BADGE_CLASS: dict[str, str] = {
    "reproduced": "better",
    "not_reproduced": "worse",
    "not_checked": "muted",
    "underpowered": "muted",
}
_GATE_STATUS = {"passed": "passed", "failed": "failed", "not_enough_runs": "not checked (too few seeds)"}


def gate_badge(data: SiteData, task_id: str, tier: str) -> dict[str, Any] | None:
    """The phenomenon badge of a (task, tier): its kind, text and one line per gate (failed ones first);
    ``None`` for a tier that declares no gate."""
    badge, results = data.gates.get((task_id, tier), ("unclaimed", []))
    if badge == "unclaimed":
        return None
    failed = next((r for r in results if r.status == "failed"), None)
    return {
        "kind": badge,
        "text": BADGE_TEXT[badge],
        "failed": f"{failed.gate.describe()}, measured {failed.measured()}" if failed else None,
        "why": failed.gate.why if failed else None,
        "lines": [f"{r.gate.describe()} ({r.method}): {r.measured()}: {_GATE_STATUS[r.status]}" for r in results],
    }


def _fidelity_cell(results: Sequence[FidelityResult]) -> SiteCell:
    """One method's claims on one (task, tier) as a cell: each result, its effect and interval when not
    reproduced."""
    parts = [
        FIDELITY_TEXT[r.status] + (f" ({r.effect()})" if r.status == "not_reproduced" else "")
        if len(results) == 1
        else f"{r.claim.describe()}: {FIDELITY_TEXT[r.status]}"
        for r in results
    ]
    worst = min(results, key=lambda r: ["not_reproduced", "underpowered", "reproduced"].index(r.status))
    return SiteCell("; ".join(parts), worst.status, _BADGE_CLASS[worst.status])


def fidelity_cells(data: SiteData, task_id: str, tier: str) -> dict[str, SiteCell]:
    """Method name -> its fidelity cell on (task, tier), for the baselines whose claims apply there."""
    by_method: dict[str, list[FidelityResult]] = {}
    for r in data.fidelity:
        if (r.task, r.tier) == (task_id, tier):
            by_method.setdefault(r.method, []).append(r)
    return {name: _fidelity_cell(results) for name, results in by_method.items()}


def _fidelity_table(results: Sequence[FidelityResult], root: str) -> SiteTable:
    """A method's claims on every (task, tier) they were checked on (the method page)."""
    return SiteTable(
        ["paper's claim", "source", "task", "tier", "fidelity", "effect [95% CI]", "paired seeds"],
        [
            [
                SiteCell(r.claim.describe(), r.claim.describe()),
                SiteCell(r.claim.source, r.claim.source),
                SiteCell(r.task, r.task, href=f"{root}tasks/{slug(r.task)}.html#tier-{r.tier}"),
                SiteCell(r.tier, r.tier),
                SiteCell(FIDELITY_TEXT[r.status], r.status, _BADGE_CLASS[r.status]),
                SiteCell(r.effect(), r.comparison.diff_mean, "num"),
                SiteCell(str(r.comparison.n_paired), r.comparison.n_paired, "num"),
            ]
            for r in sorted(results, key=lambda r: (r.task, tier_order(r.tier), r.claim.describe()))
        ],
    )


def _measurement_cell(value: Any) -> SiteCell:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return SiteCell("–" if value is None else str(value), None if value is None else str(value))
    return SiteCell(format_number(float(value)) if isinstance(value, float) else str(value), value, "num")


def _measurement_table(table: MeasurementTable) -> SiteTable:
    return SiteTable(list(table.columns), [[_measurement_cell(v) for v in row] for row in table.rows])


def measurement_view(result: MeasurementResult) -> dict[str, Any]:
    """A stored measurement as the ``measurements.html`` partial draws it: its tables and its plots, one per
    curve name, where curves named ``"<plot> | <series>"`` with one x label share the plot ``<plot>``."""
    grouped: dict[tuple[str, str], list[tuple[str, list[float | None], list[float | None]]]] = {}
    for name, curve in sorted(result.curves.items()):
        plot_name, _, label = name.partition(" | ")
        series = (label or plot_name, [_num(v) for v in curve.x], [_num(v) for v in curve.y])
        grouped.setdefault((plot_name, curve.x_label), []).append(series)
    figures = []
    for (name, x_label), members in grouped.items():
        plot = line_plot(members, x_label=x_label, y_label=name, title=f"{name} vs {x_label}")
        figures.append(Figure(plot, f"{name} vs {x_label} (tier {result.tier})"))
    return {
        "id": result.measurement,
        "version": result.version,
        "tier": result.tier,
        "summary": result.summary,
        "cpu_seconds": f"{result.cpu_seconds:.1f}",
        "tables": [(t.title, _measurement_table(t), t.note) for t in result.tables],
        "figures": figures,
    }


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
        fidelity=_fidelity_table([r for r in data.fidelity if r.method == name], root),
    )


def _phenomenon_cell(data: SiteData | None, task_id: str, tier: str) -> SiteCell:
    """The index's phenomenon cell of a (task, tier): the badge, with the failing gate and value if any."""
    badge = gate_badge(data, task_id, tier) if data is not None else None
    if badge is None:
        return SiteCell("no gate", "", muted=True)
    text = badge["text"] + (f": {badge['failed']}" if badge["failed"] else "")
    return SiteCell(text, badge["kind"], _BADGE_CLASS.get(badge["kind"], ""))


def _task_overview(
    tasks: Sequence[TaskInfo], groups: Mapping[tuple[str, str], list[Row]], data: SiteData | None = None
) -> SiteTable:
    """One line per (task, tier) of a family: whether the tier shows its phenomenon (:func:`gate_badge`), its
    best method and that method's primary metric. A tier whose gate failed says so in its row."""
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
                    SiteCell("–", "", muted=True),
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
                    _phenomenon_cell(data, t.task_id, tier),
                    SiteCell(best.method, best.method, href=_method_href("", best.method_name))
                    if best
                    else SiteCell("none finished", "", muted=True),
                    SiteCell(_primary_text(best) if best else "–", best.primary if best else None, "num"),
                    SiteCell(str(len(rows)), len(rows), "num"),
                ]
            )
    return SiteTable(["task", "title", "tier", "phenomenon", "best method", "its primary metric", "methods"], body)


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
                "tasks": _task_overview(fam_tasks, groups, data) if fam_tasks else None,
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
