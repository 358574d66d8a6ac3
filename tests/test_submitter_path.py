"""A submitter's path that cannot silently go wrong: one test per hole (issue 17).

The submissions are small packages under ``tests/submitter_path/``. Most checks run the command line in this
process (``main(argv)``: the same parser, checks and exit codes, without paying ~4 s of interpreter start for
each); the one fresh-environment install and the guides' examples are real installs and real runs.
"""

from __future__ import annotations

import shutil
import sys
import time
from collections.abc import Iterable
from pathlib import Path

import pytest
import yaml

from phenomena_bench.cli import main
from phenomena_bench.cli.check_submission import probe_entry_point
from phenomena_bench.cli.options import EXIT_CODES, EXIT_RUNS_FAILED, EXIT_USER_ERROR
from phenomena_bench.cli.output import print_results
from phenomena_bench.core.costs import shared_work
from phenomena_bench.core.errors import SpecError
from phenomena_bench.core.family import RunOutcome
from phenomena_bench.registry import family_names, get_family, load_tasks, shipped_tasks_dir
from phenomena_bench.report.examples import example_class, example_source
from phenomena_bench.run.execute import execute_job, make_record
from phenomena_bench.run.orchestrate import PlanResult
from phenomena_bench.run.plan import Job, plan_runs
from phenomena_bench.store import RunRecord, Store
from phenomena_bench.submission import load_manifest
from tests.helpers import ROOT, cli

HERE = ROOT / "tests" / "submitter_path"
METHODS = HERE / "methods"
SMOKE_TASK = "grokking/add-mod97"
#: Per family, the shipped task whose smoke tier is cheapest (measured: all four together ~11 s of CPU).
CHEAP_TASKS = {
    "grokking": "grokking/add-mod97",
    "pruning": "pruning/digits-mlp",
    "mil_dropout": "mil_dropout/digits-bags",
    "hessian": "hessian/digits-tanh-ce-init",
}


@pytest.fixture
def on_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """The test methods importable as top-level modules (forgotten again after the test)."""
    monkeypatch.syspath_prepend(str(METHODS))
    for name in ("plain_hp", "no_hook", "bad_signature", "same_name_a", "same_name_b"):
        monkeypatch.delitem(sys.modules, name, raising=False)


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def _error_lines(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith("error:")]


def test_a_misspelt_hyperparameter_names_the_closest_field(
    on_path: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A plain BaseModel would drop `lrr` and serve the defaults' result; it is an error naming `lr`."""
    code, _, err = _run(
        capsys, "run", "--task", SMOKE_TASK, "--tier", "smoke", "--method", "plain_hp:PlainHP",
        "--hp", "lrr=1e-3", "--store", str(tmp_path), "--quiet",
    )  # fmt: skip
    assert code == EXIT_USER_ERROR
    assert _error_lines(err) == [
        "error: method 'plain-hp': unknown hyperparameter(s) lrr (allowed: lr); did you mean lr for lrr?"
    ]
    assert not (tmp_path / "runs").exists()  # nothing ran, nothing stored


@pytest.mark.parametrize(
    ("ref", "expected"),
    [
        (
            "no_hook:NoConfigure",
            "class no_hook.NoConfigure does not implement the grokking hook(s) configure() "
            "(expected configure(self, model, params, info))",
        ),
        (
            "bad_signature:WrongSignature",
            "class bad_signature.WrongSignature: hook configure(self, model) does not match the grokking protocol's "
            "configure(self, model, params, info)",
        ),
    ],
)
def test_the_protocol_check_can_fail(
    on_path: None, tmp_path: Path, capsys: pytest.CaptureFixture[str], ref: str, expected: str
) -> None:
    """The hook check names the class, the hook and the signature the family calls, before any run."""
    assert probe_entry_point(ref, installed=False) == {"identity": None, "problems": [expected]}
    code, _, err = _run(
        capsys, "run", "--task", SMOKE_TASK, "--tier", "smoke", "--method", ref, "--store", str(tmp_path)
    )
    assert code == EXIT_USER_ERROR and _error_lines(err) == [f"error: method {ref!r}: {expected}"]


def test_an_entry_point_named_like_a_baseline_is_an_error_naming_both(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Before, `run` without --method silently used the baseline and ignored the installed `adamw`."""
    monkeypatch.syspath_prepend(str(HERE / "clash"))  # a .dist-info there: an installed distribution
    expected = (
        "error: entry point 'adamw' (clash_pkg:FakeAdamW of clash-pkg) reuses the name of a baseline "
        "(phenomena_bench.baselines.grokking.AdamW); the submission must rename it"
    )
    for extra in ([], ["--method", "adamw"]):
        code, _, err = _run(capsys, "run", "--task", SMOKE_TASK, "--tier", "smoke", "--store", str(tmp_path), *extra)
        assert code == EXIT_USER_ERROR and _error_lines(err) == [expected]


def test_a_different_class_under_the_same_name_does_not_reuse_stored_results(on_path: None, tmp_path: Path) -> None:
    """Same name, same version, same hyperparameters, other code: another key, so A's record is not B's."""
    store = Store(tmp_path)
    task = [spec for _, spec in load_tasks(shipped_tasks_dir()).values() if spec.id == SMOKE_TASK]
    first = plan_runs(task, ["same_name_a:SameName"], "smoke", store, 1)
    (run,) = first.todo
    store.put(make_record(run, RunOutcome(status="ok", metrics={}), "cpu", "2026-01-01T00:00:00+00:00", 1.0))
    assert plan_runs(task, ["same_name_a:SameName"], "smoke", store, 1).done == [run.key]  # A reuses its own
    other = plan_runs(task, ["same_name_b:SameName"], "smoke", store, 1)
    assert other.done == [] and len(other.todo) == 1 and other.todo[0].key != run.key
    assert other.todo[0].method["name"] == run.method["name"] == "same-name"
    assert other.todo[0].method["code"] != run.method["code"]


def test_the_code_digest_ignores_docstrings(on_path: None, tmp_path: Path) -> None:
    """Editing prose keeps every stored result; editing a statement does not."""
    from phenomena_bench.core.method import code_digest

    source = (METHODS / "same_name_a.py").read_text()
    variants = {
        "prose": source.replace('"""One implementation', '"""Reworded: one implementation'),
        "code": source.replace("lr=1e-3", "lr=2e-3"),
    }
    digests = {}
    for i, (what, text) in enumerate({"original": source, **variants}.items()):
        module = tmp_path / f"digest_{i}.py"
        module.write_text(text)
        sys.path.insert(0, str(tmp_path))
        try:
            digests[what] = code_digest(__import__(module.stem).SameName)
        finally:
            sys.path.remove(str(tmp_path))
    assert digests["prose"] == digests["original"] != digests["code"]


def test_the_manifest_sets_exactly_one_way_to_install(tmp_path: Path) -> None:
    manifest = yaml.safe_load((HERE / "wrong_group" / "submission.yaml").read_text())
    for change, which in (({"local_package": "src"}, "both"), ({"pip": None}, "neither")):
        (tmp_path / "submission.yaml").write_text(yaml.safe_dump({**manifest, **change}))
        with pytest.raises(
            SpecError, match=f"set exactly one of pip and local_package \\(this manifest sets {which}\\)"
        ):
            load_manifest(tmp_path)


def test_check_submission_installs_into_a_fresh_environment_and_checks_the_group(tmp_path: Path) -> None:
    """The `pip:` requirement is installed (no index reached); its entry point's group is read as installed."""
    folder = tmp_path / "wrong_group"
    shutil.copytree(HERE / "wrong_group", folder)  # pip builds in the source folder: not in the repository
    result = cli("check-submission", str(folder), "--quiet")
    assert result.returncode == EXIT_USER_ERROR, result.stderr
    assert "installed . into a fresh environment" in result.stdout
    assert [line for line in result.stderr.splitlines() if line.strip()] == [
        "error: distribution wrong-group-method declares 'wrong_group_method:WrongGroup' in group(s) "
        "'phenomena_bench.method'; declare it in the group 'phenomena_bench.methods' as "
        'wrong-group = "wrong_group_method:WrongGroup"'
    ]
    assert "wrong_group_method" not in sys.modules  # installed there, not here


def test_shared_work_is_charged_to_no_method(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Time spent inside shared_work leaves the run's wall time and is recorded as shared_work_s."""
    task = [spec for _, spec in load_tasks(shipped_tasks_dir()).values() if spec.id == SMOKE_TASK]
    (run,) = plan_runs(task, ["adamw"], "smoke", Store(tmp_path), 1).todo
    family = get_family("grokking")

    def builds_a_cache(task: object, method: object, ctx: object) -> RunOutcome:
        with shared_work("ground_truth"):
            time.sleep(0.3)
        return RunOutcome(status="ok", metrics={})

    monkeypatch.setattr(family, "run", builds_a_cache)
    (record,) = execute_job(Job((run,)), "cpu", tmp_path)
    assert record.status == "ok" and record.shared_work_s >= 0.3 and record.wall_time_s < 0.3


def test_every_not_ok_status_has_a_reason_and_exits_3(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """budget_exceeded with an empty reason gets one naming the family; it counts as not ok (exit 3), and the
    reason is printed once, under the table."""
    task = [spec for _, spec in load_tasks(shipped_tasks_dir()).values() if spec.id == SMOKE_TASK]
    (run,) = plan_runs(task, ["adamw"], "smoke", Store(tmp_path), 1).todo
    record = make_record(run, RunOutcome(status="budget_exceeded"), "cpu", "2026-01-01T00:00:00+00:00", 1.0)
    assert record.error == "budget_exceeded (the grokking family gave no reason)"
    assert PlanResult(finished=[record]).not_ok == [record]
    print_results([record], "table")
    out = capsys.readouterr().out
    assert out.count("budget_exceeded (the grokking family gave no reason)") == 1
    assert "not ok:\n  grokking/add-mod97 [smoke] adamw seed=0: budget_exceeded:" in out
    assert dict(EXIT_CODES)[EXIT_RUNS_FAILED].startswith(
        "a run this command did ended failed, timeout or budget_exceeded"
    )


def test_exit_codes_are_one_documented_table(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--help"])
    shown = capsys.readouterr().out
    readme = (ROOT / "README.md").read_text()
    for code, meaning in EXIT_CODES:
        assert f"  {code:<4} {meaning}" in shown
        assert f"| {code} | {meaning} |" in readme  # the README's table is the same table


def test_attribution_comes_from_the_distribution_and_baseline_only_for_shipped_methods(tmp_path: Path) -> None:
    from phenomena_bench.report.site import attribution
    from tests.helpers import grokking_record

    def record(name: str, **identity: str) -> RunRecord:
        base = grokking_record()
        return base.model_copy(update={"method": base.method.model_copy(update={"name": name, **identity})})

    shipped = record("adamw", distribution="phenomena-bench")
    installed = record("lion", distribution="phenomena-lion", distribution_version="0.2", author="L. Ion")
    loose = record("mine", code="0" * 64)  # a new record of code put on sys.path: no distribution
    records = [shipped, installed, loose]
    assert attribution("adamw", "adamw", records, []) == ("baseline", True)
    assert attribution("lion", "lion", records, []) == ("L. Ion (phenomena-lion 0.2)", False)
    assert attribution("mine", "m:Mine", records, []) == ("unattributed (no manifest, not installed)", True)


#: Training steps a smoke run of the examples may take: whether an example runs does not depend on how long.
MAX_EXAMPLE_STEPS = 200


def _capped_copies(task_ids: Iterable[str], folder: Path) -> Path:
    """The shipped specs of `task_ids` copied into `folder`, each smoke tier's ``training.steps`` capped at
    :data:`MAX_EXAMPLE_STEPS` (the grokking smoke tier trains a method that never groks for minutes)."""
    tasks = load_tasks(shipped_tasks_dir())
    for task_id in task_ids:
        path, _ = tasks[task_id]
        raw = yaml.safe_load(path.read_text())
        training = raw.get("tiers", {}).get("smoke", {}).get("training")
        steps = (training or {}).get("steps", raw.get("training", {}).get("steps"))
        if isinstance(steps, int) and steps > MAX_EXAMPLE_STEPS:
            raw["tiers"]["smoke"].setdefault("training", {})["steps"] = MAX_EXAMPLE_STEPS
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{task_id.replace('/', '_')}.yaml").write_text(yaml.safe_dump(raw))
    return folder


def test_each_family_guide_has_its_hooks_and_an_example_that_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`docs FAMILY` for every family; each guide's example installed as a module and run on a smoke task."""
    package = tmp_path / "examples"
    package.mkdir()
    shipped = sorted(spec.id for _, spec in load_tasks(shipped_tasks_dir()).values())
    tasks = {  # the cheapest smoke task of each family, or its first if that one is gone
        family: CHEAP_TASKS[family]
        if CHEAP_TASKS.get(family) in shipped
        else next(t for t in shipped if t.startswith(f"{family}/"))
        for family in family_names()
    }
    refs = []
    for family in family_names():
        code, guide, _ = _run(capsys, "docs", family)
        source = example_source(family)
        assert code == 0 and source is not None and source.rstrip() in guide
        for hook in get_family(family).method_base.__abstractmethods__:
            assert f"### `{hook}(self" in guide and "(required)" in guide
        (package / f"guide_{family}.py").write_text(source)
        refs.append(f"guide_{family}:{example_class(family)}")
    monkeypatch.syspath_prepend(str(package))
    code, out, err = _run(
        capsys, "run", "--task", *tasks.values(), "--method", *refs, "--tier", "smoke", "--seeds", "1",
        "--tasks-dir", str(_capped_copies(tasks.values(), tmp_path / "tasks")),
        "--store", str(tmp_path / "store"), "--executor", "local", "--quiet", "--format", "json",
    )  # fmt: skip
    assert code == 0, err
    records = Store(tmp_path / "store").records()
    assert sorted(r.family for r in records) == sorted(family_names())
    assert {r.status for r in records} == {"ok"}, [r.error for r in records]
