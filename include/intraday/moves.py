"""Urgent moves for a sensed surge: where the missing units come from today, and what it costs.

For every SKU with a surge, each *receiver* (a store or the ecommerce fulfilment centre that will run short
before its next regular delivery) is matched with *donors* that hold stock beyond their own need over the
same window: stores of the same region (a same-day store-to-store transfer), any store for the fulfilment
centre (its units serve the web shop's orders: shipped from the store's shelf to the customers when the
policy has ``ship_from_store_hours``, else transferred to the centre), and the region's DC (an expedited
delivery, which costs a share of the value on top of the transfer). All receivers and donors of a SKU are
solved together (:func:`include.decisions.propose.solve_transfers`, margin saved less the move's cost per
unit); a move that costs more than the margin it saves is never proposed. What a receiver needs after a
faster route could arrive but before a slower one would is served by the faster routes only: a cheaper
expedite that lands after the shelf ran empty (or the store closed) saves none of those sales, and a web
shop surge that a store transfer would meet in three hours is met by the stores shipping its orders from
the next batch. Whatever no donor can cover of a surge becomes a raised, expedited replenishment order to
the receiver's supplier, in whole case packs. A receiver that is not surging but runs dry before its next
delivery (``reason`` ``stockout``, :class:`include.intraday.day.Rescue`) is served by the same routes;
what no donor covers of it is left to the next night's replenishment.

Every line says why: for a surge, what sold against what was expected since it began, its estimated size;
for a shelf running dry, what it expects to sell before its next delivery; for both, the hours to
stock-out, the units short before the next delivery, the margin at stake, and the cost of the move. Its
business key names the route and SKU, so a later hour's run updates the same line instead of adding
another.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import pandas as pd

from include.decisions.params import PROPOSAL_COLUMNS
from include.decisions.propose import solve_transfers
from include.erp.line_tables import COMMITTED, UNDECIDED
from include.intraday.day import STOCKOUT, SURGE

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
        ship_hours: Hours until the web shop's orders are served from a store's shelf once the store gives
            it units (``None``: a store gives the web shop stock by a transfer to the fulfilment centre).
        ship_cost_per_unit: What shipping a web unit from a store costs beyond shipping it from the
            fulfilment centre (the store's picking is ``handling_per_unit`` on top).
    """

    expedite_pct_of_value: float = 0.08
    handling_per_unit: float = 0.15
    transfer_hours: float = 4.0
    expedite_hours: float = 6.0
    supplier_expedite_days: int = 2
    ship_hours: float | None = None
    ship_cost_per_unit: float = 1.5

    @classmethod
    def from_policy(cls, costs: dict[str, float], intraday=None) -> MoveCosts:  # noqa: ANN001
        """The policy file's ``costs`` section, where it names these rates, and the hours of its ``intraday``
        section (:class:`include.governance.policy.Intraday`) when given."""
        hours = {} if intraday is None else {
            "transfer_hours": float(intraday.transfer_hours), "expedite_hours": float(intraday.expedite_hours),
            "ship_hours": None if intraday.ship_from_store_hours is None else float(intraday.ship_from_store_hours)}
        return cls(expedite_pct_of_value=float(costs.get("expedite_cost_pct_of_value", cls.expedite_pct_of_value)),
                   handling_per_unit=float(costs.get("store_handling_cost_per_unit", cls.handling_per_unit)),
                   ship_cost_per_unit=float(costs.get("ship_from_store_cost_per_unit", cls.ship_cost_per_unit)),
                   **hours)

    def hours(self, route: str) -> float:
        """Hours a move by ``route`` (``ship``, ``transfer`` or ``expedite``) takes to arrive."""
        if route == "ship":
            return float(self.ship_hours or 0.0)
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


#: Routes a donor can supply a receiver by, as codes of :func:`_routes` (0: none).
ROUTES = (None, "ship", "transfer", "expedite")


def _routes(need: pd.DataFrame, spare: pd.DataFrame, loc: pd.DataFrame, ship: bool = False) -> np.ndarray:
    """``[receivers, donors]`` codes of :data:`ROUTES`: how each donor can supply each receiver today.

    A DC expedites to its own stores and to the fulfilment centre; a store transfers to a store of its region,
    and serves the web shop's orders from its shelf (``ship``, when ``ship`` and the locations'
    ``ships_parcels``, where they carry it, does not say it cannot) or else transfers to the fulfilment centre.
    """
    to = loc.reindex(need["location_id"].to_numpy())
    src = loc.reindex(spare["location_id"].to_numpy())

    def text(frame: pd.DataFrame, column: str) -> np.ndarray:  # missing (None, NaN, pd.NA) as None: equal to nothing
        if column not in frame.columns:
            return np.full(len(frame), None, object)
        values = frame[column].astype(object)
        return values.where(values.notna(), None).to_numpy(object)

    to_fc = (text(to, "location_type") == FC_TYPE)[:, None]
    src_type = text(src, "location_type")[None, :]
    own_dc = text(to, "parent_dc")[:, None] == spare["location_id"].to_numpy(object)[None, :]
    to_region, src_region = text(to, "region"), text(src, "region")
    same_region = (to_region[:, None] == src_region[None, :]) & (to_region != None)[:, None]  # noqa: E711
    ships = np.array([True if v is None else bool(v) for v in text(src, "ships_parcels")], bool)
    store_to_fc = np.where(ship & ships[None, :], ROUTES.index("ship"), ROUTES.index("transfer"))
    store = np.where(to_fc, store_to_fc, np.where(same_region, ROUTES.index("transfer"), 0))
    dc = np.where(to_fc | own_dc, ROUTES.index("expedite"), 0)
    return np.where(src_type == "dc", dc, np.where(src_type == "store", store, 0)).astype(np.int8)


def _moves_of_sku(sku: str, need: pd.DataFrame, spare: pd.DataFrame, it: pd.Series, loc: pd.DataFrame,
                  ds: dt.date, costs: MoveCosts) -> list[dict]:
    margin, cost = float(it["unit_price"] - it["unit_cost"]), float(it["unit_cost"])
    shortfall = np.ceil(need["shortfall"].to_numpy(float))
    codes = _routes(need, spare, loc, ship=costs.ship_hours is not None)
    routes = np.array(ROUTES, dtype=object)[codes]
    unit_cost = _unit_move_costs(codes, need, cost, loc, costs)
    benefit = np.where(np.isfinite(unit_cost), margin - unit_cost, -1.0)
    moves = _solve_in_time(need, shortfall, spare, routes, benefit, costs) if len(spare) else np.zeros((len(need), 0))
    rows = []
    for i, j in zip(*np.nonzero(moves >= 1), strict=True):
        r, route, qty = need.iloc[i], routes[i, j], float(moves[i, j])
        rows.append(_line(sku, r, spare.at[j, "location_id"], route, qty, cost, margin, qty * unit_cost[i, j],
                          costs.hours(route), ds, extra={**_donor(spare.iloc[j]), **_in_time(r, route)}))
    on_order = need["on_order"].fillna(0.0).to_numpy(float) if "on_order" in need.columns else 0.0
    uncovered = shortfall - moves.sum(axis=1) - on_order
    # A shelf running dry without a surge is the next night's to reorder; only a surge raises an order today.
    surge = need["reason"].ne(STOCKOUT).to_numpy() if "reason" in need.columns else np.ones(len(need), bool)
    for i in np.flatnonzero((uncovered >= 1) & surge):
        r = need.iloc[i]
        pack = max(float(it.get("case_pack", 1) or 1), 1.0)
        qty = float(np.ceil(uncovered[i] / pack) * pack)
        rows.append(_line(sku, r, str(it["supplier_id"]), "raise_order", qty, cost, margin,
                          qty * cost * costs.expedite_pct_of_value, costs.supplier_expedite_days * 24.0, ds,
                          extra={"no_donor_could_cover": float(uncovered[i])}))
    return rows


#: Columns of a receiver that say what it still lacks once each route's move arrives (``sense_day``'s).
SHORT_AFTER = {"ship": "short_after_ship", "transfer": "short_after_transfer", "expedite": "short_after_expedite"}


def _solve_in_time(need: pd.DataFrame, shortfall: np.ndarray, spare: pd.DataFrame, routes: np.ndarray,
                   benefit: np.ndarray, costs: MoveCosts) -> np.ndarray:
    """The moves of one SKU, the faster routes serving what only they arrive in time for.

    A receiver's shortfall is split where the arrivals of the routes it can be served by differ: the units
    it will need after a route arrives but before its next slower one (``short_after`` of the one less
    that of the other) can be served by that route or faster ones only; the rest by any. All parts are
    solved together (:func:`include.decisions.propose.solve_transfers`), so a cheaper move arriving after
    the shelves ran empty is not chosen over a dearer one that arrives while customers still ask.
    Receivers without the ``short_after_*`` columns are one part, served by the cheapest route.
    """
    timed = sorted((r for r in SHORT_AFTER if (routes == r).any() and SHORT_AFTER[r] in need), key=costs.hours)
    hours = np.full(benefit.shape, np.inf)
    for r in SHORT_AFTER:
        hours[routes == r] = costs.hours(r)
    has = {r: (routes == r).any(axis=1) for r in timed}
    left = shortfall.astype(float).copy()
    parts = np.zeros((len(timed), len(need)))
    for i in range(len(need)):
        mine = [r for r in timed if has[r][i]]
        for fast, slow in zip(mine, mine[1:], strict=False):
            if costs.hours(fast) < costs.hours(slow):
                gap = _num(need.at[i, SHORT_AFTER[fast]]) - _num(need.at[i, SHORT_AFTER[slow]])
                parts[timed.index(fast), i] = min(max(round(gap), 0.0), left[i])
                left[i] -= parts[timed.index(fast), i]
    tiers = [k for k in range(len(timed)) if parts[k].any()]
    demand = np.concatenate([*(parts[k] for k in tiers), left])
    allowed = [np.where(hours <= costs.hours(timed[k]), benefit, -1.0) for k in tiers]
    solved = solve_transfers(demand, np.floor(spare["spare"].to_numpy(float)), np.vstack([*allowed, benefit]))
    return solved.reshape(len(tiers) + 1, len(need), -1).sum(axis=0)


def _num(value: object) -> float:
    """``value`` as a float, 0 where it is missing."""
    return 0.0 if value is None or pd.isna(value) else float(value)


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


#: Actions that move units between two of the retailer's locations today.
MOVE_ACTIONS = ("urgent_transfer", "urgent_expedite", "ship_from_store")


def is_rescue(lines: pd.DataFrame) -> np.ndarray:
    """``[n]``: which of ``lines`` (proposals or staged lines, with ``explanation``) feed a shelf running dry
    without a surge (``reason`` ``stockout``)."""
    return np.array([isinstance(e, dict) and e.get("reason") == STOCKOUT for e in lines.get("explanation", [])],
                    bool)


def committed_moves(lines: pd.DataFrame, since_hour: float) -> pd.DataFrame:
    """Today's decided urgent moves that stock read at the end of ``since_hour`` does not show yet.

    A move staged by the run of hour ``H`` (its explanation's ``as_of``) leaves its donor at ``H + 1`` and
    reaches its receiver ``hours_to_arrive`` later. Units that left after ``since_hour`` are still in the
    donor's count (``moving_out``); units arriving after it are not in the receiver's (``moving_in``).
    Units a store ships to web customers (``ship_from_store``) are both all day: the web shop's stock never
    shows them and the store keeps them for its web orders. (The stock read after the store shipped some
    has them out already, so the store's spare is then counted short by those units, and the web shop is
    credited with the whole allocation until the day ends: the surge's next top-up comes late, never twice.)

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
    decided = lines[lines["status"].isin(COMMITTED)] if len(lines) else lines
    done = decided[decided["action"].isin(MOVE_ACTIONS)] if len(decided) else decided
    raised = decided[decided["action"] == "raise_order"] if len(decided) else decided
    raised = pd.DataFrame({"location_id": raised["to_location"], "sku": raised["sku"], "moving_in": 0.0,
                           "moving_out": 0.0, "on_order": raised["quantity"].astype(float)})
    if done.empty:
        return raised.groupby(["location_id", "sku"], as_index=False).sum()[columns] if len(raised) else \
            pd.DataFrame(columns=columns)
    why = done["explanation"].map(lambda e: e if isinstance(e, dict) else {})
    leaves = _leaves(done)
    arrives = leaves + why.map(lambda e: float(e.get("hours_to_arrive") or 0.0)).astype(float)
    # Units a store gives the web shop stay on its shelf until web orders take them: no stock reading of the
    # day shows them at the web shop's node, so they count as moving for the whole day.
    shelf = (done["action"] == "ship_from_store").to_numpy()
    leaves, arrives = leaves.where(~shelf, np.inf), arrives.where(~shelf, np.inf)
    qty = done["quantity"].astype(float)
    into = pd.DataFrame({"location_id": done["to_location"], "sku": done["sku"],
                         "moving_in": qty.where(arrives.fillna(np.inf) > since_hour, 0.0), "moving_out": 0.0,
                         "on_order": 0.0})
    out = pd.DataFrame({"location_id": done["from_location"], "sku": done["sku"], "moving_in": 0.0,
                        "moving_out": qty.where(leaves.fillna(np.inf) > since_hour, 0.0), "on_order": 0.0})
    moving = pd.concat([into, out, raised], ignore_index=True).groupby(["location_id", "sku"], as_index=False).sum()
    return moving[(moving[columns[2:]] > 0).any(axis=1)][columns].reset_index(drop=True)


def _leaves(lines: pd.DataFrame) -> pd.Series:
    """The hour each staged line takes effect: the hour after its run's (``explanation["as_of"]``,
    ``YYYY-MM-DDTHH``); NaN where the line does not say."""
    return lines["explanation"].map(lambda e: int(str(e["as_of"])[-2:]) + 1 if isinstance(e, dict) and e.get("as_of")
                                    else np.nan).astype(float)


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


def _unit_move_costs(codes: np.ndarray, need: pd.DataFrame, cost: float, loc: pd.DataFrame,
                     costs: MoveCosts) -> np.ndarray:
    """``[receivers, donors]`` cost of moving one unit by each route of ``codes`` (``inf`` where there is none,
    NaN where the location master gives the receiver no transfer cost): the receiver's transfer cost plus the
    store's handling, or plus the expedite's surcharge on the goods' cost; a store shipping web orders costs
    what shipping from a store costs more, plus its handling."""
    transfer = pd.to_numeric(loc["transfer_cost_per_unit"], errors="coerce").reindex(
        need["location_id"].to_numpy()).to_numpy(float, na_value=np.nan) \
        if "transfer_cost_per_unit" in loc.columns else np.zeros(len(need))
    by_route = {"ship": np.full(len(need), costs.ship_cost_per_unit + costs.handling_per_unit),
                "transfer": transfer + costs.handling_per_unit,
                "expedite": transfer + cost * costs.expedite_pct_of_value}
    out = np.full(codes.shape, np.inf)
    for route, per_receiver in by_route.items():
        out = np.where(codes == ROUTES.index(route), per_receiver[:, None], out)
    return out


def _line(sku: str, r: pd.Series, source: str, route: str, qty: float, unit_cost: float, margin: float,
          move_cost: float, hours: float, ds: dt.date, extra: dict) -> dict:
    receiver = str(r["location_id"])
    doc_type, action = {"raise_order": ("replenishment", "raise_order"),
                        "ship": ("transfer", "ship_from_store")}.get(route, ("transfer", f"urgent_{route}"))
    arrives_h = float(hours)
    late = np.isfinite(r["hours_to_stockout"]) and arrives_h > float(r["hours_to_stockout"])
    return {
        "doc_type": doc_type, "business_key": f"{'ship' if route == 'ship' else 'urgent'}:{source}>{receiver}:{sku}",
        "sku": sku,
        "from_location": None if route == "raise_order" else source, "to_location": receiver,
        "supplier_id": source if route == "raise_order" else None, "po_id": None, "po_line": None, "action": action,
        "quantity": qty, "unit_cost": unit_cost, "value": round(qty * unit_cost, 2),
        "need_by": ds + dt.timedelta(days=int(np.ceil(arrives_h / 24.0))) if route == "raise_order" else ds,
        "explanation": {
            "channel": str(r["channel"]), **_why(r),
            "on_hand": float(r["on_hand"]), "units_short_before_next_delivery": round(float(r["shortfall"]), 2),
            "hours_to_stockout": None if not np.isfinite(r["hours_to_stockout"]) else round(float(r["hours_to_stockout"]), 1),
            "hours_to_arrive": arrives_h, "arrives_after_stockout": bool(late),
            "margin_at_stake": round(qty * margin, 2), "move_cost": round(move_cost, 2),
            "net_benefit": round(qty * margin - move_cost, 2), **extra,
        },
    }


def _why(r: pd.Series) -> dict:
    """What makes ``r`` a receiver: its surge's evidence, or (``reason`` ``stockout``) what it expects to sell
    before its next delivery and what it sold today against the forecast."""
    if r.get("reason") == STOCKOUT:
        return {"reason": STOCKOUT, "expected_before_next_delivery": round(float(r["need_in_window"]), 2),
                "sold_today": float(r.get("sold_today", 0.0)),
                "expected_so_far": round(float(r.get("expected_so_far", 0.0)), 2)}
    return {"reason": SURGE, "surge_ratio": round(float(r["ratio"]), 2), "surge_onset_hour": int(r["onset_hour"]),
            "sold_since_onset": float(r["sold_since_onset"]),
            "expected_since_onset": round(float(r["expected_since_onset"]), 2),
            "evidence_log_likelihood_ratio": round(float(r["statistic"]), 2)}


def shipped_for_the_web_shop(sales: pd.DataFrame, lines: pd.DataFrame) -> pd.DataFrame:
    """``sales`` with the web orders stores shipped for the web shop counted as the web shop's demand.

    A decided ``ship_from_store`` line of the hour ``H`` lets its store serve up to ``quantity`` of the web
    shop's orders of the SKU from ``H + 1``; the ecommerce extract names the store as those lines'
    fulfilment location. They are the web shop's demand, not the store's (the store's forecast never
    expected them, and the web shop's surge goes on), so they are read at the line's web shop node, the
    earliest first up to the quantity; the stock they took stays the store's (``node``).

    Args:
        sales: ``location_id, sku, hour, units, source`` (``web`` for order lines) and ``node``, where stock
            was taken.
        lines: The day's staged lines (``status, action, from_location, to_location, sku, quantity,
            explanation`` with ``as_of``).
    """
    if sales.empty or lines.empty:
        return sales
    given = lines[lines["status"].isin(COMMITTED) & (lines["action"] == "ship_from_store")]
    if given.empty:
        return sales
    out = sales.copy()
    for (store, sku), mine in given.assign(start=_leaves(given).fillna(0)).groupby(["from_location", "sku"]):
        rows = out[(out["source"] == "web") & (out["location_id"] == store) & (out["sku"] == sku)
                   & (out["hour"] >= mine["start"].min())].sort_values("hour", kind="stable")
        before = rows["units"].cumsum() - rows["units"]
        taken = rows.index[before < float(mine["quantity"].astype(float).sum())]
        out.loc[taken, "location_id"] = str(mine["to_location"].iloc[0])
    return out
