"""The pruning family (accuracy at fixed sparsities against paired controls). A method's contract is :mod:`.api`.

Every name is imported on first use (PEP 562): the registry reads ``spec.py`` alone to parse task
specs, and importing this package must not cost torch until a name of it is used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from phenomena_bench.core.lazy import lazy_exports

if TYPE_CHECKING:
    from phenomena_bench.families.pruning.api import (
        NoHyperparameters,
        PruneResult,
        PruningContext,
        PruningMethod,
        SearchBudgetExceeded,
        TrainedState,
        layer_prune_counts,
        layerwise_masks_from_scores,
        masks_from_scores,
        prune_count,
        random_masks,
        shuffle_within_layers,
        sparsity_label,
    )
    from phenomena_bench.families.pruning.family import FAMILY

#: Each exported name → the submodule that defines it.
_SOURCES = {
    "NoHyperparameters": "api",
    "PruneResult": "api",
    "PruningContext": "api",
    "PruningMethod": "api",
    "SearchBudgetExceeded": "api",
    "TrainedState": "api",
    "layer_prune_counts": "api",
    "layerwise_masks_from_scores": "api",
    "masks_from_scores": "api",
    "prune_count": "api",
    "random_masks": "api",
    "shuffle_within_layers": "api",
    "sparsity_label": "api",
    "FAMILY": "family",
}

__all__ = [
    "FAMILY",
    "NoHyperparameters",
    "PruneResult",
    "PruningContext",
    "PruningMethod",
    "SearchBudgetExceeded",
    "TrainedState",
    "layer_prune_counts",
    "layerwise_masks_from_scores",
    "masks_from_scores",
    "prune_count",
    "random_masks",
    "shuffle_within_layers",
    "sparsity_label",
]

__getattr__ = lazy_exports(__name__, _SOURCES)
