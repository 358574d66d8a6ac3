"""Search spaces over a method's hyperparameters, declared on its Pydantic model and read here.

A field becomes searchable by carrying a ``search`` entry in its ``json_schema_extra``; :func:`searchable`
writes one::

    class AdamHyperparameters(BaseModel):
        lr: float = searchable(1e-3, 1e-4, 1e-2, log=True, gt=0, le=10)
        warmup_steps: int = Field(default=10, ge=0)          # not searched: fixed at its value

or, on an existing ``Field``, ``json_schema_extra={"search": {"low": 1e-4, "high": 1e-2, "log": True}}``, or
``{"search": {"choices": [true, false]}}`` for a categorical field. The declaration is metadata only: it does
not change a field's value, its validation or a run key, so declaring a space never invalidates a stored
result.

:func:`search_space` reads and validates the declaration of a model, field by field, so a bad one fails
before any trial runs, naming the field: ``low < high``, the default inside the range (or among the
choices), ``log`` only with ``low > 0``, integer bounds for an integer field, and both bounds (or every
choice) accepted by the field's own constraints. The tuner (:mod:`phenomena_bench.run.tuning`) turns each
:class:`Dimension` into an Optuna distribution.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from phenomena_bench.core.errors import MethodError

#: The key of a field's ``json_schema_extra`` that declares its search range.
SEARCH_KEY = "search"
Scalar = bool | int | float | str


class Dimension(BaseModel):
    """One searched hyperparameter: a numeric range (``float``/``int``, optionally log-scaled) or choices."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    kind: Literal["float", "int", "categorical"]
    default: Scalar | None
    low: float | None = None
    high: float | None = None
    log: bool = False
    choices: tuple[Scalar, ...] = ()

    def describe(self) -> str:
        """One line for a record and a table: ``lr in [0.0001, 0.01] log``, ``decoupled in {True, False}``."""
        if self.kind == "categorical":
            return f"{self.name} in {{{', '.join(str(c) for c in self.choices)}}}"
        bounds = f"[{_num(self.low)}, {_num(self.high)}]"
        return f"{self.name} in {bounds}{' log' if self.log else ''}{' int' if self.kind == 'int' else ''}"


class SearchSpace(BaseModel):
    """The searched hyperparameters of one method, in field order (empty: nothing to tune)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    dimensions: tuple[Dimension, ...] = Field(default=())

    @property
    def names(self) -> list[str]:
        return [d.name for d in self.dimensions]

    def describe(self) -> list[str]:
        return [d.describe() for d in self.dimensions]


def searchable(
    default: Any,
    low: float | None = None,
    high: float | None = None,
    *,
    log: bool = False,
    choices: Sequence[Scalar] | None = None,
    **field: Any,
) -> Any:
    """A Pydantic ``Field(default, ...)`` whose value the tuner searches in ``[low, high]`` (or `choices`).

    Extra keyword arguments go to ``Field`` (``gt``, ``le``, ``description``...). The declaration is checked
    when the space is read (:func:`search_space`), where the field's type is known.
    """
    spec: dict[str, Any] = {"choices": list(choices)} if choices is not None else {"low": low, "high": high, "log": log}
    extra = dict(field.pop("json_schema_extra", None) or {})
    extra[SEARCH_KEY] = spec
    return Field(default, json_schema_extra=extra, **field)


def search_space(model: type[BaseModel]) -> SearchSpace:
    """The validated search space declared on `model`'s fields (a :class:`MethodError` naming a bad one)."""
    dims = []
    for name, info in model.model_fields.items():
        extra = info.json_schema_extra
        spec = extra.get(SEARCH_KEY) if isinstance(extra, dict) else None
        if spec is None:
            continue
        default = None if info.is_required() else info.get_default(call_default_factory=True)
        dims.append(_dimension(model, name, info.annotation, default, spec))
    return SearchSpace(dimensions=tuple(dims))


def _dimension(model: type[BaseModel], name: str, annotation: Any, default: Any, spec: Any) -> Dimension:
    where = f"{model.__name__}.{name}"
    if not isinstance(spec, dict):
        raise MethodError(f"{where}: a search entry must be a mapping (low/high/log, or choices)")
    unknown = sorted(set(spec) - {"low", "high", "log", "choices"})
    if unknown:
        raise MethodError(f"{where}: unknown search key(s) {', '.join(unknown)} (use low, high, log or choices)")
    if "choices" in spec:
        return _categorical(model, where, name, default, spec["choices"])
    return _numeric(model, where, name, annotation, default, spec)


def _categorical(model: type[BaseModel], where: str, name: str, default: Any, choices: Any) -> Dimension:
    if not isinstance(choices, list | tuple) or len(choices) < 2:
        raise MethodError(f"{where}: choices must list at least two values")
    if len(set(map(repr, choices))) != len(choices):
        raise MethodError(f"{where}: choices repeat a value")
    if default is not None and default not in choices:
        raise MethodError(f"{where}: the default {default!r} is not among the choices {list(choices)}")
    for value in choices:
        _accepted(model, where, name, value)
    return Dimension(name=name, kind="categorical", default=default, choices=tuple(choices))


def _numeric(model: type[BaseModel], where: str, name: str, annotation: Any, default: Any, spec: dict) -> Dimension:
    kind: Literal["float", "int"] = "int" if annotation is int else "float"
    if annotation not in (int, float):
        raise MethodError(f"{where}: a range needs an int or float field, not {annotation}; use choices")
    low: Any = spec.get("low")
    high: Any = spec.get("high")
    log: Any = spec.get("log", False)
    for bound, value in (("low", low), ("high", high)):
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise MethodError(f"{where}: search {bound} must be a number, not {value!r}")
        if kind == "int" and not float(value).is_integer():
            raise MethodError(f"{where}: search {bound} of an int field must be whole, not {value!r}")
    if not isinstance(log, bool):
        raise MethodError(f"{where}: search log must be true or false")
    if not low < high:
        raise MethodError(f"{where}: search low ({low}) must be below high ({high})")
    if log and low <= 0:
        raise MethodError(f"{where}: a log-scaled range needs low > 0, not {low}")
    if default is not None and not low <= default <= high:
        raise MethodError(f"{where}: the default {default} is outside the search range [{low}, {high}]")
    for value in (low, high):
        _accepted(model, where, name, int(value) if kind == "int" else float(value))
    return Dimension(name=name, kind=kind, default=default, low=float(low), high=float(high), log=log)


def _accepted(model: type[BaseModel], where: str, name: str, value: Any) -> None:
    """Raise unless the field's own type and constraints (``gt``, ``le``...) accept `value`: a range must not
    reach a value the model would refuse."""
    info = model.model_fields[name]
    try:
        TypeAdapter(Annotated[info.annotation, info]).validate_python(value)
    except ValidationError as err:
        message = err.errors(include_url=False)[0]["msg"]
        raise MethodError(f"{where}: the search value {value!r} is refused by the field itself ({message})") from None


def _num(value: float | None) -> str:
    return "?" if value is None else f"{value:g}"
