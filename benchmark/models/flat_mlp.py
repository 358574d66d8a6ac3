"""A fully connected network evaluated from one flat parameter vector.

The Hessian family differentiates the loss twice with respect to *all* parameters at once, in float64. Keeping
the parameters as a single flat tensor θ (instead of an ``nn.Module`` with many leaves) makes the Hessian a plain
P×P matrix whose rows and columns have a fixed, documented order, makes Hessian-vector products one autograd
call, and lets `torch.func` build the dense Hessian column block by column block. With no hidden layer and the
squared-error loss the model is linear regression, whose Hessian is known in closed form (used by the tests).

Layout of θ: for each layer in order, the weight matrix (out × in, row-major) followed by its bias (out).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch

Activation = Literal["tanh", "relu"]


@dataclass(frozen=True)
class FlatMLP:
    """Layer widths ``sizes = (in, hidden..., out)`` with one activation between layers (none after the last)."""

    sizes: tuple[int, ...]
    activation: Activation = "tanh"

    def __post_init__(self) -> None:
        if len(self.sizes) < 2 or any(s < 1 for s in self.sizes):
            raise ValueError(f"sizes must list at least an input and an output width >= 1, got {self.sizes}")

    @property
    def shapes(self) -> list[tuple[tuple[int, int], tuple[int]]]:
        """(weight shape, bias shape) per layer."""
        pairs = zip(self.sizes[:-1], self.sizes[1:], strict=False)
        return [((fan_out, fan_in), (fan_out,)) for fan_in, fan_out in pairs]

    @property
    def num_params(self) -> int:
        return sum(w[0] * w[1] + b[0] for w, b in self.shapes)

    def init(self, generator: torch.Generator, dtype: torch.dtype = torch.float64) -> torch.Tensor:
        """PyTorch's default ``nn.Linear`` initialisation (uniform ±1/√fan_in for weights and biases), drawn
        from `generator` so that a seed fixes θ0 exactly."""
        chunks = []
        for (fan_out, fan_in), _ in self.shapes:
            bound = 1.0 / math.sqrt(fan_in)
            weight = (torch.rand(fan_out * fan_in, generator=generator, dtype=dtype) * 2 - 1) * bound
            bias = (torch.rand(fan_out, generator=generator, dtype=dtype) * 2 - 1) * bound
            chunks += [weight, bias]
        return torch.cat(chunks)

    def forward(self, theta: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """Logits (or regression outputs) for inputs `x` (n × in) under the flat parameters `theta` (P,)."""
        if theta.shape != (self.num_params,):
            raise ValueError(f"theta has shape {tuple(theta.shape)}, expected ({self.num_params},)")
        offset = 0
        h = x
        last = len(self.shapes) - 1
        for index, ((fan_out, fan_in), _) in enumerate(self.shapes):
            weight = theta[offset : offset + fan_out * fan_in].view(fan_out, fan_in)
            offset += fan_out * fan_in
            bias = theta[offset : offset + fan_out]
            offset += fan_out
            h = torch.nn.functional.linear(h, weight, bias)
            if index < last:
                h = torch.tanh(h) if self.activation == "tanh" else torch.relu(h)
        return h
