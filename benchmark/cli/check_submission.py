"""`phenomena-bench check-submission`: the manifest, the entry point in a fresh process, then the smoke tier."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from phenomena_bench.cli.options import EXIT_RUNS_FAILED, add_execution, add_seeds, add_store, add_tasks_dir, tasks_dirs
from phenomena_bench.core.errors import BenchmarkError, MethodError
from phenomena_bench.store import Store

_PROBE = (
    "import sys, json; from phenomena_bench.registry import resolve_method; "
    "m = resolve_method(sys.argv[1]); print(json.dumps(m.identity()))"
)


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser("check-submission", help="validate a submission folder and run its smoke tier")
    parser.add_argument("path")
    add_seeds(parser, default=1)
    add_store(parser, help="where to keep the smoke results (default: a temporary folder)")
    add_tasks_dir(parser)
    add_execution(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from phenomena_bench.cli.execution import execute
    from phenomena_bench.cli.output import print_results
    from phenomena_bench.registry import load_tasks
    from phenomena_bench.run.execute import resolve_device
    from phenomena_bench.run.plan import plan_runs
    from phenomena_bench.submission import load_manifest

    folder = Path(args.path)
    manifest = load_manifest(folder)
    base = folder if folder.is_dir() else folder.parent
    print(f"manifest ok: {manifest.name} by {', '.join(a.name for a in manifest.authors)}")
    if manifest.local_package:
        package_dir = (base / manifest.local_package).resolve()
        if not package_dir.is_dir():
            raise BenchmarkError(
                f"{base / 'submission.yaml'}: local_package {manifest.local_package!r} is not a folder"
            )
        sys.path.insert(0, str(package_dir))
        os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(package_dir), os.environ.get("PYTHONPATH")]))
    probe = subprocess.run(
        [sys.executable, "-c", _PROBE, manifest.entry_point], capture_output=True, text=True, timeout=300
    )
    if probe.returncode != 0:
        last = (probe.stderr.strip().splitlines() or ["(no output)"])[-1]
        raise MethodError(f"entry point {manifest.entry_point!r} failed in a fresh process: {last}")
    identity = json.loads(probe.stdout.strip().splitlines()[-1])
    if identity["family"] not in manifest.families:
        raise MethodError(
            f"entry point {manifest.entry_point!r} is a {identity['family']} method, "
            f"but the manifest lists families {manifest.families}"
        )
    print(f"entry point ok: {identity['name']} v{identity['version']} ({identity['family']})")
    tasks = [spec for _, spec in load_tasks(tasks_dirs(args)).values() if spec.family in manifest.families]
    if not tasks:
        raise BenchmarkError(f"no task specs for families {manifest.families}")
    store = Store(args.store) if args.store else Store(tempfile.mkdtemp(prefix="phenomena-bench-check-"))
    plan = plan_runs(tasks, [manifest.entry_point], "smoke", store, args.seeds)
    device = resolve_device(args.device)
    failed = execute(plan.todo, args, store, device)
    wanted = set(plan.all_keys)
    records = [r for r in store.records() if r.key in wanted]
    print_results(records, "table")
    bad = [r for r in records if r.status != "ok"]
    if failed or bad:
        for r in bad:
            print(f"{r.status}: {r.task_id} seed={r.seed}: {(r.error or '').strip().splitlines()[:1]}", file=sys.stderr)
        return EXIT_RUNS_FAILED
    print(f"submission {manifest.name} passed the smoke tier on {len(tasks)} task(s)")
    return 0
