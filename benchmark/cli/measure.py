"""`phenomena-bench measure`: run every measurement that applies to the chosen tasks, reusing stored ones.

A measurement (:mod:`phenomena_bench.core.measurement`) is a phenomenon measured on a task's data and recipe
(tables and curves on the task's page), not a leaderboard. Each (task, measurement) runs on its own: one
that fails prints one line and the others go on; the exit code is then 3 (as for a failed run).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TextIO

from phenomena_bench.cli.options import (
    EXIT_RUNS_FAILED,
    add_store,
    add_task_selection,
    add_tasks_dir,
    add_tier,
    store_of,
    tasks_dirs,
)


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser("measure", help="run the measurements (not ranked) that apply to the chosen tasks")
    add_task_selection(parser)
    parser.add_argument("--suite", default=None, help="a named list of tasks from suites.yaml (e.g. default)")
    add_tier(parser, "default")
    add_store(parser)
    add_tasks_dir(parser)
    parser.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda or cuda:N")
    parser.add_argument("--cache-dir", default=None, help="data and trained-network cache (default STORE/cache)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from phenomena_bench.core.measurement import MeasurementStore, run_measurements
    from phenomena_bench.registry import load_tasks, select_tasks, suite_task_ids
    from phenomena_bench.run.execute import resolve_device

    store = store_of(args)
    folders = tasks_dirs(args)
    all_tasks = load_tasks(folders)
    wanted = list(args.task or [])
    if args.suite:
        wanted += suite_task_ids(folders, all_tasks, args.suite)
    tasks = select_tasks(all_tasks, wanted)
    cache_dir = Path(args.cache_dir) if args.cache_dir else store.root / "cache"
    cache_dir.mkdir(parents=True, exist_ok=True)
    device = resolve_device(args.device)
    report = run_measurements(
        tasks, args.tier, MeasurementStore(store.root), cache_dir, device, log=lambda line: print(line, flush=True)
    )
    print(
        f"{len(report.computed)} measurement(s) computed, {len(report.reused)} reused from {store.root}, "
        f"{len(report.failed)} failed",
        file=sys.stderr,
    )
    if report.failed:
        return EXIT_RUNS_FAILED
    return 0


def print_measurements(store_root: Path, tasks: list[str] | None, tier: str | None, out: TextIO = sys.stdout) -> int:
    """The stored measurements' one-line summaries (for `show`): those of `tasks` (ids or family names; all
    when empty) at `tier` (all when None); unreadable files are named on stderr. Returns how many printed."""
    from phenomena_bench.core.measurement import MeasurementStore, summary_line

    results, problems = MeasurementStore(store_root).scan()
    for problem in problems:
        print(f"warning: {problem}", file=sys.stderr)
    shown = [
        r
        for r in results
        if (not tasks or r.task_id in tasks or r.family in tasks) and (tier is None or r.tier == tier)
    ]
    if shown:
        print("\nmeasurements (phenomena measured on a task's recipe, not ranked):", file=out)
    for r in shown:
        print(f"  {summary_line(r)}", file=out)
    return len(shown)
