"""Run keys: equal content gives equal keys, any change to what determines a result changes the key."""

from __future__ import annotations

from pathlib import Path

import yaml

from benchmark.registry import resolve_method
from benchmark.runner import run_key
from benchmark.spec import parse_task

SPEC = Path(__file__).resolve().parents[1] / "tasks" / "grokking" / "add-mod97.yaml"


def _key(raw: dict, seed: int = 0, **hp: float) -> str:
    return run_key(parse_task(raw, "k.yaml").resolve("smoke"), resolve_method("adamw", hp), seed)


def test_reordering_yaml_keys_keeps_the_key() -> None:
    raw = yaml.safe_load(SPEC.read_text())
    reordered = dict(reversed(list(raw.items())))
    reordered["data"] = dict(reversed(list(raw["data"].items())))
    assert _key(raw) == _key(reordered)


def test_comments_and_prose_do_not_change_the_key() -> None:
    raw = yaml.safe_load(SPEC.read_text())
    base = _key(raw)
    raw["description"] = "a different description"
    raw["title"] = "another title"
    assert _key(raw) == base


def test_spec_hyperparameter_and_seed_changes_change_the_key() -> None:
    raw = yaml.safe_load(SPEC.read_text())
    base = _key(raw)
    assert _key(raw, seed=1) != base
    assert _key(raw, lr=2e-3) != base
    changed = yaml.safe_load(SPEC.read_text())
    changed["tiers"]["smoke"]["training"]["steps"] = 301
    assert _key(changed) != base
    other_tier_only = yaml.safe_load(SPEC.read_text())
    other_tier_only["tiers"]["full"]["training"]["steps"] = 123
    assert _key(other_tier_only) == base  # the smoke run does not depend on the full tier


def test_default_hyperparameters_are_part_of_the_key() -> None:
    method = resolve_method("adamw")
    assert method.identity()["hyperparameters"]["weight_decay"] == 1.0
    assert resolve_method("adamw", {"weight_decay": 1.0}).identity() == method.identity()
