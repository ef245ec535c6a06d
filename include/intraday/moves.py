"""Urgent moves for a sensed surge: where the missing units come from today, and what it costs.

For every SKU with a surge, each *receiver* (a store or the ecommerce fulfilment centre that will run short
before its next regular delivery) is matched with *donors* that hold stock beyond their own need over the
same window: stores of the same region (a same-day store-to-store transfer), any store for the fulfilment
centre (ship stock to the web shop's node), and the region's DC (an expedited delivery, which costs a
share of the value on top of the transfer). All receivers and donors of a SKU are solved together
(:func:`include.decisions.propose.solve_transfers`, margin saved less the move's cost per unit); a move
that costs more than the margin it saves is never proposed. What a receiver needs after a store transfer
could arrive but before a DC expedite would is served by transfers only: a cheaper expedite that lands
after the shelf ran empty (or the store closed) saves none of those sales. Whatever no donor can cover becomes a raised,
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
from include.erp.staging import UNDECIDED

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
    def from_policy(cls, costs: dict[str, float], intraday=None) -> MoveCosts:  # noqa: ANN001
        """The policy file's ``costs`` section, where it names these rates, and the hours of its ``intraday``
        section (:class:`include.governance.policy.Intraday`) when given."""
        hours = {} if intraday is None else {"transfer_hours": float(intraday.transfer_hours),
                                             "expedite_hours": float(intraday.expedite_hours)}
        return cls(expedite_pct_of_value=float(costs.get("expedite_cost_pct_of_value", cls.expedite_pct_of_value)),
                   handling_per_unit=float(costs.get("store_handling_cost_per_unit", cls.handling_per_unit)), **hours)

    def hours(self, route: str) -> float:
        """Hours a move by ``route`` (``transfer`` or ``expedite``) takes to arrive."""
        return self.transfer_hours if route == "transfer" else self.expedite_hours


def propose_urgent_moves(receivers: pd.DataFrame, donors: pd.DataFrame, items: pd.DataFrame, locations: pd.DataFrame,
                         ds: dt.date, costs: MoveCosts = MoveCosts()) -> pd.DataFrame:
    """Transfers, expedites and raised orders that cover the surges' shortfalls.

    Args:
        receivers: One row per surging series that will run short (:data:`RECEIVER_COLUMNS`):
            ``shortfall`` units it lacks before its next regular delivery, with the sensing evidence; with
            ``short_after_transfer`` and ``short_after_expedite`` (what it still lacks once each route
            arrives) the faster route serves what only it arrives in time for.
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
    moves = _solve_in_time(need, shortfall, spare, routes, benefit, costs) if len(spare) else np.zeros((len(need), 0))
    rows = []
    for i, j in zip(*np.nonzero(moves >= 1), strict=True):
        r, route, qty = need.iloc[i], routes[i][j], float(moves[i, j])
        rows.append(_line(sku, r, spare.at[j, "location_id"], route, qty, cost, margin, qty * unit_cost[i, j],
                          costs.hours(route), ds, extra={**_donor(spare.iloc[j]), **_in_time(r, route)}))
    on_order = need["on_order"].fillna(0.0).to_numpy(float) if "on_order" in need.columns else 0.0
    uncovered = shortfall - moves.sum(axis=1) - on_order
    for i in np.flatnonzero(uncovered >= 1):
        r = need.iloc[i]
        pack = max(float(it.get("case_pack", 1) or 1), 1.0)
        qty = float(np.ceil(uncovered[i] / pack) * pack)
        rows.append(_line(sku, r, str(it["supplier_id"]), "raise_order", qty, cost, margin,
                          qty * cost * costs.expedite_pct_of_value, costs.supplier_expedite_days * 24.0, ds,
                          extra={"no_donor_could_cover": float(uncovered[i])}))
    return rows


#: Columns of a receiver that say what it still lacks once each route's move arrives (``sense_day``'s).
SHORT_AFTER = {"transfer": "short_after_transfer", "expedite": "short_after_expedite"}


def _solve_in_time(need: pd.DataFrame, shortfall: np.ndarray, spare: pd.DataFrame, routes: list[list[str | None]],
                   benefit: np.ndarray, costs: MoveCosts) -> np.ndarray:
    """The moves of one SKU, the faster route serving what only it arrives in time for.

    A receiver's shortfall is split where the routes' arrivals differ: the units it will need after the
    faster route arrives but before the slower one (``short_after`` of the fast route less that of the slow
    one) can be served by the faster route only; the rest by either. Both parts are solved together
    (:func:`include.decisions.propose.solve_transfers`), so a cheaper move arriving after the shelves ran
    empty is not chosen over a dearer one that arrives while customers still ask. Receivers without the
    ``short_after_*`` columns are one part, served by the cheapest route as before.
    """
    fast, slow = sorted(SHORT_AFTER, key=costs.hours)
    urgent = np.zeros(len(need))
    if costs.hours(fast) < costs.hours(slow) and set(SHORT_AFTER.values()) <= set(need.columns):
        gap = need[SHORT_AFTER[fast]].fillna(0.0).to_numpy(float) - need[SHORT_AFTER[slow]].fillna(0.0).to_numpy(float)
        urgent = np.clip(np.round(gap), 0.0, shortfall)
    only_fast = np.array([[route == fast for route in row] for row in routes]).reshape(benefit.shape)
    parts = solve_transfers(np.concatenate([urgent, shortfall - urgent]), np.floor(spare["spare"].to_numpy(float)),
                            np.vstack([np.where(only_fast, benefit, -1.0), benefit]))
    return parts[: len(need)] + parts[len(need):]


def _in_time(receiver: pd.Series, route: str) -> dict[str, float]:
    """Units the receiver will lose before a move by ``route`` arrives (its shortfall less what is still
    short then), and what today's earlier moves are already bringing it, when the receiver says."""
    out = {}
    column = SHORT_AFTER[route]
    if column in receiver.index and pd.notna(receiver[column]):
        out["lost_before_arrival"] = round(max(float(receiver["shortfall"]) - float(receiver[column]), 0.0), 1)
    if "moving_in" in receiver.index and pd.notna(receiver["moving_in"]) and receiver["moving_in"] > 0:
        out["already_moving_in"] = float(receiver["moving_in"])
    return out


#: Statuses of a staged line that commit its stock: decided for, and not undone.
COMMITTED_STATUSES = ("approved", "released")
_MOVES = ("urgent_transfer", "urgent_expedite")


def committed_moves(lines: pd.DataFrame, since_hour: float) -> pd.DataFrame:
    """Today's decided urgent moves that stock read at the end of ``since_hour`` does not show yet.

    A move staged by the run of hour ``H`` (its explanation's ``as_of``) leaves its donor at ``H + 1`` and
    reaches its receiver ``hours_to_arrive`` later. Units that left after ``since_hour`` are still in the
    donor's count (``moving_out``); units arriving after it are not in the receiver's (``moving_in``).

    Args:
        lines: The day's staged lines (``include.erp.staging.run_lines``): ``status, action, from_location,
            to_location, sku, quantity, explanation``.
        since_hour: The hour the stock was read at.

    Returns:
        :data:`include.intraday.day.COMMITTED_COLUMNS`, one row per location and SKU; ``on_order`` is what
        today's decided raised orders bring it (after the window: it lowers what is raised again, not the
        shortfall).
    """
    columns = ["location_id", "sku", "moving_in", "moving_out", "on_order"]
    decided = lines[lines["status"].isin(COMMITTED_STATUSES)] if len(lines) else lines
    done = decided[decided["action"].isin(_MOVES)] if len(decided) else decided
    raised = decided[decided["action"] == "raise_order"] if len(decided) else decided
    raised = pd.DataFrame({"location_id": raised["to_location"], "sku": raised["sku"], "moving_in": 0.0,
                           "moving_out": 0.0, "on_order": raised["quantity"].astype(float)})
    if done.empty:
        return raised.groupby(["location_id", "sku"], as_index=False).sum()[columns] if len(raised) else \
            pd.DataFrame(columns=columns)
    why = done["explanation"].map(lambda e: e if isinstance(e, dict) else {})
    leaves = why.map(lambda e: int(str(e.get("as_of", "T-1"))[-2:]) + 1 if e.get("as_of") else np.nan).astype(float)
    arrives = leaves + why.map(lambda e: float(e.get("hours_to_arrive") or 0.0)).astype(float)
    qty = done["quantity"].astype(float)
    into = pd.DataFrame({"location_id": done["to_location"], "sku": done["sku"],
                         "moving_in": qty.where(arrives.fillna(np.inf) > since_hour, 0.0), "moving_out": 0.0,
                         "on_order": 0.0})
    out = pd.DataFrame({"location_id": done["from_location"], "sku": done["sku"], "moving_in": 0.0,
                        "moving_out": qty.where(leaves.fillna(np.inf) > since_hour, 0.0), "on_order": 0.0})
    moving = pd.concat([into, out, raised], ignore_index=True).groupby(["location_id", "sku"], as_index=False).sum()
    return moving[(moving[columns[2:]] > 0).any(axis=1)][columns].reset_index(drop=True)


def topup_keys(lines: pd.DataFrame, staged: pd.DataFrame) -> pd.DataFrame:
    """``lines`` with the business key of a route already decided today moved to its next top-up key.

    The first move of a route is ``urgent:<from>><to>:<sku>``; once decided it is never changed, so more
    for the same route is ``<key>+1``, then ``+2``: a later hour updates an undecided line and tops up a
    decided one, never both.

    Args:
        lines: Proposals (``business_key``).
        staged: The day's staged lines (``business_key, status``).
    """
    if lines.empty or staged.empty:
        return lines
    decided = staged.loc[~staged["status"].isin(UNDECIDED), "business_key"].astype(str)
    base = decided.str.replace(r"\+\d+$", "", regex=True)
    count = base.value_counts()
    n = lines["business_key"].map(count).fillna(0).astype(int)
    keys = np.where(n > 0, lines["business_key"] + "+" + n.astype(str), lines["business_key"])
    return lines.assign(business_key=keys)


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
