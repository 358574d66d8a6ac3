"""`phenomena-bench validate`: check task spec files (or folders of them), every problem with its fix."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser("validate", help="check task spec files (or folders of them)")
    parser.add_argument("paths", nargs="+")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from phenomena_bench.core.errors import SpecError
    from phenomena_bench.registry import load_task, task_files

    paths: list[Path] = []
    for raw in args.paths:
        path = Path(raw)
        paths.extend(task_files(path) if path.is_dir() else [path])
    failures = 0
    for path in paths:
        try:
            spec = load_task(path)
        except SpecError as err:
            failures += 1
            for problem in err.problems:
                print(f"{err.source}: {problem}", file=sys.stderr)
            continue
        print(f"{path}: ok ({spec.id}, family {spec.family})")
    if failures:
        print(f"{failures} of {len(paths)} spec(s) invalid", file=sys.stderr)
    return 1 if failures else 0
