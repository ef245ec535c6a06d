"""Where every returned unit goes: the option with the highest expected recovery net of its costs.

For each returned line the six options of :data:`include.returns.params.ACTIONS` are valued per unit, from
the item's list price and cost, the unit's grade, the demand forecast (mean daily demand per location x
SKU) and :class:`~include.returns.params.DispositionParams`:

* ``restock_as_new`` (grade A) at the receiving location: ``price * exp(-decay * d_here) - restock_handling``,
  with ``d_here = (on_hand + 1) / demand`` there: the unit sells after the stock already on the shelf
  (capped at ``max_days_to_sell``; without an ``on_hand`` column in the forecast, ``1 / demand``);
* ``transfer_to`` (grade A) the other location where the unit would sell soonest: as above with its
  demand and stock, after ``transfer_days`` on the road, less ``transfer_cost``;
* ``open_box`` (A, B) at the receiving location: ``open_box_price[grade]`` of the price, to the
  ``open_box_demand`` share of its customers, less ``open_box_handling``;
* ``refurbish`` (B, C of a refurbishable department): ``refurbish_price`` of the price after
  ``refurbish_days``, sold where demand is highest, less ``refurbish_cost * cost + refurbish_fixed``;
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


def _context(returns: pd.DataFrame, items: pd.DataFrame, forecast: pd.DataFrame,
             params: DispositionParams) -> dict[str, np.ndarray]:
    """Per line: price, cost, grade, demand here, the queued sell rate here and at the location where
    the unit would sell soonest (demand over the stock ahead of it), decay and supplier terms."""
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
    locs = pd.Index(pd.unique(np.concatenate([forecast["location_id"].to_numpy().astype(str),
                                              np.asarray(received).astype(str)])))
    rate = np.zeros((len(locs), len(item_index)))
    stock = np.zeros_like(rate)
    f_sku = item_index.get_indexer(forecast["sku"].to_numpy().astype(str))
    known = f_sku >= 0
    f_loc = locs.get_indexer(forecast["location_id"].to_numpy().astype(str))[known]
    rate[f_loc, f_sku[known]] = forecast["mean_daily"].to_numpy(float)[known]
    if "on_hand" in forecast.columns:
        stock[f_loc, f_sku[known]] = np.maximum(forecast["on_hand"].fillna(0).to_numpy(float)[known], 0.0)
    # A unit put back on the shelf sells after the stock already there: its own rate is demand / (stock + 1).
    queued = rate / (stock + 1.0)
    here = _positions(locs, returns["location_id"])
    top2 = np.argsort(-queued, axis=0)[:2] if len(locs) > 1 else np.zeros((2, len(item_index)), int)
    best = np.where(top2[0, row] == here, top2[1, row], top2[0, row])
    dept = items["department"].astype(str).to_numpy()[row]
    supplier = items["supplier_id"].astype(str).to_numpy()[row]
    default_credit = params.rtv_credit.get("*", 0.0)
    credit = pd.Series(supplier).map(params.rtv_credit).fillna(default_credit).to_numpy(float)
    return {
        "price": items["unit_price"].to_numpy(float)[row], "cost": items["unit_cost"].to_numpy(float)[row],
        "grade": _positions(pd.Index(GRADES), returns["condition_grade"]),
        "qty": returns["quantity"].to_numpy(float), "rate_here": rate[here, row], "queued_here": queued[here, row],
        "queued_best": queued[best, row],
        "rate_max": rate[:, row].max(axis=0) if len(locs) else np.zeros(len(row)), "best": locs.to_numpy()[best],
        "decay": pd.Series(dept).map(params.daily_decay).fillna(params.daily_decay["*"]).to_numpy(float),
        "refurbishable": np.isin(dept, params.refurbish_departments), "credit": credit, "supplier": supplier,
        "defect": (returns["reason_code"] == "defective").to_numpy(bool)}


def _positions(index: pd.Index, column: pd.Series) -> np.ndarray:
    """Position in ``index`` of each value of ``column`` (-1 when absent), through the categories when
    the column is categorical, so that a million lines are never turned into strings one by one."""
    if isinstance(column.dtype, pd.CategoricalDtype):
        lookup = np.append(index.get_indexer(column.cat.categories.astype(str)), -1)
        return lookup[column.cat.codes.to_numpy()]
    return index.get_indexer(column.to_numpy().astype(str))


def option_values(ctx: dict[str, np.ndarray], params: DispositionParams, shelf_b_as_restock: bool = False
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Net value per unit of every action (``-inf`` where not allowed) and the days to sell when kept.

    Args:
        ctx: per-line context (:func:`_context`).
        params: prices and costs.
        shelf_b_as_restock: value a grade-B unit put back on the shelf as new (what the baseline does):
            it sells after the stock ahead of it, at the open-box price, instead of forbidding
            ``restock_as_new`` for it.

    Returns:
        ``[lines, len(ACTIONS)]`` values and the days to sell at the receiving location.
    """
    g, price, cap = ctx["grade"], ctx["price"], params.max_days_to_sell

    def worth(share, rate, extra_days=0.0):
        days = np.minimum(1.0 / np.maximum(rate, 1e-9), cap) + extra_days
        return share * price * np.exp(-ctx["decay"] * days), days

    ob_share = np.asarray([params.open_box_price[x] for x in GRADES])[g]
    new_here, days_here = worth(1.0, ctx["queued_here"])
    values = np.full((len(g), len(ACTIONS)), -np.inf)
    values[:, _RESTOCK] = np.where(g == 0, new_here - params.restock_handling, -np.inf)
    if shelf_b_as_restock:
        # An opened unit back on the shelf as new is passed over for the sealed ones: it sells once the
        # stock ahead of it is gone, and then only at what an opened unit fetches.
        shelf = worth(ob_share, ctx["queued_here"])[0] - params.restock_handling
        values[:, _RESTOCK] = np.where(g == 1, shelf, values[:, _RESTOCK])
    there = worth(1.0, ctx["queued_best"], params.transfer_days)[0]
    values[:, _TRANSFER] = np.where((g == 0) & (ctx["queued_best"] > 0),
                                    there - params.restock_handling - params.transfer_cost, -np.inf)
    open_box = worth(ob_share, ctx["rate_here"] * params.open_box_demand)[0] - params.open_box_handling
    values[:, _OPEN_BOX] = np.where(g <= 1, open_box, -np.inf)
    refurb = (worth(params.refurbish_price, ctx["rate_max"], params.refurbish_days)[0]
              - params.refurbish_cost * ctx["cost"] - params.refurbish_fixed)
    values[:, _REFURBISH] = np.where(ctx["refurbishable"] & ((g == 1) | (g == 2)), refurb, -np.inf)
    rtv_ok = (ctx["credit"] > 0) & (np.isin(g, [GRADES.index(x) for x in params.rtv_grades]) | ctx["defect"])
    values[:, _RTV] = np.where(rtv_ok, ctx["credit"] * ctx["cost"] - params.rtv_handling, -np.inf)
    liq = np.asarray([params.liquidation_rate[x] for x in GRADES])[g]
    values[:, _LIQUIDATE] = liq * price - params.liquidation_handling
    return values, days_here


def route_returns(returns: pd.DataFrame, items: pd.DataFrame, forecast: pd.DataFrame,
                  params: DispositionParams = DEFAULT_DISPOSITION, explain: bool = True) -> pd.DataFrame:
    """Choose, for every returned line, the action with the highest expected net recovery.

    Args:
        returns: returned lines (returns detail columns); a ``fraud_score`` column (from
            :func:`include.returns.fraud.score_returns`) makes fraud holds possible.
        items: item master (``sku, department, unit_price, unit_cost, supplier_id``).
        forecast: mean daily demand per ``location_id, sku`` (stores and the FC).
        params: prices, costs, supplier terms and hold thresholds.
        explain: write the ``explanation`` sentence (skip it for a throughput run of lines nobody reads).

    Returns:
        One row per line, in its order, columns :data:`ROUTED_COLUMNS`: ``action`` (one of ``ACTIONS``),
        ``target_location_id`` (where the unit goes to sell; empty for refurbish, return to vendor and
        liquidate), ``supplier_id`` (the item's, who takes a return to vendor), ``unit_net_value`` and ``net_value`` (x quantity), ``hold_for_review`` with its
        ``hold_reason``, and ``value_<action>`` per unit (``NaN`` where the action is not allowed).
    """
    ctx = _context(returns, items, forecast, params)
    values, days = option_values(ctx, params)
    choice = np.argmax(values, axis=1)
    return _routed(returns, ctx, values, choice, days, params, explain)


def route_baseline(returns: pd.DataFrame, items: pd.DataFrame, forecast: pd.DataFrame,
                   params: DispositionParams = DEFAULT_DISPOSITION) -> pd.DataFrame:
    """The rule the router is measured against: restock a sellable unit (grade A or B) where it was
    received, liquidate the rest. Same columns as :func:`route_returns`; a grade-B unit back on the
    shelf is valued at what an opened unit fetches there."""
    ctx = _context(returns, items, forecast, params)
    values, days = option_values(ctx, params, shelf_b_as_restock=True)
    choice = np.where(ctx["grade"] <= 1, _RESTOCK, _LIQUIDATE)
    return _routed(returns, ctx, values, choice, days, params, explain=False)


def recovery_value(routed: pd.DataFrame, returns: pd.DataFrame, items: pd.DataFrame, forecast: pd.DataFrame,
                   params: DispositionParams = DEFAULT_DISPOSITION) -> np.ndarray:
    """Net value of each routed line's action valued with ``forecast`` (e.g. the demand that really came).

    A transfer is valued at the location it went to; every other action as :func:`option_values` has it.

    Args:
        routed: output of :func:`route_returns` or :func:`route_baseline` for ``returns``, same order.
        returns, items, forecast, params: as for :func:`route_returns`.

    Returns:
        Net value per line (x quantity).
    """
    ctx = _context(returns, items, forecast, params)
    frame = forecast.set_index(["location_id", "sku"])
    transfer = routed["action"].to_numpy() == "transfer_to"
    keys = pd.MultiIndex.from_arrays([routed["target_location_id"].to_numpy()[transfer].astype(str),
                                      returns["sku"].to_numpy()[transfer].astype(str)])
    stock = frame["on_hand"].reindex(keys).fillna(0.0).to_numpy(float) if "on_hand" in frame else 0.0
    ctx["queued_best"] = ctx["queued_best"].copy()
    ctx["queued_best"][transfer] = frame["mean_daily"].reindex(keys).fillna(0.0).to_numpy(float) / (stock + 1.0)
    values, _ = option_values(ctx, params, shelf_b_as_restock=True)
    choice = pd.Index(ACTIONS).get_indexer(routed["action"].to_numpy().astype(str))
    unit = values[np.arange(len(choice)), choice]
    return np.where(np.isfinite(unit), unit, 0.0) * ctx["qty"]


def _routed(returns, ctx, values, choice, days, params, explain) -> pd.DataFrame:
    n = len(choice)
    unit = values[np.arange(n), choice]
    here = returns["location_id"].to_numpy().astype(str)
    target = np.where(choice == _TRANSFER, ctx["best"].astype(str), np.where(choice <= _OPEN_BOX, here, None))
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
