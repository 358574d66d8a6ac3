"""The grokking task spec: which modular-arithmetic table, which transformer, which budget, which protocol.

Tiers may change `data`, `model` and `training` (sizes); `evaluation` is the protocol and stays fixed.
"""

from __future__ import annotations

import math
from typing import Literal

from pydantic import Field, model_validator

from phenomena_bench.core.spec import StrictModel, TaskSpec
from phenomena_bench.data.modular import Operation


def _is_prime(n: int) -> bool:
    return n >= 2 and all(n % k for k in range(2, math.isqrt(n) + 1))


class GrokkingData(StrictModel):
    operation: Operation = Field(description="add: (a+b) mod p, sub: (a-b) mod p, div: a*b^-1 mod p")
    p: int = Field(ge=3, le=1000, description="The modulus; prime (division needs inverses).")
    train_fraction: float = Field(gt=0, lt=1, description="Fraction of all pairs trained on; the rest is held out.")

    @model_validator(mode="after")
    def _prime(self) -> GrokkingData:
        if not _is_prime(self.p):
            raise ValueError(f"p = {self.p} is not prime; modular division and the literature use a prime p")
        return self


class GrokkingModel(StrictModel):
    architecture: Literal["nanda-1l-transformer"] = "nanda-1l-transformer"
    d_model: int = Field(default=128, ge=4, le=4096)
    n_heads: int = Field(default=4, ge=1, le=64)
    d_mlp: int = Field(default=512, ge=4, le=16384)

    @model_validator(mode="after")
    def _heads_divide(self) -> GrokkingModel:
        if self.d_model % self.n_heads:
            raise ValueError(f"d_model {self.d_model} must be divisible by n_heads {self.n_heads}")
        return self


class GrokkingTraining(StrictModel):
    steps: int = Field(ge=1, le=10_000_000, description="Budget: optimizer steps (a run is censored there).")
    batch_size: int | None = Field(
        default=None, ge=1, description="Minibatch size (epoch-wise reshuffling); null means full batch."
    )
    eval_every: int = Field(default=50, ge=1, description="Steps between evaluations of the whole held-out split.")


class GrokkingEvaluation(StrictModel):
    metric: Literal["steps_to_target"] = "steps_to_target"
    direction: Literal["min"] = "min"
    target: float = Field(default=0.99, gt=0, le=1, description="Held-out accuracy that counts as grokked.")
    hold_evals: int = Field(default=5, ge=0, le=1000, description="Further evaluations the target must hold for.")
    crossing: float = Field(default=0.95, gt=0, le=1, description="Also report the first crossing of this accuracy.")
    stop_when_held: bool = Field(
        default=True,
        description="End the run once the target has held (saves compute; final accuracies are then "
        "those at the stop).",
    )


class GrokkingTask(TaskSpec):
    family: Literal["grokking"]
    data: GrokkingData
    model: GrokkingModel = Field(default_factory=GrokkingModel)
    training: GrokkingTraining
    evaluation: GrokkingEvaluation = Field(default_factory=GrokkingEvaluation)
