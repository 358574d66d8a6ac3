"""`phenomena-bench methods`: the baselines and installed methods, with family and version."""

from __future__ import annotations

import argparse
import sys


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser("methods", help="list the baselines and installed methods (entry points)")
    parser.add_argument("--family", default=None)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from tabulate import tabulate

    from phenomena_bench.registry import list_methods

    infos, problems = list_methods()
    rows = [[i.ref, i.family, i.version, i.description] for i in infos if not args.family or i.family == args.family]
    print(tabulate(rows, headers=["method", "family", "version", "description"]))
    for problem in problems:
        print(f"warning: {problem}", file=sys.stderr)
    return 0
