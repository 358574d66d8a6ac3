"""Submissions: the manifest is strict, the entry point is imported in a fresh process, the smoke tier runs."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from phenomena_bench.core.errors import SpecError
from phenomena_bench.submission import load_manifest
from tests.test_cli import cli

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "submissions" / "example-lion"


@pytest.fixture
def one_task(tmp_path: Path) -> Path:
    tasks = tmp_path / "tasks" / "grokking"
    tasks.mkdir(parents=True)
    shutil.copy(ROOT / "tasks" / "grokking" / "add-mod97.yaml", tasks)
    return tmp_path / "tasks"


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
    ],
)
def test_bad_manifests_name_the_field(tmp_path: Path, change: dict, expected: str) -> None:
    with pytest.raises(SpecError, match=expected):
        load_manifest(_copy_example(tmp_path, **change))


def test_check_submission_runs_the_smoke_tier(tmp_path: Path, one_task: Path) -> None:
    result = cli("check-submission", str(_copy_example(tmp_path)), "--tasks-dir", str(one_task), "--quiet")
    assert result.returncode == 0, result.stderr
    assert "entry point ok: lion" in result.stdout and "passed the smoke tier on 1 task" in result.stdout


def test_check_submission_reports_an_entry_point_that_does_not_import(tmp_path: Path, one_task: Path) -> None:
    folder = _copy_example(tmp_path, entry_point="phenomena_example_lion:Missing")
    result = cli("check-submission", str(folder), "--tasks-dir", str(one_task), "--quiet")
    assert result.returncode == 2 and "has no attribute 'Missing'" in result.stderr


def test_check_submission_refuses_a_family_mismatch(tmp_path: Path, one_task: Path) -> None:
    folder = _copy_example(tmp_path, families=["pruning"])
    result = cli("check-submission", str(folder), "--tasks-dir", str(one_task), "--quiet")
    assert result.returncode == 2 and "is a grokking method" in result.stderr
