"""What a hessian-family submitter reads: the method base, what an estimator is given and what it returns.

A method subclasses :class:`HessianMethod`, parameterised by its hyperparameter model, and implements
:meth:`HessianMethod.estimate`::

    class MyLanczos(HessianMethod[MyLanczosHP]):
        name = "my-lanczos"
        targets = frozenset({"lambda_max", "topk"})

        def estimate(self, oracle, info, budget):
            ...                                     # self.hp is a MyLanczosHP
            return SpectrumEstimate(lambda_max=..., topk_values=...)

One run is one (task, method, seed). ``estimate`` is called ``evaluation.draws`` times (20) per budget of the
task, each time with a fresh :class:`HVPOracle` holding that budget and its own ``info.rng_seed``, after the
global Python, NumPy and torch generators have been seeded from it (the method's own stream, a one-way
function of the run seed and the draw: never the seed that fixes the checkpoint, so the exact Hessian cannot
be rebuilt from it); the median and 90th percentile of the draws' scores are reported. The Hessian is
reachable only through the oracle: the model and the data are never handed over. Asking the oracle for more
products than the budget raises :class:`BudgetExceededError`; that budget is then recorded as exceeded (its
scores left empty) even if the method catches the error. An estimate that is not a :class:`SpectrumEstimate`,
or one with a field of the wrong shape or length or holding NaN or infinity, fails the run with a one-line
reason. The harness measures the FLOPs ``estimate`` spends outside the oracle's products
(``method_flops@<budget>``). A method that sets ``batchable = True`` (see :class:`HessianMethod`) has its
draws interleaved and its products computed in blocks with the other draws' (same answers, cheaper).
"""

from __future__ import annotations

from abc import abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from phenomena_bench.core.method import HP, Method
from phenomena_bench.families.hessian.oracle import BudgetExceededError, HVPOracle

__all__ = [
    "ALL_TARGETS",
    "BudgetExceededError",
    "HVPOracle",
    "HessianMethod",
    "ProblemInfo",
    "SpectrumEstimate",
    "Target",
]

Target = Literal["lambda_max", "lambda_min", "topk", "eigenvectors", "trace", "density"]
ALL_TARGETS: frozenset[str] = frozenset({"lambda_max", "lambda_min", "topk", "eigenvectors", "trace", "density"})


@dataclass(frozen=True)
class ProblemInfo:
    """What an estimator may know about the problem besides the oracle (never the model or the data).

    ``num_params`` is P (the oracle's dimension), ``num_samples`` the training points, ``loss`` the loss's
    name (``cross_entropy`` or ``mse``), ``step`` and ``lr`` the checkpoint's GD step and step size,
    ``loss_value`` and ``grad_norm`` the loss and ‖∇L‖ at the checkpoint, ``rng_seed`` the seed of the
    method's own random stream (seed your own generators from it; it is not the seed of the checkpoint),
    ``device`` where the oracle computes.
    """

    num_params: int
    num_samples: int
    loss: str
    step: int
    lr: float
    loss_value: float
    grad_norm: float
    rng_seed: int
    device: str


@dataclass
class SpectrumEstimate:
    """An estimator's answer; every field optional. Tensors or arrays are accepted and converted.

    ``lambda_max`` / ``lambda_min``: the algebraically largest / smallest eigenvalue (``lambda_max`` falls
    back to the largest of ``topk_values``). ``topk_values``: at most P eigenvalues, any order (scored
    sorted descending). ``topk_vectors``: P × k, k <= P, columns in the order of the *sorted* values (the
    harness orthonormalises their span); given with ``topk_values``, k must equal their number. ``trace``: tr(H).
    ``density_nodes`` and ``density_weights``: a discrete
    spectral measure, given together, same length, weights non-negative and summing to 1. A field left None
    scores as the zero estimate (see :mod:`phenomena_bench.families.hessian.spectral`).
    """

    lambda_max: float | None = None
    lambda_min: float | None = None
    topk_values: Any = None
    topk_vectors: Any = None
    trace: float | None = None
    density_nodes: Any = None
    density_weights: Any = None


class HessianMethod(Method[HP]):
    """Base of spectrum estimators. ``targets`` lists what the method estimates: only those are scored
    (the others are left empty rather than scored as failures)."""

    family: ClassVar[str] = "hessian"
    targets: ClassVar[frozenset[str]] = ALL_TARGETS
    #: True when the draws of a run may interleave: the harness then runs them as lanes taking turns on one
    #: thread, each with its own oracle and its own Python, NumPy and torch global generator states, and
    #: computes the products they wait for as one block (cheaper per product). A method qualifies when its
    #: randomness comes from ``info.rng_seed`` (own generators, or the global ones the harness seeds) and
    #: ``estimate`` keeps no state outside its locals (nothing on ``self``, no module-level cache). Leave False
    #: when in doubt: the draws then run one after another.
    batchable: ClassVar[bool] = False

    @abstractmethod
    def estimate(self, oracle: HVPOracle, info: ProblemInfo, budget: int) -> SpectrumEstimate:
        """Estimate the spectrum with at most `budget` products of `oracle` (``oracle.budget == budget``)."""
