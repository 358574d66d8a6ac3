"""Task-spec validation: every shipped spec is valid, and every kind of bad input is named with a fix."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from phenomena_bench.core.errors import SpecError
from phenomena_bench.registry import load_task, load_tasks, parse_task, task_json_schema

ROOT = Path(__file__).resolve().parents[1]
GROKKING_SPEC = ROOT / "tasks" / "grokking" / "add-mod97.yaml"


def _raw() -> dict[str, Any]:
    return yaml.safe_load(GROKKING_SPEC.read_text())


def _problems(data: Any, tmp_path: Path) -> str:
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(data) if not isinstance(data, str) else data)
    with pytest.raises(SpecError) as err:
        load_task(path)
    return str(err.value)


def test_every_shipped_spec_is_valid_at_every_tier() -> None:
    tasks = load_tasks(ROOT / "tasks")
    assert "grokking/add-mod97" in tasks
    for _, spec in tasks.values():
        for tier in ("smoke", "default", "full"):
            resolved = spec.resolve(tier)
            assert resolved.family == spec.family and not resolved.tiers


def test_tier_overrides_sizes_and_keeps_the_rest() -> None:
    spec = load_task(GROKKING_SPEC)
    smoke = spec.resolve("smoke")
    assert smoke.data.p == 23 and smoke.data.operation == "add"
    assert smoke.evaluation == spec.evaluation
    assert spec.resolve("default").data.p == 43


def test_unknown_key_names_file_field_and_allowed_keys(tmp_path: Path) -> None:
    raw = _raw()
    raw["training"]["stpes"] = 10
    message = _problems(raw, tmp_path)
    assert "spec.yaml" in message and "training.stpes" in message
    assert "remove it" in message and "steps" in message


def test_negative_budget_is_rejected_with_a_bound(tmp_path: Path) -> None:
    raw = _raw()
    raw["training"]["steps"] = -5
    message = _problems(raw, tmp_path)
    assert "training.steps" in message and ">= 1" in message


def test_unknown_family_lists_the_known_ones(tmp_path: Path) -> None:
    raw = _raw()
    raw["family"] = "alchemy"
    message = _problems(raw, tmp_path)
    assert "alchemy" in message and "grokking" in message


def test_tier_error_is_reported_under_the_tier(tmp_path: Path) -> None:
    raw = _raw()
    raw["tiers"]["smoke"]["data"]["p"] = 24  # not prime
    message = _problems(raw, tmp_path)
    assert "tiers.smoke" in message and "not prime" in message


def test_a_tier_cannot_override_the_protocol(tmp_path: Path) -> None:
    raw = _raw()
    raw["tiers"]["smoke"]["evaluation"] = {"target": 0.5}
    message = _problems(raw, tmp_path)
    assert "tiers.smoke.evaluation" in message and "remove it" in message


def test_missing_tier_is_an_error(tmp_path: Path) -> None:
    raw = _raw()
    del raw["tiers"]["full"]
    assert "missing tier(s) full" in _problems(raw, tmp_path)


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    raw = _raw()
    raw["seeds"] = 0
    raw["data"]["train_fraction"] = 1.5
    raw["bogus"] = True
    message = _problems(raw, tmp_path)
    assert "seeds" in message and "data.train_fraction" in message and "bogus" in message


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("", "file is empty"),
        ("- a\n- b\n", "not a mapping"),
        ("id: [unclosed\n", "invalid YAML"),
        ("just a string", "not a mapping"),
    ],
)
def test_malformed_files(tmp_path: Path, content: str, expected: str) -> None:
    assert expected in _problems(content, tmp_path)


def test_non_utf8_file(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_bytes(b"id: \xff\xfe\n")
    with pytest.raises(SpecError, match="not UTF-8"):
        load_task(path)


def test_json_schema_covers_the_family_sections() -> None:
    schema = task_json_schema()
    text = str(schema)
    assert "grokking" in text and "train_fraction" in text


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.dictionaries(
        st.sampled_from(["id", "family", "version", "seeds", "data", "training", "tiers", "title", "x"]),
        st.recursive(
            st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5),
            lambda kids: st.lists(kids, max_size=3) | st.dictionaries(st.text(max_size=5), kids, max_size=3),
            max_leaves=8,
        ),
    )
)
def test_loader_never_raises_anything_but_spec_error(data: dict[str, Any]) -> None:
    """Whatever mapping arrives, the loader either accepts it or explains it: never a crash."""
    try:
        parse_task(data, "fuzz.yaml")
    except SpecError as err:
        assert err.problems and all(isinstance(p, str) and p for p in err.problems)


@settings(max_examples=60, deadline=None)
@given(st.sampled_from(["seeds", "version"]), st.one_of(st.integers(), st.floats(allow_nan=True), st.text(max_size=4)))
def test_mutated_scalars_are_validated(field: str, value: Any) -> None:
    raw = _raw()
    raw[field] = value
    try:
        spec = parse_task(raw, "mut.yaml")
    except SpecError as err:
        assert any(p.startswith(field) for p in err.problems)
    else:
        assert getattr(spec, field) >= 1
