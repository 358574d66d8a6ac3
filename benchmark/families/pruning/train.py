"""The pruning family's one training loop: R masked networks trained at once, memoised and cached.

Every training of a run goes through :class:`Trainer`: the dense network, θ_k, every ``ctx.train`` of the
method, every retraining of a mask and every control. These networks are tiny (MNIST-1D's 40-128-128-10 at
batch 100), so one alone is dominated by per-operation overhead, not arithmetic: :func:`train_stack` trains
R of them as one program, with every parameter stacked on a leading R axis and batched matmuls
(``torch.baddbmm``; measured faster than ``vmap(functional_call)`` on the CPU at R = 1..12). Each network
keeps its own start weights, start step, mask, data and batch order, and the optimizers are element-wise
(Adam, SGD with momentum and weight decay), so each network is updated exactly as it would be alone; only
float rounding of the batched matmuls differs. A network alone is a stack of one: there is no second loop.

Requests reach :func:`train_jobs` at once in a run alone; in :meth:`PruningFamily.run_batch` the seeds' runs
are the lanes of a :class:`~phenomena_bench.core.lockstep.Lockstep` (:func:`as_lane`), so the trainings that
R seeds ask for at the same point (IMP's round i, the controls, the final evaluations) become one stack of R
(or more) networks.

Within a run, trainings are memoised by (mask, start weights, start step, steps): iterative magnitude pruning
trains each nested mask from the rewind point during its search, and the harness's retraining of the same mask
would be the same computation. Dense trainings are also cached on disk across runs (they depend only on the
task, the seed and the start).

Masks are a multiplication of the stacked weights in the forward pass (``weight_orig * mask``, as
``torch.nn.utils.prune`` does), so a pruned weight has zero gradient; weight decay or momentum may move the
stored weight but never the weight the network uses, and the weights handed back are ``weight * mask``: exactly
zero where pruned.
"""

from __future__ import annotations

import hashlib
import math
import threading
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from phenomena_bench.core.atomic import atomic_write
from phenomena_bench.core.hashing import content_key
from phenomena_bench.core.lockstep import Lockstep
from phenomena_bench.core.seeds import derive_seed
from phenomena_bench.data.digits import _load_digits_split
from phenomena_bench.data.mnist1d import ArraySplit, load_mnist1d
from phenomena_bench.families.pruning.api import TrainedState
from phenomena_bench.families.pruning.spec import PruningTask

# Bump when the harness changes in a way that changes cached control numbers.
HARNESS_VERSION = "3"  # 3: stacked training (float rounding of batched matmuls)

T = TypeVar("T")

#: Steps between the loss checks that detect divergence (and the last step is always checked).
CHECK_EVERY = 50


@dataclass
class Data:
    """One split's tensors on the run's device. The trainer (reachable from the method's context) holds only
    the training split; the test split stays in the family's run."""

    x: torch.Tensor
    y: torch.Tensor
    num_classes: int


@dataclass(frozen=True)
class TrainRequest:
    """One training: `steps` steps of the recipe from `start` (its weights and its step in the data order),
    with the prunable weights held at zero where `masks` is false (``None``: dense)."""

    masks: Mapping[str, torch.Tensor] | None
    start: TrainedState
    steps: int


@dataclass(frozen=True)
class TrainJob:
    """A request with the trainer it came from (its recipe, training split and batch order): what one lane
    hands the driver, so that networks of different seeds can share a stack."""

    trainer: Trainer
    request: TrainRequest


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
    """One (task, seed)'s training: the recipe, the training split and batch order, the run's memo and the
    cross-run cache of dense trainings. The computing is :func:`train_jobs`, shared by every trainer."""

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
        dropout: float = 0.0,
    ) -> None:
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must lie in [0, 1), got {dropout}")
        #: Inverted dropout on every hidden unit in training (0: none, what every pruning run uses); its
        #: draws come from a stream fixed by the task digest, so a training is reproducible.
        self.dropout = dropout
        self.task = task
        self.recipe = task.training
        self.residual = task.model.kind == "residual_mlp"
        self.data = data
        self.model_factory = model_factory
        self.prunable = prunable
        self.order = order.to(device)
        self.device = device
        self.cache_dir = cache_dir
        self.task_digest = task_digest
        self.memo: dict[str, TrainedState] = {}
        self.trainings = 0  # trainings actually computed (not memoised), for the cost report

    def with_dropout(self, p: float) -> Trainer:
        """This trainer's recipe, data and order with inverted dropout `p` on the hidden units: a separate memo,
        and a task digest of its own so its dense trainings are cached apart from the plain ones."""
        digest = content_key([self.task_digest, "dropout", p])
        return Trainer(
            self.task, self.data, self.model_factory, self.prunable, self.order, self.device, self.cache_dir, digest, p
        )

    def build(self, weights: Mapping[str, torch.Tensor]) -> nn.Module:
        model = self.model_factory(0)
        model.load_state_dict({k: v.clone() for k, v in weights.items()})
        return model.to(self.device)

    def train(self, masks: Mapping[str, torch.Tensor] | None, start: TrainedState, steps: int) -> TrainedState:
        return self.train_many([TrainRequest(masks, start, steps)])[0]

    def train_many(self, requests: Sequence[TrainRequest]) -> list[TrainedState]:
        """Each request's trained state: from the memo, the dense cache, or computed together in one stack."""
        keys = []
        for r in requests:
            if r.start.step + r.steps > self.order.shape[0]:
                raise ValueError(f"training from step {r.start.step} for {r.steps} steps runs past the data order")
            keys.append(content_key([tensor_digest(r.masks), tensor_digest(r.start.weights), r.start.step, r.steps]))
        missing: dict[str, TrainRequest] = {}
        for key, r in zip(keys, requests, strict=True):
            if key in self.memo or key in missing:
                continue
            cached = self._load_dense(key) if r.masks is None else None
            if cached is not None:
                self.memo[key] = cached
            else:
                missing[key] = r
        if missing:
            states = _ask([TrainJob(self, r) for r in missing.values()])
            self.trainings += len(missing)
            for (key, r), state in zip(missing.items(), states, strict=True):
                if r.masks is None and not state.diverged:
                    self._save_dense(key, state)
                self.memo[key] = state
        return [self.memo[key] for key in keys]

    def _dense_path(self, key: str) -> Path:
        return self.cache_dir / f"dense-{self.task_digest[:20]}-{key[:20]}.pt"

    def _load_dense(self, key: str) -> TrainedState | None:
        path = self._dense_path(key)
        if not path.exists():
            return None
        saved = torch.load(path, map_location="cpu", weights_only=True)
        return TrainedState(saved["weights"], int(saved["step"]), None, saved["final_loss"], False)

    def _save_dense(self, key: str, state: TrainedState) -> None:
        payload = {"weights": dict(state.weights), "step": state.step, "final_loss": state.final_loss}
        atomic_write(self._dense_path(key), lambda f: torch.save(payload, f))

    def dense_cached(self, start: TrainedState, steps: int) -> TrainedState | None:
        """The dense training of `steps` steps from `start` if it is on disk (for :func:`computed_once`)."""
        return self._load_dense(content_key(["none", tensor_digest(start.weights), start.step, steps]))

    @torch.no_grad()
    def accuracy(self, state: TrainedState, test: Data) -> float:
        model = self.build(state.weights).eval()
        correct = 0
        for i in range(0, test.x.shape[0], 4096):
            logits = model(test.x[i : i + 4096])
            correct += int((logits.argmax(dim=1) == test.y[i : i + 4096]).sum())
        return correct / test.x.shape[0]


# ------------------------------------------------------------------------------ the one training loop


def _stack_key(job: TrainJob) -> Hashable:
    """Jobs that can share a stack: the same number of steps, recipe, architecture, device and batch size."""
    t, r = job.trainer, job.request
    shapes = tuple((n, tuple(v.shape)) for n, v in r.start.weights.items())
    return (r.steps, t.recipe.model_dump_json(), t.residual, t.device, tuple(t.order.shape[1:]), shapes, t.dropout)


def train_jobs(requests: Sequence[Sequence[TrainJob]]) -> list[list[TrainedState]]:
    """The Lockstep's ``serve``: every lane's jobs, grouped into compatible stacks, each trained as one program;
    each lane gets its own states back in its order."""
    flat = [(lane, i, job) for lane, jobs in enumerate(requests) for i, job in enumerate(jobs)]
    groups: dict[Hashable, list[tuple[int, int, TrainJob]]] = {}
    for item in flat:
        groups.setdefault(_stack_key(item[2]), []).append(item)
    out: list[list[TrainedState | None]] = [[None] * len(jobs) for jobs in requests]
    for members in groups.values():
        for (lane, i, _), state in zip(members, train_stack([job for _, _, job in members]), strict=True):
            out[lane][i] = state
    return [[s for s in lane if s is not None] for lane in out]


class _Lanes(threading.local):
    """The Lockstep whose lane this thread is (None: a run alone), so concurrent batches never share one."""

    lockstep: Lockstep[list[TrainJob], list[TrainedState]] | None = None


_LANES = _Lanes()


def new_lockstep() -> Lockstep[list[TrainJob], list[TrainedState]]:
    """A Lockstep serving pruning trainings (:func:`train_jobs`), for one :meth:`PruningFamily.run_batch`."""
    return Lockstep(train_jobs)


def as_lane(lockstep: Lockstep[list[TrainJob], list[TrainedState]], body: Callable[[], T]) -> Callable[[], T]:
    """`body` as a lane of `lockstep`: every training it asks for is served with the other lanes'."""

    def lane() -> T:
        _LANES.lockstep = lockstep
        try:
            return body()
        finally:
            _LANES.lockstep = None

    return lane


def _ask(jobs: list[TrainJob]) -> list[TrainedState]:
    """Train `jobs`: with the other lanes' inside a batch of seeds, at once in a run alone."""
    lockstep = _LANES.lockstep
    return train_jobs([jobs])[0] if lockstep is None else lockstep.ask(jobs)


def stacked_forward(
    params: Mapping[str, torch.Tensor],
    masks: Mapping[str, torch.Tensor],
    x: torch.Tensor,
    residual: bool,
    keep: Sequence[torch.Tensor] | None = None,
) -> torch.Tensor:
    """:class:`~phenomena_bench.models.mlp.MLP`'s forward for R networks at once: `params` hold a leading R
    axis, `x` is (R, batch, in); a weight named in `masks` is used as ``weight * mask``. `keep` (dropout)
    multiplies hidden layer i's activations, before any residual sum, by ``keep[i]`` (broadcastable to
    (R, batch, width)): 0 for a dropped unit, 1/(1-p) for a kept one."""
    depth = sum(1 for n in params if n.endswith(".weight"))
    h = x
    for i in range(1, depth + 1):
        w = params[f"fc{i}.weight"]
        if f"fc{i}.weight" in masks:
            w = w * masks[f"fc{i}.weight"]
        out = torch.baddbmm(params[f"fc{i}.bias"].unsqueeze(1), h, w.transpose(1, 2))
        if i == depth:
            return out
        out = torch.relu(out)
        if keep is not None:
            out = out * keep[i - 1]
        h = h + out if residual and i > 1 else out
    raise ValueError("a network needs at least one layer")


def _optimizer(params: list[torch.Tensor], job: TrainJob) -> torch.optim.Optimizer:
    recipe = job.trainer.recipe
    if recipe.optimizer == "adam":
        # fused: one kernel for all parameters, ~25% less time per step on these small CPU models
        return torch.optim.Adam(params, lr=recipe.lr, weight_decay=recipe.weight_decay, fused=True)
    return torch.optim.SGD(params, lr=recipe.lr, momentum=recipe.momentum, weight_decay=recipe.weight_decay)


@dataclass
class _Stack:
    """The live networks of one stack: parameters, masks, batch indices and optimizer, all on axis 0."""

    members: list[int]  # job index of each row
    params: dict[str, torch.Tensor]
    masks: dict[str, torch.Tensor]
    index: torch.Tensor  # (steps, rows, batch) into the concatenated training data
    opt: torch.optim.Optimizer

    def keep(self, rows: list[int], job: TrainJob) -> _Stack:
        """The same stack without the rows not in `rows` (optimizer state sliced, so the survivors continue
        exactly as before)."""
        sel = torch.tensor(rows, device=self.index.device)
        params = {n: p.detach()[sel].clone().requires_grad_(True) for n, p in self.params.items()}
        opt = _optimizer(list(params.values()), job)
        for old, new in zip(self.params.values(), params.values(), strict=True):
            opt.state[new] = {
                k: v[sel].clone() if isinstance(v, torch.Tensor) and v.dim() > 0 else v
                for k, v in self.opt.state.get(old, {}).items()
            }
        masks = {n: m[sel] for n, m in self.masks.items()}
        return _Stack([self.members[r] for r in rows], params, masks, self.index[:, sel], opt)

    def state(self, row: int, step: int, loss: float, diverged: bool, job: TrainJob) -> TrainedState:
        """One network's weights as ``weight * mask`` on the CPU (pruned weights exactly zero)."""
        weights = {}
        for n, p in self.params.items():
            w = p.detach()[row]
            weights[n] = (w * self.masks[n][row] if n in self.masks else w).cpu().clone()
        return TrainedState(weights, step, job.request.masks, loss, diverged)


def _concat_data(jobs: Sequence[TrainJob]) -> tuple[torch.Tensor, torch.Tensor, list[int]]:
    """Every distinct training split of `jobs` in one tensor, and each job's offset into it."""
    offsets: dict[int, int] = {}
    xs, ys = [], []
    size = 0
    for job in jobs:
        data = job.trainer.data
        if id(data) not in offsets:
            offsets[id(data)] = size
            xs.append(data.x)
            ys.append(data.y)
            size += data.x.shape[0]
    x = xs[0] if len(xs) == 1 else torch.cat(xs)
    y = ys[0] if len(ys) == 1 else torch.cat(ys)
    return x, y, [offsets[id(job.trainer.data)] for job in jobs]


def _dropout_stream(job: TrainJob) -> torch.Generator:
    """A job's dropout draws: fixed by its trainer's task digest, its start weights and its start step (so a
    network draws the same masks alone or in a stack)."""
    r = job.request
    key = content_key([job.trainer.task_digest, tensor_digest(r.start.weights), r.start.step, r.steps])
    return torch.Generator().manual_seed(int(key[:15], 16))


def _dropout_keep(
    streams: Sequence[torch.Generator], p: float, params: Mapping[str, torch.Tensor], batch: int
) -> list[torch.Tensor]:
    """One step's inverted-dropout multipliers per hidden layer, (R, batch, width): 0 with probability `p`,
    else 1/(1-p); row r drawn from ``streams[r]`` (on the CPU, so a device never changes the draws)."""
    depth = sum(1 for n in params if n.endswith(".weight"))
    ref = params["fc1.weight"]
    out = []
    for i in range(1, depth):
        width = params[f"fc{i}.weight"].shape[1]
        rows = [(torch.rand(batch, width, generator=g) >= p).to(ref.dtype) for g in streams]
        out.append(torch.stack(rows).to(ref.device) / (1.0 - p))
    return out


def train_stack(jobs: Sequence[TrainJob]) -> list[TrainedState]:
    """Train compatible jobs (see :func:`_stack_key`) as one stacked program; one state per job.

    The loss is each network's own mean cross-entropy, summed over the stack, so each network's gradient is
    its own. Every ``CHECK_EVERY`` steps (and at the last) the losses are read; a network whose loss is not
    finite stops there, reported diverged with the weights it had, as it would alone, and leaves the stack.
    """
    first = jobs[0]
    steps, device = first.request.steps, first.trainer.device
    x, y, offsets = _concat_data(jobs)
    index = torch.stack(
        [j.trainer.order[j.request.start.step : j.request.start.step + steps] + off for j, off in zip(jobs, offsets)],
        dim=1,
    )
    names = list(first.request.start.weights)
    params = {n: torch.stack([j.request.start.weights[n] for j in jobs]).to(device).requires_grad_(True) for n in names}
    masks: dict[str, torch.Tensor] = {}
    if any(j.request.masks is not None for j in jobs):
        for n in first.trainer.prunable:
            ones = torch.ones_like(params[n][0])
            masks[n] = torch.stack(
                [ones if j.request.masks is None else j.request.masks[n].to(device, ones.dtype) for j in jobs]
            )
    stack = _Stack(list(range(len(jobs))), params, masks, index, _optimizer(list(params.values()), first))
    done: dict[int, TrainedState] = {}
    losses = [float("nan")] * len(jobs)
    p = first.trainer.dropout
    streams = [_dropout_stream(j) for j in jobs] if p > 0 else []
    with torch.enable_grad():
        for i in range(steps):
            idx = stack.index[i]
            keep = _dropout_keep([streams[j] for j in stack.members], p, stack.params, idx.shape[1]) if p else None
            logits = stacked_forward(stack.params, stack.masks, x[idx], first.trainer.residual, keep)
            loss = F.cross_entropy(logits.flatten(0, 1), y[idx].flatten(), reduction="none").view(idx.shape).mean(1)
            stack.opt.zero_grad(set_to_none=True)
            loss.sum().backward()
            stack.opt.step()
            if i % CHECK_EVERY == 0 or i == steps - 1:
                values = loss.detach().tolist()
                bad = [row for row, v in enumerate(values) if not math.isfinite(v)]
                for row, v in enumerate(values):
                    losses[stack.members[row]] = v
                for row in bad:
                    j = stack.members[row]
                    done[j] = stack.state(row, jobs[j].request.start.step + steps, values[row], True, jobs[j])
                if bad:
                    alive = [row for row in range(len(stack.members)) if row not in bad]
                    if not alive:
                        break
                    stack = stack.keep(alive, first)
    for row, j in enumerate(stack.members):
        if j not in done:
            done[j] = stack.state(row, jobs[j].request.start.step + steps, losses[j], False, jobs[j])
    return [done[j] for j in range(len(jobs))]
