"""Atomic file writes: a reader sees the old file or the new one, never half of either.

Every file the harness writes (run records, cached arrays, datasets, checkpoints) goes through
:func:`atomic_write`: the content goes to a temporary file in the same folder, is flushed to disk, and is
renamed over the target in one step. A run killed mid-write leaves at most a stray temporary file.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any


def atomic_write(path: Path, write: Callable[[IO[Any]], object], binary: bool = True) -> Path:
    """Create or replace `path` with what `write(file)` writes, atomically; returns `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        handle: IO[Any]
        with os.fdopen(fd, "wb") if binary else os.fdopen(fd, "w", encoding="utf-8") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_write_text(path: Path, text: str) -> Path:
    return atomic_write(path, lambda handle: handle.write(text), binary=False)
