"""The controls every method on a (task, seed) is compared with: the dense network and uniform random masks.

They depend only on the resolved task and the seed, so they are computed once (under a lock: two workers
never build them twice) and cached as JSON in the run's cache folder (named by the task digest, which
includes ``HARNESS_VERSION``): a sweep of methods trains them once.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from phenomena_bench.core.atomic import atomic_write
from phenomena_bench.core.cache import computed_once
from phenomena_bench.core.costs import shared_work
from phenomena_bench.families.pruning.api import TrainedState
from phenomena_bench.families.pruning.masks import make_generator, random_masks, sparsity_label
from phenomena_bench.families.pruning.score import evaluate_masks
from phenomena_bench.families.pruning.spec import PruningTask
from phenomena_bench.families.pruning.train import Data, Trainer, TrainRequest


def shared_controls(
    trainer: Trainer,
    test: Data,
    init: TrainedState,
    rewind: TrainedState,
    shapes: dict[str, torch.Size],
    sparsities: tuple[float, ...],
    seed: int,
    path: Path,
    task: PruningTask,
) -> dict[str, Any]:
    """The dense accuracy and the random-mask accuracy at every sparsity for (task, seed), from `path` when
    cached; ``{"diverged": True, ...}`` when one of them diverged (not cached: it is recomputed next time).

    Built under a lock beside `path` (:func:`computed_once`), so two workers starting the same (task, seed)
    never train the controls twice; the dense network and every random mask train as one stack."""

    def build() -> dict[str, Any]:
        with shared_work("pruning-controls"):  # built once for every method on (task, seed): charged to none
            randoms = [(random_control_masks(shapes, s, seed), rewind) for s in sparsities]
            dense_request = TrainRequest(None, init, task.training.steps)
            random_requests = [TrainRequest(m, start, task.training.steps - start.step) for m, start in randoms]
            dense = trainer.train_many([dense_request, *random_requests])[0]
            if dense.diverged:
                return {"diverged": True, "acc_dense": None}
            out: dict[str, Any] = {"digest": path.stem, "acc_dense": trainer.accuracy(dense, test), "acc_random": {}}
            for s, ev in zip(sparsities, evaluate_masks(trainer, test, randoms, task), strict=True):  # memoised
                if ev.diverged:
                    return {"diverged": True, "acc_dense": out["acc_dense"]}
                out["acc_random"][sparsity_label(s)] = ev.accuracy
            atomic_write(path, lambda f: f.write(json.dumps(out, sort_keys=True)), binary=False)
        return out

    return computed_once(path.with_suffix(".lock"), lambda: _load_controls(path), build)


def _load_controls(path: Path) -> dict[str, Any] | None:
    """The cached controls, or None when absent, torn or written for another digest."""
    if not path.exists():
        return None
    try:
        cached = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None  # torn or foreign file: recompute and overwrite
    return cached if isinstance(cached, dict) and cached.get("digest") == path.stem else None


def random_control_masks(shapes: dict[str, torch.Size], sparsity: float, seed: int) -> dict[str, torch.Tensor]:
    """The random control's masks at `sparsity` on `seed` (drawn again, cheaply, wherever a metric needs them)."""
    return random_masks(shapes, sparsity, make_generator(seed, "random-control", sparsity_label(sparsity)))
