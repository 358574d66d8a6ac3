"""What the harness's FLOP meter costs on the default grokking task: metered vs unmetered step time.

One process, one model, the shipped ``adamw`` baseline (the reference method): the harness's training step
(minibatch forward+backward, ``after_backward``, ``optimizer.step()``, ``scheduler.step()``) is timed in
alternating blocks of `block` steps, (a) unmetered, (b) with :class:`phenomena_bench.core.metering.Meter`
around every method call as ``train.py`` does, and (c) with ``torch.utils.flop_counter.FlopCounterMode``
around the same calls. Alternating blocks within one run keeps machine noise out of the ratio. Run on purpose
(not a test):

    python -m bench.metering --steps 1500 [--block 10] [--threads 1] [--device cuda]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

from bench.common import sync
from phenomena_bench.core.metering import Meter
from phenomena_bench.data.modular import _make_split
from phenomena_bench.families.grokking.api import TrainingInfo
from phenomena_bench.families.grokking.train import build_model
from phenomena_bench.registry import load_task, resolve_method

SPEC = Path(__file__).resolve().parents[1] / "tasks" / "grokking" / "add-mod97.yaml"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=1500, help="steps per mode, in alternating blocks")
    parser.add_argument("--block", type=int, default=50)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    task = load_task(SPEC).resolve("default")
    split = _make_split(task.data.operation, task.data.p, task.data.train_fraction, 0).to(args.device)
    torch.manual_seed(0)
    model = build_model(task).to(args.device)
    method = resolve_method("adamw")
    n_train = split.train_x.shape[0]
    batch = min(task.training.batch_size or n_train, n_train)
    info = TrainingInfo(task.training.steps, batch, n_train, task.data.p, args.device, 0)
    configured = method.configure(model, dict(model.named_parameters()), info)  # type: ignore[arg-type]
    optimizer, scheduler = configured if isinstance(configured, tuple) else (configured, None)
    generator = torch.Generator().manual_seed(1)
    meter = Meter()

    def unmetered(hook: str) -> AbstractContextManager[None]:
        return nullcontext()

    def flop_counter(hook: str) -> AbstractContextManager[object]:
        return FlopCounterMode(display=False)

    modes: dict[str, Callable[[str], AbstractContextManager[object]]] = {
        "unmetered": unmetered,
        "Meter": meter.count,
        "FlopCounterMode": flop_counter,
    }
    seconds = dict.fromkeys(modes, 0.0)
    step = 0

    def block(wrap: Callable[[str], AbstractContextManager[object]]) -> float:
        nonlocal step
        sync(args.device)
        t0 = time.perf_counter()
        for _ in range(args.block):
            idx = torch.randint(0, n_train, (batch,), generator=generator).to(args.device)
            loss = torch.nn.functional.cross_entropy(model(split.train_x[idx]), split.train_y[idx])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            with wrap("after_backward"):
                method.after_backward(model, step)  # type: ignore[arg-type]
            with wrap("optimizer.step"):
                optimizer.step()
            if scheduler is not None:
                with wrap("scheduler.step"):
                    scheduler.step()
            step += 1
        sync(args.device)
        return time.perf_counter() - t0

    for wrap in modes.values():  # warm-up, untimed
        block(wrap)
    meter = Meter()
    modes["Meter"] = meter.count
    for _ in range(max(1, args.steps // args.block)):
        for name, wrap in modes.items():
            seconds[name] += block(wrap)
    steps = max(1, args.steps // args.block) * args.block
    base = seconds["unmetered"]
    print(f"default grokking task (p={task.data.p}, batch {batch}), adamw, {steps} steps per mode on {args.device}")
    for name, total in seconds.items():
        print(f"  {name:16s} {1e3 * total / steps:7.3f} ms/step   ratio to unmetered {total / base:5.3f}")
    print(f"  measured method FLOPs per step (Meter): {meter.flops / steps:,.0f}")
    print(f"  declared overhead_flops_per_step:       {method.overhead_flops_per_step(model):,.0f}")  # type: ignore[arg-type]


if __name__ == "__main__":
    main()
