"""Many seeds at once: R seeds of one (task, method) trained as one program versus one by one.

Times `train_runs(task, method, seeds)` (stacked parameters, vmap) against the same seeds run one after
another, in one process, and checks that both give the same steps-to-grok. On a GPU a tiny model is
launch-bound and batching should win by an order of magnitude; on the CPU the step's per-operation overhead
(the FLOP meter's included) is paid once for all seeds: 6 seeds of Adam on the default tier, 200 steps
without early stopping, ran x1.78 faster batched (2026-12-01). With early stopping a batch runs until its
slowest seed stops. Run on purpose:

    python -m bench.batched_seeds --tier default --seeds 5 --device cuda
    python -m bench.batched_seeds --tier smoke --seeds 3 --device cpu
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from bench.common import peak_memory_mb, sync
from phenomena_bench.core.family import RunContext
from phenomena_bench.families.grokking.train import train_runs
from phenomena_bench.registry import load_task, resolve_method

SPEC = Path(__file__).resolve().parents[1] / "tasks" / "grokking" / "add-mod97.yaml"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tier", default="default", choices=["smoke", "default", "full"])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--method", default="adamw")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--steps", type=int, default=None, help="override the budget (no early stop then)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    task = load_task(SPEC).resolve(args.tier)
    if args.steps:
        raw = task.model_dump(mode="json")
        raw["training"]["steps"] = args.steps
        raw["evaluation"]["stop_when_held"] = False
        task = type(task).model_validate(raw)
    seeds = list(range(args.seeds))
    ctx = RunContext(seed=0, device=args.device, cache_dir=Path("/tmp"))

    sync(args.device)
    t0 = time.perf_counter()
    alone = [train_runs(task, resolve_method(args.method), [s], ctx)[0] for s in seeds]
    sync(args.device)
    t_alone = time.perf_counter() - t0
    t0 = time.perf_counter()
    together = train_runs(task, resolve_method(args.method), seeds, ctx)
    sync(args.device)
    t_together = time.perf_counter() - t0

    print(f"{args.method} on {task.id} [{args.tier}], {len(seeds)} seeds, device {args.device}")
    print(f"{'seed':>4} {'steps alone':>12} {'steps batched':>14} {'val acc alone':>14} {'val acc batched':>16}")
    for s, a, b in zip(seeds, alone, together):
        print(
            f"{s:>4} {a.metrics['steps_to_target']:>12} {b.metrics['steps_to_target']:>14} "
            f"{a.metrics['final_val_acc']:>14.4f} {b.metrics['final_val_acc']:>16.4f}"
        )
    print(f"one by one: {t_alone:.1f} s   batched: {t_together:.1f} s   speed-up x{t_alone / t_together:.2f}")
    print(f"peak memory {peak_memory_mb(args.device):.0f} MB")


if __name__ == "__main__":
    main()
