"""CPU seconds per seed of pruning runs: one seed alone, N seeds one by one, N seeds as lanes (run_batch).

Run on purpose (never a test): ``OMP_NUM_THREADS=1 python bench/batched_pruning.py --methods prune-snip
--seeds 6``. Each (method, mode) starts from an empty cache, so the shared controls are built in every
mode, as a fresh job would; the modes run back to back in one process, so their ratio is robust to other load.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from phenomena_bench.core.family import RunContext
from phenomena_bench.families.pruning import FAMILY
from phenomena_bench.families.pruning.api import PruningMethod
from phenomena_bench.families.pruning.spec import PruningTask
from phenomena_bench.families.pruning.train import _load_split
from phenomena_bench.registry import load_task, resolve_method

TASK = Path(__file__).resolve().parents[1] / "tasks" / "pruning" / "mnist1d-mlp.yaml"


def cpu_per_seed(task: PruningTask, method_name: str, seeds: list[int], batched: bool, data: Path) -> float:
    """CPU seconds per seed of `seeds`, run one by one or as one batch, from a fresh pruning cache."""
    method = resolve_method(method_name, {})
    assert isinstance(method, PruningMethod)
    with tempfile.TemporaryDirectory() as tmp:
        cache = Path(tmp)
        (cache / "data").symlink_to(data)  # the dataset is not what is measured
        t0 = time.process_time()
        if batched:
            outcomes = FAMILY.run_batch(task, method, seeds, RunContext(seed=seeds[0], device="cpu", cache_dir=cache))
        else:
            outcomes = [FAMILY.run(task, method, RunContext(seed=s, device="cpu", cache_dir=cache)) for s in seeds]
        spent = time.process_time() - t0
    assert all(o.status == "ok" for o in outcomes), [o.error for o in outcomes]
    return spent / len(seeds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--methods", nargs="+", default=["prune-imp", "prune-snip", "prune-random"])
    parser.add_argument("--seeds", type=int, default=6)
    parser.add_argument("--tier", default="default")
    parser.add_argument("--skip-one-by-one", action="store_true", help="estimate N one by one as N x alone")
    args = parser.parse_args()
    torch.set_num_threads(1)
    task = load_task(TASK).resolve(args.tier)
    assert isinstance(task, PruningTask)
    with tempfile.TemporaryDirectory() as tmp:
        _load_split(task, 0, Path(tmp))  # generated once, shared by every mode
        measure(task, args.methods, list(range(args.seeds)), args.skip_one_by_one, Path(tmp) / "data")


def measure(task: PruningTask, methods: list[str], seeds: list[int], skip_one_by_one: bool, data: Path) -> None:
    """Print each method's CPU seconds per seed alone, one by one and batched, and the ratio."""
    for name in methods:
        alone = cpu_per_seed(task, name, [0], False, data)
        one_by_one = alone if skip_one_by_one else cpu_per_seed(task, name, seeds, False, data)
        batched = cpu_per_seed(task, name, seeds, True, data)
        print(
            f"{name:16s} alone {alone:7.2f} s/seed   {len(seeds)} one by one {one_by_one:7.2f} s/seed   "
            f"{len(seeds)} batched {batched:7.2f} s/seed   seeds per CPU-minute x{one_by_one / batched:.2f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
