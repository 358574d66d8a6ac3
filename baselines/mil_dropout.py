"""Reference regularisers for the mil_dropout family (the protocol: phenomena_bench.families.mil_dropout.api).

Each method's ``make_dropout`` returns one module per training; the harness calls its ``instance`` hook in
training after each ReLU of the instance encoder and never at evaluation. Every module is also the identity
when put in eval mode, so it is safe wherever it is reused.

* ``mil-none``: the identity; the reference every method is compared with.
* ``mil-dropout``: standard (inverted) dropout on the instance embeddings, p = 0.25 — the cheap bar a
  MIL-specific method has to clear (Ilse et al. 2018 regularise the same way).
* ``mil-instance-drop``: removes a random fraction (p = 0.5) of each bag's instances once, at the first hook, by
  clearing mask bits (DSMIL's ``dropout_patches`` idea); the removal carries to later layers through the mask.
* ``mil-mildropout``: MIL-Dropout (Zhu et al., ICML 2025) with its **published settings**, described from
  the reference ``dropout.py`` and the ``abmil.py`` defaults (topk 3, kernel 4; the README example uses
  kernel 7): importance = sigmoid(mean activation) per instance; the ``topk`` most important instances and,
  for each, its ``neighbours`` most cosine-similar other instances are zeroed and the bag is rescaled by
  n / n_kept. Zeroed rows stay in the bag (as in the reference). The settings were built for slides with
  thousands of instances; on bags of ~10 they remove most of the bag (up to 15 instances).
  Guard (the reference divides by zero): a bag that would lose every instance is left untouched.
* ``mil-mildropout-tuned``: the same algorithm with the setting the development-seed pilot below chose.
* ``mil-pdl``: PDL (progressive dropout layer, 2023): instances ranked by the same importance get a drop
  probability rising along a log-shaped curve from 0 (least important) to p (most important); p itself
  rises from 0 to ``p_max`` (0.25; the PDL script uses 0.45) over the epochs along the same curve; rows are
  zeroed, not rescaled. The curve here is log(1 + (e - 1) t) on [0, 1] — our reading of PDL's "log-shaped
  interpolation".

Hyperparameters: one pilot, the same budget for every method (3 settings each, the published or previous
default among them), on development seeds only (``--dev``: no scoring seed's bags), on the large-bag task
``mil_dropout/digits-bags-150`` (the regime MIL-Dropout targets) at the default tier, ranked by mean robust
AUC. The chosen values are the defaults below; ``mil-mildropout`` keeps the published ones so both rows show.

The pilot below ran at digits-bags-150 **version 3's budget** (raw pixels, 64 training bags, 30 epochs),
where ``mil-none`` barely trained (final loss near ln 2 on most seeds, clean AUC ~0.8): it ranks settings in
a model that had hardly found the witnesses, so it says little about the re-tuned version 4 (standardised
pixels, 128 bags, 15 epochs, on which ``mil-none`` trains on every development seed). It was not re-run at
version 4 (13 settings x 2 seeds x ~20 s CPU); the chosen values are kept as they were. A development-seed
check of the chosen values at version 4 (same seeds; robust / clean / poison AUC, 2-seed means):

    mil-none 0.888 / 0.958 / 0.000       mil-pdl 0.883 / 0.962 / 0.000   mil-instance-drop 0.880 / 0.967 / 0.000
    mil-dropout 0.866 / 0.964 / 0.000    mil-mildropout-tuned 0.787 / 0.814 / 0.946
    mil-mildropout 0.698 / 0.732 / 1.000 (final training loss 0.65-0.70: the published setting stalls training)

Pilot at version 3 (dev seeds 1,000,000 and 1,000,001; digits-bags-150 default tier; robust AUC, clean AUC
and poison AUC are 2-seed means, d = paired difference of robust AUC from ``mil-none``; * = chosen):

    method              setting             robust  clean  poison    d
    mil-none            -                   0.759   0.813  0.000     -
    mil-dropout         p 0.1               0.754   0.809  0.000  -0.006
    mil-dropout         p 0.25 *            0.759   0.816  0.000  -0.001
    mil-dropout         p 0.5               0.732   0.776  0.000  -0.028
    mil-instance-drop   p 0.1               0.759   0.812  0.000  -0.001
    mil-instance-drop   p 0.3               0.753   0.809  0.000  -0.006
    mil-instance-drop   p 0.5 *             0.759   0.815  0.000  -0.001
    mil-mildropout      topk 1, nb 1 *      0.746   0.800  0.807  -0.014
    mil-mildropout      topk 2, nb 2        0.727   0.781  0.836  -0.032
    mil-mildropout      topk 3, nb 4 (pub.) 0.703   0.760  0.839  -0.056
    mil-pdl             p_max 0.25 *        0.746   0.802  0.000  -0.014
    mil-pdl             p_max 0.45          0.738   0.794  0.000  -0.022
    mil-pdl             p_max 0.65          0.725   0.787  0.000  -0.035

Ties within 0.001 robust AUC go to the higher clean AUC (instance drop: p 0.5 over p 0.1). Two seeds
cannot separate settings less than ~0.02 apart; the ranking of the extremes (too much dropping hurts every
method here) is what the pilot settles. A general ``tune`` command will replace this by-hand pilot.
"""

from __future__ import annotations

import math
from typing import Any, overload

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from phenomena_bench.core.claims import Claim
from phenomena_bench.core.method import NoHyperparameters
from phenomena_bench.families.mil_dropout.api import DropoutContext, MILDropoutMethod


class _Hyper(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


@overload
def log_curve(t: torch.Tensor) -> torch.Tensor: ...
@overload
def log_curve(t: float) -> float: ...
def log_curve(t: torch.Tensor | float) -> torch.Tensor | float:
    """Concave map of [0, 1] onto [0, 1] (0 -> 0, 1 -> 1): PDL's log-shaped interpolation."""
    if isinstance(t, torch.Tensor):
        return torch.log1p((math.e - 1.0) * t)
    return math.log1p((math.e - 1.0) * t)


def importance(h: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """MIL-Dropout/PDL's parameter-free instance importance, sigmoid(mean activation); -inf on padding."""
    return torch.sigmoid(h.mean(dim=-1)).masked_fill(~mask, float("-inf"))


# ------------------------------------------------------------------------------------------------ modules


class IdentityRegulariser(nn.Module):
    def instance(self, h: torch.Tensor, mask: torch.Tensor, layer: int) -> tuple[torch.Tensor, torch.Tensor]:
        return h, mask


class FeatureDropout(nn.Module):
    def __init__(self, p: float) -> None:
        super().__init__()
        self.p = p

    def instance(self, h: torch.Tensor, mask: torch.Tensor, layer: int) -> tuple[torch.Tensor, torch.Tensor]:
        return nn.functional.dropout(h, self.p, training=self.training), mask


class InstanceDrop(nn.Module):
    def __init__(self, p: float) -> None:
        super().__init__()
        self.p = p

    def instance(self, h: torch.Tensor, mask: torch.Tensor, layer: int) -> tuple[torch.Tensor, torch.Tensor]:
        if not self.training or self.p == 0 or layer != 0:
            return h, mask
        noise = torch.rand(mask.shape, device=mask.device)
        kept = mask & (noise >= self.p)
        empty = ~kept.any(dim=1)
        if bool(empty.any()):
            # Keep the real instance with the largest draw, so every bag keeps at least one instance.
            best = noise.masked_fill(~mask, -1.0).argmax(dim=1)
            kept[empty, best[empty]] = True
        return h, kept


class MILDropoutLayer(nn.Module):
    def __init__(self, topk: int, neighbours: int) -> None:
        super().__init__()
        self.topk = topk
        self.neighbours = neighbours

    def drop_mask(self, h: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """True on the instances MIL-Dropout drops: top-k by importance plus each one's nearest neighbours."""
        bags, n, d = h.shape
        k = min(self.topk, n)
        top_val, top_idx = importance(h, mask).topk(k, dim=1)
        top_ok = torch.isfinite(top_val)  # beyond a bag's size topk returns padding (-inf)
        hits = torch.zeros(bags, n, device=h.device, dtype=h.dtype)
        hits.scatter_add_(1, top_idx, top_ok.to(h.dtype))
        if self.neighbours > 0 and n > 1:
            z = nn.functional.normalize(h, dim=-1)
            queries = z.gather(1, top_idx.unsqueeze(-1).expand(-1, -1, d))
            similarity = queries @ z.transpose(1, 2)  # (bags, k, n) cosine
            excluded = ~mask | (hits > 0)
            similarity = similarity.masked_fill(excluded.unsqueeze(1), float("-inf"))
            nb_val, nb_idx = similarity.topk(min(self.neighbours, n), dim=2)
            nb_ok = torch.isfinite(nb_val) & top_ok.unsqueeze(-1)
            # scatter_add (not scatter): an index may be picked by several top instances.
            hits.scatter_add_(1, nb_idx.reshape(bags, -1), nb_ok.reshape(bags, -1).to(h.dtype))
        drop = (hits > 0) & mask
        # Guard: a bag that would lose every instance is left whole (the reference divides by zero there).
        whole = ~(mask & ~drop).any(dim=1)
        return drop & ~whole.unsqueeze(1)

    def instance(self, h: torch.Tensor, mask: torch.Tensor, layer: int) -> tuple[torch.Tensor, torch.Tensor]:
        if not self.training or self.topk == 0:
            return h, mask
        drop = self.drop_mask(h.detach(), mask)
        keep = (mask & ~drop).to(h.dtype)
        scale = mask.sum(dim=1).to(h.dtype) / keep.sum(dim=1).clamp_min(1.0)
        return h * keep.unsqueeze(-1) * scale.view(-1, 1, 1), mask


class ProgressiveDropout(nn.Module):
    def __init__(self, p_max: float, progressive: bool) -> None:
        super().__init__()
        self.p_max = p_max
        self.progressive = progressive
        self.p = 0.0 if progressive else p_max

    def on_epoch_start(self, epoch: int, num_epochs: int) -> None:
        if self.progressive:
            t = epoch / (num_epochs - 1) if num_epochs > 1 else 1.0
            self.p = self.p_max * float(log_curve(t))

    def drop_probability(self, h: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Per-instance drop probability: p * log_curve(relative importance rank), 0 for the least important."""
        score = importance(h, mask)
        rank = score.argsort(dim=1, descending=True, stable=True).argsort(dim=1, stable=True)  # 0 = most important
        n_valid = mask.sum(dim=1, keepdim=True).to(h.dtype)
        t = ((n_valid - 1 - rank.to(h.dtype)) / (n_valid - 1).clamp_min(1.0)).clamp(0.0, 1.0)
        return (self.p * log_curve(t)).masked_fill(~mask, 0.0)

    def instance(self, h: torch.Tensor, mask: torch.Tensor, layer: int) -> tuple[torch.Tensor, torch.Tensor]:
        if not self.training or self.p == 0:
            return h, mask
        prob = self.drop_probability(h.detach(), mask)
        keep = torch.rand(prob.shape, device=h.device) >= prob  # the least important has prob 0: always kept
        return h * keep.unsqueeze(-1).to(h.dtype), mask


# ------------------------------------------------------------------------------------------------ methods


# Search spaces (`phenomena-bench tune`) span the by-hand pilot's grid above and a little past it: drop rates
# up to ~0.6 (beyond 0.5 already hurt every method), MIL-Dropout's top-k and neighbours around both its
# published (3, 4) and pilot (1, 1) settings, the same space for both rows.
class FeatureDropoutHP(_Hyper):
    p: float = Field(
        default=0.25,
        ge=0,
        lt=1,
        description="Drop probability of each embedding unit.",
        json_schema_extra={"search": {"low": 0.05, "high": 0.6}},
    )


class InstanceDropHP(_Hyper):
    p: float = Field(
        default=0.5,
        ge=0,
        lt=1,
        description="Fraction of instances removed per bag and step.",
        json_schema_extra={"search": {"low": 0.05, "high": 0.7}},
    )


def _topk(default: int) -> Any:
    """MIL-Dropout's top-k field (the same range and search space for the paper's and the tuned defaults)."""
    return Field(
        default=default,
        ge=0,
        le=10_000,
        description="Most important instances dropped per bag.",
        json_schema_extra={"search": {"low": 1, "high": 5}},
    )


def _neighbours(default: int) -> Any:
    """MIL-Dropout's neighbours field (as :func:`_topk`)."""
    return Field(
        default=default,
        ge=0,
        le=10_000,
        description="Most similar instances dropped per top one.",
        json_schema_extra={"search": {"low": 0, "high": 8}},
    )


class MILDropoutHP(_Hyper):
    topk: int = _topk(3)
    neighbours: int = _neighbours(4)


class MILDropoutTunedHP(MILDropoutHP):
    topk: int = _topk(1)
    neighbours: int = _neighbours(1)


class PDLHP(_Hyper):
    p_max: float = Field(
        default=0.25,
        ge=0,
        lt=1,
        description="Drop probability of the top instance at the end.",
        json_schema_extra={"search": {"low": 0.05, "high": 0.65}},
    )
    progressive: bool = Field(default=True, description="Ramp p from 0 to p_max over the epochs.")


class NoDropout(MILDropoutMethod[NoHyperparameters]):
    name = "mil-none"
    batchable = True  # self-contained modules: stacked trainings draw and compute as alone
    description = "No regulariser: the reference gated ABMIL."

    def make_dropout(self, ctx: DropoutContext) -> IdentityRegulariser:
        return IdentityRegulariser()


class StandardDropout(MILDropoutMethod[FeatureDropoutHP]):
    name = "mil-dropout"
    batchable = True  # self-contained modules: stacked trainings draw and compute as alone
    description = "Inverted Bernoulli dropout on instance embeddings after each encoder ReLU."

    def make_dropout(self, ctx: DropoutContext) -> FeatureDropout:
        return FeatureDropout(self.hp.p)


class RandomInstanceDrop(MILDropoutMethod[InstanceDropHP]):
    name = "mil-instance-drop"
    batchable = True  # self-contained modules: stacked trainings draw and compute as alone
    version = "2"  # p 0.3 -> 0.5, the dev-seed pilot's choice
    description = "Removes a random fraction of each bag's instances (mask bits), keeping at least one."

    def make_dropout(self, ctx: DropoutContext) -> InstanceDrop:
        return InstanceDrop(self.hp.p)


class MILDropout(MILDropoutMethod[MILDropoutHP]):
    name = "mil-mildropout"
    claims = (
        Claim(
            "auc_robust",
            better_than="mil-none",
            tasks=("mil_dropout/digits-bags-150",),
            source="MIL-Dropout (ICML 2025), abstract and Table 1: gains over the same aggregator, robust to noise",
        ),
    )
    batchable = True  # self-contained modules: stacked trainings draw and compute as alone
    description = (
        "MIL-Dropout (ICML 2025), published settings: zero the top-k important instances and their nearest neighbours."
    )

    def make_dropout(self, ctx: DropoutContext) -> MILDropoutLayer:
        return MILDropoutLayer(self.hp.topk, self.hp.neighbours)


class MILDropoutTuned(MILDropout):
    name = "mil-mildropout-tuned"
    description = "MIL-Dropout with the setting chosen on development seeds (see the module docstring)."
    Hyperparameters = MILDropoutTunedHP


class PDL(MILDropoutMethod[PDLHP]):
    name = "mil-pdl"
    claims = (
        Claim(
            "acc_clean",
            better_than="mil-none",
            tasks=("mil_dropout/musk1", "mil_dropout/musk2", "mil_dropout/elephant"),
            source="Zhu et al. 2023 (PDL), Table 1: higher accuracy than ABMIL on MUSK1, MUSK2 and ELEPHANT",
        ),
    )
    batchable = True  # self-contained modules: stacked trainings draw and compute as alone
    version = "2"  # p_max 0.45 (the PDL script's) -> 0.25, the dev-seed pilot's choice
    description = "PDL: importance-ranked Bernoulli instance dropout whose rate ramps up over training."

    def make_dropout(self, ctx: DropoutContext) -> ProgressiveDropout:
        return ProgressiveDropout(self.hp.p_max, self.hp.progressive)
