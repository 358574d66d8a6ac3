"""The counted oracle a measure gets with each network: Hessian-vector products and per-example gradients.

Both act on the network's full-batch training cross-entropy at its trained parameters, in float64. HVPs are
served by the Hessian family's :class:`~phenomena_bench.families.hessian.oracle.HVPOracle` (the same
counting, refusal and NumPy/torch handling; its gradient graph is built only when the first product is
asked for, so a measure that never uses curvature pays nothing). Per-example gradients ∇ℓ_i(θ), rows of the
n × P Jacobian of the per-example losses, are counted one per example and refused past their budget with
the same :class:`~phenomena_bench.families.hessian.oracle.BudgetExceededError`; a refusal is remembered,
and the harness records the run as ``budget_exceeded`` even if the measure catches it.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from phenomena_bench.core.metering import unmetered
from phenomena_bench.families.hessian.checkpoints import loss_value
from phenomena_bench.families.hessian.oracle import BlockHVP, BudgetExceededError, HVPOracle, reverse_over_reverse_hvp
from phenomena_bench.models.flat_mlp import FlatMLP


class _LazyHVP:
    """A block-HVP function whose gradient graph is built on the first product."""

    def __init__(self, net: FlatMLP, theta: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> None:
        self._args = (net, theta, x, y)
        self._hvp: BlockHVP | None = None

    def __call__(self, block: torch.Tensor) -> torch.Tensor:
        if self._hvp is None:
            net, theta, x, y = self._args
            with torch.enable_grad():
                self._hvp = reverse_over_reverse_hvp(
                    lambda params: loss_value("cross_entropy", net.forward(params, x), y), theta
                )
        return self._hvp(block)


class MeasureOracle:
    """What a measure may ask about a network's training loss beyond its forward pass, within budgets.

    ``oracle.hvp`` is an :class:`HVPOracle` of the training-loss Hessian (``oracle.hvp.budget`` products).
    :meth:`example_gradients` returns per-example loss gradients (``gradient_budget`` rows in all);
    ``gradients_used`` counts them.
    """

    def __init__(
        self,
        net: FlatMLP,
        theta: torch.Tensor,
        x: torch.Tensor,
        y: torch.Tensor,
        hvp_budget: int,
        gradient_budget: int,
        device: str | torch.device,
    ) -> None:
        self._net, self._theta, self._x, self._y = net, theta, x, y
        self.hvp = HVPOracle(_LazyHVP(net, theta, x, y), net.num_params, hvp_budget, device)
        self.gradient_budget = gradient_budget
        self.gradients_used = 0
        self.gradients_refused = False

    @property
    def refused(self) -> bool:
        """Whether the measure asked for more than a budget allowed (then the run is over budget)."""
        return self.hvp.refused or self.gradients_refused

    def example_gradients(self, indices: Sequence[int] | torch.Tensor | None = None) -> torch.Tensor:
        """∇_θ ℓ(f_θ(x_i), y_i) for the training examples `indices` (all when None): a (k, P) float64 tensor.

        Charges k gradients before computing; refuses (raising :class:`BudgetExceededError`) past the budget.
        """
        n = self._x.shape[0]
        index = torch.arange(n) if indices is None else torch.as_tensor(indices, dtype=torch.long).reshape(-1)
        if index.numel() and (int(index.min()) < 0 or int(index.max()) >= n):
            raise ValueError(f"example indices must lie in [0, {n})")
        count = int(index.numel())
        if self.gradients_used + count > self.gradient_budget:
            self.gradients_refused = True
            left = self.gradient_budget - self.gradients_used
            raise BudgetExceededError(
                f"per-example gradient budget exceeded: asked for {count} with {left} of {self.gradient_budget} left"
            )
        self.gradients_used += count
        with unmetered():
            return _per_example_gradients(self._net, self._theta, self._x[index], self._y[index]).detach()


def _per_example_gradients(net: FlatMLP, theta: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    def one(params: torch.Tensor, xi: torch.Tensor, yi: torch.Tensor) -> torch.Tensor:
        return loss_value("cross_entropy", net.forward(params, xi.unsqueeze(0)), yi.unsqueeze(0))

    grads = torch.func.vmap(torch.func.grad(one), in_dims=(None, 0, 0))
    return grads(theta.detach(), x, y)


__all__ = ["BudgetExceededError", "HVPOracle", "MeasureOracle"]
