"""What a generalization-family submitter reads: a measure, what it is handed per network, what it returns.

A method is a *measure* of generalisation. It subclasses :class:`GeneralizationMethod`, parameterised by its
hyperparameter model, and implements :meth:`GeneralizationMethod.measure`::

    class MyMeasure(GeneralizationMethod[MyHP]):
        name = "my-measure"

        def measure(self, network, data, oracle, info):
            logits = network(data.x)                        # the trained network, frozen
            return Measurement(value=...)                   # larger = predicted to generalise worse

One run is one (task, measure, seed). The harness calls ``measure`` once for every network of the task's
population (30-60 digits MLPs trained with varied hyperparameters, fixed by the spec and cached), each time
with that network (:class:`TrainedNetwork`: a forward pass, its weights, its hidden activations — a copy of
its parameters, never its training run's hyperparameters), its *training* data only (:class:`TrainingData`),
a counted :class:`MeasureOracle` (``oracle.hvp``: HVPs of the training loss; ``oracle.example_gradients``:
per-example gradients; the budgets are the task's ``evaluation.hvps`` and ``evaluation.example_gradients``
per network) and a :class:`NetworkInfo`. The test digits are never handed over. Before each call the global
Python, NumPy and torch generators are seeded from ``info.rng_seed`` (the method's own stream for that
network, a one-way function of the run seed). The run seed changes only that stream and the bootstrap
resamples of the scores, not the population: a deterministic measure scores the same on every seed.

The harness then ranks the population by ``value`` against the task's target (the accuracy gap by default)
with Kendall's τ, the conditional τ per hyperparameter axis and its mean (Jiang et al.'s granulated τ), with
bootstrap intervals over networks; ``predicted_test_loss``, when given for every network, is scored by its
relative error. Asking for more than a budget raises :class:`BudgetExceededError` and records the run as
over budget even if the measure catches it. A value that is not a finite real number fails the run with a
one-line reason. FLOPs ``measure`` spends outside the oracle are measured (``method_flops``).
"""

from __future__ import annotations

from abc import abstractmethod
from dataclasses import dataclass
from typing import ClassVar

import torch

from phenomena_bench.core.method import HP, Method
from phenomena_bench.families.generalization.oracle import BudgetExceededError, HVPOracle, MeasureOracle
from phenomena_bench.models.flat_mlp import FlatMLP

__all__ = [
    "BudgetExceededError",
    "GeneralizationMethod",
    "HVPOracle",
    "MeasureOracle",
    "Measurement",
    "NetworkInfo",
    "TrainedNetwork",
    "TrainingData",
]


class TrainedNetwork:
    """One trained MLP of the population, frozen: calling it never changes it or the harness's copy.

    ``sizes`` are the layer widths (input, hidden..., output), ``activation`` is ``tanh`` or ``relu``,
    ``num_params`` is P. ``network(x)`` gives logits; :meth:`weights` the (weight, bias) pairs;
    :meth:`hidden_activations` each hidden layer's output; :attr:`theta` a copy of the flat parameters (the
    layout of :class:`~phenomena_bench.models.flat_mlp.FlatMLP`).
    """

    def __init__(self, model: FlatMLP, theta: torch.Tensor) -> None:
        self._model = model
        self._theta = theta.detach().clone()
        self.sizes = model.sizes
        self.activation = model.activation
        self.num_params = model.num_params

    @property
    def theta(self) -> torch.Tensor:
        return self._theta.clone()

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return self._model.forward(self._theta, x)

    def weights(self) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """(weight (out × in), bias (out)) per layer, copies."""
        pairs, offset = [], 0
        for (fan_out, fan_in), _ in self._model.shapes:
            weight = self._theta[offset : offset + fan_out * fan_in].view(fan_out, fan_in).clone()
            offset += fan_out * fan_in
            pairs.append((weight, self._theta[offset : offset + fan_out].clone()))
            offset += fan_out
        return pairs

    def hidden_activations(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Each hidden layer's output (after its activation) for inputs `x`, first layer first."""
        return self._layers(self.weights(), x)[:-1]

    def logits_with(self, weights: list[tuple[torch.Tensor, torch.Tensor]], x: torch.Tensor) -> torch.Tensor:
        """Logits of the same architecture with other `weights` ((weight, bias) per layer, as :meth:`weights`
        gives them): for perturbation and ablation measures. The network itself is unchanged."""
        if [tuple(w.shape) for w, _ in weights] != [w for w, _ in self._model.shapes]:
            raise ValueError("weights must have the shapes of network.weights()")
        return self._layers(weights, x)[-1]

    def _layers(self, weights: list[tuple[torch.Tensor, torch.Tensor]], x: torch.Tensor) -> list[torch.Tensor]:
        outputs, h = [], x
        with torch.no_grad():
            for index, (weight, bias) in enumerate(weights):
                h = torch.nn.functional.linear(h, weight, bias)
                if index < len(weights) - 1:
                    h = torch.tanh(h) if self.activation == "tanh" else torch.relu(h)
                outputs.append(h)
        return outputs


@dataclass(frozen=True)
class TrainingData:
    """The network's training set: standardised digit pixels ``x`` (n × 64, float64), labels ``y`` (n,)."""

    x: torch.Tensor
    y: torch.Tensor
    num_classes: int


@dataclass(frozen=True)
class NetworkInfo:
    """What a measure may know besides the network and its data.

    ``index`` is the network's position in the population (for logging only: the order carries no
    meaning), ``num_params`` P, ``num_samples`` n, ``train_loss`` and ``train_acc`` its fit of the training
    set, ``rng_seed`` the seed of the method's own stream for this network, ``device`` where to compute.
    """

    index: int
    num_params: int
    num_samples: int
    train_loss: float
    train_acc: float
    rng_seed: int
    device: str


@dataclass
class Measurement:
    """A measure's answer for one network.

    ``value``: a finite real number, larger meaning *predicted to generalise worse* (a measure believed to
    run the other way returns its negative). ``predicted_test_loss``: optional, a prediction of the test
    cross-entropy (scored by relative error when given for every network). ``category``: optional short
    label the measure assigned this network (e.g. a spectrum type), counted in the run's record.
    """

    value: float
    predicted_test_loss: float | None = None
    category: str | None = None


class GeneralizationMethod(Method[HP]):
    """Base of generalisation measures."""

    family: ClassVar[str] = "generalization"

    @abstractmethod
    def measure(
        self, network: TrainedNetwork, data: TrainingData, oracle: MeasureOracle, info: NetworkInfo
    ) -> Measurement:
        """The measure of one trained `network` from its training `data` and `oracle` (within its budgets)."""
