"""What every phenomenon family and every method share.

A *family* owns a protocol: the spec sections it needs (:attr:`Family.spec_model`), the base class its
methods implement (:attr:`Family.method_base`), how one run trains and is scored (:meth:`Family.run`) and
which aggregated columns its results table shows (:meth:`Family.columns`). The runner, the store and the
CLI know nothing family-specific beyond this interface.

A *method* is a small object with a name, a version and a Pydantic ``Hyperparameters`` model; the values
are recorded with every run and enter its content hash. The harness hands a method only what its protocol
allows: never the evaluation data, never the answer.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from benchmark.errors import MethodError
from benchmark.spec import TaskSpec

Status = Literal["ok", "failed", "timeout", "diverged", "budget_exceeded"]
STATUSES: tuple[Status, ...] = ("ok", "failed", "timeout", "diverged", "budget_exceeded")
Scalar = float | int | bool | str | None


class NoHyperparameters(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Method:
    """Base of every method. Subclass a family's method base, set the class attributes, add hooks."""

    name: ClassVar[str]
    family: ClassVar[str]
    version: ClassVar[str] = "1"
    description: ClassVar[str] = ""
    Hyperparameters: ClassVar[type[BaseModel]] = NoHyperparameters

    def __init__(self, **hyperparameters: Any) -> None:
        try:
            self.hp = self.Hyperparameters(**hyperparameters)
        except ValidationError as err:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or '<all>'}: {e['msg']}" for e in err.errors(include_url=False)
            )
            raise MethodError(f"method {self.name!r}: invalid hyperparameters: {problems}") from None

    def identity(self) -> dict[str, Any]:
        """What names this method in a run key: name, family, version and every hyperparameter value."""
        return {
            "name": self.name,
            "family": self.family,
            "version": str(self.version),
            "hyperparameters": self.hp.model_dump(mode="json"),
        }

    def label(self) -> str:
        """The name shown in tables: the method name, plus any hyperparameter that differs from its default."""
        defaults = self.Hyperparameters().model_dump(mode="json") if _has_defaults(self.Hyperparameters) else {}
        changed = {k: v for k, v in self.hp.model_dump(mode="json").items() if defaults.get(k, object()) != v}
        if not changed:
            return self.name
        return self.name + "[" + ",".join(f"{k}={v}" for k, v in sorted(changed.items())) + "]"


def _has_defaults(model: type[BaseModel]) -> bool:
    return all(not f.is_required() for f in model.model_fields.values())


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


@dataclass
class Curve:
    """A step-indexed series (downsampled by the family), e.g. held-out accuracy against steps."""

    x: list[float]
    y: list[float]
    x_label: str = "step"

    def to_json(self) -> dict[str, Any]:
        return {"x": self.x, "y": self.y, "x_label": self.x_label}


@dataclass
class RunOutcome:
    """What a family's :meth:`Family.run` returns; the runner adds identity, timing and environment."""

    status: Status = "ok"
    metrics: dict[str, Scalar] = field(default_factory=dict)
    curves: dict[str, Curve] = field(default_factory=dict)
    error: str | None = None


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


class Family(ABC):
    name: ClassVar[str]
    description: ClassVar[str]
    spec_model: ClassVar[type[TaskSpec]]
    method_base: ClassVar[type[Method]]
    #: Hooks a method must implement (callables on the method object).
    required_hooks: ClassVar[tuple[str, ...]] = ()
    #: The metric that ranks methods, and whether lower or higher is better.
    primary_metric: ClassVar[str]
    direction: ClassVar[Literal["min", "max"]]
    #: The baseline every method is compared against on the leaderboard.
    reference_method: ClassVar[str]

    def check_method(self, method: Method) -> None:
        """Raise :class:`MethodError` naming what is wrong if `method` does not implement this protocol."""
        if getattr(method, "family", None) != self.name:
            raise MethodError(
                f"method {getattr(method, 'name', method)!r} is for family {getattr(method, 'family', None)!r}, "
                f"not {self.name!r}"
            )
        if not isinstance(method, self.method_base):
            raise MethodError(
                f"method {method.name!r} must subclass {self.method_base.__module__}.{self.method_base.__qualname__}"
            )
        for hook in self.required_hooks:
            if not callable(getattr(method, hook, None)):
                raise MethodError(f"method {method.name!r} lacks the {self.name} hook {hook}()")

    @abstractmethod
    def run(self, task: TaskSpec, method: Method, ctx: RunContext) -> RunOutcome:
        """Train and score one (task at a tier, method, seed). Exceptions from the method propagate."""

    def can_batch(self, method: Method) -> bool:
        """Whether several seeds of `method` can train as one program (see :meth:`run_batch`)."""
        return False

    def run_batch(self, task: TaskSpec, method: Method, seeds: list[int], ctx: RunContext) -> list[RunOutcome]:
        """Train and score several seeds as one program; one outcome per seed, each equal (within
        floating-point tolerance) to what :meth:`run` gives that seed alone. Only called when
        :meth:`can_batch` is true."""
        raise NotImplementedError(f"family {self.name!r} does not train seeds together")

    @abstractmethod
    def columns(self) -> list[Column]:
        """The aggregated columns of this family's results table, primary metric first."""
