"""Trust under faults, through the real command line with methods that misbehave on purpose.

Every fault of the issue is injected by a method in ``tests/fault_methods/grokking_faults.py`` on a tiny
grokking task (p = 11, 40 steps) whose smoke tier has a short time limit. Each test checks the status
recorded, that the other runs finished, and that the store is intact afterwards (every file parses, one
record per key). The methods log each start to ``$FAULT_LOG``, which is how "no run done twice" is checked.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from phenomena_bench.store import Store
from tests.helpers import cli_in_process

ROOT = Path(__file__).resolve().parents[1]
FAULTS = ROOT / "tests" / "fault_methods"
TASK = "grokking/fault-test"
TIME_LIMIT_S = 10


@pytest.fixture(scope="module")
def tasks_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A one-task suite: the shipped add-mod97 spec with a tiny smoke tier and a short time limit."""
    spec = yaml.safe_load((ROOT / "tasks" / "grokking" / "add-mod97.yaml").read_text())
    spec["id"] = TASK
    spec["tiers"]["smoke"] = {
        "data": {"p": 11, "train_fraction": 0.5},
        "model": {"d_model": 8, "n_heads": 1, "d_mlp": 16},
        "training": {"steps": 50, "batch_size": 16, "eval_every": 10},
        "seeds": 1,
        "time_limit_s": TIME_LIMIT_S,
    }
    folder = tmp_path_factory.mktemp("tasks")
    (folder / "grokking").mkdir()
    (folder / "grokking" / "fault-test.yaml").write_text(yaml.safe_dump(spec))
    return folder


def _env(log: Path, phase: str = "1", **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return {
        **env,
        "OMP_NUM_THREADS": "1",
        "PYTHONPATH": f"{FAULTS}{os.pathsep}{ROOT}",
        "FAULT_LOG": str(log),
        "FAULT_PHASE": phase,
        **extra,
    }


def _run_args(tasks_dir: Path, store: Path, *methods: str, extra: tuple[str, ...] = ()) -> list[str]:
    return [
        sys.executable,
        "-m",
        "phenomena_bench.cli",
        "run",
        "--tasks-dir",
        str(tasks_dir),
        "--task",
        TASK,
        "--method",
        *(f"grokking_faults:{m}" for m in methods),
        "--tier",
        "smoke",
        "--store",
        str(store),
        "--device",
        "cpu",
        "--quiet",
        "--format",
        "json",
        *extra,
    ]


def cli(
    tasks_dir: Path, store: Path, log: Path, *methods: str, extra: tuple[str, ...] = (), phase: str = "1", **env: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        _run_args(tasks_dir, store, *methods, extra=extra),
        capture_output=True,
        text=True,
        timeout=300,
        env=_env(log, phase, **env),
        cwd=ROOT,
    )


def starts(log: Path) -> list[tuple[str, int, int, str]]:
    """(method, seed, pid, phase) of every logged start (and `child` lines for helper processes)."""
    if not log.exists():
        return []
    return [(t, int(s), int(p), ph) for t, s, p, ph in (line.split() for line in log.read_text().splitlines())]


def intact(store: Path) -> dict[str, dict[str, object]]:
    """Every record file parses and sits under its own key: {method name + seed: record}. No temp files."""
    records, corrupt = Store(store).scan()
    assert not corrupt, corrupt
    assert len({r.key for r in records}) == len(records)
    assert not list((store / "runs").glob("*/*.tmp"))
    return {f"{r.method.name}/{r.seed}": r.model_dump(mode="json") for r in records}


def alive(pid: int) -> bool:
    """True while `pid` runs (a zombie counts as dead: it has stopped, only its exit status is left)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError):
        return False
    return state != "Z"


def wait_dead(pids: list[int], within_s: float = 5.0) -> list[int]:
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline and any(alive(p) for p in pids):
        time.sleep(0.1)
    return [p for p in pids if alive(p)]


# ------------------------------------------------------------------------------------- faults in a run


Suite = tuple[Path, Path, subprocess.CompletedProcess[str]]  # store, start log, the runner's result
ALL_FAULTS = ("Ok", "Raises", "Hangs", "Diverges", "Segfaults", "Exits", "OutOfMemory", "ReadsEnvironment")


@pytest.fixture(scope="module")
def faulty_suite(tasks_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Suite:
    """One suite of every in-run fault, two workers, Hub tokens set in the runner's environment."""
    folder = tmp_path_factory.mktemp("faulty")
    store, log = folder / "store", folder / "starts.log"
    result = cli(
        tasks_dir,
        store,
        log,
        *ALL_FAULTS,
        extra=("--workers", "2"),
        HF_TOKEN="hf_secret",
        HUGGING_FACE_HUB_TOKEN="hf_secret2",
        MY_API_KEY="k",
    )
    return store, log, result


def test_every_fault_gets_its_status_and_the_others_run(faulty_suite: Suite) -> None:
    store, log, result = faulty_suite
    assert result.returncode == 3, result.stderr  # some runs failed: non-zero, but the suite finished
    records = intact(store)
    status = {name.split("/")[0]: r["status"] for name, r in records.items()}
    assert status == {
        "fault-ok": "ok",
        "fault-env": "ok",
        "fault-diverges": "diverged",
        "fault-raises": "failed",
        "fault-hangs": "timeout",
        "fault-segfaults": "failed",
        "fault-exits": "failed",
        "fault-oom": "failed",
    }, {k: records[k]["error"] for k in records}
    assert "Traceback" not in result.stderr
    assert len(json.loads(result.stdout)) == len(ALL_FAULTS)  # the table still lists every method


def test_failure_records_say_what_happened(faulty_suite: Suite) -> None:
    store, _, _ = faulty_suite
    error = {name.split("/")[0]: r["error"] or "" for name, r in intact(store).items()}
    raised = error["fault-raises"]
    assert raised.startswith("ValueError: injected failure for seed 0")
    assert "grokking_faults.py" in raised and 'raise ValueError(f"injected failure' in raised  # submission frames
    assert "SIGSEGV" in error["fault-segfaults"]
    assert "SIGKILL" in error["fault-oom"] and "out of memory" in error["fault-oom"]
    assert "code 7" in error["fault-exits"]
    assert f"time limit of {TIME_LIMIT_S} s" in error["fault-hangs"]
    assert "loss became nan at step" in error["fault-diverges"]


def test_divergence_stops_the_run_early(faulty_suite: Suite) -> None:
    record = intact(faulty_suite[0])["fault-diverges/0"]
    assert record["metrics"]["steps_run"] < 10 < 40  # NaN after step 4: stopped long before the 40-step budget


def test_timeout_kills_the_worker_and_its_children(faulty_suite: Suite) -> None:
    store, log, _ = faulty_suite
    logged = starts(log)
    hung = [pid for tag, _, pid, _ in logged if tag in ("fault-hangs", "child")]
    assert len(hung) == 2  # the worker and the helper process it started
    assert wait_dead(hung) == []
    wall = intact(store)["fault-hangs/0"]["wall_time_s"]
    assert TIME_LIMIT_S <= wall < TIME_LIMIT_S + 60


def test_tokens_never_reach_a_worker(faulty_suite: Suite) -> None:
    """fault-env fails if any TOKEN/SECRET variable is in its environment or its /proc/self/environ."""
    assert intact(faulty_suite[0])["fault-env/0"]["status"] == "ok"


def test_retry_failed_redoes_only_failed_and_timed_out_runs(faulty_suite: Suite, tasks_dir: Path) -> None:
    store, log, _ = faulty_suite
    before = intact(store)
    again = cli(tasks_dir, store, log, "Ok", "Raises", "Diverges", "Exits", phase="retry")
    assert again.returncode == 0 and "0 to do" in again.stderr, again.stderr  # nothing redone without the flag
    retry = cli(tasks_dir, store, log, "Ok", "Raises", "Diverges", "Exits", extra=("--retry-failed",), phase="retry")
    assert retry.returncode == 3, retry.stderr
    redone = sorted(tag for tag, _, _, phase in starts(log) if phase == "retry")
    assert redone == ["fault-exits", "fault-raises"]
    after = intact(store)
    for kept in ("fault-ok/0", "fault-diverges/0"):
        assert after[kept] == before[kept]
    assert after["fault-raises/0"]["finished_at"] >= before["fault-raises/0"]["finished_at"]
    assert len(after) == len(before)


def test_faults_in_a_batch_of_seeds_end_every_run_of_the_batch(tasks_dir: Path, tmp_path: Path) -> None:
    """Seeds trained as one program (``--batch-seeds on``) share its fate, each with its own record."""
    store, log = tmp_path / "store", tmp_path / "starts.log"
    methods = ("BatchedOk", "BatchedRaises", "BatchedSegfaults", "BatchedHangs")
    result = cli(tasks_dir, store, log, *methods, extra=("--seeds", "2", "--workers", "2", "--batch-seeds", "on"))
    assert result.returncode == 3, result.stderr
    records = intact(store)
    assert len(records) == 2 * len(methods)
    assert all(r["batched_with"] == 2 for r in records.values())
    status = {name: r["status"] for name, r in records.items()}
    assert status == {
        "fault-batched-ok/0": "ok",
        "fault-batched-ok/1": "ok",
        "fault-batched-raises/0": "failed",
        "fault-batched-raises/1": "failed",
        "fault-batched-segfaults/0": "failed",
        "fault-batched-segfaults/1": "failed",
        "fault-batched-hangs/0": "timeout",
        "fault-batched-hangs/1": "timeout",
    }, {k: records[k]["error"] for k in records}
    logged = starts(log)
    assert sorted(tag for tag, *_ in logged if tag != "child") == sorted(  # one program per method: one start
        ["fault-batched-ok", "fault-batched-raises", "fault-batched-segfaults", "fault-batched-hangs"]
    )
    for seed in (0, 1):
        assert records[f"fault-batched-raises/{seed}"]["error"].startswith("ValueError: injected failure")
        assert "SIGSEGV" in records[f"fault-batched-segfaults/{seed}"]["error"]
        assert (
            f"batch of 2 runs exceeded its time limit of {2 * TIME_LIMIT_S} s"
            in (records[f"fault-batched-hangs/{seed}"]["error"])
        )
    hung = [pid for tag, _, pid, _ in logged if tag in ("fault-batched-hangs", "child")]
    assert len(hung) == 2 and wait_dead(hung) == []


# ---------------------------------------------------------------------------------- the runner killed


def _wait_for_records(store: Path, at_least: int, proc: subprocess.Popen[str], within_s: float = 120) -> None:
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        if len(list((store / "runs").glob("*/*.json"))) >= at_least:
            return
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.05)
    raise AssertionError(f"no {at_least} record(s) within {within_s} s")


def test_sigkill_mid_suite_then_resume_does_only_what_is_missing(tasks_dir: Path, tmp_path: Path) -> None:
    """Killed after its first record of 3 (a second can't finish within the 50 ms poll: each sleeps 1.5 s)."""
    store, log = tmp_path / "store", tmp_path / "starts.log"
    args = _run_args(tasks_dir, store, "Slow", extra=("--seeds", "3", "--workers", "1"))
    proc = subprocess.Popen(
        args, env=_env(log, "first"), cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        _wait_for_records(store, 1, proc)
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    done_before = intact(store)
    assert 1 <= len(done_before) < 3
    first_workers = [pid for _, _, pid, phase in starts(log) if phase == "first"]
    assert wait_dead(first_workers) == []  # the runner's death took its worker with it: nothing left running

    resumed = cli(tasks_dir, store, log, "Slow", extra=("--seeds", "3", "--workers", "1"), phase="second")
    assert resumed.returncode == 0, resumed.stderr
    assert f"{len(done_before)} already in" in resumed.stderr
    final = intact(store)
    assert sorted(final) == [f"fault-slow/{s}" for s in range(3)] and all(r["status"] == "ok" for r in final.values())
    for name, record in done_before.items():
        assert final[name] == record  # a finished record is never rewritten
    second = [seed for _, seed, _, phase in starts(log) if phase == "second"]
    assert sorted(second) == sorted(set(range(3)) - {r["seed"] for r in done_before.values()})  # no run twice


def test_ctrl_c_stops_cleanly_and_reports_what_finished(tasks_dir: Path, tmp_path: Path) -> None:
    store, log = tmp_path / "store", tmp_path / "starts.log"
    args = _run_args(tasks_dir, store, "Slow", extra=("--seeds", "3", "--workers", "1"))
    # A runner started from a terminal has SIGINT at its default; one started by a background job (`cmd &` in a
    # script, as CI may run the tests) inherits SIG_IGN, and Python then never raises KeyboardInterrupt.
    proc = subprocess.Popen(
        args,
        env=_env(log),
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        _wait_for_records(store, 1, proc)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    finished = len(intact(store))
    assert f"interrupted: {finished} of 3 run(s) finished" in err and "Traceback" not in err
    assert wait_dead([pid for _, _, pid, _ in starts(log)]) == []


def test_two_runners_on_one_store_lose_and_duplicate_nothing(tasks_dir: Path, tmp_path: Path) -> None:
    store, log = tmp_path / "store", tmp_path / "starts.log"
    args = _run_args(tasks_dir, store, "Slow", extra=("--seeds", "4", "--workers", "1"))
    procs = [
        subprocess.Popen(
            args,
            env=_env(log, str(i), FAULT_SLEEP_S="1"),
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(2)
    ]
    outputs = [p.communicate(timeout=240) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [e for _, e in outputs]
    final = intact(store)
    assert sorted(final) == [f"fault-slow/{s}" for s in range(4)]
    seeds_started = sorted(seed for _, seed, _, _ in starts(log))
    assert seeds_started == [0, 1, 2, 3]  # each run done once, by one runner or the other
    for out, _ in outputs:  # both runners print the whole, identical table
        assert json.loads(out) == json.loads(outputs[0][0])


def test_torn_record_is_reported_and_redone(tasks_dir: Path, tmp_path: Path) -> None:
    store, log = tmp_path / "store", tmp_path / "starts.log"
    assert cli(tasks_dir, store, log, "Ok", extra=("--executor", "local")).returncode == 0
    (path,) = list((store / "runs").glob("*/*.json"))
    path.write_text(path.read_text()[:100])  # torn
    shown = cli_in_process("show", "--store", str(store))  # reads the store only: no fresh interpreter needed
    assert shown.returncode == 0 and f"{path}: corrupt record, not trusted" in shown.stderr
    redo = cli(tasks_dir, store, log, "Ok", extra=("--executor", "local"), phase="redo")
    assert redo.returncode == 0, redo.stderr
    assert "corrupt record, not trusted" in redo.stderr and "1 to do" in redo.stderr
    assert [tag for tag, _, _, phase in starts(log) if phase == "redo"] == ["fault-ok"]
    assert intact(store)["fault-ok/0"]["status"] == "ok"


def test_ray_missing_is_a_one_line_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With Ray hidden, `--executor ray` names the extra to install instead of a traceback."""
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError, as when it is not installed
    args = ("--task", "grokking/add-mod97", "--method", "adamw", "--tier", "smoke", "--seeds", "1")
    result = cli_in_process("run", *args, "--store", str(tmp_path), "--executor", "ray", "--device", "cpu", "--quiet")
    assert result.returncode == 2 and "pip install 'phenomena-bench[ray]'" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr
