"""The pruning family."""

from phenomena_bench.families.pruning.family import FAMILY

__all__ = ["FAMILY"]
