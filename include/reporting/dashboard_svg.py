"""Small server-side SVG charts of the executive dashboard: one KPI across nights, and the decisions per night.

Plain strings, no charting library: a chart of 365 nights is a few polylines and rectangles, so a page of
twenty of them renders in milliseconds. No ``style=`` attribute is written (the page's Content-Security-Policy
allows styles by nonce only); colours come from classes the page's stylesheet sets. Every text passes
through :func:`esc`.
"""

from __future__ import annotations

import html
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

#: Width and height of one KPI chart, and its inner margins (left, right, top, bottom), in SVG units.
WIDTH, HEIGHT = 300, 96
LEFT, RIGHT, TOP, BOTTOM = 4, 4, 8, 16


def esc(value: Any) -> str:
    """``value`` as HTML text or attribute; a lone surrogate is shown as its escape rather than failing."""
    text = "" if value is None else str(value)
    return html.escape(text.encode("utf-8", "backslashreplace").decode("utf-8"), quote=True)


@dataclass(frozen=True)
class Axis:
    """The nights of a chart: their x in SVG units, first and last label, and the degraded bands drawn once.

    Attributes:
        x: x of each night.
        breaks: True where the line must not join a night to the one before (a missing night between).
        bands: the degraded nights' shaded rectangles, ready to insert in every chart.
        nights: each night's label (``2026-11-27``).
    """

    x: np.ndarray
    breaks: np.ndarray
    bands: str
    nights: tuple[str, ...]

    @property
    def first(self) -> str:
        return self.nights[0] if self.nights else ""

    @property
    def last(self) -> str:
        return self.nights[-1] if self.nights else ""


def night_axis(days: np.ndarray, degraded: np.ndarray, notes: Sequence[str]) -> Axis:
    """The x axis of a run of nights, with each run of degraded nights as one shaded band.

    Args:
        days: nights as ``datetime64[D]``, oldest first.
        degraded: whether each night was degraded.
        notes: per night, what made it degraded (shown on hover).
    """
    n = len(days)
    ordinal = days.astype("datetime64[D]").astype(np.int64).astype(float)
    span = max(ordinal[-1] - ordinal[0], 1.0) if n else 1.0
    step = float(np.median(np.diff(ordinal))) if n > 1 else 1.0
    x = LEFT + (ordinal - (ordinal[0] if n else 0.0)) / span * (WIDTH - LEFT - RIGHT)
    breaks = np.concatenate([[True], np.diff(ordinal) > 1.5 * step]) if n else np.zeros(0, bool)
    half = 0.5 * step / span * (WIDTH - LEFT - RIGHT)
    bands = []
    for start, stop in _runs(np.asarray(degraded, bool)):
        title = "; ".join(notes[start:stop][:10]) + (" ..." if stop - start > 10 else "")
        x0, x1 = max(x[start] - half, LEFT), min(x[stop - 1] + half, WIDTH - RIGHT)
        bands.append(f'<rect class="degraded" x="{x0:.1f}" y="{TOP}" width="{max(x1 - x0, 1.0):.1f}" '
                     f'height="{HEIGHT - TOP - BOTTOM}"><title>{esc(title)}</title></rect>')
    return Axis(x, breaks, "".join(bands), tuple(str(d) for d in days.astype("datetime64[D]")))


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """``(start, stop)`` of each run of True in ``mask``."""
    edges = np.diff(np.concatenate([[0], mask.astype(np.int8), [0]]))
    return list(zip(np.flatnonzero(edges == 1).tolist(), np.flatnonzero(edges == -1).tolist(), strict=True))


def kpi_chart(axis: Axis, y: np.ndarray, *, target: float | None, fmt: Callable[[float], str], label: str) -> str:
    """One KPI across nights: its line (broken at gaps), the target line, degraded bands, the latest point.

    Args:
        axis: the nights (:func:`night_axis`).
        y: the KPI per night, NaN where the night has none (a gap, never drawn as zero).
        target: the policy's target, or None.
        fmt: formats a value for the axis labels.
        label: the KPI's name, for the chart's accessible title.
    """
    valid = np.isfinite(y)
    head = (f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" width="{WIDTH}" height="{HEIGHT}" role="img" '
            f'aria-label="{esc(label)}">{axis.bands}')
    if not valid.any():
        return (f'{head}<text class="none" x="{WIDTH / 2:.0f}" y="{HEIGHT / 2:.0f}" text-anchor="middle">'
                f"not recorded on these nights</text></svg>")
    lo, hi = float(y[valid].min()), float(y[valid].max())
    if target is not None:
        lo, hi = min(lo, target), max(hi, target)
    pad = (hi - lo) * 0.08 or abs(hi) * 0.05 or 1.0
    lo, hi = lo - pad, hi + pad
    py = TOP + (hi - y) / (hi - lo) * (HEIGHT - TOP - BOTTOM)
    parts = [head, *_lines(axis.x, py, valid, axis.breaks)]
    if target is not None:
        ty = TOP + (hi - target) / (hi - lo) * (HEIGHT - TOP - BOTTOM)
        parts.append(f'<line class="target" x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{ty:.1f}" y2="{ty:.1f}">'
                     f"<title>target {esc(fmt(target))}</title></line>")
    last = int(np.flatnonzero(valid)[-1])
    parts.append(f'<circle class="latest" cx="{axis.x[last]:.1f}" cy="{py[last]:.1f}" r="2.5"/>')
    base = HEIGHT - 4
    parts.append(f'<text class="tick" x="{LEFT}" y="{base}">{esc(axis.first)}</text>'
                 f'<text class="tick" x="{WIDTH - RIGHT}" y="{base}" text-anchor="end">{esc(axis.last)}</text>'
                 f'<text class="tick" x="{WIDTH - RIGHT}" y="{TOP + 2}" text-anchor="end">{esc(fmt(hi - pad))}</text>'
                 f'<text class="tick" x="{WIDTH - RIGHT}" y="{HEIGHT - BOTTOM - 2}" text-anchor="end">'
                 f"{esc(fmt(lo + pad))}</text></svg>")
    return "".join(parts)


def _lines(x: np.ndarray, py: np.ndarray, valid: np.ndarray, breaks: np.ndarray) -> list[str]:
    """Polylines of the runs of consecutive valid nights; a lone night is a dot."""
    starts = valid & (~np.concatenate([[False], valid[:-1]]) | breaks)
    nights = np.flatnonzero(valid)
    out = []
    for run in np.split(nights, np.flatnonzero(np.diff(np.cumsum(starts)[nights])) + 1):
        if len(run) == 1:
            out.append(f'<circle class="dot" cx="{x[run[0]]:.1f}" cy="{py[run[0]]:.1f}" r="1.5"/>')
            continue
        points = " ".join(f"{a:.1f},{b:.1f}" for a, b in zip(x[run].tolist(), py[run].tolist(), strict=True))
        out.append(f'<polyline class="series" points="{points}"/>')
    return out


def decisions_chart(axis: Axis, counts: dict[str, np.ndarray]) -> str:
    """Lines decided per night, stacked: approved (auto-approved included), rejected, expired.

    Args:
        axis: the nights.
        counts: ``approved``, ``rejected``, ``expired`` per night (NaN where nothing was staged).
    """
    stack = np.nan_to_num(np.vstack([counts[k] for k in ("approved", "rejected", "expired")]))
    top = float(stack.sum(axis=0).max()) if stack.size else 0.0
    head = (f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" width="{WIDTH}" height="{HEIGHT}" '
            f'role="img" aria-label="lines decided per night">{axis.bands}')
    if top <= 0:
        return f'{head}<text class="none" x="{WIDTH / 2:.0f}" y="{HEIGHT / 2:.0f}" text-anchor="middle">' \
               "no line decided on these nights</text></svg>"
    scale = (HEIGHT - TOP - BOTTOM) / top
    width = max(min((WIDTH - LEFT - RIGHT) / max(len(axis.x), 1) * 0.8, 6.0), 0.4)
    parts, floor = [head], np.full(stack.shape[1], float(HEIGHT - BOTTOM))
    for name, row in zip(("approved", "rejected", "expired"), stack, strict=True):
        heights = row * scale
        for i in np.flatnonzero(heights > 0).tolist():
            parts.append(f'<rect class="{name}" x="{axis.x[i] - width / 2:.1f}" y="{floor[i] - heights[i]:.1f}" '
                         f'width="{width:.1f}" height="{heights[i]:.1f}"/>')
        floor -= heights
    parts.append(f'<text class="tick" x="{LEFT}" y="{HEIGHT - 4}">{esc(axis.first)}</text>'
                 f'<text class="tick" x="{WIDTH - RIGHT}" y="{HEIGHT - 4}" text-anchor="end">{esc(axis.last)}</text>'
                 f'<text class="tick" x="{LEFT}" y="{TOP + 2}">{top:,.0f} lines</text></svg>')
    return "".join(parts)
