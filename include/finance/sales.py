"""Sales and returns lines per SKU x channel x day, in the shape the margin and return detectors read.

Store sales come from POS at the price paid, so shelf-price revenue adds the discount back; ecommerce
order lines are valued at the item's shelf price, the discount being what the order paid below it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

import pandas as pd

SALES_COLUMNS = ["channel", "sku", "date", "units", "gross_sales", "discount_amount"]
RETURN_COLUMNS = ["sku", "channel", "date", "quantity", "refund_amount", "reason"]


def sales_lines(pos: pd.DataFrame, orders: pd.DataFrame, items: pd.DataFrame) -> pd.DataFrame:
    """Store and ecommerce sales at shelf price, with the discount given (cancelled orders left out).

    Args:
        pos: curated POS sales (``sku, business_date, units_sold, gross_sales, discount_amount``).
        orders: curated ecommerce order lines (``sku, ordered_at, quantity, unit_price, status``).
        items: curated item master (``sku, unit_price``).

    Returns:
        :data:`SALES_COLUMNS`; rows without a shelf price are dropped.
    """
    parts = []
    if len(pos):
        parts.append(pd.DataFrame({
            "channel": "store", "sku": pos["sku"], "date": pd.to_datetime(pos["business_date"]),
            "units": pos["units_sold"].astype(float),
            "gross_sales": (pos["gross_sales"] + pos["discount_amount"]).astype(float),
            "discount_amount": pos["discount_amount"].astype(float)}))
    if len(orders):
        o = orders[orders["status"].astype(str) != "cancelled"]
        shelf = o["sku"].map(items.set_index("sku")["unit_price"]).astype(float)
        qty = o["quantity"].astype(float)
        parts.append(pd.DataFrame({
            "channel": "ecommerce", "sku": o["sku"], "date": pd.to_datetime(o["ordered_at"]).dt.normalize(),
            "units": qty, "gross_sales": qty * shelf,
            "discount_amount": (qty * (shelf - o["unit_price"].astype(float))).clip(lower=0)}))
    if not parts:
        return pd.DataFrame(columns=SALES_COLUMNS)
    return pd.concat(parts, ignore_index=True).dropna(subset=["gross_sales"])


def return_lines(returns: pd.DataFrame) -> pd.DataFrame:
    """Curated returns as :data:`RETURN_COLUMNS` (``returned_at`` becomes ``date``)."""
    if not len(returns):
        return pd.DataFrame(columns=RETURN_COLUMNS)
    return returns.rename(columns={"returned_at": "date"})[RETURN_COLUMNS]


def daily_sales(pos_days: Iterable[pd.DataFrame], order_days: Iterable[pd.DataFrame],
                items: pd.DataFrame) -> pd.DataFrame:
    """:func:`sales_lines` summed per channel x SKU x day, one day's extract at a time.

    Args:
        pos_days: curated POS sales, one frame per day (an iterator, so only one day is held).
        order_days: curated ecommerce order lines, likewise.
        items: curated item master.

    Returns:
        :data:`SALES_COLUMNS`, one row per channel, SKU and day: what the margin and return detectors read.
    """
    empty = pd.DataFrame()
    parts = [sales_lines(frame, empty, items) for frame in pos_days if len(frame)]
    parts += [sales_lines(empty, frame, items) for frame in order_days if len(frame)]
    parts = [p.groupby(["channel", "sku", "date"], as_index=False)[["units", "gross_sales", "discount_amount"]].sum()
             for p in parts if len(p)]
    if not parts:
        return pd.DataFrame(columns=SALES_COLUMNS)
    out = pd.concat(parts, ignore_index=True)
    return out.groupby(["channel", "sku", "date"], as_index=False)[["units", "gross_sales", "discount_amount"]].sum()[
        SALES_COLUMNS]


def margin_and_return_anomalies(sales: pd.DataFrame, returns: pd.DataFrame, items: pd.DataFrame,
                                day: dt.date) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Margin leakage and return-rate spikes per SKU x channel, as of ``day``.

    Args:
        sales: :func:`daily_sales` (or :func:`sales_lines`) of the window.
        returns: curated returns of the window.
        items: curated item master.
        day: the run's logical date.

    Returns:
        ``(margin anomalies, return spikes)``; two empty frames when there were no sales.
    """
    from models.anomaly import detect_margin_leakage, detect_return_spikes

    if not len(sales):
        return pd.DataFrame(), pd.DataFrame()
    rets = return_lines(returns)
    margin = detect_margin_leakage(sales, rets, items[["sku", "unit_price", "unit_cost"]], as_of=day)
    return margin, detect_return_spikes(sales, rets, as_of=day)
