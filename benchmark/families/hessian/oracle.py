"""The counted Hessian-vector-product oracle handed to spectrum estimators.

An estimator of the hessian family sees the Hessian only through this object: it multiplies H (the float64
Hessian of a fixed network's full-batch training loss, parameters flattened) by a vector of shape (P,) or a
block of shape (P, b), charges one HVP per column *before* computing, and refuses — raising
:class:`BudgetExceededError`, and remembering that it did — any call that would go past the budget. The
refusal is recorded by the harness as ``budget_exceeded`` even if the estimator catches the exception, so
over-spending can never be silently truncated into a result.

HVPs here are reverse-over-reverse (Pearlmutter's trick on the stored gradient graph, as PyHessian does):
the gradient graph is built once per run and reused, the fastest way for small networks. A block of columns
is one batched backward pass (autograd's ``is_grads_batched``, a vmap over the backward), which is where the
harness gains: the estimator draws of a run ask for their products together (see :class:`LockstepHVP`). On
the default checkpoint (P = 3466, 500 samples, one CPU thread) a column costs ~3 ms alone and ~1.6-2 ms in a
block of 20-60, but more again in blocks of 128 or more (the activations leave the cache), so blocks are
cut at :data:`MAX_BLOCK` columns. The dense ground truth is built independently with forward-over-reverse
`torch.func` (see :mod:`phenomena_bench.families.hessian.truth`), so the probe check between the two compares
two different AD paths.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import overload

import numpy as np
import torch
from scipy.sparse.linalg import LinearOperator

from phenomena_bench.core.lockstep import Lockstep
from phenomena_bench.core.metering import unmetered

BlockHVP = Callable[[torch.Tensor], torch.Tensor]

#: Most columns computed in one batched backward pass (see the module doc for the measurement).
MAX_BLOCK = 64


class BudgetExceededError(RuntimeError):
    """An estimator asked for more HVPs than its budget allows."""


def reverse_over_reverse_hvp(loss_fn: Callable[[torch.Tensor], torch.Tensor], theta: torch.Tensor) -> BlockHVP:
    """A function mapping a block V (P × b) to H V, H the Hessian of `loss_fn` at `theta`.

    The first derivative graph is built once; every product is one more backward pass through it. Blocks
    use autograd's batched gradients (vmap over the backward pass).
    """
    theta = theta.detach().clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(loss_fn(theta), theta, create_graph=True)

    def product(block: torch.Tensor) -> torch.Tensor:
        if block.shape[1] == 1:
            (out,) = torch.autograd.grad(grad, theta, grad_outputs=block[:, 0], retain_graph=True)
            return out.unsqueeze(1)
        (out,) = torch.autograd.grad(
            grad, theta, grad_outputs=block.T.contiguous(), retain_graph=True, is_grads_batched=True
        )
        return out.T

    def hvp(block: torch.Tensor) -> torch.Tensor:
        if block.shape[1] <= MAX_BLOCK:
            return product(block)
        return torch.cat([product(part) for part in block.split(MAX_BLOCK, dim=1)], dim=1)

    return hvp


class LockstepHVP:
    """The product function of one estimator draw whose oracle shares a :class:`Lockstep` with other draws.

    Each call asks the lockstep for H·block; its ``serve`` (:func:`serve_blocks`) stacks the blocks of every
    waiting draw side by side and computes them in one pass. The time this draw spent waiting for the other
    draws is kept in ``idle_s`` (the wall clock of its own code, plus its share of the stacked products, is
    then the draw's wall clock, comparable with a draw run alone). Outside a lockstep run the lockstep serves
    the one block directly: the same code with one draw.
    """

    def __init__(self, lockstep: Lockstep[torch.Tensor, tuple[torch.Tensor, float]]) -> None:
        self._lockstep = lockstep
        self.idle_s = 0.0

    def __call__(self, block: torch.Tensor) -> torch.Tensor:
        start = time.perf_counter()
        out, served_s = self._lockstep.ask(block)
        self.idle_s += max(0.0, time.perf_counter() - start - served_s)
        return out


def serve_blocks(hvp: BlockHVP, blocks: list[torch.Tensor]) -> list[tuple[torch.Tensor, float]]:
    """H·[B_1 … B_R] as one block product, split back per request, each with its share of the seconds
    (in proportion to its columns). Every block is already float64 on the oracle's device."""
    start = time.perf_counter()
    widths = [block.shape[1] for block in blocks]
    with torch.no_grad():
        out = hvp(blocks[0] if len(blocks) == 1 else torch.cat(blocks, dim=1)).detach()
    seconds = time.perf_counter() - start
    total = sum(widths)
    parts = out.split(widths, dim=1)
    return [(part.contiguous(), seconds * width / total) for part, width in zip(parts, widths, strict=True)]


class HVPOracle:
    """Multiply the hidden Hessian by vectors, at most `budget` of them in all.

    Accepts a torch tensor (returned on the tensor's own device) or a NumPy array (returned as a NumPy
    float64 array), of shape (P,) or (P, b). ``oracle.used``, ``oracle.remaining`` and ``oracle.budget``
    tell an estimator where it stands; ``oracle.dim`` is P; ``oracle.device`` is where products are
    computed (estimators that keep their vectors there avoid copies). ``oracle.requested`` counts every
    product asked for, refused ones included, so an overrun can say by how much.
    """

    dtype = torch.float64

    def __init__(self, hvp: BlockHVP, dim: int, budget: int, device: str | torch.device) -> None:
        if budget < 0:
            raise ValueError("budget must be >= 0")
        self._hvp = hvp
        self.dim = dim
        self.budget = budget
        self.device = torch.device(device)
        self.used = 0
        self.requested = 0
        self.refused = False
        self.compute_s = 0.0

    @property
    def remaining(self) -> int:
        return self.budget - self.used

    @overload
    def __call__(self, v: torch.Tensor) -> torch.Tensor: ...
    @overload
    def __call__(self, v: np.ndarray) -> np.ndarray: ...
    def __call__(self, v: torch.Tensor | np.ndarray) -> torch.Tensor | np.ndarray:
        """H v for a vector (P,) or H V for a block (P, b); NumPy in gives NumPy out, a tensor gives a tensor."""
        as_numpy = isinstance(v, np.ndarray)
        tensor = torch.from_numpy(np.asarray(v, dtype=np.float64)) if as_numpy else v
        if not isinstance(tensor, torch.Tensor):
            raise TypeError(f"HVP oracle takes a torch tensor or a NumPy array, not {type(v).__name__}")
        if tensor.ndim not in (1, 2) or tensor.shape[0] != self.dim or (tensor.ndim == 2 and tensor.shape[1] < 1):
            raise ValueError(f"HVP oracle takes shape ({self.dim},) or ({self.dim}, b>=1), got {tuple(tensor.shape)}")
        count = tensor.shape[1] if tensor.ndim == 2 else 1
        self.requested += count
        if self.used + count > self.budget:
            self.refused = True
            raise BudgetExceededError(
                f"HVP budget exceeded: asked for {count} product(s) with {self.remaining} of {self.budget} left"
            )
        start = time.perf_counter()
        # The harness's own work, its checks included, is charged as HVPs, not as the estimator's FLOPs.
        with torch.no_grad(), unmetered():
            block = (tensor if tensor.ndim == 2 else tensor.unsqueeze(1)).to(device=self.device, dtype=self.dtype)
            if not torch.isfinite(block).all():
                raise ValueError("HVP oracle input holds NaN or infinity")
            self.used += count
            out = self._hvp(block).detach()
            out = out if tensor.ndim == 2 else out[:, 0]
            result = out.cpu().numpy() if as_numpy else out.to(tensor.device)
        self.compute_s += time.perf_counter() - start
        return result

    def as_linear_operator(self) -> LinearOperator:
        """A SciPy ``LinearOperator`` view whose products are charged to this oracle."""
        return LinearOperator(
            (self.dim, self.dim),
            matvec=lambda x: self(np.asarray(x, dtype=np.float64).reshape(-1)),
            matmat=lambda x: self(np.asarray(x, dtype=np.float64)),
            rmatvec=lambda x: self(np.asarray(x, dtype=np.float64).reshape(-1)),
            dtype=np.float64,
        )
