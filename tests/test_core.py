"""The core helpers that everything hashes, seeds and writes through: their values are part of stored results."""

from __future__ import annotations

from pathlib import Path

import pytest

from phenomena_bench.core.atomic import atomic_write, atomic_write_text
from phenomena_bench.core.curves import downsample
from phenomena_bench.core.hashing import canonical_json, content_key
from phenomena_bench.core.seeds import derive_seed, group_seed, stream_rng, stream_seed


def test_seed_streams_are_pinned() -> None:
    """Stored runs were drawn from these values: a change here changes results under unchanged run keys."""
    assert derive_seed(3, "random", "90") == 8766971918563916312
    assert stream_seed(0, 4, 2) == 8754406134240879686
    assert stream_rng(1, 2).integers(0, 10**9) == 643260702
    assert group_seed("a", "b") == 11359827136247254256
    assert derive_seed(3, "random", "90") != derive_seed(3, "random", "95") != derive_seed(4, "random", "90")


def test_canonical_json_ignores_key_order_and_refuses_nan() -> None:
    assert canonical_json({"b": 1, "a": [1, "é"]}) == '{"a":[1,"é"],"b":1}'
    assert content_key({"b": 1, "a": 2}) == content_key({"a": 2, "b": 1})
    with pytest.raises(ValueError):
        canonical_json({"x": float("nan")})


def test_atomic_write_leaves_the_old_file_when_the_writer_fails(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "record.json"
    atomic_write_text(target, "old")

    def broken(handle: object) -> None:
        raise RuntimeError("killed mid-write")

    with pytest.raises(RuntimeError):
        atomic_write(target, broken)
    assert target.read_text() == "old"
    assert sorted(p.name for p in target.parent.iterdir()) == ["record.json"]  # no temporary file left


def test_downsample_keeps_first_and_last_and_at_most_the_limit() -> None:
    xs = list(range(1001))
    curve = downsample(xs, [x * 2 for x in xs], max_points=50)
    assert len(curve.x) == 50 and curve.x[0] == 0 and curve.x[-1] == 1000
    assert curve.y == [x * 2 for x in curve.x]
    short = downsample([1, 2], [3, 4])
    assert (short.x, short.y) == ([1, 2], [3, 4])


def test_printable_strips_escape_sequences_and_controls() -> None:
    from phenomena_bench.core.text import printable

    hostile = "adamw\x1b[2K\x1b[1A\x1b[32m ok\x1b[0m\x1b]0;pwned\x07\r\x08\x9b2J"
    assert printable(hostile) == "adamw ok2J"
    assert printable("line one\nline\ttwo") == "line one\nline\ttwo"


def test_seed_kinds_are_disjoint_and_method_stream_is_not_the_data_seed() -> None:
    from phenomena_bench.core.seeds import DEV_SEED_BASE, is_dev_seed, method_seed

    assert not is_dev_seed(0) and not is_dev_seed(DEV_SEED_BASE - 1) and is_dev_seed(DEV_SEED_BASE)
    assert method_seed(0) != 0 and method_seed(0) != method_seed(1)
    assert method_seed(0) == method_seed(0)
