"""What the bench scripts share: the machine's measured matmul rate and peak-memory readings."""

from __future__ import annotations

import resource
import time

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
