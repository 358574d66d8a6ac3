"""One implementation called `same-name` v1 (Adam)."""

from __future__ import annotations

import torch

from phenomena_bench.families.grokking.api import GrokkingMethod, OneLayerTransformer, TrainingInfo


class SameName(GrokkingMethod):  # type: ignore[type-arg]
    name = "same-name"
    version = "1"

    def configure(
        self, model: OneLayerTransformer, params: dict[str, torch.nn.Parameter], info: TrainingInfo
    ) -> torch.optim.Optimizer:
        return torch.optim.Adam(params.values(), lr=1e-3)
