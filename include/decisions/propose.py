"""Replenishment orders, stock transfers and PO exceptions, each line explained by its numbers.

Replenishment runs the one policy of :mod:`include.decisions.replenishment` on the night's forecasts:
every SKU x location is reviewed every night; its inventory position (on hand + in transit + returned units
going back to the shelf + on order - allocated - backorders) is compared with a reorder point (forecast over the lead time plus safety stock
sized for the series' fill-rate target from the forecast's measured error and the lead-time spread);
below it, the order brings the position up to the reorder point plus the demand of one order cycle
(``review_days``), in whole case packs, at least the MOQ, within a store's shelf. Stores are replenished
from their DC by transfer; DCs and the ecommerce fulfilment centre from suppliers by purchase order. The
replay simulator (:mod:`include.simulation`) runs the same policy on the same forecaster.

PO exceptions live in :mod:`include.decisions.po_exceptions` and the proposal columns and policy knobs in
:mod:`include.decisions.params`; both are importable from here too.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from include.decisions.lead_times import series_supply
from include.decisions.params import DEFAULT_PARAMS, PROPOSAL_COLUMNS, DecisionParams
from include.decisions.po_exceptions import propose_po_exceptions
from include.decisions.replenishment import forecast_matrices, order_levels, order_quantity

if TYPE_CHECKING:
    from include.decisions.calibration import ErrorCalibration

__all__ = ["PROPOSAL_COLUMNS", "DecisionParams", "propose_po_exceptions", "propose_rebalancing",
           "propose_replenishment", "replenishment_levels", "solve_transfers"]

#: Columns of a series' forecast the policy reads.
FORECAST_COLUMNS = ["unique_id", "step", "mean", "sigma_cum"]


def _with_anomalies(frame: pd.DataFrame, anomalies: pd.DataFrame | None) -> list[list[str]]:
    if anomalies is None or anomalies.empty:
        return [[] for _ in range(len(frame))]
    by_id = anomalies.groupby("unique_id")["anomaly_type"].apply(lambda s: sorted(set(s))).to_dict()
    return [by_id.get(uid, []) for uid in frame["unique_id"]]


def _split_ids(forecasts: pd.DataFrame) -> pd.DataFrame:
    """A copy of ``forecasts`` with ``location_id`` and ``sku`` split out of ``unique_id`` (``location|sku``)."""
    fc = forecasts.copy()
    parts = fc["unique_id"].str.split("|", n=1, expand=True)
    fc["location_id"], fc["sku"] = parts[0], parts[1]
    return fc


def propose_replenishment(
    forecasts: pd.DataFrame,
    series: pd.DataFrame,
    inventory: pd.DataFrame,
    open_pos: pd.DataFrame,
    items: pd.DataFrame,
    locations: pd.DataFrame,
    suppliers: pd.DataFrame,
    supplier_stats: pd.DataFrame,
    ds: dt.date,
    *,
    anomalies: pd.DataFrame | None = None,
    params: DecisionParams = DEFAULT_PARAMS,
    calibration: ErrorCalibration | None = None,
    safety_factors: dict[float, float] | None = None,
    returning: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Propose replenishment for every location x SKU that has a forecast.

    Args:
        forecasts: ``unique_id (location|sku), step, mean, sigma_cum`` from the forecast stage
            (``sigma_cum``: the error of the forecast summed through each step).
        series: per-series model facts (``unique_id, model, fallback_reason, backtest_mase, demand_class``).
        inventory: curated inventory snapshot of ``ds``.
        open_pos: purchase order lines with status ``open`` or ``partial``.
        items, locations, suppliers: curated master data.
        supplier_stats: measured ``supplier_id, mean_lead_time, std_lead_time, late_rate``.
        ds: the logical date.
        anomalies: demand anomalies (``unique_id, anomaly_type``) to attach to lines.
        params: policy knobs (fill-rate targets, order cycle).
        calibration: measured out-of-sample error of the forecaster (:mod:`include.decisions.calibration`):
            ``sigma_cum`` is scaled by its error class's scale; ``None``: as the backtest gave it.
        safety_factors: the pooled safety factor per fill-rate target, solved over the night's every
            shard (:func:`include.decisions.batch.night_safety_factors`); ``None``: solved over these series.
        returning: returned units on their way back into sellable stock that the snapshot does not show
            yet (``location_id, sku, returning``: :func:`include.returns.stock.returning_units`); they count
            in the inventory position like stock in transit. ``None``: none.

    Returns:
        Proposal lines (:data:`PROPOSAL_COLUMNS`): ``transfer`` lines DC -> store and
        ``replenishment`` purchase order lines supplier -> DC / fulfilment centre.
    """
    loc, item = locations.set_index("location_id"), items.set_index("sku")
    found = _levels(forecasts, series, loc, item, suppliers, supplier_stats, params, calibration, safety_factors)
    if found is None:
        return pd.DataFrame(columns=PROPOSAL_COLUMNS)
    k, supply = found
    k = _with_inventory_position(k, inventory, open_pos, returning)
    k = k[k["position"] < k["reorder_point"]].copy()
    if k.empty:
        return pd.DataFrame(columns=PROPOSAL_COLUMNS)

    k["is_store"] = k["location_id"].map(loc["location_type"]) == "store"
    k["quantity"] = _order_quantity(k, item)
    k = k[k["quantity"] > 0].copy()
    if k.empty:
        return pd.DataFrame(columns=PROPOSAL_COLUMNS)
    k["anomalies"] = _with_anomalies(k.reset_index(), anomalies)
    rows = _replenishment_lines(k, series, item, loc, supply, ds, params)
    return pd.DataFrame(rows, columns=PROPOSAL_COLUMNS)


def replenishment_levels(forecasts: pd.DataFrame, series: pd.DataFrame, items: pd.DataFrame, locations: pd.DataFrame,
                         suppliers: pd.DataFrame, supplier_stats: pd.DataFrame, *, params: DecisionParams = DEFAULT_PARAMS,
                         calibration: ErrorCalibration | None = None) -> pd.DataFrame:
    """The policy's levels of every series :func:`propose_replenishment` would review (its stores, DCs and
    fulfilment centre; index ``unique_id``): ``demand, sigma, rate, fill_rate, reorder_point, ...``."""
    found = _levels(forecasts, series, locations.set_index("location_id"), items.set_index("sku"), suppliers,
                    supplier_stats, params, calibration, None)
    return found[0] if found is not None else pd.DataFrame(columns=["demand", "sigma", "rate", "fill_rate", "planned_fill_rate"])


def _levels(forecasts: pd.DataFrame, series: pd.DataFrame, loc: pd.DataFrame, item: pd.DataFrame,
            suppliers: pd.DataFrame, supplier_stats: pd.DataFrame, params: DecisionParams,
            calibration: ErrorCalibration | None, safety_factors: dict[float, float] | None,
            ) -> tuple[pd.DataFrame, pd.DataFrame] | None:
    """The levels (:func:`_order_points`) and supply (:func:`series_supply`) of every series reviewed;
    ``None`` when there are none."""
    if forecasts.empty:
        return None
    missing = [c for c in FORECAST_COLUMNS if c not in forecasts.columns]
    if missing:
        raise ValueError(f"forecasts lack column(s) {missing}: they come from an older forecaster; "
                         "run forecast_demand for this date again")
    all_fc = _with_dc_demand(_split_ids(forecasts[FORECAST_COLUMNS]), loc)
    keys = all_fc[["unique_id", "location_id", "sku"]].drop_duplicates().set_index("unique_id")
    keys = keys[keys["sku"].isin(item.index) & keys["location_id"].isin(loc.index)]
    if keys.empty:
        return None
    supply = series_supply(keys, loc, item, suppliers, supplier_stats)
    return _order_points(all_fc, keys, supply, series, item, params, calibration, safety_factors), supply


def _with_dc_demand(fc: pd.DataFrame, loc: pd.DataFrame) -> pd.DataFrame:
    """Every series' forecast, plus one per DC x SKU: the sum of its stores' demand (their errors are
    taken as independent, so the variances of their cumulative errors add).

    Args:
        fc: Forecasts with ``location_id`` and ``sku`` split out (:func:`_split_ids`).
        loc: Locations indexed by ``location_id``.

    Returns:
        ``unique_id, location_id, sku, step, mean, sigma_cum`` for the series and their DCs.
    """
    store_parent = loc["parent_dc"].where(loc["location_type"] == "store")
    fc["parent_dc"] = fc["location_id"].map(store_parent)
    dc_fc = fc[fc["parent_dc"].notna() & (fc["parent_dc"].astype(str) != "")].copy()
    dc_fc["var_cum"] = dc_fc["sigma_cum"] ** 2
    dc_fc = dc_fc.groupby(["parent_dc", "sku", "step"], as_index=False).agg(mean=("mean", "sum"),
                                                                          var_cum=("var_cum", "sum"))
    dc_fc["sigma_cum"] = np.sqrt(dc_fc["var_cum"])
    dc_fc["location_id"] = dc_fc["parent_dc"].astype(str)  # object even when no store has a forecast
    dc_fc["unique_id"] = dc_fc["location_id"] + "|" + dc_fc["sku"]
    cols = ["unique_id", "location_id", "sku", "step", "mean", "sigma_cum"]
    return pd.concat([fc[cols], dc_fc[cols]], ignore_index=True)


def _order_points(all_fc: pd.DataFrame, keys: pd.DataFrame, supply: pd.DataFrame, series: pd.DataFrame,
                  item: pd.DataFrame, params: DecisionParams, calibration: ErrorCalibration | None = None,
                  safety_factors: dict[float, float] | None = None) -> pd.DataFrame:
    """The policy's levels (:func:`include.decisions.replenishment.order_levels`) of each series with a
    forecast: reviewed nightly, the order cycle ``params.review_days``, the series' fill-rate target,
    served by the night's series that share it together (one pool, as the replay pools each review)
    unless ``params.fill_rate_per_series``."""
    mean, sigma = forecast_matrices(all_fc, keys.index)
    demand_class = (keys.index.to_series().map(series.set_index("unique_id")["demand_class"])
                    if "demand_class" in series.columns else pd.Series(None, index=keys.index))
    fill_rate = np.asarray(params.series_fill_rates(keys["sku"], demand_class,
                                                    item["category"] if "category" in item.columns else None), float)
    planned = params.planned(fill_rate)
    fixed = None
    if safety_factors is not None and not params.fill_rate_per_series:
        fixed = np.array([safety_factors.get(float(t), np.nan) for t in planned])
        fixed = fixed if np.isfinite(fixed).all() else None  # a target the night did not solve: pool here
    levels = order_levels(mean, sigma, lead=supply["lead"].to_numpy(float), lead_sd=supply["lead_sd"].to_numpy(float),
                          review=1, order_cycle=params.review_days, fill_rate=planned,
                          pool=None if params.fill_rate_per_series else np.zeros(len(keys)), calibration=calibration,
                          safety_factor=fixed)
    k = keys.copy()
    k["lead"], k["lead_sd"] = supply["lead"], supply["lead_sd"]
    for name in ("demand", "rate", "forecast_sigma", "sigma", "fill_rate", "safety_factor", "safety_stock",
                 "reorder_point", "order_up_to"):
        k[name] = getattr(levels, name)
    k["planned_fill_rate"], k["fill_rate"] = k["fill_rate"], fill_rate
    return k


def _with_inventory_position(k: pd.DataFrame, inventory: pd.DataFrame, open_pos: pd.DataFrame,
                             returning: pd.DataFrame | None = None) -> pd.DataFrame:
    """``k`` with its stock columns and ``position``: on hand + in transit + returns to stock + on order -
    allocated - backorders."""
    inv_cols = ["on_hand", "allocated", "in_transit", "backorders"]
    inv = inventory.reindex(columns=["location_id", "sku", *inv_cols]).set_index(["location_id", "sku"]).astype(float)
    idx = pd.MultiIndex.from_arrays([k["location_id"], k["sku"]])
    for col in inv_cols:
        k[col] = inv[col].reindex(idx).fillna(0.0).to_numpy()
    k["returns_to_stock"] = 0.0
    if returning is not None and len(returning):
        back = returning.groupby(["location_id", "sku"])["returning"].sum().astype(float)
        k["returns_to_stock"] = back.reindex(idx).fillna(0.0).to_numpy()
    if len(open_pos):
        po = open_pos.assign(remaining=(open_pos["quantity_ordered"] - open_pos["quantity_received"]).astype(float))
        on_order = po.groupby(["destination_location_id", "sku"])["remaining"].sum()
        k["on_order"] = on_order.reindex(idx).fillna(0.0).to_numpy()
    else:
        k["on_order"] = 0.0
    # Backorders (customer orders taken without stock) are owed before any new demand is served.
    k["position"] = (k["on_hand"] + k["in_transit"] + k["returns_to_stock"] + k["on_order"] - k["allocated"]
                     - k["backorders"])
    return k


def _order_quantity(k: pd.DataFrame, item: pd.DataFrame) -> np.ndarray:
    """Units that bring each position up to its order-up-to level, in whole case packs.

    A supplier order is at least the SKU's minimum order quantity; a store transfer is at most the
    whole packs that fit the room left on the shelf.
    """
    pack = k["sku"].map(item["case_pack"]).astype(float).to_numpy()
    moq = np.where(k["is_store"], 0.0, k["sku"].map(item["moq_units"]).astype(float).to_numpy())
    shelf = k["sku"].map(item["shelf_capacity"]).astype(float).to_numpy()
    room = np.where(k["is_store"], shelf - k["position"].to_numpy(), np.inf)
    return order_quantity(k["order_up_to"].to_numpy(), k["position"].to_numpy(), case_pack=np.maximum(pack, 1),
                          moq=moq, room=room)


def _replenishment_explanation(r: pd.Series, m: pd.Series | None, params: DecisionParams) -> dict:
    """The numbers behind one replenishment line, rounded for a reviewer; ``m`` is its series' model facts."""
    return {
        "forecast_over_lead_time": round(float(r["demand"]), 2),
        "forecast_error_over_lead_time": round(float(r["forecast_sigma"]), 2),
        "demand_sigma_with_lead_time_spread": round(float(r["sigma"]), 2),
        "fill_rate_target": float(r["fill_rate"]),
        "fill_rate_planned": round(float(r.get("planned_fill_rate", r["fill_rate"])), 4),
        "safety_factor": round(float(r["safety_factor"]), 3),
        "safety_stock": round(float(r["safety_stock"]), 2),
        "reorder_point": round(float(r["reorder_point"]), 2),
        "order_up_to": round(float(r["order_up_to"]), 2),
        "inventory_position": round(float(r["position"]), 2),
        "on_hand": float(r["on_hand"]), "in_transit": float(r["in_transit"]),
        "returns_to_stock": float(r["returns_to_stock"]),
        "on_order": float(r["on_order"]), "allocated": float(r["allocated"]),
        "backorders": float(r["backorders"]),
        "lead_time_days": float(r["lead"]), "lead_time_sd_days": round(float(r["lead_sd"]), 2),
        "order_cycle_days": params.review_days,
        "mean_daily_forecast": round(float(r["rate"]), 3),
        "usual_quantity": round(float(r["rate"]) * params.review_days, 2),
        "model": None if m is None else m.get("model"),
        "fallback_reason": None if m is None else m.get("fallback_reason"),
        "backtest_mase": None if m is None or pd.isna(m.get("backtest_mase")) else float(m.get("backtest_mase")),
        "anomalies": list(r["anomalies"]),
    }


def _replenishment_lines(k: pd.DataFrame, series: pd.DataFrame, item: pd.DataFrame, loc: pd.DataFrame,
                         supply: pd.DataFrame, ds: dt.date, params: DecisionParams) -> list[dict]:
    """One proposal line per row of ``k``: a DC -> store ``transfer`` or a supplier ``replenishment`` order."""
    meta = series.set_index("unique_id") if len(series) else pd.DataFrame()
    unit_cost = k["sku"].map(item["unit_cost"]).astype(float)
    rows = []
    for uid, r in k.iterrows():
        m = meta.loc[uid] if len(meta) and uid in meta.index else None
        sku, location = r["sku"], r["location_id"]
        supplier = item.at[sku, "supplier_id"]
        explanation = _replenishment_explanation(r, m, params)
        cost = float(unit_cost[uid])
        need_by = ds + dt.timedelta(days=int(r["lead"]))
        if r["is_store"]:
            rows.append({"doc_type": "transfer", "business_key": f"replenish:{loc.at[location, 'parent_dc']}>{location}:{sku}",
                         "sku": sku, "from_location": loc.at[location, "parent_dc"], "to_location": location,
                         "supplier_id": None, "po_id": None, "po_line": None, "action": "replenish",
                         "quantity": float(r["quantity"]), "unit_cost": cost,
                         "value": round(float(r["quantity"]) * cost, 2), "need_by": need_by,
                         "explanation": explanation})
        else:
            lr = supply["late_rate"].get(uid)
            explanation["supplier_late_rate"] = None if lr is None or pd.isna(lr) else float(lr)
            explanation["supplier_lead_time_source"] = supply["source"].get(uid)
            explanation["supplier_disruption_flagged"] = bool(supply["flagged"].get(uid))
            rows.append({"doc_type": "replenishment", "business_key": f"order:{supplier}>{location}:{sku}",
                         "sku": sku, "from_location": None, "to_location": location, "supplier_id": supplier,
                         "po_id": None, "po_line": None, "action": "order", "quantity": float(r["quantity"]),
                         "unit_cost": cost, "value": round(float(r["quantity"]) * cost, 2), "need_by": need_by,
                         "explanation": explanation})
    return rows


def propose_rebalancing(
    forecasts: pd.DataFrame,
    inventory: pd.DataFrame,
    items: pd.DataFrame,
    locations: pd.DataFrame,
    ds: dt.date,
    *,
    params: DecisionParams = DEFAULT_PARAMS,
) -> pd.DataFrame:
    """Store-to-store transfers within a region where one store will run out and another has excess.

    A store is short when its usable stock does not cover its forecast over its transfer lead time;
    a donor has excess above its forecast over lead time + review + one review of buffer. The moves of
    all stores of a SKU in a region are solved together (:func:`solve_transfers`, a transportation
    problem maximising margin saved minus transfer cost); a move whose margin at risk does not exceed
    its transfer cost is never proposed, and nothing moves across regions.
    """
    if forecasts.empty or inventory.empty:
        return pd.DataFrame(columns=PROPOSAL_COLUMNS)
    loc = locations.set_index("location_id")
    item = items.set_index("sku")
    frame = _store_positions(forecasts, inventory, loc, params)
    if frame is None:
        return pd.DataFrame(columns=PROPOSAL_COLUMNS)
    rows = []
    for (sku, region), grp in frame.groupby(["sku", "region"]):
        if sku not in item.index:
            continue
        rows.extend(_regional_transfers(sku, region, grp, item, loc, ds, params))
    return pd.DataFrame(rows, columns=PROPOSAL_COLUMNS)


def _store_positions(forecasts: pd.DataFrame, inventory: pd.DataFrame, loc: pd.DataFrame,
                     params: DecisionParams) -> pd.DataFrame | None:
    """Per store x SKU with a forecast: its need over the lead time and over lead time + two reviews,
    usable stock, region, shortfall and excess; ``None`` when no store has a forecast.
    """
    fc = _split_ids(forecasts)
    fc = fc[fc["location_id"].map(loc["location_type"]) == "store"]
    if fc.empty:
        return None
    lead = fc["location_id"].map(loc["transfer_lead_time_days"]).astype(float).clip(lower=1)
    horizon_l = fc[fc["step"] <= lead].groupby(["location_id", "sku"])["mean"].sum()
    horizon_lr = fc[fc["step"] <= lead + params.review_days * 2].groupby(["location_id", "sku"])["mean"].sum()
    inv = inventory.set_index(["location_id", "sku"])
    usable = (inv["on_hand"] + inv["in_transit"] - inv["allocated"]).astype(float)
    frame = pd.DataFrame({"need_l": horizon_l, "need_lr": horizon_lr}).join(usable.rename("usable"), how="left")
    frame["usable"] = frame["usable"].fillna(0.0)
    frame = frame.reset_index()
    frame["region"] = frame["location_id"].map(loc["region"])
    frame["short"] = (frame["need_l"] - frame["usable"]).clip(lower=0)
    frame["excess"] = (frame["usable"] - frame["need_lr"]).clip(lower=0)
    return frame


def _regional_transfers(sku: str, region: str, grp: pd.DataFrame, item: pd.DataFrame, loc: pd.DataFrame,
                        ds: dt.date, params: DecisionParams) -> list[dict]:
    """The transfer lines of one SKU between the stores of one region (``grp``), solved together."""
    short = grp[grp["short"] >= params.rebalance_min_units]
    donors = grp[grp["excess"] >= params.rebalance_min_units]
    if short.empty or donors.empty:
        return []
    margin = float(item.at[sku, "unit_price"] - item.at[sku, "unit_cost"])
    unit_cost_transfer = short["location_id"].map(loc["transfer_cost_per_unit"]).astype(float).to_numpy()
    moves = solve_transfers(np.ceil(short["short"].to_numpy()), np.floor(donors["excess"].to_numpy()),
                            margin - unit_cost_transfer[:, None] + np.zeros((len(short), len(donors))))
    cost = float(item.at[sku, "unit_cost"])
    rows = []
    for i, j in zip(*np.nonzero(moves >= params.rebalance_min_units), strict=True):
        s_row, d_row, move = short.iloc[i], donors.iloc[j], float(moves[i, j])
        unit_transfer = float(unit_cost_transfer[i])
        rows.append({
            "doc_type": "transfer", "business_key": f"rebalance:{d_row['location_id']}>{s_row['location_id']}:{sku}",
            "sku": sku, "from_location": d_row["location_id"], "to_location": s_row["location_id"],
            "supplier_id": None, "po_id": None, "po_line": None, "action": "rebalance", "quantity": move,
            "unit_cost": cost, "value": round(move * cost, 2),
            "need_by": ds + dt.timedelta(days=int(loc.at[s_row["location_id"], "transfer_lead_time_days"])),
            "explanation": {
                "region": region, "receiver_shortfall": round(float(s_row["short"]), 2),
                "receiver_usable_stock": float(s_row["usable"]),
                "receiver_forecast_over_lead_time": round(float(s_row["need_l"]), 2),
                "donor_excess": float(np.floor(d_row["excess"])),
                "donor_forecast_over_lead_and_review": round(float(d_row["need_lr"]), 2),
                "margin_at_risk": round(move * margin, 2), "transfer_cost": round(move * unit_transfer, 2),
                "net_benefit": round(move * (margin - unit_transfer), 2),
                "locations_solved_together": int(len(grp)),
                "usual_quantity": round(float(s_row["need_l"]), 2),
            },
        })
    return rows


def solve_transfers(shortfall: np.ndarray, excess: np.ndarray, unit_benefit: np.ndarray) -> np.ndarray:
    """Moves between all receivers and donors of one SKU in one region, maximising the net benefit.

    A transportation problem: maximise ``sum(unit_benefit[i, j] * x[i, j])`` subject to each receiver
    getting at most its shortfall and each donor giving at most its excess, ``x >= 0``; pairs whose
    benefit (margin saved minus transfer cost) is not positive are not allowed. With whole-unit
    shortfalls and excesses the constraint matrix is totally unimodular, so the simplex optimum is in
    whole units.

    Args:
        shortfall: ``[receivers]`` units each receiver lacks.
        excess: ``[donors]`` units each donor can spare.
        unit_benefit: ``[receivers, donors]`` margin at risk minus transfer cost, per unit moved.

    Returns:
        ``[receivers, donors]`` units to move (zeros when nothing pays).
    """
    from scipy.optimize import linprog
    from scipy.sparse import csr_array

    n_r, n_d = len(shortfall), len(excess)
    moves = np.zeros((n_r, n_d))
    allowed = unit_benefit > 1e-9
    if not allowed.any() or shortfall.sum() <= 0 or excess.sum() <= 0:
        return moves
    pairs = np.argwhere(allowed)
    c = -unit_benefit[allowed]
    # Each pair is in its receiver's row and its donor's: two entries a column, so the matrix is sparse.
    columns = np.arange(len(pairs))
    a_ub = csr_array((np.ones(2 * len(pairs)), (np.concatenate([pairs[:, 0], n_r + pairs[:, 1]]),
                                                np.concatenate([columns, columns]))), shape=(n_r + n_d, len(pairs)))
    res = linprog(c, A_ub=a_ub, b_ub=np.concatenate([shortfall, excess]), bounds=(0, None), method="highs")
    if res.status != 0:
        return moves
    moves[pairs[:, 0], pairs[:, 1]] = np.round(res.x)
    return moves
