"""Running a plan from the command line: the executor the arguments ask for, and one-line reports."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from phenomena_bench.run.plan import PlannedRun
from phenomena_bench.store import Store


def execute(todo: list[PlannedRun], args: argparse.Namespace, store: Store, device: str) -> int:
    """Run `todo` as the arguments say; returns how many runs ended without a complete score (failed,
    timeout, budget_exceeded, or lost with a node: exit code 3)."""
    from phenomena_bench.run.orchestrate import Progress, execute_plan, make_executor, worker_count
    from phenomena_bench.run.plan import batching_rule, group_jobs

    if not todo:
        return 0
    cache_dir = Path(args.cache_dir) if args.cache_dir else store.root / "cache"
    cache_dir.mkdir(parents=True, exist_ok=True)
    batch = batching_rule(args.batch_seeds, device)
    workers = worker_count(args.workers, device, len(group_jobs(todo, batch)))
    executor = make_executor(args.executor, device, cache_dir, workers, args.compile, args.ray_address)
    result = execute_plan(todo, store, executor, batch, Progress(len(todo), enabled=not args.quiet))
    if result.by_others:
        print(f"{result.by_others} run(s) were done meanwhile by another runner on {store.root}", file=sys.stderr)
    if result.lost:
        print(
            f"{len(result.lost)} run(s) lost with a node or worker and not recorded; the others are stored, and "
            "the same command again does only the lost ones:",
            file=sys.stderr,
        )
        for line in result.lost:
            print(f"  {line}", file=sys.stderr)
    return len(result.not_ok) + len(result.lost)
