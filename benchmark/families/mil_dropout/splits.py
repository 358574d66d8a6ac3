"""The train/test splits of one run and their perturbed test sets, drawn from the run seed alone.

Every random choice comes from a stream of :func:`~phenomena_bench.core.seeds.stream_rng` named by the run seed,
a stream id and the fold, so every method is scored on identical bags and perturbations, and adding a stream
never shifts another.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

from phenomena_bench.core.seeds import stream_rng
from phenomena_bench.data.bags import (
    Bags,
    NoiseModel,
    digit_pools,
    flip_labels,
    load_classic,
    make_digit_bags,
    negative_pool,
    perturb,
    standardise,
    stratified_folds,
)
from phenomena_bench.families.mil_dropout.spec import DigitsBagsData, MILDropoutTask

# Stream identifiers for derived RNGs (with the run seed, and the fold where there are folds).
BAGS, PERTURB, FLIP, INIT, ORDER = 1, 2, 3, 4, 5


@dataclass
class Split:
    """One train/test split with its perturbed test sets (fixed by the seed, shared by every method)."""

    fold: int
    train: Bags
    test: Bags
    perturbed: dict[str, Bags] = field(default_factory=dict)
    flipped: dict[str, np.ndarray] = field(default_factory=dict)


def _raw_splits(task: MILDropoutTask, seed: int) -> Iterator[tuple[int, Bags, Bags]]:
    data = task.data
    if isinstance(data, DigitsBagsData):
        pools = digit_pools(seed, data.test_pool_fraction)
        rng = stream_rng(seed, BAGS)

        def bags_from(x: np.ndarray, y: np.ndarray, index: np.ndarray, n_bags: int) -> Bags:
            return make_digit_bags(
                x,
                y,
                index,
                target=data.target_digit,
                n_bags=n_bags,
                mean_size=data.mean_bag_size,
                size_std=data.bag_size_std,
                max_witnesses=data.max_witnesses,
                rng=rng,
            )

        train = bags_from(
            pools.train_x, pools.train_y, pools.train_index, data.n_train_bags
        )  # train, then test: one stream
        test = bags_from(pools.test_x, pools.test_y, pools.test_index, data.n_test_bags)
        yield 0, train, test
        return
    bags = load_classic(data.source)
    folds = stratified_folds(bags.labels, data.folds, seed)
    for fold, test_index in enumerate(folds[: data.max_folds or data.folds]):
        train = bags.subset(np.setdiff1d(np.arange(len(bags)), test_index))
        test = bags.subset(test_index)
        yield fold, *standardise(train, test)


def _make_splits(task: MILDropoutTask, seed: int) -> list[Split]:
    """Every split of the run with its perturbed test bags and flipped training labels. Harness-private: a
    method is never handed the seed, and nothing it is handed returns test bags."""
    splits = []
    for fold, train, test in _raw_splits(task, seed):
        split = Split(fold, train, test)
        noise, negatives = NoiseModel.fit(train), negative_pool(test)
        for index, p in enumerate(task.evaluation.perturbations):
            if p.kind == "label_noise":
                split.flipped[p.name] = flip_labels(train.labels, p.amount, stream_rng(seed, FLIP, fold, index))
            else:
                split.perturbed[p.name] = perturb(
                    test, p.kind, p.amount, noise=noise, negatives=negatives, rng=stream_rng(seed, PERTURB, fold, index)
                )
        splits.append(split)
    return splits
