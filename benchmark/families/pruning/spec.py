"""The pruning task spec: dataset, network, the fixed (re)training recipe and the scoring protocol.

Tiers may change sizes only: the number of MNIST-1D samples, the hidden widths, the batch size, the step
budget and the search budget. The dataset, its generator seed and test share, the kind of network and the
(re)training recipe (optimizer, learning rate, momentum, weight decay, rewind step) define the task, and
`evaluation` is the protocol: all stay fixed. A batch holds at most the training split.
"""

from __future__ import annotations

import math
from typing import ClassVar, Literal

from pydantic import Field, field_validator, model_validator

from phenomena_bench.core.spec import StrictModel, TaskSpec
from phenomena_bench.core.variants import IntAxis, VariantDistribution

#: Images in scikit-learn's digits; MNIST-1D trains on 80% of `num_samples`.
DIGITS_IMAGES = 1797
MNIST1D_TRAIN_SHARE = 0.8


class PruningData(StrictModel):
    TIER_SIZES: ClassVar[frozenset[str]] = frozenset({"num_samples"})

    dataset: Literal["mnist1d", "digits"]
    num_samples: int = Field(
        default=5000, ge=200, le=1_000_000, description="MNIST-1D: examples generated (80% train)."
    )
    generator_seed: int = Field(default=42, ge=0, description="MNIST-1D generator seed; 42 is the standard set.")
    test_fraction: float = Field(default=0.25, gt=0, lt=1, description="digits: stratified test share (per seed).")


class PruningModel(StrictModel):
    TIER_SIZES: ClassVar[frozenset[str]] = frozenset({"hidden"})

    kind: Literal["mlp", "residual_mlp"] = "mlp"
    hidden: list[int] = Field(min_length=1, description="Hidden widths, input side first.")

    @field_validator("hidden")
    @classmethod
    def _positive_widths(cls, hidden: list[int]) -> list[int]:
        if any(w < 1 for w in hidden):
            raise ValueError(f"hidden widths must be >= 1, got {hidden}")
        return hidden


class PruningTraining(StrictModel):
    """The fixed (re)training recipe, the same for the dense net, every mask and every control."""

    TIER_SIZES: ClassVar[frozenset[str]] = frozenset({"batch_size", "steps", "search_budget"})

    optimizer: Literal["adam", "sgd"] = "adam"
    lr: float = Field(gt=0, le=10)
    momentum: float = Field(default=0.0, ge=0, lt=1, description="SGD only.")
    weight_decay: float = Field(default=0.0, ge=0, le=1)
    batch_size: int = Field(ge=1, le=65536)
    steps: int = Field(ge=1, le=10_000_000, description="Steps of one full training.")
    rewind_step: int = Field(default=0, ge=0, description="k: masks are retrained from θ_k (0 = the init).")
    search_budget: float = Field(
        ge=0, le=1000, description="Training steps a method may spend through ctx.train, in units of `steps`."
    )


class PruningEvaluation(StrictModel):
    sparsities: list[float] = Field(min_length=1, description="Target fractions of prunable weights zeroed.")
    control_sparsities: list[float] = Field(
        default_factory=list, description="Where the shuffled-mask and reinitialised controls are retrained."
    )
    prune_output_layer: bool = False
    fewshot_per_class: int = Field(default=10, ge=1, description="Examples per class in ctx.fewshot_batch().")
    collapse_accuracy: float = Field(
        ge=0, le=1, description="Accuracy at or below which a sparse net counts as collapsed (chance level)."
    )
    matching_tolerance: float = Field(default=0.01, ge=0, le=1, description="'Matching' = acc >= dense - this.")

    @field_validator("sparsities")
    @classmethod
    def _increasing(cls, values: list[float]) -> list[float]:
        if any(not 0.0 < s < 1.0 for s in values):
            raise ValueError(f"sparsities must lie strictly between 0 and 1, got {values}")
        if any(b <= a for a, b in zip(values, values[1:], strict=False)):
            raise ValueError(f"sparsities must be strictly increasing, got {values}")
        return values

    @model_validator(mode="after")
    def _controls_are_targets(self) -> PruningEvaluation:
        extra = [s for s in self.control_sparsities if s not in self.sparsities]
        if extra:
            raise ValueError(f"control_sparsities {extra} are not among the target sparsities {self.sparsities}")
        return self


class PruningVariants(VariantDistribution):
    """Held-out variants: another MNIST-1D generator seed (``{range: [lo, hi]}``), i.e. a fresh draw of the
    same generator (templates, shifts, scales and noise resampled) with the same sizes and recipe."""

    generator_seed: IntAxis | None = None


class PruningTask(TaskSpec):
    family: Literal["pruning"]
    data: PruningData
    model: PruningModel
    training: PruningTraining
    evaluation: PruningEvaluation
    variants: PruningVariants | None = None

    @model_validator(mode="after")
    def _variants_change_the_data(self) -> PruningTask:
        if self.variants and self.variants.generator_seed and self.data.dataset != "mnist1d":
            raise ValueError("variants.generator_seed: only MNIST-1D has a generator seed; digits would not change")
        return self

    @model_validator(mode="after")
    def _rewind_inside_training(self) -> PruningTask:
        if self.training.rewind_step >= self.training.steps:
            raise ValueError(
                f"training.rewind_step ({self.training.rewind_step}) must be below training.steps "
                f"({self.training.steps})"
            )
        data = self.data
        if data.dataset == "digits":
            n_train = DIGITS_IMAGES - math.ceil(DIGITS_IMAGES * data.test_fraction)
        else:
            n_train = int(data.num_samples * MNIST1D_TRAIN_SHARE)
        if self.training.batch_size > n_train:
            raise ValueError(
                f"training.batch_size ({self.training.batch_size}) exceeds the training split ({n_train} examples)"
            )
        return self
