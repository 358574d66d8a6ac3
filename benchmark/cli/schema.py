"""`phenomena-bench schema`: the JSON Schema of a task spec (or of a submission manifest), for editors."""

from __future__ import annotations

import argparse
import json


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser("schema", help="print the JSON Schema of a task spec (or of a submission manifest)")
    parser.add_argument("--manifest", action="store_true")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from phenomena_bench.registry import task_json_schema
    from phenomena_bench.submission import SubmissionManifest

    schema = SubmissionManifest.model_json_schema() if args.manifest else task_json_schema()
    print(json.dumps(schema, indent=2))
    return 0
