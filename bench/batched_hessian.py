"""The Hessian estimators' draws as one program: CPU seconds per run, draws one by one versus in lockstep.

A hessian run calls the estimator ``evaluation.draws`` times per budget (20 × 3 budgets). A ``batchable``
method's draws run as lanes of one :class:`~phenomena_bench.core.lockstep.Lockstep`, their products computed
as one block; otherwise one draw after another. This times both on the same (task, method, seed), in one
process and back to back (so the other load on the machine hits both alike), checks that they give the same
scores, and prices the Hessian part of the default suite: the ground truths (checkpoint training, dense
Hessian, eigendecomposition; built once per task and seed, shared by every method) apart from the runs.
Run on purpose, on one thread:

    OMP_NUM_THREADS=1 python -m bench.batched_hessian --tier default --seeds 1
    OMP_NUM_THREADS=1 python -m bench.batched_hessian --tier smoke --methods hessian-lanczos
"""

from __future__ import annotations

import argparse
import math
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from phenomena_bench.core.family import RunContext, RunOutcome
from phenomena_bench.families.hessian import FAMILY, HessianMethod
from phenomena_bench.families.hessian.spec import HessianTask
from phenomena_bench.registry import load_task, resolve_method

ROOT = Path(__file__).resolve().parents[1]
TASKS = ("digits-tanh-ce-init", "digits-tanh-ce-trained", "digits-tanh-mse-eos")
METHODS = ("hessian-lanczos", "hessian-eigsh", "hessian-hutchinson", "hessian-hutchpp")
#: The other methods of the default suite, timed batched only (for the suite's total).
OTHERS = ("hessian-power", "hessian-power-deflated", "hessian-slq", "hessian-floor", "hessian-eos-prior")


def _method(name: str, batchable: bool) -> HessianMethod[Any]:
    method = resolve_method(name)
    assert isinstance(method, HessianMethod)
    method.batchable = batchable  # type: ignore[misc]  # an instance override of the class declaration
    return method


def _timed(task: HessianTask, method: HessianMethod[Any], seed: int, cache: Path) -> tuple[float, RunOutcome]:
    start = time.process_time()
    outcome = FAMILY.run(task, method, RunContext(seed=seed, device="cpu", cache_dir=cache))
    return time.process_time() - start, outcome


def _max_rel_diff(a: RunOutcome, b: RunOutcome) -> float:
    """The largest relative difference between the two runs' numeric scores (timings and FLOPs left out)."""
    worst = 0.0
    for name, x in a.metrics.items():
        y = b.metrics.get(name)
        if name.startswith(("wall_s", "method_flops")) or isinstance(x, bool) or not isinstance(x, (int, float)):
            continue
        if not isinstance(y, (int, float)) or math.isnan(float(x)) != math.isnan(float(y)):
            return math.inf
        worst = max(worst, abs(float(x) - float(y)) / max(abs(float(x)), 1e-300))
    return worst


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tier", default="default", choices=["smoke", "default", "full"])
    parser.add_argument("--seeds", type=int, default=1, help="checkpoint seeds timed per task")
    parser.add_argument("--suite-seeds", type=int, default=6, help="seeds the suite's CPU cost is priced at")
    parser.add_argument("--tasks", default=",".join(TASKS))
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--others", default=",".join(OTHERS))
    args = parser.parse_args()
    torch.set_num_threads(1)
    methods = [m for m in args.methods.split(",") if m]
    others = [m for m in args.others.split(",") if m]
    print(f"tier {args.tier}, {args.seeds} seed(s), CPU seconds (process time), one thread")
    print(f"{'task':<24} {'method':<24} {'alone s':>8} {'lockstep s':>10} {'ratio':>6} {'max rel diff':>12}")
    truth_s = run_s = 0.0
    alone_total = lockstep_total = 0.0
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.tasks.split(","):
            task = load_task(ROOT / "tasks" / "hessian" / f"{name}.yaml").resolve(args.tier)
            assert isinstance(task, HessianTask)
            for seed in range(args.seeds):
                cache = Path(tmp) / f"{name}-{seed}"
                # the first run builds the checkpoint and the truth; a zero-HVP method adds almost nothing
                first, _ = _timed(task, _method("hessian-floor", True), seed, cache)
                truth_s += first
                for method in methods:
                    alone_s, alone = _timed(task, _method(method, False), seed, cache)
                    lock_s, lock = _timed(task, _method(method, True), seed, cache)
                    alone_total += alone_s
                    lockstep_total += lock_s
                    run_s += lock_s
                    diff = _max_rel_diff(alone, lock)
                    print(
                        f"{name:<24} {method:<24} {alone_s:>8.2f} {lock_s:>10.2f} "
                        f"{alone_s / lock_s:>6.2f} {diff:>12.1e}",
                        flush=True,
                    )
                for method in others:
                    lock_s, _ = _timed(task, _method(method, True), seed, cache)
                    run_s += lock_s
                    print(f"{name:<24} {method:<24} {'':>8} {lock_s:>10.2f}", flush=True)
    runs = len(args.tasks.split(",")) * args.seeds
    print(
        f"\ntimed methods, all tasks: alone {alone_total:.1f} s, lockstep {lockstep_total:.1f} s, "
        f"ratio {alone_total / max(lockstep_total, 1e-9):.2f}"
    )
    per_seed_truth, per_seed_runs = truth_s / runs, run_s / runs
    scale = args.suite_seeds * len(args.tasks.split(","))
    print(
        f"per (task, seed): ground truth + checkpoint {per_seed_truth:.1f} s, all methods' runs {per_seed_runs:.1f} s"
    )
    print(
        f"Hessian default-suite cost at {args.suite_seeds} seeds: truths {per_seed_truth * scale:.0f} s + "
        f"runs {per_seed_runs * scale:.0f} s = {(per_seed_truth + per_seed_runs) * scale:.0f} CPU s "
        "(plus one process start per run)"
    )


if __name__ == "__main__":
    main()
