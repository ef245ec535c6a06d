"""Urgent moves for a sensed surge: where the missing units come from today, and what it costs.

For every SKU with a surge, each *receiver* (a store or the ecommerce fulfilment centre that will run short
before its next regular delivery) is matched with *donors* that hold stock beyond their own need over the
same window: stores of the same region (a same-day store-to-store transfer), any store for the fulfilment
centre (ship stock to the web shop's node), and the region's DC (an expedited delivery, which costs a
share of the value on top of the transfer). All receivers and donors of a SKU are solved together
(:func:`include.decisions.propose.solve_transfers`, margin saved less the move's cost per unit); a move
that costs more than the margin it saves is never proposed. Whatever no donor can cover becomes a raised,
expedited replenishment order to the receiver's supplier, in whole case packs.

Every line says why: what sold against what was expected since the surge began, the surge's estimated
size, the hours to stock-out, the units short before the next delivery, the margin at stake, and the cost
of the move. Its business key names the route and SKU, so a later hour's run updates the same line instead
of adding another.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import pandas as pd

from include.decisions.params import PROPOSAL_COLUMNS
from include.decisions.propose import solve_transfers

#: The location type of the ecommerce fulfilment centre in the location master.
FC_TYPE = "ecom_fc"
RECEIVER_COLUMNS = ["location_id", "sku", "channel", "shortfall", "hours_to_stockout", "on_hand",
                    "sold_since_onset", "expected_since_onset", "ratio", "onset_hour", "statistic"]
DONOR_COLUMNS = ["location_id", "sku", "spare"]


@dataclass(frozen=True)
class MoveCosts:
    """What a same-day move costs and how long it takes.

    Attributes:
        expedite_pct_of_value: An expedited DC delivery's surcharge, as a share of the goods' cost.
        handling_per_unit: Picking and packing a unit out of a store for another node.
        transfer_hours: Hours a same-day store-to-store (or store-to-FC) transfer takes.
        expedite_hours: Hours an expedited DC delivery takes.
        supplier_expedite_days: Days a raised, expedited supplier order takes.
    """

    expedite_pct_of_value: float = 0.08
    handling_per_unit: float = 0.15
    transfer_hours: float = 4.0
    expedite_hours: float = 6.0
    supplier_expedite_days: int = 2

    @classmethod
    def from_policy(cls, costs: dict[str, float]) -> MoveCosts:
        """The policy file's ``costs`` section, where it names these rates."""
        return cls(expedite_pct_of_value=float(costs.get("expedite_cost_pct_of_value", cls.expedite_pct_of_value)),
                   handling_per_unit=float(costs.get("store_handling_cost_per_unit", cls.handling_per_unit)))


def propose_urgent_moves(receivers: pd.DataFrame, donors: pd.DataFrame, items: pd.DataFrame, locations: pd.DataFrame,
                         ds: dt.date, costs: MoveCosts = MoveCosts()) -> pd.DataFrame:
    """Transfers, expedites and raised orders that cover the surges' shortfalls.

    Args:
        receivers: One row per surging series that will run short (:data:`RECEIVER_COLUMNS`):
            ``shortfall`` units it lacks before its next regular delivery, with the sensing evidence.
        donors: Stock each location can spare of each SKU beyond its own need (:data:`DONOR_COLUMNS`; with
            ``keep`` and ``need``, what it keeps for itself and its own need, the line says so).
        items: Item master (``sku, unit_price, unit_cost, case_pack, supplier_id``).
        locations: Location master (``location_id, location_type, region, parent_dc,
            transfer_cost_per_unit``).
        ds: The trading day.
        costs: What moves cost (:class:`MoveCosts`).

    Returns:
        Proposal lines (:data:`include.decisions.params.PROPOSAL_COLUMNS`).
    """
    if receivers.empty:
        return pd.DataFrame(columns=PROPOSAL_COLUMNS)
    loc = locations.set_index("location_id")
    item = items.set_index("sku")
    rows: list[dict] = []
    for sku, need in receivers[receivers["shortfall"] >= 1].groupby("sku", sort=True):
        if sku not in item.index:
            continue
        spare = donors[(donors["sku"] == sku) & (donors["spare"] >= 1)]
        spare = spare[~spare["location_id"].isin(need["location_id"])]
        rows.extend(_moves_of_sku(sku, need.reset_index(drop=True), spare.reset_index(drop=True), item.loc[sku], loc,
                                  ds, costs))
    return pd.DataFrame(rows, columns=PROPOSAL_COLUMNS)


def _route(receiver: pd.Series, donor: str, loc: pd.DataFrame) -> str | None:
    """How ``donor`` can supply ``receiver`` today: ``transfer``, ``expedite`` or ``None`` (it cannot)."""
    to, src = loc.loc[receiver["location_id"]], loc.loc[donor]
    if src["location_type"] == "dc":
        return "expedite" if to["location_type"] == FC_TYPE or to.get("parent_dc") == donor else None
    if src["location_type"] != "store":
        return None
    return "transfer" if to["location_type"] == FC_TYPE or to["region"] == src["region"] else None


def _moves_of_sku(sku: str, need: pd.DataFrame, spare: pd.DataFrame, it: pd.Series, loc: pd.DataFrame,
                  ds: dt.date, costs: MoveCosts) -> list[dict]:
    margin, cost = float(it["unit_price"] - it["unit_cost"]), float(it["unit_cost"])
    shortfall = np.ceil(need["shortfall"].to_numpy(float))
    routes = [[_route(r, d, loc) for d in spare["location_id"]] for _, r in need.iterrows()]
    unit_cost = np.array([[_unit_move_cost(route, to, d, cost, loc, costs) for route, d in zip(row, spare["location_id"], strict=True)]
                          for row, to in zip(routes, need["location_id"], strict=True)]).reshape(len(need), len(spare))
    benefit = np.where(np.isfinite(unit_cost), margin - unit_cost, -1.0)
    moves = solve_transfers(shortfall, np.floor(spare["spare"].to_numpy(float)), benefit) if len(spare) else \
        np.zeros((len(need), 0))
    rows = []
    for i, j in zip(*np.nonzero(moves >= 1), strict=True):
        r, route, qty = need.iloc[i], routes[i][j], float(moves[i, j])
        hours = costs.transfer_hours if route == "transfer" else costs.expedite_hours
        rows.append(_line(sku, r, spare.at[j, "location_id"], route, qty, cost, margin, qty * unit_cost[i, j],
                          hours, ds, extra=_donor(spare.iloc[j])))
    uncovered = shortfall - moves.sum(axis=1)
    for i in np.flatnonzero(uncovered >= 1):
        r = need.iloc[i]
        pack = max(float(it.get("case_pack", 1) or 1), 1.0)
        qty = float(np.ceil(uncovered[i] / pack) * pack)
        rows.append(_line(sku, r, str(it["supplier_id"]), "raise_order", qty, cost, margin,
                          qty * cost * costs.expedite_pct_of_value, costs.supplier_expedite_days * 24.0, ds,
                          extra={"no_donor_could_cover": float(uncovered[i])}))
    return rows


def _donor(row: pd.Series) -> dict[str, float]:
    """What the donor could spare and, when the caller said so, what it keeps of its own and what for."""
    out = {"donor_spare": float(row["spare"])}
    for column, key in (("keep", "donor_keeps"), ("need", "donor_need")):
        if column in row.index and pd.notna(row[column]):
            out[key] = float(row[column])
    return out


def _unit_move_cost(route: str | None, to: str, donor: str, cost: float, loc: pd.DataFrame, costs: MoveCosts) -> float:
    if route is None:
        return np.inf
    transfer = float(loc.at[to, "transfer_cost_per_unit"]) if "transfer_cost_per_unit" in loc.columns else 0.0
    if route == "expedite":
        return transfer + cost * costs.expedite_pct_of_value
    return transfer + costs.handling_per_unit


def _line(sku: str, r: pd.Series, source: str, route: str, qty: float, unit_cost: float, margin: float,
          move_cost: float, hours: float, ds: dt.date, extra: dict) -> dict:
    receiver = str(r["location_id"])
    doc_type, action = ("replenishment", "raise_order") if route == "raise_order" else ("transfer", f"urgent_{route}")
    arrives_h = float(hours)
    late = np.isfinite(r["hours_to_stockout"]) and arrives_h > float(r["hours_to_stockout"])
    return {
        "doc_type": doc_type, "business_key": f"urgent:{source}>{receiver}:{sku}", "sku": sku,
        "from_location": None if route == "raise_order" else source, "to_location": receiver,
        "supplier_id": source if route == "raise_order" else None, "po_id": None, "po_line": None, "action": action,
        "quantity": qty, "unit_cost": unit_cost, "value": round(qty * unit_cost, 2),
        "need_by": ds + dt.timedelta(days=int(np.ceil(arrives_h / 24.0))) if route == "raise_order" else ds,
        "explanation": {
            "channel": str(r["channel"]), "surge_ratio": round(float(r["ratio"]), 2),
            "surge_onset_hour": int(r["onset_hour"]), "sold_since_onset": float(r["sold_since_onset"]),
            "expected_since_onset": round(float(r["expected_since_onset"]), 2),
            "evidence_log_likelihood_ratio": round(float(r["statistic"]), 2),
            "on_hand": float(r["on_hand"]), "units_short_before_next_delivery": round(float(r["shortfall"]), 2),
            "hours_to_stockout": None if not np.isfinite(r["hours_to_stockout"]) else round(float(r["hours_to_stockout"]), 1),
            "hours_to_arrive": arrives_h, "arrives_after_stockout": bool(late),
            "margin_at_stake": round(qty * margin, 2), "move_cost": round(move_cost, 2),
            "net_benefit": round(qty * margin - move_cost, 2), **extra,
        },
    }
