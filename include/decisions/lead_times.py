"""The supplier lead time the nightly plans with, and where it came from.

Three sources, the first that has a value wins:

- ``predicted``: the disruption detector's planning lead time
  (:func:`include.procurement.disruption.planning_lead_times`): the lead-time model's prediction for a
  line ordered today, raised for a flagged supplier to the age its overdue lines have reached. Used where
  the model read some of the supplier's receipts, or the supplier is flagged (its overdue lines are then
  the evidence); a prediction from the promise alone is no better than the promise.
- ``measured``: the mean and spread of the last year's receipts (``models.anomaly.supplier.supplier_stats``).
- ``promised``: the supplier master's promised lead time, with the measured spread, else a quarter of it.

Replenishment (:mod:`include.decisions.propose`) and PO exceptions (:mod:`include.decisions.po_exceptions`)
both read it, so an order and the arrival predicted for an open line use the same lead time.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["PLANNING_COLUMNS", "series_lead_times", "series_supply", "supplier_lead_times", "with_planning_lead_times"]

#: The columns :func:`with_planning_lead_times` adds to ``supplier_stats``.
PLANNING_COLUMNS = ("planned_lead_time", "planned_lead_time_sd", "disruption_flagged")
#: Spread of a lead time with no measured spread, as a share of it.
DEFAULT_SD_SHARE = 0.25


def with_planning_lead_times(stats: pd.DataFrame, planning: pd.DataFrame | None) -> pd.DataFrame:
    """``stats`` (per ``supplier_id``) with the detector's planning lead time of each supplier beside it.

    Args:
        stats: ``supplier_stats`` (``supplier_id, mean_lead_time, std_lead_time, ...``; may be empty).
        planning: :func:`~include.procurement.disruption.planning_lead_times` (``supplier_id,
            lead_time_mean, lead_time_sd, flagged`` and ``received_lines``); ``None`` or empty: none.

    Returns:
        One row per supplier of either frame, with :data:`PLANNING_COLUMNS` (``NaN``/False where the
        detector has no usable value: no receipts read and not flagged).
    """
    if planning is None or planning.empty:
        return stats
    flagged = planning["flagged"].astype(bool).to_numpy()
    received = planning["received_lines"].to_numpy(float) if "received_lines" in planning else np.ones(len(planning))
    usable = flagged | (received > 0)
    plan = pd.DataFrame({
        "supplier_id": planning["supplier_id"].astype(str).to_numpy(object),
        "planned_lead_time": np.where(usable, planning["lead_time_mean"].to_numpy(float), np.nan),
        "planned_lead_time_sd": np.where(usable, planning["lead_time_sd"].to_numpy(float), np.nan),
        "disruption_flagged": flagged,
    })
    if stats is None or stats.empty:
        return plan
    merged = stats.drop(columns=[c for c in PLANNING_COLUMNS if c in stats], errors="ignore").merge(
        plan, on="supplier_id", how="outer")
    merged["disruption_flagged"] = merged["disruption_flagged"].fillna(False).astype(bool)
    return merged


def supplier_lead_times(supplier_id: pd.Series, stats: pd.DataFrame, promised: pd.Series) -> pd.DataFrame:
    """The lead time (days) and spread to plan with for each row's supplier, and their source.

    Args:
        supplier_id: Supplier of each row (e.g. a series' SKU's supplier, an open PO line's).
        stats: ``supplier_stats`` indexed by ``supplier_id``, optionally with :data:`PLANNING_COLUMNS`
            (:func:`with_planning_lead_times`); empty when nothing is measured.
        promised: Promised lead time of each row's supplier (indexed like ``supplier_id``).

    Returns:
        Indexed like ``supplier_id``: ``lead`` and ``lead_sd`` (days, unrounded), ``source``
        (``predicted``, ``measured`` or ``promised``) and ``flagged`` (a detected disruption).
    """
    def column(name: str) -> np.ndarray:
        if len(stats) and name in stats:
            return supplier_id.map(stats[name]).to_numpy(float)
        return np.full(len(supplier_id), np.nan)

    planned, planned_sd = column("planned_lead_time"), column("planned_lead_time_sd")
    measured, measured_sd = column("mean_lead_time"), column("std_lead_time")
    flagged = np.nan_to_num(column("disruption_flagged"), nan=0.0) > 0
    promised = np.asarray(promised, float)
    predicted, is_measured = np.isfinite(planned), np.isfinite(measured)
    lead = np.where(predicted, planned, np.where(is_measured, measured, promised))
    sd = np.where(predicted & np.isfinite(planned_sd), planned_sd, measured_sd)
    sd = np.where(np.isfinite(sd), sd, DEFAULT_SD_SHARE * lead)
    source = np.where(predicted, "predicted", np.where(is_measured, "measured", "promised"))
    return pd.DataFrame({"lead": lead, "lead_sd": sd, "source": source, "flagged": flagged & predicted},
                        index=supplier_id.index)


def series_supply(keys: pd.DataFrame, loc: pd.DataFrame, item: pd.DataFrame, suppliers: pd.DataFrame,
                supplier_stats: pd.DataFrame) -> pd.DataFrame:
    """Replenishment lead time of each series and its spread, with the supplier facts behind them.

    A store is replenished from its DC (the location's transfer lead time, no spread); a DC or the
    fulfilment centre from the SKU's supplier, with the lead time of :func:`supplier_lead_times`
    (predicted, else measured, else promised).

    Args:
        keys: ``location_id, sku`` of each series (index: ``unique_id``), both known.
        loc: Locations indexed by ``location_id``.
        item: Items indexed by ``sku``.
        suppliers: The supplier master.
        supplier_stats: ``supplier_stats``, optionally with :data:`PLANNING_COLUMNS`.

    Returns:
        Indexed like ``keys``: ``lead`` (whole days, at least 1), ``lead_sd``, the supplier lead time's
        ``source`` and ``flagged`` (a detected disruption), and the supplier's ``late_rate``.
    """
    stats = supplier_stats.set_index("supplier_id") if len(supplier_stats) else pd.DataFrame()
    from_store = keys["location_id"].map(loc["location_type"]) == "store"
    supplier_id = keys["sku"].map(item["supplier_id"])
    promised = supplier_id.map(suppliers.set_index("supplier_id")["promised_lead_time_days"]).astype(float)
    supplier = supplier_lead_times(supplier_id, stats, promised)
    late_rate = supplier_id.map(stats["late_rate"]) if "late_rate" in stats else pd.Series(np.nan, index=keys.index)
    lead = np.where(from_store, keys["location_id"].map(loc["transfer_lead_time_days"]).astype(float), supplier["lead"])
    return pd.DataFrame({"lead": np.maximum(np.round(lead), 1), "lead_sd": np.where(from_store, 0.0, supplier["lead_sd"]),
                         "source": supplier["source"], "flagged": supplier["flagged"], "late_rate": late_rate},
                        index=keys.index)


def series_lead_times(unique_id: pd.Index, items: pd.DataFrame, locations: pd.DataFrame, suppliers: pd.DataFrame,
                      supplier_stats: pd.DataFrame) -> pd.Series:
    """Replenishment lead time in whole days the policy plans each series (``location|sku``) with, as
    :func:`include.decisions.propose.propose_replenishment` does (NaN: unknown location or SKU)."""
    if not len(unique_id):
        return pd.Series(np.nan, index=unique_id, dtype=float)
    parts = pd.Series(unique_id, index=unique_id, dtype=object).str.split("|", n=1, expand=True)
    keys = pd.DataFrame({"location_id": parts[0], "sku": parts[1] if 1 in parts else None}, index=unique_id)
    loc, item = locations.set_index("location_id"), items.set_index("sku")
    keys = keys[keys["sku"].isin(item.index) & keys["location_id"].isin(loc.index)]
    if keys.empty:
        return pd.Series(np.nan, index=unique_id)
    return series_supply(keys, loc, item, suppliers, supplier_stats)["lead"].reindex(unique_id)
