"""The night's dashboard KPIs against the nights before: value, 7- and 28-night change and target.

The earlier nights come from ``ops.kpi_history`` (:func:`include.erp.kpis.kpi_history`, flattened by
:func:`include.reporting.dashboard.flatten_history`); the night itself from its own KPI document, so a
replay, which records no history, still shows where it stands. A change compares with the night exactly 7
(28) days before; a night that recorded no value there gives no change, never a change from zero. A
comparison with a degraded night (stand-in extracts) is marked, as is the night itself when degraded.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import pandas as pd

from include.reporting.dashboard import ALL, CATALOGUE, Kpi, flatten_history

#: Nights back each change compares with.
SPANS = (7, 28)
TREND_COLUMNS = ["key", "label", "value", "change_7", "change_28", "target", "degraded_7", "degraded_28"]
#: The mark of a figure that involves a degraded night.
DEGRADED_MARK = "†"


def trend_table(kpis: Mapping, history: pd.DataFrame, targets: Mapping[str, float]) -> pd.DataFrame:
    """One row per dashboard KPI the night has: its value, its change over :data:`SPANS` and its target.

    Args:
        kpis: the night's KPI document (``ds``, ``degraded`` and the KPIs).
        history: :func:`flatten_history` of earlier nights (other segments and later nights are ignored).
        targets: KPI key -> target (:func:`include.reporting.dashboard.policy_targets`).

    Returns:
        :data:`TREND_COLUMNS`, in the catalogue's order; ``change_<n>`` NaN where the night ``n`` days
        before recorded no value, ``degraded_<n>`` whether that night was degraded.
    """
    night = flatten_history([(kpis["ds"], kpis, kpis.get("degraded"), kpis.get("stale_sources"))]).iloc[0]
    past = history[history["segment"].astype(str) == ALL] if "segment" in history else history
    past = past[pd.to_datetime(past["ds"]) < night["ds"]].set_index(pd.to_datetime(past["ds"]))
    rows = []
    for kpi in CATALOGUE:
        value = night[kpi.key]
        if not math.isfinite(value):
            continue
        row = {"key": kpi.key, "label": kpi.label, "value": float(value), "target": targets.get(kpi.key, math.nan)}
        for n in SPANS:
            then = night["ds"] - pd.Timedelta(days=n)
            before = float(past.at[then, kpi.key]) if then in past.index and kpi.key in past else math.nan
            row[f"change_{n}"] = value - before
            row[f"degraded_{n}"] = math.isfinite(before) and bool(past.at[then, "degraded"])
        rows.append(row)
    return pd.DataFrame(rows, columns=TREND_COLUMNS).astype({"target": float, "change_7": float, "change_28": float})


def change_text(kpi: Kpi, delta: float) -> str:
    """A change for people, signed: ``+1.2 pts`` for a share, ``-0.40`` for money, ``+2.5 h``; ``n/a``."""
    if not math.isfinite(delta):
        return "n/a"
    return {"share": f"{100 * delta:+.1f} pts", "money": f"{delta:+,.2f}", "hours": f"{delta:+.1f} h",
            "units": f"{delta:+,.0f}", "times": f"{delta:+.1f}x"}[kpi.unit]


def trend_cells(table: pd.DataFrame) -> list[tuple[str, str, str, str, str]]:
    """``(label, value, 7-night change, 28-night change, target)`` per row of :func:`trend_table`, as text;
    a change against a degraded night carries :data:`DEGRADED_MARK`."""
    from include.reporting.dashboard import BY_KEY

    cells = []
    for row in table.to_dict("records"):
        kpi = BY_KEY[row["key"]]
        changes = [change_text(kpi, row[f"change_{n}"]) + (f" {DEGRADED_MARK}" if row[f"degraded_{n}"] else "")
                   for n in SPANS]
        target = kpi.fmt(row["target"]) if math.isfinite(row["target"]) else "none"
        cells.append((kpi.label, kpi.fmt(row["value"]), *changes, target))
    return cells


def trend_lines(kpis: Mapping, table: pd.DataFrame | None) -> list[str]:
    """The report's Markdown section "Trends" (none without a table)."""
    if table is None:
        return []
    lines = ["", "## Trends", ""]
    if kpis.get("degraded"):
        lines += [f"This night is degraded {DEGRADED_MARK}: its figures read stand-in extracts.", ""]
    if table.empty:
        return [*lines, "No dashboard KPI was recorded this night."]
    lines += ["| KPI | value | 7 nights | 28 nights | target |", "| --- | ---: | ---: | ---: | ---: |"]
    lines += [f"| {' | '.join(cells)} |" for cells in trend_cells(table)]
    if table[["degraded_7", "degraded_28"]].to_numpy().any():
        lines += ["", f"{DEGRADED_MARK} against a degraded night (stand-in extracts)."]
    return lines
