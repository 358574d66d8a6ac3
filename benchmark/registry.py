"""Finds the suite's task specs and the installed methods.

Tasks are YAML files under a tasks folder (``tasks/`` of the checkout, or ``PHENOMENA_BENCH_TASKS``).
Methods are entry points in the group ``phenomena_bench.methods``, or ``package.module:attr`` references
that need no installation (the current directory is importable, as with ``python -m``).
"""

from __future__ import annotations

import importlib
import inspect
import os
import sys
from dataclasses import dataclass
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from benchmark.errors import BenchmarkError, MethodError, SpecError
from benchmark.families import get_family
from benchmark.families.base import Method
from benchmark.spec import TaskSpec, format_validation_error, load_task, read_yaml_mapping

ENTRY_POINT_GROUP = "phenomena_bench.methods"
TASKS_ENV = "PHENOMENA_BENCH_TASKS"


def default_tasks_dir() -> Path:
    """`PHENOMENA_BENCH_TASKS`, else `./tasks` when it exists, else the checkout's `tasks/` folder."""
    if os.environ.get(TASKS_ENV):
        return Path(os.environ[TASKS_ENV])
    if Path("tasks").is_dir():
        return Path("tasks")
    return Path(__file__).resolve().parents[1] / "tasks"


def task_files(tasks_dir: Path) -> list[Path]:
    if not tasks_dir.is_dir():
        raise BenchmarkError(f"tasks folder {tasks_dir} does not exist (set --tasks-dir or {TASKS_ENV})")
    return sorted(
        p for p in tasks_dir.rglob("*.yaml") if not p.name.startswith(".") and p != tasks_dir / SUITES_FILE
    )


def load_tasks(tasks_dir: Path) -> dict[str, tuple[Path, TaskSpec]]:
    """Every spec under `tasks_dir` by id. All invalid files are reported together, then raised."""
    found: dict[str, tuple[Path, TaskSpec]] = {}
    problems: list[str] = []
    for path in task_files(tasks_dir):
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


def select_tasks(tasks: dict[str, tuple[Path, TaskSpec]], ids: list[str] | None) -> list[TaskSpec]:
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


SUITES_FILE = "suites.yaml"


class Suites(BaseModel):
    """`tasks/suites.yaml`: named lists of task ids, e.g. `default`, the README's main CPU job."""

    model_config = ConfigDict(extra="forbid")

    suites: dict[str, list[str]] = Field(min_length=1)


def load_suites(tasks_dir: Path, tasks: dict[str, tuple[Path, TaskSpec]]) -> dict[str, list[str]]:
    path = tasks_dir / SUITES_FILE
    if not path.is_file():
        return {}
    try:
        suites = Suites.model_validate(read_yaml_mapping(path)).suites
    except ValidationError as err:
        raise SpecError(str(path), format_validation_error(err, model=Suites)) from None
    problems = [
        f"suites.{name}: unknown task {task_id!r} (fix: use an id from `phenomena-bench tasks`)"
        for name, ids in suites.items()
        for task_id in ids
        if task_id not in tasks
    ]
    if problems:
        raise SpecError(str(path), problems)
    return suites


def suite_task_ids(tasks_dir: Path, tasks: dict[str, tuple[Path, TaskSpec]], name: str) -> list[str]:
    suites = load_suites(tasks_dir, tasks)
    if name not in suites:
        known = ", ".join(suites) or "none defined"
        raise BenchmarkError(f"unknown suite {name!r} in {tasks_dir / SUITES_FILE} (known: {known})")
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


def _entry_points() -> dict[str, Any]:
    return {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}


def load_method_class(ref: str) -> type[Method] | Method:
    """The object a reference names: an entry-point name, or `module:attr`."""
    if ":" in ref:
        obj = _import_ref(ref)
    else:
        eps = _entry_points()
        if ref not in eps:
            raise MethodError(f"unknown method {ref!r}; see `phenomena-bench methods` or name it as module:attr")
        try:
            obj = eps[ref].load()
        except Exception as err:
            raise MethodError(f"method {ref!r}: its entry point {eps[ref].value} failed to load ({err})") from None
    if not (isinstance(obj, Method) or (inspect.isclass(obj) and issubclass(obj, Method))):
        raise MethodError(
            f"method {ref!r} is a {type(obj).__name__}, not a phenomena_bench Method (subclass a family's method base)"
        )
    return obj


def resolve_method(ref: str, hyperparameters: dict[str, Any] | None = None) -> Method:
    """A checked method instance: resolved, hyperparameters validated, its family's protocol satisfied."""
    obj = load_method_class(ref)
    if isinstance(obj, Method):
        if hyperparameters:
            obj = type(obj)(**{**obj.hp.model_dump(), **hyperparameters})
        method = obj
    else:
        method = obj(**(hyperparameters or {}))
    family = getattr(method, "family", None)
    try:
        get_family(str(family)).check_method(method)
    except BenchmarkError as err:
        raise MethodError(f"method {ref!r}: {err}") from None
    return method


def method_source(method: Method) -> str | None:
    try:
        return inspect.getsourcefile(type(method))
    except TypeError:
        return None


def list_methods() -> tuple[list[MethodInfo], list[str]]:
    """Installed methods, and one line per entry point that failed to load (so one broken one hides nothing)."""
    infos: list[MethodInfo] = []
    problems: list[str] = []
    for name in sorted(_entry_points()):
        try:
            obj = load_method_class(name)
            cls = obj if inspect.isclass(obj) else type(obj)
            infos.append(
                MethodInfo(
                    ref=name,
                    name=cls.name,
                    family=cls.family,
                    version=str(cls.version),
                    description=cls.description,
                    source=inspect.getsourcefile(cls),
                )
            )
        except (MethodError, AttributeError) as err:
            problems.append(str(err))
    return infos, problems


def methods_for_family(family: str) -> list[str]:
    infos, _ = list_methods()
    return [i.ref for i in infos if i.family == family]
