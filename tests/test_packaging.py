"""The house: one import package, shipped data found through importlib.resources, families and methods found
by the registry, a core that imports no family, and hooks that a method must implement."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from importlib.metadata import EntryPoint
from importlib.resources import files
from pathlib import Path
from typing import Any

import pytest

from phenomena_bench import registry
from phenomena_bench.core.errors import BenchmarkError, MethodError
from phenomena_bench.core.method import Method, NoHyperparameters

FAMILIES = ["generalization", "grokking", "hessian", "mil_dropout", "pruning"]


def test_shipped_tasks_and_site_assets_are_package_data() -> None:
    tasks = files("phenomena_bench.tasks")
    assert tasks.joinpath("suites.yaml").is_file()
    for family in FAMILIES:
        assert any(p.name.endswith(".yaml") for p in tasks.joinpath(family).iterdir()), family
    site = files("phenomena_bench.leaderboard")
    assert site.joinpath("templates").is_dir()
    assert site.joinpath("assets", "style.css").is_file()
    loaded = registry.load_tasks(registry.shipped_tasks_dir())
    assert {spec.family for _, spec in loaded.values()} == set(FAMILIES)


def test_the_registry_finds_every_family_folder_and_every_baseline() -> None:
    assert registry.family_names() == FAMILIES
    baselines = registry.baseline_classes()
    assert len(baselines) == 45
    assert {cls.family for cls in baselines.values()} == set(FAMILIES)
    assert baselines["adamw"].__module__ == "phenomena_bench.baselines.grokking"


def test_core_imports_no_family_and_no_torch() -> None:
    """The import cycle spec -> families -> base -> spec is gone: the core stands alone."""
    code = textwrap.dedent(
        """
        import sys
        import phenomena_bench.core.spec, phenomena_bench.core.family, phenomena_bench.core.method
        import phenomena_bench.core.hashing, phenomena_bench.core.seeds, phenomena_bench.core.atomic
        import phenomena_bench.core.cache, phenomena_bench.core.curves, phenomena_bench.store
        loaded = sorted(m for m in sys.modules if m.startswith(("phenomena_bench.families.", "torch")))
        print(",".join(loaded))
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_the_old_package_names_are_not_importable_from_outside_the_checkout(tmp_path: Path) -> None:
    code = "import importlib.util as u; print(u.find_spec('benchmark'), u.find_spec('baselines'))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=tmp_path)
    assert out.stdout.strip() == "None None"


def test_a_method_missing_a_hook_is_named_with_the_hook(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / "half_done.py").write_text(
        textwrap.dedent(
            """
            from phenomena_bench.families.hessian.api import HessianMethod

            class HalfDone(HessianMethod):
                name = "half-done"
            """
        )
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(MethodError, match=r"half_done\.HalfDone does not implement the hessian hook\(s\) estimate\(\)"):
        registry.resolve_method("half_done:HalfDone")


def test_hyperparameters_come_from_the_generic_argument_and_unknown_names_are_errors() -> None:
    from pydantic import BaseModel

    class HP(BaseModel):
        lr: float = 1e-3

    class Typed(Method[HP]):
        name = "typed"
        family = "grokking"

    assert Typed.Hyperparameters is HP
    assert Typed(lr=0.5).hp.lr == 0.5
    with pytest.raises(MethodError, match=r"unknown hyperparameter\(s\) lrr \(allowed: lr\)"):
        Typed(lrr=0.5)

    class Untyped(Method[NoHyperparameters]):
        name = "untyped"
        family = "grokking"

    with pytest.raises(MethodError, match=r"unknown hyperparameter\(s\) lr \(allowed: none\)"):
        Untyped(lr=1.0)


def _entry_points(mapping: dict[str, list[EntryPoint]]) -> Any:
    return lambda group: mapping.get(group, [])


def test_an_entry_point_reusing_a_baseline_name_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = EntryPoint(name="adamw", value="phenomena_bench.baselines.grokking:Muon", group=registry.METHODS_GROUP)
    monkeypatch.setattr(registry, "entry_points", _entry_points({registry.METHODS_GROUP: [fake]}))
    with pytest.raises(MethodError, match="reuses the name of a baseline"):
        registry.resolve_method("adamw")
    infos, problems = registry.list_methods()
    assert any("reuses the name of a baseline" in p for p in problems)
    assert [i.ref for i in infos].count("adamw") == 1


def test_a_family_from_another_package_is_found_by_entry_point(monkeypatch: pytest.MonkeyPatch) -> None:
    """A family can live in another distribution: an entry point in `phenomena_bench.families` names it."""
    fake = EntryPoint(name="grokking2", value="phenomena_bench.families.grokking:FAMILY", group=registry.FAMILIES_GROUP)
    monkeypatch.setattr(registry, "entry_points", _entry_points({registry.FAMILIES_GROUP: [fake]}))
    registry._family_sources.cache_clear()
    registry.get_family.cache_clear()
    try:
        assert "grokking2" in registry.family_names()
        with pytest.raises(BenchmarkError, match="is not a Family named 'grokking2'"):
            registry.get_family("grokking2")  # its FAMILY calls itself grokking: refused, not silently renamed
    finally:
        registry._family_sources.cache_clear()
        registry.get_family.cache_clear()


TOY_FAMILY = '''
"""A complete family in one folder: spec, method base (api), training and scoring, FAMILY."""

from abc import abstractmethod
from typing import ClassVar, Literal

from pydantic import BaseModel

from phenomena_bench.core.family import Column, Family, RunContext, RunOutcome
from phenomena_bench.core.method import Method, NoHyperparameters
from phenomena_bench.core.spec import StrictModel, TaskSpec


class Sizes(StrictModel):
    n: int = 3


class ToyTask(TaskSpec):
    family: Literal["toy"]
    data: Sizes = Sizes()
    model: Sizes = Sizes()
    training: Sizes = Sizes()


class ToyMethod(Method[NoHyperparameters]):
    family: ClassVar[str] = "toy"

    @abstractmethod
    def guess(self, n: int) -> float:
        """Guess n."""


class Half(ToyMethod):
    name: ClassVar[str] = "toy-half"

    def guess(self, n: int) -> float:
        return n / 2


class ToyFamily(Family[ToyTask, ToyMethod]):
    name = "toy"
    description = "Guess a number."
    spec_model = ToyTask
    method_base = ToyMethod
    primary_metric = "error"
    direction = "min"
    reference_method = "toy-half"

    def run(self, task: ToyTask, method: ToyMethod, ctx: RunContext) -> RunOutcome:
        return RunOutcome(metrics={"error": abs(method.guess(task.data.n) - task.data.n)})

    def columns(self) -> list[Column]:
        return [Column("error", "error", "mean")]


FAMILY = ToyFamily()
'''

TOY_TASK = """
id: toy/guess
family: toy
version: 1
title: Guess a number
description: The smallest family there is.
seeds: 2
time_limit_s: 60
data: {n: 8}
tiers: {smoke: {}, default: {}, full: {}}
"""


def test_adding_a_family_is_one_folder_plus_its_task_yaml(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import phenomena_bench.families as families
    from phenomena_bench.cli import main

    folder = tmp_path / "families" / "toy"
    folder.mkdir(parents=True)
    (folder / "__init__.py").write_text(TOY_FAMILY)
    tasks = tmp_path / "tasks" / "toy"
    tasks.mkdir(parents=True)
    (tasks / "guess.yaml").write_text(TOY_TASK)
    monkeypatch.setattr(families, "__path__", [*families.__path__, str(tmp_path / "families")])
    caches = (registry._family_sources, registry.get_family, registry.family_spec_models, registry.task_union)
    for cache in caches:
        cache.cache_clear()
    try:
        assert "toy" in registry.family_names()
        code = main(
            ["run", "--include-path", str(tmp_path / "tasks"), "--task", "toy/guess", "--tier", "smoke",
             "--method", "phenomena_bench.families.toy:Half", "--executor", "local", "--device", "cpu",
             "--store", str(tmp_path / "store"), "--quiet", "--format", "json"]
        )  # fmt: skip
        assert code == 0, capsys.readouterr().err
        records = registry_store_records(tmp_path / "store")
        assert sorted((r.seed, r.status, r.metrics["error"]) for r in records) == [(0, "ok", 4.0), (1, "ok", 4.0)]
    finally:
        for cache in caches:
            cache.cache_clear()


def registry_store_records(path: Path) -> list[Any]:
    from phenomena_bench.store import Store

    return Store(path).records()


def test_a_suite_skips_only_the_methods_it_names_and_says_why(tmp_path: Path) -> None:
    from phenomena_bench.run.plan import plan_runs
    from phenomena_bench.store import Store

    folder = registry.shipped_tasks_dir()
    tasks = registry.load_tasks(folder)
    skips = registry.suite_skips(folder, tasks, "default")
    assert set(skips) == {"neuralgrok"} and "CPU" in skips["neuralgrok"]
    assert registry.suite_skips(folder, tasks, "grokking") == {}
    grokking = [tasks["grokking/add-mod97"][1]]
    plan = plan_runs(grokking, None, "smoke", Store(tmp_path), seeds=1, skip=skips)
    planned = {run.method["name"] for run in plan.todo}
    assert "neuralgrok" not in planned and {"adamw", "groktransfer", "muon"} <= planned
    # a skip naming a suite that does not exist is a spec error, not an ignored line
    bad = tmp_path / "tasks"
    bad.mkdir()
    (bad / "suites.yaml").write_text("suites:\n  a: []\nskip:\n  b: {adamw: why}\n")
    with pytest.raises(BenchmarkError, match="unknown suite"):
        registry.suite_skips(bad, {}, "a")
