"""Bad input of every kind gets one line naming what and where, a non-zero exit, and no traceback.

Through the real `main()` in this process (no runs start: every check happens before the first run), so
the many cases stay fast. The spec loader is also fuzzed with arbitrary bytes.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from phenomena_bench.cli import main
from phenomena_bench.core.errors import SpecError
from phenomena_bench.registry import load_task

ROOT = Path(__file__).resolve().parents[1]
FAULTS = ROOT / "tests" / "fault_methods"
SPEC = ROOT / "tasks" / "grokking" / "add-mod97.yaml"
RUN = ["run", "--task", "grokking/add-mod97", "--tier", "smoke", "--seeds", "1", "--device", "cpu", "--quiet"]


def one_line_error(argv: list[str], capsys: pytest.CaptureFixture[str], code: int = 2) -> str:
    assert main(argv) == code
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err
    assert err.startswith("error: ") and len(err.splitlines()) == 1, err
    return err


@pytest.fixture(autouse=True)
def _fault_methods_importable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(FAULTS))


@pytest.mark.parametrize(
    ("method", "hp", "expected"),
    [
        ("grokking_faults:NoSuchClass", [], "has no attribute 'NoSuchClass'"),
        ("grokking_faults:not_callable", [], "is a int, not a phenomena_bench Method"),
        ("grokking_faults:NotAMethod", [], "not a phenomena_bench Method"),
        ("no_such_module_xyz:Thing", [], "cannot import module 'no_such_module_xyz'"),
        ("grokking_faults:BadHyperparameters", ["--hp", "lr=-1"], "'fault-hp': invalid hyperparameters: lr: Input"),
        (
            "grokking_faults:BadHyperparameters",
            ["--hp", "momentum=0.9"],
            "unknown hyperparameter(s) momentum (allowed: lr)",
        ),
        ("grokking_faults:BadHyperparameters", ["--hp", "lr"], "--hp 'lr': write KEY=VALUE"),
        ("mil-none", [], "is for family 'mil_dropout'"),
    ],
)
def test_bad_method_is_named(
    method: str, hp: list[str], expected: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    err = one_line_error([*RUN, "--method", method, *hp, "--store", str(tmp_path)], capsys)
    assert expected in err and (method in err or "--hp" in err or "fault-hp" in err)
    assert not (tmp_path / "runs").exists()  # refused before any run started


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--seeds", "0"], "--seeds must be >= 1, not 0"),
        (["--workers", "0"], "--workers must be >= 1, not 0"),
        (["--device", "tpu"], "unknown device 'tpu'"),
        (["--suite", "nope"], "unknown suite 'nope'"),
    ],
)
def test_bad_arguments_are_named(
    args: list[str], expected: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert expected in one_line_error([*RUN, "--method", "adamw", "--store", str(tmp_path), *args], capsys)


def test_argparse_errors_exit_non_zero(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["run", "--tier", "huge"])
    assert exit_.value.code == 2 and "invalid choice: 'huge'" in capsys.readouterr().err


def test_store_that_is_a_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "store"
    path.write_text("not a folder")
    err = one_line_error(["show", "--store", str(path)], capsys)
    assert f"{path}: the results store must be a folder" in err


def test_debug_shows_the_traceback(tmp_path: Path) -> None:
    with pytest.raises(Exception, match="unknown device"):
        main(["--debug", *RUN, "--method", "adamw", "--store", str(tmp_path), "--device", "tpu"])


def _edited(old: bytes, new: bytes) -> bytes:
    """The shipped spec with `old` replaced by `new` once; `old` must be there, or the "broken" spec would be
    the valid one and the test would run the whole task instead of failing."""
    text = SPEC.read_bytes()
    assert old in text, f"{old!r} is no longer in {SPEC.name}: update the test"
    return text.replace(old, new, 1)


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"", "file is empty"),
        (b"- just\n- a list\n", "not a mapping"),
        (b"id: \xff\xfe\n", "not UTF-8"),
        (_edited(b"\nseeds: 6\n", b"\nseeds: 99999999999999999999999999999\n"), "seeds"),
        (_edited(b"\ntime_limit_s: 1800\n", b"\ntime_limit_s: 1e999\n"), "time_limit_s"),
        (_edited(b"\n  p: 43\n", b"\n  p: ninety-seven\n"), "data.p"),
        (_edited(b"\nfamily: grokking\n", b"\nfamily: pruning\n"), "data"),
    ],
)
def test_bad_spec_file_in_a_run(
    content: bytes, expected: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    tasks = tmp_path / "tasks"
    tasks.mkdir()
    (tasks / "broken.yaml").write_bytes(content)
    assert main(["run", "--tasks-dir", str(tasks), "--store", str(tmp_path / "s"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and "broken.yaml" in err and expected in err, err
    assert all(line.startswith(("error: ", str(tasks))) for line in err.strip().splitlines())


@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture]
)
@given(
    st.one_of(
        st.binary(max_size=200),
        st.text(max_size=200).map(lambda t: t.encode("utf-8")),
        st.sampled_from(SPEC.read_text().splitlines()).flatmap(
            lambda line: st.text(max_size=12).map(lambda junk: SPEC.read_text().replace(line, line + junk, 1).encode())
        ),
    )
)
def test_loader_on_arbitrary_bytes(tmp_path: Path, content: bytes) -> None:
    """Whatever bytes a spec file holds, the loader accepts them or raises SpecError with named problems."""
    path = tmp_path / "fuzz.yaml"
    path.write_bytes(content)
    try:
        spec = load_task(path)
    except SpecError as err:
        assert err.problems and all(isinstance(p, str) and p.strip() for p in err.problems)
    else:
        assert spec.family == "grokking" and isinstance(yaml.safe_load(content), dict)
