"""A package's public names, imported from their submodules on first use (PEP 562).

The registry parses task specs by importing only each family's ``spec.py``; importing the family *package*
for that must not import torch, SciPy and scikit-learn, which its other submodules need. A family's
``__init__`` therefore lists where each exported name lives and installs :func:`lazy_exports`' hook as its
module ``__getattr__``: ``from phenomena_bench.families.grokking import FAMILY`` still works, and pays for
the family module only then.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["lazy_exports"]


def lazy_exports(package: str, sources: Mapping[str, str]) -> Callable[[str], Any]:
    """A module ``__getattr__`` for `package` that imports ``package.<sources[name]>`` when `name` is first
    asked for, and keeps the value on the package so the hook runs once per name."""

    def __getattr__(name: str) -> Any:
        if name not in sources:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f"{package}.{sources[name]}"), name)
        setattr(sys.modules[package], name, value)
        return value

    return __getattr__
