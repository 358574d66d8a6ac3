"""Phenomenon gates: validated `expect:` sections, evaluated from hand-made stores, reported by `show`."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from phenomena_bench.analysis.gates import evaluate_gates, gate_warnings, tier_badges
from phenomena_bench.core.errors import SpecError
from phenomena_bench.core.hashing import sha256_hex
from phenomena_bench.registry import parse_task, resolve_method, shipped_tasks_dir
from phenomena_bench.run.plan import run_key
from phenomena_bench.store import MethodIdentity, RunRecord, Store
from tests.helpers import cli_in_process

GROK = shipped_tasks_dir() / "grokking" / "add-mod97.yaml"
PRUNE = shipped_tasks_dir() / "pruning" / "mnist1d-mlp.yaml"


def _raw(path: Path) -> dict[str, Any]:
    return yaml.safe_load(path.read_text())


def _record(task: str, method: str, seed: int, metrics: dict[str, Any], tier: str = "default") -> RunRecord:
    family = task.split("/")[0]
    return RunRecord(
        key=sha256_hex(f"{task}|{tier}|{method}|{seed}"),
        task_id=task,
        task_version=4,
        family=family,
        tier=tier,
        seed=seed,
        method=MethodIdentity(name=method, family=family, version="1", hyperparameters={}, label=method, ref=method),
        status="ok",
        metrics=metrics,
        wall_time_s=1.0,
        device="cpu",
        torch_version="2",
        benchmark_version="0",
        started_at="t0",
        finished_at="t1",
        task={"id": task, "training": {"steps": 3000}},
    )


def _grok(delays: list[float], reached: list[bool] | None = None) -> list[RunRecord]:
    reached = reached or [True] * len(delays)
    return [
        _record("grokking/add-mod97", "adamw", s, {"steps_to_target": 1000, "reached": ok, "delay_ratio": d})
        for s, (d, ok) in enumerate(zip(delays, reached))
    ]


def _specs() -> dict[str, Any]:
    return {spec.id: spec for spec in (parse_task(_raw(GROK), "g.yaml"), parse_task(_raw(PRUNE), "p.yaml"))}


def test_a_failed_gate_is_reported_with_task_tier_gate_and_value() -> None:
    results = evaluate_gates(_grok([1.2, 1.4, 1.1, 1.3]), _specs())
    delay = next(r for r in results if r.gate.metric == "delay_ratio")
    assert delay.status == "failed" and delay.value == pytest.approx(1.25) and delay.n == 4
    (line,) = gate_warnings(results)
    assert "grokking/add-mod97" in line and "tier default" in line and "delay_ratio >= 2" in line
    assert "measured 1.25 over 4 seeds" in line
    badge, shown = tier_badges(results)[("grokking/add-mod97", "default")]
    assert badge == "not_reproduced" and shown[0].status == "failed"


def test_every_seed_gate_fails_on_one_seed_that_did_not_grok_and_passes_when_all_do() -> None:
    fail = evaluate_gates(_grok([5.0, 6.0, 4.0], [True, False, True]), _specs())
    reached = next(r for r in fail if r.gate.metric == "reached")
    assert reached.status == "failed" and reached.passing == 2 and reached.n == 3
    assert "2/3 seeds" in reached.measured()
    ok = evaluate_gates(_grok([5.0, 6.0, 4.0]), _specs())
    assert {r.status for r in ok} == {"passed"}
    assert tier_badges(ok)[("grokking/add-mod97", "default")][0] == "reproduced"


def test_too_few_seeds_is_not_checked_and_smoke_claims_nothing() -> None:
    few = evaluate_gates(_grok([5.0, 6.0]), _specs())
    assert {r.status for r in few} == {"not_enough_runs"}
    assert tier_badges(few)[("grokking/add-mod97", "default")][0] == "not_checked"
    smoke = [r.model_copy(update={"tier": "smoke"}) for r in _grok([1.0, 1.0, 1.0])]
    assert evaluate_gates(smoke, _specs()) == []
    assert tier_badges([], [("grokking/add-mod97", "smoke")])[("grokking/add-mod97", "smoke")][0] == "unclaimed"


def test_interval_gate_reads_the_paired_gap_and_fails_when_it_covers_zero() -> None:
    def prune(gaps: list[float]) -> list[RunRecord]:
        return [_record("pruning/mnist1d-mlp", "prune-imp", s, {"gap_vs_random@99.5": g}) for s, g in enumerate(gaps)]

    (good,) = evaluate_gates(prune([0.30, 0.27, 0.31]), _specs())
    assert good.status == "passed" and good.interval is not None and good.interval[0] > 0
    (bad,) = evaluate_gates(prune([0.10, -0.20, 0.05]), _specs())
    assert bad.status == "failed" and bad.interval is not None and bad.interval[0] < 0 < bad.interval[1]


def test_gates_are_read_from_the_recorded_spec_when_no_current_spec_is_given() -> None:
    gate = {"metric": "delay_ratio", "op": ">=", "value": 2, "why": "w", "tiers": ["default"]}
    recs = [r.model_copy(update={"task": {**r.task, "expect": [gate]}}) for r in _grok([1.0, 1.1, 1.2])]
    (result,) = evaluate_gates(recs, {})
    assert result.status == "failed"


@pytest.mark.parametrize(
    ("gate", "needle"),
    [
        ({"metric": "eos_ratio", "op": "in", "value": 3, "why": "w"}, "needs `value: [low, high]`"),
        ({"metric": "x", "op": ">=", "value": [1, 2], "why": "w"}, "needs one number"),
        ({"metric": "x", "op": "~", "value": 1, "why": "w"}, "use one of"),
        ({"metric": "x", "op": ">=", "value": 1, "why": "w", "versus": "adam"}, "use `statistic: interval`"),
        ({"metric": "x", "op": ">=", "value": 1}, "expect.0.why"),
    ],
)
def test_expect_validation_errors_are_one_clear_line(gate: dict[str, Any], needle: str) -> None:
    raw = _raw(GROK)
    raw["expect"] = [gate]
    with pytest.raises(SpecError) as err:
        parse_task(raw, "bad.yaml")
    problems = [p for p in str(err.value).splitlines() if "expect" in p]
    assert len(problems) == 1 and needle in problems[0], str(err.value)


def test_run_key_is_unchanged_by_expect() -> None:
    raw = _raw(GROK)
    without = copy.deepcopy(raw)
    without.pop("expect")
    method = resolve_method("adamw")
    for tier in ("smoke", "default"):
        keyed = run_key(parse_task(raw, "a.yaml").resolve(tier), method, 0)
        assert keyed == run_key(parse_task(without, "b.yaml").resolve(tier), method, 0)


def test_show_warns_about_a_failed_gate_on_stderr(tmp_path: Path) -> None:
    store = Store(tmp_path / "store")
    for record in _grok([1.2, 1.4, 1.1]):
        store.put(record)
    result = cli_in_process("show", "--store", str(store.root))
    assert result.returncode == 0, result.stderr
    lines = [line for line in result.stderr.splitlines() if "phenomenon gate failed" in line]
    assert len(lines) == 1 and "grokking/add-mod97 tier default" in lines[0] and "measured 1.2" in lines[0]


def test_site_badges_a_failed_tier_above_its_table_and_in_the_index_row() -> None:
    from phenomena_bench.report.site import collect, index_page, task_page

    data = collect(_grok([1.2, 1.4, 1.1]), tasks_dir=shipped_tasks_dir())
    page = task_page(data.tasks["grokking/add-mod97"], data)
    section = page[page.index('id="tier-default"') :]
    assert section.index("not reproduced at this tier") < section.index("<table")
    assert "median delay_ratio &gt;= 2, measured 1.2 over 3 seeds" in section
    index = index_page(data)
    row = next(line for line in index.split("<tr>") if "tier-default" in line and "add-mod97" in line)
    assert "not reproduced at this tier" in row and 'class="worse"' in row
