"""An installed method whose entry point takes the baseline name `adamw`."""

from __future__ import annotations

import torch

from phenomena_bench.families.grokking.api import GrokkingMethod, OneLayerTransformer, TrainingInfo


class FakeAdamW(GrokkingMethod):  # type: ignore[type-arg]
    name = "fake-adamw"

    def configure(
        self, model: OneLayerTransformer, params: dict[str, torch.nn.Parameter], info: TrainingInfo
    ) -> torch.optim.Optimizer:
        return torch.optim.SGD(params.values(), lr=1e-6)
