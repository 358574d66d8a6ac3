"""The hessian family's draws in lockstep: the same estimates as one by one, blocks equal to columns, lanes
independent of each other's overruns, and shared artefacts built once however many workers ask."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest
import torch

from phenomena_bench.baselines.hessian import Eigsh, Hutchinson, HutchPlusPlus, Lanczos, PowerIteration
from phenomena_bench.core.family import RunContext
from phenomena_bench.core.lockstep import Lockstep
from phenomena_bench.core.method import NoHyperparameters
from phenomena_bench.families.hessian import FAMILY, HessianMethod, HVPOracle, ProblemInfo, SpectrumEstimate
from phenomena_bench.families.hessian.oracle import MAX_BLOCK, LockstepHVP, reverse_over_reverse_hvp, serve_blocks
from phenomena_bench.families.hessian.spec import HessianTask
from phenomena_bench.families.hessian.truth import HessianTruth, cached_truth
from phenomena_bench.registry import load_task
from tests.helpers import ROOT

#: The initialisation checkpoint: no training steps to pay for before the truth.
INIT = ROOT / "tasks" / "hessian" / "digits-tanh-ce-init.yaml"
#: Relative agreement of a lockstep run's scores with the same run one draw after another (float64: a
#: block product differs from column products only by rounding).
TOLERANCE = 1e-8


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("hessian-batching-cache")


def _smoke(draws: int = 4) -> HessianTask:
    task = load_task(INIT).resolve("smoke")
    assert isinstance(task, HessianTask)
    return task.model_copy(update={"evaluation": task.evaluation.model_copy(update={"draws": draws})})


def _metrics(method: HessianMethod[Any], cache_dir: Path, batchable: bool) -> dict[str, Any]:
    method.batchable = batchable  # type: ignore[misc]  # same class both ways: only the scheduling differs
    outcome = FAMILY.run(_smoke(), method, RunContext(seed=0, device="cpu", cache_dir=cache_dir))
    return {"status": outcome.status, "error": outcome.error, **outcome.metrics}


@pytest.mark.parametrize(
    "make",
    [Lanczos, PowerIteration, Hutchinson, HutchPlusPlus, Eigsh],
    ids=["lanczos", "power", "hutchinson", "hutchpp", "eigsh"],
)
def test_lockstep_draws_give_the_estimates_of_draws_one_by_one(make: type, cache_dir: Path) -> None:
    alone = _metrics(make(), cache_dir, batchable=False)
    together = _metrics(make(), cache_dir, batchable=True)
    assert alone["status"] == together["status"] == "ok"
    compared = 0
    for name, value in alone.items():
        if name.startswith(("wall_s", "truth_from_cache")):
            continue
        if isinstance(value, float):
            assert together[name] == pytest.approx(value, rel=TOLERANCE), name
            compared += 1
        else:
            assert together[name] == value, name
    assert compared > 10
    # the harness's FLOP meter is per draw: interleaving must not move one lane's FLOPs onto another
    assert together["method_flops"] == alone["method_flops"] > 0


def _problem() -> tuple[torch.Tensor, Any]:
    torch.manual_seed(0)
    x, y = torch.randn(40, 5, dtype=torch.float64), torch.randn(40, dtype=torch.float64)
    theta = torch.randn(5 * 6 + 6, dtype=torch.float64)

    def loss_fn(params: torch.Tensor) -> torch.Tensor:
        w1, w2 = params[:30].view(6, 5), params[30:]
        return ((torch.tanh(x @ w1.T) @ w2 - y) ** 2).mean()

    return theta, loss_fn


def test_a_block_product_equals_its_columns_one_by_one() -> None:
    theta, loss_fn = _problem()
    hvp = reverse_over_reverse_hvp(loss_fn, theta)
    block = torch.randn(theta.numel(), MAX_BLOCK + 3, dtype=torch.float64)  # more than one chunk
    together = hvp(block)
    columns = torch.cat([hvp(block[:, j : j + 1]) for j in range(block.shape[1])], dim=1)
    torch.testing.assert_close(together, columns, rtol=1e-12, atol=1e-14)
    # and serve_blocks splits the stacked product back per request, with shares of the time summing up
    parts = serve_blocks(hvp, [block[:, :2], block[:, 2:3], block[:, 3:10]])
    torch.testing.assert_close(torch.cat([p for p, _ in parts], dim=1), columns[:, :10], rtol=1e-12, atol=1e-14)
    assert [p.shape[1] for p, _ in parts] == [2, 1, 7]


def test_a_lane_over_budget_leaves_the_other_lanes_alone() -> None:
    matrix = torch.diag(torch.arange(1.0, 7.0, dtype=torch.float64))
    lockstep: Lockstep[torch.Tensor, tuple[torch.Tensor, float]] = Lockstep(
        lambda blocks: serve_blocks(lambda b: matrix @ b, blocks)
    )

    def lane(asks: int) -> tuple[int, bool, torch.Tensor | None]:
        oracle = HVPOracle(LockstepHVP(lockstep), 6, budget=3, device="cpu")
        out = None
        try:
            for _ in range(asks):
                out = oracle(torch.ones(6, dtype=torch.float64))
        except Exception:
            pass
        return oracle.used, oracle.refused, out

    results = lockstep.run([lambda: lane(3), lambda: lane(5), lambda: lane(2)])
    assert [r.error for r in results] == [None, None, None]
    values = [r.value for r in results]
    assert [(v[0], v[1]) for v in values if v] == [(3, False), (3, True), (2, False)]
    for value in values:
        assert value is not None and value[2] is not None
        torch.testing.assert_close(value[2], torch.arange(1.0, 7.0, dtype=torch.float64))
    assert max(lockstep.batches) == 3  # the products were served together


class _Greedy(HessianMethod[NoHyperparameters]):
    """Overruns at budget 5 only: every other budget must keep its scores."""

    name: ClassVar[str] = "test-greedy-batched"
    version: ClassVar[str] = "1"
    batchable: ClassVar[bool] = True
    targets: ClassVar[frozenset[str]] = frozenset({"trace"})

    def estimate(self, oracle: HVPOracle, info: ProblemInfo, budget: int) -> SpectrumEstimate:
        probes = torch.ones(oracle.dim, budget + (1 if budget == 5 else 0), dtype=torch.float64)
        return SpectrumEstimate(trace=float((probes * oracle(probes)).sum()) / probes.shape[1])


def test_an_overrun_in_the_lockstep_is_recorded_for_its_budget_only(cache_dir: Path) -> None:
    outcome = FAMILY.run(_smoke(), _Greedy(), RunContext(seed=0, device="cpu", cache_dir=cache_dir))
    assert outcome.status == "budget_exceeded"
    assert outcome.error is not None and "budget 5: asked for up to 6 HVPs in 4 of 4 draws" in outcome.error
    assert outcome.metrics["budget_exceeded@5"] is True and outcome.metrics["trace_rel_err@5"] is None
    assert outcome.metrics["budget_exceeded@10"] is False and outcome.metrics["trace_rel_err@10"] is not None


def test_a_truth_being_built_is_waited_for_not_rebuilt(tmp_path: Path) -> None:
    calls: list[int] = []

    def compute() -> HessianTruth:
        calls.append(1)
        time.sleep(0.3)  # long enough for the second worker to find the lock taken
        return HessianTruth(np.array([2.0, 1.0]), np.eye(2), 0.0, 0.0)

    results: list[tuple[HessianTruth, bool]] = []

    def worker() -> None:
        results.append(cached_truth({"checkpoint": "k", "n_top": 2}, tmp_path, compute))

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(calls) == 1
    assert sorted(from_cache for _, from_cache in results) == [False, True]
    for truth, _ in results:
        np.testing.assert_array_equal(truth.eigenvalues, [2.0, 1.0])
