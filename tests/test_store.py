"""The results store: atomic one-file-per-run records, and corrupt files reported, never trusted."""

from __future__ import annotations

from pathlib import Path

import pytest

from phenomena_bench.core.errors import StoreError
from phenomena_bench.store import Store
from tests.helpers import grokking_record as _record


def test_put_then_get_round_trips_and_leaves_no_temp_files(tmp_path: Path) -> None:
    store = Store(tmp_path)
    record = _record()
    path = store.put(record)
    assert store.has(record.key) and store.get(record.key) == record
    assert [p.name for p in path.parent.iterdir()] == [path.name]


def test_overwrite_replaces_the_whole_record(tmp_path: Path) -> None:
    store = Store(tmp_path)
    store.put(_record(status="failed"))
    store.put(_record(status="ok"))
    assert store.get(_record().key).status == "ok"
    assert len(store.records()) == 1


def test_torn_record_is_reported_not_read(tmp_path: Path) -> None:
    store = Store(tmp_path)
    good, torn = _record(), _record(key="cd" + "1" * 62)
    store.put(good)
    path = store.put(torn)
    path.write_text(path.read_text()[:50])  # a half-written file
    records, corrupt = store.scan()
    assert [r.key for r in records] == [good.key]
    assert len(corrupt) == 1 and "corrupt record" in corrupt[0].reason
    with pytest.raises(StoreError, match="corrupt"):
        store.get(torn.key)


def test_record_under_the_wrong_name_is_not_trusted(tmp_path: Path) -> None:
    store = Store(tmp_path)
    path = store.put(_record())
    moved = path.with_name("ab" + "f" * 62 + ".json")
    path.rename(moved)
    _, corrupt = store.scan()
    assert corrupt and "does not match" in corrupt[0].reason
