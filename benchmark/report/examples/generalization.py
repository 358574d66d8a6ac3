"""A minimal generalisation measure: the sharpness λ_max by power iteration, within the HVP budget."""

from __future__ import annotations

import torch

from phenomena_bench.core.method import NoHyperparameters
from phenomena_bench.families.generalization.api import (
    GeneralizationMethod,
    Measurement,
    MeasureOracle,
    NetworkInfo,
    TrainedNetwork,
    TrainingData,
)


class PowerSharpness(GeneralizationMethod[NoHyperparameters]):
    name = "example-power-sharpness"
    version = "1"
    description = "Largest Hessian eigenvalue by power iteration: sharper is predicted to generalise worse."

    def measure(
        self, network: TrainedNetwork, data: TrainingData, oracle: MeasureOracle, info: NetworkInfo
    ) -> Measurement:
        generator = torch.Generator().manual_seed(info.rng_seed)  # the method's own random stream
        v = torch.randn(oracle.hvp.dim, generator=generator, dtype=torch.float64)
        value = 0.0
        for _ in range(oracle.hvp.budget):  # one product per iteration: never more than the budget
            v = v / v.norm().clamp_min(1e-300)
            hv = oracle.hvp(v)
            value = float(v @ hv)
            v = hv
        return Measurement(value=value)
