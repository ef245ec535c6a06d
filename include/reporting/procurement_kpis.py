"""Procurement KPIs for the nightly report: how fast buying decisions reach the ERP, how suppliers deliver,
and whether late purchase orders were seen coming.

- **procurement cycle time**: hours from proposal (staging) to release of the night's replenishment orders
  and PO exceptions, median and 90th percentile; and, for the critical lines of the fast lane, the seconds
  from staging (or decision) to release;
- **supplier OTIF trend**: on-time-in-full over all suppliers (lines-weighted) of the newest weekly
  scorecard against the card ``TREND_WEEKS`` earlier, and the suppliers whose OTIF fell most;
- **late POs flagged early vs late**: of the PO lines received after their promised date in the last
  ``LATE_WINDOW_DAYS``, the share a PO exception flagged before the promised date (early: there was time to
  act), on or after it (late), or never.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["LATE_WINDOW_DAYS", "TREND_WEEKS", "late_po_lines", "procurement_kpis", "procurement_report_lines"]

TREND_WEEKS = 4
LATE_WINDOW_DAYS = 28
_BUYING = ("replenishment", "po_exception")


def late_po_lines(purchase_orders: pd.DataFrame, receipts: pd.DataFrame, day: dt.date,
                  window_days: int = LATE_WINDOW_DAYS) -> pd.DataFrame:
    """PO lines whose last receipt in the window came after their promised date.

    Args:
        purchase_orders: PO lines (``po_id, po_line, promised_date``), any snapshots.
        receipts: receipts (``po_id, po_line, received_date``).

    Returns:
        ``business_key, promised_date, received_date`` (the key as PO exceptions stage it).
    """
    if purchase_orders.empty or receipts.empty:
        return pd.DataFrame(columns=["business_key", "promised_date", "received_date"])
    start = pd.Timestamp(day) - pd.Timedelta(days=window_days - 1)
    rec = receipts.assign(received_date=pd.to_datetime(receipts["received_date"]))
    rec = rec[(rec["received_date"] >= start) & (rec["received_date"] <= pd.Timestamp(day))]
    last = rec.groupby(["po_id", "po_line"], as_index=False)["received_date"].max()
    promised = purchase_orders.drop_duplicates(["po_id", "po_line"], keep="last")[["po_id", "po_line", "promised_date"]]
    lines = last.merge(promised.assign(promised_date=pd.to_datetime(promised["promised_date"])), on=["po_id", "po_line"])
    lines = lines[lines["received_date"] > lines["promised_date"]]
    return pd.DataFrame({"business_key": "po:" + lines["po_id"].astype(str) + "-" + lines["po_line"].astype(int).astype(str),
                         "promised_date": lines["promised_date"], "received_date": lines["received_date"]})


def _hours(lines: pd.DataFrame) -> pd.Series:
    return (pd.to_datetime(lines["released_at"], utc=True) - pd.to_datetime(lines["created_at"], utc=True)
            ).dt.total_seconds() / 3600.0


def procurement_kpis(lines: pd.DataFrame, cards: pd.DataFrame, late: pd.DataFrame,
                     first_flags: pd.DataFrame) -> dict[str, Any]:
    """The night's procurement KPIs.

    Args:
        lines: the night's staged lines (``doc_type, status, created_at, released_at, explanation``).
        cards: supplier scorecards of the last weeks (``supplier_id, week_end, lines_due, otif``), oldest first.
        late: :func:`late_po_lines`.
        first_flags: the first date each PO exception key was staged (``business_key, first_ds``).
    """
    out: dict[str, Any] = {}
    buying = lines[lines["doc_type"].isin(_BUYING)] if len(lines) else lines
    released = buying[buying["status"] == "released"] if len(buying) else buying
    if len(released):
        hours = _hours(released)
        critical = released["explanation"].map(lambda e: bool((e or {}).get("critical")))
        out["cycle_hours_median"] = round(float(hours.median()), 3)
        out["cycle_hours_p90"] = round(float(hours.quantile(0.9)), 3)
        out["critical_released"] = int(critical.sum())
        out["critical_release_seconds_max"] = round(float(hours[critical].max() * 3600), 1) if critical.any() else None
    out["lines_released"] = int(len(released))
    out["critical_pending"] = int(buying["explanation"].map(lambda e: bool((e or {}).get("critical"))).where(
        buying["status"] == "pending_approval", False).sum()) if len(buying) else 0
    out.update(_otif_trend(cards))
    out.update(_flagged(late, first_flags))
    return out


def _otif_trend(cards: pd.DataFrame) -> dict[str, Any]:
    if cards is None or cards.empty:
        return {"otif": None, "otif_change": None, "otif_falling": []}
    c = cards.assign(week_end=pd.to_datetime(cards["week_end"]), lines_due=cards["lines_due"].astype(float),
                     otif=cards["otif"].astype(float))
    c = c[c["lines_due"] > 0]
    if c.empty:
        return {"otif": None, "otif_change": None, "otif_falling": []}
    weekly = c.groupby("week_end").apply(lambda g: float(np.average(g["otif"], weights=g["lines_due"])),
                                         include_groups=False).sort_index()
    latest, then = weekly.index[-1], weekly.index[-1] - pd.Timedelta(weeks=TREND_WEEKS)
    before = weekly[weekly.index <= then]
    by_supplier = c.pivot_table(index="supplier_id", columns="week_end", values="otif")
    falling = []
    if len(before):
        change = (by_supplier[latest] - by_supplier[before.index[-1]]).dropna().sort_values()
        falling = [{"supplier_id": s, "otif": round(float(by_supplier.at[s, latest]), 3), "change": round(float(d), 3)}
                   for s, d in change[change < 0].head(3).items()]
    return {"otif": round(float(weekly.iloc[-1]), 4),
            "otif_change": round(float(weekly.iloc[-1] - before.iloc[-1]), 4) if len(before) else None,
            "otif_weeks": [{"week_end": d.date().isoformat(), "otif": round(float(v), 4)} for d, v in weekly.items()],
            "otif_falling": falling}


def _flagged(late: pd.DataFrame, first_flags: pd.DataFrame) -> dict[str, Any]:
    n = int(len(late))
    if not n:
        return {"late_po_lines": 0, "late_flagged_early_share": None, "late_flagged_late_share": None,
                "late_missed_share": None}
    flags = pd.to_datetime(late["business_key"].map(first_flags.set_index("business_key")["first_ds"])
                           if len(first_flags) else pd.Series(pd.NaT, index=late.index))
    early = int((flags < late["promised_date"]).sum())
    late_flag = int((flags >= late["promised_date"]).sum())
    return {"late_po_lines": n, "late_flagged_early_share": round(early / n, 4),
            "late_flagged_late_share": round(late_flag / n, 4), "late_missed_share": round((n - early - late_flag) / n, 4)}


def procurement_report_lines(kpis: dict[str, Any]) -> list[str]:
    """The report's Markdown section on procurement."""
    p = kpis.get("procurement") or {}
    lines = ["", "## Procurement", ""]
    if not p:
        return [*lines, "No procurement figures this night."]

    def pct(key: str) -> str:
        return "n/a" if p.get(key) is None else f"{p[key]:.1%}"

    cycle = ("no buying line was released" if not p.get("lines_released") else
             f"{p['lines_released']} buying line(s) released, proposal to release {p['cycle_hours_median']:.2f} h"
             f" median ({p['cycle_hours_p90']:.2f} h p90)")
    fast = (f"; fast lane: {p['critical_released']} critical line(s) released, the slowest "
            f"{p['critical_release_seconds_max']:.0f} s after staging or decision" if p.get("critical_released") else "")
    otif = "no supplier scorecard yet" if p.get("otif") is None else (
        f"supplier OTIF {p['otif']:.1%}" + ("" if p.get("otif_change") is None else
                                            f" ({p['otif_change']:+.1%} over {TREND_WEEKS} weeks)"))
    falling = ", ".join(f"{f['supplier_id']} {f['otif']:.0%} ({f['change']:+.0%})" for f in p.get("otif_falling") or [])
    return [*lines, f"{cycle}{fast}; {p.get('critical_pending', 0)} critical line(s) still pending.",
            f"{otif}" + (f"; falling most: {falling}" if falling else "") + ".",
            f"Late PO lines received in the last {LATE_WINDOW_DAYS} days: {p.get('late_po_lines', 0)}; flagged "
            f"before the promised date {pct('late_flagged_early_share')}, after it {pct('late_flagged_late_share')}, "
            f"never {pct('late_missed_share')}."]
