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


class StackedGatedABMIL(nn.Module):
    """R independent :class:`GatedABMIL` models as one module: every parameter gains a leading R axis.

    Why: a MIL run trains several models (clean, label-noise draws, poison test; across seeds, several runs)
    whose steps are small; stacking turns R small programs into one. Each model's step is a (T, F) block of
    instance rows; ``bags`` (R, B, T) says which row belongs to which bag slot, so the rows may be laid out
    in any order (the harness lays each model's out as its padded batch, see its ``_Step``) and bags of
    different sizes and models with different batches share one program. The attention softmax of a bag runs
    over its own real rows only (``bags & mask``), so a padding row or slot changes no output and receives no
    gradient. Each slice of a parameter sees only its model's rows, so the
    gradient of the sum of the R losses is each model's own gradient.
    """

    attention_v_weight: nn.Parameter
    attention_v_bias: nn.Parameter
    attention_u_weight: nn.Parameter
    attention_u_bias: nn.Parameter
    attention_w_weight: nn.Parameter
    attention_w_bias: nn.Parameter
    head_weight: nn.Parameter
    head_bias: nn.Parameter

    def __init__(self, models: Sequence[GatedABMIL]) -> None:
        super().__init__()
        first = models[0]
        self._widths = first.widths
        self.encoder_weight = nn.ParameterList(
            _stack([_layer(m, i).weight for m in models]) for i in range(len(first.encoder))
        )
        self.encoder_bias = nn.ParameterList(
            _stack([_layer(m, i).bias for m in models]) for i in range(len(first.encoder))
        )
        names = ("attention_v", "attention_u", "attention_w", "head")
        for name in names:
            self.register_parameter(f"{name}_weight", _stack([getattr(m, name).weight for m in models]))
            self.register_parameter(f"{name}_bias", _stack([getattr(m, name).bias for m in models]))
        self._shape: tuple[int, tuple[int, ...], int] = (
            _layer(first, 0).in_features,
            tuple(int(w) for w in first.widths),
            first.attention_v.out_features,
        )

    @property
    def widths(self) -> tuple[int, ...]:
        return self._widths

    def forward(
        self,
        x: torch.Tensor,
        bags: torch.Tensor,
        mask: torch.Tensor,
        instance_hook: InstanceHook | None = None,
        attention_hook: AttentionHook | None = None,
    ) -> MILOutput:
        """Bag logits (R, B) and attention (R, B, T) for instance rows `x` (R, T, F); `mask` (R, T) marks
        real rows. The hooks, when given, take and return the stacked form ((R, T, D), (R, T))."""
        h = x
        for index, (weight, bias) in enumerate(zip(self.encoder_weight, self.encoder_bias, strict=True)):
            h = torch.relu(_linear(h, weight, bias))
            if instance_hook is not None:
                h, mask = instance_hook(h, mask, index)
        gate = torch.tanh(_linear(h, self.attention_v_weight, self.attention_v_bias)) * torch.sigmoid(
            _linear(h, self.attention_u_weight, self.attention_u_bias)
        )
        scores = _linear(gate, self.attention_w_weight, self.attention_w_bias).squeeze(-1)
        if attention_hook is not None:
            scores = attention_hook(scores, mask)
        member = bags & mask.unsqueeze(1)
        # An empty slot (a model with fewer bags this step) gets uniform weights, not NaN, and no loss weight.
        empty = ~member.any(dim=2, keepdim=True)
        logits = scores.unsqueeze(1).masked_fill(~member, float("-inf")).masked_fill(empty, 0.0)
        attention = torch.softmax(logits, dim=2)
        pooled = torch.bmm(attention, h)
        return MILOutput(_linear(pooled, self.head_weight, self.head_bias).squeeze(-1), attention, mask)

    def unstacked(self, r: int) -> GatedABMIL:
        """Model r as a plain :class:`GatedABMIL` (a copy, for evaluation)."""
        in_features, hidden, attention_dim = self._shape
        model = GatedABMIL(in_features, hidden, attention_dim).to(self.head_weight.device)
        with torch.no_grad():
            for i in range(len(model.encoder)):
                _layer(model, i).weight.copy_(self.encoder_weight[i][r])
                _layer(model, i).bias.copy_(self.encoder_bias[i][r])
            for name in ("attention_v", "attention_u", "attention_w", "head"):
                getattr(model, name).weight.copy_(getattr(self, f"{name}_weight")[r])
                getattr(model, name).bias.copy_(getattr(self, f"{name}_bias")[r])
        return model


def _layer(model: GatedABMIL, index: int) -> nn.Linear:
    """Encoder layer `index` of `model`, typed (a ModuleList holds any Module)."""
    layer = model.encoder[index]
    assert isinstance(layer, nn.Linear)
    return layer


def _stack(tensors: Sequence[torch.Tensor]) -> nn.Parameter:
    return nn.Parameter(torch.stack([t.detach() for t in tensors]).clone())


def _linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """A stacked ``nn.Linear``: x (R, T, in), weight (R, out, in), bias (R, out) -> (R, T, out)."""
    return torch.baddbmm(bias.unsqueeze(1), x, weight.transpose(1, 2))
