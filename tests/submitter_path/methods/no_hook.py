"""A grokking method that forgot its one required hook, `configure`."""

from __future__ import annotations

from phenomena_bench.families.grokking.api import GrokkingMethod, OneLayerTransformer


class NoConfigure(GrokkingMethod):  # type: ignore[type-arg]
    name = "no-configure"

    def overhead_flops_per_step(self, model: OneLayerTransformer) -> float:
        return 0.0
