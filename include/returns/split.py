"""How far to trust each store's own forecast of an item when choosing where a returned unit sells.

The router sends a unit to the store where it would sell soonest. A store's forecast of an item it sells a
few of a week is noisy, and the best of a dozen noisy forecasts is the one most likely to be too high: the
unit goes where the forecast was lucky. The item's forecast over all stores, split by each store's share of
all store demand (:func:`pooled_split`), is steadier, but blind to what one store sells more of than its
size says. :func:`split_weight` measures, on a past night's forecast and what the stores then sold, how much
of the store's own forecast to keep: the least-squares weight ``w`` of ``w * own + (1 - w) * pooled``, in
[0, 1]. Where stores differ in their mix it comes out near 1 (Walmart's 45 stores x 81 departments, each
one's last 8 weeks against the 4 after: 0.73 to 1.0) and the router keeps the stores' own forecasts; where a
store sells every item in proportion to its size, near 0. :func:`calibrate_split` applies it. Locations that
are not stores (the web shop's fulfilment centre: one location, its own forecast) are left as they are.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Iterable

import numpy as np
import pandas as pd

__all__ = ["MIN_SERIES", "calibrate_split", "mean_daily_sold", "pooled_split", "split_weight"]

#: Store x item series a weight needs (with some spread between own and pooled) before it is trusted.
MIN_SERIES = 50


def pooled_split(demand: pd.DataFrame, stores: Collection[str]) -> np.ndarray:
    """Each row's ``mean_daily`` as the item's demand over all ``stores`` split by the store's share of all
    their demand; rows of other locations keep their own.

    Args:
        demand: ``location_id, sku, mean_daily``, one row per location x SKU.
        stores: the locations that are stores.
    """
    own = demand["mean_daily"].to_numpy(float)
    at_store = demand["location_id"].astype(str).isin(set(map(str, stores))).to_numpy()
    out = own.copy()
    if not at_store.any():
        return out
    rows = demand[at_store]
    total = float(own[at_store].sum())
    if total <= 0:
        return out
    share = rows.groupby("location_id", observed=True)["mean_daily"].transform("sum").to_numpy(float) / total
    item = rows.groupby("sku", observed=True)["mean_daily"].transform("sum").to_numpy(float)
    out[at_store] = item * share
    return out


def split_weight(past: pd.DataFrame, sold: pd.DataFrame, stores: Collection[str], *,
                 min_series: int = MIN_SERIES) -> float | None:
    """The weight of a store's own forecast that predicted best what the stores sold.

    Args:
        past: a past night's forecast, ``location_id, sku, mean_daily`` over the days it forecast.
        sold: mean daily units sold over those same days, ``location_id, sku, mean_daily``; a store x SKU of
            ``past`` missing here sold nothing.
        stores: the locations that are stores (the only ones weighed).
        min_series: fewest store x SKU series with a forecast for a weight.

    Returns:
        ``w`` in [0, 1] minimising the squared error of ``w * own + (1 - w) * pooled`` against what sold,
        or ``None`` with too few series or no difference between the two forecasts to weigh.
    """
    at_store = past["location_id"].astype(str).isin(set(map(str, stores))).to_numpy()
    if at_store.sum() < min_series:
        return None
    past = past[at_store].reset_index(drop=True)
    keys = ["location_id", "sku"]
    actual = past[keys].astype(str).merge(sold.assign(**{k: sold[k].astype(str) for k in keys}), on=keys,
                                          how="left")["mean_daily"].fillna(0.0).to_numpy(float)
    own = past["mean_daily"].to_numpy(float)
    pooled = pooled_split(past, stores)
    x, y = own - pooled, actual - pooled
    spread = float(x @ x)
    if spread <= 1e-12 * max(float(own @ own), 1e-12):
        return None
    return float(np.clip((x @ y) / spread, 0.0, 1.0))


def mean_daily_sold(pos_sales: pd.DataFrame | Iterable[pd.DataFrame], start: dt.date, end: dt.date
                    ) -> pd.DataFrame | None:
    """Mean daily units sold per store x SKU from ``start`` to ``end`` (both included) in the POS sales
    (``store_id, sku, business_date, units_sold``), as ``location_id, sku, mean_daily``; ``None`` when a day
    of the range has no sales at all (a missing extract would read as a day nobody bought anything).

    ``pos_sales`` may come in pieces (a day's partition at a time): each is summed as it comes, so only one
    piece and the running sums are ever held.
    """
    days = (end - start).days + 1
    seen: set[pd.Timestamp] = set()
    total: pd.Series | None = None
    for piece in [pos_sales] if isinstance(pos_sales, pd.DataFrame) else pos_sales:
        if piece.empty:
            continue
        when = pd.to_datetime(piece["business_date"]).dt.normalize()
        inside = ((when >= pd.Timestamp(start)) & (when <= pd.Timestamp(end))).to_numpy()
        if not inside.any():
            continue
        seen.update(when[inside].unique())
        piece = piece[inside]
        summed = piece["units_sold"].groupby([piece["store_id"].astype(str), piece["sku"].astype(str)]).sum()
        total = summed if total is None else total.add(summed, fill_value=0)
    if days < 1 or total is None or len(seen) < days:
        return None
    return pd.DataFrame({"location_id": total.index.get_level_values(0), "sku": total.index.get_level_values(1),
                         "mean_daily": total.to_numpy(float) / days})


def calibrate_split(demand: pd.DataFrame, weight: float | None, stores: Collection[str]) -> pd.DataFrame:
    """``demand`` with the stores' ``mean_daily`` at ``weight`` of their own forecast and the rest of the
    item's split (:func:`pooled_split`); unchanged when ``weight`` is ``None``."""
    if weight is None:
        return demand
    if not 0.0 <= weight <= 1.0:
        raise ValueError(f"the weight of a store's own forecast must be in [0, 1], got {weight}")
    own = demand["mean_daily"].to_numpy(float)
    return demand.assign(mean_daily=weight * own + (1.0 - weight) * pooled_split(demand, stores))
