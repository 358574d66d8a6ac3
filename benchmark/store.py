"""The results store: one JSON record per run, under the run's content hash.

Layout: ``STORE/runs/<key[:2]>/<key>.json``. One file per record means two runners writing to the same
store never contend for a shared file, and a crash can lose at most the run in flight. Every write goes to
a temporary file in the same folder, is flushed to disk, then renamed over the target (atomic on POSIX), so
a reader sees either the whole old record or the whole new one. A file that does not parse or validate
(torn by a dying disk, edited by hand) is reported as corrupt and never read as a result.

Two runners on one store also must not *do* the same run twice. Before a run starts, its runner takes an
exclusive ``flock`` on ``STORE/claims/<key>.lock`` and holds it until the record is written. The kernel drops
the lock when the holder dies, however it dies (SIGKILL included), so there are no stale claims to detect
and no PID reuse to fool the check; a second runner skips a claimed run and waits for its record (or takes it
over if the holder died). The lock files are empty markers left in place (unlinking a lock file while
another process may be opening it is the classic flock race).
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from phenomena_bench.core.atomic import atomic_write_text
from phenomena_bench.core.errors import StoreError
from phenomena_bench.core.family import Scalar, Status

DEFAULT_STORE = "results"
STORE_ENV = "PHENOMENA_BENCH_STORE"


def default_store_path() -> Path:
    return Path(os.environ.get(STORE_ENV) or DEFAULT_STORE)


class MethodIdentity(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    family: str
    version: str
    hyperparameters: dict[str, Any]
    label: str = Field(description="Name shown in tables: name plus any non-default hyperparameter.")
    ref: str = Field(description="How it was resolved: an entry-point name or `module:attr`.")
    source: str | None = Field(default=None, description="Source file of the method, for the leaderboard link.")


class RunRecord(BaseModel):
    """Everything known about one finished run (whatever its status)."""

    model_config = ConfigDict(extra="forbid")

    key: str
    task_id: str
    task_version: int
    family: str
    tier: str
    seed: int
    method: MethodIdentity
    status: Status
    metrics: dict[str, Scalar] = Field(default_factory=dict)
    curves: dict[str, dict[str, Any]] = Field(default_factory=dict)
    error: str | None = None
    wall_time_s: float
    device: str
    torch_version: str
    benchmark_version: str
    started_at: str
    finished_at: str
    task: dict[str, Any] = Field(description="The resolved task spec the run used (tier applied).")
    batched_with: int = Field(
        default=1,
        ge=1,
        description="Seeds trained together in one program with this run (1: alone). The result does not "
        "depend on it; `wall_time_s` is then the program's wall time divided by it.",
    )


class CorruptRecord(BaseModel):
    path: str
    reason: str


class RunClaim:
    """An exclusive claim on one run key, held by an open, locked file descriptor until `release`."""

    def __init__(self, key: str, fd: int) -> None:
        self.key = key
        self._fd: int | None = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor drops the flock
            self._fd = None


class Store:
    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.runs_dir = self.root / "runs"
        self.claims_dir = self.root / "claims"
        for folder in (self.root, self.runs_dir):
            if folder.exists() and not folder.is_dir():
                raise StoreError(f"{folder}: the results store must be a folder, but this is a file")

    def try_claim(self, key: str) -> RunClaim | None:
        """Claim `key` for this process, or None when another live process holds it."""
        self.claims_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.claims_dir / f"{key}.lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)  # for messages only; the lock is the claim
        return RunClaim(key, fd)

    def claim_holder(self, key: str) -> str:
        """Who holds the claim on `key`, as far as its lock file says (for messages)."""
        try:
            pid = (self.claims_dir / f"{key}.lock").read_text(encoding="utf-8").strip()
        except OSError:
            return "another runner"
        return f"runner pid {pid}" if pid else "another runner"

    def stamp(self, key: str) -> tuple[int, int] | None:
        """A cheap version of the record under `key` (None if absent), to notice another runner writing it."""
        try:
            info = self.path_for(key).stat()
        except FileNotFoundError:
            return None
        return info.st_ino, info.st_mtime_ns  # a replace makes a new inode

    def path_for(self, key: str) -> Path:
        return self.runs_dir / key[:2] / f"{key}.json"

    def has(self, key: str) -> bool:
        return self.path_for(key).is_file()

    def put(self, record: RunRecord) -> Path:
        """Write `record` atomically: temp file in the same folder, fsync, rename."""
        target = self.path_for(record.key)
        return atomic_write_text(target, record.model_dump_json(indent=1))

    def get(self, key: str) -> RunRecord:
        path = self.path_for(key)
        if not path.is_file():
            raise StoreError(f"{self.root}: no record with key {key}")
        return self._read(path)

    def _read(self, path: Path) -> RunRecord:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            record = RunRecord.model_validate(data)
        except (json.JSONDecodeError, UnicodeDecodeError, ValidationError) as err:
            reason = str(err).splitlines()[0]
            raise StoreError(f"{path}: corrupt record, not trusted ({reason})") from None
        if record.key != path.stem:
            raise StoreError(f"{path}: record key {record.key} does not match its file name")
        return record

    def keys(self) -> set[str]:
        """Keys of well-formed-looking record files (contents not parsed: cheap, for planning)."""
        if not self.runs_dir.is_dir():
            return set()
        return {p.stem for p in self.runs_dir.glob("*/*.json")}

    def scan(self) -> tuple[list[RunRecord], list[CorruptRecord]]:
        """Every readable record, and every file that could not be trusted (with the reason)."""
        records: list[RunRecord] = []
        corrupt: list[CorruptRecord] = []
        for path in self._record_paths():
            try:
                records.append(self._read(path))
            except StoreError as err:
                corrupt.append(CorruptRecord(path=str(path), reason=str(err)))
        return records, corrupt

    def records(self) -> list[RunRecord]:
        return self.scan()[0]

    def _record_paths(self) -> Iterator[Path]:
        if self.runs_dir.is_dir():
            yield from sorted(self.runs_dir.glob("*/*.json"))
