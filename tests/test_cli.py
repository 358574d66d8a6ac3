"""End to end through the real command line: a smoke run, the cache, `show`, and bad input.

Commands that run something go through a fresh ``python -m phenomena_bench.cli`` process; those that only
read a store or refuse bad input before any run call the same ``main`` in this process (``cli_in_process``),
which proves the same output and exit codes without paying an interpreter and torch import per call.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.helpers import ROOT, cli, cli_in_process


@pytest.fixture(scope="module")
def smoke_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    store = tmp_path_factory.mktemp("store")
    result = cli(
        "run",
        "--task",
        "grokking/add-mod97",
        "--method",
        "adamw",
        "grad-norm",
        "--tier",
        "smoke",
        "--seeds",
        "1",
        "--store",
        str(store),
        "--quiet",
    )
    assert result.returncode == 0, result.stderr
    assert "adamw" in result.stdout and "grad-norm" in result.stdout and "steps to 99%" in result.stdout
    return store


def test_run_stores_one_record_per_run(smoke_store: Path) -> None:
    records = list((smoke_store / "runs").glob("*/*.json"))
    assert len(records) == 2
    statuses = {json.loads(p.read_text())["status"] for p in records}
    assert statuses == {"ok"}


def test_second_run_does_no_work(smoke_store: Path) -> None:
    before = {p: p.stat().st_mtime_ns for p in (smoke_store / "runs").glob("*/*.json")}
    result = cli_in_process(
        "run",
        "--task",
        "grokking/add-mod97",
        "--method",
        "adamw",
        "grad-norm",
        "--tier",
        "smoke",
        "--seeds",
        "1",
        "--store",
        str(smoke_store),
        "--quiet",
    )
    assert result.returncode == 0, result.stderr
    assert "2 already in" in result.stderr and "0 to do" in result.stderr
    assert {p: p.stat().st_mtime_ns for p in (smoke_store / "runs").glob("*/*.json")} == before


def test_show_json_and_runs(smoke_store: Path) -> None:
    rows = json.loads(cli_in_process("show", "--store", str(smoke_store), "--format", "json").stdout)
    assert {r["method"] for r in rows} == {"adamw", "grad-norm"} and all(r["seeds"] == 1 for r in rows)
    runs = json.loads(cli_in_process("show", "--store", str(smoke_store), "--runs", "--format", "json").stdout)
    assert len(runs) == 2 and all(r["metrics"]["steps_run"] == 300 for r in runs)
    assert all(r["curves"]["val_acc"]["x"][-1] == 300 for r in runs)


def test_store_from_environment(smoke_store: Path) -> None:
    rows = json.loads(
        cli_in_process("show", "--format", "json", env={"PHENOMENA_BENCH_STORE": str(smoke_store)}).stdout
    )
    assert len(rows) == 2


def test_tasks_and_methods_are_listed() -> None:
    tasks = cli_in_process("tasks")
    assert tasks.returncode == 0 and "grokking/div-mod97" in tasks.stdout and "smoke(2 seeds)" in tasks.stdout
    methods = cli_in_process("methods")
    assert methods.returncode == 0 and "muon" in methods.stdout and "grokking" in methods.stdout


def test_schema_is_json() -> None:
    schema = json.loads(cli_in_process("schema").stdout)
    assert "grokking" in json.dumps(schema)


# ------------------------------------------------------------------------------------------- bad input


def _spec_with(tmp_path: Path, old: str, new: str) -> Path:
    text = (ROOT / "tasks" / "grokking" / "add-mod97.yaml").read_text()
    assert old in text
    folder = tmp_path / "tasks"
    folder.mkdir(exist_ok=True)
    path = folder / "bad.yaml"
    path.write_text(text.replace(old, new, 1))
    return path


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ("  steps: 3000", "  steps: 5000\n  learning_rate: 3", "training.learning_rate: Extra inputs"),
        ("  steps: 3000", "  steps: -5", "training.steps"),
        ("family: grokking", "family: astrology", "astrology"),
    ],
)
def test_bad_spec_gets_one_line_per_problem_and_exit_1(tmp_path: Path, old: str, new: str, expected: str) -> None:
    result = cli_in_process("validate", str(_spec_with(tmp_path, old, new)))
    assert result.returncode == 1
    assert expected in result.stderr and "bad.yaml" in result.stderr and "fix:" in result.stderr
    assert "Traceback" not in result.stderr


def test_run_refuses_an_invalid_suite(tmp_path: Path) -> None:
    path = _spec_with(tmp_path, "  steps: 3000", "  steps: -5")
    result = cli_in_process("run", "--tasks-dir", str(path.parent), "--tier", "smoke", "--store", str(tmp_path / "s"))
    assert result.returncode == 2 and "training.steps" in result.stderr and "Traceback" not in result.stderr


def test_method_that_does_not_import(tmp_path: Path) -> None:
    result = cli_in_process(
        "run",
        "--task",
        "grokking/add-mod97",
        "--method",
        "no_such_pkg.mod:Thing",
        "--tier",
        "smoke",
        "--store",
        str(tmp_path),
    )
    assert result.returncode == 2 and "cannot import module 'no_such_pkg.mod'" in result.stderr


def test_unknown_method_and_task(tmp_path: Path) -> None:
    assert "unknown method 'nope'" in cli_in_process("run", "--method", "nope", "--store", str(tmp_path)).stderr
    assert "unknown task 'nope'" in cli_in_process("run", "--task", "nope", "--store", str(tmp_path)).stderr


def test_method_for_another_family(tmp_path: Path) -> None:
    module = tmp_path / "other_family_method.py"
    module.write_text(
        textwrap.dedent("""
        from phenomena_bench.core.method import Method

        class Elsewhere(Method):
            name = "elsewhere"
            family = "no-such-family"
    """)
    )
    result = cli(
        "run",
        "--task",
        "grokking/add-mod97",
        "--method",
        "other_family_method:Elsewhere",
        "--tier",
        "smoke",
        "--store",
        str(tmp_path / "s"),
        cwd=tmp_path,
        env={"PHENOMENA_BENCH_TASKS": str(ROOT / "tasks")},
    )
    assert result.returncode == 2 and "no-such-family" in result.stderr


def test_the_shipped_suite_is_found_from_any_folder(tmp_path: Path) -> None:
    result = cli("tasks", cwd=tmp_path, env={"PHENOMENA_BENCH_TASKS": ""})
    assert result.returncode == 0, result.stderr
    assert "grokking/add-mod97" in result.stdout and "hessian/digits-tanh-ce-init" in result.stdout


def test_lm_eval_style_options_an_included_task_folder_and_a_module_attr_method(tmp_path: Path) -> None:
    """`--tasks a,b`, `--methods x,y`, `--num-seeds`, `--output-path`, `--include-path` adding a spec, and a
    ``module:attr`` method from the current folder that runs without being installed: one command, 4 runs."""
    mine = tmp_path / "my-tasks" / "grokking"
    mine.mkdir(parents=True)
    text = (ROOT / "tasks" / "grokking" / "add-mod97.yaml").read_text()
    assert "id: grokking/add-mod97" in text
    (mine / "mine.yaml").write_text(text.replace("id: grokking/add-mod97", "id: mine/add-mod97", 1))
    (tmp_path / "my_sgd.py").write_text(
        textwrap.dedent("""
        import torch
        from phenomena_bench.families.grokking.api import GrokkingMethod

        class PlainSGD(GrokkingMethod):
            name = "plain-sgd"

            def configure(self, model, params, info):
                return torch.optim.SGD(params.values(), lr=0.1)
    """)
    )
    store = tmp_path / "out"
    result = cli(
        "run",
        "--tasks",
        "mine/add-mod97,grokking/add-mod97",
        "--methods",
        "adamw,my_sgd:PlainSGD",
        "--tier",
        "smoke",
        "--num-seeds",
        "1",
        "--output-path",
        str(store),
        "--include-path",
        str(tmp_path / "my-tasks"),
        "--quiet",
        "--format",
        "json",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)
    assert {(r["task_id"], r["method"]) for r in rows} == {
        (t, m) for t in ("mine/add-mod97", "grokking/add-mod97") for m in ("adamw", "plain-sgd")
    }
    assert all(r["seeds"] == 1 for r in rows)
    assert len(list((store / "runs").glob("*/*.json"))) == 4


def test_dev_runs_development_seeds_never_the_scoring_ones(smoke_store: Path, tmp_path: Path) -> None:
    """`--dev` (tuning, pilots) runs seeds DEV_SEED_BASE + 0..N-1: new runs, none of the scoring seeds' keys."""
    from phenomena_bench.core.seeds import DEV_SEED_BASE, is_dev_seed

    assert "development seeds" in cli_in_process("run", "--help").stdout
    store = tmp_path / "dev-store"
    args = ("run", "--task", "grokking/add-mod97", "--method", "adamw", "--tier", "smoke", "--store", str(store))
    result = cli(*args, "--seeds", "2", "--dev", "--quiet")
    assert result.returncode == 0, result.stderr
    seeds = sorted(json.loads(p.read_text())["seed"] for p in (store / "runs").glob("*/*.json"))
    assert seeds == [DEV_SEED_BASE, DEV_SEED_BASE + 1] and all(is_dev_seed(s) for s in seeds)
    scoring = {json.loads(p.read_text())["key"] for p in (smoke_store / "runs").glob("*/*.json")}
    dev_keys = {json.loads(p.read_text())["key"] for p in (store / "runs").glob("*/*.json")}
    assert not scoring & dev_keys


def test_listing_validating_and_schema_import_no_torch() -> None:
    """Reading specs needs only each family's spec.py: the commands that only read specs start in about a
    second instead of paying for torch, SciPy and scikit-learn."""
    code = (
        "import sys; from phenomena_bench.cli import main; main(['tasks']); main(['validate', 'tasks']); "
        "main(['schema']); print([m for m in ('torch', 'scipy', 'sklearn') if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip().endswith("[]"), out.stdout[-300:]
