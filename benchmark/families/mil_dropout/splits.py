"""The train/test splits of one run and their perturbed test sets, drawn from the run seed alone.

Every random choice comes from a stream of :func:`~phenomena_bench.core.seeds.stream_rng` named by the run seed,
a stream id and the fold, so every method is scored on identical bags and perturbations, and adding a stream
never shifts another.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from phenomena_bench.core.cache import cache_path, computed_once, content_key, load_arrays, save_arrays
from phenomena_bench.core.costs import shared_work
from phenomena_bench.core.seeds import stream_rng
from phenomena_bench.data.bags import (
    Bags,
    NoiseModel,
    add_poison,
    bags_from_arrays,
    bags_to_arrays,
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


#: Bumped when the stored form of the splits changes (never when the draws do: those are keyed by the spec).
_SPLITS_FORMAT = 1


def _splits_key(task: MILDropoutTask, seed: int) -> str:
    """Everything that fixes a run's splits: the data and perturbation sections of the spec, and the seed."""
    evaluation = [p.model_dump(mode="json") for p in task.evaluation.perturbations]
    return content_key(
        {"format": _SPLITS_FORMAT, "data": task.data.model_dump(mode="json"), "perturbations": evaluation, "seed": seed}
    )


def _split_arrays(splits: list[Split]) -> dict[str, np.ndarray]:
    arrays: dict[str, np.ndarray] = {"folds": np.array([s.fold for s in splits], dtype=np.int64)}
    for i, split in enumerate(splits):
        arrays.update(bags_to_arrays(split.train, f"{i}/train"))
        arrays.update(bags_to_arrays(split.test, f"{i}/test"))
        for name, bags in split.perturbed.items():
            arrays.update(bags_to_arrays(bags, f"{i}/perturbed/{name}"))
        for name, bags in split.poisoned_train.items():
            arrays.update(bags_to_arrays(bags, f"{i}/poisoned_train/{name}"))
        for name, draws in split.flipped.items():
            arrays[f"{i}/flipped/{name}"] = np.stack(draws)
    return arrays


def _splits_from_arrays(task: MILDropoutTask, arrays: dict[str, np.ndarray]) -> list[Split]:
    splits = []
    for i, fold in enumerate(arrays["folds"]):
        split = Split(int(fold), bags_from_arrays(arrays, f"{i}/train"), bags_from_arrays(arrays, f"{i}/test"))
        for p in task.evaluation.perturbations:
            if p.kind == "label_noise":
                split.flipped[p.name] = list(arrays[f"{i}/flipped/{p.name}"])
            else:
                split.perturbed[p.name] = bags_from_arrays(arrays, f"{i}/perturbed/{p.name}")
            if p.kind == "poison":
                split.poisoned_train[p.name] = bags_from_arrays(arrays, f"{i}/poisoned_train/{p.name}")
        splits.append(split)
    return splits


def cached_splits(task: MILDropoutTask, seed: int, cache_dir: Path) -> list[Split]:
    """The run's splits, built once per (task data, perturbations, seed) and read from `cache_dir` after:
    every method, every tier sharing the data, and every worker reads the same bags (built under a lock, so
    two workers never build them twice). Building is shared work: no method is charged for it."""
    key = _splits_key(task, seed)
    path = cache_path(cache_dir, "mil-bags", key)

    def load() -> list[Split] | None:
        arrays = load_arrays(path, key)
        return None if arrays is None else _splits_from_arrays(task, arrays)

    def build() -> list[Split]:
        splits = _make_splits(task, seed)
        save_arrays(path, key, _split_arrays(splits))
        return splits

    with shared_work("mil-bags"):
        return computed_once(path.with_suffix(".lock"), load, build)
