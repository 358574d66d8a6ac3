"""How far each family's runs are from the hardware: achieved FLOP/s against the measured matmul rate.

For the first default-suite task of each family, the family's reference method and seed 0 at the chosen tier,
the script times one run (CPU time of this process, a fresh cache so shared work is included), then runs it
again under a FLOP-counting dispatch mode that sees every ATen operation — the harness's own training and
products included (the meter's ``unmetered`` sections are opened up for this count) — and divides. The
machine's float32 matmul rate is measured in the same process, on the same threads. Run on purpose:

    python -m bench.flops [--tier default] [--families grokking,pruning] [--threads 1] [--device cpu]

Matrix products are counted by PyTorch's formulas, element-wise operations and reductions one FLOP per element
(:mod:`phenomena_bench.core.metering`), so a run dominated by small operations shows a low rate: that is the
per-operation overhead the batching work goes after.
"""

from __future__ import annotations

import argparse
import contextlib
import tempfile
import time
from pathlib import Path
from unittest import mock

import torch
import yaml

import phenomena_bench.core.metering as metering
from bench.common import matmul_gflops, sync
from phenomena_bench.core.family import RunContext
from phenomena_bench.registry import get_family, load_task, resolve_method, shipped_tasks_dir


def _run_once(family_name: str, spec_path: Path, tier: str, device: str) -> None:
    family = get_family(family_name)
    task = family.spec_model.model_validate(load_task(spec_path).resolve(tier).model_dump(mode="json"))
    method = resolve_method(family.reference_method)
    with tempfile.TemporaryDirectory() as cache:
        torch.manual_seed(0)
        family.run(task, method, RunContext(seed=0, device=device, cache_dir=Path(cache)))


def measure(family_name: str, spec_path: Path, tier: str, device: str) -> tuple[float, float]:
    """(seconds, FLOPs) of one reference run: the time uncounted, the FLOPs counted in a second run."""
    sync(device)
    t0 = time.process_time() if device == "cpu" else time.perf_counter()
    _run_once(family_name, spec_path, tier, device)
    sync(device)
    seconds = (time.process_time() if device == "cpu" else time.perf_counter()) - t0
    meter = metering.Meter()
    # open up the harness's unmetered sections, so its own training and products are counted too
    with mock.patch.object(metering, "_disable_current_modes", contextlib.nullcontext), meter.count("all"):
        _run_once(family_name, spec_path, tier, device)
    return seconds, meter.flops


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tier", default="default", choices=["smoke", "default", "full"])
    parser.add_argument("--families", default=None, help="comma-separated (default: every family of the suite)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    tasks_dir = shipped_tasks_dir()
    first: dict[str, Path] = {}
    for task_id in yaml.safe_load((tasks_dir / "suites.yaml").read_text())["suites"]["default"]:
        family_name = task_id.split("/", 1)[0]
        first.setdefault(family_name, tasks_dir / f"{task_id}.yaml")
    chosen = args.families.split(",") if args.families else list(first)
    rate = matmul_gflops(args.device)
    print(f"matmul rate on {args.device} ({args.threads} thread(s)): {rate:.1f} GFLOP/s (float32, 1024^3)")
    print(f"{'family':12} {'task':34} {'method':14} {'seconds':>8} {'GFLOP':>9} {'GFLOP/s':>8} {'of matmul':>9}")
    for family_name in chosen:
        seconds, flops = measure(family_name, first[family_name], args.tier, args.device)
        achieved = flops / seconds / 1e9
        task_id = first[family_name].relative_to(tasks_dir).with_suffix("").as_posix()
        method = get_family(family_name).reference_method
        print(
            f"{family_name:12} {task_id:34} {method:14} {seconds:8.1f} {flops / 1e9:9.2f} {achieved:8.2f} "
            f"{achieved / rate:9.1%}",
            flush=True,
        )


if __name__ == "__main__":
    main()
