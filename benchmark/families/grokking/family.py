"""Time-to-grok: how many steps until a network that has memorised its training set generalises.

Protocol (Power et al. 2022; Nanda et al. 2023, the tasks' `references`): the harness trains Nanda's one-layer
transformer on the seed's split of (a op b) mod p (:mod:`.train`), evaluates the whole held-out split every
`eval_every` steps and reports (:mod:`.score`):

- ``steps_to_target``: the first evaluation at which held-out accuracy reaches the target (99 %) *and*
  holds for the next `hold_evals` (5) evaluations. A run that never gets there is censored at the budget
  (``reached: false``), not failed: it is a lower bound, never averaged as if finished.
- ``steps_to_fit``: the first evaluation with training accuracy at the target (memorisation), and
  ``delay_ratio`` = ``steps_to_target / steps_to_fit``: the phenomenon itself (>= 2 is a grokking delay;
  a lower bound when censored).
- ``time_gap``: GrokTransfer's delay in steps, the first evaluation with held-out accuracy >= 95 % minus
  the first with training accuracy >= 95 % (each a first crossing, as Xu et al. 2025 define it); censored
  at the budget when held-out accuracy never gets there (``time_gap_observed: false``).
- ``steps_to_95``: the Muon paper's grokking step, the first evaluation with held-out accuracy >= 95 %
  while training accuracy is at the target (~100 %) too.
- ``min_val_acc_after_grok`` and ``collapsed``: training goes on past the grok to `past_grok` (1.5) x the
  first held step, capped by the budget; the lowest held-out accuracy from the first held step on, and
  whether it fell below `collapse_below` (90 %) — generalisation that does not last (Janati et al. 2026
  report it for Muon). Only grokked runs report these two.
- final train/held-out accuracy and loss (at the end of training, past the grok), and the FLOPs spent.
- curves at every evaluation: train/held-out accuracy, held-out loss, and Golechha's (2024) progress
  measures on the training split, ``activation_sparsity`` (MLP ReLU outputs below 0.1), ``weight_entropy``
  (-sum |w| log |w|), ``circuit_complexity`` (summed KL divergence of the outputs when a fixed random 10%
  of the weights is zeroed) and ``weight_norm``, over the weight matrices and embeddings
  (:mod:`~phenomena_bench.core.progress_measures`).

A method implements :class:`~phenomena_bench.families.grokking.api.GrokkingMethod` (see :mod:`.api`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar, Literal

from phenomena_bench.core.family import Column, Family, RunContext, RunOutcome
from phenomena_bench.core.method import Method
from phenomena_bench.core.spec import TaskSpec
from phenomena_bench.families.grokking.api import GrokkingMethod
from phenomena_bench.families.grokking.spec import GrokkingTask
from phenomena_bench.families.grokking.train import has_own_prepare, train, train_runs

__all__ = ["FAMILY", "GrokkingFamily", "GrokkingMethod", "GrokkingTask"]


class GrokkingFamily(Family[GrokkingTask, GrokkingMethod[Any]]):
    name: ClassVar[str] = "grokking"
    description: ClassVar[str] = (
        "Steps until held-out accuracy on modular arithmetic reaches 99% and holds (time-to-grok)."
    )
    spec_model: ClassVar[type[TaskSpec]] = GrokkingTask
    method_base: ClassVar[type[Method[Any]]] = GrokkingMethod
    primary_metric: ClassVar[str] = "steps_to_target"
    direction: ClassVar[Literal["min", "max"]] = "min"
    reference_method: ClassVar[str] = "adamw"

    def run(self, task: GrokkingTask, method: GrokkingMethod[Any], ctx: RunContext) -> RunOutcome:
        return train(task, method, ctx)

    def can_batch(self, method: GrokkingMethod[Any]) -> bool:
        """Element-wise methods without a `prepare` phase (which sees one run's data) train seeds together."""
        return isinstance(method, GrokkingMethod) and method.batchable and not has_own_prepare(method)

    def batches_by_default(self, device: str) -> bool:
        """Batch on the CPU too: with the attention written without tiny batched matmuls and the optimizer
        fused, 6 seeds of Adam on the default tier trained as one program in x1.78 less time than one by one
        on one core (``python -m bench.batched_seeds --seeds 6 --method adam --steps 200``): the step's
        per-operation overhead, the FLOP meter's included, is paid once for all seeds. Runs that stop early
        wait in the stack for the slowest seed, which costs back part of it (see the README's figures)."""
        return True

    def run_batch(
        self, task: GrokkingTask, method: GrokkingMethod[Any], seeds: list[int], ctx: RunContext
    ) -> list[RunOutcome]:
        return train_runs(task, method, seeds, ctx)

    def horizon(self, task: Mapping[str, Any], metric: str) -> float | None:
        """Every step count to an event is censored at the step budget."""
        steps = task.get("training", {}).get("steps")
        if metric in ("steps_to_target", "steps_to_95", "steps_to_fit", "time_gap") and isinstance(steps, int):
            return float(steps)
        return None

    def columns(self) -> list[Column]:
        return [
            Column("steps to 99% held", "steps_to_target", "median_iqr", event="reached", digits=0, error="time"),
            Column("success", "reached", "rate", floor=0.0),
            Column("steps to 95%", "steps_to_95", "median_iqr", event="reached_95", digits=0),
            Column("memorised at", "steps_to_fit", "median_iqr", event="fitted", digits=0),
            Column("delay ratio", "delay_ratio", "median_iqr", event="reached", digits=2),
            Column("time gap", "time_gap", "median_iqr", event="time_gap_observed", digits=0),
            Column("min val acc after grok", "min_val_acc_after_grok", "mean_ci", digits=4),
            Column("collapsed", "collapsed", "rate"),
            Column("final val acc", "final_val_acc", "mean_ci", digits=4, floor=0.0),
            Column("GFLOP to 99%", "gflops_to_target", "median_iqr", event="reached", digits=1),
        ]


FAMILY = GrokkingFamily()
