"""Runs on a Ray cluster (``--executor ray``; ``pip install 'phenomena-bench[ray]'``).

Each job (one run, or seeds batched as one program) is one Ray task. Inside it the job goes through the same
isolation as on one machine: the Ray task hands the job to a :class:`~phenomena_bench.run.executors.ProcessExecutor`
with one slot, so the method still gets a fresh worker process of its own, in its own process group,
without the parent's secrets, with the spec's time limit, and a crash of that worker (segfault, out of
memory) becomes a `failed` record instead of a lost Ray worker. The Ray task returns the records as JSON;
the driver, alone, writes them to the store under the same key a local run would have, so local and
cluster results mix freely.

Resources: each run asks Ray for one CPU, and on CUDA (``--device cuda``) for one GPU, or
``PHENOMENA_BENCH_RAY_GPUS_PER_RUN`` GPUs (a fraction such as 0.25 packs four small runs on one GPU). Ray
sets ``CUDA_VISIBLE_DEVICES`` for the task, so the run uses ``cuda:0`` of what it was given. A GPU task gets
a fresh Ray worker each time (``max_calls=1``, Ray's own default for GPU tasks, made explicit here): the
fork server that starts the isolated workers keeps the environment it was started with, so a reused Ray
worker would hand the next run the GPU of its first one.

A node that dies takes its runs with it. Those runs are *lost*, not failed: the method did nothing wrong,
so no record is written (a `failed` record would need ``--retry-failed`` and would count against the
method). The others go on; at the end :class:`RunsLost` names every lost run on one line each, and running
the same command again does exactly what is missing. Ray does not retry them by itself (``max_retries=0``):
a run that took its node down (the machine ran out of memory) would take the next node down too.

The driver also keeps a backstop clock (time limit + start-up allowance + a minute): if a Ray task does not
come back at all (a hung raylet), it is cancelled and recorded as `timeout`.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from phenomena_bench.core.errors import BenchmarkError
from phenomena_bench.run.execute import _now, failure_record
from phenomena_bench.run.executors import (
    STARTUP_LIMIT_S,
    Claim,
    OnProgress,
    OnRecord,
    RunsLost,
    claim_job,
    secrets_removed,
)
from phenomena_bench.run.plan import Job, PlannedRun
from phenomena_bench.store import RunRecord

GPUS_ENV = "PHENOMENA_BENCH_RAY_GPUS_PER_RUN"
#: Extra seconds the driver waits beyond a run's own limits before it gives the Ray task up.
BACKSTOP_S = 60.0
#: A Ray error is cut to this many characters in a record or a "lost" line (one readable line each).
WHY_CHARS = 200


def _run_in_isolated_worker(job: Job, device: str, cache_dir: str, compile: bool = False) -> list[str]:
    """Body of the Ray task: one job in a fresh worker process, via the process executor; records as JSON."""
    from phenomena_bench.run.executors import ProcessExecutor, scrub_environment

    scrub_environment()
    records: list[RunRecord] = []
    ProcessExecutor([device], Path(cache_dir), compile=compile).execute([job], records.append)
    return [record.model_dump_json() for record in records]


def _import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise BenchmarkError(
            "--executor ray needs Ray: pip install 'phenomena-bench[ray]' (or use --executor process)"
        ) from None
    return ray


def gpus_per_run(device: str) -> float:
    """GPUs each run asks Ray for: 0 on the CPU; on CUDA one, or the fraction the environment asks for."""
    if not device.startswith("cuda"):
        return 0.0
    raw = os.environ.get(GPUS_ENV, "1")
    try:
        value = float(raw)
    except ValueError:
        raise BenchmarkError(f"{GPUS_ENV}={raw!r} is not a number (use e.g. 1 or 0.25)") from None
    if not 0 < value <= 8:
        raise BenchmarkError(f"{GPUS_ENV}={raw!r} must be in (0, 8]")
    return value


class RayExecutor:
    """Sends each run to Ray (a local instance by default, or the cluster at `address`)."""

    def __init__(
        self, device: str, cache_dir: Path, address: str | None = None, poll_s: float = 0.2, compile: bool = False
    ) -> None:
        self.ray = _import_ray()
        self.device = device
        self.cache_dir = cache_dir
        self.address = address
        self.poll_s = poll_s
        self.num_gpus = gpus_per_run(device)
        self.compile = compile

    def _connect(self) -> None:
        if self.ray.is_initialized():
            return
        # A local Ray instance started here inherits this environment: keep secrets out of it too.
        with secrets_removed():
            self.ray.init(
                address=self.address,
                ignore_reinit_error=True,
                include_dashboard=False,
                log_to_driver=False,
                configure_logging=False,
                runtime_env={"env_vars": {"PYTHONPATH": _python_path()}},
            )

    def execute(
        self,
        jobs: list[Job],
        on_record: OnRecord,
        on_progress: OnProgress | None = None,
        claim: Claim | None = None,
    ) -> None:
        """Submit every claimable job at once (Ray queues them by resources); record each as it returns."""
        ray = self.ray
        self._connect()
        task = ray.remote(num_cpus=1, num_gpus=self.num_gpus, max_retries=0, max_calls=1 if self.num_gpus else 0)(
            _run_in_isolated_worker
        )
        # With a GPU, Ray narrows CUDA_VISIBLE_DEVICES to the task's share: inside, it is always cuda:0.
        device = "cuda:0" if self.device.startswith("cuda") else self.device
        pending: dict[Any, tuple[Job, str, float]] = {}
        submitted: list[Job] = []
        lost: list[tuple[PlannedRun, str]] = []
        try:
            for planned in jobs:
                job = claim_job(planned, claim)
                if job is None:
                    continue
                ref = task.remote(job, device, str(self.cache_dir.resolve()), self.compile)
                pending[ref] = (job, _now(), time.monotonic())
                submitted.append(job)
            while pending:
                ready, _ = ray.wait(list(pending), num_returns=1, timeout=self.poll_s)
                for ref in ready:
                    job, started_at, t0 = pending.pop(ref)
                    records, why_lost = self._collect(ref, job, started_at, t0)
                    for record in records:
                        on_record(record)
                    lost += [(run, why_lost) for run in job.runs] if why_lost else []
                for ref, (job, started_at, t0) in list(pending.items()):
                    waited = time.monotonic() - t0
                    # Queued tasks wait for resources; the backstop only counts once the job could have run.
                    allowance = self._queue_allowance(job, submitted)
                    if waited > job.time_limit_s + STARTUP_LIMIT_S + BACKSTOP_S + allowance:
                        ray.cancel(ref, force=True)
                        pending.pop(ref)
                        for run in job.runs:
                            on_record(
                                failure_record(
                                    run,
                                    "timeout",
                                    f"Ray task did not return within {waited:.0f} s; cancelled",
                                    self.device,
                                    started_at,
                                    waited,
                                    len(job.runs),
                                )
                            )
        finally:
            for ref in pending:  # Ctrl-C or an error in the driver: cancel what is still out there
                ray.cancel(ref, force=True)
        if lost:
            raise RunsLost(lost)

    @staticmethod
    def _queue_allowance(job: Job, jobs: list[Job]) -> float:
        """Generous time a task may sit in Ray's queue behind the others (they all start at submission)."""
        return sum(j.time_limit_s + STARTUP_LIMIT_S for j in jobs if j is not job)

    def _collect(self, ref: Any, job: Job, started_at: str, t0: float) -> tuple[list[RunRecord], str | None]:
        """The job's records, or none and why it was lost (its node or Ray worker died under it)."""
        try:
            return [RunRecord.model_validate_json(text) for text in self.ray.get(ref)], None
        except Exception as err:
            first = str(err).strip().splitlines()[:1]
            why = f"{type(err).__name__}: {first[0] if first else ''}"
            why = why if len(why) <= WHY_CHARS else why[: WHY_CHARS - 1] + "…"  # Ray's lines run to ~500 chars
            if isinstance(err, _lost_errors(self.ray)):
                return [], why
            # The task itself failed (it raised, its runtime environment could not be set up, no node fits it):
            # that happens again on a rerun, so it is recorded, as a crash of a local worker is.
            return [
                failure_record(
                    run,
                    "failed",
                    f"Ray task failed: {why}",
                    self.device,
                    started_at,
                    time.monotonic() - t0,
                    len(job.runs),
                )
                for run in job.runs
            ], None


def _lost_errors(ray: Any) -> tuple[type[BaseException], ...]:
    """Ray's errors for a task that died with its node, worker or objects rather than by its own doing."""
    ex = ray.exceptions
    return (ex.NodeDiedError, ex.WorkerCrashedError, ex.LocalRayletDiedError, ex.ObjectLostError, ex.RaySystemError)


def _python_path() -> str:
    """The driver's import path for Ray's workers: the checkout and the cwd (for `module:attr` methods)."""
    parts = [os.getcwd(), str(Path(__file__).resolve().parents[1])]
    parts += [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    return os.pathsep.join(dict.fromkeys(parts))
