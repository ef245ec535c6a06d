"""The generated retailer's trading day hour by hour: demand shocks, when sales happen, and what they leave.

A *shock* is a surge the forecast could not know: a viral item or an unannounced competitor's stock-out
makes one SKU sell ``ratio`` times its usual rate from ``onset_hour`` to the end of the day, online, in
every store of a region, or at one store. :func:`plan_shocks` draws them from their own random stream, so
up to its first shock a world is the same with shocks or without; on a shocked day the surge's extra units
(:func:`shock_units`) come on top of the usual demand (later days differ, as the stock it took and the
draws that follow do). The ground truth is kept apart from the extracts
(:attr:`include.sample_data.generator.World.shocks`).

Within a day, ordinary demand arrives by the hour shape of its channel and weekday (:data:`STORE_HOURS`,
:data:`ECOM_HOURS`), a shock's extra units only from its onset; sales follow demand until the shelf is
empty, so a stock-out shows as the late hours of the day selling nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

HOURS = 24
#: Store trading hours, 08:00 to 22:00, with a lunch and an after-work peak (weekdays, Monday first).
_STORE_WEEKDAY_HOURS = np.array([0] * 8 + [2, 3, 4, 5, 7, 7, 5, 4.5, 5, 6.5, 7.5, 6, 4, 2.5] + [0] * 2, dtype=float)
#: Saturdays and Sundays: a broad midday peak.
_STORE_WEEKEND_HOURS = np.array([0] * 8 + [1.5, 3.5, 5.5, 7, 7.5, 7.5, 7.5, 7, 6.5, 5.5, 4, 3, 2, 1] + [0] * 2,
                                dtype=float)
#: Share of a store day's demand in each hour, per weekday (Monday first).
STORE_HOURS = np.stack([_STORE_WEEKDAY_HOURS] * 5 + [_STORE_WEEKEND_HOURS] * 2)
STORE_HOURS /= STORE_HOURS.sum(axis=1, keepdims=True)
#: Order placement by hour for the web shop (lunch and evening peaks), every weekday alike.
ECOM_HOURS = np.array([1, 0.6, 0.4, 0.3, 0.3, 0.5, 1, 2, 3, 3.5, 4, 4.5, 5.5, 5, 4, 4, 4, 4.5, 5, 6, 6.5, 6,
                       4, 2], dtype=float)
ECOM_HOURS /= ECOM_HOURS.sum()
#: Shocks start between these hours (inclusive), when a surge still has a day to run.
ONSET_HOURS = (10, 17)
#: A surge multiplies the usual rate by a factor drawn uniformly from this range.
RATIO_RANGE = (2.0, 5.0)


@dataclass(frozen=True)
class ShockConfig:
    """How many shocks the world gets, and where.

    Attributes:
        days: Shocks fall on the last ``days`` days of history (0: none).
        per_day: Shocks per day on those days.
        scopes: Relative weights of an online, a regional and a single-store shock.
        min_daily_units: A shock falls on a SKU that usually sells at least this many units a day where it
            surges (the web shop, the region's stores together, or the store): a promotion or a viral item,
            not a slow line selling one a week (where the scope has no such SKU, on its best sellers).
        min_days_between: A SKU surges again at a location no sooner than this many days after it last
            surged there (0: no limit). A shock is a surge the forecast could not know; a cell that surged
            yesterday and the day before has made surges part of its history, and the forecast's error at
            that cell with it. When a scope has no such cell left, the shock goes to a scope that has.
    """

    days: int = 0
    per_day: int = 2
    scopes: tuple[float, float, float] = (0.4, 0.3, 0.3)
    min_daily_units: float = 10.0
    min_days_between: int = 28

    def __post_init__(self) -> None:
        if self.days < 0 or self.per_day < 0:
            raise ValueError(f"shock days and per_day must be >= 0, got {self.days}, {self.per_day}")
        if len(self.scopes) != 3 or min(self.scopes) < 0 or sum(self.scopes) <= 0:
            raise ValueError(f"shock scopes must be three non-negative weights, got {self.scopes}")
        if self.min_daily_units < 0:
            raise ValueError(f"min_daily_units must be >= 0, got {self.min_daily_units}")
        if self.min_days_between < 0:
            raise ValueError(f"min_days_between must be >= 0, got {self.min_days_between}")


def hour_shares(is_store: np.ndarray, weekday: int) -> np.ndarray:
    """``[n, 24]`` hourly shares of each location's day: its store shape, or the web shop's."""
    return np.where(np.asarray(is_store, bool)[:, None], STORE_HOURS[weekday % 7][None, :], ECOM_HOURS[None, :])


#: Where no SKU of a scope sells ``min_daily_units``, shocks fall on this top share of its cells.
_TOP_SHARE = 0.02


def plan_shocks(config: ShockConfig, *, seed: int, n_days: int, first_day: int, usual: np.ndarray,
                store_rows: np.ndarray, store_region: np.ndarray, fc_row: int) -> pd.DataFrame:
    """Draw the shocks of the last ``config.days`` simulated days.

    Args:
        config: How many and where.
        seed: The world's seed (the shocks take their own stream of it).
        n_days: Days simulated.
        first_day: First simulated day that may be shocked is ``max(first_day, n_days - config.days)``.
        usual: ``[locations, skus]`` usual units per day of every location (before season and promotions).
        store_rows: Simulation rows of the stores; ``store_region`` their region index.
        fc_row: Simulation row of the ecommerce fulfilment centre.

    Returns:
        One row per shock: ``shock_id, day, sku, scope, rows`` (tuple of location rows),
        ``onset_hour, ratio``; no rows without shocks. A SKU is shocked at most once a day.
    """
    columns = ["shock_id", "day", "sku", "scope", "rows", "onset_hour", "ratio"]
    if config.days == 0 or config.per_day == 0:
        return pd.DataFrame(columns=columns)
    rng = np.random.default_rng([seed, 7_770_001])
    store_rows = np.asarray(store_rows, int)
    regions = [store_rows[store_region == r] for r in range(int(store_region.max()) + 1)]
    # Candidate cells of each scope: (location rows, sku) with their usual daily units there.
    cells = {
        "online": [((fc_row,), k, usual[fc_row, k]) for k in range(usual.shape[1])],
        "region": [(tuple(int(r) for r in rows), k, usual[rows, k].sum()) for rows in regions
                   for k in range(usual.shape[1])],
        "store": [((int(r),), k, usual[r, k]) for r in store_rows for k in range(usual.shape[1])],
    }
    eligible = {scope: _sellers(found, config.min_daily_units, config.per_day) for scope, found in cells.items()}
    scopes = np.array(["online", "region", "store"])
    weights = np.asarray(config.scopes, float) / sum(config.scopes)
    last: dict[tuple[int, int], int] = {}  # (location row, sku) -> day it last surged
    rows = []
    for day in range(max(first_day, n_days - config.days), n_days):
        taken: set[int] = set()

        def fresh(cell: tuple, day: int = day, taken: set[int] = taken) -> bool:
            where, k, _ = cell
            return k not in taken and all(day - last.get((r, k), -10**9) >= max(config.min_days_between, 1)
                                          for r in where)

        for _ in range(config.per_day):
            scope = str(rng.choice(scopes, p=weights))
            free = [c for c in eligible[scope] if fresh(c)]
            if not free:  # the scope's sellers all surged lately (or today): another scope's, if one has any
                open_ = np.array([weights[i] > 0 and any(fresh(c) for c in eligible[s])
                                  for i, s in enumerate(scopes)])
                if open_.any():
                    scope = str(rng.choice(scopes[open_], p=weights[open_] / weights[open_].sum()))
                    free = [c for c in eligible[scope] if fresh(c)]
            if not free:  # no scope has a fresh seller: the scope's best seller not yet shocked today
                free = sorted((c for c in cells[scope] if c[1] not in taken), key=lambda c: -c[2])[:1]
            if not free:
                continue
            where, k, _ = free[int(rng.integers(len(free)))]
            taken.add(k)
            last.update({(r, k): day for r in where})
            rows.append((f"SH{len(rows) + 1:05d}", day, int(k), scope, where,
                         int(rng.integers(ONSET_HOURS[0], ONSET_HOURS[1] + 1)),
                         float(np.round(rng.uniform(*RATIO_RANGE), 2))))
    return pd.DataFrame(rows, columns=columns)


def _sellers(cells: list[tuple], min_units: float, at_least: int) -> list[tuple]:
    """The cells selling at least ``min_units`` a day, else the scope's best sellers (its top
    :data:`_TOP_SHARE` of cells, and no fewer than ``at_least``)."""
    enough = [c for c in cells if c[2] >= min_units]
    if len(enough) >= at_least:
        return enough
    ranked = sorted(cells, key=lambda c: -c[2])
    return ranked[: max(at_least, int(np.ceil(_TOP_SHARE * len(ranked))))]


def shock_units(shocks: pd.DataFrame, day: int, lam: np.ndarray, is_store: np.ndarray, weekday: int,
                seed: int) -> np.ndarray:
    """``[locations, skus]`` extra units the shocks of ``day`` bring, on top of the usual demand.

    A shock of ratio ``r`` from hour ``h`` adds ``(r - 1)`` times the demand usually expected after ``h``,
    drawn from the shocks' own stream (Poisson), so the usual demand's draws are untouched.
    """
    extra = np.zeros(lam.shape, dtype=np.int32)
    today = shocks[shocks["day"] == day]
    if today.empty:
        return extra
    rng = np.random.default_rng([seed, 7_770_002, day])
    shares = hour_shares(is_store, weekday)
    for shock in today.itertuples(index=False):
        rows = np.asarray(shock.rows, int)
        after = shares[rows, shock.onset_hour:].sum(axis=1)
        extra[rows, shock.sku] += rng.poisson(lam[rows, shock.sku] * (shock.ratio - 1.0) * after).astype(np.int32)
    return extra


def split_by_hour(rng: np.random.Generator, demand: np.ndarray, sales: np.ndarray, extra: np.ndarray,
                  shares: np.ndarray, onset: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Spread each cell's day over its hours: ``([n, 24] demand, [n, 24] sales)``.

    Args:
        rng: The day's stream.
        demand: ``[n]`` units demanded in the day (shock units included).
        sales: ``[n]`` units sold (demand capped by the stock of the day).
        extra: ``[n]`` of ``demand``, the units a shock brought (0: none).
        shares: ``[n, 24]`` hourly shares of ordinary demand.
        onset: ``[n]`` hour a shock began (ignored where ``extra`` is 0).

    Sales follow demand hour by hour until the day's sales are used up: the hours after a stock-out sell
    nothing.
    """
    demand, sales, extra = (np.asarray(a, np.int64) for a in (demand, sales, extra))
    usual = rng.multinomial(demand - extra, shares)
    late = np.where(np.arange(HOURS)[None, :] >= np.asarray(onset)[:, None], shares, 0.0)
    total = late.sum(axis=1, keepdims=True)
    late = np.where(total > 0, late / np.where(total > 0, total, 1.0), shares)
    hourly = usual + rng.multinomial(extra, late)
    served = np.minimum(np.cumsum(hourly, axis=1), sales[:, None])
    return hourly, np.diff(served, axis=1, prepend=0)


def shock_lines(rng: np.random.Generator, surge: np.ndarray, served: np.ndarray, onset: np.ndarray, *,
                first_order: int, cutoff_hour: int) -> pd.DataFrame:
    """The web orders a day's online shocks bring: one single-unit order per extra unit, after the onset.

    Args:
        rng: The day's shock stream.
        surge: ``[skus]`` extra units per SKU.
        served: ``[skus]`` of those, how many the fulfilment centre could serve; the earliest are served,
            the rest cancelled for lack of stock.
        onset: ``[skus]`` hour each SKU's surge began.
        first_order: Number of the first order (the day's usual orders come before).
        cutoff_hour: Orders from this hour on are picked tomorrow (status ``placed``, not ``shipped``).

    Returns:
        ``order_no, line_no, second`` (of the day), ``channel, sku_index, quantity, status``, in time order.
    """
    surge = np.asarray(surge, np.int64)
    k = np.repeat(np.arange(len(surge)), surge)
    open_hours = np.arange(HOURS)[None, :] >= np.asarray(onset)[k][:, None]
    cdf = np.cumsum(np.where(open_hours, ECOM_HOURS[None, :], 0.0), axis=1)
    cdf /= np.where(cdf[:, -1:] > 0, cdf[:, -1:], 1.0)
    hour = (cdf <= rng.random(len(k))[:, None]).sum(axis=1).clip(max=HOURS - 1)
    second = hour * 3600 + rng.integers(0, 3600, len(k))
    order = np.lexsort((second, k))
    k, second = k[order], second[order]
    rank = np.arange(len(k)) - np.searchsorted(k, k)
    filled = rank < np.asarray(served, np.int64)[k]
    by_time = np.argsort(second, kind="stable")
    k, second, filled = k[by_time], second[by_time], filled[by_time]
    status = np.where(~filled, "cancelled", np.where(second >= cutoff_hour * 3600, "placed", "shipped"))
    return pd.DataFrame({
        "order_no": first_order + np.arange(len(k)),
        "line_no": np.ones(len(k), np.int64),
        "second": second.astype(np.int64),
        "channel": rng.choice(["web", "app"], size=len(k), p=[0.55, 0.45]),
        "sku_index": k,
        "quantity": np.ones(len(k), np.int64),
        "status": status,
    })
