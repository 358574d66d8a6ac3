"""`phenomena-bench run`: run what is missing from the store, then print the results table."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

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
    add_variants,
    hyperparameters,
    seeds_of,
    store_of,
    tasks_dirs,
    variants_of,
)
from phenomena_bench.cli.output import add_table_options

if TYPE_CHECKING:
    from phenomena_bench.core.spec import TaskSpec
    from phenomena_bench.run.plan import TuningLookup
    from phenomena_bench.store import Store


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
    add_variants(parser)
    parser.add_argument("--hp", action="append", metavar="KEY=VALUE", help="override a hyperparameter of the method(s)")
    parser.add_argument(
        "--tuned",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="score a method's stored tuning choice (phenomena-bench tune) where one exists for the task and tier, "
        "labelled 'NAME (tuned)' (default; never with --hp or --dev); --no-tuned runs the defaults",
    )
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
    from phenomena_bench.registry import load_tasks, select_tasks, suite_skips, suite_task_ids
    from phenomena_bench.run.execute import resolve_device
    from phenomena_bench.run.plan import plan_runs

    store = store_of(args)
    folders = tasks_dirs(args)
    all_tasks = load_tasks(folders)
    wanted = list(args.task or [])
    skip: dict[str, str] = {}
    if args.suite:
        wanted += suite_task_ids(folders, all_tasks, args.suite)
        skip = {} if args.method else suite_skips(folders, all_tasks, args.suite)
    for name, why in skip.items():
        print(f"suite {args.suite} does not run {name}: {why} (run it with --method {name})", file=sys.stderr)
    tasks = select_tasks(all_tasks, wanted)
    plan = plan_runs(
        tasks + _held_out_variants(tasks, args),
        args.method,
        args.tier,
        store,
        seeds_of(args),
        hyperparameters(args.hp),
        args.retry_failed,
        dev=args.dev,
        tuning=_tuning_lookup(args, store),
        skip=skip,
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
    from phenomena_bench.cli.show import warn_failed_gates

    # The gates read every stored run of the tables this command touched (the reference's, if not rerun now).
    tables = {(task.id, args.tier) for task in tasks}
    warn_failed_gates([r for r in store.records() if (r.task_id, r.tier) in tables], folders)
    if failed:
        print(
            f"{failed} run(s) ended failed, timeout or budget_exceeded (reasons under the table); exit code "
            f"{EXIT_RUNS_FAILED}",
            file=sys.stderr,
        )
        return EXIT_RUNS_FAILED
    return 0


def _tuning_lookup(args: argparse.Namespace, store: Store) -> TuningLookup | None:
    """Stored tuning choices to score, unless the command hand-picks (``--hp``), pilots (``--dev``) or opts out."""
    from phenomena_bench.run.tuning import stored_choices

    if not args.tuned or args.hp or args.dev:
        return None
    return stored_choices(store, warn=lambda line: print(f"warning: {line}", file=sys.stderr))


def _held_out_variants(tasks: list[TaskSpec], args: argparse.Namespace) -> list[TaskSpec]:
    """`--variants N` held-out variants of each task, drawn at the command's tier from `--variant-salt` (each
    one said on stderr: the salt is what makes them unseen, not the secrecy of the list)."""
    count = variants_of(args)
    if not count:
        return []
    from phenomena_bench.core.variants import draw_variants

    drawn: list[TaskSpec] = []
    for task in tasks:
        variants = draw_variants(task.resolve(args.tier), count, args.variant_salt)
        if len(variants) < count:
            declared = "declares no held-out variants" if not variants else f"has only {len(variants)} distinct"
            print(f"{task.id} [{args.tier}] {declared}; running {len(variants)}", file=sys.stderr)
        for v in variants:
            assert v.variant_of is not None
            print(f"held-out variant {v.id} (salt {args.variant_salt!r}): {v.variant_of.describe()}", file=sys.stderr)
        drawn += variants
    return drawn
