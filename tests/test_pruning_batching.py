"""Pruning trains many networks as one program: stacked training equals training one by one, masks stay
exactly zero, a diverging member leaves the others alone, and seeds run as lanes give the runs done alone."""

from __future__ import annotations

import math
from pathlib import Path
from typing import ClassVar

import pytest
import torch
import torch.nn.functional as F
from torch.nn.utils import prune as torch_prune

import phenomena_bench.baselines.pruning as B
import phenomena_bench.families.pruning.family as family_module
from phenomena_bench.core.errors import MethodError
from phenomena_bench.core.family import RunContext
from phenomena_bench.core.lockstep import Lockstep
from phenomena_bench.core.seeds import method_seed
from phenomena_bench.families.pruning import FAMILY
from phenomena_bench.families.pruning.api import (
    NoHyperparameters,
    PruneResult,
    PruningContext,
    PruningMethod,
    TrainedState,
    random_masks,
)
from phenomena_bench.families.pruning.context import _setup, make_context
from phenomena_bench.families.pruning.masks import make_generator
from phenomena_bench.families.pruning.spec import PruningTask
from phenomena_bench.families.pruning.train import TrainJob, TrainRequest, new_lockstep
from tests.test_pruning import raw_smoke, smoke_task

WEIGHT_TOL = 1e-5  # batched matmuls round differently from a stack of one; nothing else differs


@pytest.fixture(scope="module", autouse=True)
def one_thread() -> object:
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def close(a: TrainedState, b: TrainedState) -> bool:
    return a.weights.keys() == b.weights.keys() and all(
        torch.allclose(a.weights[n], b.weights[n], atol=WEIGHT_TOL, rtol=0) for n in a.weights
    )


def requests(ctx: PruningContext) -> list[TrainRequest]:
    """A dense training, two masks from θ_k and one from a fresh init at step k: every kind the harness makes."""
    fresh = TrainedState({n: w.flip(0) for n, w in ctx.init_state.weights.items()}, ctx.rewind_state.step)
    m1, m2 = (random_masks(ctx.prunable, s, make_generator(0, "t", str(s))) for s in (0.8, 0.95))
    rest = ctx.steps - ctx.rewind_state.step
    return [
        TrainRequest(None, ctx.init_state, ctx.steps),
        TrainRequest(m1, ctx.rewind_state, rest),
        TrainRequest(m2, ctx.rewind_state, rest),
        TrainRequest(m1, fresh, rest),
    ]


@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
def test_train_many_equals_one_by_one(tmp_path: Path, optimizer: str) -> None:
    task = smoke_task(
        optimizer=optimizer, momentum=0.9 if optimizer == "sgd" else 0.0, weight_decay=1e-3, rewind_step=10
    )
    together, test = _setup(task, 0, "cpu", tmp_path / "a")
    alone = make_context(task, 0, "cpu", tmp_path / "b")  # its own cache: no dense training read from disk
    many = together._trainer.train_many(requests(together))
    singles = [alone._trainer.train(r.masks, r.start, r.steps) for r in requests(alone)]
    assert together._trainer.trainings == 1 + 4  # θ_k (setup) and the four, none memoised
    for a, b in zip(many, singles, strict=True):
        assert close(a, b) and a.step == b.step and not a.diverged
        accuracy_a, accuracy_b = together._trainer.accuracy(a, test), together._trainer.accuracy(b, test)
        assert abs(accuracy_a - accuracy_b) <= 1 / test.y.shape[0] + 1e-12
    # and the stack differs from what it would be if a member's data order or start were another's
    assert not close(many[1], many[3]) and not close(many[1], many[2])


@pytest.mark.parametrize("kind", ["mlp", "residual_mlp"])
def test_stacked_training_equals_a_torch_prune_module(tmp_path: Path, kind: str) -> None:
    """The stacked forward and masking are the MLP's, as ``torch.nn.utils.prune`` runs it (an independent oracle)."""
    raw = raw_smoke()
    raw["training"]["steps"] = 20  # type: ignore[index]
    raw["model"]["kind"] = kind  # type: ignore[index]
    task = PruningTask.model_validate(raw)
    ctx = make_context(task, 0, "cpu", tmp_path)
    masks = random_masks(ctx.prunable, 0.9, make_generator(0, "oracle"))
    got = ctx._trainer.train_many([TrainRequest(masks, ctx.init_state, 20), TrainRequest(None, ctx.init_state, 20)])
    model = ctx._trainer.build(ctx.init_state.weights)
    for n in ctx.prunable:
        torch_prune.custom_from_mask(getattr(model, n.split(".")[0]), "weight", masks[n])
    opt = torch.optim.Adam(model.parameters(), lr=task.training.lr)
    for x, y in ctx.train_batches(20):
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        opt.step()
    for n in ctx.prunable:
        torch_prune.remove(getattr(model, n.split(".")[0]), "weight")
    oracle = TrainedState({k: v.detach() for k, v in model.state_dict().items()}, 20)
    assert close(got[0], oracle)
    assert not close(got[1], oracle)  # the dense member of the same stack is not masked


def test_pruned_weights_stay_exactly_zero_in_a_stack(tmp_path: Path) -> None:
    task = smoke_task(optimizer="sgd", lr=0.1, momentum=0.9, weight_decay=0.01, steps=40)
    ctx = make_context(task, 0, "cpu", tmp_path)
    masks = [random_masks(ctx.prunable, s, make_generator(1, str(s))) for s in (0.5, 0.9, 0.99)]
    states = ctx._trainer.train_many([TrainRequest(m, ctx.init_state, 40) for m in masks])
    for m, state in zip(masks, states, strict=True):
        for n in ctx.prunable:
            assert bool((state.weights[n][~m[n]] == 0).all()), f"pruned weights of {n} were revived"
            assert bool((state.weights[n][m[n]] != ctx.init_state.weights[n][m[n]]).any())


def test_a_diverging_member_leaves_the_others_alone(tmp_path: Path) -> None:
    task = smoke_task(steps=120)  # past a few loss checks, so the survivors train on after the drop
    ctx = make_context(task, 0, "cpu", tmp_path)
    broken = TrainedState({n: torch.full_like(w, math.nan) for n, w in ctx.init_state.weights.items()}, 0)
    masks = random_masks(ctx.prunable, 0.8, make_generator(0, "d"))
    healthy = [TrainRequest(masks, ctx.init_state, 120), TrainRequest(None, ctx.init_state, 120)]
    stacked = ctx._trainer.train_many([healthy[0], TrainRequest(masks, broken, 120), healthy[1]])
    alone = make_context(task, 0, "cpu", tmp_path / "alone")._trainer
    assert stacked[1].diverged and not math.isfinite(stacked[1].final_loss or 0.0)
    for got, r in zip((stacked[0], stacked[2]), healthy, strict=True):
        want = alone.train(r.masks, r.start, r.steps)
        assert not got.diverged and close(got, want) and math.isfinite(got.final_loss or math.nan)


class FailsOnSeedOne(PruningMethod[NoHyperparameters]):
    name: ClassVar[str] = "test-fails-on-seed-one"
    batchable: ClassVar[bool] = True

    def prune(self, ctx: PruningContext, sparsities: tuple[float, ...]) -> dict[float, PruneResult]:
        ctx.train()  # one batched training before the failure: the other lane must still get its answer
        if ctx.rng_seed == method_seed(1):
            raise MethodError("refused on seed 1")
        return {s: PruneResult(masks=random_masks(ctx.prunable, s, ctx.generator(str(s)))) for s in sparsities}


class Unbatched(FailsOnSeedOne):
    name: ClassVar[str] = "test-unbatched"
    batchable: ClassVar[bool] = False


def test_run_batch_of_two_seeds_equals_two_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    task = smoke_task()  # digits: each seed its own split, so the stack spans two training sets
    method = B.GlobalMagnitude()
    assert FAMILY.can_batch(method) and not FAMILY.can_batch(Unbatched())
    alone = [
        FAMILY.run(task, method, RunContext(seed=s, device="cpu", cache_dir=tmp_path / f"alone{s}")) for s in (0, 1)
    ]
    made: list[Lockstep[list[TrainJob], list[TrainedState]]] = []

    def recorded() -> Lockstep[list[TrainJob], list[TrainedState]]:
        made.append(new_lockstep())
        return made[-1]

    monkeypatch.setattr(family_module, "new_lockstep", recorded)
    batched = FAMILY.run_batch(task, method, [0, 1], RunContext(seed=0, device="cpu", cache_dir=tmp_path / "batch"))
    one_example = 1 / _setup(task, 0, "cpu", tmp_path / "alone0")[1].y.shape[0]  # one test example's accuracy
    assert made[0].batches == [2, 2]  # the controls, then every retraining: each one stack for both seeds
    for a, b in zip(alone, batched, strict=True):
        assert a.status == b.status == "ok" and a.metrics.keys() == b.metrics.keys()
        for k, v in a.metrics.items():
            if isinstance(v, float) and k != "prune_seconds":
                assert b.metrics[k] == pytest.approx(v, abs=one_example + 1e-9), k
            elif k != "prune_seconds":
                assert b.metrics[k] == v, k
    assert alone[0].metrics["acc_dense"] != alone[1].metrics["acc_dense"]  # two seeds, not one seed twice


def test_a_lane_that_raises_fails_only_its_seed(tmp_path: Path) -> None:
    outcomes = FAMILY.run_batch(smoke_task(), FailsOnSeedOne(), [0, 1], RunContext(0, "cpu", tmp_path))
    assert outcomes[0].status == "ok" and outcomes[0].metrics["acc@99"] is not None
    assert outcomes[1].status == "failed" and "refused on seed 1" in (outcomes[1].error or "")
