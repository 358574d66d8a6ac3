"""The population: every network of a task, trained, evaluated on held-out digits and diagonalised, once.

Each network is one point of the task's grid (training-set size × width × depth × step size × training
length × initialisation). It is trained by the Hessian family's checkpoint trainer (full-batch gradient
descent on the cross-entropy of a fixed digits subset, float64, on the CPU, so the same spec names the same
parameters everywhere), scored here on the digits it was not trained on (train/test accuracy and loss, the
gaps), and given its exact Hessian spectrum by the Hessian family's ground-truth code (dense float64
Hessian checked against the HVP oracle, every eigenvalue). Both of those are cached per network by the
Hessian family; the population as a whole (every network's parameters, spectrum and scores) is cached
under the hash of the spec's population sections, so a second run of any method builds nothing.

Harness-private: the test digits exist only here and in :mod:`phenomena_bench.families.generalization.family`,
never in what a measure is handed.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from phenomena_bench.core.cache import cache_path, computed_once, content_key, load_arrays, save_arrays
from phenomena_bench.core.costs import shared_work
from phenomena_bench.core.seeds import derive_seed
from phenomena_bench.families.generalization.spec import GeneralizationTask
from phenomena_bench.families.hessian.checkpoints import _digits_split, _train_checkpoint, loss_value
from phenomena_bench.families.hessian.oracle import reverse_over_reverse_hvp
from phenomena_bench.families.hessian.spec import HessianData, HessianModel, HessianTraining
from phenomena_bench.families.hessian.truth import cached_truth, compute_truth

#: Bump when what a population holds, or how it is built, changes meaning.
POPULATION_CODE_VERSION = 1
#: The hyperparameter axes, in the order of :class:`NetworkConfig`'s fields (the initialisation is not one).
AXES = ("n_train", "width", "depth", "lr", "steps")
_SCALARS = ("train_acc", "test_acc", "train_loss", "test_loss")


@dataclass(frozen=True)
class NetworkConfig:
    """One grid point: the axes' values and the initialisation seed."""

    n_train: int
    width: int
    depth: int
    lr: float
    steps: int
    init_seed: int

    def axis_values(self) -> tuple[float, ...]:
        return tuple(float(getattr(self, axis)) for axis in AXES)


@dataclass(frozen=True)
class Network:
    """A trained network of the population: its parameters, exact spectrum and held-out scores."""

    config: NetworkConfig
    theta: torch.Tensor
    eigenvalues: np.ndarray  # descending
    train_acc: float
    test_acc: float
    train_loss: float
    test_loss: float

    @property
    def acc_gap(self) -> float:
        return self.train_acc - self.test_acc

    @property
    def loss_gap(self) -> float:
        return self.test_loss - self.train_loss

    def target(self, name: str) -> float:
        return float(getattr(self, name))


def configs(task: GeneralizationTask) -> list[NetworkConfig]:
    """The population's grid points, in a fixed order (the order of every per-network array)."""
    grid = itertools.product(
        task.data.n_train,
        task.model.widths,
        task.model.depths,
        task.training.lrs,
        task.training.steps,
        range(task.training.init_seeds),
    )
    return [NetworkConfig(*point) for point in grid]


def hessian_sections(
    task: GeneralizationTask, config: NetworkConfig
) -> tuple[HessianData, HessianModel, HessianTraining]:
    """The Hessian family's spec sections that train `config` (its trainer and caches are reused as they are)."""
    return (
        HessianData(n_train=config.n_train, split_seed=task.data.split_seed),
        HessianModel(hidden=[config.width] * config.depth, activation=task.model.activation),
        HessianTraining(loss="cross_entropy", lr=config.lr, checkpoint_step=config.steps),
    )


def population_key(task: GeneralizationTask) -> str:
    payload: dict[str, Any] = {
        "kind": "generalization-population",
        "code_version": POPULATION_CODE_VERSION,
        "data": task.data.model_dump(mode="json"),
        "model": task.model.model_dump(mode="json"),
        "training": task.training.model_dump(mode="json"),
    }
    return content_key(payload)


def _init_seed(config: NetworkConfig) -> int:
    """The initialisation of a grid point: a function of its whole configuration, so networks that differ in
    one axis do not share an initialisation by accident of order (and a grid grown later keeps its points)."""
    return derive_seed(config.init_seed, "generalization-init", *config.axis_values())


def _build_network(task: GeneralizationTask, config: NetworkConfig, cache_dir: Path | None) -> Network:
    data, model, training = hessian_sections(task, config)
    seed = _init_seed(config)
    checkpoint = _train_checkpoint(data, model, training, seed, cache_dir)
    split = _digits_split(data)
    net = model.build()

    def loss_fn(params: torch.Tensor) -> torch.Tensor:
        return loss_value("cross_entropy", net.forward(params, split.x_train), split.y_train)

    truth, _ = cached_truth(
        {"checkpoint": checkpoint.key, "n_top": 0},
        cache_dir,
        lambda: compute_truth(
            loss_fn, checkpoint.theta, reverse_over_reverse_hvp(loss_fn, checkpoint.theta), 0, seed=seed
        ),
    )
    with torch.no_grad():
        test_loss = loss_value("cross_entropy", net.forward(checkpoint.theta, split.x_test), split.y_test).item()
    return Network(
        config=config,
        theta=checkpoint.theta,
        eigenvalues=truth.eigenvalues,
        train_acc=checkpoint.train_acc,
        test_acc=checkpoint.test_acc,
        train_loss=float(checkpoint.train_losses[-1]),
        test_loss=test_loss,
    )


def _save(path: Path, key: str, networks: list[Network]) -> None:
    arrays: dict[str, np.ndarray] = {name: np.array([getattr(n, name) for n in networks]) for name in _SCALARS}
    for index, network in enumerate(networks):
        arrays[f"theta_{index}"] = network.theta.numpy()
        arrays[f"eigenvalues_{index}"] = network.eigenvalues
    save_arrays(path, key, arrays)


def _load(path: Path, key: str, grid: list[NetworkConfig]) -> list[Network] | None:
    arrays = load_arrays(path, key)
    if arrays is None:
        return None
    return [
        Network(
            config=config,
            theta=torch.from_numpy(arrays[f"theta_{i}"]),
            eigenvalues=arrays[f"eigenvalues_{i}"],
            **{name: float(arrays[name][i]) for name in _SCALARS},
        )
        for i, config in enumerate(grid)
    ]


def build_population(task: GeneralizationTask, cache_dir: Path | None) -> tuple[list[Network], bool]:
    """Every network of `task` (grid order) and whether it came from the cache (shared work: no method pays)."""
    grid = configs(task)
    with shared_work("population"):
        if cache_dir is None:
            return [_build_network(task, c, None) for c in grid], False
        key = population_key(task)
        path = cache_path(cache_dir, "generalization-population", key)
        built: list[bool] = []

        def build() -> list[Network]:
            networks = [_build_network(task, c, cache_dir) for c in grid]
            _save(path, key, networks)
            built.append(True)
            return networks

        networks = computed_once(path.with_suffix(".lock"), lambda: _load(path, key, grid), build)
        return networks, not built


def training_tensors(task: GeneralizationTask, config: NetworkConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """The training inputs and labels `config` was trained on (never the test digits)."""
    data, _, _ = hessian_sections(task, config)
    split = _digits_split(data)
    return split.x_train, split.y_train
