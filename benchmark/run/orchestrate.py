"""Executes a plan against a store: claims, waiting for other runners, progress, and a clean Ctrl-C.

This is the runner as a library: :func:`execute_plan` takes the runs to do, a store and an executor and
returns what happened; the CLI only adds arguments and printing. Each run is claimed in the store just
before it starts (:meth:`Store.try_claim`), so a second runner on the same store skips what this one is
doing, waits for those records, and takes over any run whose claimer died. A record written by someone else
since planning counts as done, not redone. Records are written the moment each run ends, so an interrupted
plan keeps everything that finished.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from phenomena_bench.core.errors import BenchmarkError
from phenomena_bench.run.executors import (
    Executor,
    LocalExecutor,
    ProcessExecutor,
    RunsLost,
    default_worker_count,
    device_slots,
)
from phenomena_bench.run.plan import BatchRule, PlannedRun, group_jobs
from phenomena_bench.store import RunClaim, RunRecord, Store

EXECUTORS = ("process", "local", "ray")


def make_executor(
    kind: str,
    device: str,
    cache_dir: Path,
    workers: int,
    compile: bool = False,
    ray_address: str | None = None,
) -> Executor:
    """An executor by name: ``process`` (isolated workers, the default), ``local`` (in-process), ``ray``."""
    if kind == "local":
        return LocalExecutor(device, cache_dir, compile=compile)
    if kind == "ray":
        from phenomena_bench.run.ray import RayExecutor

        return RayExecutor(device, cache_dir, address=ray_address, compile=compile)
    if kind == "process":
        return ProcessExecutor(device_slots(device, workers), cache_dir, compile=compile)
    raise BenchmarkError(f"unknown executor {kind!r} (use {', '.join(EXECUTORS)})")


def worker_count(requested: int | None, device: str, jobs: int) -> int:
    """`requested` workers, else one per core (CPU) or GPU, never more than there are jobs."""
    if requested is not None and requested < 1:
        raise BenchmarkError(f"--workers must be >= 1, not {requested}")
    return requested or max(1, min(default_worker_count(device), jobs))


class Interrupted(BenchmarkError):
    """Ctrl-C during a plan: what finished is stored; running the same command again does the rest."""

    def __init__(self, finished: int, total: int, store: Path) -> None:
        self.finished, self.total = finished, total
        super().__init__(
            f"interrupted: {finished} of {total} run(s) finished and are stored in {store}; "
            "run the same command again to do the rest"
        )


@dataclass
class PlanResult:
    """What executing a plan did."""

    finished: list[RunRecord] = field(default_factory=list)
    #: Runs found done by another runner on the same store (after planning), not redone here.
    by_others: int = 0
    #: One line per run the executor lost with a node or worker (not recorded: the same command redoes it).
    lost: list[str] = field(default_factory=list)

    @property
    def failed(self) -> list[RunRecord]:
        """Runs that ended failed or timed out (the statuses `--retry-failed` redoes)."""
        return [r for r in self.finished if r.status in ("failed", "timeout")]

    @property
    def not_ok(self) -> list[RunRecord]:
        """Runs that ended without a complete score: failed, timeout or budget_exceeded (exit code 3)."""
        return [r for r in self.finished if r.status in ("failed", "timeout", "budget_exceeded")]


class Progress:
    """Where the orchestration reports: a tqdm bar only when stderr is a terminal (a log gets no bar, whose
    redraws would flood it), plain lines otherwise (or nothing)."""

    def __init__(self, total: int, enabled: bool = True) -> None:
        from tqdm import tqdm

        self.bar = tqdm(
            total=total, unit="run", dynamic_ncols=True, file=sys.stderr, disable=not enabled or not sys.stderr.isatty()
        )
        self.slots: dict[int, str] = {}

    def advance(self) -> None:
        self.bar.update(1)

    def note(self, message: str) -> None:
        """A line for the reader (a failure, a wait): printed with or without a bar."""
        self.bar.write(message, file=sys.stderr)

    def step(self, slot: int, title: str, done: int, total: int) -> None:
        self.slots[slot] = f"{title} {done}/{total}"
        self.bar.set_postfix_str(" | ".join(self.slots[s] for s in sorted(self.slots)), refresh=True)

    def close(self) -> None:
        self.bar.close()


def execute_plan(
    todo: list[PlannedRun],
    store: Store,
    executor: Executor,
    batch: bool | BatchRule = False,
    progress: Progress | None = None,
    poll_s: float = 1.0,
    on_record: Callable[[RunRecord], None] | None = None,
) -> PlanResult:
    """Run `todo` on `executor`, writing each record into `store` the moment it ends.

    `batch` (a :func:`~phenomena_bench.run.plan.batching_rule`, or True for every batchable run) groups seeds
    of one (task, method) into one job where the family allows it. Raises
    :class:`Interrupted` on Ctrl-C, after releasing every claim (finished records stay in the store).
    """
    result = PlanResult()
    if not todo:
        return result
    progress = progress or Progress(len(todo), enabled=False)
    planned = {run.key: store.stamp(run.key) for run in todo}
    claims: dict[str, RunClaim] = {}
    busy: list[PlannedRun] = []

    def written_by_another(run: PlannedRun) -> bool:
        return store.stamp(run.key) != planned[run.key]

    def done_elsewhere() -> bool:
        result.by_others += 1
        progress.advance()
        return False

    def claim(run: PlannedRun) -> bool:
        if written_by_another(run):
            return done_elsewhere()
        held = store.try_claim(run.key)
        if held is None:
            busy.append(run)
            return False
        if written_by_another(run):  # finished by its claimer between our check and our claim
            held.release()
            return done_elsewhere()
        claims[run.key] = held
        return True

    def record_written(record: RunRecord) -> None:
        record = record.redacted(store.redaction_paths())  # what is printed below is what is stored
        store.put(record)
        if record.key in claims:
            claims.pop(record.key).release()
        result.finished.append(record)
        progress.advance()  # a run that is not ok is explained once, under the results table
        if on_record is not None:
            on_record(record)

    jobs = group_jobs(todo, batch)
    if len(jobs) < len(todo):
        progress.note(f"{len(todo)} run(s) as {len(jobs)} job(s): seeds batched as one program")
    told = False
    try:
        while jobs:
            busy.clear()
            try:
                executor.execute(jobs, record_written, progress.step, claim=claim)
            except RunsLost as err:  # the others finished and are stored; the lost ones are said, not recorded
                result.lost += err.lines
            jobs = group_jobs(list(busy), batch)
            if jobs:
                if not told:
                    progress.note(
                        f"waiting for {len(busy)} run(s) claimed by {store.claim_holder(busy[0].key)} on the same store"
                    )
                    told = True
                time.sleep(poll_s)
    except KeyboardInterrupt:
        raise Interrupted(len(result.finished), len(todo), store.root) from None
    finally:
        for held in claims.values():
            held.release()
        progress.close()
    return result
