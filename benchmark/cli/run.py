"""`phenomena-bench run`: run what is missing from the store, then print the results table."""

from __future__ import annotations

import argparse
import sys

from phenomena_bench.cli.options import (
    EXIT_RUNS_FAILED,
    add_dev,
    add_execution,
    add_format,
    add_method_selection,
    add_seeds,
    add_store,
    add_task_selection,
    add_tasks_dir,
    add_tier,
    hyperparameters,
    seeds_of,
    store_of,
    tasks_dirs,
)
from phenomena_bench.cli.output import add_table_options


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser("run", help="run what is missing from the store and print the results table")
    add_task_selection(parser)
    add_method_selection(
        parser, "baseline or entry-point names, or module:attr (default: every installed method of each task's family)"
    )
    parser.add_argument("--suite", default=None, help="a named list of tasks from suites.yaml (e.g. default)")
    add_tier(parser, "default")
    add_seeds(parser)
    add_dev(parser)
    parser.add_argument("--hp", action="append", metavar="KEY=VALUE", help="override a hyperparameter of the method(s)")
    parser.add_argument("--retry-failed", action="store_true", help="redo runs stored as failed or timeout")
    add_format(parser)
    add_table_options(parser)
    add_store(parser)
    add_tasks_dir(parser)
    add_execution(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from phenomena_bench.cli.execution import execute
    from phenomena_bench.cli.output import print_results
    from phenomena_bench.registry import load_tasks, select_tasks, suite_task_ids
    from phenomena_bench.run.execute import resolve_device
    from phenomena_bench.run.plan import plan_runs

    store = store_of(args)
    folders = tasks_dirs(args)
    all_tasks = load_tasks(folders)
    wanted = list(args.task or [])
    if args.suite:
        wanted += suite_task_ids(folders, all_tasks, args.suite)
    tasks = select_tasks(all_tasks, wanted)
    plan = plan_runs(
        tasks,
        args.method,
        args.tier,
        store,
        seeds_of(args),
        hyperparameters(args.hp),
        args.retry_failed,
        dev=args.dev,
    )
    device = resolve_device(args.device)
    for problem in plan.corrupt:
        print(f"warning: {problem}; redoing that run", file=sys.stderr)
    print(
        f"{len(plan.all_keys)} run(s) at tier {args.tier}: {len(plan.done)} already in {store.root}, "
        f"{len(plan.todo)} to do on {device}",
        file=sys.stderr,
    )
    failed = execute(plan.todo, args, store, device)
    wanted_keys = set(plan.all_keys)
    print_results(
        [r for r in store.records() if r.key in wanted_keys],
        args.format,
        wide=args.wide,
        columns=args.columns,
        include_dev=args.dev,
    )
    if failed:
        print(
            f"{failed} run(s) ended failed, timeout or budget_exceeded (reasons under the table); exit code "
            f"{EXIT_RUNS_FAILED}",
            file=sys.stderr,
        )
        return EXIT_RUNS_FAILED
    return 0
