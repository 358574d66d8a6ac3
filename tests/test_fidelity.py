"""Fidelity badges: each baseline's paper claim, tested on hand-made stores with the verdicts' paired test."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from phenomena_bench.analysis.fidelity import baseline_claims, evaluate_claims
from phenomena_bench.baselines.grokking import Muon
from phenomena_bench.baselines.pruning import SNIP
from phenomena_bench.core.claims import Claim
from phenomena_bench.core.method import _strip_declarations
from phenomena_bench.store import RunRecord, Store
from tests.helpers import cli_in_process
from tests.test_gates import _record

TASK = "grokking/add-mod97"


def _steps(method: str, steps: list[int]) -> list[RunRecord]:
    return [
        _record(TASK, method, s, {"steps_to_target": t, "reached": t < 3000, "delay_ratio": 5.0})
        for s, t in enumerate(steps)
    ]


def _muon(muon: list[int], adamw: list[int]) -> list:
    return evaluate_claims(_steps("muon", muon) + _steps("adamw", adamw), {"muon": Muon.claims})


def test_badge_is_reproduced_when_the_method_wins_and_flips_when_the_comparator_wins() -> None:
    adamw = [1000, 1100, 900, 1200, 1050, 950]
    (won,) = _muon([500, 520, 480, 600, 510, 490], adamw)
    assert won.status == "reproduced" and won.comparison.diff_mean is not None and won.comparison.diff_mean < 0
    (lost,) = _muon([3000] * 6, adamw)  # Muon never holds 99%: the comparator wins
    assert lost.status == "not_reproduced"
    assert lost.comparison.diff_low is not None and lost.comparison.diff_low > 0
    assert "not reproduced: +" in lost.summary() and "6 paired seeds" in lost.summary()


def test_fewer_paired_seeds_than_a_verdict_needs_is_underpowered() -> None:
    (result,) = _muon([500, 520, 480], [1000, 1100, 900])
    assert result.status == "underpowered" and result.comparison.n_paired == 3
    (alone,) = _muon([500] * 6, [])  # the comparator never ran
    assert alone.status == "underpowered" and alone.comparison.n_paired == 0


def test_no_better_claim_against_an_in_run_control() -> None:
    def snip(gains: list[float]) -> list:
        recs = [
            _record("pruning/mnist1d-mlp", "prune-snip", s, {"gain_over_shuffle@99": g}) for s, g in enumerate(gains)
        ]
        return evaluate_claims(recs, {"prune-snip": SNIP.claims})

    (ties,) = snip([0.01, -0.02, 0.0, 0.015, -0.01, 0.005])
    assert ties.status == "reproduced"  # its mask is no better than its own layer-wise shuffle
    (beats,) = snip([0.08, 0.1, 0.07, 0.09, 0.12, 0.06])
    assert beats.status == "not_reproduced"


def test_claims_apply_only_to_their_tasks_and_tiers() -> None:
    claim = Claim("steps_to_target", better_than="adamw", tasks=("grokking/sub-mod97",), source="s")
    recs = _steps("muon", [500] * 6) + _steps("adamw", [1000] * 6)
    assert evaluate_claims(recs, {"muon": (claim,)}) == []
    smoke = [r.model_copy(update={"tier": "smoke"}) for r in recs]
    assert evaluate_claims(smoke, {"muon": Muon.claims}) == []


def test_claim_declarations_are_validated_and_every_baseline_claim_is_well_formed() -> None:
    with pytest.raises(ValueError, match="exactly one of better_than"):
        Claim("acc", source="s")
    claims = baseline_claims()
    assert {"muon", "prune-imp", "prune-snip", "hessian-hutchpp", "mil-mildropout"} <= set(claims)
    for name, declared in claims.items():
        assert all(c.source and c.comparator != name for c in declared), name


def test_declaring_claims_does_not_change_a_methods_code_digest() -> None:
    plain = "class M:\n    name = 'm'\n\n    def f(self):\n        return 1\n"
    declared = plain.replace("\n\n", "\n    claims = (Claim('acc', better_than='x', source='s'),)\n\n", 1)
    assert declared != plain
    assert ast.dump(_strip_declarations(ast.parse(declared))) == ast.dump(ast.parse(plain))


def test_show_prints_the_fidelity_table_within_120_columns(tmp_path: Path) -> None:
    store = Store(tmp_path / "store")
    for record in _steps("muon", [3000] * 6) + _steps("adamw", [1000, 1100, 900, 1200, 1050, 950]):
        store.put(record)
    result = cli_in_process("show", "--store", str(store.root))
    assert result.returncode == 0, result.stderr
    table = result.stdout[result.stdout.index("fidelity to each baseline") :].splitlines()
    at = next(i for i, line in enumerate(table) if line.startswith("muon: steps_to_target better than adamw"))
    assert "grokking/add-mod97 [default]  not reproduced  +" in table[at + 1] and "n=6" in table[at + 1]
    assert max(len(line) for line in table) <= 120


def test_site_shows_the_fidelity_badge_beside_the_row_and_on_the_method_page() -> None:
    from phenomena_bench.report.site import collect, method_page, task_page

    data = collect(_steps("muon", [3000] * 6) + _steps("adamw", [1000, 1100, 900, 1200, 1050, 950]))
    page = task_page(data.tasks[TASK], data)
    row = next(line for line in page.split("<tr>") if "methods/muon.html" in line)
    assert "not reproduced (+" in row and 'class="worse"' in row
    method = method_page("muon", data)
    assert "Fidelity to its paper" in method and "Tveit et al. 2025" in method
