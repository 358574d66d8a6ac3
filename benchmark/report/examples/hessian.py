"""A minimal Hessian-spectrum estimator: power iteration for the top eigenvalue, within the HVP budget."""

from __future__ import annotations

from typing import ClassVar

import torch

from phenomena_bench.core.method import NoHyperparameters
from phenomena_bench.families.hessian.api import HessianMethod, HVPOracle, ProblemInfo, SpectrumEstimate


class PowerIteration(HessianMethod[NoHyperparameters]):
    name = "example-power-iteration"
    version = "1"
    description = "Power iteration on H: |lambda| largest in magnitude (lambda_max when H is dominated by it)."
    # Only these targets are scored for this method; the others are left empty, not scored as failures.
    targets: ClassVar[frozenset[str]] = frozenset({"lambda_max"})

    def estimate(self, oracle: HVPOracle, info: ProblemInfo, budget: int) -> SpectrumEstimate:
        generator = torch.Generator().manual_seed(info.rng_seed)  # the method's own random stream
        v = torch.randn(oracle.dim, generator=generator, dtype=torch.float64).to(oracle.device)
        v /= v.norm()
        value = 0.0
        for _ in range(budget):  # one product per iteration: never more than the budget
            hv = oracle(v)
            value = float(v @ hv)
            v = hv / hv.norm().clamp_min(1e-300)
        return SpectrumEstimate(lambda_max=value)
