"""Submissions: the manifest is strict, the entry point is imported in a fresh process, the smoke tier runs."""

from __future__ import annotations

import shutil
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from phenomena_bench.cli import main
from phenomena_bench.cli.options import EXIT_USER_ERROR
from phenomena_bench.core.errors import SpecError
from phenomena_bench.submission import load_manifest

ROOT = Path(__file__).resolve().parents[1]
Checker = Callable[..., tuple[int, str, str]]
EXAMPLE = ROOT / "submissions" / "example-lion"


@pytest.fixture
def one_task(tmp_path: Path) -> Path:
    tasks = tmp_path / "tasks" / "grokking"
    tasks.mkdir(parents=True)
    shutil.copy(ROOT / "tasks" / "grokking" / "add-mod97.yaml", tasks)
    return tmp_path / "tasks"


@pytest.fixture
def check(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Checker:
    """`check-submission ARGS` in this process (its path changes undone afterwards): (exit code, out, err)."""
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.setenv("PYTHONPATH", "")

    def run(*args: str) -> tuple[int, str, str]:
        code = main(["check-submission", *args, "--quiet"])
        out, err = capsys.readouterr()
        return code, out, err

    return run


def _copy_example(tmp_path: Path, **changes: object) -> Path:
    folder = tmp_path / "sub"
    shutil.copytree(EXAMPLE, folder)
    manifest = yaml.safe_load((folder / "submission.yaml").read_text())
    manifest.update(changes)
    (folder / "submission.yaml").write_text(yaml.safe_dump(manifest))
    return folder


def test_example_manifest_is_valid() -> None:
    manifest = load_manifest(EXAMPLE)
    assert manifest.entry_point == "phenomena_example_lion:Lion" and manifest.families == ["grokking"]


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"homepage": "x"}, "homepage"),
        ({"contact": "not-an-email"}, "contact"),
        ({"families": ["astrology"]}, "unknown family astrology"),
        ({"entry_point": "no colon"}, "entry_point"),
        ({"paper": "ftp://example.org/p.pdf"}, "paper"),
        ({"pip": "phenomena-example-lion==0.1.0"}, "set exactly one of pip and local_package"),
    ],
)
def test_bad_manifests_name_the_field(tmp_path: Path, change: dict, expected: str) -> None:
    with pytest.raises(SpecError, match=expected):
        load_manifest(_copy_example(tmp_path, **change))


def test_check_submission_runs_the_smoke_tier(tmp_path: Path, one_task: Path, check: Checker) -> None:
    code, out, err = check(str(_copy_example(tmp_path)), "--tasks-dir", str(one_task), "--executor", "local")
    assert code == 0, err
    assert "entry point ok: lion" in out and "passed the smoke tier on 1 task" in out


def test_check_submission_reports_an_entry_point_that_does_not_import(
    tmp_path: Path, one_task: Path, check: Checker
) -> None:
    folder = _copy_example(tmp_path, entry_point="phenomena_example_lion:Missing")
    code, _, err = check(str(folder), "--tasks-dir", str(one_task))
    assert code == EXIT_USER_ERROR
    assert err.splitlines() == [
        "error: method 'phenomena_example_lion:Missing': module 'phenomena_example_lion' has no attribute 'Missing'"
    ]  # one line, once


def test_check_submission_refuses_a_family_mismatch(tmp_path: Path, one_task: Path, check: Checker) -> None:
    folder = _copy_example(tmp_path, families=["pruning"])
    code, _, err = check(str(folder), "--tasks-dir", str(one_task))
    assert code == EXIT_USER_ERROR and "is a grokking method" in err
