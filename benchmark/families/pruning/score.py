"""How a pruning run is scored: masks checked exactly, each mask retrained and tested, the accuracy curve summarised.

Test accuracy is taken at the end of the fixed budget (never the best accuracy seen). A retrained network
whose pruned weights are not exactly zero is a harness bug and raises; one whose loss became non-finite
is reported as diverged by the caller.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from phenomena_bench.core.errors import MethodError
from phenomena_bench.families.pruning.api import TrainedState
from phenomena_bench.families.pruning.masks import prune_count
from phenomena_bench.families.pruning.spec import PruningTask
from phenomena_bench.families.pruning.train import Data, Trainer, TrainRequest


def validate_masks(masks: Any, shapes: Mapping[str, torch.Size], sparsity: float | None) -> dict[str, torch.Tensor]:
    """`masks` as boolean CPU copies, checked to name exactly the prunable tensors with their shapes and
    binary values and, when `sparsity` is given, to zero exactly the harness's count; a MethodError if not."""
    if not isinstance(masks, Mapping):
        raise MethodError(f"masks must be a mapping of prunable tensor name to mask, got {type(masks).__name__}")
    if set(masks) != set(shapes):
        raise MethodError(f"masks must name exactly the prunable tensors {sorted(shapes)}, got {sorted(masks)}")
    out = {}
    for name, shape in shapes.items():
        m = masks[name]
        if not isinstance(m, torch.Tensor):
            raise MethodError(f"mask {name!r} is a {type(m).__name__}, not a torch.Tensor")
        if tuple(m.shape) != tuple(shape):
            raise MethodError(f"mask {name!r} has shape {tuple(m.shape)}, expected {tuple(shape)}")
        if m.dtype != torch.bool:
            if not bool(((m == 0) | (m == 1)).all()):
                raise MethodError(f"mask {name!r} is not binary")
            m = m != 0
        out[name] = m.detach().cpu().clone()
    if sparsity is not None:
        total = sum(math.prod(s) for s in shapes.values())
        zeros = sum(int((~m).sum()) for m in out.values())
        want = prune_count(total, sparsity)
        if zeros != want:
            raise MethodError(
                f"mask for sparsity {sparsity} zeroes {zeros} of {total} prunable weights "
                f"({zeros / total:.4%}); the target is exactly {want} ({sparsity:.2%})"
            )
    return out


def auc_log_compression(sparsities: Sequence[float], accuracies: Sequence[float]) -> float:
    """Trapezoid of accuracy over log2(1/(1-s)), divided by the x-range: a mean accuracy over log-compression."""
    x = [math.log2(1.0 / (1.0 - s)) for s in sparsities]
    if len(x) == 1:
        return float(accuracies[0])
    area = sum((x[i + 1] - x[i]) * (accuracies[i + 1] + accuracies[i]) / 2 for i in range(len(x) - 1))
    return area / (x[-1] - x[0])


def collapsed_layers(masks: Mapping[str, torch.Tensor], num_classes: int) -> list[str]:
    """The prunable layers that keep fewer weights than the network's fan-out (`num_classes` outputs).

    A Linear layer that keeps k weights feeds at most k units of the next layer, so every path to the
    `num_classes` logits squeezes through k units: below the number of classes the layer is a bottleneck the
    task cannot pass (2 surviving weights of 65,536 is not a healthy layer; ``mask.any()`` said it was). The
    per-layer fan-out (a hidden layer's width) is not the threshold: uniform random masks keep 205 of
    MNIST-1D's 10,240 first-layer weights at 98 % (fewer than its 256 units) and still train to ~50 %.
    """
    return [n for n, m in masks.items() if int(m.sum()) < num_classes]


def input_output_connected(masks: Mapping[str, torch.Tensor], residual: bool) -> bool:
    """Whether some input reaches some output through kept weights (masks input side first; a layer that is
    not in `masks` is dense). With ``residual`` the hidden layers after the first also pass their input on
    (h = h + relu(W h)), so pruning one of them away does not cut the path."""
    names = list(masks)
    alive = torch.ones(masks[names[0]].shape[1], dtype=torch.bool)
    for i, n in enumerate(names):
        reached = (masks[n].to(torch.float32) @ alive.to(torch.float32)) > 0
        alive = reached | alive if residual and i > 0 and reached.shape == alive.shape else reached
        if not bool(alive.any()):
            return False
    return True


def receptive_field_spread(first_layer: torch.Tensor) -> float | None:
    """Mean over first-layer rows (hidden units) with ≥ 2 kept inputs of the standard deviation of their kept
    input positions: small when a unit reads a contiguous stretch of a 1-D signal (a local receptive field),
    ~ width/√12 when its inputs are scattered. None when no row keeps two inputs."""
    kept = first_layer.to(torch.float64)
    counts = kept.sum(dim=1)
    rows = counts >= 2
    if not bool(rows.any()):
        return None
    pos = torch.arange(kept.shape[1], dtype=torch.float64)
    mean = (kept * pos).sum(dim=1) / counts.clamp(min=1)
    var = (kept * (pos - mean[:, None]) ** 2).sum(dim=1) / counts.clamp(min=1)
    return float(var[rows].sqrt().mean())


@dataclass
class Evaluated:
    """One retrained mask: its test accuracy, per-layer densities, whether it diverged, and its collapse:
    the layers below the network's fan-out and whether an input-to-output path survives."""

    accuracy: float
    densities: dict[str, float]
    diverged: bool
    collapsed_layers: list[str] = field(default_factory=list)
    connected: bool = True

    @property
    def collapsed(self) -> bool:
        return bool(self.collapsed_layers) or not self.connected


def evaluate_mask(
    trainer: Trainer, test: Data, masks: Mapping[str, torch.Tensor], start: TrainedState, task: PruningTask
) -> Evaluated:
    """Retrain `masks` from `start` for the rest of the recipe and test it (diverged: accuracy NaN)."""
    return evaluate_masks(trainer, test, [(masks, start)], task)[0]


def evaluate_masks(
    trainer: Trainer,
    test: Data,
    items: Sequence[tuple[Mapping[str, torch.Tensor], TrainedState]],
    task: PruningTask,
) -> list[Evaluated]:
    """:func:`evaluate_mask` for every (masks, start) of `items`, retrained together as one stack: the
    masks of one run are independent, so training them as one program changes nothing but the cost."""
    requests = [TrainRequest(masks, start, task.training.steps - start.step) for masks, start in items]
    states = trainer.train_many(requests)
    return [_evaluated(trainer, test, masks, state, task) for (masks, _), state in zip(items, states, strict=True)]


def _evaluated(
    trainer: Trainer, test: Data, masks: Mapping[str, torch.Tensor], state: TrainedState, task: PruningTask
) -> Evaluated:
    """One retrained mask's test accuracy, densities and collapse; a RuntimeError if a pruned weight moved."""
    densities = {n: float(masks[n].float().mean()) for n in trainer.prunable}
    # Checked on the weights actually trained, not on the mask: a revived weight would show here.
    revived = [n for n in trainer.prunable if bool((state.weights[n][~masks[n]] != 0).any())]
    if revived:
        raise RuntimeError(f"pruned weights of {revived} are non-zero after training: mask enforcement failed")
    if state.diverged:
        return Evaluated(float("nan"), densities, True)
    collapsed = collapsed_layers({n: masks[n] for n in trainer.prunable}, test.num_classes)
    connected = input_output_connected({n: masks[n] for n in trainer.prunable}, task.model.kind == "residual_mlp")
    return Evaluated(trainer.accuracy(state, test), densities, False, collapsed, connected)


def whole_model_compression(weights: Mapping[str, torch.Tensor], masks: Mapping[str, torch.Tensor]) -> float:
    """ShrinkBench's size / size_nz over every parameter (biases and unpruned layers count as dense)."""
    size = sum(v.numel() for v in weights.values())
    pruned = sum(int((~m).sum()) for m in masks.values())
    return size / (size - pruned)
