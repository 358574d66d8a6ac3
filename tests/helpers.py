"""What several test modules share: the repository root, the CLI as a subprocess, a minimal run record.

End-to-end tests run ``python -m phenomena_bench.cli`` in a fresh process, as a user would; one helper keeps
the environment (one thread per process) and limits the same for all of them. Tests of a command's options,
output and one-line errors that start no run call :func:`cli_in_process` instead: the same ``main`` and the
same result shape, without a new interpreter importing torch again (seconds of CPU per call).
"""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
import sys
from pathlib import Path

from phenomena_bench.store import MethodIdentity, RunRecord

ROOT = Path(__file__).resolve().parents[1]


def cli(
    *args: str, cwd: Path = ROOT, env: dict[str, str] | None = None, timeout: float = 600
) -> subprocess.CompletedProcess[str]:
    """``phenomena-bench ARGS`` in a subprocess, output captured as text."""
    full_env = {**os.environ, "OMP_NUM_THREADS": "1", **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "phenomena_bench.cli", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=full_env,
    )


def cli_in_process(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """``phenomena-bench ARGS`` through :func:`phenomena_bench.cli.main` in this process, as :func:`cli` returns it.

    An argparse refusal (``SystemExit``) is its exit code, as in a shell. ``os.environ`` is restored after:
    ``main`` drops secret-looking variables, and `env` applies to this call only.
    """
    from phenomena_bench.cli import main

    saved = dict(os.environ)
    out, err = io.StringIO(), io.StringIO()
    os.environ.update(env or {})
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = main(list(args))
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else 0 if exc.code is None else 1
    finally:
        os.environ.clear()
        os.environ.update(saved)
    return subprocess.CompletedProcess(["phenomena-bench", *args], code, out.getvalue(), err.getvalue())


def grokking_record(
    key: str = "ab" + "0" * 62, status: str = "ok", error: str | None = None, steps: int = 100
) -> RunRecord:
    """A small, schema-valid grokking record (store and trust tests); not ok when `error` is given."""
    if error is not None and status == "ok":
        status = "failed"
    return RunRecord(
        key=key,
        task_id="grokking/add-mod97",
        task_version=1,
        family="grokking",
        tier="smoke",
        seed=0,
        method=MethodIdentity(
            name="adamw", family="grokking", version="1", hyperparameters={"lr": 0.001}, label="adamw", ref="adamw"
        ),
        status=status,
        metrics={"steps_to_target": steps, "reached": True} if status == "ok" else {},
        error=error,
        wall_time_s=1.0,
        device="cpu",
        torch_version="2",
        benchmark_version="0",
        started_at="t0",
        finished_at="t1",
        task={"id": "grokking/add-mod97", "training": {"steps": 300}},
    )
