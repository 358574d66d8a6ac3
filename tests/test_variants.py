"""Held-out variants: deterministic draws from a salt, valid specs with their own keys, one-line errors, and a
smoke run through the CLI that stores the salt and shows the public and held-out scores side by side."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from phenomena_bench.analysis.rows import aggregate
from phenomena_bench.analysis.variants import heldout_rows
from phenomena_bench.core.errors import SpecError
from phenomena_bench.core.hashing import content_key
from phenomena_bench.core.spec import TaskSpec, read_yaml_mapping
from phenomena_bench.core.variants import PUBLIC_SALT, draw_variants
from phenomena_bench.registry import parse_task
from phenomena_bench.store import RunRecord, Store
from tests.helpers import ROOT, cli_in_process, grokking_record

DEFAULT_SUITE_WITH_VARIANTS = (
    "grokking/add-mod97",
    "pruning/mnist1d-mlp",
    "mil_dropout/digits-bags-150",
    "hessian/digits-tanh-ce-init",
    "hessian/digits-tanh-ce-trained",
    "hessian/digits-tanh-mse-eos",
)


def _raw(task_id: str) -> dict[str, Any]:
    family, name = task_id.split("/")
    return read_yaml_mapping(ROOT / "tasks" / family / f"{name}.yaml")


def _task(task_id: str) -> TaskSpec:
    return parse_task(_raw(task_id), task_id)


def _signature(variants: list[TaskSpec]) -> list[tuple[str, dict[str, Any]]]:
    return [(v.id, v.data.model_dump(mode="json")) for v in variants]  # type: ignore[attr-defined]


@pytest.mark.parametrize("task_id", DEFAULT_SUITE_WITH_VARIANTS)
def test_the_same_salt_draws_the_same_variants_and_another_salt_others(task_id: str) -> None:
    spec = _task(task_id).resolve("default")
    first = draw_variants(spec, 3, "salt-a")
    assert len(first) == 3
    assert _signature(first) == _signature(draw_variants(_task(task_id).resolve("default"), 3, "salt-a"))
    assert _signature(first) != _signature(draw_variants(spec, 3, "salt-b"))
    # A longer draw extends a shorter one: --variants 3 reuses the runs of --variants 2.
    assert _signature(draw_variants(spec, 2, "salt-a")) == _signature(first[:2])


def test_a_variant_is_a_valid_spec_that_differs_from_the_public_task_and_has_its_own_key() -> None:
    spec = _task("grokking/add-mod97").resolve("default")
    variants = draw_variants(spec, 4, PUBLIC_SALT)
    payloads = {str(v.key_payload()) for v in variants}
    assert len(payloads) == 4 and str(spec.key_payload()) not in payloads
    for v in variants:
        assert type(v).model_validate(v.model_dump(mode="json")) == v  # valid for the family's own model
        assert v.id.startswith("grokking/add-mod97@v") and v.variants is None and not v.tiers
        assert v.variant_of is not None and v.variant_of.of == spec.id and v.variant_of.salt == PUBLIC_SALT
        assert (v.data.p, v.data.operation) != (spec.data.p, spec.data.operation)  # type: ignore[attr-defined]
        assert v.data.p in (37, 41, 43, 47) and v.data.operation in ("add", "sub")  # type: ignore[attr-defined]
        assert v.model == spec.model and v.training == spec.training and v.evaluation == spec.evaluation  # type: ignore[attr-defined]
    assert [v.variant_of.index for v in variants if v.variant_of] == [0, 1, 2, 3]


def test_the_declaration_is_not_part_of_the_public_run_key() -> None:
    raw = _raw("pruning/mnist1d-mlp")
    without = copy.deepcopy(raw)
    del without["variants"]
    assert "variants" not in _task("pruning/mnist1d-mlp").resolve("default").key_payload()
    assert (
        parse_task(raw, "a").resolve("default").key_payload()
        == parse_task(without, "b").resolve("default").key_payload()
    )


def test_a_tier_draws_from_its_own_distribution_and_a_small_one_runs_out_without_repeats() -> None:
    smoke = _task("grokking/add-mod97").resolve("smoke")  # primes 17..29, add or sub: 8 tasks, one public
    variants = draw_variants(smoke, 20, "s")
    combos = [(v.data.p, v.data.operation) for v in variants]  # type: ignore[attr-defined]
    assert len(combos) == 7 == len(set(combos)) and (23, "add") not in combos
    assert all(p in (17, 19, 23, 29) for p, _ in combos)
    undeclared = _raw("grokking/add-mod97")
    del undeclared["variants"], undeclared["tiers"]["smoke"]["variants"], undeclared["tiers"]["full"]["variants"]
    assert draw_variants(parse_task(undeclared, "x").resolve("smoke"), 3, "s") == []


@pytest.mark.parametrize(
    ("task_id", "variants", "expected"),
    [
        ("grokking/add-mod97", {"p": {"range": [50, 40]}}, "range [50, 40] is empty"),
        ("grokking/add-mod97", {"p": {"choices": [45]}}, "variants.p: 45 is not a valid data.p (p = 45 is not prime"),
        ("grokking/add-mod97", {"p": {"choices": [43]}}, "every value equals the task's own"),
        ("grokking/add-mod97", {"modulus": {"choices": [41]}}, "variants.modulus: Extra inputs are not permitted"),
        ("grokking/add-mod97", {}, "declare at least one axis"),
        ("mil_dropout/digits-bags-150", {"target_digit": {"range": [5, 12]}}, "12 is not a valid data.target_digit"),
        ("pruning/digits-mlp", {"generator_seed": {"range": [0, 9]}}, "only MNIST-1D has a generator seed"),
        ("mil_dropout/musk1", {"target_digit": {"choices": [1]}}, "data has no field 'target_digit'"),
    ],
)
def test_a_bad_variants_section_is_one_clear_line(task_id: str, variants: dict[str, Any], expected: str) -> None:
    raw = _raw(task_id)
    raw["variants"] = variants
    with pytest.raises(SpecError) as err:
        parse_task(raw, "spec.yaml")
    assert len(err.value.problems) == 1 and "\n" not in err.value.problems[0]
    assert expected in err.value.problems[0]


def test_a_bad_tier_distribution_names_the_tier() -> None:
    raw = _raw("grokking/add-mod97")
    raw["tiers"]["smoke"]["variants"] = {"p": {"choices": [4]}}
    with pytest.raises(SpecError) as err:
        parse_task(raw, "spec.yaml")
    assert len(err.value.problems) == 1 and err.value.problems[0].startswith("tiers.smoke")


def test_a_smoke_run_with_variants_stores_the_salt_and_shows_both_scores(tmp_path: Path) -> None:
    """The cheapest smoke task (one Hessian checkpoint at init, 1 seed), its reference only: 3 runs in-process."""
    args = ["run", "--task", "hessian/digits-tanh-ce-init", "--tier", "smoke", "--method", "hessian-lanczos"]
    where = ["--store", str(tmp_path / "s"), "--cache-dir", str(tmp_path / "c"), "--executor", "local", "--quiet"]
    result = cli_in_process(*args, "--variants", "2", "--variant-salt", "s", *where)
    assert result.returncode == 0, result.stderr
    records = Store(tmp_path / "s").records()
    variant_records = sorted((r for r in records if r.variant is not None), key=lambda r: r.variant.index)  # type: ignore[union-attr]
    public = [r for r in records if r.variant is None]
    assert len(public) == 1 and len(variant_records) == 2
    for index, r in enumerate(variant_records):
        assert r.variant is not None and (r.variant.of, r.variant.salt, r.variant.index) == (
            public[0].task_id,
            "s",
            index,
        )
        assert r.task_id.startswith("hessian/digits-tanh-ce-init@v") and r.key != public[0].key
        assert r.task["data"]["split_seed"] == r.variant.changes["data"]["split_seed"] != 0
    assert public[0].task["data"]["split_seed"] == 0
    out = result.stdout
    assert "held-out variants drawn with salt 's'" in out and "public task" in out and "gap" in out
    assert "@v" not in out.split("held-out variants drawn")[0]  # no results table of a variant's own
    assert all(r.variant.describe() in out for r in variant_records if r.variant)  # which variants, said


def _record(seed: int, steps: int | None, variant: dict[str, Any] | None = None) -> RunRecord:
    """A grokking record of adamw at `seed`: held at `steps`, or failed (None); a variant's when `variant`."""
    base = grokking_record(key=content_key([seed, steps, variant]), steps=steps or 0, error=None if steps else "x")
    task = {**base.task, "id": base.task_id, "variant_of": variant}
    task_id = f"{base.task_id}@v{content_key(variant)[:8]}" if variant else base.task_id
    return RunRecord.model_validate({**base.model_dump(), "seed": seed, "task": task, "task_id": task_id})


def test_held_out_scores_pool_every_variant_seed_with_the_public_rule_and_never_mix_salts() -> None:
    """Public median 100; salt a: variants at 200/300 and 250/failed (not reached, censored at the 300-step
    budget) -> pooled median 275, gap +175; salt b is its own row."""
    origin = {"of": "grokking/add-mod97", "index": 0, "changes": {"data": {"p": 29}}}
    other = {**origin, "index": 1, "changes": {"data": {"p": 17}}}
    records = [_record(0, 100), _record(1, 100)]
    records += [_record(0, 200, {**origin, "salt": "a"}), _record(1, 300, {**origin, "salt": "a"})]
    records += [_record(0, 250, {**other, "salt": "a"}), _record(1, None, {**other, "salt": "a"})]
    records += [_record(0, 120, {**origin, "salt": "b"})]
    assert all(r.variant is not None for r in records[2:])
    assert [r.task_id for r in aggregate(records)] == ["grokking/add-mod97"]  # variants form no table
    rows = {r.salt: r for r in heldout_rows(records)}
    assert set(rows) == {"a", "b"}
    a = rows["a"]
    assert (a.public_value, a.runs, len(a.variants)) == (100, 4, 2)
    assert a.heldout.censored == 1 and a.heldout_value == 275 and a.gap == 175
    assert list(a.per_variant.values()) == [250, 275]  # in draw order: index 0, then 1
    assert (rows["b"].runs, rows["b"].heldout_value) == (1, 120)
