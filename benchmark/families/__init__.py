"""The phenomenon families: one module each, found by name.

A family module exposes ``FAMILY``, an instance of :class:`benchmark.families.base.Family`. Adding a family
is one line in :data:`FAMILY_MODULES` plus its module; everything else (spec union, CLI, runner, tables)
discovers it from here.
"""

from __future__ import annotations

import functools
import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from benchmark.families.base import Family
    from benchmark.spec import TaskSpec

FAMILY_MODULES: dict[str, str] = {
    "hessian": "benchmark.families.hessian",
    "grokking": "benchmark.families.grokking",
    "pruning": "benchmark.families.pruning",
    "mil_dropout": "benchmark.families.mil_dropout",
}


def family_names() -> list[str]:
    return list(FAMILY_MODULES)


@functools.cache
def get_family(name: str) -> Family:
    from benchmark.errors import BenchmarkError

    if name not in FAMILY_MODULES:
        raise BenchmarkError(f"unknown family {name!r}; known families: {', '.join(FAMILY_MODULES)}")
    return importlib.import_module(FAMILY_MODULES[name]).FAMILY


@functools.cache
def family_spec_models() -> dict[str, type[TaskSpec]]:
    return {name: get_family(name).spec_model for name in FAMILY_MODULES}
