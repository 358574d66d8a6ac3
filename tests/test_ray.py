"""`--executor ray` on a local Ray instance: same statuses, same keys, same store as the process executor.

Ray is an optional extra (`pip install 'phenomena-bench[ray]'`); without it this module is skipped.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.test_faults import Suite, _env, cli, intact, starts, tasks_dir  # noqa: F401  (fixture)

pytest.importorskip("ray", reason="Ray is not installed (optional extra: pip install 'phenomena-bench[ray]')")


@pytest.fixture(scope="module")
def ray_suite(tasks_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Suite:  # noqa: F811
    folder = tmp_path_factory.mktemp("ray")
    store, log = folder / "store", folder / "starts.log"
    result = cli(
        tasks_dir,
        store,
        log,
        "Ok",
        "Raises",
        "Segfaults",
        "ReadsEnvironment",
        extra=("--executor", "ray"),
        HF_TOKEN="hf_secret",
        RAY_AUTH_MODE="disabled",
    )
    return store, log, result


def test_ray_records_every_status_in_the_store(ray_suite: Suite) -> None:
    store, log, result = ray_suite
    assert result.returncode == 3, result.stderr
    status = {name.split("/")[0]: r["status"] for name, r in intact(store).items()}
    assert status == {"fault-ok": "ok", "fault-raises": "failed", "fault-segfaults": "failed", "fault-env": "ok"}
    assert sorted(tag for tag, *_ in starts(log)) == ["fault-env", "fault-ok", "fault-raises", "fault-segfaults"]


def test_ray_worker_crash_and_exception_are_reported(ray_suite: Suite) -> None:
    error = {name.split("/")[0]: r["error"] or "" for name, r in intact(ray_suite[0]).items()}
    assert error["fault-raises"].startswith("ValueError: injected failure")
    assert "grokking_faults.py" in error["fault-raises"]
    assert "SIGSEGV" in error["fault-segfaults"]


def test_ray_results_have_the_keys_of_local_runs(ray_suite: Suite, tasks_dir: Path) -> None:  # noqa: F811
    store, log, _ = ray_suite
    again = cli(tasks_dir, store, log, "Ok", "ReadsEnvironment", phase="process")  # the default process executor
    assert again.returncode == 0 and "2 already in" in again.stderr and "0 to do" in again.stderr, again.stderr


def test_ray_runs_a_batch_of_seeds_as_one_task(tasks_dir: Path, tmp_path: Path) -> None:  # noqa: F811
    store, log = tmp_path / "store", tmp_path / "starts.log"
    result = cli(
        tasks_dir,
        store,
        log,
        "BatchedOk",
        extra=("--executor", "ray", "--seeds", "2", "--batch-seeds", "on"),
        RAY_AUTH_MODE="disabled",
    )
    assert result.returncode == 0, result.stderr
    records = intact(store)
    assert sorted(records) == ["fault-batched-ok/0", "fault-batched-ok/1"]
    assert all(r["status"] == "ok" and r["batched_with"] == 2 for r in records.values())
    assert [tag for tag, *_ in starts(log)] == ["fault-batched-ok"]  # both seeds in one program
