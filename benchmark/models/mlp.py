"""Multi-layer perceptrons for the pruning tasks: a plain ReLU MLP and MNIST-1D's residual MLP.

Layers are named `fc1`, `fc2`, ... (output layer last) so that per-layer metrics read the same across
models. :meth:`MLP.prunable_names` states which weight tensors pruning may touch; biases are never in it.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


class MLP(nn.Module):
    """`in -> hidden[0] -> ... -> hidden[-1] -> out`, ReLU between layers, PyTorch's default init.

    With ``residual=True`` every hidden layer after the first adds its input back (`h = h + relu(W h + b)`),
    as the `SparseMLP` of the MNIST-1D lottery-ticket notebook does; consecutive hidden widths must then
    be equal.
    """

    def __init__(self, in_features: int, hidden: Sequence[int], out_features: int, residual: bool = False) -> None:
        super().__init__()
        if not hidden:
            raise ValueError("an MLP needs at least one hidden layer")
        if residual and len(set(hidden)) != 1:
            raise ValueError(f"a residual MLP needs equal hidden widths, got {list(hidden)}")
        widths = [in_features, *hidden, out_features]
        self.residual = residual
        self.depth = len(widths) - 1
        for i in range(self.depth):
            self.add_module(f"fc{i + 1}", nn.Linear(widths[i], widths[i + 1]))

    def layers(self) -> list[nn.Linear]:
        return [getattr(self, f"fc{i + 1}") for i in range(self.depth)]

    def prunable_names(self, include_output: bool = False) -> list[str]:
        """Parameter names of the prunable weight matrices, input side first."""
        count = self.depth if include_output else self.depth - 1
        return [f"fc{i + 1}.weight" for i in range(count)]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        layers = self.layers()
        h = torch.relu(layers[0](x))
        for layer in layers[1:-1]:
            out = torch.relu(layer(h))
            h = h + out if self.residual else out
        return layers[-1](h)
