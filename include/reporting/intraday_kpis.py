"""What the day's intraday sensing came to, for the nightly report: surges found, how fast, what moved.

The night after a trading day reads the day's last intraday reading (``reports/intraday_sensing``), the
urgent lines ``retail_intraday`` staged for the day and the day's hourly sales:

- **surges detected**: alarms of the day, a region's stores flagged together counting once;
- **hours from onset to detection**: from the hour a surge began (as the test placed it) to the end of
  the hour it alarmed, when the hourly run proposed;
- **unconfirmed alarms** (an estimate of false alarms, as no one knows the truth): surges whose day closed
  within the forecast's usual error (``forecast + 1.96 sigma``);
- **stock moved**: units of released urgent transfers and expedites (raised orders counted apart), and of
  them those sent to shelves running dry without a surge (``stockout_rescues``);
- **sales saved** (estimated): per released move, the units its receiver sold after the proposal beyond
  the stock it held then, up to the units moved.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from include.intraday.moves import MOVE_ACTIONS, is_rescue

#: z of the band a surge's day must leave to count as confirmed.
CONFIRM_Z = 1.96


def intraday_kpis(sensing: pd.DataFrame | None, lines: pd.DataFrame, hourly: pd.DataFrame) -> dict[str, Any]:
    """The day's intraday KPIs.

    Args:
        sensing: The day's last intraday reading (:func:`include.intraday.day.sense_day`'s frame with
            ``as_of_hour``), or None when no intraday run read the day.
        lines: The day's ``retail_intraday`` lines (``action, status, quantity, to_location, sku,
            explanation``).
        hourly: The day's sales by ``location_id, sku, hour, units``.

    Returns:
        ``{"ran": False}`` without a reading, else the KPIs (see the module).
    """
    if sensing is None or sensing.empty:
        return {"ran": False}
    alarms = sensing[sensing["alarm"].fillna(False).astype(bool) & (sensing["channel"] != "dc")]
    events = _events(alarms)
    lead = events["alarm_hour"] + 1 - events["onset_hour"]
    released = lines[lines["status"] == "released"] if len(lines) else lines
    moves = released[released["action"].isin(MOVE_ACTIONS)] if len(released) else released
    saved = _saved_units(moves, hourly) if len(moves) else np.zeros(0)
    rescued = is_rescue(moves)
    margin = [float(e.get("margin_at_stake", 0.0)) / max(float(q), 1.0)
              for e, q in zip(moves.get("explanation", []), moves.get("quantity", []), strict=True)]
    return {
        "ran": True, "last_hour": int(sensing["as_of_hour"].max()),
        "surges_detected": int(len(events)),
        "median_hours_onset_to_detection": float(lead.median()) if len(lead) else None,
        "unconfirmed_alarms": int((~events["confirmed"]).sum()) if len(events) else 0,
        "urgent_lines": int(len(lines)),
        "urgent_lines_by_status": lines["status"].value_counts().to_dict() if len(lines) else {},
        "units_moved": float(moves["quantity"].sum()) if len(moves) else 0.0,
        "stockout_rescues": int(rescued.sum()), "units_moved_to_stockouts": float(moves.loc[rescued, "quantity"].sum())
        if rescued.any() else 0.0,
        "units_ordered": float(released.loc[released["action"] == "raise_order", "quantity"].sum())
        if len(released) else 0.0,
        "sales_saved_units_est": float(saved.sum()),
        "margin_saved_est": round(float(np.dot(saved, margin)), 2) if len(saved) else 0.0,
    }


def _events(alarms: pd.DataFrame) -> pd.DataFrame:
    """One row per surge: a store or the web shop alone, or a region's stores flagged together."""
    if alarms.empty:
        return pd.DataFrame(columns=["onset_hour", "alarm_hour", "confirmed"])
    key = np.where(alarms["level"] == "region",
                   "region|" + alarms["sku"].astype(str) + "|" + alarms["onset_hour"].astype(str) + "|"
                   + alarms["alarm_hour"].astype(str), "series|" + alarms["location_id"].astype(str) + "|"
                   + alarms["sku"].astype(str))
    grouped = alarms.assign(key=key, var=alarms["forecast_sigma"].astype(float) ** 2).groupby("key").agg(
        onset_hour=("onset_hour", "min"), alarm_hour=("alarm_hour", "min"), sold=("sold_today", "sum"),
        forecast=("forecast_today", "sum"), var=("var", "sum"))
    band = grouped["forecast"] + CONFIRM_Z * np.sqrt(np.maximum(grouped["var"], grouped["forecast"]))
    return grouped.assign(confirmed=grouped["sold"] > band).reset_index(drop=True)


def _saved_units(moves: pd.DataFrame, hourly: pd.DataFrame) -> np.ndarray:
    """Per move: the receiver's sales after the proposal beyond its stock then, up to the units moved."""
    out = []
    for move in moves.itertuples(index=False):
        e = move.explanation
        hour = int(str(e.get("as_of", "T-1")).rsplit("T", 1)[-1] or -1)
        sold_after = hourly.loc[(hourly["location_id"] == move.to_location) & (hourly["sku"] == move.sku)
                                & (hourly["hour"] > hour), "units"].sum()
        out.append(min(float(move.quantity), max(0.0, float(sold_after) - float(e.get("on_hand", 0.0)))))
    return np.asarray(out, float)


def intraday_report_lines(kpis: dict[str, Any]) -> list[str]:
    """The report's Markdown section on the day's intraday sensing."""
    day = kpis.get("intraday") or {}
    lines = ["", "## Intraday sensing", ""]
    if not day.get("ran"):
        return [*lines, "No intraday run read this day."]
    lead = day["median_hours_onset_to_detection"]
    return [*lines,
            f"Through hour {day['last_hour']:02d}: {day['surges_detected']} surge(s) detected"
            + (f", median {lead:g} h from onset to detection" if lead is not None else "")
            + f"; {day['unconfirmed_alarms']} unconfirmed by the day's close (likely false alarms).",
            f"Urgent lines: {day['urgent_lines']} {day['urgent_lines_by_status']}; {day['units_moved']:g} units moved"
            + (f" ({day['units_moved_to_stockouts']:g} of them by {day['stockout_rescues']} move(s) to shelves "
               "running dry without a surge)" if day.get("stockout_rescues") else "")
            + f", {day['units_ordered']:g} ordered; sales saved (estimated) {day['sales_saved_units_est']:g} units, "
            f"margin {day['margin_saved_est']:g}."]
