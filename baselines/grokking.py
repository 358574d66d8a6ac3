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

from phenomena_bench.core.claims import Claim
from phenomena_bench.families.grokking.api import GrokkingMethod, OneLayerTransformer, TrainingInfo

#: FLOPs per parameter of one Adam(W) update (moments, bias correction, sqrt, divide, decay).
ADAM_FLOPS_PER_PARAM = 12


class AdamHyperparameters(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    # Search space (`phenomena-bench tune`): a decade either side of Power/Nanda's lr 1e-3 and weight decay 1
    # (the grokking literature's settings lie in 3e-4..3e-3 and 0.1..3; weight decay 0.1 with lr <= 1e-3
    # did not grok in 1e5 steps, so the low end is the "too little" side). Subclasses that restate a
    # field (adam's decay 0, the reference-code transplants' coupled L2) keep it fixed.
    lr: float = Field(default=1e-3, gt=0, le=10, json_schema_extra={"search": {"low": 1e-4, "high": 1e-2, "log": True}})
    weight_decay: float = Field(
        default=1.0, ge=0, le=100, json_schema_extra={"search": {"low": 0.1, "high": 10.0, "log": True}}
    )
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
    claims = (
        Claim(
            "steps_to_target",
            better_than="adamw",
            effect="no_better",
            source="Power et al. 2022, Figure 2: weight decay is the intervention that speeds grokking most",
        ),
    )


class GrokfastEMAHyperparameters(AdamHyperparameters):
    # Searched between the paper's MNIST setting (alpha 0.8, lamb 0.1) and just past its algorithmic one
    # (alpha 0.98 ~ a 50-step window, lamb 2; the paper's guidance: alpha for the wanted speed-up, then lamb).
    alpha: float = Field(
        default=0.98,
        ge=0,
        lt=1,
        description="EMA momentum of the gradient filter.",
        json_schema_extra={"search": {"low": 0.8, "high": 0.99}},
    )
    lamb: float = Field(
        default=2.0,
        ge=0,
        description="Amplification of the filtered gradient.",
        json_schema_extra={"search": {"low": 0.1, "high": 5.0, "log": True}},
    )


class GrokfastEMA(_AdamRecipe[GrokfastEMAHyperparameters]):
    """g <- g + lamb * EMA(g), the EMA started from the first gradient (Lee et al. 2024, ``gradfilter_ema``).

    On the first step the EMA is the gradient itself, so the update is (1 + lamb) g, as in the reference code.
    """

    name = "grokfast-ema"
    version = "2"
    description = "Grokfast-EMA (alpha 0.98, lambda 2) on the AdamW baseline (decoupled wd 1, same warm-up)"
    claims = (
        Claim(
            "steps_to_target",
            better_than="adamw",
            source="Lee et al. 2024 (Grokfast), Figure 1 / Table 1: the filter on its base optimizer groks sooner",
        ),
    )

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
    claims = (
        Claim(
            "steps_to_target",
            better_than="adam",
            source="Lee et al. 2024 (Grokfast), Table 1: EMA x43.8 fewer iterations than Adam without weight decay",
        ),
    )


class GrokfastMAHyperparameters(AdamHyperparameters):
    # Searched around the paper's window 100 / lamb 5 (a shorter window filters less, a longer one costs a
    # gradient copy per step kept; lamb from a tenth of the default up to twice it).
    window: int = Field(
        default=100,
        ge=1,
        le=10_000,
        description="Moving-average window (gradients kept).",
        json_schema_extra={"search": {"low": 20, "high": 200, "log": True}},
    )
    lamb: float = Field(default=5.0, ge=0, json_schema_extra={"search": {"low": 0.5, "high": 10.0, "log": True}})
    filter_warmup: bool = Field(default=True, description="Apply the filter only once the window is full.")


class GrokfastMA(_AdamRecipe[GrokfastMAHyperparameters]):
    """g <- g + lamb * mean of the last `window` raw gradients, this one included (Lee et al. 2024,
    ``gradfilter_ma``); with `filter_warmup` the gradient is left alone until the window is full."""

    name = "grokfast-ma"
    version = "2"
    description = "Grokfast-MA (window 100, lambda 5) on the AdamW baseline (decoupled wd 1, same warm-up)"
    claims = (
        Claim(
            "steps_to_target",
            better_than="adamw",
            source="Lee et al. 2024 (Grokfast), Figure 1 / Table 1: the filter on its base optimizer groks sooner",
        ),
    )

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
    claims = (
        Claim(
            "steps_to_target",
            better_than="adam",
            source="Lee et al. 2024 (Grokfast), Table 1: MA x50.5 fewer iterations than Adam without weight decay",
        ),
    )


class GradNormHyperparameters(AdamHyperparameters):
    norm: float = Field(
        default=1.0,
        gt=0,
        description="Global gradient norm after rescaling.",
        json_schema_extra={"search": {"low": 0.5, "high": 2.0, "log": True}},  # the range its paper reports (0.5-2)
    )


class GradNorm(_AdamRecipe[GradNormHyperparameters]):
    name = "grad-norm"
    description = "AdamW baseline with the global gradient rescaled to norm 1 each step (NeuralGrok's c=1 ablation)"
    claims = (
        Claim(
            "steps_to_target",
            better_than="adamw",
            source="Zhou et al. 2025 (NeuralGrok), section 3.2: normalising the gradient alone accelerates grokking",
        ),
    )
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

    # Searched: Muon's own step size and decay on the hidden matrices, ~x6 / x10 either side of the
    # muon-grokking defaults (lr 0.03, wd 0.1); the AdamW groups keep the paper's settings.
    lr: float = Field(
        default=0.03,
        gt=0,
        le=10,
        description="Muon step size on hidden matrices.",
        json_schema_extra={"search": {"low": 0.005, "high": 0.2, "log": True}},
    )
    weight_decay: float = Field(
        default=0.1, ge=0, le=100, json_schema_extra={"search": {"low": 0.01, "high": 1.0, "log": True}}
    )
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
    claims = (
        Claim(
            "steps_to_target",
            better_than="adamw",
            source="Tveit et al. 2025 (Muon accelerates grokking), Table 1: 102.9 vs 153.1 epochs to grok",
        ),
    )

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


# ------------------------------------------------------------------------------------------- NeuralGrok


class NeuralGrokHyperparameters(AdamHyperparameters):
    hidden: int = Field(default=32, ge=1, le=1024, description="Width of the amplifier's two hidden layers.")
    c: float = Field(default=1.0, gt=0, description="Norm of each parameter's transformed gradient.")
    meta_every: int = Field(default=4, ge=1, le=1000, description="Inner steps per amplifier (outer) update.")
    outer_fraction: float = Field(default=0.02, gt=0, lt=1, description="Held-in share of the training split.")
    meta_lr: float = Field(default=1e-4, gt=0, le=1, description="Adam step size of the amplifier.")
    meta_weight_decay: float = Field(default=1e-6, ge=0, le=1)
    virtual_lr: float = Field(default=1e-3, gt=0, le=1, description="SGD step of the look-ahead copy.")


class Amplifier(torch.nn.Module):
    """NeuralGrok's neural amplifier: a scalar MLP applied to every gradient entry, a softmax over the
    entries of one parameter's gradient, and g' = c (p * g) / ||p * g||.

    Kaiming-normal weights and biases of 0.01, as the reference code initialises them. The softmax runs
    over the entries of each parameter (the paper's distribution over gradient entries; the older reference
    script, ``neural_grok.py``, takes it over dim 0 of the flattened gradient — the later ``src/model.py``
    takes it over an axis of size 1, where it is identically 1 and the amplifier reduces to normalisation).
    """

    def __init__(self, hidden: int, c: float) -> None:
        super().__init__()
        self.mlp = torch.nn.Sequential(
            torch.nn.Linear(1, hidden), torch.nn.ReLU(), torch.nn.Linear(hidden, hidden), torch.nn.ReLU(),
            torch.nn.Linear(hidden, 1),
        )  # fmt: skip
        for layer in self.mlp:
            if isinstance(layer, torch.nn.Linear):
                torch.nn.init.kaiming_normal_(layer.weight, nonlinearity="relu")
                torch.nn.init.constant_(layer.bias, 0.01)
        self.c = c

    def forward(self, grad: torch.Tensor) -> torch.Tensor:
        flat = grad.reshape(-1, 1)
        weights = torch.softmax(self.mlp(flat), dim=0)
        shaped = weights * flat
        return (self.c * shaped / torch.linalg.vector_norm(shaped).clamp_min(1e-30)).view_as(grad)


class NeuralGrok(_AdamRecipe[NeuralGrokHyperparameters]):
    """NeuralGrok (Zhou et al. 2025): the AdamW baseline fed gradients transformed by a learned amplifier.

    Bilevel, as the paper's Algorithm 1: the training split is cut 49 : 1 into D_inner, the only examples
    the model trains on (:meth:`training_examples`), and a held-in D_outer. Every step the amplifier
    transforms each parameter's gradient (:class:`Amplifier`); every `meta_every` steps (T = 4) it is
    updated by Adam (lr 1e-4, wd 1e-6, the reference code's) on the loss over D_outer of a look-ahead
    copy, w - virtual_lr * amplifier(g), one SGD step (lr 1e-3) along the transformed gradient of the
    current batch — differentiated through that step into the amplifier's parameters. The look-ahead uses
    the batch gradient the harness already computed: the copy's gradient in the reference code is the same
    quantity, so no extra forward pass is needed. Every FLOP of it runs inside ``after_backward`` and is
    measured by the harness.

    Adaptations to this task, each stated: the base optimizer is the task's AdamW baseline (lr 1e-3, wd 1,
    betas (0.9, 0.98), 10-step warm-up) rather than the paper's wd 1e-3 for its 2-layer LayerNorm
    transformer, so that against ``adamw`` and ``grad-norm`` (its c = 1 ablation: the same normalisation
    without a learned distribution, here of the whole gradient) the amplifier is the only difference; no
    gradient clipping (the reference clips at norm 1, a no-op after normalising each parameter to c = 1
    unless there are many parameters); the amplifier is the paper's 3-layer MLP of width 32 (the reference
    script's default is wider); no dropout in it (the paper has none).
    """

    name = "neuralgrok"
    version = "1"
    batchable = False  # a per-run amplifier, data split and meta-optimizer
    description = "NeuralGrok: learned gradient amplifier, meta-trained on a 1/50 held-in part of the training split"

    def configure(
        self, model: OneLayerTransformer, params: dict[str, torch.nn.Parameter], info: TrainingInfo
    ) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler]:
        hp = self.hp
        self.amplifier = Amplifier(hp.hidden, hp.c).to(info.device)
        self._meta = torch.optim.Adam(
            self.amplifier.parameters(), lr=hp.meta_lr, betas=(hp.beta1, hp.beta2), weight_decay=hp.meta_weight_decay
        )
        self._inner: torch.Tensor | None = None
        return super().configure(model, params, info)

    def prepare(
        self, model: OneLayerTransformer, train_x: torch.Tensor, train_y: torch.Tensor, info: TrainingInfo
    ) -> int:
        """Cut the training split 49 : 1 (by the method's own stream): D_outer is kept for the meta-steps."""
        n_outer = max(1, round(self.hp.outer_fraction * info.n_train))
        order = torch.randperm(info.n_train, generator=info.generator())
        outer, self._inner = order[:n_outer], order[n_outer:].sort().values
        self._outer_x, self._outer_y = train_x[outer.to(train_x.device)], train_y[outer.to(train_y.device)]
        return 0

    def training_examples(self, info: TrainingInfo) -> torch.Tensor | None:
        return self._inner

    def after_backward(self, model: OneLayerTransformer, step: int) -> None:
        raw = {n: p.grad.detach().clone() for n, p in model.named_parameters() if p.grad is not None}
        with torch.no_grad():
            for n, p in model.named_parameters():
                if p.grad is not None:
                    p.grad.copy_(self.amplifier(raw[n]))
        if (step + 1) % self.hp.meta_every == 0:
            self._meta_step(model, raw)

    def _meta_step(self, model: OneLayerTransformer, raw: dict[str, torch.Tensor]) -> None:
        """One outer update: the held-in loss after a look-ahead SGD step along the amplified gradient."""
        params = dict(model.named_parameters())
        ahead = {n: params[n].detach() - self.hp.virtual_lr * self.amplifier(g) for n, g in raw.items()}
        ahead.update({n: p.detach() for n, p in params.items() if n not in ahead})
        logits = torch.func.functional_call(model, ahead, (self._outer_x,))
        loss = torch.nn.functional.cross_entropy(logits, self._outer_y)
        self._meta.zero_grad(set_to_none=True)
        loss.backward()
        self._meta.step()


# ----------------------------------------------------------------------------------------- GrokTransfer


class GrokTransferHyperparameters(AdamHyperparameters):
    weak_embed: int = Field(default=4, ge=1, le=512, description="Embedding dimension of the weak model.")
    weak_width: int = Field(default=16, ge=1, le=4096, description="Hidden width of the weak MLP.")
    weak_lr: float = Field(default=1e-2, gt=0, le=10)
    weak_weight_decay: float = Field(default=0.1, ge=0, le=100)
    weak_val_fraction: float = Field(default=0.1, gt=0, lt=1, description="Validation share of the training split.")
    weak_target: float = Field(default=0.3, gt=0, le=1, description="Validation accuracy that stops the weak model.")
    weak_max_steps: int = Field(default=1000, ge=1, description="Cap on the weak model's steps (charged).")
    weak_budget_share: float = Field(default=0.25, gt=0, lt=1, description="Cap on them, as a share of the budget.")
    weak_eval_every: int = Field(default=10, ge=1)


class WeakModel(torch.nn.Module):
    """GrokTransfer's weak model: a trainable low-dimensional token embedding, the two operands' vectors
    concatenated, one hidden ReLU layer, logits over the p answers (the paper's 2-layer FNN, d_embed 4,
    width 16)."""

    def __init__(self, p: int, d_embed: int, width: int) -> None:
        super().__init__()
        self.embed = torch.nn.Parameter(torch.randn(p, d_embed))
        self.hidden = torch.nn.Linear(2 * d_embed, width)
        self.out = torch.nn.Linear(width, p)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """Logits for tokens (batch, 3) of ``a b =``; the `=` token carries nothing for an MLP."""
        pair = self.embed[tokens[:, :2]].flatten(1)
        return self.out(torch.relu(self.hidden(pair)))


def train_weak_model(
    model: WeakModel, x: torch.Tensor, y: torch.Tensor, val_x: torch.Tensor, val_y: torch.Tensor,
    hp: GrokTransferHyperparameters, max_steps: int,
) -> int:  # fmt: skip
    """Full-batch AdamW on (x, y) until validation accuracy reaches `weak_target` (checked every
    `weak_eval_every` steps) or `max_steps`; returns the steps taken."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=hp.weak_lr, weight_decay=hp.weak_weight_decay)
    for step in range(1, max_steps + 1):
        optimizer.zero_grad(set_to_none=True)
        torch.nn.functional.cross_entropy(model(x), y).backward()
        optimizer.step()
        if step % hp.weak_eval_every == 0 or step == max_steps:
            with torch.no_grad():
                accuracy = (model(val_x).argmax(-1) == val_y).float().mean().item()
            if accuracy >= hp.weak_target:
                return step
    return max_steps


class GrokTransfer(_AdamRecipe[GrokTransferHyperparameters]):
    """GrokTransfer (Xu et al. 2025, "Let Me Grok for You"): train a weak model first, then start the target's
    embedding from the weak model's, factorised as E = A B with A the weak embedding and B random, both
    trained (the paper's §2.2).

    `prepare` trains :class:`WeakModel` (full batch, AdamW) on the training split less a validation part
    carved from it (`weak_val_fraction`), and stops it when validation accuracy first reaches `weak_target`
    (30%, the paper's extraction point for its transformer target), or after `weak_max_steps` and at most
    `weak_budget_share` of the budget, so that the target always keeps most of it. **The paper stops on test
    accuracy; this baseline never sees the held-out split**, so it stops on the validation part of the
    training data. The weak model's steps are returned by `prepare` and count against the budget (one weak
    step as one step, although it is far cheaper), its FLOPs are measured by the harness and its wall time
    is on the clock.

    The factorisation is the method's own reparametrisation of the harness's model: the optimizer holds A
    ((p + 1) x d_embed; the `=` row, which the weak MLP has no use for, drawn at the weak rows' scale) and B
    (d_embed x d_model) in place of ``embed``; after each backward pass their gradients are the chain rule of
    ``embed``'s (dL/dA = G B^T, dL/dB = A^T G), and after each optimizer step ``embed`` is set to A B — exactly
    a model whose embedding is the product. B's scale makes A B's entries as large as the harness's own
    embedding initialisation (std 1/sqrt(d_model)), the paper grid-searching an init scale instead. The rest
    is the task's AdamW baseline (decoupled weight decay 1 on every factor); the paper's 2-layer weak FNN,
    d_embed 4 and width 16 are kept. Its weak learning rate and weight decay are not given for this task:
    lr 1e-2 and wd 0.1 here (piloted on a development split of the default tier: with wd 1 the weak MLP's
    validation accuracy plateaus near 35%; with 0.1 it reaches 30% as early, ~250 steps, then ~80%).
    """

    name = "groktransfer"
    version = "1"
    batchable = False  # a weak model per run, trained on that run's split
    description = "GrokTransfer: embedding E = A B from a weak MLP (d_embed 4) stopped on training-split validation"

    def configure(
        self, model: OneLayerTransformer, params: dict[str, torch.nn.Parameter], info: TrainingInfo
    ) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler]:
        vocab, d_model = model.embed.shape
        self.factor_a = torch.nn.Parameter(torch.zeros(vocab, self.hp.weak_embed, device=model.embed.device))
        self.factor_b = torch.nn.Parameter(torch.zeros(self.hp.weak_embed, d_model, device=model.embed.device))
        own = {n: p for n, p in params.items() if n != "embed"} | {"embed_a": self.factor_a, "embed_b": self.factor_b}
        optimizer, scheduler = super().configure(model, own, info)
        optimizer.register_step_post_hook(lambda *_: self._write_embedding(model))
        return optimizer, scheduler

    def prepare(
        self, model: OneLayerTransformer, train_x: torch.Tensor, train_y: torch.Tensor, info: TrainingInfo
    ) -> int:
        """Train the weak model on the training split less its validation part; transfer its embedding."""
        hp = self.hp
        n_val = max(1, round(hp.weak_val_fraction * info.n_train))
        order = torch.randperm(info.n_train, generator=info.generator()).to(train_x.device)
        val, fit = order[:n_val], order[n_val:]
        self.weak = WeakModel(info.p, hp.weak_embed, hp.weak_width).to(train_x.device)
        cap = max(1, min(hp.weak_max_steps, int(hp.weak_budget_share * info.steps)))
        steps = train_weak_model(self.weak, train_x[fit], train_y[fit], train_x[val], train_y[val], hp, cap)
        with torch.no_grad():
            weak = self.weak.embed.detach()
            self.factor_a[: info.p].copy_(weak)
            self.factor_a[info.p :].normal_(0.0, float(weak.std()))
            self.factor_b.normal_()
            self.factor_b.mul_(model.embed.shape[1] ** -0.5 / float((self.factor_a @ self.factor_b).std()))
        self._write_embedding(model)
        return steps

    @torch.no_grad()
    def _write_embedding(self, model: OneLayerTransformer) -> None:
        model.embed.copy_(self.factor_a @ self.factor_b)

    @torch.no_grad()
    def after_backward(self, model: OneLayerTransformer, step: int) -> None:
        grad = model.embed.grad
        if grad is not None:
            self.factor_a.grad = grad @ self.factor_b.T
            self.factor_b.grad = self.factor_a.T @ grad
            model.embed.grad = None  # embed is not in the optimizer: its gradient would accumulate
