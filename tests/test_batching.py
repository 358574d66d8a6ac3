"""Seeds of one (task, method) as one program: how the runner groups them, and that the result is the same.

Batching is an execution detail: a batched run keeps its own key and record, and its metrics equal those of
the same run done alone (the family's equivalence is tested in test_grokking; here through the real CLI).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from phenomena_bench.core.errors import BenchmarkError
from phenomena_bench.families.grokking.api import GrokkingMethod, TrainingInfo
from phenomena_bench.registry import load_tasks, select_tasks
from phenomena_bench.run.execute import execute_job
from phenomena_bench.run.plan import batching_enabled, group_jobs, plan_runs
from phenomena_bench.store import Store
from tests.helpers import ROOT, cli


def _plan(tmp_path: Path, methods: list[str], seeds: int) -> list:
    tasks = select_tasks(load_tasks(ROOT / "tasks"), ["grokking/add-mod97"])
    return plan_runs(tasks, methods, "smoke", Store(tmp_path / "store"), seeds).todo


class AloneAdam(GrokkingMethod):
    """Adam that does not declare ``batchable`` (every shipped grokking baseline does): its seeds run alone."""

    name = "test-alone-adam"
    description = "Adam lr 1e-3, not declared batchable"

    def configure(self, model: Any, params: dict[str, torch.nn.Parameter], info: TrainingInfo) -> torch.optim.Optimizer:
        return torch.optim.Adam(list(params.values()), lr=1e-3)


def test_batchable_seeds_are_grouped_and_the_others_stay_alone(tmp_path: Path) -> None:
    todo = _plan(tmp_path, ["adamw", f"{__name__}:AloneAdam"], seeds=3)
    assert [r.batchable for r in todo] == [True] * 3 + [False] * 3  # a method must declare it can be batched
    jobs = group_jobs(todo, batch=True)
    assert [[r.seed for r in job.runs] for job in jobs] == [[0, 1, 2], [0], [1], [2]]
    assert {r.method["name"] for r in jobs[0].runs} == {"adamw"}
    assert jobs[0].time_limit_s == 3 * todo[0].time_limit_s
    assert "seeds=0,1,2" in jobs[0].title
    assert [len(job.runs) for job in group_jobs(todo, batch=False)] == [1] * 6


def test_groups_are_capped_and_split_by_method(tmp_path: Path) -> None:
    todo = _plan(tmp_path, ["adamw", "adam"], seeds=5)
    jobs = group_jobs(todo, batch=True, max_batch=2)
    assert [(job.runs[0].method["name"], [r.seed for r in job.runs]) for job in jobs] == [
        ("adamw", [0, 1]),
        ("adamw", [2, 3]),
        ("adamw", [4]),
        ("adam", [0, 1]),
        ("adam", [2, 3]),
        ("adam", [4]),
    ]


def test_a_job_narrowed_to_its_claimed_runs(tmp_path: Path) -> None:
    job = group_jobs(_plan(tmp_path, ["adamw"], seeds=3), batch=True)[0]
    assert [r.seed for r in job.only([job.runs[2], job.runs[0]]).runs] == [0, 2]  # type: ignore[union-attr]
    assert job.only([]) is None


@pytest.mark.parametrize(
    ("policy", "device", "expected"),
    [
        ("auto", "cpu", False),
        ("auto", "cuda", True),
        ("auto", "cuda:1", True),
        ("on", "cpu", True),
        ("off", "cuda", False),
    ],
)
def test_batching_policy(policy: str, device: str, expected: bool) -> None:
    assert batching_enabled(policy, device) is expected


def test_unknown_batching_policy_is_an_error() -> None:
    with pytest.raises(BenchmarkError, match="unknown batching policy"):
        batching_enabled("sometimes", "cpu")


def _records(store: Path) -> dict[int, dict]:
    """The stored records by seed, as `show --runs --format json` prints them (read here, not by another CLI)."""
    records, corrupt = Store(store).scan()
    assert not corrupt, corrupt
    return {r.seed: r.model_dump(mode="json") for r in records}


def test_batched_runs_through_the_cli_equal_runs_done_alone(tmp_path: Path) -> None:
    """Two CLI runs (batched, alone); the stored records are compared, and re-planned, in this process."""
    batched, alone = tmp_path / "batched", tmp_path / "alone"
    common = (
        "run",
        "--task",
        "grokking/add-mod97",
        "--method",
        "adamw",
        "--tier",
        "smoke",
        "--seeds",
        "2",
        "--device",
        "cpu",
        "--quiet",
    )
    first = cli(*common, "--store", str(batched), "--batch-seeds", "on")
    assert first.returncode == 0, first.stderr
    assert "2 run(s) as 1 job(s)" in first.stderr
    second = cli(*common, "--store", str(alone), "--batch-seeds", "off")
    assert second.returncode == 0, second.stderr
    together, separate = _records(batched), _records(alone)
    assert sorted(together) == sorted(separate) == [0, 1]
    for seed in (0, 1):
        a, b = together[seed], separate[seed]
        assert a["key"] == b["key"]  # batching does not change what a run is
        assert (a["batched_with"], b["batched_with"]) == (2, 1)
        assert a["status"] == b["status"] == "ok"
        assert a["metrics"]["steps_run"] == b["metrics"]["steps_run"]
        assert a["metrics"]["final_val_acc"] == pytest.approx(b["metrics"]["final_val_acc"], abs=0.01)
    # The batched records count as done: the plan `run` makes from that store (its "0 to do") is empty.
    again = plan_runs(
        select_tasks(load_tasks(ROOT / "tasks"), ["grokking/add-mod97"]), ["adamw"], "smoke", Store(batched), 2
    )
    assert again.todo == [] and sorted(again.done) == sorted(again.all_keys) and len(again.all_keys) == 2


def test_a_batch_that_returns_too_few_outcomes_fails_every_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from phenomena_bench.families.grokking import FAMILY

    monkeypatch.setattr(FAMILY, "run_batch", lambda task, method, seeds, ctx: [])
    job = group_jobs(_plan(tmp_path, ["adamw"], seeds=2), batch=True)[0]
    records = execute_job(job, "cpu", tmp_path)
    assert [(r.seed, r.status, r.batched_with) for r in records] == [(0, "failed", 2), (1, "failed", 2)]
    assert all("run_batch returned 0 outcomes for 2 seeds" in (r.error or "") for r in records)
