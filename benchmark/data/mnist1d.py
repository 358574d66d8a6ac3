"""MNIST-1D (Greydanus & Kobak, ICML 2024), generated locally and cached.

The `mnist1d` package can download a frozen pickle (`get_dataset`), but no machine of this suite reaches the
internet, so we only ever call its generator `make_dataset` with the package's standard arguments
(`get_dataset_args()`: 5,000 examples, 80/20 split, generator seed 42). That reproduces the frozen pickle
bit for bit (compared array by array when this loader was written), so results stay comparable with the paper's.
Generation takes a few seconds; the arrays are cached as `.npz` under a name derived from every argument
that changes them, written atomically so concurrent workers never read a torn file.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from phenomena_bench.core.atomic import atomic_write
from phenomena_bench.core.hashing import sha256_hex


@dataclass(frozen=True)
class ArraySplit:
    """Train and test arrays of a classification dataset: float32 inputs, int64 labels."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray

    @property
    def num_features(self) -> int:
        return int(self.x_train.shape[1])

    @property
    def num_classes(self) -> int:
        return int(max(self.y_train.max(), self.y_test.max()) + 1)


def mnist1d_args(num_samples: int = 5000, seed: int = 42) -> dict[str, object]:
    """The package's standard generator arguments, with the two knobs a spec may change."""
    from mnist1d.data import get_dataset_args

    args = get_dataset_args(as_dict=True)
    args["num_samples"] = int(num_samples)
    args["seed"] = int(seed)
    args.pop("url", None)  # never used: we do not download
    return args


def load_mnist1d(num_samples: int = 5000, seed: int = 42, cache_dir: Path | None = None) -> ArraySplit:
    """MNIST-1D arrays for the generator arguments; cached under `cache_dir` when one is given."""
    args = mnist1d_args(num_samples, seed)
    # Not canonical_json: this text names the cache files already written, so it stays as it was.
    digest = sha256_hex(json.dumps(args, sort_keys=True))[:16]
    path = Path(cache_dir) / f"mnist1d-{digest}.npz" if cache_dir is not None else None
    if path is not None and path.exists():
        with np.load(path) as f:
            return ArraySplit(f["x_train"], f["y_train"], f["x_test"], f["y_test"])
    split = _generate(args)
    if path is not None:
        atomic_write(
            path,
            lambda f: np.savez(
                f, x_train=split.x_train, y_train=split.y_train, x_test=split.x_test, y_test=split.y_test
            ),
        )
    return split


def _generate(args: dict[str, object]) -> ArraySplit:
    from mnist1d.data import ObjectView, make_dataset

    state = np.random.get_state()  # make_dataset reseeds NumPy's global RNG: do not leak that to callers
    try:
        data = make_dataset(ObjectView(dict(args)))
    finally:
        np.random.set_state(state)
    return ArraySplit(
        x_train=np.asarray(data["x"], dtype=np.float32),
        y_train=np.asarray(data["y"], dtype=np.int64),
        x_test=np.asarray(data["x_test"], dtype=np.float32),
        y_test=np.asarray(data["y_test"], dtype=np.int64),
    )
