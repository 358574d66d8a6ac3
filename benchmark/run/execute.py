"""Executes one job (a run, or several seeds batched) in this process and turns its outcome into records.

Whatever the method does (raise, return garbage, diverge), this returns one record per run; the executors
(:mod:`phenomena_bench.run.executors`) call it inside an isolated worker and deal with what it cannot catch
(crashes, hangs, the time limit).
"""

from __future__ import annotations

import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from phenomena_bench import __version__
from phenomena_bench.core.costs import reset_shared, shared_seconds
from phenomena_bench.core.errors import BenchmarkError
from phenomena_bench.core.family import RunContext, RunOutcome, Status
from phenomena_bench.registry import get_family, resolve_method
from phenomena_bench.run.plan import Job, PlannedRun
from phenomena_bench.store import MethodIdentity, RunRecord


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def make_record(
    run: PlannedRun,
    outcome: RunOutcome,
    device: str,
    started_at: str,
    wall_time_s: float,
    torch_version: str = "unknown",
    batched_with: int = 1,
    shared_work_s: float = 0.0,
) -> RunRecord:
    """The record of one run. A status other than ok always carries a reason (the family's, else one naming
    the family that gave none), so no table or exit message is left to show an empty failure."""
    error = outcome.error
    if outcome.status != "ok" and not (error or "").strip():
        error = f"{outcome.status} (the {run.family} family gave no reason)"
    return RunRecord(
        key=run.key,
        task_id=run.task_id,
        task_version=int(run.task["version"]),
        family=run.family,
        tier=run.tier,
        seed=run.seed,
        method=MethodIdentity(**run.method),
        status=outcome.status,
        metrics=outcome.metrics,
        curves={name: curve.to_json() for name, curve in outcome.curves.items()},
        error=error,
        wall_time_s=round(wall_time_s, 3),
        shared_work_s=round(shared_work_s, 3),
        device=device,
        torch_version=torch_version,
        benchmark_version=__version__,
        started_at=started_at,
        finished_at=_now(),
        task=run.task,
        batched_with=batched_with,
    )


def failure_record(
    run: PlannedRun, status: Status, error: str, device: str, started_at: str, wall: float, batched_with: int = 1
) -> RunRecord:
    """A record for a run that ended without an outcome: crashed worker, time limit, unreadable result.

    `wall` is the whole job's wall time; a run of a batch is charged its share, as when it finishes."""
    return make_record(
        run, RunOutcome(status=status, error=error), device, started_at, wall / batched_with, batched_with=batched_with
    )


def resolve_device(requested: str) -> str:
    """`auto` picks CUDA when present; asking for CUDA without it is an error, not a silent CPU run."""
    import torch

    if requested == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if requested.startswith("cuda") and not torch.cuda.is_available():
        raise BenchmarkError("--device cuda was asked for, but torch sees no CUDA device (use --device cpu or auto)")
    if requested not in ("cpu", "cuda") and not requested.startswith("cuda:"):
        raise BenchmarkError(f"unknown device {requested!r} (use auto, cpu, cuda or cuda:N)")
    return requested


def execute_job(job: Job, device: str, cache_dir: Path, progress: Any = None, compile: bool = False) -> list[RunRecord]:
    """Do a job in this process and return one record per run, whatever happens inside the method.

    A single run goes through :meth:`Family.run`; several seeds through :meth:`Family.run_batch`, as one
    program. A :class:`MethodError` (the harness refusing a method's bad output) becomes a `failed` record with
    its one-line reason; any other exception raised anywhere becomes a `failed` record with the traceback, for every
    run of the job (in a batch they share the
    method's code and the program). Each record carries the batch size and an equal share of the wall time,
    so costs stay comparable with runs done alone; the caller decides where the records go.

    Time the job spent inside :func:`~phenomena_bench.core.costs.shared_work` (building a cached ground
    truth, control or dataset that later runs read for free) is taken off that share and recorded apart as
    ``shared_work_s``: otherwise whichever method runs first pays for every method.
    """
    import torch

    first = job.runs[0]
    seeds = [run.seed for run in job.runs]
    started_at, t0 = _now(), time.perf_counter()
    reset_shared()
    family = get_family(first.family)
    try:
        task = family.spec_model.model_validate(first.task)
        method = resolve_method(first.method_ref, first.hyperparameters)
        torch.manual_seed(seeds[0])
        ctx = RunContext(
            seed=seeds[0],
            device=device,
            cache_dir=cache_dir,
            progress=progress or (lambda done, total: None),
            compile=compile,
        )
        if len(seeds) == 1:
            outcomes = [family.run(task, method, ctx)]
        else:
            outcomes = family.run_batch(task, method, seeds, ctx)
            if len(outcomes) != len(seeds):
                raise RuntimeError(f"run_batch returned {len(outcomes)} outcomes for {len(seeds)} seeds")
    except Exception as err:  # raised anywhere, the method's code included: every run of the job ends with it
        outcomes = [RunOutcome.from_error(err) for _ in seeds]
    shared = shared_seconds()
    share = max(0.0, time.perf_counter() - t0 - shared) / len(seeds)
    return [
        make_record(
            run,
            outcome,
            device,
            started_at,
            share,
            torch.__version__,
            batched_with=len(seeds),
            shared_work_s=shared / len(seeds),
        )
        for run, outcome in zip(job.runs, outcomes)
    ]
