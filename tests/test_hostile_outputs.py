"""Hostile return values from every hook of every family end the run `failed` with a one-line reason.

A reviewer found a grokking ``prepare()`` returning -6000 steps ranked first, and a negative
``overhead_flops_per_step`` recorded as ok. Here Hypothesis feeds each hook values a method could return —
negative, NaN, infinite, huge, of the wrong type or shape — and each run goes through the runner's own
``execute_job`` (in this process): the record must be `failed`, its error a single ``MethodError:`` line (the
harness refused the value; not a crash inside the harness, not a forged score), and no metric recorded.

The hostile value travels through a module global rather than a hyperparameter (NaN is not a JSON value);
``execute_job`` runs in this process, so the method it resolves reads the value this example set.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ConfigDict
from torch import nn

from phenomena_bench.families.grokking.api import GrokkingMethod, TrainingInfo
from phenomena_bench.families.hessian.api import HessianMethod, HVPOracle, ProblemInfo, SpectrumEstimate
from phenomena_bench.families.mil_dropout.api import DropoutContext, MILDropoutMethod
from phenomena_bench.families.pruning.api import PruneResult, PruningContext, PruningMethod, random_masks
from phenomena_bench.registry import load_task
from phenomena_bench.run.execute import execute_job
from phenomena_bench.run.plan import Job, plan_runs
from phenomena_bench.store import Store

TASKS = Path(__file__).resolve().parents[1] / "tasks"
HOSTILE: dict[str, Any] = {}
SETTINGS = settings(
    max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture], database=None
)


class HostileHP(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    #: Which hook returns the hostile value (the others behave).
    hook: str = ""


def _value() -> Any:
    return HOSTILE["value"]


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One cache for the module: datasets, checkpoints, ground truth and controls are built once."""
    return tmp_path_factory.mktemp("hostile-cache")


def _run(task_file: str, cls: type, hook: str, value: Any, cache_dir: Path, tmp_path: Path) -> None:
    """One smoke run of `cls` with `hook` returning `value`, through the runner: it must fail cleanly."""
    HOSTILE["value"] = value
    task = load_task(TASKS / task_file)
    plan = plan_runs([task], [f"{__name__}:{cls.__name__}"], "smoke", Store(tmp_path / "store"), 1, {"hook": hook})
    (record,) = execute_job(Job((plan.todo[0],)), "cpu", cache_dir)
    assert record.status == "failed", (hook, value, record.status, record.metrics)
    assert record.error is not None and record.error.startswith("MethodError: "), record.error
    assert "\n" not in record.error and record.metrics == {}


def _not_an_int_in(low: int, high: int) -> st.SearchStrategy[Any]:
    """Anything but an int in low..high: out of range, huge, NaN, infinite, fractional, wrong type."""
    return st.one_of(
        st.integers(max_value=low - 1),
        st.integers(min_value=high + 1),
        st.just(10**30),
        st.floats(allow_nan=True, allow_infinity=True),
        st.booleans(),
        st.text(max_size=3),
        st.none(),
        st.lists(st.integers(), max_size=2),
    )


NOT_FLOPS = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True).filter(lambda x: not (math.isfinite(x) and x >= 0)),
    st.integers(max_value=-1),
    st.booleans(),
    st.text(max_size=3),
    st.none(),
    st.lists(st.floats(), max_size=2),
)
NOT_NONE = st.one_of(st.integers(), st.floats(allow_nan=True), st.text(max_size=3), st.lists(st.integers(), max_size=2))
NOT_AN_OBJECT = st.one_of(st.none(), st.integers(), st.floats(allow_nan=True), st.text(max_size=3), st.just((1, 2)))
BAD_REAL = st.one_of(st.sampled_from([math.nan, math.inf, -math.inf]), st.text(max_size=3), st.just([1.0, 2.0]))


# ----------------------------------------------------------------------------------------------- grokking


class GrokHostile(GrokkingMethod[HostileHP]):
    name: ClassVar[str] = "hostile-grokking"

    def configure(self, model: Any, params: dict[str, nn.Parameter], info: TrainingInfo) -> Any:
        if self.hp.hook == "configure":
            return _value()
        return torch.optim.AdamW(list(params.values()), lr=1e-3)

    def prepare(self, model: Any, train_x: torch.Tensor, train_y: torch.Tensor, info: TrainingInfo) -> Any:
        return _value() if self.hp.hook == "prepare" else 0

    def overhead_flops_per_step(self, model: Any) -> Any:
        return _value() if self.hp.hook == "overhead_flops_per_step" else 0.0

    def after_backward(self, model: Any, step: int) -> Any:
        return _value() if self.hp.hook == "after_backward" else None


GROKKING_CASES = st.one_of(
    st.tuples(st.just("prepare"), _not_an_int_in(0, 300)),  # the smoke budget is 300 steps
    st.tuples(st.just("overhead_flops_per_step"), NOT_FLOPS),
    st.tuples(st.just("configure"), NOT_AN_OBJECT),
    st.tuples(st.just("after_backward"), NOT_NONE),
)


@SETTINGS
@given(case=GROKKING_CASES)
def test_grokking_hooks_refuse_hostile_values(case: tuple[str, Any], cache_dir: Path, tmp_path: Path) -> None:
    _run("grokking/add-mod97.yaml", GrokHostile, *case, cache_dir=cache_dir, tmp_path=tmp_path)


def test_the_reviewers_negative_prepare_and_flops_fail(cache_dir: Path, tmp_path: Path) -> None:
    """The two values of issue 14 themselves: -6000 steps on a 300-step budget, -3e14 FLOPs per step."""
    _run("grokking/add-mod97.yaml", GrokHostile, "prepare", -6000, cache_dir, tmp_path)
    _run("grokking/add-mod97.yaml", GrokHostile, "overhead_flops_per_step", -3e14, cache_dir, tmp_path)


# -------------------------------------------------------------------------------------------- mil_dropout


class _HostileModule(nn.Module):
    def __init__(self, hook: str) -> None:
        super().__init__()
        self.hook = hook

    def instance(self, h: torch.Tensor, mask: torch.Tensor, layer: int) -> Any:
        if self.hook != "instance":
            return h, mask
        kind, number = _value()
        if kind == "scale":
            return h * number, mask
        if kind == "shape":
            return h[..., :-1], mask
        if kind == "mask_dtype":
            return h, mask.float()
        if kind == "h_dtype":
            return h.double(), mask
        if kind == "triple":
            return h, mask, h
        return number

    def attention(self, logits: torch.Tensor, mask: torch.Tensor) -> Any:
        if self.hook != "attention":
            return logits
        kind, number = _value()
        if kind == "scale":
            return logits * number
        if kind == "shape":
            return logits[:, :-1]
        return number

    def on_epoch_start(self, epoch: int, num_epochs: int) -> Any:
        return _value() if self.hook == "on_epoch_start" else None


class MilHostile(MILDropoutMethod[HostileHP]):
    name: ClassVar[str] = "hostile-mil"

    def make_dropout(self, ctx: DropoutContext) -> Any:
        return _value() if self.hp.hook == "make_dropout" else _HostileModule(self.hp.hook)


NON_FINITE_SCALE = st.sampled_from([math.nan, math.inf, -math.inf, 1e39])  # 1e39 overflows float32
MIL_CASES = st.one_of(
    st.tuples(st.just("make_dropout"), NOT_AN_OBJECT),
    st.tuples(st.just("on_epoch_start"), NOT_NONE),
    st.tuples(
        st.just("instance"),
        st.one_of(
            st.tuples(st.just("scale"), NON_FINITE_SCALE),
            st.tuples(st.sampled_from(["shape", "mask_dtype", "h_dtype", "triple"]), st.none()),
            st.tuples(st.just("value"), NOT_AN_OBJECT),
        ),
    ),
    st.tuples(
        st.just("attention"),
        st.one_of(
            st.tuples(st.just("scale"), st.sampled_from([math.nan, math.inf, -math.inf])),
            st.tuples(st.just("shape"), st.none()),
            st.tuples(st.just("value"), NOT_AN_OBJECT),
        ),
    ),
)


@SETTINGS
@given(case=MIL_CASES)
def test_mil_hooks_refuse_hostile_values(case: tuple[str, Any], cache_dir: Path, tmp_path: Path) -> None:
    _run("mil_dropout/digits-bags.yaml", MilHostile, *case, cache_dir=cache_dir, tmp_path=tmp_path)


# ------------------------------------------------------------------------------------------------ pruning


class PruneHostile(PruningMethod[HostileHP]):
    name: ClassVar[str] = "hostile-pruning"

    def prune(self, ctx: PruningContext, sparsities: tuple[float, ...]) -> Any:
        hook, value = self.hp.hook, _value()
        good = {s: PruneResult(masks=random_masks(ctx.prunable, s, ctx.generator(s))) for s in sparsities}
        if hook == "result":
            return value
        if hook == "key":
            return {**good, value: good[sparsities[0]]}
        if hook == "scores":
            return {s: PruneResult(scores={n: torch.full(tuple(shape), value) for n, shape in ctx.prunable.items()})
                    for s in sparsities}  # fmt: skip
        if hook == "scores_shape":
            return {s: PruneResult(scores={n: torch.ones(value) for n in ctx.prunable}) for s in sparsities}
        if hook == "mask_values":
            return {s: PruneResult(masks={n: torch.full(tuple(shape), value) for n, shape in ctx.prunable.items()})
                    for s in sparsities}  # fmt: skip
        if hook == "train_steps":
            ctx.train(steps=value)
        elif hook == "train_batches":
            for _ in ctx.train_batches(value):
                break
        elif hook == "fewshot_batch":
            ctx.fewshot_batch(value)
        elif hook == "make_model":
            ctx.make_model(init_seed=value)
        return good


NOT_A_COUNT = st.one_of(
    st.integers(max_value=-1),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.text(max_size=3),
    st.lists(st.integers(), max_size=2),
)
PRUNING_CASES = st.one_of(
    st.tuples(st.just("result"), st.one_of(NOT_AN_OBJECT, st.just([0.5]))),
    st.tuples(st.just("key"), st.one_of(st.sampled_from([math.nan, math.inf, 0.123, -1.0, 2.0]), st.text(max_size=3))),
    st.tuples(st.just("scores"), st.sampled_from([math.nan, math.inf, -math.inf])),
    st.tuples(st.just("scores_shape"), st.integers(min_value=1, max_value=7)),
    st.tuples(st.just("mask_values"), st.sampled_from([0.5, 2.0, -1.0, math.nan, math.inf])),
    st.tuples(st.just("train_steps"), NOT_A_COUNT),  # over the search budget is budget_exceeded, by design
    st.tuples(st.just("train_batches"), NOT_A_COUNT.filter(lambda v: v is not None)),
    st.tuples(st.just("fewshot_batch"), st.one_of(st.just(0), NOT_A_COUNT)),
    st.tuples(st.just("make_model"), st.one_of(st.floats(allow_nan=True), st.text(max_size=3), st.booleans())),
)


@SETTINGS
@given(case=PRUNING_CASES)
def test_pruning_hooks_refuse_hostile_values(case: tuple[str, Any], cache_dir: Path, tmp_path: Path) -> None:
    _run("pruning/digits-mlp.yaml", PruneHostile, *case, cache_dir=cache_dir, tmp_path=tmp_path)


# ------------------------------------------------------------------------------------------------ hessian


class HessianHostile(HessianMethod[HostileHP]):
    name: ClassVar[str] = "hostile-hessian"

    def estimate(self, oracle: HVPOracle, info: ProblemInfo, budget: int) -> Any:
        hook, value = self.hp.hook, _value()
        if hook == "type":
            return value
        if hook == "lambda_max":
            return SpectrumEstimate(lambda_max=value)
        if hook == "trace":
            return SpectrumEstimate(trace=value)
        if hook == "topk_values":
            return SpectrumEstimate(topk_values=np.full(value[0], value[1]))
        if hook == "topk_vectors":
            return SpectrumEstimate(topk_values=np.ones(2), topk_vectors=np.ones((oracle.dim + value, 2)))
        return SpectrumEstimate(density_nodes=np.zeros(3), density_weights=np.asarray(value))


def _too_many(info_dim: int = 10_000) -> st.SearchStrategy[tuple[int, float]]:
    """(length, fill): NaN/inf fills of a sensible length, or more values than the Hessian has."""
    return st.one_of(
        st.tuples(st.integers(min_value=1, max_value=5), st.sampled_from([math.nan, math.inf, -math.inf])),
        st.tuples(st.just(info_dim), st.just(1.0)),  # the smoke network has far fewer parameters
    )


HESSIAN_CASES = st.one_of(
    st.tuples(st.just("type"), st.one_of(NOT_AN_OBJECT, st.dictionaries(st.text(max_size=2), st.floats(), max_size=2))),
    st.tuples(st.just("lambda_max"), BAD_REAL),
    st.tuples(st.just("trace"), BAD_REAL),
    st.tuples(st.just("topk_values"), _too_many()),
    st.tuples(st.just("topk_vectors"), st.integers(min_value=1, max_value=3)),
    st.tuples(
        st.just("density"),
        st.sampled_from([[0.5, 0.6, -0.1], [1.0, 1.0, 1.0], [math.nan, 0.5, 0.5], [0.5, 0.5]]),
    ),
)


@SETTINGS
@given(case=HESSIAN_CASES)
def test_hessian_estimates_refuse_hostile_values(case: tuple[str, Any], cache_dir: Path, tmp_path: Path) -> None:
    _run("hessian/digits-tanh-ce-init.yaml", HessianHostile, *case, cache_dir=cache_dir, tmp_path=tmp_path)
