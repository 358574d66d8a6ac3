"""Hessian-spectrum estimation from a budget of Hessian-vector products: how one run trains and is scored.

A method implements :meth:`~phenomena_bench.families.hessian.api.HessianMethod.estimate` (see
:mod:`phenomena_bench.families.hessian.api`, all a submitter needs). The
:class:`~phenomena_bench.families.hessian.oracle.HVPOracle` multiplies the Hessian of a fixed network's
full-batch training loss (parameters flattened, float64) by vectors or blocks, charges one HVP per column and
refuses calls past the budget; :class:`~phenomena_bench.families.hessian.api.ProblemInfo` tells the method the
parameter count, the loss, the checkpoint's training step and step size, its loss value and gradient norm —
never the model or the data.

One run is one (task, method, seed): the seed fixes the network's initialisation (the training subset is
fixed by the spec); the estimator's random numbers come from its own stream (``core.seeds.method_seed``),
never from the seed that fixes the checkpoint. Each task is one checkpoint of one training run —
initialisation, early training, end of training, edge of stability — so a leaderboard column is one
(task, budget) pair; inside a run the method is called once per budget of the spec with a fresh oracle,
and every metric carries its budget as a suffix (``lambda_max_rel_err@30``). A budget the method overran
is recorded as exceeded (its scores left empty), the run's status becomes ``budget_exceeded``, and the
other budgets keep their scores. An estimate that is malformed (wrong type, shape or length, NaN or
infinity) fails the run with a one-line reason naming the budget and the field. The FLOPs ``estimate``
spends outside the oracle are measured (``method_flops@<budget>``, ``method_flops``). The exact spectrum comes from
:mod:`phenomena_bench.families.hessian.truth`, computed once per (task, seed) and cached; scores are defined
in :mod:`phenomena_bench.families.hessian.spectral` and applied in :mod:`phenomena_bench.families.hessian.score`.
"""

from __future__ import annotations

import time
from typing import Any, ClassVar, Literal

import torch

from phenomena_bench.core.curves import Curve, downsample
from phenomena_bench.core.errors import MethodError
from phenomena_bench.core.family import Column, Family, RunContext, RunOutcome, Scalar
from phenomena_bench.core.metering import Meter
from phenomena_bench.core.method import Method, shown
from phenomena_bench.core.seeds import method_seed, seed_global_generators
from phenomena_bench.core.spec import TaskSpec
from phenomena_bench.families.hessian.api import (
    BudgetExceededError,
    HessianMethod,
    HVPOracle,
    ProblemInfo,
    SpectrumEstimate,
)
from phenomena_bench.families.hessian.checkpoints import _digits_split, _train_checkpoint, loss_value
from phenomena_bench.families.hessian.oracle import reverse_over_reverse_hvp
from phenomena_bench.families.hessian.score import BadEstimate, checked_estimate, score
from phenomena_bench.families.hessian.spec import LEADERBOARD_BUDGETS, PRIMARY_BUDGET, HessianTask
from phenomena_bench.families.hessian.truth import cached_truth, compute_truth

__all__ = ["FAMILY", "HessianFamily"]


class HessianFamily(Family[HessianTask, HessianMethod[Any]]):
    name: ClassVar[str] = "hessian"
    description: ClassVar[str] = (
        "Estimate a trained network's Hessian spectrum (λ_max, top-k eigenpairs, trace, density) from a budget "
        "of Hessian-vector products; scored against the exact eigendecomposition."
    )
    spec_model: ClassVar[type[TaskSpec]] = HessianTask
    method_base: ClassVar[type[Method[Any]]] = HessianMethod
    primary_metric: ClassVar[str] = f"lambda_max_rel_err@{PRIMARY_BUDGET}"
    direction: ClassVar[Literal["min", "max"]] = "min"
    reference_method: ClassVar[str] = "hessian-lanczos"

    def run(self, task: HessianTask, method: HessianMethod[Any], ctx: RunContext) -> RunOutcome:
        evaluation = task.evaluation
        checkpoint = _train_checkpoint(task.data, task.model, task.training, ctx.seed, ctx.cache_dir)
        device = torch.device(ctx.device)
        split = _digits_split(task.data)
        net = task.model.build()
        x, y = split.x_train.to(device), split.y_train.to(device)
        theta = checkpoint.theta.to(device)

        def loss_fn(params: torch.Tensor) -> torch.Tensor:
            return loss_value(task.training.loss, net.forward(params, x), y)

        hvp = reverse_over_reverse_hvp(loss_fn, theta)
        truth, from_cache = cached_truth(
            {"checkpoint": checkpoint.key, "n_top": max(evaluation.topk)},
            ctx.cache_dir,
            lambda: compute_truth(
                loss_fn, theta, hvp, max(evaluation.topk), evaluation.probe_count, evaluation.probe_tol, seed=ctx.seed
            ),
        )
        with torch.enable_grad():
            params = theta.clone().requires_grad_(True)
            loss = loss_fn(params)
            (grad,) = torch.autograd.grad(loss, params)
        info = ProblemInfo(
            num_params=net.num_params,
            num_samples=int(x.shape[0]),
            loss=task.training.loss,
            step=task.training.checkpoint_step,
            lr=task.training.lr,
            loss_value=loss.item(),
            grad_norm=torch.linalg.vector_norm(grad).item(),
            rng_seed=method_seed(ctx.seed),
            device=str(device),
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
        meter = Meter()
        for index, budget in enumerate(evaluation.budgets):
            oracle = HVPOracle(hvp, net.num_params, budget, device)
            seed_global_generators(info.rng_seed)
            start = time.perf_counter()
            estimate: SpectrumEstimate | None = None
            raw: object
            spent = meter.flops
            try:
                with meter.count(f"estimate@{budget}"):
                    raw = method.estimate(oracle, info, budget)
            except BudgetExceededError:
                raw = None
            wall = time.perf_counter() - start
            exceeded = oracle.refused
            if not exceeded:
                if not isinstance(raw, SpectrumEstimate):
                    raise MethodError(
                        f"method {method.name!r}: estimate() at budget {budget} returned {shown(raw)}; "
                        "expected a SpectrumEstimate"
                    )
                try:
                    estimate = checked_estimate(raw, net.num_params)
                except BadEstimate as err:
                    raise MethodError(f"method {method.name!r}: estimate() at budget {budget}: {err}") from None
            metrics[f"method_flops@{budget}"] = meter.flops - spent
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
        metrics["method_flops"] = meter.flops

        curves: dict[str, Curve] = {}
        for name in ("lambda_max_rel_err", f"top{max(evaluation.topk)}_rel_err", "trace_rel_err", "w1_mean_abs"):
            points = [(float(b), float(v)) for b, s in per_budget.items() if (v := s.get(name)) is not None]
            if points:
                curves[name] = Curve(x=[p[0] for p in points], y=[p[1] for p in points], x_label="HVP budget")
        losses = checkpoint.train_losses.tolist()
        if len(losses) > 1:
            curves["train_loss"] = downsample([float(i) for i in range(len(losses))], losses, x_label="step")
        return RunOutcome(status="budget_exceeded" if any_exceeded else "ok", metrics=metrics, curves=curves)

    def columns(self) -> list[Column]:
        # an estimator that failed or ran over budget returned nothing: relative error 1.0 (estimate 0)
        def err(header: str, metric: str, error: Literal["value"] | None = None) -> Column:
            return Column(header=header, metric=metric, kind="median_iqr", digits=3, floor=1.0, error=error)

        primary = f"lambda_max_rel_err@{PRIMARY_BUDGET}"
        columns = [err(f"λmax err @{PRIMARY_BUDGET}", primary, error="value")]
        others = [b for b in LEADERBOARD_BUDGETS if b != PRIMARY_BUDGET]
        columns += [err(f"λmax err @{b}", f"lambda_max_rel_err@{b}") for b in others]
        columns += [err(f"top-10 err @{b}", f"top10_rel_err@{b}") for b in (30, 100)]
        columns += [Column("top-10 overlap @30", "top10_overlap@30", "median_iqr", floor=0.0)]
        columns += [err(f"trace err @{b}", f"trace_rel_err@{b}") for b in (10, 100)]
        columns += [err(f"W1/mean|λ| @{b}", f"w1_mean_abs@{b}") for b in (30, 100)]
        columns += [
            Column("W1 symlog @100", "w1_symlog@100", "median_iqr", digits=3),
            Column("over budget", "budget_exceeded", "rate"),
        ]
        return columns


FAMILY = HessianFamily()
