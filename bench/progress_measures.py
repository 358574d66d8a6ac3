"""The cost of the progress measures every grokking record carries, against the same run without them.

Every evaluation of a grokking run records Golechha's progress measures (activation sparsity, absolute
weight entropy, approximate local circuit complexity, weight norm) on the training split: two extra forward
passes over it per run and a pass over the weights. This times, in one process and in CPU time, a
fixed-length run (no early stop) with the measures and the same run with the measuring replaced by a no-op
(the plain reference), alternating the two `--repeats` times, and prints the ratio of the totals and the
CPU time spent inside the measuring itself as a share of the plain run. The budget is 5% of training.
Run on purpose (not a test):

    python -m bench.progress_measures --tier default --steps 300 [--seeds 6] [--repeats 3]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from bench.common import fixed_length_grokking_task
from phenomena_bench.core.family import RunContext
from phenomena_bench.families.grokking import train as grokking_train
from phenomena_bench.registry import resolve_method

Probe = grokking_train._ProgressProbe
ORIGINAL = {name: getattr(Probe, name) for name in ("start", "observe", "record")}
ACCURACY = grokking_train._accuracy_and_loss


def plain_accuracy(runs: Any, x: torch.Tensor, y: torch.Tensor, chunk: int = 8192, probe: Any = None) -> Any:
    """The evaluation's training-split pass without the probe: a plain forward, nothing recorded."""
    return ACCURACY(runs, x, y, chunk)


def use(measuring: bool, inside: list[float]) -> None:
    """Switch the harness between measuring (the shipped code, its probe's own work timed into `inside`) and
    the plain reference (no recording, no ablated pass, no weight measures)."""
    grokking_train._accuracy_and_loss = ACCURACY if measuring else plain_accuracy  # type: ignore[assignment]
    for name, method in ORIGINAL.items():
        setattr(Probe, name, timed(method, inside) if measuring else (lambda *a, **k: None))


def timed(method: Callable[..., None], inside: list[float]) -> Callable[..., None]:
    def wrapper(*a: Any, **k: Any) -> None:
        t0 = time.process_time()
        method(*a, **k)
        inside[0] += time.process_time() - t0

    return wrapper


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tier", default="default", choices=["smoke", "default", "full"])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--seeds", type=int, default=1, help="seeds batched in one program")
    parser.add_argument("--method", default="adamw")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(1)
    task = fixed_length_grokking_task(args.tier, args.steps)
    seeds = list(range(args.seeds))
    ctx = RunContext(seed=0, device="cpu", cache_dir=Path("/tmp"))
    inside = [0.0]

    def run(measuring: bool) -> float:
        use(measuring, inside)
        t0 = time.process_time()
        outcomes = grokking_train.train_runs(task, resolve_method(args.method), seeds, ctx)
        elapsed = time.process_time() - t0
        points = len(outcomes[0].curves["circuit_complexity"].x)
        assert points == (len(outcomes[0].curves["train_acc"].x) if measuring else 0), points
        return elapsed

    run(False)  # warm-up: first-call costs are neither variant's
    run(True)
    inside[0] = 0.0
    pairs = []
    for i in range(args.repeats):  # alternated, ABBA: a drift in the machine's load hits both alike
        if i % 2:
            measuring = run(True)
            pairs.append((run(False), measuring))
        else:
            pairs.append((run(False), run(True)))
    plain, measured = sum(p for p, _ in pairs), sum(m for _, m in pairs)
    use(True, [0.0])
    evals = args.steps // task.training.eval_every + 1
    print(f"{args.method} on {task.id} [{args.tier}], {args.steps} steps, {evals} evaluations, {len(seeds)} seed(s)")
    print(f"CPU time over {args.repeats} run(s) each: plain {plain:.2f} s, with progress measures {measured:.2f} s")
    print(f"ratio with / plain: {measured / plain:.4f} (+{100 * (measured / plain - 1):.2f}%)")
    print("ratio per pair: " + ", ".join(f"{m / p:.3f}" for p, m in pairs))
    print(
        f"inside the probe (ablated passes, weight measures): {inside[0]:.2f} s = {100 * inside[0] / plain:.2f}% "
        f"of the plain run ({1000 * inside[0] / (args.repeats * evals * len(seeds)):.2f} ms per evaluation and run)"
    )


if __name__ == "__main__":
    main()
