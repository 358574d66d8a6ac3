"""scikit-learn's bundled 8x8 digits (1,797 images): the one loader every family that uses them goes through.

The images ship inside scikit-learn, so nothing is downloaded. :func:`digits_raw` reads them once per process
(pixels 0..16 as float64, labels int64, both read-only so no caller can change what another one sees); the
hessian family standardises those itself. :func:`digits_scaled` is the [0, 1]-scaled float32 view that the
multiple-instance bags and the pruning family use. :func:`_load_digits_split` adds a seeded split stratified by
class, so every method evaluated with the same seed sees the same train and test images.
"""

from __future__ import annotations

import functools

import numpy as np

from phenomena_bench.data.mnist1d import ArraySplit

DIGITS_SIZE = 1797
DIGITS_FEATURES = 64
DIGITS_CLASSES = 10


def _read_only(array: np.ndarray) -> np.ndarray:
    array.flags.writeable = False
    return array


@functools.cache
def digits_raw() -> tuple[np.ndarray, np.ndarray]:
    """All digits as scikit-learn stores them: `X` (1797, 64) float64 in 0..16 and `y` (1797,) int64, read-only."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    return _read_only(np.asarray(bunch.data, dtype=np.float64)), _read_only(np.asarray(bunch.target, dtype=np.int64))


@functools.cache
def digits_scaled() -> tuple[np.ndarray, np.ndarray]:
    """All digits with pixels scaled to [0, 1]: `X` (1797, 64) float32 and `y` (1797,) int64, read-only."""
    x, y = digits_raw()
    return _read_only((x.astype(np.float32) / np.float32(16.0)).clip(0.0, 1.0)), y


def load_digits_arrays() -> tuple[np.ndarray, np.ndarray]:
    """All digits: `X` (1797, 64) float32 in [0, 1] and `y` (1797,) int64, as writable copies."""
    x, y = digits_scaled()
    return x.copy(), y.copy()


def _stratified_indices(y: np.ndarray, test_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
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


def _load_digits_split(test_fraction: float = 0.25, seed: int = 0) -> ArraySplit:
    """Digits split into train and test, stratified by class. Harness-private: the seed fixes the test split."""
    x, y = digits_scaled()
    train, test = _stratified_indices(y, test_fraction, seed)
    return ArraySplit(x[train], y[train], x[test], y[test])
