"""Equal tuning budgets: `tune` chooses on development seeds by a fixed rule and stores the choice; `run`
scores the choice on scoring seeds; the leaderboard shows one tuned row per method with its budget.

End to end on the cheapest smoke task with a search space (MIL's digits bags, feature dropout's p: ~0.6 s
CPU a run), with the local executor.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from phenomena_bench.core.errors import MethodError
from phenomena_bench.core.search_space import search_space, searchable
from phenomena_bench.core.seeds import DEV_SEED_BASE
from phenomena_bench.registry import methods_for_family, resolve_method
from phenomena_bench.run.tuning import CHOICE_RULE, TuningChoice, choice_path
from phenomena_bench.store import Store
from tests.helpers import cli_in_process

TASK, METHOD, TIER = "mil_dropout/digits-bags", "mil-dropout", "smoke"


def test_search_space_is_read_and_validated() -> None:
    class Good(BaseModel):
        lr: float = searchable(1e-3, 1e-4, 1e-2, log=True, gt=0)
        k: int = searchable(2, 1, 4)
        flag: bool = searchable(True, choices=[True, False])
        fixed: int = 3

    space = search_space(Good)
    assert space.names == ["lr", "k", "flag"]
    assert space.describe() == ["lr in [0.0001, 0.01] log", "k in [1, 4] int", "flag in {True, False}"]

    bad: list[tuple[Any, str]] = [
        (searchable(0.5, 0.6, 0.1), "must be below high"),
        (searchable(0.9, 0.1, 0.6), "outside the search range"),
        (searchable(0.5, 0.0, 1.0, log=True), "needs low > 0"),
        (searchable(0.5, -0.5, 0.9, ge=0), "refused by the field itself"),
        (searchable(0.5, choices=[0.1, 0.2]), "not among the choices"),
    ]
    for field, message in bad:
        model = type("Bad", (BaseModel,), {"__annotations__": {"p": float}, "p": field})
        with pytest.raises(MethodError, match=message):
            search_space(model)


def test_shipped_search_spaces_are_valid() -> None:
    """Every baseline's declared space reads (defaults inside, bounds valid); the main knobs are declared."""
    spaces = {
        ref: search_space(type(resolve_method(ref)).Hyperparameters).names
        for family in ("grokking", "pruning", "mil_dropout", "hessian")
        for ref in methods_for_family(family)
    }
    assert spaces["adamw"] == ["lr", "weight_decay"]
    assert spaces["adam"] == ["lr"]  # no weight decay is what the method is: fixed
    assert {"alpha", "lamb"} <= set(spaces["grokfast-ema"])
    assert spaces["mil-dropout"] == ["p"]
    assert spaces["hessian-lanczos"] == []


def _records(store: Path) -> dict[str, dict[str, Any]]:
    return {p.stem: json.loads(p.read_text()) for p in (store / "runs").glob("*/*.json")}


def _cli(*args: str) -> str:
    result = cli_in_process(*args)
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


def test_tune_chooses_records_and_run_scores_the_choice(tmp_path: Path) -> None:
    store, cache = tmp_path / "store", tmp_path / "cache"
    common = ["--task", TASK, "--method", METHOD, "--tier", TIER, "--store", str(store), "--cache-dir", str(cache)]
    local = ["--executor", "local", "--quiet"]
    _cli("tune", *common, "--trials", "3", "--seeds", "2", *local)

    path = choice_path(Store(store), TASK, TIER, METHOD)
    assert path == store / "tuning" / "mil_dropout" / "digits-bags" / "smoke" / "mil-dropout.json"
    choice = TuningChoice.model_validate_json(path.read_text())
    assert choice.trials == 3 and len(choice.trial_results) == 3 and choice.rule == CHOICE_RULE
    assert choice.dev_seeds == [DEV_SEED_BASE, DEV_SEED_BASE + 1]
    assert len({json.dumps(t.hyperparameters) for t in choice.trial_results}) == 3  # three different settings
    assert choice.flops is not None and choice.flops > 0

    # the rule, recomputed from the stored runs: highest mean robust AUC over the dev seeds, ties to the first
    records = _records(store)
    means = []
    for trial in choice.trial_results:
        runs = [records[k] for k in trial.run_keys]
        assert sorted(r["seed"] for r in runs) == choice.dev_seeds
        assert all(r["method"]["hyperparameters"]["p"] == trial.hyperparameters["p"] for r in runs)
        means.append(sum(r["metrics"]["auc_robust"] for r in runs) / len(runs))
    best = max(range(3), key=lambda i: (means[i], -i))
    assert choice.chosen_trial == best and choice.chosen == choice.trial_results[best].hyperparameters

    # a second tune proposes the same trials, finds them stored and runs nothing
    _cli("tune", *common, "--trials", "3", "--seeds", "2", *local)
    assert _records(store).keys() == records.keys()
    again = TuningChoice.model_validate_json(path.read_text())
    assert [t.hyperparameters for t in again.trial_results] == [t.hyperparameters for t in choice.trial_results]
    assert again.chosen == choice.chosen

    # run scores the choice on the scoring seeds, and its record carries the budget
    rows = json.loads(_cli("run", *common, "--format", "json", *local))
    scored = [r for k, r in _records(store).items() if k not in records]
    assert len(scored) == 1 and scored[0]["seed"] == 0  # the smoke tier's one scoring seed
    assert {r["seed"] for r in scored}.isdisjoint(choice.dev_seeds)
    assert scored[0]["method"]["hyperparameters"]["p"] == choice.chosen["p"]
    assert scored[0]["method"]["tuning"]["trials"] == 3
    (row,) = rows
    assert row["method"] == "mil-dropout (tuned)" and row["selection"] == "tuned"
    assert row["tuning"]["dev_seeds"] == choice.dev_seeds and row["tuning"]["chosen_trial"] == best

    # the defaults, run too, are not a second row of the method by default; the table says the budget
    _cli("run", *common, "--no-tuned", *local)
    shown = json.loads(_cli("show", "--store", str(store), "--format", "json"))
    assert [r["method"] for r in shown] == ["mil-dropout (tuned)"]
    table = _cli("show", "--store", str(store))
    assert "mil-dropout (tuned)" in table
    assert "tuned: 3 trials x 2 dev seed(s) (1000000-1000001)" in table

    # a hand-picked value is labelled as such, never as tuned
    picked = _cli("run", *common, "--hp", "p=0.3", *local)
    assert "mil-dropout[p=0.3]" in picked and "hand-picked, not tuned (the values in brackets): mil-dropout" in picked
