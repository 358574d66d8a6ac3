"""The hessian family's task spec: which network, trained how far, and how its spectrum estimates are scored.

A task is one checkpoint of one training run (initialisation, early training, end of training, edge of
stability): the data and model sections fix the loss whose Hessian is measured, the training section how far
full-batch gradient descent goes before the checkpoint, and the evaluation section the HVP budgets and scores.

Tiers may change sizes only: the number of training points and the hidden widths. The dataset and its
subset (`split_seed`), the activation, the loss, the step size and the checkpoint define which Hessian is
measured, and `evaluation` is the protocol: all stay fixed. The network is capped at
:data:`MAX_PARAMETERS` parameters, since the ground truth is a dense eigendecomposition.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar, Literal

from pydantic import Field, field_validator

from phenomena_bench.core.spec import StrictModel, TaskSpec
from phenomena_bench.core.variants import IntAxis, VariantDistribution
from phenomena_bench.data.digits import DIGITS_CLASSES, DIGITS_FEATURES, DIGITS_SIZE

if TYPE_CHECKING:
    from phenomena_bench.models.flat_mlp import FlatMLP

LossName = Literal["cross_entropy", "mse"]
#: The budget of the ranking metric; every task's budget list must contain it. At 30 HVPs the reference
#: (Lanczos) already finds λ_max to 1e-9..1e-15 on every checkpoint, so the ranking sits at 10, where it is
#: 1e-4..1e-2 and every λ_max estimator is separated from the next by a decade (see the family's docstring).
PRIMARY_BUDGET = 10
#: From a handful of products (5: near the zero-HVP floor) to where Lanczos is at the float floor (30).
#: 100 and 300 were dropped when 20 draws per budget came in: they held 90% of the HVPs, every λ_max
#: estimator is exact there, and the default suite has a CPU budget.
LEADERBOARD_BUDGETS = (5, 10, 30)
#: Estimator draws per (checkpoint, budget): independent random streams of the method on the same cached
#: Hessian, so medians and 90th percentiles of its error are measured, not guessed from one draw.
DEFAULT_DRAWS = 20
#: Largest network: the exact spectrum is a dense P x P float64 eigendecomposition (12k: 1.2 GB, minutes).
MAX_PARAMETERS = 12_000


class HessianData(StrictModel):
    """Which fixed training set defines the loss."""

    TIER_SIZES: ClassVar[frozenset[str]] = frozenset({"n_train"})

    dataset: Literal["digits"] = "digits"
    n_train: int = Field(ge=10, le=DIGITS_SIZE - 100, description="Training points (the Hessian's data).")
    split_seed: int = Field(default=0, ge=0, description="Fixes which digits form the training subset.")


class HessianModel(StrictModel):
    """An MLP on the 64 digit pixels; no hidden layer with the MSE loss is linear regression (quadratic loss)."""

    TIER_SIZES: ClassVar[frozenset[str]] = frozenset({"hidden"})

    hidden: list[int] = Field(max_length=8, description="Hidden widths; [] gives a linear model.")
    activation: Literal["tanh", "relu"] = "tanh"

    @field_validator("hidden")
    @classmethod
    def _positive_widths(cls, hidden: list[int]) -> list[int]:
        if any(width < 1 for width in hidden):
            raise ValueError("every hidden width must be >= 1")
        widths = (DIGITS_FEATURES, *hidden, DIGITS_CLASSES)
        parameters = sum((a + 1) * b for a, b in zip(widths, widths[1:], strict=False))
        if parameters > MAX_PARAMETERS:
            raise ValueError(
                f"hidden {hidden} gives {parameters} parameters; the exact Hessian is dense, at most "
                f"{MAX_PARAMETERS} are allowed"
            )
        return hidden

    def build(self) -> FlatMLP:
        from phenomena_bench.models.flat_mlp import FlatMLP  # torch: only when a run builds the model

        return FlatMLP((DIGITS_FEATURES, *self.hidden, DIGITS_CLASSES), self.activation)


class HessianTraining(StrictModel):
    """Full-batch gradient descent up to the checkpoint whose Hessian is measured."""

    loss: LossName = "cross_entropy"
    lr: float = Field(gt=0, le=100, description="Step size η of full-batch GD (edge of stability: λ_max ≈ 2/η).")
    checkpoint_step: int = Field(ge=0, le=1_000_000, description="GD steps before the checkpoint (0 = init).")


class HessianEvaluation(StrictModel):
    """The scoring protocol (identical across tiers)."""

    budgets: list[int] = Field(default_factory=lambda: list(LEADERBOARD_BUDGETS), min_length=1)
    topk: list[int] = Field(default_factory=lambda: [5, 10], min_length=1)
    draws: int = Field(
        default=DEFAULT_DRAWS,
        ge=1,
        le=1000,
        description="Independent estimator draws per budget (their median and 90th percentile are reported).",
    )
    symlog_threshold_rel: float = Field(
        default=1e-4, gt=0, lt=1, description="Linear threshold of the symlog axis, relative to max |λ|."
    )
    probe_count: int = Field(default=3, ge=1, le=100, description="Random HVP probes checking the ground truth.")
    probe_tol: float = Field(default=1e-8, gt=0, lt=1)

    @field_validator("budgets")
    @classmethod
    def _budgets(cls, budgets: list[int]) -> list[int]:
        if any(b < 1 for b in budgets) or budgets != sorted(set(budgets)):
            raise ValueError("budgets must be increasing whole numbers >= 1")
        if PRIMARY_BUDGET not in budgets:
            raise ValueError(f"budgets must include {PRIMARY_BUDGET}, the budget of the ranking metric")
        return budgets

    @field_validator("topk")
    @classmethod
    def _topk(cls, topk: list[int]) -> list[int]:
        if any(k < 1 for k in topk) or topk != sorted(set(topk)):
            raise ValueError("topk must be increasing whole numbers >= 1")
        return topk


class HessianVariants(VariantDistribution):
    """Held-out variants: unseen checkpoints of the same recipe, trained on another training subset
    (``split_seed: {range: [lo, hi]}``): same network, loss, step size and checkpoint step, another Hessian."""

    split_seed: IntAxis | None = None


class HessianTask(TaskSpec):
    family: Literal["hessian"]
    data: HessianData
    model: HessianModel
    training: HessianTraining
    evaluation: HessianEvaluation
    variants: HessianVariants | None = None
