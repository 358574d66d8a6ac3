"""Reference measures for the generalization family: each returns a larger value for a network it predicts
to generalise worse, with the direction its paper argues for (never fitted to the population).

* ``gen-weight-norm`` — the L2 norm of the weight matrices (biases left out), the baseline the
  progress-measure papers argue against; Jiang et al. 2020 found norm measures poor or negative. The reference.
* ``gen-sharpness`` — λ_max of the training-loss Hessian by Lanczos with the whole HVP budget (sharper
  minima predicted to generalise worse, Keskar et al. 2017; Jiang et al.'s sharpness family).
* ``gen-hessian-trace`` — tr(H) by Hutchinson with the whole HVP budget (flatness as total curvature).
* ``gen-esd-re`` / ``gen-esd-kh`` — Gabdullin 2025: the Hessian's eigenvalue spectral density from one
  stochastic Lanczos quadrature run (nodes θ, weights w) is first typed — *mainly negative* (MN: the
  negative mass Σ_{θ<0}|θ|w exceeds the positive), *quasi-singular* (QS: half the weight or more sits within
  1% of the largest |θ| of zero, so curvature says little), else *mainly positive* (MP, the type the
  criteria are meant for) — and the type is recorded as the network's category; then the criterion:
  re = |λ_min/λ_max| or Kh_0.5 = Σ_{θ<0}(|θ|w)^0.5 / Σ_{θ>0}(θw)^0.5 (the Loss Landscape Analysis library's
  definitions; larger means worse). The paper's exact type criterion Ct is not reproduced: the typing rule
  above is this project's, stated so the category column can be checked.
* ``gen-effective-gram`` — the per-example-gradient Gram matrix K = G Gᵀ (the effective Gram of Yang &
  Chaudhari 2025 at the trained point) predicts the test loss as the training loss plus the leave-one-out
  correction of the linearised model: with A = K/n and the hat matrix Hₐ = A (A + ρI)⁻¹ (ρ = ``damping`` ·
  tr(A)/n), ℓ_test ≈ ℓ_train + (1/n) Σ_i h_ii / (1 − h_ii) (Sherman–Morrison on the empirical Fisher; an
  effective number of parameters per example, as in Takeuchi's criterion with H ≈ F). Their gradient-flow
  integral needs the training trajectory, which a measure does not see; this is its end-point form.
  value: the predicted gap; ``predicted_test_loss``: the prediction.
* ``gen-activation-sparsity`` / ``gen-weight-entropy`` / ``gen-circuit-complexity`` — Golechha 2024's
  progress measures (``core.progress_measures``): the fraction of hidden activations below 0.1 (of |h| for
  tanh), negated (sparser is predicted to generalise better); the absolute weight entropy −Σ|w| log|w|;
  the local circuit complexity (KL from the network's output to that with 10% of its weights zeroed),
  averaged over the training examples rather than summed, so training sets of different sizes compare.
* ``gen-ww-alpha`` — WeightWatcher's heavy-tailed self-regularisation exponent (Martin & Mahoney 2021):
  for every weight matrix, the eigenvalues of WᵀW are fitted with a power law ρ(λ) ∝ λ^−α above x_min by
  maximum likelihood, x_min chosen to minimise the Kolmogorov–Smirnov distance (Clauset, Shalizi & Newman
  2009), the α averaged over layers; smaller α (heavier tails) is predicted to generalise better.
* ``gen-effective-rank`` — Roy & Vetterli's effective rank exp(H(σ/‖σ‖₁)) of the last hidden layer's
  training representations (singular values σ), as in "Effective Rank and the Staircase Phenomenon":
  a higher-rank representation is predicted to generalise worse.
"""

from __future__ import annotations

from typing import ClassVar, Literal

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field

from phenomena_bench.baselines.hessian import lanczos, ritz
from phenomena_bench.core.method import NoHyperparameters
from phenomena_bench.core.progress_measures import (
    ablation_masks,
    absolute_weight_entropy,
    activation_sparsity,
    summed_kl,
    weight_norm,
)
from phenomena_bench.families.generalization.api import (
    GeneralizationMethod,
    Measurement,
    MeasureOracle,
    NetworkInfo,
    TrainedNetwork,
    TrainingData,
)


class _HP(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _generator(info: NetworkInfo) -> torch.Generator:
    return torch.Generator().manual_seed(info.rng_seed)


def _matrices(network: TrainedNetwork) -> list[torch.Tensor]:
    return [weight for weight, _ in network.weights()]


class WeightNorm(GeneralizationMethod[NoHyperparameters]):
    name: ClassVar[str] = "gen-weight-norm"
    version: ClassVar[str] = "1"
    description: ClassVar[str] = "L2 norm of the weight matrices (the progress-measure papers' baseline)."

    def measure(
        self, network: TrainedNetwork, data: TrainingData, oracle: MeasureOracle, info: NetworkInfo
    ) -> Measurement:
        return Measurement(value=weight_norm(_matrices(network)))


class Sharpness(GeneralizationMethod[NoHyperparameters]):
    name: ClassVar[str] = "gen-sharpness"
    version: ClassVar[str] = "1"
    description: ClassVar[str] = "λ_max of the training-loss Hessian by Lanczos within the HVP budget."

    def measure(
        self, network: TrainedNetwork, data: TrainingData, oracle: MeasureOracle, info: NetworkInfo
    ) -> Measurement:
        start = torch.randn(oracle.hvp.dim, generator=_generator(info), dtype=torch.float64)
        alpha, beta, _ = lanczos(oracle.hvp, start.to(oracle.hvp.device), oracle.hvp.budget)
        return Measurement(value=float(ritz(alpha, beta)[0][-1]))


class HessianTrace(GeneralizationMethod[NoHyperparameters]):
    name: ClassVar[str] = "gen-hessian-trace"
    version: ClassVar[str] = "1"
    description: ClassVar[str] = "tr(H) of the training loss by Hutchinson (Rademacher) with the HVP budget."

    def measure(
        self, network: TrainedNetwork, data: TrainingData, oracle: MeasureOracle, info: NetworkInfo
    ) -> Measurement:
        probes = oracle.hvp.budget
        signs = torch.randint(0, 2, (oracle.hvp.dim, probes), generator=_generator(info), dtype=torch.float64)
        z = (2 * signs - 1).to(oracle.hvp.device)
        return Measurement(value=float((z * oracle.hvp(z)).sum()) / probes)


# ------------------------------------------------------------------------------------------ Gabdullin ESD

#: A node within this fraction of the largest |θ| counts as "near zero" for the quasi-singular type.
NEAR_ZERO = 0.01


def slq_measure(oracle: MeasureOracle, info: NetworkInfo) -> tuple[np.ndarray, np.ndarray]:
    """One stochastic Lanczos quadrature run with the whole HVP budget: nodes (Ritz values) and weights."""
    start = torch.randn(oracle.hvp.dim, generator=_generator(info), dtype=torch.float64)
    alpha, beta, _ = lanczos(oracle.hvp, start.to(oracle.hvp.device), oracle.hvp.budget)
    nodes, vectors = ritz(alpha, beta)
    return np.asarray(nodes), np.asarray(vectors)[0] ** 2


def esd_type(nodes: np.ndarray, weights: np.ndarray) -> str:
    """MN (negative mass dominates), QS (half the weight near zero) or MP (the criteria's type)."""
    negative = float(np.sum(np.abs(nodes[nodes < 0]) * weights[nodes < 0]))
    positive = float(np.sum(nodes[nodes > 0] * weights[nodes > 0]))
    if negative > positive:
        return "MN"
    scale = float(np.max(np.abs(nodes)))
    if scale == 0 or float(weights[np.abs(nodes) <= NEAR_ZERO * scale].sum()) >= 0.5:
        return "QS"
    return "MP"


def esd_criterion(nodes: np.ndarray, weights: np.ndarray, criterion: str) -> float:
    """Gabdullin's re = |λ_min/λ_max| or Kh_0.5 over the SLQ nodes and weights (0 when undefined)."""
    if criterion == "re":
        top = float(nodes.max())
        return abs(float(nodes.min()) / top) if top > 0 else 0.0
    negative = float(np.sum((np.abs(nodes[nodes < 0]) * weights[nodes < 0]) ** 0.5))
    positive = float(np.sum((nodes[nodes > 0] * weights[nodes > 0]) ** 0.5))
    return negative / positive if positive > 0 else 0.0


class _ESD(GeneralizationMethod[NoHyperparameters]):
    criterion: ClassVar[str]

    def measure(
        self, network: TrainedNetwork, data: TrainingData, oracle: MeasureOracle, info: NetworkInfo
    ) -> Measurement:
        nodes, weights = slq_measure(oracle, info)
        kind = esd_type(nodes, weights)  # the type first, as the paper does; then the criterion
        return Measurement(value=esd_criterion(nodes, weights, self.criterion), category=kind)


class ESDRatio(_ESD):
    name: ClassVar[str] = "gen-esd-re"
    version: ClassVar[str] = "1"
    criterion: ClassVar[str] = "re"
    description: ClassVar[str] = "Gabdullin: Hessian ESD type (recorded), then re = |λ_min/λ_max| from SLQ."


class ESDNegativeMass(_ESD):
    name: ClassVar[str] = "gen-esd-kh"
    version: ClassVar[str] = "1"
    criterion: ClassVar[str] = "kh"
    description: ClassVar[str] = "Gabdullin: Hessian ESD type (recorded), then Kh_0.5 from SLQ."


# ------------------------------------------------------------------------------------------ effective Gram


class EffectiveGramHP(_HP):
    damping: float = Field(default=0.1, gt=0, le=10, description="Ridge ρ relative to the mean of diag(K/n).")


class EffectiveGram(GeneralizationMethod[EffectiveGramHP]):
    name: ClassVar[str] = "gen-effective-gram"
    version: ClassVar[str] = "1"
    description: ClassVar[str] = "Per-example-gradient Gram matrix: leave-one-out prediction of the test loss."

    def measure(
        self, network: TrainedNetwork, data: TrainingData, oracle: MeasureOracle, info: NetworkInfo
    ) -> Measurement:
        grads = oracle.example_gradients()
        n = grads.shape[0]
        gram = (grads @ grads.T) / n
        ridge = self.hp.damping * float(torch.trace(gram)) / n
        hat = torch.linalg.solve(gram + ridge * torch.eye(n, dtype=gram.dtype), gram)
        leverage = torch.diagonal(hat).clamp(0.0, 1.0 - 1e-9)
        correction = float((leverage / (1 - leverage)).mean())
        return Measurement(value=correction, predicted_test_loss=info.train_loss + correction)


# ------------------------------------------------------------------------------------------ Golechha


def _activity(network: TrainedNetwork, h: torch.Tensor) -> torch.Tensor:
    """What is compared with Golechha's threshold: the ReLU output itself, or |h| for tanh (symmetric)."""
    return h.abs() if network.activation == "tanh" else h


class ActivationSparsity(GeneralizationMethod[NoHyperparameters]):
    name: ClassVar[str] = "gen-activation-sparsity"
    version: ClassVar[str] = "1"
    description: ClassVar[str] = "Golechha: fraction of hidden activations below 0.1, negated (sparser = better)."

    def measure(
        self, network: TrainedNetwork, data: TrainingData, oracle: MeasureOracle, info: NetworkInfo
    ) -> Measurement:
        layers = [_activity(network, h) for h in network.hidden_activations(data.x)]
        return Measurement(value=-activation_sparsity(layers))


class WeightEntropy(GeneralizationMethod[NoHyperparameters]):
    name: ClassVar[str] = "gen-weight-entropy"
    version: ClassVar[str] = "1"
    description: ClassVar[str] = "Golechha: absolute weight entropy −Σ|w| log|w| of the weight matrices."

    def measure(
        self, network: TrainedNetwork, data: TrainingData, oracle: MeasureOracle, info: NetworkInfo
    ) -> Measurement:
        return Measurement(value=absolute_weight_entropy(_matrices(network)))


class CircuitComplexity(GeneralizationMethod[NoHyperparameters]):
    name: ClassVar[str] = "gen-circuit-complexity"
    version: ClassVar[str] = "1"
    description: ClassVar[str] = "Golechha: mean KL to the output with 10% of the weights zeroed."

    def measure(
        self, network: TrainedNetwork, data: TrainingData, oracle: MeasureOracle, info: NetworkInfo
    ) -> Measurement:
        pairs = network.weights()
        named = {f"layer{i:02d}": weight for i, (weight, _) in enumerate(pairs)}
        masks = ablation_masks(named, _generator(info))
        ablated = [(weight * masks[f"layer{i:02d}"], bias) for i, (weight, bias) in enumerate(pairs)]
        total = summed_kl(network(data.x), network.logits_with(ablated, data.x))
        return Measurement(value=total / data.x.shape[0])


# ------------------------------------------------------------------------------------------ heavy tails


def power_law_alpha(eigenvalues: np.ndarray, min_tail: int = 3) -> float:
    """MLE exponent α of ρ(λ) ∝ λ^−α above x_min, x_min the candidate minimising the KS distance (Clauset)."""
    values = np.sort(eigenvalues[eigenvalues > 0])
    best_alpha, best_ks = float("nan"), float("inf")
    for start in range(0, max(len(values) - min_tail + 1, 0)):
        tail = values[start:]
        xmin = tail[0]
        logs = np.log(tail / xmin).sum()
        if logs <= 0:
            continue
        alpha = 1.0 + len(tail) / logs
        empirical = np.arange(len(tail)) / len(tail)
        model = 1.0 - (tail / xmin) ** (1.0 - alpha)
        ks = float(np.max(np.abs(empirical - model)))
        if ks < best_ks:
            best_alpha, best_ks = alpha, ks
    return best_alpha


class WeightWatcherAlpha(GeneralizationMethod[NoHyperparameters]):
    name: ClassVar[str] = "gen-ww-alpha"
    version: ClassVar[str] = "1"
    description: ClassVar[str] = "WeightWatcher-style power-law α of the weight matrices' ESDs, layer mean."

    def measure(
        self, network: TrainedNetwork, data: TrainingData, oracle: MeasureOracle, info: NetworkInfo
    ) -> Measurement:
        alphas = []
        for weight in _matrices(network):
            eigenvalues = torch.linalg.svdvals(weight).double().square().numpy()
            alpha = power_law_alpha(eigenvalues)
            if np.isfinite(alpha):
                alphas.append(alpha)
        return Measurement(value=float(np.mean(alphas)) if alphas else 0.0)


class EffectiveRankHP(_HP):
    layer: Literal["last", "first"] = "last"


class EffectiveRank(GeneralizationMethod[EffectiveRankHP]):
    name: ClassVar[str] = "gen-effective-rank"
    version: ClassVar[str] = "1"
    description: ClassVar[str] = "Roy & Vetterli effective rank of a hidden layer's training representations."

    def measure(
        self, network: TrainedNetwork, data: TrainingData, oracle: MeasureOracle, info: NetworkInfo
    ) -> Measurement:
        layers = network.hidden_activations(data.x)
        return Measurement(value=effective_rank(layers[-1] if self.hp.layer == "last" else layers[0]))


def effective_rank(matrix: torch.Tensor) -> float:
    """exp of the Shannon entropy of the normalised singular values (Roy & Vetterli 2007); 0 for a zero matrix."""
    singular = torch.linalg.svdvals(matrix.double())
    total = float(singular.sum())
    if total == 0:
        return 0.0
    p = singular / total
    return float(torch.exp(-torch.special.xlogy(p, p).sum()))
