"""Nanda et al.'s one-layer transformer for modular arithmetic, computing only the `=` position.

Architecture (Nanda et al. 2023): learned token and position embeddings, one attention block (4 heads of
32 for d_model 128), a ReLU MLP (512), no LayerNorm, untied unembedding, Gaussian init with std
1/sqrt(d_model) (1/sqrt(d_vocab) for the unembedding). With a single layer the logits at `=` depend only on
the query at `=` and the keys/values of the three tokens, so computing the other positions is wasted work:
leaving them out is exact and 2.3x cheaper.
"""

from __future__ import annotations

import math

import torch
from torch import nn


class OneLayerTransformer(nn.Module):
    def __init__(self, p: int, d_model: int = 128, n_heads: int = 4, d_mlp: int = 512, n_ctx: int = 3) -> None:
        super().__init__()
        if d_model % n_heads:
            raise ValueError(f"d_model {d_model} is not divisible by n_heads {n_heads}")
        self.p, self.d_model, self.n_heads, self.d_mlp, self.n_ctx = p, d_model, n_heads, d_mlp, n_ctx
        self.d_head = d_model // n_heads
        d_vocab = p + 1  # the p residues and the `=` token
        self.embed = nn.Parameter(torch.randn(d_vocab, d_model) / math.sqrt(d_model))
        self.pos = nn.Parameter(torch.randn(n_ctx, d_model) / math.sqrt(d_model))
        self.w_q = nn.Parameter(torch.randn(d_model, d_model) / math.sqrt(d_model))
        self.w_k = nn.Parameter(torch.randn(d_model, d_model) / math.sqrt(d_model))
        self.w_v = nn.Parameter(torch.randn(d_model, d_model) / math.sqrt(d_model))
        self.w_o = nn.Parameter(torch.randn(d_model, d_model) / math.sqrt(d_model))
        self.w_in = nn.Parameter(torch.randn(d_mlp, d_model) / math.sqrt(d_model))
        self.b_in = nn.Parameter(torch.zeros(d_mlp))
        self.w_out = nn.Parameter(torch.randn(d_model, d_mlp) / math.sqrt(d_model))
        self.b_out = nn.Parameter(torch.zeros(d_model))
        self.unembed = nn.Parameter(torch.randn(d_model, p) / math.sqrt(d_vocab))

    #: Names of the hidden weight matrices (attention and MLP), as opposed to embeddings and unembedding:
    #: optimizers such as Muon treat the two kinds differently.
    HIDDEN_MATRICES = ("w_q", "w_k", "w_v", "w_o", "w_in", "w_out")
    EMBEDDINGS = ("embed", "pos")
    UNEMBEDDING = ("unembed",)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """Logits over the p answers at the `=` position; `tokens` is (batch, 3)."""
        batch = tokens.shape[0]
        x = self.embed[tokens] + self.pos  # (B, 3, d)
        last = x[:, -1]  # (B, d): the `=` position
        q = (last @ self.w_q.T).view(batch, self.n_heads, 1, self.d_head)
        k = (x @ self.w_k.T).view(batch, self.n_ctx, self.n_heads, self.d_head).transpose(1, 2)
        v = (x @ self.w_v.T).view(batch, self.n_ctx, self.n_heads, self.d_head).transpose(1, 2)
        attn = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(self.d_head), dim=-1)  # (B, H, 1, 3)
        z = (attn @ v).reshape(batch, self.d_model)
        resid = last + z @ self.w_o.T
        resid = resid + torch.relu(resid @ self.w_in.T + self.b_in) @ self.w_out.T + self.b_out
        return resid @ self.unembed

    def forward_flops_per_example(self) -> int:
        """Multiply-adds x2 of one forward pass at the `=` position (the analytic FLOP count)."""
        d, h, dh, m, c = self.d_model, self.n_heads, self.d_head, self.d_mlp, self.n_ctx
        projections = 2 * d * d * (1 + 2 * c)  # q at `=`, k and v at every position
        attention = 2 * h * c * dh * 2  # scores and mixing
        output = 2 * d * d
        mlp = 2 * 2 * d * m
        unembed = 2 * d * self.p
        return projections + attention + output + mlp + unembed
