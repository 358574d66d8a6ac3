"""Reference methods for time-to-grok, each in the settings of the paper named beside it.

- ``adamw``: AdamW lr 1e-3, weight decay 1, betas (0.9, 0.98), 10-step linear warm-up (Power; Nanda).
- ``adam``: the same without weight decay: Grokfast's own baseline, which makes its "x50" headline.
- ``grokfast-ema`` / ``grokfast-ma``: Grokfast's low-pass gradient filters (Lee et al. 2024; the filters
  checked line by line against the reference code, ironjr/grokfast ``grokfast.py``) with their reference
  filter settings (EMA alpha 0.98, lambda 2; MA window 100, lambda 5) on this task's AdamW baseline:
  decoupled weight decay 1, the same betas and the same 10-step warm-up. What the filter adds to the
  baseline is then the only difference.
- ``grokfast-ema-ref`` / ``grokfast-ma-ref``: the reference code's settings, transplanted: the same filters
  on ``torch.optim.Adam`` with coupled L2 (0.005 for EMA, 0.01 for MA), the values its README tuned for a
  2-layer pre-LayerNorm transformer on x*y mod 97. Kept as clearly labelled rows because they are what
  "Grokfast" means to most users, not because they suit this model. Their weight decay is the reference
  value, not swept here: no row of this task is swept (each runs its paper's one setting), and a sweep for
  these two alone would give them more tuning than the baseline they are compared with. The warm-up is
  AdamW's (the reference code's schedule, ``update / 10``, differs only in taking its first update at
  lr 0).
- ``muon``: Newton-Schulz-orthogonalised momentum on the hidden matrices, AdamW on embeddings and
  unembedding (Jordan et al.'s algorithm; the settings Janati et al. 2026 selected).
- ``grad-norm``: the AdamW baseline with the whole gradient rescaled to unit norm each step
  (NeuralGrok's c = 1 ablation: the cheap trick every gradient-shaping method should beat).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal, TypeVar

import torch
from pydantic import BaseModel, ConfigDict, Field

from phenomena_bench.families.grokking.api import GrokkingMethod, OneLayerTransformer, TrainingInfo

#: FLOPs per parameter of one Adam(W) update (moments, bias correction, sqrt, divide, decay).
ADAM_FLOPS_PER_PARAM = 12


class AdamHyperparameters(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    lr: float = Field(default=1e-3, gt=0, le=10)
    weight_decay: float = Field(default=1.0, ge=0, le=100)
    beta1: float = Field(default=0.9, ge=0, lt=1)
    beta2: float = Field(default=0.98, ge=0, lt=1)
    eps: float = Field(default=1e-8, gt=0)
    warmup_steps: int = Field(default=10, ge=0)
    decoupled: bool = Field(default=True, description="AdamW's decoupled decay; false is Adam's coupled L2.")


def warmup(optimizer: torch.optim.Optimizer, steps: int) -> torch.optim.lr_scheduler.LambdaLR:
    """Linear warm-up over `steps` optimizer steps, then constant (Power; Nanda)."""
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: min((s + 1) / steps, 1.0) if steps else 1.0)


AdamHP = TypeVar("AdamHP", bound=AdamHyperparameters)


class _AdamRecipe(GrokkingMethod[AdamHP]):
    """Adam(W) with linear warm-up, over any hyperparameter model that extends :class:`AdamHyperparameters`.

    The shared base of AdamW and of the methods built on it (Grokfast, grad-norm), so that each of them
    types ``self.hp`` as its own hyperparameter model.
    """

    batchable = True  # element-wise: R stacked seeds are R independent AdamW runs

    def configure(
        self, model: OneLayerTransformer, params: dict[str, torch.nn.Parameter], info: TrainingInfo
    ) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler]:
        hp = self.hp
        cls = torch.optim.AdamW if hp.decoupled else torch.optim.Adam
        # One fused kernel for every parameter, on the CPU as on CUDA: the same update as the per-parameter
        # loop (identical weights after 300 steps here), at a seventh of the metered step time on the CPU,
        # where the FLOP meter pays for every dispatched operation.
        fast = {"fused": True}
        optimizer = cls(
            list(params.values()),
            lr=hp.lr,
            betas=(hp.beta1, hp.beta2),
            eps=hp.eps,
            weight_decay=hp.weight_decay,
            **fast,
        )
        return optimizer, warmup(optimizer, hp.warmup_steps)

    def overhead_flops_per_step(self, model: OneLayerTransformer) -> float:
        return ADAM_FLOPS_PER_PARAM * sum(p.numel() for p in model.parameters())


class AdamW(_AdamRecipe[AdamHyperparameters]):
    name = "adamw"
    version = "2"
    description = "AdamW lr 1e-3, wd 1, betas (0.9, 0.98), 10-step warm-up (Power et al.; Nanda et al.)"


class AdamNoDecayHyperparameters(AdamHyperparameters):
    weight_decay: float = Field(default=0.0, ge=0, le=100)
    decoupled: bool = False


class Adam(AdamW):
    name = "adam"
    description = "Adam without weight decay: Grokfast's baseline (the weak one behind its x50 headline)"
    Hyperparameters = AdamNoDecayHyperparameters


class GrokfastEMAHyperparameters(AdamHyperparameters):
    alpha: float = Field(default=0.98, ge=0, lt=1, description="EMA momentum of the gradient filter.")
    lamb: float = Field(default=2.0, ge=0, description="Amplification of the filtered gradient.")


class GrokfastEMA(_AdamRecipe[GrokfastEMAHyperparameters]):
    """g <- g + lamb * EMA(g), the EMA started from the first gradient (Lee et al. 2024, ``gradfilter_ema``).

    On the first step the EMA is the gradient itself, so the update is (1 + lamb) g, as in the reference code.
    """

    name = "grokfast-ema"
    version = "2"
    description = "Grokfast-EMA (alpha 0.98, lambda 2) on the AdamW baseline (decoupled wd 1, same warm-up)"

    def configure(
        self, model: OneLayerTransformer, params: dict[str, torch.nn.Parameter], info: TrainingInfo
    ) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler]:
        self._ema: dict[str, torch.Tensor] = {}
        return super().configure(model, params, info)

    @torch.no_grad()
    def after_backward(self, model: OneLayerTransformer, step: int) -> None:
        for name, p in model.named_parameters():
            if p.grad is None:
                continue
            ema = self._ema.get(name)
            if ema is None:
                ema = self._ema[name] = p.grad.detach().clone()
            else:
                ema.mul_(self.hp.alpha).add_(p.grad, alpha=1 - self.hp.alpha)
            p.grad.add_(ema, alpha=self.hp.lamb)

    def overhead_flops_per_step(self, model: OneLayerTransformer) -> float:
        return (ADAM_FLOPS_PER_PARAM + 4) * sum(p.numel() for p in model.parameters())


class GrokfastEMAReferenceHyperparameters(GrokfastEMAHyperparameters):
    weight_decay: float = Field(default=0.005, ge=0, le=100)
    decoupled: bool = Field(default=False, description="Reference code: torch.optim.Adam with coupled L2.")


class GrokfastEMAReference(GrokfastEMA):
    name = "grokfast-ema-ref"
    version = "1"
    description = (
        "reference code's settings, transplanted: Grokfast-EMA (alpha 0.98, lambda 2) on Adam, coupled L2 0.005"
    )
    Hyperparameters = GrokfastEMAReferenceHyperparameters


class GrokfastMAHyperparameters(AdamHyperparameters):
    window: int = Field(default=100, ge=1, le=10_000, description="Moving-average window (gradients kept).")
    lamb: float = Field(default=5.0, ge=0)
    filter_warmup: bool = Field(default=True, description="Apply the filter only once the window is full.")


class GrokfastMA(_AdamRecipe[GrokfastMAHyperparameters]):
    """g <- g + lamb * mean of the last `window` raw gradients, this one included (Lee et al. 2024,
    ``gradfilter_ma``); with `filter_warmup` the gradient is left alone until the window is full."""

    name = "grokfast-ma"
    version = "2"
    description = "Grokfast-MA (window 100, lambda 5) on the AdamW baseline (decoupled wd 1, same warm-up)"

    def configure(
        self, model: OneLayerTransformer, params: dict[str, torch.nn.Parameter], info: TrainingInfo
    ) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler]:
        # A ring buffer and a running sum per parameter: O(1) per step instead of re-summing the window.
        self._ring = {n: torch.zeros((self.hp.window, *p.shape), device=p.device) for n, p in params.items()}
        self._sum = {n: torch.zeros_like(p) for n, p in params.items()}
        self._seen = 0
        return super().configure(model, params, info)

    @torch.no_grad()
    def after_backward(self, model: OneLayerTransformer, step: int) -> None:
        slot = self._seen % self.hp.window
        self._seen += 1
        full = self._seen >= self.hp.window
        for name, p in model.named_parameters():
            if p.grad is None:
                continue
            ring, total = self._ring[name], self._sum[name]
            total.sub_(ring[slot]).add_(p.grad)
            ring[slot].copy_(p.grad)
            if full or not self.hp.filter_warmup:
                p.grad.add_(total, alpha=self.hp.lamb / min(self._seen, self.hp.window))

    def overhead_flops_per_step(self, model: OneLayerTransformer) -> float:
        return (ADAM_FLOPS_PER_PARAM + 4) * sum(p.numel() for p in model.parameters())


class GrokfastMAReferenceHyperparameters(GrokfastMAHyperparameters):
    weight_decay: float = Field(default=0.01, ge=0, le=100)
    decoupled: bool = Field(default=False, description="Reference code: torch.optim.Adam with coupled L2.")


class GrokfastMAReference(GrokfastMA):
    name = "grokfast-ma-ref"
    version = "1"
    description = "reference code's settings, transplanted: Grokfast-MA (window 100, lambda 5) on Adam, coupled L2 0.01"
    Hyperparameters = GrokfastMAReferenceHyperparameters


class GradNormHyperparameters(AdamHyperparameters):
    norm: float = Field(default=1.0, gt=0, description="Global gradient norm after rescaling.")


class GradNorm(_AdamRecipe[GradNormHyperparameters]):
    name = "grad-norm"
    description = "AdamW baseline with the global gradient rescaled to norm 1 each step (NeuralGrok's c=1 ablation)"
    version = "2"
    batchable = True  # the norm is taken per run: over every axis but the leading run axis when R > 1
    _runs = 1  # set by configure from TrainingInfo.runs

    def configure(
        self, model: OneLayerTransformer, params: dict[str, torch.nn.Parameter], info: TrainingInfo
    ) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler]:
        self._runs = info.runs
        return super().configure(model, params, info)

    @torch.no_grad()
    def after_backward(self, model: OneLayerTransformer, step: int) -> None:
        runs = self._runs
        grads = [p.grad for p in model.parameters() if p.grad is not None]
        total = torch.linalg.vector_norm(torch.cat([g.reshape(runs, -1) for g in grads], dim=1), dim=1)
        scale = self.hp.norm / total.clamp_min(1e-12)  # (R,): each run's own global norm
        for g in grads:
            g.mul_(scale.reshape((runs,) + (1,) * (g.ndim - 1)) if runs > 1 else scale[0])

    def overhead_flops_per_step(self, model: OneLayerTransformer) -> float:
        return (ADAM_FLOPS_PER_PARAM + 3) * sum(p.numel() for p in model.parameters())


# ------------------------------------------------------------------------------------------------- Muon

#: Coefficients of the quintic Newton-Schulz iteration (Jordan et al., "Muon", 2024).
NS_COEFFICIENTS = (3.4445, -4.7750, 2.0315)


def newton_schulz(g: torch.Tensor, steps: int, eps: float = 1e-7) -> torch.Tensor:
    """Approximately orthogonalise `g` (replace its singular values by ~1) in float32.

    Float32, not bfloat16 as in the speed-run code: grokking is sensitive to numerical precision (float32 is
    what Power et al. and Nanda et al. train in).
    The last two axes are the matrix; a leading axis (seeds trained as one program) is a batch of them, each
    normalised and orthogonalised on its own.
    """
    a, b, c = NS_COEFFICIENTS
    x = g.float() / (torch.linalg.matrix_norm(g.float(), keepdim=True) + eps)
    transposed = x.shape[-2] > x.shape[-1]
    if transposed:
        x = x.mT
    for _ in range(steps):
        gram = x @ x.mT
        x = a * x + (b * gram + c * gram @ gram) @ x
    return x.mT if transposed else x


class MuonOptimizer(torch.optim.Optimizer):
    """Muon on groups flagged ``muon=True`` (2-D hidden matrices), AdamW on the others, in one optimizer."""

    def __init__(self, groups: list[dict[str, Any]], ns_steps: int = 5) -> None:
        defaults = {"lr": 1e-3, "weight_decay": 0.0, "momentum": 0.95, "betas": (0.9, 0.98), "eps": 1e-8, "muon": False}
        super().__init__(groups, defaults)
        self.ns_steps = ns_steps

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> float | None:  # type: ignore[override]
        """One update of every parameter with a gradient (`closure` is ignored: torch types `step` by overloads)."""
        for group in self.param_groups:
            lr, wd = group["lr"], group["weight_decay"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if group["muon"]:
                    buf = state.setdefault("momentum_buffer", torch.zeros_like(p))
                    buf.mul_(group["momentum"]).add_(p.grad)
                    update = p.grad.add(buf, alpha=group["momentum"])  # Nesterov
                    update = newton_schulz(update, self.ns_steps)
                    update *= max(1.0, p.shape[-2] / p.shape[-1]) ** 0.5
                    p.mul_(1 - lr * wd).add_(update.to(p.dtype), alpha=-lr)
                else:
                    beta1, beta2 = group["betas"]
                    state["step"] = state.get("step", 0) + 1
                    m = state.setdefault("exp_avg", torch.zeros_like(p))
                    v = state.setdefault("exp_avg_sq", torch.zeros_like(p))
                    m.mul_(beta1).add_(p.grad, alpha=1 - beta1)
                    v.mul_(beta2).addcmul_(p.grad, p.grad, value=1 - beta2)
                    m_hat = m / (1 - beta1 ** state["step"])
                    v_hat = v / (1 - beta2 ** state["step"])
                    p.mul_(1 - lr * wd).addcdiv_(m_hat, v_hat.sqrt().add_(group["eps"]), value=-lr)
        return None


class MuonHyperparameters(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    lr: float = Field(default=0.03, gt=0, le=10, description="Muon step size on hidden matrices.")
    weight_decay: float = Field(default=0.1, ge=0, le=100)
    momentum: float = Field(default=0.95, ge=0, lt=1)
    ns_steps: int = Field(default=5, ge=1, le=20)
    embed_lr: float = Field(default=1e-3, gt=0)
    embed_weight_decay: float = Field(default=1.0, ge=0)
    unembed_lr: float = Field(default=2.5e-4, gt=0)
    unembed_weight_decay: float = Field(default=1.0, ge=0)
    other_params: Literal["adamw"] = "adamw"
    warmup_steps: int = Field(default=10, ge=0)


class Muon(GrokkingMethod[MuonHyperparameters]):
    name = "muon"
    version = "2"
    batchable = True  # AdamW is element-wise and Newton-Schulz works on each run's matrix (the last two axes)
    description = "Muon (Newton-Schulz momentum) on hidden matrices, AdamW on embeddings (Janati et al. 2026 config)"

    def configure(
        self, model: OneLayerTransformer, params: dict[str, torch.nn.Parameter], info: TrainingInfo
    ) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler]:
        hp = self.hp
        hidden = [p for n, p in params.items() if n in model.HIDDEN_MATRICES]
        embeds = [p for n, p in params.items() if n in model.EMBEDDINGS]
        unembed = [p for n, p in params.items() if n in model.UNEMBEDDING]
        rest = [p for n, p in params.items() if n not in model.HIDDEN_MATRICES + model.EMBEDDINGS + model.UNEMBEDDING]
        groups = [
            {"params": hidden, "lr": hp.lr, "weight_decay": hp.weight_decay, "momentum": hp.momentum, "muon": True},
            {"params": embeds, "lr": hp.embed_lr, "weight_decay": hp.embed_weight_decay},
            {"params": unembed, "lr": hp.unembed_lr, "weight_decay": hp.unembed_weight_decay},
            {"params": rest, "lr": hp.embed_lr, "weight_decay": hp.embed_weight_decay},
        ]
        optimizer = MuonOptimizer([g for g in groups if g["params"]], ns_steps=hp.ns_steps)
        return optimizer, warmup(optimizer, hp.warmup_steps)

    def overhead_flops_per_step(self, model: OneLayerTransformer) -> float:
        flops = 0.0
        for name, p in model.named_parameters():
            if name in model.HIDDEN_MATRICES:
                m, n = sorted(p.shape)
                flops += self.hp.ns_steps * (4 * m * m * n + 2 * m**3) + 6 * p.numel()
            else:
                flops += ADAM_FLOPS_PER_PARAM * p.numel()
        return flops
