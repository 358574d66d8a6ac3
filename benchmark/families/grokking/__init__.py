"""The grokking family."""

from phenomena_bench.families.grokking.family import FAMILY

__all__ = ["FAMILY"]
