"""Hessian-spectrum estimation from a budget of Hessian-vector products.

Protocol. A method implements ``estimate(oracle, info, budget) -> SpectrumEstimate``. The
:class:`~phenomena_bench.families.hessian.oracle.HVPOracle` multiplies the Hessian of a fixed network's full-batch training loss
(parameters flattened, float64) by vectors or blocks, charges one HVP per column and refuses calls past the
budget; :class:`ProblemInfo` tells the method the parameter count, the loss, the checkpoint's training step
and step size, its loss value and gradient norm — never the model or the data. The estimate holds any of
λ_max, λ_min, top-k eigenvalues and eigenvectors, the trace, and a spectral density as nodes and weights.

One run is one (task, method, seed): the seed fixes the network's initialisation (the training subset is
fixed by the spec) and the estimator's random numbers. Each task is one checkpoint of one training run —
initialisation, early training, end of training, edge of stability — so a leaderboard column is one
(task, budget) pair; inside a run the method is called once per budget of the spec with a fresh oracle,
and every metric carries its budget as a suffix (``lambda_max_rel_err@30``). A budget the method overran
is recorded as exceeded (its scores left empty), the run's status becomes ``budget_exceeded``, and the
other budgets keep their scores. The exact spectrum comes from :mod:`phenomena_bench.families.hessian.truth`, computed
once per (task, seed) and cached; scores are defined in :mod:`phenomena_bench.families.hessian.spectral`.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import numpy as np
import torch
from phenomena_bench.core.curves import Curve
from phenomena_bench.core.family import Column, Family, RunContext, RunOutcome, Scalar
from phenomena_bench.core.method import Method
from phenomena_bench.core.spec import StrictModel, TaskSpec
from phenomena_bench.families.hessian.checkpoints import (
    HessianData,
    HessianModel,
    HessianTraining,
    digits_split,
    loss_value,
    train_checkpoint,
)
from phenomena_bench.families.hessian.oracle import BudgetExceededError, HVPOracle, reverse_over_reverse_hvp
from phenomena_bench.families.hessian.spectral import (
    density_scores,
    relative_error,
    subspace_overlap,
    topk_relative_error,
)
from phenomena_bench.families.hessian.truth import HessianTruth, cached_truth, compute_truth
from pydantic import Field, field_validator

__all__ = [
    "BudgetExceededError",
    "HVPOracle",
    "HessianFamily",
    "HessianMethod",
    "HessianTask",
    "ProblemInfo",
    "SpectrumEstimate",
    "FAMILY",
]

#: The budget of the ranking metric; every task's budget list must contain it.
PRIMARY_BUDGET = 30
LEADERBOARD_BUDGETS = (10, 30, 100, 300)
Target = Literal["lambda_max", "lambda_min", "topk", "eigenvectors", "trace", "density"]
ALL_TARGETS: frozenset[str] = frozenset({"lambda_max", "lambda_min", "topk", "eigenvectors", "trace", "density"})


class HessianEvaluation(StrictModel):
    """The scoring protocol (identical across tiers)."""

    budgets: list[int] = Field(default_factory=lambda: list(LEADERBOARD_BUDGETS), min_length=1)
    topk: list[int] = Field(default_factory=lambda: [5, 10], min_length=1)
    symlog_threshold_rel: float = Field(
        default=1e-4, gt=0, lt=1, description="Linear threshold of the symlog axis, relative to max |λ|."
    )
    probe_count: int = Field(default=3, ge=1, le=100, description="Random HVP probes checking the ground truth.")
    probe_tol: float = Field(default=1e-8, gt=0, lt=1)

    @field_validator("budgets")
    @classmethod
    def _budgets(cls, budgets: list[int]) -> list[int]:
        if any(b < 1 for b in budgets) or budgets != sorted(set(budgets)):
            raise ValueError("budgets must be increasing whole numbers >= 1")
        if PRIMARY_BUDGET not in budgets:
            raise ValueError(f"budgets must include {PRIMARY_BUDGET}, the budget of the ranking metric")
        return budgets

    @field_validator("topk")
    @classmethod
    def _topk(cls, topk: list[int]) -> list[int]:
        if any(k < 1 for k in topk) or topk != sorted(set(topk)):
            raise ValueError("topk must be increasing whole numbers >= 1")
        return topk


class HessianTask(TaskSpec):
    family: Literal["hessian"]
    data: HessianData
    model: HessianModel
    training: HessianTraining
    evaluation: HessianEvaluation


@dataclass(frozen=True)
class ProblemInfo:
    """What an estimator may know about the problem besides the oracle (never the model or the data)."""

    num_params: int
    num_samples: int
    loss: str
    step: int
    lr: float
    loss_value: float
    grad_norm: float
    seed: int
    device: str


def _array(value: Any, name: str, ndim: int) -> np.ndarray | None:
    if value is None:
        return None
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().numpy()
    array = np.asarray(value, dtype=np.float64)
    if array.ndim != ndim:
        raise ValueError(f"SpectrumEstimate.{name} must have {ndim} dimension(s), got shape {array.shape}")
    if not np.isfinite(array).all():
        raise ValueError(f"SpectrumEstimate.{name} holds NaN or infinity")
    return array


@dataclass
class SpectrumEstimate:
    """An estimator's answer; every field optional. Tensors or arrays are accepted and converted.

    ``topk_values``: eigenvalues, any order (scored sorted descending). ``topk_vectors``: P × k, columns in
    the order of the *sorted* values (the harness orthonormalises their span). ``density_nodes`` and
    ``density_weights``: a discrete spectral measure, weights non-negative and summing to 1.
    """

    lambda_max: float | None = None
    lambda_min: float | None = None
    topk_values: Any = None
    topk_vectors: Any = None
    trace: float | None = None
    density_nodes: Any = None
    density_weights: Any = None

    def checked(self, dim: int) -> SpectrumEstimate:
        """A NumPy copy, with every field validated; raises ValueError naming the bad field."""
        scalars = {}
        for name in ("lambda_max", "lambda_min", "trace"):
            value = getattr(self, name)
            if value is not None:
                value = float(value)
                if not np.isfinite(value):
                    raise ValueError(f"SpectrumEstimate.{name} is not finite")
            scalars[name] = value
        values = _array(self.topk_values, "topk_values", 1)
        vectors = _array(self.topk_vectors, "topk_vectors", 2)
        if vectors is not None and vectors.shape[0] != dim:
            raise ValueError(f"SpectrumEstimate.topk_vectors must be ({dim}, k), got {vectors.shape}")
        nodes = _array(self.density_nodes, "density_nodes", 1)
        weights = _array(self.density_weights, "density_weights", 1)
        if (nodes is None) != (weights is None) or (nodes is not None and nodes.shape != weights.shape):
            raise ValueError("SpectrumEstimate.density_nodes and density_weights must be given together, same length")
        if weights is not None:
            if weights.size == 0 or (weights < -1e-12).any() or abs(weights.sum() - 1.0) > 1e-6:
                raise ValueError("SpectrumEstimate.density_weights must be non-negative and sum to 1")
            weights = np.clip(weights, 0.0, None)
            weights = weights / weights.sum()
        return SpectrumEstimate(
            topk_values=values, topk_vectors=vectors, density_nodes=nodes, density_weights=weights, **scalars,
        )

    def best_lambda_max(self) -> float | None:
        if self.lambda_max is not None:
            return self.lambda_max
        if self.topk_values is not None and len(self.topk_values):
            return float(np.max(self.topk_values))
        return None


class HessianMethod(Method):
    """Base class of spectrum estimators. ``targets`` lists what the method estimates: only those are scored
    (the others are left empty rather than scored as failures)."""

    family: ClassVar[str] = "hessian"
    targets: ClassVar[frozenset[str]] = ALL_TARGETS

    def estimate(self, oracle: HVPOracle, info: ProblemInfo, budget: int) -> SpectrumEstimate:
        raise NotImplementedError


def score(estimate: SpectrumEstimate | None, truth: HessianTruth, targets: frozenset[str],
          evaluation: HessianEvaluation) -> dict[str, Scalar]:
    """Every score of one estimate; None for targets the method does not claim or when `estimate` is None."""
    names = score_names(evaluation)
    if estimate is None:
        return dict.fromkeys(names)
    out: dict[str, Scalar] = dict.fromkeys(names)
    if "lambda_max" in targets:
        out["lambda_max_rel_err"] = relative_error(estimate.best_lambda_max(), truth.lambda_max)
    if "lambda_min" in targets:
        out["lambda_min_rel_err"] = relative_error(estimate.lambda_min, truth.lambda_min)
    for k in evaluation.topk:
        if "topk" in targets:
            out[f"top{k}_rel_err"] = topk_relative_error(estimate.topk_values, truth.eigenvalues, k)
        if "eigenvectors" in targets:
            vectors = estimate.topk_vectors
            values = estimate.topk_values
            if vectors is not None and values is not None and len(values) == vectors.shape[1]:
                vectors = vectors[:, np.argsort(-estimate.topk_values, kind="stable")]
            out[f"top{k}_overlap"] = subspace_overlap(truth.top_vectors, vectors, k)
    if "trace" in targets:
        error = abs((estimate.trace or 0.0) - truth.trace)
        out["trace_rel_err"] = relative_error(estimate.trace, truth.trace)
        out["trace_err_per_abs"] = error / truth.abs_sum if truth.abs_sum > 0 else error
    if "density" in targets:
        out.update(density_scores(truth.eigenvalues, estimate.density_nodes, estimate.density_weights,
                                  evaluation.symlog_threshold_rel))
    return out


def score_names(evaluation: HessianEvaluation) -> list[str]:
    names = ["lambda_max_rel_err", "lambda_min_rel_err"]
    for k in evaluation.topk:
        names += [f"top{k}_rel_err", f"top{k}_overlap"]
    return names + ["trace_rel_err", "trace_err_per_abs", "w1_range", "w1_mean_abs", "w1_symlog", "ks"]


def _seed_everything(seed: int) -> None:
    """Estimators that draw from the global generators are deterministic too (CPU)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _downsample(x: list[float], y: list[float], limit: int = 200) -> Curve:
    if len(x) > limit:
        index = np.unique(np.linspace(0, len(x) - 1, limit).round().astype(int))
        x, y = [x[i] for i in index], [y[i] for i in index]
    return Curve(x=x, y=y, x_label="step")


class HessianFamily(Family):
    name: ClassVar[str] = "hessian"
    description: ClassVar[str] = (
        "Estimate a trained network's Hessian spectrum (λ_max, top-k eigenpairs, trace, density) from a budget "
        "of Hessian-vector products; scored against the exact eigendecomposition."
    )
    spec_model: ClassVar[type[TaskSpec]] = HessianTask
    method_base: ClassVar[type[Method]] = HessianMethod
    required_hooks: ClassVar[tuple[str, ...]] = ("estimate",)
    primary_metric: ClassVar[str] = f"lambda_max_rel_err@{PRIMARY_BUDGET}"
    direction: ClassVar[Literal["min", "max"]] = "min"
    reference_method: ClassVar[str] = "hessian-lanczos"

    def run(self, task: TaskSpec, method: Method, ctx: RunContext) -> RunOutcome:
        assert isinstance(task, HessianTask) and isinstance(method, HessianMethod)
        evaluation = task.evaluation
        checkpoint = train_checkpoint(task.data, task.model, task.training, ctx.seed, ctx.cache_dir)
        device = torch.device(ctx.device)
        split = digits_split(task.data)
        net = task.model.build()
        x, y = split.x_train.to(device), split.y_train.to(device)
        theta = checkpoint.theta.to(device)

        def loss_fn(params: torch.Tensor) -> torch.Tensor:
            return loss_value(task.training.loss, net.forward(params, x), y)

        hvp = reverse_over_reverse_hvp(loss_fn, theta)
        truth, from_cache = cached_truth(
            {"checkpoint": checkpoint.key, "n_top": max(evaluation.topk)},
            ctx.cache_dir,
            lambda: compute_truth(loss_fn, theta, hvp, max(evaluation.topk), evaluation.probe_count,
                                  evaluation.probe_tol, seed=ctx.seed),
        )
        with torch.enable_grad():
            params = theta.clone().requires_grad_(True)
            loss = loss_fn(params)
            (grad,) = torch.autograd.grad(loss, params)
        info = ProblemInfo(
            num_params=net.num_params, num_samples=int(x.shape[0]), loss=task.training.loss,
            step=task.training.checkpoint_step, lr=task.training.lr, loss_value=loss.item(),
            grad_norm=torch.linalg.vector_norm(grad).item(), seed=ctx.seed, device=str(device),
        )

        metrics: dict[str, Scalar] = {
            "num_params": net.num_params,
            "true_lambda_max": truth.lambda_max,
            "true_lambda_min": truth.lambda_min,
            "true_trace": truth.trace,
            "true_abs_sum": truth.abs_sum,
            "true_negative_fraction": truth.negative_fraction,
            "eos_ratio": truth.lambda_max * task.training.lr / 2.0,
            "truth_probe_rel_err": truth.probe_rel_err,
            "truth_from_cache": from_cache,
            "checkpoint_loss": info.loss_value,
            "checkpoint_train_acc": checkpoint.train_acc,
            "checkpoint_test_acc": checkpoint.test_acc,
        }
        per_budget: dict[int, dict[str, Scalar]] = {}
        any_exceeded = False
        for index, budget in enumerate(evaluation.budgets):
            oracle = HVPOracle(hvp, net.num_params, budget, device)
            _seed_everything(ctx.seed)
            start = time.perf_counter()
            estimate: SpectrumEstimate | None = None
            try:
                raw = method.estimate(oracle, info, budget)
            except BudgetExceededError:
                raw = None
            wall = time.perf_counter() - start
            exceeded = oracle.refused
            if not exceeded:
                if not isinstance(raw, SpectrumEstimate):
                    raise TypeError(f"{method.name}.estimate returned {type(raw).__name__}, not a SpectrumEstimate")
                estimate = raw.checked(net.num_params)
            scores = score(estimate, truth, method.targets, evaluation)
            any_exceeded |= exceeded
            per_budget[budget] = scores
            for name, value in scores.items():
                metrics[f"{name}@{budget}"] = value
            metrics[f"hvps_used@{budget}"] = oracle.used
            metrics[f"wall_s@{budget}"] = wall
            metrics[f"budget_exceeded@{budget}"] = exceeded
            ctx.progress(index + 1, len(evaluation.budgets))
        metrics["budget_exceeded"] = any_exceeded

        curves: dict[str, Curve] = {}
        for name in ("lambda_max_rel_err", f"top{max(evaluation.topk)}_rel_err", "trace_rel_err", "w1_mean_abs"):
            points = [(float(b), float(s[name])) for b, s in per_budget.items() if s.get(name) is not None]
            if points:
                curves[name] = Curve(x=[p[0] for p in points], y=[p[1] for p in points], x_label="HVP budget")
        losses = checkpoint.train_losses.tolist()
        if len(losses) > 1:
            curves["train_loss"] = _downsample([float(i) for i in range(len(losses))], losses)
        return RunOutcome(status="budget_exceeded" if any_exceeded else "ok", metrics=metrics, curves=curves)

    def columns(self) -> list[Column]:
        def err(header: str, metric: str) -> Column:
            return Column(header=header, metric=metric, kind="median_iqr", digits=3)

        columns = [err(f"λmax err @{PRIMARY_BUDGET}", f"lambda_max_rel_err@{PRIMARY_BUDGET}")]
        others = [b for b in LEADERBOARD_BUDGETS if b != PRIMARY_BUDGET]
        columns += [err(f"λmax err @{b}", f"lambda_max_rel_err@{b}") for b in others]
        columns += [err(f"top-10 err @{b}", f"top10_rel_err@{b}") for b in (30, 100)]
        columns += [Column("top-10 overlap @30", "top10_overlap@30", "median_iqr")]
        columns += [err(f"trace err @{b}", f"trace_rel_err@{b}") for b in (10, 100)]
        columns += [err(f"W1/mean|λ| @{b}", f"w1_mean_abs@{b}") for b in (30, 100)]
        columns += [err("W1 symlog @100", "w1_symlog@100"), Column("over budget", "budget_exceeded", "rate")]
        return columns


FAMILY = HessianFamily()
