"""The trust boundary: nothing a submission, a spec file or a published dataset can forge, steal or destroy.

One test (or a few) per hole a review found: a record key used as a path, a YAML alias bomb under a tier,
the Hub token in the runner's start-up environment and in a raised message, an edited record, a method
named like a baseline, duplicate ids in `validate`, coerced types, a tier changing the task. The two-store
publish lives in tests/test_hub.py beside the fake Hub.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import tracemalloc
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml

from phenomena_bench.cli import main
from phenomena_bench.core.errors import MethodError, SpecError, StoreError
from phenomena_bench.core.redact import REDACTED, redact
from phenomena_bench.registry import load_task, parse_task, resolve_method
from phenomena_bench.store import Store
from tests.helpers import ROOT
from tests.helpers import grokking_record as _record

SPEC = ROOT / "tasks" / "grokking" / "add-mod97.yaml"
KEY = "ab" + "0" * 62


def _raw() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(SPEC.read_text())
    return data


def _spec_problems(text: str, tmp_path: Path, name: str = "spec.yaml") -> list[str]:
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(SpecError) as err:
        load_task(path)
    return err.value.problems


# ------------------------------------------------------------------------------- keys are digests, not paths

TRAVERSAL = "./" + "../" * 12 + "tmp/{}/PWNED"


@pytest.mark.parametrize("key", [TRAVERSAL.format("x"), "ab/cd.json", "AB" + "0" * 62, "ab" * 31, "", "0" * 63 + "/"])
def test_a_key_that_is_not_a_digest_is_refused_everywhere(tmp_path: Path, key: str) -> None:
    store = Store(tmp_path / "store")
    for action in (
        lambda: store.put(_record(key=key)),
        lambda: store.get(key),
        lambda: store.has(key),
        lambda: store.try_claim(key),
        lambda: store.path_for(key),
    ):
        with pytest.raises(StoreError, match="is not a run key"):
            action()
    assert not (tmp_path / "store").exists() or not any((tmp_path / "store").rglob("*.json"))


def test_pull_of_a_traversal_key_writes_nothing_outside_the_store(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("pyarrow")
    from phenomena_bench.report import hub

    marker = f"phenomena-bench-trust-{uuid.uuid4().hex}"
    evil = _record(key=TRAVERSAL.format(marker)).sealed()  # a row with a valid digest but a path for a key
    folder = tmp_path / "dataset"
    hub._write_parquet(
        [hub.run_row(evil), hub.run_row(_record(key="cd" + "1" * 62).sealed())],
        [(c.name, c.arrow) for c in hub.RUN_COLUMNS],
        folder / "data" / "runs.parquet",
    )
    store = tmp_path / "store"
    code = main(["pull", "--from-dir", str(folder), "--store", str(store)])
    err = capsys.readouterr().err
    assert code == 2 and "is not a run key" in err and "do not verify" in err
    assert not Path("/tmp", marker).exists()
    assert not store.exists() or not any(store.rglob("*.json"))  # refused as a whole: nothing written
    # told to leave bad rows out, the good row is pulled and still nothing lands outside
    assert main(["pull", "--from-dir", str(folder), "--store", str(store), "--unverified", "drop"]) == 0
    assert not Path("/tmp", marker).exists()
    assert Store(store).keys() == {"cd" + "1" * 62}


def test_a_folder_where_a_record_belongs_is_reported_not_a_crash(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = Store(tmp_path / "store")
    store.put(_record(key="cd" + "1" * 62))
    blocked = store.path_for(KEY)
    blocked.mkdir(parents=True)
    (tmp_path / "store" / "runs" / "zz" / "x.json").mkdir(parents=True)
    records, corrupt = store.scan()
    assert [r.key for r in records] == ["cd" + "1" * 62]
    reasons = " ".join(c.reason for c in corrupt)
    assert "not a record file" in reasons and len(corrupt) == 2
    with pytest.raises(StoreError, match="a folder is where this record's file belongs"):
        store.put(_record())
    with pytest.raises(StoreError, match="not a record file"):
        store.get(KEY)
    assert main(["show", "--store", str(tmp_path / "store"), "--format", "json"]) == 0
    assert "not a record file" in capsys.readouterr().err


# ------------------------------------------------------------------------------- bounded spec loading


def _alias_bomb(levels: int) -> str:
    lines = ["l0: &l0 [x, x, x, x, x, x, x, x, x]"]
    for i in range(1, levels + 1):
        refs = ", ".join([f"*l{i - 1}"] * 9)
        lines.append(f"l{i}: &l{i} [{refs}]")
    return "\n".join(f"      {line}" for line in lines)


def test_an_alias_bomb_under_a_tier_is_refused_fast_and_small(tmp_path: Path) -> None:
    text = SPEC.read_text().replace(
        "    data: {p: 23, train_fraction: 0.5}\n", "    data:\n      p: 23\n" + _alias_bomb(6) + "\n", 1
    )
    assert len(text) - len(SPEC.read_text()) < 2000 and "*l5" in text  # a small file that expands to 9**7 nodes
    tracemalloc.start()
    t0 = time.perf_counter()
    try:
        problems = _spec_problems(text, tmp_path)
        elapsed = time.perf_counter() - t0
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert elapsed < 2.0 and peak < 50 * 2**20, (elapsed, peak)
    assert len(problems) == 1 and "alias *l0 is not allowed" in problems[0] and "line " in problems[0]


def test_shared_references_in_a_parsed_mapping_are_never_expanded() -> None:
    bomb: Any = ["x"] * 9
    for _ in range(6):  # 9**7 leaves if anything walked it
        bomb = [bomb] * 9
    raw = _raw()
    raw["tiers"]["smoke"]["data"] = {"p": bomb}
    t0 = time.perf_counter()
    with pytest.raises(SpecError) as err:
        parse_task(raw, "bomb.yaml")
    assert time.perf_counter() - t0 < 2.0
    assert any("tiers.smoke.data.p" in p for p in err.value.problems)


def test_deep_nesting_is_one_line_and_the_other_files_still_validate(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "tasks"
    folder.mkdir()
    (folder / "a-deep.yaml").write_text("id: " + "[" * 50_000 + "]" * 50_000 + "\n")
    (folder / "b-good.yaml").write_text(SPEC.read_text())
    assert main(["validate", str(folder)]) == 1
    out = capsys.readouterr()
    assert "b-good.yaml: ok (grokking/add-mod97" in out.out
    deep = [line for line in out.err.splitlines() if "a-deep.yaml" in line]
    assert len(deep) == 1 and "nested deeper than" in deep[0]


def test_duplicate_keys_size_and_error_count_are_bounded(tmp_path: Path) -> None:
    dup = SPEC.read_text().replace("seeds: 6\n", "seeds: 6\nseeds: 1\n", 1)
    (problem,) = _spec_problems(dup, tmp_path)
    assert "duplicate key 'seeds'" in problem and "line " in problem
    (problem,) = _spec_problems("id: x\n" + "# padding\n" * 60_000, tmp_path)
    assert "larger than" in problem
    many = SPEC.read_text() + "".join(f"k{i}: 1\n" for i in range(40_000))
    problems = _spec_problems(many, tmp_path)
    assert len(problems) == 21 and problems[-1].startswith("... and ") and "more problem(s)" in problems[-1]


def test_huge_numbers_are_one_line(tmp_path: Path) -> None:
    (problem,) = _spec_problems(SPEC.read_text().replace("seeds: 6", "seeds: " + "9" * 10_000, 1), tmp_path)
    assert "cannot be loaded" in problem or "seeds" in problem


def test_validate_checks_ids_across_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "tasks"
    folder.mkdir()
    (folder / "one.yaml").write_text(SPEC.read_text())
    (folder / "two.yaml").write_text(SPEC.read_text())
    assert main(["validate", str(folder)]) == 1
    err = capsys.readouterr().err
    assert "two.yaml: id: 'grokking/add-mod97' is also used by" in err and "one.yaml" in err


# ------------------------------------------------------------------------------- strict types and tier rules


@pytest.mark.parametrize(
    ("where", "value"),
    [
        (("seeds",), True),
        (("seeds",), "3"),
        (("seeds",), 3.0),
        (("seeds",), "yes"),
        (("version",), "1"),
        (("training", "steps"), 3000.0),
        (("data", "p"), "97"),
        (("evaluation", "stop_when_held"), "yes"),
        (("evaluation", "stop_when_held"), 1),
        (("data", "train_fraction"), "0.5"),
        (("tiers", "smoke", "seeds"), True),
    ],
)
def test_values_of_the_wrong_type_are_errors_not_coerced(where: tuple[str, ...], value: Any) -> None:
    raw = _raw()
    target = raw
    for part in where[:-1]:
        target = target[part]
    target[where[-1]] = value
    with pytest.raises(SpecError) as err:
        parse_task(raw, "typed.yaml")
    assert any(p.startswith(".".join(where)) for p in err.value.problems), err.value.problems


def test_an_int_is_still_a_float() -> None:
    raw = _raw()
    raw["time_limit_s"] = 60
    assert parse_task(raw, "ok.yaml").time_limit_s == 60.0


@pytest.mark.parametrize(
    ("section", "field", "value"),
    [
        ("data", "operation", "sub"),
        ("model", "architecture", "other"),
    ],
)
def test_a_tier_cannot_change_what_defines_the_task(section: str, field: str, value: Any) -> None:
    raw = _raw()
    raw["tiers"]["smoke"][section][field] = value
    with pytest.raises(SpecError) as err:
        parse_task(raw, "tier.yaml")
    assert any(f"tiers.smoke.{section}.{field}: a tier may change only sizes" in p for p in err.value.problems)


def test_a_tier_may_restate_a_fixed_value_and_change_sizes() -> None:
    raw = _raw()
    raw["tiers"]["smoke"]["data"]["operation"] = "add"  # the base value: changes nothing
    spec = parse_task(raw, "tier.yaml")
    assert spec.resolve("smoke").data.p == 23


@pytest.mark.parametrize(
    ("path", "old", "new", "expected"),
    [
        ("grokking/add-mod97.yaml", "  eval_every: 20\n", "  eval_every: 5000\n", "no evaluation would ever run"),
        ("grokking/add-mod97.yaml", "  steps: 3000\n", "  steps: 60\n", "the target could never hold"),
        ("grokking/add-mod97.yaml", "  batch_size: null\n", "  batch_size: 100000\n", "exceeds the training split"),
        ("pruning/digits-mlp.yaml", "  batch_size: 100\n", "  batch_size: 5000\n", "exceeds the training split"),
        ("mil_dropout/digits-bags.yaml", "  batch_size: 8\n", "  batch_size: 500\n", "exceeds the training split"),
        ("hessian/digits-tanh-ce-init.yaml", "  hidden: [32, 32]\n", "  hidden: [4096]\n", "parameters"),
        ("hessian/digits-tanh-ce-init.yaml", "    training: {checkpoint_step: 0}", "    training: {lr: 2.0}", "fixed"),
        ("mil_dropout/musk1.yaml", "    data: {max_folds: 2}", "    data: {folds: 5}", "fixed by the task"),
    ],
)
def test_cross_field_budgets(tmp_path: Path, path: str, old: str, new: str, expected: str) -> None:
    text = (ROOT / "tasks" / path).read_text()
    assert old in text
    problems = _spec_problems(text.replace(old, new, 1), tmp_path)
    assert any(expected in p for p in problems), problems


def test_shipped_tiers_change_only_sizes() -> None:
    """Every shipped tier passes the tier rules (what the families' TIER_SIZES allow, or base values)."""
    from phenomena_bench.core.spec import tier_problems
    from phenomena_bench.registry import load_tasks

    for _, spec in load_tasks(ROOT / "tasks").values():
        for tier in ("smoke", "default", "full"):
            assert tier_problems(spec, tier) == [], spec.id


# ------------------------------------------------------------------------------- records are sealed


def test_an_edited_record_is_reported_and_not_used(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store = Store(tmp_path / "store")
    path = store.put(_record(steps=900))
    data = json.loads(path.read_text())
    assert data["digest"] == _record(steps=900).content_digest()
    data["metrics"]["steps_to_target"] = 1  # schema-valid, and it would rank first
    path.write_text(json.dumps(data))
    records, corrupt = store.scan()
    assert records == [] and len(corrupt) == 1 and "does not match its digest" in corrupt[0].reason
    assert KEY in corrupt[0].reason
    with pytest.raises(StoreError, match="does not match its digest"):
        store.get(KEY)
    del data["digest"]  # removing the seal does not help
    path.write_text(json.dumps(data))
    with pytest.raises(StoreError, match="has no digest"):
        store.get(KEY)


def test_the_hub_schema_carries_the_digest() -> None:
    pytest.importorskip("pyarrow")
    from phenomena_bench.report import hub

    assert "digest" in [c.name for c in hub.RUN_COLUMNS]
    edited = _record().sealed().model_copy(update={"metrics": {"steps_to_target": 1, "reached": True}})
    checked = hub.check_rows([hub.run_row(edited), hub.run_row(_record().sealed())], "runs")
    assert len(checked.records) == 1 and len(checked.rejected) == 1 and "does not match" in checked.rejected[0]


# ------------------------------------------------------------------------------- impostors


IMPOSTOR = """
from typing import Any

import torch

from phenomena_bench.families.grokking.api import GrokkingMethod


class Impostor(GrokkingMethod):
    name = "adamw"
    version = "1"
    description = "SGD wearing adamw's name"

    def configure(self, model: Any, params: Any, info: Any) -> Any:
        return torch.optim.SGD(list(params.values()), lr=0.1)
"""


def test_a_method_named_like_a_baseline_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    module = f"impostor_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{module}.py").write_text(IMPOSTOR)
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(MethodError, match="is named 'adamw', the name of a baseline"):
        resolve_method(f"{module}:Impostor")
    code = main(
        ["run", "--task", "grokking/add-mod97", "--tier", "smoke", "--seeds", "1", "--device", "cpu", "--quiet",
         "--method", f"{module}:Impostor", "--store", str(tmp_path / "store")]
    )  # fmt: skip
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "name of a baseline" in err
    assert not (tmp_path / "store" / "runs").exists()
    assert resolve_method("phenomena_bench.baselines.grokking:AdamW").name == "adamw"  # the real one is fine


# ------------------------------------------------------------------------------- secrets and paths


def test_redaction_of_secrets_and_local_paths(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    secret = "s3cr3t-" + uuid.uuid4().hex
    monkeypatch.setenv("WANDB_API_KEY", secret)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    (tmp_path / "hf").mkdir()
    file_token = "hf_" + "Q" * 34
    (tmp_path / "hf" / "token").write_text(file_token + "\n")
    store = Store(tmp_path / "store")
    error = (
        f"ValueError: {secret} and {file_token} and hf_{'z' * 36}\n"
        f'  File "{ROOT}/benchmark/run/execute.py", line 1\n'
        f'  File "{Path.home()}/x.py", line 2\n  File "{tmp_path / "store"}/cache/y.py", line 3'
    )
    stored = store.get(store.put(_record(error=error)).stem)
    assert stored.error is not None
    assert secret not in stored.error and file_token not in stored.error and "z" * 36 not in stored.error
    assert stored.error.count(REDACTED) == 3
    assert str(ROOT) not in stored.error and "<repo>/benchmark/run/execute.py" in stored.error
    assert "<store>/cache/y.py" in stored.error and f"{Path.home()}/x.py" not in stored.error
    assert redact("/rootless and /tmpfile") == "/rootless and /tmpfile"  # only whole path components


THIEVES = """
import os
from typing import Any

from phenomena_bench.families.grokking.api import GrokkingMethod


def _parent_environ() -> str:
    with open(f"/proc/{os.getppid()}/environ", "rb") as handle:
        return handle.read().decode(errors="replace")


class EnvThief(GrokkingMethod):
    name = "trust-env-thief"
    version = "1"
    description = "reads its runner's start-up environment and raises with it"

    def configure(self, model: Any, params: Any, info: Any) -> Any:
        environ = _parent_environ()
        names = sorted(item.partition("=")[0] for item in environ.split("\\0") if "TOKEN" in item.partition("=")[0])
        raise RuntimeError(f"token variables of the runner: {names or 'none'}; own: {sorted(os.environ)}")


class FileThief(GrokkingMethod):
    name = "trust-file-thief"
    version = "1"
    description = "reads the user's Hub token file and raises with it"

    def configure(self, model: Any, params: Any, info: Any) -> Any:
        token = open(os.path.join(os.environ["HF_HOME"], "token")).read().strip()
        raise RuntimeError(f"stolen: {token} from {os.path.abspath(__file__)} in {os.environ['HOME']}")
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/<ppid>/environ (Linux)")
def test_a_worker_cannot_find_the_token_and_a_raised_secret_is_redacted(tmp_path: Path) -> None:
    env_token = "hf_" + uuid.uuid4().hex + "A" * 8
    file_token = "hf_" + uuid.uuid4().hex + "B" * 8
    (tmp_path / "hf").mkdir()
    (tmp_path / "hf" / "token").write_text(file_token)
    (tmp_path / "thieves.py").write_text(THIEVES)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PHENOMENA_BENCH_ENV_SCRUBBED")}
    env.update(HF_TOKEN=env_token, HUGGING_FACE_HUB_TOKEN=env_token, HF_HOME=str(tmp_path / "hf"))
    env["PYTHONPATH"] = str(tmp_path)
    store = tmp_path / "store"
    result = subprocess.run(
        [sys.executable, "-m", "phenomena_bench.cli", "run", "--task", "grokking/add-mod97", "--tier", "smoke",
         "--seeds", "1", "--device", "cpu", "--quiet", "--workers", "1", "--format", "json",
         "--method", "thieves:EnvThief", "thieves:FileThief", "--store", str(store)],
        capture_output=True, text=True, timeout=300, cwd=tmp_path, env=env,
    )  # fmt: skip
    assert result.returncode == 3, result.stderr
    records = {r.method.name: r for r in Store(store).records()}
    assert set(records) == {"trust-env-thief", "trust-file-thief"}
    env_error = records["trust-env-thief"].error or ""
    assert "token variables of the runner: none" in env_error, env_error
    assert "HF_TOKEN" not in env_error.split("; own:")[1]
    file_error = records["trust-file-thief"].error or ""
    assert f"stolen: {REDACTED} from " in file_error, file_error
    assert str(ROOT) not in file_error and str(Path.home()) + "/" not in file_error
    everything = "".join(p.read_text() for p in store.rglob("*.json")) + result.stdout + result.stderr
    assert env_token not in everything and file_token not in everything


def test_in_process_commands_drop_secrets_but_publish_keeps_them(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("HF_TOKEN", "hf_" + "k" * 34)
    assert main(["tasks", "--tasks-dir", str(ROOT / "tasks")]) == 0
    assert "HF_TOKEN" not in os.environ
    monkeypatch.setenv("HF_TOKEN", "hf_" + "k" * 34)
    main(["pull", "--from-dir", str(tmp_path / "missing"), "--store", str(tmp_path / "s")])
    assert os.environ.get("HF_TOKEN") == "hf_" + "k" * 34
