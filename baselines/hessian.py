"""Reference spectrum estimators for the hessian family.

Each baseline spends at most the budget it is given and never catches the oracle's budget error (an
overrun would be the baseline's bug and must show). Random vectors come from a CPU generator seeded by
``info.rng_seed`` (the method's own stream) and are then moved to the oracle's device, so CPU and CUDA runs draw the
same probes and CPU
runs are bit-for-bit repeatable.

* ``hessian-power`` — PyHessian's ``eigenvalues()`` defaults (Gaussian start, up to 100 iterations, stop
  when the Rayleigh quotient changes by < 1e-3 relative). Converges to the largest-*magnitude* eigenvalue.
* ``hessian-power-deflated`` — PyHessian's ``top_n`` variant: power iteration for each of the top k
  eigenpairs, orthogonalised against those already found, the budget shared between them.
* ``hessian-lanczos`` — Lanczos with full re-orthogonalisation, as many steps as the budget; top-k Ritz
  pairs, λ_min, and (from the same run) the Gauss-quadrature density and a one-probe trace. The reference.
* ``hessian-eigsh`` — SciPy's ARPACK ``eigsh(which="LA", tol=0)`` through a counted ``LinearOperator``,
  with ``maxiter`` chosen so it stops within the budget (returning what converged).
* ``hessian-hutchinson`` / ``hessian-hutchpp`` — Girard–Hutchinson (Rademacher) and Hutch++ (Meyer et al.
  2021) trace estimates.
* ``hessian-slq`` — stochastic Lanczos quadrature (Ghorbani et al. 2019; PyHessian's ``density()``) with
  several start vectors; density and trace.
* ``hessian-floor`` — zero HVPs: λ_max from the gradient norm (the curvature ‖g‖²/(2L) of a quadratic
  with that loss and gradient), trace 0 and a point mass at 0 — the "knows nothing" score of 1.

curvlinops (which ships Hutchinson/Hutch++ on PyTorch operators) was not used: installing it pulls a
different PyTorch build with CUDA wheels, so the two trace estimators are written out here (a few lines each).
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field
from scipy.linalg import eigh_tridiagonal
from scipy.sparse.linalg import ArpackNoConvergence, LinearOperator, eigsh

from phenomena_bench.core.method import NoHyperparameters
from phenomena_bench.families.hessian.api import HessianMethod, HVPOracle, ProblemInfo, SpectrumEstimate


class _HP(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _generator(info: ProblemInfo) -> torch.Generator:
    return torch.Generator().manual_seed(info.rng_seed)


def _gaussian(oracle: HVPOracle, generator: torch.Generator, columns: int | None = None) -> torch.Tensor:
    shape = (oracle.dim,) if columns is None else (oracle.dim, columns)
    return torch.randn(shape, generator=generator, dtype=torch.float64).to(oracle.device)


def _rademacher(oracle: HVPOracle, generator: torch.Generator, columns: int) -> torch.Tensor:
    signs = torch.randint(0, 2, (oracle.dim, columns), generator=generator).to(torch.float64) * 2 - 1
    return signs.to(oracle.device)


def _orthogonalise(w: torch.Tensor, basis: torch.Tensor) -> torch.Tensor:
    """Classical Gram–Schmidt, twice ("twice is enough"), against the orthonormal columns of `basis`."""
    if basis.shape[1] == 0:
        return w
    for _ in range(2):
        w = w - basis @ (basis.T @ w)
    return w


# ------------------------------------------------------------------------------------------------ power


class PowerHP(_HP):
    """Hyperparameters of :class:`PowerIteration`."""

    max_iter: int = Field(default=100, ge=1)
    tol: float = Field(default=1e-3, ge=0)


class PowerIteration(HessianMethod[PowerHP]):
    name: ClassVar[str] = "hessian-power"
    version: ClassVar[str] = "1"
    description: ClassVar[str] = "Power iteration with PyHessian's defaults (max 100 iterations, tol 1e-3)."
    targets: ClassVar[frozenset[str]] = frozenset({"lambda_max", "topk", "eigenvectors"})

    def estimate(self, oracle: HVPOracle, info: ProblemInfo, budget: int) -> SpectrumEstimate:
        values, vectors = _deflated_power(oracle, _generator(info), 1, self.hp.max_iter, self.hp.tol, budget)
        return SpectrumEstimate(lambda_max=values[0] if values else None, topk_values=values, topk_vectors=vectors)


class DeflatedPowerHP(_HP):
    """Hyperparameters of :class:`DeflatedPowerIteration`."""

    k: int = Field(default=10, ge=1)
    max_iter: int = Field(default=100, ge=1)
    tol: float = Field(default=1e-3, ge=0)


class DeflatedPowerIteration(HessianMethod[DeflatedPowerHP]):
    name: ClassVar[str] = "hessian-power-deflated"
    version: ClassVar[str] = "1"
    description: ClassVar[str] = "PyHessian-style power iteration for the top k, deflated by orthogonalisation."
    targets: ClassVar[frozenset[str]] = frozenset({"lambda_max", "topk", "eigenvectors"})

    def estimate(self, oracle: HVPOracle, info: ProblemInfo, budget: int) -> SpectrumEstimate:
        values, vectors = _deflated_power(oracle, _generator(info), self.hp.k, self.hp.max_iter, self.hp.tol, budget)
        return SpectrumEstimate(lambda_max=max(values) if values else None, topk_values=values, topk_vectors=vectors)


def _deflated_power(
    oracle: HVPOracle, generator: torch.Generator, k: int, max_iter: int, tol: float, budget: int
) -> tuple[list[float], torch.Tensor]:
    """PyHessian's loop, budget-aware: eigenpair i may use min(max_iter, remaining // (pairs left)) HVPs."""
    k = min(k, budget, oracle.dim)
    found = torch.zeros(oracle.dim, 0, dtype=torch.float64, device=oracle.device)
    values: list[float] = []
    spent = 0
    for index in range(k):
        allowed = min(max_iter, (budget - spent) // (k - index))
        v = _orthogonalise(_gaussian(oracle, generator), found)
        v = v / torch.linalg.vector_norm(v)
        eigenvalue: float | None = None
        for _ in range(allowed):
            hv = _orthogonalise(oracle(v), found)
            spent += 1
            current = float(hv @ v)
            v = hv / torch.linalg.vector_norm(hv)
            if eigenvalue is not None and abs(eigenvalue - current) / (abs(eigenvalue) + 1e-6) < tol:
                eigenvalue = current
                break
            eigenvalue = current
        if eigenvalue is None:
            break
        values.append(eigenvalue)
        found = torch.cat([found, v.unsqueeze(1)], dim=1)
    return values, found


# ---------------------------------------------------------------------------------------------- Lanczos


def lanczos(oracle: HVPOracle, start: torch.Tensor, steps: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """`steps` Lanczos iterations from `start` with full re-orthogonalisation.

    Returns (alpha, beta, Q): the tridiagonal T (diagonal alpha, off-diagonal beta) and the orthonormal basis
    Q (P × m). Stops early, exactly, if the Krylov space becomes invariant.
    """
    dim = oracle.dim
    steps = min(steps, dim)
    basis = torch.zeros(dim, steps, dtype=torch.float64, device=oracle.device)
    alpha = torch.zeros(steps, dtype=torch.float64)
    beta = torch.zeros(max(steps - 1, 0), dtype=torch.float64)
    q = start / torch.linalg.vector_norm(start)
    scale = 0.0
    m = 0
    for j in range(steps):
        basis[:, j] = q
        w = oracle(q)
        alpha[j] = float(w @ q)
        w = _orthogonalise(w, basis[:, : j + 1])
        m = j + 1
        if j == steps - 1:
            break
        norm = float(torch.linalg.vector_norm(w))
        scale = max(scale, abs(float(alpha[j])), norm)
        if norm <= 1e-12 * scale:
            break
        beta[j] = norm
        q = w / norm
    return alpha[:m], beta[: max(m - 1, 0)], basis[:, :m]


def ritz(alpha: torch.Tensor, beta: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Eigenvalues (ascending) and eigenvectors of the Lanczos tridiagonal matrix."""
    if alpha.numel() == 1:
        return alpha.numpy().copy(), np.ones((1, 1))
    return eigh_tridiagonal(alpha.numpy(), beta.numpy())


class LanczosHP(_HP):
    """Hyperparameters of :class:`Lanczos`."""

    k: int = Field(default=10, ge=1)


class Lanczos(HessianMethod[LanczosHP]):
    name: ClassVar[str] = "hessian-lanczos"
    version: ClassVar[str] = "1"
    description: ClassVar[str] = "Lanczos with full re-orthogonalisation: top-k Ritz pairs, density, trace."

    def estimate(self, oracle: HVPOracle, info: ProblemInfo, budget: int) -> SpectrumEstimate:
        start = _rademacher(oracle, _generator(info), 1)[:, 0]
        alpha, beta, basis = lanczos(oracle, start, budget)
        nodes, vectors = ritz(alpha, beta)
        top = np.argsort(-nodes, kind="stable")[: self.hp.k]
        ritz_vectors = basis @ torch.from_numpy(vectors[:, top].copy()).to(basis.device)
        weights = vectors[0] ** 2
        return SpectrumEstimate(
            lambda_max=float(nodes[-1]),
            lambda_min=float(nodes[0]),
            topk_values=nodes[top],
            topk_vectors=ritz_vectors,
            trace=info.num_params * float(alpha[0]),
            density_nodes=nodes,
            density_weights=weights / weights.sum(),
        )


class SLQHP(_HP):
    """Hyperparameters of :class:`SLQ`."""

    num_vectors: int = Field(default=3, ge=1)


class SLQ(HessianMethod[SLQHP]):
    name: ClassVar[str] = "hessian-slq"
    version: ClassVar[str] = "1"
    description: ClassVar[str] = "Stochastic Lanczos quadrature over several Rademacher start vectors."
    targets: ClassVar[frozenset[str]] = frozenset({"density", "trace"})

    def estimate(self, oracle: HVPOracle, info: ProblemInfo, budget: int) -> SpectrumEstimate:
        runs = min(self.hp.num_vectors, budget)
        starts = _rademacher(oracle, _generator(info), runs)
        nodes, weights, traces = [], [], []
        for index in range(runs):
            steps = budget // runs + (1 if index < budget % runs else 0)
            alpha, beta, _ = lanczos(oracle, starts[:, index], steps)
            theta, vectors = ritz(alpha, beta)
            nodes.append(theta)
            weights.append(vectors[0] ** 2 / runs)
            traces.append(info.num_params * float(alpha[0]))
        all_weights = np.concatenate(weights)
        return SpectrumEstimate(
            trace=float(np.mean(traces)),
            density_nodes=np.concatenate(nodes),
            density_weights=all_weights / all_weights.sum(),
        )


# ---------------------------------------------------------------------------------------------- ARPACK


class _OutOfBudget(Exception):
    pass


class EigshHP(_HP):
    """Hyperparameters of :class:`Eigsh`."""

    k: int = Field(default=10, ge=1)
    tol: float = Field(default=0.0, ge=0)


class Eigsh(HessianMethod[EigshHP]):
    name: ClassVar[str] = "hessian-eigsh"
    version: ClassVar[str] = "1"
    description: ClassVar[str] = "SciPy ARPACK eigsh (which='LA', tol=0) on a counted LinearOperator."
    targets: ClassVar[frozenset[str]] = frozenset({"lambda_max", "topk", "eigenvectors"})

    def estimate(self, oracle: HVPOracle, info: ProblemInfo, budget: int) -> SpectrumEstimate:
        dim = oracle.dim
        ncv = min(dim - 1, budget, max(2 * self.hp.k + 1, 20))
        k = min(self.hp.k, max(1, ncv // 2))
        if ncv <= k:
            return SpectrumEstimate()
        # An implicit restart costs ncv - k products after the first ncv; stop within the budget.
        maxiter = max(1, (budget - ncv) // (ncv - k) + 1)

        def matvec(x: np.ndarray) -> np.ndarray:
            if oracle.remaining < 1:
                raise _OutOfBudget
            return oracle(np.asarray(x, dtype=np.float64).reshape(-1))

        operator = LinearOperator((dim, dim), matvec=matvec, dtype=np.float64)
        v0 = torch.randn(dim, generator=_generator(info), dtype=torch.float64).numpy()
        try:
            values, vectors = eigsh(operator, k=k, which="LA", tol=self.hp.tol, ncv=ncv, maxiter=maxiter, v0=v0)
        except ArpackNoConvergence as err:
            values, vectors = err.eigenvalues, err.eigenvectors
        except _OutOfBudget:
            return SpectrumEstimate()
        if len(values) == 0:
            return SpectrumEstimate()
        order = np.argsort(-values)
        return SpectrumEstimate(
            lambda_max=float(values[order[0]]), topk_values=values[order], topk_vectors=vectors[:, order]
        )


# ------------------------------------------------------------------------------------------------ trace


class HutchinsonHP(_HP):
    """Hyperparameters of :class:`Hutchinson`."""

    block: int = Field(default=10, ge=1, description="Probes per oracle call (speed only).")


class Hutchinson(HessianMethod[HutchinsonHP]):
    name: ClassVar[str] = "hessian-hutchinson"
    version: ClassVar[str] = "1"
    description: ClassVar[str] = "Girard–Hutchinson trace estimate with Rademacher probes, whole budget."
    targets: ClassVar[frozenset[str]] = frozenset({"trace"})

    def estimate(self, oracle: HVPOracle, info: ProblemInfo, budget: int) -> SpectrumEstimate:
        generator = _generator(info)
        total, done = 0.0, 0
        while done < budget:
            size = min(self.hp.block, budget - done)
            probes = _rademacher(oracle, generator, size)
            total += float((probes * oracle(probes)).sum())
            done += size
        return SpectrumEstimate(trace=total / budget)


class HutchPlusPlus(HessianMethod[NoHyperparameters]):
    name: ClassVar[str] = "hessian-hutchpp"
    version: ClassVar[str] = "1"
    description: ClassVar[str] = "Hutch++ (Meyer et al. 2021): exact trace on a sketched range + Hutchinson rest."
    targets: ClassVar[frozenset[str]] = frozenset({"trace"})

    def estimate(self, oracle: HVPOracle, info: ProblemInfo, budget: int) -> SpectrumEstimate:
        generator = _generator(info)
        sketch = budget // 3
        if sketch == 0:
            probes = _rademacher(oracle, generator, budget)
            return SpectrumEstimate(trace=float((probes * oracle(probes)).sum()) / budget)
        rest = budget - 2 * sketch
        q, _ = torch.linalg.qr(oracle(_rademacher(oracle, generator, sketch)))
        low_rank = float(torch.trace(q.T @ oracle(q)))
        probes = _rademacher(oracle, generator, rest)
        probes = probes - q @ (q.T @ probes)
        return SpectrumEstimate(trace=low_rank + float((probes * oracle(probes)).sum()) / rest)


# ------------------------------------------------------------------------------------------------ floor


class ZeroHVPFloor(HessianMethod[NoHyperparameters]):
    name: ClassVar[str] = "hessian-floor"
    version: ClassVar[str] = "1"
    description: ClassVar[str] = "No HVPs: λ_max = ‖g‖²/(2L), trace 0, density a point mass at 0."
    targets: ClassVar[frozenset[str]] = frozenset({"lambda_max", "trace", "density"})

    def estimate(self, oracle: HVPOracle, info: ProblemInfo, budget: int) -> SpectrumEstimate:
        curvature = info.grad_norm**2 / (2 * info.loss_value) if info.loss_value > 0 else 0.0
        return SpectrumEstimate(lambda_max=curvature, trace=0.0, density_nodes=[0.0], density_weights=[1.0])
