"""The `phenomena-bench` command.

Every user error (bad spec, unknown method, corrupt store, bad argument) is printed as one line naming what
and where, with a non-zero exit; a traceback only with ``--debug``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import yaml

from benchmark import __version__
from benchmark.errors import BenchmarkError, MethodError, SpecError
from benchmark.store import STORE_ENV, Store, default_store_path

EXIT_USER_ERROR = 2
EXIT_RUNS_FAILED = 3


# ------------------------------------------------------------------------------------------- arguments


def _hyperparameters(pairs: list[str] | None) -> dict[str, Any]:
    """`--hp lr=3e-3 --hp warmup_steps=0`: values are read as YAML scalars."""
    values: dict[str, Any] = {}
    for pair in pairs or []:
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            raise BenchmarkError(f"--hp {pair!r}: write KEY=VALUE")
        values[key.strip()] = yaml.safe_load(raw)
    return values


def _store(args: argparse.Namespace) -> Store:
    return Store(args.store)


def _add_store(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--store", type=Path, default=default_store_path(),
        help=f"results store folder (default ./results, or ${STORE_ENV})",
    )


def _add_tasks_dir(parser: argparse.ArgumentParser) -> None:
    from benchmark.registry import default_tasks_dir

    parser.add_argument(
        "--tasks-dir", type=Path, default=None, help=f"task specs folder (default {default_tasks_dir()})"
    )


def _tasks_dir(args: argparse.Namespace) -> Path:
    from benchmark.registry import default_tasks_dir

    return args.tasks_dir or default_tasks_dir()


# --------------------------------------------------------------------------------------------- commands


def cmd_tasks(args: argparse.Namespace) -> int:
    from tabulate import tabulate

    from benchmark.registry import load_suites, load_tasks

    tasks = load_tasks(_tasks_dir(args))
    suites = load_suites(_tasks_dir(args), tasks)
    rows = []
    for spec_id, (_, spec) in sorted(tasks.items()):
        tiers = ", ".join(f"{t}({spec.resolve(t).seeds} seeds)" for t in spec.tiers)
        in_suites = ",".join(name for name, ids in suites.items() if spec_id in ids)
        rows.append([spec_id, spec.family, tiers, in_suites, spec.title])
    print(tabulate(rows, headers=["task", "family", "tiers", "suites", "description"]))
    return 0


def cmd_validate(args: argparse.Namespace) -> int:
    from benchmark.registry import task_files
    from benchmark.spec import load_task

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


def cmd_methods(args: argparse.Namespace) -> int:
    from tabulate import tabulate

    from benchmark.registry import list_methods

    infos, problems = list_methods()
    rows = [[i.ref, i.family, i.version, i.description] for i in infos if not args.family or i.family == args.family]
    print(tabulate(rows, headers=["method", "family", "version", "description"]))
    for problem in problems:
        print(f"warning: {problem}", file=sys.stderr)
    return 0


def cmd_schema(args: argparse.Namespace) -> int:
    from benchmark.spec import SubmissionManifest, task_json_schema

    schema = SubmissionManifest.model_json_schema() if args.manifest else task_json_schema()
    print(json.dumps(schema, indent=2))
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from benchmark.registry import load_tasks, select_tasks, suite_task_ids
    from benchmark.runner import plan_runs, resolve_device

    store = _store(args)
    all_tasks = load_tasks(_tasks_dir(args))
    wanted = list(args.task or [])
    if args.suite:
        wanted += suite_task_ids(_tasks_dir(args), all_tasks, args.suite)
    tasks = select_tasks(all_tasks, wanted)
    plan = plan_runs(tasks, args.method, args.tier, store, args.seeds, _hyperparameters(args.hp), args.retry_failed)
    device = resolve_device(args.device)
    for problem in plan.corrupt:
        print(f"warning: {problem}; redoing that run", file=sys.stderr)
    print(
        f"{len(plan.all_keys)} run(s) at tier {args.tier}: {len(plan.done)} already in {store.root}, "
        f"{len(plan.todo)} to do on {device}",
        file=sys.stderr,
    )
    failed = execute_plan(plan.todo, args, store, device)
    records = [r for r in store.records() if r.key in set(plan.all_keys)]
    _print_results(records, args.format)
    if failed:
        print(f"{failed} run(s) did not finish (failed or timed out); see `phenomena-bench show --runs`",
              file=sys.stderr)
        return EXIT_RUNS_FAILED
    return 0


def execute_plan(todo: list, args: argparse.Namespace, store: Store, device: str) -> int:
    """Run `todo`, writing each record the moment it ends; returns how many failed or timed out.

    Each run is claimed in the store just before it starts (see :meth:`Store.try_claim`), so a second runner
    on the same store skips what this one is doing, waits for those records, and takes over any run whose
    claimer died. A record written by someone else since planning counts as done, not redone.
    """
    import time

    from tqdm import tqdm

    from benchmark.executors import LocalExecutor, ProcessExecutor, default_worker_count, device_slots
    from benchmark.runner import batching_enabled, group_jobs

    if not todo:
        return 0
    cache_dir = Path(args.cache_dir) if args.cache_dir else store.root / "cache"
    cache_dir.mkdir(parents=True, exist_ok=True)
    batch = batching_enabled(args.batch_seeds, device)
    jobs = group_jobs(todo, batch)
    workers = args.workers or min(default_worker_count(device), len(jobs))
    if args.executor == "local":
        executor: Any = LocalExecutor(device, cache_dir, compile=args.compile)
    elif args.executor == "ray":
        from benchmark.ray_executor import RayExecutor

        executor = RayExecutor(device, cache_dir, address=args.ray_address, compile=args.compile)
    else:
        executor = ProcessExecutor(device_slots(device, workers), cache_dir, compile=args.compile)
    bar = tqdm(total=len(todo), unit="run", dynamic_ncols=True, file=sys.stderr, disable=args.quiet)
    slots: dict[int, str] = {}
    failed = 0
    planned = {run.key: store.stamp(run.key) for run in todo}
    claims: dict[str, Any] = {}
    busy: list = []
    by_others = finished = 0

    def written_by_another(run: Any) -> bool:
        return store.stamp(run.key) != planned[run.key]

    def claim(run: Any) -> bool:
        nonlocal by_others
        if written_by_another(run):
            by_others += 1
            bar.update(1)
            return False
        held = store.try_claim(run.key)
        if held is None:
            busy.append(run)
            return False
        if written_by_another(run):  # finished by its claimer between our check and our claim
            held.release()
            by_others += 1
            bar.update(1)
            return False
        claims[run.key] = held
        return True

    def on_progress(slot: int, title: str, done: int, total: int) -> None:
        slots[slot] = f"{title} {done}/{total}"
        bar.set_postfix_str(" | ".join(slots[s] for s in sorted(slots)), refresh=True)

    def on_record(record: Any) -> None:
        nonlocal failed, finished
        store.put(record)
        if record.key in claims:
            claims.pop(record.key).release()
        finished += 1
        bar.update(1)
        if record.status in ("failed", "timeout"):
            failed += 1
        if record.status != "ok":
            first_line = (record.error or "").strip().splitlines()[:1]
            bar.write(f"{record.status}: {record.task_id} {record.method.label} seed={record.seed}: "
                      f"{first_line[0] if first_line else ''}", file=sys.stderr)

    if len(jobs) < len(todo):
        bar.write(f"{len(todo)} run(s) as {len(jobs)} job(s): seeds batched as one program", file=sys.stderr)
    remaining, told = jobs, False
    try:
        while remaining:
            busy.clear()
            executor.execute(remaining, on_record, on_progress, claim=claim)
            remaining = group_jobs(list(busy), batch)
            if remaining:
                if not told:
                    bar.write(f"waiting for {len(busy)} run(s) claimed by {store.claim_holder(busy[0].key)} "
                              "on the same store", file=sys.stderr)
                    told = True
                time.sleep(1.0)
    except KeyboardInterrupt:
        bar.close()
        print(f"\ninterrupted: {finished} of {len(todo)} run(s) finished and are stored in {store.root}; "
              "run the same command again to do the rest", file=sys.stderr)
        raise SystemExit(130) from None
    finally:
        for held in claims.values():
            held.release()
    bar.close()
    if by_others:
        print(f"{by_others} run(s) were done meanwhile by another runner on {store.root}", file=sys.stderr)
    return failed


def _filter_records(records: list, args: argparse.Namespace) -> list:
    out = []
    for r in records:
        if args.task and r.task_id not in args.task and r.family not in args.task:
            continue
        if args.method and r.method.ref not in args.method and r.method.name not in args.method:
            continue
        if args.tier and r.tier != args.tier:
            continue
        out.append(r)
    return out


def _print_results(records: list, fmt: str) -> None:
    from benchmark import stats

    rows = stats.aggregate(records)
    if fmt == "json":
        print(json.dumps(rows, indent=1))
    else:
        print(stats.format_table(rows, fmt="github" if fmt == "markdown" else "simple"))


def cmd_show(args: argparse.Namespace) -> int:
    records, corrupt = _store(args).scan()
    for bad in corrupt:
        print(f"warning: {bad.reason}", file=sys.stderr)
    records = _filter_records(records, args)
    if args.runs:
        if args.format == "json":
            print(json.dumps([r.model_dump(mode="json") for r in records], indent=1))
        else:
            from tabulate import tabulate

            rows = [[r.task_id, r.tier, r.method.label, r.seed, r.status, _primary(r), r.wall_time_s, r.key[:12]]
                    for r in sorted(records, key=lambda r: (r.task_id, r.tier, r.method.label, r.seed))]
            print(tabulate(rows, headers=["task", "tier", "method", "seed", "status", "primary", "wall s", "key"]))
        return 0
    if not records:
        print(f"no results in {args.store} for this selection", file=sys.stderr)
    _print_results(records, args.format)
    return 0


def _primary(record: Any) -> Any:
    from benchmark.families import get_family

    return record.metrics.get(get_family(record.family).primary_metric)


def cmd_check_submission(args: argparse.Namespace) -> int:
    """Manifest, then the entry point in a fresh process, then the smoke tier of every task of its families."""
    from benchmark.registry import load_tasks
    from benchmark.runner import plan_runs, resolve_device
    from benchmark.spec import load_manifest

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
        [sys.executable, "-c",
         "import sys, json; from benchmark.registry import resolve_method; "
         "m = resolve_method(sys.argv[1]); print(json.dumps(m.identity()))", manifest.entry_point],
        capture_output=True, text=True, timeout=300,
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
    tasks = [spec for _, spec in load_tasks(_tasks_dir(args)).values() if spec.family in manifest.families]
    if not tasks:
        raise BenchmarkError(f"no task specs for families {manifest.families}")
    store = Store(args.store) if args.store else Store(tempfile.mkdtemp(prefix="phenomena-bench-check-"))
    plan = plan_runs(tasks, [manifest.entry_point], "smoke", store, args.seeds)
    device = resolve_device(args.device)
    failed = execute_plan(plan.todo, args, store, device)
    records = [r for r in store.records() if r.key in set(plan.all_keys)]
    _print_results(records, "table")
    bad = [r for r in records if r.status != "ok"]
    if failed or bad:
        for r in bad:
            print(f"{r.status}: {r.task_id} seed={r.seed}: {(r.error or '').strip().splitlines()[:1]}", file=sys.stderr)
        return EXIT_RUNS_FAILED
    print(f"submission {manifest.name} passed the smoke tier on {len(tasks)} task(s)")
    return 0


# ---------------------------------------------------------------------------------------------- parser


def _add_run_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda or cuda:N")
    parser.add_argument("--executor", choices=["process", "local", "ray"], default="process",
                        help="process: one isolated worker per run (default); local: in this process (debugging); "
                             "ray: a Ray cluster (pip install 'phenomena-bench[ray]')")
    parser.add_argument("--workers", type=int, default=None, help="parallel runs (default: one per core / GPU)")
    parser.add_argument("--batch-seeds", choices=["auto", "on", "off"], default="auto",
                        help="train the seeds of one (task, method) as one program where the family allows it: "
                             "auto = on CUDA only (where it was measured to help), on = also on the CPU, off = never")
    parser.add_argument("--compile", action="store_true",
                        help="compile the training step with torch.compile where the family supports it (grokking); "
                             "pays a compile per run (~30 s on a CPU), worth it for long runs on a GPU")
    parser.add_argument("--ray-address", default=None, help="Ray cluster address (default: start a local one)")
    parser.add_argument("--cache-dir", default=None, help="data and ground-truth cache (default STORE/cache)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="phenomena-bench", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"phenomena-bench {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks for errors")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("tasks", help="list the task specs")
    _add_tasks_dir(p)
    p.set_defaults(func=cmd_tasks)

    p = sub.add_parser("validate", help="check task spec files (or folders of them)")
    p.add_argument("paths", nargs="+")
    p.set_defaults(func=cmd_validate)

    p = sub.add_parser("methods", help="list installed methods (entry points)")
    p.add_argument("--family", default=None)
    p.set_defaults(func=cmd_methods)

    p = sub.add_parser("schema", help="print the JSON Schema of a task spec (or of a submission manifest)")
    p.add_argument("--manifest", action="store_true")
    p.set_defaults(func=cmd_schema)

    p = sub.add_parser("run", help="run what is missing from the store and print the results table")
    p.add_argument("--task", nargs="+", action="extend", help="task ids or family names (default: all)")
    p.add_argument("--method", nargs="+", action="extend",
                   help="entry-point names or module:attr (default: every installed method of each task's family)")
    p.add_argument("--suite", default=None, help="a named list of tasks from tasks/suites.yaml (e.g. default)")
    p.add_argument("--tier", choices=["smoke", "default", "full"], default="default")
    p.add_argument("--seeds", type=int, default=None, help="number of seeds (default: the tier's)")
    p.add_argument("--hp", action="append", metavar="KEY=VALUE", help="override a hyperparameter of the method(s)")
    p.add_argument("--retry-failed", action="store_true", help="redo runs stored as failed or timeout")
    p.add_argument("--format", choices=["table", "markdown", "json"], default="table")
    _add_store(p)
    _add_tasks_dir(p)
    _add_run_options(p)
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("show", help="print stored results without running")
    p.add_argument("--task", nargs="+", action="extend")
    p.add_argument("--method", nargs="+", action="extend")
    p.add_argument("--tier", choices=["smoke", "default", "full"], default=None)
    p.add_argument("--runs", action="store_true", help="one row per run instead of aggregated rows")
    p.add_argument("--format", choices=["table", "markdown", "json"], default="table")
    _add_store(p)
    p.set_defaults(func=cmd_show)

    p = sub.add_parser("check-submission", help="validate a submission folder and run its smoke tier")
    p.add_argument("path")
    p.add_argument("--seeds", type=int, default=1)
    p.add_argument("--store", type=Path, default=None, help="where to keep the smoke results (default: a temp dir)")
    _add_tasks_dir(p)
    _add_run_options(p)
    p.set_defaults(func=cmd_check_submission)

    for module in ("benchmark.leaderboard", "benchmark.hub"):
        try:
            __import__(module)
        except ImportError:
            continue
        sys.modules[module].add_cli(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if getattr(args, "workers", None) is not None and args.workers < 1:
            raise BenchmarkError(f"--workers must be >= 1, not {args.workers}")
        if getattr(args, "seeds", None) is not None and args.seeds < 1:
            raise BenchmarkError(f"--seeds must be >= 1, not {args.seeds}")
        return int(args.func(args) or 0)
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


if __name__ == "__main__":
    sys.exit(main())
