"""The hessian family: oracle counting and refusal, spectral metrics, exact ground truth, caching, end to end."""

from __future__ import annotations

import json
import math
from fractions import Fraction
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest
import scipy.stats
import torch

from phenomena_bench.baselines.hessian import (
    EdgeOfStabilityPrior,
    Eigsh,
    Hutchinson,
    Lanczos,
    PowerIteration,
    ZeroHVPFloor,
)
from phenomena_bench.core.curves import downsample
from phenomena_bench.core.errors import MethodError
from phenomena_bench.core.family import RunContext
from phenomena_bench.core.method import NoHyperparameters
from phenomena_bench.core.seeds import method_seed
from phenomena_bench.core.spec import TIER_NAMES
from phenomena_bench.families.hessian import (
    FAMILY,
    BudgetExceededError,
    HessianMethod,
    HVPOracle,
    ProblemInfo,
    SpectrumEstimate,
)
from phenomena_bench.families.hessian.checkpoints import _digits_split, loss_value
from phenomena_bench.families.hessian.family import draw_seed
from phenomena_bench.families.hessian.oracle import reverse_over_reverse_hvp
from phenomena_bench.families.hessian.score import BadEstimate, checked_estimate
from phenomena_bench.families.hessian.spec import PRIMARY_BUDGET, HessianData, HessianModel, HessianTask
from phenomena_bench.families.hessian.spectral import (
    RELATIVE_ERROR_FLOOR,
    density_scores,
    kolmogorov_smirnov,
    relative_error,
    subspace_overlap,
    symlog,
    topk_relative_error,
    wasserstein1,
)
from phenomena_bench.families.hessian.truth import GroundTruthError, cached_truth, compute_truth, dense_hessian
from phenomena_bench.registry import load_task
from tests.helpers import ROOT, cli

TASKS = sorted((ROOT / "tasks" / "hessian").glob("*.yaml"))
TRAINED = ROOT / "tasks" / "hessian" / "digits-tanh-ce-trained.yaml"
INIT = ROOT / "tasks" / "hessian" / "digits-tanh-ce-init.yaml"
EOS = ROOT / "tasks" / "hessian" / "digits-tanh-mse-eos.yaml"
BUDGETS = (5, 10, 30)


def _matrix_oracle(matrix: torch.Tensor, budget: int) -> HVPOracle:
    return HVPOracle(lambda block: matrix @ block, matrix.shape[0], budget, "cpu")


def _linear_problem(n_train: int = 60) -> tuple[torch.Tensor, torch.Tensor, object]:
    """Linear regression on digits with the MSE loss: a quadratic whose Hessian is I_10 ⊗ [X 1]ᵀ[X 1]/n."""
    data, model = HessianData(n_train=n_train), HessianModel(hidden=[])
    split = _digits_split(data)
    net = model.build()
    theta = net.init(torch.Generator().manual_seed(0))

    def loss_fn(params: torch.Tensor) -> torch.Tensor:
        return loss_value("mse", net.forward(params, split.x_train), split.y_train)

    return theta, split.x_train, loss_fn


def _closed_form_hessian(x: torch.Tensor) -> torch.Tensor:
    n, d = x.shape
    design = torch.cat([x, torch.ones(n, 1, dtype=x.dtype)], dim=1)
    gram = design.T @ design / n
    outputs = 10
    hessian = torch.zeros(outputs * (d + 1), outputs * (d + 1), dtype=x.dtype)
    for o in range(outputs):  # θ = [W (10×d, row-major), b (10)]
        index = torch.tensor([*range(o * d, (o + 1) * d), outputs * d + o])
        hessian[index[:, None], index[None, :]] = gram
    return hessian


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("hessian-cache")


def _smoke(path: Path = TRAINED, draws: int = 5) -> HessianTask:
    """The smoke tier with fewer estimator draws than the protocol's 20 (the tests check plumbing and
    orders of magnitude, not medians; 20 draws would multiply the tests' HVPs by 4)."""
    task = load_task(path).resolve("smoke")
    assert isinstance(task, HessianTask)
    return task.model_copy(update={"evaluation": task.evaluation.model_copy(update={"draws": draws})})


def _run(method: HessianMethod, cache_dir: Path, task: HessianTask | None = None, seed: int = 0) -> dict:
    outcome = FAMILY.run(task or _smoke(), method, RunContext(seed=seed, device="cpu", cache_dir=cache_dir))
    return {"status": outcome.status, "error": outcome.error, **outcome.metrics}


# ----------------------------------------------------------------------------------------------- oracle


def test_oracle_counts_columns_and_refuses_past_the_budget() -> None:
    matrix = torch.diag(torch.arange(1.0, 6.0, dtype=torch.float64))
    oracle = _matrix_oracle(matrix, budget=4)
    out = oracle(torch.ones(5, dtype=torch.float64))
    assert torch.equal(out, torch.arange(1.0, 6.0, dtype=torch.float64)) and oracle.used == 1
    block = oracle(np.eye(5)[:, :3])  # NumPy in, NumPy out; a block of 3 costs 3
    assert isinstance(block, np.ndarray) and np.allclose(block, np.diag(np.arange(1.0, 6.0))[:, :3])
    assert oracle.used == 4 and oracle.remaining == 0 and not oracle.refused
    with pytest.raises(BudgetExceededError):
        oracle(torch.ones(5, dtype=torch.float64))
    assert oracle.refused and oracle.used == 4  # refused before computing or charging
    assert oracle.requested == 5  # the refused product is counted as asked for


def test_oracle_refuses_a_block_that_would_overrun_without_partial_work() -> None:
    calls: list[int] = []
    oracle = HVPOracle(lambda block: calls.append(block.shape[1]) or block, 3, budget=5, device="cpu")
    oracle(torch.ones(3, 2, dtype=torch.float64))
    with pytest.raises(BudgetExceededError):
        oracle(torch.ones(3, 4, dtype=torch.float64))
    assert calls == [2] and oracle.used == 2


def test_oracle_rejects_bad_shapes_and_values() -> None:
    oracle = _matrix_oracle(torch.eye(4, dtype=torch.float64), budget=10)
    for bad in (torch.ones(3), torch.ones(4, 0), torch.ones(2, 4, 1)):
        with pytest.raises(ValueError):
            oracle(bad)
    with pytest.raises(ValueError):
        oracle(torch.tensor([1.0, float("nan"), 0.0, 0.0]))
    assert oracle.used == 0


def test_reverse_over_reverse_hvp_matches_the_closed_form_hessian() -> None:
    theta, x, loss_fn = _linear_problem()
    hvp = reverse_over_reverse_hvp(loss_fn, theta)
    probes = torch.randn(theta.numel(), 4, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    expected = _closed_form_hessian(x) @ probes
    assert torch.allclose(hvp(probes), expected, rtol=1e-10, atol=1e-12)
    assert torch.allclose(hvp(probes[:, :1]), expected[:, :1], rtol=1e-10, atol=1e-12)


# ---------------------------------------------------------------------------------------------- metrics


def test_relative_errors_read_missing_as_zero() -> None:
    assert relative_error(1.1, 1.0) == pytest.approx(0.1)
    assert relative_error(None, -2.0) == 1.0
    truth = np.array([4.0, 2.0, 1.0, -1.0])
    assert topk_relative_error(np.array([1.0, 4.0, 2.0]), truth, 3) == RELATIVE_ERROR_FLOOR  # any order; floored
    assert relative_error(2.0, 2.0) == RELATIVE_ERROR_FLOOR and relative_error(2.0 + 1e-14, 2.0) == RELATIVE_ERROR_FLOOR
    assert topk_relative_error(np.array([4.0, 2.2]), truth, 2) == pytest.approx(0.1)
    assert topk_relative_error(np.array([4.0]), truth, 2) == 1.0  # second rank missing → 0
    assert topk_relative_error(None, truth, 2) == 1.0


def test_subspace_overlap_is_span_based_and_cannot_be_inflated() -> None:
    basis, _ = np.linalg.qr(np.random.default_rng(0).normal(size=(50, 6)))
    top = basis[:, :3]
    assert subspace_overlap(top, top[:, ::-1] * -1, 3) == pytest.approx(1.0)
    angle = 0.3
    tilted = top.copy()
    tilted[:, 2] = math.cos(angle) * top[:, 2] + math.sin(angle) * basis[:, 5]
    assert subspace_overlap(top, tilted, 3) == pytest.approx((2 + math.cos(angle) ** 2) / 3)
    repeated = np.repeat(top[:, :1], 3, axis=1)  # one direction three times counts once
    assert subspace_overlap(top, repeated, 3) == pytest.approx(1 / 3)
    assert subspace_overlap(top, top[:, :1], 3) == pytest.approx(1 / 3)
    assert subspace_overlap(top, None, 3) == 0.0


def test_wasserstein_and_ks_are_exact_on_known_measures() -> None:
    one = np.ones(1)
    assert wasserstein1(np.array([0.0]), one, np.array([2.5]), one) == pytest.approx(2.5)
    assert wasserstein1(np.array([0.5]), one, np.array([0.0, 1.0]), np.array([0.5, 0.5])) == pytest.approx(0.5)
    assert kolmogorov_smirnov(np.array([0.5]), one, np.array([0.0, 1.0]), np.array([0.5, 0.5])) == pytest.approx(0.5)
    rng = np.random.default_rng(3)
    a, b = rng.normal(size=7), rng.normal(size=40) * 2
    wa, wb = rng.random(7), np.full(40, 1 / 40)
    wa /= wa.sum()
    uniform_a = np.full(7, 1 / 7)
    assert kolmogorov_smirnov(a, uniform_a, b, wb) == pytest.approx(scipy.stats.ks_2samp(a, b).statistic)


def _wasserstein1_before_scipy(
    nodes_a: np.ndarray, weights_a: np.ndarray, nodes_b: np.ndarray, weights_b: np.ndarray
) -> float:
    """The hand-written W1 that `wasserstein1` replaced (scipy.stats.wasserstein_distance now), kept as the
    reference: scores recorded before the switch must agree with those after it."""
    support = np.concatenate([nodes_a, nodes_b])
    order = np.argsort(support, kind="stable")
    support = support[order]
    steps = np.concatenate([weights_a, -np.asarray(weights_b)])[order]
    cdf_gap = np.cumsum(steps)[:-1]
    return float(np.sum(np.abs(cdf_gap) * np.diff(support)))


def _random_spectrum_and_estimate(rng: np.random.Generator, p: int) -> tuple[np.ndarray, ...]:
    """A Hessian-like spectrum (a bulk near 0, a few large outliers) and a Ritz-like estimate of it."""
    truth = rng.standard_normal(p) * rng.choice([1e-3, 1.0])
    outliers = int(rng.integers(0, 6))
    truth[:outliers] = 1.0 + 50.0 * rng.random(outliers)
    truth = np.sort(truth)[::-1]
    m = int(rng.integers(1, 301))
    nodes = rng.choice(truth, m) * (1 + 0.01 * rng.standard_normal(m)) if rng.random() < 0.7 else rng.normal(size=m)
    if rng.random() < 0.2:
        nodes[: m // 2] = 0.0  # ties among the nodes
    weights = rng.random(m) ** 3
    return nodes, weights / weights.sum(), truth, np.full(p, 1.0 / p)


def test_wasserstein1_through_scipy_equals_the_former_implementation_on_random_spectra() -> None:
    """Both are exact up to rounding, which grows with the number of atoms and with the support's range: the
    scores (W1 over the range, over mean |λ|, on the symlog axis) agree to 1e-12 of the range, W1 itself to
    1e-12 relative on small spectra and 1e-10 on the shipped tasks' sizes (P up to 5,962)."""
    rng = np.random.default_rng(11)
    worst_range, worst_rel_small, worst_rel = 0.0, 0.0, 0.0
    for trial in range(120):
        p = (50, 610, 3466, 5962)[trial % 4]
        nodes, weights, truth, uniform = _random_spectrum_and_estimate(rng, p)
        threshold = 1e-4 * np.abs(truth).max()
        for x, y in ((nodes, truth), (symlog(nodes, threshold), symlog(truth, threshold))):
            old, new = _wasserstein1_before_scipy(x, weights, y, uniform), wasserstein1(x, weights, y, uniform)
            spread = max(x.max(), y.max()) - min(x.min(), y.min())
            worst_range = max(worst_range, abs(new - old) / spread)
            worst_rel = max(worst_rel, abs(new - old) / old)
            if p == 50:
                worst_rel_small = max(worst_rel_small, abs(new - old) / old)
    assert worst_range <= 1e-12 and worst_rel_small <= 1e-12 and worst_rel <= 1e-10, (
        worst_range,
        worst_rel_small,
        worst_rel,
    )


def test_wasserstein1_is_exact_up_to_rounding_against_rational_arithmetic() -> None:
    rng = np.random.default_rng(5)
    for _ in range(10):
        x, wx, y, wy = _random_spectrum_and_estimate(rng, 40)
        support = [Fraction(float(v)) for v in np.concatenate([x, y])]
        ux, uy = [Fraction(float(v)) for v in wx], [Fraction(float(v)) for v in wy]
        steps = [v / sum(ux) for v in ux] + [-v / sum(uy) for v in uy]  # exactly normalised, as scipy does
        order = sorted(range(len(support)), key=lambda i: support[i])
        gap, exact = Fraction(0), Fraction(0)
        for a, b in zip(order[:-1], order[1:], strict=True):
            gap += steps[a]
            exact += abs(gap) * (support[b] - support[a])
        assert wasserstein1(x, wx, y, wy) == pytest.approx(float(exact), rel=1e-12)


def test_density_scores_are_zero_for_the_truth_and_one_for_a_point_mass_at_zero() -> None:
    truth = np.array([5.0, 1.0, 0.1, 0.0, -0.2, -1.0])
    exact = density_scores(truth, truth, np.full(6, 1 / 6), 1e-4)
    assert all(value == pytest.approx(0.0, abs=1e-15) for value in exact.values())
    floor = density_scores(truth, None, None, 1e-4)
    assert floor["w1_mean_abs"] == pytest.approx(1.0)
    assert floor["w1_range"] == pytest.approx(np.abs(truth).mean() / 6.0)
    shifted = density_scores(truth, truth + 0.05, np.full(6, 1 / 6), 1e-4)
    assert shifted["w1_range"] == pytest.approx(0.05 / 6.0) and shifted["w1_symlog"] > 0
    # symlog: odd, linear below the threshold, one decade per factor 10 above it
    x = np.array([-1e3, -1e-6, 0.0, 1e-6, 1e3])
    assert np.allclose(symlog(x, 1.0), -symlog(-x, 1.0)) and symlog(np.array([1e-9]), 1.0)[0] == pytest.approx(
        1e-9 / math.log(10), rel=1e-6
    )
    assert symlog(np.array([999.0]), 1.0)[0] == pytest.approx(3.0)


def test_estimates_are_validated() -> None:
    with pytest.raises(ValueError, match="sum to 1"):
        checked_estimate(SpectrumEstimate(density_nodes=[0.0, 1.0], density_weights=[0.5, 0.6]), 3)
    with pytest.raises(ValueError, match="topk_vectors"):
        checked_estimate(SpectrumEstimate(topk_vectors=np.ones((4, 2))), 3)
    with pytest.raises(BadEstimate, match="not finite"):
        checked_estimate(SpectrumEstimate(lambda_max=float("inf")), 3)
    with pytest.raises(BadEstimate, match="NaN or infinity"):
        checked_estimate(SpectrumEstimate(topk_values=[1.0, float("nan")]), 3)
    with pytest.raises(BadEstimate, match="only 3"):
        checked_estimate(SpectrumEstimate(topk_values=[1.0, 2.0, 3.0, 4.0]), 3)
    with pytest.raises(BadEstimate, match="2 column"):
        checked_estimate(SpectrumEstimate(topk_values=[1.0], topk_vectors=np.ones((3, 2))), 3)
    with pytest.raises(BadEstimate, match="real number"):
        checked_estimate(SpectrumEstimate(trace="7"), 3)


# ----------------------------------------------------------------------------------------- ground truth


def test_ground_truth_of_the_quadratic_model_is_the_closed_form() -> None:
    theta, x, loss_fn = _linear_problem()
    closed = _closed_form_hessian(x)
    assert torch.allclose(dense_hessian(loss_fn, theta, block_size=97), closed, rtol=1e-12, atol=1e-13)
    truth = compute_truth(loss_fn, theta, reverse_over_reverse_hvp(loss_fn, theta), n_top=5)
    expected = np.sort(np.linalg.eigvalsh(closed.numpy()))[::-1]
    assert np.allclose(truth.eigenvalues, expected, rtol=1e-10, atol=1e-12)
    assert truth.trace == pytest.approx(float(torch.trace(closed)), rel=1e-12)
    assert truth.probe_rel_err < 1e-12
    residual = closed.numpy() @ truth.top_vectors - truth.top_vectors * truth.eigenvalues[:5]
    assert np.abs(residual).max() < 1e-10


def test_ground_truth_refuses_an_oracle_that_disagrees() -> None:
    theta, _, loss_fn = _linear_problem(30)
    good = reverse_over_reverse_hvp(loss_fn, theta)
    with pytest.raises(GroundTruthError):
        compute_truth(loss_fn, theta, lambda block: good(block) * (1 + 1e-6), n_top=2)


def test_ground_truth_is_cached_by_content_and_recomputed_when_corrupt(tmp_path: Path) -> None:
    theta, _, loss_fn = _linear_problem(30)
    hvp = reverse_over_reverse_hvp(loss_fn, theta)
    computed: list[int] = []

    def compute() -> object:
        computed.append(1)
        return compute_truth(loss_fn, theta, hvp, n_top=3)

    first, hit1 = cached_truth({"case": "a"}, tmp_path, compute)
    second, hit2 = cached_truth({"case": "a"}, tmp_path, compute)
    assert (hit1, hit2, len(computed)) == (False, True, 1)
    assert np.array_equal(first.eigenvalues, second.eigenvalues)
    assert np.array_equal(first.top_vectors, second.top_vectors)
    _, hit3 = cached_truth({"case": "b"}, tmp_path, compute)
    assert not hit3 and len(computed) == 2
    for path in (tmp_path / "hessian-truth").glob("*.npz"):
        path.write_bytes(b"torn")
    _, hit4 = cached_truth({"case": "a"}, tmp_path, compute)
    assert not hit4 and len(computed) == 3
    assert not list((tmp_path / "hessian-truth").glob(".*tmp"))  # no temporary files left behind


# ------------------------------------------------------------------------------------------ end to end


def test_task_specs_load_at_every_tier() -> None:
    assert len(TASKS) >= 5
    for path in TASKS:
        spec = load_task(path)
        for tier in TIER_NAMES:
            resolved = spec.resolve(tier)
            assert resolved.family == "hessian" and PRIMARY_BUDGET in resolved.evaluation.budgets
            assert resolved.evaluation.draws >= 20 and min(resolved.evaluation.budgets) <= 5


def test_lanczos_and_eigsh_recover_lambda_max_and_runs_are_deterministic(cache_dir: Path) -> None:
    lanczos = _run(Lanczos(), cache_dir)
    assert lanczos["status"] == "ok" and lanczos["checkpoint_train_acc"] > 0.95
    assert lanczos["lambda_max_rel_err@30"] < 1e-6 and lanczos["top5_overlap@30"] > 0.99
    assert lanczos["lambda_max_rel_err@5"] > lanczos["lambda_max_rel_err@10"] > lanczos["lambda_max_rel_err@30"]
    assert lanczos["lambda_max_rel_err_p90@10"] >= lanczos["lambda_max_rel_err@10"]
    assert lanczos["trace_rel_err@30"] < lanczos["trace_rel_err@5"]  # exact on the Krylov space + 1 probe vs 1
    assert all(lanczos[f"hvps_used@{b}"] == b for b in BUDGETS)
    eigsh = _run(Eigsh(), cache_dir)
    assert eigsh["truth_from_cache"] and eigsh["lambda_max_rel_err@30"] < 1e-6
    assert all(eigsh[f"hvps_used@{b}"] <= b for b in BUDGETS)
    again = _run(Lanczos(), cache_dir)
    volatile = {k for k in lanczos if k.startswith("wall_s") or k == "truth_from_cache"}
    assert {k: v for k, v in again.items() if k not in volatile} == {
        k: v for k, v in lanczos.items() if k not in volatile
    }


def test_trace_and_floor_baselines_score_where_expected(cache_dir: Path) -> None:
    hutch = _run(Hutchinson(), cache_dir)
    assert hutch["lambda_max_rel_err@30"] is None  # not claimed, not scored
    assert hutch["trace_rel_err@30"] < hutch["trace_rel_err@5"]  # medians over the draws: 1/sqrt(B) shows
    floor = _run(ZeroHVPFloor(), cache_dir)
    assert floor["trace_rel_err@10"] == 1.0 and floor["w1_mean_abs@10"] == pytest.approx(1.0)
    assert floor["hvps_used@30"] == 0
    power = _run(PowerIteration(), cache_dir)
    assert power["top10_rel_err@30"] >= 0.99  # one eigenvalue: the other nine ranks score as missing


class _Greedy(HessianMethod[NoHyperparameters]):
    """Spends one HVP more than any budget over 20; swallows the refusal and answers anyway."""

    name: ClassVar[str] = "test-greedy"

    def estimate(self, oracle: HVPOracle, info: ProblemInfo, budget: int) -> SpectrumEstimate:
        v = torch.ones(info.num_params, dtype=torch.float64)
        try:
            for _ in range(budget + 1 if budget > 20 else budget):
                oracle(v)
        except BudgetExceededError:
            pass
        return SpectrumEstimate(lambda_max=float(v @ oracle(v)) if oracle.remaining else 1.0)


def test_overrunning_a_budget_is_recorded_not_truncated(cache_dir: Path) -> None:
    result = _run(_Greedy(), cache_dir)
    assert result["status"] == "budget_exceeded" and result["budget_exceeded"]
    assert result["budget_exceeded@30"] and result["lambda_max_rel_err@30"] is None
    assert not result["budget_exceeded@10"] and result["lambda_max_rel_err@10"] is not None
    # the reason names the overrun budget and what was asked for (the refused 31st product included), only it
    assert result["error"] == "over the HVP budget (budget 30: asked for up to 31 HVPs in 5 of 5 draws)"


class _Blowup(HessianMethod[NoHyperparameters]):
    """A finite estimate up to budget 10, then a NaN λ_max (as an unstable iteration would give)."""

    name: ClassVar[str] = "test-blowup"

    def estimate(self, oracle: HVPOracle, info: ProblemInfo, budget: int) -> SpectrumEstimate:
        return SpectrumEstimate(lambda_max=1.0 if budget <= 10 else float("nan"))


def test_a_non_finite_estimate_fails_the_run_naming_the_budget_and_field(cache_dir: Path) -> None:
    """An estimate is the method's output, not a training: NaN in it is a bad return value (failed)."""
    with pytest.raises(MethodError, match=r"estimate\(\) at budget 30: SpectrumEstimate.lambda_max is nan"):
        FAMILY.run(_smoke(), _Blowup(), RunContext(seed=0, device="cpu", cache_dir=cache_dir))


def test_a_malformed_estimate_is_still_the_methods_error(cache_dir: Path) -> None:
    class Misshapen(HessianMethod[NoHyperparameters]):
        name: ClassVar[str] = "test-misshapen"

        def estimate(self, oracle: HVPOracle, info: ProblemInfo, budget: int) -> SpectrumEstimate:
            return SpectrumEstimate(topk_vectors=np.ones((3, 2)))

    with pytest.raises(MethodError, match="topk_vectors"):
        FAMILY.run(_smoke(), Misshapen(), RunContext(seed=0, device="cpu", cache_dir=cache_dir))


def test_the_train_loss_curve_keeps_the_points_the_former_downsampler_kept() -> None:
    for n in (201, 202, 250, 399, 400, 401, 1001, 2001, 4321, 10_001, 99_999, 1_000_001):
        index = np.unique(np.linspace(0, n - 1, 200).round().astype(int))  # hessian's former _downsample
        xs = [float(i) for i in range(n)]
        curve = downsample(xs, [2.0 * x for x in xs], 200, x_label="step")
        assert curve.x == [float(i) for i in index] and curve.y == [2.0 * i for i in index]


def test_smoke_run_through_the_cli(tmp_path: Path) -> None:
    store = tmp_path / "store"
    tasks = tmp_path / "tasks" / "hessian"
    tasks.mkdir(parents=True)
    spec = INIT.read_text()
    assert "  draws: 20\n" in spec
    (tasks / INIT.name).write_text(spec.replace("  draws: 20\n", "  draws: 2\n"))  # plumbing, not medians
    done = cli(
        "run",
        "--task",
        "hessian/digits-tanh-ce-init",
        "--method",
        "hessian-lanczos",
        "hessian-hutchinson",
        "--tier",
        "smoke",
        "--store",
        str(store),
        "--device",
        "cpu",
        "--executor",
        "local",
        "--quiet",
        "--format",
        "json",
        "--tasks-dir",
        str(tmp_path / "tasks"),
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    shown = cli("show", "--store", str(store), "--format", "json", timeout=120)
    assert shown.returncode == 0, shown.stderr[-2000:]
    records = [json.loads(p.read_text()) for p in (store / "runs").glob("*/*.json")]
    assert {r["method"]["name"] for r in records} == {"hessian-lanczos", "hessian-hutchinson"}
    assert all(r["status"] == "ok" for r in records)
    lanczos = next(r for r in records if r["method"]["name"] == "hessian-lanczos")
    assert lanczos["metrics"]["lambda_max_rel_err@30"] < 1e-6
    assert "hessian-lanczos" in shown.stdout


@pytest.mark.parametrize("name", ["hessian-power-deflated", "hessian-hutchpp", "hessian-slq"])
def test_remaining_baselines_stay_within_budget_and_score(name: str, cache_dir: Path) -> None:
    from phenomena_bench.registry import resolve_method

    result = _run(resolve_method(name), cache_dir)
    assert result["status"] == "ok"
    assert all(result[f"hvps_used@{b}"] <= b for b in BUDGETS)
    claimed = "top10_rel_err@30" if name == "hessian-power-deflated" else "trace_rel_err@30"
    assert result[claimed] is not None and result[claimed] < 1.0


def test_eigsh_answers_at_every_budget_with_exact_hvp_accounting() -> None:
    """ARPACK's first iteration needs ncv + 1 products: cut short, eigsh falls back to its Krylov space's Ritz
    values instead of returning nothing (which scored worse than the zero-HVP floor)."""
    rng = np.random.default_rng(0)
    basis, _ = np.linalg.qr(rng.normal(size=(200, 200)))
    spectrum = np.concatenate([[5.0, 4.9, 4.0], rng.uniform(-1.0, 1.0, 197)])
    matrix = torch.from_numpy((basis * spectrum) @ basis.T)
    info = ProblemInfo(200, 1, "mse", 0, 0.5, 1.0, 1.0, rng_seed=3, device="cpu")
    errors = {}
    for budget in (1, 5, 10, 30, 100):
        oracle = _matrix_oracle(matrix, budget)
        estimate = Eigsh().estimate(oracle, info, budget)
        assert estimate.lambda_max is not None and math.isfinite(estimate.lambda_max) and not oracle.refused
        assert estimate.lambda_max <= 5.0 + 1e-9  # a Ritz value never exceeds λ_max
        assert oracle.used == budget or (budget == 100 and oracle.used <= budget)
        errors[budget] = relative_error(estimate.lambda_max, 5.0)
    assert errors[1] > errors[10] > errors[30] and errors[100] < 1e-8


def test_the_reference_is_not_saturated_on_the_init_checkpoint_and_exact_scores_best(cache_dir: Path) -> None:
    init = _smoke(INIT)
    lanczos = _run(Lanczos(), cache_dir, init)
    floor = _run(ZeroHVPFloor(), cache_dir, init)
    primary = FAMILY.primary_metric
    assert primary == f"lambda_max_rel_err@{PRIMARY_BUDGET}"
    assert 1e-6 < lanczos[primary] < floor[primary]
    # eigsh at the primary budget is finite and better than knowing nothing
    eigsh = _run(Eigsh(), cache_dir, init)
    assert eigsh[primary] is not None and eigsh[primary] < floor[primary]
    # an exact answer (the true λ_max) scores the floor of the metric: the best any method can get
    truth = lanczos["true_lambda_max"]

    class Oracle(HessianMethod[NoHyperparameters]):
        name: ClassVar[str] = "test-exact"
        targets: ClassVar[frozenset[str]] = frozenset({"lambda_max"})

        def estimate(self, oracle: HVPOracle, info: ProblemInfo, budget: int) -> SpectrumEstimate:
            return SpectrumEstimate(lambda_max=truth)

    exact = _run(Oracle(), cache_dir, init)
    assert exact[primary] == RELATIVE_ERROR_FLOOR <= min(lanczos[primary], floor[primary], eigsh[primary])
    assert FAMILY.columns()[0].metric == primary and FAMILY.columns()[0].error == "value"


def test_estimator_draws_are_independent_of_the_checkpoint_seed_and_of_each_other() -> None:
    seeds = {draw_seed(seed, d) for seed in (0, 1) for d in range(20)}
    assert len(seeds) == 40 and not seeds & {0, 1, method_seed(0), method_seed(1)}


def test_the_edge_of_stability_prior_is_two_over_the_step_size(cache_dir: Path) -> None:
    eos = _run(EdgeOfStabilityPrior(), cache_dir, _smoke(EOS))
    assert eos["hvps_used@30"] == 0 and eos["trace_rel_err@10"] is None  # lambda_max only
    assert eos["lambda_max_rel_err@10"] == pytest.approx(abs(4.0 - eos["true_lambda_max"]) / eos["true_lambda_max"])
