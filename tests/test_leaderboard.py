"""The static site and Markdown tables: structure, escaping, determinism, CLI (the browser test is separate)."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from typing import Any, Literal

import pytest

from phenomena_bench.analysis.rows import aggregate, family_summary
from phenomena_bench.analysis.tables import build_tables
from phenomena_bench.core.family import Column
from phenomena_bench.report import markdown, plots
from phenomena_bench.report import site as leaderboard
from phenomena_bench.store import MethodIdentity, RunRecord, Store
from tests.helpers import cli_in_process

EVIL = "<script>alert(1)</script>"


@dataclass
class FakeFamily:
    cols: list[Column]
    primary_metric: str
    direction: Literal["min", "max"]
    reference_method: str
    description: str

    def columns(self) -> list[Column]:
        return self.cols


FAMILIES = {
    "grokking": FakeFamily(
        [
            Column("steps to 99%", "steps_to_target", "median_iqr", event="reached", digits=0),
            Column("success", "reached", "rate"),
        ],
        "steps_to_target",
        "min",
        "adamw",
        "Time to grok.",
    ),
    "pruning": FakeFamily([Column("accuracy", "acc", "mean_ci")], "acc", "max", "magnitude", "Pruning."),
}


def record(
    method: str,
    seed: int,
    metrics: dict[str, Any],
    *,
    task: str,
    family: str,
    label: str | None = None,
    hp: dict[str, Any] | None = None,
    source: str | None = None,
    tier: str = "smoke",
    curves: dict[str, Any] | None = None,
    task_extra: dict[str, Any] | None = None,
) -> RunRecord:
    label = label or method
    return RunRecord(
        key=hashlib.sha256(f"{task}|{tier}|{label}|{seed}".encode()).hexdigest(),
        task_id=task,
        task_version=1,
        family=family,
        tier=tier,
        seed=seed,
        method=MethodIdentity(
            name=method, family=family, version="1", hyperparameters=hp or {}, label=label, ref=method, source=source
        ),
        status="ok",
        metrics=metrics,
        curves=curves or {},
        error=None,
        wall_time_s=1.5 + seed,
        device="cpu",
        torch_version="2.x",
        benchmark_version="0.1.0",
        started_at="2026-01-01T00:00:00",
        finished_at=f"2026-01-0{seed + 1}T00:00:00",
        task={
            "id": task,
            "family": family,
            "title": f"Title of {task}",
            "description": "A task.",
            **(task_extra or {}),
        },
    )


def grok_curves(speed: float) -> dict[str, Any]:
    xs = list(range(0, 1000, 50))
    return {
        "val_acc": {"x": xs, "y": [min(1.0, speed * x / 1000) for x in xs], "x_label": "step"},
        "train_acc": {"x": xs, "y": [min(1.0, 3 * x / 1000) for x in xs], "x_label": "step"},
    }


def site_records() -> list[RunRecord]:
    recs = []
    for seed in range(3):
        recs.append(
            record(
                "adamw",
                seed,
                {"steps_to_target": 800 + 10 * seed, "reached": True},
                task="grok/add",
                family="grokking",
                curves=grok_curves(1.3),
                source="/nonexistent/baselines/grokking.py",
            )
        )
        recs.append(
            record(
                "fast",
                seed,
                {"steps_to_target": 300 + 10 * seed, "reached": True},
                task="grok/add",
                family="grokking",
                curves=grok_curves(3.5),
                hp={"lr": 0.01},
            )
        )
        recs.append(
            record(
                EVIL,
                seed,
                {"steps_to_target": 1000, "reached": False},
                task="grok/add",
                family="grokking",
                label=EVIL,
                hp={"note": EVIL, "url": "javascript:alert(1)"},
                source="javascript:alert(1)",
                curves=grok_curves(0.5),
            )
        )
        recs.append(
            record(
                "magnitude",
                seed,
                {"acc": 0.9 - 0.01 * seed},
                task="prune-mlp",
                family="pruning",
                curves={"acc": {"x": [0.5, 0.9, 0.99], "y": [0.95, 0.9, 0.5], "x_label": "sparsity"}},
                task_extra={
                    "references": [
                        {"title": "evil ref", "url": "javascript:alert(1)"},
                        {"title": "good ref", "url": "https://arxiv.org/abs/1803.03635"},
                    ]
                },
            )
        )
        recs.append(record("random", seed, {"acc": 0.5 + 0.01 * seed}, task="prune-mlp", family="pruning"))
    return recs


class LinkCollector(HTMLParser):
    """Every tag, href/src and the text, as a browser's parser would see them."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.urls: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        for k, v in attrs:
            if k in {"href", "src"} and v is not None:
                self.urls.append(v)

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def parse(path: Path) -> LinkCollector:
    p = LinkCollector()
    p.feed(path.read_text(encoding="utf-8"))
    return p


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("site")
    data = leaderboard.collect(site_records(), families=FAMILIES, method_descriptions={"fast": "Goes fast."})
    leaderboard.build_site(data, out)
    return out


def test_site_structure(site: Path) -> None:
    assert (site / "index.html").is_file()
    task_pages = sorted(p.name for p in (site / "tasks").iterdir())
    assert len(task_pages) == 2 and "prune-mlp.html" in task_pages
    assert any(n.startswith("grok-add-") for n in task_pages)  # '/' replaced, hash added
    assert len(list((site / "methods").iterdir())) == 5
    assert (site / "assets" / "style.css").is_file() and (site / "assets" / "sort.js").is_file()
    index = parse(site / "index.html")
    text = " ".join(index.text)
    assert "grokking" in text and "pruning" in text
    # best method of each task is linked from the index
    assert "methods/fast.html" in index.urls and "methods/magnitude.html" in index.urls
    # every relative link and asset resolves to a file of the site
    for page in site.rglob("*.html"):
        for url in parse(page).urls:
            if re.match(r"^[a-z]+:", url):
                continue
            target = (page.parent / url.split("#")[0]).resolve()
            assert target.is_file(), f"{page.name}: broken link {url}"


def test_task_page_has_sortable_table_plots_and_spec(site: Path) -> None:
    page = next((site / "tasks").glob("grok-add-*.html"))
    html_text = page.read_text(encoding="utf-8")
    assert 'class="sortable"' in html_text and html_text.count("<button") >= 8
    assert html_text.count("<svg") == 2  # val_acc and train_acc
    assert "val_acc vs step" in html_text
    assert "<h2>Task spec</h2>" in html_text and "id: grok/add" in html_text
    # ranked table: fast first, censored method last with a lower bound
    body = html_text.split("<tbody>")[1]
    assert body.index("fast") < body.index("adamw") < body.index("&lt;script&gt;")
    assert "≥1000" in body and "underpowered n=3" in body  # three seeds: no verdict, whatever the gap
    # the table's notes: what a not-ok seed counts as, the verdict rule, the minimum detectable effect
    assert "not-ok seeds: not reached (steps to 99%)" in body and "MDE at 3 paired seeds: none" in body
    # sort keys: rank and the primary metric carry data-sort values
    assert 'data-sort="305.0"' in body or 'data-sort="310.0"' in body


def test_everything_a_submission_controls_is_escaped(site: Path) -> None:
    for page in site.rglob("*.html"):
        raw = page.read_text(encoding="utf-8")
        parsed = parse(page)
        # the only script element is the site's own sort.js
        assert parsed.tags.count("script") == 1, page
        assert "<script>alert" not in raw, page
        assert not any(u.lower().startswith("javascript:") for u in parsed.urls), page
    task = next((site / "tasks").glob("grok-add-*.html"))
    assert EVIL in " ".join(parse(task).text)  # shown as text
    evil_page = next(p for p in (site / "methods").iterdir() if p.name.startswith("script-alert"))
    assert EVIL in " ".join(parse(evil_page).text)
    assert "javascript:alert(1)" in " ".join(parse(evil_page).text)  # the bad URL only as text
    prune = parse(site / "tasks" / "prune-mlp.html")
    assert "https://arxiv.org/abs/1803.03635" in prune.urls and "evil ref" in " ".join(prune.text)


def test_safe_url_only_allows_absolute_http() -> None:
    assert leaderboard.safe_url("https://example.org/x?y=1") == "https://example.org/x?y=1"
    assert leaderboard.safe_url("HTTP://example.org") is not None
    for bad in [
        "javascript:alert(1)",
        "JaVaScRiPt:alert(1)",
        "data:text/html,x",
        "//evil.org",
        "/etc/passwd",
        "https://exa mple.org",
        "https://a.org/\n",
        "ftp://a.org",
        "",
        None,
        3,
    ]:
        assert leaderboard.safe_url(bad) is None, bad
    link = leaderboard.environment().from_string('{% from "macros.html" import link %}{{ link(url, text) }}')
    assert link.render(url="javascript:alert(1)", text="<b>") == "&lt;b&gt;"
    assert (
        link.render(url='https://a.org/?q="x"', text="t") == '<a href="https://a.org/?q=&#34;x&#34;" '
        'rel="nofollow noopener noreferrer">t</a>'
    )


def test_slugs_are_unique_and_safe() -> None:
    # the last: a label spelled like the hashed slug of another ("a/b" -> "a-b-<hash>") gets its own
    names = ["a/b", "a-b", "A-B", EVIL, "../../etc", "x", leaderboard.slug("a/b"), "y" * 200]
    slugs = [leaderboard.slug(n) for n in names]
    assert len(set(slugs)) == len(slugs)
    assert all(re.fullmatch(r"[a-z0-9_.-]+", s) and not s.startswith(".") for s in slugs)
    assert leaderboard.slug("prune-mlp") == "prune-mlp"


def test_build_is_deterministic(tmp_path: Path) -> None:
    outs = []
    for name in ("a", "b"):
        data = leaderboard.collect(
            list(reversed(site_records())) if name == "b" else site_records(), families=FAMILIES, method_descriptions={}
        )
        leaderboard.build_site(data, tmp_path / name)
        outs.append(
            {p.relative_to(tmp_path / name): p.read_bytes() for p in (tmp_path / name).rglob("*") if p.is_file()}
        )
    assert outs[0] == outs[1]


def test_raw_data_json_round_trips(site: Path) -> None:
    records = json.loads((site / "data" / "records.json").read_text(encoding="utf-8"))
    assert sorted(RunRecord.model_validate(r).key for r in records) == sorted(r.key for r in site_records())
    board = json.loads((site / "data" / "leaderboard.json").read_text(encoding="utf-8"))
    assert {r["method"] for r in board["rows"]} == {"adamw", "fast", EVIL, "magnitude", "random"}


def svg_plot(series: list[plots.Series], **kw: Any) -> str:
    return str(leaderboard.render_plot(plots.line_plot(series, **kw)))


def test_svg_plot_escapes_and_clips() -> None:
    svg = svg_plot(
        [(EVIL, [0, 1, 2], [0.1, 1e30, 0.3]), ("b", [0, 1], [0.2, 0.25])], x_label="<x>", y_label="y", title="t"
    )
    assert "<script" not in svg and "&lt;x&gt;" in svg
    assert svg.count("<polyline") == 2
    # the 1e30 sentinel is clipped to the plot area, not allowed to flatten the other points
    ys = [float(v) for v in re.findall(r",(-?[\d.]+)", svg.split("<polyline")[1].split('">')[0])]
    assert all(0 <= y <= 300 for y in ys)
    # every label gets a legend entry (the legend wraps), and colours follow the given order
    many = [(f"method-{i}", [1, 2], [0.5, 0.6]) for i in range(12)]
    svg = svg_plot(many, x_label="x", y_label="y", title="t", order=["method-11"])
    assert all(f">method-{i}</text>" in svg for i in range(12))
    assert f'stroke="{plots.PALETTE[0]}"' in svg.split("<title>method-11</title>")[0].rsplit("<polyline", 1)[1]
    # relative errors spanning many decades get a log axis
    svg = svg_plot([("a", [10, 100, 300], [1.0, 1e-6, 1e-14])], x_label="HVPs", y_label="err", title="t")
    assert "err (log)" in svg and re.search(r">1e-1[0-4]</text>", svg)
    assert "no finite points" in svg_plot([("a", [1.0], [float("nan")])], x_label="x", y_label="y", title="t")


def test_markdown_has_every_task_and_escapes() -> None:
    recs = site_records()
    rows = aggregate(recs, FAMILIES)
    md = markdown.leaderboard(build_tables(rows), family_summary(rows, recs, FAMILIES))
    assert "### grok/add" in md and "### prune-mlp" in md
    assert "<script>" not in md and "&lt;script&gt;" in md
    assert "Across tasks" in md


def test_cli_build_and_markdown(tmp_path: Path) -> None:
    """Through the CLI's `main` and the family registry: grokking records in a store give a site and Markdown."""
    from phenomena_bench.registry import family_names

    store = Store(tmp_path / "store")
    for seed in range(2):
        store.put(
            record(
                "adamw",
                seed,
                {
                    "steps_to_target": 500 + seed,
                    "reached": True,
                    "final_val_acc": 0.99,
                    "steps_to_95": 400,
                    "reached_95": True,
                    "steps_to_fit": 100,
                    "fitted": True,
                    "gflops_to_target": 1.5,
                },
                task="add-mod97",
                family="grokking",
                curves=grok_curves(2),
            )
        )
    out = tmp_path / "site"
    res = cli_in_process("leaderboard", "build", "--out", str(out), "--store", str(tmp_path / "store"))
    assert res.returncode == 0, res.stderr
    index = (out / "index.html").read_text(encoding="utf-8")
    for fam in family_names():
        assert f'id="family-{leaderboard.slug(fam)}"' in index
    res = cli_in_process("leaderboard", "markdown", "--store", str(tmp_path / "store"))
    assert res.returncode == 0, res.stderr
    assert "### add-mod97" in res.stdout and "| adamw" in res.stdout
