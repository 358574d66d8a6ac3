"""The runner as a library: plan, executor and orchestration without the command line."""

from __future__ import annotations

from pathlib import Path

import pytest

from phenomena_bench.core.errors import BenchmarkError
from phenomena_bench.registry import load_tasks, shipped_tasks_dir
from phenomena_bench.run.orchestrate import execute_plan, make_executor, worker_count
from phenomena_bench.run.plan import plan_runs
from phenomena_bench.store import Store


def test_execute_plan_runs_a_plan_into_a_store_and_a_second_plan_finds_it_done(tmp_path: Path) -> None:
    task = load_tasks(shipped_tasks_dir())["grokking/add-mod97"][1]
    store = Store(tmp_path / "store")
    plan = plan_runs([task], ["adamw"], "smoke", store, seeds=2)
    assert len(plan.todo) == 2 and not plan.done
    seen: list[str] = []
    result = execute_plan(
        plan.todo,
        store,
        make_executor("local", "cpu", tmp_path / "cache", workers=1),
        on_record=lambda r: seen.append(r.key),
    )
    assert sorted(seen) == sorted(r.key for r in plan.todo) == sorted(r.key for r in result.finished)
    assert not result.failed and {r.status for r in result.finished} == {"ok"}
    assert {r.key for r in store.records()} == set(plan.all_keys)
    again = plan_runs([task], ["adamw"], "smoke", store, seeds=2)
    assert again.todo == [] and sorted(again.done) == sorted(plan.all_keys)


def test_executor_and_worker_count_are_checked() -> None:
    with pytest.raises(BenchmarkError, match="unknown executor 'threads'"):
        make_executor("threads", "cpu", Path("."), workers=1)
    with pytest.raises(BenchmarkError, match="--workers must be >= 1"):
        worker_count(0, "cpu", jobs=3)
    assert worker_count(None, "cpu", jobs=1) == 1
    assert worker_count(5, "cpu", jobs=1) == 5
