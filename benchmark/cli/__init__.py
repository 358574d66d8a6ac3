"""The `phenomena-bench` command: one module per subcommand, each with `register` and `run`.

Every user error (bad spec, unknown method, corrupt store, bad argument) is printed as one line naming what
and where, with a non-zero exit; a traceback only with ``--debug``.
"""

from __future__ import annotations

import argparse
import sys

from phenomena_bench import __version__
from phenomena_bench.cli import (
    check_submission,
    leaderboard,
    methods,
    publish,
    run,
    schema,
    show,
    tasks,
    validate,
)
from phenomena_bench.cli.options import EXIT_INTERRUPTED, EXIT_USER_ERROR
from phenomena_bench.core.errors import BenchmarkError

SUBCOMMANDS = (tasks, validate, methods, schema, run, show, check_submission, leaderboard, publish)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="phenomena-bench", description="A declarative benchmark suite for deep-learning phenomena."
    )
    parser.add_argument("--version", action="version", version=f"phenomena-bench {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks for errors")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in SUBCOMMANDS:
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    from phenomena_bench.run.orchestrate import Interrupted

    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        for option in ("workers", "seeds"):
            value = getattr(args, option, None)
            if value is not None and value < 1:
                raise BenchmarkError(f"--{option} must be >= 1, not {value}")
        return int(args.func(args) or 0)
    except Interrupted as err:
        print(f"\n{err}", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BenchmarkError as err:
        if args.debug:
            raise
        print(f"error: {err}", file=sys.stderr)
        return EXIT_USER_ERROR
    except Exception as err:  # a bug, or an environment problem: still one line unless --debug
        if args.debug:
            raise
        print(f"error: {type(err).__name__}: {err} (rerun with --debug for the traceback)", file=sys.stderr)
        return 1
