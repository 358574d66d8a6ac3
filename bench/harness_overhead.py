"""Harness overhead on the grokking default tier: the harness's training loop against a plain PyTorch loop.

Both do the same work in the same process: the same model, split, optimizer and batches, a fixed number of
steps (no early stop), and a full evaluation of the train and held-out splits every `eval_every` steps. The
script prints the ratio (harness / plain), steps/s, FLOPs/s as a fraction of this machine's measured matmul
rate, and peak memory. Run on purpose (not a test):

    python bench/harness_overhead.py --steps 600 --repeats 3 [--device cuda]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from bench.common import matmul_gflops, peak_memory_mb, sync
from phenomena_bench.core.family import RunContext
from phenomena_bench.data.modular import _make_split
from phenomena_bench.families.grokking.train import build_model, train
from phenomena_bench.registry import load_task, resolve_method

SPEC = Path(__file__).resolve().parents[1] / "tasks" / "grokking" / "add-mod97.yaml"


def plain_loop(task, seed: int, device: str) -> None:  # type: ignore[no-untyped-def]
    """The reference: what a researcher would write by hand for the same run."""
    split = _make_split(task.data.operation, task.data.p, task.data.train_fraction, seed).to(device)
    torch.manual_seed(seed)
    model = build_model(task).to(device)
    opt = torch.optim.AdamW(
        model.parameters(),
        lr=1e-3,
        betas=(0.9, 0.98),
        weight_decay=1.0,
        fused=True,  # as the adamw baseline does
    )
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min((s + 1) / 10, 1.0))
    generator = torch.Generator().manual_seed(seed + 1)
    n = len(split.train_x)
    batch = min(task.training.batch_size or n, n)  # null: the full training split
    order, cursor = torch.empty(0, dtype=torch.long), n
    for step in range(1, task.training.steps + 1):
        if cursor + batch > n:
            order, cursor = torch.randperm(n, generator=generator).to(device), 0
        idx = order[cursor : cursor + batch]
        cursor += batch
        loss = torch.nn.functional.cross_entropy(model(split.train_x[idx]), split.train_y[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        if step % task.training.eval_every == 0:
            with torch.no_grad():
                (model(split.train_x).argmax(-1) == split.train_y).float().mean().item()
                (model(split.test_x).argmax(-1) == split.test_y).float().mean().item()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--tier", default="default", choices=["smoke", "default", "full"])
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    spec = load_task(SPEC)
    task = spec.resolve(args.tier)
    # A fixed number of steps and no early stop, so both loops do exactly the same work.
    raw = task.model_dump(mode="json")
    raw["training"]["steps"] = args.steps
    raw["evaluation"].update(stop_when_held=False, hold_evals=1)
    task = type(task).model_validate(raw)
    method = resolve_method("adamw")
    ctx = RunContext(seed=0, device=args.device, cache_dir=Path("/tmp"))

    harness, plain = [], []
    for _ in range(args.repeats):  # interleaved, so drifts in machine load hit both alike
        sync(args.device)
        t0 = time.perf_counter()
        outcome = train(task, method, ctx)
        sync(args.device)
        harness.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        plain_loop(task, 0, args.device)
        sync(args.device)
        plain.append(time.perf_counter() - t0)

    best_h, best_p = min(harness), min(plain)
    flops = outcome.metrics["flops"]
    rate = matmul_gflops(args.device)
    print(
        f"device {args.device}, {args.tier} tier, {args.threads} thread(s), {args.steps} steps, "
        f"batch {task.training.batch_size or 'full'}, "
        f"eval every {task.training.eval_every}; best of {args.repeats}"
    )
    print(f"plain loop      {best_p:8.2f} s   {args.steps / best_p:8.1f} steps/s")
    print(f"harness         {best_h:8.2f} s   {args.steps / best_h:8.1f} steps/s")
    print(f"ratio harness/plain = {best_h / best_p:.3f}   (target <= 1.10)")
    print(
        f"harness FLOP rate   = {flops / best_h / 1e9:.1f} GFLOP/s = {flops / best_h / 1e9 / rate:.1%} of the "
        f"measured {rate:.1f} GFLOP/s matmul rate"
    )
    print(f"peak memory         = {peak_memory_mb(args.device):.0f} MB")


if __name__ == "__main__":
    main()
