"""A method whose hyperparameter model is a plain ``BaseModel`` (pydantic ignores unknown keys there)."""

from __future__ import annotations

import torch
from pydantic import BaseModel

from phenomena_bench.families.grokking.api import GrokkingMethod, OneLayerTransformer, TrainingInfo


class PlainHyperparameters(BaseModel):
    lr: float = 1e-3


class PlainHP(GrokkingMethod[PlainHyperparameters]):
    name = "plain-hp"

    def configure(
        self, model: OneLayerTransformer, params: dict[str, torch.nn.Parameter], info: TrainingInfo
    ) -> torch.optim.Optimizer:
        return torch.optim.SGD(params.values(), lr=self.hp.lr)
