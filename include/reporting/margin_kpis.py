"""Realised gross margin over the KPI window, for the whole business, each channel and each region's stores.

The margin is the one the margin-leakage detector judges (:mod:`models.anomaly.margin`): sales at shelf price
(:func:`include.finance.sales.sales_lines`), less the discounts given, less the refunds paid in the window,
less the cost of the units sold at the item's unit cost. The rate is that margin over **net sales**, what the
customers paid and kept: shelf-price sales less discounts and refunds.

Sales are summed into cells of channel x region, one day's extracts at a time, so the window is never held
whole. Store sales and store returns take the region of their store in the location master; ecommerce is
shipped nationally from the fulfilment centre, so its cells have no region and it counts in the channel's
figure and the whole business's, never in a region's.
"""

from __future__ import annotations

from collections.abc import Iterable

import pandas as pd

from include.finance.sales import sales_lines

CELL_COLUMNS = ["channel", "region", "gross_sales", "discount_amount", "cost_of_sales", "refund_amount"]
#: Returns channels as the demand and the sales name them (``web`` returns are ecommerce's).
RETURN_CHANNELS = {"store": "store", "web": "ecommerce", "app": "ecommerce"}
_MONEY = CELL_COLUMNS[2:]


def region_of(locations: pd.DataFrame) -> pd.Series:
    """``location_id -> region`` of the location master (empty when it has no ``region`` column)."""
    if "region" not in locations or not len(locations):
        return pd.Series(dtype=object)
    return locations.assign(location_id=locations["location_id"].astype(str)).set_index("location_id")["region"]


def _cells(lines: pd.DataFrame, region: pd.Series | str | None, items: pd.DataFrame) -> pd.DataFrame:
    """Sales lines (:func:`sales_lines`) summed per channel and region, with the cost of the units sold."""
    cost = lines["sku"].map(items.set_index("sku")["unit_cost"]).astype(float).fillna(0.0)
    frame = pd.DataFrame({"channel": lines["channel"].to_numpy(), "region": region,
                          "gross_sales": lines["gross_sales"].to_numpy(float),
                          "discount_amount": lines["discount_amount"].to_numpy(float),
                          "cost_of_sales": (lines["units"].astype(float) * cost).to_numpy(), "refund_amount": 0.0})
    return frame.groupby(["channel", "region"], as_index=False, dropna=False)[_MONEY].sum()


def sales_cells(pos: pd.DataFrame, orders: pd.DataFrame, items: pd.DataFrame, regions: pd.Series) -> pd.DataFrame:
    """One day's sales per channel x region: shelf-price sales, discounts and cost of the units sold.

    Args:
        pos: curated POS sales (``store_id, sku, business_date, units_sold, gross_sales, discount_amount``).
        orders: curated ecommerce order lines (``sku, ordered_at, quantity, unit_price, status``).
        items: curated item master (``sku, unit_price, unit_cost``).
        regions: :func:`region_of` the location master.

    Returns:
        :data:`CELL_COLUMNS` (``refund_amount`` zero); a store missing from the master has no region.
    """
    empty = pd.DataFrame()
    parts = []
    if len(pos):
        region = pos["store_id"].astype(str).map(regions)
        for name, day in pos.groupby(region.fillna(""), sort=False):
            lines = sales_lines(day, empty, items)
            parts.append(_cells(lines, name or None, items) if len(lines) else None)
    if len(orders):
        lines = sales_lines(empty, orders, items)
        parts.append(_cells(lines, None, items) if len(lines) else None)
    parts = [p for p in parts if p is not None]
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=CELL_COLUMNS)


def refund_cells(returns: pd.DataFrame, regions: pd.Series) -> pd.DataFrame:
    """Refunds paid per channel x region (``returns``: curated returns with ``channel, location_id,
    refund_amount``); a store return takes its store's region, an online one none."""
    if not len(returns):
        return pd.DataFrame(columns=CELL_COLUMNS)
    channel = returns["channel"].astype(str).map(RETURN_CHANNELS).fillna(returns["channel"].astype(str))
    region = returns["location_id"].astype(str).map(regions).where(channel == "store")
    frame = pd.DataFrame({"channel": channel, "region": region, "refund_amount": returns["refund_amount"].astype(float)})
    frame = frame.assign(gross_sales=0.0, discount_amount=0.0, cost_of_sales=0.0)[CELL_COLUMNS]
    return frame.groupby(["channel", "region"], as_index=False, dropna=False)[_MONEY].sum()


def window_cells(days: Iterable[pd.DataFrame]) -> pd.DataFrame:
    """The cells of every day (and the window's refunds) summed per channel x region."""
    parts = [d for d in days if len(d)]
    if not parts:
        return pd.DataFrame(columns=CELL_COLUMNS)
    return pd.concat(parts, ignore_index=True).groupby(["channel", "region"], as_index=False, dropna=False)[
        _MONEY].sum()


def gross_margin_rate(cells: pd.DataFrame) -> float | None:
    """Realised gross margin over net sales of ``cells`` together; None without net sales."""
    if not len(cells):
        return None
    total = cells[_MONEY].astype(float).sum()
    net = total["gross_sales"] - total["discount_amount"] - total["refund_amount"]
    return float((net - total["cost_of_sales"]) / net) if net > 0 else None


def margin_by(cells: pd.DataFrame, column: str) -> dict[str, float | None]:
    """:func:`gross_margin_rate` per ``channel`` or ``region`` (cells without one left out)."""
    if not len(cells):
        return {}
    known = cells[cells[column].notna()]
    return {str(name): gross_margin_rate(part) for name, part in known.groupby(column, sort=True)}
