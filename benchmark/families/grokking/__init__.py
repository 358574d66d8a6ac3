"""The grokking family (time-to-grok on modular arithmetic). A method's contract is :mod:`.api`."""

from phenomena_bench.families.grokking.api import Configured, GrokkingMethod, OneLayerTransformer, TrainingInfo
from phenomena_bench.families.grokking.family import FAMILY

__all__ = ["FAMILY", "Configured", "GrokkingMethod", "OneLayerTransformer", "TrainingInfo"]
