"""Modular-arithmetic datasets for grokking: every pair (a, b) with its answer (a op b) mod p.

The inputs are the three tokens ``a b =`` (the ``=`` token is ``p``); the label is the answer in
``[0, p)``. The train/held-out split is a random permutation drawn from the seed alone, so every method
run with the same seed sees exactly the same split (paired comparisons; :func:`_make_split` is harness-private), and
the held-out part is every
pair not trained on (Power et al. 2022; Nanda et al. 2023).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from phenomena_bench.families.grokking.spec import Operation  # the task spec owns the vocabulary


@dataclass(frozen=True)
class ModularSplit:
    train_x: torch.Tensor  # (n_train, 3) int64 tokens
    train_y: torch.Tensor  # (n_train,) int64 answers
    test_x: torch.Tensor
    test_y: torch.Tensor

    def to(self, device: str | torch.device) -> ModularSplit:
        return ModularSplit(*(t.to(device) for t in (self.train_x, self.train_y, self.test_x, self.test_y)))


def all_pairs(operation: Operation, p: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Every (a, b) the operation is defined on, as `a b =` tokens, and the answers.

    Division ranges b over 1..p-1 (b = 0 has no inverse) and uses Fermat's little theorem, so p must be
    prime (the spec checks it).
    """
    a = torch.arange(p).repeat_interleave(p)
    b = torch.arange(p).repeat(p)
    if operation == "div":
        keep = b != 0
        a, b = a[keep], b[keep]
    if operation == "add":
        y = (a + b) % p
    elif operation == "sub":
        y = (a - b) % p
    elif operation == "div":
        inverse = torch.tensor([pow(int(v), p - 2, p) for v in range(p)])
        y = (a * inverse[b]) % p
    else:
        raise ValueError(f"unknown operation {operation!r}")
    x = torch.stack([a, b, torch.full_like(a, p)], dim=1)
    return x, y


def _make_split(operation: Operation, p: int, train_fraction: float, seed: int) -> ModularSplit:
    """The seed's train/held-out split. Harness-private: only the grokking harness calls it (a method is never
    handed the seed that fixes the split, and nothing it is handed returns the held-out pairs)."""
    x, y = all_pairs(operation, p)
    generator = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(x), generator=generator)
    n_train = round(train_fraction * len(x))
    train, test = order[:n_train], order[n_train:]
    return ModularSplit(x[train], y[train], x[test], y[test])
