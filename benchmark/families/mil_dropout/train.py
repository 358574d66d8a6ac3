"""The one training loop of the mil_dropout family, and the checks that hold a regulariser to its protocol.

The harness trains a fixed gated-attention MIL model (:class:`phenomena_bench.models.abmil.GatedABMIL`) with
the submitted regulariser for a fixed number of epochs (Adam, BCE, padded mini-batches) and keeps the *final*
model. Each hook call is checked (shapes, dtypes, devices, finite values), so a protocol violation is a clear
:class:`MethodError` rather than a NaN three layers on, and metered (:class:`~phenomena_bench.core.metering.Meter`:
the FLOPs of the hook's own forward computation; the backward through it runs inside the harness's backward
pass and is not attributed); a non-finite training loss raises :class:`~phenomena_bench.core.family.Diverged`.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
from torch import nn

from phenomena_bench.core.errors import MethodError
from phenomena_bench.core.family import Diverged
from phenomena_bench.core.metering import Meter
from phenomena_bench.core.method import bad_output, shown
from phenomena_bench.core.seeds import method_seed, seed_global_generators, stream_rng, stream_seed
from phenomena_bench.data.bags import Bags, to_padded
from phenomena_bench.families.mil_dropout.api import DropoutContext, InstanceRegulariser, MILDropoutMethod
from phenomena_bench.families.mil_dropout.spec import MILDropoutTask
from phenomena_bench.families.mil_dropout.splits import INIT, ORDER
from phenomena_bench.models.abmil import AttentionHook, GatedABMIL, InstanceHook


def _checked_instance_hook(module: InstanceRegulariser, name: str, meter: Meter) -> InstanceHook:
    """Wrap ``module.instance`` so a protocol violation is a clear MethodError, not a NaN three layers on."""

    def hook(h: torch.Tensor, mask: torch.Tensor, layer: int) -> tuple[torch.Tensor, torch.Tensor]:
        result: object = meter.call("instance", module.instance, h, mask, layer)
        if not (isinstance(result, tuple) and len(result) == 2 and all(isinstance(t, torch.Tensor) for t in result)):
            raise MethodError(
                f"method {name!r}: instance() returned {shown(result)}; expected a tuple (h, mask) of tensors"
            )
        new_h, new_mask = result
        if new_h.shape != h.shape or new_mask.shape != mask.shape:
            raise MethodError(
                f"method {name!r}: instance() changed shapes {tuple(h.shape)}/{tuple(mask.shape)} to "
                f"{tuple(new_h.shape)}/{tuple(new_mask.shape)} at layer {layer}"
            )
        if new_mask.dtype != torch.bool:
            raise MethodError(f"method {name!r}: instance() returned a {new_mask.dtype} mask, not torch.bool")
        if new_h.dtype != h.dtype or new_h.device != h.device or new_mask.device != mask.device:
            raise MethodError(
                f"method {name!r}: instance() returned h as {new_h.dtype} on {new_h.device} and the mask on "
                f"{new_mask.device}; expected {h.dtype} on {h.device}"
            )
        # blame the hook only for values it made non-finite (training that already overflowed is divergence)
        if bool((~torch.isfinite(new_h) & torch.isfinite(h)).any()):
            raise MethodError(f"method {name!r}: instance() returned features holding NaN or infinity at layer {layer}")
        if bool((new_mask & ~mask).any()):
            raise MethodError(f"method {name!r}: instance() marked padding as a real instance at layer {layer}")
        empty = ~new_mask.any(dim=1)
        if bool(empty.any()):
            raise MethodError(
                f"method {name!r}: instance() left {int(empty.sum())} bag(s) with no instance at layer {layer}; "
                "a regulariser must keep at least one instance per bag"
            )
        return new_h, new_mask

    return hook


def _checked_attention_hook(module: nn.Module, name: str, meter: Meter) -> AttentionHook | None:
    fn = getattr(module, "attention", None)
    if fn is None:
        return None
    if not callable(fn):
        raise MethodError(f"method {name!r}: attribute `attention` of its module is not callable")

    def hook(logits: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        out = meter.call("attention", fn, logits, mask)
        if not isinstance(out, torch.Tensor) or out.shape != logits.shape:
            raise MethodError(
                f"method {name!r}: attention() returned {shown(out)}; expected logits of shape {tuple(logits.shape)}"
            )
        if out.dtype != logits.dtype or out.device != logits.device:
            raise MethodError(f"method {name!r}: attention() returned {out.dtype} logits on {out.device}")
        # -inf removes an instance from the softmax (allowed); NaN, +inf, or no finite logit left is not
        real = torch.isfinite(out) & mask
        made_bad = (torch.isnan(out) | (out == float("inf"))) & torch.isfinite(logits)
        if bool(made_bad.any()) or not bool((real | ~torch.isfinite(logits)).any(dim=1).all()):
            raise MethodError(
                f"method {name!r}: attention() returned logits holding NaN or +inf, or leaving a bag no finite logit"
            )
        return out

    return hook


def _batches(n: int, batch_size: int, rng: np.random.Generator) -> Iterator[np.ndarray]:
    order = rng.permutation(n)
    for start in range(0, n, batch_size):
        yield order[start : start + batch_size]


def train_model(
    task: MILDropoutTask,
    method: MILDropoutMethod[Any],
    train: Bags,
    labels: np.ndarray,
    *,
    seed: int,
    fold: int,
    device: str,
    meter: Meter,
    on_epoch: Iterator[None] | None = None,
) -> tuple[GatedABMIL, list[float]]:
    """The one training loop: fixed epochs of padded mini-batches, Adam, BCE; returns the final model.

    The initial weights and the batch order depend only on (seed, fold), never on the method, so two
    methods trained on the same seed start from the same point and see the same batches. Every call into
    the method's module is metered by `meter` and its result checked.
    """
    torch.manual_seed(stream_seed(seed, INIT, fold))
    model = GatedABMIL(train.num_features, task.model.hidden, task.model.attention_dim).to(device)
    # From here on the global generators serve the method (its dropout draws): its own stream, per fold.
    rng_seed = method_seed(seed)
    seed_global_generators(stream_seed(rng_seed, fold))
    cfg = task.training
    steps_per_epoch = math.ceil(len(train) / cfg.batch_size)
    context = DropoutContext(
        widths=model.widths,
        num_epochs=cfg.epochs,
        steps_per_epoch=steps_per_epoch,
        train_bag_sizes=tuple(int(s) for s in train.sizes),
        device=device,
        rng_seed=rng_seed,
    )
    module = meter.call("make_dropout", method.make_dropout, context)
    if not isinstance(module, nn.Module):
        raise MethodError(f"method {method.name!r}: make_dropout() returned {type(module).__name__}, not nn.Module")
    if not callable(getattr(module, "instance", None)):
        raise MethodError(f"method {method.name!r}: the module from make_dropout() lacks instance(h, mask, layer)")
    module = module.to(device)
    instance_hook = _checked_instance_hook(module, method.name, meter)
    attention_hook = _checked_attention_hook(module, method.name, meter)
    epoch_hook = getattr(module, "on_epoch_start", None)
    optimizer = torch.optim.Adam(
        [*model.parameters(), *module.parameters()], lr=cfg.lr, weight_decay=cfg.weight_decay, foreach=True
    )
    order_rng = stream_rng(seed, ORDER, fold)
    targets = torch.as_tensor(labels, dtype=torch.float32, device=device)
    losses: list[float] = []
    model.train()
    module.train()
    for epoch in range(cfg.epochs):
        if callable(epoch_hook):
            returned = meter.call("on_epoch_start", epoch_hook, epoch, cfg.epochs)
            if returned is not None:
                raise bad_output(method.name, "on_epoch_start()", returned, "None")
        total, count = 0.0, 0
        for batch in _batches(len(train), cfg.batch_size, order_rng):
            x, mask = to_padded([train.instances[i] for i in batch], device)
            out = model(x, mask, instance_hook=instance_hook, attention_hook=attention_hook)
            loss = nn.functional.binary_cross_entropy_with_logits(out.logits, targets[batch])
            value = float(loss.item())
            if not math.isfinite(value):
                raise Diverged(f"training loss became {value} at epoch {epoch} (fold {fold})")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total, count = total + value * len(batch), count + len(batch)
        losses.append(total / count)
        if on_epoch is not None:
            next(on_epoch)
    model.eval()
    return model, losses
