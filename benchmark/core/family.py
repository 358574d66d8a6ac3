"""What every phenomenon family shares, and what it hands the runner.

A *family* owns a protocol: the spec sections it needs (:attr:`Family.spec_model`), the base class its
methods implement (:attr:`Family.method_base`, defined in the family's ``api.py``), how one run trains and is
scored (:meth:`Family.run`) and which aggregated columns its results table shows (:meth:`Family.columns`).
The runner, the store and the CLI know nothing family-specific beyond this interface.
"""

from __future__ import annotations

import traceback
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Generic, Literal, TypeVar

from phenomena_bench.core.curves import Curve
from phenomena_bench.core.errors import MethodError
from phenomena_bench.core.method import Method
from phenomena_bench.core.spec import TaskSpec
from phenomena_bench.core.text import printable

Status = Literal["ok", "failed", "timeout", "diverged", "budget_exceeded"]
STATUSES: tuple[Status, ...] = ("ok", "failed", "timeout", "diverged", "budget_exceeded")
Scalar = float | int | bool | str | None


@dataclass(frozen=True)
class Column:
    """One aggregated column of a family's results table.

    kind: ``median_iqr`` (median and interquartile range over seeds), ``mean_ci`` (mean and bootstrap
    interval), ``rate`` (fraction of runs where the boolean metric is true), ``mean``.
    ``event`` names a boolean metric saying whether the value is an observed event; when it is false the
    value is censored at the budget (a lower bound) and the column never averages it as if finished.
    """

    header: str
    metric: str
    kind: Literal["median_iqr", "mean_ci", "rate", "mean"]
    event: str | None = None
    digits: int = 3
    #: What a run that is not ``ok`` (failed, diverged, timed out, over budget) scores on this column, so
    #: that every seed counts: a bounded metric's worst honest value (chance accuracy, AUC 0.5, relative
    #: error 1.0). Unset with `event` set: such a run has not reached the event (+inf, like a censored
    #: one). Unset otherwise: the column summarises only the runs that report it and says how many.
    floor: float | None = None
    #: How the cross-task performance profile and IQM read this column as an error (lower is better, 0 is
    #: exact), when it is a family's primary column: ``time`` — the value itself, a time or count to an
    #: event (not reached = +inf); ``one_minus`` — 1 - value, for a "max" metric bounded by 1 (accuracy,
    #: AUC); ``value`` — the value itself, for a "min" error metric (a relative error).
    error: Literal["time", "one_minus", "value"] | None = None


@dataclass
class RunOutcome:
    """What a family's :meth:`Family.run` returns; the runner adds identity, timing and environment."""

    status: Status = "ok"
    metrics: dict[str, Scalar] = field(default_factory=dict)
    curves: dict[str, Curve] = field(default_factory=dict)
    error: str | None = None

    @classmethod
    def diverged(cls, reason: str, metrics: dict[str, Scalar] | None = None) -> RunOutcome:
        """The outcome of a run whose loss or output became non-finite (the one way to report it)."""
        return cls(status="diverged", metrics=dict(metrics or {}), error=reason)

    @classmethod
    def from_error(cls, err: BaseException) -> RunOutcome:
        """The outcome of a run that raised `err`: :class:`Diverged` ends it `diverged`; a
        :class:`MethodError` (the harness refusing a method's output) `failed` with its one-line reason;
        anything else `failed` with the traceback, keeping the innermost frames (the submission's)."""
        if isinstance(err, Diverged):
            return cls.diverged(str(err), err.metrics)
        if isinstance(err, MethodError):
            return cls(status="failed", error=f"MethodError: {printable(str(err))}")
        trace = "".join(traceback.format_exception(type(err), err, err.__traceback__, limit=-30))
        return cls(status="failed", error=f"{type(err).__name__}: {err}\n\n{trace}")


class Diverged(Exception):
    """Raised inside a run when training (or a method's output) became non-finite: the run ends `diverged`.

    The runner turns it into :meth:`RunOutcome.diverged`, keeping `metrics` measured before it happened.
    """

    def __init__(self, reason: str, metrics: dict[str, Scalar] | None = None) -> None:
        super().__init__(reason)
        self.metrics = dict(metrics or {})


@dataclass
class RunContext:
    """What the harness gives a family for one run."""

    seed: int
    device: str
    cache_dir: Path
    progress: Callable[[int, int], None] = lambda done, total: None
    #: Compile the training step with `torch.compile` where the family supports it (an execution detail,
    #: like the device: results agree within floating-point tolerance, so it is not part of the run key).
    compile: bool = False


TaskT = TypeVar("TaskT", bound=TaskSpec)
MethodT = TypeVar("MethodT", bound=Method[Any])


class Family(ABC, Generic[TaskT, MethodT]):
    """A phenomenon family: its spec model, its method base, how a run trains and is scored, its table."""

    name: ClassVar[str]
    description: ClassVar[str]
    spec_model: ClassVar[type[TaskSpec]]
    method_base: ClassVar[type[Method[Any]]]
    #: The metric that ranks methods, and whether lower or higher is better.
    primary_metric: ClassVar[str]
    direction: ClassVar[Literal["min", "max"]]
    #: The baseline every method is compared against on the leaderboard.
    reference_method: ClassVar[str]
    #: The family's measurements (:mod:`phenomena_bench.core.measurement`) as lazy ``module:attr``
    #: references to :class:`~phenomena_bench.core.measurement.Measurement` classes: imported only when
    #: ``phenomena-bench measure`` runs them.
    measurements: ClassVar[tuple[str, ...]] = ()

    def check_method(self, method: Method[Any]) -> None:
        """Raise :class:`MethodError` naming what is wrong if `method` does not implement this protocol."""
        family = getattr(method, "family", None)
        label = getattr(method, "name", method)
        if family != self.name:
            raise MethodError(f"method {label!r} is for family {family!r}, not {self.name!r}")
        if not isinstance(method, self.method_base):
            base = f"{self.method_base.__module__}.{self.method_base.__qualname__}"
            raise MethodError(f"method {label!r} must subclass {base}")
        missing = missing_hooks(type(method))
        if missing:
            raise MethodError(f"method {label!r} does not implement the {self.name} hook(s) {', '.join(missing)}")

    @abstractmethod
    def run(self, task: TaskT, method: MethodT, ctx: RunContext) -> RunOutcome:
        """Train and score one (task at a tier, method, seed). Exceptions from the method propagate."""

    def can_batch(self, method: MethodT) -> bool:
        """Whether several seeds of `method` can train as one program (see :meth:`run_batch`)."""
        return False

    def batches_by_default(self, device: str) -> bool:
        """Whether ``--batch-seeds auto`` trains this family's batchable seeds together on `device`.

        The base rule is the grokking measurement: on a GPU a small model is launch-bound, so R seeds cost
        about one; on the CPU a compute-bound step gains nothing and the batch waits for its slowest seed. A
        family whose CPU runs are dominated by per-operation overhead overrides this with its own measured
        rule (its docstring gives the figure)."""
        return device.startswith("cuda")

    def run_batch(self, task: TaskT, method: MethodT, seeds: list[int], ctx: RunContext) -> list[RunOutcome]:
        """Train and score several seeds as one program; one outcome per seed, each equal (within
        floating-point tolerance) to what :meth:`run` gives that seed alone. Only called when
        :meth:`can_batch` is true."""
        raise NotImplementedError(f"family {self.name!r} does not train seeds together")

    @abstractmethod
    def columns(self) -> list[Column]:
        """The aggregated columns of this family's results table, primary metric first."""

    def horizon(self, task: Mapping[str, Any], metric: str) -> float | None:
        """The budget at which a time-to-event `metric` of `task` (a record's resolved spec) is censored.

        A run that did not reach the event records this value; a run that is not ok is treated as not
        reached by then, and the restricted mean time (the ranking's tie-break) is taken up to it. ``None``
        for metrics without a budget.
        """
        return None


def missing_hooks(cls: type) -> list[str]:
    """The abstract hooks `cls` leaves unimplemented, as ``name()`` strings (empty when it is complete)."""
    return sorted(f"{name}()" for name in getattr(cls, "__abstractmethods__", ()))
