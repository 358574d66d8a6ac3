"""The pruning family (accuracy at fixed sparsities against paired controls). A method's contract is :mod:`.api`."""

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
