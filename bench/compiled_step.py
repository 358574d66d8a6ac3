"""`--compile`: the grokking training step through `torch.compile` against the same run in eager mode.

Times, in one process, a fixed-length run (no early stop) eager, then compiled for the first time (the
compile is paid inside it), then compiled again (warm: what each later run of a long job costs), and prints
the ratios against eager and the final losses (they agree within floating-point tolerance, not bit for bit).
Run on purpose (not a test):

    python -m bench.compiled_step --steps 300 [--device cuda] [--seeds 1]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from bench.common import fixed_length_grokking_task, peak_memory_mb, sync
from phenomena_bench.core.family import RunContext
from phenomena_bench.families.grokking.train import train_runs
from phenomena_bench.registry import resolve_method


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tier", default="default", choices=["smoke", "default", "full"])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--seeds", type=int, default=1, help="seeds batched in one program")
    parser.add_argument("--method", default="adamw")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    torch.set_num_threads(1)
    task = fixed_length_grokking_task(args.tier, args.steps)
    seeds = list(range(args.seeds))

    def timed(compile: bool) -> tuple[float, float]:
        ctx = RunContext(seed=0, device=args.device, cache_dir=Path("/tmp"), compile=compile)
        sync(args.device)
        t0 = time.perf_counter()
        outcome = train_runs(task, resolve_method(args.method), seeds, ctx)[0]
        sync(args.device)
        return time.perf_counter() - t0, float(outcome.metrics["final_train_loss"] or float("nan"))

    timed(False)  # warm-up: first-call costs (allocator, lazy imports) are not eager's
    eager, eager_loss = timed(False)
    cold, cold_loss = timed(True)
    warm, _ = timed(True)
    print(f"{args.method} on {task.id} [{args.tier}], {args.steps} steps, {len(seeds)} seed(s), device {args.device}")
    print(
        f"eager {eager:.2f} s | compiled, first run (compile included) {cold:.2f} s (x{eager / cold:.2f}) | "
        f"compiled, warm {warm:.2f} s (x{eager / warm:.2f} faster than eager)"
    )
    print(f"final train loss: eager {eager_loss:.6f}, compiled {cold_loss:.6f}")
    print(f"peak memory {peak_memory_mb(args.device):.0f} MB")


if __name__ == "__main__":
    main()
