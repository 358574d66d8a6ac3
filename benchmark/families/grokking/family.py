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

import copy
import math
import time
from dataclasses import dataclass, field
from typing import ClassVar, Literal

import torch
from phenomena_bench.core.curves import Curve
from phenomena_bench.core.family import Column, Family, RunContext, RunOutcome
from phenomena_bench.core.method import Method
from phenomena_bench.core.spec import StrictModel, TaskSpec
from phenomena_bench.data.modular import Operation, make_split
from phenomena_bench.models.transformer import OneLayerTransformer
from pydantic import Field, model_validator
from torch.func import functional_call, stack_module_state, vmap

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
    #: True when every hook is element-wise over parameters, so R seeds can train as one program on a
    #: leading run axis with results identical to R separate runs (see :class:`Runs`).
    batchable: ClassVar[bool] = False

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


def build_model(task: GrokkingTask) -> OneLayerTransformer:
    return OneLayerTransformer(task.data.p, task.model.d_model, task.model.n_heads, task.model.d_mlp)


class Runs:
    """R independent runs (seeds) of one (task, method) trained as one program, on a leading run axis.

    With R = 1 this is the plain model (no vmap: no overhead). With R > 1 the R models' parameters are
    stacked into one module with the same parameter names (shape (R, ...)), and the forward pass is
    ``vmap(functional_call)``: on a GPU this turns R launch-bound tiny models into one throughput-bound
    program. Element-wise optimizers (Adam, AdamW) and element-wise gradient filters (Grokfast) on the stacked
    leaves are exactly R independent copies; a method declares that with ``batchable = True``.
    """

    def __init__(self, task: GrokkingTask, seeds: list[int], device: torch.device) -> None:
        models = []
        for seed in seeds:
            torch.manual_seed(seed)  # the same initialisation as a run of this seed alone
            models.append(build_model(task).to(device))
        self.n = len(seeds)
        self.base = models[0]
        if self.n == 1:
            self.module: torch.nn.Module = models[0]
        else:
            stacked, _ = stack_module_state(models)  # type: ignore[arg-type]
            self.module = torch.nn.Module()
            for name, value in stacked.items():
                self.module.register_parameter(name, torch.nn.Parameter(value))
            for attr in ("HIDDEN_MATRICES", "EMBEDDINGS", "UNEMBEDDING"):
                setattr(self.module, attr, getattr(OneLayerTransformer, attr))
            self._skeleton = copy.deepcopy(models[0]).to("meta")
            self._vmapped = vmap(lambda params, x: functional_call(self._skeleton, params, (x,)))

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """Logits (R, B, p) for tokens (R, B, 3)."""
        if self.n == 1:
            return self.module(x[0]).unsqueeze(0)
        return self._vmapped(dict(self.module.named_parameters()), x)


def _per_run_cross_entropy(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy of each run (R,): summing them gives each run exactly its own gradient."""
    runs, batch, classes = logits.shape
    losses = torch.nn.functional.cross_entropy(logits.reshape(-1, classes), y.reshape(-1), reduction="none")
    return losses.view(runs, batch).mean(1)


@torch.no_grad()
def _accuracy_and_loss(
    runs: Runs, x: torch.Tensor, y: torch.Tensor, chunk: int = 8192
) -> tuple[list[float], list[float]]:
    """Per-run accuracy and mean loss over every example of (R, N, 3) / (R, N), in float64 loss sums."""
    correct = torch.zeros(x.shape[0], device=x.device)
    loss = torch.zeros(x.shape[0], device=x.device, dtype=torch.float64)
    for start in range(0, x.shape[1], chunk):
        logits = runs(x[:, start : start + chunk])
        target = y[:, start : start + chunk]
        correct += (logits.argmax(-1) == target).sum(1)
        loss += torch.nn.functional.cross_entropy(
            logits.double().transpose(1, 2), target, reduction="none"
        ).sum(1)
    n = x.shape[1]
    return (correct / n).tolist(), (loss / n).tolist()


@dataclass
class _Track:
    """One run's evaluations and fate inside a (possibly batched) training program."""

    eval_steps: list[int] = field(default_factory=list)
    train_acc: list[float] = field(default_factory=list)
    val_acc: list[float] = field(default_factory=list)
    train_loss: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    flops_at: dict[int, float] = field(default_factory=dict)
    time_at: dict[int, float] = field(default_factory=dict)
    active: bool = True
    steps_run: int = 0
    flops: float = 0.0
    status: str = "ok"
    error: str | None = None


def train(task: GrokkingTask, method: GrokkingMethod, ctx: RunContext) -> RunOutcome:
    """One run: the batched loop with a single seed."""
    return train_runs(task, method, [ctx.seed], ctx)[0]


def train_runs(task: GrokkingTask, method: GrokkingMethod, seeds: list[int], ctx: RunContext) -> list[RunOutcome]:
    """The one training loop of the family, for one or several seeds at once.

    Data stays on the device; minibatches come from epoch-wise reshuffling with each seed's own generator,
    so a seed sees the same batches alone or batched. Each run stops on its own (target held, diverged or
    budget); its metrics come only from its own evaluations.
    """
    if len(seeds) > 1 and (not method.batchable or type(method).prepare is not GrokkingMethod.prepare):
        raise ValueError(f"method {method.name!r} cannot train several seeds as one program")
    device = torch.device(ctx.device)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True  # TF32 keeps grokking's dynamics; BF16 would not
    splits = [make_split(task.data.operation, task.data.p, task.data.train_fraction, seed) for seed in seeds]
    train_x, train_y, test_x, test_y = (
        torch.stack([getattr(s, name) for s in splits]).to(device)
        for name in ("train_x", "train_y", "test_x", "test_y")
    )
    runs = Runs(task, seeds, device)
    n_train = train_x.shape[1]
    batch = min(task.training.batch_size or n_train, n_train)
    info = TrainingInfo(task.training.steps, batch, n_train, task.data.p, ctx.device, seeds[0])
    configured = method.configure(runs.module, dict(runs.module.named_parameters()), info)  # type: ignore[arg-type]
    optimizer, scheduler = configured if isinstance(configured, tuple) else (configured, None)
    if not isinstance(optimizer, torch.optim.Optimizer):
        raise TypeError(f"configure() returned {type(optimizer).__name__}, not a torch.optim.Optimizer")
    step = int(method.prepare(runs.module, train_x[0], train_y[0], info) or 0)  # type: ignore[arg-type]

    budget, eval_every, ev = task.training.steps, task.training.eval_every, task.evaluation
    samplers = [torch.Generator(device="cpu").manual_seed(seed + 1) for seed in seeds]
    order, cursor = torch.empty(0, dtype=torch.long), n_train
    fwd = runs.base.forward_flops_per_example()
    step_flops = 3 * fwd * batch + method.overhead_flops_per_step(runs.base)
    eval_flops = fwd * (n_train + test_x.shape[1])
    tracks = [_Track() for _ in seeds]

    def forward_loss(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return _per_run_cross_entropy(runs(x), y)

    if ctx.compile:  # the training step only; evaluation runs every eval_every steps and stays eager
        forward_loss = torch.compile(forward_loss, dynamic=False)  # type: ignore[assignment]
    t0 = time.perf_counter()
    # A non-finite loss is caught the step it happens on the CPU; on a GPU checking every step would force a
    # host sync per step, so it is checked at each evaluation instead.
    check_every = 1 if device.type == "cpu" else eval_every

    def evaluate(at: int) -> None:
        tr_acc, tr_loss = _accuracy_and_loss(runs, train_x, train_y)
        va_acc, va_loss = _accuracy_and_loss(runs, test_x, test_y)
        for r, track in enumerate(tracks):
            if not track.active:
                continue
            track.flops += eval_flops
            track.eval_steps.append(at)
            track.train_acc.append(tr_acc[r])
            track.train_loss.append(tr_loss[r])
            track.val_acc.append(va_acc[r])
            track.val_loss.append(va_loss[r])
            track.flops_at[at], track.time_at[at] = track.flops, time.perf_counter() - t0
            track.steps_run = at
            if ev.stop_when_held and first_held(track.eval_steps, track.val_acc, ev.target, ev.hold_evals) is not None:
                track.active = False

    evaluate(step)
    while step < budget and any(t.active for t in tracks):
        if cursor + batch > n_train:
            order = torch.stack([torch.randperm(n_train, generator=g) for g in samplers]).to(device)
            cursor = 0
        idx = order[:, cursor : cursor + batch]
        cursor += batch
        x = torch.take_along_dim(train_x, idx.unsqueeze(-1), dim=1)
        losses = forward_loss(x, torch.take_along_dim(train_y, idx, dim=1))
        optimizer.zero_grad(set_to_none=True)
        losses.sum().backward()
        method.after_backward(runs.module, step)  # type: ignore[arg-type]
        optimizer.step()
        if scheduler is not None:
            scheduler.step()
        step += 1
        for track in tracks:
            track.flops += step_flops if track.active else 0.0
        if step % check_every == 0:
            finite = torch.isfinite(losses).tolist()
            if not all(finite[r] for r, t in enumerate(tracks) if t.active):
                evaluate(step)
                for r, track in enumerate(tracks):
                    if track.active and not finite[r]:
                        track.status, track.active = "diverged", False
                        track.error = f"training loss became {losses[r].item()} at step {step}"
        if step % eval_every == 0 or step == budget:
            evaluate(step)
            ctx.progress(step, budget)
    ctx.progress(budget, budget)
    return [_outcome(task, t) for t in tracks]


def _outcome(task: GrokkingTask, t: _Track) -> RunOutcome:
    ev, budget = task.evaluation, task.training.steps
    eval_steps, train_acc, val_acc, val_loss = t.eval_steps, t.train_acc, t.val_acc, t.val_loss
    train_loss = t.train_loss
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
        "steps_run": t.steps_run,
        "flops": t.flops,
        "gflops_to_target": round(t.flops_at[grokked] / 1e9, 3) if grokked is not None else None,
        "time_to_target_s": round(t.time_at[grokked], 3) if grokked is not None else None,
        "budget": budget,
    }
    curves = {
        "val_acc": downsample(eval_steps, val_acc),
        "train_acc": downsample(eval_steps, train_acc),
        "val_loss": downsample(eval_steps, [v if math.isfinite(v) else 1e30 for v in val_loss]),
    }
    return RunOutcome(status=t.status, metrics=metrics, curves=curves, error=t.error)  # type: ignore[arg-type]


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

    def can_batch(self, method: Method) -> bool:
        """Element-wise methods without a `prepare` phase (which sees one run's data) train seeds together."""
        return (
            isinstance(method, GrokkingMethod) and method.batchable
            and type(method).prepare is GrokkingMethod.prepare
        )

    def run_batch(self, task: TaskSpec, method: Method, seeds: list[int], ctx: RunContext) -> list[RunOutcome]:
        assert isinstance(task, GrokkingTask) and isinstance(method, GrokkingMethod)
        return train_runs(task, method, seeds, ctx)

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
