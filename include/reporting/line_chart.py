"""One staged line's chart: the demand behind it, its forecast, and the stock with and without it.

What a planner looks at before approving a replenishment or a transfer, served by the approvals page for
one line at a time (:func:`chart_data`, the numbers as JSON; :func:`chart_svg`, the picture), from what the
night wrote and the line's own explanation, never recomputed in the browser:

* **history**: the destination series' daily demand over the last weeks (``curated/demand`` of the line's
  night); stock-out days are censored (what sold is a lower bound of the demand) and drawn hollow;
* **forecast**: the night's forecast of that series (``forecasts/demand``): the mean, and the band from the
  median to the 95% quantile;
* **projected stock**: the usable stock the line was decided on (on hand + in transit - allocated -
  backorders, from its explanation) run down day by day by the forecast mean, without the line and with
  its quantity arriving on its need-by date;
* for a **transfer**, the source too: its history and forecast when it is a selling location (a store giving
  stock), its stock run down with the quantity leaving on the night after the decision when the
  explanation has the source's stock.

A series the night did not write (a location that sells nothing, a night whose partitions are gone) is an
empty part, never an error: the chart says what it lacks.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from include.demand.history import series_id
from include.reporting.dashboard_svg import esc
from include.reporting.line_text import usable_stock
from include.storage import read_key

__all__ = ["HISTORY_DAYS", "chart_data", "chart_svg"]

#: Days of demand history the chart shows before the line's night.
HISTORY_DAYS = 42


def _day(value: Any) -> dt.date:
    return value if isinstance(value, dt.date) else dt.date.fromisoformat(str(value)[:10])


def _series(uid: str, day: dt.date, root: str | None, days: int) -> dict[str, list[dict[str, Any]]]:
    """History (``ds, y, censored``) and forecast (``ds, mean, q50, q95``) of one series written on ``day``."""
    out: dict[str, list[dict[str, Any]]] = {"history": [], "forecast": []}
    since = pd.Timestamp(day) - pd.Timedelta(days=days - 1)
    # One series of partitions written sorted by series: only the row groups that may hold it are read.
    h = read_key("curated", "demand", day, "unique_id", uid, root, columns=["ds", "y", "censored"])
    if len(h):
        h = h[pd.to_datetime(h["ds"]) >= since].sort_values("ds")
        out["history"] = [{"ds": pd.Timestamp(d).date().isoformat(), "y": float(y), "censored": bool(c)}
                          for d, y, c in zip(h["ds"], h["y"], h["censored"], strict=True)]
    # The production forecaster writes q50 and q95 beside the mean (models.forecasting.ForecastResult).
    f = read_key("forecasts", "demand", day, "unique_id", uid, root, columns=["ds", "mean", "q50", "q95"])
    if len(f):
        f = f.sort_values("ds")
        out["forecast"] = [{"ds": pd.Timestamp(d).date().isoformat(), "mean": round(float(m), 3),
                            "q50": round(float(a), 3), "q95": round(float(b), 3)}
                           for d, m, a, b in zip(f["ds"], f["mean"], f["q50"], f["q95"], strict=True)]
    return out


def _projection(start: float | None, forecast: list[dict[str, Any]], change: float,
                on: dt.date | None) -> list[dict[str, Any]]:
    """Stock at the end of each forecast day: ``start`` less the mean demand, plus ``change`` from ``on``."""
    if start is None or not forecast:
        return []
    days = [dt.date.fromisoformat(f["ds"]) for f in forecast]
    moved = np.array([change if on is not None and d >= on else 0.0 for d in days])
    stock = start - np.cumsum([f["mean"] for f in forecast]) + moved
    return [{"ds": d.isoformat(), "stock": round(float(s), 2)} for d, s in zip(days, stock, strict=True)]


def chart_data(line: Mapping[str, Any], root: str | None = None, *, history_days: int = HISTORY_DAYS) -> dict[str, Any]:
    """The numbers of one line's chart.

    Args:
        line: the staged line (``doc_type, ds, sku, from_location, to_location, quantity, need_by,
            explanation`` at least, as :func:`include.erp.approvals.list_pending` gives it).
        root: data root.
        history_days: days of history before the night.

    Returns:
        ``{"line": {...}, "destination": {...}, "source": {...} | None}``; an end is ``{"location",
        "history", "forecast", "without", "with"}`` (``without``/``with``: projected stock per day).
    """
    day = _day(line["ds"])
    explanation = line.get("explanation") or {}
    quantity = float(line.get("quantity") or 0.0)
    arrival = _day(line["need_by"]) if line.get("need_by") else None
    to, source = line.get("to_location"), line.get("from_location")
    out: dict[str, Any] = {
        "line": {"doc_type": line["doc_type"], "line_id": line.get("line_id"), "sku": line["sku"], "ds": day.isoformat(),
                 "quantity": quantity, "need_by": arrival.isoformat() if arrival else None},
        "destination": None, "source": None}
    if to:
        end = _series(series_id(str(to), str(line["sku"])), day, root, history_days)
        start = usable_stock(explanation)
        out["destination"] = {"location": to, **end, "without": _projection(start, end["forecast"], 0.0, None),
                              "with": _projection(start, end["forecast"], quantity, arrival)}
    if line["doc_type"] == "transfer" and source:
        end = _series(series_id(str(source), str(line["sku"])), day, root, history_days)
        start = usable_stock(explanation, "source_")
        leaves = day + dt.timedelta(days=1)
        out["source"] = {"location": source, **end, "without": _projection(start, end["forecast"], 0.0, None),
                         "with": _projection(start, end["forecast"], -quantity, leaves)}
    return out


# --- the picture -------------------------------------------------------------------------------------------------

WIDTH, HEIGHT = 640, 220
LEFT, RIGHT, TOP, BOTTOM = 44, 12, 22, 28
#: Colours as presentation attributes: the SVG is served as an image, outside any page's stylesheet.
COLOURS = {"history": "#52606d", "forecast": "#2f80ed", "band": "#2f80ed", "without": "#d64545", "with": "#2f9e44",
           "arrival": "#7b8794", "zero": "#9aa5b1"}


def _end_svg(end: Mapping[str, Any], title: str, quantity: float, arrival: str | None, y0: float) -> list[str]:
    """One end's panel (history, forecast band and mean, projected stock without and with the line)."""
    dates = [p["ds"] for k in ("history", "forecast") for p in end[k]]
    if not dates:
        return [f'<text x="{LEFT}" y="{y0 + TOP + 20}" font-size="12" fill="{COLOURS["history"]}">{esc(title)}: '
                "the night wrote no demand or forecast for this location and item</text>"]
    first, last = dt.date.fromisoformat(min(dates)), dt.date.fromisoformat(max(dates))
    span = max((last - first).days, 1)
    values = [p["y"] for p in end["history"]] + [p["q95"] for p in end["forecast"]] + \
        [p["stock"] for k in ("without", "with") for p in end[k]] + [0.0]
    lo, hi = min(values), max(values)
    pad = (hi - lo) * 0.06 or 1.0
    lo, hi = lo - pad, hi + pad
    inner = HEIGHT - TOP - BOTTOM

    def x(ds: str) -> float:
        return LEFT + (dt.date.fromisoformat(ds) - first).days / span * (WIDTH - LEFT - RIGHT)

    def y(v: float) -> float:
        return y0 + TOP + (hi - v) / (hi - lo) * inner

    def poly(points: list[tuple[str, float]], colour: str, dash: str = "") -> str:
        if not points:
            return ""
        pts = " ".join(f"{x(d):.1f},{y(v):.1f}" for d, v in points)
        dashes = f' stroke-dasharray="{dash}"' if dash else ""
        return f'<polyline points="{pts}" fill="none" stroke="{colour}" stroke-width="1.6"{dashes}/>'

    parts = [f'<text x="{LEFT}" y="{y0 + 14}" font-size="12" font-weight="600" fill="#1f2933">{esc(title)}</text>',
             f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y(0):.1f}" y2="{y(0):.1f}" stroke="{COLOURS["zero"]}"'
             ' stroke-width="0.8"/>']
    fc = end["forecast"]
    if fc:
        band = [(p["ds"], p["q95"]) for p in fc] + [(p["ds"], p["q50"]) for p in reversed(fc)]
        parts.append('<polygon points="' + " ".join(f"{x(d):.1f},{y(v):.1f}" for d, v in band)
                     + f'" fill="{COLOURS["band"]}" fill-opacity="0.15" stroke="none"><title>forecast, median to 95% '
                     "quantile</title></polygon>")
    parts.append(poly([(p["ds"], p["y"]) for p in end["history"]], COLOURS["history"]))
    parts += [f'<circle cx="{x(p["ds"]):.1f}" cy="{y(p["y"]):.1f}" r="2.4" fill="white" stroke="{COLOURS["without"]}">'
              f'<title>{esc(p["ds"])}: stock-out, {p["y"]:g} sold (demand was at least that)</title></circle>'
              for p in end["history"] if p["censored"]]
    parts.append(poly([(p["ds"], p["mean"]) for p in fc], COLOURS["forecast"]))
    parts.append(poly([(p["ds"], p["stock"]) for p in end["without"]], COLOURS["without"], "4 3"))
    parts.append(poly([(p["ds"], p["stock"]) for p in end["with"]], COLOURS["with"]))
    if arrival and first <= dt.date.fromisoformat(arrival) <= last:
        ax = x(arrival)
        parts.append(f'<line x1="{ax:.1f}" x2="{ax:.1f}" y1="{y0 + TOP}" y2="{y0 + TOP + inner}" stroke='
                     f'"{COLOURS["arrival"]}" stroke-dasharray="2 3"><title>{quantity:g} arrive {esc(arrival)}</title>'
                     f'</line><text x="{ax + 3:.1f}" y="{y0 + TOP + 10}" font-size="10" fill="{COLOURS["arrival"]}">'
                     f"+{quantity:g} on {esc(arrival)}</text>")
    base = y0 + HEIGHT - 10
    parts.append(f'<text x="{LEFT}" y="{base}" font-size="10" fill="#52606d">{esc(first.isoformat())}</text>'
                 f'<text x="{WIDTH - RIGHT}" y="{base}" font-size="10" fill="#52606d" text-anchor="end">'
                 f"{esc(last.isoformat())}</text>"
                 f'<text x="{LEFT - 4}" y="{y(hi - pad) + 4:.1f}" font-size="10" fill="#52606d" text-anchor="end">'
                 f"{hi - pad:,.0f}</text>"
                 f'<text x="{LEFT - 4}" y="{y(lo + pad) + 4:.1f}" font-size="10" fill="#52606d" text-anchor="end">'
                 f"{lo + pad:,.0f}</text>")
    return parts


def chart_svg(data: Mapping[str, Any]) -> str:
    """The chart of :func:`chart_data` as a standalone SVG document: one panel per end of the line."""
    line = data["line"]
    ends = [(e, f"{label} {e['location']}") for e, label in ((data["destination"], "to"), (data["source"], "from"))
            if e is not None]
    height = HEIGHT * max(len(ends), 1) + 20
    title = f"{line['doc_type']} #{line['line_id']}: {line['sku']}, {line['quantity']:g} units"
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {height}" width="{WIDTH}" '
             f'height="{height}" role="img" aria-label="{esc(title)}"><title>{esc(title)}</title>'
             f'<rect width="{WIDTH}" height="{height}" fill="white"/>']
    for i, (end, label) in enumerate(ends):
        parts += _end_svg(end, label, line["quantity"] if i == 0 else -line["quantity"],
                          line["need_by"] if i == 0 else None, i * HEIGHT)
    legend = [("history", "demand (hollow: stock-out)"), ("forecast", "forecast"), ("without", "stock without"),
              ("with", "stock with the line")]
    lx = LEFT
    for key, text in legend:
        parts.append(f'<line x1="{lx}" x2="{lx + 16}" y1="{height - 8}" y2="{height - 8}" stroke="{COLOURS[key]}" '
                     f'stroke-width="2"/><text x="{lx + 20}" y="{height - 4}" font-size="10" fill="#52606d">'
                     f"{esc(text)}</text>")
        lx += 30 + 6 * len(text)
    parts.append("</svg>")
    return "".join(parts)
