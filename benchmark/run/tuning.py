"""Equal tuning budgets: K trials of a method's declared search space on development seeds, one stored choice.

``phenomena-bench tune --task T --method M --trials K`` proposes K hyperparameter settings with Optuna's TPE
sampler, seeded from (task, tier, method) so that the same command proposes the same trials, and runs each
as an ordinary plan on the development seeds (``DEV_SEED_BASE + 0 .. N-1``, never a scoring seed): isolated,
metered, stored under its own run key, so a second ``tune`` finds every trial done and runs nothing.

**The choice rule is fixed before any trial runs** and written into the choice: the trial with the best
leaderboard rank key (:func:`~phenomena_bench.analysis.rows.rank_key`) of the task's primary metric over its
development seeds — the family's own statistic (the median for a time-to-event column, with a seed that
did not reach the target at +inf, then the restricted mean time; the mean or median of a bounded column with
a failed seed at the column's floor), then the success rate — ties to the earlier trial. The method is
therefore chosen by exactly what ranks it.

The choice is stored atomically at ``STORE/tuning/<task>/<tier>/<method>.json`` (:class:`TuningChoice`:
every trial's hyperparameters and score, K, the development seeds, the FLOPs and wall time the trials
spent, the rule, the sampler, the versions); nothing is written outside the store. ``phenomena-bench run``
then scores the chosen hyperparameters on the scoring seeds (:func:`stored_choices`), and the records carry
the budget (:class:`~phenomena_bench.store.TuningBudget`) that the leaderboard shows beside the score. A
choice made for another task version or another version or code of the method is stale and not used.

**Every method gets the same K**: :data:`SUITE_TRIALS`, unless ``--trials`` says otherwise (then the budget
beside the row says so). Tuning is on demand: the default suite's runtime is fixed and never includes it.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from phenomena_bench import __version__
from phenomena_bench.core.atomic import atomic_write_text
from phenomena_bench.core.errors import BenchmarkError, StoreError
from phenomena_bench.core.hashing import sha256_hex
from phenomena_bench.core.method import Method, code_digest
from phenomena_bench.core.search_space import Dimension, SearchSpace, search_space
from phenomena_bench.core.seeds import DEV_SEED_BASE, group_seed
from phenomena_bench.core.spec import TaskSpec, TierName
from phenomena_bench.run.plan import PlannedRun, Tuned, TuningLookup, plan_runs
from phenomena_bench.store import RunRecord, Store, TuningBudget

#: The suite's K: how many trials every method (baseline or submission) gets on every task and tier.
#: 16 keeps a default-tier tuning of one method within about one default-suite run of it per dev seed count,
#: and leaves TPE 6 model-guided trials after its 10 random start-up trials.
SUITE_TRIALS = 16
#: The folder of the store that holds tuning choices.
TUNING_DIR = "tuning"
#: The rule, written into every choice (fixed in advance, the same for every method).
CHOICE_RULE = (
    "best leaderboard rank key of the primary metric over the development seeds (the family's statistic: "
    "median with not-reached seeds at +inf then restricted mean for a time-to-event column, the central "
    "value with failed seeds at the column's floor otherwise; then success rate); ties to the earlier trial"
)
#: A file name part that needs no escaping (method names usually are); anything else is hashed.
_SAFE_NAME = re.compile(r"[a-z0-9][a-z0-9_.\-]{0,80}")
#: One part of a task id (what the spec allows between slashes: never "..", never a path separator).
_TASK_PART = re.compile(r"[a-z0-9][a-z0-9_.\-]*")

#: Runs a plan's missing runs; returns how many ended without a complete score (as the CLI's execute does).
Execute = Callable[[list[PlannedRun]], int]


class Trial(BaseModel):
    """One trial: its hyperparameters, its runs and its score under the choice rule."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    number: int = Field(ge=0)
    hyperparameters: dict[str, Any]
    run_keys: list[str]
    statuses: dict[str, int]
    #: The rank key (smaller is better; None: no seed gave a value, the worst score).
    score: tuple[float, float, float] | None
    #: The primary metric's value over the development seeds, as the leaderboard shows it.
    primary: float | None
    flops: float | None
    wall_time_s: float


class TuningChoice(BaseModel):
    """What ``tune`` stores for one (task, tier, method): everything needed to audit and reuse the choice."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    task_id: str
    task_version: int
    tier: str
    family: str
    method: str
    method_ref: str
    method_version: str
    method_code: str
    primary_metric: str
    direction: str
    rule: str
    trials: int = Field(ge=1)
    dev_seeds: list[int]
    search_space: list[str]
    sampler: str
    optuna_version: str
    benchmark_version: str
    trial_results: list[Trial]
    chosen_trial: int = Field(ge=0)
    chosen: dict[str, Any]
    flops: float | None
    wall_time_s: float
    created_at: str

    def budget(self) -> TuningBudget:
        """What a scored run of the choice records (and its run key holds)."""
        return TuningBudget(
            trials=self.trials,
            dev_seeds=list(self.dev_seeds),
            flops=self.flops,
            wall_time_s=self.wall_time_s,
            chosen_trial=self.chosen_trial,
            rule=self.rule,
            sampler=self.sampler,
        )

    def is_for(self, task: TaskSpec, method: Method[Any]) -> bool:
        """Whether this choice was made for this task version and this version and code of the method."""
        return (
            self.task_version == task.version
            and self.method_version == str(method.version)
            and self.method_code == code_digest(type(method))
        )


# --------------------------------------------------------------------------------------------- the store


def choice_path(store: Store, task_id: str, tier: str, method: str) -> Path:
    """``STORE/tuning/<task>/<tier>/<method>.json``; a method name that is not a plain file name is hashed."""
    name = method if _SAFE_NAME.fullmatch(method) else "m-" + sha256_hex(method)[:16]
    parts = task_id.split("/")
    if not all(_TASK_PART.fullmatch(p) for p in parts) or tier not in ("smoke", "default", "full"):
        raise StoreError(f"{task_id!r} [{tier}]: not a task id and tier a tuning choice can be stored under")
    return store.root.joinpath(TUNING_DIR, *parts, tier, f"{name}.json")


def load_choice(store: Store, task_id: str, tier: str, method: str) -> TuningChoice | None:
    """The stored choice, or None; a file that does not parse is a :class:`StoreError` naming it."""
    path = choice_path(store, task_id, tier, method)
    if not path.is_file():
        return None
    try:
        return TuningChoice.model_validate_json(path.read_text(encoding="utf-8"))
    except (ValidationError, UnicodeDecodeError, OSError) as err:
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise StoreError(f"{path}: corrupt tuning choice, not used ({reason}; fix: run tune again)") from None


def save_choice(store: Store, choice: TuningChoice) -> Path:
    """Write `choice` atomically under the store."""
    path = choice_path(store, choice.task_id, choice.tier, choice.method)
    return atomic_write_text(path, choice.model_dump_json(indent=1))


def stored_choices(store: Store, warn: Callable[[str], None] = lambda line: None) -> TuningLookup:
    """The lookup :func:`~phenomena_bench.run.plan.plan_runs` uses to score stored choices: for each (task,
    tier, method) the chosen hyperparameters and budget, or None (never tuned, or `warn`-ed as stale)."""

    def lookup(task: TaskSpec, tier: str, method: Method[Any]) -> Tuned | None:
        # a held-out variant scores its public task's choice: tuned on the public task, scored off it
        origin = getattr(task, "variant_of", None)
        choice = load_choice(store, origin.of if origin is not None else task.id, tier, method.name)
        if choice is None:
            return None
        if not choice.is_for(task, method):
            warn(
                f"the tuning choice for {method.name} on {task.id} [{tier}] was made for another task or method "
                "version; running the defaults (fix: run tune again)"
            )
            return None
        return Tuned(hyperparameters=dict(choice.chosen), budget=choice.budget())

    return lookup


# --------------------------------------------------------------------------------------------- tuning


def dev_seeds(count: int) -> list[int]:
    """The development seeds a trial runs on (the ``--dev`` seeds: disjoint from every scoring seed)."""
    return list(range(DEV_SEED_BASE, DEV_SEED_BASE + count))


def sampler_seed(task_id: str, tier: str, method: str) -> int:
    """The TPE sampler's seed: a function of (task, tier, method) only, so a re-run proposes the same trials."""
    return group_seed(task_id, tier, method, "tune") % 2**32


def tune(
    task: TaskSpec,
    ref: str,
    tier: TierName,
    store: Store,
    execute: Execute,
    trials: int = SUITE_TRIALS,
    seeds: int | None = None,
    on_trial: Callable[[Trial], None] = lambda trial: None,
) -> TuningChoice:
    """Run `trials` trials of method `ref` on `task` at `tier` on the development seeds, store the choice.

    `seeds` development seeds per trial (default: the tier's seed count). Trials run one after another (TPE
    proposes each from the scores before it); the seeds of one trial run as one plan through `execute`.
    """
    import optuna

    if trials < 1:
        raise BenchmarkError(f"--trials must be >= 1, not {trials}")
    run_task = task.resolve(tier)
    count = seeds if seeds is not None else run_task.seeds
    method = _method_of(ref)
    if method.family != task.family:
        raise BenchmarkError(f"method {ref!r} is for family {method.family!r}, but task {task.id!r} is {task.family!r}")
    space = search_space(type(method).Hyperparameters)
    if not space.dimensions:
        raise BenchmarkError(f"method {method.name!r} declares no search space: nothing to tune")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    seed = sampler_seed(task.id, tier, method.name)
    study = optuna.create_study(direction="minimize", sampler=optuna.samplers.TPESampler(seed=seed))
    distributions = {d.name: _distribution(d) for d in space.dimensions}
    done: list[Trial] = []
    for number in range(trials):
        asked = study.ask(distributions)
        hp = {name: _as_field_value(space, name, value) for name, value in asked.params.items()}
        trial = _run_trial(number, task, ref, tier, store, count, hp, execute)
        study.tell(asked, _objective(trial))
        done.append(trial)
        on_trial(trial)
    choice = _choose(
        task, run_task, ref, tier, method, space, done, dev_seeds(count), f"optuna TPESampler(seed={seed})"
    )
    save_choice(store, choice)
    return choice


def _method_of(ref: str) -> Method[Any]:
    from phenomena_bench.registry import resolve_method

    return resolve_method(ref)


def _distribution(dim: Dimension) -> Any:
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    if dim.kind == "categorical":
        return CategoricalDistribution(list(dim.choices))
    assert dim.low is not None and dim.high is not None
    if dim.kind == "int":
        return IntDistribution(int(dim.low), int(dim.high), log=dim.log)
    return FloatDistribution(dim.low, dim.high, log=dim.log)


def _as_field_value(space: SearchSpace, name: str, value: Any) -> Any:
    dim = next(d for d in space.dimensions if d.name == name)
    return int(value) if dim.kind == "int" else float(value) if dim.kind == "float" else value


def _run_trial(
    number: int,
    task: TaskSpec,
    ref: str,
    tier: TierName,
    store: Store,
    count: int,
    hp: dict[str, Any],
    execute: Execute,
) -> Trial:
    """One trial: the plan of its development seeds (what is stored already is reused), then its score."""
    plan = plan_runs([task], [ref], tier, store, count, hp, dev=True)
    execute(plan.todo)
    records = [store.get(key) for key in plan.all_keys if store.has(key)]
    score, primary = _score(records)
    return Trial(
        number=number,
        hyperparameters=hp,
        run_keys=list(plan.all_keys),
        statuses={s: sum(r.status == s for r in records) for s in sorted({r.status for r in records})},
        score=score,
        primary=primary,
        flops=_flops(records),
        wall_time_s=sum(r.wall_time_s for r in records),
    )


def _score(records: Sequence[RunRecord]) -> tuple[tuple[float, float, float] | None, float | None]:
    """The rank key and primary value of the trial's runs, by the leaderboard's own aggregation."""
    from phenomena_bench.analysis.rows import aggregate, rank_key

    if not records:
        return None, None
    rows = aggregate(records, include_dev=True)
    if len(rows) != 1:
        raise BenchmarkError(f"a trial's runs made {len(rows)} rows, not one (mixed versions in the store?)")
    return rank_key(rows[0]), rows[0].primary


def _objective(trial: Trial) -> float:
    """What TPE minimises: the rank key's first part, or — where that is +inf (the median did not reach the
    target) — a value above every finite one, ordered by the restricted mean; TPE only compares values."""
    if trial.score is None:
        return math.inf
    first, second, _ = trial.score
    if math.isfinite(first):
        return first
    return 1e12 + second if math.isfinite(second) else math.inf


def _flops(records: Sequence[RunRecord]) -> float | None:
    """The trial's FLOPs: the headline FLOP metric of each run (the table's FLOPs column), summed."""
    from phenomena_bench.analysis.tables import headline_flops

    total, seen = 0.0, False
    for r in records:
        for name in headline_flops(sorted(r.metrics)):
            value = r.metrics.get(name)
            if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
                total, seen = total + float(value), True
    return total if seen else None


def best_trial(trials: Sequence[Trial]) -> Trial:
    """The choice rule: the smallest rank key (a trial without one is the worst), ties to the earlier trial."""
    worst = (math.inf, math.inf, math.inf)
    return min(trials, key=lambda t: (t.score if t.score is not None else worst, t.number))


def _choose(
    task: TaskSpec,
    run_task: TaskSpec,
    ref: str,
    tier: TierName,
    method: Method[Any],
    space: SearchSpace,
    trials: list[Trial],
    seeds: list[int],
    sampler: str,
) -> TuningChoice:
    import optuna

    from phenomena_bench.registry import get_family

    family = get_family(task.family)
    best = best_trial(trials)
    flops = [t.flops for t in trials if t.flops is not None]
    return TuningChoice(
        task_id=task.id,
        task_version=run_task.version,
        tier=tier,
        family=task.family,
        method=method.name,
        method_ref=ref,
        method_version=str(method.version),
        method_code=code_digest(type(method)),
        primary_metric=family.primary_metric,
        direction=family.direction,
        rule=CHOICE_RULE,
        trials=len(trials),
        dev_seeds=seeds,
        search_space=space.describe(),
        sampler=sampler,
        optuna_version=optuna.__version__,
        benchmark_version=__version__,
        trial_results=trials,
        chosen_trial=best.number,
        chosen=dict(best.hyperparameters),
        flops=sum(flops) if flops else None,
        wall_time_s=sum(t.wall_time_s for t in trials),
        created_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
    )
