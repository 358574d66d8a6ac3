"""A minimal grokking method: plain SGD with momentum (the harness owns the data, model, loop and scores)."""

from __future__ import annotations

import torch
from pydantic import BaseModel, ConfigDict

from phenomena_bench.families.grokking.api import GrokkingMethod, OneLayerTransformer, TrainingInfo


class MinimalSGDHyperparameters(BaseModel):
    # Every field needs a default; `--hp lr=0.05` overrides one, an unknown key is an error.
    model_config = ConfigDict(extra="forbid", frozen=True)

    lr: float = 0.05
    momentum: float = 0.9


class MinimalSGD(GrokkingMethod[MinimalSGDHyperparameters]):
    name = "example-minimal-sgd"
    version = "1"  # bump whenever results could change
    description = "SGD with momentum: the smallest complete grokking method."

    def configure(
        self, model: OneLayerTransformer, params: dict[str, torch.nn.Parameter], info: TrainingInfo
    ) -> torch.optim.Optimizer:
        # self.hp is a MinimalSGDHyperparameters
        return torch.optim.SGD(params.values(), lr=self.hp.lr, momentum=self.hp.momentum)
