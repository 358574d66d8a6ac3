"""Tests of the pruning family: mask accounting, mask enforcement, controls, baseline scores, end to end."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from pydantic import ValidationError

import phenomena_bench.baselines.pruning as B
from phenomena_bench.core.errors import MethodError
from phenomena_bench.core.family import RunContext, missing_hooks
from phenomena_bench.data.digits import _load_digits_split, load_digits_arrays
from phenomena_bench.families.pruning import FAMILY
from phenomena_bench.families.pruning.api import (
    NoHyperparameters,
    PruneResult,
    PruningContext,
    PruningMethod,
    TrainedState,
    layer_prune_counts,
    layerwise_masks_from_scores,
    masks_from_scores,
    prune_count,
    random_masks,
    shuffle_within_layers,
)
from phenomena_bench.families.pruning.context import make_context
from phenomena_bench.families.pruning.masks import make_generator, sparsity_label
from phenomena_bench.families.pruning.score import (
    auc_log_compression,
    collapsed_layers,
    input_output_connected,
    receptive_field_spread,
)
from phenomena_bench.families.pruning.spec import PruningTask
from phenomena_bench.models.mlp import MLP
from phenomena_bench.registry import baseline_classes, load_task
from tests.helpers import ROOT, cli

TASKS = ROOT / "tasks" / "pruning"
ALL_BASELINES = [
    B.RandomPruning,
    B.GlobalMagnitude,
    B.LayerwiseMagnitude,
    B.ShuffledMagnitude,
    B.IterativeMagnitude,
    B.SNIP,
    B.GraSP,
    B.SynFlow,
]


def raw_smoke() -> dict[str, object]:
    """The digits smoke tier as a plain mapping that validates as a spec (tiers that change nothing)."""
    raw = load_task(TASKS / "digits-mlp.yaml").resolve("smoke").model_dump(mode="json")
    raw["tiers"] = {"smoke": {}, "default": {}, "full": {}}
    return raw


def smoke_task(**training: object) -> PruningTask:
    """The digits smoke tier, optionally with training fields changed."""
    raw = raw_smoke()
    raw["training"].update(training)  # type: ignore[union-attr]
    return PruningTask.model_validate(raw)


@pytest.fixture(scope="module", autouse=True)
def one_thread() -> object:
    """Tiny MLPs: intra-op threads only contend on a shared machine (14-30x slower in the pilot)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("pruning-cache")


@pytest.fixture(scope="module")
def mnist1d_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One cache folder for the tests that need MNIST-1D: it is generated (a few CPU-seconds) once."""
    return tmp_path_factory.mktemp("mnist1d-cache")


@pytest.fixture(scope="module")
def ctx(cache_dir: Path) -> PruningContext:
    return make_context(smoke_task(), seed=0, device="cpu", cache_dir=cache_dir)


def total_zeros(masks: dict[str, torch.Tensor]) -> int:
    return sum(int((~m).sum()) for m in masks.values())


# ------------------------------------------------------------------------------------ specs and data


def test_all_specs_load_with_three_tiers() -> None:
    files = sorted(TASKS.glob("*.yaml"))
    assert {f.stem for f in files} >= {"digits-mlp", "mnist1d-mlp", "mnist1d-resmlp"}
    for f in files:
        spec = load_task(f)
        for tier in ("smoke", "default", "full"):
            resolved = spec.resolve(tier)
            assert resolved.evaluation == spec.evaluation  # tiers never change the protocol


@pytest.mark.parametrize(
    ("section", "change"),
    [
        ("evaluation", {"sparsities": [0.9, 0.5]}),
        ("evaluation", {"sparsities": [0.5, 1.0]}),
        ("evaluation", {"control_sparsities": [0.9]}),
        ("training", {"rewind_step": 60}),
        ("training", {"lr": 0}),
    ],
)
def test_spec_rejects_impossible_values(section: str, change: dict[str, object]) -> None:
    PruningTask.model_validate(raw_smoke())  # the unchanged mapping is valid
    raw = raw_smoke()
    raw[section].update(change)  # type: ignore[union-attr]
    with pytest.raises(ValidationError):
        PruningTask.model_validate(raw)


def test_digits_arrays_and_stratified_split() -> None:
    x, y = load_digits_arrays()
    assert x.shape == (1797, 64) and x.dtype == np.float32 and y.dtype == np.int64
    assert x.min() == 0.0 and x.max() == 1.0
    a, b = _load_digits_split(0.25, seed=3), _load_digits_split(0.25, seed=3)
    assert np.array_equal(a.x_test, b.x_test)  # fixed by the seed
    assert not np.array_equal(a.y_test, _load_digits_split(0.25, seed=4).y_test)
    train_share = np.bincount(a.y_train, minlength=10) / np.bincount(y, minlength=10)
    assert np.all(np.abs(train_share - 0.75) < 0.02)  # every class split 75/25
    assert len(a.y_train) + len(a.y_test) == 1797


def test_mnist1d_generated_locally_and_cached(mnist1d_cache: Path) -> None:
    from phenomena_bench.data.mnist1d import load_mnist1d

    data_dir = mnist1d_cache / "data"  # where a pruning run's context looks (shared with the IMP test)
    first = load_mnist1d(cache_dir=data_dir)
    assert first.x_train.shape == (4000, 40) and first.x_test.shape == (1000, 40) and first.num_classes == 10
    assert len(list(data_dir.glob("mnist1d-*.npz"))) == 1
    again = load_mnist1d(cache_dir=data_dir)
    assert np.array_equal(first.x_train, again.x_train) and np.array_equal(first.y_test, again.y_test)
    assert np.bincount(first.y_train).min() > 300  # all ten classes present in the standard split


def test_residual_mlp_adds_its_input() -> None:
    model = MLP(4, [3, 3], 2, residual=True)
    with torch.no_grad():
        model.fc2.weight.zero_()
        model.fc2.bias.fill_(-1.0)  # relu(W2 h + b2) = 0, so the residual block is the identity
        x = torch.randn(5, 4)
        h = torch.relu(model.fc1(x))
        assert torch.allclose(model(x), model.fc3(h))
    assert model.prunable_names() == ["fc1.weight", "fc2.weight"]
    assert model.prunable_names(include_output=True)[-1] == "fc3.weight"


# ------------------------------------------------------------------------------------ mask accounting


@pytest.mark.parametrize("sparsity", [0.5, 0.8, 0.9, 0.95, 0.98, 0.999])
def test_layer_counts_hit_the_global_target(sparsity: float) -> None:
    sizes = [10240, 65536, 7, 1]
    counts = layer_prune_counts(sizes, sparsity)
    assert sum(counts) == prune_count(sum(sizes), sparsity)
    assert all(0 <= c <= n for c, n in zip(counts, sizes, strict=True))
    assert all(abs(c - sparsity * n) < 2 for c, n in zip(counts, sizes, strict=True))


def test_global_top_k_is_exact_and_breaks_ties_by_index() -> None:
    scores = {"a.weight": torch.ones(2, 3), "b.weight": torch.ones(4)}
    masks = masks_from_scores(scores, 0.5)
    assert total_zeros(masks) == 5  # floor(0.5 * 10 + 0.5)
    # all tied: the five lowest flat indices win (the first five entries of `a`)
    assert masks["a.weight"].tolist() == [[True, True, True], [True, True, False]]
    assert masks["b.weight"].tolist() == [False] * 4
    scores = {"a.weight": torch.tensor([[3.0, -1.0], [0.5, 2.0]]), "b.weight": torch.tensor([1.0, 4.0])}
    masks = masks_from_scores(scores, 0.5)
    assert masks["a.weight"].tolist() == [[True, False], [False, True]] and masks["b.weight"].tolist() == [False, True]
    with pytest.raises(MethodError):
        masks_from_scores({"a.weight": torch.tensor([1.0, float("nan")])}, 0.5)


def test_layerwise_scores_prune_every_layer_equally() -> None:
    gen = torch.Generator().manual_seed(0)
    scores = {"a.weight": torch.rand(100, generator=gen) * 100, "b.weight": torch.rand(50, 10, generator=gen)}
    masks = layerwise_masks_from_scores(scores, 0.9)
    assert int(masks["a.weight"].sum()) == 10 and int(masks["b.weight"].sum()) == 50
    kept = scores["b.weight"][masks["b.weight"]]
    assert kept.min() > scores["b.weight"][~masks["b.weight"]].max()
    assert int(masks_from_scores(scores, 0.9)["b.weight"].sum()) == 0  # global would empty the small-score layer


def test_random_masks_exact_per_layer_and_seeded() -> None:
    shapes = {"a.weight": torch.Size([256, 40]), "b.weight": torch.Size([256, 256])}
    m1 = random_masks(shapes, 0.95, make_generator(0, "x"))
    m2 = random_masks(shapes, 0.95, make_generator(0, "x"))
    m3 = random_masks(shapes, 0.95, make_generator(1, "x"))
    assert all(torch.equal(m1[n], m2[n]) for n in shapes)
    assert not torch.equal(m1["b.weight"], m3["b.weight"])
    assert total_zeros(m1) == prune_count(10240 + 65536, 0.95)
    assert abs(float((~m1["a.weight"]).float().mean()) - 0.95) < 1e-3


def test_shuffle_changes_positions_but_keeps_per_layer_counts() -> None:
    scores = {"a.weight": torch.arange(400.0).reshape(20, 20), "b.weight": torch.arange(100.0)}
    masks = masks_from_scores(scores, 0.9)
    shuffled = shuffle_within_layers(masks, make_generator(0, "shuffle"))
    for n in masks:
        assert int(shuffled[n].sum()) == int(masks[n].sum())
        assert shuffled[n].shape == masks[n].shape
    changed = [n for n in masks if 0 < int(masks[n].sum()) < masks[n].numel()]
    assert changed and all(not torch.equal(shuffled[n], masks[n]) for n in changed)


def test_auc_is_mean_accuracy_over_log_compression() -> None:
    assert auc_log_compression([0.5, 0.75, 0.875], [0.6, 0.6, 0.6]) == pytest.approx(0.6)
    # x = 1, 2, 3: trapezoid (0.8+0.6)/2 + (0.6+0.4)/2 = 1.2 over a range of 2
    assert auc_log_compression([0.5, 0.75, 0.875], [0.8, 0.6, 0.4]) == pytest.approx(0.6)
    assert auc_log_compression([0.5, 0.75, 0.875], [0.8, 0.8, 0.2]) == pytest.approx(0.65)


# ------------------------------------------------------------------------------ masks through training


def test_masked_weights_stay_zero_under_momentum_and_weight_decay(cache_dir: Path) -> None:
    task = smoke_task(optimizer="sgd", lr=0.1, momentum=0.9, weight_decay=0.01, steps=40)
    ctx = make_context(task, seed=0, device="cpu", cache_dir=cache_dir)
    masks = random_masks(ctx.prunable, 0.9, make_generator(0, "m"))
    trained = ctx.train(masks)
    for n, m in masks.items():
        w0, w = ctx.init_state.weights[n], trained.weights[n]
        assert bool((w[~m] == 0).all()), f"pruned weights of {n} were revived"
        assert bool((w[m] != w0[m]).any()), f"unpruned weights of {n} did not train"
    # The check can fail: zeroing the weights once and training unmasked revives them (momentum, decay).
    naive = ctx.make_model()
    with torch.no_grad():
        for n, p in naive.named_parameters():
            if n in masks:
                p.mul_(masks[n])
    opt = torch.optim.SGD(naive.parameters(), lr=0.1, momentum=0.9, weight_decay=0.01)
    for x, y in ctx.train_batches(5):
        opt.zero_grad()
        F.cross_entropy(naive(x), y).backward()
        opt.step()
    assert bool((naive.fc2.weight.detach()[~masks["fc2.weight"]] != 0).any())


def test_rewinding_restores_the_saved_weights(cache_dir: Path) -> None:
    task = smoke_task(rewind_step=10)
    ctx = make_context(task, seed=0, device="cpu", cache_dir=cache_dir)
    assert ctx.rewind_state.step == 10
    assert any(not torch.equal(ctx.rewind_state.weights[n], ctx.init_state.weights[n]) for n in ctx.prunable)
    masks = random_masks(ctx.prunable, 0.8, make_generator(0, "m"))
    rewound = ctx.train(masks, start=ctx.rewind_state, steps=0)
    for n, w in ctx.rewind_state.weights.items():
        expected = w * masks[n] if n in masks else w
        assert torch.equal(rewound.weights[n], expected)
    model = ctx.make_model(ctx.rewind_state)
    assert torch.equal(model.fc1.weight.detach(), ctx.rewind_state.weights["fc1.weight"])
    # a second context for the same (task, seed) rebuilds the identical θ_0 and θ_k
    again = make_context(task, seed=0, device="cpu", cache_dir=cache_dir)
    assert all(torch.equal(again.rewind_state.weights[n], ctx.rewind_state.weights[n]) for n in ctx.prunable)
    assert all(torch.equal(again.init_state.weights[n], ctx.init_state.weights[n]) for n in ctx.prunable)


def test_search_budget_is_enforced(cache_dir: Path) -> None:
    ctx = make_context(smoke_task(search_budget=1.5), seed=0, device="cpu", cache_dir=cache_dir)
    ctx.train()
    from phenomena_bench.families.pruning.api import SearchBudgetExceeded

    with pytest.raises(SearchBudgetExceeded):
        ctx.train()
    assert ctx.steps_used == 60


# -------------------------------------------------------------------------------- baseline scores


def tiny_net(seed: int = 0) -> tuple[MLP, torch.Tensor, torch.Tensor]:
    torch.manual_seed(seed)
    model = MLP(5, [4], 3).double()
    x = torch.randn(8, 5, dtype=torch.float64)
    y = torch.randint(0, 3, (8,))
    return model, x, y


def test_snip_scores_match_finite_differences_of_the_mask() -> None:
    model, x, y = tiny_net()
    names = ["fc1.weight", "fc2.weight"]
    scores = B.snip_scores(model, names, x, y)
    eps = 1e-6
    for n in names:
        w = dict(model.named_parameters())[n]
        for idx in [(0, 0), (1, 2), (2, 3)]:
            with torch.no_grad():
                saved = w[idx].item()
                w[idx] = saved * (1 + eps)
                up = F.cross_entropy(model(x), y).item()
                w[idx] = saved * (1 - eps)
                down = F.cross_entropy(model(x), y).item()
                w[idx] = saved
            assert scores[n][idx].item() == pytest.approx(abs(up - down) / (2 * eps), rel=1e-4, abs=1e-9)


def test_grasp_scores_match_the_explicit_hessian() -> None:
    model, x, y = tiny_net(1)
    names = ["fc1.weight", "fc2.weight"]
    temperature = 2.0
    scores = B.grasp_scores(model, names, x, y, temperature)
    params = dict(model.named_parameters())
    flat = torch.cat([params[n].detach().reshape(-1) for n in names])
    sizes = [params[n].numel() for n in names]

    def loss_of(theta: torch.Tensor) -> torch.Tensor:
        w1, w2 = theta[: sizes[0]].reshape(4, 5), theta[sizes[0] :].reshape(3, 4)
        h = torch.relu(x @ w1.T + params["fc1.bias"].detach())
        return F.cross_entropy((h @ w2.T + params["fc2.bias"].detach()) / temperature, y)

    grad = torch.autograd.functional.jacobian(loss_of, flat)
    hess = torch.autograd.functional.hessian(loss_of, flat)
    expected = -flat * (hess @ grad)
    got = torch.cat([scores[n].reshape(-1) for n in names])
    assert torch.allclose(got, expected, rtol=1e-6, atol=1e-12)
    # Only fc1 prunable: its scores still carry the output layer's gradient in Hg (the reference code's z sums
    # over every Linear weight), so they are the fc1 block of the full product, not a product over fc1 alone.
    only_first = B.grasp_scores(model, ["fc1.weight"], x, y, temperature)
    assert set(only_first) == {"fc1.weight"}
    assert torch.allclose(only_first["fc1.weight"].reshape(-1), expected[: sizes[0]], rtol=1e-6, atol=1e-12)
    h11 = hess[: sizes[0], : sizes[0]]
    assert not torch.allclose(expected[: sizes[0]], -flat[: sizes[0]] * (h11 @ grad[: sizes[0]]), rtol=1e-3)


def test_synflow_scores_match_the_closed_form() -> None:
    torch.manual_seed(0)
    model = MLP(3, [4], 2)
    names = ["fc1.weight", "fc2.weight"]
    scores = B.synflow_scores(model, names, None, in_features=3)
    w1, b1, w2 = model.fc1.weight.detach().abs(), model.fc1.bias.detach().abs(), model.fc2.weight.detach().abs()
    # R = 1^T (|W2| (|W1| 1 + |b1|) + |b2|): ReLU is the identity on these non-negative activations
    assert torch.allclose(scores["fc1.weight"], w1 * w2.sum(0)[:, None], rtol=1e-5)
    assert torch.allclose(scores["fc2.weight"], w2 * (w1.sum(1) + b1)[None, :], rtol=1e-5)
    masks = {"fc1.weight": torch.ones(4, 3, dtype=torch.bool), "fc2.weight": torch.zeros(2, 4, dtype=torch.bool)}
    assert float(B.synflow_scores(model, names, masks, 3)["fc1.weight"].abs().sum()) == 0.0  # no flow, no score


def test_imp_schedule_passes_every_target_within_the_rate() -> None:
    targets = [0.5, 0.8, 0.9, 0.95, 0.98]
    for rate in (0.2, 0.5, 0.8):
        levels = B.imp_schedule(targets, rate)
        assert set(targets) <= set(levels) and levels == sorted(levels)
        densities = [1.0] + [1 - s for s in levels]
        assert all(1 - b / a <= rate + 1e-9 for a, b in zip(densities, densities[1:], strict=False))
    assert len(B.imp_schedule(targets, 0.5)) == 7
    # each gap between targets is split into ceil(log(d1/d0) / log 0.8) rounds: 4 + 5 + 4 + 4 + 5
    assert len(B.imp_schedule(targets, 0.2)) == 22
    # the standard targets 95-99.5 %: 14 + 3 + 2 + 4 + 4 levels, 27 trainings with the dense net: the budget
    assert len(B.imp_schedule([0.95, 0.97, 0.98, 0.99, 0.995], 0.2)) == 27
    on_grid = [1 - 0.8**L for L in (3, 7, 10)]
    assert B.imp_schedule(on_grid, 0.2) == pytest.approx([1 - 0.8**L for L in range(1, 11)])


def test_each_baseline_returns_exact_masks_or_scores(ctx: PruningContext) -> None:
    for cls in ALL_BASELINES:
        method = cls()
        FAMILY.check_method(method)
        before = ctx.steps_used
        results = method.prune(ctx, ctx.sparsities)
        assert set(results) == set(ctx.sparsities), cls.name
        for s, r in results.items():
            masks = r.masks if r.masks is not None else masks_from_scores(r.scores, s)
            assert total_zeros(masks) == prune_count(sum(m.numel() for m in masks.values()), s), (cls.name, s)
        if cls in (B.GraSP, B.SynFlow, B.RandomPruning):
            assert ctx.steps_used == before, f"{cls.name} is an at-init method but trained"
        if cls is B.SNIP:  # at init, on one recipe minibatch (charged one step, as the reference draws one)
            assert ctx.steps_used == before + 1
        ctx.steps_used = 0


def test_imp_masks_are_nested_and_shrink_by_magnitude(ctx: PruningContext) -> None:
    results = B.IterativeMagnitude().prune(ctx, ctx.sparsities)
    ordered = [results[s].masks for s in sorted(results)]
    for lo, hi in zip(ordered, ordered[1:], strict=False):
        assert all(bool((hi[n] <= lo[n]).all()) for n in ctx.prunable)  # pruned weights never come back
    ctx.steps_used = 0
    one_shot = B.GlobalMagnitude().prune(ctx, ctx.sparsities)
    ctx.steps_used = 0
    # a target within one round of dense is one-shot global magnitude of the dense net; later ones are not
    first = B.IterativeMagnitude().prune(ctx, (0.2,))[0.2].masks
    ctx.steps_used = 0
    assert all(torch.equal(first[n], B.GlobalMagnitude().prune(ctx, (0.2,))[0.2].masks[n]) for n in ctx.prunable)
    ctx.steps_used = 0
    assert not all(torch.equal(results[0.99].masks[n], one_shot[0.99].masks[n]) for n in ctx.prunable)


def test_grasp_removes_the_highest_scores(ctx: PruningContext) -> None:
    x, y = ctx.fewshot_batch()
    s_grasp = B.grasp_scores(ctx.make_model(ctx.rewind_state), list(ctx.prunable), x, y)
    result = B.GraSP().prune(ctx, (0.9,))[0.9]
    masks = masks_from_scores(result.scores, 0.9)
    kept = torch.cat([s_grasp[n][masks[n]] for n in ctx.prunable])
    removed = torch.cat([s_grasp[n][~masks[n]] for n in ctx.prunable])
    assert kept.max() <= removed.min()


def test_magnitude_shuffled_keeps_magnitude_layer_densities(ctx: PruningContext) -> None:
    glob = B.GlobalMagnitude().prune(ctx, (0.95,))[0.95].masks
    ctx.steps_used = 0
    shuf = B.ShuffledMagnitude().prune(ctx, (0.95,))[0.95].masks
    ctx.steps_used = 0
    for n in ctx.prunable:
        assert int(glob[n].sum()) == int(shuf[n].sum())
        assert not torch.equal(glob[n], shuf[n])


def test_fewshot_batch_is_balanced_and_from_training_data(ctx: PruningContext) -> None:
    x, y = ctx.fewshot_batch(3)
    assert torch.equal(torch.bincount(y, minlength=10), torch.full((10,), 3))
    train_rows = {tuple(r) for r in ctx._trainer.data.x.tolist()}
    assert all(tuple(r) in train_rows for r in x.tolist())


# ------------------------------------------------------------------------------------ harness checks


class _BadCount(PruningMethod):
    name = "test-bad-count"

    def prune(self, ctx: PruningContext, sparsities: tuple[float, ...]) -> dict[float, PruneResult]:
        out = {}
        for s in sparsities:
            masks = random_masks(ctx.prunable, s, ctx.generator(s))
            first = next(iter(masks))
            flat = masks[first].reshape(-1).clone()
            flat[int(torch.nonzero(~flat)[0])] = True  # one weight short of the target
            masks[first] = flat.reshape(masks[first].shape)
            out[s] = PruneResult(masks=masks)
        return out


class _Greedy(PruningMethod):
    name = "test-greedy"

    def prune(self, ctx: PruningContext, sparsities: tuple[float, ...]) -> dict[float, PruneResult]:
        for _ in range(100):
            ctx.train()
        return {}


def test_harness_rejects_inexact_masks_and_reports_budget_overrun(cache_dir: Path) -> None:
    task = smoke_task()
    with pytest.raises(MethodError, match="exactly"):
        FAMILY.run(task, _BadCount(), RunContext(seed=0, device="cpu", cache_dir=cache_dir))
    outcome = FAMILY.run(task, _Greedy(), RunContext(seed=0, device="cpu", cache_dir=cache_dir))
    assert outcome.status == "budget_exceeded" and outcome.metrics["search_steps"] == 28 * 60
    with pytest.raises(MethodError):
        PruneResult()


def test_run_reports_paired_controls_and_caches_them(tmp_path: Path) -> None:
    task = smoke_task()
    run_ctx = RunContext(seed=0, device="cpu", cache_dir=tmp_path)
    first = FAMILY.run(task, B.IterativeMagnitude(), run_ctx)
    assert first.status == "ok"
    m = first.metrics
    assert isinstance(m["acc_dense"], float) and 0.2 < m["acc_dense"] <= 1.0
    labels = ("95", "97", "98", "99", "99.5")
    for lab in labels:
        assert m[f"gap_vs_random@{lab}"] == pytest.approx(m[f"acc@{lab}"] - m[f"acc_random@{lab}"])
        n_prunable = m["prunable_weights"]
        assert isinstance(n_prunable, int) and n_prunable == 64 * 32 + 32 * 32
        assert m[f"achieved_sparsity@{lab}"] == pytest.approx(prune_count(n_prunable, float(lab) / 100) / n_prunable)
        assert 0.0 <= m[f"density/fc1@{lab}"] <= 1.0 and 0.0 <= m[f"density/fc2@{lab}"] <= 1.0
    assert m["acc_shuffled@99"] is not None and m["acc_reinit@99"] is not None
    assert "acc_shuffled@98" not in m
    assert m["auc_log_compression"] == pytest.approx(
        auc_log_compression([0.95, 0.97, 0.98, 0.99, 0.995], [m[f"acc@{s}"] for s in labels])
    )
    assert m["mean_gap_vs_random"] == pytest.approx(sum(m[f"gap_vs_random@{s}"] for s in labels) / 5)  # type: ignore[misc]
    assert "rf_spread@99" not in m  # digits is an image, not a 1-D signal: no receptive-field metric
    assert m["search_steps"] == 27 * 60 and m["track"] == "rewind"  # the dense net and 26 rounds
    json.dumps(m, allow_nan=False)  # JSON-safe
    assert len(list((tmp_path / "pruning").glob("controls-*.json"))) == 1
    # A second method on the same (task, seed) reuses the cached dense and random controls.
    second = FAMILY.run(task, B.RandomPruning(), run_ctx)
    assert second.metrics["acc_random@98"] == m["acc_random@98"] and second.metrics["acc_dense"] == m["acc_dense"]
    assert second.metrics["trainings_computed"] == 5 + 2 * 1  # its masks and its controls only
    # deterministic: the same run again gives the same numbers
    again = FAMILY.run(task, B.RandomPruning(), run_ctx)
    assert again.metrics["acc@99"] == second.metrics["acc@99"]
    assert again.metrics["auc_log_compression"] == second.metrics["auc_log_compression"]


def test_collapse_is_flagged(tmp_path: Path) -> None:
    class EmptyFirstLayer(PruningMethod):
        name = "test-empty-layer"

        def prune(self, ctx: PruningContext, sparsities: tuple[float, ...]) -> dict[float, PruneResult]:
            # scores that rank every fc1 weight below every fc2 weight: global pruning empties fc1 first
            scores = {
                "fc1.weight": torch.zeros(ctx.prunable["fc1.weight"]),
                "fc2.weight": torch.ones(ctx.prunable["fc2.weight"]),
            }
            return {s: PruneResult(scores=scores) for s in sparsities}

    outcome = FAMILY.run(smoke_task(), EmptyFirstLayer(), RunContext(seed=0, device="cpu", cache_dir=tmp_path))
    m = outcome.metrics
    assert m["density/fc1@98"] == 0.0 and m["collapse@98"] is True and m["layer_collapse"] is True
    assert m["path_survives@98"] is False and m["min_layer_kept@98"] == 0


def test_two_surviving_weights_are_a_collapse_and_paths_are_traced() -> None:
    dense = {"fc1.weight": torch.ones(32, 64, dtype=torch.bool), "fc2.weight": torch.ones(32, 32, dtype=torch.bool)}
    assert collapsed_layers(dense, 10) == [] and input_output_connected(dense, residual=False)
    two = dict(dense, **{"fc2.weight": torch.zeros(32, 32, dtype=torch.bool)})
    two["fc2.weight"][0, 0] = two["fc2.weight"][1, 0] = True  # 2 of 1,024 survive: mask.any() would pass it
    assert collapsed_layers(two, 10) == ["fc2.weight"] and input_output_connected(two, residual=False)
    # every layer keeps plenty, but fc1 feeds only unit 0 and fc2 reads only unit 1: no path from input to output
    cut = {"fc1.weight": torch.zeros(32, 64, dtype=torch.bool), "fc2.weight": torch.zeros(32, 32, dtype=torch.bool)}
    cut["fc1.weight"][0, :] = True
    cut["fc2.weight"][:, 1] = True
    assert collapsed_layers(cut, 10) == [] and not input_output_connected(cut, residual=False)
    # a residual layer passes its input on: pruning it empty leaves the skip path
    empty_second = dict(dense, **{"fc2.weight": torch.zeros(32, 32, dtype=torch.bool)})
    assert input_output_connected(empty_second, residual=True)
    assert not input_output_connected(empty_second, residual=False)


def test_receptive_field_spread_is_small_for_contiguous_rows() -> None:
    local = torch.zeros(4, 40, dtype=torch.bool)
    for row in range(4):
        local[row, 10 * row : 10 * row + 3] = True  # three neighbours: positions p, p+1, p+2, std sqrt(2/3)
    assert receptive_field_spread(local) == pytest.approx((2 / 3) ** 0.5)
    spread = torch.zeros(4, 40, dtype=torch.bool)
    spread[:, [0, 20, 39]] = True
    assert receptive_field_spread(spread) > 10 * receptive_field_spread(local)  # type: ignore[operator]
    single = torch.zeros(4, 40, dtype=torch.bool)
    single[:, 5] = True
    assert receptive_field_spread(single) is None  # one input per row has no spread


def test_reinit_control_starts_at_the_rewind_step(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import phenomena_bench.families.pruning.family as family_module

    starts: list[int] = []
    real = family_module.evaluate_masks

    def spy(trainer, test, items, task):  # type: ignore[no-untyped-def]
        starts.extend(start.step for _, start in items)
        return real(trainer, test, items, task)

    monkeypatch.setattr(family_module, "evaluate_masks", spy)
    outcome = FAMILY.run(
        smoke_task(rewind_step=10), B.RandomPruning(), RunContext(seed=0, device="cpu", cache_dir=tmp_path)
    )
    assert outcome.status == "ok" and outcome.metrics["acc_reinit@99"] is not None
    assert starts == [10] * (5 + 2)  # every mask, its shuffle and its fresh init: from step k, for steps - k


def test_reference_imp_beats_random_at_the_top_sparsity_on_every_seed(mnist1d_cache: Path) -> None:
    """The phenomenon on the cheapest tier: a lottery ticket at 99.5 % beats the same seed's random mask."""
    task = load_task(TASKS / "mnist1d-mlp.yaml").resolve("smoke")
    assert isinstance(task, PruningTask)
    top = sparsity_label(max(task.evaluation.sparsities))
    for seed in range(3):
        outcome = FAMILY.run(task, B.IterativeMagnitude(), RunContext(seed=seed, device="cpu", cache_dir=mnist1d_cache))
        m = outcome.metrics
        assert m[f"gap_vs_random@{top}"] > 0.03, (seed, m[f"acc@{top}"], m[f"acc_random@{top}"])  # type: ignore[operator]


def test_trained_start_is_a_separate_track(tmp_path: Path) -> None:
    class FineTune(PruningMethod):
        name = "test-finetune"

        def prune(self, ctx: PruningContext, sparsities: tuple[float, ...]) -> dict[float, PruneResult]:
            trained = ctx.train(steps=ctx.steps // 2)
            scores = {n: trained.weights[n].abs() for n in ctx.prunable}
            return {s: PruneResult(scores=scores, start=trained) for s in sparsities}

    outcome = FAMILY.run(smoke_task(), FineTune(), RunContext(seed=0, device="cpu", cache_dir=tmp_path))
    assert outcome.status == "ok" and outcome.metrics["track"] == "trained"
    assert outcome.metrics["search_steps"] == 30


def test_a_start_not_made_by_the_harness_is_refused(tmp_path: Path) -> None:
    class Forged(PruningMethod):
        name = "test-forged-start"

        def prune(self, ctx: PruningContext, sparsities: tuple[float, ...]) -> dict[float, PruneResult]:
            at_end = TrainedState(weights=dict(ctx.init_state.weights), step=ctx.steps)
            return {
                s: PruneResult(masks=random_masks(ctx.prunable, s, ctx.generator(s)), start=at_end) for s in sparsities
            }

    with pytest.raises(MethodError, match="must be ctx.init_state"):
        FAMILY.run(smoke_task(), Forged(), RunContext(seed=0, device="cpu", cache_dir=tmp_path))

    class Tamper(PruningMethod):
        name = "test-tamper"

        def prune(self, ctx: PruningContext, sparsities: tuple[float, ...]) -> dict[float, PruneResult]:
            ctx.rewind_state.weights["fc1.weight"].mul_(2.0)  # retraining would start from doctored weights
            return {s: PruneResult(masks=random_masks(ctx.prunable, s, ctx.generator(s))) for s in sparsities}

    with pytest.raises(MethodError, match="modified in place"):
        FAMILY.run(smoke_task(), Tamper(), RunContext(seed=0, device="cpu", cache_dir=tmp_path))


def test_prune_is_the_abstract_hook_of_the_method_base() -> None:
    class Incomplete(PruningMethod[NoHyperparameters]):
        name = "incomplete"

    assert missing_hooks(Incomplete) == ["prune()"]
    pruning = [cls for cls in baseline_classes().values() if cls.family == "pruning"]
    assert len(pruning) == 8 and all(missing_hooks(cls) == [] for cls in pruning)
    assert B.IterativeMagnitude().hp.max_fraction_per_round == 0.2 and B.SynFlow().hp.rounds == 100


def test_method_identity_is_stable() -> None:
    a, b = B.IterativeMagnitude(), B.IterativeMagnitude()
    assert a.identity() == b.identity() and json.dumps(a.identity(), sort_keys=True)
    assert B.IterativeMagnitude(max_fraction_per_round=0.5).label() == "prune-imp[max_fraction_per_round=0.5]"
    with pytest.raises(MethodError):
        B.IterativeMagnitude(max_fraction_per_round=1.5)


def test_end_to_end_smoke_through_the_cli(tmp_path: Path) -> None:
    store = tmp_path / "store"
    done = cli(
        "run",
        "--task",
        "pruning/digits-mlp",
        "--method",
        "prune-snip",
        "--tier",
        "smoke",
        "--seeds",
        "1",
        "--store",
        str(store),
        "--device",
        "cpu",
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    show = cli("show", "--store", str(store), "--format", "json", timeout=120)
    assert show.returncode == 0, show.stderr[-2000:]
    assert "prune-snip" in show.stdout and "auc_log_compression" in show.stdout
