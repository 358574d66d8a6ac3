"""Publishing results to the Hugging Face Hub as a dataset, and pulling published results back.

`publish` first builds the dataset repository folder *exactly* as it will be pushed, then checks that
``datasets.load_dataset`` reads every config back and that every run record round-trips, and only then
commits the folder's files, byte for byte, in one commit. Layout::

    README.md                   dataset card: YAML `configs` naming the three configs, benchmark version, tables
    data/runs.parquet           one row per run (the source of truth; nested fields as canonical JSON text)
    data/leaderboard.parquet    one row per (task, tier, method): the aggregated statistics
    data/tasks.parquet          one row per task: its spec as YAML and JSON

Nested fields (metrics, curves, hyperparameters, the task spec) are stored as JSON text rather than parquet
structs: every family has its own metric names, and a single schema across families would be a union that
grows with each family (and `datasets` refuses files whose schemas differ). JSON text keeps one fixed schema
and round-trips exactly. The `runs` columns are derived from the :class:`~phenomena_bench.store.RunRecord`
model (:func:`model_columns`), so a new record field becomes a column without a hand-kept list to update.

Publishing *merges*, it never replaces: :func:`publish_merged` reads the dataset's head, downloads its
`runs` table at that commit, verifies every published row (a run key of 64 hex digits, a digest matching the
row's content), adds the local records whose keys it lacks, reports every key whose local record differs
from the published one (the published one is kept unless the caller prefers the local one), and commits the
merged folder with ``parent_commit`` = that head, so a concurrent publish makes this one fail instead of
losing rows. ``--create-pr`` opens a pull request with the merged folder (community submissions): merging
it adds the contributor's rows to everyone else's. Every published string goes through
:class:`~phenomena_bench.core.redact.Redactor` first (secrets, local paths), and every record is sealed with
its digest. The token comes from ``HF_TOKEN`` or the user's ``hf auth login``; it is handed to the client
and never printed or logged.
The `huggingface_hub`, `datasets` and `pyarrow` imports are deferred: they are the optional ``publish``
extra, and the rest of the CLI must work without them.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
import types
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin

import yaml
from pydantic import BaseModel

from phenomena_bench import __version__
from phenomena_bench.analysis.rows import Row, aggregate, scoring_records
from phenomena_bench.analysis.tables import build_tables
from phenomena_bench.core.errors import BenchmarkError, StoreError
from phenomena_bench.core.family import STATUSES
from phenomena_bench.core.hashing import canonical_json
from phenomena_bench.core.redact import Redactor
from phenomena_bench.core.spec import cap_problems
from phenomena_bench.core.text import printable
from phenomena_bench.report import markdown
from phenomena_bench.report.site import ASSETS_DIR, load_task_infos
from phenomena_bench.store import RunRecord, Store, check_key

CONFIGS = ("runs", "leaderboard", "tasks")
SPLIT = "train"
REPO_ID_RE = re.compile(r"^[A-Za-z0-9][\w.\-]{0,95}/[A-Za-z0-9][\w.\-]{0,95}$")
CARD_TEMPLATE = ASSETS_DIR / "templates" / "dataset_card.md"
_ARROW = {str: "string", int: "int64", float: "float64", bool: "bool_"}


# ------------------------------------------------------------------------------------------- schemas


@dataclass(frozen=True)
class ParquetColumn:
    """A parquet column and where its value lives in a model: `path` is the field (and sub-field of a nested
    model, e.g. ``("method", "label")``); `arrow` names the pyarrow type; JSON text when `json` is set."""

    name: str
    path: tuple[str, ...]
    arrow: str
    json: bool


def _scalar_arrow(annotation: Any) -> str | None:
    """The pyarrow type of a scalar field (optional allowed, a Literal of strings is a string), else None."""
    args = get_args(annotation)
    if get_origin(annotation) in (Union, types.UnionType):
        rest = [a for a in args if a is not type(None)]
        return _scalar_arrow(rest[0]) if len(rest) == 1 else None
    if get_origin(annotation) is Literal:
        return "string" if all(isinstance(a, str) for a in args) else None
    return _ARROW.get(annotation)


def model_columns(model: type[BaseModel], prefix: tuple[str, ...] = ()) -> list[ParquetColumn]:
    """One column per field of `model`, in field order: scalars as such, a nested model flattened into
    ``<field>_<sub-field>`` columns, anything else (dicts, lists, unions of those) as canonical JSON text."""
    out: list[ParquetColumn] = []
    for name, info in model.model_fields.items():
        path = (*prefix, name)
        ann = info.annotation
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            out += model_columns(ann, path)
            continue
        arrow = _scalar_arrow(ann)
        out.append(ParquetColumn("_".join(path), path, arrow or "string", arrow is None))
    return out


#: The `runs` table: every field of a run record (the source of truth), derived from the model.
RUN_COLUMNS: tuple[ParquetColumn, ...] = tuple(model_columns(RunRecord))
#: The `leaderboard` table: the scalar fields of a row (from the model), its status counts and verdict, and
#: `stats`, the whole row as JSON text.
BOARD_COLUMNS: tuple[ParquetColumn, ...] = (
    *(c for c in model_columns(Row) if not c.json),
    *(ParquetColumn(status, ("status_counts", status), "int64", False) for status in STATUSES),
    ParquetColumn("vs_reference", ("vs_reference", "verdict"), "string", False),
    ParquetColumn("stats", (), "string", True),
)
TASK_SCALARS: tuple[tuple[str, str], ...] = (
    ("task_id", "string"),
    ("family", "string"),
    ("version", "int64"),
    ("title", "string"),
    ("description", "string"),
    ("spec_yaml", "string"),
    ("spec_json", "string"),
)


def _require(module: str) -> Any:
    try:
        return __import__(module, fromlist=["_"])
    except ImportError:
        raise BenchmarkError(
            f"publishing needs the {module!r} package: pip install 'phenomena-bench[publish]'"
        ) from None


# ------------------------------------------------------------------------------------------- rows


def run_row(record: RunRecord) -> dict[str, Any]:
    """One `runs` row: scalars as columns, nested fields as canonical JSON text."""
    return _columns_of(record.model_dump(mode="json"), RUN_COLUMNS)


def _columns_of(data: dict[str, Any], columns: Sequence[ParquetColumn]) -> dict[str, Any]:
    """The column values of one dumped model (a missing or null parent gives a null)."""
    row: dict[str, Any] = {}
    for col in columns:
        value: Any = data
        for part in col.path:
            value = value.get(part) if isinstance(value, dict) else None
        row[col.name] = canonical_json(value) if col.json else value
    return row


def _redact_strings(value: Any, redactor: Redactor) -> Any:
    if isinstance(value, str):
        return redactor(value)
    if isinstance(value, dict):
        return {k: _redact_strings(v, redactor) for k, v in value.items()}
    if isinstance(value, list):
        return [_redact_strings(v, redactor) for v in value]
    return value


def public_record(record: RunRecord, redactor: Redactor) -> RunRecord:
    """The record as published: every string redacted (errors, source paths, labels...), sealed again."""
    data = _redact_strings(record.model_dump(mode="json", exclude={"digest"}), redactor)
    data["key"] = record.key
    return RunRecord.model_validate(data).sealed()


def record_from_row(row: dict[str, Any]) -> RunRecord:
    """The inverse of :func:`run_row` (validated, so a foreign or edited file cannot slip in). A column the
    file lacks (written before the field existed) leaves the field at its default."""
    data: dict[str, Any] = {}
    for col in RUN_COLUMNS:
        if col.name not in row:
            continue
        value = row[col.name]
        target = data
        for part in col.path[:-1]:
            target = target.setdefault(part, {})
        target[col.path[-1]] = json.loads(value) if col.json else value
    return RunRecord.model_validate(data)


def board_row(row: Row) -> dict[str, Any]:
    """One `leaderboard` row: the scalars as columns, the whole typed row as JSON text in `stats`."""
    return _columns_of(row.model_dump(mode="json"), BOARD_COLUMNS)


def task_rows(records: Sequence[RunRecord], tasks_dir: Path | Sequence[Path] | None) -> list[dict[str, Any]]:
    infos = load_task_infos(tasks_dir, records)
    latest: dict[str, RunRecord] = {}
    for r in sorted(records, key=lambda r: (r.finished_at, r.key)):
        latest[r.task_id] = r
    rows = []
    for task_id, info in sorted(infos.items()):
        spec = yaml.safe_load(info.spec_yaml) if info.spec_yaml else {}
        version = spec.get("version") if isinstance(spec, dict) else None
        if not isinstance(version, int):
            version = latest[task_id].task_version if task_id in latest else None
        rows.append(
            {
                "task_id": task_id,
                "family": info.family,
                "version": version,
                "title": info.title,
                "description": info.description,
                "spec_yaml": info.spec_yaml,
                "spec_json": canonical_json(spec if isinstance(spec, dict) else {}),
            }
        )
    return rows


def _write_parquet(rows: list[dict[str, Any]], columns: Sequence[tuple[str, str]], path: Path) -> None:
    """A parquet file with a fixed schema (no pandas metadata, no timestamps: the bytes depend only on rows)."""
    pa = _require("pyarrow")
    pq = _require("pyarrow.parquet")
    schema = pa.schema([pa.field(name, getattr(pa, kind)()) for name, kind in columns])
    table = pa.table({name: [r.get(name) for r in rows] for name, _ in columns}, schema=schema)
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path, compression="zstd", use_dictionary=True, write_statistics=True)


# ------------------------------------------------------------------------------------------- the folder


@dataclass(frozen=True)
class DatasetFolder:
    path: Path
    files: list[str]
    counts: dict[str, int]
    #: The records as written (redacted and sealed).
    records: list[RunRecord] = field(default_factory=list)


def dataset_card(repo_id: str, counts: dict[str, int], rows: list[Row], records: Sequence[RunRecord]) -> str:
    """README.md as a :class:`huggingface_hub.DatasetCard`: metadata (the `configs` that `load_dataset` and the
    Hub viewer use) in :class:`~huggingface_hub.DatasetCardData`, prose from ``templates/dataset_card.md``."""
    hub = _require("huggingface_hub")
    data = hub.DatasetCardData(
        pretty_name="phenomena-bench results",
        license="mit",
        tags=["benchmark", "leaderboard", "deep-learning-phenomena"],
        configs=[
            {
                "config_name": name,
                "data_files": [{"split": SPLIT, "path": f"data/{name}.parquet"}],
                **({"default": True} if name == "runs" else {}),
            }
            for name in CONFIGS
        ],
    )
    card = hub.DatasetCard.from_template(
        data,
        template_path=str(CARD_TEMPLATE),
        repo_id=repo_id,
        split=SPLIT,
        counts=counts,
        version=__version__,
        run_versions=", ".join(sorted({r.benchmark_version for r in records})) or "none",
        families=", ".join(sorted({r.family for r in records})) or "none",
        leaderboard=markdown.render_all(build_tables(rows)) if rows else "No results yet.",
    )
    return str(card)


def build_folder(
    records: Iterable[RunRecord], out: Path, *, repo_id: str, tasks_dir: Path | Sequence[Path] | None = None
) -> DatasetFolder:
    """Write the dataset repository folder into `out` (an existing folder is emptied of our files first).

    Every string is redacted (:class:`Redactor`) and every record sealed with its digest on the way out.
    Development seeds (tuning, pilots) are never published: only scoring seeds leave the machine."""
    if not REPO_ID_RE.match(repo_id):
        raise BenchmarkError(f"repo id {repo_id!r} is not of the form ORG/NAME")
    redactor = Redactor()
    recs = sorted((public_record(r, redactor) for r in scoring_records(records)), key=lambda r: r.key)
    out.mkdir(parents=True, exist_ok=True)
    for name in CONFIGS:
        (out / "data" / f"{name}.parquet").unlink(missing_ok=True)
    rows = aggregate(recs)
    tasks = [_redact_strings(row, redactor) for row in task_rows(recs, tasks_dir)]
    _write_parquet([run_row(r) for r in recs], [(c.name, c.arrow) for c in RUN_COLUMNS], out / "data" / "runs.parquet")
    _write_parquet(
        [board_row(r) for r in rows], [(c.name, c.arrow) for c in BOARD_COLUMNS], out / "data" / "leaderboard.parquet"
    )
    _write_parquet(tasks, TASK_SCALARS, out / "data" / "tasks.parquet")
    counts = {"runs": len(recs), "leaderboard": len(rows), "tasks": len(tasks)}
    (out / "README.md").write_text(dataset_card(repo_id, counts, rows, recs), encoding="utf-8")
    files = ["README.md", *(f"data/{name}.parquet" for name in CONFIGS)]
    return DatasetFolder(out, files, counts, recs)


@dataclass
class Published:
    """The rows of a published `runs` table, checked one by one."""

    #: Rows that verify: a run key, and a digest matching the content.
    records: list[RunRecord] = field(default_factory=list)
    #: Rows without a digest (published before records carried one): unverified.
    legacy: list[RunRecord] = field(default_factory=list)
    #: One line per row that is not a run record, has a bad key, or does not match its digest.
    rejected: list[str] = field(default_factory=list)


def check_rows(rows: Iterable[dict[str, Any]], where: str) -> Published:
    """Sort published rows into verified, legacy (no digest) and rejected (named, never used)."""
    out = Published()
    for index, row in enumerate(rows):
        label = f"{where} row {index}"
        try:
            record = record_from_row(row)
        except (KeyError, ValueError, TypeError, RecursionError) as err:
            reason = printable(str(err).splitlines()[0] if str(err) else type(err).__name__)[:200]
            out.rejected.append(f"{label}: not a run record ({reason})")
            continue
        try:
            if record.digest is None:
                check_key(record.key)
                out.legacy.append(record)
                continue
            record.verify(label)
        except StoreError as err:
            out.rejected.append(str(err))
            continue
        out.records.append(record)
    return out


def read_rows(folder: Path) -> list[dict[str, Any]]:
    """The raw rows of a dataset folder's `runs` table (built here or downloaded), via pyarrow."""
    pq = _require("pyarrow.parquet")
    path = folder / "data" / "runs.parquet"
    if not path.is_file():
        raise BenchmarkError(f"{folder}: no data/runs.parquet (not a phenomena-bench results dataset)")
    try:
        rows: list[dict[str, Any]] = pq.read_table(path).to_pylist()
    except (OSError, ValueError) as err:
        raise BenchmarkError(f"{path}: not a parquet table ({str(err).splitlines()[0]})") from None
    return rows


def read_runs(folder: Path) -> Published:
    """The run records of a dataset folder, each row verified (see :func:`check_rows`)."""
    return check_rows(read_rows(folder), str(folder / "data" / "runs.parquet"))


def verify_folder(folder: DatasetFolder, records: Sequence[RunRecord]) -> None:
    """Load every config with ``datasets.load_dataset(folder)`` and check each record round-trips exactly."""
    datasets = _require("datasets")
    quiet = not datasets.utils.are_progress_bars_disabled()
    if quiet:  # the check is ours, not the user's download: keep the terminal to one line
        datasets.utils.disable_progress_bars()
    try:
        _verify(datasets, folder, records)
    finally:
        if quiet:
            datasets.utils.enable_progress_bars()


def _verify(datasets: Any, folder: DatasetFolder, records: Sequence[RunRecord]) -> None:
    with tempfile.TemporaryDirectory(prefix="phenomena-bench-verify-") as cache:
        loaded = {name: datasets.load_dataset(str(folder.path), name, split=SPLIT, cache_dir=cache) for name in CONFIGS}
        for name in CONFIGS:
            if loaded[name].num_rows != folder.counts[name]:
                raise BenchmarkError(
                    f"{folder.path}: config {name} reads back {loaded[name].num_rows} rows, wrote {folder.counts[name]}"
                )
        back = {r.key: r for r in (record_from_row(row) for row in loaded["runs"])}
    redactor = Redactor()
    expected = {r.key: public_record(r, redactor) for r in records}
    if back.keys() != expected.keys():
        raise BenchmarkError(f"{folder.path}: run keys do not round-trip")
    for key, rec in expected.items():
        if back[key].model_dump(mode="json") != rec.model_dump(mode="json"):
            raise BenchmarkError(f"{folder.path}: record {key} does not round-trip")
        try:
            back[key].verify(f"{folder.path}")
        except StoreError as err:
            raise BenchmarkError(str(err)) from None


# ------------------------------------------------------------------------------------------- push / pull


def _token() -> str | None:
    """`HF_TOKEN` if set, else None: huggingface_hub then uses the user's saved login."""
    return os.environ.get("HF_TOKEN") or None


def _api(api: Any = None) -> Any:
    return api or _require("huggingface_hub").HfApi(token=_token())


def _refused(repo_id: str, err: Exception) -> BenchmarkError:
    status = getattr(getattr(err, "response", None), "status_code", "?")
    return BenchmarkError(f"the Hub refused the publish to {repo_id} (HTTP {status}): {str(err).splitlines()[0]}")


def push_folder(
    folder: DatasetFolder,
    repo_id: str,
    *,
    create_pr: bool = False,
    private: bool | None = None,
    message: str | None = None,
    api: Any = None,
    parent: str | None = None,
) -> str:
    """Create the dataset repo if needed and commit the folder's files in one commit; returns the commit (or PR)
    URL. The commit names the head it was built against (`parent`, else the head read now) as its
    `parent_commit`, so a concurrent publish makes this one fail rather than silently replacing it."""
    hub = _require("huggingface_hub")
    errors = _require("huggingface_hub.errors")
    api = _api(api)
    try:
        api.create_repo(repo_id, repo_type="dataset", private=private, exist_ok=True)
        parent = parent or api.dataset_info(repo_id).sha
        operations = [
            hub.CommitOperationAdd(path_in_repo=name, path_or_fileobj=str(folder.path / name)) for name in folder.files
        ]
        info = api.create_commit(
            repo_id,
            operations=operations,
            commit_message=message or f"phenomena-bench {__version__}: {folder.counts['runs']} runs",
            repo_type="dataset",
            create_pr=create_pr,
            parent_commit=parent,
        )
    except errors.HfHubHTTPError as err:
        raise _refused(repo_id, err) from None
    return str(getattr(info, "pr_url", None) or getattr(info, "commit_url", info))


def download_runs(repo_id: str, revision: str | None, dest: Path) -> Path:
    """Download the `runs` table (and card) of a published results dataset into `dest`; returns the folder."""
    hub = _require("huggingface_hub")
    errors = _require("huggingface_hub.errors")
    try:
        hub.snapshot_download(
            repo_id,
            repo_type="dataset",
            revision=revision,
            local_dir=str(dest),
            allow_patterns=["README.md", "data/runs.parquet"],
            token=_token(),
        )
    except errors.HfHubHTTPError as err:
        raise BenchmarkError(f"could not download {repo_id}: {str(err).splitlines()[0]}") from None
    return dest


@dataclass
class Merge:
    """What merging local records into a published dataset gives."""

    records: list[RunRecord]
    added: int = 0
    kept: int = 0
    #: One line per run key whose local record differs from the published one.
    conflicts: list[str] = field(default_factory=list)


def merge_records(published: Sequence[RunRecord], local: Sequence[RunRecord], prefer_local: bool = False) -> Merge:
    """Published rows plus every local record whose key they lack. A key in both with different content is a
    conflict: reported, and the published record kept (the local one with `prefer_local`)."""
    redactor = Redactor()
    merged = {r.key: r for r in published}
    result = Merge(records=[], kept=len(merged))
    for record in sorted(local, key=lambda r: r.key):
        public = public_record(record, redactor)
        theirs = merged.get(record.key)
        if theirs is None:
            merged[record.key] = public
            result.added += 1
        elif theirs.digest != public.digest:
            choice = "local record published" if prefer_local else "published record kept"
            result.conflicts.append(
                f"run {record.key}: the local record ({record.status}, finished {record.finished_at}) differs from "
                f"the published one ({theirs.status}, finished {theirs.finished_at}); {choice}"
            )
            if prefer_local:
                merged[record.key] = public
    result.records = sorted(merged.values(), key=lambda r: r.key)
    return result


def published_head(repo_id: str, *, private: bool | None = None, api: Any = None) -> tuple[str, bool]:
    """Create the dataset repo if needed; its head commit, and whether it has a `runs` table."""
    errors = _require("huggingface_hub.errors")
    api = _api(api)
    try:
        api.create_repo(repo_id, repo_type="dataset", private=private, exist_ok=True)
        info = api.dataset_info(repo_id)
    except errors.HfHubHTTPError as err:
        raise _refused(repo_id, err) from None
    names = {getattr(s, "rfilename", None) for s in (getattr(info, "siblings", None) or [])}
    return str(info.sha), "data/runs.parquet" in names


def unverified_policy(published: Published, policy: str, note: Callable[[str], None]) -> list[RunRecord]:
    """Apply ``--unverified`` to the rows that did not verify (each is passed to `note`): the rows to use.

    ``refuse`` stops while any row fails; ``keep`` seals rows that merely lack a digest (published before
    records carried one) and leaves the rejected ones out; ``drop`` leaves both out."""
    legacy = published.legacy
    for line in cap_problems(published.rejected):
        note(line)
    if legacy:
        note(f"{len(legacy)} published row(s) carry no digest (published before records had one)")
    if policy == "refuse" and (published.rejected or legacy):
        raise BenchmarkError(
            f"{len(published.rejected) + len(legacy)} published row(s) do not verify (listed above); rerun with "
            "--unverified keep (seal rows without a digest as they are, leave the rest out) or --unverified drop"
        )
    kept = [r.sealed() for r in legacy] if policy == "keep" else []
    return [*published.records, *kept]


def publish_merged(
    records: Sequence[RunRecord],
    repo_id: str,
    work: Path,
    *,
    tasks_dir: Path | Sequence[Path] | None = None,
    create_pr: bool = False,
    private: bool | None = None,
    message: str | None = None,
    prefer_local: bool = False,
    unverified: str = "refuse",
    verify: bool = True,
    api: Any = None,
    note: Callable[[str], None] = print,
) -> tuple[str, Merge, DatasetFolder]:
    """Merge `records` into the published dataset and commit the result against the head it was read at."""
    api = _api(api)
    head, has_runs = published_head(repo_id, private=private, api=api)
    published = Published()
    if has_runs:
        published = read_runs(download_runs(repo_id, head, work / "published"))
    rows = unverified_policy(published, unverified, note)
    merge = merge_records(rows, records, prefer_local=prefer_local)
    for line in merge.conflicts:
        note(line)
    folder = build_folder(merge.records, work / "folder", repo_id=repo_id, tasks_dir=tasks_dir)
    if verify:
        verify_folder(folder, merge.records)
    url = push_folder(folder, repo_id, create_pr=create_pr, private=private, message=message, api=api, parent=head)
    return url, merge, folder


def merge_into_store(records: Iterable[RunRecord], store: Store) -> tuple[int, int, list[str]]:
    """Add every (verified) record whose run key the store lacks; returns (added, already present, conflicts).

    A key already in the store is kept as it is; when its record differs from the pulled one (beyond what
    publishing redacts) the difference is reported, never silently replaced."""
    present = store.keys()
    redactor = Redactor()
    added = skipped = 0
    conflicts: list[str] = []
    for r in records:
        r.verify("pulled row")
        if r.key in present:
            skipped += 1
            try:
                local = store.get(r.key)
            except StoreError as err:
                conflicts.append(f"run {r.key}: kept the local file, which is not trusted ({err})")
                continue
            if r.digest not in (local.digest, public_record(local, redactor).digest):
                conflicts.append(f"run {r.key}: the pulled record differs from the local one; local kept")
            continue
        store.put(r)
        present.add(r.key)
        added += 1
    return added, skipped, conflicts


# ------------------------------------------------------------------------------------------- CLI
