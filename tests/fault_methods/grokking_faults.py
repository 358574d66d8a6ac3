"""Grokking methods that misbehave on purpose, one fault each, for the fault-injection tests.

Referenced as ``grokking_faults:<Class>`` with this folder on ``PYTHONPATH``. Every method appends one line
``<tag> <seed> <pid> <phase>`` to the file named by ``$FAULT_LOG`` when its run starts (``configure``), so a
test can count how many times each run was started, by which worker, in which invocation (``$FAULT_PHASE``).
A method that starts a helper process logs ``child <seed> <pid>`` too, so a test can check it was killed.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from typing import Any

import torch
from pydantic import BaseModel, ConfigDict, Field

from phenomena_bench.core.seeds import DEV_SEED_BASE, method_seed
from phenomena_bench.families.grokking.api import GrokkingMethod, TrainingInfo


def _run_seed(info: TrainingInfo) -> int:
    """The run seed, for the log only. A method is handed its own stream (`rng_seed`), never the run seed;
    these test fixtures recover it by enumerating the small seed range, which is exactly the limit
    docs/TRUST.md states (the API does not hand the seed out; review of submitted code covers the rest)."""
    candidates = (*range(1000), *range(DEV_SEED_BASE, DEV_SEED_BASE + 1000))
    return next(s for s in candidates if method_seed(s) == info.rng_seed)


def _log(tag: str, seed: int, pid: int | None = None) -> None:
    path = os.environ.get("FAULT_LOG")
    if path:
        with open(path, "a", encoding="utf-8") as fh:  # O_APPEND: concurrent writers' short lines do not interleave
            fh.write(f"{tag} {seed} {pid or os.getpid()} {os.environ.get('FAULT_PHASE', '-')}\n")


class _Logged(GrokkingMethod):
    """Plain Adam that logs its start, then calls `fault` (a no-op here)."""

    name = "fault-ok"
    version = "1"
    description = "Adam lr 1e-3; logs each start (the control run beside the faulty ones)"

    def configure(self, model: Any, params: dict[str, torch.nn.Parameter], info: TrainingInfo) -> torch.optim.Optimizer:
        _log(self.name, _run_seed(info))
        self.fault(info)
        return torch.optim.Adam(list(params.values()), lr=1e-3)

    def fault(self, info: TrainingInfo) -> None:
        """Where each subclass misbehaves."""


class Ok(_Logged):
    pass


class Slow(_Logged):
    """A well-behaved run that takes a second longer, so a test can interrupt a suite between runs."""

    name = "fault-slow"
    description = "sleeps 1.5 s, then trains like fault-ok"

    def fault(self, info: TrainingInfo) -> None:
        time.sleep(float(os.environ.get("FAULT_SLEEP_S", "1.5")))


class Raises(_Logged):
    name = "fault-raises"
    description = "raises ValueError in configure"

    def fault(self, info: TrainingInfo) -> None:
        raise ValueError(f"injected failure for seed {_run_seed(info)}")


class Hangs(_Logged):
    """Starts a helper process (as a data loader might), then never returns."""

    name = "fault-hangs"
    description = "starts a child process, then sleeps forever"

    def fault(self, info: TrainingInfo) -> None:
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(3600)"])
        _log("child", _run_seed(info), child.pid)
        while True:
            time.sleep(1)


class Diverges(_Logged):
    """Weights set to NaN after step 4: the loss of step 5 is NaN."""

    name = "fault-diverges"
    description = "sets a weight to NaN after step 4"

    def after_backward(self, model: Any, step: int) -> None:
        if step == 4:
            with torch.no_grad():
                next(model.parameters()).fill_(float("nan"))


class Segfaults(_Logged):
    name = "fault-segfaults"
    description = "the worker dies of SIGSEGV"

    def fault(self, info: TrainingInfo) -> None:
        os.kill(os.getpid(), signal.SIGSEGV)
        time.sleep(10)


class Exits(_Logged):
    name = "fault-exits"
    description = "the worker calls os._exit(7)"

    def fault(self, info: TrainingInfo) -> None:
        os._exit(7)


class OutOfMemory(_Logged):
    """What the kernel's OOM killer does to a worker: SIGKILL, no chance to report."""

    name = "fault-oom"
    description = "the worker is SIGKILLed (as by the OOM killer)"

    def fault(self, info: TrainingInfo) -> None:
        os.kill(os.getpid(), signal.SIGKILL)
        time.sleep(10)


class ReadsEnvironment(_Logged):
    """Fails, naming any secret-looking variable it can see (in its environment or its start-up environ)."""

    name = "fault-env"
    description = "fails if a token is visible to the worker"

    def fault(self, info: TrainingInfo) -> None:
        visible = sorted(k for k in os.environ if "TOKEN" in k or "SECRET" in k)
        with open("/proc/self/environ", "rb") as fh:
            initial = sorted(
                entry.split(b"=", 1)[0].decode() for entry in fh.read().split(b"\0") if b"TOKEN" in entry.split(b"=")[0]
            )
        if visible or initial:
            raise RuntimeError(f"secrets visible to the worker: environ {visible}, /proc/self/environ {initial}")


class BatchedOk(_Logged):
    """Adam, declared batchable: with ``--batch-seeds on`` its seeds train as one program (one start logged)."""

    name = "fault-batched-ok"
    batchable = True


class BatchedRaises(Raises):
    name = "fault-batched-raises"
    batchable = True


class BatchedSegfaults(Segfaults):
    name = "fault-batched-segfaults"
    batchable = True


class BatchedHangs(Hangs):
    name = "fault-batched-hangs"
    batchable = True


class NotAMethod:
    """An object that is not a Method (bad input: the wrong kind of thing)."""


not_callable = 42


class PositiveLr(BaseModel):
    model_config = ConfigDict(extra="forbid")

    lr: float = Field(default=1e-3, gt=0)


class BadHyperparameters(_Logged):
    """A method whose lr must be positive: `--hp lr=-1` (or an unknown key) is refused before any run."""

    name = "fault-hp"
    Hyperparameters = PositiveLr
