"""Task specs and submission manifests: strict Pydantic models, YAML loading, readable errors.

A task spec is data. It is validated in one place, here, so that every tool (runner, leaderboard, editor
via the exported JSON Schema) agrees on what a valid spec is. The family-specific sections (`data`,
`model`, `training`, `evaluation`) are a discriminated union on `family`: each family defines its own
subclass of :class:`TaskSpec` (``families/<family>/spec.py``) and :mod:`phenomena_bench.registry` builds the
union from the installed families. This module imports no family.

A spec carries three tiers (`smoke`, `default`, `full`). A tier overrides *sizes* — the fields of `data`,
`model` and `training` that each section lists in its ``TIER_SIZES``, the number of seeds and the time
limit — never the protocol (`evaluation`) nor a field that defines the task (the operation, the dataset,
the learning rate of a fixed recipe...). Restating such a field with its base value is allowed (it changes
nothing); changing it is an error naming the field. A tier is resolved by merging its overrides into the
base spec and validating the result with the same strict model, so an override that breaks a constraint
is reported like any other field error.

Validation is strict, as the models promise: `true`, `"3"` or `3.0` where a whole number is expected are
errors, not coerced. Loading is bounded (:mod:`phenomena_bench.core.yaml_safe`: no aliases, a depth and a
size limit, duplicate keys refused) and at most :data:`MAX_PROBLEMS` problems are reported per file.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, HttpUrl, ValidationError, field_validator, model_validator
from pydantic_core import ErrorDetails

from phenomena_bench.core.claims import Gate
from phenomena_bench.core.errors import SpecError
from phenomena_bench.core.variants import VARIANT_ID_PATTERN, VariantDistribution, VariantOrigin, variant_problems
from phenomena_bench.core.yaml_safe import load_bounded, read_bounded

TierName = Literal["smoke", "default", "full"]
TIER_NAMES: tuple[TierName, ...] = ("smoke", "default", "full")

# Fields that describe a task for readers but cannot change a result: left out of the run key, so fixing a
# typo in a description does not invalidate finished runs.
PROSE_FIELDS = frozenset({"title", "description", "references"})
#: Fields that check results but do not produce them (the phenomenon gates): also left out of the run key.
CHECK_FIELDS = frozenset({"expect"})
#: Problems reported per file; the rest are counted (400,000 misspelt keys must not print 400,000 lines).
MAX_PROBLEMS = 20
TIER_SECTIONS = ("data", "model", "training")


class StrictModel(BaseModel):
    """Base for every spec section: unknown keys and silent type coercion are errors.

    ``TIER_SIZES`` names the fields a tier may change (sizes and budgets); every other field is fixed by
    the task. A section that does not list any keeps all its fields fixed.
    """

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)
    TIER_SIZES: ClassVar[frozenset[str]] = frozenset()


class Reference(StrictModel):
    title: str = Field(min_length=1)
    url: HttpUrl | None = None


class TierOverride(StrictModel):
    """What one tier changes. Sections are partial mappings checked after merging into the base spec."""

    data: dict[str, Any] = Field(default_factory=dict)
    model: dict[str, Any] = Field(default_factory=dict)
    training: dict[str, Any] = Field(default_factory=dict)
    seeds: int | None = Field(default=None, ge=1, le=1000)
    time_limit_s: float | None = Field(default=None, gt=0, le=7 * 24 * 3600)
    variants: dict[str, Any] | None = Field(
        default=None, description="This tier's held-out variant distribution, replacing the base one whole."
    )


class TaskSpec(StrictModel):
    """Fields every family shares. Family modules subclass this with typed `data`/`model`/... sections."""

    id: str = Field(
        pattern=r"^[a-z0-9][a-z0-9_.\-]*(/[a-z0-9][a-z0-9_.\-]*)*(" + VARIANT_ID_PATTERN + ")?$", max_length=120
    )
    family: str
    version: int = Field(ge=1)
    title: str = Field(min_length=1, max_length=200)
    description: str = Field(min_length=1)
    references: list[Reference] = Field(default_factory=list)
    seeds: int = Field(ge=1, le=1000, description="Seeds 0..seeds-1 are run; each seed fixes split and init.")
    time_limit_s: float = Field(gt=0, le=7 * 24 * 3600, description="Wall-clock limit of one run.")
    tiers: dict[TierName, TierOverride] = Field(
        description="smoke, default and full overrides; empty only in a spec already resolved to one tier."
    )
    variants: VariantDistribution | None = Field(
        default=None,
        description="Held-out variants: values other data fields may take (each family types its own axes).",
    )
    variant_of: VariantOrigin | None = Field(
        default=None, description="Set only in a drawn held-out variant: its public task, salt and changes."
    )
    expect: list[Gate] = Field(
        default_factory=list,
        description="Phenomenon gates: what the reference must show on each tier that claims the phenomenon.",
    )

    @model_validator(mode="after")
    def _variants_fit(self) -> TaskSpec:
        problems = variant_problems(self)
        if problems:
            raise ValueError("; ".join(problems))
        if (self.variant_of is None) == ("@v" in self.id):
            raise ValueError("an id ending in @v<hex> is a drawn held-out variant's, and only a variant has variant_of")
        return self

    @field_validator("tiers")
    @classmethod
    def _all_tiers_present(cls, tiers: dict[str, TierOverride]) -> dict[str, TierOverride]:
        missing = [t for t in TIER_NAMES if t not in tiers]
        if missing and tiers:
            raise ValueError(
                f"missing tier(s) {', '.join(missing)}; every spec defines smoke, default and full "
                "(an empty mapping {} keeps the base values)"
            )
        return tiers

    def resolve(self, tier: TierName) -> TaskSpec:
        """The spec as run at `tier`: overrides merged in, validated, `tiers` emptied."""
        return resolve_tier(self, tier)

    def key_payload(self) -> dict[str, Any]:
        """The part of a resolved spec that determines a run's results: prose, tiers and the number of seeds
        left out (seed s's run does not depend on how many others the suite runs, so growing a suite from 3
        to 6 seeds reuses the first three). The `variants` declaration is left out too (it changes no run of this
        task; a drawn variant's own id and data change its keys), and `variant_of` when unset."""
        excluded = set(PROSE_FIELDS) | set(CHECK_FIELDS) | {"tiers", "seeds", "variants"}
        return self.model_dump(mode="json", exclude=excluded | (set() if self.variant_of else {"variant_of"}))


def _merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """`base` with `override`'s keys replaced (one level: a tier names whole field values).

    Nothing is copied or walked: the override's values are handed to validation as they are, so a value
    built to be huge when expanded is rejected by its field's type without being expanded.
    """
    return {**base, **override}


def tier_problems(spec: TaskSpec, tier: TierName) -> list[str]:
    """A tier changing a field its section does not list in ``TIER_SIZES`` (restating the base value is fine)."""
    override = spec.tiers[tier]
    problems: list[str] = []
    for section in TIER_SECTIONS:
        base = getattr(spec, section, None)
        if not isinstance(base, BaseModel):
            continue
        allowed: frozenset[str] = getattr(type(base), "TIER_SIZES", frozenset())
        fields = type(base).model_fields
        current = base.model_dump(mode="json")
        for key, value in getattr(override, section).items():
            if key in allowed or key not in fields or value == current.get(key):
                continue  # a size, an unknown key (validation names it), or the base value restated
            sizes = ", ".join(sorted(allowed)) or "none"
            problems.append(
                f"tiers.{tier}.{section}.{key}: a tier may change only sizes ({section}: {sizes}); {key} is fixed "
                f"by the task (fix: remove it from the tier, or write a separate task)"
            )
    return problems


def resolve_tier(spec: TaskSpec, tier: TierName, source: str | None = None) -> TaskSpec:
    override = spec.tiers[tier]
    problems = tier_problems(spec, tier)
    if problems:
        raise SpecError(source or spec.id, cap_problems(problems))
    raw = spec.model_dump(mode="json", exclude={"tiers"})
    raw["tiers"] = {}
    for section in TIER_SECTIONS:
        if isinstance(raw.get(section), dict):
            raw[section] = _merge(raw[section], getattr(override, section))
    for name in ("seeds", "time_limit_s", "variants"):
        if getattr(override, name) is not None:
            raw[name] = getattr(override, name)
    try:
        return type(spec).model_validate(raw)
    except ValidationError as err:
        problems = format_validation_error(err, prefix=f"tiers.{tier}", model=type(spec))
        raise SpecError(source or spec.id, problems) from None


def cap_problems(problems: list[str], limit: int = MAX_PROBLEMS) -> list[str]:
    """The first `limit` problems, and one line counting the rest."""
    if len(problems) <= limit:
        return problems
    return [*problems[:limit], f"... and {len(problems) - limit} more problem(s) (fix the ones above first)"]


# --------------------------------------------------------------------------------------------- errors

_FIXES: dict[str, str] = {
    "missing": "add this field",
    "string_type": "write a string",
    "int_type": "write a whole number",
    "int_parsing": "write a whole number",
    "int_from_float": "write a whole number",
    "float_type": "write a number",
    "float_parsing": "write a number",
    "bool_type": "write true or false",
    "bool_parsing": "write true or false",
    "dict_type": "write a mapping (key: value lines)",
    "list_type": "write a list",
    "url_parsing": "write a full http(s) URL",
    "url_scheme": "write a full http(s) URL",
    "string_pattern_mismatch": "use lower-case letters, digits, '-', '_', '.', and '/' between parts",
    "value_error": "change the value(s) the message names",
}


def _fix_for(error: ErrorDetails, allowed: list[str] | None) -> str:
    kind = error["type"]
    ctx = error.get("ctx") or {}
    if kind == "extra_forbidden":
        return "remove it" + (f" (allowed here: {', '.join(allowed)})" if allowed else "")
    if kind in ("greater_than", "greater_than_equal", "less_than", "less_than_equal"):
        bound = next(iter(ctx.values()), "?")
        word = {"greater_than": ">", "greater_than_equal": ">=", "less_than": "<", "less_than_equal": "<="}[kind]
        return f"use a value {word} {bound}"
    if kind in ("literal_error", "enum"):
        return f"use one of {ctx.get('expected', 'the allowed values')}"
    if kind == "union_tag_invalid":
        return f"set `family` to one of {ctx.get('expected_tags', '?')}"
    if kind == "union_tag_not_found":
        return "add `family:` naming the phenomenon family"
    if kind in ("too_short", "string_too_short"):
        return "give a non-empty value"
    return _FIXES.get(kind, "see `phenomena-bench schema` for the expected form")


def format_validation_error(
    err: ValidationError,
    prefix: str = "",
    model: type[BaseModel] | None = None,
    union_members: Mapping[str, type[BaseModel]] | None = None,
) -> list[str]:
    """One line per problem: `field.path: message (fix: ...)`.

    `model` is the model that was validated. An error from a discriminated union (`union_members`, tag ->
    model) has the tag as its first location element, not a field: it is used to find the member model.
    """
    problems = []
    errors = err.errors(include_url=False)
    for error in errors[:MAX_PROBLEMS]:
        loc = [str(p) for p in error["loc"]]
        root = model
        if root is None and union_members and loc and loc[0] in union_members and len(loc) > 1:
            root = union_members[loc[0]]
            loc = loc[1:]
        path = ".".join(([prefix] if prefix else []) + loc) or "<top level>"
        allowed = _allowed_keys(root, loc[:-1]) if error["type"] == "extra_forbidden" else None
        problems.append(f"{path}: {error['msg']} (fix: {_fix_for(error, allowed)})")
    if len(errors) > MAX_PROBLEMS:
        problems.append(f"... and {len(errors) - MAX_PROBLEMS} more problem(s) (fix the ones above first)")
    return problems


def _allowed_keys(model: type[BaseModel] | None, loc: list[str]) -> list[str] | None:
    """The field names of the nested model at `loc`, to suggest them for a misspelt key."""
    for name in loc:
        if model is None or name not in model.model_fields:
            return None
        annotation = model.model_fields[name].annotation
        model = annotation if isinstance(annotation, type) and issubclass(annotation, BaseModel) else None
    return sorted(model.model_fields) if model is not None else None


# ----------------------------------------------------------------------------------------------- loading


def read_yaml_mapping(path: Path) -> dict[str, Any]:
    """Read a YAML file that must hold one mapping; every failure is a :class:`SpecError` naming the file.

    Loading is bounded (size, depth, no aliases, no duplicate keys); anything else that goes wrong while
    reading (a number too long to convert, recursion, memory) is one line naming the file too.
    """
    source = str(path)
    try:
        text = read_bounded(path).decode("utf-8")
    except FileNotFoundError:
        raise SpecError(source, ["file not found (fix: check the path)"]) from None
    except IsADirectoryError:
        raise SpecError(source, ["is a directory, not a YAML file (fix: name a .yaml file)"]) from None
    except UnicodeDecodeError as err:
        raise SpecError(source, [f"not UTF-8 text (byte {err.start}) (fix: save the file as UTF-8)"]) from None
    except yaml.YAMLError as err:
        raise SpecError(source, [f"{getattr(err, 'problem', err)} (fix: a task spec is a few KB of YAML)"]) from None
    except OSError as err:
        raise SpecError(source, [f"cannot be read ({err.strerror or err}) (fix: check the path)"]) from None
    try:
        data = load_bounded(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise SpecError(source, [f"{where}invalid YAML: {problem} (fix: correct the YAML syntax)"]) from None
    except (RecursionError, MemoryError, ValueError, OverflowError) as err:
        reason = str(err).splitlines()[0][:200] if str(err) else type(err).__name__
        raise SpecError(
            source, [f"cannot be loaded: {type(err).__name__}: {reason} (fix: simplify the file)"]
        ) from None
    if data is None:
        raise SpecError(source, ["file is empty (fix: write a task spec mapping; see `phenomena-bench schema`)"])
    if not isinstance(data, dict):
        kind = type(data).__name__
        raise SpecError(source, [f"top level is a {kind}, not a mapping (fix: write `key: value` lines)"])
    return data
