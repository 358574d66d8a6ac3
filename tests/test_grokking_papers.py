"""The grokking papers' own methods and metric: NeuralGrok, GrokTransfer and the time gap.

Each test fails if the step that defines its method is missing: NeuralGrok's amplifier never meta-trained,
or meta-trained on anything but its held-in part of the training split (which the model must never train
on); GrokTransfer's embedding not transferred, or its weak model's steps not charged.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch

from phenomena_bench.baselines.grokking import GrokTransfer, NeuralGrok
from phenomena_bench.cli import main
from phenomena_bench.core.errors import MethodError
from phenomena_bench.core.family import RunContext
from phenomena_bench.data.modular import _make_split as make_split
from phenomena_bench.families.grokking import FAMILY
from phenomena_bench.families.grokking.api import OneLayerTransformer, TrainingInfo
from phenomena_bench.families.grokking.score import time_gap
from phenomena_bench.families.grokking.spec import GrokkingTask
from phenomena_bench.families.grokking.train import _checked_examples
from phenomena_bench.registry import load_task

SPEC = Path(__file__).resolve().parents[1] / "tasks" / "grokking" / "add-mod97.yaml"
STEPS = [0, 20, 40, 60, 80, 100]


def _smoke(steps: int) -> GrokkingTask:
    """The smoke tier cut to its first `steps` steps: these tests check mechanics, not grokking."""
    task = load_task(SPEC).resolve("smoke")
    return task.model_copy(update={"training": task.training.model_copy(update={"steps": steps})})


def _rows(x: torch.Tensor) -> set[tuple[int, ...]]:
    return {tuple(int(v) for v in row) for row in x.tolist()}


# ---------------------------------------------------------------------------------------------- time gap


def test_time_gap_is_held_out_95_minus_train_95_and_censored_at_the_budget() -> None:
    train = [0.1, 0.5, 0.96, 1.0, 1.0, 1.0]
    assert time_gap(STEPS, [0.0, 0.1, 0.2, 0.5, 0.97, 0.9], train, 0.95, 3000) == (80 - 40, True)  # first crossings
    assert time_gap(STEPS, [0.0, 0.1, 0.2, 0.5, 0.9, 0.9], train, 0.95, 3000) == (3000 - 40, False)  # a lower bound
    assert time_gap(STEPS, [0.96] * 6, [0.5] * 6, 0.95, 3000) == (None, False)  # never fitted: no gap yet
    column = next(c for c in FAMILY.columns() if c.metric == "time_gap")
    assert column.event == "time_gap_observed" and FAMILY.horizon({"training": {"steps": 3000}}, "time_gap") == 3000


# ------------------------------------------------------------------- the training subset a method keeps


def test_training_examples_must_be_distinct_indices_of_the_training_split() -> None:
    assert _checked_examples(None, "m", 5) is None
    assert torch.equal(_checked_examples(torch.tensor([4, 0, 2]), "m", 5), torch.tensor([4, 0, 2]))
    for bad in (torch.tensor([5]), torch.tensor([-1]), torch.tensor([1, 1]), torch.tensor([]), torch.ones(2, 2),
                torch.tensor([0.0]), torch.tensor([True]), [0, 1]):  # fmt: skip
        with pytest.raises(MethodError, match="training_examples"):
            _checked_examples(bad, "m", 5)


# -------------------------------------------------------------------------------------------- NeuralGrok


class _WatchedNeuralGrok(NeuralGrok):
    """NeuralGrok recording every example the model is trained on and every one the amplifier is fit to."""

    def configure(self, model: OneLayerTransformer, params: dict[str, torch.nn.Parameter], info: TrainingInfo) -> Any:
        configured = super().configure(model, params, info)
        self.start = {n: p.detach().clone() for n, p in self.amplifier.state_dict().items()}
        self.trained_on: set[tuple[int, ...]] = set()
        self.meta_on: set[tuple[int, ...]] = set()
        self.meta_steps, self._in_meta = 0, False

        def watch(module: torch.nn.Module, args: tuple[torch.Tensor, ...]) -> None:
            if torch.is_grad_enabled():  # a training forward (evaluations run without autograd)
                (self.meta_on if self._in_meta else self.trained_on).update(_rows(args[0]))

        model.register_forward_pre_hook(watch)
        return configured

    def _meta_step(self, model: OneLayerTransformer, raw: dict[str, torch.Tensor]) -> None:
        self._in_meta, self.meta_steps = True, self.meta_steps + 1
        super()._meta_step(model, raw)
        self._in_meta = False


def test_neuralgrok_meta_trains_its_amplifier_on_held_in_training_examples_only(tmp_path: Path) -> None:
    task = _smoke(24)
    method = _WatchedNeuralGrok()
    outcome = FAMILY.run(task, method, RunContext(seed=0, device="cpu", cache_dir=tmp_path))
    assert outcome.status == "ok" and method.meta_steps == 24 // method.hp.meta_every
    changed = [n for n, p in method.amplifier.state_dict().items() if not torch.equal(p, method.start[n])]
    assert changed, "the amplifier was never updated"
    split = make_split(task.data.operation, task.data.p, task.data.train_fraction, 0)
    train, held_out = _rows(split.train_x), _rows(split.test_x)
    assert method.meta_on and method.meta_on <= train and not method.meta_on & held_out
    assert method.trained_on and method.trained_on <= train and not method.trained_on & method.meta_on  # 49 : 1
    assert len(method.meta_on) == round(method.hp.outer_fraction * len(train))
    assert outcome.metrics["method_flops"] > 0

    frozen = _WatchedNeuralGrok(meta_every=1000)  # the control: without the outer step nothing is learned
    FAMILY.run(task, frozen, RunContext(seed=0, device="cpu", cache_dir=tmp_path))
    assert frozen.meta_steps == 0
    assert all(torch.equal(p, frozen.start[n]) for n, p in frozen.amplifier.state_dict().items())


# ------------------------------------------------------------------------------------------ GrokTransfer


class _WatchedGrokTransfer(GrokTransfer):
    """GrokTransfer recording the target's embedding as training starts and the steps its weak model took."""

    def prepare(
        self, model: OneLayerTransformer, train_x: torch.Tensor, train_y: torch.Tensor, info: TrainingInfo
    ) -> int:
        self.model, self.initial = model, model.embed.detach().clone()
        self.charged = super().prepare(model, train_x, train_y, info)
        self.at_start = model.embed.detach().clone()
        self.a0, self.b0 = self.factor_a.detach().clone(), self.factor_b.detach().clone()
        return self.charged


def test_groktransfer_starts_from_the_weak_embedding_and_is_charged_its_steps(tmp_path: Path) -> None:
    task = _smoke(60)
    method = _WatchedGrokTransfer(weak_max_steps=30, weak_eval_every=5)
    outcome = FAMILY.run(task, method, RunContext(seed=0, device="cpu", cache_dir=tmp_path))
    assert outcome.status == "ok" and 0 < method.charged <= 30
    a, b, p = method.factor_a.detach(), method.factor_b.detach(), task.data.p
    weak = method.weak.embed.detach()
    # At step 0 the target's embedding is the factorised weak embedding, not the harness's initialisation.
    assert not torch.equal(method.at_start, method.initial)
    assert torch.equal(method.a0[:p], weak) and torch.equal(method.at_start, method.a0 @ method.b0)
    # Both factors trained, and the model's embedding stays their product.
    assert not torch.equal(a[:p], weak)
    torch.testing.assert_close(method.model.embed.detach(), a @ b)
    # The weak model's steps count against the budget: the target's first evaluation is at that step.
    assert outcome.curves["val_acc"].x[0] == method.charged
    weak_flops = method.charged * 3 * 2 * 0.9 * 264 * (2 * 4 * 16 + 16 * p)  # forward+backward of the weak MLP
    assert outcome.metrics["method_flops"] > weak_flops


# ----------------------------------------------------------------------------------------- end to end


def test_groktransfer_runs_through_the_cli_and_its_record_has_the_time_gap(tmp_path: Path, capsys: Any) -> None:
    store = str(tmp_path / "store")
    args = ["--task", "grokking/add-mod97", "--tier", "smoke", "--seeds", "1", "--store", store]
    assert main(["run", *args, "--cache-dir", str(tmp_path / "cache"), "--method", "groktransfer"]) == 0
    capsys.readouterr()
    assert main(["show", "--store", store, "--runs", "--format", "json"]) == 0
    (record,) = json.loads(capsys.readouterr().out)
    assert record["status"] == "ok" and "time_gap" in record["metrics"] and "time_gap_observed" in record["metrics"]
    budget = record["metrics"]["budget"]
    assert 0 < record["curves"]["val_acc"]["x"][0] <= GrokTransfer.Hyperparameters().weak_budget_share * budget
