"""The harness's side of a pruning method's context: the training split, θ_0 and θ_k, the charged recipe.

:func:`setup` builds one (task, seed)'s context and, kept apart from it, the test split; a method only
ever holds the context. The context checks what comes back from the method: a start state must be one the
harness handed out, unmodified.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

import phenomena_bench
from phenomena_bench.core.cache import computed_once
from phenomena_bench.core.costs import shared_work
from phenomena_bench.core.errors import MethodError
from phenomena_bench.core.hashing import content_key
from phenomena_bench.core.metering import unmetered
from phenomena_bench.core.method import shown
from phenomena_bench.core.seeds import derive_seed, method_seed
from phenomena_bench.families.pruning.api import PruneResult, PruningContext, SearchBudgetExceeded, TrainedState
from phenomena_bench.families.pruning.masks import masks_from_scores
from phenomena_bench.families.pruning.score import validate_masks
from phenomena_bench.families.pruning.spec import PruningTask
from phenomena_bench.families.pruning.train import (
    HARNESS_VERSION,
    Data,
    Trainer,
    _load_split,
    batch_order,
    tensor_digest,
)
from phenomena_bench.models.mlp import MLP


class HarnessContext(PruningContext):
    """The harness's :class:`~phenomena_bench.families.pruning.api.PruningContext`: the trainer (training split
    only), the states it handed out and the budget spent."""

    def __init__(
        self,
        trainer: Trainer,
        seed: int,
        sparsities: tuple[float, ...],
        init: TrainedState,
        rewind: TrainedState,
        budget_steps: int,
        fewshot_per_class: int,
    ) -> None:
        self._trainer = trainer
        self._seed = seed  # the data seed: the harness's (few-shot choice), never handed to the method
        self.rng_seed = method_seed(seed)
        self.sparsities = sparsities
        self.device = trainer.device
        self.init_state = init
        self.rewind_state = rewind
        self.steps = trainer.recipe.steps
        self.budget_steps = budget_steps
        self.steps_used = 0
        #: Models the method asked ``make_model`` for (their use is FLOP-metered, not charged in steps).
        self.models_made = 0
        self.num_classes = trainer.data.num_classes
        self._fewshot_per_class = fewshot_per_class
        self.prunable: dict[str, torch.Size] = {n: init.weights[n].shape for n in trainer.prunable}
        # States the harness handed out, with their digests: a start must be one of them, unmodified.
        self._issued: dict[int, tuple[TrainedState, str]] = {}
        for state in (init, rewind):
            self._issue(state)

    def _issue(self, state: TrainedState) -> TrainedState:
        self._issued[id(state)] = (state, tensor_digest(state.weights))
        return state

    def check_issued(self, state: Any, what: str) -> TrainedState:
        """`state` itself if the harness made it and it was not modified in place; a MethodError otherwise."""
        entry = self._issued.get(id(state))
        if entry is None or entry[0] is not state:
            raise MethodError(f"{what} must be ctx.init_state, ctx.rewind_state or a state returned by ctx.train")
        if tensor_digest(state.weights) != entry[1]:
            raise MethodError(f"{what}: the weights of a state handed out by the harness were modified in place")
        return state

    def make_model(self, state: TrainedState | None = None, init_seed: int | None = None) -> nn.Module:
        """A fresh module on ctx.device: θ_0 by default, `state`'s weights, or a new init from `init_seed`."""
        self.models_made += 1
        with unmetered():
            if init_seed is not None:
                if isinstance(init_seed, bool) or not isinstance(init_seed, int):
                    raise MethodError(f"ctx.make_model: init_seed must be an int, got {shown(init_seed)}")
                return self._trainer.model_factory(derive_seed(init_seed, "user-init")).to(self.device)
            if state is not None:
                self.check_issued(state, "ctx.make_model(state=...)")
            return self._trainer.build((state or self.init_state).weights)

    def train(
        self,
        masks: Mapping[str, torch.Tensor] | None = None,
        start: TrainedState | None = None,
        steps: int | None = None,
    ) -> TrainedState:
        """Train with the harness's recipe (masked if `masks`), from `start` (θ_0 by default).

        `steps` defaults to the rest of the recipe (`steps - start.step`). Every step is charged against the
        search budget, memoised or not; asking for more than is left raises :class:`SearchBudgetExceeded`.
        """
        start = self.check_issued(start or self.init_state, "ctx.train(start=...)")
        if steps is None:
            steps = self.steps - start.step
        elif isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
            raise MethodError(f"ctx.train: steps must be an int >= 0, got {shown(steps)}")
        if start.step + steps > self.steps:
            raise MethodError(f"ctx.train: {steps} steps from step {start.step} run past the recipe's {self.steps}")
        checked = validate_masks(masks, self.prunable, None) if masks is not None else None
        self._charge(steps, "ctx.train")
        with unmetered():  # charged in steps, not in the method's FLOPs
            state = self._trainer.train(checked, start, steps)
        # A copy, so that edits by the method cannot reach the memo the harness's retraining reads from.
        copied = TrainedState(
            {k: v.clone() for k, v in state.weights.items()},
            state.step,
            None if state.masks is None else {k: v.clone() for k, v in state.masks.items()},
            state.final_loss,
            state.diverged,
        )
        return self._issue(copied)

    def _charge(self, steps: int, what: str) -> None:
        """Charge `steps` against the search budget, or raise SearchBudgetExceeded (nothing charged)."""
        if self.steps_used + steps > self.budget_steps:
            raise SearchBudgetExceeded(
                f"{what} asked for {steps} steps with {self.budget_steps - self.steps_used} of the "
                f"{self.budget_steps}-step search budget left"
            )
        self.steps_used += steps

    def train_batches(self, count: int | None = None) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Training minibatches in the recipe's order for this seed: `count` of them (default: one epoch).

        Each batch yielded charges one step against the search budget.
        """
        data, order = self._trainer.data, self._trainer.order
        if count is None:
            count = max(1, data.x.shape[0] // order.shape[1])
        elif isinstance(count, bool) or not isinstance(count, int) or count < 0:
            raise MethodError(f"ctx.train_batches: count must be an int >= 0, got {shown(count)}")
        for t in range(min(count, order.shape[0])):
            self._charge(1, "ctx.train_batches")
            yield data.x[order[t]], data.y[order[t]]

    def fewshot_batch(self, per_class: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """`per_class` training examples of every class (spec default), chosen by the seed: for scoring."""
        if per_class is not None and (isinstance(per_class, bool) or not isinstance(per_class, int) or per_class < 1):
            raise MethodError(f"ctx.fewshot_batch: per_class must be an int >= 1, got {shown(per_class)}")
        per_class = per_class or self._fewshot_per_class
        data = self._trainer.data
        y = data.y.cpu().numpy()
        rng = np.random.default_rng(derive_seed(self._seed, "fewshot"))
        idx = np.concatenate([rng.permutation(np.flatnonzero(y == c))[:per_class] for c in range(self.num_classes)])
        t = torch.from_numpy(np.sort(idx)).to(data.x.device)
        return data.x[t], data.y[t]

    def check_results(
        self, results: Any
    ) -> tuple[dict[float, dict[str, torch.Tensor]], dict[float, TrainedState | None]]:
        """What `prune` returned, checked: exact masks for every target sparsity, and each result's start state
        (None: the rewind point). A MethodError names the first problem."""
        sparsities, shapes = self.sparsities, self.prunable
        if not isinstance(results, Mapping):
            raise MethodError(f"prune() must return a dict {{sparsity: PruneResult}}, got {type(results).__name__}")
        by_target: dict[float, PruneResult] = {}
        for key, value in results.items():
            if isinstance(key, bool) or not isinstance(key, (int, float)) or not math.isfinite(key):
                raise MethodError(f"prune() returned the key {shown(key)}; keys must be the target sparsities")
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
                    if scores[n].dtype == torch.bool or scores[n].is_complex():
                        raise MethodError(f"scores {n!r} for sparsity {s} are {scores[n].dtype}; expected real numbers")
                    if not bool(torch.isfinite(scores[n]).all()):
                        raise MethodError(f"scores {n!r} for sparsity {s} hold NaN or infinity")
                masks[s] = validate_masks(masks_from_scores({n: scores[n] for n in shapes}, s), shapes, s)
            else:
                masks[s] = validate_masks(res.masks, shapes, s)
            if res.start is not None:
                self.check_issued(res.start, f"the start for sparsity {s}")
                if res.start.diverged:
                    raise MethodError(f"the start for sparsity {s} diverged in training")
                if res.start.step >= self.steps:
                    raise MethodError(f"start for sparsity {s} is at step {res.start.step}: no recipe steps remain")
            starts[s] = res.start
        return masks, starts


def make_context(task: PruningTask, seed: int, device: str, cache_dir: Path) -> HarnessContext:
    """Training data, θ_0, θ_k and the recipe for one (task, seed): what the family's run hands a method.

    Public so that a method author can call their `prune` on the real context without a full run.
    """
    return _setup(task, seed, device, cache_dir)[0]


def _setup(task: PruningTask, seed: int, device: str, cache_dir: Path) -> tuple[HarnessContext, Data]:
    """The method's context and, kept apart from it, the test split (harness-private: the family's run)."""
    split = _load_split(task, seed, cache_dir)
    data = Data(
        torch.from_numpy(split.x_train).to(device), torch.from_numpy(split.y_train).to(device), split.num_classes
    )
    test = Data(torch.from_numpy(split.x_test).to(device), torch.from_numpy(split.y_test).to(device), split.num_classes)
    m = task.model

    def factory(init_seed: int) -> MLP:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(init_seed)
            return MLP(split.num_features, m.hidden, split.num_classes, residual=m.kind == "residual_mlp")

    init_model = factory(derive_seed(seed, "init"))
    prunable = init_model.prunable_names(task.evaluation.prune_output_layer)
    task_digest = content_key([task.key_payload(), seed, phenomena_bench.__version__, HARNESS_VERSION])
    order = batch_order(split.x_train.shape[0], task.training.batch_size, task.training.steps, seed)
    trainer = Trainer(task, data, factory, prunable, order, device, cache_dir / "pruning", task_digest)
    init = TrainedState({k: v.detach().clone() for k, v in init_model.state_dict().items()}, 0)
    k = task.training.rewind_step
    rewind = _rewind_state(trainer, init, k, cache_dir / "pruning" / f"rewind-{task_digest[:32]}.lock")
    ctx = HarnessContext(
        trainer,
        seed,
        tuple(task.evaluation.sparsities),
        init,
        rewind,
        int(task.training.search_budget * task.training.steps),
        task.evaluation.fewshot_per_class,
    )
    return ctx, test


def _rewind_state(trainer: Trainer, init: TrainedState, k: int, lock: Path) -> TrainedState:
    """θ_k, the dense network after `k` steps: shared by every method on (task, seed), cached on disk and
    built under `lock` so two workers never train it twice (θ_0 itself when k = 0)."""
    if k == 0:
        return init

    def build() -> TrainedState:
        with shared_work("pruning-controls"):
            return trainer.train(None, init, k)

    return computed_once(lock, lambda: trainer.dense_cached(init, k), build)
