"""What the bench scripts share: the machine's measured matmul rate and peak-memory readings."""

from __future__ import annotations

import resource
import time
from pathlib import Path
from typing import Any

import torch


def matmul_gflops(device: str, n: int = 1024, repeats: int = 20) -> float:
    """The machine's sustained float32 matmul rate on `device` (GFLOP/s), measured now, in this process."""
    a = torch.randn(n, n, device=device)
    b = torch.randn(n, n, device=device)
    for _ in range(3):
        a @ b
    sync(device)
    t0 = time.perf_counter()
    for _ in range(repeats):
        a @ b
    sync(device)
    return 2 * n**3 * repeats / (time.perf_counter() - t0) / 1e9


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def peak_memory_mb(device: str) -> float:
    """Peak GPU memory allocated by torch on CUDA; peak resident set size of this process on the CPU."""
    if device.startswith("cuda"):
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


#: The grokking task the step-level benchmarks time (the default suite's).
GROKKING_SPEC = Path(__file__).resolve().parents[1] / "tasks" / "grokking" / "add-mod97.yaml"


def fixed_length_grokking_task(tier: str, steps: int) -> Any:
    """The shipped grokking task at `tier`, cut to `steps` with no early stop: a run of known length to time."""
    from phenomena_bench.registry import load_task

    resolved = load_task(GROKKING_SPEC).resolve(tier)  # type: ignore[arg-type]
    raw = resolved.model_dump(mode="json")
    raw["training"]["steps"] = steps
    raw["evaluation"]["stop_when_held"] = False
    return type(resolved).model_validate(raw)
