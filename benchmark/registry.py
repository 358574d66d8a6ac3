"""Finds families, task specs and methods: what is shipped, and what other packages add.

- **Families** are the sub-packages of :mod:`phenomena_bench.families` (each exposes ``FAMILY``) plus entry
  points in the group ``phenomena_bench.families`` (``name = "package.module:FAMILY"``), so a family can
  live in another distribution. The task-spec union is built from them: this is the only module that
  knows every family. Parsing a spec needs only the spec models, so a shipped family with a ``spec.py``
  has its model read from there alone (no torch: `tasks`, `validate` and `schema` start in a second); the
  family object, with its training code, is imported only when a command needs its columns or runs.
- **Task specs** are YAML files shipped as package data (``phenomena_bench/tasks/``, the repository's
  ``tasks/`` folder), or in a folder of the user's (``--tasks-dir`` replaces the shipped suite,
  ``--include-path`` adds to it; ``PHENOMENA_BENCH_TASKS`` sets the default folder).
- **Methods** are the baselines (every public concrete method class in :mod:`phenomena_bench.baselines`,
  by its ``name``), entry points in the group ``phenomena_bench.methods``, or ``package.module:attr``
  references that need no installation (the current directory is importable, as with ``python -m``).
"""

from __future__ import annotations

import functools
import importlib
import inspect
import os
import pkgutil
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points
from importlib.resources import files
from pathlib import Path
from typing import Annotated, Any, Union, get_args

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, model_validator

from phenomena_bench.core.errors import BenchmarkError, MethodError, SpecError
from phenomena_bench.core.family import Family, missing_hooks
from phenomena_bench.core.method import Method
from phenomena_bench.core.spec import (
    TIER_NAMES,
    TaskSpec,
    cap_problems,
    format_validation_error,
    read_yaml_mapping,
    resolve_tier,
)

METHODS_GROUP = "phenomena_bench.methods"
FAMILIES_GROUP = "phenomena_bench.families"
TASKS_ENV = "PHENOMENA_BENCH_TASKS"
SUITES_FILE = "suites.yaml"
#: The module of a shipped family that defines its spec model (and imports no training code).
SPEC_MODULE = "spec"

# ----------------------------------------------------------------------------------------------- families


def _builtin_family_modules() -> dict[str, str]:
    import phenomena_bench.families as package

    return {
        info.name: f"{package.__name__}.{info.name}"
        for info in pkgutil.iter_modules(package.__path__)
        if info.ispkg and not info.name.startswith("_")
    }


def _builtin_spec_modules() -> dict[str, str]:
    """Shipped family name → its ``spec`` module, for the families whose folder has a ``spec.py``.

    Found by listing each folder, not by importing it: importing the family package is what costs torch.
    """
    import phenomena_bench.families as package

    found: dict[str, str] = {}
    for info in pkgutil.iter_modules(package.__path__):
        folder = getattr(info.module_finder, "path", None)
        if not info.ispkg or info.name.startswith("_") or folder is None:
            continue
        if any(sub.name == SPEC_MODULE for sub in pkgutil.iter_modules([os.path.join(folder, info.name)])):
            found[info.name] = f"{package.__name__}.{info.name}.{SPEC_MODULE}"
    return found


@functools.cache
def _family_sources() -> dict[str, str]:
    """Family name → ``module`` (shipped) or ``module:attr`` (entry point). A name used twice is an error."""
    sources = dict(_builtin_family_modules())
    for ep in entry_points(group=FAMILIES_GROUP):
        if ep.name in sources and sources[ep.name] != ep.value:
            raise BenchmarkError(
                f"family entry point {ep.name!r} ({ep.value}) reuses the name of a shipped family; rename it"
            )
        sources[ep.name] = ep.value
    return dict(sorted(sources.items()))


def family_names() -> list[str]:
    return list(_family_sources())


@functools.cache
def get_family(name: str) -> Family[Any, Any]:
    sources = _family_sources()
    if name not in sources:
        raise BenchmarkError(f"unknown family {name!r}; known families: {', '.join(sources)}")
    module_name, _, attr = sources[name].partition(":")
    family = getattr(importlib.import_module(module_name), attr or "FAMILY")
    if not isinstance(family, Family) or family.name != name:
        raise BenchmarkError(f"family {name!r} ({sources[name]}) is not a Family named {name!r}")
    parsed_with = _shipped_spec_model(name)
    if parsed_with is not None and family.spec_model is not parsed_with:
        raise BenchmarkError(
            f"family {name!r}: its spec_model {family.spec_model.__qualname__} is not the task spec model of "
            f"its {SPEC_MODULE}.py ({parsed_with.__qualname__}); point spec_model at that class"
        )
    return family


def _spec_model_in(module_name: str, family: str) -> type[TaskSpec] | None:
    """The TaskSpec subclass defined in `module_name` whose ``family`` is ``Literal[family]``, if exactly one."""
    module = importlib.import_module(module_name)
    models = [
        obj
        for obj in vars(module).values()
        if inspect.isclass(obj)
        and issubclass(obj, TaskSpec)
        and obj.__module__ == module_name
        and "family" in obj.model_fields
        and get_args(obj.model_fields["family"].annotation) == (family,)
    ]
    return models[0] if len(models) == 1 else None


@functools.cache
def _shipped_spec_model(name: str) -> type[TaskSpec] | None:
    """The spec model a shipped family's ``spec.py`` defines, or None (an entry-point family, or a shipped
    one that keeps everything in one module: its spec model is read from the family object)."""
    spec_module = _builtin_spec_modules().get(name)
    if spec_module is None or _family_sources().get(name) != _builtin_family_modules().get(name):
        return None
    return _spec_model_in(spec_module, name)


@functools.cache
def family_spec_models() -> dict[str, type[TaskSpec]]:
    """Every family's spec model by name, all a spec needs to be parsed: from ``spec.py`` alone where a
    shipped family has one (:func:`_shipped_spec_model`), else from the family object."""
    return {name: _shipped_spec_model(name) or get_family(name).spec_model for name in family_names()}


# ------------------------------------------------------------------------------------------ task specs


@functools.cache
def task_union() -> TypeAdapter[Any]:
    """A TypeAdapter over the discriminated union of every family's spec model."""
    models = family_spec_models()
    union = Annotated[Union[tuple(models.values())], Field(discriminator="family")]  # type: ignore[valid-type]  # noqa: UP007
    return TypeAdapter(union)


def parse_task(data: dict[str, Any], source: str) -> TaskSpec:
    """Validate a mapping as a task spec, resolving every tier so that tier errors surface now too."""
    try:
        spec: TaskSpec = task_union().validate_python(data)
    except ValidationError as err:
        raise SpecError(source, format_validation_error(err, union_members=family_spec_models())) from None
    if not spec.tiers:
        raise SpecError(source, ["tiers: empty (fix: define smoke, default and full; {} keeps the base values)"])
    problems: list[str] = []
    for tier in TIER_NAMES:
        try:
            resolve_tier(spec, tier, source)
        except SpecError as err:
            problems.extend(err.problems)
    if problems:
        raise SpecError(source, cap_problems(problems))
    return spec


def load_task(path: str | Path) -> TaskSpec:
    path = Path(path)
    return parse_task(read_yaml_mapping(path), str(path))


def task_json_schema() -> dict[str, Any]:
    """JSON Schema of a task spec (all families), for editors and external validators."""
    schema = task_union().json_schema()
    schema["title"] = "phenomena-bench task spec"
    return schema


def shipped_tasks_dir() -> Path:
    """The suite's task specs, installed as package data (the repository's `tasks/` folder)."""
    return Path(str(files("phenomena_bench.tasks")))


def default_tasks_dir() -> Path:
    """`PHENOMENA_BENCH_TASKS` when set, else the shipped suite."""
    return Path(os.environ[TASKS_ENV]) if os.environ.get(TASKS_ENV) else shipped_tasks_dir()


def task_dirs(tasks_dir: Path | None = None, include: Iterable[Path] = ()) -> list[Path]:
    """The folders to read specs from: `tasks_dir` (or the default), then every `include` folder."""
    return [tasks_dir or default_tasks_dir(), *include]


def task_files(tasks_dir: Path) -> list[Path]:
    if not tasks_dir.is_dir():
        raise BenchmarkError(f"tasks folder {tasks_dir} does not exist (set --tasks-dir or {TASKS_ENV})")
    return sorted(p for p in tasks_dir.rglob("*.yaml") if not p.name.startswith(".") and p.name != SUITES_FILE)


Tasks = dict[str, tuple[Path, TaskSpec]]


def load_tasks(tasks_dir: Path | Iterable[Path]) -> Tasks:
    """Every spec under the folder(s) by id. All invalid files are reported together, then raised."""
    folders = [tasks_dir] if isinstance(tasks_dir, Path) else list(tasks_dir)
    found: Tasks = {}
    problems: list[str] = []
    for folder in folders:
        for path in task_files(folder):
            try:
                spec = load_task(path)
            except SpecError as err:
                problems.extend(f"{err.source}: {p}" for p in err.problems)
                continue
            if spec.id in found:
                problems.append(f"{path}: id: {spec.id!r} is also used by {found[spec.id][0]} (fix: make ids unique)")
                continue
            found[spec.id] = (path, spec)
    if problems:
        raise BenchmarkError("invalid task specs:\n" + "\n".join(problems))
    return found


def select_tasks(tasks: Tasks, ids: list[str] | None) -> list[TaskSpec]:
    """The named tasks (an id, or a family name for all its tasks), or every task."""
    if not ids:
        return [spec for _, spec in tasks.values()]
    chosen: list[TaskSpec] = []
    for wanted in ids:
        matches = [s for _, s in tasks.values() if s.id == wanted or s.family == wanted]
        if not matches:
            raise BenchmarkError(f"unknown task {wanted!r}; see `phenomena-bench tasks` (known: {', '.join(tasks)})")
        chosen.extend(m for m in matches if m not in chosen)
    return chosen


class Suites(BaseModel):
    """`suites.yaml` in a tasks folder: named lists of task ids, e.g. `default`, the README's main CPU job,
    and, per suite, the installed methods it does not run (name → why), so a suite that leaves a baseline out
    says which and why instead of silently."""

    model_config = ConfigDict(extra="forbid")

    suites: dict[str, list[str]] = Field(min_length=1)
    skip: dict[str, dict[str, str]] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _skips_name_suites(self) -> Suites:
        unknown = sorted(set(self.skip) - set(self.suites))
        if unknown:
            raise ValueError(f"skip names unknown suite(s) {', '.join(unknown)}")
        return self


def load_suites(tasks_dir: Path | Iterable[Path], tasks: Tasks) -> dict[str, list[str]]:
    """The suites of every folder (a later folder's suite of the same name replaces an earlier one's)."""
    return {name: ids for name, (ids, _) in _load_suites(tasks_dir, tasks).items()}


def _load_suites(tasks_dir: Path | Iterable[Path], tasks: Tasks) -> dict[str, tuple[list[str], dict[str, str]]]:
    """Every suite of every folder with the methods it skips (name → why)."""
    folders = [tasks_dir] if isinstance(tasks_dir, Path) else list(tasks_dir)
    merged: dict[str, tuple[list[str], dict[str, str]]] = {}
    for folder in folders:
        path = folder / SUITES_FILE
        if not path.is_file():
            continue
        try:
            parsed = Suites.model_validate(read_yaml_mapping(path))
        except ValidationError as err:
            raise SpecError(str(path), format_validation_error(err, model=Suites)) from None
        suites = parsed.suites
        problems = [
            f"suites.{name}: unknown task {task_id!r} (fix: use an id from `phenomena-bench tasks`)"
            for name, ids in suites.items()
            for task_id in ids
            if task_id not in tasks
        ]
        if problems:
            raise SpecError(str(path), problems)
        merged.update({name: (ids, parsed.skip.get(name, {})) for name, ids in suites.items()})
    return merged


def suite_task_ids(tasks_dir: Path | Iterable[Path], tasks: Tasks, name: str) -> list[str]:
    return _suite(tasks_dir, tasks, name)[0]


def suite_skips(tasks_dir: Path | Iterable[Path], tasks: Tasks, name: str) -> dict[str, str]:
    """The installed methods suite `name` does not run, each with the reason its file gives."""
    return _suite(tasks_dir, tasks, name)[1]


def _suite(tasks_dir: Path | Iterable[Path], tasks: Tasks, name: str) -> tuple[list[str], dict[str, str]]:
    suites = _load_suites(tasks_dir, tasks)
    if name not in suites:
        known = ", ".join(suites) or "none defined"
        raise BenchmarkError(f"unknown suite {name!r} (known: {known})")
    return suites[name]


# ------------------------------------------------------------------------------------------------ methods


@dataclass(frozen=True)
class MethodInfo:
    ref: str
    name: str
    family: str
    version: str
    description: str
    source: str | None


MethodObject = type[Method[Any]] | Method[Any]


def _import_ref(ref: str) -> Any:
    module_name, _, attr = ref.partition(":")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ImportError as err:
        raise MethodError(f"method {ref!r}: cannot import module {module_name!r} ({err})") from None
    except Exception as err:  # the submission's import-time code failed
        raise MethodError(f"method {ref!r}: importing {module_name!r} raised {type(err).__name__}: {err}") from None
    try:
        return getattr(module, attr)
    except AttributeError:
        raise MethodError(f"method {ref!r}: module {module_name!r} has no attribute {attr!r}") from None


def _is_baseline(obj: Any, module_name: str) -> bool:
    return (
        inspect.isclass(obj)
        and issubclass(obj, Method)
        and obj.__module__ == module_name
        and not obj.__name__.startswith("_")
        and "name" in obj.__dict__
        and not inspect.isabstract(obj)
    )


@functools.cache
def baseline_classes() -> dict[str, type[Method[Any]]]:
    """The shipped reference methods by name: every public concrete Method class in the baselines package."""
    import phenomena_bench.baselines as package

    found: dict[str, type[Method[Any]]] = {}
    for info in pkgutil.iter_modules(package.__path__):
        module = importlib.import_module(f"{package.__name__}.{info.name}")
        for obj in vars(module).values():
            if _is_baseline(obj, module.__name__):
                if obj.name in found:
                    raise BenchmarkError(f"two baselines are named {obj.name!r}: {found[obj.name]} and {obj}")
                found[obj.name] = obj
    return dict(sorted(found.items()))


def _entry_points() -> dict[str, EntryPoint]:
    return {ep.name: ep for ep in entry_points(group=METHODS_GROUP)}


def _check_method_object(ref: str, obj: Any) -> MethodObject:
    if not (isinstance(obj, Method) or (inspect.isclass(obj) and issubclass(obj, Method))):
        raise MethodError(
            f"method {ref!r} is a {type(obj).__name__}, not a phenomena_bench Method (subclass a family's method base)"
        )
    return obj


def _method_class(obj: MethodObject) -> type[Method[Any]]:
    return obj if inspect.isclass(obj) else type(obj)


def _refuse_impostor(ref: str, obj: MethodObject) -> MethodObject:
    """Refuse a method whose `name` is a baseline's or an entry point's while its class is another one.

    The run key hashes the method's name, version and hyperparameters, not its code: a class that calls
    itself `adamw` would otherwise share the real adamw's key, and its results would stand in the
    reference row.
    """
    cls = _method_class(obj)
    name = getattr(cls, "name", None)
    owner: type[Method[Any]] | None = baseline_classes().get(name) if isinstance(name, str) else None
    where = "a baseline"
    eps = _entry_points()
    if owner is None and isinstance(name, str) and name in eps and ref != name:
        try:
            owner = _method_class(_check_method_object(name, eps[name].load()))
        except Exception:  # that entry point is broken: it is reported when it is used, not here
            owner = None
        where = f"the entry point {eps[name].value}"
    if owner is not None and owner is not cls:
        raise MethodError(
            f"method {ref!r}: class {cls.__module__}.{cls.__qualname__} is named {name!r}, the name of {where} "
            f"({owner.__module__}.{owner.__qualname__}); give it a name of its own"
        )
    return obj


def load_method_class(ref: str) -> MethodObject:
    """The object a reference names: a baseline's or an entry point's name, or `module:attr`.

    Whatever the route, a method may not carry the name of another registered method (see
    :func:`_refuse_impostor`)."""
    if ":" in ref:
        return _refuse_impostor(ref, _check_method_object(ref, _import_ref(ref)))
    baselines = baseline_classes()
    eps = _entry_points()
    if ref in baselines:
        if ref in eps:
            raise MethodError(_clash_message(ref, eps[ref], baselines[ref]))
        return baselines[ref]
    if ref not in eps:
        raise MethodError(f"unknown method {ref!r}; see `phenomena-bench methods` or name it as module:attr")
    try:
        obj = eps[ref].load()
    except Exception as err:
        raise MethodError(f"method {ref!r}: its entry point {eps[ref].value} failed to load ({err})") from None
    return _refuse_impostor(ref, _check_method_object(ref, obj))


def _clash_message(name: str, ep: EntryPoint, baseline: type[Method[Any]]) -> str:
    dist = f" of {ep.dist.name}" if ep.dist is not None else ""
    return (
        f"entry point {name!r} ({ep.value}{dist}) reuses the name of a baseline "
        f"({baseline.__module__}.{baseline.__qualname__}); the submission must rename it"
    )


def name_clashes() -> list[str]:
    """One line per installed entry point whose name is a baseline's (each names both classes)."""
    baselines = baseline_classes()
    return [
        _clash_message(name, ep, baselines[name]) for name, ep in sorted(_entry_points().items()) if name in baselines
    ]


def family_hooks(base: type) -> dict[str, inspect.Signature]:
    """The hooks of a family's method base (its public functions, required and optional) and their signatures."""
    hooks: dict[str, inspect.Signature] = {}
    for klass in base.__mro__:
        if klass is Method or not issubclass(klass, Method):
            continue
        for name, value in vars(klass).items():
            if not name.startswith("_") and inspect.isfunction(value) and name not in hooks:
                hooks[name] = inspect.signature(value)
    return hooks


def _accepts(override: inspect.Signature, expected: inspect.Signature) -> bool:
    """Whether a hook with signature `override` can be called the way the harness calls `expected`.

    The harness passes the base's parameters positionally: the override needs as many positional slots (or
    ``*args``), and any parameter of its own must have a default.
    """
    kinds = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    wanted = [p for p in expected.parameters.values() if p.kind in kinds]
    params = list(override.parameters.values())
    positional = [p for p in params if p.kind in kinds]
    star = any(p.kind is inspect.Parameter.VAR_POSITIONAL for p in params)
    if len(positional) < len(wanted) and not star:
        return False
    extra = positional[len(wanted) :] + [p for p in params if p.kind is inspect.Parameter.KEYWORD_ONLY]
    return all(p.default is not inspect.Parameter.empty for p in extra)


def _shown_signature(name: str, signature: inspect.Signature) -> str:
    return f"{name}({', '.join(signature.parameters)})"


def protocol_problems(cls: type[Method[Any]], base: type[Method[Any]]) -> list[str]:
    """What keeps `cls` from its family's protocol: each missing abstract hook and each hook it overrides
    with a signature the harness cannot call, with the signature expected (empty when it conforms)."""
    hooks = family_hooks(base)
    where = f"class {cls.__module__}.{cls.__qualname__}"
    missing = sorted(getattr(cls, "__abstractmethods__", ()))
    problems = []
    if missing:
        signatures = "; ".join(_shown_signature(h, hooks[h]) for h in missing if h in hooks)
        problems.append(
            f"{where} does not implement the {base.family} hook(s) {', '.join(f'{h}()' for h in missing)}"
            + (f" (expected {signatures})" if signatures else "")
        )
    for name, expected in hooks.items():
        owner = next(k for k in cls.__mro__ if name in vars(k))
        if owner is base or issubclass(base, owner) or name in getattr(cls, "__abstractmethods__", ()):
            continue
        value = vars(owner)[name]
        if not callable(value) or isinstance(value, staticmethod | classmethod):
            problems.append(f"{where}: {name} must be a plain method {_shown_signature(name, expected)}")
            continue
        got = inspect.signature(value)
        if not _accepts(got, expected):
            problems.append(
                f"{where}: hook {_shown_signature(name, got)} does not match the {base.family} protocol's "
                f"{_shown_signature(name, expected)}"
            )
    return problems


def resolve_method(ref: str, hyperparameters: dict[str, Any] | None = None) -> Method[Any]:
    """A checked method instance: resolved, hyperparameters validated, its family's protocol satisfied
    (every required hook overridden, every overridden hook callable as the family calls it)."""
    obj = load_method_class(ref)
    cls = type(obj) if isinstance(obj, Method) else obj
    family_name = getattr(cls, "family", None)
    base = get_family(str(family_name)).method_base if family_name in family_names() else None
    problems = protocol_problems(cls, base) if base is not None and issubclass(cls, base) else []
    if not problems and missing_hooks(cls):
        problems = [f"class {cls.__module__}.{cls.__qualname__} does not implement {', '.join(missing_hooks(cls))}"]
    if problems:
        raise MethodError(f"method {ref!r}: " + "; ".join(problems))
    if isinstance(obj, Method):
        method = type(obj)(**{**obj.hp.model_dump(), **(hyperparameters or {})}) if hyperparameters else obj
    else:
        method = obj(**(hyperparameters or {}))
    family = getattr(method, "family", None)
    try:
        get_family(str(family)).check_method(method)
    except BenchmarkError as err:
        raise MethodError(f"method {ref!r}: {err}") from None
    return method


def method_source(method: Method[Any]) -> str | None:
    try:
        return inspect.getsourcefile(type(method))
    except TypeError:
        return None


def _info(ref: str, obj: MethodObject) -> MethodInfo:
    cls = obj if inspect.isclass(obj) else type(obj)
    return MethodInfo(
        ref=ref,
        name=cls.name,
        family=cls.family,
        version=str(cls.version),
        description=cls.description,
        source=inspect.getsourcefile(cls),
    )


def list_methods() -> tuple[list[MethodInfo], list[str]]:
    """Installed methods, and one line per entry point that failed to load (so one broken one hides nothing)."""
    infos = [_info(name, cls) for name, cls in baseline_classes().items()]
    problems: list[str] = []
    for name in sorted(_entry_points()):
        try:
            infos.append(_info(name, load_method_class(name)))
        except (MethodError, AttributeError) as err:
            problems.append(str(err))
    return sorted(infos, key=lambda i: i.ref), problems


def methods_for_family(family: str) -> list[str]:
    """Every installed method of `family`. An entry point named like a baseline is an error here too: left
    out silently, a submitter would never learn that their method did not run."""
    clashes = name_clashes()
    if clashes:
        raise MethodError("; ".join(clashes))
    infos, _ = list_methods()
    return [i.ref for i in infos if i.family == family]


# ------------------------------------------------------------------------------------------- measurements


def load_measurement(ref: str) -> Any:
    """A :class:`~phenomena_bench.core.measurement.Measurement` instance from a ``module:attr`` reference
    to its class (or to an instance)."""
    from phenomena_bench.core.measurement import Measurement

    obj = _import_ref(ref)
    instance = obj() if inspect.isclass(obj) and issubclass(obj, Measurement) else obj
    if not isinstance(instance, Measurement):
        raise BenchmarkError(f"measurement {ref!r} is a {type(obj).__name__}, not a phenomena_bench Measurement")
    return instance


def family_measurements(family: str) -> list[tuple[str, Any]]:
    """``(ref, load)`` for each measurement of `family`: the family's own (:attr:`Family.measurements`) and
    the entry points of group ``phenomena_bench.measurements`` named ``<family>/<name>``. Nothing is
    imported until ``load()`` is called (each load fails on its own, so one broken import hides nothing)."""
    from phenomena_bench.core.measurement import ENTRY_POINT_GROUP

    refs = list(get_family(family).measurements)
    refs += [ep.value for ep in entry_points(group=ENTRY_POINT_GROUP) if ep.name.split("/", 1)[0] == family]
    return [(ref, functools.partial(load_measurement, ref)) for ref in dict.fromkeys(refs)]
