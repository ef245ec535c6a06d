"""Margin leakage: SKU x channel whose realised margin fell below its own recent past.

Realised margin is what a sale actually kept: gross sales at shelf price, less discounts, less refunds
paid out in the same window, less the landed cost of the units sold. It is expressed as a share of gross
sales so it sits on the same scale as the list margin ``(unit_price - unit_cost) / unit_price``: a SKU
sold at shelf price with no returns realises exactly its list margin.

A SKU x channel is compared with its own baseline window, not with other SKUs or with its list margin:
a line that always runs on promotion is already priced in; one whose discounts or refunds are growing is
not. The drop in margin points is split into the part explained by a larger discount share, the part
explained by a larger refund share and the rest (cost or price mix), which names the driver.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from models.anomaly._windows import AsOf, cutoff_date, empty_frame, label_windows, require, window_sums

__all__ = ["MARGIN_COLUMNS", "detect_margin_leakage"]

MARGIN_COLUMNS = [
    "sku",
    "channel",
    "anomaly_type",
    "driver",
    "severity",
    "recent_margin_pct",
    "baseline_margin_pct",
    "list_margin_pct",
    "margin_points_lost",
    "money_at_stake",
    "units_recent",
    "explanation",
]
SALES_COLUMNS = ["channel", "sku", "date", "units", "gross_sales", "discount_amount"]
RETURNS_COLUMNS = ["sku", "channel", "date", "quantity", "refund_amount"]
ITEMS_COLUMNS = ["sku", "unit_price", "unit_cost"]

#: Margin points lost at which a flag becomes medium, then high.
MEDIUM_POINTS = 5.0
HIGH_POINTS = 10.0
#: Money at stake (currency units over the recent window) at which a flag becomes medium, then high.
MEDIUM_MONEY = 250.0
HIGH_MONEY = 1000.0
#: Share of the points lost that discounts (or refunds) must explain to be named the driver.
DRIVER_SHARE = 2 / 3

_TEXT = {"sku", "channel", "anomaly_type", "driver", "severity", "explanation"}
_COUNTS = {"units_recent"}


def _band(value: np.ndarray, medium: float, high: float) -> np.ndarray:
    return np.select([value >= high, value >= medium], [2, 1], default=0)


def detect_margin_leakage(
    sales: pd.DataFrame,
    returns: pd.DataFrame,
    items: pd.DataFrame,
    *,
    as_of: AsOf,
    recent_days: int = 28,
    baseline_days: int = 90,
    min_units: int = 10,
    min_points_lost: float = 2.0,
) -> pd.DataFrame:
    """Flag SKU x channel whose realised margin over the recent window fell below its baseline.

    Per SKU x channel and window, ``margin = gross_sales - discount_amount - refund_amount -
    units * unit_cost`` and ``margin_pct = 100 * margin / gross_sales`` (so ``margin / units`` is the
    realised margin per unit and the percentage is that over the gross price per unit). A row is flagged
    when both windows sold at least ``min_units`` units and the margin fell by at least
    ``min_points_lost`` points. ``money_at_stake`` is the margin the recent window would have kept at
    the baseline rate: ``points_lost / 100 * recent gross_sales``.

    ``driver`` is ``markdown`` when the rise in discount share explains at least two thirds of the
    points lost, ``returns`` when the rise in refund share does, else ``mixed`` (several causes, or cost
    and price mix). Severity is the lower of two bands, so both the relative and the absolute loss must
    be large: points (``medium`` from 5, ``high`` from 10) and money (``medium`` from 250, ``high`` from
    1000).

    Args:
        sales: One row per channel x SKU x day: ``channel`` (``store`` or ``ecommerce``; ``web`` and
            ``app`` count as ``ecommerce``), ``sku``, ``date``, ``units``, ``gross_sales`` (at shelf
            price, before discounts), ``discount_amount``.
        returns: One row per return: ``sku``, ``channel`` (``store``, ``web``/``app`` as above),
            ``date`` (when refunded), ``quantity``, ``refund_amount``. Refunds count in the window they
            were paid in.
        items: ``sku``, ``unit_price``, ``unit_cost``. SKUs missing here are not judged.
        as_of: The run's date; later rows are ignored.
        recent_days: Length of the recent window, ending on ``as_of``.
        baseline_days: Length of the baseline window just before the recent one.
        min_units: Fewest units sold in each window for a SKU x channel to be judged.
        min_points_lost: Smallest margin drop (percentage points) worth flagging.

    Returns:
        One row per flagged SKU x channel with ``MARGIN_COLUMNS``, sorted by ``sku, channel``.

    Raises:
        ValueError: on a missing column, unparsable dates or non-positive window lengths.
    """
    require(sales, "sales", SALES_COLUMNS)
    require(returns, "returns", RETURNS_COLUMNS)
    require(items, "items", ITEMS_COLUMNS)
    cutoff = cutoff_date(as_of)
    windows = {"cutoff": cutoff, "recent_days": recent_days, "baseline_days": baseline_days}
    sold = label_windows(sales, "sales", SALES_COLUMNS, **windows)
    refunded = label_windows(returns, "returns", RETURNS_COLUMNS, **windows)
    if sold.empty:
        return empty_frame(MARGIN_COLUMNS, _TEXT, _COUNTS)

    df = _window_totals(sold, refunded, items)
    rec, base = _shares(df, "recent"), _shares(df, "baseline")
    drop = _MarginDrop.between(rec, base, df)
    with np.errstate(invalid="ignore"):
        flagged = (
            (rec["units"] >= min_units)
            & (base["units"] >= min_units)
            & (rec["gross"] > 0)
            & (base["gross"] > 0)
            & (drop.points_lost >= min_points_lost)
        )
    if not flagged.any():
        return empty_frame(MARGIN_COLUMNS, _TEXT, _COUNTS)
    out = _flag_rows(df, rec, drop, flagged)
    out["explanation"] = _explanations(out, rec, base, flagged, recent_days, baseline_days)
    return out.sort_values(["sku", "channel"], ignore_index=True)[MARGIN_COLUMNS]


def _window_totals(sold: pd.DataFrame, refunded: pd.DataFrame, items: pd.DataFrame) -> pd.DataFrame:
    """Units, gross sales, discounts and refunds per SKU x channel and window, with list price and cost.

    SKU x channel sold in neither window (returns only) and SKUs missing from ``items`` drop out.
    """
    keys = ["sku", "channel"]
    df = window_sums(sold, keys, ["units", "gross_sales", "discount_amount"])
    if not refunded.empty:
        df = df.merge(window_sums(refunded, keys, ["refund_amount"]), on=keys, how="left")
    # Returns of a SKU x channel that sold nothing in either window have no margin to erode.
    for col in ("refund_amount_recent", "refund_amount_baseline"):
        df[col] = df[col].fillna(0.0) if col in df else 0.0
    prices = items[ITEMS_COLUMNS].assign(sku=lambda f: f["sku"].astype(str)).drop_duplicates("sku")
    return df.merge(prices, on="sku", how="inner", validate="many_to_one")


def _shares(df: pd.DataFrame, window: str) -> dict[str, np.ndarray]:
    """One window's units and gross sales, with discounts, refunds and cost as shares of gross sales.

    A share is ``NaN`` where the window had no gross sales.
    """
    cost = df["unit_cost"].to_numpy(dtype=np.float64)
    units = df[f"units_{window}"].to_numpy()
    gross = df[f"gross_sales_{window}"].to_numpy()
    with np.errstate(divide="ignore", invalid="ignore"):
        return {
            "units": units,
            "gross": gross,
            "discount": np.where(gross > 0, df[f"discount_amount_{window}"].to_numpy() / gross, np.nan),
            "refund": np.where(gross > 0, df[f"refund_amount_{window}"].to_numpy() / gross, np.nan),
            "cost": np.where(gross > 0, units * cost / gross, np.nan),
        }


@dataclass(frozen=True)
class _MarginDrop:
    """Realised margin of both windows (percent of gross sales), the drop and what drove it."""

    recent_pct: np.ndarray
    baseline_pct: np.ndarray
    list_pct: np.ndarray
    points_lost: np.ndarray
    money: np.ndarray
    driver: np.ndarray

    @classmethod
    def between(cls, rec: dict[str, np.ndarray], base: dict[str, np.ndarray], df: pd.DataFrame) -> _MarginDrop:
        """The drop from the baseline shares ``base`` to the recent ones ``rec`` (see :func:`_shares`)."""
        cost = df["unit_cost"].to_numpy(dtype=np.float64)
        price = df["unit_price"].to_numpy(dtype=np.float64)
        recent_pct = 100 * (1 - rec["discount"] - rec["refund"] - rec["cost"])
        baseline_pct = 100 * (1 - base["discount"] - base["refund"] - base["cost"])
        # Rounded so that shares which differ by exactly a threshold land on it, not a hair below.
        points_lost = np.round(baseline_pct - recent_pct, 9)
        markdown_points = 100 * (rec["discount"] - base["discount"])
        returns_points = 100 * (rec["refund"] - base["refund"])
        with np.errstate(invalid="ignore"):
            driver = np.select(
                [
                    (markdown_points >= DRIVER_SHARE * points_lost) & (markdown_points >= returns_points),
                    returns_points >= DRIVER_SHARE * points_lost,
                ],
                ["markdown", "returns"],
                default="mixed",
            )
        return cls(recent_pct=recent_pct, baseline_pct=baseline_pct, list_pct=100 * (price - cost) / price,
                   points_lost=points_lost, money=np.round(points_lost / 100 * rec["gross"], 6), driver=driver)


def _flag_rows(df: pd.DataFrame, rec: dict[str, np.ndarray], drop: _MarginDrop, flagged: np.ndarray) -> pd.DataFrame:
    """The flagged SKU x channel rows with every column of :data:`MARGIN_COLUMNS` except ``explanation``.

    Severity is the lower of the points band and the money band.
    """
    level = np.minimum(_band(drop.points_lost, MEDIUM_POINTS, HIGH_POINTS), _band(drop.money, MEDIUM_MONEY, HIGH_MONEY))
    return pd.DataFrame(
        {
            "sku": df["sku"].to_numpy()[flagged],
            "channel": df["channel"].to_numpy()[flagged],
            "anomaly_type": "margin_leakage",
            "driver": drop.driver[flagged],
            "severity": np.array(["low", "medium", "high"], dtype=object)[level[flagged]],
            "recent_margin_pct": drop.recent_pct[flagged],
            "baseline_margin_pct": drop.baseline_pct[flagged],
            "list_margin_pct": drop.list_pct[flagged],
            "margin_points_lost": drop.points_lost[flagged],
            "money_at_stake": drop.money[flagged],
            "units_recent": rec["units"][flagged].astype(np.int64),
        }
    )


def _explanations(out: pd.DataFrame, rec: dict[str, np.ndarray], base: dict[str, np.ndarray], flagged: np.ndarray,
                  recent_days: int, baseline_days: int) -> list[str]:
    """One sentence per flagged row: the margins, the points and money lost, and the discount and refund shares."""
    return [
        (
            f"{drv} margin leakage: margin {r:.1f}% over the last {recent_days} days vs {b:.1f}% in the "
            f"{baseline_days} days before (list {lst:.1f}%): -{pts:.1f} points, {m:,.2f} at stake on "
            f"{u:d} units; discounts {dr:.1%} of sales vs {db:.1%}, refunds {fr:.1%} vs {fb:.1%}"
        )
        for drv, r, b, lst, pts, m, u, dr, db, fr, fb in zip(
            out["driver"],
            out["recent_margin_pct"],
            out["baseline_margin_pct"],
            out["list_margin_pct"],
            out["margin_points_lost"],
            out["money_at_stake"],
            out["units_recent"],
            rec["discount"][flagged],
            base["discount"][flagged],
            rec["refund"][flagged],
            base["refund"][flagged],
            strict=True,
        )
    ]
