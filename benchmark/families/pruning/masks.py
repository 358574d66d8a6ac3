"""Mask arithmetic: exact prune counts, scores to masks by global or per-layer top-k, random and shuffled masks.

The harness uses these to check and build masks; a method may use them too (they are re-exported by
:mod:`.api`). A mask is a boolean tensor per prunable weight, True where the weight is kept.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import torch

from phenomena_bench.core.errors import MethodError
from phenomena_bench.core.seeds import derive_seed


def sparsity_label(sparsity: float) -> str:
    """'90' for 0.9, '99.5' for 0.995: the suffix of per-sparsity metric names."""
    return f"{sparsity * 100:.6g}"


def prune_count(total: int, sparsity: float) -> int:
    """How many of `total` weights a mask at `sparsity` zeroes: floor(s*N + 1/2), the harness's exact target."""
    return int(math.floor(sparsity * total + 0.5))


def layer_prune_counts(sizes: Sequence[int], sparsity: float) -> list[int]:
    """Per-layer prune counts as close to `sparsity` in every layer as possible, summing to the global target.

    Largest-remainder rounding (ties to the earlier layer) so that a layer-wise method still hits the
    exact global count the harness checks.
    """
    target = prune_count(sum(sizes), sparsity)
    exact = [sparsity * n for n in sizes]
    counts = [min(n, math.floor(e)) for n, e in zip(sizes, exact, strict=True)]
    order = sorted(range(len(sizes)), key=lambda i: (-(exact[i] - math.floor(exact[i])), i))
    short = target - sum(counts)
    for i in order * 2:
        if short <= 0:
            break
        if counts[i] < sizes[i]:
            counts[i] += 1
            short -= 1
    return counts


def _top_k_mask(flat_scores: torch.Tensor, keep: int) -> torch.Tensor:
    """Boolean mask keeping the `keep` highest scores; among equal scores the lower index is kept."""
    if torch.isnan(flat_scores).any():
        raise MethodError("pruning scores contain NaN")
    mask = torch.zeros(flat_scores.numel(), dtype=torch.bool, device=flat_scores.device)
    if keep > 0:
        order = torch.argsort(-flat_scores.double(), stable=True)
        mask[order[:keep]] = True
    return mask


def masks_from_scores(scores: Mapping[str, torch.Tensor], sparsity: float) -> dict[str, torch.Tensor]:
    """Global top-(1 - s) of the scores across all tensors (higher score = kept)."""
    names = list(scores)
    flat = torch.cat([scores[n].detach().reshape(-1).cpu() for n in names])
    keep = flat.numel() - prune_count(flat.numel(), sparsity)
    mask = _top_k_mask(flat, keep)
    out: dict[str, torch.Tensor] = {}
    offset = 0
    for n in names:
        size = scores[n].numel()
        out[n] = mask[offset : offset + size].reshape(scores[n].shape)
        offset += size
    return out


def layerwise_masks_from_scores(scores: Mapping[str, torch.Tensor], sparsity: float) -> dict[str, torch.Tensor]:
    """Top-(1 - s) of the scores within each tensor (every layer at the same sparsity, up to rounding)."""
    names = list(scores)
    counts = layer_prune_counts([scores[n].numel() for n in names], sparsity)
    return {
        n: _top_k_mask(scores[n].detach().reshape(-1).cpu(), scores[n].numel() - c).reshape(scores[n].shape)
        for n, c in zip(names, counts, strict=True)
    }


def random_masks(
    shapes: Mapping[str, torch.Size], sparsity: float, generator: torch.Generator
) -> dict[str, torch.Tensor]:
    """Uniformly random masks with the same sparsity in every layer (exact counts): the random floor."""
    counts = layer_prune_counts([math.prod(s) for s in shapes.values()], sparsity)
    out = {}
    for (name, shape), pruned in zip(shapes.items(), counts, strict=True):
        size = math.prod(shape)
        flat = torch.ones(size, dtype=torch.bool)
        flat[torch.randperm(size, generator=generator)[:pruned]] = False
        out[name] = flat.reshape(shape)
    return out


def shuffle_within_layers(masks: Mapping[str, torch.Tensor], generator: torch.Generator) -> dict[str, torch.Tensor]:
    """Each layer's mask permuted at random: same per-layer density, positions forgotten (MtM's control)."""
    out = {}
    for name, mask in masks.items():
        flat = mask.detach().reshape(-1).cpu()
        out[name] = flat[torch.randperm(flat.numel(), generator=generator)].reshape(mask.shape).clone()
    return out


def make_generator(seed: int, *labels: object) -> torch.Generator:
    """A CPU generator fixed by a run seed and labels (:func:`~phenomena_bench.core.seeds.derive_seed`)."""
    return torch.Generator().manual_seed(derive_seed(seed, *labels))
