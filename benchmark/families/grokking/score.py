"""How one grokking run's evaluations become its metrics and curves.

The training loop (:mod:`.train`) only records evaluations in a :class:`Track`; this module decides what
they mean: the held target (hold-for-`hold_evals`), the first crossings, censoring at the budget, FLOPs to
the target, the delay between memorisation and generalisation (the phenomenon itself, as a ratio and as GrokTransfer's
"time gap" in steps), and what happened
after the grok (training goes on to `past_grok` x the first held step). A run that never gets there is
censored (``reached: false``), not failed.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

from phenomena_bench.core.curves import downsample
from phenomena_bench.core.family import RunOutcome, Scalar
from phenomena_bench.families.grokking.spec import GrokkingTask


def first_held(steps: list[int], values: list[float], threshold: float, hold: int) -> int | None:
    """The step of the first evaluation with value >= threshold that stays there for `hold` more evaluations.

    An evaluation too close to the end to show `hold` successors does not count: the run has not shown the
    accuracy holds, so it is censored rather than credited.
    """
    run = 0
    for i, value in enumerate(values):
        run = run + 1 if value >= threshold else 0
        if run == hold + 1:
            return steps[i - hold]
    return None


def first_crossing(steps: list[int], values: list[float], threshold: float) -> int | None:
    """The step of the first evaluation with value >= threshold (no hold), or None."""
    return next((s for s, v in zip(steps, values) if v >= threshold), None)


def first_joint_crossing(
    steps: list[int], val: list[float], train: list[float], val_threshold: float, train_threshold: float
) -> int | None:
    """The first evaluation with held-out accuracy >= `val_threshold` while training accuracy is >=
    `train_threshold` (the Muon paper's grokking step: 95% held-out once training accuracy is ~100%)."""
    return next((s for s, v, t in zip(steps, val, train) if v >= val_threshold and t >= train_threshold), None)


def time_gap(
    steps: list[int], val: list[float], train: list[float], threshold: float, budget: int
) -> tuple[int | None, bool]:
    """GrokTransfer's "time gap": first step with held-out accuracy >= `threshold` minus the first with
    training accuracy >= `threshold` (Xu et al. 2025 use 95%; 0 or less means no delay at all).

    Returns (gap, observed). A run that reached the threshold on the training split but never on the
    held-out one is censored: its gap is ``budget - train step``, a lower bound (observed False). A run that
    never reached it on the training split has no gap yet (None, observed False): the harness reads it as
    not reached, like any censored time.
    """
    fitted = first_crossing(steps, train, threshold)
    if fitted is None:
        return None, False
    held = first_crossing(steps, val, threshold)
    return (held - fitted, True) if held is not None else (budget - fitted, False)


def delay_ratio(grokked_or_budget: int, fitted: int | None) -> float | None:
    """Steps to the held target / steps to memorisation: >= 2 is a grokking delay, ~1 is plain learning.

    With a censored run (`grokked_or_budget` is the budget) it is a lower bound. None when the training split
    was never memorised (or at step 0: nothing was learned before generalising)."""
    return round(grokked_or_budget / fitted, 3) if fitted else None


def after_grok(
    steps: list[int], val: list[float], grokked: int | None, below: float
) -> tuple[float | None, bool | None]:
    """(Minimum held-out accuracy from the first held step to the end of training, whether it fell below
    `below`); (None, None) for a run that did not grok."""
    if grokked is None:
        return None, None
    lowest = min(v for s, v in zip(steps, val) if s >= grokked)
    return lowest, lowest < below


@dataclass
class Track:
    """One run's evaluations and fate inside a (possibly batched) training program."""

    eval_steps: list[int] = field(default_factory=list)
    train_acc: list[float] = field(default_factory=list)
    val_acc: list[float] = field(default_factory=list)
    train_loss: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    flops_at: dict[int, float] = field(default_factory=dict)
    time_at: dict[int, float] = field(default_factory=dict)
    active: bool = True
    steps_run: int = 0
    #: FLOPs of the harness's forward+backward and evaluations (analytic) plus the method's, as measured.
    flops: float = 0.0
    #: FLOPs of the method's own code, measured by the harness's meter (this run's share in a batch).
    method_flops: float = 0.0
    #: What the method's ``overhead_flops_per_step`` claims for the steps trained: a cross-check only.
    declared_overhead_flops: float = 0.0
    #: Why training stopped early because the loss became non-finite; None while it has not.
    diverged: str | None = None


def score_run(task: GrokkingTask, t: Track) -> RunOutcome:
    """The run's outcome: metrics and curves from its own evaluations, `diverged` if its loss blew up."""
    ev, budget = task.evaluation, task.training.steps
    eval_steps, train_acc, val_acc, val_loss = t.eval_steps, t.train_acc, t.val_acc, t.val_loss
    train_loss = t.train_loss
    grokked = first_held(eval_steps, val_acc, ev.target, ev.hold_evals)
    crossed = first_joint_crossing(eval_steps, val_acc, train_acc, ev.crossing, ev.target)
    fitted = first_crossing(eval_steps, train_acc, ev.target)
    lowest, collapsed = after_grok(eval_steps, val_acc, grokked, ev.collapse_below)
    gap, gap_observed = time_gap(eval_steps, val_acc, train_acc, ev.crossing, budget)
    metrics: dict[str, Scalar] = {
        "steps_to_target": grokked if grokked is not None else budget,
        "reached": grokked is not None,
        "steps_to_95": crossed if crossed is not None else budget,
        "reached_95": crossed is not None,
        "steps_to_fit": fitted if fitted is not None else budget,
        "fitted": fitted is not None,
        "delay_ratio": delay_ratio(grokked if grokked is not None else budget, fitted),
        "time_gap": gap,
        "time_gap_observed": gap_observed,
        "min_val_acc_after_grok": lowest,
        "collapsed": collapsed,
        "final_train_acc": train_acc[-1],
        "final_val_acc": val_acc[-1],
        "final_train_loss": train_loss[-1] if math.isfinite(train_loss[-1]) else None,
        "final_val_loss": val_loss[-1] if math.isfinite(val_loss[-1]) else None,
        "steps_run": t.steps_run,
        "flops": t.flops,
        "method_flops": t.method_flops,
        "declared_overhead_flops": t.declared_overhead_flops,
        "gflops_to_target": round(t.flops_at[grokked] / 1e9, 3) if grokked is not None else None,
        "time_to_target_s": round(t.time_at[grokked], 3) if grokked is not None else None,
        "budget": budget,
    }
    curves = {
        "val_acc": downsample(eval_steps, val_acc),
        "train_acc": downsample(eval_steps, train_acc),
        "val_loss": downsample(eval_steps, [v if math.isfinite(v) else 1e30 for v in val_loss]),
    }
    if t.diverged is not None:
        return dataclasses.replace(RunOutcome.diverged(t.diverged, metrics), curves=curves)
    return RunOutcome(status="ok", metrics=metrics, curves=curves)
