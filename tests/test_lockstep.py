"""The lockstep driver and the build-once cache: what every family's batching and shared work relies on."""

from __future__ import annotations

import random
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from phenomena_bench.core.cache import computed_once
from phenomena_bench.core.lockstep import Lockstep


def _lane_body(lockstep: Lockstep[int, int], index: int, asks: int) -> list[tuple[int, float, float, float]]:
    """Seeds the global generators, then interleaves requests with global draws (as a method does)."""
    torch.manual_seed(index)
    np.random.seed(index)
    random.seed(index)
    out = []
    for k in range(asks):
        answer = lockstep.ask(100 * index + k)
        out.append((answer, torch.rand(1).item(), float(np.random.rand()), random.random()))
    return out


def test_lanes_get_their_answers_in_batches_and_their_own_random_streams() -> None:
    served: list[list[int]] = []

    def serve(requests: list[int]) -> list[int]:
        served.append(list(requests))
        return [-r for r in requests]

    lockstep: Lockstep[int, int] = Lockstep(serve)
    asks = [3, 1, 2]
    results = lockstep.run([lambda i=i, n=n: _lane_body(lockstep, i, n) for i, n in enumerate(asks)])
    alone: Lockstep[int, int] = Lockstep(serve)
    for i, (result, n) in enumerate(zip(results, asks)):
        assert result.error is None
        assert result.value == _lane_body(alone, i, n)  # the same answers and draws as the lane run alone
    # every live lane asks once per round: rounds of 3, 2 and 1 requests, in lane order
    assert served[:3] == [[0, 100, 200], [1, 201], [2]]
    assert lockstep.batches == [3, 2, 1]


def test_a_failing_lane_and_a_failing_serve_stay_with_their_lanes() -> None:
    def serve(requests: list[int]) -> list[int]:
        if any(r < 0 for r in requests):
            raise RuntimeError("cannot serve a negative request")
        return requests

    lockstep: Lockstep[int, int] = Lockstep(serve, group=lambda r: r < 0)

    def raises() -> int:
        lockstep.ask(1)
        raise ValueError("the lane's own bug")

    def asks_badly() -> int:
        return lockstep.ask(-1)

    def fine() -> int:
        return lockstep.ask(2) + lockstep.ask(3)

    results = lockstep.run([raises, asks_badly, fine])
    assert isinstance(results[0].error, ValueError)
    assert isinstance(results[1].error, RuntimeError)  # raised from its ask(): serve failed for its group only
    assert results[2].error is None and results[2].value == 5


def test_ask_outside_a_run_is_served_at_once() -> None:
    lockstep: Lockstep[int, int] = Lockstep(lambda requests: [r + 1 for r in requests])
    assert lockstep.ask(41) == 42
    assert lockstep.batches == [1]


def _build_slowly(target: str, log: str) -> None:
    path, built = Path(target), Path(log)

    def load() -> str | None:
        return path.read_text() if path.exists() else None

    def build() -> str:
        with built.open("a") as handle:
            handle.write("built\n")
        time.sleep(0.5)  # long enough that the other worker asks while this one builds
        path.write_text("artefact")
        return "artefact"

    assert computed_once(path.with_suffix(".lock"), load, build) == "artefact"


def test_two_workers_asking_at_once_build_the_artefact_once(tmp_path: Path) -> None:
    # Threads stand for worker processes: each opens the lock file itself, and flock locks belong to the
    # open file, so two opens conflict exactly as two processes' would.
    target, log = tmp_path / "truth.txt", tmp_path / "builds.log"
    workers = [threading.Thread(target=_build_slowly, args=(str(target), str(log))) for _ in range(2)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
    assert log.read_text() == "built\n"
    assert target.read_text() == "artefact"


def test_a_builder_that_fails_leaves_no_claim(tmp_path: Path) -> None:
    lock = tmp_path / "x.lock"

    def fail() -> str:
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        computed_once(lock, lambda: None, fail)
    assert computed_once(lock, lambda: None, lambda: "built") == "built"
