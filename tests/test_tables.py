"""The one table model and its terminal rendering: every real family's default table fits 120 columns, and
`--wide` / `--columns` choose columns (through the CLI's `main`)."""

from __future__ import annotations

import hashlib
import json
import random
import subprocess
from pathlib import Path
from typing import Any

import pytest

from phenomena_bench.analysis.rows import Row, aggregate
from phenomena_bench.analysis.tables import build_tables, choose_columns
from phenomena_bench.core.errors import BenchmarkError
from phenomena_bench.registry import family_names, get_family
from phenomena_bench.report import markdown, terminal
from phenomena_bench.store import MethodIdentity, RunRecord, Store
from tests.helpers import cli_in_process

#: Long but realistic labels: a baseline name plus non-default hyperparameters (they wrap, not widen).
LABELS = ["reference-baseline", "a-much-longer-method-name-v2", "m[lr=0.003,warmup_steps=100,wd=0.1]"]


def record(family: str, label: str, seed: int, metrics: dict[str, Any], status: str = "ok") -> RunRecord:
    name = label.split("[")[0]
    return RunRecord(
        key=hashlib.sha256(f"{family}|{label}|{seed}".encode()).hexdigest(),
        task_id=f"{family}/a-fairly-long-task-id-for-width",
        task_version=1,
        family=family,
        tier="default",
        seed=seed,
        method=MethodIdentity(name=name, family=family, version="1", hyperparameters={}, label=label, ref=name),
        status=status,  # type: ignore[arg-type]
        metrics=metrics if status == "ok" else {},
        error=None if status == "ok" else "boom",
        wall_time_s=1234.5 + seed,
        device="cpu",
        torch_version="2",
        benchmark_version="0.1.0",
        started_at="2026-01-01T00:00:00",
        finished_at=f"2026-01-01T00:00:0{seed}",
        task={"id": "t"},
    )


def family_rows(family: str) -> list[Row]:
    """Five seeds of three methods (one of them the family's reference) with a value for every column of the
    family's real column list: wide values (many digits, censored marks, tiny relative errors) and cost metrics,
    so the widths measured are the widths a real store gives."""
    fam = get_family(family)
    rng = random.Random(family)
    labels = [fam.reference_method, *LABELS[1:]]
    recs = []
    for i, label in enumerate(labels):
        for seed in range(5):
            metrics: dict[str, Any] = {"flops": 1.234e15 * (seed + 1), "steps_run": 123456, "hvps_used@300": 300}
            for col in fam.columns():
                if col.kind == "rate":
                    metrics[col.metric] = rng.random() < 0.6
                else:
                    scale = 10.0 ** rng.choice([-9, -5, -1, 0, 4]) if col.kind == "median_iqr" else 0.5
                    metrics[col.metric] = scale * (1 + 0.37 * rng.random()) * (i + 1) * (1 if seed else -1)
                if col.event:
                    metrics[col.event] = rng.random() < 0.7
            recs.append(record(family, label, seed, metrics, status="diverged" if (i, seed) == (2, 4) else "ok"))
    return aggregate(recs)


@pytest.mark.parametrize("family", family_names())
def test_every_family_default_table_fits_120_columns(family: str) -> None:
    tables = build_tables(family_rows(family))
    default = terminal.render_all(choose_columns(tables))
    assert terminal.width(default) <= terminal.WIDTH, default
    # the default still says what matters: the primary metric with its interval, success, verdict, cost
    fam = get_family(family)
    keys = tables[0].compact().keys
    assert keys[:3] == ("rank", "method", fam.primary_metric)
    assert "vs_ref" in keys and "wall" in keys and "flops" in keys
    assert any(k == "success" or get_family(family).columns()[0].event == k for k in keys)
    assert "reference" in default and "[" in default  # the reference row, and an interval
    # every column is still there with --wide, which is wider than the terminal for every shipped family
    wide = terminal.render_all(choose_columns(tables, wide=True))
    assert terminal.width(wide) > terminal.WIDTH
    for col in fam.columns():
        assert col.header in wide, col.header


def test_columns_pick_and_order_columns_and_unknown_names_fail() -> None:
    tables = build_tables(family_rows("grokking"))
    picked = choose_columns(tables, columns=["seeds", "primary", "not_ok"])
    assert picked[0].keys == ("method", "seeds", "steps_to_target", "not_ok")
    text = terminal.render_all(picked)
    assert "diverged 1" in text and "vs ref" not in text
    with pytest.raises(BenchmarkError, match="unknown column.*nope"):
        choose_columns(tables, columns=["nope"])


def test_long_labels_wrap_instead_of_widening() -> None:
    text = terminal.render_all(choose_columns(build_tables(family_rows("hessian"))))
    lines = text.splitlines()
    assert not any(LABELS[2] in line for line in lines)  # longer than the method column: wrapped
    assert any(
        line.split()[1:2] == ["m[lr=0.003,warmup_steps=100,wd=0.1]"[:28]] for line in lines if line[:1].isdigit()
    )


def test_markdown_renders_the_same_cells() -> None:
    tables = build_tables(family_rows("pruning"))
    md = markdown.render_all(tables)
    for trow in tables[0].rows:
        for cell in trow.cells:
            assert markdown.md_escape(cell.text) in md


def test_cli_show_wide_and_columns(tmp_path: Path) -> None:
    store = Store(tmp_path / "store")
    for seed in range(3):
        for label, steps in (("adamw", 1000 + seed), ("adam", 500 + seed)):
            store.put(
                record("grokking", label, seed, {"steps_to_target": steps, "reached": True, "final_val_acc": 0.99})
            )

    def show(*args: str) -> subprocess.CompletedProcess[str]:
        """`phenomena-bench show` over that store: its `main`, in this process (no run, only output)."""
        return cli_in_process("show", "--store", str(tmp_path / "store"), *args)

    default, wide = show(), show("--wide")
    assert default.returncode == 0 and wide.returncode == 0, default.stderr + wide.stderr
    assert terminal.width(default.stdout) <= 120 < terminal.width(wide.stdout)
    assert "final val acc" in wide.stdout and "final val acc" not in default.stdout
    picked = show("--columns", "method,seeds")
    assert picked.returncode == 0, picked.stderr
    header = next(line for line in picked.stdout.splitlines() if line.startswith("method"))
    assert header.split() == ["method", "seeds"]
    bad = show("--columns", "nope")
    assert bad.returncode != 0 and "unknown column" in bad.stderr
    assert show("--wide", "--columns", "seeds").returncode == 2  # one or the other
    rows = json.loads(show("--format", "json").stdout)
    assert {r["method"] for r in rows} == {"adamw", "adam"}
    assert rows[0]["cells"]["steps_to_target"]["n"] == 3
    # every row says its verdict, Holm-adjusted p, paired seeds, interval and its table's MDE
    by_method = {r["method"]: r for r in rows}
    adam, adamw = by_method["adam"], by_method["adamw"]
    assert adam["verdict"] == "underpowered" and adam["n_paired"] == 3 and adam["p_value"] == 0.25
    assert adam["interval_method"] == "t interval of the mean paired difference" and adam["diff_interval"][1] < 0
    assert adamw["verdict"] is None and adamw["is_reference"] is True
    assert all("mde" in r and r["mde"] is None and r["mde_seeds"] == 3 for r in rows)  # underpowered at 3 seeds
    assert "underpowered n=3" in default.stdout and "MDE at 3 paired seeds" in default.stdout


def test_the_flops_column_shows_one_total_not_the_per_hook_breakdown() -> None:
    from phenomena_bench.analysis.tables import headline_flops

    names = ["declared_overhead_flops", "flops", "method_flops", "steps_run"]
    assert headline_flops(names) == ["flops"]
    assert headline_flops(["method_flops", "hvps_used"]) == ["method_flops"]
    assert headline_flops(["gflops_to_target"]) == ["gflops_to_target"]
    assert headline_flops(["hvps_used"]) == []
