"""Known regressors of every demand series: promotion depth, selling price and retail events.

They are "known" because the retailer sets them in advance: the promotion calendar is published weeks
ahead, the list price is in the item master, and the event calendar is computed by rule. So the same
function gives them for the history (to learn their effect) and for the forecast horizon (to apply
it), and a backfill sees exactly the promotions that were published on its logical date.

Columns added per ``unique_id`` and day:

- ``promo``: the deepest discount running for the item at the location that day, as a fraction
  (``0.25`` = 25 % off; ``0`` when there is none). A promotion without a location runs everywhere.
- ``price``: list price times ``1 - promo``; ``NaN`` when the item master has no price for the SKU.
- ``event``: the retail event label of the day (:mod:`include.demand.calendar`), ``None`` otherwise.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from include.demand.calendar import event_labels

__all__ = ["REGRESSORS", "known_regressors"]

#: Numeric known-regressor columns; ``event`` is the categorical one.
REGRESSORS = ("promo", "price")


def _promotion_days(promotions: pd.DataFrame, first: pd.Timestamp, last: pd.Timestamp) -> pd.DataFrame:
    """One row per promotion and day it runs inside ``first..last``: ``sku, location_id, ds, promo``."""
    cols = ["sku", "location_id", "ds", "promo"]
    if promotions is None or promotions.empty:
        return pd.DataFrame(columns=cols)
    start = pd.to_datetime(promotions["start_date"]).dt.normalize().clip(lower=first)
    end = pd.to_datetime(promotions["end_date"]).dt.normalize().clip(upper=last)
    length = ((end - start).dt.days + 1).clip(lower=0).to_numpy()
    keep = length > 0
    if not keep.any():
        return pd.DataFrame(columns=cols)
    rows = np.repeat(np.flatnonzero(keep), length[keep])
    offsets = np.arange(len(rows)) - np.repeat(np.cumsum(length[keep]) - length[keep], length[keep])
    location = promotions["location_id"] if "location_id" in promotions.columns else pd.Series(None, index=promotions.index)
    return pd.DataFrame({
        "sku": promotions["sku"].astype(str).to_numpy()[rows],
        "location_id": location.astype(object).where(location.notna(), None).to_numpy()[rows],
        "ds": start.to_numpy()[rows] + offsets.astype("timedelta64[D]"),
        "promo": promotions["discount_pct"].astype(float).to_numpy()[rows],
    })


def known_regressors(
    keys: pd.DataFrame,
    days: pd.DatetimeIndex,
    promotions: pd.DataFrame | None,
    items: pd.DataFrame | None,
) -> pd.DataFrame:
    """``promo``, ``price`` and ``event`` for every series in ``keys`` on every day in ``days``.

    Args:
        keys: One row per series: ``unique_id, location_id, sku``.
        days: The days wanted (history window or forecast horizon).
        promotions: Curated ``promotions`` rows (``sku, location_id, start_date, end_date,
            discount_pct``), or ``None`` when the calendar is not available (no promotion is assumed).
        items: Curated ``items`` rows (``sku, unit_price``), or ``None``.

    Returns:
        ``unique_id, ds, promo, price, event``, one row per series and day, series-major.
    """
    days = pd.DatetimeIndex(days).normalize()
    n_keys, n_days = len(keys), len(days)
    grid = pd.DataFrame({
        "unique_id": np.repeat(keys["unique_id"].to_numpy(dtype=object), n_days),
        "location_id": np.repeat(keys["location_id"].astype(str).to_numpy(dtype=object), n_days),
        "sku": np.repeat(keys["sku"].astype(str).to_numpy(dtype=object), n_days),
        "ds": np.tile(days.to_numpy(), n_keys),
    })
    promo = np.zeros(len(grid))
    if n_days:
        spans = _promotion_days(promotions, days.min(), days.max())
        everywhere = spans[spans["location_id"].isna()].groupby(["sku", "ds"])["promo"].max()
        local = spans[spans["location_id"].notna()].groupby(["location_id", "sku", "ds"])["promo"].max()
        if len(everywhere):
            idx = pd.MultiIndex.from_arrays([grid["sku"], grid["ds"]])
            promo = np.fmax(promo, everywhere.reindex(idx).to_numpy(dtype=float))
        if len(local):
            idx = pd.MultiIndex.from_arrays([grid["location_id"], grid["sku"], grid["ds"]])
            promo = np.fmax(promo, local.reindex(idx).to_numpy(dtype=float))
    promo = np.nan_to_num(promo, nan=0.0)
    if items is not None and len(items) and "unit_price" in items.columns:
        list_price = pd.to_numeric(items.drop_duplicates("sku").set_index("sku")["unit_price"], errors="coerce")
        list_price.index = list_price.index.astype(str)
        price = grid["sku"].map(list_price).to_numpy(dtype=float) * (1.0 - promo)
    else:
        price = np.full(len(grid), np.nan)
    labels = event_labels(days).to_numpy(dtype=object)
    return pd.DataFrame({
        "unique_id": grid["unique_id"],
        "ds": grid["ds"],
        "promo": promo,
        "price": np.round(price, 4),
        "event": pd.Series(np.tile(labels, n_keys), dtype=object),
    })
