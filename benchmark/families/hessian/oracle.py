"""The counted Hessian-vector-product oracle handed to spectrum estimators.

An estimator of the hessian family sees the Hessian only through this object: it multiplies H (the float64
Hessian of a fixed network's full-batch training loss, parameters flattened) by a vector of shape (P,) or a
block of shape (P, b), charges one HVP per column *before* computing, and refuses — raising
:class:`BudgetExceededError`, and remembering that it did — any call that would go past the budget. The
refusal is recorded by the harness as ``budget_exceeded`` even if the estimator catches the exception, so
over-spending can never be silently truncated into a result.

HVPs here are reverse-over-reverse (Pearlmutter's trick on the stored gradient graph, as PyHessian does):
the gradient graph is built once per oracle and reused, the fastest way for small networks. The dense
ground truth is built independently with forward-over-reverse `torch.func` (see
:mod:`phenomena_bench.families.hessian.truth`), so the probe check between the two compares two different AD paths.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import overload

import numpy as np
import torch
from scipy.sparse.linalg import LinearOperator

from phenomena_bench.core.metering import unmetered

BlockHVP = Callable[[torch.Tensor], torch.Tensor]


class BudgetExceededError(RuntimeError):
    """An estimator asked for more HVPs than its budget allows."""


def reverse_over_reverse_hvp(loss_fn: Callable[[torch.Tensor], torch.Tensor], theta: torch.Tensor) -> BlockHVP:
    """A function mapping a block V (P × b) to H V, H the Hessian of `loss_fn` at `theta`.

    The first derivative graph is built once; every product is one more backward pass through it. Blocks
    use autograd's batched gradients (vmap over the backward pass).
    """
    theta = theta.detach().clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(loss_fn(theta), theta, create_graph=True)

    def hvp(block: torch.Tensor) -> torch.Tensor:
        if block.shape[1] == 1:
            (out,) = torch.autograd.grad(grad, theta, grad_outputs=block[:, 0], retain_graph=True)
            return out.unsqueeze(1)
        (out,) = torch.autograd.grad(
            grad, theta, grad_outputs=block.T.contiguous(), retain_graph=True, is_grads_batched=True
        )
        return out.T

    return hvp


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
        block = tensor if tensor.ndim == 2 else tensor.unsqueeze(1)
        count = block.shape[1]
        self.requested += count
        if self.used + count > self.budget:
            self.refused = True
            raise BudgetExceededError(
                f"HVP budget exceeded: asked for {count} product(s) with {self.remaining} of {self.budget} left"
            )
        block = block.to(device=self.device, dtype=self.dtype)
        if not torch.isfinite(block).all():
            raise ValueError("HVP oracle input holds NaN or infinity")
        self.used += count
        start = time.perf_counter()
        with torch.no_grad(), unmetered():  # charged as HVPs, not as the estimator's FLOPs
            out = self._hvp(block).detach()
        self.compute_s += time.perf_counter() - start
        out = out if tensor.ndim == 2 else out[:, 0]
        if as_numpy:
            return out.cpu().numpy()
        return out.to(tensor.device)

    def as_linear_operator(self) -> LinearOperator:
        """A SciPy ``LinearOperator`` view whose products are charged to this oracle."""
        return LinearOperator(
            (self.dim, self.dim),
            matvec=lambda x: self(np.asarray(x, dtype=np.float64).reshape(-1)),
            matmat=lambda x: self(np.asarray(x, dtype=np.float64)),
            rmatvec=lambda x: self(np.asarray(x, dtype=np.float64).reshape(-1)),
            dtype=np.float64,
        )
