"""Look-back windows of the vectorised forecast, per data frequency, and the NaN-aware helpers that cut
and average a packed ``[n_series, T]`` history over them.

``NaN`` in a packed matrix marks a period that tells nothing about demand (before the series started, or
stocked out); the helpers here skip it without numpy's empty-slice warnings. The windows of the running
:func:`models.forecasting.forecast` call are read through :func:`active_windows`.
"""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass

import numpy as np

__all__ = [
    "ACTIVE_WINDOWS",
    "DEFAULT_MIN_HISTORY",
    "FREQUENCIES",
    "Windows",
    "active_windows",
    "last_observed",
    "masked_mean",
    "recent_mean_std",
    "tail",
]

#: Days of observed demand averaged by ``moving_average`` and by the fallback.
MA_WINDOW = 28
#: Recent window (days) the classifier, the MASE scale and ``mean_daily`` look at; older demand is a
#: different business more often than it is useful signal.
RECENT_DAYS = 365
#: Recent window (days) the exponential-smoothing models run over. With the smallest alpha on the grid
#: (0.05) the weight of day 182 is below 1e-4, so a longer run changes nothing but the cost.
SMOOTHING_DAYS = 182
#: Weeks of history behind the seasonal indices.
SEASONAL_INDEX_SEASONS = 8
#: Fewest observations of a phase before its seasonal index stands on its own.
MIN_PHASE_OBS = 3
#: Seasons ``seasonal_naive`` may look back to find an observed value for a stocked-out weekday.
NAIVE_LOOKBACK_SEASONS = 4


@dataclass(frozen=True)
class Windows:
    """Look-back windows, in periods of the data's frequency.

    The daily values are the module constants above; weekly data (one row per week, yearly season of 52)
    gets windows of the same calendar reach where that makes sense, and looser minimums where a daily
    rule would ask for years of weekly history that retailers rarely keep.
    """

    recent: int = RECENT_DAYS
    ma: int = MA_WINDOW
    smoothing: int = SMOOTHING_DAYS
    index_seasons: int = SEASONAL_INDEX_SEASONS
    min_phase_obs: int = MIN_PHASE_OBS
    naive_lookback: int = NAIVE_LOOKBACK_SEASONS
    #: Seasons of history a training window needs before a backtest origin counts.
    min_train_seasons: float = 2.0
    min_train: int = 14
    period_days: int = 1


FREQUENCIES: dict[str, Windows] = {
    "D": Windows(),
    "W": Windows(
        recent=52, ma=8, smoothing=156, index_seasons=3, min_phase_obs=1, naive_lookback=2,
        min_train_seasons=1.0, min_train=26, period_days=7,
    ),
}

#: Fewest observed periods before a series is modelled rather than given the fallback, per frequency.
DEFAULT_MIN_HISTORY = {"D": 28, "W": 13}

# The active windows of the running forecast() call. Candidates keep the plain
# ``(Y, horizon, season_length)`` signature (easy to test and to swap), and read their windows here.
ACTIVE_WINDOWS: ContextVar[Windows] = ContextVar("shelfwise_forecast_windows", default=FREQUENCIES["D"])


def active_windows() -> Windows:
    """The look-back windows of the running forecast() call (daily outside one)."""
    return ACTIVE_WINDOWS.get()


def tail(Y: np.ndarray, length: int) -> np.ndarray:
    """Last ``length`` columns of ``Y``, left-padded with NaN when the matrix is shorter."""
    t = Y.shape[1]
    if t >= length:
        return Y[:, t - length :]
    pad = np.full((Y.shape[0], length - t), np.nan)
    return np.concatenate([pad, Y], axis=1)


def masked_mean(values: np.ndarray, mask: np.ndarray, axis: int = -1) -> np.ndarray:
    """Mean of ``values`` where ``mask`` holds; NaN where nothing is selected."""
    count = mask.sum(axis=axis)
    total = np.where(mask, values, 0.0).sum(axis=axis)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / np.maximum(count, 1), np.nan)


def last_observed(Y: np.ndarray, k: int) -> np.ndarray:
    """Mask of the last ``k`` observed (finite) days of each row."""
    obs = np.isfinite(Y)
    from_right = np.cumsum(obs[:, ::-1], axis=1)[:, ::-1]
    return obs & (from_right <= k)


def recent_mean_std(Y: np.ndarray, k: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard deviation of the last ``k`` observed periods (default: the MA window; NaN when none)."""
    w = active_windows()
    k = w.ma if k is None else k
    W = tail(Y, w.recent)
    sel = last_observed(W, k)
    mean = masked_mean(W, sel)
    with np.errstate(invalid="ignore", over="ignore"):
        var = masked_mean((W - mean[:, None]) ** 2, sel)
    return mean, np.sqrt(var)
