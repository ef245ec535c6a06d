"""Daily demand per item x location x channel, built from curated sales and inventory.

Store demand comes from POS item movement, ecommerce demand from order lines (by the fulfilment
centre that ships them). A day on which the location ended with nothing on hand is flagged
``censored``: what sold that day is a floor on demand, not demand, and the forecasting models treat
it so. Each day also carries its known regressors (promotion depth, price, retail event; see
:mod:`include.demand.regressors`), so models can tell a promotion's lift from a change in demand.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd

from include.config import as_date
from include.demand.regressors import known_regressors
from include.storage import read_partition, read_range

SERIES_SEP = "|"
DEMAND_COLUMNS = ["unique_id", "location_id", "sku", "channel", "ds", "y", "censored", "promo", "price", "event"]


def series_id(location_id: pd.Series | str, sku: pd.Series | str):
    """``location|sku``: the id of one demand series."""
    return location_id + SERIES_SEP + sku


def split_series_id(unique_id: pd.Series) -> tuple[pd.Series, pd.Series]:
    parts = unique_id.str.split(SERIES_SEP, n=1, expand=True)
    return parts[0], parts[1]


def build_demand(
    pos: pd.DataFrame,
    orders: pd.DataFrame,
    inventory: pd.DataFrame,
    start: dt.date,
    end: dt.date,
    promotions: pd.DataFrame | None = None,
    items: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Dense daily demand for every series seen in the window.

    Args:
        pos: curated ``pos_sales`` rows.
        orders: curated ``ecommerce_orders`` rows.
        inventory: curated ``inventory_snapshot`` rows.
        start: first day of the window.
        end: last day (the logical date).
        promotions: curated ``promotions`` rows known on ``end`` (``None``: no promotion assumed).
        items: curated ``items`` rows, for list prices (``None``: ``price`` is ``NaN``).

    Returns:
        Long frame ``unique_id, location_id, sku, channel, ds, y, censored, promo, price, event`` with
        one row per series and day in the window (days without sales are ``y = 0``).
    """
    parts = []
    if len(pos):
        p = pos.loc[pos["units_sold"].notna(), ["store_id", "sku", "business_date", "units_sold"]]
        parts.append(pd.DataFrame({
            "location_id": p["store_id"].astype(str), "sku": p["sku"].astype(str), "channel": "store",
            "ds": pd.to_datetime(p["business_date"]).dt.normalize(), "y": p["units_sold"].astype(float),
        }))
    if len(orders):
        o = orders[orders["status"].astype(str) != "cancelled"]
        parts.append(pd.DataFrame({
            "location_id": o["fulfilment_location_id"].astype(str), "sku": o["sku"].astype(str),
            "channel": "ecommerce", "ds": pd.to_datetime(o["ordered_at"]).dt.normalize(),
            "y": o["quantity"].astype(float),
        }))
    if not parts:
        return pd.DataFrame(columns=DEMAND_COLUMNS)
    sales = pd.concat(parts, ignore_index=True)
    sales = sales[(sales["ds"] >= pd.Timestamp(start)) & (sales["ds"] <= pd.Timestamp(end))]
    sales = sales.groupby(["location_id", "sku", "channel", "ds"], as_index=False)["y"].sum()
    keys = sales[["location_id", "sku", "channel"]].drop_duplicates().reset_index(drop=True)
    days = pd.date_range(start, end, freq="D")
    grid = keys.loc[keys.index.repeat(len(days))].reset_index(drop=True)
    grid["ds"] = np.tile(days.to_numpy(), len(keys))
    demand = grid.merge(sales, on=["location_id", "sku", "channel", "ds"], how="left")
    demand["y"] = demand["y"].fillna(0.0)
    demand["censored"] = False
    if len(inventory):
        inv = inventory[["location_id", "sku", "snapshot_date", "on_hand"]].copy()
        inv["ds"] = pd.to_datetime(inv["snapshot_date"]).dt.normalize()
        inv["stockout"] = inv["on_hand"].astype(float) <= 0
        demand = demand.merge(inv[["location_id", "sku", "ds", "stockout"]], on=["location_id", "sku", "ds"],
                              how="left")
        demand["censored"] = demand["stockout"].fillna(False).astype(bool)
        demand = demand.drop(columns="stockout")
    demand["unique_id"] = series_id(demand["location_id"], demand["sku"])
    keys = demand[["unique_id", "location_id", "sku"]].drop_duplicates("unique_id")
    known = known_regressors(keys, days, promotions, items)
    demand = demand.merge(known, on=["unique_id", "ds"], how="left", validate="many_to_one")
    return demand[DEMAND_COLUMNS]


def load_demand(ds: str | dt.date, lookback_days: int, root: str | None = None) -> pd.DataFrame:
    """Read the curated partitions of the window ending at ``ds`` and build demand.

    Raises:
        ValueError: when the window holds no curated sales at all, saying how to load history.
    """
    end = as_date(ds)
    start = end - dt.timedelta(days=lookback_days - 1)
    pos = read_range("curated", "pos_sales", start, end, root)
    orders = read_range("curated", "ecommerce_orders", start, end, root)
    inventory = read_range("curated", "inventory_snapshot", start, end, root)
    promotions = read_partition("curated", "promotions", end, root, missing_ok=True)
    items = read_partition("curated", "items", end, root, missing_ok=True)
    demand = build_demand(pos, orders, inventory, start, end, promotions, items)
    if demand.empty:
        raise ValueError(f"no curated sales found for the {lookback_days} days up to {end}: load history first "
                         "(python -m include.ingest history --start YYYY-MM-DD --end YYYY-MM-DD)")
    return demand


def demand_summary(demand: pd.DataFrame) -> dict:
    """Series, rows, censored (stock-out) days and units of a demand frame."""
    return {"series": int(demand["unique_id"].nunique()), "rows": int(len(demand)),
            "censored_days": int(demand["censored"].sum()), "units": float(demand["y"].sum())}
