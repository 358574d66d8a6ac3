"""`phenomena-bench tasks`: list the task specs."""

from __future__ import annotations

import argparse

from phenomena_bench.cli.options import add_tasks_dir, tasks_dirs


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser("tasks", help="list the task specs")
    add_tasks_dir(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from tabulate import tabulate

    from phenomena_bench.registry import load_suites, load_tasks

    folders = tasks_dirs(args)
    tasks = load_tasks(folders)
    suites = load_suites(folders, tasks)
    rows = []
    for spec_id, (_, spec) in sorted(tasks.items()):
        tiers = ", ".join(f"{t}({spec.resolve(t).seeds} seeds)" for t in spec.tiers)
        in_suites = ",".join(name for name, ids in suites.items() if spec_id in ids)
        rows.append([spec_id, spec.family, tiers, in_suites, spec.title])
    print(tabulate(rows, headers=["task", "family", "tiers", "suites", "description"]))
    return 0
