"""Curves: step-indexed series stored with every run (held-out accuracy against steps, a spectrum, ...).

Records keep at most a few hundred points per curve, so a store stays small and a plot stays readable;
:func:`downsample` keeps the first and last point and spreads the rest evenly.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

MAX_POINTS = 200


@dataclass
class Curve:
    """A series `y` against `x` (steps by default)."""

    x: list[float]
    y: list[float]
    x_label: str = "step"

    def to_json(self) -> dict[str, Any]:
        return {"x": self.x, "y": self.y, "x_label": self.x_label}


def downsample(xs: Sequence[float], ys: Sequence[float], max_points: int = MAX_POINTS, x_label: str = "step") -> Curve:
    """At most `max_points` evenly spread points of (xs, ys), first and last included."""
    if len(xs) <= max_points:
        return Curve(list(xs), list(ys), x_label)
    idx = sorted({round(i * (len(xs) - 1) / (max_points - 1)) for i in range(max_points)})
    return Curve([xs[i] for i in idx], [ys[i] for i in idx], x_label)
