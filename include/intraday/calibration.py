"""Today against the night's forecast, across a channel: the level it runs at and how far its series stray.

The surge test (:mod:`include.intraday.sensing`) reads one series at a time against its forecast and the
forecast's error. Two things the night could not know show across all the series of a channel at once,
and are read off the day itself before any series is tested:

- :func:`day_level`: the whole channel selling above its forecast (an event the forecast under-rated, a
  busy Saturday). That is a forecast error shared by every series, not a surge of any one of them.
- :func:`day_spread`: the series straying from their forecasts further than the forecast's error allows
  (on an event day the forecast's per-series event effects, learned from one or two past occurrences,
  are far less sure than its error on ordinary days says). The spread of the series' standardised
  deviations, measured robustly, widens the forecast's error until it matches; the region test, whose
  stores share an item's event effect, measures its own.

Both are robust to the surges they must not hide: medians over the series, so a surge on fewer than half
of them cannot set them, and neither ever makes the test quicker to alarm than the forecast alone (a level
below 1 or a spread below the forecast's error counts as 1).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

#: Expected units of pseudo-history at level 1 in each series' ratio (a series that has sold little so far
#: reads near its forecast).
LEVEL_PRIOR_UNITS = 1.0
#: The most a channel's day is taken to run above its forecast.
MAX_LEVEL = 3.0
#: Series a channel needs before it has a day level (with fewer, one surge would set it).
LEVEL_MIN_SERIES = 40


def day_level(sold: np.ndarray, expected: np.ndarray, channels: np.ndarray | pd.Series) -> np.ndarray:
    """``[n]``: how far above its forecast each series' channel is running today, as a multiple (>= 1).

    A day on which a whole channel sells above its forecast (an event the forecast under-rated, a busy
    Saturday) is a forecast error shared by every series, not a surge of any one of them: the test reads a
    series against its forecast times its channel's level. The level is the median of the series' ratios of
    units sold to expected so far (each with :data:`LEVEL_PRIOR_UNITS` at ratio 1), weighted by what they
    were expected to sell: a surge on up to half the channel's volume cannot set the level it is read
    against. A channel running below its forecast keeps level 1 (a slow day never makes the test quicker to
    alarm), and so does a channel of fewer than :data:`LEVEL_MIN_SERIES` series forecast to sell today.

    Args:
        sold: ``[n, T]`` or ``[n]`` units sold so far.
        expected: the same shape, units the forecast expected.
        channels: ``[n]`` channel of each series.
    """
    sold = np.asarray(sold, float).reshape(len(channels), -1).sum(axis=1)
    expected = np.asarray(expected, float).reshape(len(channels), -1).sum(axis=1)
    channels = np.asarray(channels, dtype=object)
    level = np.ones(len(channels))
    for channel in pd.unique(channels):
        rows = np.flatnonzero((channels == channel) & (expected > 0))
        if len(rows) < LEVEL_MIN_SERIES:
            continue
        ratio = (sold[rows] + LEVEL_PRIOR_UNITS) / (expected[rows] + LEVEL_PRIOR_UNITS)
        order = np.argsort(ratio, kind="stable")
        weight = np.cumsum(expected[rows][order])
        median = ratio[order][np.searchsorted(weight, 0.5 * weight[-1])]
        level[channels == channel] = float(np.clip(median, 1.0, MAX_LEVEL))
    return level


#: Expected units (in the test's counting units) a series needs so far to count in the day's spread.
SPREAD_MIN_UNITS = 3.0
#: The most the forecast's day-multiplier is taken to stray today beyond its error (a coefficient of variation).
MAX_SPREAD_CV = 2.0
#: Median of ``|z|`` for a standard normal.
_MAD_NORMAL = 0.6744897501960817


def day_spread(sold: np.ndarray, expected: np.ndarray, shape: np.ndarray, channels: np.ndarray | pd.Series) -> np.ndarray:
    """``[n]``: the extra variance of each series' forecast multiplier its channel shows today (>= 0).

    Under the test's null a series that was expected ``E`` units so far sells ``S`` with variance
    ``E + E^2 / r`` (counting noise and the forecast multiplier of gamma shape ``r``). The extra variance
    ``a`` is the least ``a >= 0`` for which ``z = (S - E) / sqrt(E + E^2 (1 / r + a))`` has the median
    ``|z|`` of a standard normal, over the channel's series expected at least :data:`SPREAD_MIN_UNITS`; a
    channel with fewer than :data:`LEVEL_MIN_SERIES` such series keeps 0. The test then reads each series
    with the multiplier's shape ``1 / (1 / r + a)``.

    Args:
        sold: ``[n, T]`` or ``[n]`` units sold so far (counting units of the test).
        expected: the same shape, units expected (at the day level).
        shape: ``[n]`` gamma shape ``r`` of each series' forecast multiplier.
        channels: ``[n]`` channel of each series.
    """
    sold = np.asarray(sold, float).reshape(len(channels), -1).sum(axis=1)
    expected = np.asarray(expected, float).reshape(len(channels), -1).sum(axis=1)
    shape = np.asarray(shape, float)
    channels = np.asarray(channels, dtype=object)
    extra = np.zeros(len(channels))
    for channel in pd.unique(channels):
        rows = np.flatnonzero((channels == channel) & (expected >= SPREAD_MIN_UNITS))
        if len(rows) >= LEVEL_MIN_SERIES:
            extra[channels == channel] = _extra_variance(sold[rows], expected[rows], shape[rows])
    return extra


def _extra_variance(sold: np.ndarray, expected: np.ndarray, shape: np.ndarray) -> float:
    """The least extra multiplier variance that brings the median ``|z|`` down to a normal's (bisection)."""
    deviation, e2 = np.abs(sold - expected), expected**2

    def median_z(a: float) -> float:
        return float(np.median(deviation / np.sqrt(expected + e2 * (1.0 / shape + a))))

    low, high = 0.0, MAX_SPREAD_CV**2
    if median_z(low) <= _MAD_NORMAL:
        return 0.0
    if median_z(high) > _MAD_NORMAL:
        return high
    for _ in range(40):  # the median |z| falls as a grows
        mid = 0.5 * (low + high)
        low, high = (mid, high) if median_z(mid) > _MAD_NORMAL else (low, mid)
    return high
