"""Arguments several subcommands share, and how they are read.

Names follow lm-evaluation-harness where they fit: ``--tasks`` takes comma- or space-separated lists,
``--output-path`` is the results store, ``--num-seeds`` the number of seeds, ``--include-path`` adds a
folder of task specs to the shipped suite.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import yaml

from phenomena_bench.core.errors import BenchmarkError
from phenomena_bench.core.seeds import DEV_SEED_BASE
from phenomena_bench.core.spec import TIER_NAMES
from phenomena_bench.store import STORE_ENV, RunRecord, Store, default_store_path

EXIT_OK = 0
EXIT_INTERNAL_ERROR = 1
EXIT_USER_ERROR = 2
EXIT_RUNS_FAILED = 3
EXIT_INTERRUPTED = 130
#: The statuses that make a command exit with EXIT_RUNS_FAILED: the run has no complete score. (A diverged run
#: is a scored outcome of the method, like a slow one: it exits 0.)
NOT_OK_STATUSES = frozenset({"failed", "timeout", "budget_exceeded"})

#: What each exit code means, the same for every subcommand (`run` and `check-submission` alike). Shown by
#: ``phenomena-bench --help`` and copied in the README.
EXIT_CODES = (
    (EXIT_OK, "success: every run this command did ended ok or diverged (a scored outcome)"),
    (EXIT_INTERNAL_ERROR, "an unexpected error inside phenomena-bench (a bug: rerun with --debug, report it)"),
    (
        EXIT_USER_ERROR,
        "nothing was run: a bad argument, task spec, manifest or store, or a method refused before any run "
        "(unknown or misspelt hyperparameter, missing hook, wrong signature, name clash, entry point)",
    ),
    (EXIT_RUNS_FAILED, "a run this command did ended failed, timeout or budget_exceeded (reasons under the table)"),
    (EXIT_INTERRUPTED, "interrupted (Ctrl-C); the finished runs are stored, the same command does the rest"),
)


def exit_codes_text() -> str:
    """The exit-code table as `--help` prints it."""
    return "exit codes:\n" + "\n".join(f"  {code:<4} {meaning}" for code, meaning in EXIT_CODES)


class _SplitList(argparse.Action):
    """`--tasks a,b c` → ["a", "b", "c"], extending across repeats."""

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: Any,
        option_string: str | None = None,
    ) -> None:
        items = list(getattr(namespace, self.dest, None) or [])
        for value in values if isinstance(values, list) else [values]:
            items.extend(part for part in str(value).split(",") if part.strip())
        setattr(namespace, self.dest, items)


def add_task_selection(parser: argparse.ArgumentParser, required: bool = False) -> None:
    parser.add_argument(
        "--task",
        "--tasks",
        dest="task",
        nargs="+",
        action=_SplitList,
        metavar="TASK",
        help="task ids or family names, comma or space separated (default: all)",
    )


def add_method_selection(parser: argparse.ArgumentParser, help: str) -> None:
    parser.add_argument(
        "--method", "--methods", dest="method", nargs="+", action=_SplitList, metavar="METHOD", help=help
    )


def add_tier(parser: argparse.ArgumentParser, default: str | None) -> None:
    parser.add_argument(
        "--tier",
        choices=TIER_NAMES,
        default=default,
        help="smoke (seconds), default (minutes on a CPU) or full (the papers' settings)",
    )


def add_store(parser: argparse.ArgumentParser, default: Path | None = None, help: str | None = None) -> None:
    parser.add_argument(
        "--store",
        "--output-path",
        dest="store",
        type=Path,
        default=default,
        help=help or f"results store folder (default ./results, or ${STORE_ENV})",
    )


def store_of(args: argparse.Namespace) -> Store:
    return Store(args.store or default_store_path())


def stored_records(args: argparse.Namespace, command: str) -> list[RunRecord]:
    """The store's records at the chosen tiers (`--tier`, repeatable); unreadable records named and skipped."""
    records, corrupt = store_of(args).scan()
    for c in corrupt:
        print(f"{command}: skipping {c.reason}", file=sys.stderr)
    return [r for r in records if not args.tier or r.tier in args.tier]


def add_tasks_dir(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--tasks-dir", type=Path, default=None, help="a folder of task specs to use instead of the shipped suite"
    )
    parser.add_argument(
        "--include-path",
        type=Path,
        action="append",
        default=[],
        metavar="DIR",
        help="a folder of task specs to add to the suite (repeatable)",
    )


def tasks_dirs(args: argparse.Namespace) -> list[Path]:
    from phenomena_bench.registry import task_dirs

    return task_dirs(getattr(args, "tasks_dir", None), getattr(args, "include_path", []) or [])


def add_seeds(parser: argparse.ArgumentParser, default: int | None = None) -> None:
    parser.add_argument(
        "--seeds",
        "--num-seeds",
        dest="seeds",
        type=int,
        default=default,
        help="number of seeds, 0..N-1 (default: the tier's)",
    )


def add_dev(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--dev",
        action="store_true",
        help=f"run development seeds {DEV_SEED_BASE:_} + 0..N-1 instead of the scoring seeds 0..N-1 (for tuning "
        "and pilots: they share no split, bag or checkpoint with a scoring seed, and the leaderboard shows only "
        "scoring seeds); --seeds still sets N",
    )


def seeds_of(args: argparse.Namespace) -> int | None:
    if args.seeds is not None and args.seeds < 1:
        raise BenchmarkError(f"--seeds must be >= 1, not {args.seeds}")
    seeds: int | None = args.seeds
    return seeds


def add_variants(parser: argparse.ArgumentParser) -> None:
    """`--variants N --variant-salt S`: also run N held-out variants of each task (core/variants.py)."""
    from phenomena_bench.core.variants import PUBLIC_SALT

    parser.add_argument(
        "--variants",
        type=int,
        default=0,
        metavar="N",
        help="also run N held-out variants of each task that declares a `variants:` distribution (same methods, "
        "seeds and tier); tables show the public score, the held-out score and the gap",
    )
    parser.add_argument(
        "--variant-salt",
        default=PUBLIC_SALT,
        metavar="S",
        help=f"the salt the variants are drawn from (default {PUBLIC_SALT!r}, the published suite's); official "
        "scoring draws with a salt chosen at scoring time, recorded in every variant's record",
    )


def variants_of(args: argparse.Namespace) -> int:
    if args.variants < 0:
        raise BenchmarkError(f"--variants must be >= 0, not {args.variants}")
    count: int = args.variants
    return count


def add_format(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--format", choices=["table", "markdown", "json"], default="table")


def hyperparameters(pairs: list[str] | None) -> dict[str, Any]:
    """`--hp lr=3e-3 --hp warmup_steps=0`: values are read as YAML scalars."""
    values: dict[str, Any] = {}
    for pair in pairs or []:
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            raise BenchmarkError(f"--hp {pair!r}: write KEY=VALUE")
        values[key.strip()] = yaml.safe_load(raw)
    return values


def add_execution(parser: argparse.ArgumentParser) -> None:
    """How runs execute: device, executor, workers, batching, compilation, caches, progress."""
    parser.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda or cuda:N")
    parser.add_argument(
        "--executor",
        choices=["process", "local", "ray"],
        default="process",
        help="process: one isolated worker per run (default); local: in this process (debugging); "
        "ray: a Ray cluster (pip install 'phenomena-bench[ray]')",
    )
    parser.add_argument("--workers", type=int, default=None, help="parallel runs (default: one per core / GPU)")
    parser.add_argument(
        "--batch-seeds",
        choices=["auto", "on", "off"],
        default="auto",
        help="train the seeds of one (task, method) as one program where the family allows it: "
        "auto = on CUDA only (where it was measured to help), on = also on the CPU, off = never",
    )
    parser.add_argument(
        "--compile",
        action="store_true",
        help="compile the training step with torch.compile where the family supports it (grokking); "
        "pays a compile per run (~30 s on a CPU), worth it for long runs on a GPU",
    )
    parser.add_argument("--ray-address", default=None, help="Ray cluster address (default: start a local one)")
    parser.add_argument("--cache-dir", default=None, help="data and ground-truth cache (default STORE/cache)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
