"""Plans runs (task x method x seed), keys them by content, executes one, and records it.

The run key is the SHA-256 of the canonical JSON of everything that determines a result: the task spec as
run (tier applied; prose left out), the method's identity (name, family, version and every hyperparameter
value, defaults included — a changed default must not keep an old key), the seed and the benchmark
version. Equal keys mean equal results, so the runner skips any key already in the store.

This module must stay importable without torch: worker processes unpickle a :class:`PlannedRun` before they
have set their thread count, and `phenomena-bench tasks` should not pay for importing torch.
"""

from __future__ import annotations

import hashlib
import os
import platform
import time
import traceback
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from benchmark import __version__
from benchmark.errors import BenchmarkError
from benchmark.families import get_family
from benchmark.families.base import Method, RunContext, RunOutcome, Status
from benchmark.registry import method_source, methods_for_family, resolve_method
from benchmark.spec import TaskSpec, TierName, canonical_json
from benchmark.store import MethodIdentity, RunRecord, Store

RETRYABLE: frozenset[Status] = frozenset({"failed", "timeout"})


def run_key(task: TaskSpec, method: Method, seed: int) -> str:
    """Content hash of a run; `task` must already be resolved to its tier."""
    payload = {
        "task": task.key_payload(),
        "method": method.identity(),
        "seed": seed,
        "benchmark_version": __version__,
    }
    return hashlib.sha256(canonical_json(payload).encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class PlannedRun:
    """Everything a worker needs to do one run; plain data, so it pickles across processes."""

    key: str
    family: str
    task_id: str
    tier: str
    seed: int
    method_ref: str
    hyperparameters: dict[str, Any]
    method: dict[str, Any]
    task: dict[str, Any]
    time_limit_s: float

    @property
    def title(self) -> str:
        return f"{self.task_id} [{self.tier}] {self.method['label']} seed={self.seed}"


@dataclass
class Plan:
    todo: list[PlannedRun] = field(default_factory=list)
    done: list[str] = field(default_factory=list)
    all_keys: list[str] = field(default_factory=list)
    #: Why each stored record that could not be trusted is being redone (torn file, foreign content).
    corrupt: list[str] = field(default_factory=list)


def plan_runs(
    tasks: list[TaskSpec],
    method_refs: list[str] | None,
    tier: TierName,
    store: Store,
    seeds: int | None = None,
    hyperparameters: dict[str, Any] | None = None,
    retry_failed: bool = False,
) -> Plan:
    """Expand tasks x methods x seeds at `tier`; every method is checked before any run starts.

    With no `method_refs`, each task gets every installed method of its family.
    """
    plan = Plan()
    resolved_methods: dict[str, Method] = {}
    for task in tasks:
        run_task = task.resolve(tier)
        refs = method_refs or methods_for_family(task.family)
        if not refs:
            raise BenchmarkError(f"no installed method for family {task.family!r} (task {task.id})")
        for ref in refs:
            if ref not in resolved_methods:
                resolved_methods[ref] = resolve_method(ref, hyperparameters)
            method = resolved_methods[ref]
            if method.family != task.family:
                if method_refs and len(tasks) == 1:
                    raise BenchmarkError(
                        f"method {ref!r} is for family {method.family!r}, but task {task.id!r} is {task.family!r}"
                    )
                continue  # several tasks of several families: each method runs where it fits
            identity = MethodIdentity(
                **method.identity(), label=method.label(), ref=ref, source=method_source(method)
            ).model_dump(mode="json")
            for seed in range(seeds if seeds is not None else run_task.seeds):
                key = run_key(run_task, method, seed)
                plan.all_keys.append(key)
                if store.has(key):
                    status = _status_of(store, key, plan.corrupt)
                    if status is not None and not (retry_failed and status in RETRYABLE):
                        plan.done.append(key)
                        continue
                plan.todo.append(
                    PlannedRun(
                        key=key,
                        family=task.family,
                        task_id=task.id,
                        tier=tier,
                        seed=seed,
                        method_ref=ref,
                        hyperparameters=dict(hyperparameters or {}),
                        method=identity,
                        task=run_task.model_dump(mode="json"),
                        time_limit_s=run_task.time_limit_s,
                    )
                )
    if method_refs and not plan.all_keys:
        raise BenchmarkError("none of the chosen methods fits any of the chosen tasks (check their families)")
    return plan


def _status_of(store: Store, key: str, corrupt: list[str]) -> str | None:
    """The stored status of `key`, or None (noted in `corrupt`) when its record cannot be trusted.

    Every existing record is parsed, not just found: a torn or edited file must be redone, not counted done.
    """
    try:
        return store.get(key).status
    except BenchmarkError as err:
        corrupt.append(str(err))
        return None


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def make_record(
    run: PlannedRun,
    outcome: RunOutcome,
    device: str,
    started_at: str,
    wall_time_s: float,
    torch_version: str = "unknown",
) -> RunRecord:
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
        error=outcome.error,
        wall_time_s=round(wall_time_s, 3),
        device=device,
        torch_version=torch_version,
        benchmark_version=__version__,
        started_at=started_at,
        finished_at=_now(),
        task=run.task,
    )


def failure_record(run: PlannedRun, status: Status, error: str, device: str, started_at: str, wall: float) -> RunRecord:
    """A record for a run that ended without an outcome: crashed worker, time limit, unreadable result."""
    return make_record(run, RunOutcome(status=status, error=error), device, started_at, wall)


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


def execute_run(run: PlannedRun, device: str, cache_dir: Path, progress: Any = None) -> RunRecord:
    """Do one run in this process and return its record, whatever happens inside the method.

    An exception raised anywhere in the run (the method's code, or the harness on the method's bad output)
    becomes a `failed` record with the traceback; the caller decides where the record goes.
    """
    import torch

    started_at, t0 = _now(), time.perf_counter()
    family = get_family(run.family)
    try:
        task = family.spec_model.model_validate(run.task)
        method = resolve_method(run.method_ref, run.hyperparameters)
        torch.manual_seed(run.seed)
        ctx = RunContext(
            seed=run.seed,
            device=device,
            cache_dir=cache_dir,
            progress=progress or (lambda done, total: None),
        )
        outcome = family.run(task, method, ctx)
    except Exception as err:
        outcome = RunOutcome(
            # the innermost frames are the submission's: keep those when the stack is deep
            status="failed", error=f"{type(err).__name__}: {err}\n\n{traceback.format_exc(limit=-30)}"
        )
    return make_record(run, outcome, device, started_at, time.perf_counter() - t0, torch.__version__)


def machine_summary() -> str:
    return f"{platform.machine()} {os.cpu_count()} cpu(s), python {platform.python_version()}"
