"""Time-to-grok: how many steps until a network that has memorised its training set generalises.

Protocol (Power et al. 2022; Nanda et al. 2023; see ANCHORS.md). The harness builds the split of
(a op b) mod p from the seed (shared by every method), trains Nanda's one-layer transformer on the training
split only (full batch or the spec's minibatch), evaluates the *whole* held-out split every `eval_every`
steps, and reports:

- ``steps_to_target``: the first evaluation at which held-out accuracy reaches the target (99 %) *and*
  holds for the next `hold_evals` (5) evaluations. A run that never gets there is censored at the budget
  (``reached: false``), not failed: it is a lower bound, never averaged as if finished.
- ``steps_to_95``: the first crossing of 95 % (Grokfast, NeuralGrok, the Muon paper), ``steps_to_fit``:
  the first evaluation with training accuracy at the target (memorisation).
- final train/held-out accuracy and loss, and the FLOPs spent: forward+backward of every training example
  seen, the evaluations, and the method's own per-step overhead (filters, Newton-Schulz iterations).

A method implements :class:`GrokkingMethod`: ``configure`` returns the optimizer (optionally with an LR
scheduler stepped once per step); ``after_backward`` may rewrite gradients (Grokfast); ``prepare`` may
spend steps before training (initialisation tricks), which count against the budget.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Literal

import torch
from pydantic import Field, model_validator

from benchmark.data.modular import ModularSplit, Operation, make_split
from benchmark.families.base import Column, Curve, Family, Method, RunContext, RunOutcome
from benchmark.models.transformer import OneLayerTransformer
from benchmark.spec import StrictModel, TaskSpec

# ------------------------------------------------------------------------------------------------- spec


def _is_prime(n: int) -> bool:
    return n >= 2 and all(n % k for k in range(2, math.isqrt(n) + 1))


class GrokkingData(StrictModel):
    operation: Operation = Field(description="add: (a+b) mod p, sub: (a-b) mod p, div: a*b^-1 mod p")
    p: int = Field(ge=3, le=1000, description="The modulus; prime (division needs inverses).")
    train_fraction: float = Field(gt=0, lt=1, description="Fraction of all pairs trained on; the rest is held out.")

    @model_validator(mode="after")
    def _prime(self) -> GrokkingData:
        if not _is_prime(self.p):
            raise ValueError(f"p = {self.p} is not prime; modular division and the literature use a prime p")
        return self


class GrokkingModel(StrictModel):
    architecture: Literal["nanda-1l-transformer"] = "nanda-1l-transformer"
    d_model: int = Field(default=128, ge=4, le=4096)
    n_heads: int = Field(default=4, ge=1, le=64)
    d_mlp: int = Field(default=512, ge=4, le=16384)

    @model_validator(mode="after")
    def _heads_divide(self) -> GrokkingModel:
        if self.d_model % self.n_heads:
            raise ValueError(f"d_model {self.d_model} must be divisible by n_heads {self.n_heads}")
        return self


class GrokkingTraining(StrictModel):
    steps: int = Field(ge=1, le=10_000_000, description="Budget: optimizer steps (a run is censored there).")
    batch_size: int | None = Field(
        default=None, ge=1, description="Minibatch size (epoch-wise reshuffling); null means full batch."
    )
    eval_every: int = Field(default=50, ge=1, description="Steps between evaluations of the whole held-out split.")


class GrokkingEvaluation(StrictModel):
    metric: Literal["steps_to_target"] = "steps_to_target"
    direction: Literal["min"] = "min"
    target: float = Field(default=0.99, gt=0, le=1, description="Held-out accuracy that counts as grokked.")
    hold_evals: int = Field(default=5, ge=0, le=1000, description="Further evaluations the target must hold for.")
    crossing: float = Field(default=0.95, gt=0, le=1, description="Also report the first crossing of this accuracy.")
    stop_when_held: bool = Field(
        default=True, description="End the run once the target has held (saves compute; final accuracies are then "
        "those at the stop).",
    )


class GrokkingTask(TaskSpec):
    family: Literal["grokking"]
    data: GrokkingData
    model: GrokkingModel = Field(default_factory=GrokkingModel)
    training: GrokkingTraining
    evaluation: GrokkingEvaluation = Field(default_factory=GrokkingEvaluation)


# ---------------------------------------------------------------------------------------------- protocol


@dataclass(frozen=True)
class TrainingInfo:
    """What `configure` and `prepare` learn about the run: sizes, never the held-out data."""

    steps: int
    batch_size: int
    n_train: int
    p: int
    device: str
    seed: int


class GrokkingMethod(Method):
    """Base of grokking methods: an optimizer recipe plus optional gradient and preparation hooks."""

    family = "grokking"

    def configure(
        self, model: OneLayerTransformer, params: dict[str, torch.nn.Parameter], info: TrainingInfo
    ) -> torch.optim.Optimizer | tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler]:
        raise NotImplementedError

    def after_backward(self, model: OneLayerTransformer, step: int) -> None:
        """Called after each backward pass, before the optimizer step (gradient filters live here)."""

    def prepare(
        self, model: OneLayerTransformer, train_x: torch.Tensor, train_y: torch.Tensor, info: TrainingInfo
    ) -> int:
        """Optional work before training on the training split only; returns the steps it spent."""
        return 0

    def overhead_flops_per_step(self, model: OneLayerTransformer) -> float:
        """FLOPs the method adds to each step beyond forward+backward (optimizer update, filters)."""
        return 0.0


# ----------------------------------------------------------------------------------------------- metrics


def first_held(steps: list[int], values: list[float], threshold: float, hold: int) -> int | None:
    """The step of the first evaluation with value >= threshold that stays there for `hold` more evaluations.

    An evaluation too close to the end to show `hold` successors does not count: the run has not shown the
    accuracy holds, so it is censored rather than credited.
    """
    run = 0
    for i, value in enumerate(values):
        run = run + 1 if value >= threshold else 0
        if run == hold + 1:
            return steps[i - hold]
    return None


def first_crossing(steps: list[int], values: list[float], threshold: float) -> int | None:
    return next((s for s, v in zip(steps, values) if v >= threshold), None)


def downsample(xs: list[float], ys: list[float], max_points: int = 200) -> Curve:
    if len(xs) <= max_points:
        return Curve(list(xs), list(ys))
    idx = sorted({round(i * (len(xs) - 1) / (max_points - 1)) for i in range(max_points)})
    return Curve([xs[i] for i in idx], [ys[i] for i in idx])


# -------------------------------------------------------------------------------------------- training


@torch.no_grad()
def _accuracy_and_loss(
    model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, chunk: int = 8192
) -> tuple[float, float]:
    correct = torch.zeros((), device=x.device)
    loss = torch.zeros((), device=x.device, dtype=torch.float64)
    for start in range(0, len(x), chunk):
        logits = model(x[start : start + chunk])
        target = y[start : start + chunk]
        correct += (logits.argmax(-1) == target).sum()
        loss += torch.nn.functional.cross_entropy(logits.double(), target, reduction="sum")
    return correct.item() / len(x), loss.item() / len(x)


def build_model(task: GrokkingTask) -> OneLayerTransformer:
    return OneLayerTransformer(task.data.p, task.model.d_model, task.model.n_heads, task.model.d_mlp)


def train(
    task: GrokkingTask, method: GrokkingMethod, ctx: RunContext, split: ModularSplit | None = None
) -> RunOutcome:
    """The one training loop of the family: data on the device, minibatches by epoch-wise reshuffling."""
    device = torch.device(ctx.device)
    split = (split or make_split(task.data.operation, task.data.p, task.data.train_fraction, ctx.seed)).to(device)
    torch.manual_seed(ctx.seed)
    model = build_model(task).to(device)
    n_train = len(split.train_x)
    batch = min(task.training.batch_size or n_train, n_train)
    info = TrainingInfo(task.training.steps, batch, n_train, task.data.p, ctx.device, ctx.seed)
    params = dict(model.named_parameters())
    configured = method.configure(model, params, info)
    optimizer, scheduler = configured if isinstance(configured, tuple) else (configured, None)
    if not isinstance(optimizer, torch.optim.Optimizer):
        raise TypeError(f"configure() returned {type(optimizer).__name__}, not a torch.optim.Optimizer")

    step = int(method.prepare(model, split.train_x, split.train_y, info) or 0)
    budget, eval_every, ev = task.training.steps, task.training.eval_every, task.evaluation
    sampler = torch.Generator(device="cpu").manual_seed(ctx.seed + 1)
    order, cursor = torch.empty(0, dtype=torch.long), n_train
    eval_steps: list[int] = []
    train_acc: list[float] = []
    val_acc: list[float] = []
    val_loss: list[float] = []
    train_loss: list[float] = []
    fwd = model.forward_flops_per_example()
    step_flops = 3 * fwd * batch + method.overhead_flops_per_step(model)
    eval_flops = fwd * (n_train + len(split.test_x))
    flops = 0.0
    flops_at: dict[int, float] = {}
    t0 = time.perf_counter()
    time_at: dict[int, float] = {}
    status, error = "ok", None
    # A non-finite loss is caught the step it happens on the CPU; on a GPU checking every step would force a
    # host sync per step, so it is checked at each evaluation instead.
    check_every = 1 if device.type == "cpu" else eval_every

    def evaluate(at: int) -> None:
        nonlocal flops
        model.eval()
        tr_acc, tr_loss = _accuracy_and_loss(model, split.train_x, split.train_y)
        va_acc, va_loss = _accuracy_and_loss(model, split.test_x, split.test_y)
        model.train()
        flops += eval_flops
        eval_steps.append(at)
        train_acc.append(tr_acc)
        train_loss.append(tr_loss)
        val_acc.append(va_acc)
        val_loss.append(va_loss)
        flops_at[at], time_at[at] = flops, time.perf_counter() - t0

    evaluate(step)
    model.train()
    while step < budget:
        if cursor + batch > n_train:
            order = torch.randperm(n_train, generator=sampler).to(device)
            cursor = 0
        idx = order[cursor : cursor + batch]
        cursor += batch
        loss = torch.nn.functional.cross_entropy(model(split.train_x[idx]), split.train_y[idx])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        method.after_backward(model, step)
        optimizer.step()
        if scheduler is not None:
            scheduler.step()
        step += 1
        flops += step_flops
        if step % check_every == 0 and not math.isfinite(loss.item()):
            status, error = "diverged", f"training loss became {loss.item()} at step {step}"
            evaluate(step)
            break
        if step % eval_every == 0 or step == budget:
            evaluate(step)
            ctx.progress(step, budget)
            if ev.stop_when_held and first_held(eval_steps, val_acc, ev.target, ev.hold_evals) is not None:
                break
    ctx.progress(budget, budget)
    return _outcome(task, eval_steps, train_acc, val_acc, train_loss, val_loss, step, flops, flops_at, time_at,
                    status, error)


def _outcome(
    task: GrokkingTask,
    eval_steps: list[int],
    train_acc: list[float],
    val_acc: list[float],
    train_loss: list[float],
    val_loss: list[float],
    steps_run: int,
    flops: float,
    flops_at: dict[int, float],
    time_at: dict[int, float],
    status: str,
    error: str | None,
) -> RunOutcome:
    ev, budget = task.evaluation, task.training.steps
    grokked = first_held(eval_steps, val_acc, ev.target, ev.hold_evals)
    crossed = first_crossing(eval_steps, val_acc, ev.crossing)
    fitted = first_crossing(eval_steps, train_acc, ev.target)
    metrics = {
        "steps_to_target": grokked if grokked is not None else budget,
        "reached": grokked is not None,
        "steps_to_95": crossed if crossed is not None else budget,
        "reached_95": crossed is not None,
        "steps_to_fit": fitted if fitted is not None else budget,
        "fitted": fitted is not None,
        "final_train_acc": train_acc[-1],
        "final_val_acc": val_acc[-1],
        "final_train_loss": train_loss[-1] if math.isfinite(train_loss[-1]) else None,
        "final_val_loss": val_loss[-1] if math.isfinite(val_loss[-1]) else None,
        "steps_run": steps_run,
        "flops": flops,
        "gflops_to_target": round(flops_at[grokked] / 1e9, 3) if grokked is not None else None,
        "time_to_target_s": round(time_at[grokked], 3) if grokked is not None else None,
        "budget": budget,
    }
    curves = {
        "val_acc": downsample(eval_steps, val_acc),
        "train_acc": downsample(eval_steps, train_acc),
        "val_loss": downsample(eval_steps, [v if math.isfinite(v) else 1e30 for v in val_loss]),
    }
    return RunOutcome(status=status, metrics=metrics, curves=curves, error=error)  # type: ignore[arg-type]


class GrokkingFamily(Family):
    name = "grokking"
    description = "Steps until held-out accuracy on modular arithmetic reaches 99% and holds (time-to-grok)."
    spec_model = GrokkingTask
    method_base = GrokkingMethod
    required_hooks = ("configure",)
    primary_metric = "steps_to_target"
    direction = "min"
    reference_method = "adamw"

    def run(self, task: TaskSpec, method: Method, ctx: RunContext) -> RunOutcome:
        assert isinstance(task, GrokkingTask) and isinstance(method, GrokkingMethod)
        return train(task, method, ctx)

    def columns(self) -> list[Column]:
        return [
            Column("steps to 99% held", "steps_to_target", "median_iqr", event="reached", digits=0),
            Column("success", "reached", "rate"),
            Column("steps to 95%", "steps_to_95", "median_iqr", event="reached_95", digits=0),
            Column("memorised at", "steps_to_fit", "median_iqr", event="fitted", digits=0),
            Column("final val acc", "final_val_acc", "mean_ci", digits=4),
            Column("GFLOP to 99%", "gflops_to_target", "median_iqr", digits=1),
        ]


FAMILY = GrokkingFamily()
