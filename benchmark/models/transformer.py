"""Nanda et al.'s one-layer transformer for modular arithmetic, computing only the `=` position.

Architecture (Nanda et al. 2023): learned token and position embeddings, one attention block (4 heads of
32 for d_model 128), a ReLU MLP (512), no LayerNorm, untied unembedding, Gaussian init with std
1/sqrt(d_model) (1/sqrt(d_vocab) for the unembedding). With a single layer the logits at `=` depend only on
the query at `=` and the keys/values of the three tokens, so computing the other positions is wasted work:
leaving them out is exact and 2.3x cheaper. And the attention's input at a position is embed[token] +
pos[position], one of only 3 (p + 1) vectors, so its projections are computed per (position, token), not per
example.
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
        # The attention block's input at position i is embed[token] + pos[i]: there are only 3 x (p + 1)
        # distinct inputs, so the query, key and value projections are computed once per (position, token)
        # and gathered, instead of once per example (the same numbers, 1.7x fewer FLOPs per example).
        inputs = (self.embed.unsqueeze(0) + self.pos.unsqueeze(1)).reshape(-1, self.d_model)  # (3 (p+1), d)
        index = tokens + torch.arange(self.n_ctx, device=tokens.device) * self.embed.shape[0]  # (B, 3)
        last = inputs[index[:, -1]]  # (B, d): the `=` position's input
        q = (inputs @ self.w_q.T)[index[:, -1]].view(batch, 1, self.n_heads, self.d_head)
        k = (inputs @ self.w_k.T)[index].view(batch, self.n_ctx, self.n_heads, self.d_head)
        v = (inputs @ self.w_v.T)[index].view(batch, self.n_ctx, self.n_heads, self.d_head)
        # One query against three keys per head: element-wise products and sums over (B, 3, H, d_head), not
        # a batched matmul of B x H products of shape (1, d_head) @ (d_head, 3), which ran at a tenth of the
        # matmul rate and took a fifth of the step on the CPU.
        attn = torch.softmax((q * k).sum(-1) / math.sqrt(self.d_head), dim=1)  # (B, 3, H)
        z = (attn.unsqueeze(-1) * v).sum(1).reshape(batch, self.d_model)
        resid = last + z @ self.w_o.T
        resid = resid + torch.relu(resid @ self.w_in.T + self.b_in) @ self.w_out.T + self.b_out
        return resid @ self.unembed

    def forward_flops_per_example(self) -> int:
        """Multiply-adds x2 of one forward pass at the `=` position (the analytic FLOP count), per example.

        The query, key and value projections of the 3 x (p + 1) distinct (position, token) inputs are
        computed once per batch; their cost is :meth:`forward_flops_per_batch`, not counted here.
        """
        d, h, dh, m, c = self.d_model, self.n_heads, self.d_head, self.d_mlp, self.n_ctx
        attention = 2 * h * c * dh * 2  # scores and mixing
        output = 2 * d * d
        mlp = 2 * 2 * d * m
        unembed = 2 * d * self.p
        return attention + output + mlp + unembed

    def forward_flops_per_batch(self) -> int:
        """The projections of every (position, token) input: paid once per forward pass, whatever its batch."""
        return 2 * self.d_model * self.d_model * 3 * self.n_ctx * self.embed.shape[0]
