"""The hessian family: estimate a network's Hessian spectrum from a budget of Hessian-vector products.

A submitter needs only the names re-exported here from :mod:`phenomena_bench.families.hessian.api`.
"""

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
