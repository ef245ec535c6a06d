"""Where every returned unit goes: the option with the highest expected recovery net of its costs.

For each returned line the six options of :data:`include.returns.params.ACTIONS` are valued per unit, from
the item's list price and cost, the unit's grade, the demand forecast (mean daily demand per location x
SKU) and :class:`~include.returns.params.DispositionParams`:

* ``restock_as_new`` (grade A) at the receiving location: ``price * exp(-decay * d_here) - restock_handling``,
  with ``d_here = (units ahead + 1) / demand`` there: the unit sells after the stock already on the shelf
  and the units of the same SKU the day's earlier returns put back there (capped at ``max_days_to_sell``;
  without an ``on_hand`` column in the forecast, only those returns are ahead);
* ``transfer_to`` (grade A) the other location where the unit would sell soonest: as above with its
  demand and queue, after the transfer's days on the road, less its cost per unit: the location master's
  ``transfer_lead_time_days`` and ``transfer_cost_per_unit`` of the destination, as every other transfer
  of the retailer is priced (``transfer_days`` and ``transfer_cost`` where the master does not say);
* ``open_box`` (A, B) where it is worth most: ``open_box_price[grade]`` of the price, to the
  ``open_box_demand`` share of the customers of the location, after the day's earlier open-box units of
  the SKU there, less ``open_box_handling``; at the receiving location, or at another selling location after
  the transfer's days and less its cost per unit, as ``transfer_to`` prices them (the web shop's fulfilment
  centre sells open-box units online to the web shop's customers, another store on its open-box shelf);
* ``refurbish`` (B, C of a refurbishable department): ``refurbish_price`` of the price after
  ``refurbish_days``, sold where demand is highest after the day's earlier refurbished units, less
  ``refurbish_cost * cost + refurbish_fixed``;
* ``return_to_vendor`` when the supplier's terms allow (a credit rate in ``rtv_credit``; grades of
  ``rtv_grades`` or a defect): ``credit * cost - rtv_handling``;
* ``liquidate`` (any grade): ``liquidation_rate[grade]`` of the price less ``liquidation_handling``.

``decay`` is the department's daily loss of value (markdowns, season end). Every line gets an explanation
with each option's net value, and lines whose fraud score or refund reach the hold thresholds are marked
``hold_for_review`` (the unit waits in quarantine; its disposition is what happens once cleared).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from include.returns.params import (
    ACTIONS,
    DEFAULT_DISPOSITION,
    FORECAST_COLUMNS,
    GRADES,
    ITEM_COLUMNS,
    DispositionParams,
)

#: Columns of the routed frame, one row per returned line.
ROUTED_COLUMNS = ("return_id", "location_id", "sku", "quantity", "condition_grade", "action", "target_location_id",
                  "supplier_id", "unit_net_value", "net_value", "days_to_sell", "hold_for_review", "hold_reason", "explanation",
                  *(f"value_{a}" for a in ACTIONS))
_NEEDED = ("return_id", "location_id", "sku", "quantity", "condition_grade", "reason_code", "refund_amount")
_RESTOCK, _TRANSFER, _OPEN_BOX, _REFURBISH, _RTV, _LIQUIDATE = range(len(ACTIONS))


def _context(returns: pd.DataFrame, items: pd.DataFrame, forecast: pd.DataFrame, params: DispositionParams,
             targets: np.ndarray | None = None, locations: pd.DataFrame | None = None) -> dict[str, np.ndarray]:
    """Per line: price, cost, grade (and the share of the price it fetches open box), quantity, decay,
    supplier terms and where it was received; and the market every line shares: demand (``rate``) and stock (``stock``) per location x SKU, locations
    ``locs`` (those of the forecast, the receiving ones and ``targets``) with the days and cost per unit of
    a transfer to each (``to_days``, ``to_cost``: the location master's, else the parameters')."""
    for name, frame, needed in (("returns", returns, _NEEDED), ("items", items, ITEM_COLUMNS),
                                ("forecast", forecast, FORECAST_COLUMNS)):
        missing = [c for c in needed if c not in frame.columns]
        if missing:
            raise ValueError(f"{name} lacks the columns {missing} the disposition needs")
    item_index = pd.Index(items["sku"].astype(str))
    row = _positions(item_index, returns["sku"])
    if (row < 0).any():
        unknown = sorted({str(s) for s in returns["sku"].to_numpy()[row < 0]})[:5]
        raise ValueError(f"returned SKUs missing from the item master: {unknown}")
    received = returns["location_id"]
    received = received.cat.categories if isinstance(received.dtype, pd.CategoricalDtype) else received.unique()
    named = [forecast["location_id"].to_numpy().astype(str), np.asarray(received).astype(str)]
    if targets is not None:
        named.append(np.asarray([t for t in pd.unique(targets) if isinstance(t, str)], dtype=str))
    locs = pd.Index(pd.unique(np.concatenate(named)))
    rate = np.zeros((len(locs), len(item_index)))
    stock = np.zeros_like(rate)
    f_sku = item_index.get_indexer(forecast["sku"].to_numpy().astype(str))
    known = f_sku >= 0
    f_loc = locs.get_indexer(forecast["location_id"].to_numpy().astype(str))[known]
    rate[f_loc, f_sku[known]] = forecast["mean_daily"].to_numpy(float)[known]
    if "on_hand" in forecast.columns:
        stock[f_loc, f_sku[known]] = np.maximum(forecast["on_hand"].fillna(0).to_numpy(float)[known], 0.0)
    dept = items["department"].astype(str).to_numpy()[row]
    grade = _positions(pd.Index(GRADES), returns["condition_grade"])
    supplier = items["supplier_id"].astype(str).to_numpy()[row]
    credit = pd.Series(supplier).map(params.rtv_credit).fillna(params.rtv_credit.get("*", 0.0)).to_numpy(float)
    return {
        "price": items["unit_price"].to_numpy(float)[row], "cost": items["unit_cost"].to_numpy(float)[row],
        "grade": grade, "open_box_share": np.asarray([params.open_box_price[g] for g in GRADES])[grade],
        "qty": returns["quantity"].to_numpy(float), "row": row, "here": _positions(locs, returns["location_id"]),
        "decay": pd.Series(dept).map(params.daily_decay).fillna(params.daily_decay["*"]).to_numpy(float),
        "refurbishable": np.isin(dept, params.refurbish_departments), "credit": credit, "supplier": supplier,
        "defect": (returns["reason_code"] == "defective").to_numpy(bool),
        "rate": rate, "stock": stock, "locs": locs.to_numpy(),
        "rate_max": rate.max(axis=0) if len(locs) else np.zeros(len(item_index)),
        **_transfer_terms(locs, locations, params)}


def _transfer_terms(locs: pd.Index, locations: pd.DataFrame | None, params: DispositionParams
                    ) -> dict[str, np.ndarray]:
    """Days and cost per unit of a transfer to each of ``locs``, from the location master where it says."""
    days = np.full(len(locs), float(params.transfer_days))
    cost = np.full(len(locs), float(params.transfer_cost))
    if locations is not None and len(locations):
        master = locations.set_index(locations["location_id"].astype(str))
        for name, out in (("transfer_lead_time_days", days), ("transfer_cost_per_unit", cost)):
            if name in master.columns:
                known = pd.to_numeric(master[name], errors="coerce").reindex(locs).to_numpy(float)
                said = np.isfinite(known) & (known >= 0)
                out[said] = known[said]
    return {"to_days": days, "to_cost": cost}


_LINE_KEYS = ("price", "cost", "grade", "open_box_share", "qty", "row", "here", "decay", "refurbishable", "credit",
              "defect")


def _queues(ctx: dict[str, np.ndarray], idx: np.ndarray | slice, best: np.ndarray, shelf_ahead: np.ndarray,
            best_ahead: np.ndarray, open_box_at: np.ndarray, open_box_ahead: np.ndarray, refurbish_ahead: np.ndarray
            ) -> dict[str, np.ndarray]:
    """The lines ``idx`` with the queues their units join: units ahead on the shelf where received
    (stock and earlier returns), at ``best`` (another location), among the open-box units at
    ``open_box_at`` (where received or another location) and among the SKU's refurbished units."""
    view = {k: ctx[k][idx] for k in _LINE_KEYS}
    row, here = view["row"], view["here"]
    rate = ctx["rate"]
    boxed_away = open_box_at != here
    view.update({"rate_here": rate[here, row], "shelf_ahead": shelf_ahead, "best": best,
                 "rate_best": np.where(best >= 0, rate[np.maximum(best, 0), row], 0.0), "best_ahead": best_ahead,
                 "rate_open_box": rate[open_box_at, row], "open_box_ahead": open_box_ahead,
                 "open_box_days": np.where(boxed_away, ctx["to_days"][open_box_at], 0.0),
                 "open_box_cost": np.where(boxed_away, ctx["to_cost"][open_box_at], 0.0),
                 "rate_max": ctx["rate_max"][row], "refurbish_ahead": refurbish_ahead,
                 "transfer_days": np.where(best >= 0, ctx["to_days"][np.maximum(best, 0)], np.inf),
                 "transfer_cost": np.where(best >= 0, ctx["to_cost"][np.maximum(best, 0)], np.inf)})
    return view


def _positions(index: pd.Index, column: pd.Series) -> np.ndarray:
    """Position in ``index`` of each value of ``column`` (-1 when absent), through the categories when
    the column is categorical, so that a million lines are never turned into strings one by one."""
    if isinstance(column.dtype, pd.CategoricalDtype):
        lookup = np.append(index.get_indexer(column.cat.categories.astype(str)), -1)
        return lookup[column.cat.codes.to_numpy()]
    return index.get_indexer(column.to_numpy().astype(str))


def _days_to_sell(ahead: np.ndarray, qty: np.ndarray, rate: np.ndarray, params: DispositionParams) -> np.ndarray:
    """Days until a line's units sell in a queue: the units ahead and the middle of its own, over the queue's
    daily demand, capped at ``max_days_to_sell``."""
    return np.minimum((ahead + (qty + 1.0) / 2.0) / np.maximum(rate, 1e-9), params.max_days_to_sell)


def option_values(view: dict[str, np.ndarray], params: DispositionParams, shelf_b_as_restock: bool = False
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Net value per unit of every action (``-inf`` where not allowed) and the days to sell when kept.

    A unit that is kept sells in its turn: after the units ahead of it in its queue (``*_ahead``: stock on
    the shelf and the day's earlier returns put there) and, for a line of several units, at the middle of
    its own units; its days to sell are its place in the queue over the queue's daily demand.

    Args:
        view: lines and their queues (:func:`_queues`).
        params: prices and costs.
        shelf_b_as_restock: value a grade-B unit put back on the shelf as new (what the baseline does):
            it sells after the stock ahead of it, at the open-box price, instead of forbidding
            ``restock_as_new`` for it.

    Returns:
        ``[lines, len(ACTIONS)]`` values and the days to sell at the receiving location.
    """
    g, price = view["grade"], view["price"]

    def worth(share, ahead, rate, extra_days=0.0):
        days = _days_to_sell(ahead, view["qty"], rate, params) + extra_days
        return share * price * np.exp(-view["decay"] * days), days

    ob_share = view["open_box_share"]
    new_here, days_here = worth(1.0, view["shelf_ahead"], view["rate_here"])
    values = np.full((len(g), len(ACTIONS)), -np.inf)
    values[:, _RESTOCK] = np.where(g == 0, new_here - params.restock_handling, -np.inf)
    if shelf_b_as_restock:
        # An opened unit back on the shelf as new is passed over for the sealed ones: it sells once the
        # stock ahead of it is gone, and then only at what an opened unit fetches.
        shelf = worth(ob_share, view["shelf_ahead"], view["rate_here"])[0] - params.restock_handling
        values[:, _RESTOCK] = np.where(g == 1, shelf, values[:, _RESTOCK])
    there = worth(1.0, view["best_ahead"], view["rate_best"], view["transfer_days"])[0]
    values[:, _TRANSFER] = np.where((g == 0) & (view["rate_best"] > 0),
                                    there - params.restock_handling - view["transfer_cost"], -np.inf)
    open_box = worth(ob_share, view["open_box_ahead"], view["rate_open_box"] * params.open_box_demand,
                     view["open_box_days"])[0]
    values[:, _OPEN_BOX] = np.where(g <= 1, open_box - params.open_box_handling - view["open_box_cost"], -np.inf)
    refurb = (worth(params.refurbish_price, view["refurbish_ahead"], view["rate_max"], params.refurbish_days)[0]
              - params.refurbish_cost * view["cost"] - params.refurbish_fixed)
    values[:, _REFURBISH] = np.where(view["refurbishable"] & ((g == 1) | (g == 2)), refurb, -np.inf)
    rtv_ok = (view["credit"] > 0) & (np.isin(g, [GRADES.index(x) for x in params.rtv_grades]) | view["defect"])
    values[:, _RTV] = np.where(rtv_ok, view["credit"] * view["cost"] - params.rtv_handling, -np.inf)
    liq = np.asarray([params.liquidation_rate[x] for x in GRADES])[g]
    values[:, _LIQUIDATE] = liq * price - params.liquidation_handling
    return values, days_here


def route_returns(returns: pd.DataFrame, items: pd.DataFrame, forecast: pd.DataFrame,
                  params: DispositionParams = DEFAULT_DISPOSITION, explain: bool = True,
                  locations: pd.DataFrame | None = None) -> pd.DataFrame:
    """Choose, for every returned line, the action with the highest expected net recovery.

    Units that stay to be sold queue: a unit restocked or transferred to a location sells after the
    stock there and after the units of the same SKU the day's earlier lines put there; open-box and
    refurbished units queue among themselves, an open-box unit where it is worth most (where received, or
    another location after a transfer). The lines are routed in rounds, each round taking the next
    line of every location x SKU where they were received (so the first return of an item at a store
    sees only the stock, the fifth the four before it as well), each round choosing with the queues
    the rounds before left.

    Args:
        returns: returned lines (returns detail columns); a ``fraud_score`` column (from
            :func:`include.returns.fraud.score_returns`) makes fraud holds possible.
        items: item master (``sku, department, unit_price, unit_cost, supplier_id``).
        forecast: mean daily demand per ``location_id, sku`` (stores and the FC), with ``on_hand`` where
            known.
        params: prices, costs, supplier terms and hold thresholds.
        explain: write the ``explanation`` sentence (skip it for a throughput run of lines nobody reads).
        locations: the location master (``location_id, transfer_lead_time_days, transfer_cost_per_unit``):
            a transfer to a location takes its days and costs its cost per unit; without it (or where it is
            empty) ``params.transfer_days`` and ``params.transfer_cost``.

    Returns:
        One row per line, in its order, columns :data:`ROUTED_COLUMNS`: ``action`` (one of ``ACTIONS``),
        ``target_location_id`` (where the unit goes to sell, new or open box; empty for refurbish, return
        to vendor and liquidate), ``supplier_id`` (the item's, who takes a return to vendor), ``unit_net_value`` and
        ``net_value`` (x quantity), ``days_to_sell`` where received, ``hold_for_review`` with its
        ``hold_reason``, and ``value_<action>`` per unit (``NaN`` where the action is not allowed).
    """
    ctx = _context(returns, items, forecast, params, locations=locations)
    n, rate, stock = len(returns), ctx["rate"], ctx["stock"]
    values, days = np.empty((n, len(ACTIONS))), np.empty(n)
    choice, best = np.empty(n, np.int64), np.full(n, -1, np.int64)
    boxed_at = ctx["here"].copy()
    shelf, open_box, refurbish = np.zeros_like(rate), np.zeros_like(rate), np.zeros(rate.shape[1])
    for idx in _rounds(ctx["here"], ctx["row"]):
        row, here, qty, cols = ctx["row"][idx], ctx["here"][idx], ctx["qty"][idx], np.arange(len(idx))
        ahead = stock[:, row] + shelf[:, row]
        if len(rate) > 1:  # where a new unit would sell if transferred, and where an opened one sells best
            grade = ctx["grade"][idx]
            new, opened = grade == 0, grade <= 1
            best[idx[new]] = _best_place(ctx, idx[new], ahead[:, new], rate[:, row[new]], 1.0, params, stay=False)
            boxed_at[idx[opened]] = _best_place(ctx, idx[opened], open_box[:, row[opened]],
                                                rate[:, row[opened]] * params.open_box_demand,
                                                ctx["open_box_share"][idx[opened]], params, stay=True)
        view = _queues(ctx, idx, best[idx], ahead[here, cols], ahead[np.maximum(best[idx], 0), cols], boxed_at[idx],
                       open_box[boxed_at[idx], row], refurbish[row])
        values[idx], days[idx] = option_values(view, params)
        choice[idx] = chosen = np.argmax(values[idx], axis=1)
        kept = (chosen == _RESTOCK) | (chosen == _TRANSFER)
        np.add.at(shelf, (np.where(chosen == _TRANSFER, best[idx], here)[kept], row[kept]), qty[kept])
        boxed = chosen == _OPEN_BOX
        np.add.at(open_box, (boxed_at[idx][boxed], row[boxed]), qty[boxed])
        np.add.at(refurbish, row[chosen == _REFURBISH], qty[chosen == _REFURBISH])
    return _routed(returns, ctx, values, choice, days, _place(ctx, choice, best, boxed_at), params, explain)


def _best_place(ctx: dict[str, np.ndarray], idx: np.ndarray, ahead: np.ndarray, rate: np.ndarray,
                share: float | np.ndarray, params: DispositionParams, *, stay: bool) -> np.ndarray:
    """For each line of ``idx``, the location where a unit is worth most: ``share`` of its price, after its
    place in the queue there (``ahead``: ``[locations, lines]`` units ahead, selling at ``rate``) and, at any
    location but the receiving one, the days on the road and the cost per unit of getting there. ``stay``
    keeps the receiving location among the candidates (open box); without it the best other location (a
    transfer)."""
    cols, here = np.arange(len(idx)), ctx["here"][idx]
    away = np.ones(rate.shape, bool)
    away[here, cols] = False
    days = _days_to_sell(ahead, ctx["qty"][idx], rate, params) + np.where(away, ctx["to_days"][:, None], 0.0)
    road = np.where(away, ctx["to_cost"][:, None], 0.0)
    worth = np.exp(-ctx["decay"][idx] * days) * (share * ctx["price"][idx]) - road
    worth[(rate <= 0) & away] = -np.inf
    if not stay:
        worth[here, cols] = -np.inf
    return np.argmax(worth, axis=0)


def _place(ctx: dict[str, np.ndarray], choice: np.ndarray, best: np.ndarray, boxed_at: np.ndarray) -> np.ndarray:
    """Where each line's units go to sell (a location of ``ctx["locs"]``): where received when restocked,
    ``best`` when transferred, ``boxed_at`` when sold open box; -1 for the other actions."""
    return np.select([choice == _RESTOCK, choice == _TRANSFER, choice == _OPEN_BOX], [ctx["here"], best, boxed_at], -1)


def _rounds(here: np.ndarray, row: np.ndarray) -> list[np.ndarray]:
    """Line positions by round: round ``k`` holds the ``k``-th line (in line order) of every receiving
    location x SKU."""
    if not len(here):
        return []
    key = here.astype(np.int64) * (int(row.max()) + 1) + row
    order = np.argsort(key, kind="stable")
    sorted_key = key[order]
    starts = np.flatnonzero(np.r_[True, sorted_key[1:] != sorted_key[:-1]])
    rank = np.empty(len(key), np.int64)
    rank[order] = np.arange(len(key)) - np.repeat(starts, np.diff(np.r_[starts, len(key)]))
    by_rank = np.argsort(rank, kind="stable")
    return np.split(by_rank, np.cumsum(np.bincount(rank))[:-1])


def route_baseline(returns: pd.DataFrame, items: pd.DataFrame, forecast: pd.DataFrame,
                   params: DispositionParams = DEFAULT_DISPOSITION, locations: pd.DataFrame | None = None
                   ) -> pd.DataFrame:
    """The rule the router is measured against: restock a sellable unit (grade A or B) where it was
    received, liquidate the rest. Same columns as :func:`route_returns`; a grade-B unit back on the
    shelf is valued at what an opened unit fetches there, and every unit put back queues behind the
    stock and the day's earlier returns of its SKU there."""
    ctx = _context(returns, items, forecast, params, locations=locations)
    choice = np.where(ctx["grade"] <= 1, _RESTOCK, _LIQUIDATE)
    place = np.where(choice == _RESTOCK, ctx["here"], -1)  # the baseline moves nothing
    values, days = _valued(ctx, choice, place, params)
    return _routed(returns, ctx, values, choice, days, place, params, explain=False)


def recovery_value(routed: pd.DataFrame, returns: pd.DataFrame, items: pd.DataFrame, forecast: pd.DataFrame,
                   params: DispositionParams = DEFAULT_DISPOSITION, locations: pd.DataFrame | None = None
                   ) -> np.ndarray:
    """Net value of each routed line's action valued with ``forecast`` (e.g. the demand that really came).

    A transfer and an open-box unit are valued at the location they went to; every unit kept to sell queues as
    :func:`route_returns` has it (behind the stock and every earlier line routed to the same queue, in
    line order); every other action as :func:`option_values` has it.

    Args:
        routed: output of :func:`route_returns` or :func:`route_baseline` for ``returns``, same order.
        returns, items, forecast, params, locations: as for :func:`route_returns`.

    Returns:
        Net value per line (x quantity).
    """
    targets = routed["target_location_id"].to_numpy(object)
    ctx = _context(returns, items, forecast, params, targets=targets, locations=locations)
    choice = pd.Index(ACTIONS).get_indexer(routed["action"].to_numpy().astype(str))
    sold = choice <= _OPEN_BOX
    place = np.full(len(choice), -1, np.int64)
    place[sold] = pd.Index(ctx["locs"]).get_indexer(targets[sold].astype(str))
    place[sold & (place < 0)] = ctx["here"][sold & (place < 0)]  # a restock or open box without a target
    values, _ = _valued(ctx, choice, place, params)
    unit = values[np.arange(len(choice)), choice]
    return np.where(np.isfinite(unit), unit, 0.0) * ctx["qty"]


def _valued(ctx: dict[str, np.ndarray], choice: np.ndarray, place: np.ndarray, params: DispositionParams
            ) -> tuple[np.ndarray, np.ndarray]:
    """Every option's value per unit of lines whose actions are already chosen (``place``: where a restocked,
    transferred or open-box unit sells, as :func:`_place`), each unit kept to sell in its place in the queue
    those actions make."""
    row, here, qty = ctx["row"], ctx["here"], ctx["qty"]
    kept = (choice == _RESTOCK) | (choice == _TRANSFER)
    best = np.where(choice == _TRANSFER, place, -1)
    boxed = choice == _OPEN_BOX
    boxed_at = np.where(boxed, place, here)
    stock = ctx["stock"]
    shelf = _ahead(kept, np.where(kept, place, here), row, qty)
    view = _queues(ctx, slice(None), best, stock[here, row] + shelf, stock[np.maximum(best, 0), row] + shelf,
                   boxed_at, _ahead(boxed, boxed_at, row, qty), _ahead(choice == _REFURBISH, 0 * row, row, qty))
    return option_values(view, params, shelf_b_as_restock=True)


def _ahead(member: np.ndarray, where: np.ndarray, row: np.ndarray, qty: np.ndarray) -> np.ndarray:
    """Units of earlier member lines in each member line's queue (``where`` x ``row``); 0 elsewhere."""
    units = pd.Series(np.where(member, qty, 0.0))
    before = units.groupby([where, row]).cumsum().to_numpy() - units.to_numpy()
    return np.where(member, before, 0.0)


def _routed(returns, ctx, values, choice, days, place, params, explain) -> pd.DataFrame:
    n = len(choice)
    unit = values[np.arange(n), choice]
    here = returns["location_id"].to_numpy().astype(str)
    there = ctx["locs"][np.maximum(place, 0)].astype(str) if len(ctx["locs"]) else np.full(n, "")
    target = np.where(place >= 0, there, None)
    score = returns["fraud_score"].to_numpy(float) if "fraud_score" in returns.columns else np.zeros(n)
    refund = returns["refund_amount"].to_numpy(float)
    fraud_hold, value_hold = score >= params.fraud_hold_score, refund >= params.high_value_hold
    out = pd.DataFrame({
        "return_id": returns["return_id"].to_numpy(), "location_id": here, "sku": returns["sku"].to_numpy(),
        "quantity": returns["quantity"].to_numpy(np.int64), "condition_grade": returns["condition_grade"].to_numpy(),
        "action": pd.Categorical.from_codes(choice, ACTIONS), "target_location_id": target,
        "supplier_id": ctx["supplier"],
        "unit_net_value": np.round(unit, 2), "net_value": np.round(unit * ctx["qty"], 2),
        "days_to_sell": np.round(days, 1), "hold_for_review": fraud_hold | value_hold,
        "hold_reason": _hold_reasons(fraud_hold, value_hold, score, refund, params),
        "explanation": _explain(choice, target, values, days) if explain else None})
    for k, action in enumerate(ACTIONS):
        out[f"value_{action}"] = np.round(np.where(np.isfinite(values[:, k]), values[:, k], np.nan), 2)
    return out


def _hold_reasons(fraud_hold, value_hold, score, refund, params) -> np.ndarray:
    reason = np.full(len(score), "", dtype=object)
    if fraud_hold.any():
        reason[fraud_hold] = [f"fraud score {s:.2f} >= {params.fraud_hold_score:.2f}" for s in score[fraud_hold]]
    both = fraud_hold & value_hold
    only_value = value_hold & ~fraud_hold
    if value_hold.any():
        text = np.array([f"refund {r:.2f} >= {params.high_value_hold:.2f}" for r in refund[value_hold]], object)
        mask = np.where(value_hold)[0]
        reason[mask[only_value[mask]]] = text[only_value[mask]]
        reason[mask[both[mask]]] = reason[mask[both[mask]]] + "; " + text[both[mask]]
    return reason


def _explain(choice, target, values, days) -> pd.Series:
    """One sentence per line: the action, its net value, and every option's net value per unit.

    Built with Arrow string kernels: formatting a million lines in Python would dominate the routing.
    """
    n = len(choice)

    def money(v):
        text = pc.cast(pa.array(np.round(np.where(np.isfinite(v), v, 0.0), 2)), pa.string())
        return pc.if_else(pa.array(np.isfinite(v)), text, "n/a")

    where = pa.array(target, pa.string())
    parts = [pa.array(np.asarray(ACTIONS, object)[choice], pa.string()),
             pc.if_else(pc.is_null(where), "", pc.binary_join_element_wise(" at ", where, "")),
             pa.array(np.full(n, ": best net recovery per unit "), pa.string()), money(values[np.arange(n), choice]),
             pa.array(np.full(n, " (sells in ~"), pa.string()), pc.cast(pa.array(np.round(days).astype(np.int64)),
                                                                        pa.string()),
             pa.array(np.full(n, " d where received); options"), pa.string())]
    for k, action in enumerate(ACTIONS):
        parts += [pa.array(np.full(n, (" " if k == 0 else ", ") + action + " "), pa.string()), money(values[:, k])]
    return pd.Series(pd.arrays.ArrowStringArray(pc.binary_join_element_wise(*parts, "")))
