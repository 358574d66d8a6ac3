"""The mil_dropout family: does a submitted regulariser make a gated-attention MIL classifier robust?

A submitter needs only the names re-exported here from :mod:`phenomena_bench.families.mil_dropout.api`.
"""

from phenomena_bench.families.mil_dropout.api import (
    AttentionRegulariser,
    DropoutContext,
    EpochScheduled,
    InstanceRegulariser,
    MILDropoutMethod,
)
from phenomena_bench.families.mil_dropout.family import FAMILY

__all__ = [
    "FAMILY",
    "AttentionRegulariser",
    "DropoutContext",
    "EpochScheduled",
    "InstanceRegulariser",
    "MILDropoutMethod",
]
