"""A correct grokking method in a package whose entry point is in the wrong group."""

from __future__ import annotations

import torch

from phenomena_bench.families.grokking.api import GrokkingMethod, OneLayerTransformer, TrainingInfo


class WrongGroup(GrokkingMethod):  # type: ignore[type-arg]
    name = "wrong-group"

    def configure(
        self, model: OneLayerTransformer, params: dict[str, torch.nn.Parameter], info: TrainingInfo
    ) -> torch.optim.Optimizer:
        return torch.optim.SGD(params.values(), lr=1e-3)
