"""The result of routing a batch: assignments with their costs and explanation, and the exceptions.

Every policy (the router and the baselines) ends here, priced by
:func:`include.orchestration.costs.price_routing`, so their frames and figures compare like with like.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from include.orchestration.costs import Priced, price_routing
from include.orchestration.inputs import Problem
from include.orchestration.params import (
    COST_ABOVE_THRESHOLD,
    NO_STOCK,
    PROMISE_MISSED,
    SPLIT_ABOVE_N,
    STORE_BELOW_SAFETY,
    RoutingParams,
)

ASSIGNMENT_COLUMNS = [
    "routing_key", "order_id", "line_no", "sku", "quantity", "location_id", "node_type", "promised_date",
    "expected_delivery_date", "late_days", "on_time", "parcels_in_order", "shipping_cost", "pick_cost",
    "split_cost", "late_cost", "stockout_cost", "line_cost", "order_cost", "candidates", "reason",
    "explanation", "exceptions",
]
EXCEPTION_COLUMNS = ["routing_key", "order_id", "line_no", "location_id", "exception", "detail"]


@dataclass(frozen=True)
class Routing:
    """Assignments of one batch and the exceptions among them.

    Attributes:
        assignments: one row per order line (columns :data:`ASSIGNMENT_COLUMNS`); ``location_id`` is empty
            for a line left for the next batch.
        exceptions: one row per line and exception code (columns :data:`EXCEPTION_COLUMNS`).
        summary: counts and totals of the batch (lines, orders, cost, solver statistics).
    """

    assignments: pd.DataFrame
    exceptions: pd.DataFrame
    summary: dict[str, Any] = field(default_factory=dict)


def not_routed(lines: pd.DataFrame, already_routed) -> pd.DataFrame:
    """The order lines whose ``routing_key`` (``order_id:line_no``) is not in ``already_routed``."""
    done = set(already_routed)
    if not done or not len(lines):
        return lines
    keys = lines["order_id"].astype(str) + ":" + lines["line_no"].astype(str)
    return lines[~keys.isin(done)]


def build_routing(p: Problem, params: RoutingParams, node_of_line: np.ndarray, candidates: np.ndarray,
                  reason: np.ndarray, explanation: np.ndarray, summary: dict[str, Any]) -> Routing:
    """Price a routing and lay it out as frames.

    Args:
        p: the packed batch.
        params: router parameters (costs and exception thresholds).
        node_of_line: node code per line, -1 for unfilled.
        candidates: per line, the candidates considered with their cost (text).
        reason: per line, the reason code of the choice.
        explanation: per line, the explanation in words.
        summary: what the policy reports about itself; the batch's totals are added.

    Returns:
        The routing.
    """
    priced = price_routing(p, params, node_of_line)
    total = priced.total
    n_orders = int(p.order.max()) + 1 if p.n_lines else 0
    order_cost = np.bincount(p.order, weights=total, minlength=n_orders)
    # The threshold is on what the order costs to fulfil, not on the penalty of a line left waiting.
    routed_cost = np.bincount(p.order, weights=total - priced.unfilled, minlength=n_orders)
    flags = _flags(p, params, node_of_line, priced, routed_cost[p.order])
    done = node_of_line >= 0
    node = np.maximum(node_of_line, 0)
    transit = np.where(done, p.transit[node, np.maximum(p.zone, 0)], 0).astype(np.int64)
    delivery = p.promised + np.maximum(priced.late, 0).astype("timedelta64[D]")
    on_time_delivery = np.minimum(p.order_day + transit.astype("timedelta64[D]"), p.promised)
    kind = np.where(p.is_store, "store", np.where(p.is_fc, "ecom_fc", "dc"))
    assignments = pd.DataFrame({
        "routing_key": [f"{o}:{n}" for o, n in zip(p.order_id, p.line_no, strict=True)],
        "order_id": p.order_id, "line_no": p.line_no, "sku": p.sku_ids[p.sku], "quantity": p.qty,
        "location_id": np.where(done, p.node_ids[node], None),
        "node_type": np.where(done, kind[node], None),
        "promised_date": p.promised,
        "expected_delivery_date": np.where(done, np.where(priced.late > 0, delivery, on_time_delivery),
                                           np.datetime64("NaT", "D")).astype("datetime64[D]"),
        "late_days": priced.late, "on_time": done & (priced.late == 0), "parcels_in_order": priced.parcels,
        "shipping_cost": priced.shipping, "pick_cost": priced.pick, "split_cost": priced.split,
        "late_cost": priced.late_cost, "stockout_cost": priced.stockout, "line_cost": total,
        "order_cost": order_cost[p.order], "candidates": candidates, "reason": reason,
        "explanation": explanation, "exceptions": [";".join(f) for f in flags],
    })
    exceptions = _exception_frame(assignments, flags, priced, p, params)
    summary = {**summary, **batch_summary(p, priced, node_of_line, len(exceptions))}
    return Routing(assignments=assignments, exceptions=exceptions, summary=summary)


def _flags(p: Problem, params: RoutingParams, node_of_line: np.ndarray, priced: Priced,
           order_cost: np.ndarray) -> list[list[str]]:
    checks = [
        (SPLIT_ABOVE_N, priced.parcels > params.max_parcels),
        (STORE_BELOW_SAFETY, priced.below_safety),
        (PROMISE_MISSED, priced.late > 0),
        (COST_ABOVE_THRESHOLD, order_cost > params.max_cost_per_order),
        (NO_STOCK, node_of_line < 0),
    ]
    flags: list[list[str]] = [[] for _ in range(p.n_lines)]
    for code, hit in checks:
        for i in np.nonzero(hit)[0]:
            flags[i].append(code)
    return flags


def _exception_frame(assignments: pd.DataFrame, flags: list[list[str]], priced: Priced, p: Problem,
                     params: RoutingParams) -> pd.DataFrame:
    line = np.array([i for i, f in enumerate(flags) for _ in f], np.int64)
    code = np.array([c for f in flags for c in f], dtype=object)
    if not len(line):
        return pd.DataFrame(columns=EXCEPTION_COLUMNS)
    a = assignments
    location = a["location_id"].to_numpy(object)[line]
    sku = a["sku"].to_numpy(object)[line]
    promised = a["promised_date"].to_numpy("datetime64[D]")[line]
    order_cost = a["order_cost"].to_numpy(float)[line]
    detail = [
        f"order ships in {priced.parcels[i]} parcels, above {params.max_parcels}" if c == SPLIT_ABOVE_N else
        f"store {loc} left below its safety stock of {k}" if c == STORE_BELOW_SAFETY else
        f"arrives {priced.late[i]} day(s) after the promise {pr}" if c == PROMISE_MISSED else
        f"order costs {oc:.2f}, above {params.max_cost_per_order:.2f}" if c == COST_ABOVE_THRESHOLD else
        "no node can ship the line now: left for the next batch"
        for i, c, loc, k, pr, oc in zip(line, code, location, sku, promised, order_cost, strict=True)
    ]
    return pd.DataFrame({"routing_key": a["routing_key"].to_numpy(object)[line],
                         "order_id": a["order_id"].to_numpy(object)[line],
                         "line_no": a["line_no"].to_numpy(np.int64)[line], "location_id": location,
                         "exception": code, "detail": detail})[EXCEPTION_COLUMNS]


def batch_summary(p: Problem, priced: Priced, node_of_line: np.ndarray, n_exceptions: int) -> dict[str, Any]:
    """Totals of a priced routing: the figures the benchmark and the report compare."""
    n_orders = int(p.order.max()) + 1 if p.n_lines else 0
    done = node_of_line >= 0
    order_late = np.zeros(n_orders, bool)
    np.logical_or.at(order_late, p.order, (priced.late != 0))
    first = np.r_[True, p.order[1:] != p.order[:-1]] if p.n_lines else np.zeros(0, bool)
    return {
        "lines": p.n_lines, "orders": n_orders, "lines_unfilled": int((~done).sum()),
        "total_cost": float(priced.total.sum()),
        "cost_per_order": float(priced.total.sum() / n_orders) if n_orders else 0.0,
        "on_time_rate": float(1.0 - order_late.mean()) if n_orders else 1.0,
        "split_rate": float((priced.parcels[first] > 1).mean()) if n_orders else 0.0,
        "ship_from_store_share": float(p.is_store[node_of_line[done]].mean()) if done.any() else 0.0,
        "lines_below_safety": int(priced.below_safety.sum()), "exceptions": n_exceptions,
        "cost_parts": {name: float(getattr(priced, name).sum()) for name in
                       ("shipping", "pick", "split", "late_cost", "stockout", "unfilled", "aging_credit")},
    }
