"""Golechha's progress measures for grokking, for any torch model: what changes inside a network as it groks.

Golechha (2024, "Progress Measures for Grokking on Real-world Tasks", arXiv 2405.12755) argues that the
weight norm does not explain grokking on real data and proposes three measures that track it better; this
module computes those three and the weight norm they are compared with, with the paper's definitions:

- **activation sparsity** ``A_s = 1/T sum_i 1/n sum_j 1(b_ij < tau)``: the fraction of (example, neuron)
  activations below a threshold tau, over the T training examples and the n neurons of a layer
  (:func:`activation_sparsity`; :class:`ActivationRecorder` collects a model's ReLU outputs, whatever the
  model, without hooks or edits to it);
- **absolute weight entropy** ``H_abs(W) = -sum_ij |w_ij| log |w_ij|`` (natural log, 0 log 0 = 0): low when
  the weights are few large ones among many near-zero ones (:func:`absolute_weight_entropy`);
- **approximate local circuit complexity** ``Lambda_LC = sum_k KL(softmax L_W(x_k) || softmax L_W'(x_k))``,
  summed over the training examples x_k, where W' is W with 10% of the weights set to zero: how much the
  output distribution depends on any small part of the weights (:func:`local_circuit_complexity`; the
  zeroed weights are drawn by :func:`ablation_masks` from an explicit generator, so it is deterministic);
- the **weight norm** ``sqrt(sum_l ||W_l||_F^2)`` (:func:`weight_norm`), the measure the paper argues against.

Where the paper leaves a choice open, this module fixes it and says so:

- tau defaults to 0.1 (:data:`SPARSITY_THRESHOLD`; the paper calls it "a chosen threshold"). Several layers
  are pooled: the fraction of all their (example, neuron) entries below tau, every layer over the same
  examples (with one layer, exactly ``A_s``);
- "the weights" (for the entropy, the norm and the ablation) are what the caller passes; :func:`weights_of`
  gives a module's parameters of two or more dimensions (weight matrices and embeddings, not biases or
  norms' gains), the choice the grokking harness makes;
- each weight of the ablated tensors is zeroed independently with probability 0.1 (:data:`ABLATED_FRACTION`),
  so about, not exactly, 10% are zeroed; the KL divergence is computed in float64 from log-softmaxes.

Every function reads the model and never changes it (the ablation uses ``torch.func.functional_call`` with
masked copies of the parameters), and none records gradients.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch.func import functional_call
from torch.overrides import TorchFunctionMode

#: tau of activation sparsity: an activation below it counts as inactive.
SPARSITY_THRESHOLD = 0.1
#: The probability that local circuit complexity zeroes each weight (the paper's "10% of the weights").
ABLATED_FRACTION = 0.1

#: The functions whose outputs :class:`ActivationRecorder` records by default: ReLU in all its spellings
#: (``nn.ReLU`` calls ``F.relu``, which a function mode sees once; the in-place forms too).
RELU_FUNCTIONS: frozenset[Callable[..., Any]] = frozenset(
    {
        torch.relu,
        torch.relu_,
        torch.nn.functional.relu,
        torch.nn.functional.relu_,
        torch.Tensor.relu,
        torch.Tensor.relu_,
    }
)


class ActivationRecorder(TorchFunctionMode):
    """Records the output of every call to `functions` (ReLU by default) made while it is active.

    ``with ActivationRecorder() as rec: logits = model(x)`` leaves the model's ReLU outputs, in call order,
    in ``rec.activations`` (detached). A function mode sees every call however the model spells it, so the
    model needs no hooks or changes; calls inside ``torch.func.vmap`` see the per-run tensors, which is why
    the grokking harness measures stacked runs one by one (see :func:`progress_measures`).
    """

    def __init__(self, functions: Collection[Callable[..., Any]] = RELU_FUNCTIONS) -> None:
        super().__init__()
        self.functions = functions
        self.activations: list[torch.Tensor] = []

    def __torch_function__(
        self,
        func: Callable[..., Any],
        types: Collection[type],
        args: Sequence[Any] = (),
        kwargs: Mapping[str, Any] | None = None,
    ) -> Any:
        out = func(*args, **(kwargs or {}))
        if func in self.functions and isinstance(out, torch.Tensor):
            self.activations.append(out.detach())
        return out


@torch.no_grad()
def activation_sparsity(activations: Sequence[torch.Tensor], threshold: float = SPARSITY_THRESHOLD) -> float:
    """Golechha's ``A_s``: the fraction of entries of `activations` below `threshold`.

    Each tensor is one layer's activations, (examples, ..., neurons), every layer over the same examples; the
    layers are pooled (the fraction of all their entries), which with one layer is the paper's mean over
    examples of the fraction of inactive neurons. An activation equal to the threshold is active (``b < tau``).
    """
    if not activations:
        raise ValueError("activation_sparsity needs at least one layer's activations")
    below = sum(int((a < threshold).sum().item()) for a in activations)
    return below / sum(a.numel() for a in activations)


@torch.no_grad()
def absolute_weight_entropy(weights: Iterable[torch.Tensor]) -> float:
    """Golechha's ``H_abs(W) = -sum |w| log |w|`` over every entry of `weights` (natural log, 0 log 0 = 0).

    Summed in float64. It is not a normalised entropy: entries above 1 in magnitude contribute negatively,
    and it grows with the number of weights, so it compares a model with itself over training.
    """
    total = 0.0
    for w in weights:
        a = w.detach().abs().double()
        total -= float(torch.special.xlogy(a, a).sum().item())
    return total


@torch.no_grad()
def weight_norm(weights: Iterable[torch.Tensor]) -> float:
    """The L2 norm of all of `weights` together, ``sqrt(sum_l ||W_l||_F^2)``, summed in float64."""
    return float(sum(float(w.detach().double().square().sum().item()) for w in weights)) ** 0.5


def weights_of(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    """`module`'s parameters of two or more dimensions (weight matrices, embeddings), by name: "the weights"
    of the entropy, the norm and the ablation, as opposed to biases and normalisation gains."""
    return {name: p for name, p in module.named_parameters() if p.ndim >= 2}


def ablation_masks(
    weights: Mapping[str, torch.Tensor], generator: torch.Generator, fraction: float = ABLATED_FRACTION
) -> dict[str, torch.Tensor]:
    """Keep-masks (1 keep, 0 zero) for `weights`: each entry zeroed independently with probability `fraction`.

    Drawn on the CPU from `generator`, in the sorted order of the names (so the masks depend on the generator's
    state and the shapes only, never on a dict's order or the device), then moved to each weight's device.
    """
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"fraction {fraction} is not in [0, 1]")
    masks = {}
    for name in sorted(weights):
        w = weights[name]
        keep = torch.rand(w.shape, generator=generator, dtype=torch.float64) >= fraction
        masks[name] = keep.to(device=w.device, dtype=w.dtype)
    return masks


def summed_kl(reference_logits: torch.Tensor, perturbed_logits: torch.Tensor) -> float:
    """``sum_k KL(softmax(reference_k) || softmax(perturbed_k))`` over the examples (rows) of (N, C) logits,
    in float64."""
    log_p = torch.log_softmax(reference_logits.detach().double(), dim=-1)
    log_q = torch.log_softmax(perturbed_logits.detach().double(), dim=-1)
    return float((log_p.exp() * (log_p - log_q)).sum().item())


@torch.no_grad()
def local_circuit_complexity(
    module: torch.nn.Module,
    inputs: torch.Tensor,
    masks: Mapping[str, torch.Tensor],
    *,
    params: Mapping[str, torch.Tensor] | None = None,
    reference_logits: torch.Tensor | None = None,
) -> float:
    """Golechha's approximate local circuit complexity ``Lambda_LC`` of `module` on `inputs`.

    The summed KL divergence, over the examples, from the output distribution with the weights to the one
    with the weights multiplied by `masks` (:func:`ablation_masks`: about 10% zeroed); `module(inputs)` must
    return (N, C) logits. `params` replaces the module's parameters (``functional_call``: a stacked run's
    slice, say); `reference_logits` is the unablated forward pass when the caller has it already. The module
    itself is never modified.
    """
    current: dict[str, torch.Tensor] = dict(module.named_parameters() if params is None else params.items())
    if reference_logits is None:
        reference_logits = functional_call(module, current, (inputs,))
    return summed_kl(reference_logits, functional_call(module, ablated(current, masks), (inputs,)))


@dataclass(frozen=True)
class ProgressMeasures:
    """The four measures of one model at one point of training."""

    #: The curve names, in the order :meth:`as_dict` gives them.
    NAMES: ClassVar[tuple[str, ...]] = ("activation_sparsity", "weight_entropy", "circuit_complexity", "weight_norm")

    activation_sparsity: float
    weight_entropy: float
    circuit_complexity: float
    weight_norm: float

    def as_dict(self) -> dict[str, float]:
        """By curve name (the names grokking records store them under)."""
        return {name: float(getattr(self, name)) for name in self.NAMES}


@dataclass
class SplitMeasures:
    """All four measures of one model on a split measured chunk by chunk (a split too large for one forward
    pass, or an evaluation that runs the forward passes anyway): the sparsity counts and the KL divergence are
    sums over examples, so each chunk adds its part, and :meth:`result` adds the weight-only measures."""

    threshold: float = SPARSITY_THRESHOLD
    below: int = 0
    entries: int = 0
    divergence: float = 0.0

    @torch.no_grad()
    def add(self, logits: torch.Tensor, ablated_logits: torch.Tensor, activations: Sequence[torch.Tensor]) -> None:
        """One chunk: its (N, C) logits with the weights and with the ablated weights, and the ReLU
        `activations` of the unablated pass (recorded by :class:`ActivationRecorder`)."""
        self.below += sum(int((a < self.threshold).sum().item()) for a in activations)
        self.entries += sum(a.numel() for a in activations)
        self.divergence += summed_kl(logits, ablated_logits)

    def result(self, weights: Sequence[torch.Tensor]) -> ProgressMeasures:
        """The measures, with the entropy and norm of `weights` (those the masks ablate, for consistency)."""
        if not self.entries:
            raise ValueError("no activations were recorded: the model has no ReLU, or no chunk was added")
        flat = [torch.cat([w.detach().reshape(-1) for w in weights])]  # one pass each, not one per tensor
        return ProgressMeasures(
            activation_sparsity=self.below / self.entries,
            weight_entropy=absolute_weight_entropy(flat),
            circuit_complexity=self.divergence,
            weight_norm=weight_norm(flat),
        )


def ablated(params: Mapping[str, torch.Tensor], masks: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """`params` with each masked one multiplied by its keep-mask (new tensors: the originals are untouched)."""
    return {name: value * masks[name] if name in masks else value for name, value in params.items()}


@torch.no_grad()
def progress_measures(
    module: torch.nn.Module,
    inputs: torch.Tensor,
    masks: Mapping[str, torch.Tensor],
    *,
    params: Mapping[str, torch.Tensor] | None = None,
    threshold: float = SPARSITY_THRESHOLD,
) -> ProgressMeasures:
    """All four measures of `module` (or of `params` run through it) on `inputs`, in two forward passes.

    The unablated pass records the ReLU activations (sparsity) and gives the reference logits of the circuit
    complexity; the second is the ablated pass. The weights are those `masks` names (:func:`weights_of`'s
    selection when the masks came from it). With stacked runs, call it once per run with that run's slice of
    the parameters: each run's numbers are then computed exactly as they would be for the run alone.
    """
    current: dict[str, torch.Tensor] = dict(module.named_parameters() if params is None else params.items())
    with ActivationRecorder() as recorder:
        logits = functional_call(module, current, (inputs,))
    sums = SplitMeasures(threshold)
    sums.add(logits, functional_call(module, ablated(current, masks), (inputs,)), recorder.activations)
    return sums.result([current[name] for name in sorted(masks)])
