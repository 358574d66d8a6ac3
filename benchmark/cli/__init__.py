"""The `phenomena-bench` command: one module per subcommand, each with `register` and `run`.

Every user error (bad spec, unknown method, corrupt store, bad argument) is printed as one line naming what
and where, with a non-zero exit; a traceback only with ``--debug``. Exit codes mean the same in every
subcommand (:data:`phenomena_bench.cli.options.EXIT_CODES`, printed by ``--help``).

Only `publish` and `pull` talk to the Hub, so only they keep Hub tokens (and other credential-looking
variables, :func:`phenomena_bench.core.redact.is_secret`) in their environment. Every other subcommand drops
them before it does anything: from ``os.environ``, and, because ``/proc/<pid>/environ`` shows the
environment a process was *started* with (which any process of the same user, a method's worker included,
can read), by re-executing itself with the cleaned environment when it inherited any (once: the marker
variable :data:`SCRUBBED_ENV` stops a loop). The values are remembered for redaction first.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping
from pathlib import Path

from phenomena_bench import __version__
from phenomena_bench.cli import (
    check_submission,
    docs,
    leaderboard,
    measure,
    methods,
    publish,
    run,
    schema,
    show,
    tasks,
    tune,
    validate,
)
from phenomena_bench.cli.options import EXIT_INTERNAL_ERROR, EXIT_INTERRUPTED, EXIT_USER_ERROR, exit_codes_text
from phenomena_bench.core.errors import BenchmarkError
from phenomena_bench.core.redact import remember_secrets, secret_names

SUBCOMMANDS = (tasks, validate, methods, schema, docs, run, tune, measure, show, check_submission, leaderboard, publish)
#: The subcommands that may hold a Hub token.
TOKEN_COMMANDS = frozenset({"publish", "pull"})
#: Set in the environment of a process re-executed without its secrets (so it never re-executes again).
SCRUBBED_ENV = "PHENOMENA_BENCH_ENV_SCRUBBED"


def startup_environment() -> Mapping[str, str]:
    """The environment this process was started with, as others see it (Linux), else ``os.environ``."""
    try:
        raw = Path("/proc/self/environ").read_bytes()
    except OSError:
        return os.environ
    pairs = (item.partition(b"=") for item in raw.split(b"\0") if item)
    return {k.decode(errors="replace"): v.decode(errors="replace") for k, _, v in pairs}


def drop_secrets(reexec: bool) -> None:
    """Remove secrets from this process's environment; re-execute without them if it was started with them."""
    names = secret_names(os.environ)
    remember_secrets(os.environ[n] for n in names)
    for name in names:
        del os.environ[name]
    inherited = secret_names(startup_environment())
    if reexec and inherited and not os.environ.get(SCRUBBED_ENV) and getattr(sys, "orig_argv", None):
        env = {**os.environ, SCRUBBED_ENV: "1"}
        sys.stdout.flush()
        sys.stderr.flush()
        os.execve(sys.executable, [sys.executable, *sys.orig_argv[1:]], env)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="phenomena-bench",
        description="A declarative benchmark suite for deep-learning phenomena.",
        epilog=exit_codes_text(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
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
    args.argv = list(argv) if argv is not None else sys.argv[1:]  # what a subcommand re-running itself passes on
    if args.command not in TOKEN_COMMANDS:
        # A command line of its own (argv None) is this process: re-executing it is safe. A caller that
        # passes argv (a test, an embedding program) keeps its process; only os.environ is cleaned.
        drop_secrets(reexec=argv is None)
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
        return EXIT_INTERNAL_ERROR
