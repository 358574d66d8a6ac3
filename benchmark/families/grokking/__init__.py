"""The grokking family (time-to-grok on modular arithmetic). A method's contract is :mod:`.api`.

Every name is imported on first use (PEP 562): the registry reads ``spec.py`` alone to parse task
specs, and importing this package must not cost torch until a name of it is used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from phenomena_bench.core.lazy import lazy_exports

if TYPE_CHECKING:
    from phenomena_bench.families.grokking.api import Configured, GrokkingMethod, OneLayerTransformer, TrainingInfo
    from phenomena_bench.families.grokking.family import FAMILY

#: Each exported name → the submodule that defines it.
_SOURCES = {
    "Configured": "api",
    "GrokkingMethod": "api",
    "OneLayerTransformer": "api",
    "TrainingInfo": "api",
    "FAMILY": "family",
}

__all__ = ["FAMILY", "Configured", "GrokkingMethod", "OneLayerTransformer", "TrainingInfo"]

__getattr__ = lazy_exports(__name__, _SOURCES)
