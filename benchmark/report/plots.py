"""Line charts for the site, laid out here and drawn by the ``plot.svg`` template.

This module computes geometry only: axis ranges, ticks, the screen coordinates of every series, the legend.
All text (title, axis labels, method labels) is handed to the template as data, so the template engine's
autoescaping is the one place it is escaped; nothing here writes markup.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from phenomena_bench.analysis.tables import format_number

PALETTE = (
    "#0b5cad",
    "#d1242f",
    "#1a7f37",
    "#8250df",
    "#bf8700",
    "#0a7ea4",
    "#cf4f9e",
    "#57606a",
    "#e16f24",
    "#2da44e",
)
#: A series: its label (several series may share one, e.g. the seeds of a method), x values, y values.
Series = tuple[str, Sequence[float | None], Sequence[float | None]]


@dataclass(frozen=True)
class Tick:
    at: float
    text: str


@dataclass(frozen=True)
class Line:
    """One series on screen: a polyline through `points`, or a dot at `dot` when it has a single point."""

    label: str
    colour: str
    dashed: bool
    points: str
    dot: tuple[str, str] | None


@dataclass(frozen=True)
class LegendEntry:
    text: str
    colour: str
    x: float
    y: float


@dataclass(frozen=True)
class Plot:
    """Everything the template needs (it formats coordinates to 0.1 px, so the bytes are reproducible).
    `empty`: there is no finite point to draw."""

    empty: bool
    title: str
    x_label: str
    y_label: str
    width: int
    height: int
    left: int
    right: int
    top: int
    bottom: int
    x_ticks: tuple[Tick, ...]
    y_ticks: tuple[Tick, ...]
    lines: tuple[Line, ...]
    legend: tuple[LegendEntry, ...]


def nice_ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    """About `n` round tick values (1, 2, 2.5, 5 times a power of ten) covering [lo, hi]."""
    if hi <= lo:
        return [lo]
    raw = (hi - lo) / n
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    start = math.ceil(lo / step) * step
    return [round(start + i * step, 12) for i in range(int((hi - start) / step + 1e-9) + 1)]


def legend_layout(labels: Sequence[str], x0: float, width: float) -> list[tuple[str, str, float, int]]:
    """(label, shortened text, x, row) for each legend entry, wrapping onto new rows (no entry is dropped)."""
    placed, x, row = [], x0, 0
    for label in labels:
        text = label if len(label) <= 28 else label[:27] + "…"
        span = 24 + 6.8 * len(text)
        if x > x0 and x + span > x0 + width:
            x, row = x0, row + 1
        placed.append((label, text, x, row))
        x += span
    return placed


def _tick_text(value: float, log: bool) -> str:
    if log:
        exp = round(math.log10(value))
        return format_number(value) if -2 <= exp <= 4 else f"1e{exp}"
    return format_number(value)


def _finite(v: float | None) -> bool:
    return v is not None and math.isfinite(v)


def _drawable(xs: Sequence[float | None], ys: Sequence[float | None]) -> list[tuple[float, float]]:
    """The points of a series where both coordinates are finite numbers."""
    return [
        (x, y) for x, y in zip(xs, ys, strict=False) if x is not None and y is not None and _finite(x) and _finite(y)
    ]


def line_plot(
    series: Sequence[Series],
    *,
    x_label: str,
    y_label: str,
    title: str,
    log_x: bool | None = None,
    log_y: bool | None = None,
    order: Sequence[str] = (),
) -> Plot:
    """A line chart: one colour per label (several series may share a label, e.g. seeds).

    The y range is the 0.5–99.5 percentile of all points (a diverging loss must not flatten every other curve;
    clipped points are drawn at the edge). An axis is logarithmic by default when its values are all positive
    and span more than two (x) or three (y) decades — HVP budgets, relative errors. The legend wraps onto as
    many rows as it needs, and the picture grows to hold them. `order` fixes each label's colour by its place
    in it (the table's order), so a method has the same colour in every plot of a page.
    """
    pts = [p for _, xs, ys in series for p in _drawable(xs, ys)]
    w, left, right, top = 480, 56, 12, 12
    if not pts:
        return Plot(True, title, x_label, y_label, w, 0, left, right, top, 0, (), (), (), ())
    xs_all = np.array([p[0] for p in pts], dtype=float)
    ys_all = np.array([p[1] for p in pts], dtype=float)
    if log_x is None:
        log_x = bool(xs_all.min() > 0 and xs_all.max() / xs_all.min() > 100)
    if log_y is None:
        log_y = bool(ys_all.min() > 0 and ys_all.max() / ys_all.min() > 1000)
    if log_x:
        xs_all = xs_all[xs_all > 0]
    if log_y:
        ys_all = ys_all[ys_all > 0]

    def fx(v: float) -> float:
        return math.log10(v) if log_x else v

    def fy(v: float) -> float:
        return math.log10(v) if log_y else v

    labels = list(dict.fromkeys(label for label, _, _ in series))
    slots = {label: i for i, label in enumerate(dict.fromkeys([*order, *labels]))}
    colour = {label: PALETTE[slots[label] % len(PALETTE)] for label in labels}
    dashed = {label: slots[label] >= len(PALETTE) for label in labels}
    legend = legend_layout(labels, left, w - left - right)
    legend_rows = (legend[-1][3] + 1) if legend else 0
    bottom = 44 + 14 * legend_rows
    h = 242 + bottom
    x_lo, x_hi = fx(float(xs_all.min())), fx(float(xs_all.max()))
    y_vals = np.array([fy(v) for v in ys_all])
    y_lo, y_hi = float(np.percentile(y_vals, 0.5)), float(np.percentile(y_vals, 99.5))
    if x_hi == x_lo:
        x_lo, x_hi = x_lo - 0.5, x_hi + 0.5
    if y_hi == y_lo:
        y_lo, y_hi = y_lo - 0.5, y_hi + 0.5
    pad = (y_hi - y_lo) * 0.04
    y_lo, y_hi = y_lo - pad, y_hi + pad

    def sx(v: float) -> float:
        return left + (fx(v) - x_lo) / (x_hi - x_lo) * (w - left - right)

    def sy(v: float) -> float:
        t = min(max(fy(v), y_lo), y_hi)
        return top + (y_hi - t) / (y_hi - y_lo) * (h - top - bottom)

    def ticks(lo: float, hi: float, log: bool) -> list[float]:
        if log:
            decades = list(range(math.ceil(lo), math.floor(hi) + 1))
            step = max(1, math.ceil(len(decades) / 6))
            return [10.0**e for e in decades[::step]] or [10.0**lo]
        return nice_ticks(lo, hi)

    lines = []
    for label, xs, ys in series:
        coords = [
            (f"{sx(x):.1f}", f"{sy(y):.1f}")
            for x, y in _drawable(xs, ys)
            if (not log_x or x > 0) and (not log_y or y > 0)
        ]
        if coords:
            points = " ".join(f"{cx},{cy}" for cx, cy in coords)
            lines.append(Line(label, colour[label], dashed[label], points, coords[0] if len(coords) == 1 else None))
    return Plot(
        empty=False,
        title=title,
        x_label=x_label + (" (log)" if log_x else ""),
        y_label=y_label + (" (log)" if log_y else ""),
        width=w,
        height=h,
        left=left,
        right=right,
        top=top,
        bottom=bottom,
        x_ticks=tuple(Tick(sx(t), _tick_text(t, log_x)) for t in ticks(x_lo, x_hi, log_x)),
        y_ticks=tuple(Tick(sy(t), _tick_text(t, log_y)) for t in ticks(y_lo, y_hi, log_y)),
        lines=tuple(lines),
        legend=tuple(LegendEntry(text, colour[label], x, h - bottom + 46 + 14 * row) for label, text, x, row in legend),
    )
