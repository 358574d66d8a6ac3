"""scikit-learn's bundled 8x8 digits (1,797 images) as flat vectors, with a seeded stratified split.

The images ship inside scikit-learn, so nothing is downloaded. Pixels (0..16) are scaled to [0, 1]. The
split is stratified by class and fixed by a seed, so every method evaluated with the same seed sees the
same train and test images. Other families (multiple-instance bags) build on :func:`load_digits_arrays`.
"""

from __future__ import annotations

import numpy as np
from phenomena_bench.data.mnist1d import ArraySplit


def load_digits_arrays() -> tuple[np.ndarray, np.ndarray]:
    """All digits: `X` (1797, 64) float32 in [0, 1] and `y` (1797,) int64."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    x = (np.asarray(bunch.data, dtype=np.float32) / np.float32(16.0)).clip(0.0, 1.0)
    return x, np.asarray(bunch.target, dtype=np.int64)


def stratified_indices(y: np.ndarray, test_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Train and test indices with every class split in the same proportion, sorted, fixed by `seed`."""
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must lie in (0, 1), got {test_fraction}")
    rng = np.random.default_rng(seed)
    train: list[np.ndarray] = []
    test: list[np.ndarray] = []
    for label in np.unique(y):
        idx = np.flatnonzero(y == label)
        idx = idx[rng.permutation(len(idx))]
        n_test = int(round(test_fraction * len(idx)))
        if n_test == 0 or n_test == len(idx):
            raise ValueError(f"class {label} has {len(idx)} examples: too few for test_fraction {test_fraction}")
        test.append(idx[:n_test])
        train.append(idx[n_test:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(test))


def load_digits_split(test_fraction: float = 0.25, seed: int = 0) -> ArraySplit:
    """Digits split into train and test, stratified by class."""
    x, y = load_digits_arrays()
    train, test = stratified_indices(y, test_fraction, seed)
    return ArraySplit(x[train], y[train], x[test], y[test])
