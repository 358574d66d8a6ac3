"""The one training loop of the mil_dropout family, and the checks that hold a regulariser to its protocol.

The harness trains a fixed gated-attention MIL model (:class:`phenomena_bench.models.abmil.GatedABMIL`) with
the submitted regulariser for a fixed number of epochs (Adam, BCE, mini-batches of bags) and keeps the *final*
model. :func:`train_models` trains R such models at once (the trainings of a run, and of several seeds), as
one stacked model (:class:`~phenomena_bench.models.abmil.StackedGatedABMIL`); one training is R = 1. Each
model's regulariser is still called once per model with exactly the padded (bags, instances, features) batch
it would see alone, inside that model's own global random state (:class:`_Streams`), so its draws, its checks
and its metered FLOPs are those of the model trained alone. Each hook call is checked (shapes, dtypes,
devices, finite values), so a protocol violation is a clear :class:`MethodError` rather than a NaN three
layers on, and metered (:class:`~phenomena_bench.core.metering.Meter`: the FLOPs of the hook's own forward
computation; the backward through it runs inside the harness's backward pass and is not attributed); a
non-finite training loss ends that model as :class:`~phenomena_bench.core.family.Diverged`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import numpy as np
import torch
from torch import nn

from phenomena_bench.core.errors import MethodError
from phenomena_bench.core.family import Diverged
from phenomena_bench.core.metering import Meter
from phenomena_bench.core.method import bad_output, shown
from phenomena_bench.core.seeds import (
    GlobalGeneratorState,
    global_generator_state,
    method_seed,
    seed_global_generators,
    set_global_generator_state,
    stream_rng,
    stream_seed,
)
from phenomena_bench.data.bags import Bags
from phenomena_bench.families.mil_dropout.api import DropoutContext, InstanceRegulariser, MILDropoutMethod
from phenomena_bench.families.mil_dropout.spec import MILDropoutTask
from phenomena_bench.families.mil_dropout.splits import INIT, ORDER
from phenomena_bench.models.abmil import AttentionHook, GatedABMIL, InstanceHook, StackedGatedABMIL


def _checked_instance_hook(module: InstanceRegulariser, name: str, meter: Meter) -> InstanceHook:
    """Wrap ``module.instance`` so a protocol violation is a clear MethodError, not a NaN three layers on."""

    def hook(h: torch.Tensor, mask: torch.Tensor, layer: int) -> tuple[torch.Tensor, torch.Tensor]:
        result: object = meter.call("instance", module.instance, h, mask, layer)
        if not (isinstance(result, tuple) and len(result) == 2 and all(isinstance(t, torch.Tensor) for t in result)):
            raise MethodError(
                f"method {name!r}: instance() returned {shown(result)}; expected a tuple (h, mask) of tensors"
            )
        new_h, new_mask = result
        if new_h is h and new_mask is mask:  # handed back untouched: nothing to check (the identity's case)
            return new_h, new_mask
        if new_h.shape != h.shape or new_mask.shape != mask.shape:
            raise MethodError(
                f"method {name!r}: instance() changed shapes {tuple(h.shape)}/{tuple(mask.shape)} to "
                f"{tuple(new_h.shape)}/{tuple(new_mask.shape)} at layer {layer}"
            )
        if new_mask.dtype != torch.bool:
            raise MethodError(f"method {name!r}: instance() returned a {new_mask.dtype} mask, not torch.bool")
        if new_h.dtype != h.dtype or new_h.device != h.device or new_mask.device != mask.device:
            raise MethodError(
                f"method {name!r}: instance() returned h as {new_h.dtype} on {new_h.device} and the mask on "
                f"{new_mask.device}; expected {h.dtype} on {h.device}"
            )
        # blame the hook only for values it made non-finite (training that already overflowed is divergence)
        if not bool(torch.isfinite(new_h).all()) and bool((~torch.isfinite(new_h) & torch.isfinite(h)).any()):
            raise MethodError(f"method {name!r}: instance() returned features holding NaN or infinity at layer {layer}")
        if bool((new_mask & ~mask).any()):
            raise MethodError(f"method {name!r}: instance() marked padding as a real instance at layer {layer}")
        empty = ~new_mask.any(dim=1)
        if bool(empty.any()):
            raise MethodError(
                f"method {name!r}: instance() left {int(empty.sum())} bag(s) with no instance at layer {layer}; "
                "a regulariser must keep at least one instance per bag"
            )
        return new_h, new_mask

    return hook


def _checked_attention_hook(module: nn.Module, name: str, meter: Meter) -> AttentionHook | None:
    fn = getattr(module, "attention", None)
    if fn is None:
        return None
    if not callable(fn):
        raise MethodError(f"method {name!r}: attribute `attention` of its module is not callable")

    def hook(logits: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        out = meter.call("attention", fn, logits, mask)
        if not isinstance(out, torch.Tensor) or out.shape != logits.shape:
            raise MethodError(
                f"method {name!r}: attention() returned {shown(out)}; expected logits of shape {tuple(logits.shape)}"
            )
        if out.dtype != logits.dtype or out.device != logits.device:
            raise MethodError(f"method {name!r}: attention() returned {out.dtype} logits on {out.device}")
        # -inf removes an instance from the softmax (allowed); NaN, +inf, or no finite logit left is not
        real = torch.isfinite(out) & mask
        made_bad = (torch.isnan(out) | (out == float("inf"))) & torch.isfinite(logits)
        if bool(made_bad.any()) or not bool((real | ~torch.isfinite(logits)).any(dim=1).all()):
            raise MethodError(
                f"method {name!r}: attention() returned logits holding NaN or +inf, or leaving a bag no finite logit"
            )
        return out

    return hook


def _batches(n: int, batch_size: int, rng: np.random.Generator) -> list[np.ndarray]:
    order = rng.permutation(n)
    return [order[start : start + batch_size] for start in range(0, n, batch_size)]


class _Streams:
    """The models' global random states (Python's, NumPy's, torch's CPU generator): before a call into model
    r's regulariser its state is made the global one, so a module drawing ``torch.rand`` draws what it would
    if its model trained alone. Swapped lazily (only when another model's turn comes), so R = 1 never swaps."""

    def __init__(self) -> None:
        self.states: list[GlobalGeneratorState | None] = []
        self.resident: int | None = None

    def release(self) -> None:
        """Save the resident model's state: the global generators are about to be reseeded for another."""
        self._park()
        self.resident = None

    def add(self) -> int:
        """Register the current global state as a new model's (it becomes the resident one); call
        :meth:`release` before reseeding the global generators for it."""
        assert self.resident is None
        self.states.append(None)
        self.resident = len(self.states) - 1
        return self.resident

    def activate(self, index: int) -> None:
        if self.resident == index:
            return
        self._park()
        state = self.states[index]
        assert state is not None
        set_global_generator_state(state)
        self.resident = index

    def _park(self) -> None:
        if self.resident is not None:
            self.states[self.resident] = global_generator_state()


@dataclass
class Training:
    """One model to train: its bags and labels, the (seed, fold) that fix its initialisation and batch order,
    the meter of its run, and its run's progress ticker (called once per epoch)."""

    train: Bags
    labels: np.ndarray
    seed: int
    fold: int
    meter: Meter
    on_epoch: Iterator[None] | None = None


@dataclass
class Trained:
    """What one training gave: the final model and per-epoch mean losses, or the error that ended it."""

    model: GatedABMIL | None
    losses: list[float] = field(default_factory=list)
    error: BaseException | None = None


class _Lane:
    """One model inside a stacked training: its regulariser, checked hooks, random stream and state."""

    def __init__(
        self, task: MILDropoutTask, method: MILDropoutMethod[Any], job: Training, device: str, streams: _Streams
    ) -> None:
        self.job, self.name = job, method.name
        self.error: BaseException | None = None
        self.losses: list[float] = []
        self.total, self.count = 0.0, 0
        streams.release()
        torch.manual_seed(stream_seed(job.seed, INIT, job.fold))
        self.model = GatedABMIL(job.train.num_features, task.model.hidden, task.model.attention_dim).to(device)
        # From here on the global generators serve the method (its dropout draws): its own stream, per fold.
        rng_seed = method_seed(job.seed)
        seed_global_generators(stream_seed(rng_seed, job.fold))
        self.streams, self.index = streams, streams.add()
        self.order = stream_rng(job.seed, ORDER, job.fold)
        self.module: nn.Module | None = None
        self.instance_hook: InstanceHook | None = None
        self.attention_hook: AttentionHook | None = None
        self.epoch_hook: Callable[..., object] | None = None
        cfg = task.training
        context = DropoutContext(
            widths=self.model.widths,
            num_epochs=cfg.epochs,
            steps_per_epoch=math.ceil(len(job.train) / cfg.batch_size),
            train_bag_sizes=tuple(int(s) for s in job.train.sizes),
            device=device,
            rng_seed=rng_seed,
        )
        self.call(lambda: self._make(method, context, device))

    def _make(self, method: MILDropoutMethod[Any], context: DropoutContext, device: str) -> None:
        module = self.job.meter.call("make_dropout", method.make_dropout, context)
        if not isinstance(module, nn.Module):
            raise MethodError(f"method {self.name!r}: make_dropout() returned {type(module).__name__}, not nn.Module")
        if not callable(getattr(module, "instance", None)):
            raise MethodError(f"method {self.name!r}: the module from make_dropout() lacks instance(h, mask, layer)")
        self.module = module.to(device)
        self.instance_hook = _checked_instance_hook(self.module, self.name, self.job.meter)
        self.attention_hook = _checked_attention_hook(self.module, self.name, self.job.meter)
        self.epoch_hook = getattr(self.module, "on_epoch_start", None)
        self.module.train()

    @property
    def alive(self) -> bool:
        return self.error is None

    def call(self, fn: Callable[[], Any]) -> Any:
        """`fn()` in this model's random stream; an exception ends this model only (None is returned)."""
        try:
            self.streams.activate(self.index)
            return fn()
        except Exception as err:  # noqa: BLE001 - one model's failure must not stop the others
            self.error = err
            return None

    def epoch_start(self, epoch: int, num_epochs: int) -> None:
        hook = self.epoch_hook
        if not self.alive or not callable(hook):
            return

        def start() -> None:
            returned = self.job.meter.call("on_epoch_start", hook, epoch, num_epochs)
            if returned is not None:
                raise bad_output(self.name, "on_epoch_start()", returned, "None")

        self.call(start)

    def end_epoch(self) -> None:
        self.losses.append(self.total / self.count)
        self.total, self.count = 0.0, 0
        if self.job.on_epoch is not None:
            next(self.job.on_epoch)


@dataclass
class _Step:
    """One step of R models in stacked form (see :class:`StackedGatedABMIL`), laid out so that each model's
    padded (bags, longest bag) batch, the one it would see alone, is a zero-copy view of the stacked tensors.

    Model r's rows are its padded batch flattened: bag b's instances at rows ``b * longest ...``, padding rows
    (zero features, mask False) after them; the stacked tensors pad every model to the longest block T. A
    hook thus gets a view, and its result goes back with one concatenation for all models. Packing only the
    real rows (no per-bag padding) saves the encoder about a fifth of its rows on 150-instance bags, but then
    every hook call needs a scatter into a padded batch and a gather back, with their backward passes, per
    model: measured on digits-bags-150 that cost more than stacking saved for MIL-Dropout and PDL."""

    x: torch.Tensor  # (R, T, F) each model's padded batch, flattened
    bags: torch.Tensor  # (R, B, T) row t belongs to bag slot b
    mask: torch.Tensor  # (R, T) real rows
    targets: torch.Tensor  # (R, B)
    weight: torch.Tensor  # (R, B): 1 / bags of the model on its real slots, 0 on empty ones
    shapes: list[tuple[int, int]]  # (bags, longest bag) of each model: its padded batch alone

    @classmethod
    def build(cls, lanes: Sequence[_Lane], batches: Sequence[np.ndarray], device: str) -> _Step:
        sizes = [lane.job.train.sizes[batch] for lane, batch in zip(lanes, batches, strict=True)]
        shapes = [(len(batch), int(size.max())) for batch, size in zip(batches, sizes, strict=True)]
        n_rows, n_bags = max(b * n for b, n in shapes), max(b for b, _ in shapes)
        features = lanes[0].job.train.num_features
        x = np.zeros((len(lanes), n_rows, features), dtype=np.float32)
        bags = np.zeros((len(lanes), n_bags, n_rows), dtype=bool)
        targets = np.zeros((len(lanes), n_bags), dtype=np.float32)
        weight = np.zeros((len(lanes), n_bags), dtype=np.float32)
        for r, (lane, batch, size) in enumerate(zip(lanes, batches, sizes, strict=True)):
            longest = shapes[r][1]
            bag_of = np.repeat(np.arange(len(batch)), size)
            row = bag_of * longest + np.arange(int(size.sum())) - np.repeat(np.cumsum(size) - size, size)
            x[r, row] = np.concatenate([lane.job.train.instances[i] for i in batch])
            bags[r, bag_of, row] = True
            targets[r, : len(batch)] = lane.job.labels[batch]
            weight[r, : len(batch)] = 1.0 / len(batch)

        def tensor(array: np.ndarray) -> torch.Tensor:
            return torch.as_tensor(array, device=device)

        mask = tensor(np.asarray(bags.any(axis=1)))
        return cls(tensor(x), tensor(bags), mask, tensor(targets), tensor(weight), shapes)

    def pieces(self, stacked: torch.Tensor) -> list[torch.Tensor]:
        """`stacked` (R, T, ...) cut into each model's padded batch (bags, longest, ...) and the unused rows
        after it, alternately. One split of the flattened rows, so its backward is one concatenation; slicing
        each model's view out of `stacked` instead would cost a full-size zero gradient per model (R^2)."""
        tail = stacked.shape[2:]
        rows = stacked.shape[1]
        counts = [count for bags, longest in self.shapes for count in (bags * longest, rows - bags * longest)]
        parts = list(stacked.reshape(-1, *tail).split(counts))
        for r, (bags, longest) in enumerate(self.shapes):
            parts[2 * r] = parts[2 * r].view(bags, longest, *tail)
        return parts

    @staticmethod
    def joined(stacked: torch.Tensor, parts: Sequence[torch.Tensor]) -> torch.Tensor:
        """The inverse of :meth:`pieces`: the (R, T, ...) tensor of `parts`, with one concatenation."""
        tail = stacked.shape[2:]
        return torch.cat([part.reshape(-1, *tail) for part in parts]).view(stacked.shape)


def _through_lanes(
    lanes: Sequence[_Lane], step: _Step, stacked: Sequence[torch.Tensor], call: Callable[..., Any]
) -> tuple[torch.Tensor, ...]:
    """Call `call(lane, *padded)` for every live model on its padded batch (views of `stacked`); the stacked
    results, each tensor the input itself where every model handed it back untouched."""
    parts = [step.pieces(t) for t in stacked]
    changed = [False] * len(stacked)
    for r, lane in enumerate(lanes):
        if not lane.alive:
            continue
        inputs = tuple(p[2 * r] for p in parts)
        out = lane.call(partial(call, lane, *inputs))
        if out is None:
            continue
        for i, (o, given) in enumerate(zip(out if isinstance(out, tuple) else (out,), inputs, strict=True)):
            if o is not given:
                parts[i][2 * r], changed[i] = o, True
    return tuple(step.joined(t, p) if c else t for t, p, c in zip(stacked, parts, changed, strict=True))


def _stacked_hooks(lanes: Sequence[_Lane], step: _Step) -> tuple[InstanceHook, AttentionHook | None]:
    """The stacked-form hooks of the stacked model: each model's checked hooks on its own padded batch."""

    def instance(h: torch.Tensor, mask: torch.Tensor, layer: int) -> tuple[torch.Tensor, torch.Tensor]:
        def one(lane: _Lane, h_r: torch.Tensor, m_r: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            assert lane.instance_hook is not None
            return lane.instance_hook(h_r, m_r, layer)

        new_h, new_mask = _through_lanes(lanes, step, (h, mask), one)
        return new_h, new_mask

    def attention(scores: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        def one(lane: _Lane, s_r: torch.Tensor, m_r: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            hook = lane.attention_hook
            return (s_r, m_r) if hook is None else (hook(s_r, m_r), m_r)

        new_scores, _ = _through_lanes(lanes, step, (scores, mask), one)
        return new_scores

    has_attention = any(lane.attention_hook is not None for lane in lanes)
    return instance, attention if has_attention else None


def train_models(
    task: MILDropoutTask, method: MILDropoutMethod[Any], jobs: Sequence[Training], device: str
) -> list[Trained]:
    """The one training loop: R models at once, fixed epochs of mini-batches of bags, Adam, BCE.

    The initial weights and the batch order of a model depend only on its (seed, fold), never on the method,
    so two methods trained on the same seed start from the same point and see the same batches. Every call
    into a model's regulariser is metered by its run's meter and its result checked; a model whose regulariser
    fails, or whose loss becomes non-finite, stops counting (its error is returned) and the others go on.
    Stacked parameters under element-wise Adam are R independent optimisations, so each model ends where it
    would alone, within floating-point tolerance. Models with different numbers of steps per epoch cannot
    share an optimiser step and train in separate groups.
    """
    cfg = task.training
    groups: dict[int, list[int]] = {}
    for index, job in enumerate(jobs):
        groups.setdefault(math.ceil(len(job.train) / cfg.batch_size), []).append(index)
    results: list[Trained | None] = [None] * len(jobs)
    for members in groups.values():
        for index, trained in zip(members, _train_group(task, method, [jobs[i] for i in members], device), strict=True):
            results[index] = trained
    return [r for r in results if r is not None]


def _train_group(
    task: MILDropoutTask, method: MILDropoutMethod[Any], jobs: Sequence[Training], device: str
) -> list[Trained]:
    cfg = task.training
    streams = _Streams()
    lanes = [_Lane(task, method, job, device, streams) for job in jobs]
    stacked = StackedGatedABMIL([lane.model for lane in lanes]).to(device)
    extra = [p for lane in lanes if lane.module is not None for p in lane.module.parameters()]
    optimizer = torch.optim.Adam(
        [*stacked.parameters(), *extra], lr=cfg.lr, weight_decay=cfg.weight_decay, foreach=True
    )
    stacked.train()
    for epoch in range(cfg.epochs):
        for lane in lanes:
            lane.epoch_start(epoch, cfg.epochs)
        batches = [_batches(len(lane.job.train), cfg.batch_size, lane.order) for lane in lanes]
        for step_batches in zip(*batches, strict=True):
            if not any(lane.alive for lane in lanes):
                break
            step = _Step.build(lanes, step_batches, device)
            instance_hook, attention_hook = _stacked_hooks(lanes, step)
            out = stacked(step.x, step.bags, step.mask, instance_hook=instance_hook, attention_hook=attention_hook)
            per_bag = nn.functional.binary_cross_entropy_with_logits(out.logits, step.targets, reduction="none")
            losses = (per_bag * step.weight).sum(dim=1)
            values = losses.tolist()
            live = []
            for r, (lane, value) in enumerate(zip(lanes, values, strict=True)):
                if not lane.alive:
                    continue
                if not math.isfinite(value):
                    lane.error = Diverged(f"training loss became {value} at epoch {epoch} (fold {lane.job.fold})")
                    continue
                live.append(r)
                lane.total, lane.count = lane.total + value * len(step_batches[r]), lane.count + len(step_batches[r])
            optimizer.zero_grad(set_to_none=True)
            if live:
                losses[live].sum().backward()
                optimizer.step()
        for lane in lanes:
            if lane.alive:
                lane.end_epoch()
    results = []
    for r, lane in enumerate(lanes):
        if lane.module is not None:
            lane.module.eval()
        model = stacked.unstacked(r).eval() if lane.alive else None
        results.append(Trained(model, lane.losses, lane.error))
    return results


def train_model(
    task: MILDropoutTask,
    method: MILDropoutMethod[Any],
    train: Bags,
    labels: np.ndarray,
    *,
    seed: int,
    fold: int,
    device: str,
    meter: Meter,
    on_epoch: Iterator[None] | None = None,
) -> tuple[GatedABMIL, list[float]]:
    """One training (:func:`train_models` with R = 1); its error, if any, is raised."""
    (trained,) = train_models(task, method, [Training(train, labels, seed, fold, meter, on_epoch)], device)
    if trained.error is not None:
        raise trained.error
    assert trained.model is not None
    return trained.model, trained.losses
