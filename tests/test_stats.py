"""Statistics against hand-computed cases, on synthetic records (no family module needed)."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pytest

from phenomena_bench.analysis import comparison as cmp
from phenomena_bench.analysis import rows as agg
from phenomena_bench.analysis import statistics as stats
from phenomena_bench.analysis import tables
from phenomena_bench.analysis.rows import Row
from phenomena_bench.core.family import Column
from phenomena_bench.report import markdown, terminal
from phenomena_bench.store import MethodIdentity, RunRecord


@dataclass
class FakeFamily:
    """A family as aggregation sees it: columns, primary metric, direction, reference."""

    cols: list[Column]
    primary_metric: str
    direction: Literal["min", "max"]
    reference_method: str = "ref"
    name: str = "grokking"
    extra: dict[str, Any] = field(default_factory=dict)

    def columns(self) -> list[Column]:
        return self.cols


GROK = FakeFamily(
    cols=[
        Column("steps to 99%", "steps_to_target", "median_iqr", event="reached", digits=3),
        Column("reached", "reached", "rate"),
        Column("final val acc", "final_val_acc", "mean_ci"),
    ],
    primary_metric="steps_to_target",
    direction="min",
)
ACC = FakeFamily(
    cols=[Column("accuracy", "acc", "mean_ci"), Column("loss", "loss", "mean")],
    primary_metric="acc",
    direction="max",
    name="pruning",
)
FAMILIES = {"grokking": GROK, "pruning": ACC}


def make_record(
    method: str,
    seed: int,
    metrics: dict[str, Any],
    *,
    task: str = "grok/mod97",
    family: str = "grokking",
    status: str = "ok",
    tier: str = "smoke",
    version: str = "1",
    task_version: int = 1,
    label: str | None = None,
    finished: str = "2026-01-01T00:00:00",
    wall: float = 1.0,
    curves: dict[str, Any] | None = None,
    hp: dict[str, Any] | None = None,
    source: str | None = None,
) -> RunRecord:
    key = f"{task}-{tier}-{label or method}-{version}-{task_version}-{seed}-{finished}".replace("/", "_")
    return RunRecord(
        key=key,
        task_id=task,
        task_version=task_version,
        family=family,
        tier=tier,
        seed=seed,
        method=MethodIdentity(
            name=method,
            family=family,
            version=version,
            hyperparameters=hp or {},
            label=label or method,
            ref=method,
            source=source,
        ),
        status=status,
        metrics=metrics if status in ("ok", "budget_exceeded") else {},
        curves=curves or {},
        error=None if status == "ok" else "boom",
        wall_time_s=wall,
        device="cpu",
        torch_version="2.x",
        benchmark_version="0.1.0",
        started_at="2026-01-01T00:00:00",
        finished_at=finished,
        task={"id": task, "family": family},
    )


def grok(method: str, seed: int, steps: float, reached: bool, acc: float = 1.0, **kw: Any) -> RunRecord:
    return make_record(
        method,
        seed,
        {"steps_to_target": steps, "reached": reached, "final_val_acc": acc, "flops": 1e9 * (seed + 1)},
        **kw,
    )


def rows_by_method(rows: list[Row]) -> dict[str, Row]:
    return {r.method: r for r in rows}


def text_table(rows: list[Row]) -> str:
    return terminal.render_all(tables.build_tables(rows))


def md_table(rows: list[Row]) -> str:
    return markdown.render_all(tables.build_tables(rows))


# ------------------------------------------------------------------------------------------ pure helpers


def test_quantile_bounds_without_censoring_is_numpy_quantile() -> None:
    vals = [5.0, 1.0, 3.0, 9.0]
    lo, hi = stats.quantile_bounds(vals, [False] * 4, 0.5)
    assert lo == hi == 4.0
    assert stats.quantile_bounds(vals, [False] * 4, 0.25) == (np.quantile(vals, 0.25),) * 2


def test_quantile_bounds_with_censoring_bracket_the_median() -> None:
    # 3 events (10, 20, 30) and one run censored at 15: the median lies in [17.5, 25].
    lo, hi = stats.quantile_bounds([10, 15, 20, 30], [False, True, False, False], 0.5)
    assert (lo, hi) == (17.5, 25.0)
    # censored at the budget (100) in 3 of 4 runs: the median is >= 100 and unbounded above
    lo, hi = stats.quantile_bounds([40, 100, 100, 100], [False, True, True, True], 0.5)
    assert lo == 100.0 and math.isinf(hi)


def test_quantile_bounds_are_bit_identical_without_censoring() -> None:
    # the reviewer's case: two-value float medians were flagged censored 46% of the time (two implementations)
    rng = np.random.default_rng(0)
    for n in (2, 3):
        for _ in range(1000):
            vals = list(rng.random(n) * 10.0 ** rng.integers(-9, 4))
            for q in (0.25, 0.5, 0.75):
                lo, hi = stats.quantile_bounds(vals, [False] * n, q)
                assert lo == hi
            s = stats.summarise("median_iqr", vals, [False] * n)
            assert not s.median_censored and s.iqr_censored == (False, False)


def test_compare_on_restricted_times_both_censored_seeds_differ_by_zero() -> None:
    # six seeds, both methods censored at the budget on five of them: the differences are (-100, 0, 0, 0, 0, 0)
    col = GROK.cols[0]
    method = [grok("m", s, 5000 if s else 100, s == 0) for s in range(6)]
    ref = [grok("ref", s, 5000 if s else 200, s == 0) for s in range(6)]
    obs_m, obs_r = agg.observations(method, col, 5000.0), agg.observations(ref, col, 5000.0)
    assert list(cmp.paired_differences(obs_m, obs_r, 5000.0)) == [-100.0, 0, 0, 0, 0, 0]
    c = cmp.compare("min", obs_m, obs_r, horizon=5000.0, seed=1)
    # every sign flip has |sum| = 100: p = 1, a tie, never NaN
    assert c.verdict == "tie" and c.p_value == 1.0 and c.n_paired == 6
    assert c.diff_mean == pytest.approx(-100 / 6)
    assert c.diff_low is not None and c.diff_high is not None and c.diff_low < c.diff_mean < c.diff_high


def test_t_interval_by_hand() -> None:
    vals = [1.0, 2.0, 3.0, 4.0, 10.0]
    lo, hi = stats.t_interval(vals)  # type: ignore[misc]
    half = 2.7764451051977987 * np.std(vals, ddof=1) / math.sqrt(5)  # t_{0.975, 4}
    assert (lo, hi) == pytest.approx((4.0 - half, 4.0 + half))
    assert stats.t_interval([3.0]) is None
    assert stats.t_interval([2.0, 2.0, 2.0]) == (2.0, 2.0)


def test_median_interval_is_order_statistics_and_unbounded_when_too_few() -> None:
    # n = 10: P(Binom(10, 1/2) <= 1) = 11/1024 <= 0.025 < P(<= 2) = 56/1024, so [x_(2), x_(9)]
    assert stats.order_statistic_rank(10) == 2
    assert stats.order_statistic_rank(6) == 1 and stats.order_statistic_rank(5) is None
    vals = [float(v) for v in range(1, 11)]
    assert stats.median_interval(vals) == (2.0, 9.0)
    assert stats.median_interval(vals[:5]) == (None, None)  # 93.75% at best: not claimed as 95%
    # the upper order statistic censored: unbounded above
    cens = [False] * 8 + [True, True]
    assert stats.median_interval(vals, cens) == (2.0, None)


def test_wilson_interval() -> None:
    lo, hi = stats.wilson_interval(3, 3)  # type: ignore[misc]
    assert hi == 1.0 and 0.4 < lo < 0.5  # never [1, 1] from three successes
    assert stats.wilson_interval(0, 0) is None


def test_iqm_matches_the_middle_half_mean() -> None:
    # 8 values: drop the 2 lowest and 2 highest, mean of the middle 4
    vals = [100, 1, 2, 3, 4, 5, 6, -50]
    assert stats.iqm(vals) == pytest.approx(np.mean([2, 3, 4, 5]))
    assert stats.iqm([7.0]) == 7.0


def test_stratified_bootstrap_iqm_interval_contains_point_estimate() -> None:
    scores = {"a": [1.0, 1.1, 0.9, 1.2], "b": [2.0, 2.1, 1.9, 2.2]}
    ci = stats.stratified_bootstrap_iqm(scores, seed=3)
    point = stats.iqm([s for v in scores.values() for s in v])
    assert ci is not None and ci[0] <= point <= ci[1]
    assert ci == stats.stratified_bootstrap_iqm(scores, seed=3)


def test_performance_profile_by_hand() -> None:
    # errors, lower is better. task t1: best 10 (A); B 20 (ratio 2). t2: best 5 (B); A 15 (ratio 3). t3: A only
    # (B did not finish).
    errors = {"A": {"t1": 10, "t2": 15, "t3": 7}, "B": {"t1": 20, "t2": 5, "t3": None}}
    prof = stats.performance_profile(errors, [1.0, 2.0, 3.0, 4.0])
    assert prof["A"] == pytest.approx([2 / 3, 2 / 3, 1.0, 1.0])
    assert prof["B"] == pytest.approx([1 / 3, 2 / 3, 2 / 3, 2 / 3])
    # accuracies 0.91 and 0.75 read as errors 0.09 and 0.25: a ratio of 2.8, not 0.91 / 0.75 = 1.2
    acc = {"A": {"t": stats.as_error("one_minus", 0.91)}, "B": {"t": stats.as_error("one_minus", 0.75)}}
    assert stats.performance_profile(acc, [1.0, 2.0, 3.0]) == {"A": [1.0, 1.0, 1.0], "B": [0.0, 0.0, 1.0]}
    # area of a constant profile of 1 is 1; of a step from 0 to 1 at tau=2 on [1, 3] is a trapezoid
    assert stats.profile_score([1, 1, 1], [1, 2, 3]) == pytest.approx(1.0)
    assert stats.profile_score([0, 1, 1], [1, 2, 3]) == pytest.approx(0.75)


def test_cost_metric_names() -> None:
    for name in ["flops", "steps_run", "hvps_used@300", "search_steps", "epochs_run", "cost_gpu_hours", "steps"]:
        assert agg.is_cost_metric(name), name
    for name in ["steps_to_target", "final_val_acc", "acc@0.9", "reached"]:
        assert not agg.is_cost_metric(name), name


def test_format_number() -> None:
    assert tables.format_number(1200.0) == "1200"
    assert tables.format_number(0.95347) == "0.953"
    assert tables.format_number(None) == "–"
    assert tables.format_number(12345.67) == "12346"


# ------------------------------------------------------------------------------------------ aggregate


def test_aggregate_time_to_event_with_censoring() -> None:
    ref_steps = [(1000, True), (2000, True), (3000, True), (5000, False), (5000, False), (1500, True), (5000, False)]
    recs = [grok("ref", s, v, ok) for s, (v, ok) in enumerate(ref_steps)]
    recs += [grok("fast", s, v, True) for s, v in enumerate([100, 200, 300, 400, 500, 150])]
    recs.append(make_record("fast", 6, {}, status="diverged"))
    rows = rows_by_method(agg.aggregate(recs, FAMILIES))
    ref, fast = rows["ref"], rows["fast"]
    # no family horizon: the largest recorded value of the table (5000) is the budget a not-reached run counts at
    assert ref.horizon == 5000
    # median of [1000, 1500, 2000, 3000, >=5000 x3] is exactly 3000 (censored values are above it)
    cell = ref.cells["steps_to_target"]
    assert cell.median == 3000 and cell.median_censored is False and cell.median_upper == 3000
    # q3 sits on censored values: a lower bound
    assert cell.iqr == (1750, 5000) and cell.iqr_censored == (False, True)
    assert cell.mean is None  # never averaged as if finished
    assert cell.restricted_mean == pytest.approx((1000 + 2000 + 3000 + 1500 + 3 * 5000) / 7)
    assert cell.interval == (1000, None) and cell.interval_method == "order statistics"  # n=7: [x_(1), x_(7)]
    assert ref.censored == 3 and cell.censored == 3
    assert ref.success_rate == pytest.approx(4 / 7)
    assert ref.cells["reached"].rate == pytest.approx(4 / 7)
    assert ref.cells["final_val_acc"].mean == pytest.approx(1.0)
    # the diverged run is a seed that did not reach the target: it enters the median at the horizon
    fast_cell = fast.cells["steps_to_target"]
    assert fast.seeds == 7 and fast.count("diverged") == 1 and fast.count("ok") == 6
    assert fast_cell.n == 7 and fast_cell.censored == 1 and fast_cell.median == 300 and fast_cell.mean is None
    assert fast.success_rate == pytest.approx(6 / 7)
    assert fast.rank == 1 and ref.rank == 2
    assert ref.is_reference and ref.vs_reference is None and ref.verdict is None
    # paired restricted differences: six negative, seed 6 both not reached (0): p = 4/128 (exact sign flips)
    c = fast.vs_reference
    assert c is not None and c.n_paired == 7 and c.p_adjusted == pytest.approx(4 / 128)
    assert c.verdict == "better" == fast.verdict and fast.p_value == c.p_adjusted and fast.n_paired == 7
    assert c.diff_mean == pytest.approx((-900 - 1800 - 2700 - 4600 - 4500 - 1350) / 7)
    assert c.diff_high is not None and c.diff_high < 0 and fast.diff_interval == (c.diff_low, c.diff_high)
    assert fast.mde is not None and fast.mde_seeds == 7 and fast.mde == ref.mde
    assert fast.cost.metrics["flops"] == pytest.approx(3.5e9)  # median over ok seeds 0..5 of 1e9*(seed+1)
    json.dumps([r.model_dump(mode="json") for r in rows.values()], allow_nan=False)  # JSON-safe


def test_median_on_censored_values_is_a_lower_bound_and_ranks_last() -> None:
    # one run of ten reached the target at 4000, nine were censored at the budget 5000
    recs = [grok("slow", s, 5000 if s else 4000, s == 0) for s in range(10)]
    recs += [grok("ref", s, 4500, True) for s in range(10)]
    rows = rows_by_method(agg.aggregate(recs, FAMILIES))
    slow = rows["slow"]
    assert slow.cells["steps_to_target"].median == 5000 and slow.cells["steps_to_target"].median_censored is True
    assert slow.primary_censored is True
    assert slow.rank == 2 and rows["ref"].rank == 1
    # restricted differences: -500 once, +500 nine times; |sum| >= 4000 for 22 of 1024 flips
    assert slow.vs_reference is not None and slow.vs_reference.verdict == "worse"
    assert slow.vs_reference.p_adjusted == pytest.approx(22 / 1024)
    text = text_table(list(rows.values()))
    assert "≥5000" in text and "worse p=0.021" in text


def test_underpowered_when_no_seed_is_paired() -> None:
    recs = [
        make_record("ref", s, {"acc": a, "loss": 1.0}, family="pruning", task="p")
        for s, a in enumerate([0.80, 0.85, 0.90, 0.82])
    ]
    recs += [
        make_record("other", s + 10, {"acc": a, "loss": 2.0}, family="pruning", task="p")
        for s, a in enumerate([0.81, 0.86, 0.89, 0.84])
    ]
    rows = rows_by_method(agg.aggregate(recs, FAMILIES))
    other = rows["other"]
    assert other.vs_reference is not None and other.vs_reference.verdict == "underpowered"
    assert other.n_paired == 0 and other.p_value is None and other.mde is None
    assert other.cells["acc"].mean == pytest.approx(0.85)
    assert other.cells["acc"].interval == pytest.approx(stats.t_interval([0.81, 0.86, 0.89, 0.84]))
    assert other.cells["acc"].interval_method == "t"
    assert other.cells["loss"].mean == 2.0
    assert other.rank == 1 and rows["ref"].rank == 2


def test_paired_comparison_detects_a_consistent_small_gain() -> None:
    # Between-seed spread (0.6..0.9) dwarfs the gain (+0.01), but every seed improves: pairing sees it.
    base = [0.6, 0.7, 0.8, 0.9, 0.65, 0.75]
    recs = [make_record("ref", s, {"acc": a, "loss": 0}, family="pruning", task="p") for s, a in enumerate(base)]
    recs += [
        make_record("plus", s, {"acc": a + 0.01, "loss": 0}, family="pruning", task="p") for s, a in enumerate(base)
    ]
    rows = rows_by_method(agg.aggregate(recs, FAMILIES))
    plus = rows["plus"].vs_reference
    assert plus is not None and plus.verdict == "better" and plus.n_paired == 6
    assert plus.p_adjusted == pytest.approx(2 / 64)  # the smallest two-sided p of six pairs
    assert (plus.diff_low, plus.diff_high) == pytest.approx((0.01, 0.01))


def test_no_verdict_from_two_seeds() -> None:
    recs = [grok("ref", s, 1000, True) for s in range(2)] + [grok("fast", s, 10, True) for s in range(2)]
    rows = rows_by_method(agg.aggregate(recs, FAMILIES))
    assert rows["fast"].verdict == "underpowered" and rows["fast"].n_paired == 2 and rows["fast"].rank == 1
    assert "underpowered n=2" in text_table(list(rows.values()))


def test_ties_share_a_rank_and_rows_without_values_are_unranked() -> None:
    recs = [
        make_record(m, s, {"acc": 0.5, "loss": 0}, family="pruning", task="p") for m in ("a", "b") for s in range(2)
    ]
    recs += [make_record("c", s, {}, family="pruning", task="p", status="failed") for s in range(2)]
    rows = rows_by_method(agg.aggregate(recs, FAMILIES))
    assert rows["a"].rank == rows["b"].rank == 1
    assert rows["c"].rank is None and rows["c"].count("failed") == 2 and rows["c"].success_rate == 0
    assert rows["c"].cells["acc"].mean is None


def test_only_latest_versions_and_latest_record_per_seed_count() -> None:
    recs = [
        grok("ref", 0, 999, True, version="1", finished="2026-01-01T00:00:00"),
        grok("ref", 0, 100, True, version="2", finished="2026-01-02T00:00:00"),
        grok("ref", 1, 300, True, version="2", finished="2026-01-02T00:00:00"),
        grok("ref", 1, 200, True, version="2", finished="2026-01-03T00:00:00"),  # a rerun of seed 1
        grok("ref", 2, 7, True, version="2", task_version=0 + 1, finished="2026-01-03T00:00:00", task="old"),
    ]
    rows = [r for r in agg.aggregate(recs, FAMILIES) if r.task_id == "grok/mod97"]
    assert len(rows) == 1
    assert rows[0].version == "2" and rows[0].seeds == 2
    assert rows[0].cells["steps_to_target"].median == 150


def test_labels_split_rows_and_tiers_split_tables() -> None:
    recs = [grok("adamw", s, 100, True) for s in range(2)]
    recs += [grok("adamw", s, 50, True, label="adamw[lr=0.01]", hp={"lr": 0.01}) for s in range(2)]
    recs += [grok("adamw", s, 70, True, tier="default") for s in range(2)]
    rows = agg.aggregate(recs, FAMILIES)
    assert {(r.tier, r.method) for r in rows} == {
        ("smoke", "adamw"),
        ("smoke", "adamw[lr=0.01]"),
        ("default", "adamw"),
    }
    groups = agg.by_table(rows)
    assert set(groups) == {("grok/mod97", "smoke"), ("grok/mod97", "default")}
    assert [r.method for r in groups[("grok/mod97", "smoke")]] == ["adamw[lr=0.01]", "adamw"]


def test_format_table_for_any_column_kind() -> None:
    recs = [grok("ref", s, 1000 * (s + 1), s < 2, acc=0.9 + 0.01 * s) for s in range(3)]
    recs += [make_record("ref", s, {"acc": 0.5 + 0.1 * s, "loss": 0.25}, family="pruning", task="p") for s in range(3)]
    text = text_table(agg.aggregate(recs, FAMILIES))
    assert "grok/mod97 (v1, tier smoke, family grokking)" in text
    # the terminal puts what a cell holds under the column's name
    lines = text.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("rank") and "steps to 99%" in line)
    assert "median [IQR]" in lines[header + 1] and set(lines[header + 2]) == {"-", " "}
    assert "2000 [1500, ≥2500]" in text  # q3 of [1000, 2000, >=3000] interpolates into the censored value
    assert "2/3 (67%)" in text  # rate column
    assert "mean [95% CI]" in text and "0.6 [" in text
    assert "0.25" in text
    md = md_table(agg.aggregate(recs, FAMILIES))
    assert md.startswith("### ") and "| rank" in md
    # headers are escaped too (hessian's "W1/mean|λ|" would otherwise split a Markdown table)
    assert "steps to 99% (median \\[IQR\\])" in md and "accuracy (mean \\[95% CI\\])" in md and "loss (mean)" in md
    assert "2000 \\[1500, ≥2500\\]" in md


def test_markdown_table_escapes_submission_controlled_text() -> None:
    recs = [grok("x", s, 10, True, label="<script>alert(1)</script>|[a](http://e)") for s in range(2)]
    md = md_table(agg.aggregate(recs, FAMILIES))
    assert "<script>" not in md and "&lt;script&gt;" in md
    assert "\\|\\[a\\](http://e)" in md


def test_family_summary_iqm_and_profile() -> None:
    recs = []
    for task, (ref_steps, new_steps) in {"t1": (1000, 500), "t2": (2000, 1000)}.items():
        recs += [grok("ref", s, ref_steps, True, task=task) for s in range(4)]
        recs += [grok("new", s, new_steps, True, task=task) for s in range(4)]
    recs += [grok("never", s, 5000, False, task="t1") for s in range(4)]
    rows = agg.aggregate(recs, FAMILIES)
    summary = {s.method: s for s in agg.family_summary(rows, recs, FAMILIES, taus=[1.0, 2.0, 4.0])}
    # normalised score = reference median / value: ref scores 1, new scores 2 on every run
    assert summary["ref"].iqm == pytest.approx(1.0)
    assert summary["new"].iqm == pytest.approx(2.0)
    assert summary["new"].iqm_interval == pytest.approx((2.0, 2.0))
    assert summary["never"].iqm == 0.0 and summary["never"].tasks == 1
    # profile: new is best on both tasks; ref is 2x slower on both; never finished nothing
    assert summary["new"].profile == [1.0, 1.0, 1.0]
    assert summary["ref"].profile == [0.0, 1.0, 1.0]
    assert summary["never"].profile == [0.0, 0.0, 0.0]
    assert summary["new"].profile_score == pytest.approx(1.0)
