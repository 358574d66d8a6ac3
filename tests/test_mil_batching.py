"""Many MIL trainings as one stacked program: equal to the trainings alone, blind to padding, bags built once."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import phenomena_bench.families.mil_dropout.splits as splits_module
from phenomena_bench.core.family import RunContext
from phenomena_bench.core.metering import Meter
from phenomena_bench.families.mil_dropout import FAMILY
from phenomena_bench.families.mil_dropout.splits import cached_splits
from phenomena_bench.families.mil_dropout.train import Training, train_models
from phenomena_bench.models.abmil import GatedABMIL, StackedGatedABMIL
from phenomena_bench.registry import load_task, resolve_method

TASKS = Path(__file__).resolve().parents[1] / "tasks" / "mil_dropout"


def _params(model: GatedABMIL) -> torch.Tensor:
    return torch.cat([p.detach().reshape(-1) for p in model.parameters()])


@pytest.mark.parametrize("method", ["mil-pdl", "mil-mildropout-tuned"])
def test_stacked_training_equals_each_model_alone(method: str, tmp_path: Path) -> None:
    """Three trainings (two seeds' clean models, one flipped-label model) at once end where each ends alone;
    mil-pdl draws from the global generator, so this also checks each model keeps its own random stream."""
    task = load_task(TASKS / "digits-bags-150.yaml").resolve("smoke")
    splits = {seed: cached_splits(task, seed, tmp_path)[0] for seed in (0, 1)}
    jobs = [
        (splits[0].train, splits[0].train.labels, 0),
        (splits[1].train, splits[1].train.labels, 1),
        (splits[0].train, splits[0].flipped["label_noise"][0], 0),
    ]

    def trainings() -> list[Training]:
        return [Training(train, labels, seed, 0, Meter()) for train, labels, seed in jobs]

    together = train_models(task, resolve_method(method), trainings(), "cpu")
    alone = [train_models(task, resolve_method(method), [job], "cpu")[0] for job in trainings()]
    for a, b in zip(together, alone, strict=True):
        assert a.error is None and b.error is None and a.model is not None and b.model is not None
        assert torch.allclose(_params(a.model), _params(b.model), atol=1e-5, rtol=0)
        assert np.allclose(a.losses, b.losses, atol=1e-5)
    assert not torch.allclose(_params(together[0].model), _params(together[2].model))  # type: ignore[union-attr]


def test_run_batch_of_two_seeds_equals_two_runs(tmp_path: Path) -> None:
    task = load_task(TASKS / "digits-bags-150.yaml").resolve("smoke")
    method = resolve_method("mil-pdl")
    assert FAMILY.can_batch(method)
    ctx = RunContext(seed=0, device="cpu", cache_dir=tmp_path)
    batched = FAMILY.run_batch(task, method, [0, 1], ctx)
    for seed, together in zip((0, 1), batched, strict=True):
        alone = FAMILY.run(task, method, RunContext(seed=seed, device="cpu", cache_dir=tmp_path))
        assert together.status == alone.status == "ok"
        for key, value in alone.metrics.items():
            other = together.metrics[key]
            if isinstance(value, float) and key.startswith(("auc", "acc", "drop", "attention")):
                assert other == pytest.approx(value, abs=1e-4), key
    assert batched[0].metrics["auc_clean"] != batched[1].metrics["auc_clean"]  # two seeds, two results


def test_padding_changes_no_output() -> None:
    """A bag packed with junk rows (not in the bag, masked out) gets the same attention and logit."""
    torch.manual_seed(0)
    stacked = StackedGatedABMIL([GatedABMIL(5, (8, 8), 4), GatedABMIL(5, (8, 8), 4)])
    x = torch.randn(2, 6, 5)
    bags = torch.zeros(2, 1, 6, dtype=torch.bool)
    bags[:, 0, :4] = True
    mask = bags[:, 0].clone()
    junk = x.clone()
    junk[:, 4:] = 1e3 * torch.randn(2, 2, 5)
    short = stacked(x[:, :4], bags[:, :, :4], mask[:, :4])
    padded = stacked(junk, bags, mask)
    assert torch.allclose(short.logits, padded.logits, atol=1e-6)
    assert torch.allclose(short.attention, padded.attention[:, :, :4], atol=1e-6)
    assert bool((padded.attention[:, :, 4:] == 0).all())
    alone = stacked.unstacked(1)(x[1:, :4], mask[1:, :4])  # model 1 alone, as a plain GatedABMIL
    assert torch.allclose(alone.logits, padded.logits[1], atol=1e-6)


def test_a_second_run_reads_the_cached_bags(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    task = load_task(TASKS / "digits-bags-150.yaml").resolve("smoke")
    first = cached_splits(task, 0, tmp_path)

    def refuse(*args: object) -> None:
        raise AssertionError("the bags were built twice")

    monkeypatch.setattr(splits_module, "_make_splits", refuse)
    second = cached_splits(task, 0, tmp_path)
    assert len(second) == len(first) == 1
    a, b = first[0], second[0]
    assert all(np.array_equal(x, y) for x, y in zip(a.train.instances, b.train.instances, strict=True))
    assert np.array_equal(a.test.labels, b.test.labels)
    assert np.array_equal(a.flipped["label_noise"][1], b.flipped["label_noise"][1])
    assert all(
        np.array_equal(x, y)
        for x, y in zip(a.poisoned_train["poison"].instances, b.poisoned_train["poison"].instances, strict=True)
    )
    assert a.test.instance_labels is not None and b.test.instance_labels is not None
    assert all(np.array_equal(x, y) for x, y in zip(a.test.instance_labels, b.test.instance_labels, strict=True))
