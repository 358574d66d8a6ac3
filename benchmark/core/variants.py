"""Held-out variants: a task's declared distribution of data changes, and deterministic draws from it.

A public task is fixed and published, so a method can be tuned to it, by hand or by search. A task may
therefore declare, in its optional ``variants:`` section, a distribution of *variants*: the same task with
some `data` fields replaced (another prime modulus, another MNIST-1D generator seed, another target digit,
another training subset of a checkpoint's recipe). ``run --variants N --variant-salt S`` draws N of them and
runs them beside the public task; the leaderboard shows both scores and the gap. The public suite uses the
published salt :data:`PUBLIC_SALT`; official scoring uses a salt chosen at scoring time, after submissions
are frozen, and recorded with the results, so no method can have seen those variants.

Each family types its own distribution (a :class:`VariantDistribution` subclass in its ``spec.py``) with
axes: :class:`IntAxis` (``{choices: [...]}`` or ``{range: [lo, hi], prime: true}``) or :class:`ChoiceAxis`
(``{choices: [...]}``). Every axis names a field of the task's `data` section. A tier may declare its own
distribution (``tiers.<tier>.variants``, replacing the base one whole), since sizes such as grokking's
modulus differ by tier and a variant should cost what its public task costs.

A variant (:func:`draw_variants`) is a resolved task spec validated by the family's own model, with id
``<task>@v<8 hex digits>`` (a digest of the task, its version, the salt and the changes) and
``variant_of`` saying where it came from; its run keys differ from the public task's through its id and data.
The draw is a pure function of (task id, task version, salt): the same salt always gives the same variants,
in the same order (``--variants 3`` extends ``--variants 2``), no two alike and never the public task while
the distribution has enough distinct members.

This module imports no family and no torch.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from phenomena_bench.core.errors import SpecError
from phenomena_bench.core.hashing import content_key
from phenomena_bench.core.seeds import group_seed, stream_rng

if TYPE_CHECKING:
    from phenomena_bench.core.spec import TaskSpec

#: The salt of the published suite's variants (README, "Held-out variants"); official scoring uses another,
#: chosen at scoring time.
PUBLIC_SALT = "public-2026"
#: Most values one axis may enumerate (a range is listed in full to be drawn from).
MAX_AXIS_VALUES = 100_000
#: Below this many combinations the draw shuffles them all (exact: every distinct variant can be reached);
#: above it, combinations are drawn at random and repeats skipped.
EXHAUSTIVE_LIMIT = 4096
#: The variant suffix of a task id: ``@v`` and eight hex digits.
VARIANT_ID_PATTERN = r"@v[0-9a-f]{8}"

T = TypeVar("T")


class _Strict(BaseModel):
    """Strict and frozen, as every spec section (:class:`~phenomena_bench.core.spec.StrictModel`, which this
    module cannot import: the spec module imports this one)."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


def is_prime(n: int) -> bool:
    return n >= 2 and all(n % k for k in range(2, math.isqrt(n) + 1))


class IntAxis(_Strict):
    """Whole-number values: a list (``choices``) or an inclusive ``range`` [lo, hi], optionally primes only."""

    choices: list[int] | None = Field(default=None, min_length=1, max_length=1000)
    range: list[int] | None = Field(default=None, min_length=2, max_length=2, description="[lo, hi], inclusive.")
    prime: bool = Field(default=False, description="Keep only the prime values (grokking's modulus).")

    @model_validator(mode="after")
    def _one_form(self) -> IntAxis:
        if (self.choices is None) == (self.range is None):
            raise ValueError("give exactly one of `choices: [...]` or `range: [lo, hi]`")
        if self.range is not None:
            lo, hi = self.range
            if lo > hi:
                raise ValueError(f"range [{lo}, {hi}] is empty (write [low, high])")
            if hi - lo + 1 > MAX_AXIS_VALUES:
                raise ValueError(f"range [{lo}, {hi}] holds more than {MAX_AXIS_VALUES:,} values")
        if not self.values():
            raise ValueError("no value is left (no prime in it)" if self.prime else "no value is left")
        return self

    def values(self) -> list[int]:
        """The axis's distinct values, in order."""
        if self.range is not None:
            listed: Sequence[int] = range(self.range[0], self.range[1] + 1)
        else:
            listed = self.choices or []
        return [v for v in dict.fromkeys(listed) if not self.prime or is_prime(v)]

    def probes(self) -> list[int]:
        """The values checked against the data section when the spec loads: every choice, or a range's ends."""
        values = self.values()
        return values if self.choices is not None else sorted({values[0], values[-1]})


class ChoiceAxis(_Strict, Generic[T]):
    """A list of values (names, numbers) for one data field."""

    choices: list[T] = Field(min_length=1, max_length=1000)

    @field_validator("choices")
    @classmethod
    def _distinct(cls, choices: list[T]) -> list[T]:
        if len(set(map(repr, choices))) != len(choices):
            raise ValueError(f"choices repeat a value: {choices}")
        return choices

    def values(self) -> list[T]:
        return list(self.choices)

    def probes(self) -> list[T]:
        return list(self.choices)


Axis = IntAxis | ChoiceAxis[Any]


class VariantDistribution(_Strict):
    """Base of each family's ``variants:`` section: every field is an axis over the data field of that name.

    A family subclasses it with typed optional axes (``p: IntAxis | None = None``); the values an axis may
    take are checked against the data section when the spec loads (:func:`variant_problems`).
    """

    #: Which spec section the axes change (a variant changes data, never the model, recipe or protocol).
    SECTION: ClassVar[str] = "data"

    @model_validator(mode="after")
    def _some_axis(self) -> VariantDistribution:
        if not self.axes():
            names = ", ".join(type(self).model_fields) or "none"
            raise ValueError(f"declare at least one axis (this family's: {names})")
        return self

    def axes(self) -> dict[str, Axis]:
        """The declared axes by data-field name, in declaration order."""
        return {name: axis for name in type(self).model_fields if (axis := getattr(self, name)) is not None}


class VariantOrigin(_Strict):
    """Where a variant came from: stored in its spec (``variant_of``) and in each of its run records."""

    of: str = Field(description="The public task's id.")
    salt: str = Field(description="The salt it was drawn with (published, or chosen at scoring time).")
    index: int = Field(ge=0, description="Its place in the draw: --variants N runs indices 0..N-1.")
    changes: dict[str, dict[str, Any]] = Field(description="Section -> field -> value replaced in the public task.")

    def describe(self) -> str:
        """The changes as ``field=value`` text (``p=47 operation=sub``)."""
        return " ".join(f"{k}={v}" for fields in self.changes.values() for k, v in fields.items())


# ------------------------------------------------------------------------------------------ validation


def variant_problems(spec: TaskSpec) -> list[str]:
    """What is wrong with `spec`'s declared distribution: an axis naming no data field, a value its data
    field refuses, or an axis with no value other than the task's own. Empty when none is declared."""
    dist = spec.variants
    if not isinstance(dist, VariantDistribution):
        return []
    section = getattr(spec, dist.SECTION, None)
    if not isinstance(section, BaseModel):
        return [f"variants: this task has no `{dist.SECTION}` section to vary"]
    current = section.model_dump(mode="json")
    problems = []
    for name, axis in dist.axes().items():
        if name not in type(section).model_fields:
            problems.append(f"variants.{name}: {dist.SECTION} has no field {name!r} here (remove this axis)")
            continue
        if all(v == current[name] for v in axis.values()):
            problems.append(f"variants.{name}: every value equals the task's own ({current[name]!r}); add others")
            continue
        for value in axis.probes():
            reason = _refusal(type(section), {**current, name: value})
            if reason:
                problems.append(f"variants.{name}: {value!r} is not a valid {dist.SECTION}.{name} ({reason})")
                break
    return problems


def _refusal(model: type[BaseModel], raw: dict[str, Any]) -> str | None:
    """The first error `model` reports on `raw`, or None when it validates."""
    try:
        model.model_validate(raw)
    except ValidationError as err:
        return str(err.errors(include_url=False)[0]["msg"]).removeprefix("Value error, ")
    return None


# --------------------------------------------------------------------------------------------- drawing


def draw_variants(spec: TaskSpec, n: int, salt: str) -> list[TaskSpec]:
    """`n` held-out variants of `spec` (resolved to a tier), drawn deterministically from (id, version, salt).

    Distinct from each other and from `spec`; fewer than `n` only when the distribution has fewer distinct
    members. A task that declares no distribution has none. Each variant is validated by the family's model:
    a drawn combination it refuses is a :class:`SpecError` naming the task and the values (the declaration
    must be fixed, not silently skipped).
    """
    if spec.tiers:
        raise SpecError(spec.id, ["variants are drawn from a spec resolved to its tier (call resolve(tier))"])
    if n < 0:
        raise SpecError(spec.id, [f"the number of variants must be >= 0, not {n}"])
    dist = spec.variants
    if n == 0 or not isinstance(dist, VariantDistribution):
        return []
    names = list(dist.axes())
    values = [axis.values() for axis in dist.axes().values()]
    section = getattr(spec, dist.SECTION)
    public = tuple(getattr(section, name) for name in names)
    rng = stream_rng(group_seed(spec.id, str(spec.version), salt, "held-out-variants"))
    out: list[TaskSpec] = []
    for combo in _distinct_combinations(values, rng):
        if combo == public:
            continue
        changes = {name: v for name, v, own in zip(names, combo, public) if v != own}
        out.append(_variant(spec, dist.SECTION, changes, salt, len(out)))
        if len(out) == n:
            break
    return out


def _distinct_combinations(values: list[list[Any]], rng: Any) -> Any:
    """Combinations of one value per axis in a random order fixed by `rng`, each at most once: every one
    (shuffled) for a small space, else random draws with repeats skipped (a large space is never listed)."""
    sizes = [len(v) for v in values]
    total = math.prod(sizes)

    def combination(index: int) -> tuple[Any, ...]:
        picked = []
        for axis, size in zip(values, sizes):
            index, rest = divmod(index, size)
            picked.append(axis[rest])
        return tuple(picked)

    if total <= EXHAUSTIVE_LIMIT:
        for index in rng.permutation(total):
            yield combination(int(index))
        return
    seen: set[int] = set()
    for _ in range(50 * EXHAUSTIVE_LIMIT):
        index = int(rng.integers(total))
        if index not in seen:
            seen.add(index)
            yield combination(index)


def _variant(spec: TaskSpec, section: str, changes: dict[str, Any], salt: str, index: int) -> TaskSpec:
    """`spec` with `changes` applied to `section`, renamed and marked as a variant, validated by its model."""
    changed = {section: changes}
    digest = content_key({"of": spec.id, "version": spec.version, "salt": salt, "changes": changed})[:8]
    origin = VariantOrigin(of=spec.id, salt=salt, index=index, changes=changed)
    raw = spec.model_dump(mode="json")
    raw[section] = {**raw[section], **changes}
    raw.update(
        id=f"{spec.id}@v{digest}",
        title=f"{spec.title} (held-out variant: {origin.describe()})",
        variants=None,
        variant_of=origin.model_dump(mode="json"),
    )
    try:
        return type(spec).model_validate(raw)
    except ValidationError as err:
        first = err.errors(include_url=False)[0]
        where = ".".join(str(p) for p in first["loc"]) or "<top level>"
        raise SpecError(
            spec.id,
            [
                f"variants: the drawn variant {origin.describe()} is not a valid task ({where}: {first['msg']}); "
                "narrow the distribution"
            ],
        ) from None
