"""What a grokking method implements, and everything the harness hands it. A submitter needs only this file.

The harness owns the data (the seed's split of (a op b) mod p), the model (Nanda et al.'s one-layer
transformer, initialised from the seed), the training loop, the evaluations and every score. A method
supplies the optimizer and may shape gradients::

    class Lion(GrokkingMethod[LionHyperparameters]):
        name = "lion"

        def configure(self, model, params, info):
            return LionOptimizer(params.values(), lr=self.hp.lr), None   # self.hp is a LionHyperparameters

Each training step the harness computes the mean cross-entropy of one minibatch, calls ``backward()``, then
:meth:`GrokkingMethod.after_backward`, then ``optimizer.step()`` and, if one was returned, ``scheduler.step()``.
A method never sees the held-out split, nor the seed that fixes it.

**Randomness.** A method's random numbers come from its own stream: ``info.rng_seed`` (a one-way function of
the run seed, never the seed of the split or the initialisation), and torch's, NumPy's and Python's global
generators are seeded from that stream after the model is initialised and before ``configure``. So a method
that calls ``torch.randn`` is reproducible, but its draws are unrelated to the data. When several seeds
train as one program (``batchable``), they share the first run's stream: a batchable method must not draw
random numbers (its runs would not be independent).

**Checks and costs.** Everything a hook returns is checked before it counts: ``configure`` must return an
optimizer (and optionally an LR scheduler), ``prepare`` an int between 0 and the step budget,
``overhead_flops_per_step`` a finite FLOP count >= 0, ``after_backward`` None; anything else fails the run with
a one-line reason. The harness measures the FLOPs of every hook, of ``optimizer.step()`` and of the scheduler
(records' ``method_flops``); the wall clock starts before ``configure``, so work done in ``prepare`` (a second
model trained on the side) is paid for.

**Data a method may use: the training split, never the held-out one.** ``prepare`` receives the training
split (``train_x``, ``train_y``), and it is the only data the API ever hands out. A method that needs data of
its own — a validation split to stop a helper model on (GrokTransfer), a held-in split to meta-train on
(NeuralGrok) — carves it from that split. :meth:`GrokkingMethod.training_examples` then tells the harness
which examples of the training split the model trains on (default: all), so that a held-in part stays unseen
by the model's own updates. It returns indices into ``train_x``: a method can select among training
examples, never reach a held-out one. Evaluations (training accuracy included) still use the whole
training split, so every method is scored on the same examples.
"""

from __future__ import annotations

from abc import abstractmethod
from dataclasses import dataclass
from typing import ClassVar, TypeAlias

import torch

from phenomena_bench.core.method import HP, Method
from phenomena_bench.models.transformer import OneLayerTransformer

__all__ = ["Configured", "GrokkingMethod", "OneLayerTransformer", "TrainingInfo"]

#: What :meth:`GrokkingMethod.configure` returns: an optimizer, or an optimizer and an LR scheduler that the
#: harness steps once after every optimizer step.
Configured: TypeAlias = torch.optim.Optimizer | tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler]


@dataclass(frozen=True)
class TrainingInfo:
    """What `configure` and `prepare` learn about the run: sizes, never the held-out data."""

    #: The step budget (optimizer steps, including those `prepare` spends).
    steps: int
    #: Examples per training step (the spec's minibatch, or the whole training split).
    batch_size: int
    #: Size of the training split.
    n_train: int
    #: The modulus: the model's vocabulary is the p residues plus the `=` token.
    p: int
    #: The torch device the model lives on ("cpu", "cuda", "cuda:1", ...).
    device: str
    #: The seed of the method's own random stream (``core.seeds.method_seed`` of the run seed; of the first
    #: run when several train as one program). Never the seed of the split or of the initialisation.
    rng_seed: int
    #: How many seeds train as one program: 1, unless the method is ``batchable`` and the harness batches,
    #: in which case every parameter (and gradient) has a leading run axis of this size.
    runs: int = 1

    def generator(self) -> torch.Generator:
        """A fresh CPU generator on the method's stream (the same draws on every call)."""
        return torch.Generator().manual_seed(self.rng_seed)


class GrokkingMethod(Method[HP]):
    """Base of grokking methods: an optimizer recipe (:meth:`configure`) plus optional hooks.

    Subclass it as ``GrokkingMethod[MyHyperparameters]`` (a Pydantic model): ``self.hp`` is then an instance
    of it, built from the defaults and the user's ``--hp`` values, and every value is part of the run key.

    `model` in every hook is the run's :class:`OneLayerTransformer` (parameters named ``embed``, ``pos``,
    ``w_q`` ... ``unembed``; see its ``HIDDEN_MATRICES``, ``EMBEDDINGS`` and ``UNEMBEDDING``). When the
    method sets ``batchable = True`` and several seeds train as one program, `model` instead holds the seeds'
    parameters stacked on a leading axis (shape (R, ...)) under the same names, with the same three name
    lists: a batchable method must use parameters and gradients element-wise only.
    """

    family: ClassVar[str] = "grokking"
    #: True when every hook is element-wise over parameters, so R seeds can train as one program on a
    #: leading run axis with results identical to R separate runs. Leave False when in doubt.
    batchable: ClassVar[bool] = False

    @abstractmethod
    def configure(
        self, model: OneLayerTransformer, params: dict[str, torch.nn.Parameter], info: TrainingInfo
    ) -> Configured:
        """Required. The optimizer over `params` (the model's named parameters), optionally with a scheduler.

        Called once per run, before training; a good place to create per-run state (gradient filters).
        """

    def after_backward(self, model: OneLayerTransformer, step: int) -> None:
        """Optional. Called after each backward pass, before the optimizer step: may rewrite ``p.grad``.

        `step` counts optimizer steps taken so far (0 on the first step). Gradient filters live here.
        """

    def prepare(
        self, model: OneLayerTransformer, train_x: torch.Tensor, train_y: torch.Tensor, info: TrainingInfo
    ) -> int:
        """Optional. Work before training, on the training split only; returns the steps it spent.

        The steps returned count against the budget (training starts at that step); it must be an int
        between 0 and ``info.steps``. Its FLOPs are measured. A method that overrides this never trains seeds
        as one program.
        """
        return 0

    def training_examples(self, info: TrainingInfo) -> torch.Tensor | None:
        """Optional. Which examples of the training split the model trains on: None (the default) for all.

        Called once, after :meth:`prepare`: a 1-D integer tensor of distinct indices into ``prepare``'s
        ``train_x`` (at least one, each in ``[0, info.n_train)``). The harness then draws its training
        batches from those examples only (the whole subset when the task trains full-batch, else
        ``min(info.batch_size, len(indices))`` a step); the others are the method's to use as held-in data.
        Checked like every return value. A method that overrides this never trains seeds as one program.
        """
        return None

    def overhead_flops_per_step(self, model: OneLayerTransformer) -> float:
        """Optional. FLOPs the method claims to add to each step beyond forward+backward (optimizer, filters).

        A cross-check only: the harness measures the method's FLOPs itself (``method_flops``, which enters
        ``flops`` and ``gflops_to_target``) and records this claim beside it as ``declared_overhead_flops``.
        Must be finite and >= 0.
        """
        return 0.0
