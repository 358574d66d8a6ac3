"""Honest verdicts: calibration of the comparison and the intervals by simulation, every seed counting in the
ranking, floors, the error-based profile, and the text that reaches a terminal or the site."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pytest

from phenomena_bench.analysis import comparison as cmp
from phenomena_bench.analysis import rows as agg
from phenomena_bench.analysis import statistics as stats
from phenomena_bench.analysis.statistics import Observations
from phenomena_bench.analysis.tables import build_tables
from phenomena_bench.core.family import Column
from phenomena_bench.core.seeds import DEV_SEED_BASE
from phenomena_bench.report import markdown, site, terminal
from tests.test_stats import make_record

DRAWS = 2000


@dataclass
class TimeFamily:
    """A min-direction time-to-event family with a step budget, as grokking declares it."""

    primary_metric: str = "steps"
    direction: Literal["min", "max"] = "min"
    reference_method: str = "ref"
    budget: float = 5000.0

    def columns(self) -> list[Column]:
        return [
            Column("steps to target", "steps", "median_iqr", event="reached", digits=0, error="time"),
            Column("success", "reached", "rate", floor=0.0),
        ]

    def horizon(self, task: Mapping[str, Any], metric: str) -> float | None:
        return self.budget if metric == "steps" else None


@dataclass
class ErrorFamily:
    """A "min" relative-error family (hessian-like) with a floored error column and an unfloored one."""

    primary_metric: str = "err"
    direction: Literal["min", "max"] = "min"
    reference_method: str = "ref"

    def columns(self) -> list[Column]:
        return [
            Column("rel err", "err", "median_iqr", floor=1.0, error="value"),
            Column("auc", "auc", "mean_ci", floor=0.5),
            Column("spread", "spread", "mean"),
        ]


TIME = {"grokking": TimeFamily()}
ERR = {"hessian": ErrorFamily()}


def timed(method: str, seed: int, steps: float | None, *, status: str = "ok", **kw: Any) -> Any:
    metrics = {} if steps is None else {"steps": steps, "reached": steps < 5000}
    return make_record(method, seed, metrics, status=status, **kw)


def err_rec(method: str, seed: int, err: float, auc: float = 0.8, *, status: str = "ok", **kw: Any) -> Any:
    metrics = {"err": err, "auc": auc, "spread": 1.0 + seed}
    return make_record(method, seed, metrics, family="hessian", task=kw.pop("task", "h/t"), status=status, **kw)


# ------------------------------------------------------------------------------------------ calibration


@pytest.mark.parametrize("n", [6, 8, 12])
def test_false_verdict_rate_of_identical_methods_is_nominal(n: int) -> None:
    """Two identical methods: a better/worse verdict (adjusted p < 0.05) at most 6% of the time, on skewed
    continuous metrics and on censored times (restricted at the budget, where ties at 0 are common)."""
    rng = np.random.default_rng(n)
    # a skewed metric with a seed effect shared by both methods (the split), plus independent noise
    seed_effect = rng.lognormal(0.0, 1.0, size=(DRAWS, n))
    a = seed_effect + rng.exponential(1.0, size=(DRAWS, n))
    b = seed_effect + rng.exponential(1.0, size=(DRAWS, n))
    p = cmp.sign_flip_pvalues(a - b)
    assert np.mean(p < cmp.ALPHA) <= 0.06
    # times to an event, half of them past the budget of 1.0 (censored there)
    ta = np.minimum(rng.exponential(1.0, size=(DRAWS, n)), 1.0)
    tb = np.minimum(rng.exponential(1.0, size=(DRAWS, n)), 1.0)
    p = cmp.sign_flip_pvalues(ta - tb)
    assert np.mean(p < cmp.ALPHA) <= 0.06
    # and the test is not dead: a shift of two noise scales is found most of the time
    assert np.mean(cmp.sign_flip_pvalues(a + 2.0 - b) < cmp.ALPHA) > 0.5


def test_holm_keeps_the_family_wise_error_of_a_table() -> None:
    """Three methods identical to the reference, through compare and adjust: any false verdict in the table
    at most 6% of the time."""
    rng = np.random.default_rng(7)
    n, draws = 6, 600
    seeds = tuple(range(n))
    false = 0
    for _ in range(draws):
        ref = Observations(seeds, tuple(rng.normal(size=n)), (False,) * n)
        raw = [cmp.compare("max", Observations(seeds, tuple(rng.normal(size=n)), (False,) * n), ref) for _ in range(3)]
        false += any(c.verdict in {"better", "worse"} for c in cmp.adjust(raw, "max"))
    assert false / draws <= 0.06


def test_a_table_too_large_for_its_seeds_is_underpowered_not_a_tie() -> None:
    """Seven methods, each better than the reference on every seed: at 6 seeds Holm's first step needs
    p < 0.05/7 but the smallest p is 2/64, so no verdict is possible (not "tie"); at 9 seeds each is
    "better". A single comparison at 6 seeds can give one."""
    for n, methods, expected in ((6, 7, "underpowered"), (8, 7, "underpowered"), (9, 7, "better"), (6, 1, "better")):
        seeds = tuple(range(n))
        ref = Observations(seeds, tuple(float(s) for s in seeds), (False,) * n)
        better = Observations(seeds, tuple(float(s) + 1.0 + 0.01 * s for s in seeds), (False,) * n)
        verdicts = {c.verdict for c in cmp.adjust([cmp.compare("max", better, ref) for _ in range(methods)], "max")}
        assert verdicts == {expected}, (n, methods, verdicts)
    assert [cmp.seeds_for_verdict(m) for m in (1, 5, 7, 8)] == [6, 8, 9, 9]
    # identical methods at enough seeds: a verdict was attainable and the data gave none
    seeds = tuple(range(6))
    same = Observations(seeds, (1.0, -1.0, 2.0, -2.0, 0.5, -0.5), (False,) * 6)
    zero = Observations(seeds, (0.0,) * 6, (False,) * 6)
    assert cmp.adjust([cmp.compare("max", same, zero)], "max")[0].verdict == "tie"


def test_interval_coverage_at_ten_seeds() -> None:
    """t intervals of means, order-statistic intervals of medians and t intervals of mean paired differences
    cover the truth at least 93% of the time at 10 seeds."""
    rng = np.random.default_rng(3)
    n = 10
    normal = rng.normal(5.0, 2.0, size=(DRAWS, n))
    cover_mean = np.mean([lo <= 5.0 <= hi for lo, hi in (stats.t_interval(row) for row in normal)])  # type: ignore[misc]
    expo = rng.exponential(1.0, size=(DRAWS, n))
    true_median = math.log(2.0)
    med = [stats.median_interval(row) for row in expo]
    cover_median = np.mean([lo is not None and hi is not None and lo <= true_median <= hi for lo, hi in med])
    diffs = rng.normal(0.3, 1.0, size=(DRAWS, n))
    cover_diff = np.mean([lo <= 0.3 <= hi for lo, hi in (stats.t_interval(row) for row in diffs)])  # type: ignore[misc]
    assert cover_mean >= 0.93 and cover_median >= 0.93 and cover_diff >= 0.93, (cover_mean, cover_median, cover_diff)


def test_underpowered_below_six_paired_seeds() -> None:
    # a huge, consistent gain: five pairs are still underpowered (smallest p = 2/32), six give a verdict
    for n, verdict in ((3, "underpowered"), (5, "underpowered"), (6, "better")):
        recs = [timed("ref", s, 3000) for s in range(n)] + [timed("fast", s, 100) for s in range(n)]
        rows = agg.by_table(agg.aggregate(recs, TIME))[("grok/mod97", "smoke")]
        fast = next(r for r in rows if r.method == "fast")
        assert fast.verdict == verdict and fast.n_paired == n
        assert (fast.mde is None) == (n < 6)
        text = terminal.render_all(build_tables(rows))
        assert (f"underpowered n={n}" in text) == (n < 6)
        assert (f"MDE at {n} paired seeds: none (underpowered)" in text) == (n < 6)


def test_sign_flip_is_exact_up_to_sixteen_and_seeded_above() -> None:
    assert cmp.sign_flip_pvalue([1.0, 2.0, 3.0]) == 0.25  # 2 of 8 flips reach |6|
    assert cmp.sign_flip_pvalue([0.0] * 8) == 1.0
    big = list(np.linspace(0.1, 2.0, 20))
    p = cmp.sign_flip_pvalue(big, seed=5)
    assert p == cmp.sign_flip_pvalue(big, seed=5) and 0 < p < 1e-3
    assert cmp.holm([0.01, 0.04, None, 0.03]) == [0.03, 0.06, None, 0.06]


# ------------------------------------------------------------------------------------------ every seed counts


def test_a_method_that_diverges_on_two_of_three_seeds_ranks_below_one_that_always_reaches() -> None:
    recs = [timed("steady", s, 2000 + 100 * s) for s in range(3)]
    recs += [
        timed("lucky", 0, 400),
        timed("lucky", 1, None, status="diverged"),
        timed("lucky", 2, None, status="diverged"),
    ]
    recs += [timed("ref", s, 3000) for s in range(3)]
    rows = {r.method: r for r in agg.aggregate(recs, TIME)}
    lucky, steady = rows["lucky"], rows["steady"]
    assert steady.rank == 1 and lucky.rank == 3 and rows["ref"].rank == 2
    cell = lucky.cells["steps"]
    # two not-reached seeds at the budget: the median is a lower bound at the budget, unbounded above
    assert cell.n == 3 and cell.censored == 2 and cell.median == 5000 and cell.median_censored
    assert cell.median_upper is None
    assert lucky.restricted_mean == pytest.approx((400 + 5000 + 5000) / 3)
    assert lucky.cells["reached"].rate == pytest.approx(1 / 3)  # the floor 0 for the diverged seeds
    table = terminal.render_all(build_tables(list(rows.values())))
    assert "≥5000" in table and "not-ok seeds: not reached (steps to target); floor 0 (success)" in table


def test_restricted_mean_breaks_ties_between_censored_medians() -> None:
    # both medians censored at the budget; "closer" reached once early, so its restricted mean is lower
    recs = [timed("closer", s, v) for s, v in enumerate([100, 5000, 5000])]
    recs += [timed("never", s, 5000) for s in range(3)]
    rows = {r.method: r for r in agg.aggregate(recs, TIME)}
    assert rows["closer"].rank == 1 and rows["never"].rank == 2


def test_floors_are_applied_and_unfloored_columns_say_how_many() -> None:
    recs = [err_rec("ref", s, 0.1) for s in range(3)]
    recs += [err_rec("flaky", s, 0.01, 0.9) for s in range(2)] + [err_rec("flaky", 2, 0.0, status="failed")]
    rows = {r.method: r for r in agg.aggregate(recs, ERR)}
    flaky = rows["flaky"]
    # the failed seed scores the floors: error 1.0 (the median of [0.01, 0.01, 1.0] is 0.01), AUC 0.5
    assert flaky.cells["err"].n == 3 and flaky.cells["err"].median == pytest.approx(0.01)
    assert flaky.cells["err"].iqr == pytest.approx((0.01, 0.505))
    assert flaky.cells["auc"].mean == pytest.approx((0.9 + 0.9 + 0.5) / 3)
    # a column without a floor: the runs that report it, and the cell says how many of how many
    assert flaky.cells["spread"].n == 2 and flaky.cells["spread"].seeds == 3
    wide = terminal.render_all(build_tables(list(rows.values())))
    assert "1.5 n=2/3" in wide
    assert "not-ok seeds: floor 1 (rel err); floor 0.5 (auc); left out, n shown (spread)" in wide


def test_a_run_over_budget_at_some_settings_keeps_the_scores_it_has() -> None:
    """A Hessian estimator refused at a small budget but scored at a large one: the scored value counts,
    a missing one takes the floor, and a failed run's stray value never does."""
    over = make_record("eigsh", 0, {"auc": 0.9}, family="hessian", task="h/t", status="budget_exceeded")
    kept = make_record("eigsh", 1, {"err": 0.02, "auc": 0.7}, family="hessian", task="h/t", status="budget_exceeded")
    failed = err_rec("eigsh", 2, 0.0, status="failed").model_copy(update={"metrics": {"err": 0.0, "auc": 0.95}})
    obs = agg.observations([over, kept, failed], ERR["hessian"].columns()[0])
    assert obs.values == (1.0, 0.02, 1.0)
    auc = agg.observations([over, kept, failed], ERR["hessian"].columns()[1])
    assert auc.values == (0.9, 0.7, 0.5)


def test_development_seeds_never_enter_tables_unless_asked() -> None:
    recs = [timed("ref", s, 3000) for s in range(3)] + [timed("ref", DEV_SEED_BASE + s, 10) for s in range(3)]
    (row,) = agg.aggregate(recs, TIME)
    assert row.seed_list == [0, 1, 2] and row.primary == 3000
    (dev,) = agg.aggregate(recs, TIME, include_dev=True)
    assert dev.seeds == 6
    data = site.collect(recs, families=TIME, method_descriptions={})
    assert sorted(r.seed for r in data.records) == [0, 1, 2] and data.rows[0].seeds == 3


# ------------------------------------------------------------------------------------------ profile and IQM


def test_profile_and_iqm_read_errors_and_an_exact_answer_is_best() -> None:
    recs = []
    for task in ("h/a", "h/b"):
        recs += [err_rec("ref", s, 1e-3, task=task) for s in range(4)]
        recs += [err_rec("exact", s, 0.0, task=task) for s in range(4)]
        recs += [err_rec("worse", s, 4e-3, task=task) for s in range(4)]
    rows = agg.aggregate(recs, ERR)
    summary = {s.method: s for s in agg.family_summary(rows, recs, ERR, taus=[1.0, 2.0, 4.0, 8.0])}
    assert summary["exact"].profile == [1.0, 1.0, 1.0, 1.0] and summary["exact"].profile_score == 1.0
    # errors 1e-3 and 4e-3 against an exact answer floored at 1e-12 of the scale: never within 8x
    assert summary["ref"].profile == [0.0, 0.0, 0.0, 0.0]
    # IQM of reference error / run error: 1 for the reference, 1/4 for 4x the error, clipped for exact
    assert summary["ref"].iqm == pytest.approx(1.0)
    assert summary["worse"].iqm == pytest.approx(0.25)
    assert summary["exact"].iqm == stats.SCORE_CLIP
    assert stats.normalised_score(math.inf, 1.0, 1e-12) == 0.0


# ------------------------------------------------------------------------------------------ untrusted text


def test_terminal_strips_control_characters_and_markdown_escapes_the_tier() -> None:
    evil = "m\x1b[31mred\x1b]0;title\x07\x00"
    recs = [timed("ref", s, 3000, tier="t|<b>") for s in range(2)] + [
        timed("x", s, 100, label=evil, tier="t|<b>") for s in range(2)
    ]
    rows = agg.aggregate(recs, TIME)
    text = terminal.render_all(build_tables(rows))
    assert "\x1b" not in text and "\x00" not in text and "\x07" not in text and "mred" in text
    summaries = agg.family_summary(rows, recs, TIME)
    md = markdown.summary_table(summaries)
    assert "t\\|&lt;b&gt;" in md and "<b>" not in md
    assert "\x1b" not in markdown.render_all(build_tables(rows))


def test_site_slugs_never_collide() -> None:
    names = ["a-b", "a/b", "A-B", "a-b-" + site.slug("a/b").rsplit("-", 1)[1], "x" * 100, "x" * 101]
    slugs = [site.slug(n) for n in names]
    assert len(set(slugs)) == len(slugs), slugs
    assert site.slug("prune-mlp") == "prune-mlp"
