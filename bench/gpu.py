"""The prepared GPU check: everything the CUDA path must show, in a few minutes, as one summary table.

Run it whenever a CUDA machine is at hand (never in CI, never a test):

    python -m bench.gpu                 # on the GPU machine; each part has its own timeout
    python -m bench.gpu --device cpu --quick   # a dry run of the script itself on a laptop

Parts, each in its own subprocess with its own timeout (a part that hangs or fails is one row, the others go on):

- ``batched``: the full grokking tier (p = 113, 30% of the table, full batch, d 128), AdamW, a fixed number
  of steps without early stopping: a few seeds trained one by one, then ``--batch-r`` (20) seeds as one
  program (stacked parameters, ``vmap``). Reports seed-steps per second both ways and the ratio (target >= 10x)
  and checks that the batched seeds' losses equal the ones trained alone.
- ``sync``: no host synchronisation inside the training step. The same run is trained for N and 3N steps
  with evaluations only at the start and the end, under ``torch.cuda.set_sync_debug_mode("warn")``; the
  number of synchronising calls must not grow with the steps (the evaluations and set-up account for all).
- ``overhead``: the harness's loop against a plain PyTorch loop (``bench.harness_overhead``).
- ``compile``: ``--compile`` on CUDA (``bench.compiled_step``): eager, first compiled run, warm compiled run.
- ``smoke``: every family end to end through the CLI, ``run --suite default --tier smoke --device cuda``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import torch

from bench.common import sync
from phenomena_bench.core.family import RunContext
from phenomena_bench.families.grokking.spec import GrokkingTask
from phenomena_bench.families.grokking.train import train_runs
from phenomena_bench.registry import load_task, resolve_method

SPEC = Path(__file__).resolve().parents[1] / "tasks" / "grokking" / "add-mod97.yaml"
PARTS = ("batched", "sync", "overhead", "compile", "smoke")
MARK = "GPU-CHECK-RESULT "


def _fixed_steps(tier: str, steps: int, eval_every: int) -> GrokkingTask:
    """The grokking task at `tier`, trained exactly `steps` steps (no early stop)."""
    raw = load_task(SPEC).resolve(tier).model_dump(mode="json")
    raw["training"].update(steps=steps, eval_every=eval_every)
    raw["evaluation"].update(stop_when_held=False, hold_evals=1)
    return GrokkingTask.model_validate(raw)


def _train(task: GrokkingTask, seeds: list[int], device: str) -> tuple[float, list[float]]:
    """Seconds to train `seeds` as one program, and each seed's final held-out loss."""
    ctx = RunContext(seed=seeds[0], device=device, cache_dir=Path(tempfile.gettempdir()))
    sync(device)
    t0 = time.perf_counter()
    outcomes = train_runs(task, resolve_method("adamw"), seeds, ctx)
    sync(device)
    return time.perf_counter() - t0, [float(o.curves["val_loss"].y[-1]) for o in outcomes]


def part_batched(args: argparse.Namespace) -> dict[str, Any]:
    task = _fixed_steps(args.tier, args.steps, args.steps)
    _train(task, [0], args.device)  # warm-up: CUDA context, kernels, allocator
    alone_s, alone_loss = 0.0, []
    for seed in range(args.alone):
        seconds, loss = _train(task, [seed], args.device)
        alone_s += seconds
        alone_loss += loss
    batched_s, batched_loss = _train(task, list(range(args.batch_r)), args.device)
    per_seed_alone = alone_s / args.alone
    per_seed_batched = batched_s / args.batch_r
    worst = max(abs(a - b) / max(abs(a), 1e-12) for a, b in zip(alone_loss, batched_loss))
    ratio = per_seed_alone / per_seed_batched
    return {
        "result": f"x{ratio:.1f} seeds/s ({args.batch_r} batched: {batched_s:.1f} s; alone {per_seed_alone:.2f} s/seed)"
        f", {args.steps} steps, loss rel. diff {worst:.1e}",
        "ok": ratio >= 10 and worst < 1e-3,
    }


def part_sync(args: argparse.Namespace) -> dict[str, Any]:
    if not args.device.startswith("cuda"):
        return {"result": "skipped: needs CUDA (sync debug mode)", "ok": None}
    counts = []
    for steps in (args.sync_steps, 3 * args.sync_steps):
        task = _fixed_steps(args.tier, steps, steps)  # evaluations at step 0 and at the end only
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            torch.cuda.set_sync_debug_mode("warn")
            try:
                _train(task, [0, 1], args.device)
            finally:
                torch.cuda.set_sync_debug_mode("default")
        counts.append(sum("synchroniz" in str(w.message) for w in caught))
    return {
        "result": f"synchronising calls: {counts[0]} for {args.sync_steps} steps, {counts[1]} for "
        f"{3 * args.sync_steps} steps",
        "ok": counts[1] == counts[0],
    }


def _module(name: str, extra: list[str], args: argparse.Namespace) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, "-m", name, "--device", args.device, *extra], capture_output=True, text=True, check=False
    )
    lines = [line for line in out.stdout.splitlines() if line.strip()]
    return {"result": " | ".join(lines[-3:]) if lines else out.stderr.strip()[-300:], "ok": out.returncode == 0}


def part_overhead(args: argparse.Namespace) -> dict[str, Any]:
    return _module("bench.harness_overhead", ["--steps", str(args.steps), "--repeats", "1", "--tier", args.tier], args)


def part_compile(args: argparse.Namespace) -> dict[str, Any]:
    return _module("bench.compiled_step", ["--steps", str(args.steps), "--tier", args.tier], args)


def part_smoke(args: argparse.Namespace) -> dict[str, Any]:
    store = tempfile.mkdtemp(prefix="gpu-smoke-")
    run = [sys.executable, "-m", "phenomena_bench.cli", "run", "--suite", "default", "--tier", "smoke"]
    out = subprocess.run(
        [*run, "--device", args.device, "--store", store, "--quiet"], capture_output=True, text=True, check=False
    )
    shown = subprocess.run(
        [sys.executable, "-m", "phenomena_bench.cli", "show", "--runs", "--format", "json", "--store", store],
        capture_output=True,
        text=True,
        check=False,
    )
    records = json.loads(shown.stdout or "[]")
    statuses: dict[str, int] = {}
    for record in records:
        statuses[record["status"]] = statuses.get(record["status"], 0) + 1
    devices = sorted({record.get("device", "?") for record in records})
    return {
        "result": f"{len(records)} runs {statuses} on {devices}, exit {out.returncode}",
        "ok": out.returncode == 0 and bool(records) and set(statuses) <= {"ok", "diverged"},
    }


def run_part(name: str, args: argparse.Namespace) -> None:
    """Inside the part's own subprocess: run it and print its result on one marked line."""
    result = globals()[f"part_{name}"](args)
    print(MARK + json.dumps(result), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--quick", action="store_true", help="tiny settings: check the script itself")
    parser.add_argument("--parts", default=",".join(PARTS))
    parser.add_argument("--part", default=None, help=argparse.SUPPRESS)  # one part, in its subprocess
    parser.add_argument("--tier", default="full", choices=["smoke", "default", "full"])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--alone", type=int, default=3, help="seeds timed one by one (their mean is per seed)")
    parser.add_argument("--batch-r", type=int, default=20)
    parser.add_argument("--sync-steps", type=int, default=20)
    parser.add_argument("--timeout", type=int, default=240, help="seconds per part")
    args = parser.parse_args()
    if args.quick:
        args.tier, args.steps, args.alone, args.batch_r, args.timeout = "smoke", 100, 1, 3, min(args.timeout, 300)
    if args.part:
        run_part(args.part, args)
        return
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        sys.exit("bench.gpu: CUDA is not available here (use --device cpu --quick for a dry run)")
    device_name = torch.cuda.get_device_name() if args.device.startswith("cuda") else "cpu"
    rows = []
    for name in args.parts.split(","):
        command = [sys.executable, "-m", "bench.gpu", "--part", name, *sys.argv[1:]]
        t0 = time.perf_counter()
        try:
            out = subprocess.run(command, capture_output=True, text=True, timeout=args.timeout, check=False)
            marked = [line for line in out.stdout.splitlines() if line.startswith(MARK)]
            if marked:
                result = json.loads(marked[-1][len(MARK) :])
            else:
                result = {"result": f"crashed: {(out.stderr.strip().splitlines() or ['?'])[-1][:200]}", "ok": False}
        except subprocess.TimeoutExpired:
            result = {"result": f"timed out after {args.timeout} s", "ok": False}
        verdict = {True: "pass", False: "FAIL", None: "skip"}[result["ok"]]
        rows.append((name, verdict, f"{time.perf_counter() - t0:.0f}", result["result"]))
        print(f"{name}: {verdict} {result['result']}", flush=True)
    print(f"\nGPU check on {device_name}, torch {torch.__version__}, {time.strftime('%Y-%m-%d')}")
    width = max(len(r[3]) for r in rows)
    print(f"{'part':10} {'verdict':7} {'s':>5}  result")
    for name, verdict, seconds, result in rows:
        print(f"{name:10} {verdict:7} {seconds:>5}  {result[:width]}")


if __name__ == "__main__":
    main()
