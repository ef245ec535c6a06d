"""The returns KPIs of a day: return rate by channel and category, the share of refunds recovered, the fraud
losses the holds prevented (estimated) and how long a returned unit waits for its disposition.

Computed by ``returns_routing`` when it routes a day (its summary carries them) and shown by the nightly
report of that day (:func:`returns_report_lines`).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["RATE_DAYS", "return_rates", "returns_kpis", "returns_report_lines"]

#: Days of returns and sales behind the return rates (a day alone is too noisy).
RATE_DAYS = 7
#: Purchase channel of a return -> the sales channel it is a rate of.
SALES_CHANNEL = {"store": "store", "web": "ecommerce", "app": "ecommerce"}


def return_rates(returned: pd.DataFrame, sold: pd.DataFrame, items: pd.DataFrame) -> list[dict[str, Any]]:
    """Units returned over units sold per sales channel and category.

    Args:
        returned: returned lines (``sku, purchase_channel, quantity``).
        sold: units sold (``sku, channel, units``; channel ``store`` or ``ecommerce``).
        items: item master (``sku, category``).

    Returns:
        ``channel, category, returned, sold, return_rate`` records (``return_rate`` ``None`` without sales),
        highest rate first.
    """
    category = items.set_index("sku")["category"].astype(str)
    back = pd.DataFrame({"channel": returned["purchase_channel"].astype(str).map(SALES_CHANNEL).to_numpy(),
                         "category": returned["sku"].astype(str).map(category).to_numpy(),
                         "returned": returned["quantity"].to_numpy(float)})
    out_ = pd.DataFrame({"channel": sold["channel"].astype(str).to_numpy(),
                         "category": sold["sku"].astype(str).map(category).to_numpy(),
                         "sold": sold["units"].to_numpy(float)})
    keys = ["channel", "category"]
    table = (back.dropna(subset=keys).groupby(keys)["returned"].sum().to_frame()
             .join(out_.dropna(subset=keys).groupby(keys)["sold"].sum(), how="outer").fillna(0.0).reset_index())
    with np.errstate(divide="ignore", invalid="ignore"):
        rate = np.where(table["sold"] > 0, table["returned"] / table["sold"], np.nan)
    table = table.assign(return_rate=rate).sort_values("return_rate", ascending=False, na_position="last")
    return [{"channel": r.channel, "category": r.category, "returned": float(r.returned), "sold": float(r.sold),
             "return_rate": None if np.isnan(r.return_rate) else round(float(r.return_rate), 4)}
            for r in table.itertuples()]


def returns_kpis(today: pd.DataFrame, routed: pd.DataFrame, fraud_score: np.ndarray, fraud_held: np.ndarray,
                 day: dt.date, rates: list[dict[str, Any]]) -> dict[str, Any]:
    """The day's returns KPIs.

    Args:
        today: the day's returned lines (``returned_at, refund_amount``), in ``routed``'s order.
        routed: their dispositions (:func:`include.returns.disposition.route_returns`: ``net_value``,
            ``hold_for_review``).
        fraud_score: each line's fraud score.
        fraud_held: the lines held for their fraud score (exception ``fraud_risk``).
        day: the day routed; its routing run starts when the day has closed.
        rates: :func:`return_rates` of the days ending ``day``.

    Returns:
        ``recovery_rate`` (net recovery over refunds), ``fraud_losses_prevented_est`` (the refunds held for a
        fraud score, each weighed by that score: the fraudulent refund value the hold is expected to stop),
        ``days_receipt_to_disposition`` (mean days from receipt to the close of the day for the dispositions
        released at once; a held one waits for loss prevention on top), ``held_for_review``, ``return_rates``
        and ``return_rate``, all of them together (units returned over units sold in the rates' days;
        ``None`` without sales).
    """
    refund = np.maximum(today["refund_amount"].to_numpy(float), 0.0)
    recovered = float(routed["net_value"].to_numpy(float).sum())
    held = routed["hold_for_review"].astype(bool).to_numpy()
    sold = sum(r["sold"] for r in rates)
    close = pd.Timestamp(day) + pd.Timedelta(days=1)
    waited = (close - pd.to_datetime(today["returned_at"])).dt.total_seconds().to_numpy(float) / 86400.0
    return {
        "recovery_rate": round(recovered / refund.sum(), 4) if refund.sum() > 0 else None,
        "fraud_losses_prevented_est": round(float((np.asarray(fraud_score, float) * refund)[np.asarray(fraud_held, bool)]
                                                  .sum()), 2),
        "days_receipt_to_disposition": round(float(waited[~held].mean()), 2) if (~held).any() else None,
        "held_for_review": int(held.sum()),
        "return_rates": rates,
        "return_rate": round(sum(r["returned"] for r in rates) / sold, 4) if sold > 0 else None,
    }


def returns_report_lines(kpis: dict[str, Any]) -> list[str]:
    """The report's Markdown section on the day's returns (from ``returns_routing``'s summary)."""
    day = kpis.get("returns") or {}
    lines = ["", "## Returns", ""]
    if day.get("net_recovery") is None:
        return [*lines, "returns_routing has not routed this day."]
    rate = day.get("recovery_rate")
    lines.append(f"{day.get('returns', 0)} returned line(s), refunds {day.get('refunds', 0):,.2f}: recovered "
                 f"{day['net_recovery']:,.2f} net ({'n/a' if rate is None else f'{rate:.1%}'} of the refunds); "
                 f"fraud losses prevented (estimated) {day.get('fraud_losses_prevented_est') or 0:,.2f}; "
                 f"{day.get('held_for_review', 0)} line(s) held for review; days from receipt to disposition "
                 f"{day.get('days_receipt_to_disposition', 'n/a')} for those released at once.")
    rates = day.get("return_rates") or []
    if day.get("return_rate") is not None:
        lines.append(f"Return rate over {RATE_DAYS} days: {day['return_rate']:.1%} of the units sold.")
    if rates:
        lines += ["", f"| channel | category | returned ({RATE_DAYS} days) | sold | return rate |",
                  "| --- | --- | ---: | ---: | ---: |"]
        lines += [f"| {r['channel']} | {r['category']} | {r['returned']:g} | {r['sold']:g} | "
                  f"{'n/a' if r['return_rate'] is None else format(r['return_rate'], '.1%')} |" for r in rates]
    return lines
