"""Measurements: storage and reuse, isolation of a failing one, and the dropout-subnetworks measurement."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, ClassVar

import pytest
import torch

from phenomena_bench.core.curves import Curve
from phenomena_bench.core.measurement import (
    Measurement,
    MeasurementResult,
    MeasurementStore,
    MeasurementTable,
)
from phenomena_bench.core.spec import TaskSpec, resolve_tier
from phenomena_bench.families.pruning.dropout_subnetworks import (
    DropoutSubnetworks,
    hamming_neighbours,
    neighbour_smoothness,
    sample_masks,
    subnetwork_logits,
    subnetwork_scores,
)
from phenomena_bench.families.pruning.train import Data
from phenomena_bench.models.mlp import MLP
from phenomena_bench.registry import load_task, shipped_tasks_dir
from tests.helpers import cli_in_process

CALLS: list[str] = []


class _Counting(Measurement):
    id: ClassVar[str] = "pruning/counting"
    family: ClassVar[str] = "pruning"
    version: ClassVar[str] = "1"
    title: ClassVar[str] = "counts its calls"
    description: ClassVar[str] = "a test measurement"

    def measure(self, task: TaskSpec, cache_dir: Path, device: str) -> MeasurementResult:
        CALLS.append(task.id)
        table = MeasurementTable("t", ["a", "b"], [[1, 0.5], ["x", None]])
        curve = Curve([1.0, 2.0], [0.1, 0.2], "width")
        return MeasurementResult(self.id, self.version, self.family, task.id, "", [table], {"c": curve}, "ok", 0.0)


class _Broken(_Counting):
    id: ClassVar[str] = "pruning/broken"

    def measure(self, task: TaskSpec, cache_dir: Path, device: str) -> MeasurementResult:
        raise RuntimeError("deliberately broken\nsecond line")


def _fake_loader(family: str) -> list[tuple[str, Any]]:
    return [("tests:broken", _Broken), ("tests:counting", _Counting)]


def _measure(store: Path) -> Any:
    args = ["measure", "--task", "pruning/mnist1d-mlp", "--tier", "smoke", "--store", str(store), "--device", "cpu"]
    return cli_in_process(*args, "--cache-dir", str(store / "cache"))


def test_measure_stores_reuses_and_isolates_a_failure(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("phenomena_bench.registry.family_measurements", _fake_loader)
    CALLS.clear()
    first = _measure(tmp_path)
    assert first.returncode == 3  # one measurement failed
    failures = [line for line in first.stdout.splitlines() if "failed:" in line]
    assert failures == [
        "pruning/mnist1d-mlp [smoke] tests:broken: failed: RuntimeError: deliberately broken second line"
    ]
    assert CALLS == ["pruning/mnist1d-mlp"]  # the good one ran after the broken one
    results, problems = MeasurementStore(tmp_path).scan()
    assert problems == [] and [r.measurement for r in results] == ["pruning/counting"]
    stored = results[0]
    assert stored.tier == "smoke" and stored.curves["c"].x_label == "width" and stored.tables[0].rows[1] == ["x", None]
    assert (tmp_path / "measurements" / f"{stored.key}.json").is_file()

    second = _measure(tmp_path)
    assert CALLS == ["pruning/mnist1d-mlp"]  # reused: nothing computed the second time
    assert "1 reused" in second.stderr and "0 measurement(s) computed" in second.stderr


def test_corrupt_file_is_reported_and_skipped(tmp_path: Path) -> None:
    store = MeasurementStore(tmp_path)
    task = resolve_tier(load_task(shipped_tasks_dir() / "pruning" / "mnist1d-mlp.yaml"), "smoke")
    good = _Counting().measure(task, tmp_path, "cpu")
    key = "a" * 64
    store.put(MeasurementResult(**{**good.__dict__, "key": key, "tier": "smoke"}))
    bad = store.root / ("b" * 64 + ".json")
    bad.write_text("{not json", encoding="utf-8")
    results, problems = store.scan()
    assert [r.key for r in results] == [key]
    assert len(problems) == 1 and "unreadable measurement" in problems[0] and "\n" not in problems[0]
    assert store.get("b" * 64) is None  # recomputed, never served
    assert json.loads((store.root / f"{key}.json").read_text())["tables"][0]["rows"] == [[1, 0.5], ["x", None]]


def _tiny_mlp() -> tuple[MLP, dict[str, torch.Tensor]]:
    torch.manual_seed(3)
    model = MLP(5, [6, 5], 3)
    return model, {k: v.detach().clone() for k, v in model.state_dict().items()}


def test_batched_mask_scoring_equals_explicitly_masked_weights() -> None:
    model, weights = _tiny_mlp()
    p = 0.5
    masks = sample_masks(6, 11, p, torch.Generator().manual_seed(1))
    masks[0] = True  # the full mask too (scaled by 1/(1-p))
    x, y = 3 * torch.randn(20, 5), torch.randint(0, 3, (20,))
    logits = subnetwork_logits(weights, masks, p, x)
    scores = subnetwork_scores(weights, masks, p, Data(x, y, 3), Data(x, y, 3))
    for k in range(masks.shape[0]):
        m1, m2 = masks[k, :6].float(), masks[k, 6:].float()
        explicit = MLP(5, [6, 5], 3)
        w = dict(weights)  # a dropped unit's row is zeroed; a kept unit's outgoing weights scaled by 1/(1-p)
        w["fc1.weight"], w["fc1.bias"] = weights["fc1.weight"] * m1[:, None], weights["fc1.bias"] * m1
        w["fc2.weight"] = weights["fc2.weight"] * m2[:, None] * (m1 / (1 - p))[None, :]
        w["fc2.bias"] = weights["fc2.bias"] * m2
        w["fc3.weight"] = weights["fc3.weight"] * (m2 / (1 - p))[None, :]
        explicit.load_state_dict(w)
        with torch.no_grad():
            expected = explicit(x)
        torch.testing.assert_close(logits[k], expected, rtol=1e-5, atol=1e-5)
        assert float(scores.accuracy[k]) == pytest.approx(float((expected.argmax(1) == y).float().mean()))
    assert len({tuple(row.round(decimals=4).tolist()) for row in logits[:, 0]}) == masks.shape[0]  # masks matter


def test_neighbour_smoothness_on_hand_made_masks() -> None:
    masks = torch.tensor([[1, 1, 0], [0, 1, 1], [1, 0, 1]], dtype=torch.bool)
    nbrs = torch.tensor([[1, 0, 0], [0, 1, 0], [1, 1, 1]], dtype=torch.bool)
    acc, acc_nb = torch.tensor([0.5, 0.7, 0.2]), torch.tensor([0.4, 0.8, 0.5])
    assert neighbour_smoothness(masks, nbrs, acc, acc_nb) == pytest.approx((0.1 + 0.1 + 0.3) / 3)
    with pytest.raises(ValueError, match="exactly one unit"):
        neighbour_smoothness(masks, masks, acc, acc)
    flipped = hamming_neighbours(sample_masks(50, 9, 0.5, torch.Generator().manual_seed(0)), torch.Generator())
    assert flipped.shape == (50, 9)


def test_dropout_measurement_on_a_tiny_config(tmp_path: Path) -> None:
    """Digits' smoke tier (no MNIST-1D generation to pay for): the same code path on a tiny sweep."""
    task = resolve_tier(load_task(shipped_tasks_dir() / "pruning" / "digits-mlp.yaml"), "smoke")
    measurement = DropoutSubnetworks(width_factors=(0.25, 0.5), masks=40, neighbours=10, train_examples=64)
    result = measurement.measure(task, tmp_path, "cpu")
    good = result.tables[0]
    assert [row[0] for row in good.rows] == [8, 16]
    fractions = [v for row in good.rows for v in row[5:8]]
    assert all(isinstance(f, float) and 0.0 <= f <= 1.0 for f in fractions)
    assert all(a <= b for row in good.rows for a, b in zip(row[5:7], row[6:8], strict=True))  # looser = more
    smooth = result.tables[1]
    assert all(isinstance(row[1], float) and row[1] >= 0 for row in smooth.rows)
    assert set(result.curves) >= {"fraction of good subnetworks | within 10%"}
    assert list(tmp_path.glob("pruning/dense-*.pt"))  # the dropout networks are cached
    again = measurement.measure(task, tmp_path, "cpu")  # from the cache: the same networks, the same numbers
    assert again.tables == result.tables


def test_dropout_training_draws_masks_reproducibly(tmp_path: Path) -> None:
    from phenomena_bench.families.pruning.context import _setup

    task = resolve_tier(load_task(shipped_tasks_dir() / "pruning" / "digits-mlp.yaml"), "smoke")
    ctx, _ = _setup(task, 0, "cpu", tmp_path)
    plain = ctx._trainer.train(None, ctx.init_state, 20)
    dropped = [ctx._trainer.with_dropout(0.5).train(None, ctx.init_state, 20) for _ in range(2)]
    assert torch.equal(dropped[0].weights["fc2.weight"], dropped[1].weights["fc2.weight"])
    assert not torch.allclose(dropped[0].weights["fc2.weight"], plain.weights["fc2.weight"])


def test_task_page_shows_stored_measurements(tmp_path: Path) -> None:
    from phenomena_bench.report import site

    task = resolve_tier(load_task(shipped_tasks_dir() / "pruning" / "mnist1d-mlp.yaml"), "smoke")
    result = _Counting().measure(task, tmp_path, "cpu")
    curves = {"frac | 5%": Curve([1.0, 2.0], [0.1, 0.2], "width"), "frac | 10%": Curve([1.0, 2.0], [0.3, 0.4], "width")}
    shown = MeasurementResult(**{**result.__dict__, "key": "c" * 64, "tier": "smoke", "curves": curves})
    data = site.collect([], tasks_dir=shipped_tasks_dir(), families={}, method_descriptions={}, measurements=[shown])
    page = site.task_page(data.tasks["pruning/mnist1d-mlp"], data)
    assert 'id="measurements"' in page and "pruning/counting" in page and "<h4>t</h4>" in page
    assert page.count("<svg") == 1 and "frac vs width" in page  # two series of one plot
    other = site.task_page(data.tasks["pruning/digits-mlp"], data)
    assert 'id="measurements"' not in other  # only on the measured task's page
