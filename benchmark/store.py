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

Nothing read from data becomes a path unchecked: a run key is a SHA-256 digest (64 lower-case hex
digits) on every read, write, claim and pull, so a key from a published dataset or an edited file cannot
name a file outside the store; anything else is refused with one line. Every record carries a `digest` of
its own content (SHA-256 of its canonical JSON without the digest), set by :meth:`Store.put`; a record
whose content does not match it (edited by hand) or that has none (written before records carried one) is
reported and not used. :meth:`Store.put` is also where secrets and local paths are redacted from a run's
error text (:mod:`phenomena_bench.core.redact`), since every record passes through it.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from phenomena_bench.core.atomic import atomic_write_text
from phenomena_bench.core.errors import StoreError
from phenomena_bench.core.family import Scalar, Status
from phenomena_bench.core.hashing import content_key
from phenomena_bench.core.redact import redact
from phenomena_bench.core.text import printable
from phenomena_bench.core.variants import VariantOrigin

DEFAULT_STORE = "results"
STORE_ENV = "PHENOMENA_BENCH_STORE"
#: A run key (and a record digest): a SHA-256 digest in lower-case hex.
KEY_PATTERN = re.compile(r"[0-9a-f]{64}")


def check_key(key: object) -> str:
    """`key` if it is a run key, else a :class:`StoreError` (one line): keys become file names."""
    if isinstance(key, str) and KEY_PATTERN.fullmatch(key):
        return key
    shown = printable(repr(key))
    shown = shown if len(shown) <= 80 else shown[:77] + "..."
    raise StoreError(f"{shown} is not a run key (64 lower-case hex digits); refused")


def default_store_path() -> Path:
    return Path(os.environ.get(STORE_ENV) or DEFAULT_STORE)


class TuningBudget(BaseModel):
    """How a tuned run's hyperparameters were chosen (``phenomena-bench tune``): the budget shown beside its
    score. Part of the run key, so a re-tuned method (another K, other development seeds) is scored anew."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    trials: int = Field(ge=1, description="Trials run (K); every method gets the same K.")
    dev_seeds: list[int] = Field(description="The development seeds each trial ran on (never scoring seeds).")
    flops: float | None = Field(description="FLOPs of every tuning run together (None: the family counts none).")
    wall_time_s: float = Field(ge=0, description="Wall time of every tuning run together (not in the run key).")
    chosen_trial: int = Field(ge=0, description="The trial whose hyperparameters were chosen.")
    rule: str = Field(description="The choice rule, fixed before any trial ran.")
    sampler: str = Field(description="The search algorithm and its seed.")


class MethodIdentity(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    family: str
    version: str
    hyperparameters: dict[str, Any]
    label: str = Field(description="Name shown in tables: name plus any non-default hyperparameter.")
    ref: str = Field(description="How it was resolved: an entry-point name or `module:attr`.")
    source: str | None = Field(default=None, description="Source file of the method, for the leaderboard link.")
    distribution: str | None = Field(
        default=None, description="The installed distribution that provides the method (None: not installed)."
    )
    distribution_version: str | None = None
    code: str | None = Field(
        default=None, description="Digest of the method's code (docstrings left out), part of the run key."
    )
    author: str | None = Field(
        default=None, description="The distribution's declared author(s), for attribution on the leaderboard."
    )
    tuning: TuningBudget | None = Field(
        default=None,
        exclude_if=lambda value: value is None,  # absent, not null, when untuned: older records keep their digest
        description="Set when the hyperparameters are a stored tuning choice (`phenomena-bench tune`).",
    )


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
    shared_work_s: float = Field(
        default=0.0,
        ge=0.0,
        description="Seconds this run's worker spent building shared cached artefacts (ground truths, controls, "
        "datasets) that any later run reads from the cache; taken off `wall_time_s` and charged to no method.",
    )
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
    variant: VariantOrigin | None = Field(
        default=None,
        exclude_if=lambda value: value is None,  # absent, not null, on public runs: older records keep their digest
        description="Set on a held-out variant's run (from its spec's `variant_of`): the public task, the salt "
        "it was drawn with, its index in the draw and the data it changed.",
    )
    digest: str | None = Field(
        default=None,
        description="SHA-256 of the record's canonical JSON without this field, set when the record is "
        "stored: a record whose content does not match it is not trusted.",
    )

    @model_validator(mode="after")
    def _variant_from_task(self) -> RunRecord:
        """A variant's origin travels in its task spec (``variant_of``); the record repeats it at the top
        level, so tables and ``show --runs`` need not dig into the spec."""
        origin = self.task.get("variant_of")
        if self.variant is None and isinstance(origin, dict):
            self.variant = VariantOrigin.model_validate(origin)
        return self

    def __eq__(self, other: object) -> bool:
        """Records are equal when their content is: the digest is a seal over the content, not part of it
        (a record read back from the store equals the one that was put, before it was sealed)."""
        if not isinstance(other, RunRecord):
            return NotImplemented
        return self.model_dump(exclude={"digest"}) == other.model_dump(exclude={"digest"})

    __hash__ = None  # type: ignore[assignment]  # mutable, like any pydantic model

    def content_digest(self) -> str:
        """The digest this record's content has (what `digest` must equal)."""
        return content_key(json.loads(self.model_dump_json(exclude={"digest"})))

    def sealed(self) -> RunRecord:
        """This record with `digest` set to its content's digest."""
        return self.model_copy(update={"digest": self.content_digest()})

    def verify(self, where: str) -> None:
        """Raise :class:`StoreError` unless the key is a run key and the digest matches the content."""
        check_key(self.key)
        if self.digest is None:
            raise StoreError(
                f"{where}: record {self.key} has no digest (written before records carried one, or edited); "
                "not trusted (fix: run it again)"
            )
        if self.digest != self.content_digest():
            raise StoreError(f"{where}: record {self.key} does not match its digest (edited?); not trusted")

    def redacted(self, extra_paths: list[tuple[str | Path, str]] | None = None) -> RunRecord:
        """This record with secrets and local paths removed from its error text (digest unchanged)."""
        if not self.error:
            return self
        return self.model_copy(update={"error": redact(self.error, extra_paths or [])})


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
        check_key(key)
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
            pid = (self.claims_dir / f"{check_key(key)}.lock").read_text(encoding="utf-8").strip()
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
        """Where the record of `key` lives; a `key` that is not a run key is refused (it names a file)."""
        key = check_key(key)
        return self.runs_dir / key[:2] / f"{key}.json"

    def has(self, key: str) -> bool:
        path = self.path_for(key)
        return path.is_file() or path.is_dir()  # a folder in the way is reported when read, not hidden

    def redaction_paths(self) -> list[tuple[str | Path, str]]:
        return [(self.root.absolute(), "<store>")]

    def put(self, record: RunRecord) -> Path:
        """Write `record` atomically (temp file in the same folder, fsync, rename), its error text redacted
        and its digest set."""
        target = self.path_for(record.key)
        if target.is_dir():
            raise StoreError(f"{target}: a folder is where this record's file belongs; remove it")
        sealed = record.redacted(self.redaction_paths()).sealed()
        try:
            return atomic_write_text(target, sealed.model_dump_json(indent=1))
        except OSError as err:
            raise StoreError(f"{target}: cannot write the record ({err.strerror or err})") from None

    def get(self, key: str) -> RunRecord:
        path = self.path_for(key)
        if not (path.is_file() or path.is_dir()):
            raise StoreError(f"{self.root}: no record with key {key}")
        return self._read(path)

    def _read(self, path: Path) -> RunRecord:
        if not path.is_file():
            raise StoreError(f"{path}: not a record file (a folder or special file); not trusted")
        if not KEY_PATTERN.fullmatch(path.stem) or path.parent.name != path.stem[:2]:
            raise StoreError(f"{path}: not a record file name (STORE/runs/<key[:2]>/<key>.json); not trusted")
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            record = RunRecord.model_validate(data)
        except (json.JSONDecodeError, UnicodeDecodeError, ValidationError, RecursionError, OSError) as err:
            reason = str(err).splitlines()[0] if str(err) else type(err).__name__
            raise StoreError(f"{path}: corrupt record, not trusted ({reason})") from None
        if record.key != path.stem:
            raise StoreError(f"{path}: record key {printable(record.key)[:80]} does not match its file name")
        record.verify(str(path))
        return record

    def keys(self) -> set[str]:
        """Keys of well-formed-looking record files (contents not parsed: cheap, for planning)."""
        return {p.stem for p in self._record_paths() if p.is_file() and KEY_PATTERN.fullmatch(p.stem)}

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
        """Every `runs/*/*.json` entry (folders and misnamed files too: :meth:`_read` reports them)."""
        if self.runs_dir.is_dir():
            yield from sorted(p for p in self.runs_dir.glob("*/*.json") if not p.name.startswith("."))
