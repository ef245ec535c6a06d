"""When in the day demand arrives: an hour-of-day profile per channel and day of week, learned from history.

The intraday expectation of a series is its daily forecast spread over the day by this profile: by hour
``h`` a store has usually sold ``sum(shares[:h + 1])`` of its day. Profiles are pooled over the items and
locations of a channel (one series sells too little per hour to have a shape of its own), learned per day
of week, and shrunk towards the channel's all-week shape where a weekday has little history, so a
Saturday seen twice does not get a shape of its own either.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

HOURS = 24
DAYS = 7
#: Units of history a weekday's shape needs to count as much as the channel's all-week shape.
PRIOR_UNITS = 200.0


class ProfileError(ValueError):
    """The hourly history cannot give a profile (missing columns, hours outside 0-23, negative units)."""


@dataclass(frozen=True)
class IntradayProfile:
    """Share of a day's demand in each hour, per channel and day of week.

    Attributes:
        shares: Per channel, a ``[7, 24]`` array (Monday = 0); each row sums to 1.
        fallback: The ``[24]`` shape for a channel with no history (uniform over the trading hours).
        units: Units of history behind each channel's profile.
    """

    shares: dict[str, np.ndarray]
    fallback: np.ndarray
    units: dict[str, float] = field(default_factory=dict)

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
                "units": dict(self.units)}

    @classmethod
    def from_dict(cls, doc: dict) -> IntradayProfile:
        return cls(shares={c: np.asarray(t, float) for c, t in doc["shares"].items()},
                   fallback=np.asarray(doc["fallback"], float), units=dict(doc.get("units") or {}))

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
            ``units`` (>= 0). Items and locations may be in it or already summed out.
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
    return IntradayProfile(shares=shares, fallback=fallback, units=totals)


def _plain(value: object) -> str:
    """A cell as the file showed it (numpy scalars as plain numbers)."""
    return str(value.item() if hasattr(value, "item") else value)


def _shrunk(counts: np.ndarray, prior: np.ndarray, prior_units: float) -> np.ndarray:
    """Posterior mean shares of a Dirichlet with ``prior_units`` pseudo-units spread like ``prior``."""
    weighted = counts + prior_units * prior
    return weighted / weighted.sum()
