"""`phenomena-bench tune`: K trials of a method's search space on development seeds, then one stored choice.

Each trial is an ordinary run of the development seeds through the same executor as ``run`` (isolated,
metered, stored under its own key), so running the same command again runs nothing new and stores the same
choice. ``run`` afterwards scores the choice on the scoring seeds (see :mod:`phenomena_bench.run.tuning`).
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING, Any

from phenomena_bench.cli.options import (
    EXIT_RUNS_FAILED,
    add_execution,
    add_method_selection,
    add_seeds,
    add_store,
    add_task_selection,
    add_tasks_dir,
    add_tier,
    seeds_of,
    store_of,
    tasks_dirs,
)
from phenomena_bench.core.errors import BenchmarkError

if TYPE_CHECKING:
    from phenomena_bench.run.plan import PlannedRun


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from phenomena_bench.run.tuning import SUITE_TRIALS

    parser = sub.add_parser(
        "tune",
        help="tune a method's declared hyperparameters on development seeds and store the choice run will score",
    )
    add_task_selection(parser)
    add_method_selection(
        parser, "methods to tune (default: every installed method of each task's family that declares a search space)"
    )
    parser.add_argument(
        "--trials",
        type=int,
        default=SUITE_TRIALS,
        help=f"trials per (task, method), K (default {SUITE_TRIALS}, the suite's K: every method gets the same)",
    )
    add_tier(parser, "default")
    add_seeds(parser)
    parser.add_argument("--format", choices=["table", "json"], default="table", help="json: the stored choices")
    add_store(parser)
    add_tasks_dir(parser)
    add_execution(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from phenomena_bench.cli.execution import execute
    from phenomena_bench.registry import load_tasks, methods_for_family, resolve_method, select_tasks
    from phenomena_bench.run.execute import resolve_device
    from phenomena_bench.run.tuning import Trial, choice_path, tune

    if not args.task:
        raise BenchmarkError("name the task(s) to tune with --task (tuning is on demand, never the whole suite)")
    store = store_of(args)
    tasks = select_tasks(load_tasks(tasks_dirs(args)), list(args.task))
    device = resolve_device(args.device)
    choices: list[dict[str, Any]] = []
    not_ok = 0

    def run_trial(todo: list[PlannedRun]) -> int:
        nonlocal not_ok
        failed = execute(todo, args, store, device)
        not_ok += failed
        return failed

    for task in tasks:
        refs = args.method or [m for m in methods_for_family(task.family) if _declares_space(resolve_method(m))]
        for ref in refs:
            print(
                f"tuning {ref} on {task.id} [{args.tier}]: {args.trials} trial(s) on development seeds", file=sys.stderr
            )

            def said(trial: Trial) -> None:
                print(f"  {_trial_line(trial)}", file=sys.stderr)

            choice = tune(
                task,
                ref,
                args.tier,
                store,
                run_trial,
                trials=args.trials,
                seeds=seeds_of(args),
                on_trial=said,
            )
            path = choice_path(store, choice.task_id, choice.tier, choice.method)
            print(
                f"  chose trial {choice.chosen_trial}: {_hp_text(choice.chosen)}; {_flops_text(choice.flops)} "
                f"spent tuning on dev seeds {choice.dev_seeds[0]}..{choice.dev_seeds[-1]}; stored in {path}",
                file=sys.stderr,
            )
            choices.append(json.loads(choice.model_dump_json()))
    if args.format == "json":
        print(json.dumps(choices, indent=1))
    if not_ok:  # still chosen and stored: a failed trial scores as the rule says (the worst, or the floor)
        print(
            f"{not_ok} trial run(s) ended failed, timeout or budget_exceeded; exit code {EXIT_RUNS_FAILED}",
            file=sys.stderr,
        )
        return EXIT_RUNS_FAILED
    return 0


def _declares_space(method: Any) -> bool:
    from phenomena_bench.core.search_space import search_space

    return bool(search_space(type(method).Hyperparameters).dimensions)


def _trial_line(trial: Any) -> str:
    statuses = ", ".join(f"{status} {n}" for status, n in trial.statuses.items())
    primary = "–" if trial.primary is None else f"{trial.primary:.4g}"
    return f"trial {trial.number}: {_hp_text(trial.hyperparameters)} -> primary {primary} ({statuses})"


def _hp_text(hp: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in sorted(hp.items()))


def _flops_text(flops: float | None) -> str:
    return "FLOPs not counted" if flops is None else f"{flops / 1e9:.3g} GFLOP"
