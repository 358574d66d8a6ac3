"""Hessian-spectrum estimation from a budget of Hessian-vector products: how one run trains and is scored.

A method implements :meth:`~phenomena_bench.families.hessian.api.HessianMethod.estimate` (see
:mod:`phenomena_bench.families.hessian.api`, all a submitter needs). The
:class:`~phenomena_bench.families.hessian.oracle.HVPOracle` multiplies the Hessian of a fixed network's
full-batch training loss (parameters flattened, float64) by vectors or blocks, charges one HVP per column and
refuses calls past the budget; :class:`~phenomena_bench.families.hessian.api.ProblemInfo` tells the method the
parameter count, the loss, the checkpoint's training step and step size, its loss value and gradient norm —
never the model or the data.

One run is one (task, method, seed): the seed fixes the network's initialisation (the training subset is
fixed by the spec), hence the checkpoint and its cached exact spectrum. Each task is one checkpoint of one
training run — initialisation, early training, end of training, edge of stability — so a leaderboard column
is one (task, budget) pair. Inside a run the method is called ``evaluation.draws`` times (20) per budget,
each time with a fresh oracle and its own random stream (:func:`draw_seed`, derived from
``core.seeds.method_seed``: never the seed that fixes the checkpoint); a score is the median over the draws
(``lambda_max_rel_err@10``), with the 90th percentile beside it (``lambda_max_rel_err_p90@10``). Draws are
cheap because the ground truth is computed once and cached; without them a ranking of randomised
estimators (Hutchinson's trace) is the luck of one probe. The draws of a ``batchable`` method (every shipped
estimator) run as lanes of one :class:`~phenomena_bench.core.lockstep.Lockstep` — each the method's own
sequential code with its own oracle, meter, clock and random streams — and the products they wait for are
computed as one block (:func:`~phenomena_bench.families.hessian.oracle.serve_blocks`): the same estimates
to rounding, one batched backward pass instead of 60. Seeds (checkpoints) are not batched: their
parameter vectors differ, so nothing is shared but the block shape, and the draws already fill blocks
past the size where a block stops getting cheaper per column on the CPU (see
:data:`~phenomena_bench.families.hessian.oracle.MAX_BLOCK`). A budget the method overran in any draw is
recorded as exceeded (its scores left empty), the run's status becomes ``budget_exceeded`` (its error names
each overrun budget and the most HVPs a draw asked for there), and the other budgets keep their scores. An
estimate that is malformed (wrong type, shape or length, NaN or infinity)
fails the run with a one-line reason naming the budget and the field. The FLOPs ``estimate`` spends
outside the oracle are measured (``method_flops@<budget>``, summed over draws). The exact spectrum comes
from :mod:`phenomena_bench.families.hessian.truth`, computed once per (task, seed) and cached (its building,
and the checkpoint's training, are shared work no method is charged for); scores are defined in
:mod:`phenomena_bench.families.hessian.spectral` and applied in :mod:`phenomena_bench.families.hessian.score`.

**Sketch targets.** A task lists the k of its top-k scores (``evaluation.topk``) and the truth stores that
many exact eigenvectors (max k). ``digits-tanh-ce-trained-top100`` scores the top-50/100 eigenvalues and
eigenspaces at 300 and 1,000 HVPs, the regime of sketched eigendecompositions (``hessian-sketch``,
Fernandez et al. 2025); the default tasks keep their small budgets. The family's measurement
(:mod:`phenomena_bench.families.hessian.eigenspace_overlap`) reports, per checkpoint, the overlap of the
largest-|θ| coordinates with the top Hessian eigenspace against its chance level k/P.

**The primary metric: λ_max relative error at 10 HVPs (median over draws).** Measured on the default tier
(20 draws, checkpoint seed 0), the candidates were:

=====================  ======================  ==========================  =========================
candidate              reference (Lanczos)      separates the baselines?    verdict
=====================  ======================  ==========================  =========================
λ_max err @30          1e-9 / 1e-15 / 1e-7      no: Lanczos at the float     saturated (the former
                       (init/trained/EoS)       floor, eigsh exact too       primary metric)
λ_max err @10          2.4e-2 / 7.2e-5 / 5.4e-3 yes: power 1.8e-1/1.5e-2/   chosen
                                                3.9e-2, deflated power and
                                                the zero-HVP floors ~0.9,
                                                2/η prior 3.3e-2 at EoS
top-10 err @30         0.35 / 5.8e-4 / 0.12     only Lanczos vs deflated     kept as a column: power
                                                power; power scores 1        iteration claims one value
top-10 overlap @30     0.58 / 1.0 / 0.72        saturated on trained         kept as a column
trace err / Σ|λ| @10   4.5e-2 / 9.3e-2 / 9e-2   yes, but only the trace      kept as a column: the
                       (one probe, former)      methods (no λ_max ones)      λ_max methods don't claim it
W1 / mean|λ| @30       0.16 / 0.23 / 0.21       only Lanczos vs SLQ          kept as a column
=====================  ======================  ==========================  =========================

With eigsh made correct at every budget it scores 1.7e-2 / 2.1e-5 / 9.7e-3 at 10 HVPs, level with Lanczos
(1.9e-2 / 2.4e-5 / 4.8e-3); at the edge of stability power iteration (6.1e-2) loses to the 2/η prior.
λ_max at 10 HVPs is far from the floating-point floor on every checkpoint, every λ_max estimator and
both zero-HVP floors score on it, and neighbouring methods differ by about a decade; the budgets 5 → 30
show the whole curve from the floor (5 HVPs: 4e-2..2e-1) to exact (30 HVPs: 1e-7 or at the 1e-10 floor).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import partial
from typing import Any, ClassVar, Literal

import numpy as np
import torch

from phenomena_bench.core.costs import shared_work
from phenomena_bench.core.curves import Curve, downsample
from phenomena_bench.core.errors import MethodError
from phenomena_bench.core.family import Column, Family, RunContext, RunOutcome, Scalar
from phenomena_bench.core.lockstep import LaneResult, Lockstep
from phenomena_bench.core.metering import Meter
from phenomena_bench.core.method import Method, shown
from phenomena_bench.core.seeds import derive_seed, method_seed, seed_global_generators
from phenomena_bench.core.spec import TaskSpec
from phenomena_bench.families.hessian.api import (
    BudgetExceededError,
    HessianMethod,
    HVPOracle,
    ProblemInfo,
    SpectrumEstimate,
)
from phenomena_bench.families.hessian.checkpoints import _digits_split, _train_checkpoint, loss_value
from phenomena_bench.families.hessian.oracle import BlockHVP, LockstepHVP, reverse_over_reverse_hvp, serve_blocks
from phenomena_bench.families.hessian.score import BadEstimate, checked_estimate, score
from phenomena_bench.families.hessian.spec import LEADERBOARD_BUDGETS, PRIMARY_BUDGET, HessianTask
from phenomena_bench.families.hessian.truth import cached_truth, compute_truth

__all__ = ["FAMILY", "HessianFamily"]


#: (k, budget) of the top-k columns where sketched eigendecompositions compete (hundreds of HVPs).
SKETCH_COLUMNS = ((50, 300), (100, 1000))


def draw_seed(seed: int, draw: int) -> int:
    """The method's random stream for estimator draw `draw` of run `seed`: derived from the method's own
    stream (:func:`~phenomena_bench.core.seeds.method_seed`), never from the seed fixing the checkpoint."""
    return derive_seed(method_seed(seed), "hessian-draw", draw)


@dataclass(frozen=True)
class _Draw:
    """One call of ``estimate`` with a fresh oracle: its checked answer (None when it overran) and costs."""

    estimate: SpectrumEstimate | None
    exceeded: bool
    used: int
    requested: int
    wall_s: float
    flops: float


def _draw(method: HessianMethod[Any], hvp: LockstepHVP, info: ProblemInfo, budget: int, device: torch.device) -> _Draw:
    """Call the method once at `budget`, seeded from ``info.rng_seed``; a malformed answer is a MethodError.

    One lane of the run's lockstep (see :func:`_run_draws`): its FLOPs are metered by its own meter and its
    wall clock leaves out the time it waited for the other draws' code.
    """
    oracle = HVPOracle(hvp, info.num_params, budget, device)
    meter = Meter()
    seed_global_generators(info.rng_seed)
    start = time.perf_counter()
    raw: object
    try:
        with meter.count(f"estimate@{budget}"):
            raw = method.estimate(oracle, info, budget)
    except BudgetExceededError:
        raw = None
    wall = time.perf_counter() - start - hvp.idle_s
    estimate: SpectrumEstimate | None = None
    if not oracle.refused:
        if not isinstance(raw, SpectrumEstimate):
            raise MethodError(
                f"method {method.name!r}: estimate() at budget {budget} returned {shown(raw)}; "
                "expected a SpectrumEstimate"
            )
        try:
            estimate = checked_estimate(raw, info.num_params)
        except BadEstimate as err:
            raise MethodError(f"method {method.name!r}: estimate() at budget {budget}: {err}") from None
    return _Draw(estimate, oracle.refused, oracle.used, oracle.requested, wall, meter.flops)


def _run_draws(
    method: HessianMethod[Any],
    hvp: BlockHVP,
    info: ProblemInfo,
    seed: int,
    budgets: list[int],
    draws: int,
    device: torch.device,
) -> dict[int, list[_Draw]]:
    """Every draw at every budget, in (budget, draw) order; the first draw that raised fails the run.

    The draws of a ``batchable`` method run as lanes of one :class:`Lockstep`: each is the method's own
    sequential code with its own oracle and random streams, and whenever all of them wait for a product the
    waiting blocks are computed as one batched HVP (:func:`serve_blocks`), which is what makes draws cheap.
    A method that is not batchable gets the same lanes called one after another (each product then served at
    once), as before: the lockstep's per-lane random state covers the global generators only, so a method
    with other shared state could tell its draws apart.
    """
    lockstep: Lockstep[torch.Tensor, tuple[torch.Tensor, float]] = Lockstep(partial(serve_blocks, hvp))
    plan = [(budget, draw) for budget in budgets for draw in range(draws)]
    lanes: list[Callable[[], _Draw]] = [
        partial(_draw, method, LockstepHVP(lockstep), replace(info, rng_seed=draw_seed(seed, d)), budget, device)
        for budget, d in plan
    ]
    results = lockstep.run(lanes) if method.batchable else [LaneResult(value=lane()) for lane in lanes]
    by_budget: dict[int, list[_Draw]] = {budget: [] for budget in budgets}
    for (budget, _), result in zip(plan, results, strict=True):
        if result.error is not None:
            raise result.error
        assert result.value is not None
        by_budget[budget].append(result.value)
    return by_budget


def _overrun(budget: int, draws: list[_Draw]) -> str | None:
    """One clause naming `budget` and the HVPs its over-budget draws asked for; None if none overran."""
    over = [d.requested for d in draws if d.exceeded]
    if not over:
        return None
    return f"budget {budget}: asked for up to {max(over)} HVPs in {len(over)} of {len(draws)} draws"


def _quantile(values: list[Scalar], q: float) -> float | None:
    """The `q` quantile of the draws' scores; None if any draw has none (not claimed, or over budget)."""
    if not values or any(v is None for v in values):
        return None
    return float(np.quantile(np.asarray(values, dtype=np.float64), q))


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
    #: Fernandez et al.'s magnitude mask vs top eigenspace overlap, exact per checkpoint (shown, not ranked).
    measurements: ClassVar[tuple[str, ...]] = (
        "phenomena_bench.families.hessian.eigenspace_overlap:MagnitudeEigenspaceOverlap",
    )

    def run(self, task: HessianTask, method: HessianMethod[Any], ctx: RunContext) -> RunOutcome:
        evaluation = task.evaluation
        with shared_work("hessian-checkpoint"):
            checkpoint = _train_checkpoint(task.data, task.model, task.training, ctx.seed, ctx.cache_dir)
        device = torch.device(ctx.device)
        split = _digits_split(task.data)
        net = task.model.build()
        x, y = split.x_train.to(device), split.y_train.to(device)
        theta = checkpoint.theta.to(device)

        def loss_fn(params: torch.Tensor) -> torch.Tensor:
            return loss_value(task.training.loss, net.forward(params, x), y)

        hvp = reverse_over_reverse_hvp(loss_fn, theta)
        with shared_work("hessian-truth"):
            truth, from_cache = cached_truth(
                {"checkpoint": checkpoint.key, "n_top": max(evaluation.topk)},
                ctx.cache_dir,
                lambda: compute_truth(
                    loss_fn,
                    theta,
                    hvp,
                    max(evaluation.topk),
                    evaluation.probe_count,
                    evaluation.probe_tol,
                    seed=derive_seed(ctx.seed, "hessian-truth-probes"),
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
        overruns: list[str] = []
        all_draws = _run_draws(method, hvp, info, ctx.seed, list(evaluation.budgets), evaluation.draws, device)
        for index, (budget, draws) in enumerate(all_draws.items()):
            exceeded = any(d.exceeded for d in draws)
            if (overrun := _overrun(budget, draws)) is not None:
                overruns.append(overrun)
            per_draw = [score(d.estimate, truth, method.targets, evaluation) for d in draws]
            scores: dict[str, Scalar] = {name: _quantile([s[name] for s in per_draw], 0.5) for name in per_draw[0]}
            per_budget[budget] = scores
            for name, value in scores.items():
                metrics[f"{name}@{budget}"] = value
                metrics[f"{name}_p90@{budget}"] = _quantile([s[name] for s in per_draw], 0.9)
            metrics[f"method_flops@{budget}"] = sum(d.flops for d in draws)
            metrics[f"hvps_used@{budget}"] = max(d.used for d in draws)
            metrics[f"wall_s@{budget}"] = sum(d.wall_s for d in draws)
            metrics[f"budget_exceeded@{budget}"] = exceeded
            ctx.progress(index + 1, len(evaluation.budgets))
        metrics["budget_exceeded"] = bool(overruns)
        metrics["method_flops"] = sum(d.flops for draws in all_draws.values() for d in draws)

        curves: dict[str, Curve] = {}
        for name in ("lambda_max_rel_err", f"top{max(evaluation.topk)}_rel_err", "trace_rel_err", "w1_mean_abs"):
            points = [(float(b), float(v)) for b, s in per_budget.items() if (v := s.get(name)) is not None]
            if points:
                curves[name] = Curve(x=[p[0] for p in points], y=[p[1] for p in points], x_label="HVP budget")
        losses = checkpoint.train_losses.tolist()
        if len(losses) > 1:
            curves["train_loss"] = downsample([float(i) for i in range(len(losses))], losses, x_label="step")
        if overruns:
            reason = "over the HVP budget (" + "; ".join(overruns) + ")"
            return RunOutcome(status="budget_exceeded", metrics=metrics, curves=curves, error=reason)
        return RunOutcome(status="ok", metrics=metrics, curves=curves)

    def columns(self) -> list[Column]:
        # An estimator that failed or ran over budget returned nothing: relative error 1.0 (estimate 0).
        # The primary column is read by the cross-task scores as an error ("value": 0 is exact, lower is
        # better); that is right because every relative error is floored at RELATIVE_ERROR_FLOOR, so exact
        # answers tie for best and the ratios of reference to run errors stay finite.
        def err(header: str, metric: str, error: Literal["value"] | None = None) -> Column:
            return Column(header=header, metric=metric, kind="median_iqr", digits=3, floor=1.0, error=error)

        primary = f"lambda_max_rel_err@{PRIMARY_BUDGET}"
        columns = [err(f"λmax err @{PRIMARY_BUDGET}", primary, error="value")]
        columns += [err(f"λmax err p90 @{PRIMARY_BUDGET}", f"lambda_max_rel_err_p90@{PRIMARY_BUDGET}")]
        columns += [
            err(f"λmax err @{b}", f"lambda_max_rel_err@{b}") for b in LEADERBOARD_BUDGETS if b != PRIMARY_BUDGET
        ]
        columns += [err("top-10 err @30", "top10_rel_err@30")]
        columns += [Column("top-10 overlap @30", "top10_overlap@30", "median_iqr", floor=0.0)]
        # The sketch targets (tasks whose topk and budgets include them, e.g. digits-tanh-ce-trained-top100).
        columns += [err(f"top-{k} err @{b}", f"top{k}_rel_err@{b}") for k, b in SKETCH_COLUMNS]
        columns += [
            Column(f"top-{k} overlap @{b}", f"top{k}_overlap@{b}", "median_iqr", floor=0.0) for k, b in SKETCH_COLUMNS
        ]
        columns += [err(f"trace err/Σ|λ| @{b}", f"trace_err_per_abs@{b}") for b in (10, 30)]
        columns += [err("trace err @10", "trace_rel_err@10"), err("trace err p90 @10", "trace_rel_err_p90@10")]
        columns += [err(f"W1/mean|λ| @{b}", f"w1_mean_abs@{b}") for b in (10, 30)]
        columns += [
            Column("W1 symlog @30", "w1_symlog@30", "median_iqr", digits=3),
            Column("over budget", "budget_exceeded", "rate"),
        ]
        return columns


FAMILY = HessianFamily()
