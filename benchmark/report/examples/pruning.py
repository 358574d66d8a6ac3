"""A minimal pruning method: keep the weights largest in magnitude at initialisation (no training spent)."""

from __future__ import annotations

from phenomena_bench.families.pruning.api import NoHyperparameters, PruneResult, PruningContext, PruningMethod


class MagnitudeAtInit(PruningMethod[NoHyperparameters]):
    name = "example-magnitude-at-init"
    version = "1"
    description = "Scores every prunable weight by |theta_0|; the harness keeps the global top-k."

    def prune(self, ctx: PruningContext, sparsities: tuple[float, ...]) -> dict[float, PruneResult]:
        # ctx.prunable maps each prunable tensor's name to its shape: those are the keys of scores and masks.
        scores = {name: ctx.init_state.weights[name].abs() for name in ctx.prunable}
        # Higher scores are kept; the harness turns scores into masks of exactly the target sparsity and
        # retrains each from the spec's rewind point.
        return {s: PruneResult(scores=scores) for s in sparsities}
