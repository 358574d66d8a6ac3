"""`--executor ray` through the real command line: a local Ray instance, then a two-node cluster that loses a node.

Ray is an optional extra (`pip install 'phenomena-bench[ray]'`). Without it this module is skipped, unless
``PHENOMENA_BENCH_REQUIRE_RAY`` is set (CI sets it): then a missing Ray is an error, so the scale-out path can
never drop out of CI silently.

The cluster is two real nodes on this machine, as on a real cluster: a head (``ray start --head``) and a worker
that joins it by address, each with one CPU, its own temp dir and its own ports, each started with
``--block`` in a process group of its own, so a node is stopped (or killed mid-suite) by signalling that
group: nothing else on the machine that runs Ray is touched (``ray stop`` would stop every node here).
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import math
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import pytest

from phenomena_bench.core.redact import is_secret
from tests.test_faults import ROOT, Suite, _env, _run_args, cli, intact, starts, tasks_dir  # noqa: F401  (fixture)

REQUIRE_ENV = "PHENOMENA_BENCH_REQUIRE_RAY"
if importlib.util.find_spec("ray") is None:
    if os.environ.get(REQUIRE_ENV):
        pytest.fail(
            f"{REQUIRE_ENV} is set but Ray is not installed (pip install 'phenomena-bench[ray]')", pytrace=False
        )
    pytest.skip(
        f"Ray is not installed (pip install 'phenomena-bench[ray]'; {REQUIRE_ENV}=1 makes this an error)",
        allow_module_level=True,
    )

#: Quiet, cheap Ray: no usage report, no token auth on a throw-away local cluster.
RAY_ENV = {"RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "disabled"}
#: The head declares a silent node dead after ~2 s instead of Ray's ~15-30 s (its health check's settings).
HEALTH_CHECK_ENV = {
    "RAY_health_check_initial_delay_ms": "1000",
    "RAY_health_check_period_ms": "1000",
    "RAY_health_check_timeout_ms": "1000",
    "RAY_health_check_failure_threshold": "2",
}
#: How long the lost node's run sleeps (the head's sleep briefly): the kill lands while it is in flight.
WORKER_SLEEP_S, HEAD_SLEEP_S = "6", "0.5"
SEEDS = 4


# ------------------------------------------------------------------------------------ GPUs per run


def test_a_run_asks_ray_for_the_gpus_its_device_needs(monkeypatch: pytest.MonkeyPatch) -> None:
    from phenomena_bench.core.errors import BenchmarkError
    from phenomena_bench.run.ray import GPUS_ENV, gpus_per_run

    monkeypatch.setenv(GPUS_ENV, "0.25")
    assert gpus_per_run("cpu") == 0.0  # never a GPU for a CPU run, whatever the environment says
    assert gpus_per_run("cuda") == gpus_per_run("cuda:1") == 0.25  # a fraction packs small runs on one GPU
    monkeypatch.delenv(GPUS_ENV)
    assert gpus_per_run("cuda") == 1.0  # one whole GPU per run by default
    for bad in ("0", "half", "9"):
        monkeypatch.setenv(GPUS_ENV, bad)
        with pytest.raises(BenchmarkError, match=GPUS_ENV):
            gpus_per_run("cuda")


# ------------------------------------------------------------------------- a cluster of two nodes


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Node:
    """A Ray node started by `ray start --block` as the leader of its own process group."""

    process: subprocess.Popen[bytes]
    output: Path

    def stop(self) -> None:
        """SIGKILL the node's whole process group (raylet, workers, the runs' fork server): only this node."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=30)


def _ray_start(folder: Path, temp_dir: Path, *args: str, **env: str) -> Node:
    """Start a node whose processes all sit in one new process group, and wait until it says it is up.

    `temp_dir` is Ray's session folder, short on purpose: its socket paths must fit in 107 bytes."""
    folder.mkdir(parents=True)
    ports = {
        name: str(_free_port())
        for name in (
            "--node-manager-port",
            "--object-manager-port",
            "--dashboard-agent-listen-port",
            "--dashboard-agent-grpc-port",
            "--metrics-export-port",
            "--runtime-env-agent-port",
        )
    }
    command = [str(Path(sys.executable).with_name("ray")), "start", "--block", "--num-cpus", "1"]
    command += ["--temp-dir", str(temp_dir), "--object-store-memory", str(80 * 2**20), "--disable-usage-stats"]
    command += [part for item in ports.items() for part in item] + list(args)
    output = folder / "ray-start.log"
    with output.open("wb") as sink:
        process = subprocess.Popen(
            command,
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own group: `ray start` makes the node's processes members of it
            env={**{k: v for k, v in os.environ.items() if not is_secret(k)}, **RAY_ENV, "OMP_NUM_THREADS": "1", **env},
            cwd=folder,
        )
    node = Node(process, output)
    deadline = time.monotonic() + 120
    while "Ray runtime started" not in output.read_text(errors="replace"):
        if process.poll() is not None or time.monotonic() > deadline:
            node.stop()
            raise AssertionError(f"ray start failed:\n{output.read_text(errors='replace')[-3000:]}")
        time.sleep(0.2)
    return node


@dataclass
class Cluster:
    address: str
    head: Node
    worker: Node
    log: Path


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """A head and a worker joined by address, one CPU each. The runs log their starts to one file, with the
    node as the phase, so a test can tell which node ran what."""
    folder = tmp_path_factory.mktemp("cluster")
    log = folder / "starts.log"
    address = f"127.0.0.1:{_free_port()}"
    logged = {"FAULT_LOG": str(log)}
    nodes: list[Node] = []
    sessions = Path(tempfile.mkdtemp(prefix="pb-ray-"))
    try:
        head_only = (
            "--head",
            "--port",
            address.split(":")[1],
            "--include-dashboard=false",
            "--node-ip-address",
            "127.0.0.1",
        )
        nodes.append(
            _ray_start(
                folder / "head",
                sessions / "h",
                *head_only,
                FAULT_PHASE="head",
                FAULT_SLEEP_S=HEAD_SLEEP_S,
                **logged,
                **HEALTH_CHECK_ENV,
            )
        )
        joined = ("--address", address, "--node-ip-address", "127.0.0.1")
        nodes.append(
            _ray_start(
                folder / "worker", sessions / "w", *joined, FAULT_PHASE="worker", FAULT_SLEEP_S=WORKER_SLEEP_S, **logged
            )
        )
        yield Cluster(address, nodes[0], nodes[1], log)
    finally:
        for node in reversed(nodes):
            node.stop()
        shutil.rmtree(sessions, ignore_errors=True)


# ----------------------------------------------------------------------- every status, on the cluster


@pytest.fixture(scope="module")
def ray_suite(cluster: Cluster, tasks_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Suite:  # noqa: F811
    """Every status, a secret in the runner's environment, and a batch of seeds, on the module's cluster."""
    folder = tmp_path_factory.mktemp("ray")
    store, log = folder / "store", cluster.log  # the nodes log the starts (their environment, not the runner's)
    result = cli(
        tasks_dir,
        store,
        log,
        "Ok",
        "Raises",
        "Segfaults",
        "ReadsEnvironment",
        "BatchedOk",
        extra=("--executor", "ray", "--ray-address", cluster.address, "--seeds", "2", "--batch-seeds", "on"),
        HF_TOKEN="hf_secret",
        **RAY_ENV,
    )
    return store, log, result


def test_ray_records_every_status_in_the_store(ray_suite: Suite) -> None:
    store, log, result = ray_suite
    assert result.returncode == 3, result.stderr
    assert "Traceback" not in result.stderr
    status = {name: r["status"] for name, r in intact(store).items()}
    expected = {"fault-ok": "ok", "fault-raises": "failed", "fault-segfaults": "failed", "fault-env": "ok"}
    expected["fault-batched-ok"] = "ok"
    assert status == {f"{name}/{seed}": s for name, s in expected.items() for seed in (0, 1)}
    assert sorted(tag for tag, *_ in starts(log)) == sorted(
        [*(2 * [t for t in expected if "batched" not in t]), "fault-batched-ok"]
    )


def test_ray_worker_crash_and_exception_are_reported(ray_suite: Suite) -> None:
    error = {name: str(r["error"] or "") for name, r in intact(ray_suite[0]).items()}
    assert error["fault-raises/0"].startswith("ValueError: injected failure for seed 0")
    assert "grokking_faults.py" in error["fault-raises/1"]
    assert "SIGSEGV" in error["fault-segfaults/0"]


def test_ray_keeps_secrets_from_its_workers(ray_suite: Suite) -> None:
    """fault-env fails if a TOKEN/SECRET variable reached it (the runner's environment is not forwarded)."""
    assert intact(ray_suite[0])["fault-env/0"]["status"] == "ok"


def test_ray_runs_a_batch_of_seeds_as_one_task(ray_suite: Suite) -> None:
    store, log, _ = ray_suite
    records = intact(store)
    assert records["fault-batched-ok/0"]["batched_with"] == records["fault-batched-ok/1"]["batched_with"] == 2
    assert records["fault-ok/0"]["batched_with"] == 1  # an unbatchable method still runs seed by seed
    assert [tag for tag, *_ in starts(log)].count("fault-batched-ok") == 1  # both seeds in one program


# ------------------------------------------------------------ losing a node mid-suite (runs last)


def _comparable(store: Path) -> dict[str, tuple[str, str, dict[str, object]]]:
    """{method/seed: (key, status, metrics)} of a store's records."""
    return {
        name: (str(r["key"]), str(r["status"]), cast(dict[str, object], r["metrics"]))
        for name, r in intact(store).items()
    }


def _same_metrics(a: dict[str, object], b: dict[str, object]) -> bool:
    """Equal up to floating-point noise (1e-6 relative): the same program on another process or node."""
    if a.keys() != b.keys():
        return False
    for name, x in a.items():
        y = b[name]
        if isinstance(x, float) and isinstance(y, (int, float)):
            if not (math.isnan(x) and math.isnan(y)) and not math.isclose(x, y, rel_tol=1e-6, abs_tol=1e-9):
                return False
        elif x != y:
            return False
    return True


def _wait_until(condition: Callable[[], bool], proc: subprocess.Popen[str], within_s: float = 180) -> None:
    deadline = time.monotonic() + within_s
    while not condition():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "the cluster never reached the state to kill the worker in"
        time.sleep(0.1)


def test_cluster_matches_the_process_executor_and_survives_losing_a_node(
    cluster: Cluster,
    tasks_dir: Path,  # noqa: F811
    tmp_path: Path,
) -> None:
    """Across two nodes the suite gives the process executor's keys and records. The worker node is killed
    while a run is on it: the finished records stay intact, the lost runs are named one line each, the command
    exits 3 without a traceback, and the same command again does only what was lost."""
    methods = ("Slow",)
    extra = ("--seeds", str(SEEDS), "--workers", "2")
    local = cli(tasks_dir, tmp_path / "local", tmp_path / "local.log", *methods, extra=extra, FAULT_SLEEP_S="0")
    assert local.returncode == 0, local.stderr
    reference = _comparable(tmp_path / "local")

    store = tmp_path / "ray"
    on_ray = ("--executor", "ray", "--ray-address", cluster.address, "--seeds", str(SEEDS))
    args = _run_args(tasks_dir, store, *methods, extra=on_ray)
    env = {**_env(tmp_path / "driver.log"), **RAY_ENV}
    proc = subprocess.Popen(args, env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:

        def worker_busy_and_a_record_stored() -> bool:
            done = {r["seed"] for r in intact(store).values()} if (store / "runs").exists() else set()
            on_worker = {seed for tag, seed, _, node in starts(cluster.log) if (tag, node) == ("fault-slow", "worker")}
            return bool(done) and bool(on_worker - done)

        _wait_until(worker_busy_and_a_record_stored, proc)
        cluster.worker.stop()
        out, err = proc.communicate(timeout=240)
    finally:
        if proc.poll() is None:
            proc.kill()
    (tmp_path / "killed-run.stderr").write_text(err)  # what the user saw, kept for a failing CI run's artefacts
    finished = intact(store)  # every file parses, sits under its key, digest verified by the store
    lost_lines = [line for line in err.splitlines() if line.strip().startswith("lost: ")]
    assert proc.returncode == 3 and "Traceback" not in err, err  # 3: runs without a complete score (README)
    assert len(lost_lines) >= 1 and len(finished) + len(lost_lines) == SEEDS, err
    assert all("grokking/fault-test [smoke] fault-slow seed=" in line for line in lost_lines), lost_lines
    worker_seeds = {seed for tag, seed, _, node in starts(cluster.log) if (tag, node) == ("fault-slow", "worker")}
    assert {int(line.split("seed=")[1].split(":")[0]) for line in lost_lines} <= worker_seeds
    for name, (key, status, metrics) in _comparable(store).items():  # what finished is what a local run gives
        assert (key, status) == reference[name][:2] and _same_metrics(metrics, reference[name][2]), name

    before = len(starts(cluster.log))
    resumed = subprocess.run(args, env=env, cwd=ROOT, capture_output=True, text=True, timeout=240)
    assert resumed.returncode == 0, resumed.stderr
    assert f"{len(finished)} already in" in resumed.stderr and f"{len(lost_lines)} to do" in resumed.stderr
    redone = sorted(seed for tag, seed, _, _ in starts(cluster.log)[before:] if tag == "fault-slow")
    assert redone == sorted(set(range(SEEDS)) - {r["seed"] for r in finished.values()})  # only what was lost
    final = intact(store)
    assert {name: r for name, r in final.items() if name in finished} == finished  # never rewritten
    mine = _comparable(store)
    assert mine.keys() == reference.keys()
    for name, (key, status, metrics) in mine.items():
        assert (key, status) == reference[name][:2] and _same_metrics(metrics, reference[name][2]), name
    assert json.loads(resumed.stdout)  # the table is printed over every run
