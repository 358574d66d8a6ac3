"""The Ray executor's per-run overhead against the process executor, on the same smoke runs, in one process.

Both executors run the same plan (smoke tier, a few seeds of one baseline) into fresh stores, one round after
the other, alternating, so the machine's load hits both alike. Per-run overhead is the executor's wall time
minus the runs' own recorded wall time, over the number of runs: what the executor adds to each run (worker
start, scheduling, shipping the record back). The first round of each is reported apart: it pays the fork
server's start (importing torch and the families) and, for Ray, the Ray worker's. Starting the local Ray
instance itself (``ray.init``) is timed once and not charged to any round. Run on purpose (not a test):

    OMP_NUM_THREADS=1 python bench/ray_overhead.py --task grokking/add-mod97 --method adamw --seeds 4 --rounds 3
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

from phenomena_bench.registry import load_tasks, select_tasks, task_dirs
from phenomena_bench.run.executors import Executor, ProcessExecutor
from phenomena_bench.run.orchestrate import execute_plan
from phenomena_bench.run.plan import plan_runs
from phenomena_bench.run.ray import RayExecutor
from phenomena_bench.store import Store


def one_round(executor: Executor, task: str, method: str, seeds: int, root: Path) -> tuple[float, float, int]:
    """(executor wall time, the runs' own summed wall time, runs) for the plan run into a fresh store."""
    store = Store(root)
    tasks = select_tasks(load_tasks(task_dirs()), [task])
    plan = plan_runs(tasks, [method], "smoke", store, seeds)
    t0 = time.perf_counter()
    result = execute_plan(plan.todo, store, executor)
    wall = time.perf_counter() - t0
    bad = [r.key for r in result.finished if r.status != "ok"]
    if bad:
        raise SystemExit(f"runs did not end ok: {bad}")
    return wall, sum(r.wall_time_s for r in result.finished), len(result.finished)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="grokking/add-mod97")
    parser.add_argument("--method", default="adamw")
    parser.add_argument("--seeds", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=3, help="measured rounds per executor, after one warm-up")
    parser.add_argument("--workers", type=int, default=1, help="parallel runs (Ray: CPUs of the local instance)")
    args = parser.parse_args()
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")

    import ray

    with tempfile.TemporaryDirectory(prefix="ray-overhead-") as scratch:
        cache = Path(scratch) / "cache"
        cache.mkdir()
        t0 = time.perf_counter()
        ray.init(num_cpus=args.workers, include_dashboard=False, log_to_driver=False, configure_logging=False)
        ray_start = time.perf_counter() - t0
        executors: dict[str, Executor] = {
            "process": ProcessExecutor(["cpu"] * args.workers, cache),
            "ray": RayExecutor("cpu", cache),
        }
        rows: dict[str, list[tuple[float, float, int]]] = {name: [] for name in executors}
        for round_ in range(args.rounds + 1):  # round 0 is the warm-up (fork server, Ray worker start)
            for name, executor in executors.items():
                rows[name].append(
                    one_round(executor, args.task, args.method, args.seeds, Path(scratch) / f"{name}{round_}")
                )
        ray.shutdown()

    def per_run(row: tuple[float, float, int]) -> float:
        wall, runs_wall, n = row
        return (wall - runs_wall) / n

    print(f"{args.task} {args.method}, smoke tier, {args.seeds} runs a round, {args.workers} worker(s)")
    print(f"local Ray instance start (ray.init, once): {ray_start:.1f} s")
    print(
        f"{'executor':<10} {'first round s':>14} {'overhead/run first':>19} "
        f"{'warm round s':>13} {'overhead/run warm':>18}"
    )
    for name, measured in rows.items():
        warm = measured[1:]
        print(
            f"{name:<10} {measured[0][0]:>14.2f} {per_run(measured[0]):>19.2f} "
            f"{statistics.median(r[0] for r in warm):>13.2f} {statistics.median(per_run(r) for r in warm):>18.2f}"
        )
    ratio = statistics.median(per_run(r) for r in rows["ray"][1:]) / statistics.median(
        per_run(r) for r in rows["process"][1:]
    )
    print(f"warm per-run overhead, ray / process: {ratio:.2f}x")


if __name__ == "__main__":
    main()
