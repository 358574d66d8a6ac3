"""Exact Hessian spectra: the ground truth every spectrum estimate is scored against.

For the small networks of the hessian family (P up to ~10^4) the full spectrum is cheap and exact: build the
dense P×P Hessian column block by column block with forward-over-reverse HVPs (`torch.func.jvp` of
`torch.func.grad`, vmapped over identity blocks), symmetrise it (the two triangles differ only by rounding),
and diagonalise it in float64 with LAPACK through SciPy: every eigenvalue from `scipy.linalg.eigvalsh`
(no eigenvectors: the back-transformation of all P of them was most of the cost) and only the top eigenvectors
the scores need from `scipy.linalg.eigh(subset_by_index=...)` (at P = 3466: 9 s against 13 s for a full
`torch.linalg.eigh`, the same eigenvalues to 1e-16). The result is checked against the oracle's own,
independently computed reverse-over-reverse HVPs on random probe vectors; a mismatch is an error, never a
silently wrong answer. It is computed once per (task, seed, checkpoint) and cached by content hash, storing
every eigenvalue and the top eigenvectors (enough for every metric; the dense matrix is not kept).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import scipy.linalg
import torch

from phenomena_bench.core.cache import cache_path, computed_once, load_arrays, save_arrays
from phenomena_bench.core.hashing import content_key
from phenomena_bench.families.hessian.oracle import BlockHVP

#: Bump when the construction below changes meaning, so cached spectra are not reused.
TRUTH_CODE_VERSION = 2  # 2: SciPy eigvalsh + top-k eigh instead of a full torch eigh


class GroundTruthError(RuntimeError):
    """The dense Hessian disagrees with the HVP oracle: the ground truth cannot be trusted."""


@dataclass(frozen=True)
class HessianTruth:
    """The exact spectrum: all eigenvalues (descending), the top eigenvectors (P × K, same order)."""

    eigenvalues: np.ndarray
    top_vectors: np.ndarray
    probe_rel_err: float
    asymmetry: float

    @property
    def lambda_max(self) -> float:
        return float(self.eigenvalues[0])

    @property
    def lambda_min(self) -> float:
        return float(self.eigenvalues[-1])

    @property
    def trace(self) -> float:
        return float(self.eigenvalues.sum())

    @property
    def abs_sum(self) -> float:
        return float(np.abs(self.eigenvalues).sum())

    @property
    def negative_fraction(self) -> float:
        return float((self.eigenvalues < 0).mean())


def dense_hessian(
    loss_fn: Callable[[torch.Tensor], torch.Tensor], theta: torch.Tensor, block_size: int = 256
) -> torch.Tensor:
    """The P×P Hessian of `loss_fn` at `theta`, from vmapped forward-over-reverse HVPs on identity blocks."""
    theta = theta.detach()
    dim = theta.numel()
    grad_fn = torch.func.grad(loss_fn)

    def column(v: torch.Tensor) -> torch.Tensor:
        return torch.func.jvp(grad_fn, (theta,), (v,))[1]

    columns = torch.func.vmap(column)
    hessian = torch.empty(dim, dim, dtype=theta.dtype, device=theta.device)
    eye = torch.eye(dim, dtype=theta.dtype, device=theta.device)
    for start in range(0, dim, block_size):
        stop = min(dim, start + block_size)
        hessian[start:stop] = columns(eye[start:stop])  # rows of H = columns, H being symmetric
    return hessian


def compute_truth(
    loss_fn: Callable[[torch.Tensor], torch.Tensor],
    theta: torch.Tensor,
    hvp: BlockHVP,
    n_top: int,
    n_probes: int = 3,
    probe_tol: float = 1e-8,
    seed: int = 0,
) -> HessianTruth:
    """Dense Hessian → symmetrise → float64 spectrum; verified against `hvp` on `n_probes` Gaussian vectors."""
    hessian = dense_hessian(loss_fn, theta)
    scale = torch.linalg.matrix_norm(hessian).item()
    asymmetry = torch.linalg.matrix_norm(hessian - hessian.T).item() / max(scale, 1e-300)
    hessian = 0.5 * (hessian + hessian.T)
    generator = torch.Generator().manual_seed(seed)
    probes = torch.randn(theta.numel(), n_probes, generator=generator, dtype=theta.dtype).to(theta.device)
    with torch.no_grad():
        expected = hvp(probes)
    probe_rel_err = (torch.linalg.matrix_norm(hessian @ probes - expected) / torch.linalg.matrix_norm(expected)).item()
    if not probe_rel_err <= probe_tol or not asymmetry <= probe_tol:
        raise GroundTruthError(
            f"dense Hessian disagrees with the HVP oracle (probe relative error {probe_rel_err:.3e}, "
            f"asymmetry {asymmetry:.3e}, tolerance {probe_tol:.1e})"
        )
    eigenvalues, top = _spectrum(hessian.cpu().numpy(), n_top)
    return HessianTruth(eigenvalues, top, probe_rel_err, asymmetry)


def _spectrum(hessian: np.ndarray, n_top: int) -> tuple[np.ndarray, np.ndarray]:
    """All eigenvalues (descending) and the top `n_top` eigenvectors (P × n_top, same order) of a symmetric
    matrix, computing no other eigenvector."""
    dim = hessian.shape[0]
    eigenvalues = scipy.linalg.eigvalsh(hessian, check_finite=False)[::-1]  # ascending → descending
    n_top = min(n_top, dim)
    if n_top == 0:
        return np.ascontiguousarray(eigenvalues), np.zeros((dim, 0))
    _, vectors = scipy.linalg.eigh(hessian, subset_by_index=[dim - n_top, dim - 1], check_finite=False)
    return np.ascontiguousarray(eigenvalues), np.ascontiguousarray(vectors[:, ::-1])


def cached_truth(
    payload: dict[str, Any], cache_dir: Path | None, compute: Callable[[], HessianTruth]
) -> tuple[HessianTruth, bool]:
    """The truth stored under the hash of `payload` in `cache_dir`, or `compute()` (then stored).

    Built under a lock beside the cache entry (:func:`computed_once`): a worker that finds another one
    building the same truth waits for it and reads it rather than building it again. Returns the truth and
    whether it came from the cache (false only for the worker that built it).
    """
    key = content_key({"kind": "hessian-truth", "code_version": TRUTH_CODE_VERSION, **payload})
    if cache_dir is None:
        return compute(), False
    path = cache_path(cache_dir, "hessian-truth", key)
    built: list[bool] = []

    def build() -> HessianTruth:
        truth = compute()
        save_arrays(
            path,
            key,
            {
                "eigenvalues": truth.eigenvalues,
                "top_vectors": truth.top_vectors,
                "probe_rel_err": np.array(truth.probe_rel_err),
                "asymmetry": np.array(truth.asymmetry),
            },
        )
        built.append(True)
        return truth

    truth = computed_once(path.with_suffix(".lock"), lambda: _load_truth(path, key), build)
    return truth, not built


def _load_truth(path: Path, key: str) -> HessianTruth | None:
    arrays = load_arrays(path, key)
    if arrays is None:
        return None
    return HessianTruth(
        eigenvalues=arrays["eigenvalues"],
        top_vectors=arrays["top_vectors"],
        probe_rel_err=float(arrays["probe_rel_err"]),
        asymmetry=float(arrays["asymmetry"]),
    )
