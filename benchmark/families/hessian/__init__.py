"""The hessian family: estimate a network's Hessian spectrum from a budget of Hessian-vector products.

A submitter needs only the names re-exported here from :mod:`phenomena_bench.families.hessian.api`.


Every name is imported on first use (PEP 562): the registry reads ``spec.py`` alone to parse task
specs, and importing this package must not cost torch until a name of it is used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from phenomena_bench.core.lazy import lazy_exports

if TYPE_CHECKING:
    from phenomena_bench.families.hessian.api import (
        ALL_TARGETS,
        BudgetExceededError,
        HessianMethod,
        HVPOracle,
        ProblemInfo,
        SpectrumEstimate,
        Target,
    )
    from phenomena_bench.families.hessian.family import FAMILY

#: Each exported name → the submodule that defines it.
_SOURCES = {
    "ALL_TARGETS": "api",
    "BudgetExceededError": "api",
    "HessianMethod": "api",
    "HVPOracle": "api",
    "ProblemInfo": "api",
    "SpectrumEstimate": "api",
    "Target": "api",
    "FAMILY": "family",
}

__all__ = [
    "ALL_TARGETS",
    "FAMILY",
    "BudgetExceededError",
    "HVPOracle",
    "HessianMethod",
    "ProblemInfo",
    "SpectrumEstimate",
    "Target",
]

__getattr__ = lazy_exports(__name__, _SOURCES)
