"""`phenomena-bench show`: the stored results as tables (or JSON), without running anything.

After the tables it checks the phenomenon gates of every (task, tier) shown (one warning line per failed
gate, to stderr: :func:`warn_failed_gates`, which ``run`` calls too) and prints the fidelity table: for each
baseline claim, whether the runs reproduce it (:mod:`phenomena_bench.analysis.fidelity`).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

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

if TYPE_CHECKING:
    from phenomena_bench.analysis.fidelity import FidelityResult
    from phenomena_bench.analysis.gates import GateResult

#: The fidelity table's width (the terminal tables' 120 columns).
WIDTH = 120


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
    parser.add_argument(
        "--all-configurations",
        action="store_true",
        help="also show a tuned method's default and hand-picked rows (by default only its tuned row)",
    )
    add_format(parser)
    add_table_options(parser)
    add_store(parser)
    parser.set_defaults(func=run)


def _selected(records: list[RunRecord], args: argparse.Namespace) -> list[RunRecord]:
    out = []
    for r in records:
        public_task = r.variant.of if r.variant is not None else r.task_id  # a variant shows with its task
        if args.task and public_task not in args.task and r.family not in args.task:
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
    print_results(
        records,
        args.format,
        wide=args.wide,
        columns=args.columns,
        include_dev=args.dev,
        all_configurations=args.all_configurations,
    )
    warn_failed_gates(records)
    if args.format != "json":
        from phenomena_bench.cli.measure import print_measurements

        print_fidelity(records)
        print_measurements(store.root, args.task, args.tier)
    return 0


def warn_failed_gates(records: Sequence[RunRecord], folders: Sequence[Path] | None = None) -> list[GateResult]:
    """Check every gate of the (task, tier) tables in `records`; print one warning line per failed gate to
    stderr. Returns every result (passed, failed and not checked)."""
    from phenomena_bench.analysis.gates import evaluate_gates, gate_warnings, load_specs

    results = evaluate_gates(records, load_specs(folders))
    for line in gate_warnings(results):
        print(printable(line), file=sys.stderr)
    return results


def fidelity_table(results: Sequence[FidelityResult]) -> str:
    """The fidelity results as text within :data:`WIDTH` columns: one heading line per (baseline, claim),
    its source cut to fit, then one aligned line per (task, tier) it was checked on."""
    from tabulate import tabulate

    groups: dict[tuple[str, str], list[FidelityResult]] = {}
    for r in results:
        groups.setdefault((r.method, r.claim.describe()), []).append(r)
    blocks = []
    for (method, claim), rs in groups.items():
        heading = _cut(f"{printable(method)}: {printable(claim)} ({printable(rs[0].claim.source)})", WIDTH)
        rows = [
            [f"{printable(r.task)} [{r.tier}]", r.status.replace("_", " "), r.effect(), f"n={r.comparison.n_paired}"]
            for r in rs
        ]
        blocks.append(
            heading
            + "\n"
            + "\n".join(_cut("  " + line, WIDTH) for line in tabulate(rows, tablefmt="plain").splitlines())
        )
    return "\n".join(blocks)


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def print_fidelity(records: Sequence[RunRecord]) -> None:
    """Print the fidelity table of the baselines' claims on these runs (nothing when no claim applies)."""
    from phenomena_bench.analysis.fidelity import baseline_claims, evaluate_claims

    results = evaluate_claims(records, baseline_claims())
    if results:
        print(
            "\nfidelity to each baseline's paper (method - comparator, paired sign-flip test, 6 paired seeds for a "
            "verdict):"
        )
        print(fidelity_table(results))
