"""The nightly's decisions in one batch: replenishment, rebalancing transfers and PO exceptions."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from functools import partial
from typing import Any

import numpy as np
import pandas as pd

from include.decisions.calibration import ErrorCalibration
from include.decisions.params import DEFAULT_PARAMS, DecisionParams
from include.decisions.propose import (
    propose_po_exceptions,
    propose_rebalancing,
    propose_replenishment,
    replenishment_levels,
)
from include.decisions.replenishment import order_cycle_shortage, pooled_safety_factors
from include.decisions.sources import with_source_options
from include.demand.history import split_series_id

#: Curated master and state partitions the batch reads, as of the run's date.
INPUTS = ("inventory_snapshot", "purchase_orders", "items", "locations", "suppliers")
#: An optional input from ERP staging: returned units going back to the shelf
#: (:func:`include.returns.stock.returning_units`).
RETURNS_TO_STOCK = "returns_to_stock"
OPEN_PO_STATUSES = ("open", "partial")


def propose_batch(forecasts: pd.DataFrame, series: pd.DataFrame, curated: Mapping[str, pd.DataFrame],
                  supplier_stats: pd.DataFrame, day: dt.date, *,
                  anomalies: pd.DataFrame | None = None, alternates: pd.DataFrame | None = None,
                  params: DecisionParams = DEFAULT_PARAMS, calibration: ErrorCalibration | None = None,
                  safety_factors: dict[float, float] | None = None) -> pd.DataFrame:
    """Every proposal of the night, explained, one row per line.

    Args:
        forecasts: the night's forecasts per series and day, with quantiles.
        series: the night's series table (model, fallback, backtest error).
        curated: the partitions named in :data:`INPUTS`, as of ``day``, and optionally
            :data:`RETURNS_TO_STOCK`.
        supplier_stats: lead-time statistics and fill rate per supplier.
        day: the run's logical date.
        anomalies: today's demand anomalies (lines involving one say so).
        alternates: alternate suppliers per SKU, ranked (:func:`include.procurement.alternates.rank_alternates`),
            for PO exceptions that move or split a line and the other sources an order offers its approver
            (:mod:`include.decisions.sources`); ``None``: PO lines are expedited or accepted.
        params: the policy's knobs (fill-rate targets, order cycle).
        calibration: the forecaster's measured out-of-sample error (:mod:`include.decisions.calibration`)
            for the replenishment levels; ``None``: ``sigma_cum`` as the backtest gave it.
        safety_factors: the night's pooled safety factor per fill-rate target (:func:`night_safety_factors`);
            ``None``: pooled over these series.

    Returns:
        The proposals of all three document types (``doc_type`` tells them apart).
    """
    pos = curated["purchase_orders"]
    open_pos = pos[pos["status"].isin(OPEN_PO_STATUSES)] if len(pos) else pos
    inventory, items = curated["inventory_snapshot"], curated["items"]
    locations, suppliers = curated["locations"], curated["suppliers"]
    parts = [
        propose_replenishment(forecasts, series, inventory, open_pos, items, locations, suppliers, supplier_stats,
                              day, anomalies=anomalies, params=params, calibration=calibration,
                              safety_factors=safety_factors, returning=curated.get(RETURNS_TO_STOCK)),
        propose_rebalancing(forecasts, inventory, items, locations, day, params=params),
        propose_po_exceptions(open_pos, supplier_stats, suppliers, inventory, series, locations, day,
                              alternates=alternates, items=items, params=params),
    ]
    found = [p for p in parts if len(p)]
    lines = pd.concat(found, ignore_index=True) if found else parts[0]
    return with_source_options(lines, alternates=alternates, inventory=inventory, locations=locations)


#: The inputs that hold rows per SKU: a shard of SKUs reads only its own.
PER_SKU_INPUTS = ("inventory_snapshot", "purchase_orders", RETURNS_TO_STOCK)


def propose_shards(shards: Iterable[tuple[pd.DataFrame, pd.DataFrame]], curated: Mapping[str, pd.DataFrame],
                   supplier_stats: pd.DataFrame, day: dt.date, *,
                   anomalies: pd.DataFrame | None = None, alternates: pd.DataFrame | None = None,
                   params: DecisionParams = DEFAULT_PARAMS, calibration: ErrorCalibration | None = None,
                   safety_factors: dict[float, float] | None = None) -> pd.DataFrame:
    """:func:`propose_batch` one shard of SKUs at a time, the lines of every shard together.

    A shard holds every location of its SKUs (``include.demand.shards``), so transfers between them and
    the destinations of a SKU's PO lines are all in the shard; PO exceptions are ranked again across
    shards by the units they would lose.

    Args:
        shards: ``(forecasts, series)`` of each shard (an iterator, so one shard is held at a time).
        curated, supplier_stats, day, anomalies, alternates, params, calibration, safety_factors: as for
            :func:`propose_batch`, for every SKU.
    """
    parts = []
    for forecasts, series in shards:
        skus = set(split_series_id(forecasts["unique_id"].drop_duplicates())[1]) if len(forecasts) else set()
        mine = {name: frame[frame["sku"].isin(skus)] if name in PER_SKU_INPUTS and len(frame) else frame
                for name, frame in curated.items()}
        parts.append(propose_batch(forecasts, series, mine, supplier_stats, day, anomalies=anomalies,
                                   alternates=alternates, params=params, calibration=calibration,
                                   safety_factors=safety_factors))
    if not parts:
        raise ValueError("no forecast shards to decide on: has forecast_demand run for this date?")
    found = [p for p in parts if len(p)]
    if len(found) <= 1:
        return found[0] if found else parts[0]
    out = pd.concat(found, ignore_index=True)
    exception = (out["doc_type"] == "po_exception").to_numpy()
    lost = out["explanation"].map(lambda e: e.get("lost_units", 0) if isinstance(e, dict) else 0).to_numpy(float)
    # Every other line in shard order, then the PO exceptions by units lost, as one shard would have them.
    order = np.lexsort((np.where(exception, -lost, 0.0), exception))
    return out.iloc[order].reset_index(drop=True)


def night_safety_factors(shards: Iterable[tuple[pd.DataFrame, pd.DataFrame]], curated: Mapping[str, pd.DataFrame],
                         supplier_stats: pd.DataFrame, *, params: DecisionParams = DEFAULT_PARAMS,
                         calibration: ErrorCalibration | None = None) -> dict[float, float] | None:
    """The pooled safety factor of each fill-rate target over every shard's series together: the night is
    one pool (as one review of the replay), so a night decides the same in one shard or many.

    Args:
        shards: ``(forecasts, series)`` of each shard, as for :func:`propose_shards` (read once more).
        curated, supplier_stats, params, calibration: as for :func:`propose_batch`.

    Returns:
        ``{planned target: k}`` (the targets as ``params.planned_fill_rates`` plans them); ``None`` when each
        series serves its own target (``params.fill_rate_per_series``).
    """
    if params.fill_rate_per_series:
        return None
    parts = [replenishment_levels(forecasts, series, curated["items"], curated["locations"], curated["suppliers"],
                                  supplier_stats, params=params, calibration=calibration)
             for forecasts, series in shards]
    levels = pd.concat([p for p in parts if len(p)]) if any(len(p) for p in parts) else None
    if levels is None:
        return {}
    demand, sigma = levels["demand"].to_numpy(float), levels["sigma"].to_numpy(float)
    cycle = levels["rate"].to_numpy(float) * params.review_days
    target = levels["planned_fill_rate"].to_numpy(float)
    k = pooled_safety_factors(target, cycle, partial(order_cycle_shortage, interval=(demand, sigma), headroom=cycle),
                              demand, sigma, np.zeros(len(levels)))
    return {float(t): float(k[target == t][0]) for t in np.unique(target)}


def batch_summary(proposals: pd.DataFrame) -> dict[str, Any]:
    """Proposals in all and by document type."""
    return {"proposals": int(len(proposals)),
            "by_type": proposals["doc_type"].value_counts().to_dict() if len(proposals) else {}}


def tier_summary(tiered: pd.DataFrame) -> dict[str, Any]:
    """Tiered proposals by ``doc_type/tier``, and how many auto-approve or need a planner."""
    counts = tiered.groupby(["doc_type", "risk_tier"]).size() if len(tiered) else pd.Series(dtype=int)
    return {"by_type_and_tier": {f"{d}/{t}": int(n) for (d, t), n in counts.items()},
            "auto_approve": int(tiered["auto_approve"].sum()) if len(tiered) else 0,
            "needs_planner": int((~tiered["auto_approve"]).sum()) if len(tiered) else 0}
