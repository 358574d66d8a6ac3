"""Wall time of the whole default suite (every family, every baseline, its seeds) on this machine.

Runs `phenomena-bench run --suite default --tier default` into a fresh store, exactly as the README's main
job does, and prints the wall time against the 30-minute target, plus the per-family sum of run times.

    python -m bench.default_suite [--workers 2] [--keep STORE]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

TARGET_S = 30 * 60


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--keep", type=Path, default=None, help="store folder to use (default: a temp folder)")
    parser.add_argument("--suite", default="default")
    args = parser.parse_args()
    store = args.keep or Path(tempfile.mkdtemp(prefix="phenomena-bench-suite-"))
    command = [
        sys.executable,
        "-m",
        "phenomena_bench.cli",
        "run",
        "--suite",
        args.suite,
        "--tier",
        "default",
        "--store",
        str(store),
        "--device",
        "cpu",
    ]
    if args.workers:
        command += ["--workers", str(args.workers)]
    t0 = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    runs = json.loads(
        subprocess.run(
            [sys.executable, "-m", "phenomena_bench.cli", "show", "--runs", "--format", "json", "--store", str(store)],
            capture_output=True,
            text=True,
        ).stdout
    )
    per_family: dict[str, float] = defaultdict(float)
    shared: dict[str, float] = defaultdict(float)
    counts: dict[str, int] = defaultdict(int)
    batched: dict[str, int] = defaultdict(int)
    seeds: dict[tuple[str, str], int] = defaultdict(int)
    for run in runs:
        per_family[run["family"]] += run["wall_time_s"]
        shared[run["family"]] += run.get("shared_work_s", 0.0)
        counts[run["family"]] += 1
        batched[run["family"]] += run.get("batched_with", 1) > 1
        seeds[(run["task_id"], run["method"]["name"])] += 1
    print(result.stdout)
    print(f"{'family':12s} {'runs':>5s} {'batched':>8s} {'CPU-min':>8s} {'shared-min':>11s}  (sums of per-run shares)")
    for family in sorted(per_family):
        print(
            f"{family:12s} {counts[family]:5d} {batched[family]:8d} {per_family[family] / 60:8.1f} "
            f"{shared[family] / 60:11.1f}"
        )
    fewest = min(seeds.values(), default=0)
    short = sorted(f"{task} {method} ({n})" for (task, method), n in seeds.items() if n < 6)
    print(f"seeds per (task, method): {fewest} at fewest; below 6: {', '.join(short) or 'none'}")
    statuses: dict[str, int] = defaultdict(int)
    for run in runs:
        statuses[run["status"]] += 1
    print(f"statuses: {dict(statuses)}; exit code {result.returncode}")
    print(
        f"default suite wall time: {wall / 60:.1f} min for {len(runs)} runs ({len(runs) / (wall / 60):.1f} runs/min; "
        f"target <= {TARGET_S / 60:.0f} min) -> {'OK' if wall <= TARGET_S else 'OVER'}; store {store}"
    )


if __name__ == "__main__":
    main()
