"""What a mil_dropout submitter reads: the method base, what ``make_dropout`` is told and what it returns.

A method subclasses :class:`MILDropoutMethod`, parameterised by its hyperparameter model, and implements
:meth:`MILDropoutMethod.make_dropout`::

    class MyDrop(MILDropoutMethod[MyDropHP]):
        name = "my-drop"

        def make_dropout(self, ctx):
            return MyDropModule(self.hp.p)          # an nn.Module with instance(h, mask, layer)

``make_dropout`` is called once per training, after the harness built the gated-attention MIL model from the
run seed (so every method starts from the same initial weights and sees the same batches). The module it
returns is a ``torch.nn.Module`` implementing :class:`InstanceRegulariser`; its parameters, if any, join the
optimiser; it is moved to ``ctx.device`` and put in training mode. Its hooks are called **only in training**;
evaluation calls none, so a method is the identity at test time by construction. The method never sees test
bags, perturbations or labels other than through the training batches, nor the seed that draws them. Every
hook's return is checked (shapes, dtypes, devices, finite features; attention logits may be -inf, never NaN
or +inf) and a violation fails the run with a one-line reason; the harness measures the hooks' FLOPs
(``method_flops``). A training loss that becomes NaN or infinite ends the run as ``diverged``.
"""

from __future__ import annotations

from abc import abstractmethod
from dataclasses import dataclass
from typing import ClassVar, Protocol

import torch

from phenomena_bench.core.method import HP, Method

__all__ = ["AttentionRegulariser", "DropoutContext", "EpochScheduled", "InstanceRegulariser", "MILDropoutMethod"]


@dataclass(frozen=True)
class DropoutContext:
    """What ``make_dropout`` learns about a training: shapes, budget and training bag sizes, no test data."""

    #: Features the instance hook sees after each encoder layer (index = ``layer``).
    widths: tuple[int, ...]
    num_epochs: int
    steps_per_epoch: int
    #: Instances in each training bag.
    train_bag_sizes: tuple[int, ...]
    device: str
    #: The seed of the method's own random stream (``core.seeds.method_seed`` of the run seed), never the seed
    #: of the bags or the initialisation. Torch's, NumPy's and Python's global generators are seeded from it
    #: and the fold after the model is built, before ``make_dropout``: a module drawing ``torch.rand`` is
    #: reproducible, and its draws are unrelated to the data.
    rng_seed: int


class InstanceRegulariser(Protocol):
    """The required hook of the module ``make_dropout`` returns (the module must be an ``nn.Module``)."""

    def instance(self, h: torch.Tensor, mask: torch.Tensor, layer: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Called after the ReLU of encoder layer `layer`, in training only; returns the new ``(h, mask)``.

        ``h`` is float (bags, instances, features), ``mask`` bool (bags, instances), True for real instances.
        It may rescale or zero features, or clear mask bits (which removes instances from the attention
        softmax). It may not change shapes, mark padding as real, or leave a bag with no instance: the harness
        checks each call and raises :class:`~phenomena_bench.core.errors.MethodError` naming the violation.
        """
        ...


class AttentionRegulariser(InstanceRegulariser, Protocol):
    """Optional: a module that also defines ``attention`` has it called on the attention logits."""

    def attention(self, logits: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """The pre-softmax attention logits (bags, instances) in, logits of the same shape out (training only)."""
        ...


class EpochScheduled(InstanceRegulariser, Protocol):
    """Optional: a module that also defines ``on_epoch_start`` is told each epoch (for rate schedules)."""

    def on_epoch_start(self, epoch: int, num_epochs: int) -> None:
        """Called before each training epoch, `epoch` counting from 0 to ``num_epochs - 1``."""
        ...


class MILDropoutMethod(Method[HP]):
    """Base of MIL regularisers: implement :meth:`make_dropout` (see the module docstring)."""

    family: ClassVar[str] = "mil_dropout"
    #: Whether several trainings (of one run and of several seeds) may train as one stacked program. Each
    #: model still gets its own module, hook calls on exactly its own padded batch, and its own global random
    #: state; what is shared is the process, so a method keeping state outside its module (class attributes,
    #: module globals) must leave this False.
    batchable: ClassVar[bool] = False

    @abstractmethod
    def make_dropout(self, ctx: DropoutContext) -> InstanceRegulariser:
        """A fresh ``nn.Module`` implementing :class:`InstanceRegulariser` for one training."""
