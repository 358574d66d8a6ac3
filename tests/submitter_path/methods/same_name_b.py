"""Another implementation under the same name and version (SGD at lr 1e-6): it must not reuse A's results."""

from __future__ import annotations

import torch

from phenomena_bench.families.grokking.api import GrokkingMethod, OneLayerTransformer, TrainingInfo


class SameName(GrokkingMethod):  # type: ignore[type-arg]
    name = "same-name"
    version = "1"

    def configure(
        self, model: OneLayerTransformer, params: dict[str, torch.nn.Parameter], info: TrainingInfo
    ) -> torch.optim.Optimizer:
        return torch.optim.SGD(params.values(), lr=1e-6)
