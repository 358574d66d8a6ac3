"""MIL seeds per CPU-minute: N seeds of one (task, method) one by one versus as one stacked program.

Times, with ``time.process_time`` in one process and back to back (robust to other load on the machine),
``FAMILY.run`` per seed against ``FAMILY.run_batch`` of the same seeds (every training of every seed
stacked), after the bags are cached, and checks both give the same AUCs. Run on purpose:

    OMP_NUM_THREADS=1 python -m bench.batched_mil --tier default --seeds 6 --methods mil-none mil-mildropout mil-pdl
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from phenomena_bench.core.family import RunContext
from phenomena_bench.families.mil_dropout import FAMILY
from phenomena_bench.families.mil_dropout.splits import cached_splits
from phenomena_bench.registry import load_task, resolve_method

SPEC = Path(__file__).resolve().parents[1] / "tasks" / "mil_dropout" / "digits-bags-150.yaml"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tier", default="default", choices=["smoke", "default", "full"])
    parser.add_argument("--seeds", type=int, default=6)
    parser.add_argument("--methods", nargs="+", default=["mil-none", "mil-mildropout", "mil-pdl"])
    args = parser.parse_args()
    torch.set_num_threads(1)
    task = load_task(SPEC).resolve(args.tier)
    seeds = list(range(args.seeds))
    with tempfile.TemporaryDirectory() as cache:
        for seed in seeds:
            cached_splits(task, seed, Path(cache))  # shared work, not timed
        for name in args.methods:
            method = resolve_method(name)
            t0 = time.process_time()
            alone = [FAMILY.run(task, method, RunContext(seed=s, device="cpu", cache_dir=Path(cache))) for s in seeds]
            t_alone = time.process_time() - t0
            t0 = time.process_time()
            together = FAMILY.run_batch(task, method, seeds, RunContext(seed=0, device="cpu", cache_dir=Path(cache)))
            t_together = time.process_time() - t0
            worst = max(
                abs(float(a.metrics[k]) - float(b.metrics[k]))  # type: ignore[arg-type]
                for a, b in zip(alone, together, strict=True)
                for k in ("auc_clean", "auc_robust", "auc/poison")
                if a.metrics.get(k) is not None and b.metrics.get(k) is not None
            )
            print(
                f"{name} on {task.id} [{args.tier}], {len(seeds)} seeds: one by one {t_alone / len(seeds):.2f} s CPU "
                f"a seed, batched {t_together / len(seeds):.2f} s CPU a seed, ratio {t_alone / t_together:.2f}x; "
                f"largest AUC difference {worst:.2e}",
                flush=True,
            )


if __name__ == "__main__":
    main()
