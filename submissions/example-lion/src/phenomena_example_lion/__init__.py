"""An example phenomena-bench submission: the Lion optimizer as a grokking method.

A grokking method subclasses `GrokkingMethod[Hyperparameters]` (its contract is all in
`phenomena_bench.families.grokking.api`), names itself, declares its hyperparameters as a Pydantic model
(recorded with every run and part of its content hash; `self.hp` is typed as that model) and returns an
optimizer from `configure`.
The harness owns the data, the model, the training loop and every score.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch
from pydantic import BaseModel, ConfigDict, Field

from phenomena_bench.families.grokking.api import GrokkingMethod, OneLayerTransformer, TrainingInfo


class LionOptimizer(torch.optim.Optimizer):
    """Lion: update = sign(beta1 * m + (1 - beta1) * g); m <- beta2 * m + (1 - beta2) * g."""

    def __init__(
        self, params: Iterable[torch.nn.Parameter], lr: float, betas: tuple[float, float], weight_decay: float
    ) -> None:
        super().__init__(params, {"lr": lr, "betas": betas, "weight_decay": weight_decay})

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> float | None:  # type: ignore[override]
        """One update of every parameter with a gradient (`closure` is ignored: torch types `step` by overloads)."""
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                m = self.state[p].setdefault("exp_avg", torch.zeros_like(p))
                update = (m * beta1 + p.grad * (1 - beta1)).sign_()
                p.mul_(1 - group["lr"] * group["weight_decay"]).add_(update, alpha=-group["lr"])
                m.mul_(beta2).add_(p.grad, alpha=1 - beta2)
        return None


class Hyperparameters(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    lr: float = Field(default=1e-4, gt=0, description="Lion wants ~3-10x less than AdamW's lr.")
    weight_decay: float = Field(default=10.0, ge=0, description="... and ~3-10x more weight decay.")
    beta1: float = Field(default=0.9, ge=0, lt=1)
    beta2: float = Field(default=0.99, ge=0, lt=1)
    warmup_steps: int = Field(default=10, ge=0)


class Lion(GrokkingMethod[Hyperparameters]):
    name = "lion"
    version = "0.1.0"
    description = "Lion (sign of interpolated momentum), lr 1e-4, wd 10"

    def configure(
        self, model: OneLayerTransformer, params: dict[str, torch.nn.Parameter], info: TrainingInfo
    ) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler]:
        hp = self.hp
        optimizer = LionOptimizer(params.values(), lr=hp.lr, betas=(hp.beta1, hp.beta2), weight_decay=hp.weight_decay)
        warmup = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: min((s + 1) / max(hp.warmup_steps, 1), 1.0))
        return optimizer, warmup

    def overhead_flops_per_step(self, model: OneLayerTransformer) -> float:
        return 8.0 * sum(p.numel() for p in model.parameters())
