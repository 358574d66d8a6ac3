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
    add_poison,
    digit_pools,
    flip_labels,
    load_classic,
    make_digit_bags,
    negative_pool,
    perturb,
    poison_instance,
    standardise,
    stratified_folds,
)
from phenomena_bench.families.mil_dropout.spec import DigitsBagsData, MILDropoutTask

# Stream identifiers for derived RNGs (with the run seed, and the fold where there are folds).
BAGS, PERTURB, FLIP, INIT, ORDER, POISON = 1, 2, 3, 4, 5, 6


@dataclass
class Split:
    """One train/test split with its perturbed test sets (fixed by the seed, shared by every method).

    ``perturbed[name]``: the test bags of a test-time perturbation, or of the poison test (poison in every
    positive bag). ``flipped[name]``: one training-label vector per flip draw of a label-noise condition.
    ``poisoned_train[name]``: the training bags of the poison test (poison in every negative bag)."""

    fold: int
    train: Bags
    test: Bags
    perturbed: dict[str, Bags] = field(default_factory=dict)
    flipped: dict[str, list[np.ndarray]] = field(default_factory=dict)
    poisoned_train: dict[str, Bags] = field(default_factory=dict)


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
                min_witnesses=data.min_witnesses,
                rng=rng,
            )

        train = bags_from(
            pools.train_x, pools.train_y, pools.train_index, data.n_train_bags
        )  # train, then test: one stream
        test = bags_from(pools.test_x, pools.test_y, pools.test_index, data.n_test_bags)
        # Before the perturbations, so noise, poison and appended negatives live in the same units.
        yield 0, *(standardise(train, test) if data.standardise else (train, test))
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
                # draw 0 keeps the stream of the single-draw protocol; later draws extend it
                split.flipped[p.name] = [
                    flip_labels(train.labels, p.amount, stream_rng(seed, FLIP, fold, index, *([draw] if draw else [])))
                    for draw in range(p.draws)
                ]
            elif p.kind == "poison":
                rng = stream_rng(seed, POISON, fold, index)  # only the within-bag positions are random
                poison = poison_instance(noise)
                split.poisoned_train[p.name] = add_poison(train, poison, 0, rng)
                split.perturbed[p.name] = add_poison(test, poison, 1, rng)
            else:
                split.perturbed[p.name] = perturb(
                    test, p.kind, p.amount, noise=noise, negatives=negatives, rng=stream_rng(seed, PERTURB, fold, index)
                )
        splits.append(split)
    return splits
