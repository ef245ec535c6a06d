"""When in the day demand arrives: an hour-of-day profile per channel and day of week, learned from history.

The intraday expectation of a series is its daily forecast spread over the day by this profile: by hour
``h`` a store has usually sold ``sum(shares[:h + 1])`` of its day. Profiles are pooled over the items and
locations of a channel (one series sells too little per hour to have a shape of its own), learned per day
of week, and shrunk towards the channel's all-week shape where a weekday has little history, so a
Saturday seen twice does not get a shape of its own either.

Units do not arrive one by one: a web order line of three units is three units in the same hour. Given a
series' day, its hours are then more uneven than a multinomial of its units over the profile, by a factor
the profile also learns per channel (``clumping``, the index of dispersion of the hourly units, 1 for
units that arrive independently). The surge test counts in units of that size, so an order of five does
not read as a surge.

Where the sales say how many orders they came in (web order lines), the profile also learns the channel's
``order_size``, its mean units per order line, and each series' own (``series_order_size``: items differ,
one sold by the unit, another by twos; shrunk toward the channel's by :data:`ORDER_SIZE_PRIOR` orders),
and the test counts orders instead: a surge is more
customers, and counting them leaves out the noise of how many units each one takes (a web shop's day
of 30 units in orders of 1.3 units on average, 1.6 by the square, is 23 orders: the surge of its
extra customers stands out of a count whose noise is that of 23, not of 30 units in lumps of 1.6).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from include.demand.history import series_id

HOURS = 24
DAYS = 7
#: Units of history a weekday's shape needs to count as much as the channel's all-week shape.
PRIOR_UNITS = 200.0
#: The most a channel's clumping is taken to be (a few bulk orders must not blind the test).
MAX_CLUMPING = 10.0
#: Orders of the channel's mean size a series' own order size is shrunk with.
ORDER_SIZE_PRIOR = 30.0


class ProfileError(ValueError):
    """The hourly history cannot give a profile (missing columns, hours outside 0-23, negative units)."""


@dataclass(frozen=True)
class IntradayProfile:
    """Share of a day's demand in each hour, per channel and day of week.

    Attributes:
        shares: Per channel, a ``[7, 24]`` array (Monday = 0); each row sums to 1.
        fallback: The ``[24]`` shape for a channel with no history (uniform over the trading hours).
        units: Units of history behind each channel's profile.
        clumping: Per channel, how much more uneven a series' hours are than independent units spread
            by the profile (>= 1; a channel not in it: 1).
        order_size: Per channel whose history counted its orders, the mean units per order (a channel
            not in it is read in units).
        series_order_size: Per ``location_id|sku`` of those channels, its own mean units per order,
            shrunk toward its channel's.
    """

    shares: dict[str, np.ndarray]
    fallback: np.ndarray
    units: dict[str, float] = field(default_factory=dict)
    clumping: dict[str, float] = field(default_factory=dict)
    order_size: dict[str, float] = field(default_factory=dict)
    series_order_size: dict[str, float] = field(default_factory=dict)

    def matrix(self, channels: np.ndarray | list[str], dows: np.ndarray | list[int]) -> np.ndarray:
        """``[n, 24]`` hourly shares of series on the channel and weekday of each row."""
        channels = np.asarray(channels, dtype=object)
        dows = np.asarray(dows, dtype=int)
        out = np.broadcast_to(self.fallback, (len(channels), HOURS)).copy()
        for channel, table in self.shares.items():
            rows = channels == channel
            if rows.any():
                out[rows] = table[dows[rows] % DAYS]
        return out

    def as_dict(self) -> dict:
        """The profile as plain lists (JSON), read back by :meth:`from_dict`."""
        return {"shares": {c: t.tolist() for c, t in self.shares.items()}, "fallback": self.fallback.tolist(),
                "units": dict(self.units), "clumping": dict(self.clumping), "order_size": dict(self.order_size),
                "series_order_size": dict(self.series_order_size)}

    @classmethod
    def from_dict(cls, doc: dict) -> IntradayProfile:
        return cls(shares={c: np.asarray(t, float) for c, t in doc["shares"].items()},
                   fallback=np.asarray(doc["fallback"], float), units=dict(doc.get("units") or {}),
                   clumping=dict(doc.get("clumping") or {}), order_size=dict(doc.get("order_size") or {}),
                   series_order_size=dict(doc.get("series_order_size") or {}))

    def clumping_of(self, channels: np.ndarray | list[str]) -> np.ndarray:
        """``[n]`` clumping of the channel of each row (1 where unknown)."""
        channels = pd.Series(np.asarray(channels, dtype=object))
        return channels.map(self.clumping).fillna(1.0).to_numpy(float)

    def order_size_of(self, channels: np.ndarray | list[str], series: np.ndarray | list[str] | None = None
                      ) -> np.ndarray:
        """``[n]`` mean units per order of each row: its series' (``location_id|sku``) where learned, else
        its channel's (NaN where the channel is read in units)."""
        size = pd.Series(np.asarray(channels, dtype=object)).map(self.order_size).astype(float)
        if series is not None and self.series_order_size:
            own = pd.Series(np.asarray(series, dtype=object)).map(self.series_order_size).astype(float)
            size = own.where(size.notna() & own.notna(), size)
        return size.to_numpy(float)

    def counting(self, channels: np.ndarray | list[str], series: np.ndarray | list[str], *, orders: bool = True
                 ) -> tuple[np.ndarray, np.ndarray]:
        """How the test counts each row: ``([n] units one counted event stands for, [n] counted in orders)``.

        A row is counted in orders where its channel's order size is learned and ``orders`` (the hour's
        order-line counts) are given, one order standing for its series' units per order
        (:meth:`order_size_of`); else in units, in lumps of its channel's clumping.
        """
        size = self.order_size_of(channels, series)
        by_orders = np.isfinite(size) & orders
        return np.where(by_orders, size, self.clumping_of(channels)), by_orders

    def share_through(self, channels: np.ndarray | list[str], dows: np.ndarray | list[int], hour: int) -> np.ndarray:
        """``[n]`` share of the day usually sold by the end of ``hour`` (0-23)."""
        if not 0 <= hour < HOURS:
            raise ValueError(f"hour must lie in 0..23, got {hour}")
        return self.matrix(channels, dows)[:, : hour + 1].sum(axis=1)


def trading_shape(open_hour: int, close_hour: int) -> np.ndarray:
    """Uniform shares over the hours from ``open_hour`` up to (not including) ``close_hour``.

    ``open_hour == close_hour`` means trading around the clock (an online channel).
    """
    if not (0 <= open_hour < HOURS and 0 <= close_hour <= HOURS):
        raise ValueError(f"trading hours must lie in 0..24, got {open_hour}-{close_hour}")
    hours = np.arange(HOURS)
    if open_hour == close_hour % HOURS:
        inside = np.ones(HOURS, bool)
    elif open_hour < close_hour:
        inside = (hours >= open_hour) & (hours < close_hour)
    else:  # past midnight
        inside = (hours >= open_hour) | (hours < close_hour)
    return inside / inside.sum()


def learn_profile(history: pd.DataFrame, *, fallback: np.ndarray, prior_units: float = PRIOR_UNITS) -> IntradayProfile:
    """Learn the hourly shares of each channel and weekday from hourly sales.

    Args:
        history: One row per sale aggregate: ``channel``, ``ds`` (the trading date), ``hour`` (0-23),
            ``units`` (>= 0). Items and locations may be in it or already summed out; with
            ``location_id`` and ``sku`` the channel's clumping is learned too, and with ``orders`` (order
            lines behind the units; missing where a source does not count them) its mean order size.
        fallback: The shape of a channel with too little history (e.g. :func:`trading_shape`).
        prior_units: How many units of history a weekday needs before its own shape outweighs the
            channel's all-week shape; the all-week shape itself is shrunk the same way to ``fallback``.

    Returns:
        The :class:`IntradayProfile`.

    Raises:
        ProfileError: when a column is missing, an hour lies outside 0-23 or units are negative or not finite.
    """
    missing = {"channel", "ds", "hour", "units"} - set(history.columns)
    if missing:
        raise ProfileError(f"hourly history lacks column(s) {', '.join(sorted(missing))}")
    fallback = np.asarray(fallback, float)
    if fallback.shape != (HOURS,) or not np.isclose(fallback.sum(), 1.0):
        raise ProfileError("the fallback profile must hold 24 shares summing to 1")
    hour = pd.to_numeric(history["hour"], errors="coerce")
    units = pd.to_numeric(history["units"], errors="coerce")
    bad_hour = ~hour.between(0, HOURS - 1) | (hour != hour.round())
    if bad_hour.any():
        row = int(np.flatnonzero(bad_hour.to_numpy())[0])
        raise ProfileError(f"row {row}: hour {_plain(history['hour'].iloc[row])} is not a whole hour in 0..23")
    bad_units = ~np.isfinite(units.to_numpy(float)) | (units < 0).to_numpy()
    if bad_units.any():
        row = int(np.flatnonzero(bad_units)[0])
        raise ProfileError(f"row {row}: units {_plain(history['units'].iloc[row])} is not a finite count >= 0")
    dow = pd.to_datetime(history["ds"]).dt.dayofweek.to_numpy()
    frame = pd.DataFrame({"channel": history["channel"].astype(str).to_numpy(), "dow": dow,
                          "hour": hour.astype(int).to_numpy(), "units": units.to_numpy(float)})
    sums = frame.groupby(["channel", "dow", "hour"], observed=True)["units"].sum()
    shares: dict[str, np.ndarray] = {}
    totals: dict[str, float] = {}
    for channel, part in sums.groupby(level="channel"):
        counts = np.zeros((DAYS, HOURS))
        idx = part.index
        counts[idx.get_level_values("dow"), idx.get_level_values("hour")] = part.to_numpy()
        week = counts.sum(axis=0)
        week_shape = _shrunk(week, fallback, prior_units)
        shares[str(channel)] = np.stack([_shrunk(counts[d], week_shape, prior_units) for d in range(DAYS)])
        totals[str(channel)] = float(week.sum())
    clumping = {}
    if {"location_id", "sku"} <= set(history.columns):
        series = frame.assign(ds=history["ds"].to_numpy(), location_id=history["location_id"].to_numpy(),
                              sku=history["sku"].to_numpy())
        clumping = _clumping(series, shares)
    sizes, per_series = _order_sizes(history, frame)
    return IntradayProfile(shares=shares, fallback=fallback, units=totals, clumping=clumping, order_size=sizes,
                           series_order_size=per_series)


def _order_sizes(history: pd.DataFrame, frame: pd.DataFrame) -> tuple[dict[str, float], dict[str, float]]:
    """Per channel whose rows count their orders, units per order (a channel with any row without a count,
    or without an order, is left to be read in units); and per ``location_id|sku`` of those channels, its
    own, shrunk toward the channel's by :data:`ORDER_SIZE_PRIOR` orders."""
    if "orders" not in history.columns:
        return {}, {}
    orders = pd.to_numeric(history["orders"], errors="coerce").to_numpy(float)
    counted = pd.DataFrame({"channel": frame["channel"], "units": frame["units"], "orders": orders,
                            "missing": ~np.isfinite(orders) & (frame["units"].to_numpy(float) > 0)})
    sums = counted.groupby("channel", observed=True).agg(units=("units", "sum"), orders=("orders", "sum"),
                                                         missing=("missing", "any"))
    keep = ~sums["missing"] & (sums["orders"] > 0)
    sizes = {str(c): float(max(r.units / r.orders, 1.0)) for c, r in sums[keep].iterrows()}
    if not sizes or not {"location_id", "sku"} <= set(history.columns):
        return sizes, {}
    mine = counted.assign(series=series_id(history["location_id"].astype(str), history["sku"].astype(str)).to_numpy())
    mine = mine[mine["channel"].isin(list(sizes))]
    per = mine.groupby(["channel", "series"], observed=True)[["units", "orders"]].sum().reset_index()
    prior = per["channel"].map(sizes).to_numpy(float)
    own = (per["units"].to_numpy(float) + ORDER_SIZE_PRIOR * prior) / (per["orders"].to_numpy(float) + ORDER_SIZE_PRIOR)
    return sizes, dict(zip(per["series"].astype(str), np.maximum(own, 1.0).round(4), strict=True))


def _clumping(frame: pd.DataFrame, shares: dict[str, np.ndarray]) -> dict[str, float]:
    """Per channel, the index of dispersion of series' hourly units given their day's total.

    Given ``N`` units in a day spread independently by shares ``p``, ``E[sum_h (x_h - N p_h)^2] = N (1 - q)``
    with ``q = sum_h p_h^2``; the ratio of the observed sum to that, over the series-days of at least two
    units, is the clumping (units in lumps of mean square size ``m`` give ``m`` over their mean size).
    """
    cells = frame.groupby(["channel", "ds", "dow", "location_id", "sku", "hour"], observed=True, sort=False)[
        "units"].sum().reset_index()
    p = np.zeros(len(cells))
    q_of = {}
    for channel, table in shares.items():
        rows = (cells["channel"] == channel).to_numpy()
        p[rows] = table[cells.loc[rows, "dow"].to_numpy(int), cells.loc[rows, "hour"].to_numpy(int)]
        q_of[channel] = (table**2).sum(axis=1)
    x = cells["units"].to_numpy(float)
    days = cells.assign(x2=x**2, xp=x * p).groupby(["channel", "ds", "dow", "location_id", "sku"], observed=True)[
        ["units", "x2", "xp"]].sum().reset_index()
    days = days[days["units"] >= 2]
    out = {}
    for channel, part in days.groupby("channel"):
        n = part["units"].to_numpy(float)
        q = q_of[str(channel)][part["dow"].to_numpy(int)]
        spread = (part["x2"].to_numpy(float) - 2 * n * part["xp"].to_numpy(float) + n**2 * q).sum()
        expected = (n * (1.0 - q)).sum()
        if expected > 0:
            out[str(channel)] = float(np.clip(spread / expected, 1.0, MAX_CLUMPING))
    return out


def _plain(value: object) -> str:
    """A cell as the file showed it (numpy scalars as plain numbers)."""
    return str(value.item() if hasattr(value, "item") else value)


def _shrunk(counts: np.ndarray, prior: np.ndarray, prior_units: float) -> np.ndarray:
    """Posterior mean shares of a Dirichlet with ``prior_units`` pseudo-units spread like ``prior``."""
    weighted = counts + prior_units * prior
    return weighted / weighted.sum()
