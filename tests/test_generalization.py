"""The generalization family: Kendall and conditional τ, what a measure is handed, the cache, end to end."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest
import scipy.stats
import torch

from phenomena_bench.core.family import RunContext
from phenomena_bench.core.method import NoHyperparameters
from phenomena_bench.families.generalization import (
    FAMILY,
    GeneralizationMethod,
    Measurement,
    MeasureOracle,
    NetworkInfo,
    TrainedNetwork,
    TrainingData,
)
from phenomena_bench.families.generalization.population import configs, training_tensors
from phenomena_bench.families.generalization.score import axis_groups, kendall_tau, tau_scores
from phenomena_bench.families.generalization.spec import GeneralizationTask
from phenomena_bench.families.hessian.checkpoints import _digits_split
from phenomena_bench.families.hessian.spec import HessianData
from phenomena_bench.registry import load_task, shipped_tasks_dir
from tests.helpers import cli_in_process

TASK = "generalization/digits-mlp"


def _task(tier: str) -> GeneralizationTask:
    spec = load_task(shipped_tasks_dir() / "generalization" / "digits-mlp.yaml").resolve(tier)  # type: ignore[arg-type]
    assert isinstance(spec, GeneralizationTask)
    return spec


def test_kendall_tau_matches_a_hand_made_ranking() -> None:
    # One discordant pair, (2, 3), among six: (5 - 1) / 6.
    assert kendall_tau([1, 2, 3, 4], [1, 3, 2, 4]) == pytest.approx(4 / 6)
    # A tie in the measure: tau-b = 2 / sqrt(2 * 3).
    assert kendall_tau([1, 1, 2], [1, 2, 3]) == pytest.approx(2 / np.sqrt(6))
    assert kendall_tau([4, 3, 2, 1], [1, 2, 3, 4]) == pytest.approx(-1.0)
    assert np.isnan(kendall_tau([1, 1, 1], [1, 2, 3]))
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=30), rng.normal(size=30)
    assert kendall_tau(a, b) == pytest.approx(scipy.stats.kendalltau(a, b).statistic)


def test_conditional_tau_of_a_one_axis_measure_is_near_zero_on_the_other_axes() -> None:
    rng = np.random.default_rng(1)
    keys = [(a, b, c, s) for a in range(4) for b in range(2) for c in range(2) for s in range(12)]
    grid = np.array(keys, dtype=float)
    target = grid[:, 0] + grid[:, 1] + grid[:, 2] + 0.01 * rng.normal(size=len(keys))
    measure = grid[:, 0] + 0.01 * rng.normal(size=len(keys))  # tracks axis "a" only
    scores = tau_scores(measure, target, keys, ("a", "b", "c"), np.random.default_rng(2), 100)
    assert scores["conditional_tau/a"] == pytest.approx(1.0)
    assert abs(scores["conditional_tau/b"]) < 0.25 and abs(scores["conditional_tau/c"]) < 0.25  # type: ignore[arg-type]
    assert scores["granulated_tau"] == pytest.approx(1 / 3, abs=0.1)
    assert scores["kendall_tau"] is not None and scores["kendall_tau"] > 0.4  # the overall τ rewards it
    lo, hi = scores["granulated_tau_lo"], scores["granulated_tau_hi"]
    assert lo is not None and hi is not None and lo <= scores["granulated_tau"] <= hi
    # Groups hold every network that differs from another in one axis only.
    assert all(len(g) == 4 for g in axis_groups(keys, 0)) and len(axis_groups(keys, 1)) == 4 * 2 * 12


class _Spy(GeneralizationMethod[NoHyperparameters]):
    """Records what the harness hands it; then tries every way into the data it was given."""

    name: ClassVar[str] = "test-spy"
    version: ClassVar[str] = "1"
    seen: ClassVar[list[tuple[Any, ...]]] = []

    def measure(
        self, network: TrainedNetwork, data: TrainingData, oracle: MeasureOracle, info: NetworkInfo
    ) -> Measurement:
        type(self).seen.append((network, data, oracle, info))
        return Measurement(value=float(network.num_params), predicted_test_loss=1.0, category="x")


def test_a_measure_is_handed_the_training_data_only(tmp_path: Path) -> None:
    task = _task("smoke")
    _Spy.seen.clear()
    outcome = FAMILY.run(task, _Spy(), RunContext(seed=0, device="cpu", cache_dir=tmp_path))
    assert outcome.status == "ok" and len(_Spy.seen) == len(configs(task))
    for (network, data, oracle, info), config in zip(_Spy.seen, configs(task), strict=True):
        split = _digits_split(HessianData(n_train=config.n_train, split_seed=task.data.split_seed))
        x_train, y_train = training_tensors(task, config)
        assert set(vars(data)) == {"x", "y", "num_classes"}  # nothing else rides along
        assert torch.equal(data.x, x_train) and torch.equal(data.y, y_train) and data.x.shape[0] == config.n_train
        assert info.num_samples == config.n_train
        # No tensor reachable from what the measure holds has a test row in it.
        held = [data.x, oracle._x, *(t for t in vars(network).values() if isinstance(t, torch.Tensor))]
        test_rows = {tuple(row.tolist()) for row in split.x_test[:50]}
        for tensor in held:
            if tensor.ndim == 2 and tensor.shape[1] == split.x_test.shape[1]:
                assert not test_rows & {tuple(row.tolist()) for row in tensor}
        assert not any(hasattr(obj, "x_test") for obj in (network, data, oracle, info))
        assert network.theta.data_ptr() != network._theta.data_ptr()  # a copy: the measure cannot edit it


def test_smoke_end_to_end_through_the_cli_and_the_second_run_builds_no_population(tmp_path: Path) -> None:
    store, cache = tmp_path / "store", tmp_path / "cache"
    common = ["--task", TASK, "--tier", "smoke", "--seeds", "1", "--store", str(store), "--cache-dir", str(cache)]
    first = cli_in_process("run", *common, "--method", "gen-weight-norm", "gen-effective-gram", "--executor", "local")
    assert first.returncode == 0, first.stderr
    populations = sorted((cache / "generalization-population").glob("*.npz"))
    assert len(populations) == 1
    stamp = populations[0].stat().st_mtime_ns
    second = cli_in_process("run", *common, "--method", "gen-sharpness", "--executor", "local")
    assert second.returncode == 0, second.stderr
    assert populations[0].stat().st_mtime_ns == stamp
    shown = cli_in_process("show", "--store", str(store), "--runs", "--format", "json")
    records = {r["method"]["name"]: r for r in json.loads(shown.stdout)}
    assert set(records) == {"gen-weight-norm", "gen-effective-gram", "gen-sharpness"}
    for name, record in records.items():
        metrics = record["metrics"]
        assert record["status"] == "ok" and -1.0 <= metrics["kendall_tau"] <= 1.0
        assert metrics["networks"] == 4 and "granulated_tau" in metrics
        assert metrics["hvps_used"] == (20 if name == "gen-sharpness" else 0)
    gram = records["gen-effective-gram"]["metrics"]  # the one measure that predicts test losses: scored
    assert gram["test_loss_rel_err"] >= 0 and -1 <= gram["test_loss_tau"] <= 1
    assert "test_loss_rel_err" not in records["gen-weight-norm"]["metrics"]
    built = [name for name, r in records.items() if r["metrics"]["population_from_cache"] is False]
    assert len(built) == 1 and built[0] != "gen-sharpness"  # the first run's first method built it, once
