"""How a routing batch of ``order_orchestration`` is put together and what it hands to ERP staging.

A day's order lines are routed in batches (every few minutes). Each batch routes the lines that arrived
by its cut-off and that no earlier batch routed; what earlier batches of the day routed is read back from
ERP staging (every routed line is staged, within policy or not), and it has taken stock and pick capacity:

* **stock now**: the day's opening on-hand less the units of lines routed to the node today;
* **pick capacity left**: the labour plan's pick lines from the batch's hour on, but never more than the
  day's plan less the lines routed to the node today (lines routed earlier and not picked yet come first);
* **store demand**: the nightly's forecast of each store's daily demand, its mean and its spread.

An assignment becomes one ``fulfilment_assignment`` line: business key ``order_id:line_no`` (so a line is
staged once, ever), the node as ``from_location``, the customer's zone as ``to_location``, the line's
fulfilment cost as its value, the promise as ``need_by`` and the router's explanation, costs and exception
codes in ``explanation``. A line no node can ship now is not staged: the next batch tries it again.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import numpy as np
import pandas as pd

from include.orchestration.inputs import batch_nodes
from include.orchestration.params import NO_STOCK, RoutingParams
from include.orchestration.routing import Routing

DOC_TYPE = "fulfilment_assignment"
#: Staged line statuses that took stock and capacity (a rejected or expired line never shipped).
HOLDING = ("proposed", "auto_approved", "pending_approval", "approved", "released")
#: The ERP action of a line, by the kind of node it ships from.
ACTIONS = {"store": "ship_from_store", "ecom_fc": "ship_from_fc", "dc": "ship_from_dc"}
#: Days of store demand a forecast row averages (the router's protection window).
FORECAST_DAYS = 2


def batch_stamp(day: dt.date, until: dt.datetime) -> str:
    """``HHMM``: the batch's cut-off as minutes after the start of ``day`` (``2400`` at the next midnight)."""
    minutes = int((until - dt.datetime.combine(day, dt.time())).total_seconds() // 60)
    if not 0 <= minutes <= 24 * 60:
        raise ValueError(f"a batch of {day} ends within the day, got {until.isoformat()}")
    return f"{minutes // 60:02d}{minutes % 60:02d}"


def arrived_by(lines: pd.DataFrame, until: dt.datetime) -> pd.DataFrame:
    """The order lines ordered before ``until`` (naive, the orders' local time)."""
    return lines[pd.to_datetime(lines["ordered_at"]) < pd.Timestamp(until)].reset_index(drop=True)


def holding(staged: pd.DataFrame) -> pd.DataFrame:
    """The day's staged fulfilment lines that hold stock and capacity."""
    if staged.empty:
        return pd.DataFrame({"from_location": pd.Series(dtype=object), "sku": pd.Series(dtype=object),
                             "quantity": pd.Series(dtype=float)})
    return staged[staged["status"].isin(HOLDING)]


def stock_now(on_hand: pd.DataFrame, staged: pd.DataFrame) -> pd.DataFrame:
    """Opening on-hand less the units the day's routed lines take, per node and SKU (never below 0).

    Args:
        on_hand: ``location_id, sku, on_hand`` (and ``markdown_risk``) at the start of the day.
        staged: the day's staged fulfilment lines (``from_location, sku, quantity, status``).

    Returns:
        ``on_hand`` with the units still free.
    """
    taken = holding(staged).groupby(["from_location", "sku"])["quantity"].sum()
    key = pd.MultiIndex.from_arrays([on_hand["location_id"].astype(str), on_hand["sku"].astype(str)])
    used = taken.reindex(key).fillna(0.0).to_numpy(float)
    free = np.maximum(on_hand["on_hand"].to_numpy(float) - used, 0.0)
    return on_hand.assign(on_hand=free.astype(np.int64)).reset_index(drop=True)


def capacity_left(capabilities: pd.DataFrame, labour: pd.DataFrame, day: dt.date, hour: int,
                  staged: pd.DataFrame) -> pd.DataFrame:
    """Node capabilities with the pick lines still free for this batch.

    Lines routed earlier and not yet picked use the hours from ``hour`` first; as the batch cannot tell
    which were picked, it assumes every hour before ``hour`` was used in full:
    ``min(plan from hour, plan of the day - lines routed today)``.

    Args:
        capabilities: node capabilities extract.
        labour: labour schedule extract.
        day: the work date.
        hour: the batch's hour (24 and above: the day's work is over).
        staged: the day's staged fulfilment lines.

    Returns:
        ``capabilities`` with ``pick_capacity``.
    """
    later = batch_nodes(capabilities, labour, day, from_hour=min(int(hour), 24))
    whole = batch_nodes(capabilities, labour, day, from_hour=0)["pick_capacity"].to_numpy(float)
    routed = holding(staged).groupby("from_location").size()
    used = later["location_id"].astype(str).map(routed).fillna(0).to_numpy(float)
    left = np.minimum(later["pick_capacity"].to_numpy(float), np.maximum(whole - used, 0.0))
    return later.assign(pick_capacity=left)


def store_demand(forecast: pd.DataFrame, items: pd.DataFrame | None = None, *, days: int = FORECAST_DAYS,
                 channels: tuple[str, ...] = ("store",)) -> pd.DataFrame:
    """Each store's daily demand as the router prices stock-outs with it.

    Args:
        forecast: the night's forecast from today on (``location_id, sku, channel, step, mean, sigma``;
            ``step`` 1 is today, ``sigma`` the error of that day alone).
        items: the item master; its ``unit_price - unit_cost`` is the store's margin per unit lost.
        days: the steps averaged (today and tomorrow for the order router's protection window).
        channels: the channels whose locations count (``("store", "online")`` adds the web shop's
            fulfilment centre, where returned units of the web shop's sales are sold again).

    Returns:
        ``location_id, sku, mean_daily, sigma_daily`` (and ``unit_margin`` with ``items``), the locations
        of ``channels`` only.
    """
    rows = forecast[forecast["channel"].isin(channels) & (forecast["step"] <= days)]
    grouped = rows.assign(var=rows["sigma"].astype(float) ** 2).groupby(["location_id", "sku"], as_index=False)
    out = grouped.agg(mean_daily=("mean", "mean"), var=("var", "mean"))
    out = out.assign(mean_daily=out["mean_daily"].clip(lower=0.0), sigma_daily=np.sqrt(out["var"]))
    out = out[["location_id", "sku", "mean_daily", "sigma_daily"]]
    if items is not None and len(items):
        margin = (items["unit_price"].astype(float) - items["unit_cost"].astype(float)).clip(lower=0.0)
        out["unit_margin"] = out["sku"].map(pd.Series(margin.to_numpy(), index=items["sku"].astype(str))).fillna(0.0)
    return out.reset_index(drop=True)


def routing_params(orchestration: Any, base: RoutingParams | None = None) -> RoutingParams:
    """Router parameters with the policy's exception limits (``max_parcels``, ``max_cost_per_order``)."""
    base = base or RoutingParams()
    return RoutingParams(**{**base.__dict__, "max_parcels": int(orchestration.max_parcels),
                            "max_cost_per_order": float(orchestration.max_cost_per_order)})


def proposals(routing: Routing, lines: pd.DataFrame, batch: str) -> pd.DataFrame:
    """The routed lines of a batch as ``fulfilment_assignment`` proposals, before tiering.

    Args:
        routing: the router's result.
        lines: the order lines routed (for each line's customer zone).
        batch: the batch's stamp (:func:`batch_stamp`), kept in each explanation.

    Returns:
        One row per line a node ships (``doc_type, business_key, sku, from_location, to_location, action,
        quantity, unit_cost, value, need_by, explanation``).
    """
    a = routing.assignments
    a = a[a["location_id"].notna()].reset_index(drop=True)
    zone = lines.assign(key=lines["order_id"].astype(str) + ":" + lines["line_no"].astype(str)).set_index("key")
    details = routing.exceptions[routing.exceptions["exception"] != NO_STOCK].groupby("routing_key")["detail"]
    details = details.apply(list).to_dict()
    cost = a["line_cost"].to_numpy(float)
    qty = a["quantity"].to_numpy(float)
    explanation = [_explain(row, details.get(row["routing_key"], []), batch) for row in a.to_dict("records")]
    return pd.DataFrame({
        "doc_type": DOC_TYPE, "business_key": a["routing_key"].astype(str),
        "sku": a["sku"].astype(str), "from_location": a["location_id"].astype(str),
        "to_location": a["routing_key"].map(zone["customer_zone"]).astype(str),
        "action": a["node_type"].map(ACTIONS).astype(str),
        "quantity": qty, "value": np.round(np.maximum(cost, 0.0), 2),
        "unit_cost": np.round(np.maximum(cost, 0.0) / np.maximum(qty, 1.0), 4),
        "need_by": pd.to_datetime(a["promised_date"]).dt.date, "explanation": explanation,
    })


_COSTS = ("shipping_cost", "pick_cost", "split_cost", "late_cost", "stockout_cost", "line_cost", "order_cost")


def _explain(row: dict[str, Any], details: list[str], batch: str) -> dict[str, Any]:
    codes = [c for c in str(row["exceptions"] or "").split(";") if c and c != NO_STOCK]
    expected = row["expected_delivery_date"]
    return {
        "workflow": "orchestration", "batch": batch, "order_id": str(row["order_id"]),
        "line_no": int(row["line_no"]), "node_type": str(row["node_type"]),
        "parcels_in_order": int(row["parcels_in_order"]), "on_time": bool(row["on_time"]),
        "late_days": int(row["late_days"]),
        "expected_delivery_date": "" if pd.isna(expected) else str(pd.Timestamp(expected).date()),
        **{c: round(float(row[c]), 4) for c in _COSTS},
        "candidates": str(row["candidates"]), "reason": str(row["reason"]), "why": str(row["explanation"]),
        "exceptions": codes, "exception_details": [str(d) for d in details],
    }
