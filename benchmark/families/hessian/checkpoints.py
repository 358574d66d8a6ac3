"""The networks whose Hessians the hessian family measures: data, loss, training and the cached checkpoint.

Everything here is deterministic on the CPU: scikit-learn's bundled digits (no download), a fixed training
subset drawn by ``split_seed``, standardised with the subset's own statistics, a float64 :class:`FlatMLP`
initialised from the run seed, and plain full-batch gradient descent for ``checkpoint_step`` steps. Full
batch matters twice: the Hessian is that of the whole fixed training loss (no sampling noise, the main
source of run-to-run variance in the PyHessian issues), and full-batch GD with the squared-error loss at a
large step size reaches the edge of stability, λ_max ≈ 2/η (Cohen et al. 2021). Checkpoints are always
trained on the CPU so that the same (spec, seed) names the same parameters on every machine; they are
cached by content hash next to the ground truth.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from phenomena_bench.core.cache import cache_path, computed_once, content_key, load_arrays, save_arrays
from phenomena_bench.data.digits import digits_raw
from phenomena_bench.families.hessian.spec import HessianData, HessianModel, HessianTraining, LossName
from phenomena_bench.models.flat_mlp import FlatMLP

#: Bump when the training or data code changes meaning, so cached checkpoints are not reused.
CHECKPOINT_CODE_VERSION = 1


@dataclass(frozen=True)
class DigitsSplit:
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor


def _digits_split(data: HessianData) -> DigitsSplit:
    """The fixed training subset (and the remaining digits as a test set, used only to describe checkpoints)."""
    x, y = digits_raw()
    order = np.random.default_rng(data.split_seed).permutation(len(y))
    train, test = order[: data.n_train], order[data.n_train :]
    mean = x[train].mean(axis=0)
    std = x[train].std(axis=0)
    std[std == 0] = 1.0  # constant border pixels
    x = (x - mean) / std
    as_t = torch.from_numpy
    return DigitsSplit(as_t(x[train]), as_t(y[train]), as_t(x[test]), as_t(y[test]))


def loss_value(loss: LossName, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy, or the mean over samples of ½‖f(x) − onehot(y)‖² (Cohen et al.'s MSE)."""
    if loss == "cross_entropy":
        return torch.nn.functional.cross_entropy(outputs, targets)
    onehot = torch.nn.functional.one_hot(targets, outputs.shape[1]).to(outputs.dtype)
    return 0.5 * ((outputs - onehot) ** 2).sum(dim=1).mean()


@dataclass(frozen=True)
class Checkpoint:
    """Parameters θ at the checkpoint and what describes the training that produced them."""

    theta: torch.Tensor
    key: str
    train_losses: np.ndarray  # loss before each GD step, then at the checkpoint
    train_acc: float
    test_acc: float


def checkpoint_payload(data: HessianData, model: HessianModel, training: HessianTraining, seed: int) -> dict[str, Any]:
    return {
        "kind": "hessian-checkpoint",
        "code_version": CHECKPOINT_CODE_VERSION,
        "data": data.model_dump(mode="json"),
        "model": model.model_dump(mode="json"),
        "training": training.model_dump(mode="json"),
        "seed": seed,
    }


def _train_checkpoint(
    data: HessianData, model: HessianModel, training: HessianTraining, seed: int, cache_dir: Path | None
) -> Checkpoint:
    """Train (or load from `cache_dir`) the checkpoint; raises if the loss stops being finite.

    Built under a lock beside the cache entry (:func:`computed_once`): two workers starting the same
    (task, seed) at once train it once, the second waiting and then reading it. A non-finite loss here is
    the task's fault (its step size), not a method's, so it is a plain error (the run fails) rather than a
    divergence.
    """
    key = content_key(checkpoint_payload(data, model, training, seed))
    split = _digits_split(data)
    net = model.build()
    if cache_dir is None:
        theta, losses = _gradient_descent(net, split, training, seed)
    else:
        path = cache_path(cache_dir, "hessian-checkpoints", key)

        def build() -> tuple[torch.Tensor, np.ndarray]:
            built = _gradient_descent(net, split, training, seed)
            save_arrays(path, key, {"theta": built[0].numpy(), "train_losses": built[1]})
            return built

        theta, losses = computed_once(path.with_suffix(".lock"), lambda: _load_checkpoint(path, key), build)
    with torch.no_grad():
        train_acc = (net.forward(theta, split.x_train).argmax(1) == split.y_train).double().mean().item()
        test_acc = (net.forward(theta, split.x_test).argmax(1) == split.y_test).double().mean().item()
    return Checkpoint(theta=theta, key=key, train_losses=losses, train_acc=train_acc, test_acc=test_acc)


def _load_checkpoint(path: Path, key: str) -> tuple[torch.Tensor, np.ndarray] | None:
    cached = load_arrays(path, key)
    return None if cached is None else (torch.from_numpy(cached["theta"]), cached["train_losses"])


def _gradient_descent(
    net: FlatMLP, split: DigitsSplit, training: HessianTraining, seed: int
) -> tuple[torch.Tensor, np.ndarray]:
    """θ after ``checkpoint_step`` full-batch GD steps from the seed's initialisation, and the loss before
    each step (then at the checkpoint)."""
    generator = torch.Generator().manual_seed(seed)
    theta = net.init(generator)
    losses: list[float] = []
    for step in range(training.checkpoint_step + 1):
        theta = theta.detach().requires_grad_(True)
        value = loss_value(training.loss, net.forward(theta, split.x_train), split.y_train)
        if not torch.isfinite(value):
            raise FloatingPointError(
                f"training loss became {value.item()} at step {step}: lower training.lr for this task"
            )
        losses.append(value.item())
        if step == training.checkpoint_step:
            break
        (grad,) = torch.autograd.grad(value, theta)
        theta = theta.detach() - training.lr * grad
    return theta.detach(), np.asarray(losses)
