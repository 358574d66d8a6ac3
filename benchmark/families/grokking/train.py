"""The grokking family's one training loop, for one seed or several seeds trained as one program.

The harness builds the split of (a op b) mod p from the seed (shared by every method), trains Nanda's
one-layer transformer on the training split only (full batch or the spec's minibatch), evaluates the
*whole* held-out split every `eval_every` steps and records each evaluation in a :class:`Track`, which
:mod:`.score` turns into metrics. FLOPs counted: forward+backward of every training example seen, the
evaluations (analytic), and the method's own code, measured by :class:`~phenomena_bench.core.metering.Meter`
around every hook, the optimizer's ``step()`` and the scheduler's. Everything a hook returns is checked
before it counts. Every evaluation also records Golechha's progress measures on the training split
(:class:`_ProgressProbe`, :mod:`~phenomena_bench.core.progress_measures`), stored as curves: the harness's
own cost, left out of the FLOP counts.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import time
from collections.abc import Callable
from typing import Any, cast

import torch
from torch.func import functional_call, stack_module_state, vmap

from phenomena_bench.core.curves import downsample
from phenomena_bench.core.errors import MethodError
from phenomena_bench.core.family import RunContext, RunOutcome
from phenomena_bench.core.metering import Meter
from phenomena_bench.core.method import bad_output, checked_count, checked_flops, shown
from phenomena_bench.core.progress_measures import (
    ActivationRecorder,
    ProgressMeasures,
    SplitMeasures,
    ablated,
    ablation_masks,
    weights_of,
)
from phenomena_bench.core.seeds import derive_seed, method_seed, seed_global_generators
from phenomena_bench.data.modular import _make_split
from phenomena_bench.families.grokking.api import GrokkingMethod, TrainingInfo
from phenomena_bench.families.grokking.score import Track, first_held, score_run
from phenomena_bench.families.grokking.spec import GrokkingEvaluation, GrokkingTask
from phenomena_bench.models.transformer import OneLayerTransformer


def build_model(task: GrokkingTask) -> OneLayerTransformer:
    return OneLayerTransformer(task.data.p, task.model.d_model, task.model.n_heads, task.model.d_mlp)


def has_own_prepare(method: GrokkingMethod[Any]) -> bool:
    """Whether `method` overrides :meth:`GrokkingMethod.prepare` or :meth:`GrokkingMethod.training_examples`
    (each sees or selects one run's data, so its seeds cannot train as one program)."""
    cls = type(method)
    return cls.prepare is not GrokkingMethod.prepare or cls.training_examples is not GrokkingMethod.training_examples


def _checked_examples(value: object, name: str, n_train: int) -> torch.Tensor | None:
    """What `training_examples` returned: None, or distinct in-range indices of the training split (CPU)."""
    if value is None:
        return None
    expected = f"None or a 1-D tensor of distinct integer indices in [0, {n_train}), at least one"
    if not isinstance(value, torch.Tensor) or value.ndim != 1 or value.numel() == 0:
        raise bad_output(name, "training_examples()", value, expected)
    if value.dtype.is_floating_point or value.dtype.is_complex or value.dtype == torch.bool:
        raise bad_output(name, "training_examples()", value, expected)
    index = value.detach().to("cpu", torch.long)
    if int(index.min()) < 0 or int(index.max()) >= n_train or index.unique().numel() != index.numel():
        raise bad_output(name, "training_examples()", value, expected)
    return index


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
            stacked, _ = stack_module_state(models)
            self.module = torch.nn.Module()
            for name, value in stacked.items():
                self.module.register_parameter(name, torch.nn.Parameter(value))
            for attr in ("HIDDEN_MATRICES", "EMBEDDINGS", "UNEMBEDDING"):
                setattr(self.module, attr, getattr(OneLayerTransformer, attr))
            self._skeleton = copy.deepcopy(models[0]).to("meta")
            self._vmapped = vmap(lambda params, x: functional_call(self._skeleton, params, (x,)))
            self._vmapped_recorded = vmap(lambda params, x: _recorded_call(self._skeleton, params, x))

    @property
    def hook_model(self) -> OneLayerTransformer:
        """What the method's hooks receive: the model itself, or (R > 1) the stacked stand-in documented in
        :class:`GrokkingMethod` (same parameter names and name lists; element-wise use only)."""
        return cast(OneLayerTransformer, self.module)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """Logits (R, B, p) for tokens (R, B, 3)."""
        if self.n == 1:
            return cast(torch.Tensor, self.module(x[0]).unsqueeze(0))
        return cast(torch.Tensor, self._vmapped(dict(self.module.named_parameters()), x))

    def with_params(self, params: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        """Logits (R, B, p) with `params` (the module's names and shapes, stacked when R > 1) in its place."""
        if self.n == 1:
            return cast(torch.Tensor, functional_call(self.module, params, (x[0],)).unsqueeze(0))
        return cast(torch.Tensor, self._vmapped(params, x))

    def recorded(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Logits (R, B, p) for tokens (R, B, 3) and, from the same pass, every ReLU's output (R, B, n)."""
        if self.n == 1:
            logits, activations = _recorded_call(self.module, dict(self.module.named_parameters()), x[0])
            return logits.unsqueeze(0), [a.unsqueeze(0) for a in activations]
        logits, activations = self._vmapped_recorded(dict(self.module.named_parameters()), x)
        return logits, list(activations)

    def run_params(self, r: int) -> dict[str, torch.Tensor]:
        """Run `r`'s parameters by name (R > 1: its slice of the stack)."""
        params: dict[str, torch.Tensor] = dict(self.module.named_parameters())
        return params if self.n == 1 else {name: value[r] for name, value in params.items()}


def _recorded_call(
    module: torch.nn.Module, params: dict[str, torch.Tensor], x: torch.Tensor
) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
    """`module`'s logits with `params` and its ReLU outputs (returned, not kept: inside vmap they are per-run)."""
    with ActivationRecorder() as recorder:
        logits = functional_call(module, params, (x,))
    return logits, tuple(recorder.activations)


#: Examples per forward pass of an evaluation (bounds its memory on the full tier).
EVAL_CHUNK = 8192


def _per_run_cross_entropy(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy of each run (R,): summing them gives each run exactly its own gradient."""
    runs, batch, classes = logits.shape
    losses = torch.nn.functional.cross_entropy(logits.reshape(-1, classes), y.reshape(-1), reduction="none")
    return losses.view(runs, batch).mean(1)


@torch.no_grad()
def _accuracy_and_loss(
    runs: Runs, x: torch.Tensor, y: torch.Tensor, chunk: int = EVAL_CHUNK, probe: _ProgressProbe | None = None
) -> tuple[list[float], list[float]]:
    """Per-run accuracy and mean loss over every example of (R, N, 3) / (R, N), in float64 loss sums; with a
    `probe`, each chunk's forward pass also records the ReLU activations and the probe measures the chunk."""
    correct = torch.zeros(x.shape[0], device=x.device)
    loss = torch.zeros(x.shape[0], device=x.device, dtype=torch.float64)
    for start in range(0, x.shape[1], chunk):
        if probe is None:
            logits = runs(x[:, start : start + chunk])
        else:
            logits, activations = runs.recorded(x[:, start : start + chunk])
            probe.observe(x[:, start : start + chunk], logits, activations)
        target = y[:, start : start + chunk]
        correct += (logits.argmax(-1) == target).sum(1)
        loss += torch.nn.functional.cross_entropy(logits.double().transpose(1, 2), target, reduction="none").sum(1)
    n = x.shape[1]
    return (correct / n).tolist(), (loss / n).tolist()


class _ProgressProbe:
    """Golechha's progress measures of every run at every evaluation, on the whole training split (never the
    held-out split: they describe the model as it fits what it is trained on).

    They reuse the evaluation's forward pass over the training split (its logits and ReLU activations) and add
    one ablated pass of all the runs together, with keep-masks drawn once per run from a harness stream of its
    seed (never the method's: its global generators stay untouched) and kept for the whole run, so the curve
    follows the model, not fresh draws, and a run's masks are the same alone or batched. The weight measures
    read each run's own slice of the parameters. This is the harness's cost: outside the method's FLOP meter
    and the FLOP counts (``bench/progress_measures.py`` measures its share of the training time).
    """

    def __init__(self, runs: Runs, seeds: list[int]) -> None:
        self.runs = runs
        weights = weights_of(runs.base)
        streams = [torch.Generator().manual_seed(derive_seed(seed, "progress-measures", "ablation")) for seed in seeds]
        self.masks = [ablation_masks(weights, g) for g in streams]
        self._stacked = self.masks[0] if runs.n == 1 else {n: torch.stack([m[n] for m in self.masks]) for n in weights}
        self.measured: list[list[ProgressMeasures]] = [[] for _ in seeds]
        self._sums: dict[int, SplitMeasures] = {}

    def start(self, active: list[bool]) -> None:
        """A new evaluation of the runs that are still `active`."""
        self._sums = {r: SplitMeasures() for r, on in enumerate(active) if on}

    def observe(self, x: torch.Tensor, logits: torch.Tensor, activations: list[torch.Tensor]) -> None:
        """One chunk of the training split, (R, B, 3), with its logits and ReLU activations."""
        params = dict(self.runs.module.named_parameters())
        ablated_logits = self.runs.with_params(ablated(params, self._stacked), x)
        for r, sums in self._sums.items():
            sums.add(logits[r], ablated_logits[r], [a[r] for a in activations])

    def record(self, r: int) -> None:
        """Run `r`'s measures at this evaluation, with the entropy and norm of the weights the masks ablate."""
        params = self.runs.run_params(r)
        self.measured[r].append(self._sums[r].result([params[name] for name in sorted(self.masks[r])]))


def _with_progress_curves(outcome: RunOutcome, steps: list[int], measured: list[ProgressMeasures]) -> RunOutcome:
    """`outcome` with one curve per progress measure over its evaluations (a diverged run's non-finite points
    are left out: they are no measurement of a model)."""
    curves = dict(outcome.curves)
    for name in ProgressMeasures.NAMES:
        points = [(s, v) for s, m in zip(steps, measured) if math.isfinite(v := m.as_dict()[name])]
        curves[name] = downsample([s for s, _ in points], [v for _, v in points])
    return dataclasses.replace(outcome, curves=curves)


def past_the_grok(track: Track, at: int, ev: GrokkingEvaluation) -> bool:
    """Whether the target has held and training has gone on to `past_grok` x the first held step."""
    held = first_held(track.eval_steps, track.val_acc, ev.target, ev.hold_evals)
    return held is not None and at >= ev.past_grok * held


def _checked_configured(configured: object, name: str) -> tuple[torch.optim.Optimizer, Any]:
    """What `configure` returned, as (optimizer, scheduler or None); a MethodError naming anything else."""
    optimizer, scheduler = configured if isinstance(configured, tuple) and len(configured) == 2 else (configured, None)
    if not isinstance(optimizer, torch.optim.Optimizer):
        raise MethodError(
            f"method {name!r}: configure() returned {shown(configured)}; expected a torch.optim.Optimizer or "
            "(optimizer, LR scheduler)"
        )
    if scheduler is not None and not callable(getattr(scheduler, "step", None)):
        raise MethodError(f"method {name!r}: configure() returned scheduler {shown(scheduler)}, which has no step()")
    return optimizer, scheduler


def train(task: GrokkingTask, method: GrokkingMethod[Any], ctx: RunContext) -> RunOutcome:
    """One run: the batched loop with a single seed."""
    return train_runs(task, method, [ctx.seed], ctx)[0]


def train_runs(task: GrokkingTask, method: GrokkingMethod[Any], seeds: list[int], ctx: RunContext) -> list[RunOutcome]:
    """The one training loop of the family, for one or several seeds at once.

    Data stays on the device; minibatches come from epoch-wise reshuffling with each seed's own generator,
    so a seed sees the same batches alone or batched. Each run stops on its own (target held and trained on to
    `past_grok` x the first held step, diverged, or budget); its metrics come only from its own evaluations.
    """
    if len(seeds) > 1 and (not method.batchable or has_own_prepare(method)):
        raise ValueError(f"method {method.name!r} cannot train several seeds as one program")
    device = torch.device(ctx.device)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True  # TF32 keeps grokking's dynamics; BF16 would not
    splits = [_make_split(task.data.operation, task.data.p, task.data.train_fraction, seed) for seed in seeds]
    train_x, train_y, test_x, test_y = (
        torch.stack([getattr(s, name) for s in splits]).to(device)
        for name in ("train_x", "train_y", "test_x", "test_y")
    )
    runs = Runs(task, seeds, device)
    model = runs.hook_model
    n_train = train_x.shape[1]
    batch = min(task.training.batch_size or n_train, n_train)
    budget, eval_every, ev = task.training.steps, task.training.eval_every, task.evaluation
    rng_seed = method_seed(seeds[0])
    info = TrainingInfo(budget, batch, n_train, task.data.p, ctx.device, rng_seed, runs=len(seeds))
    # The method's draws come from its own stream; the harness's (batch order) from explicit generators.
    seed_global_generators(rng_seed)
    meter = Meter()
    name = method.name
    t0 = time.perf_counter()  # before any method code: whatever it does on the side is on the clock
    configured = meter.call("configure", method.configure, model, dict(runs.module.named_parameters()), info)
    optimizer, scheduler = _checked_configured(configured, name)
    step = checked_count(
        meter.call("prepare", method.prepare, model, train_x[0], train_y[0], info), name, "prepare()", 0, budget
    )
    declared = checked_flops(
        meter.call("overhead_flops_per_step", method.overhead_flops_per_step, runs.base),
        name,
        "overhead_flops_per_step()",
    )
    # The examples the model trains on: the whole training split, or the subset the method keeps for its
    # own updates (the rest is its held-in data); evaluations still cover the whole training split.
    fit_x, fit_y = train_x, train_y
    kept = _checked_examples(meter.call("training_examples", method.training_examples, info), name, n_train)
    if kept is not None:
        fit_x, fit_y = train_x[:, kept.to(device)], train_y[:, kept.to(device)]
        batch = min(task.training.batch_size or kept.numel(), kept.numel())
    n_fit = fit_x.shape[1]

    samplers = [torch.Generator(device="cpu").manual_seed(seed + 1) for seed in seeds]
    order, cursor = torch.empty(0, dtype=torch.long), n_fit
    fwd, per_forward = runs.base.forward_flops_per_example(), runs.base.forward_flops_per_batch()
    step_flops = 3 * (fwd * batch + per_forward)  # forward + backward (~2x forward)
    chunks = sum(math.ceil(n / EVAL_CHUNK) for n in (n_train, test_x.shape[1]))
    eval_flops = fwd * (n_train + test_x.shape[1]) + per_forward * chunks
    tracks = [Track() for _ in seeds]
    probe = _ProgressProbe(runs, seeds)
    setup_flops = meter.flops / len(seeds)  # configure and prepare: each run's share of the program
    for track in tracks:
        track.flops = track.method_flops = setup_flops

    def forward_loss(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return _per_run_cross_entropy(runs(x), y)

    step_loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] = forward_loss
    if ctx.compile:  # the training step only; evaluation runs every eval_every steps and stays eager
        step_loss = torch.compile(forward_loss, dynamic=False)
    # A non-finite loss is caught the step it happens on the CPU; on a GPU checking every step would force a
    # host sync per step, so it is checked at each evaluation instead.
    check_every = 1 if device.type == "cpu" else eval_every

    def evaluate(at: int) -> None:
        probe.start([t.active for t in tracks])
        tr_acc, tr_loss = _accuracy_and_loss(runs, train_x, train_y, probe=probe)
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
            probe.record(r)
            if ev.stop_when_held and past_the_grok(track, at, ev):
                track.active = False

    evaluate(step)
    while step < budget and any(t.active for t in tracks):
        if cursor + batch > n_fit:
            order = torch.stack([torch.randperm(n_fit, generator=g) for g in samplers]).to(device)
            cursor = 0
        idx = order[:, cursor : cursor + batch]
        cursor += batch
        x = torch.take_along_dim(fit_x, idx.unsqueeze(-1), dim=1)
        losses = step_loss(x, torch.take_along_dim(fit_y, idx, dim=1))
        optimizer.zero_grad(set_to_none=True)
        losses.sum().backward()
        before = meter.flops
        hook: Callable[..., object] = method.after_backward  # a submission may return anything: checked
        with meter.count("after_backward"):
            returned = hook(model, step)
        if returned is not None:
            raise bad_output(name, "after_backward()", returned, "None (it rewrites p.grad in place)")
        meter.call("optimizer.step", optimizer.step)
        if scheduler is not None:
            meter.call("scheduler.step", scheduler.step)
        step += 1
        method_step = (meter.flops - before) / len(seeds)
        for track in tracks:
            if track.active:
                track.flops += step_flops + method_step
                track.method_flops += method_step
                track.declared_overhead_flops += declared
        if step % check_every == 0:
            finite = torch.isfinite(losses).tolist()
            if not all(finite[r] for r, t in enumerate(tracks) if t.active):
                evaluate(step)
                for r, track in enumerate(tracks):
                    if track.active and not finite[r]:
                        track.active = False
                        track.diverged = f"training loss became {losses[r].item()} at step {step}"
        if step % eval_every == 0 or step == budget:
            evaluate(step)
            ctx.progress(step, budget)
    ctx.progress(budget, budget)
    return [_with_progress_curves(score_run(task, t), t.eval_steps, m) for t, m in zip(tracks, probe.measured)]
