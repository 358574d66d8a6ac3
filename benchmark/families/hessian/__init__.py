"""The hessian family."""

from phenomena_bench.families.hessian.family import FAMILY

__all__ = ["FAMILY"]
