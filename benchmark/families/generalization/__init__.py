"""The generalization family: predict how well a trained network generalises, from it and its training data.

A submitter needs only the names re-exported here from :mod:`phenomena_bench.families.generalization.api`.

Every name is imported on first use (PEP 562): the registry reads ``spec.py`` alone to parse task specs, and
importing this package must not cost torch until a name of it is used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from phenomena_bench.core.lazy import lazy_exports

if TYPE_CHECKING:
    from phenomena_bench.families.generalization.api import (
        BudgetExceededError,
        GeneralizationMethod,
        HVPOracle,
        Measurement,
        MeasureOracle,
        NetworkInfo,
        TrainedNetwork,
        TrainingData,
    )
    from phenomena_bench.families.generalization.family import FAMILY

#: Each exported name → the submodule that defines it.
_SOURCES = {
    "BudgetExceededError": "api",
    "GeneralizationMethod": "api",
    "HVPOracle": "api",
    "MeasureOracle": "api",
    "Measurement": "api",
    "NetworkInfo": "api",
    "TrainedNetwork": "api",
    "TrainingData": "api",
    "FAMILY": "family",
}

__all__ = [
    "FAMILY",
    "BudgetExceededError",
    "GeneralizationMethod",
    "HVPOracle",
    "MeasureOracle",
    "Measurement",
    "NetworkInfo",
    "TrainedNetwork",
    "TrainingData",
]

__getattr__ = lazy_exports(__name__, _SOURCES)
