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
from phenomena_bench.families.pruning.train import Data, Trainer


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


@dataclass
class Evaluated:
    """One retrained mask: its test accuracy, per-layer densities, and whether it diverged or emptied a layer."""

    accuracy: float
    densities: dict[str, float]
    diverged: bool
    collapsed_layers: list[str] = field(default_factory=list)


def evaluate_mask(
    trainer: Trainer, test: Data, masks: Mapping[str, torch.Tensor], start: TrainedState, task: PruningTask
) -> Evaluated:
    """Retrain `masks` from `start` for the rest of the recipe and test it (diverged: accuracy NaN)."""
    state = trainer.train(masks, start, task.training.steps - start.step)
    densities = {n: float(masks[n].float().mean()) for n in trainer.prunable}
    # Checked on the weights actually trained, not on the mask: a revived weight would show here.
    revived = [n for n in trainer.prunable if bool((state.weights[n][~masks[n]] != 0).any())]
    if revived:
        raise RuntimeError(f"pruned weights of {revived} are non-zero after training: mask enforcement failed")
    if state.diverged:
        return Evaluated(float("nan"), densities, True)
    collapsed = [n for n in trainer.prunable if not bool(masks[n].any())]
    return Evaluated(trainer.accuracy(state, test), densities, False, collapsed)


def whole_model_compression(weights: Mapping[str, torch.Tensor], masks: Mapping[str, torch.Tensor]) -> float:
    """ShrinkBench's size / size_nz over every parameter (biases and unpruned layers count as dense)."""
    size = sum(v.numel() for v in weights.values())
    pruned = sum(int((~m).sum()) for m in masks.values())
    return size / (size - pruned)
