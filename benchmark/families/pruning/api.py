"""What a pruning method implements, and everything the harness hands it. A submitter needs only this file.

A method answers one :meth:`PruningMethod.prune` call with a mask (or scores) for every target sparsity::

    class Magnitude(PruningMethod[MyHyperparameters]):
        name = "my-magnitude"

        def prune(self, ctx, sparsities):
            trained = ctx.train()                                  # charged against the search budget
            scores = {n: trained.weights[n].abs() for n in ctx.prunable}
            return {s: PruneResult(scores=scores) for s in sparsities}

The harness owns everything that decides the score, identically for every method:

* **Prunable tensors** are the weight matrices of the Linear layers (``ctx.prunable``; the output layer only
  when the spec says so); biases are never pruned. A mask must zero *exactly* ``prune_count(N, s)`` =
  floor(s * N + 1/2) of the N prunable weights. Scores become masks by a global top-k (higher = kept; among
  equal scores the lower flat index is kept).
* **Retraining.** Every mask is retrained with the spec's fixed recipe from the rewind point θ_k
  (``ctx.rewind_state``) for the remaining steps, pruned weights held at zero. A result may instead start
  from a state the method made with ``ctx.train`` (fine-tuning; the run is labelled track ``trained``).
* **Scoring** is test accuracy at the end of the budget; the method never sees the test split.

Randomness: a method's own draws should come from ``ctx.generator(...)``, on the method's own stream
(``ctx.rng_seed``, a one-way function of the run seed: never the seed that fixes the data split or the
initialisation); torch's, NumPy's and Python's global generators are also seeded from that stream before
:meth:`PruningMethod.prune` is called.

Costs: ``ctx.train`` charges the steps it trains, ``ctx.train_batches`` one step per batch it yields, both
against the search budget; the harness measures the FLOPs of ``prune`` itself (records' ``method_flops``:
scoring passes, models from ``ctx.make_model``, a hand-written training loop), outside the recipe trainings it
charges in steps. Everything ``prune`` returns is checked (sparsities, masks: shape, dtype, binary values,
exact count; scores: real, finite, right shape) and a violation fails the run with a one-line reason.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from phenomena_bench.core.errors import BenchmarkError, MethodError
from phenomena_bench.core.method import HP, Method, NoHyperparameters
from phenomena_bench.families.pruning.masks import (
    layer_prune_counts,
    layerwise_masks_from_scores,
    make_generator,
    masks_from_scores,
    prune_count,
    random_masks,
    shuffle_within_layers,
    sparsity_label,
)

__all__ = [
    "NoHyperparameters",
    "PruneResult",
    "PruningContext",
    "PruningMethod",
    "SearchBudgetExceeded",
    "TrainedState",
    # mask helpers a method may use (from .masks)
    "layer_prune_counts",
    "layerwise_masks_from_scores",
    "masks_from_scores",
    "prune_count",
    "random_masks",
    "shuffle_within_layers",
    "sparsity_label",
]


@dataclass(frozen=True, eq=False)
class TrainedState:
    """Weights after some steps of the harness's recipe (masked weights are exactly zero), on the CPU.

    Only the harness creates these (:meth:`PruningContext.train`, ``ctx.init_state``, ``ctx.rewind_state``);
    `step` is where the seed's data order continues if training resumes from it. Do not modify the tensors:
    a state whose weights changed after it was handed out is refused.
    """

    #: The model's full ``state_dict`` (prunable weights, biases, every other parameter).
    weights: Mapping[str, torch.Tensor]
    step: int
    #: The masks it was trained under (None: dense).
    masks: Mapping[str, torch.Tensor] | None = None
    #: The last training loss recorded (every 50 steps and at the end).
    final_loss: float | None = None
    #: True if the loss became non-finite; training stopped there.
    diverged: bool = False


@dataclass(frozen=True)
class PruneResult:
    """A method's answer for one sparsity: boolean `masks` or real `scores` per prunable tensor (not both).

    Scores are kept by global top-k (higher = kept). `start=None` retrains from the spec's rewind point;
    a :class:`TrainedState` from ``ctx.train`` fine-tunes from it instead (track ``trained``).
    """

    masks: Mapping[str, torch.Tensor] | None = None
    scores: Mapping[str, torch.Tensor] | None = None
    start: TrainedState | None = None

    def __post_init__(self) -> None:
        if (self.masks is None) == (self.scores is None):
            raise MethodError("a PruneResult holds exactly one of `masks` or `scores`")


class SearchBudgetExceeded(BenchmarkError):
    """The method asked ctx.train for more steps than the spec's search budget (the run: budget_exceeded)."""


class PruningContext(ABC):
    """What a method may use: the model, θ_0/θ_k, the recipe (charged), the training data. Never the test split,
    nor the seed that fixes it."""

    #: The seed of the method's own random stream (``core.seeds.method_seed`` of the run seed).
    rng_seed: int
    #: The target sparsities, increasing (the same tuple `prune` receives).
    sparsities: tuple[float, ...]
    #: The torch device of the training data and of the models `make_model` returns.
    device: str
    #: θ_0, the seed's initialisation (step 0).
    init_state: TrainedState
    #: θ_k, the dense net after the spec's ``rewind_step`` steps (θ_0 when k = 0): where masks are retrained from.
    rewind_state: TrainedState
    #: Steps of one full training with the recipe.
    steps: int
    #: Steps `train` may spend in all (the spec's ``search_budget`` x `steps`), and those spent so far.
    budget_steps: int
    steps_used: int
    num_classes: int
    #: The prunable tensors (parameter name -> shape), input side first: the keys every mask or score uses.
    prunable: dict[str, torch.Size]

    @abstractmethod
    def make_model(self, state: TrainedState | None = None, init_seed: int | None = None) -> nn.Module:
        """A fresh module on ctx.device: θ_0 by default, `state`'s weights, or a new init from `init_seed`."""

    @abstractmethod
    def train(
        self,
        masks: Mapping[str, torch.Tensor] | None = None,
        start: TrainedState | None = None,
        steps: int | None = None,
    ) -> TrainedState:
        """Train with the harness's recipe (masked if `masks`), from `start` (θ_0 by default).

        `steps` defaults to the rest of the recipe (`steps - start.step`). Every step is charged against the
        search budget, memoised or not; asking for more than is left raises :class:`SearchBudgetExceeded`.
        `start` must be ``ctx.init_state``, ``ctx.rewind_state`` or a state returned by this method.
        """

    @abstractmethod
    def train_batches(self, count: int | None = None) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Training minibatches in the recipe's order for this seed: `count` of them (default: one epoch).

        Each batch yielded charges one step against the search budget (as ``train`` does); a batch past the
        budget raises :class:`SearchBudgetExceeded`.
        """

    @abstractmethod
    def fewshot_batch(self, per_class: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """`per_class` training examples of every class (spec default), chosen by the seed: for scoring."""

    @staticmethod
    def loss_fn(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """The recipe's loss: mean cross-entropy."""
        return F.cross_entropy(logits, targets)

    def generator(self, *labels: object) -> torch.Generator:
        """A CPU generator on the method's own stream and `labels`, for a method's own randomness."""
        return make_generator(self.rng_seed, "method", *labels)


class PruningMethod(Method[HP]):
    """Base of pruning methods: implement :meth:`prune`.

    Subclass it as ``PruningMethod[MyHyperparameters]`` (a Pydantic model; ``NoHyperparameters`` for none):
    ``self.hp`` is then an instance of it, and every value is part of the run key.
    """

    family: ClassVar[str] = "pruning"
    #: True when several seeds of the method may run as lanes of one program (the harness batches the
    #: trainings they ask for): `prune` must use only its context and generators it seeds itself (``ctx``'s
    #: generators, or the global ones, which are per lane) and no mutable module-level state.
    batchable: ClassVar[bool] = False

    @abstractmethod
    def prune(self, ctx: PruningContext, sparsities: tuple[float, ...]) -> dict[float, PruneResult]:
        """Required. One :class:`PruneResult` for every target sparsity (a key per value in `sparsities`)."""
