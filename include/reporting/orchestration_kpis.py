"""What the day's order orchestration came to, for the nightly report, from the assignments it released.

The night after a day reads the ``fulfilment_assignment`` lines ``order_orchestration`` staged for it; a
released line is an assignment that shipped (within policy at once, or approved by a planner), and its
explanation carries the order, the node type, the promise and the costs the router priced:

- **fulfilment cost per order**: shipping, pick, split, lateness and store stock-out cost of the released
  lines, per order;
- **on-time promise rate**: share of orders whose released lines all arrive by the promise;
- **split rate**: share of orders shipped from more than one node;
- **ship-from-store share**: share of released lines shipped from a store;
- **store stock-outs caused**: released lines that took a store below its safety stock, and the expected
  store margin lost to them (the router's stock-out cost);
- **exceptions**: lines that waited for a planner, by what became of them.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

STORE_BELOW_SAFETY = "store_below_safety_stock"
DOC_TYPE = "fulfilment_assignment"


def orchestration_kpis(lines: pd.DataFrame) -> dict[str, Any]:
    """The day's order orchestration KPIs.

    Args:
        lines: the day's ``order_orchestration`` lines (``doc_type, status, from_location, risk_tier,
            explanation``), as :func:`include.erp.staging.run_lines` gives them.

    Returns:
        ``{"ran": False}`` when nothing was routed, else the KPIs (see the module).
    """
    if lines is None or lines.empty or not (lines["doc_type"] == DOC_TYPE).any():
        return {"ran": False}
    lines = lines[lines["doc_type"] == DOC_TYPE]
    e = pd.DataFrame(list(lines["explanation"]), index=lines.index)
    exception = e["exceptions"].map(lambda codes: len(codes) > 0 if codes is not None else False)
    shipped = lines["status"] == "released"
    s, x = lines[shipped], e[shipped]
    orders = x.groupby("order_id")
    n_orders = int(orders.ngroups)
    below = x["exceptions"].map(lambda codes: STORE_BELOW_SAFETY in (codes or []))
    return {
        "ran": True, "lines_routed": int(len(lines)), "lines_released": int(len(s)), "orders_released": n_orders,
        "fulfilment_cost_per_order": round(float(x["line_cost"].sum()) / n_orders, 2) if n_orders else None,
        "on_time_promise_rate": round(float(orders["on_time"].all().mean()), 4) if n_orders else None,
        "split_rate": round(float((s.groupby(x["order_id"])["from_location"].nunique() > 1).mean()), 4)
        if n_orders else None,
        "ship_from_store_share": round(float((x["node_type"] == "store").mean()), 4) if len(s) else None,
        "store_stockouts_caused": int(below.sum()),
        "store_stockout_cost_est": round(float(x["stockout_cost"].sum()), 2),
        "exceptions": int(exception.sum()),
        "exceptions_by_status": lines.loc[exception, "status"].value_counts().to_dict(),
    }


def orchestration_report_lines(kpis: dict[str, Any]) -> list[str]:
    """The report's Markdown section on the day's order orchestration."""
    day = kpis.get("orchestration") or {}
    lines = ["", "## Order orchestration", ""]
    if not day.get("ran"):
        return [*lines, "No order line was routed this day."]

    def shown(key: str, pct: bool = False) -> str:
        value = day.get(key)
        return "n/a" if value is None else f"{value:.1%}" if pct else f"{value:g}"

    return [*lines,
            f"{day['lines_routed']} line(s) routed, {day['lines_released']} released in {day['orders_released']} "
            f"order(s): fulfilment cost per order {shown('fulfilment_cost_per_order')}, on-time promise rate "
            f"{shown('on_time_promise_rate', True)}, split rate {shown('split_rate', True)}, ship-from-store "
            f"share {shown('ship_from_store_share', True)}.",
            f"Store stock-outs caused: {day['store_stockouts_caused']} line(s) took a store below its safety "
            f"stock (expected store margin lost {day['store_stockout_cost_est']:g}). Exceptions: "
            f"{day['exceptions']} {day['exceptions_by_status']}."]
