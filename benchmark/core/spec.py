"""Task specs and submission manifests: strict Pydantic models, YAML loading, readable errors.

A task spec is data. It is validated in one place, here, so that every tool (runner, leaderboard, editor
via the exported JSON Schema) agrees on what a valid spec is. The family-specific sections (`data`,
`model`, `training`, `evaluation`) are a discriminated union on `family`: each family defines its own
subclass of :class:`TaskSpec` (``families/<family>/spec.py``) and :mod:`phenomena_bench.registry` builds the
union from the installed families. This module imports no family.

A spec carries three tiers (`smoke`, `default`, `full`). A tier overrides *sizes* — fields of `data`,
`model`, `training`, the number of seeds and the time limit — never the protocol (`evaluation`). A tier is
resolved by deep-merging its overrides into the base spec and validating the result with the same strict
model, so an override that breaks a constraint is reported like any other field error.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, HttpUrl, ValidationError, field_validator
from pydantic_core import ErrorDetails

from phenomena_bench.core.errors import SpecError

TierName = Literal["smoke", "default", "full"]
TIER_NAMES: tuple[TierName, ...] = ("smoke", "default", "full")

# Fields that describe a task for readers but cannot change a result: left out of the run key, so fixing a
# typo in a description does not invalidate finished runs.
PROSE_FIELDS = frozenset({"title", "description", "references"})


class StrictModel(BaseModel):
    """Base for every spec section: unknown keys and silent type coercion are errors."""

    model_config = ConfigDict(extra="forbid", strict=False, frozen=True)


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


class TaskSpec(StrictModel):
    """Fields every family shares. Family modules subclass this with typed `data`/`model`/... sections."""

    id: str = Field(pattern=r"^[a-z0-9][a-z0-9_.\-]*(/[a-z0-9][a-z0-9_.\-]*)*$", max_length=120)
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
        """The part of a resolved spec that determines results (prose and tiers left out)."""
        return self.model_dump(mode="json", exclude=set(PROSE_FIELDS) | {"tiers"})


def _deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    merged = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def resolve_tier(spec: TaskSpec, tier: TierName, source: str | None = None) -> TaskSpec:
    override = spec.tiers[tier]
    raw = spec.model_dump(mode="json")
    raw["tiers"] = {}
    for section in ("data", "model", "training"):
        raw[section] = _deep_merge(raw[section], getattr(override, section))
    for name in ("seeds", "time_limit_s"):
        if getattr(override, name) is not None:
            raw[name] = getattr(override, name)
    try:
        return type(spec).model_validate(raw)
    except ValidationError as err:
        problems = format_validation_error(err, prefix=f"tiers.{tier}", model=type(spec))
        raise SpecError(source or spec.id, problems) from None


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
    for error in err.errors(include_url=False):
        loc = [str(p) for p in error["loc"]]
        root = model
        if root is None and union_members and loc and loc[0] in union_members and len(loc) > 1:
            root = union_members[loc[0]]
            loc = loc[1:]
        path = ".".join(([prefix] if prefix else []) + loc) or "<top level>"
        allowed = _allowed_keys(root, loc[:-1]) if error["type"] == "extra_forbidden" else None
        problems.append(f"{path}: {error['msg']} (fix: {_fix_for(error, allowed)})")
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
    """Read a YAML file that must hold one mapping; every failure is a :class:`SpecError` naming the file."""
    source = str(path)
    try:
        text = path.read_bytes().decode("utf-8")
    except FileNotFoundError:
        raise SpecError(source, ["file not found (fix: check the path)"]) from None
    except IsADirectoryError:
        raise SpecError(source, ["is a directory, not a YAML file (fix: name a .yaml file)"]) from None
    except UnicodeDecodeError as err:
        raise SpecError(source, [f"not UTF-8 text (byte {err.start}) (fix: save the file as UTF-8)"]) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise SpecError(source, [f"{where}invalid YAML: {problem} (fix: correct the YAML syntax)"]) from None
    if data is None:
        raise SpecError(source, ["file is empty (fix: write a task spec mapping; see `phenomena-bench schema`)"])
    if not isinstance(data, dict):
        kind = type(data).__name__
        raise SpecError(source, [f"top level is a {kind}, not a mapping (fix: write `key: value` lines)"])
    return data
