"""Pruned accuracy at sparsity: lottery tickets, pruning at initialisation and their sanity controls.

A method produces, in one :meth:`PruningMethod.prune` call, a mask (or scores) for every target sparsity.
The harness then owns everything that decides the score, identically for every method:

* **Conventions.** Prunable tensors are the weight matrices of the Linear layers (the output layer only when
  ``evaluation.prune_output_layer``); biases are never pruned. Sparsity = zeroed prunable weights / all
  prunable weights, and a mask must zero *exactly* ``floor(s * N + 0.5)`` of them (no Bernoulli "about s").
  Scores are turned into masks by a global top-k with a deterministic tie-break (the lower flat index wins).
* **Masks stay zero.** Masks are installed with ``torch.nn.utils.prune.custom_from_mask``, so the forward
  pass uses ``weight_orig * mask`` and a pruned weight has zero gradient; weight decay or momentum may move
  ``weight_orig`` but never the weight the network uses. After training the pruning is made permanent.
* **Retraining.** Every mask is retrained with the spec's fixed recipe from the spec's rewind point
  θ_k (the dense network after ``training.rewind_step`` steps; θ_0 when k = 0) for the remaining
  ``steps - k`` steps, with the seed's data order continuing where θ_k left it (OpenLTH's rewinding).
  A method may instead hand back a state it made through :meth:`PruningContext.train` (fine-tuning from
  trained weights): that run is labelled track ``trained`` rather than ``rewind``.
* **Scoring.** Test accuracy at the end of the fixed budget (never the best accuracy seen), per sparsity;
  the area under accuracy vs log2-compression; per-layer density; a layer-collapse flag; and, on the same
  seed, the dense network, uniform random masks at every sparsity, and at the control sparsities the
  method's own mask shuffled within each layer and the same mask with a fresh initialisation ("Missing the
  Mark", Frankle et al. 2021). Dense and random controls depend only on (resolved task, seed): they are
  cached in ``ctx.cache_dir`` so a sweep of methods trains them once.

Within a run, trainings are memoised by (mask, start weights, start step, steps): iterative magnitude pruning
trains each nested mask from the rewind point during its search, and the harness's retraining of the same
mask would be the same computation. The memo never changes a number on the CPU (training is deterministic),
and the method is charged the steps it asked for whether or not they were memoised.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
import phenomena_bench
import torch
import torch.nn.functional as F
from phenomena_bench.core.curves import Curve
from phenomena_bench.core.errors import BenchmarkError, MethodError
from phenomena_bench.core.family import Column, Family, RunContext, RunOutcome, Scalar
from phenomena_bench.core.hashing import canonical_json
from phenomena_bench.core.method import Method
from phenomena_bench.core.spec import StrictModel, TaskSpec
from phenomena_bench.data.digits import load_digits_split
from phenomena_bench.data.mnist1d import ArraySplit, load_mnist1d
from phenomena_bench.models.mlp import MLP
from pydantic import Field, field_validator, model_validator
from torch import nn
from torch.nn.utils import prune as torch_prune

# Bump when the harness changes in a way that changes cached control numbers.
HARNESS_VERSION = "2"

# The standard targets of the suite's specs; columns() shows these.
STANDARD_SPARSITIES: tuple[float, ...] = (0.5, 0.8, 0.9, 0.95, 0.98)


# ------------------------------------------------------------------------------------------------ spec


class PruningData(StrictModel):
    dataset: Literal["mnist1d", "digits"]
    num_samples: int = Field(default=5000, ge=200, description="MNIST-1D: examples generated (80% train).")
    generator_seed: int = Field(default=42, ge=0, description="MNIST-1D generator seed; 42 is the standard set.")
    test_fraction: float = Field(default=0.25, gt=0, lt=1, description="digits: stratified test share (per seed).")


class PruningModel(StrictModel):
    kind: Literal["mlp", "residual_mlp"] = "mlp"
    hidden: list[int] = Field(min_length=1, description="Hidden widths, input side first.")

    @field_validator("hidden")
    @classmethod
    def _positive_widths(cls, hidden: list[int]) -> list[int]:
        if any(w < 1 for w in hidden):
            raise ValueError(f"hidden widths must be >= 1, got {hidden}")
        return hidden


class PruningTraining(StrictModel):
    """The fixed (re)training recipe, the same for the dense net, every mask and every control."""

    optimizer: Literal["adam", "sgd"] = "adam"
    lr: float = Field(gt=0, le=10)
    momentum: float = Field(default=0.0, ge=0, lt=1, description="SGD only.")
    weight_decay: float = Field(default=0.0, ge=0, le=1)
    batch_size: int = Field(ge=1, le=65536)
    steps: int = Field(ge=1, le=10_000_000, description="Steps of one full training.")
    rewind_step: int = Field(default=0, ge=0, description="k: masks are retrained from θ_k (0 = the init).")
    search_budget: float = Field(
        ge=0, le=1000, description="Training steps a method may spend through ctx.train, in units of `steps`."
    )


class PruningEvaluation(StrictModel):
    sparsities: list[float] = Field(min_length=1, description="Target fractions of prunable weights zeroed.")
    control_sparsities: list[float] = Field(
        default_factory=list, description="Where the shuffled-mask and reinitialised controls are retrained."
    )
    prune_output_layer: bool = False
    fewshot_per_class: int = Field(default=10, ge=1, description="Examples per class in ctx.fewshot_batch().")
    collapse_accuracy: float = Field(
        ge=0, le=1, description="Accuracy at or below which a sparse net counts as collapsed (chance level)."
    )
    matching_tolerance: float = Field(default=0.01, ge=0, le=1, description="'Matching' = acc >= dense - this.")

    @field_validator("sparsities")
    @classmethod
    def _increasing(cls, values: list[float]) -> list[float]:
        if any(not 0.0 < s < 1.0 for s in values):
            raise ValueError(f"sparsities must lie strictly between 0 and 1, got {values}")
        if any(b <= a for a, b in zip(values, values[1:], strict=False)):
            raise ValueError(f"sparsities must be strictly increasing, got {values}")
        return values

    @model_validator(mode="after")
    def _controls_are_targets(self) -> PruningEvaluation:
        extra = [s for s in self.control_sparsities if s not in self.sparsities]
        if extra:
            raise ValueError(f"control_sparsities {extra} are not among the target sparsities {self.sparsities}")
        return self


class PruningTask(TaskSpec):
    family: Literal["pruning"]
    data: PruningData
    model: PruningModel
    training: PruningTraining
    evaluation: PruningEvaluation

    @model_validator(mode="after")
    def _rewind_inside_training(self) -> PruningTask:
        if self.training.rewind_step >= self.training.steps:
            raise ValueError(
                f"training.rewind_step ({self.training.rewind_step}) must be below training.steps "
                f"({self.training.steps})"
            )
        return self


# ------------------------------------------------------------------------------------ mask arithmetic


def sparsity_label(sparsity: float) -> str:
    """'90' for 0.9, '99.5' for 0.995: the suffix of per-sparsity metric names."""
    return f"{sparsity * 100:.6g}"


def prune_count(total: int, sparsity: float) -> int:
    """How many of `total` weights a mask at `sparsity` zeroes: floor(s*N + 1/2), the harness's exact target."""
    return int(math.floor(sparsity * total + 0.5))


def layer_prune_counts(sizes: Sequence[int], sparsity: float) -> list[int]:
    """Per-layer prune counts as close to `sparsity` in every layer as possible, summing to the global target.

    Largest-remainder rounding (ties to the earlier layer) so that a layer-wise method still hits the
    exact global count the harness checks.
    """
    target = prune_count(sum(sizes), sparsity)
    exact = [sparsity * n for n in sizes]
    counts = [min(n, math.floor(e)) for n, e in zip(sizes, exact, strict=True)]
    order = sorted(range(len(sizes)), key=lambda i: (-(exact[i] - math.floor(exact[i])), i))
    short = target - sum(counts)
    for i in order * 2:
        if short <= 0:
            break
        if counts[i] < sizes[i]:
            counts[i] += 1
            short -= 1
    return counts


def _top_k_mask(flat_scores: torch.Tensor, keep: int) -> torch.Tensor:
    """Boolean mask keeping the `keep` highest scores; among equal scores the lower index is kept."""
    if torch.isnan(flat_scores).any():
        raise MethodError("pruning scores contain NaN")
    mask = torch.zeros(flat_scores.numel(), dtype=torch.bool, device=flat_scores.device)
    if keep > 0:
        order = torch.argsort(-flat_scores.double(), stable=True)
        mask[order[:keep]] = True
    return mask


def masks_from_scores(scores: Mapping[str, torch.Tensor], sparsity: float) -> dict[str, torch.Tensor]:
    """Global top-(1 - s) of the scores across all tensors (higher score = kept)."""
    names = list(scores)
    flat = torch.cat([scores[n].detach().reshape(-1).cpu() for n in names])
    keep = flat.numel() - prune_count(flat.numel(), sparsity)
    mask = _top_k_mask(flat, keep)
    out: dict[str, torch.Tensor] = {}
    offset = 0
    for n in names:
        size = scores[n].numel()
        out[n] = mask[offset : offset + size].reshape(scores[n].shape)
        offset += size
    return out


def layerwise_masks_from_scores(scores: Mapping[str, torch.Tensor], sparsity: float) -> dict[str, torch.Tensor]:
    """Top-(1 - s) of the scores within each tensor (every layer at the same sparsity, up to rounding)."""
    names = list(scores)
    counts = layer_prune_counts([scores[n].numel() for n in names], sparsity)
    return {
        n: _top_k_mask(scores[n].detach().reshape(-1).cpu(), scores[n].numel() - c).reshape(scores[n].shape)
        for n, c in zip(names, counts, strict=True)
    }


def random_masks(
    shapes: Mapping[str, torch.Size], sparsity: float, generator: torch.Generator
) -> dict[str, torch.Tensor]:
    """Uniformly random masks with the same sparsity in every layer (exact counts): the random floor."""
    counts = layer_prune_counts([math.prod(s) for s in shapes.values()], sparsity)
    out = {}
    for (name, shape), pruned in zip(shapes.items(), counts, strict=True):
        size = math.prod(shape)
        flat = torch.ones(size, dtype=torch.bool)
        flat[torch.randperm(size, generator=generator)[:pruned]] = False
        out[name] = flat.reshape(shape)
    return out


def shuffle_within_layers(masks: Mapping[str, torch.Tensor], generator: torch.Generator) -> dict[str, torch.Tensor]:
    """Each layer's mask permuted at random: same per-layer density, positions forgotten (MtM's control)."""
    out = {}
    for name, mask in masks.items():
        flat = mask.detach().reshape(-1).cpu()
        out[name] = flat[torch.randperm(flat.numel(), generator=generator)].reshape(mask.shape).clone()
    return out


def derive_seed(seed: int, *labels: object) -> int:
    """A 63-bit seed from a run seed and labels; stable across processes (unlike Python's salted hash())."""
    text = json.dumps([seed, *[str(x) for x in labels]])
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little") & ((1 << 63) - 1)


def make_generator(seed: int, *labels: object) -> torch.Generator:
    return torch.Generator().manual_seed(derive_seed(seed, *labels))


def _tensor_digest(tensors: Mapping[str, torch.Tensor] | None) -> str:
    if tensors is None:
        return "none"
    h = hashlib.sha256()
    for name in sorted(tensors):
        t = tensors[name].detach().cpu().contiguous()
        h.update(name.encode())
        h.update(str(t.dtype).encode())
        h.update(str(tuple(t.shape)).encode())
        h.update(t.numpy().tobytes())
    return h.hexdigest()


# ----------------------------------------------------------------------------------- method protocol


@dataclass(frozen=True, eq=False)
class TrainedState:
    """Weights after some steps of the harness's recipe (masked weights are exactly zero), on the CPU.

    Only the harness creates these (:meth:`PruningContext.train`, ``ctx.init_state``, ``ctx.rewind_state``);
    `step` is where the seed's data order continues if training resumes from it.
    """

    weights: Mapping[str, torch.Tensor]
    step: int
    masks: Mapping[str, torch.Tensor] | None = None
    final_loss: float | None = None
    diverged: bool = False


@dataclass(frozen=True)
class PruneResult:
    """A method's answer for one sparsity: boolean `masks` or real `scores` per prunable tensor (not both).

    Scores are kept by global top-k (higher = kept). `start=None` retrains from the spec's rewind point;
    a :class:`TrainedState` from ``ctx.train`` fine-tunes from it instead (track ``trained``).
    """

    masks: Mapping[str, torch.Tensor] | None = None
    scores: Mapping[str, torch.Tensor] | None = None
    start: TrainedState | None = None

    def __post_init__(self) -> None:
        if (self.masks is None) == (self.scores is None):
            raise MethodError("a PruneResult holds exactly one of `masks` or `scores`")


class PruningMethod(Method):
    """Base of pruning methods: implement :meth:`prune`."""

    family: ClassVar[str] = "pruning"

    def prune(self, ctx: PruningContext, sparsities: tuple[float, ...]) -> dict[float, PruneResult]:
        """Return one :class:`PruneResult` for every target sparsity (a key per value in `sparsities`)."""
        raise NotImplementedError


class SearchBudgetExceeded(BenchmarkError):
    """The method asked ctx.train for more steps than the spec's search budget."""


# ------------------------------------------------------------------------------------------ training


@dataclass
class _Data:
    """One split's tensors on the run's device. The trainer (reachable from the method's context) holds only
    the training split; the test split stays in :meth:`PruningFamily.run`'s frame."""

    x: torch.Tensor
    y: torch.Tensor
    num_classes: int


def _load_split(task: PruningTask, seed: int, cache_dir: Path) -> ArraySplit:
    if task.data.dataset == "mnist1d":
        return load_mnist1d(task.data.num_samples, task.data.generator_seed, cache_dir / "data")
    return load_digits_split(task.data.test_fraction, seed)


def batch_order(num_examples: int, batch_size: int, steps: int, seed: int) -> torch.Tensor:
    """Indices of the training examples of every step, shape (steps, batch): a fresh permutation per epoch.

    Indexable by step, so training resumed from θ_k continues the same stream; the last partial batch of
    an epoch is dropped so every step sees `batch_size` examples.
    """
    batch = min(batch_size, num_examples)
    per_epoch = num_examples // batch
    epochs = -(-steps // per_epoch)
    parts = [
        np.random.default_rng([derive_seed(seed, "order"), e]).permutation(num_examples)[: per_epoch * batch]
        for e in range(epochs)
    ]
    return torch.from_numpy(np.concatenate(parts)[: steps * batch].reshape(steps, batch).astype(np.int64))


class _Trainer:
    """The one training loop of the family, with the run's memo and the cross-run cache of dense trainings."""

    def __init__(
        self,
        task: PruningTask,
        data: _Data,
        model_factory: Callable[[int], nn.Module],
        prunable: list[str],
        order: torch.Tensor,
        device: str,
        cache_dir: Path,
        task_digest: str,
    ) -> None:
        self.task = task
        self.recipe = task.training
        self.data = data
        self.model_factory = model_factory
        self.prunable = prunable
        self.order = order.to(device)
        self.device = device
        self.cache_dir = cache_dir
        self.task_digest = task_digest
        self.memo: dict[str, TrainedState] = {}
        self.trainings = 0  # trainings actually computed (not memoised), for the cost report

    def build(self, weights: Mapping[str, torch.Tensor]) -> nn.Module:
        model = self.model_factory(0)
        model.load_state_dict({k: v.clone() for k, v in weights.items()})
        return model.to(self.device)

    def train(self, masks: Mapping[str, torch.Tensor] | None, start: TrainedState, steps: int) -> TrainedState:
        if start.step + steps > self.order.shape[0]:
            raise ValueError(f"training from step {start.step} for {steps} steps runs past the data order")
        key = hashlib.sha256(
            canonical_json([_tensor_digest(masks), _tensor_digest(start.weights), start.step, steps]).encode()
        ).hexdigest()
        if key in self.memo:
            return self.memo[key]
        path = self.cache_dir / f"dense-{self.task_digest[:20]}-{key[:20]}.pt" if masks is None else None
        if path is not None and path.exists():
            saved = torch.load(path, map_location="cpu", weights_only=True)
            state = TrainedState(saved["weights"], int(saved["step"]), None, saved["final_loss"], False)
        else:
            state = self._run(masks, start, steps)
            if path is not None and not state.diverged:
                _atomic_torch_save(
                    {"weights": dict(state.weights), "step": state.step, "final_loss": state.final_loss}, path
                )
        self.memo[key] = state
        return state

    def _run(self, masks: Mapping[str, torch.Tensor] | None, start: TrainedState, steps: int) -> TrainedState:
        self.trainings += 1
        model = self.build(start.weights)
        modules = dict(model.named_modules())
        if masks is not None:
            for name in self.prunable:
                module = modules[name.rsplit(".", 1)[0]]
                torch_prune.custom_from_mask(module, "weight", masks[name].to(self.device, torch.bool))
        params = list(model.parameters())
        if self.recipe.optimizer == "adam":
            # fused: one kernel for all parameters, ~25% less time per step on these small CPU models
            opt: torch.optim.Optimizer = torch.optim.Adam(
                params, lr=self.recipe.lr, weight_decay=self.recipe.weight_decay, fused=True
            )
        else:
            opt = torch.optim.SGD(
                params, lr=self.recipe.lr, momentum=self.recipe.momentum, weight_decay=self.recipe.weight_decay
            )
        model.train()
        loss_value = float("nan")
        diverged = False
        for t in range(start.step, start.step + steps):
            idx = self.order[t]
            loss = F.cross_entropy(model(self.data.x[idx]), self.data.y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if (t - start.step) % 50 == 0 or t == start.step + steps - 1:
                loss_value = float(loss.detach())
                if not math.isfinite(loss_value):
                    diverged = True
                    break
        if masks is not None:
            for name in self.prunable:
                torch_prune.remove(modules[name.rsplit(".", 1)[0]], "weight")
        weights = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
        return TrainedState(weights, start.step + steps, masks, loss_value, diverged)

    @torch.no_grad()
    def accuracy(self, state: TrainedState, test: _Data) -> float:
        model = self.build(state.weights).eval()
        correct = 0
        for i in range(0, test.x.shape[0], 4096):
            logits = model(test.x[i : i + 4096])
            correct += int((logits.argmax(dim=1) == test.y[i : i + 4096]).sum())
        return correct / test.x.shape[0]


def _atomic_write(path: Path, write: Callable[[Any], None], mode: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    try:
        with os.fdopen(fd, mode) as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _atomic_torch_save(obj: Any, path: Path) -> None:
    _atomic_write(path, lambda f: torch.save(obj, f), "wb")


# ------------------------------------------------------------------------------------------- context


class PruningContext:
    """What a method may use: the model, θ_0/θ_k, the recipe (charged), training data. Never the test split."""

    def __init__(self, trainer: _Trainer, seed: int, sparsities: tuple[float, ...], init: TrainedState,
                 rewind: TrainedState, budget_steps: int, fewshot_per_class: int) -> None:
        self._trainer = trainer
        self.seed = seed
        self.sparsities = sparsities
        self.device = trainer.device
        self.init_state = init
        self.rewind_state = rewind
        self.steps = trainer.recipe.steps
        self.budget_steps = budget_steps
        self.steps_used = 0
        self.num_classes = trainer.data.num_classes
        self._fewshot_per_class = fewshot_per_class
        self.prunable: dict[str, torch.Size] = {n: init.weights[n].shape for n in trainer.prunable}
        # States the harness handed out, with their digests: a start must be one of them, unmodified.
        self._issued: dict[int, tuple[TrainedState, str]] = {}
        for state in (init, rewind):
            self._issue(state)

    def _issue(self, state: TrainedState) -> TrainedState:
        self._issued[id(state)] = (state, _tensor_digest(state.weights))
        return state

    def check_issued(self, state: Any, what: str) -> TrainedState:
        """`state` itself if the harness made it and it was not modified in place; a MethodError otherwise."""
        entry = self._issued.get(id(state))
        if entry is None or entry[0] is not state:
            raise MethodError(f"{what} must be ctx.init_state, ctx.rewind_state or a state returned by ctx.train")
        if _tensor_digest(state.weights) != entry[1]:
            raise MethodError(f"{what}: the weights of a state handed out by the harness were modified in place")
        return state

    def make_model(self, state: TrainedState | None = None, init_seed: int | None = None) -> nn.Module:
        """A fresh module on ctx.device: θ_0 by default, `state`'s weights, or a new init from `init_seed`."""
        if init_seed is not None:
            return self._trainer.model_factory(derive_seed(init_seed, "user-init")).to(self.device)
        return self._trainer.build((state or self.init_state).weights)

    def train(self, masks: Mapping[str, torch.Tensor] | None = None, start: TrainedState | None = None,
              steps: int | None = None) -> TrainedState:
        """Train with the harness's recipe (masked if `masks`), from `start` (θ_0 by default).

        `steps` defaults to the rest of the recipe (`steps - start.step`). Every step is charged against the
        search budget, memoised or not; asking for more than is left raises :class:`SearchBudgetExceeded`.
        """
        start = self.check_issued(start or self.init_state, "ctx.train(start=...)")
        steps = self.steps - start.step if steps is None else int(steps)
        if steps < 0:
            raise MethodError(f"ctx.train: steps must be >= 0, got {steps}")
        if self.steps_used + steps > self.budget_steps:
            raise SearchBudgetExceeded(
                f"ctx.train asked for {steps} steps with {self.budget_steps - self.steps_used} of the "
                f"{self.budget_steps}-step search budget left"
            )
        checked = _validate_masks(masks, self.prunable, None) if masks is not None else None
        self.steps_used += steps
        state = self._trainer.train(checked, start, steps)
        # A copy, so that edits by the method cannot reach the memo the harness's retraining reads from.
        copied = TrainedState({k: v.clone() for k, v in state.weights.items()}, state.step,
                              None if state.masks is None else {k: v.clone() for k, v in state.masks.items()},
                              state.final_loss, state.diverged)
        return self._issue(copied)

    def train_batches(self, count: int | None = None) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Training minibatches in the recipe's order for this seed: `count` of them (default: one epoch)."""
        data, order = self._trainer.data, self._trainer.order
        if count is None:
            count = max(1, data.x.shape[0] // order.shape[1])
        for t in range(min(count, order.shape[0])):
            yield data.x[order[t]], data.y[order[t]]

    def fewshot_batch(self, per_class: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """`per_class` training examples of every class (spec default), chosen by the seed: for scoring."""
        per_class = per_class or self._fewshot_per_class
        data = self._trainer.data
        y = data.y.cpu().numpy()
        rng = np.random.default_rng(derive_seed(self.seed, "fewshot"))
        idx = np.concatenate([rng.permutation(np.flatnonzero(y == c))[:per_class] for c in range(self.num_classes)])
        t = torch.from_numpy(np.sort(idx)).to(data.x.device)
        return data.x[t], data.y[t]

    @staticmethod
    def loss_fn(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(logits, targets)

    def generator(self, *labels: object) -> torch.Generator:
        """A CPU generator fixed by the run seed and `labels`, for a method's own randomness."""
        return make_generator(self.seed, "method", *labels)


def _validate_masks(masks: Any, shapes: Mapping[str, torch.Size], sparsity: float | None) -> dict[str, torch.Tensor]:
    if not isinstance(masks, Mapping):
        raise MethodError(f"masks must be a mapping of prunable tensor name to mask, got {type(masks).__name__}")
    if set(masks) != set(shapes):
        raise MethodError(f"masks must name exactly the prunable tensors {sorted(shapes)}, got {sorted(masks)}")
    out = {}
    for name, shape in shapes.items():
        m = masks[name]
        if not isinstance(m, torch.Tensor):
            raise MethodError(f"mask {name!r} is a {type(m).__name__}, not a torch.Tensor")
        if tuple(m.shape) != tuple(shape):
            raise MethodError(f"mask {name!r} has shape {tuple(m.shape)}, expected {tuple(shape)}")
        if m.dtype != torch.bool:
            if not bool(((m == 0) | (m == 1)).all()):
                raise MethodError(f"mask {name!r} is not binary")
            m = m != 0
        out[name] = m.detach().cpu().clone()
    if sparsity is not None:
        total = sum(math.prod(s) for s in shapes.values())
        zeros = sum(int((~m).sum()) for m in out.values())
        want = prune_count(total, sparsity)
        if zeros != want:
            raise MethodError(
                f"mask for sparsity {sparsity} zeroes {zeros} of {total} prunable weights "
                f"({zeros / total:.4%}); the target is exactly {want} ({sparsity:.2%})"
            )
    return out


def make_context(task: PruningTask, seed: int, device: str, cache_dir: Path) -> PruningContext:
    """Training data, θ_0, θ_k and the recipe for one (task, seed): what :meth:`PruningFamily.run` hands a method.

    Public so that a method author can call their `prune` on the real context without a full run.
    """
    return _setup(task, seed, device, cache_dir)[0]


def _setup(task: PruningTask, seed: int, device: str, cache_dir: Path) -> tuple[PruningContext, _Data]:
    """The method's context and, kept apart from it, the test split."""
    split = _load_split(task, seed, cache_dir)
    data = _Data(torch.from_numpy(split.x_train).to(device), torch.from_numpy(split.y_train).to(device),
                 split.num_classes)
    test = _Data(torch.from_numpy(split.x_test).to(device), torch.from_numpy(split.y_test).to(device),
                 split.num_classes)
    m = task.model

    def factory(init_seed: int) -> nn.Module:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(init_seed)
            return MLP(split.num_features, m.hidden, split.num_classes, residual=m.kind == "residual_mlp")

    init_model = factory(derive_seed(seed, "init"))
    prunable = init_model.prunable_names(task.evaluation.prune_output_layer)
    task_digest = hashlib.sha256(
        canonical_json([task.key_payload(), seed, phenomena_bench.__version__, HARNESS_VERSION]).encode()
    ).hexdigest()
    order = batch_order(split.x_train.shape[0], task.training.batch_size, task.training.steps, seed)
    trainer = _Trainer(task, data, factory, prunable, order, device, cache_dir / "pruning", task_digest)
    init = TrainedState({k: v.detach().clone() for k, v in init_model.state_dict().items()}, 0)
    k = task.training.rewind_step
    rewind = trainer.train(None, init, k) if k > 0 else init
    ctx = PruningContext(trainer, seed, tuple(task.evaluation.sparsities), init, rewind,
                         int(task.training.search_budget * task.training.steps), task.evaluation.fewshot_per_class)
    return ctx, test


# --------------------------------------------------------------------------------------------- family


def auc_log_compression(sparsities: Sequence[float], accuracies: Sequence[float]) -> float:
    """Trapezoid of accuracy over log2(1/(1-s)), divided by the x-range: a mean accuracy over log-compression."""
    x = [math.log2(1.0 / (1.0 - s)) for s in sparsities]
    if len(x) == 1:
        return float(accuracies[0])
    area = sum((x[i + 1] - x[i]) * (accuracies[i + 1] + accuracies[i]) / 2 for i in range(len(x) - 1))
    return area / (x[-1] - x[0])


@dataclass
class _Evaluated:
    accuracy: float
    densities: dict[str, float]
    diverged: bool
    collapsed_layers: list[str] = field(default_factory=list)


class PruningFamily(Family):
    name: ClassVar[str] = "pruning"
    description: ClassVar[str] = (
        "Test accuracy of a network pruned to fixed sparsities and retrained with a fixed recipe, against the "
        "dense net, random masks and the method's own shuffled / reinitialised masks on the same seed."
    )
    spec_model: ClassVar[type[TaskSpec]] = PruningTask
    method_base: ClassVar[type[Method]] = PruningMethod
    required_hooks: ClassVar[tuple[str, ...]] = ("prune",)
    #: Mean accuracy over log-compression (50-98 % on the standard specs): it uses the whole curve, and its
    #: spread over seeds is smaller than any single point's because seed effects are shared across sparsities.
    primary_metric: ClassVar[str] = "auc_log_compression"
    direction: ClassVar[Literal["min", "max"]] = "max"
    #: Random masks are in every record (paired); the leaderboard compares against lottery tickets.
    reference_method: ClassVar[str] = "prune-imp"

    def columns(self) -> list[Column]:
        cols = [Column("AUC acc/log-compression", "auc_log_compression", "mean_ci")]
        cols += [Column(f"acc@{sparsity_label(s)}", f"acc@{sparsity_label(s)}", "mean_ci") for s in STANDARD_SPARSITIES]
        cols += [
            Column("gap vs random@95", "gap_vs_random@95", "mean_ci"),
            Column("gap vs random@98", "gap_vs_random@98", "mean_ci"),
            Column("gain over shuffle@98", "gain_over_shuffle@98", "mean_ci"),
            Column("dense", "acc_dense", "mean"),
            Column("collapse", "layer_collapse", "rate"),
            Column("search steps", "search_steps", "mean", digits=0),
        ]
        return cols

    # ------------------------------------------------------------------ run

    def run(self, task: TaskSpec, method: Method, ctx: RunContext) -> RunOutcome:
        assert isinstance(task, PruningTask) and isinstance(method, PruningMethod)
        pctx, test = _setup(task, ctx.seed, ctx.device, Path(ctx.cache_dir))
        trainer, init, rewind = pctx._trainer, pctx.init_state, pctx.rewind_state
        factory, prunable, shapes = trainer.model_factory, trainer.prunable, dict(pctx.prunable)
        sparsities = pctx.sparsities
        controls = len(task.evaluation.control_sparsities)
        total = len(sparsities) + 2 * controls
        done = 0

        # Controls shared by every method on this (task, seed): cached on disk.
        control_path = trainer.cache_dir / f"controls-{trainer.task_digest[:32]}.json"
        shared = self._shared_controls(trainer, test, init, rewind, shapes, sparsities, ctx.seed, control_path, task)
        if shared.get("diverged"):
            return RunOutcome(status="diverged", metrics={"acc_dense": shared.get("acc_dense")},
                              error="the dense or random-mask control diverged under the spec's recipe")

        # The method.
        t0 = time.perf_counter()
        try:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(derive_seed(ctx.seed, "method"))
                results = method.prune(pctx, sparsities)
        except SearchBudgetExceeded as err:
            return RunOutcome(status="budget_exceeded", metrics={"search_steps": pctx.steps_used}, error=str(err))
        prune_seconds = time.perf_counter() - t0
        pctx.check_issued(init, "ctx.init_state")
        pctx.check_issued(rewind, "ctx.rewind_state")
        masks_by_s, starts = self._check_results(results, sparsities, shapes, pctx)

        metrics: dict[str, Scalar] = {"acc_dense": shared["acc_dense"]}
        accs: list[float] = []
        any_collapse = False
        tracks = set()
        status: Literal["ok", "diverged"] = "ok"
        for s in sparsities:
            lab = sparsity_label(s)
            start = starts[s] or rewind
            tracks.add("rewind" if starts[s] is None else "trained")
            ev = self._retrain(trainer, test, masks_by_s[s], start, task)
            done += 1
            ctx.progress(done, total)
            if ev.diverged:
                status = "diverged"
                break
            acc_random = shared["acc_random"][lab]
            accs.append(ev.accuracy)
            collapsed = bool(ev.collapsed_layers) or ev.accuracy <= task.evaluation.collapse_accuracy
            any_collapse |= collapsed
            metrics[f"acc@{lab}"] = ev.accuracy
            metrics[f"acc_random@{lab}"] = acc_random
            metrics[f"gap_vs_random@{lab}"] = ev.accuracy - acc_random
            metrics[f"gap_vs_dense@{lab}"] = ev.accuracy - shared["acc_dense"]
            metrics[f"collapse@{lab}"] = collapsed
            metrics[f"achieved_sparsity@{lab}"] = 1.0 - sum(
                ev.densities[n] * math.prod(shapes[n]) for n in prunable) / sum(math.prod(x) for x in shapes.values())
            metrics[f"compression@{lab}"] = _whole_model_compression(init.weights, masks_by_s[s])
            for n in prunable:
                metrics[f"density/{n.removesuffix('.weight')}@{lab}"] = ev.densities[n]
            if s in task.evaluation.control_sparsities:
                shuffled = shuffle_within_layers(masks_by_s[s], make_generator(ctx.seed, "shuffle-control", lab))
                ev_shuffle = self._retrain(trainer, test, shuffled, start, task)
                done += 1
                ctx.progress(done, total)
                fresh = factory(derive_seed(ctx.seed, "reinit-control"))
                fresh_state = TrainedState({k2: v.detach().clone() for k2, v in fresh.state_dict().items()}, 0)
                ev_reinit = self._retrain(trainer, test, masks_by_s[s], fresh_state, task)
                done += 1
                ctx.progress(done, total)
                for tag, e in (("shuffled", ev_shuffle), ("reinit", ev_reinit)):
                    metrics[f"acc_{tag}@{lab}"] = None if e.diverged else e.accuracy
                metrics[f"gain_over_shuffle@{lab}"] = None if ev_shuffle.diverged else ev.accuracy - ev_shuffle.accuracy
                metrics[f"gain_over_reinit@{lab}"] = None if ev_reinit.diverged else ev.accuracy - ev_reinit.accuracy

        metrics["layer_collapse"] = any_collapse
        metrics["track"] = "+".join(sorted(tracks))
        metrics["search_steps"] = pctx.steps_used
        metrics["prune_seconds"] = round(prune_seconds, 3)
        metrics["trainings_computed"] = trainer.trainings
        metrics["prunable_weights"] = sum(math.prod(x) for x in shapes.values())
        curves: dict[str, Curve] = {}
        rand = [shared["acc_random"][sparsity_label(s)] for s in sparsities]
        xs = [math.log2(1.0 / (1.0 - s)) for s in sparsities]
        curves["random_vs_log2_compression"] = Curve(xs, rand, "log2 compression")
        metrics["auc_random"] = auc_log_compression(sparsities, rand)
        if status == "ok":
            auc = auc_log_compression(sparsities, accs)
            metrics["auc_log_compression"] = auc
            metrics["auc_gap_vs_random"] = auc - metrics["auc_random"]  # type: ignore[operator]
            tol = task.evaluation.matching_tolerance
            matching = [s for s, a in zip(sparsities, accs, strict=True) if a >= shared["acc_dense"] - tol]
            metrics["max_matching_sparsity"] = max(matching) if matching else None
            curves["accuracy_vs_log2_compression"] = Curve(xs, accs, "log2 compression")
        return RunOutcome(status=status, metrics=metrics, curves=curves,
                          error="retraining a pruned network diverged" if status == "diverged" else None)

    # ------------------------------------------------------------------ helpers

    @staticmethod
    def _retrain(trainer: _Trainer, test: _Data, masks: Mapping[str, torch.Tensor], start: TrainedState,
                 task: PruningTask) -> _Evaluated:
        state = trainer.train(masks, start, task.training.steps - start.step)
        densities = {n: float(masks[n].float().mean()) for n in trainer.prunable}
        # Checked on the weights actually trained, not on the mask: a revived weight would show here.
        revived = [n for n in trainer.prunable if bool((state.weights[n][~masks[n]] != 0).any())]
        if revived:
            raise RuntimeError(f"pruned weights of {revived} are non-zero after training: mask enforcement failed")
        if state.diverged:
            return _Evaluated(float("nan"), densities, True)
        collapsed = [n for n in trainer.prunable if not bool(masks[n].any())]
        return _Evaluated(trainer.accuracy(state, test), densities, False, collapsed)

    def _shared_controls(self, trainer: _Trainer, test: _Data, init: TrainedState, rewind: TrainedState,
                         shapes: dict[str, torch.Size], sparsities: tuple[float, ...], seed: int, path: Path,
                         task: PruningTask) -> dict[str, Any]:
        if path.exists():
            try:
                cached = json.loads(path.read_text())
                if cached.get("digest") == path.stem:
                    return cached
            except (OSError, json.JSONDecodeError):
                pass  # torn or foreign file: recompute and overwrite
        dense = trainer.train(None, init, task.training.steps)
        if dense.diverged:
            return {"diverged": True, "acc_dense": None}
        out: dict[str, Any] = {"digest": path.stem, "acc_dense": trainer.accuracy(dense, test), "acc_random": {}}
        for s in sparsities:
            masks = random_masks(shapes, s, make_generator(seed, "random-control", sparsity_label(s)))
            ev = self._retrain(trainer, test, masks, rewind, task)
            if ev.diverged:
                return {"diverged": True, "acc_dense": out["acc_dense"]}
            out["acc_random"][sparsity_label(s)] = ev.accuracy
        _atomic_write(path, lambda f: f.write(json.dumps(out, sort_keys=True)), "w")
        return out

    @staticmethod
    def _check_results(
        results: Any, sparsities: tuple[float, ...], shapes: dict[str, torch.Size], pctx: PruningContext
    ) -> tuple[dict[float, dict[str, torch.Tensor]], dict[float, TrainedState | None]]:
        if not isinstance(results, Mapping):
            raise MethodError(f"prune() must return a dict {{sparsity: PruneResult}}, got {type(results).__name__}")
        by_target: dict[float, PruneResult] = {}
        for key, value in results.items():
            match = [s for s in sparsities if abs(float(key) - s) < 1e-9]
            if not match:
                raise MethodError(f"prune() returned sparsity {key}, which is not a target ({list(sparsities)})")
            if not isinstance(value, PruneResult):
                raise MethodError(f"prune() result for sparsity {key} is a {type(value).__name__}, not a PruneResult")
            by_target[match[0]] = value
        missing = [s for s in sparsities if s not in by_target]
        if missing:
            raise MethodError(f"prune() returned no result for sparsities {missing}")
        masks: dict[float, dict[str, torch.Tensor]] = {}
        starts: dict[float, TrainedState | None] = {}
        for s, res in by_target.items():
            if res.scores is not None:
                scores = res.scores
                if not isinstance(scores, Mapping) or set(scores) != set(shapes):
                    raise MethodError(f"scores for sparsity {s} must name the prunable tensors {sorted(shapes)}")
                for n, shape in shapes.items():
                    if not isinstance(scores[n], torch.Tensor) or tuple(scores[n].shape) != tuple(shape):
                        raise MethodError(f"scores {n!r} for sparsity {s} must be a tensor of shape {tuple(shape)}")
                masks[s] = _validate_masks(masks_from_scores({n: scores[n] for n in shapes}, s), shapes, s)
            else:
                masks[s] = _validate_masks(res.masks, shapes, s)
            if res.start is not None:
                pctx.check_issued(res.start, f"the start for sparsity {s}")
                if res.start.diverged:
                    raise MethodError(f"the start for sparsity {s} diverged in training")
                if res.start.step >= pctx.steps:
                    raise MethodError(f"start for sparsity {s} is at step {res.start.step}: no recipe steps remain")
            starts[s] = res.start
        return masks, starts


def _whole_model_compression(weights: Mapping[str, torch.Tensor], masks: Mapping[str, torch.Tensor]) -> float:
    """ShrinkBench's size / size_nz over every parameter (biases and unpruned layers count as dense)."""
    size = sum(v.numel() for v in weights.values())
    pruned = sum(int((~m).sum()) for m in masks.values())
    return size / (size - pruned)


FAMILY = PruningFamily()
