"""Promotion lift for the vectorised path: forecast the promotion-free level, then apply the planned lift.

A promotion that takes ``d`` off the price multiplies demand by ``(1 - d) ** -e``, ``e`` being the
price elasticity of promoted demand. Per series, ``e`` is the value on a grid for which the series'
baseline (its mean demand on ordinary days over the last year) times that lift adds up to the demand it
actually had on its promoted days. A series with too little promoted history (less than
``MIN_PROMO_MASS`` baseline units on promotion) takes the elasticity pooled over its item's other
locations (series ids ``location|sku``), and an item with too little takes the one pooled over the shard.
A shard holds whole items, so only that last resort depends on which items share a shard.

:func:`depromote` divides each promoted day's demand by its lift, so the vectorised models see the
level without promotion spikes; :func:`repromote` multiplies each forecast step by the lift of the
promotion planned for it. Every step is a column operation on the long frames, so the cost grows with
the number of promoted rows, not with a Python loop over series.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["ELASTICITY_GRID", "MIN_PROMO_MASS", "depromote", "promotion_elasticity", "promotion_lift", "repromote"]

#: Elasticities tried: lift = (1 - discount) ** -e.
ELASTICITY_GRID = np.linspace(0.0, 5.0, 26)
#: Baseline units a series must have had on promotion before its own elasticity is used.
MIN_PROMO_MASS = 20.0
#: Days of history the baseline and the promoted days are taken from.
WINDOW_DAYS = 365
#: Largest discount the lift is computed for (a 100% discount has no finite lift).
MAX_DISCOUNT = 0.9


def _discount(values: pd.Series) -> np.ndarray:
    return np.clip(np.nan_to_num(values.to_numpy(dtype=np.float64), nan=0.0), 0.0, MAX_DISCOUNT)


def promotion_elasticity(history: pd.DataFrame, col: str = "promo") -> pd.Series:
    """Price elasticity of promoted demand per series: its own, else its item's pooled over the item's
    locations, else the one pooled over every series given (0 when they have too little promoted
    history to tell).

    Args:
        history: ``unique_id, ds, y``, optional ``censored`` and the discount column ``col``.
        col: Discount fraction of each day (0 when not promoted).
    """
    recent = history[history["ds"] > history["ds"].max() - pd.Timedelta(days=WINDOW_DAYS)]
    if "censored" in recent.columns:
        recent = recent[~recent["censored"].astype(bool)]
    recent = recent[np.isfinite(recent["y"].to_numpy(dtype=np.float64))]
    disc = _discount(recent[col])
    promoted = disc > 0
    base = recent.loc[~promoted].groupby("unique_id")["y"].mean()
    on = recent.loc[promoted, ["unique_id", "y"]].assign(d=disc[promoted])
    on["base"] = on["unique_id"].map(base).fillna(0.0).to_numpy()
    on = on[on["base"] > 0]
    ids = pd.Index(history["unique_id"].unique())
    if on.empty:
        return pd.Series(0.0, index=ids, dtype=np.float64)
    # The item of each series id (``location|sku``), split once per series rather than once per row.
    series_item = pd.Series(ids.astype(str).str.split("|", n=1).str[-1], index=ids)
    own, mass = _solve(on, on["unique_id"])
    by_item, item_mass = _solve(on, on["unique_id"].map(series_item))
    everywhere, all_mass = _solve(on, pd.Series("all", index=on.index))
    pooled = float(everywhere.iloc[0]) if float(all_mass.iloc[0]) >= MIN_PROMO_MASS else 0.0
    fallback = series_item.map(by_item.where(item_mass >= MIN_PROMO_MASS)).fillna(pooled)
    elasticity = own.where(mass >= MIN_PROMO_MASS).reindex(ids)
    return elasticity.fillna(fallback).astype(np.float64)


def _solve(on: pd.DataFrame, group: pd.Series) -> tuple[pd.Series, pd.Series]:
    """Elasticity of each group of promoted rows, and the group's baseline units on promotion.

    The solution lies between the last grid value whose predicted promoted demand is below the actual
    and the first above: the midpoint is taken.
    """
    actual = on["y"].groupby(group).sum()
    below = pd.Series(0, index=actual.index, dtype=np.int64)
    mass = None
    for e in ELASTICITY_GRID:
        pred = (on["base"] * (1.0 - on["d"]) ** -e).groupby(group).sum()
        if mass is None:
            mass = pred
        below += (pred < actual).astype(np.int64)
    step = ELASTICITY_GRID[1] - ELASTICITY_GRID[0]
    return ((below - 0.5) * step).clip(0.0, ELASTICITY_GRID[-1]), mass


def promotion_lift(frame: pd.DataFrame, elasticity: pd.Series, col: str = "promo") -> np.ndarray:
    """``(1 - discount) ** -elasticity`` of each row of ``frame`` (1 where nothing is promoted)."""
    e = frame["unique_id"].map(elasticity).fillna(0.0).to_numpy(dtype=np.float64)
    return (1.0 - _discount(frame[col])) ** -e


def depromote(history: pd.DataFrame, elasticity: pd.Series, col: str = "promo") -> pd.DataFrame:
    """``history`` with each day's demand divided by the lift of the promotion running that day."""
    return history.assign(y=history["y"].to_numpy(dtype=np.float64) / promotion_lift(history, elasticity, col))


def repromote(forecasts: pd.DataFrame, future: pd.DataFrame, elasticity: pd.Series, col: str = "promo") -> pd.DataFrame:
    """Forecast values multiplied by the lift of the promotion planned for each step.

    Steps without a row in ``future`` (or with a missing discount) are taken as not promoted.
    """
    planned = forecasts[["unique_id", "ds"]].merge(future[["unique_id", "ds", col]], on=["unique_id", "ds"],
                                                   how="left", validate="many_to_one")
    lift = promotion_lift(planned, elasticity, col)
    values = [c for c in forecasts.columns if c == "mean" or (c.startswith("q") and c[1:].isdigit())]
    out = forecasts.copy()
    for c in values:
        out[c] = out[c].to_numpy(dtype=np.float64) * lift
    return out
