"""`phenomena-bench validate`: check task spec files (or folders of them), every problem with its fix.

Each file is checked on its own (one that cannot even be loaded is one line naming it, and the others are
still checked), and ids are checked across all the files given, as `tasks` and `run` do: two files with
the same id are an error.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser("validate", help="check task spec files (or folders of them)")
    parser.add_argument("paths", nargs="+")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from phenomena_bench.core.errors import BenchmarkError, SpecError
    from phenomena_bench.core.text import printable
    from phenomena_bench.registry import load_task, task_files

    paths: list[Path] = []
    failures = 0
    for raw in args.paths:
        path = Path(raw)
        try:
            paths.extend(task_files(path) if path.is_dir() else [path])
        except BenchmarkError as err:
            failures += 1
            print(printable(str(err)), file=sys.stderr)
    owners: dict[str, Path] = {}
    for path in paths:
        try:
            spec = load_task(path)
        except SpecError as err:
            failures += 1
            for problem in err.problems:
                print(printable(f"{err.source}: {problem}"), file=sys.stderr)
            continue
        except (RecursionError, MemoryError, ValueError, OSError) as err:  # anything the loader did not foresee
            failures += 1
            print(printable(f"{path}: cannot be validated ({type(err).__name__}: {err})")[:500], file=sys.stderr)
            continue
        if spec.id in owners:
            failures += 1
            print(f"{path}: id: {spec.id!r} is also used by {owners[spec.id]} (fix: make ids unique)", file=sys.stderr)
            continue
        owners[spec.id] = path
        print(f"{path}: ok ({spec.id}, family {spec.family})")
    if failures:
        print(f"{failures} of {len(paths)} spec(s) invalid", file=sys.stderr)
    return 1 if failures else 0
