"""Dropout as an ensemble of subnetworks: how many dropout masks of a trained net still generalise.

After Dhayalkar, "A Combinatorial Theory of Dropout: Subnetworks, Graph Geometry, and Generalization"
(arXiv 2504.14762). The paper models dropout training as a random walk on the hypercube {0,1}^d of unit
masks (d = hidden units; two masks are neighbours when they differ in one unit) and claims that (1) the
"good" subnetworks are a large set whose number grows exponentially with width, and (2) a subnetwork's
quality varies smoothly over the hypercube (neighbours score alike). This measurement tests both on a
pruning task's data and recipe, without retraining any subnetwork:

1. For each hidden width w of a sweep around the task's own (w/4 ... 4w: 32-512 on mnist1d-mlp's default
   tier, 64-1024 on its full tier), the task's MLP with both hidden layers w wide is trained with the task's
   recipe plus inverted dropout p = 0.5 on every hidden unit (the pruning family's own training loop,
   seed 0; cached, built once under a lock and charged to no run).
2. 1,000 unit masks are drawn from the dropout distribution itself (each unit kept with probability 1 - p,
   a generator fixed by the task and the width). With p = 0.5 every mask of {0,1}^d is equally likely, so
   the fraction of good masks sampled estimates |G| / 2^d, and log2 |G| ≈ d + log2(fraction).
3. Each subnetwork is the trained net with the masked units' activations zeroed and the kept ones scaled by
   1/(1-p): exactly the network a training step computes under that mask. It is scored on the test split
   (accuracy and loss) and on the first training examples (loss), all masks of a chunk as one batched
   matmul (:func:`subnetwork_scores`); nothing is retrained.

**Good**, two ways. The paper's set is G_ε = {f : C(f) < ε} with the contribution score C(f) = test loss
- training loss, a generalisation gap; taken alone it counts a subnetwork at chance (equal, high losses on
both splits) as good, so the primary definition here is the accuracy one: a subnetwork is good at
tolerance t when its test accuracy is at least (1 - t) x the full network's (all units, no scaling: the
network dropout trains for inference), reported at t = 5, 10 and 20 % (the summary line uses 10 %: at
p = 0.5 the full network is an ensemble average that beats the mean subnetwork by 0.04-0.11 accuracy on
MNIST-1D, so at 5 % almost no subnetwork of a wide net qualifies). Reported beside it: the fraction whose
gap C(f) is no larger than the full network's (ε = C(full)), and the mean C(f). Training loss is taken on
the first 250 training examples (the cost of the scoring grows with the examples scored).

**Smoothness.** For the first 100 masks, one unit chosen uniformly is flipped (a Hamming-1 neighbour);
the mean |Δ test accuracy| over these pairs is compared with the same statistic over pairs of independent
masks (mask 2i against 2i+1). A landscape smooth on the hypercube has the first well below the second.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import torch
import torch.nn.functional as F

from phenomena_bench.core.cache import computed_once
from phenomena_bench.core.costs import shared_work
from phenomena_bench.core.curves import Curve
from phenomena_bench.core.measurement import Measurement, MeasurementResult, MeasurementTable
from phenomena_bench.core.spec import TaskSpec
from phenomena_bench.families.pruning.api import TrainedState
from phenomena_bench.families.pruning.context import _setup
from phenomena_bench.families.pruning.masks import make_generator
from phenomena_bench.families.pruning.spec import PruningTask
from phenomena_bench.families.pruning.train import Data, Trainer, stacked_forward

#: The seed whose initialisation and batch order train every network of the sweep.
SEED = 0
#: A subnetwork is good at tolerance t when its test accuracy is >= (1 - t) x the full network's.
TOLERANCES = (0.05, 0.1, 0.2)
#: The tolerance the summary line and the log2 |G| estimate use.
HEADLINE_TOLERANCE = 0.1
#: Activations (masks x examples x widest layer) one scoring chunk may hold: bounds memory at any width.
CHUNK_ELEMENTS = 1 << 21  # 8 MB: larger chunks were slower (page faults on every allocation)


@dataclass(frozen=True)
class Scores:
    """Per-mask test accuracy, test loss and training loss."""

    accuracy: torch.Tensor
    test_loss: torch.Tensor
    train_loss: torch.Tensor

    @property
    def gap(self) -> torch.Tensor:
        """The paper's contribution score C(f): test loss minus training loss."""
        return self.test_loss - self.train_loss


@dataclass(frozen=True)
class WidthResult:
    """What one width of the sweep measured."""

    width: int
    units: int
    full_accuracy: float
    full_gap: float
    accuracy: list[float]
    #: Fraction of masks whose test accuracy is >= (1 - tolerance) x the full network's, per tolerance.
    frac_good: dict[float, float]
    frac_gap_good: float
    mean_gap: float
    neighbour_delta: float
    random_pair_delta: float


# ------------------------------------------------------------------------------------ the computations


def sample_masks(count: int, units: int, p: float, generator: torch.Generator) -> torch.Tensor:
    """`count` dropout masks over `units` hidden units, (count, units) bool: each unit kept w.p. 1 - p."""
    return torch.rand(count, units, generator=generator) >= p


def hamming_neighbours(masks: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Each mask with one unit, chosen uniformly, flipped: its neighbour on the hypercube."""
    flip = torch.randint(masks.shape[1], (masks.shape[0],), generator=generator)
    out = masks.clone()
    rows = torch.arange(masks.shape[0])
    out[rows, flip] = ~out[rows, flip]
    return out


def neighbour_smoothness(
    masks: torch.Tensor, neighbours: torch.Tensor, score: torch.Tensor, neighbour_score: torch.Tensor
) -> float:
    """Mean |score(m) - score(m')| over pairs of masks one unit apart; ValueError if a pair is not."""
    distance = (masks != neighbours).sum(dim=1)
    if not bool((distance == 1).all()):
        raise ValueError(f"pairs must differ in exactly one unit, got Hamming distances {distance.tolist()}")
    return float((score - neighbour_score).abs().mean())


def _split_units(mask: torch.Tensor, widths: Sequence[int]) -> list[torch.Tensor]:
    """A (K, sum(widths)) unit mask cut into one (K, width) block per hidden layer, input side first."""
    return list(torch.split(mask, list(widths), dim=1))


def subnetwork_logits(
    weights: Mapping[str, torch.Tensor], masks: torch.Tensor, p: float, x: torch.Tensor
) -> torch.Tensor:
    """Logits (K, N, classes) of the K subnetworks `masks` (K, hidden units) of a plain MLP on `x` (N, in).

    Each is the training-time network under that dropout mask (dropped units zeroed, kept ones scaled by
    1/(1-p)), computed by the family's own stacked forward with the K masks on the stack axis: the weights
    are broadcast, not copied, so each layer is one batched matmul over the masks."""
    depth = sum(1 for n in weights if n.endswith(".weight"))
    widths = [weights[f"fc{i}.weight"].shape[0] for i in range(1, depth)]
    k = masks.shape[0]
    params = {n: w.unsqueeze(0).expand(k, *w.shape) for n, w in weights.items()}
    scale = 1.0 / (1.0 - p)
    keep = [block.to(x.dtype).unsqueeze(1) * scale for block in _split_units(masks, widths)]
    return stacked_forward(params, {}, x.unsqueeze(0).expand(k, *x.shape), False, keep)


@torch.no_grad()
def subnetwork_scores(
    weights: Mapping[str, torch.Tensor], masks: torch.Tensor, p: float, test: Data, train: Data
) -> Scores:
    """Test accuracy and loss and training loss of every subnetwork in `masks`, in memory-bounded chunks."""
    widest = max(int(w.shape[0]) for n, w in weights.items() if n.endswith(".weight"))
    rows = max(test.x.shape[0], train.x.shape[0])
    chunk = max(1, CHUNK_ELEMENTS // (rows * widest))
    acc, test_loss, train_loss = [], [], []
    for start in range(0, masks.shape[0], chunk):
        part = masks[start : start + chunk].to(test.x.device)
        logits = subnetwork_logits(weights, part, p, test.x)
        acc.append((logits.argmax(dim=2) == test.y).float().mean(dim=1))
        test_loss.append(_mean_loss(logits, test.y))
        train_loss.append(_mean_loss(subnetwork_logits(weights, part, p, train.x), train.y))
    return Scores(torch.cat(acc).cpu(), torch.cat(test_loss).cpu(), torch.cat(train_loss).cpu())


def _mean_loss(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy per subnetwork: logits (K, N, C), labels (N,)."""
    k, n, _ = logits.shape
    return F.cross_entropy(logits.flatten(0, 1), y.repeat(k), reduction="none").view(k, n).mean(dim=1)


@torch.no_grad()
def full_scores(trainer: Trainer, state: TrainedState, test: Data, train: Data) -> tuple[float, float]:
    """The full network's (all units, no scaling) test accuracy and gap C = test loss - training loss."""
    model = trainer.build(state.weights).eval()
    test_loss = float(F.cross_entropy(model(test.x), test.y))
    train_loss = float(F.cross_entropy(model(train.x), train.y))
    return trainer.accuracy(state, test), test_loss - train_loss


# ------------------------------------------------------------------------------------ the measurement


class DropoutSubnetworks(Measurement):
    """The fraction of good dropout subnetworks against width, and their smoothness on the hypercube."""

    id: ClassVar[str] = "pruning/dropout-subnetworks"
    family: ClassVar[str] = "pruning"
    version: ClassVar[str] = "1"
    title: ClassVar[str] = "Dropout subnetworks: fraction good vs width, Hamming-1 smoothness"
    description: ClassVar[str] = __doc__ or ""

    def __init__(
        self,
        width_factors: Sequence[float] = (0.25, 0.5, 1.0, 2.0, 4.0),
        masks: int = 1000,
        neighbours: int = 100,
        dropout: float = 0.5,
        tolerances: Sequence[float] = TOLERANCES,
        train_examples: int = 250,
    ) -> None:
        self.width_factors = tuple(width_factors)
        self.masks = masks
        self.neighbours = min(neighbours, masks)
        self.dropout = dropout
        self.tolerances = tuple(tolerances)
        self.train_examples = train_examples

    def applies_to(self, task: TaskSpec) -> bool:
        """A plain MLP on MNIST-1D (the residual MLP's skip paths make a unit mask a different object)."""
        return isinstance(task, PruningTask) and task.model.kind == "mlp" and task.data.dataset == "mnist1d"

    def widths(self, task: PruningTask) -> list[int]:
        base = task.model.hidden[0]
        return sorted({max(2, round(base * f)) for f in self.width_factors})

    def settings(self, task: TaskSpec) -> dict[str, Any]:
        assert isinstance(task, PruningTask)
        return {
            "widths": self.widths(task),
            "masks": self.masks,
            "neighbours": self.neighbours,
            "dropout": self.dropout,
            "tolerances": list(self.tolerances),
            "train_examples": self.train_examples,
            "seed": SEED,
        }

    def measure(self, task: TaskSpec, cache_dir: Path, device: str) -> MeasurementResult:
        assert isinstance(task, PruningTask)
        results = [self.measure_width(task, w, cache_dir, device) for w in self.widths(task)]
        return MeasurementResult(
            measurement=self.id,
            version=self.version,
            family=self.family,
            task_id=task.id,
            tier="",
            tables=[self._good_table(results), self._smoothness_table(results)],
            curves=self._curves(results),
            summary=self._summary(results),
            cpu_seconds=0.0,
        )

    def measure_width(self, task: PruningTask, width: int, cache_dir: Path, device: str) -> WidthResult:
        """Train (or load) the dropout network of `width` and score its sampled subnetworks."""
        wide = task.model_copy(
            update={"model": task.model.model_copy(update={"hidden": [width] * len(task.model.hidden)})}
        )
        ctx, test = _setup(wide, SEED, device, cache_dir)
        trainer = ctx._trainer.with_dropout(self.dropout)
        state = _trained(trainer, ctx.init_state, cache_dir / "pruning" / f"dropout-{trainer.task_digest[:32]}.lock")
        train = Data(trainer.data.x[: self.train_examples], trainer.data.y[: self.train_examples], test.num_classes)
        units = width * len(task.model.hidden)
        gen = make_generator(SEED, "dropout-subnetworks", task.id, width)
        masks = sample_masks(self.masks, units, self.dropout, gen)
        nbrs = hamming_neighbours(masks[: self.neighbours], gen)
        scores = subnetwork_scores(state.weights, torch.cat([masks, nbrs]), self.dropout, test, train)
        acc = scores.accuracy[: self.masks]
        gap = scores.gap[: self.masks]
        full_acc, full_gap = full_scores(trainer, state, test, train)
        half = self.masks // 2 * 2
        return WidthResult(
            width=width,
            units=units,
            full_accuracy=full_acc,
            full_gap=full_gap,
            accuracy=acc.tolist(),
            frac_good={t: float((acc >= (1 - t) * full_acc).float().mean()) for t in self.tolerances},
            frac_gap_good=float((gap <= full_gap).float().mean()),
            mean_gap=float(gap.mean()),
            neighbour_delta=neighbour_smoothness(
                masks[: self.neighbours], nbrs, acc[: self.neighbours], scores.accuracy[self.masks :]
            ),
            random_pair_delta=float((acc[0:half:2] - acc[1:half:2]).abs().mean()),
        )

    def _good_table(self, results: list[WidthResult]) -> MeasurementTable:
        rows: list[list[str | float | int | None]] = []
        for r in results:
            head = r.frac_good.get(HEADLINE_TOLERANCE, 0.0)
            sd = statistics.pstdev(r.accuracy)
            row: list[str | float | int | None] = [r.width, r.units, round(r.full_accuracy, 3)]
            row += [round(statistics.fmean(r.accuracy), 3), round(sd, 3)]
            row += [round(r.frac_good[t], 3) for t in self.tolerances]
            row.append(round(r.units + math.log2(head), 1) if head > 0 else None)
            row += [round(r.frac_gap_good, 3), round(r.mean_gap, 3), round(r.full_gap, 3)]
            rows.append(row)
        columns = ["width", "units d", "full acc", "subnet acc", "sd"]
        columns += [f"good {t:.0%}" for t in self.tolerances]
        columns += [f"log2|G| {HEADLINE_TOLERANCE:.0%}", "C<=C(full)", "mean C", "C(full)"]
        note = (
            f"{self.masks} masks per width, each unit kept w.p. {1 - self.dropout:g} (the training dropout; at p = "
            f"0.5 every mask of {{0,1}}^d is equally likely). good t% = fraction with test accuracy >= (1 - t) x "
            f"the full network's (all units, no scaling); log2|G| = d + log2(good), the estimated number of good "
            f"masks. C = test loss - training loss (the paper's contribution score; training loss on the first "
            f"{self.train_examples} training examples); C<=C(full) = fraction at least as small as the full net's."
        )
        return MeasurementTable("Good dropout subnetworks by hidden width (both hidden layers)", columns, rows, note)

    def _smoothness_table(self, results: list[WidthResult]) -> MeasurementTable:
        rows: list[list[str | float | int | None]] = [
            [
                r.width,
                round(r.neighbour_delta, 4),
                round(r.random_pair_delta, 4),
                round(r.neighbour_delta / r.random_pair_delta, 3) if r.random_pair_delta > 0 else None,
            ]
            for r in results
        ]
        note = (
            f"mean |delta test accuracy| over {self.neighbours} pairs of masks one unit apart (a uniformly chosen "
            f"unit flipped) and over {self.masks // 2} pairs of independent masks; ratio < 1: the accuracy is "
            "smooth on the hypercube."
        )
        columns = ["width", "Hamming-1 |dacc|", "independent pair |dacc|", "ratio"]
        return MeasurementTable("Smoothness between neighbouring subnetworks", columns, rows, note)

    def _curves(self, results: list[WidthResult]) -> dict[str, Curve]:
        widths = [float(r.width) for r in results]
        curves = {
            f"fraction of good subnetworks | within {t:.0%}": Curve(
                widths, [r.frac_good[t] for r in results], "hidden width"
            )
            for t in self.tolerances
        }
        curves["mean |delta acc| | Hamming-1 neighbours"] = Curve(
            widths, [r.neighbour_delta for r in results], "hidden width"
        )
        curves["mean |delta acc| | independent masks"] = Curve(
            widths, [r.random_pair_delta for r in results], "hidden width"
        )
        return curves

    @staticmethod
    def _summary(results: list[WidthResult]) -> str:
        fracs = " ".join(f"{r.width}:{r.frac_good.get(HEADLINE_TOLERANCE, 0.0):.2f}" for r in results)
        smooth = " ".join(f"{r.neighbour_delta:.3f}/{r.random_pair_delta:.3f}" for r in results)
        return (
            f"good (acc >= {1 - HEADLINE_TOLERANCE:g} x full) by width {fracs}; |dacc| Hamming-1/independent {smooth}"
        )


def _trained(trainer: Trainer, init: TrainedState, lock: Path) -> TrainedState:
    """The dropout network trained with the task's recipe from θ_0: cached on disk, built once under `lock`
    (as pruning's θ_k), its time counted as shared work."""
    steps = trainer.recipe.steps

    def build() -> TrainedState:
        with shared_work("dropout-subnetworks"):
            state = trainer.train(None, init, steps)
        if state.diverged:
            raise RuntimeError(f"the dropout network diverged (loss {state.final_loss})")
        return state

    return computed_once(lock, lambda: trainer.dense_cached(init, steps), build)
