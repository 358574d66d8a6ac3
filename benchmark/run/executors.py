"""Where runs execute: in this process, or one fresh worker process per run.

Executors take *jobs* (:class:`~phenomena_bench.run.plan.Job`): one run, or several seeds of one (task, method) that
the family trains as one program (batched on a GPU). What is said below of a run holds for a job.

The process executor is the default because a benchmark runs other people's code: a run that crashes,
hangs, leaks memory or kills its interpreter must cost only that run. Each run gets its own process, forked
from a *fork server*: a fresh interpreter started once per executor that has imported torch and the shipped
families and done nothing else, so no state leaks from the parent or an earlier run, yet a worker starts in
a fraction of a second instead of the ~5 CPU-seconds of a spawned interpreter importing torch (about 8
CPU-minutes over the default suite's ~100 runs). Where the platform has no fork server, workers are spawned.
Each worker has its own process group (so a time-out kills the method's children too) and one thread (on a
small CPU, two single-thread runs in parallel beat one two-thread run). The parent alone writes records,
the moment each run ends.

What a worker does not get: the parent's secrets (Hub tokens and other credential-looking variables,
:func:`phenomena_bench.core.redact.is_secret`, are removed from the environment the worker is started with,
so not even ``/proc/self/environ`` shows them; the CLI has already re-executed the runner without them, so
``/proc/<ppid>/environ`` does not either), and
a life of its own (a watchdog thread kills the worker's process group when the parent dies, even by
SIGKILL, so an interrupted suite leaves nothing running that a resumed one would duplicate). The time limit
counts from the moment the worker is ready (interpreter, torch and the family's harness imported), so a slow
start on a loaded machine is not charged to the method; start-up has its own generous limit.
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import os
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Any, Protocol

from phenomena_bench.core.errors import BenchmarkError
from phenomena_bench.core.family import Status
from phenomena_bench.core.redact import is_secret
from phenomena_bench.run.execute import _now, execute_job, failure_record
from phenomena_bench.run.plan import Job, PlannedRun
from phenomena_bench.store import RunRecord

#: Called as each run ends, with its record.
OnRecord = Callable[[RunRecord], None]
#: Called with (slot, job title, steps done, steps total) while a job reports progress.
OnProgress = Callable[[int, str, int, int], None]
#: Called just before a run starts; False means "do not start it" (another runner has it, or it is done).
Claim = Callable[[PlannedRun], bool]


class RunsLost(BenchmarkError):
    """Runs an executor lost with a node or worker that died under them (Ray, today): not recorded, since the
    method did nothing wrong, so the same command redoes them. The executor raises it after every other run
    has ended; the orchestrator reports each lost run on one line and the command exits 3."""

    def __init__(self, lost: list[tuple[PlannedRun, str]]) -> None:
        self.lost = lost
        #: One line per lost run: what it was and why it was lost.
        self.lines = [
            f"lost: {run.task_id} [{run.tier}] {run.method['name']} seed={run.seed}: {why}" for run, why in lost
        ]
        super().__init__(
            f"{len(lost)} run(s) lost with a Ray node or worker and not recorded; the runs that finished are "
            "stored, run the same command again to do the lost ones:\n" + "\n".join(f"  {line}" for line in self.lines)
        )


class Executor(Protocol):
    """Where jobs run. :func:`phenomena_bench.run.orchestrate.execute_plan` drives any executor."""

    def execute(
        self,
        jobs: list[Job],
        on_record: OnRecord,
        on_progress: OnProgress | None = None,
        claim: Claim | None = None,
    ) -> None:
        """Do every job `claim` lets this runner have, calling `on_record` the moment each run ends."""


#: How long a worker may take to start (spawn, import torch) before the run is a `timeout`.
STARTUP_LIMIT_S = 120.0


def claim_job(job: Job, claim: Claim | None) -> Job | None:
    """The part of `job` this runner may do (every run it could claim), or None when nothing is left."""
    if claim is None:
        return job
    return job.only([run for run in job.runs if claim(run)])


@contextlib.contextmanager
def secrets_removed() -> Iterator[None]:
    """Remove credential-looking variables from this process's environment while workers are started.

    A spawned worker inherits the environment at exec time; removing the variables in the worker itself
    would leave them readable in its ``/proc/self/environ``. The parent is single-threaded while it starts a
    worker, so the short removal is not observed by anything else; the variables are restored afterwards.
    """
    saved = {k: v for k, v in os.environ.items() if is_secret(k)}
    for name in saved:
        del os.environ[name]
    try:
        yield
    finally:
        os.environ.update(saved)


#: Threading variables the fork server is started with: OpenMP and BLAS read them when their libraries load
#: (in the server, with torch), so setting them later in a worker would be too late.
SINGLE_THREAD_ENV = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}

#: What the fork server imports before it forks any worker: the expensive imports every job pays for, once.
#: (The family *modules*: a family package's __init__ imports its names lazily.) ``torch._dynamo`` is what
#: the first optimizer step imports lazily (2.2 s a worker, measured: most of a short Hessian job's start);
#: the shipped baselines are class definitions, read by every job of their family.
FORKSERVER_PRELOAD = [
    "torch",
    "torch._dynamo",
    "phenomena_bench.run.execute",
    "phenomena_bench.families.grokking.family",
    "phenomena_bench.families.pruning.family",
    "phenomena_bench.families.mil_dropout.family",
    "phenomena_bench.families.hessian.family",
    "phenomena_bench.baselines.grokking",
    "phenomena_bench.baselines.pruning",
    "phenomena_bench.baselines.mil_dropout",
    "phenomena_bench.baselines.hessian",
]


@contextlib.contextmanager
def single_threaded_environment() -> Iterator[None]:
    """Set :data:`SINGLE_THREAD_ENV` in this process's environment while a worker (or the fork server) starts."""
    saved = {k: os.environ.get(k) for k in SINGLE_THREAD_ENV}
    os.environ.update(SINGLE_THREAD_ENV)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def worker_context() -> Any:
    """The multiprocessing context of worker processes: the fork server (preloaded) where there is one."""
    if "forkserver" in mp.get_all_start_methods():
        ctx = mp.get_context("forkserver")
        ctx.set_forkserver_preload(FORKSERVER_PRELOAD)
        return ctx
    return mp.get_context("spawn")


def scrub_environment() -> None:
    """Drop secrets from this (worker) process's environment: the second line of defence."""
    for name in [k for k in os.environ if is_secret(k)]:
        del os.environ[name]


def _watch_parent(parent_pid: int, interval_s: float = 0.5) -> None:
    """Kill this worker's process group (the worker and the method's children) once the parent is gone.

    The runner is not this process's parent when it was forked by the fork server, so the check is whether
    the runner's pid still exists (``kill(pid, 0)``), not ``getppid()``."""

    def watch() -> None:
        while True:
            time.sleep(interval_s)
            try:
                os.kill(parent_pid, 0)
            except ProcessLookupError:
                os.killpg(os.getpgrp(), signal.SIGKILL)
            except PermissionError:  # the pid was reused by another user's process: the runner is gone
                os.killpg(os.getpgrp(), signal.SIGKILL)

    threading.Thread(target=watch, name="parent-watchdog", daemon=True).start()


class LocalExecutor:
    """Runs sequentially in this process: for debugging (pdb works); no isolation and no time limits."""

    def __init__(self, device: str, cache_dir: Path, compile: bool = False) -> None:
        self.device = device
        self.cache_dir = cache_dir
        self.compile = compile

    def execute(
        self,
        jobs: list[Job],
        on_record: OnRecord,
        on_progress: OnProgress | None = None,
        claim: Claim | None = None,
    ) -> None:
        import torch

        torch.set_num_threads(max(1, torch.get_num_threads()))
        for planned in jobs:
            job = claim_job(planned, claim)
            if job is None:
                continue
            report = (lambda d, t, j=job: on_progress(0, j.title, d, t)) if on_progress else None
            for record in execute_job(job, self.device, self.cache_dir, report, self.compile):
                on_record(record)


def _worker_main(
    job: Job, device: str, cache_dir: str, conn: Connection, parent_pid: int, compile: bool = False
) -> None:
    """Entry point of a worker process: one thread, own process group, records sent through `conn`.

    An exception outside the run itself (an import that fails, a result that cannot be sent) is sent to the
    parent as text before the worker exits, so the record says why instead of only "exit code 1".
    """
    try:
        _worker_body(job, device, cache_dir, conn, parent_pid, compile)
    except Exception:
        with contextlib.suppress(Exception):
            conn.send(("crash", traceback.format_exc(limit=-30)))
        raise SystemExit(1) from None


def _worker_body(job: Job, device: str, cache_dir: str, conn: Connection, parent_pid: int, compile: bool) -> None:
    os.setpgrp()
    _watch_parent(parent_pid)
    scrub_environment()
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = "1"
    import torch

    from phenomena_bench.registry import get_family

    torch.set_num_threads(1)
    get_family(job.runs[0].family)  # the harness's own imports are start-up, not the method's time
    with contextlib.suppress(ImportError):
        import torch._dynamo  # noqa: F401  (the first optimizer step imports it lazily: seconds on a busy CPU)
    conn.send(("ready",))
    last = [0.0]

    def progress(done: int, total: int) -> None:
        now = time.monotonic()
        if now - last[0] > 0.25 or done >= total:
            last[0] = now
            conn.send(("progress", done, total))

    for record in execute_job(job, device, Path(cache_dir), progress, compile):
        conn.send(("record", record.model_dump_json()))
    conn.send(("done",))
    conn.close()


@dataclass
class _Active:
    job: Job
    process: Any
    conn: Connection
    slot: int
    device: str
    started_at: str
    t0: float
    ready_at: float | None = None
    crash: str | None = None
    recorded: set[str] = field(default_factory=set)
    done: bool = False

    def failures(self, status: Status, error: str) -> list[RunRecord]:
        """Records for the job's runs that have none yet, all ended the same way."""
        wall = time.monotonic() - self.t0
        size = len(self.job.runs)
        return [
            failure_record(run, status, error, self.device, self.started_at, wall, size)
            for run in self.job.runs
            if run.key not in self.recorded
        ]


def _describe_exit(code: int | None) -> str:
    if code is None:
        return "worker did not exit"
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        return f"worker killed by {name}" + (" (out of memory?)" if name == "SIGKILL" else "")
    return f"worker exited with code {code} before reporting a result"


class ProcessExecutor:
    """One fresh worker process per job, at most `len(devices)` at once, each with a wall-clock limit."""

    def __init__(self, devices: list[str], cache_dir: Path, poll_s: float = 0.1, compile: bool = False) -> None:
        self.devices = devices
        self.cache_dir = cache_dir
        self.poll_s = poll_s
        self.compile = compile
        self._ctx = worker_context()

    def _start(self, job: Job, slot: int) -> _Active:
        parent, child = self._ctx.Pipe(duplex=False)
        process = self._ctx.Process(
            target=_worker_main,
            args=(job, self.devices[slot], str(self.cache_dir), child, os.getpid(), self.compile),
            daemon=False,
        )
        with secrets_removed(), single_threaded_environment():  # the fork server starts with the first worker
            process.start()
        child.close()
        return _Active(job, process, parent, slot, self.devices[slot], _now(), time.monotonic())

    @staticmethod
    def _kill(active: _Active) -> None:
        """Kill the worker and everything it started (its process group)."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(active.process.pid, signal.SIGKILL)
        if active.process.is_alive():  # killed before it made its own group: kill the process itself
            active.process.kill()
        active.process.join(timeout=5)

    def execute(
        self,
        jobs: list[Job],
        on_record: OnRecord,
        on_progress: OnProgress | None = None,
        claim: Claim | None = None,
    ) -> None:
        pending = list(jobs)
        active: dict[int, _Active] = {}
        free_slots = list(range(len(self.devices)))
        try:
            while pending or active:
                while pending and free_slots:
                    job = claim_job(pending.pop(0), claim)
                    if job is None:
                        continue
                    slot = free_slots.pop(0)
                    active[slot] = self._start(job, slot)
                if not active:
                    break
                handles = [a.conn for a in active.values()] + [a.process.sentinel for a in active.values()]
                wait(handles, timeout=self.poll_s)
                for slot, a in list(active.items()):
                    for record in self._poll(a, on_progress):
                        on_record(record)
                    if a.done:
                        del active[slot]
                        free_slots.append(slot)
        finally:
            for a in active.values():  # Ctrl-C or an error in the parent: leave no orphan workers
                self._kill(a)

    def _poll(self, a: _Active, on_progress: OnProgress | None) -> list[RunRecord]:
        """Records that arrived from the job's worker; once the job has ended (by its last record, a crash or
        its time limit) `a.done` is set and every run still without a record gets a failure record."""
        records: list[RunRecord] = []
        finished = False
        try:
            while a.conn.poll():
                message = a.conn.recv()
                if message[0] == "ready":
                    a.ready_at = time.monotonic()
                elif message[0] == "progress" and on_progress:
                    on_progress(a.slot, a.job.title, message[1], message[2])
                elif message[0] == "record":
                    records.append(RunRecord.model_validate_json(message[1]))
                elif message[0] == "done":
                    finished = True
                elif message[0] == "crash":
                    a.crash = message[1]
        except (EOFError, OSError):
            pass  # the worker died mid-message: judged below by its exit code
        a.recorded.update(r.key for r in records)
        if finished:
            a.process.join(timeout=10)
            if a.process.is_alive():
                self._kill(a)
            a.done = True  # a run the worker said nothing about is recorded as such, never dropped
            return records + a.failures("failed", "the worker finished its job without a record for this run")
        wall = time.monotonic() - a.t0
        what = "run" if len(a.job.runs) == 1 else f"batch of {len(a.job.runs)} runs"
        limit = a.job.time_limit_s
        if a.ready_at is None and wall > max(STARTUP_LIMIT_S, limit):
            self._kill(a)
            a.done = True
            return records + a.failures(
                "timeout", f"worker did not start within {max(STARTUP_LIMIT_S, limit):g} s; killed"
            )
        if a.ready_at is not None and time.monotonic() - a.ready_at > limit:
            self._kill(a)
            a.done = True
            return records + a.failures(
                "timeout", f"{what} exceeded its time limit of {limit:g} s; worker and its children killed"
            )
        if not a.process.is_alive():
            a.process.join()
            a.done = True
            return records + a.failures(
                "failed", _describe_exit(a.process.exitcode) + (f"\n\n{a.crash}" if a.crash else "")
            )
        return records


def default_worker_count(device: str) -> int:
    """One worker per core on the CPU; one per visible GPU on CUDA."""
    if device.startswith("cuda"):
        import torch

        return 1 if ":" in device else max(1, torch.cuda.device_count())
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1))


def device_slots(device: str, workers: int) -> list[str]:
    if device == "cuda":
        import torch

        return [f"cuda:{i % max(1, torch.cuda.device_count())}" for i in range(workers)]
    return [device] * workers


if sys.platform == "win32":  # pragma: no cover - process groups are POSIX
    raise ImportError("phenomena-bench's process executor needs a POSIX system")
