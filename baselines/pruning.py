"""Reference pruning methods for the `pruning` family, each checked against its paper's public code.

Each class answers :meth:`phenomena_bench.families.pruning.api.PruningMethod.prune` for all target sparsities at once.
What they claim, and the controls that check the claims:

* ``prune-random`` — uniform random masks, the same sparsity in every layer: the floor.
* ``prune-magnitude-global`` / ``prune-magnitude-layerwise`` — one-shot magnitude pruning of the trained
  dense network (global or per-layer threshold), rewound to the spec's rewind point (one-shot lottery ticket).
* ``prune-magnitude-shuffled`` — the global-magnitude mask shuffled within each layer: keeps the per-layer
  densities magnitude chose and nothing else ("Missing the Mark" control as a method).
* ``prune-imp`` — iterative magnitude pruning with rewinding as the literature runs it (Frankle & Carbin 2019;
  OpenLTH ``sparse_global``): train, remove 20 % of the *surviving* weights by global magnitude, rewind the
  survivors, repeat. Rounds are shared across targets: one nested schedule passes through every target (at
  most 20 % a round; 27 rounds from dense to 99.5 %), so the tasks' search budget is sized to let it finish.
* ``prune-snip`` — |∂L/∂c| = |g ⊙ θ| at the rewind point on one training minibatch of the recipe's batch size,
  global top-k (namhoonlee/snip-public: ``prune.py`` draws one ``batch_size`` batch, ``model.py`` takes the
  gradient of the mean cross-entropy with respect to an all-ones mask; the regulariser is not in that loss).
* ``prune-grasp`` — GraSP (Wang et al. 2020, alecwangcq/GraSP ``pruner/GraSP.py``): S = -θ ⊙ Hg with logits
  divided by T = 200, g and Hg taken over the weights of *every* Linear layer (the reference puts all Conv and
  Linear weights in ``weights`` and in ``z = Σ g·∇L``, so the output layer's gradient enters Hg even where it
  is not pruned), 10 examples per class; the *highest* S are removed. Not copied: the reference's
  ``reinit=True`` re-draws every Linear layer's weights (Xavier) in its scoring copy — written for conv nets,
  whose only Linear layer is the classifier; on an MLP it would score a network other than the one trained.
  Its two half-batch passes sum to the full batch's gradient up to a factor 2, which no ranking sees.
* ``prune-synflow`` — SynFlow (Tanaka et al. 2020, ganguli-lab/Synaptic-Flow ``Pruners/pruners.py``): data-free,
  |θ ⊙ ∂R/∂θ| of the all-|θ| network (every state_dict entry, biases included) on an all-ones input, 100 rounds
  on the exponential schedule density^(k/100), pruned weights (score 0) staying pruned, as the reference. One
  difference: the reference's ``model.double()`` is commented out (float32); here the copy is float64 so the
  product of many |θ| stays finite at 99.5 %, which changes no ranking where float32 is finite. (That
  repository's own GraSP baseline takes Hg over the masked weights only; the GraSP authors' code, followed
  above, takes it over every weight.)
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping, Sequence
from typing import ClassVar, Literal, cast

import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from phenomena_bench.core.claims import Claim
from phenomena_bench.families.pruning.api import (
    NoHyperparameters,
    PruneResult,
    PruningContext,
    PruningMethod,
    layerwise_masks_from_scores,
    masks_from_scores,
    random_masks,
    shuffle_within_layers,
    sparsity_label,
)


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _params(model: nn.Module, names: Sequence[str]) -> list[nn.Parameter]:
    named = dict(model.named_parameters())
    return [named[n] for n in names]


class RandomPruning(PruningMethod[NoHyperparameters]):
    name: ClassVar[str] = "prune-random"
    description: ClassVar[str] = "Uniform random masks, the same sparsity in every prunable layer (the floor)."
    batchable: ClassVar[bool] = True  # uses only ctx and its generators: seeds may run as lanes

    def prune(self, ctx: PruningContext, sparsities: tuple[float, ...]) -> dict[float, PruneResult]:
        return {
            s: PruneResult(masks=random_masks(ctx.prunable, s, ctx.generator("random", sparsity_label(s))))
            for s in sparsities
        }


class _MagnitudeAfterTraining(PruningMethod[NoHyperparameters]):
    """Train the dense net once with the recipe, score |w|, rewind to the spec's rewind point."""

    scope: ClassVar[Literal["global", "layerwise"]] = "global"
    shuffle: ClassVar[bool] = False
    batchable: ClassVar[bool] = True  # uses only ctx and its generators: seeds may run as lanes

    def prune(self, ctx: PruningContext, sparsities: tuple[float, ...]) -> dict[float, PruneResult]:
        trained = ctx.train()
        scores = {n: trained.weights[n].abs() for n in ctx.prunable}
        out = {}
        for s in sparsities:
            masks = masks_from_scores(scores, s) if self.scope == "global" else layerwise_masks_from_scores(scores, s)
            if self.shuffle:
                masks = shuffle_within_layers(masks, ctx.generator("shuffle", sparsity_label(s)))
            out[s] = PruneResult(masks=masks)
        return out


class GlobalMagnitude(_MagnitudeAfterTraining):
    name: ClassVar[str] = "prune-magnitude-global"
    claims: ClassVar[tuple[Claim, ...]] = (
        Claim(
            "acc",
            at="99.5",
            better_than="prune-magnitude-layerwise",
            source="Blalock et al. 2020 (ShrinkBench), Figure 3: global magnitude beats layer-wise at high compression",
        ),
    )
    description: ClassVar[str] = "One-shot global magnitude pruning after training, rewound (one-shot lottery ticket)."


class LayerwiseMagnitude(_MagnitudeAfterTraining):
    name: ClassVar[str] = "prune-magnitude-layerwise"
    description: ClassVar[str] = "One-shot magnitude pruning after training, same sparsity per layer, rewound."
    scope: ClassVar[Literal["global", "layerwise"]] = "layerwise"


class ShuffledMagnitude(_MagnitudeAfterTraining):
    name: ClassVar[str] = "prune-magnitude-shuffled"
    description: ClassVar[str] = (
        "Global magnitude mask after training, shuffled within each layer: only its per-layer densities survive."
    )
    shuffle: ClassVar[bool] = True


def imp_schedule(sparsities: Sequence[float], max_fraction_per_round: float) -> list[float]:
    """Nested sparsity levels passing through every target, pruning at most the given share of survivors a round.

    Between consecutive targets the densities are geometric (equal shares per round), so the schedule is
    OpenLTH's 20 %-per-round one when the fraction is 0.2 and the targets lie on it.
    """
    levels: list[float] = []
    density = 1.0
    for s in sorted(sparsities):
        target = 1.0 - s
        rounds = max(1, math.ceil(math.log(target / density) / math.log(1.0 - max_fraction_per_round) - 1e-9))
        levels += [1.0 - density * (target / density) ** (i / rounds) for i in range(1, rounds)]
        levels.append(s)
        density = target
    return levels


class IterativeMagnitudeHyperparameters(_Frozen):
    max_fraction_per_round: float = Field(
        default=0.2, gt=0, lt=1, description="Most of the surviving weights removed in one round (OpenLTH: 0.2)."
    )
    scope: Literal["global", "layerwise"] = "global"


class IterativeMagnitude(PruningMethod[IterativeMagnitudeHyperparameters]):
    name: ClassVar[str] = "prune-imp"
    claims: ClassVar[tuple[Claim, ...]] = (
        Claim(
            "acc",
            at="99.5",
            better_than="prune-random",
            source="Frankle & Carbin 2019, Figure 3; Greydanus & Kobak 2024: tickets far above random masks at >= 95%",
        ),
    )
    version: ClassVar[str] = "2"  # 2: 20 % of the survivors per round (was 50 %)
    description: ClassVar[str] = (
        "Iterative magnitude pruning with rewinding (lottery tickets): train, prune the smallest surviving "
        "weights, rewind the survivors, repeat; one nested schedule through every target."
    )
    batchable: ClassVar[bool] = True  # uses only ctx and its generators: seeds may run as lanes

    def prune(self, ctx: PruningContext, sparsities: tuple[float, ...]) -> dict[float, PruneResult]:
        levels = imp_schedule(sparsities, self.hp.max_fraction_per_round)
        trained = ctx.train()  # round 0: the dense network
        masks: dict[str, torch.Tensor] | None = None
        out: dict[float, PruneResult] = {}
        for i, level in enumerate(levels):
            scores = {n: trained.weights[n].abs() for n in ctx.prunable}
            if masks is not None:  # only survivors compete: pruned weights never come back
                scores = {n: torch.where(masks[n], scores[n], torch.full_like(scores[n], -math.inf)) for n in scores}
            masks = (
                masks_from_scores(scores, level)
                if self.hp.scope == "global"
                else layerwise_masks_from_scores(scores, level)
            )
            if level in sparsities:
                out[level] = PruneResult(masks=masks)
            if i + 1 < len(levels):
                trained = ctx.train(masks, start=ctx.rewind_state)
        return out


def snip_scores(model: nn.Module, names: Sequence[str], x: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
    """Connection sensitivity |∂L/∂c| at c = 1 for a mask c on each weight, which equals |g ⊙ θ|."""
    params = _params(model, names)
    loss = F.cross_entropy(model(x), y)
    grads = torch.autograd.grad(loss, params)
    return {n: (g * p).abs().detach() for n, g, p in zip(names, grads, params, strict=True)}


def linear_weight_names(model: nn.Module) -> list[str]:
    """The weight of every Linear layer, in module order: the tensors GraSP's reference code scores."""
    return [f"{name}.weight" for name, module in model.named_modules() if isinstance(module, nn.Linear)]


def grasp_scores(
    model: nn.Module, names: Sequence[str], x: torch.Tensor, y: torch.Tensor, temperature: float = 200.0
) -> dict[str, torch.Tensor]:
    """GraSP's S(-θ) = -θ ⊙ H g for the weights `names` (logits divided by the temperature, as in the paper).

    g and the Hessian-gradient product run over the weights of *every* Linear layer, as the reference code's
    ``z = Σ_l (g_l · ∇_l L)`` does: leaving a non-prunable layer out (the output layer) drops its cross terms
    H_{θ,out} g_out, which the paper's gradient-flow argument includes. GraSP removes the weights with the
    *highest* S: the caller must keep the lowest S, not the highest (the sign bug noted in the MtM code).
    """
    every = linear_weight_names(model)
    missing = [n for n in names if n not in every]
    if missing:
        raise ValueError(f"GraSP scores Linear weights only; {missing} are not")
    params = _params(model, every)
    loss = F.cross_entropy(model(x) / temperature, y)
    g = [t.detach() for t in torch.autograd.grad(loss, params)]
    loss = F.cross_entropy(model(x) / temperature, y)
    grads = torch.autograd.grad(loss, params, create_graph=True)
    z = cast(torch.Tensor, sum((gi * gd).sum() for gi, gd in zip(grads, g, strict=True)))  # non-empty: a Tensor
    hg = dict(zip(every, torch.autograd.grad(z, params), strict=True))
    by_name = dict(zip(every, params, strict=True))
    return {n: (-by_name[n] * hg[n]).detach() for n in names}


class SNIPHyperparameters(_Frozen):
    per_class: int | None = Field(
        default=None, ge=1, description="None: one recipe minibatch (the paper's); else a balanced few-shot batch."
    )


class SNIP(PruningMethod[SNIPHyperparameters]):
    name: ClassVar[str] = "prune-snip"
    claims: ClassVar[tuple[Claim, ...]] = (
        Claim(
            "gain_over_shuffle",
            at="99",
            control="its own mask shuffled within each layer",
            effect="no_better",
            source="Frankle et al. 2021 (Missing the Mark), Figure 3: pruning-at-init masks survive layer shuffling",
        ),
    )
    version: ClassVar[str] = "2"  # 2: one training minibatch, as the reference code (was 10 per class)
    description: ClassVar[str] = "SNIP: |g ⊙ θ| at the rewind point on one training minibatch, global top-k."
    batchable: ClassVar[bool] = True  # uses only ctx and its generators: seeds may run as lanes

    def prune(self, ctx: PruningContext, sparsities: tuple[float, ...]) -> dict[float, PruneResult]:
        if self.hp.per_class is None:
            x, y = next(ctx.train_batches(1))  # charged one step, like any batch drawn from the recipe
        else:
            x, y = ctx.fewshot_batch(self.hp.per_class)
        scores = snip_scores(ctx.make_model(ctx.rewind_state), list(ctx.prunable), x, y)
        return {s: PruneResult(scores=scores) for s in sparsities}


class GraSPHyperparameters(_Frozen):
    per_class: int | None = Field(default=None, ge=1, description="Examples per class; None = the spec's.")
    # searched a decade either side of the reference code's T = 200 (it scales the logits inside Hg)
    temperature: float = Field(
        default=200.0, gt=0, json_schema_extra={"search": {"low": 20.0, "high": 2000.0, "log": True}}
    )


class GraSP(PruningMethod[GraSPHyperparameters]):
    name: ClassVar[str] = "prune-grasp"
    claims: ClassVar[tuple[Claim, ...]] = (
        Claim(
            "acc",
            at="99.5",
            better_than="prune-random",
            source="Wang et al. 2020 (GraSP), Table 2: above random pruning at extreme sparsity",
        ),
        Claim(
            "gain_over_shuffle",
            at="99",
            control="its own mask shuffled within each layer",
            effect="no_better",
            source="Frankle et al. 2021 (Missing the Mark), Figure 3: pruning-at-init masks survive layer shuffling",
        ),
    )
    version: ClassVar[str] = "2"  # 2: every Linear weight in g and Hg, as the reference (was prunable only)
    description: ClassVar[str] = (
        "GraSP: S = -θ ⊙ Hg (over every Linear weight) at the rewind point; the highest S are removed."
    )
    batchable: ClassVar[bool] = True  # uses only ctx and its generators: seeds may run as lanes

    def prune(self, ctx: PruningContext, sparsities: tuple[float, ...]) -> dict[float, PruneResult]:
        x, y = ctx.fewshot_batch(self.hp.per_class)
        s_grasp = grasp_scores(ctx.make_model(ctx.rewind_state), list(ctx.prunable), x, y, self.hp.temperature)
        keep_scores = {n: -v for n, v in s_grasp.items()}  # the harness keeps the highest: negate to drop highest S
        return {s: PruneResult(scores=keep_scores) for s in sparsities}


def synflow_scores(
    model: nn.Module, names: Sequence[str], masks: Mapping[str, torch.Tensor] | None, in_features: int
) -> dict[str, torch.Tensor]:
    """|θ ⊙ ∂R/∂θ| with R = sum of the outputs of the all-|θ| network on an all-ones input (float64).

    Works on a float64 copy so the product of many absolute weights neither overflows nor underflows;
    masked weights are zeroed first, so their scores are 0.
    """
    return _SynFlowNet(model, names, in_features).scores(masks)


class _SynFlowNet:
    """A float64 copy of the network with every parameter replaced by its absolute value (made once)."""

    def __init__(self, model: nn.Module, names: Sequence[str], in_features: int) -> None:
        self.net = copy.deepcopy(model).double()
        self.names = list(names)
        with torch.no_grad():
            for p in self.net.parameters():
                p.abs_()
        self.params = _params(self.net, self.names)
        self.absolute = [p.detach().clone() for p in self.params]
        self.ones = torch.ones(1, in_features, dtype=torch.float64, device=self.params[0].device)

    def scores(self, masks: Mapping[str, torch.Tensor] | None) -> dict[str, torch.Tensor]:
        with torch.no_grad():
            for n, p, a in zip(self.names, self.params, self.absolute, strict=True):
                p.copy_(a if masks is None else a * masks[n].to(a.device, a.dtype))
        grads = torch.autograd.grad(self.net(self.ones).sum(), self.params)
        return {n: (g * p).abs().detach().float().cpu() for n, g, p in zip(self.names, grads, self.params, strict=True)}


class SynFlowHyperparameters(_Frozen):
    # searched around the paper's 100 rounds (fewer rounds approach one-shot SynFlow, which collapses layers)
    rounds: int = Field(
        default=100, ge=1, le=10_000, json_schema_extra={"search": {"low": 20, "high": 300, "log": True}}
    )


class SynFlow(PruningMethod[SynFlowHyperparameters]):
    name: ClassVar[str] = "prune-synflow"
    claims: ClassVar[tuple[Claim, ...]] = (
        Claim(
            "acc",
            at="99.5",
            better_than="prune-random",
            source="Tanaka et al. 2020 (SynFlow), Figure 6: above random pruning at high compression",
        ),
        Claim(
            "gain_over_shuffle",
            at="99",
            control="its own mask shuffled within each layer",
            effect="no_better",
            source="Frankle et al. 2021 (Missing the Mark), Figure 3: pruning-at-init masks survive layer shuffling",
        ),
    )
    description: ClassVar[str] = "SynFlow: data-free iterative synaptic-flow scores, exponential schedule, global."
    batchable: ClassVar[bool] = True  # uses only ctx and its generators: seeds may run as lanes

    def prune(self, ctx: PruningContext, sparsities: tuple[float, ...]) -> dict[float, PruneResult]:
        names = list(ctx.prunable)
        net = _SynFlowNet(ctx.make_model(ctx.rewind_state), names, next(iter(ctx.prunable.values()))[1])
        out = {}
        for s in sparsities:
            masks: dict[str, torch.Tensor] | None = None
            for k in range(1, self.hp.rounds + 1):
                level = 1.0 - (1.0 - s) ** (k / self.hp.rounds)
                scores = net.scores(masks)
                if masks is not None:  # pruned weights stay pruned (their score is 0; ties must not revive them)
                    scores = {n: torch.where(masks[n], scores[n], torch.full_like(scores[n], -math.inf)) for n in names}
                masks = masks_from_scores(scores, level)
            assert masks is not None
            out[s] = PruneResult(masks=masks)
        return out
