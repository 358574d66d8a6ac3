"""Publishing: the dataset folder (bytes, card, load_dataset round trip), the upload through huggingface_hub's
own client against an in-process fake Hub (its `set_client_factory`), and pull. No test here touches the
network except the opt-in `live` one."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from phenomena_bench.core.errors import BenchmarkError
from phenomena_bench.report import hub
from phenomena_bench.store import MethodIdentity, RunRecord, Store
from tests.helpers import cli_in_process

pytest.importorskip("pyarrow")
datasets = pytest.importorskip("datasets")
huggingface_hub = pytest.importorskip("huggingface_hub")
httpx2 = pytest.importorskip("httpx2")  # the HTTP library huggingface_hub 2.x is built on

EVIL = "<script>alert(1)</script>"
REPO = "phenomena-bench/results-test"


def record(
    method: str,
    seed: int,
    steps: int,
    reached: bool,
    *,
    status: str = "ok",
    tier: str = "smoke",
    label: str | None = None,
    hp: dict[str, Any] | None = None,
) -> RunRecord:
    label = label or method
    metrics: dict[str, Any] = (
        {
            "steps_to_target": steps,
            "reached": reached,
            "final_val_acc": 0.5 + steps / 1e4,
            "steps_run": steps,
            "flops": 1.5e12,
            "note": "ü ✓",
            "missing": None,
        }
        if status == "ok"
        else {}
    )
    return RunRecord(
        key=hashlib.sha256(f"{method}|{label}|{seed}|{tier}".encode()).hexdigest(),
        task_id="add-mod97",
        task_version=1,
        family="grokking",
        tier=tier,
        seed=seed,
        method=MethodIdentity(
            name=method,
            family="grokking",
            version="1",
            hyperparameters=hp or {"lr": 1e-3},
            label=label,
            ref=method,
            source=None,
        ),
        status=status,
        metrics=metrics,
        curves={"val_acc": {"x": [0, 100, 200], "y": [0.01, 0.5, 1.0], "x_label": "step"}} if status == "ok" else {},
        error=None if status == "ok" else "Traceback: boom",
        wall_time_s=1.25 * (seed + 1),
        device="cpu",
        torch_version="2.13",
        benchmark_version="0.1.0",
        started_at="2026-01-01T00:00:00",
        finished_at=f"2026-01-01T00:0{seed}:00",
        task={
            "id": "add-mod97",
            "family": "grokking",
            "version": 1,
            "title": "Grokking",
            "description": "d",
            "data": {"p": 97},
            "training": {"steps": 3000},
        },
    )


def all_records() -> list[RunRecord]:
    recs = [record("adamw", s, 1000 + 100 * s, s < 2) for s in range(3)]
    recs += [record(EVIL, s, 300, True, label=EVIL, hp={"note": EVIL}) for s in range(2)]
    recs.append(record("adamw", 3, 0, False, status="failed"))
    return recs


@pytest.fixture(autouse=True)
def _offline_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Nothing may reach the network or read the developer's credentials or caches."""
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.delenv("HF_TOKEN", raising=False)


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> hub.DatasetFolder:
    return hub.build_folder(all_records(), tmp_path_factory.mktemp("ds"), repo_id=REPO, tasks_dir=None)


# ------------------------------------------------------------------------------------------- the folder


def test_folder_layout_and_card(folder: hub.DatasetFolder) -> None:
    assert folder.files == ["README.md", "data/runs.parquet", "data/leaderboard.parquet", "data/tasks.parquet"]
    assert sorted(p.relative_to(folder.path).as_posix() for p in folder.path.rglob("*") if p.is_file()) == sorted(
        folder.files
    )
    assert folder.counts == {"runs": 6, "leaderboard": 2, "tasks": 1}
    card = (folder.path / "README.md").read_text(encoding="utf-8")
    assert card.startswith("---\n")
    front = yaml.safe_load(card.split("---\n")[1])
    assert front["configs"] == [
        {"config_name": "runs", "data_files": [{"split": "train", "path": "data/runs.parquet"}], "default": True},
        {"config_name": "leaderboard", "data_files": [{"split": "train", "path": "data/leaderboard.parquet"}]},
        {"config_name": "tasks", "data_files": [{"split": "train", "path": "data/tasks.parquet"}]},
    ]
    assert "benchmark version **0.1.0**" in card
    assert "| `runs` | 6 |" in card and f'load_dataset("{REPO}", "runs", split="train")' in card
    # the leaderboard table is in the card, with the submission-controlled name escaped
    assert "### add-mod97" in card and "<script>" not in card and "&lt;script&gt;" in card


def test_folder_is_byte_for_byte_reproducible(folder: hub.DatasetFolder, tmp_path: Path) -> None:
    again = hub.build_folder(list(reversed(all_records())), tmp_path / "again", repo_id=REPO)
    for name in folder.files:
        assert (folder.path / name).read_bytes() == (again.path / name).read_bytes(), name


def test_load_dataset_round_trips_every_record(folder: hub.DatasetFolder, tmp_path: Path) -> None:
    hub.verify_folder(folder, all_records())  # the check publish runs itself
    runs = datasets.load_dataset(str(folder.path), "runs", split="train", cache_dir=str(tmp_path / "c"))
    by_key = {r.key: r for r in all_records()}
    assert runs.num_rows == len(by_key)
    for row in runs:
        assert hub.record_from_row(row) == by_key[row["key"]]
    board = datasets.load_dataset(str(folder.path), "leaderboard", split="train", cache_dir=str(tmp_path / "c"))
    adamw = next(r for r in board if r["method"] == "adamw")
    assert adamw["seeds"] == 4 and adamw["failed"] == 1 and adamw["successes"] == 2
    (expected,) = [r for r in hub.aggregate(all_records()) if r.method == "adamw"]
    stats = json.loads(adamw["stats"])["cells"]["steps_to_target"]
    assert stats["median"] == expected.model_dump(mode="json")["cells"]["steps_to_target"]["median"]
    tasks = datasets.load_dataset(str(folder.path), "tasks", split="train", cache_dir=str(tmp_path / "c"))
    assert tasks[0]["task_id"] == "add-mod97" and json.loads(tasks[0]["spec_json"])["data"] == {"p": 97}
    # the default config is `runs`
    default = datasets.load_dataset(str(folder.path), split="train", cache_dir=str(tmp_path / "c"))
    assert default.num_rows == runs.num_rows


def test_verify_catches_a_record_that_does_not_round_trip(folder: hub.DatasetFolder) -> None:
    changed = all_records()
    changed[0] = changed[0].model_copy(update={"wall_time_s": 99.0})
    with pytest.raises(BenchmarkError, match="does not round-trip"):
        hub.verify_folder(folder, changed)


def test_bad_repo_id(tmp_path: Path) -> None:
    for bad in ["noslash", "a/b/c", "../x", "a b/c"]:
        with pytest.raises(BenchmarkError, match="ORG/NAME"):
            hub.build_folder(all_records(), tmp_path, repo_id=bad)


# ------------------------------------------------------------------------------------------- fake Hub


class FakeHub:
    """The small part of the Hub's HTTP API a commit uses, in process: create repo, repo info, validate YAML,
    preupload (answering "regular" so files travel inline in the commit), commit (NDJSON, decoded here)."""

    def __init__(self, head: str = "b" * 40) -> None:
        self.head = head
        self.requests: list[tuple[str, str]] = []
        self.auth: set[str] = set()
        self.commits: list[dict[str, Any]] = []
        self.created: list[dict[str, Any]] = []
        self.repo_files: dict[str, bytes] = {}  # the head of main, served to downloads

    def __call__(self, request: httpx2.Request) -> httpx2.Response:
        path, method = request.url.path, request.method
        self.requests.append((method, str(request.url)))
        self.auth.add(request.headers.get("authorization", ""))
        repo = f"/api/datasets/{REPO}"
        if method == "POST" and path == "/api/repos/create":
            self.created.append(json.loads(request.content))
            return httpx2.Response(200, json={"url": f"https://huggingface.co/datasets/{REPO}", "name": REPO})
        if method == "POST" and path == "/api/validate-yaml":
            return httpx2.Response(200, json={"errors": [], "warnings": []})
        if method == "POST" and path.startswith(f"{repo}/preupload/"):
            files = json.loads(request.content)["files"]
            return httpx2.Response(
                200,
                json={"files": [{"path": f["path"], "uploadMode": "regular", "shouldIgnore": False} for f in files]},
            )
        if method == "POST" and path.startswith(f"{repo}/commit/"):
            lines = [json.loads(line) for line in request.content.decode().splitlines() if line.strip()]
            header = next(x["value"] for x in lines if x["key"] == "header")
            files = {x["value"]["path"]: base64.b64decode(x["value"]["content"]) for x in lines if x["key"] == "file"}
            if header.get("parentCommit") not in (None, self.head):
                return httpx2.Response(412, json={"error": "A commit has happened since the parent commit"})
            create_pr = request.url.params.get("create_pr") == "1"
            self.commits.append(
                {
                    "header": header,
                    "files": files,
                    "create_pr": create_pr,
                    "lfs": [x for x in lines if x["key"] == "lfsFile"],
                }
            )
            new = uuid.uuid4().hex[:40].ljust(40, "0")
            if not create_pr:
                self.repo_files.update(files)
                self.head = new
            return httpx2.Response(
                200,
                json={
                    "commitUrl": f"https://huggingface.co/datasets/{REPO}/commit/{new}",
                    "commitOid": new,
                    "pullRequestUrl": f"https://huggingface.co/datasets/{REPO}/discussions/1" if create_pr else None,
                },
            )
        if method == "GET" and (path == repo or path.startswith(f"{repo}/revision/")):
            return httpx2.Response(
                200,
                json={
                    "id": REPO,
                    "sha": self.head,
                    "private": False,
                    "tags": [],
                    "siblings": [{"rfilename": f} for f in sorted(self.repo_files)],
                    "downloads": 0,
                    "likes": 0,
                },
            )
        if method == "GET" and path.startswith(f"{repo}/tree/"):
            return httpx2.Response(
                200,
                json=[
                    {"type": "file", "path": f, "size": len(b), "oid": hashlib.sha1(b).hexdigest()}
                    for f, b in sorted(self.repo_files.items())
                ],
            )
        resolve = f"/datasets/{REPO}/resolve/{self.head}/"
        if method in {"GET", "HEAD"} and path.startswith(resolve) and path[len(resolve) :] in self.repo_files:
            body = self.repo_files[path[len(resolve) :]]
            headers = {
                "ETag": f'"{hashlib.sha1(body).hexdigest()}"',
                "X-Repo-Commit": self.head,
                "Content-Length": str(len(body)),
            }
            return httpx2.Response(200, headers=headers, content=b"" if method == "HEAD" else body)
        return httpx2.Response(404, json={"error": f"fake hub: no route for {method} {path}"})


@pytest.fixture
def fake_hub(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeHub]:
    from huggingface_hub import constants
    from huggingface_hub.utils import _http

    fake = FakeHub()
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    huggingface_hub.set_client_factory(
        lambda: httpx2.Client(transport=httpx2.MockTransport(fake), follow_redirects=True)
    )
    try:
        yield fake
    finally:
        huggingface_hub.set_client_factory(_http.default_client_factory)


def test_upload_commits_the_folder_byte_for_byte(
    folder: hub.DatasetFolder, fake_hub: FakeHub, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    secret = "hf_" + "x" * 34
    monkeypatch.setenv("HF_TOKEN", secret)
    url = hub.push_folder(folder, REPO)
    assert url.startswith(f"https://huggingface.co/datasets/{REPO}/commit/")
    assert len(fake_hub.created) == 1
    assert {k: fake_hub.created[0][k] for k in ("name", "organization", "type")} == {
        "name": REPO.split("/")[1],
        "organization": REPO.split("/")[0],
        "type": "dataset",
    }
    assert len(fake_hub.commits) == 1
    commit = fake_hub.commits[0]
    assert commit["lfs"] == [] and commit["create_pr"] is False
    assert commit["header"]["parentCommit"] == "b" * 40  # the head it was built against
    assert set(commit["files"]) == set(folder.files)
    for name, payload in commit["files"].items():
        assert payload == (folder.path / name).read_bytes(), name
    assert f"Bearer {secret}" in fake_hub.auth  # the token from HF_TOKEN was used...
    out = capsys.readouterr()
    assert secret not in out.out + out.err  # ...and never printed


def test_create_pr_for_community_submissions(folder: hub.DatasetFolder, fake_hub: FakeHub) -> None:
    url = hub.push_folder(folder, REPO, create_pr=True)
    assert url == f"https://huggingface.co/datasets/{REPO}/discussions/1"
    assert fake_hub.commits[0]["create_pr"] is True


def test_a_concurrent_publish_is_refused_not_overwritten(
    folder: hub.DatasetFolder, fake_hub: FakeHub, monkeypatch: pytest.MonkeyPatch
) -> None:
    original_info = huggingface_hub.HfApi.dataset_info

    def stale_info(self: Any, *args: Any, **kwargs: Any) -> Any:
        info = original_info(self, *args, **kwargs)
        fake_hub.head = "c" * 40  # someone else commits between our read of the head and our commit
        return info

    monkeypatch.setattr(huggingface_hub.HfApi, "dataset_info", stale_info)
    with pytest.raises(BenchmarkError, match="HTTP 412"):
        hub.push_folder(folder, REPO)
    assert fake_hub.commits == []


def test_pull_from_the_hub_merges_by_run_key(
    folder: hub.DatasetFolder, fake_hub: FakeHub, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import argparse

    from phenomena_bench.cli import publish as publish_cli

    hub.push_folder(folder, REPO)  # what is published is what pull reads back
    store = Store(tmp_path / "store")
    store.put(all_records()[1])
    args = argparse.Namespace(store=str(tmp_path / "store"), from_dir=None, repo_id=REPO, revision=None)
    assert publish_cli.pull_(args) == 0
    assert "5 added" in capsys.readouterr().out
    assert {r.key: r for r in store.records()} == {r.key: r for r in all_records()}
    assert any(url.endswith("/data/runs.parquet") for _, url in fake_hub.requests)
    assert not any("leaderboard.parquet" in url for _, url in fake_hub.requests)  # only what pull needs


def _store_of(path: Path, records: list[RunRecord]) -> str:
    store = Store(path)
    for r in records:
        store.put(r)
    return str(path)


def _published_runs(fake: FakeHub, files: dict[str, bytes] | None = None) -> dict[str, RunRecord]:
    import io

    import pyarrow.parquet as pq

    table = pq.read_table(io.BytesIO((files or fake.repo_files)["data/runs.parquet"]))
    checked = hub.check_rows(table.to_pylist(), "published")
    assert checked.rejected == [] and checked.legacy == []
    return {r.key: r for r in checked.records}


def test_publishing_two_stores_in_turn_keeps_both(
    fake_hub: FakeHub, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from phenomena_bench.cli import main

    a = [record("adamw", s, 1000 + 100 * s, True) for s in range(3)]
    b = [record("muon", s, 400 + 10 * s, True) for s in range(2)]
    changed = a[0].model_copy(update={"wall_time_s": 77.0})  # the same run key, another record
    store_a, store_b = _store_of(tmp_path / "a", a), _store_of(tmp_path / "b", [*b, changed])
    assert main(["publish", "--repo-id", REPO, "--store", store_a, "--no-verify"]) == 0
    assert set(_published_runs(fake_hub)) == {r.key for r in a}
    head_after_a = fake_hub.head
    # a contributor's pull request carries everyone's rows plus theirs: merging it deletes nothing
    assert main(["publish", "--repo-id", REPO, "--store", store_b, "--create-pr"]) == 0
    pr = fake_hub.commits[-1]
    assert pr["create_pr"] and pr["header"]["parentCommit"] == head_after_a
    assert set(_published_runs(fake_hub, pr["files"])) == {r.key for r in a + b}
    assert main(["publish", "--repo-id", REPO, "--store", store_b]) == 0
    published = _published_runs(fake_hub)
    assert set(published) == {r.key for r in a + b}
    assert published[a[0].key].wall_time_s == a[0].wall_time_s  # the conflict kept the published record
    err = capsys.readouterr()
    assert f"run {a[0].key}: the local record" in err.err and "published record kept" in err.err
    assert "2 run(s) added to 3 already published, 1 conflict(s)" in err.out
    # asked to, the local record replaces it (and says so)
    assert main(["publish", "--repo-id", REPO, "--store", store_b, "--prefer-local", "--no-verify"]) == 0
    assert _published_runs(fake_hub)[a[0].key].wall_time_s == 77.0
    assert "local record published" in capsys.readouterr().err


def test_a_publish_racing_another_fails_instead_of_losing_rows(
    fake_hub: FakeHub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from phenomena_bench.cli import main

    assert main(["publish", "--repo-id", REPO, "--store", _store_of(tmp_path / "a", all_records()[:2])]) == 0
    commits = len(fake_hub.commits)
    download = hub.download_runs

    def raced(*args: Any, **kwargs: Any) -> Path:
        folder = download(*args, **kwargs)
        fake_hub.head = "d" * 40  # someone publishes between our read of the dataset and our commit
        return folder

    monkeypatch.setattr(hub, "download_runs", raced)
    assert main(["publish", "--repo-id", REPO, "--store", _store_of(tmp_path / "b", all_records()[2:])]) == 2
    assert "HTTP 412" in capsys.readouterr().err and len(fake_hub.commits) == commits


def test_published_rows_that_do_not_verify_stop_the_publish(
    fake_hub: FakeHub, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from phenomena_bench.cli import main

    legacy = tmp_path / "legacy"
    hub._write_parquet(
        [{**hub.run_row(r), "digest": None} for r in all_records()[:2]],
        [(c.name, c.arrow) for c in hub.RUN_COLUMNS],
        legacy / "data" / "runs.parquet",
    )
    fake_hub.repo_files["data/runs.parquet"] = (legacy / "data" / "runs.parquet").read_bytes()
    store = _store_of(tmp_path / "s", all_records()[2:])
    assert main(["publish", "--repo-id", REPO, "--store", store, "--no-verify"]) == 2
    assert "2 published row(s) carry no digest" in capsys.readouterr().err and fake_hub.commits == []
    assert main(["publish", "--repo-id", REPO, "--store", store, "--no-verify", "--unverified", "keep"]) == 0
    assert set(_published_runs(fake_hub)) == {r.key for r in all_records()}


def test_cli_dry_run_and_pull(tmp_path: Path) -> None:
    store = Store(tmp_path / "store")
    for r in all_records():
        store.put(r)
    out = tmp_path / "folder"
    env = {**os.environ, "HF_HOME": str(tmp_path / "hf"), "HF_HUB_OFFLINE": "1"}
    cli = [sys.executable, "-m", "phenomena_bench.cli"]
    res = subprocess.run(
        [*cli, "publish", "--repo-id", REPO, "--dry-run", "--out", str(out), "--store", str(tmp_path / "store")],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert res.returncode == 0, res.stderr
    assert "dry run" in res.stdout and (out / "data" / "runs.parquet").is_file()
    # pull into a store that already has one of the runs: only the others are added
    other = Store(tmp_path / "other")
    other.put(all_records()[0])
    pull = ("pull", "--from-dir", str(out), "--store", str(tmp_path / "other"))  # a folder: no Hub, so in process
    res = cli_in_process(*pull, env={"HF_HUB_OFFLINE": "1"})
    assert res.returncode == 0, res.stderr
    assert "5 added" in res.stdout and "1 already there" in res.stdout
    assert {r.key: r for r in other.records()} == {r.key: r for r in all_records()}
    res = cli_in_process(*pull, env={"HF_HUB_OFFLINE": "1"})
    assert "0 added" in res.stdout and "6 already there" in res.stdout


def test_merge_into_store_dedups_by_run_key(tmp_path: Path) -> None:
    store = Store(tmp_path)
    recs = [r.sealed() for r in all_records()]
    assert hub.merge_into_store(recs[:2], store) == (2, 0, [])
    assert hub.merge_into_store(recs, store) == (len(recs) - 2, 2, [])
    assert store.keys() == {r.key for r in recs}
    # a pulled record that differs from the local one under the same key is reported, the local one kept
    other = recs[0].model_copy(update={"wall_time_s": 42.0}).sealed()
    added, present, conflicts = hub.merge_into_store([other], store)
    assert (added, present) == (0, 1) and len(conflicts) == 1 and recs[0].key in conflicts[0]
    assert store.get(recs[0].key).wall_time_s == recs[0].wall_time_s


@pytest.mark.live
def test_live_publish_to_a_throwaway_repo(folder: hub.DatasetFolder) -> None:
    """Opt-in (`pytest -m live` with HF_TOKEN and PHENOMENA_BENCH_LIVE_REPO=ORG/NAME): a real commit as a PR."""
    repo = os.environ.get("PHENOMENA_BENCH_LIVE_REPO")
    if not repo or not os.environ.get("HF_TOKEN"):
        pytest.skip("set HF_TOKEN and PHENOMENA_BENCH_LIVE_REPO to run the live publish test")
    url = hub.push_folder(folder, repo, create_pr=True, private=True, message="phenomena-bench live test")
    assert "huggingface.co" in url


def test_development_seeds_are_never_published(tmp_path: Path) -> None:
    from phenomena_bench.core.seeds import DEV_SEED_BASE

    dev = record("adamw", DEV_SEED_BASE + 1, 400, True)
    built = hub.build_folder([*all_records(), dev], tmp_path / "ds", repo_id=REPO)
    published = {r.seed for r in hub.read_runs(built.path).records}
    assert DEV_SEED_BASE + 1 not in published
    assert published == {r.seed for r in all_records()}
