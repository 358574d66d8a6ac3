"""FLOPs of a method's own code, measured by the harness around every hook it calls.

A method used to declare its cost (``overhead_flops_per_step``); a declaration is only a claim, so the
harness now measures. Every call into method code (a hook, the optimizer's ``step()``, a scheduler, a
regulariser's forward) runs inside :meth:`Meter.count`, a ``TorchDispatchMode`` that sees every ATen
operation the call dispatches, whatever Python the method wrote around it, with no sampling and no warm-up:
the first and the ten-thousandth call are counted alike, so there is no window for unmetered work.

What an operation costs:

- matrix products, convolutions and attention: PyTorch's own formulas
  (``torch.utils.flop_counter.flop_registry``, the table ``FlopCounterMode`` uses, so the counts agree with it);
- element-wise operations (ATen's ``pointwise`` tag) and the ``_foreach_*`` optimizer kernels: one FLOP
  per output element, which is what an optimizer update or a gradient filter is made of and what
  ``FlopCounterMode`` counts as zero; a fused Adam or AdamW kernel (``_fused_adam_``, ``_fused_adamw_``): eight
  per parameter element, what the same update costs unfused (measured: the per-parameter and ``foreach``
  paths of ``torch.optim.AdamW`` both count 8.0 per element), so a fused optimizer is charged what an unfused
  one is; another fused kernel: one per element of every tensor it takes (an approximation of the same order);
- reductions (ATen's ``reduction`` tag): one FLOP per input element;
- everything else (copies, views, indexing, sorting, random draws, dense decompositions): zero.

Why not ``FlopCounterMode`` itself: it counts element-wise work as zero (an Adam step would cost nothing) and
tracks modules on every call, which is overhead a per-step meter pays thousands of times;
``bench/metering.py`` measures both on the default grokking task. The limits are stated where the records
are read (README, "Costs"): work done outside PyTorch (NumPy, SciPy, another process) is invisible to a
dispatch mode; the wall clock, which starts before the first hook, is the backstop.

Harness work that a hook triggers (``ctx.train`` in pruning, the Hessian oracle's products) is charged in its
own unit (steps, HVPs) and runs :func:`unmetered`, so it is not counted twice.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import torch
from torch.utils._python_dispatch import TorchDispatchMode, _disable_current_modes
from torch.utils._pytree import tree_flatten
from torch.utils.flop_counter import flop_registry

T = TypeVar("T")


def _numel(values: Any) -> int:
    leaves, _ = tree_flatten(values)
    return sum(leaf.numel() for leaf in leaves if isinstance(leaf, torch.Tensor))


_MATMUL, _FOREACH, _FUSED, _POINTWISE, _REDUCTION, _FREE = range(6)
_FUSED_ADAM = frozenset({"_fused_adam_", "_fused_adamw_", "_fused_adam", "_fused_adamw"})
#: What the meter counts per parameter element for one unfused Adam(W) step (its element-wise operations).
ADAM_FLOPS_PER_ELEMENT = 8
_KINDS: dict[Any, int] = {}  # per ATen overload, classified once: the meter runs on every op of every step


def _kind(func: Any) -> int:
    kind = _KINDS.get(func)
    if kind is None:
        packet = func._overloadpacket
        name, tags = packet.__name__, func.tags
        if packet in flop_registry:
            kind = _MATMUL
        elif name.startswith("_foreach_"):
            kind = _FOREACH
        elif name.startswith("_fused_"):
            kind = _FUSED
        elif torch.Tag.pointwise in tags:
            kind = _POINTWISE
        elif torch.Tag.reduction in tags:
            kind = _REDUCTION
        else:
            kind = _FREE
        _KINDS[func] = kind
    return kind


def op_flops(func: Any, args: tuple[Any, ...], kwargs: dict[str, Any], out: Any) -> float:
    """The FLOPs the meter charges for one ATen call `func(*args, **kwargs) -> out` (see the module doc)."""
    kind = _kind(func)
    if kind == _FREE:
        return 0.0
    if kind == _POINTWISE:
        return float(out.numel()) if isinstance(out, torch.Tensor) else float(_numel(out))
    if kind == _MATMUL:
        return float(flop_registry[func._overloadpacket](*args, **kwargs, out_val=out))
    if kind == _FOREACH:
        # in-place foreach kernels return None: the updated tensors are the first argument
        return float(_numel(out) or _numel(args[0] if args else ()))
    if kind == _FUSED:
        if func._overloadpacket.__name__ in _FUSED_ADAM:  # what the unfused update of the same parameters costs
            return float(ADAM_FLOPS_PER_ELEMENT * _numel(args[0] if args else ()))
        return float(_numel(args))  # another fused kernel: one FLOP per element of every tensor it takes
    first = args[0] if args else None  # a reduction: one FLOP per input element
    return float(first.numel()) if isinstance(first, torch.Tensor) else float(_numel(first))


class _Counting(TorchDispatchMode):
    """Adds up :func:`op_flops` of every operation dispatched while it is active."""

    def __init__(self) -> None:
        super().__init__()
        self.flops = 0.0

    def __torch_dispatch__(
        self, func: Any, types: Any, args: tuple[Any, ...] = (), kwargs: dict[str, Any] | None = None
    ) -> Any:
        out = func(*args, **(kwargs or {}))
        if _KINDS.get(func) != _FREE:
            self.flops += op_flops(func, args, kwargs or {}, out)
        return out


class Meter:
    """The measured FLOPs of one run's method code, in all and per hook.

    ``meter.call("prepare", method.prepare, model, ...)`` runs a hook metered; :meth:`count` meters a block.
    """

    def __init__(self) -> None:
        self.flops = 0.0
        self.by_hook: dict[str, float] = {}

    @contextmanager
    def count(self, hook: str) -> Iterator[None]:
        """Meter the block: every operation it dispatches is charged to `hook` (even when it raises)."""
        mode = _Counting()
        try:
            with mode:
                yield
        finally:
            self.flops += mode.flops
            self.by_hook[hook] = self.by_hook.get(hook, 0.0) + mode.flops

    def call(self, hook: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """`fn(*args, **kwargs)`, metered and charged to `hook`."""
        with self.count(hook):
            return fn(*args, **kwargs)

    def metrics(self, prefix: str = "method_flops") -> dict[str, float]:
        """``method_flops`` and one ``method_flops/<hook>`` per hook called: what a record stores."""
        out = {prefix: self.flops}
        out.update({f"{prefix}/{hook}": value for hook, value in sorted(self.by_hook.items())})
        return out


@contextmanager
def unmetered() -> Iterator[None]:
    """Run harness work that a metered hook asked for (charged in steps or HVPs instead) outside the meter."""
    with _disable_current_modes():
        yield
