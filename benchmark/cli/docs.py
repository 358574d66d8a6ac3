"""`phenomena-bench docs FAMILY`: the submission guide of a family, generated from its protocol module."""

from __future__ import annotations

import argparse

from phenomena_bench.cli.options import add_tasks_dir, tasks_dirs


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "docs", help="print a family's submission guide: hooks, what they receive and return, scores, budgets"
    )
    parser.add_argument("family", help="a family name (see `phenomena-bench tasks`)")
    add_tasks_dir(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from phenomena_bench.core.errors import BenchmarkError
    from phenomena_bench.registry import family_names, load_tasks
    from phenomena_bench.report.guide import family_guide

    if args.family not in family_names():
        raise BenchmarkError(f"unknown family {args.family!r}; known families: {', '.join(family_names())}")
    specs = [spec for _, spec in load_tasks(tasks_dirs(args)).values() if spec.family == args.family]
    print(family_guide(args.family, specs))
    return 0
