"""One complete, minimal method per family: what ``phenomena-bench docs FAMILY`` prints as the example.

Each module is a whole submission's code (imports, hyperparameters, the one required hook) and nothing else;
the tests install every one as a package of its own and run it on the smoke tier, so an example that no
longer fits its family's protocol fails the suite instead of misleading a submitter.
"""

from __future__ import annotations

from importlib.resources import files


def example_source(family: str) -> str | None:
    """The example module of `family` as text, or None when the family ships no example."""
    path = files(__name__) / f"{family}.py"
    return path.read_text(encoding="utf-8") if path.is_file() else None


def example_class(family: str) -> str:
    """The name of the method class in `family`'s example (the entry point's attribute)."""
    return {
        "grokking": "MinimalSGD",
        "pruning": "MagnitudeAtInit",
        "mil_dropout": "FeatureDropout",
        "hessian": "PowerIteration",
        "generalization": "PowerSharpness",
    }[family]
