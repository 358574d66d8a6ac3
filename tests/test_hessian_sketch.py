"""The sketched eigendecomposition baseline and the magnitude-mask / top-eigenspace overlap measurement."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from phenomena_bench.baselines.hessian import SketchedEigh
from phenomena_bench.cli import main
from phenomena_bench.core.spec import resolve_tier
from phenomena_bench.families.hessian.api import HVPOracle, ProblemInfo
from phenomena_bench.families.hessian.eigenspace_overlap import (
    MagnitudeEigenspaceOverlap,
    mask_overlap,
    overlap_profile,
    top_eigenspace,
    top_magnitude_mask,
)
from phenomena_bench.families.hessian.spectral import subspace_overlap, topk_relative_error
from phenomena_bench.registry import load_task

ROOT = Path(__file__).resolve().parents[1]
TOP100 = ROOT / "tasks" / "hessian" / "digits-tanh-ce-trained-top100.yaml"
TRAINED = ROOT / "tasks" / "hessian" / "digits-tanh-ce-trained.yaml"


def _info(dim: int, seed: int = 7) -> ProblemInfo:
    return ProblemInfo(dim, 100, "mse", 0, 0.1, 1.0, 1.0, seed, "cpu")


def _low_rank_plus_noise(dim: int, rank: int, seed: int) -> tuple[torch.Tensor, np.ndarray, np.ndarray]:
    """H = U diag(λ) Uᵀ: `rank` outliers in [3, 10] (one negative) over a ±0.05 bulk; its sorted eigenpairs."""
    rng = np.random.default_rng(seed)
    basis, _ = np.linalg.qr(rng.normal(size=(dim, dim)))
    values = np.concatenate([np.linspace(10, 3, rank), [-6.0], 0.05 * rng.normal(size=dim - rank - 1)])
    order = np.argsort(-values)
    return torch.from_numpy((basis * values) @ basis.T), values[order], basis[:, order]


class _RecordingOracle(HVPOracle):
    """An oracle that keeps every block it was asked for (to check the products form one fixed sketch)."""

    def __init__(self, matrix: torch.Tensor, budget: int) -> None:
        super().__init__(lambda block: matrix @ block, matrix.shape[0], budget, "cpu")
        self.asked: list[torch.Tensor] = []

    def __call__(self, v):  # type: ignore[no-untyped-def,override]
        self.asked.append(torch.as_tensor(v).clone())
        return super().__call__(v)


def test_sketch_recovers_the_top_eigenspace_of_a_low_rank_plus_noise_matrix() -> None:
    dim, rank, k, budget = 400, 20, 10, 80
    matrix, values, vectors = _low_rank_plus_noise(dim, rank, seed=0)
    oracle = HVPOracle(lambda block: matrix @ block, dim, budget, "cpu")
    estimate = SketchedEigh().estimate(oracle, _info(dim), budget)
    assert oracle.used == budget
    estimated = np.asarray(estimate.topk_vectors)
    overlap = subspace_overlap(vectors, estimated, k)
    random_basis = np.linalg.qr(np.random.default_rng(1).normal(size=(dim, k)))[0]
    assert subspace_overlap(vectors, random_basis, k) < 0.1  # chance is k/P = 0.025
    assert overlap > 0.98
    assert topk_relative_error(np.asarray(estimate.topk_values), values, k) < 0.05
    assert estimate.lambda_max == pytest.approx(values[0], rel=1e-2)


def test_sketch_is_exact_on_a_low_rank_indefinite_matrix() -> None:
    """The oversampled core recovers an H of rank below the outer sketch exactly, negative eigenvalue included."""
    dim = 120
    rng = np.random.default_rng(3)
    basis, _ = np.linalg.qr(rng.normal(size=(dim, 6)))
    values = np.array([5.0, 3.0, 1.0, 0.5, -2.0, -4.0])
    matrix = torch.from_numpy((basis * values) @ basis.T)
    for recovery in ("oversampled", "nystrom"):
        estimate = SketchedEigh(recovery=recovery).estimate(
            HVPOracle(lambda b: matrix @ b, dim, 20, "cpu"), _info(dim), 20
        )
        found = np.sort(np.asarray(estimate.topk_values))[::-1]
        assert np.allclose(found[:4], values[:4], rtol=1e-8), recovery
        assert np.allclose(np.sort(found)[:2], [-4.0, -2.0], rtol=1e-8), recovery


def test_sketch_asks_one_fixed_sketch_and_its_answer_is_built_from_the_products() -> None:
    """Every product is a column of one test matrix fixed by the seed alone (the same vectors whatever H is),
    exactly the budget is spent, and changing what the oracle returns changes the answer."""
    dim, budget = 200, 60
    first, _, _ = _low_rank_plus_noise(dim, 10, seed=4)
    second, _, _ = _low_rank_plus_noise(dim, 10, seed=5)
    asked, answers = [], []
    for matrix in (first, second):
        oracle = _RecordingOracle(matrix, budget)
        answers.append(np.asarray(SketchedEigh(block=25).estimate(oracle, _info(dim), budget).topk_values))
        assert oracle.used == budget and sum(a.shape[1] for a in oracle.asked) == budget
        asked.append(torch.cat(oracle.asked, dim=1))
    assert torch.equal(asked[0], asked[1])  # non-adaptive: one sketch, not a Krylov sequence
    assert not np.allclose(np.sort(answers[0])[-5:], np.sort(answers[1])[-5:], rtol=1e-3)
    perturbed = HVPOracle(lambda b: first @ b + 1e-3 * torch.ones_like(b), dim, budget, "cpu")
    shifted = np.asarray(SketchedEigh(block=25).estimate(perturbed, _info(dim), budget).topk_values)
    assert not np.allclose(np.sort(shifted), np.sort(answers[0]), rtol=1e-9, atol=0)


def test_sketch_on_the_smoke_top100_task_end_to_end(tmp_path: Path) -> None:
    store, cache, tasks = tmp_path / "store", tmp_path / "cache", tmp_path / "tasks" / "hessian"
    tasks.mkdir(parents=True)
    spec = TOP100.read_text()
    assert "  draws: 20\n" in spec
    (tasks / TOP100.name).write_text(spec.replace("  draws: 20\n", "  draws: 2\n"))  # plumbing, not medians
    args = ["run", "--task", "hessian/digits-tanh-ce-trained-top100", "--tier", "smoke", "--seeds", "1"]
    assert main([*args, "--store", str(store), "--cache-dir", str(cache), "--workers", "1", "--tasks-dir",
                 str(tmp_path / "tasks"), "--method", "hessian-sketch"]) == 0  # fmt: skip
    (path,) = (store / "runs").rglob("*.json")
    metrics = json.loads(path.read_text())["metrics"]
    # P = 610 on the smoke tier: 300 HVPs resolve the top 50 to ~8%, 1,000 (> P) the top 100 to ~3e-4
    assert 0.8 < metrics["top50_overlap@300"] < metrics["top100_overlap@1000"]
    assert metrics["top100_overlap@1000"] > 0.999
    assert metrics["top100_rel_err@1000"] < 1e-2 < metrics["top50_rel_err@300"] < 0.3
    assert metrics["hvps_used@1000"] == 1000 and metrics["budget_exceeded"] is False


def test_overlap_on_a_hand_made_hessian_equals_the_hand_value() -> None:
    """Eigenvectors (e0+e2)/√2 (λ=3), e1 (λ=2), e3 (λ=-5), the rest 0; the largest |θ| on coordinates 0 and 1.

    By λ the top-2 eigenspace is {(e0+e2)/√2, e1}: its energy on coordinates {0, 1} is (1/2 + 1)/2 = 0.75.
    By |λ| (the paper's order) it is {e3, (e0+e2)/√2}: (0 + 1/2)/2 = 0.25."""
    dim = 6
    u = np.zeros((dim, 3))
    u[[0, 2], 0] = 1 / np.sqrt(2)
    u[1, 1] = 1.0
    u[3, 2] = 1.0
    hessian = (u * np.array([3.0, 2.0, -5.0])) @ u.T
    theta = np.array([-4.0, 3.0, 0.1, 0.2, -0.3, 0.0])
    assert top_magnitude_mask(theta, 2).tolist() == [0, 1]
    profile = overlap_profile(theta, hessian, [1, 2])
    assert profile.algebraic == pytest.approx([0.5, 0.75], abs=1e-12)
    assert profile.by_magnitude == pytest.approx([0.0, 0.25], abs=1e-12)
    assert profile.chance(2) == pytest.approx(2 / 6)


def test_overlap_of_a_random_hessian_is_at_chance_level() -> None:
    """With eigenvectors independent of θ the overlap's expectation is exactly k/P (loose statistical check)."""
    dim, k = 300, 30
    rng = np.random.default_rng(11)
    overlaps = []
    for _ in range(5):
        basis, _ = np.linalg.qr(rng.normal(size=(dim, dim)))
        hessian = (basis * rng.normal(size=dim)) @ basis.T
        overlaps.append(overlap_profile(rng.normal(size=dim), hessian, [k]).by_magnitude[0])
    assert np.mean(overlaps) == pytest.approx(k / dim, rel=0.2)
    aligned = np.eye(dim)[:, :k]  # the eigenspace *is* the mask's coordinates: overlap 1
    assert mask_overlap(top_eigenspace(np.arange(dim, 0, -1.0), np.eye(dim), k, by_magnitude=True), np.arange(k)) == 1
    assert mask_overlap(aligned, np.arange(k, 2 * k)) == 0.0


def test_overlap_measurement_on_the_smoke_tier(tmp_path: Path) -> None:
    task = resolve_tier(load_task(TRAINED), "smoke")
    result = MagnitudeEigenspaceOverlap().measure(task, tmp_path, "cpu")
    (table,) = result.tables
    assert [row[0] for row in table.rows] == [10, 50, 100]
    for k, mean, low, high, algebraic, chance, ratio in table.rows:
        assert chance == pytest.approx(k / 610, abs=1e-4) and 0 <= low <= mean <= high <= 1 and 0 <= algebraic <= 1
        assert ratio == pytest.approx(mean / (k / 610), rel=1e-2)
    assert set(result.curves) == {"overlap_by_magnitude", "overlap_algebraic", "chance"}
    assert result.measurement == "hessian/magnitude-eigenspace-overlap" and "chance" in result.summary
