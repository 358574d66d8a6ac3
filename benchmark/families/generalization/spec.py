"""The generalization family's task spec: which population of trained networks, which target, which budget.

A task declares a *population*: every combination of the axis values below (training-set size, hidden width,
depth, step size, training length) times ``training.init_seeds`` initialisations, each network trained by
full-batch gradient descent on the cross-entropy of a fixed digits subset (the Hessian family's checkpoint
trainer). The target is what a measure should rank (the accuracy gap, the loss gap or the test loss); the
evaluation section fixes the oracle budget a measure may spend per network and the bootstrap.

Tiers may change the axis values and the number of initialisations (the population's size), never the
target, the budgets or the scoring. Every network is capped at :data:`MAX_PARAMETERS` parameters, since each
carries an exact dense Hessian spectrum.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field, field_validator, model_validator

from phenomena_bench.core.spec import StrictModel, TaskSpec
from phenomena_bench.data.digits import DIGITS_CLASSES, DIGITS_FEATURES, DIGITS_SIZE

#: Largest network of a population: each gets a dense float64 eigendecomposition (P = 6,000: ~1 minute).
MAX_PARAMETERS = 6_000
#: Most networks in one population (each is trained and diagonalised once, then cached).
MAX_NETWORKS = 256
Target = Literal["acc_gap", "loss_gap", "test_loss"]


def _distinct_sorted(values: list[int] | list[float], name: str) -> None:
    if list(values) != sorted(set(values)):
        raise ValueError(f"{name} must be distinct and increasing")


def parameter_count(width: int, depth: int) -> int:
    """Parameters of the digits MLP with `depth` hidden layers of `width` units."""
    widths = (DIGITS_FEATURES, *([width] * depth), DIGITS_CLASSES)
    return sum((a + 1) * b for a, b in zip(widths, widths[1:], strict=False))


class GeneralizationData(StrictModel):
    """The training-set sizes (an axis) drawn from one fixed permutation of scikit-learn's digits."""

    TIER_SIZES: ClassVar[frozenset[str]] = frozenset({"n_train"})

    dataset: Literal["digits"] = "digits"
    n_train: list[int] = Field(min_length=1, description="Axis: training points (the rest of digits is the test set).")
    split_seed: int = Field(default=0, ge=0, description="Fixes the permutation; smaller sets are its prefixes.")

    @field_validator("n_train")
    @classmethod
    def _sizes(cls, sizes: list[int]) -> list[int]:
        _distinct_sorted(sizes, "n_train")
        if sizes[0] < 20 or sizes[-1] > DIGITS_SIZE - 300:
            raise ValueError(f"n_train values must lie in [20, {DIGITS_SIZE - 300}] (at least 300 test digits)")
        return sizes


class GeneralizationModel(StrictModel):
    """MLPs on the 64 digit pixels: hidden width and depth are axes."""

    TIER_SIZES: ClassVar[frozenset[str]] = frozenset({"widths", "depths"})

    widths: list[int] = Field(min_length=1, description="Axis: hidden width (every hidden layer).")
    depths: list[int] = Field(min_length=1, description="Axis: number of hidden layers (1-3).")
    activation: Literal["tanh", "relu"] = "tanh"

    @model_validator(mode="after")
    def _sizes(self) -> GeneralizationModel:
        _distinct_sorted(self.widths, "widths")
        _distinct_sorted(self.depths, "depths")
        if self.widths[0] < 1 or self.depths[0] < 1 or self.depths[-1] > 3:
            raise ValueError("widths must be >= 1 and depths in 1..3")
        largest = parameter_count(self.widths[-1], self.depths[-1])
        if largest > MAX_PARAMETERS:
            raise ValueError(
                f"width {self.widths[-1]} x depth {self.depths[-1]} gives {largest} parameters; every network "
                f"carries an exact dense Hessian, at most {MAX_PARAMETERS} are allowed"
            )
        return self


class GeneralizationTraining(StrictModel):
    """Full-batch gradient descent on the cross-entropy; step size, length and initialisations are axes."""

    TIER_SIZES: ClassVar[frozenset[str]] = frozenset({"lrs", "steps", "init_seeds"})

    lrs: list[float] = Field(min_length=1, description="Axis: GD step size.")
    steps: list[int] = Field(min_length=1, description="Axis: GD steps (training length).")
    init_seeds: int = Field(default=1, ge=1, le=8, description="Initialisations per configuration (not an axis).")

    @field_validator("lrs")
    @classmethod
    def _lrs(cls, lrs: list[float]) -> list[float]:
        _distinct_sorted(lrs, "lrs")
        if lrs[0] <= 0 or lrs[-1] > 10:
            raise ValueError("lrs must lie in (0, 10]")
        return lrs

    @field_validator("steps")
    @classmethod
    def _steps(cls, steps: list[int]) -> list[int]:
        _distinct_sorted(steps, "steps")
        if steps[0] < 1 or steps[-1] > 100_000:
            raise ValueError("steps must lie in [1, 100000]")
        return steps


class GeneralizationEvaluation(StrictModel):
    """The scoring protocol (identical across tiers)."""

    target: Target = Field(
        default="acc_gap",
        description="What a measure ranks: train - test accuracy, test - train loss, or the test loss.",
    )
    hvps: int = Field(default=20, ge=0, le=10_000, description="HVP budget of a measure, per network.")
    example_gradients: int = Field(
        default=2_000, ge=0, le=1_000_000, description="Per-example gradient budget of a measure, per network."
    )
    bootstrap: int = Field(default=1_000, ge=100, le=100_000, description="Bootstrap resamples of the networks.")
    min_gap_spread: float = Field(
        default=0.05, ge=0, le=1, description="Gate: the target's interquartile range must be at least this."
    )


class GeneralizationTask(TaskSpec):
    family: Literal["generalization"]
    data: GeneralizationData
    model: GeneralizationModel
    training: GeneralizationTraining
    evaluation: GeneralizationEvaluation

    @model_validator(mode="after")
    def _population_size(self) -> GeneralizationTask:
        count = (
            len(self.data.n_train)
            * len(self.model.widths)
            * len(self.model.depths)
            * len(self.training.lrs)
            * len(self.training.steps)
            * self.training.init_seeds
        )
        if count < 4 or count > MAX_NETWORKS:
            raise ValueError(f"the population has {count} networks; it must have 4 to {MAX_NETWORKS}")
        return self
