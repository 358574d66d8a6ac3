"""The mil_dropout family."""

from phenomena_bench.families.mil_dropout.family import FAMILY

__all__ = ["FAMILY"]
