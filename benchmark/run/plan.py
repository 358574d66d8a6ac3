"""Plans runs (task x method x seed) and keys them by content.

The run key is the SHA-256 of the canonical JSON of everything that determines a result: the task spec as
run (tier applied; prose left out), the method's identity (name, family, version, every hyperparameter
value with defaults included — a changed default must not keep an old key —, the distribution that provides
it and a digest of its code — a different class under the same name must not share a key), the seed and the
benchmark version. Equal keys mean equal results, so the runner skips any key already in the store.

This module must stay importable without torch: worker processes unpickle a :class:`PlannedRun` before they
have set their thread count, and `phenomena-bench tasks` should not pay for importing torch.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from typing import Any

from phenomena_bench import __version__
from phenomena_bench.core.errors import BenchmarkError
from phenomena_bench.core.family import Status
from phenomena_bench.core.hashing import canonical_json, sha256_hex
from phenomena_bench.core.method import Method, distribution_of
from phenomena_bench.core.seeds import DEV_SEED_BASE
from phenomena_bench.core.spec import TaskSpec, TierName
from phenomena_bench.registry import get_family, method_source, methods_for_family, resolve_method
from phenomena_bench.store import MethodIdentity, Store, TuningBudget

RETRYABLE: frozenset[Status] = frozenset({"failed", "timeout"})


def run_key(task: TaskSpec, method: Method, seed: int, tuning: TuningBudget | None = None) -> str:
    """Content hash of a run; `task` must already be resolved to its tier. A tuned run's key also holds its
    tuning budget (wall time left out), so it never shares a record with the same values hand-picked."""
    payload: dict[str, Any] = {
        "task": task.key_payload(),
        "method": method.identity(),
        "seed": seed,
        "benchmark_version": __version__,
    }
    if tuning is not None:
        payload["tuning"] = tuning.model_dump(mode="json", exclude={"wall_time_s"})
    return sha256_hex(canonical_json(payload))


#: What a tuned run's label adds to the method name (its row on the leaderboard is "NAME (tuned)").
TUNED_SUFFIX = " (tuned)"


@dataclass(frozen=True)
class Tuned:
    """A stored tuning choice for one (task, tier, method): the hyperparameters to score, and its budget."""

    hyperparameters: dict[str, Any]
    budget: TuningBudget


#: Finds the stored tuning choice of (task, tier, method), or None (see :mod:`phenomena_bench.run.tuning`).
TuningLookup = Callable[[TaskSpec, str, Method], Tuned | None]


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
    #: Whether the family can train this method's seeds together as one program (Family.can_batch).
    batchable: bool = False

    @property
    def title(self) -> str:
        return f"{self.task_id} [{self.tier}] {self.method['label']} seed={self.seed}"


@dataclass(frozen=True)
class Job:
    """What one worker does as one program: a single run, or several seeds of one (task, method) batched.

    Batching is an execution detail, not part of a result: each run keeps its own key and record, and the
    record is the same (within floating-point tolerance) as when the run is done alone.
    """

    runs: tuple[PlannedRun, ...]

    @property
    def title(self) -> str:
        if len(self.runs) == 1:
            return self.runs[0].title
        first = self.runs[0]
        seeds = ",".join(str(r.seed) for r in self.runs)
        return f"{first.task_id} [{first.tier}] {first.method['label']} seeds={seeds}"

    @property
    def time_limit_s(self) -> float:
        """A batch may take as long as its runs one after another (the CPU case); a hang is caught later."""
        return sum(r.time_limit_s for r in self.runs)

    def only(self, runs: list[PlannedRun]) -> Job | None:
        """This job narrowed to `runs` (the ones it could claim), or None when none is left."""
        kept = tuple(r for r in self.runs if r in runs)
        return Job(kept) if kept else None


#: How seeds are grouped into jobs: ``auto`` batches where it was measured to help (per family and device:
#: :meth:`Family.batches_by_default`), ``on`` wherever the family allows it, ``off`` never.
BATCH_POLICIES = ("auto", "on", "off")
#: Most seeds in one batched program: bounds its memory and how much one failure takes down.
MAX_BATCH = 16


def batching_enabled(policy: str, device: str) -> bool:
    """Whether `policy` may batch seeds on `device` at all (``auto``: the family decides, see
    :func:`batching_rule`; this answers for the base rule, CUDA only)."""
    if policy not in BATCH_POLICIES:
        raise BenchmarkError(f"unknown batching policy {policy!r} (use {', '.join(BATCH_POLICIES)})")
    return policy == "on" or (policy == "auto" and device.startswith("cuda"))


BatchRule = Callable[[PlannedRun], bool]


def batching_rule(policy: str, device: str) -> BatchRule:
    """Which planned runs `policy` trains together with their other seeds on `device`.

    ``on``: every run whose method the family can batch; ``off``: none; ``auto``: those whose family says
    batching pays on this device (:meth:`Family.batches_by_default`, a measured rule per family: on a GPU
    every family; on the CPU only those dominated by per-operation overhead — grokking's step is
    compute-bound there and is not batched).
    """
    if policy not in BATCH_POLICIES:
        raise BenchmarkError(f"unknown batching policy {policy!r} (use {', '.join(BATCH_POLICIES)})")
    if policy == "off":
        return lambda run: False
    if policy == "on":
        return lambda run: run.batchable
    by_family: dict[str, bool] = {}

    def auto(run: PlannedRun) -> bool:
        if run.family not in by_family:
            by_family[run.family] = get_family(run.family).batches_by_default(device)
        return run.batchable and by_family[run.family]

    return auto


def group_jobs(runs: list[PlannedRun], batch: bool | BatchRule, max_batch: int = MAX_BATCH) -> list[Job]:
    """Seeds of one (task, tier, method) into batched jobs of at most `max_batch` where `batch` (a rule from
    :func:`batching_rule`, or True for every batchable run); else one job per run. Planning order is kept: a
    group sits where its first run was planned."""
    rule: BatchRule = batch if callable(batch) else (lambda run: bool(batch) and run.batchable)
    jobs: list[list[PlannedRun]] = []
    open_groups: dict[str, list[PlannedRun]] = {}
    for run in runs:
        if not rule(run):
            jobs.append([run])
            continue
        group_key = canonical_json([run.task, run.method, run.method_ref, run.hyperparameters])
        group = open_groups.get(group_key)
        if group is None or len(group) >= max_batch:
            group = open_groups[group_key] = []
            jobs.append(group)
        group.append(run)
    return [Job(tuple(group)) for group in jobs]


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
    dev: bool = False,
    tuning: TuningLookup | None = None,
    skip: Collection[str] = (),
) -> Plan:
    """Expand tasks x methods x seeds at `tier`; every method is checked before any run starts.

    With no `method_refs`, each task gets every installed method of its family except those named in `skip`
    (a suite's declared exclusions: ``suites.yaml``'s ``skip``). Seeds are the scoring seeds
    ``0 .. N-1``, or with `dev` the development seeds ``DEV_SEED_BASE + 0 .. N-1`` (tuning and pilots: they
    share no split, bag or checkpoint with a scoring seed, and the leaderboard never shows them).

    With `tuning`, a (task, method) that has a stored tuning choice runs the chosen hyperparameters instead,
    labelled ``NAME (tuned)`` and keyed with its budget (``phenomena-bench tune``).
    """
    first_seed = DEV_SEED_BASE if dev else 0
    plan = Plan()
    resolved_methods: dict[str, Method] = {}
    for task in tasks:
        # A held-out variant is drawn already resolved to `tier` (core.variants.draw_variants): run as it is.
        run_task = task if task.variant_of is not None else task.resolve(tier)
        refs = method_refs or [ref for ref in methods_for_family(task.family) if ref not in skip]
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
            tuned = tuning(_tuned_on(run_task), tier, method) if tuning is not None else None
            if tuned is not None:
                method = resolve_method(ref, tuned.hyperparameters)
            batchable = get_family(task.family).can_batch(method)
            identity = MethodIdentity(
                **method.identity(),
                label=method.label() if tuned is None else method.name + TUNED_SUFFIX,
                ref=ref,
                source=method_source(method),
                author=_author_of(method),
                tuning=tuned.budget if tuned is not None else None,
            ).model_dump(mode="json")
            count = seeds if seeds is not None else run_task.seeds
            for seed in range(first_seed, first_seed + count):
                key = run_key(run_task, method, seed, tuned.budget if tuned is not None else None)
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
                        hyperparameters=dict(tuned.hyperparameters if tuned is not None else hyperparameters or {}),
                        method=identity,
                        task=run_task.model_dump(mode="json"),
                        time_limit_s=run_task.time_limit_s,
                        batchable=batchable,
                    )
                )
    if method_refs and not plan.all_keys:
        raise BenchmarkError("none of the chosen methods fits any of the chosen tasks (check their families)")
    return plan


def _tuned_on(task: TaskSpec) -> TaskSpec:
    """The task whose tuning choice a run of `task` scores: a held-out variant scores the choice made on its
    public task (never tuned on itself: it is drawn after tuning), so its gap shows what that tuning bought."""
    return task if task.variant_of is None else task.model_copy(update={"id": task.variant_of.of})


def _author_of(method: Method) -> str | None:
    """Who the installed distribution says wrote `method` (its Author or Author-email), for attribution."""
    dist = distribution_of(type(method))
    if dist is None:
        return None
    for field_name in ("Author", "Author-email", "Maintainer"):
        values = dist.metadata.get_all(field_name) or []
        if values:
            return ", ".join(str(v) for v in values)
    return None


def _status_of(store: Store, key: str, corrupt: list[str]) -> str | None:
    """The stored status of `key`, or None (noted in `corrupt`) when its record cannot be trusted.

    Every existing record is parsed, not just found: a torn or edited file must be redone, not counted done.
    """
    try:
        return store.get(key).status
    except BenchmarkError as err:
        corrupt.append(str(err))
        return None
