"""A grokking method whose `configure` takes fewer arguments than the harness passes."""

from __future__ import annotations

import torch

from phenomena_bench.families.grokking.api import GrokkingMethod


class WrongSignature(GrokkingMethod):  # type: ignore[type-arg]
    name = "wrong-signature"

    def configure(self, model):  # type: ignore[no-untyped-def, override]
        return torch.optim.SGD(model.parameters(), lr=1e-3)
