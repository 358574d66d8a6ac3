"""The grokking family: data, model, metrics (hold-for-5, censoring) and the baselines' mechanics."""

from __future__ import annotations

import math
import shutil
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from phenomena_bench.baselines.grokking import AdamW, GradNorm, GrokfastEMA, GrokfastMA, newton_schulz
from phenomena_bench.core.errors import MethodError
from phenomena_bench.core.family import RunContext, missing_hooks
from phenomena_bench.core.method import NoHyperparameters
from phenomena_bench.data.modular import _make_split as make_split
from phenomena_bench.data.modular import all_pairs
from phenomena_bench.families.grokking import FAMILY
from phenomena_bench.families.grokking.api import GrokkingMethod, TrainingInfo
from phenomena_bench.families.grokking.score import (
    after_grok,
    delay_ratio,
    first_crossing,
    first_held,
    first_joint_crossing,
)
from phenomena_bench.families.grokking.spec import GrokkingTask
from phenomena_bench.families.grokking.train import train_runs
from phenomena_bench.models.transformer import OneLayerTransformer
from phenomena_bench.registry import baseline_classes, load_task, resolve_method

SPEC = Path(__file__).resolve().parents[1] / "tasks" / "grokking" / "add-mod97.yaml"
INFO = TrainingInfo(steps=10, batch_size=1, n_train=1, p=3, device="cpu", rng_seed=0)
#: Steps of the cut smoke runs that test mechanics (determinism, batching, compilation): far short of a grok.
CUT = 100
STEPS = [0, 50, 100, 150, 200, 250, 300, 350, 400]


# ---------------------------------------------------------------------------------------------- metrics


def test_hold_rule_skips_a_transient_spike() -> None:
    acc = [0.1, 0.995, 0.5, 0.99, 0.99, 0.991, 0.999, 1.0, 0.995]
    assert first_held(STEPS, acc, 0.99, 5) == 150
    assert first_crossing(STEPS, acc, 0.99) == 50


def test_hold_rule_is_censored_when_too_few_evaluations_follow() -> None:
    acc = [0.1, 0.2, 0.3, 0.4, 0.5, 0.99, 0.99, 0.99, 0.99]  # only 3 evaluations after the crossing
    assert first_held(STEPS, acc, 0.99, 5) is None
    assert first_held(STEPS, acc, 0.99, 3) == 250


def test_hold_zero_is_the_first_crossing() -> None:
    acc = [0.1, 0.2, 0.99, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1]
    assert first_held(STEPS, acc, 0.99, 0) == first_crossing(STEPS, acc, 0.99) == 100


def test_steps_to_95_waits_for_training_accuracy_near_100() -> None:
    val = [0.1, 0.96, 0.5, 0.96, 0.97, 0.99, 0.99, 0.99, 0.99]
    train = [0.5, 0.9, 0.95, 0.99, 1.0, 1.0, 1.0, 1.0, 1.0]  # the early 96% came before memorisation
    assert first_joint_crossing(STEPS, val, train, 0.95, 0.99) == 150
    assert first_joint_crossing(STEPS, val, [0.5] * 9, 0.95, 0.99) is None


def test_delay_ratio_and_post_grok_collapse() -> None:
    assert delay_ratio(1000, 250) == 4.0 and delay_ratio(3000, None) is None and delay_ratio(500, 0) is None
    val = [0.1, 0.5, 0.995, 0.999, 0.4, 0.999, 0.999, 0.999, 0.999]  # held at 100 after the 0.5 at 50
    assert after_grok(STEPS, val, 100, 0.9) == (0.4, True)
    assert after_grok(STEPS, val[:4] + [0.995] * 5, 100, 0.9) == (0.995, False)
    assert after_grok(STEPS, val, None, 0.9) == (None, None)


# ------------------------------------------------------------------------------------------------- data


@pytest.mark.parametrize("operation", ["add", "sub", "div"])
def test_tables_are_correct_and_complete(operation: str) -> None:
    p = 13
    x, y = all_pairs(operation, p)
    assert len(x) == (p * (p - 1) if operation == "div" else p * p)
    for (a, b, eq), c in zip(x.tolist(), y.tolist()):
        assert eq == p
        if operation == "add":
            assert c == (a + b) % p
        elif operation == "sub":
            assert c == (a - b) % p
        else:
            assert (c * b) % p == a


def test_split_is_disjoint_complete_and_fixed_by_the_seed() -> None:
    a = make_split("add", 11, 0.5, seed=3)
    b = make_split("add", 11, 0.5, seed=3)
    c = make_split("add", 11, 0.5, seed=4)
    assert torch.equal(a.train_x, b.train_x) and not torch.equal(a.train_x, c.train_x)
    train = {tuple(r) for r in a.train_x.tolist()}
    test = {tuple(r) for r in a.test_x.tolist()}
    assert not train & test and len(train | test) == 121 and len(train) == 60


# ------------------------------------------------------------------------------------------------ model


def _full_sequence_logits(model: OneLayerTransformer, tokens: torch.Tensor) -> torch.Tensor:
    """The reference computation: every position, causal attention, then read the last one."""
    b, n, d = tokens.shape[0], model.n_ctx, model.d_model
    x = model.embed[tokens] + model.pos

    def heads(w: torch.Tensor) -> torch.Tensor:
        return (x @ w.T).view(b, n, model.n_heads, model.d_head).transpose(1, 2)

    q, k, v = heads(model.w_q), heads(model.w_k), heads(model.w_v)
    scores = q @ k.transpose(-1, -2) / math.sqrt(model.d_head)
    scores = scores.masked_fill(torch.triu(torch.ones(n, n, dtype=torch.bool), 1), float("-inf"))
    z = (torch.softmax(scores, -1) @ v).transpose(1, 2).reshape(b, n, d)
    resid = x + z @ model.w_o.T
    resid = resid + torch.relu(resid @ model.w_in.T + model.b_in) @ model.w_out.T + model.b_out
    return (resid @ model.unembed)[:, -1]


def test_equals_position_only_forward_is_exact() -> None:
    torch.manual_seed(0)
    model = OneLayerTransformer(p=17, d_model=32, n_heads=4, d_mlp=64)
    tokens, _ = all_pairs("add", 17)
    torch.testing.assert_close(model(tokens[:100]), _full_sequence_logits(model, tokens[:100]))


def test_analytic_flops_match_the_flop_counter() -> None:
    model = OneLayerTransformer(p=97)
    tokens, _ = all_pairs("add", 97)
    with FlopCounterMode(display=False) as counter:
        model(tokens[:64])
    counted = counter.get_total_flops()
    analytic = 64 * model.forward_flops_per_example() + model.forward_flops_per_batch()
    assert abs(analytic - counted) / counted < 0.02


# -------------------------------------------------------------------------------------------- baselines


def _with_grad(grad: torch.Tensor) -> torch.nn.Module:
    module = torch.nn.Linear(2, 1, bias=False)
    module.weight.grad = grad.clone()
    return module


def test_grokfast_ema_adds_the_amplified_average() -> None:
    method = GrokfastEMA(alpha=0.5, lamb=2.0)
    model = _with_grad(torch.tensor([[1.0, 0.0]]))
    method.configure(model, dict(model.named_parameters()), INFO)  # type: ignore[arg-type]
    method.after_backward(model, 0)  # ema = g1 = [1, 0]; g = g1 + 2 ema
    assert model.weight.grad.tolist() == [[3.0, 0.0]]
    model.weight.grad = torch.tensor([[0.0, 1.0]])
    method.after_backward(model, 1)  # ema = 0.5 [1,0] + 0.5 [0,1]
    assert model.weight.grad.tolist() == [[1.0, 2.0]]


def test_grokfast_ma_waits_for_a_full_window_then_adds_the_mean() -> None:
    method = GrokfastMA(window=2, lamb=1.0)
    model = _with_grad(torch.tensor([[2.0, 0.0]]))
    method.configure(model, dict(model.named_parameters()), INFO)  # type: ignore[arg-type]
    method.after_backward(model, 0)
    assert model.weight.grad.tolist() == [[2.0, 0.0]]  # window not full: unfiltered
    model.weight.grad = torch.tensor([[0.0, 4.0]])
    method.after_backward(model, 1)  # mean of [2,0] and [0,4] = [1,2]
    assert model.weight.grad.tolist() == [[1.0, 6.0]]


def test_grad_norm_rescales_to_unit_norm() -> None:
    model = _with_grad(torch.tensor([[3.0, 4.0]]))
    GradNorm().after_backward(model, 0)
    assert torch.allclose(model.weight.grad, torch.tensor([[0.6, 0.8]]))
    # two seeds stacked on a leading axis: each is rescaled by its own norm, not by the pair's
    stacked = torch.nn.Module()
    stacked.weight = torch.nn.Parameter(torch.zeros(2, 1, 2))
    stacked.weight.grad = torch.tensor([[[3.0, 4.0]], [[0.0, 10.0]]])
    method = GradNorm()
    method.configure(stacked, dict(stacked.named_parameters()), replace(INFO, runs=2))  # type: ignore[arg-type]
    method.after_backward(stacked, 0)  # type: ignore[arg-type]
    assert torch.allclose(stacked.weight.grad, torch.tensor([[[0.6, 0.8]], [[0.0, 1.0]]]))


def test_configure_is_the_abstract_hook_and_each_baseline_types_its_own_hyperparameters() -> None:
    class Incomplete(GrokkingMethod[NoHyperparameters]):
        name = "incomplete"

    assert missing_hooks(Incomplete) == ["configure()"]
    grokking = [cls for cls in baseline_classes().values() if cls.family == "grokking"]
    assert len(grokking) == 10 and all(missing_hooks(cls) == [] for cls in grokking)
    # The generic argument sets `Hyperparameters`: each method gets its own model and defaults.
    ema = GrokfastEMA()
    assert type(ema.hp).__name__ == "GrokfastEMAHyperparameters" and ema.hp.alpha == 0.98
    # The default Grokfast rows are the AdamW baseline plus the filter; the reference code's settings
    # (Adam, coupled L2) are separate, labelled rows.
    baseline = AdamW().hp.model_dump()
    for cls in (GrokfastEMA, GrokfastMA):
        assert {k: v for k, v in cls().hp.model_dump().items() if k in baseline} == baseline
    for name, wd in (("grokfast-ema-ref", 0.005), ("grokfast-ma-ref", 0.01)):
        ref = resolve_method(name)
        assert not ref.hp.decoupled and ref.hp.weight_decay == wd and "transplanted" in ref.description
        assert ref.hp.warmup_steps == AdamW().hp.warmup_steps
    assert AdamW().hp.weight_decay == 1.0 and GradNorm().hp.norm == 1.0
    assert AdamW.batchable and GrokfastEMA.batchable and GrokfastMA.batchable and GradNorm.batchable
    with pytest.raises(MethodError, match="unknown hyperparameter"):
        AdamW(alpha=0.5)


def test_newton_schulz_orthogonalises() -> None:
    torch.manual_seed(0)
    g = torch.randn(16, 48)
    singular = torch.linalg.svdvals(newton_schulz(g, steps=5))
    assert singular.min() > 0.5 and singular.max() < 1.3  # Muon's quintic maps all singular values near 1
    assert newton_schulz(g.T, steps=5).shape == (48, 16)


def test_bad_hyperparameters_name_the_method_and_field() -> None:
    with pytest.raises(MethodError, match=r"adamw.*lr"):
        resolve_method("adamw", {"lr": -1})
    with pytest.raises(MethodError, match="wd"):
        resolve_method("adamw", {"wd": 1})


# ------------------------------------------------------------------------------------------------- runs


def _smoke(steps: int | None = None) -> GrokkingTask:
    """The smoke tier, or its first `steps` steps (tests of the loop's mechanics need no grokking)."""
    task = load_task(SPEC).resolve("smoke")
    if steps is None:
        return task
    return task.model_copy(update={"training": task.training.model_copy(update={"steps": steps})})


def _cheapest_that_groks() -> GrokkingTask:
    """The cheapest configuration the pilot found in which the reference groks on every seed (the task
    YAML's comment): the default tier's model and full batch on p=31, 80% of the table, 1500 steps. The
    smoke tier itself is smaller still and only checks the machinery."""
    base = load_task(SPEC)
    task = base.resolve("default")
    return task.model_copy(
        update={
            "data": task.data.model_copy(update={"p": 31, "train_fraction": 0.8}),
            "training": task.training.model_copy(update={"steps": 1500}),
            "evaluation": task.evaluation.model_copy(update={"past_grok": 1.2}),
        }
    )


def test_the_reference_groks_late_on_every_seed_of_the_cheapest_grokking_configuration(tmp_path: Path) -> None:
    """The phenomenon itself: the reference memorises, then generalises at least twice as late, on scoring
    seeds 0 and 1, and training goes on past the grok without a collapse."""
    task = _cheapest_that_groks()
    for seed in range(2):
        outcome = FAMILY.run(task, resolve_method(FAMILY.reference_method), RunContext(seed, "cpu", tmp_path))
        m = outcome.metrics
        assert outcome.status == "ok" and m["reached"] and m["fitted"], (seed, m)
        assert m["delay_ratio"] >= 2, (seed, m["steps_to_fit"], m["steps_to_target"])
        assert m["reached_95"] and m["steps_to_fit"] <= m["steps_to_95"]  # 95% counts once training is fitted
        past = task.evaluation.past_grok * m["steps_to_target"]
        assert m["steps_run"] >= min(past, task.training.steps) and m["steps_run"] < past + task.training.eval_every
        assert m["collapsed"] is False and m["min_val_acc_after_grok"] >= task.evaluation.collapse_below


def test_smoke_run_is_deterministic_and_reports_every_metric(tmp_path: Path) -> None:
    task = _smoke(CUT)
    ctx = RunContext(seed=0, device="cpu", cache_dir=tmp_path)
    first = FAMILY.run(task, resolve_method("adamw"), ctx)
    second = FAMILY.run(task, resolve_method("adamw"), ctx)
    assert first.status == "ok" and first.metrics == second.metrics | {
        "time_to_target_s": first.metrics["time_to_target_s"]
    }
    m = first.metrics
    assert m["steps_run"] == task.training.steps and m["budget"] == task.training.steps
    assert m["reached"] is False and m["steps_to_target"] == task.training.steps  # censored at the budget
    assert m["min_val_acc_after_grok"] is None and m["collapsed"] is None  # only a grokked run reports them
    assert 0 <= m["final_val_acc"] <= 1 and m["flops"] > 0
    assert first.curves["val_acc"].x[-1] == task.training.steps


class _PoisonAtStep(AdamW):
    """AdamW whose weights are set to NaN at step 7: the harness must stop and say `diverged`."""

    name = "poison"

    def after_backward(self, model: torch.nn.Module, step: int) -> None:
        if step == 7:
            with torch.no_grad():
                next(model.parameters()).fill_(float("nan"))


def test_non_finite_loss_is_reported_as_diverged_at_its_step(tmp_path: Path) -> None:
    task = _smoke(CUT)
    outcome = FAMILY.run(task, _PoisonAtStep(), RunContext(seed=0, device="cpu", cache_dir=tmp_path))
    assert outcome.status == "diverged"
    assert "step 9" in (outcome.error or "")  # poisoned after step 8's update, seen in step 9's loss
    assert outcome.metrics["steps_run"] == 9


# ------------------------------------------------------------------------------------ seeds as one program


# adamw and grokfast-ema are element-wise; muon orthogonalises each run's matrix (the last two axes) and
# grad-norm takes each run's own global norm: both would mix the seeds if they ignored the run axis.
@pytest.mark.parametrize("method_name", ["adamw", "grokfast-ema", "muon", "grad-norm"])
def test_batched_seeds_equal_separate_runs(tmp_path: Path, method_name: str) -> None:
    task = _smoke(CUT)
    ctx = RunContext(seed=0, device="cpu", cache_dir=tmp_path)
    seeds = [0, 1]
    batched = train_runs(task, resolve_method(method_name), seeds, ctx)
    for seed, together in zip(seeds, batched):
        alone = train_runs(task, resolve_method(method_name), [seed], ctx)[0]
        assert together.metrics["steps_run"] == alone.metrics["steps_run"]
        torch.testing.assert_close(together.curves["val_loss"].y, alone.curves["val_loss"].y, rtol=1e-3, atol=1e-4)
        torch.testing.assert_close(together.curves["train_acc"].y, alone.curves["train_acc"].y, rtol=0, atol=0.01)


class _NotBatchable(AdamW):
    name = "adamw-alone"
    batchable = False


def test_methods_that_are_not_batchable_refuse_to_batch(tmp_path: Path) -> None:
    task = _smoke(CUT)
    with pytest.raises(ValueError, match="cannot train several seeds"):
        train_runs(task, _NotBatchable(), [0, 1], RunContext(seed=0, device="cpu", cache_dir=tmp_path))


@pytest.mark.skipif(
    shutil.which("c++") is None and shutil.which("g++") is None,
    reason="torch.compile on the CPU needs a C++ compiler (none on PATH)",
)
def test_compiled_training_step_matches_eager(tmp_path: Path) -> None:
    from torch._dynamo.utils import counters

    task = _smoke(CUT)
    counters.clear()
    compiled = train_runs(task, resolve_method("adamw"), [0], RunContext(0, "cpu", tmp_path, compile=True))[0]
    assert counters["stats"]["unique_graphs"] >= 1  # the step really went through torch.compile
    eager = train_runs(task, resolve_method("adamw"), [0], RunContext(0, "cpu", tmp_path))[0]
    assert compiled.metrics["steps_run"] == eager.metrics["steps_run"]
    # Fused kernels sum in another order; full-batch memorisation amplifies that float noise to ~0.1% of the
    # held-out loss by step 80 (a wrong compiled step would be off by far more than 1%).
    torch.testing.assert_close(compiled.curves["val_loss"].y, eager.curves["val_loss"].y, rtol=1e-2, atol=1e-4)
