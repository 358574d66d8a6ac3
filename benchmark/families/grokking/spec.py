"""The grokking task spec: which modular-arithmetic table, which transformer, which budget, which protocol.

Tiers may change sizes only: the modulus and the training fraction, the transformer's widths, the step
budget, batch size and evaluation interval. The operation and the architecture define the task, and
`evaluation` is the protocol: all stay fixed. A budget must let the target hold: at least
``eval_every x hold_evals`` steps, and a batch no larger than the training split.
"""

from __future__ import annotations

import math
from typing import ClassVar, Literal

from pydantic import Field, model_validator

from phenomena_bench.core.spec import StrictModel, TaskSpec
from phenomena_bench.core.variants import ChoiceAxis, IntAxis, VariantDistribution


def _is_prime(n: int) -> bool:
    return n >= 2 and all(n % k for k in range(2, math.isqrt(n) + 1))


#: The modular operations a task can ask for (the data module builds their pairs).
Operation = Literal["add", "sub", "div"]


def pair_count(operation: Operation, p: int) -> int:
    """Pairs (a, b) in the table: all p^2, or p(p-1) for division (b = 0 has no inverse)."""
    return p * (p - 1) if operation == "div" else p * p


def train_pairs(operation: Operation, p: int, train_fraction: float) -> int:
    """Size of the training split (as :func:`phenomena_bench.data.modular.make_split` rounds it)."""
    return round(train_fraction * pair_count(operation, p))


class GrokkingData(StrictModel):
    TIER_SIZES: ClassVar[frozenset[str]] = frozenset({"p", "train_fraction"})

    operation: Operation = Field(description="add: (a+b) mod p, sub: (a-b) mod p, div: a*b^-1 mod p")
    p: int = Field(ge=3, le=1000, description="The modulus; prime (division needs inverses).")
    train_fraction: float = Field(gt=0, lt=1, description="Fraction of all pairs trained on; the rest is held out.")

    @model_validator(mode="after")
    def _prime(self) -> GrokkingData:
        if not _is_prime(self.p):
            raise ValueError(f"p = {self.p} is not prime; modular division and the literature use a prime p")
        return self


class GrokkingModel(StrictModel):
    TIER_SIZES: ClassVar[frozenset[str]] = frozenset({"d_model", "n_heads", "d_mlp"})

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
    TIER_SIZES: ClassVar[frozenset[str]] = frozenset({"steps", "batch_size", "eval_every"})

    steps: int = Field(ge=1, le=10_000_000, description="Budget: optimizer steps (a run is censored there).")
    batch_size: int | None = Field(
        default=None, ge=1, le=1_000_000, description="Minibatch size (epoch-wise reshuffling); null means full batch."
    )
    eval_every: int = Field(default=50, ge=1, description="Steps between evaluations of the whole held-out split.")


class GrokkingEvaluation(StrictModel):
    metric: Literal["steps_to_target"] = "steps_to_target"
    direction: Literal["min"] = "min"
    target: float = Field(default=0.99, gt=0, le=1, description="Held-out accuracy that counts as grokked.")
    hold_evals: int = Field(default=5, ge=0, le=1000, description="Further evaluations the target must hold for.")
    crossing: float = Field(
        default=0.95,
        gt=0,
        le=1,
        description="Also report the first evaluation with held-out accuracy at this level and training "
        "accuracy at `target` (the Muon paper's grokking step).",
    )
    stop_when_held: bool = Field(
        default=True,
        description="End the run once the target has held and training has gone on to `past_grok` times the "
        "first held step (saves compute; final accuracies are then those at the stop).",
    )
    past_grok: float = Field(
        default=1.5,
        ge=1,
        le=100,
        description="Train on to this multiple of the first held step (capped by the budget), so that a "
        "generalisation that does not last (post-grokking collapse) is seen.",
    )
    collapse_below: float = Field(
        default=0.9,
        gt=0,
        le=1,
        description="A grokked run whose held-out accuracy later falls below this has collapsed.",
    )

    @model_validator(mode="after")
    def _collapse_below_target(self) -> GrokkingEvaluation:
        if self.collapse_below >= self.target:
            raise ValueError(
                f"evaluation.collapse_below ({self.collapse_below}) must be below the target ({self.target}): "
                "a run holding the target cannot have collapsed"
            )
        return self


class GrokkingVariants(VariantDistribution):
    """Held-out variants: another modulus (``{range: [lo, hi], prime: true}`` near the tier's own, so a variant
    costs what the task costs: a step is ~p^2 pairs) and another operation (``{choices: [add, sub]}``)."""

    p: IntAxis | None = None
    operation: ChoiceAxis[Operation] | None = None


class GrokkingTask(TaskSpec):
    family: Literal["grokking"]
    data: GrokkingData
    model: GrokkingModel = Field(default_factory=GrokkingModel)
    training: GrokkingTraining
    evaluation: GrokkingEvaluation = Field(default_factory=GrokkingEvaluation)
    variants: GrokkingVariants | None = None

    @model_validator(mode="after")
    def _budget_can_hold(self) -> GrokkingTask:
        training, evaluation = self.training, self.evaluation
        if training.eval_every > training.steps:
            raise ValueError(
                f"training.eval_every ({training.eval_every}) exceeds training.steps ({training.steps}): "
                "no evaluation would ever run"
            )
        if training.steps < training.eval_every * evaluation.hold_evals:
            raise ValueError(
                f"training.steps ({training.steps}) is below eval_every x hold_evals "
                f"({training.eval_every} x {evaluation.hold_evals}): the target could never hold"
            )
        n_train = train_pairs(self.data.operation, self.data.p, self.data.train_fraction)
        if n_train < 1:
            raise ValueError(f"data.train_fraction {self.data.train_fraction} of p = {self.data.p} trains on no pair")
        if training.batch_size is not None and training.batch_size > n_train:
            raise ValueError(
                f"training.batch_size ({training.batch_size}) exceeds the training split ({n_train} pairs); "
                "use null for full batch"
            )
        return self
