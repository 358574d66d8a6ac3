"""`phenomena-bench check-submission`: everything a maintainer would check before merging a submission.

1. The manifest: strict fields, exactly one of ``pip`` / ``local_package``.
2. Installation, as a user will get it: a ``pip`` requirement is installed into a fresh virtual environment
   (``--system-site-packages``, so the installed phenomena-bench and its dependencies are there; ``--no-deps
   --no-index``, so pip never reaches a package index), and the rest of the check runs with that
   environment's interpreter. A ``local_package`` folder is put on the path instead.
3. The entry point, imported in a fresh process: it is a method of a family the manifest lists, every hook
   its family requires is overridden and callable as the family calls it, its hyperparameters have
   defaults; an installed package declares it in the group ``phenomena_bench.methods`` under the method's
   own name, and no installed method or baseline uses that name.
4. Every task of its families at the smoke tier (stored failures are redone).

Each problem is printed once, as one line; the exit codes are those of every subcommand (``--help``).
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

from phenomena_bench.cli.options import (
    EXIT_RUNS_FAILED,
    EXIT_USER_ERROR,
    add_execution,
    add_seeds,
    add_store,
    add_tasks_dir,
    tasks_dirs,
)
from phenomena_bench.core.errors import BenchmarkError

#: Seconds a probe or an installation may take before the check gives up on it.
STEP_TIMEOUT_S = 300


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "check-submission",
        help="validate a submission folder, install it in a fresh environment and run its smoke tier",
    )
    parser.add_argument("path")
    add_seeds(parser, default=1)
    add_store(parser, help="where to keep the smoke results (default: a temporary folder)")
    add_tasks_dir(parser)
    add_execution(parser)
    # Set when the check re-runs itself inside the environment it installed the submission into.
    parser.add_argument("--in-env", action="store_true", help=argparse.SUPPRESS)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from phenomena_bench.submission import load_manifest

    folder = Path(args.path)
    manifest = load_manifest(folder)
    base = folder if folder.is_dir() else folder.parent
    if manifest.pip and not args.in_env:
        print(f"manifest ok: {manifest.name} by {', '.join(a.name for a in manifest.authors)}")
        return _in_fresh_environment(manifest.pip, base, args)
    if not args.in_env:
        print(f"manifest ok: {manifest.name} by {', '.join(a.name for a in manifest.authors)}")
    if manifest.local_package:
        _put_on_path(base, manifest.local_package)
    found = _probe(manifest.entry_point, installed=bool(manifest.pip))
    problems: list[str] = list(found["problems"])
    identity: dict[str, Any] | None = found["identity"]
    if identity is not None and identity["family"] not in manifest.families:
        problems.append(
            f"entry point {manifest.entry_point!r} is a {identity['family']} method, "
            f"but the manifest lists families {manifest.families}"
        )
    if problems or identity is None:
        for problem in dict.fromkeys(problems):  # each once, in order
            print(f"error: {problem}", file=sys.stderr)
        return EXIT_USER_ERROR
    print(f"entry point ok: {identity['name']} v{identity['version']} ({identity['family']})")
    return _smoke(manifest.entry_point, manifest.families, manifest.name, args)


def _put_on_path(base: Path, local_package: str) -> None:
    package_dir = (base / local_package).resolve()
    if not package_dir.is_dir():
        raise BenchmarkError(f"{base / 'submission.yaml'}: local_package {local_package!r} is not a folder")
    sys.path.insert(0, str(package_dir))
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(package_dir), os.environ.get("PYTHONPATH")]))


def _requirement(pip: str, base: Path) -> str:
    """The manifest's pip requirement; one that names a path (``.``, ``./pkg``) is taken from the manifest's folder."""
    candidate = base / pip
    return str(candidate.resolve()) if pip.startswith((".", "/")) or candidate.exists() else pip


def _in_fresh_environment(pip: str, base: Path, args: argparse.Namespace) -> int:
    """Install `pip` into a new virtual environment and run this check again with its interpreter."""
    with tempfile.TemporaryDirectory(prefix="phenomena-bench-env-") as where:
        env_dir = Path(where) / "env"
        _checked(
            [sys.executable, "-m", "venv", "--system-site-packages", "--without-pip", str(env_dir)],
            "creating a virtual environment",
        )
        python = env_dir / "bin" / "python"
        requirement = _requirement(pip, base)
        _checked(
            [
                sys.executable,
                "-m",
                "pip",
                "--python",
                str(python),
                "install",
                "--quiet",
                "--no-deps",
                "--no-build-isolation",
                "--no-index",
                "--find-links",
                str(base),
                requirement,
            ],
            f"pip could not install {pip!r} (nothing is fetched from an index: the requirement must be a path "
            "or a wheel in the submission folder)",
        )
        print(f"installed {pip} into a fresh environment")
        argv = [a for a in getattr(args, "argv", None) or sys.argv[1:] if a != "--in-env"]
        return subprocess.run([str(python), "-m", "phenomena_bench", *argv, "--in-env"]).returncode


def _checked(command: list[str], what: str) -> None:
    done = subprocess.run(command, capture_output=True, text=True, timeout=STEP_TIMEOUT_S)
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["(no output)"])[-1]
        raise BenchmarkError(f"{what}: {last}")


def _probe(entry_point: str, installed: bool) -> dict[str, Any]:
    """Run :func:`probe_entry_point` in a fresh interpreter (nothing this process imported can help it)."""
    code = "import sys; from phenomena_bench.cli.check_submission import probe_main; probe_main()"
    done = subprocess.run(
        [sys.executable, "-c", code, entry_point, "installed" if installed else "path"],
        capture_output=True,
        text=True,
        timeout=STEP_TIMEOUT_S,
    )
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        last = (done.stderr.strip().splitlines() or ["(no output)"])[-1]
        return {"identity": None, "problems": [f"entry point {entry_point!r} failed in a fresh process: {last}"]}
    result: dict[str, Any] = json.loads(lines[-1])
    return result


def probe_main() -> None:
    """The fresh process's side of :func:`_probe`: one JSON line, ``{"identity", "problems"}``."""
    entry_point, mode = sys.argv[1], sys.argv[2]
    print(json.dumps(probe_entry_point(entry_point, installed=mode == "installed")))


def probe_entry_point(entry_point: str, installed: bool) -> dict[str, Any]:
    """Every problem with `entry_point` (one line each) and, when there is none, the method's identity."""
    from phenomena_bench.core.errors import MethodError
    from phenomena_bench.registry import (
        _check_method_object,
        _import_ref,
        _method_class,
        family_names,
        get_family,
        name_clashes,
        protocol_problems,
        resolve_method,
    )

    try:
        cls = _method_class(_check_method_object(entry_point, _import_ref(entry_point)))
    except MethodError as err:
        return {"identity": None, "problems": [str(err)]}
    family = getattr(cls, "family", None)
    if family not in family_names():
        return {"identity": None, "problems": [f"entry point {entry_point!r}: unknown family {family!r}"]}
    problems = protocol_problems(cls, get_family(str(family)).method_base)
    if installed:
        problems += _entry_point_problems(entry_point, cls)
    problems += name_clashes()
    if problems:
        return {"identity": None, "problems": problems}
    try:
        identity = resolve_method(entry_point).identity()
    except MethodError as err:
        return {"identity": None, "problems": [str(err)]}
    return {"identity": identity, "problems": []}


def _entry_point_problems(entry_point: str, cls: type) -> list[str]:
    """What is wrong with how the installed distribution declares `entry_point` (empty when all is right).

    After a merge a method is named by its entry point: in the wrong group or under another name, nobody
    could run it by name, so this is checked on the distribution as installed, not on its pyproject.
    """
    from phenomena_bench.core.method import distribution_of
    from phenomena_bench.registry import METHODS_GROUP

    dist = distribution_of(cls)
    if dist is None:
        return [
            f"entry point {entry_point!r}: its module is not part of the distribution the pip requirement installed"
        ]
    declared = [ep for ep in dist.entry_points if ep.value.replace(" ", "") == entry_point]
    in_group = [ep for ep in declared if ep.group == METHODS_GROUP]
    name = getattr(cls, "name", "?")
    if not in_group:
        groups = sorted({ep.group for ep in declared})
        where = f"in group(s) {', '.join(repr(g) for g in groups)}" if groups else "nowhere"
        return [
            f"distribution {dist.name} declares {entry_point!r} {where}; declare it in the group "
            f'{METHODS_GROUP!r} as {name} = "{entry_point}"'
        ]
    return [
        f"distribution {dist.name} names entry point {entry_point!r} {ep.name!r}, but the method's name is "
        f"{name!r}; name the entry point {name!r}"
        for ep in in_group
        if ep.name != name
    ]


def _smoke(entry_point: str, families: list[str], name: str, args: argparse.Namespace) -> int:
    from phenomena_bench.cli.execution import execute
    from phenomena_bench.cli.output import print_results
    from phenomena_bench.registry import load_tasks
    from phenomena_bench.run.execute import resolve_device
    from phenomena_bench.run.plan import plan_runs
    from phenomena_bench.store import Store

    tasks = [spec for _, spec in load_tasks(tasks_dirs(args)).values() if spec.family in families]
    if not tasks:
        raise BenchmarkError(f"no task specs for families {families}")
    store = Store(args.store) if args.store else Store(tempfile.mkdtemp(prefix="phenomena-bench-check-"))
    plan = plan_runs(tasks, [entry_point], "smoke", store, args.seeds, retry_failed=True)
    device = resolve_device(args.device)
    not_ok = execute(plan.todo, args, store, device)
    wanted = set(plan.all_keys)
    print_results([r for r in store.records() if r.key in wanted], "table")
    if not_ok:
        print(f"submission {name}: {not_ok} smoke run(s) not ok (reasons under the table)", file=sys.stderr)
        return EXIT_RUNS_FAILED
    print(f"submission {name} passed the smoke tier on {len(tasks)} task(s)")
    return 0
