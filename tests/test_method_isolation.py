"""A method cannot rebuild what it is scored on from what it is handed (issue 13).

Before, every info object carried the seed that fixes the split (grokking, MIL), the checkpoint (hessian) or
the test data (pruning), and the split builders were public: a submission could call ``make_split(..., seed)``
and train on the held-out pairs, or rebuild the exact Hessian with zero HVPs. Now a method gets its own
stream (``core.seeds.method_seed``, one-way) and the builders are harness-private.

The guarantee is about what the API hands out; code running in the worker process can still read its memory
(the harness's frames, the cache directory). The README's "Seeds" section says so.
"""

from __future__ import annotations

import dataclasses
import importlib
from pathlib import Path
from typing import Any, ClassVar

import pytest
import torch
from torch import nn

from phenomena_bench.core.family import RunContext
from phenomena_bench.core.method import NoHyperparameters
from phenomena_bench.core.seeds import DEV_SEED_BASE, method_seed
from phenomena_bench.data.modular import _make_split
from phenomena_bench.families.grokking import FAMILY as GROKKING
from phenomena_bench.families.grokking.api import GrokkingMethod, TrainingInfo
from phenomena_bench.families.hessian import FAMILY as HESSIAN
from phenomena_bench.families.hessian.api import HessianMethod, HVPOracle, ProblemInfo, SpectrumEstimate
from phenomena_bench.families.hessian.family import draw_seed
from phenomena_bench.families.mil_dropout import FAMILY as MIL
from phenomena_bench.families.mil_dropout.api import DropoutContext, MILDropoutMethod
from phenomena_bench.families.pruning import FAMILY as PRUNING
from phenomena_bench.families.pruning.api import PruneResult, PruningContext, PruningMethod, random_masks
from phenomena_bench.registry import load_task

TASKS = Path(__file__).resolve().parents[1] / "tasks"
# A scoring seed and a development seed. The scoring seed is chosen to equal no integer of the smoke specs
# (sizes, the task version), which a method sees legitimately and would otherwise "guess" the seed with.
SEEDS = (11, DEV_SEED_BASE + 1)
HANDED: list[Any] = []  # what the spying methods were handed, in order


def _ints(obj: Any, depth: int = 0) -> set[int]:
    """Every int reachable from `obj` (fields, mappings, sequences, a spec's values), a few levels deep."""
    if depth > 6:
        return set()
    if isinstance(obj, bool):
        return set()
    if isinstance(obj, int):
        return {obj}
    if isinstance(obj, float) and obj.is_integer():
        return {int(obj)}
    if isinstance(obj, torch.Tensor) and obj.numel() <= 8 and not obj.is_floating_point():
        return {int(v) for v in obj.reshape(-1).tolist()}
    if isinstance(obj, dict):
        return set().union(*(_ints(v, depth + 1) for v in obj.values()), set())
    if isinstance(obj, (list, tuple, set, frozenset)):
        return set().union(*(_ints(v, depth + 1) for v in obj), set())
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return _ints({f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)}, depth + 1)
    if hasattr(obj, "model_dump"):
        return _ints(obj.model_dump(mode="python"), depth + 1)
    public = {k: v for k, v in vars(obj).items() if not k.startswith("_")} if hasattr(obj, "__dict__") else {}
    return _ints(public, depth + 1)


def _grokking_task() -> Any:
    task = load_task(TASKS / "grokking/add-mod97.yaml").resolve("smoke")
    return task.model_copy(update={"training": task.training.model_copy(update={"steps": 10, "eval_every": 5})})


class SplitRebuilder(GrokkingMethod[NoHyperparameters]):
    """Collects every int it is handed (info, the spec) and calls the split builder with each as the seed."""

    name: ClassVar[str] = "test-split-rebuilder"

    def configure(self, model: Any, params: dict[str, nn.Parameter], info: TrainingInfo) -> torch.optim.Optimizer:
        HANDED.append(info)
        return torch.optim.SGD(list(params.values()), lr=0.0)

    def prepare(self, model: Any, train_x: torch.Tensor, train_y: torch.Tensor, info: TrainingInfo) -> int:
        task = _grokking_task()
        candidates = _ints(info) | _ints(task)
        pairs = []
        for guess in sorted(candidates):
            if 0 <= guess < 2**63:
                split = _make_split(task.data.operation, task.data.p, task.data.train_fraction, guess)
                pairs.append({tuple(row) for row in split.test_x.tolist()})
        HANDED.append(pairs)
        return 0


@pytest.mark.parametrize("seed", SEEDS)
def test_a_grokking_method_cannot_rebuild_the_held_out_split_from_what_it_is_handed(seed: int, tmp_path: Path) -> None:
    HANDED.clear()
    task = _grokking_task()
    outcome = GROKKING.run(task, SplitRebuilder(), RunContext(seed=seed, device="cpu", cache_dir=tmp_path))
    assert outcome.status == "ok"
    info, guesses = HANDED
    held_out = {tuple(row) for row in _make_split("add", task.data.p, task.data.train_fraction, seed).test_x.tolist()}
    assert guesses and all(g != held_out for g in guesses)
    assert not any(f.name == "seed" for f in dataclasses.fields(info)) and seed not in _ints(info)
    assert info.rng_seed == method_seed(seed) != seed


def test_no_public_name_builds_a_split_or_a_checkpoint() -> None:
    """The builders are underscore names, never exported, never referenced by a family's api."""
    private = {
        "phenomena_bench.data.modular": ["make_split"],
        "phenomena_bench.data.digits": ["load_digits_split", "stratified_indices"],
        "phenomena_bench.families.mil_dropout.splits": ["make_splits"],
        "phenomena_bench.families.hessian.checkpoints": ["train_checkpoint", "digits_split"],
        "phenomena_bench.families.pruning.train": ["load_split"],
        "phenomena_bench.families.pruning.context": ["setup"],
    }
    for module_name, names in private.items():
        module = importlib.import_module(module_name)
        for name in names:
            assert not hasattr(module, name), f"{module_name}.{name} is public"
    for family in ("grokking", "pruning", "mil_dropout", "hessian"):
        api = importlib.import_module(f"phenomena_bench.families.{family}.api")
        source = Path(api.__file__ or "").read_text(encoding="utf-8")
        assert "_make_split" not in source and "_train_checkpoint" not in source and "_load_split" not in source
        assert all(not name.startswith("_") for name in api.__all__)


class RandomDraws(GrokkingMethod[NoHyperparameters]):
    """Draws from torch's global generator in configure: reproducible, but not the data seed's draws."""

    name: ClassVar[str] = "test-random-draws"

    def configure(self, model: Any, params: dict[str, nn.Parameter], info: TrainingInfo) -> torch.optim.Optimizer:
        HANDED.append((torch.randn(4), torch.randn(4, generator=info.generator())))
        return torch.optim.SGD(list(params.values()), lr=0.0)


def test_the_method_stream_is_reproducible_and_not_the_data_seed(tmp_path: Path) -> None:
    HANDED.clear()
    task = _grokking_task()
    for seed in (0, 0, 1):
        GROKKING.run(task, RandomDraws(), RunContext(seed=seed, device="cpu", cache_dir=tmp_path))
    (first, first_own), (again, again_own), (other, other_own) = HANDED
    assert torch.equal(first, again) and torch.equal(first_own, again_own)  # reproducible
    assert not torch.equal(first, other) and not torch.equal(first_own, other_own)  # per seed
    data_stream = torch.Generator().manual_seed(0)
    assert not torch.equal(first, torch.randn(4, generator=data_stream))  # not the data seed's stream
    assert all(method_seed(s) != s for s in (*range(10), *SEEDS))


# ----------------------------------------------------------------------------- the other families


class MilSpy(MILDropoutMethod[NoHyperparameters]):
    name: ClassVar[str] = "test-mil-spy"

    def make_dropout(self, ctx: DropoutContext) -> nn.Module:
        HANDED.append(ctx)

        class Identity(nn.Module):
            def instance(self, h: torch.Tensor, mask: torch.Tensor, layer: int) -> tuple[torch.Tensor, torch.Tensor]:
                return h, mask

        return Identity()


class PruneSpy(PruningMethod[NoHyperparameters]):
    name: ClassVar[str] = "test-prune-spy"

    def prune(self, ctx: PruningContext, sparsities: tuple[float, ...]) -> dict[float, PruneResult]:
        HANDED.append(ctx)
        return {s: PruneResult(masks=random_masks(ctx.prunable, s, ctx.generator(s))) for s in sparsities}


class HessianSpy(HessianMethod[NoHyperparameters]):
    name: ClassVar[str] = "test-hessian-spy"
    targets: ClassVar[frozenset[str]] = frozenset({"lambda_max"})

    def estimate(self, oracle: HVPOracle, info: ProblemInfo, budget: int) -> SpectrumEstimate:
        HANDED.append(info)
        return SpectrumEstimate(lambda_max=1.0)


@pytest.mark.parametrize(
    ("family", "task_file", "method"),
    [
        (MIL, "mil_dropout/digits-bags.yaml", MilSpy()),
        (PRUNING, "pruning/digits-mlp.yaml", PruneSpy()),
    ],
)
def test_no_info_object_carries_the_data_seed(family: Any, task_file: str, method: Any, tmp_path: Path) -> None:
    seed = SEEDS[1]
    HANDED.clear()
    task = load_task(TASKS / task_file).resolve("smoke")
    assert family.run(task, method, RunContext(seed=seed, device="cpu", cache_dir=tmp_path)).status == "ok"
    for handed in HANDED:
        public = {k for k in dir(handed) if not k.startswith("_")}
        assert "seed" not in public and handed.rng_seed == method_seed(seed)
        assert seed not in _ints(handed)


def test_no_hessian_draw_is_handed_the_checkpoint_seed(tmp_path: Path) -> None:
    """Each estimator draw gets its own stream (``draw_seed``, derived from ``method_seed``): every handed
    ``rng_seed`` is one of the run's draw seeds, each draw's is distinct and repeats at every budget, and none
    is the run seed (which fixes the checkpoint's initialisation) or the training subset's ``split_seed``."""
    seed = SEEDS[1]
    HANDED.clear()
    task = load_task(TASKS / "hessian/digits-tanh-ce-init.yaml").resolve("smoke")
    assert HESSIAN.run(task, HessianSpy(), RunContext(seed=seed, device="cpu", cache_dir=tmp_path)).status == "ok"
    draws = [draw_seed(seed, d) for d in range(task.evaluation.draws)]
    assert len(set(draws)) == len(draws)
    assert [handed.rng_seed for handed in HANDED] == draws * len(task.evaluation.budgets)
    assert {seed, task.data.split_seed}.isdisjoint(draws)
    for handed in HANDED:
        assert "seed" not in {k for k in dir(handed) if not k.startswith("_")}
        assert seed not in _ints(handed)
