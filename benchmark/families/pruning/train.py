"""The pruning family's one training loop: the spec's fixed recipe, masks held at zero, memoised and cached.

Every training of a run goes through :class:`Trainer`: the dense network, θ_k, every ``ctx.train`` of the
method, every retraining of a mask and every control. Within a run, trainings are memoised by (mask, start
weights, start step, steps): iterative magnitude pruning trains each nested mask from the rewind point
during its search, and the harness's retraining of the same mask would be the same computation. The memo
never changes a number on the CPU (training is deterministic). Dense trainings are also cached on disk
across runs (they depend only on the task, the seed and the start).

Masks are installed with ``torch.nn.utils.prune.custom_from_mask``, so the forward pass uses
``weight_orig * mask`` and a pruned weight has zero gradient; weight decay or momentum may move
``weight_orig`` but never the weight the network uses. After training the pruning is made permanent.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import prune as torch_prune

from phenomena_bench.core.atomic import atomic_write
from phenomena_bench.core.hashing import content_key
from phenomena_bench.core.seeds import derive_seed
from phenomena_bench.data.digits import _load_digits_split
from phenomena_bench.data.mnist1d import ArraySplit, load_mnist1d
from phenomena_bench.families.pruning.api import TrainedState
from phenomena_bench.families.pruning.spec import PruningTask

# Bump when the harness changes in a way that changes cached control numbers.
HARNESS_VERSION = "2"


@dataclass
class Data:
    """One split's tensors on the run's device. The trainer (reachable from the method's context) holds only
    the training split; the test split stays in the family's run."""

    x: torch.Tensor
    y: torch.Tensor
    num_classes: int


def _load_split(task: PruningTask, seed: int, cache_dir: Path) -> ArraySplit:
    """The task's dataset: MNIST-1D (fixed split, cached) or digits (stratified split drawn from the seed)."""
    if task.data.dataset == "mnist1d":
        return load_mnist1d(task.data.num_samples, task.data.generator_seed, cache_dir / "data")
    return _load_digits_split(task.data.test_fraction, seed)


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


def tensor_digest(tensors: Mapping[str, torch.Tensor] | None) -> str:
    """SHA-256 of named tensors' names, dtypes, shapes and bytes: equal exactly when the content is equal."""
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


class Trainer:
    """The one training loop of the family, with the run's memo and the cross-run cache of dense trainings."""

    def __init__(
        self,
        task: PruningTask,
        data: Data,
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
        key = content_key([tensor_digest(masks), tensor_digest(start.weights), start.step, steps])
        if key in self.memo:
            return self.memo[key]
        path = self.cache_dir / f"dense-{self.task_digest[:20]}-{key[:20]}.pt" if masks is None else None
        if path is not None and path.exists():
            saved = torch.load(path, map_location="cpu", weights_only=True)
            state = TrainedState(saved["weights"], int(saved["step"]), None, saved["final_loss"], False)
        else:
            state = self._run(masks, start, steps)
            if path is not None and not state.diverged:
                payload = {"weights": dict(state.weights), "step": state.step, "final_loss": state.final_loss}
                atomic_write(path, lambda f: torch.save(payload, f))
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
    def accuracy(self, state: TrainedState, test: Data) -> float:
        model = self.build(state.weights).eval()
        correct = 0
        for i in range(0, test.x.shape[0], 4096):
            logits = model(test.x[i : i + 4096])
            correct += int((logits.argmax(dim=1) == test.y[i : i + 4096]).sum())
        return correct / test.x.shape[0]
