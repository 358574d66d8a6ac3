"""`phenomena-bench show`: the stored results as tables (or JSON), without running anything."""

from __future__ import annotations

import argparse
import json
import sys

from phenomena_bench.cli.options import (
    add_format,
    add_method_selection,
    add_store,
    add_task_selection,
    add_tier,
    store_of,
)
from phenomena_bench.cli.output import add_table_options
from phenomena_bench.core.seeds import DEV_SEED_BASE, is_dev_seed
from phenomena_bench.core.text import printable
from phenomena_bench.store import RunRecord


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser("show", help="print stored results without running")
    add_task_selection(parser)
    add_method_selection(parser, "only these methods (names or module:attr refs)")
    add_tier(parser, None)
    parser.add_argument("--runs", action="store_true", help="one row per run instead of aggregated rows")
    parser.add_argument(
        "--dev",
        action="store_true",
        help=f"include development seeds (>= {DEV_SEED_BASE:_}, from run --dev); they never reach the leaderboard",
    )
    add_format(parser)
    add_table_options(parser)
    add_store(parser)
    parser.set_defaults(func=run)


def _selected(records: list[RunRecord], args: argparse.Namespace) -> list[RunRecord]:
    out = []
    for r in records:
        if args.task and r.task_id not in args.task and r.family not in args.task:
            continue
        if args.method and r.method.ref not in args.method and r.method.name not in args.method:
            continue
        if args.tier and r.tier != args.tier:
            continue
        if is_dev_seed(r.seed) and not args.dev:
            continue
        out.append(r)
    return out


def _primary(record: RunRecord) -> object:
    from phenomena_bench.registry import get_family

    return record.metrics.get(get_family(record.family).primary_metric)


def run(args: argparse.Namespace) -> int:
    from phenomena_bench.cli.output import print_results

    store = store_of(args)
    records, corrupt = store.scan()
    for bad in corrupt:
        print(f"warning: {printable(bad.reason)}", file=sys.stderr)
    records = _selected(records, args)
    if args.runs:
        if args.format == "json":
            print(json.dumps([r.model_dump(mode="json") for r in records], indent=1))
        else:
            from tabulate import tabulate

            rows = [
                [
                    printable(r.task_id),
                    printable(r.tier),
                    printable(r.method.label),
                    r.seed,
                    r.status,
                    printable(str(_primary(r))),
                    r.wall_time_s,
                    printable(r.key[:12]),
                    printable(" ".join((r.error or "").split())[:60]),
                ]
                for r in sorted(records, key=lambda r: (r.task_id, r.tier, r.method.label, r.seed))
            ]
            headers = ["task", "tier", "method", "seed", "status", "primary", "wall s", "key", "error"]
            print(tabulate(rows, headers=headers))
        return 0
    if not records:
        print(f"no results in {store.root} for this selection", file=sys.stderr)
    print_results(records, args.format, wide=args.wide, columns=args.columns, include_dev=args.dev)
    return 0
