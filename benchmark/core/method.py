"""The base of every method: a name, a version and typed hyperparameters.

A method subclasses its family's base (``phenomena_bench.families.<family>.api``), parameterised by its
hyperparameter model, and implements that base's abstract hooks::

    class Lion(GrokkingMethod[LionHyperparameters]):
        name = "lion"
        version = "1"

        def configure(self, model, params, info): ...   # self.hp is a LionHyperparameters

Its *identity* (name, family, version and every hyperparameter value, defaults included) is recorded with
every run and enters the run key, so changing a default can never keep serving an old result.

Everything a hook returns is checked by the harness before it counts (:func:`checked_count`,
:func:`checked_real`, :func:`checked_flops`): a value of the wrong type or outside its domain (a negative
step count, NaN FLOPs) fails the run with a :class:`MethodError` naming the hook and the value, rather than
being recorded as a forged score.
"""

from __future__ import annotations

import math
import numbers
from abc import ABC
from typing import Any, ClassVar, Generic, TypeVar, get_args

from pydantic import BaseModel, ConfigDict, ValidationError

from phenomena_bench.core.errors import MethodError
from phenomena_bench.core.text import printable


class NoHyperparameters(BaseModel):
    """The hyperparameters of a method that has none."""

    model_config = ConfigDict(extra="forbid", frozen=True)


HP = TypeVar("HP", bound=BaseModel)


class Method(ABC, Generic[HP]):
    """Base of every method. Subclass a family's method base, set the class attributes, implement its hooks."""

    name: ClassVar[str]
    family: ClassVar[str]
    version: ClassVar[str] = "1"
    description: ClassVar[str] = ""
    #: The hyperparameter model; taken from the generic argument (``Base[MyHP]``) when not set explicitly.
    Hyperparameters: ClassVar[type[BaseModel]] = NoHyperparameters

    hp: HP

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "Hyperparameters" in cls.__dict__:
            return
        for base in getattr(cls, "__orig_bases__", ()):
            args = get_args(base)
            if args and isinstance(args[0], type) and issubclass(args[0], BaseModel):
                cls.Hyperparameters = args[0]
                return

    def __init__(self, **hyperparameters: Any) -> None:
        model = self.Hyperparameters
        known = set(model.model_fields) | {f.alias for f in model.model_fields.values() if f.alias}
        unknown = sorted(set(hyperparameters) - known)
        if unknown:
            allowed = ", ".join(sorted(model.model_fields)) or "none"
            raise MethodError(
                f"method {self.name!r}: unknown hyperparameter(s) {', '.join(unknown)} (allowed: {allowed})"
            )
        try:
            self.hp = model(**hyperparameters)  # type: ignore[assignment]
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
        model = self.Hyperparameters
        has_defaults = all(not f.is_required() for f in model.model_fields.values())
        defaults = model().model_dump(mode="json") if has_defaults else {}
        changed = {k: v for k, v in self.hp.model_dump(mode="json").items() if defaults.get(k, object()) != v}
        if not changed:
            return self.name
        return self.name + "[" + ",".join(f"{k}={v}" for k, v in sorted(changed.items())) + "]"


def shown(value: object, limit: int = 60) -> str:
    """`value` as an error message shows it: its repr, printable, cut to `limit` characters."""
    try:
        text = repr(value)
    except Exception:  # a hostile __repr__ must not turn a clear MethodError into a crash
        text = f"<{type(value).__name__}>"
    text = printable(text).replace("\n", " ")
    return text if len(text) <= limit else text[: limit - 3] + "..."


def bad_output(method: str, hook: str, value: object, expected: str) -> MethodError:
    """The error for a hook that returned `value` where `expected` was due (one line, names both)."""
    return MethodError(f"method {method!r}: {hook} returned {shown(value)}; expected {expected}")


def checked_count(value: object, method: str, hook: str, low: int, high: int) -> int:
    """`value` as an int in ``low..high`` (a step count, a budget): an int, or a MethodError naming it.

    Only integers count (``bool`` and ``3.0`` are refused): a count the harness would have to round is a
    bug in the method, and rounding NaN or infinity would crash the harness instead.
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise bad_output(method, hook, value, f"an int in {low}..{high}")
    number = int(value)
    if not low <= number <= high:
        raise bad_output(method, hook, value, f"an int in {low}..{high}")
    return number


def checked_real(
    value: object, method: str, hook: str, low: float = -math.inf, high: float = math.inf, what: str = "a number"
) -> float:
    """`value` as a finite float in ``[low, high]``, or a MethodError naming the hook and the value."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise bad_output(method, hook, value, f"{what} (a finite real in [{low}, {high}])")
    number = float(value)
    if not (math.isfinite(number) and low <= number <= high):
        raise bad_output(method, hook, value, f"{what} (a finite real in [{low}, {high}])")
    return number


def checked_flops(value: object, method: str, hook: str) -> float:
    """A declared FLOP count: finite and >= 0."""
    return checked_real(value, method, hook, 0.0, math.inf, what="a FLOP count")
