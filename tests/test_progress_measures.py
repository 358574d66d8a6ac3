"""Golechha's progress measures: each on hand-made tensors against a value worked out by hand, and as curves in
grokking records (through the CLI), equal batched and alone."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
import torch

from phenomena_bench.core.progress_measures import (
    ActivationRecorder,
    ProgressMeasures,
    SplitMeasures,
    ablation_masks,
    absolute_weight_entropy,
    activation_sparsity,
    local_circuit_complexity,
    progress_measures,
    weight_norm,
    weights_of,
)
from phenomena_bench.store import Store
from tests.helpers import cli_in_process


def test_activation_sparsity_counts_entries_strictly_below_the_threshold() -> None:
    # Layer 1: 0 and 0.05 (example 1), 0.09 and 0 (example 2) are below 0.1; 0.1 itself is active: 4 of 8.
    layer1 = torch.tensor([[0.0, 0.05, 0.2, 1.0], [0.1, 0.09, 3.0, 0.0]])
    assert activation_sparsity([layer1], threshold=0.1) == 0.5
    # Pooled with a second layer over the same examples: 3 of its 4 entries are below, (4 + 3) / 12.
    layer2 = torch.tensor([[0.0, 0.0], [0.0, 1.0]])
    assert activation_sparsity([layer1, layer2], threshold=0.1) == pytest.approx(7 / 12)
    assert activation_sparsity([layer1], threshold=0.0) == 0.0  # ReLU outputs are never below 0
    with pytest.raises(ValueError):
        activation_sparsity([])


def test_absolute_weight_entropy_is_minus_the_sum_of_abs_w_log_abs_w() -> None:
    # -(0.5 ln 0.5) twice = ln 2; 1/e contributes 1/e; 0 and 1 contribute 0; 2 contributes -2 ln 2.
    weights = [torch.tensor([0.5, -0.5, 0.0]), torch.tensor([[1.0, math.exp(-1.0)], [-2.0, 0.0]])]
    expected = math.log(2) + math.exp(-1.0) - 2 * math.log(2)
    assert absolute_weight_entropy(weights) == pytest.approx(expected, rel=1e-12)
    assert absolute_weight_entropy([torch.zeros(5)]) == 0.0  # 0 log 0 = 0, not NaN


def test_weight_norm_is_the_l2_norm_of_all_weights_together() -> None:
    assert weight_norm([torch.tensor([3.0, -4.0]), torch.tensor([[12.0]])]) == pytest.approx(13.0)


def _linear(weight: list[list[float]]) -> torch.nn.Linear:
    model = torch.nn.Linear(2, 2, bias=False)
    with torch.no_grad():
        model.weight.copy_(torch.tensor(weight))
    return model


def test_local_circuit_complexity_of_a_known_ablation() -> None:
    """Logits x @ W^T with W = [[ln 3, 0], [0, 0]]: on x = (1, 0) the output is softmax(ln 3, 0) = (3/4, 1/4);
    zeroing W[0, 0] makes it (1/2, 1/2), a KL divergence of 3/4 ln(3/2) + 1/4 ln(1/2); x = (0, 1) gives
    logits (0, 0) either way, adding nothing."""
    model = _linear([[math.log(3), 0.0], [0.0, 0.0]])
    inputs = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    masks = {"weight": torch.tensor([[0.0, 1.0], [1.0, 1.0]])}
    expected = 0.75 * math.log(1.5) + 0.25 * math.log(0.5)
    assert local_circuit_complexity(model, inputs, masks) == pytest.approx(expected, rel=1e-6)  # W is float32
    assert model.weight[0, 0].item() == pytest.approx(math.log(3))  # the model itself is never modified
    assert local_circuit_complexity(model, inputs, {"weight": torch.ones(2, 2)}) == 0.0  # nothing ablated
    # The same through the accumulator, split in two chunks: sums over examples add up.
    sums = SplitMeasures()
    for row in range(2):
        x = inputs[row : row + 1]
        ablated = torch.func.functional_call(model, {"weight": model.weight * masks["weight"]}, (x,))
        sums.add(model(x), ablated, [x])
    assert sums.divergence == pytest.approx(expected, rel=1e-6)  # W is float32


def test_ablation_masks_zero_about_the_fraction_reproducibly_and_in_any_name_order() -> None:
    weights = {"b": torch.zeros(300, 300), "a": torch.zeros(4, 5)}
    first = ablation_masks(weights, torch.Generator().manual_seed(7))
    again = ablation_masks(dict(reversed(list(weights.items()))), torch.Generator().manual_seed(7))
    other = ablation_masks(weights, torch.Generator().manual_seed(8))
    assert all(torch.equal(first[n], again[n]) for n in weights)
    assert not torch.equal(first["b"], other["b"])
    zeroed = 1 - first["b"].mean().item()
    assert 0.095 < zeroed < 0.105  # 90,000 independent draws of p = 0.1: sd 0.001
    assert set(first["b"].unique().tolist()) == {0.0, 1.0}


class _TwoReLUs(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.first, self.act, self.second = torch.nn.Linear(3, 4), torch.nn.ReLU(), torch.nn.Linear(4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.second(self.act(self.first(x))).relu()


def test_the_recorder_sees_each_relu_once_however_it_is_spelled() -> None:
    torch.manual_seed(0)
    model, x = _TwoReLUs(), torch.randn(5, 3)
    with ActivationRecorder() as recorder:
        out = model(x)
    assert [tuple(a.shape) for a in recorder.activations] == [(5, 4), (5, 2)]
    assert torch.equal(recorder.activations[1], out)
    assert set(weights_of(model)) == {"first.weight", "second.weight"}  # biases are not "the weights"


def test_progress_measures_combine_the_four_definitions() -> None:
    torch.manual_seed(0)
    model, x = _TwoReLUs(), torch.randn(64, 3)
    masks = ablation_masks(weights_of(model), torch.Generator().manual_seed(1))
    measured = progress_measures(model, x, masks)
    with ActivationRecorder() as recorder:
        model(x)
    weights = [model.first.weight, model.second.weight]
    expected = ProgressMeasures(
        activation_sparsity=activation_sparsity(recorder.activations),
        weight_entropy=absolute_weight_entropy(weights),
        circuit_complexity=local_circuit_complexity(model, x, masks),
        weight_norm=weight_norm(weights),
    )
    assert measured.as_dict() == pytest.approx(expected.as_dict(), rel=1e-12)
    assert 0 < measured.activation_sparsity < 1 and measured.circuit_complexity > 0


PROGRESS = ProgressMeasures.NAMES


def _smoke_records(store: Path, batch: str) -> dict[int, dict[str, Any]]:
    args = ("run", "--task", "grokking/add-mod97", "--method", "adamw", "--tier", "smoke", "--seeds", "2")
    done = cli_in_process(*args, "--device", "cpu", "--executor", "local", "--quiet", "--store", str(store),
                          "--batch-seeds", batch)  # fmt: skip
    assert done.returncode == 0, done.stderr
    records, corrupt = Store(store).scan()
    assert not corrupt
    return {r.seed: r.model_dump(mode="json") for r in records}


def test_grokking_records_carry_the_four_curves_equal_batched_and_alone(tmp_path: Path) -> None:
    """Smoke tier (300 steps, an evaluation every 10: 31 points, under the downsampling cap): every record has
    the four curves at every evaluation. Batched, the first point (the initialisation, step 0) is the same
    number as alone to float rounding, and the later points stay within training's own float drift between
    the two paths (the test of batching already allows 0.01 of held-out accuracy)."""
    batched, alone = _smoke_records(tmp_path / "batched", "on"), _smoke_records(tmp_path / "alone", "off")
    assert sorted(batched) == sorted(alone) == [0, 1]
    for seed in (0, 1):
        together, single = batched[seed]["curves"], alone[seed]["curves"]
        evaluations = together["train_acc"]["x"]
        assert len(evaluations) == 31
        for name in PROGRESS:
            assert together[name]["x"] == single[name]["x"] == evaluations, name
            a, b = together[name]["y"], single[name]["y"]
            assert all(math.isfinite(v) for v in a + b)
            assert a[0] == pytest.approx(b[0], rel=1e-9), name
            assert a == pytest.approx(b, rel=0.02, abs=0.01), name
        sparsity = together["activation_sparsity"]["y"]
        assert all(0 < v < 1 for v in sparsity)
        assert together["weight_norm"]["y"][-1] != together["weight_norm"]["y"][0]  # it tracks training
