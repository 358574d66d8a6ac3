"""Gated attention MIL (Ilse et al. 2018) on padded batches of bags, with regulariser hook points.

Architecture: an instance MLP encoder (Linear + ReLU per layer), gated attention pooling
``a = softmax_n(w^T [tanh(V h_n) * sigmoid(U h_n)])`` over the real instances of each bag, and a linear
head on the pooled embedding giving one bag logit (BCE-with-logits). Bags are padded to a common length
with a boolean mask; padded or masked-out instances are excluded from the softmax, so an instance can be
*removed* by clearing its mask bit.

The hook points are where MIL-Dropout and PDL put their layers: after each ReLU of the encoder
(``instance_hook(h, mask, layer)``) and on the pre-softmax attention logits (``attention_hook``). The model
calls them only when given, and the harness gives them only in training, so evaluation never depends on
the regulariser.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import nn

InstanceHook = Callable[[torch.Tensor, torch.Tensor, int], tuple[torch.Tensor, torch.Tensor]]
AttentionHook = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass
class MILOutput:
    logits: torch.Tensor  # (B,) bag logits
    attention: torch.Tensor  # (B, N) attention weights, 0 on masked instances
    mask: torch.Tensor  # (B, N) the instance mask after the hooks


class GatedABMIL(nn.Module):
    def __init__(self, in_features: int, hidden: Sequence[int] = (128, 128), attention_dim: int = 64) -> None:
        super().__init__()
        widths = [in_features, *hidden]
        self.encoder = nn.ModuleList(nn.Linear(a, b) for a, b in zip(widths[:-1], widths[1:], strict=True))
        self._widths = tuple(int(width) for width in hidden)
        embed = widths[-1]
        self.attention_v = nn.Linear(embed, attention_dim)
        self.attention_u = nn.Linear(embed, attention_dim)
        self.attention_w = nn.Linear(attention_dim, 1)
        self.head = nn.Linear(embed, 1)

    @property
    def widths(self) -> tuple[int, ...]:
        """Output width of each encoder layer, i.e. the feature size each instance hook sees."""
        return self._widths

    def forward(
        self,
        x: torch.Tensor,
        mask: torch.Tensor,
        instance_hook: InstanceHook | None = None,
        attention_hook: AttentionHook | None = None,
    ) -> MILOutput:
        h = x
        for index, layer in enumerate(self.encoder):
            h = torch.relu(layer(h))
            if instance_hook is not None:
                h, mask = instance_hook(h, mask, index)
        scores = self.attention_w(torch.tanh(self.attention_v(h)) * torch.sigmoid(self.attention_u(h))).squeeze(-1)
        if attention_hook is not None:
            scores = attention_hook(scores, mask)
        scores = scores.masked_fill(~mask, float("-inf"))
        attention = torch.softmax(scores, dim=1)
        pooled = torch.bmm(attention.unsqueeze(1), h).squeeze(1)
        return MILOutput(self.head(pooled).squeeze(-1), attention, mask)
