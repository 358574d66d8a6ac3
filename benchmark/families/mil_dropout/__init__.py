"""The mil_dropout family: does a submitted regulariser make a gated-attention MIL classifier robust?

A submitter needs only the names re-exported here from :mod:`phenomena_bench.families.mil_dropout.api`.


Every name is imported on first use (PEP 562): the registry reads ``spec.py`` alone to parse task
specs, and importing this package must not cost torch until a name of it is used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from phenomena_bench.core.lazy import lazy_exports

if TYPE_CHECKING:
    from phenomena_bench.families.mil_dropout.api import (
        AttentionRegulariser,
        DropoutContext,
        EpochScheduled,
        InstanceRegulariser,
        MILDropoutMethod,
    )
    from phenomena_bench.families.mil_dropout.family import FAMILY

#: Each exported name → the submodule that defines it.
_SOURCES = {
    "AttentionRegulariser": "api",
    "DropoutContext": "api",
    "EpochScheduled": "api",
    "InstanceRegulariser": "api",
    "MILDropoutMethod": "api",
    "FAMILY": "family",
}

__all__ = [
    "FAMILY",
    "AttentionRegulariser",
    "DropoutContext",
    "EpochScheduled",
    "InstanceRegulariser",
    "MILDropoutMethod",
]

__getattr__ = lazy_exports(__name__, _SOURCES)
