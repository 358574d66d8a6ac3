"""Shared work: time spent on cached artefacts that no method should be charged for.

A run's wall clock is its method's cost. But the first run to need a shared, cached artefact (an exact Hessian
eigendecomposition, pruning's dense and random controls, a task's bags) builds it, and every later run reads it
from the cache: without a correction whichever method happens to run first pays for everyone. A family wraps
the building of such an artefact in :func:`shared_work`; the executor reads :func:`shared_seconds` around the
job, takes that time off the run's wall clock and records it apart (``shared_work_s``).

The counter is per process (each worker runs one job at a time), so it needs no lock.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["reset_shared", "shared_seconds", "shared_work"]

_seconds = 0.0
_depth = 0


@contextmanager
def shared_work(kind: str) -> Iterator[None]:
    """Count the time inside this block as shared work (nested blocks count once, at the outermost). `kind`
    names the artefact for the reader of the call site; the record keeps only the total."""
    global _depth, _seconds
    _depth += 1
    start = time.perf_counter()
    try:
        yield
    finally:
        _depth -= 1
        if _depth == 0:
            _seconds += time.perf_counter() - start


def shared_seconds() -> float:
    """Seconds of shared work done in this process since the last :func:`reset_shared`."""
    return _seconds


def reset_shared() -> None:
    """Start counting afresh (the executor calls this before each job)."""
    global _seconds
    _seconds = 0.0
