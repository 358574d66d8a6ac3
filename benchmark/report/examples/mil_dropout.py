"""A minimal MIL regulariser: feature dropout on every instance embedding, during training only."""

from __future__ import annotations

import torch
from pydantic import BaseModel, ConfigDict, Field

from phenomena_bench.families.mil_dropout.api import DropoutContext, MILDropoutMethod


class FeatureDropoutHyperparameters(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    p: float = Field(default=0.1, ge=0.0, lt=1.0)


class FeatureDropoutModule(torch.nn.Module):
    """The hook the harness calls after each encoder layer, in training only."""

    def __init__(self, p: float) -> None:
        super().__init__()
        self.p = p

    def instance(self, h: torch.Tensor, mask: torch.Tensor, layer: int) -> tuple[torch.Tensor, torch.Tensor]:
        # Same shapes out as in; the mask (True = a real instance) is left as it is.
        return torch.nn.functional.dropout(h, self.p, training=True), mask


class FeatureDropout(MILDropoutMethod[FeatureDropoutHyperparameters]):
    name = "example-feature-dropout"
    version = "1"
    description = "Standard dropout on the instance features (Srivastava et al. 2014)."

    def make_dropout(self, ctx: DropoutContext) -> FeatureDropoutModule:
        return FeatureDropoutModule(self.hp.p)
