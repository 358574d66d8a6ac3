"""A content-addressed cache of NumPy arrays on disk, written atomically.

Expensive, deterministic artefacts (a trained checkpoint, an exact Hessian eigendecomposition) are stored
under the hash of everything that determines them, so every method and every later run reuses them and a
changed spec can never be served a stale result. A write goes to a temporary file in the target folder and
is renamed over the target, so concurrent workers computing the same entry never expose a torn file; a file
that cannot be read or whose recorded key differs is treated as absent and recomputed.
"""

from __future__ import annotations

import fcntl
import os
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from phenomena_bench.core.atomic import atomic_write
from phenomena_bench.core.hashing import content_key

__all__ = ["cache_path", "computed_once", "content_key", "load_arrays", "save_arrays"]

T = TypeVar("T")

_KEY_FIELD = "__cache_key__"


def cache_path(cache_dir: str | Path, kind: str, key: str) -> Path:
    return Path(cache_dir) / kind / f"{key}.npz"


def save_arrays(path: Path, key: str, arrays: dict[str, np.ndarray]) -> None:
    """Write `arrays` (plus `key`, checked on load) to `path` atomically."""
    if _KEY_FIELD in arrays:
        raise ValueError(f"{_KEY_FIELD} is reserved")
    payload: dict[str, Any] = {**arrays, _KEY_FIELD: np.array(key)}
    atomic_write(path, lambda handle: np.savez(handle, **payload))


def load_arrays(path: Path, key: str) -> dict[str, np.ndarray] | None:
    """The arrays stored at `path` under `key`, or None if absent, unreadable or stored under another key."""
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {name: data[name] for name in data.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile):
        return None
    if str(arrays.pop(_KEY_FIELD, "")) != key:
        return None
    return arrays


def computed_once(lock_path: Path, load: Callable[[], T | None], build: Callable[[], T]) -> T:
    """`load()` if the artefact is there; otherwise build it once, however many workers ask at the same time.

    The first worker to miss takes an exclusive ``flock`` on `lock_path` (an empty marker file, left in place)
    and builds; the others block on the lock, then find the artefact with their second `load()` and read it.
    `build` must save what it builds (atomically) and return it. The kernel drops the lock when its holder
    dies, however it dies, so a killed builder leaves no stale claim: the next worker builds instead.
    """
    found = load()
    if found is not None:
        return found
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        found = load()  # built by the worker that held the lock while this one waited
        return found if found is not None else build()
    finally:
        os.close(fd)  # closing the descriptor drops the lock
