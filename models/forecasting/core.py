"""Vectorised daily or weekly demand forecasting with per-series model selection and a fallback rule.

The input is long format (``unique_id, ds, y`` and optionally ``censored``). It is validated once, then
packed into a dense ``[n_series, T]`` matrix on a common daily index, where ``NaN`` marks a day that tells
us nothing about demand: before the series started, or a stock-out day (``censored``), whose sales are a
floor of demand, not demand. Every candidate model works on the whole matrix at once, so the cost grows
with the number of series only through numpy array sizes, not through Python loops.

How a series gets its forecast:

1. It is classified by Syntetos-Boylan (ADI / CV² of non-zero demand) into ``smooth``, ``erratic``,
   ``intermittent`` or ``lumpy``. The class picks the model family: ``seasonal_naive``,
   ``moving_average`` and ``seasonal_es`` for smooth and erratic series, ``croston_sba`` for intermittent
   and lumpy ones, with ``tsb`` as the challenger (level models chase the zeros of intermittent demand).
2. Within the family, a rolling-origin backtest over the last ``backtest_windows`` windows of ``horizon``
   periods scores every candidate by MASE; the lowest wins, but a candidate other than the family's
   default must beat the default by ``SELECTION_MARGIN`` (a short backtest is noisy). Without a usable backtest (history too short for
   a window) the family's default is used (``seasonal_es`` or ``croston_sba``).
3. Quantiles come from the chosen model's backtest residuals (normal approximation, spread widening with
   the step), clipped at zero and kept monotone.
4. A series with too little history, no demand at all, a failed model, or a non-finite / absurd forecast
   gets a deterministic fallback (recent mean of observed days, or zero) and a ``fallback_reason``; one
   bad series never fails the batch.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field, replace
from statistics import NormalDist
from typing import Protocol

import numpy as np
import pandas as pd

__all__ = [
    "CANDIDATES",
    "DEMAND_CLASSES",
    "FALLBACK_MOVING_AVERAGE",
    "FALLBACK_ZERO",
    "FREQUENCIES",
    "ForecastResult",
    "SeriesChallenger",
    "forecast",
]

#: Syntetos-Boylan cut-offs (Syntetos, Boylan & Croston 2005).
ADI_CUTOFF = 1.32
CV2_CUTOFF = 0.49
DEMAND_CLASSES = ("smooth", "erratic", "intermittent", "lumpy")

FALLBACK_MOVING_AVERAGE = "fallback_moving_average"
FALLBACK_ZERO = "fallback_zero"

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
ES_ALPHAS = np.array([0.05, 0.1, 0.2, 0.3, 0.5])
CROSTON_ALPHA = 0.1
TSB_SIZE_ALPHA = 0.1
TSB_PROB_BETA = 0.1
#: A candidate other than its family's default must beat the default's backtest MASE by this fraction to
#: be chosen. Two short backtest windows are noisy; on the M5 and Walmart benchmarks picking the plain
#: minimum swapped a robust model for a lucky one often enough to cost accuracy overall.
SELECTION_MARGIN = 0.3
#: A forecast above this multiple of the largest observed day is treated as a model failure.
ABSURD_FACTOR = 10.0
#: Fewest backtest residuals for a per-series error estimate; below it the recent spread of demand is used.
MIN_RESIDUALS = 7
#: Cap on how much the forecast spread can grow over the horizon (as a multiple of the first week's).
SPREAD_GROWTH_CAP = 2.0

_Z = NormalDist()


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

# The active windows of the running forecast() call. Candidates keep the plain
# ``(Y, horizon, season_length)`` signature (easy to test and to swap), and read their windows here.
DEFAULT_MIN_HISTORY = {"D": 28, "W": 13}
#: The regressor the vectorised path understands: the discount fraction of a promotion (0 when none).
PROMO = "promo"

_ACTIVE: ContextVar[Windows] = ContextVar("shelfwise_forecast_windows", default=FREQUENCIES["D"])


def _win() -> Windows:
    return _ACTIVE.get()

Candidate = Callable[[np.ndarray, int, int], np.ndarray]


@dataclass
class ForecastResult:
    """Forecasts and a per-series record of how they were made.

    Attributes:
        forecasts: Long frame, one row per series and step: ``unique_id``, ``ds`` (forecast day),
            ``step`` (1..horizon), ``mean`` and one column per quantile named ``q{int(q * 100)}``
            (``q50``, ``q80``, ``q95`` by default). All values are finite, non-negative and monotone
            across quantiles.
        series: One row per series: ``unique_id``, ``model`` (the model used, ``fallback_*`` when the
            fallback rule applied), ``fallback_reason`` (``None`` or why the fallback was used),
            ``backtest_mase`` (``NaN`` when not computed), ``n_obs`` (observed, uncensored days),
            ``demand_class`` and ``mean_daily`` (mean observed demand over the last year, ``NaN`` when
            there is none).
        scores: Long frame of every candidate's backtest MASE: ``unique_id``, ``model``,
            ``backtest_mase`` (``NaN`` where the candidate is outside the series' family, failed or
            had no usable window). For model monitoring; selection already used it.
        notes: Run-wide warnings, e.g. a challenger model that could not be loaded.
        decision: What the challenger decided and on which pooled scores (``None`` without one).
    """

    forecasts: pd.DataFrame
    series: pd.DataFrame
    scores: pd.DataFrame = field(default_factory=pd.DataFrame)
    notes: list[str] = field(default_factory=list)
    decision: str | None = None


class SeriesChallenger(Protocol):
    """A per-series model that may take series from the vectorised selection (see :func:`forecast`).

    :class:`models.forecasting.challenger.Challenger` is the one Shelfwise ships. ``forecast()`` only
    calls this method, so this module never imports :mod:`models.forecasting.challenger`: the
    dependency runs one way.
    """

    def challenge(
        self,
        history: pd.DataFrame,
        result: ForecastResult,
        future: pd.DataFrame | None,
        *,
        horizon: int,
        season_length: int,
        freq: str,
        regressors: Sequence[str],
    ) -> ForecastResult:
        """The vectorised ``result`` of ``history``, with the series the challenger takes replaced."""
        ...


# --------------------------------------------------------------------------------------------------
# Entry validation and packing
# --------------------------------------------------------------------------------------------------


@dataclass
class _Columns:
    """Validated input columns as arrays (no copy of the caller's frame)."""

    unique_id: pd.Series
    day: np.ndarray  # int64 days since the epoch
    y: np.ndarray  # float64
    censored: np.ndarray | None  # bool


def _validate(history: pd.DataFrame) -> _Columns:
    """Check columns and dtypes and return the columns as arrays.

    Raises:
        ValueError: naming the column and the problem.
    """
    if not isinstance(history, pd.DataFrame):
        raise ValueError(f"history must be a pandas DataFrame, got {type(history).__name__}")
    missing = [c for c in ("unique_id", "ds", "y") if c not in history.columns]
    if missing:
        raise ValueError(f"history is missing required column(s): {', '.join(missing)}")

    uid = history["unique_id"]
    if uid.isna().any():
        raise ValueError(f"unique_id has {int(uid.isna().sum())} missing value(s)")
    if not pd.api.types.is_string_dtype(uid):
        raise ValueError(f"unique_id must hold strings, got dtype {uid.dtype}")

    ds = history["ds"]
    if isinstance(ds.dtype, pd.DatetimeTZDtype):
        raise ValueError("ds must be timezone-naive dates, got a timezone-aware column")
    if not pd.api.types.is_datetime64_dtype(ds):
        # Only date/datetime objects are converted: parsing strings would hide a format the
        # upstream extract should have fixed.
        if ds.dtype != object or pd.api.types.infer_dtype(ds, skipna=True) not in ("date", "datetime", "datetime64"):
            raise ValueError(f"ds must be datetime64 or date, got dtype {ds.dtype}")
        try:
            ds = pd.to_datetime(ds)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"ds must be datetime64 or date, could not convert: {exc}") from exc
    if ds.isna().any():
        raise ValueError(f"ds has {int(ds.isna().sum())} missing value(s)")
    stamps = ds.to_numpy()
    days = stamps.astype("datetime64[D]")
    if (stamps != days).any():
        raise ValueError("ds must be daily dates without a time of day")

    y = history["y"]
    if pd.api.types.is_bool_dtype(y) or not pd.api.types.is_numeric_dtype(y):
        raise ValueError(f"y must be numeric, got dtype {y.dtype}")

    censored = None
    if "censored" in history.columns:
        cens = history["censored"]
        if cens.isna().any() or not pd.api.types.is_bool_dtype(cens):
            raise ValueError(f"censored must be a bool column without missing values, got dtype {cens.dtype}")
        censored = cens.to_numpy(dtype=bool)
    return _Columns(
        unique_id=uid,
        day=days.view(np.int64),
        y=y.to_numpy(dtype=np.float64, na_value=np.nan),
        censored=censored,
    )


def _pack(cols: _Columns, period_days: int = 1) -> tuple[np.ndarray, np.ndarray, pd.Timestamp]:
    """Pack long history into ``Y[n_series, T]`` on a common index of periods ending at the origin.

    A period is ``period_days`` days (1: daily, 7: weekly); every ``ds`` must fall on the grid that
    starts at the earliest ``ds``, so weekly data must be stamped on one weekday.

    Days between a series' first row and the origin without a row are zero sales; days before its
    first row, censored days and non-finite ``y`` are ``NaN`` (unknown demand). Negative ``y`` (net
    returns) count as zero demand: returns are not negative customer demand.

    Returns:
        ``(Y, ids, origin)`` with ``ids`` sorted, matching the rows of ``Y``.

    Raises:
        ValueError: on duplicate ``(unique_id, ds)`` rows, or weekly dates off the weekly grid.
    """
    codes, ids = pd.factorize(cols.unique_id, sort=True)
    start = int(cols.day.min())
    offset = cols.day - start
    if period_days > 1:
        off_grid = offset % period_days != 0
        if off_grid.any():
            bad = np.datetime64(int(cols.day[np.flatnonzero(off_grid)[0]]), "D")
            raise ValueError(
                f"weekly history must have every ds on the same weekday as the first "
                f"({np.datetime64(start, 'D')}); {int(off_grid.sum())} row(s) are not, e.g. ds={bad}"
            )
    day = offset // period_days
    n, t = len(ids), int(day.max()) + 1
    origin = pd.Timestamp(np.datetime64(start + (t - 1) * period_days, "D"))

    # Duplicate check on the packed key: a bincount over the cells is far cheaper than a frame-level
    # duplicated() on millions of rows.
    key = codes.astype(np.int64) * t + day
    counts = np.bincount(key, minlength=n * t)
    if (counts > 1).any():
        cell = int(np.flatnonzero(counts > 1)[0])
        first_day = np.datetime64(start + (cell % t) * period_days, "D")
        raise ValueError(
            f"history has {int((counts > 1).sum())} duplicate (unique_id, ds) pair(s), "
            f"e.g. unique_id={ids[cell // t]!r} ds={first_day}"
        )
    del counts

    first = np.full(n, t, dtype=np.int64)
    np.minimum.at(first, codes, day)
    Y = np.where(np.arange(t)[None, :] >= first[:, None], 0.0, np.nan)
    flat = Y.ravel()
    y = cols.y
    with np.errstate(invalid="ignore"):
        flat[key] = np.where(np.isfinite(y), np.maximum(y, 0.0), np.nan)
    if cols.censored is not None:
        flat[key[cols.censored]] = np.nan
    return Y, np.asarray(ids, dtype=object), origin


# --------------------------------------------------------------------------------------------------
# Array helpers (NaN-aware without nanmean's empty-slice warnings)
# --------------------------------------------------------------------------------------------------


def _tail(Y: np.ndarray, length: int) -> np.ndarray:
    """Last ``length`` columns of ``Y``, left-padded with NaN when the matrix is shorter."""
    t = Y.shape[1]
    if t >= length:
        return Y[:, t - length :]
    pad = np.full((Y.shape[0], length - t), np.nan)
    return np.concatenate([pad, Y], axis=1)


def _masked_mean(values: np.ndarray, mask: np.ndarray, axis: int = -1) -> np.ndarray:
    """Mean of ``values`` where ``mask`` holds; NaN where nothing is selected."""
    count = mask.sum(axis=axis)
    total = np.where(mask, values, 0.0).sum(axis=axis)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / np.maximum(count, 1), np.nan)


def _last_observed(Y: np.ndarray, k: int) -> np.ndarray:
    """Mask of the last ``k`` observed (finite) days of each row."""
    obs = np.isfinite(Y)
    from_right = np.cumsum(obs[:, ::-1], axis=1)[:, ::-1]
    return obs & (from_right <= k)


def _recent_mean_std(Y: np.ndarray, k: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard deviation of the last ``k`` observed periods (default: the MA window; NaN when none)."""
    w = _win()
    k = w.ma if k is None else k
    W = _tail(Y, w.recent)
    sel = _last_observed(W, k)
    mean = _masked_mean(W, sel)
    with np.errstate(invalid="ignore", over="ignore"):
        var = _masked_mean((W - mean[:, None]) ** 2, sel)
    return mean, np.sqrt(var)


def _seasonal_indices(Y: np.ndarray, m: int) -> np.ndarray:
    """Weekly-style seasonal indices ``[n, m]`` indexed by phase relative to the end of ``Y``.

    Phase ``r`` of a day at absolute column ``j`` is ``(j - t) % m`` with ``t = Y.shape[1]``, so the
    first forecast step has phase 0. A phase observed fewer than ``MIN_PHASE_OBS`` times (stock-outs,
    a new series) is topped up with the overall mean, which keeps one odd day from swinging its index;
    well-observed phases are left unshrunk, because shrinking them biases the level low.
    """
    n = Y.shape[0]
    if m <= 1:
        return np.ones((n, max(m, 1)))
    w = _win()
    B = _tail(Y, w.index_seasons * m).reshape(n, w.index_seasons, m)
    obs = np.isfinite(B)
    psum = np.where(obs, B, 0.0).sum(axis=1)
    pcnt = obs.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        overall = psum.sum(axis=1) / np.maximum(pcnt.sum(axis=1), 1)
        top_up = np.maximum(w.min_phase_obs - pcnt, 0)
        idx = (psum + top_up * overall[:, None]) / (pcnt + top_up) / overall[:, None]
        idx = idx / idx.mean(axis=1, keepdims=True)
    ok = np.isfinite(idx).all(axis=1) & (overall > 0)
    return np.where(ok[:, None], idx, 1.0)


# --------------------------------------------------------------------------------------------------
# Candidate models: each maps Y[n, t] (NaN = unknown) to forecasts[n, horizon]
# --------------------------------------------------------------------------------------------------


def seasonal_naive(Y: np.ndarray, horizon: int, season_length: int) -> np.ndarray:
    """Repeat the last season; a stocked-out day takes the same phase from an earlier season."""
    n, m = Y.shape[0], max(season_length, 1)
    k = _win().naive_lookback
    B = _tail(Y, k * m).reshape(n, k, m)
    obs = np.isfinite(B)
    last = np.where(obs, np.arange(k)[None, :, None], -1).max(axis=1)
    val = np.take_along_axis(B, np.maximum(last, 0)[:, None, :], axis=1)[:, 0, :]
    val = np.where(last >= 0, val, np.nan)
    # A phase never observed in the lookback takes the mean of the phases that were.
    fill = _masked_mean(val, np.isfinite(val))
    val = np.where(np.isfinite(val), val, fill[:, None])
    return val[:, np.arange(horizon) % m]


def moving_average(Y: np.ndarray, horizon: int, season_length: int) -> np.ndarray:
    """Flat forecast at the mean of the last ``MA_WINDOW`` observed days."""
    w = _win()
    W = _tail(Y, w.recent)
    level = _masked_mean(W, _last_observed(W, w.ma))
    return np.repeat(level[:, None], horizon, axis=1)


def seasonal_es(Y: np.ndarray, horizon: int, season_length: int) -> np.ndarray:
    """Simple exponential smoothing of the deseasonalised level, times the seasonal index.

    Alpha is chosen per series from ``ES_ALPHAS`` by in-sample one-step squared error; all alphas run
    side by side as an ``[n, len(alphas)]`` state, so the time loop is the only Python loop. Unknown
    days leave the level unchanged, which is the same as imputing them by the model's own fit.
    """
    n, m = Y.shape[0], max(season_length, 1)
    idx = _seasonal_indices(Y, m)
    w = _win()
    W = _tail(Y, w.smoothing)
    length = W.shape[1]
    phase = (np.arange(length) - length) % m
    S = idx[:, phase]
    # Near-closed days (index < 0.2) say almost nothing about the level; dividing by their small index
    # would turn noise into level swings, so they are skipped.
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        D = np.where(S >= 0.2, W / S, np.nan)

    warm = min(int(w.min_train_seasons * m), length // 2)
    first = _masked_mean(D[:, :warm], np.isfinite(D[:, :warm]))
    level0 = np.where(np.isfinite(first), first, _masked_mean(D, np.isfinite(D)))
    level0 = np.where(np.isfinite(level0), level0, 0.0)
    level = np.repeat(level0[:, None], len(ES_ALPHAS), axis=1)
    sse = np.zeros_like(level)
    alphas = ES_ALPHAS[None, :]
    with np.errstate(invalid="ignore", over="ignore"):
        for j in range(length):
            d = D[:, j]
            ok = np.isfinite(d)[:, None]
            err = np.where(ok, d[:, None] - level, 0.0)
            if j >= warm:
                sse += (err * S[:, j : j + 1]) ** 2
            level += alphas * err
    best = np.argmin(np.where(np.isfinite(sse), sse, np.inf), axis=1)
    final = level[np.arange(n), best]
    return final[:, None] * idx[:, np.arange(horizon) % m]


def croston_sba(Y: np.ndarray, horizon: int, season_length: int) -> np.ndarray:
    """Croston's method with the Syntetos-Boylan bias correction, flat over the horizon.

    Demand sizes and inter-demand intervals are smoothed separately; intervals count observed days
    only, so a stock-out does not look like a long gap between demands.
    """
    W = _tail(Y, _win().smoothing)
    n = W.shape[0]
    obs = np.isfinite(W)
    pos = obs & (W > 0)
    n_pos = pos.sum(axis=1)
    size = _masked_mean(W, pos)
    with np.errstate(invalid="ignore", divide="ignore"):
        interval = np.where(n_pos > 0, obs.sum(axis=1) / np.maximum(n_pos, 1), 1.0)
    size = np.where(np.isfinite(size), size, 0.0)
    since = np.ones(n)
    a = CROSTON_ALPHA
    with np.errstate(invalid="ignore", over="ignore"):
        for j in range(W.shape[1]):
            col = W[:, j]
            demand = pos[:, j]
            size = np.where(demand, size + a * (col - size), size)
            interval = np.where(demand, interval + a * (since - interval), interval)
            since = np.where(demand, 1.0, since + obs[:, j])
        rate = (1.0 - a / 2.0) * size / interval
    return np.repeat(rate[:, None], horizon, axis=1)


def tsb(Y: np.ndarray, horizon: int, season_length: int) -> np.ndarray:
    """Teunter-Syntetos-Babai: smooth the probability of a demand day and the demand size, flat forecast.

    Unlike Croston, the probability decays on every observed day without demand, so an item that has
    stopped selling sees its forecast fall instead of freezing at the last interval. Unknown (censored)
    days update nothing.
    """
    W = _tail(Y, _win().smoothing)
    obs = np.isfinite(W)
    pos = obs & (W > 0)
    n_obs = obs.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        prob = np.where(n_obs > 0, pos.sum(axis=1) / np.maximum(n_obs, 1), 0.0)
    size = _masked_mean(W, pos)
    size = np.where(np.isfinite(size), size, 0.0)
    a, b = TSB_SIZE_ALPHA, TSB_PROB_BETA
    with np.errstate(invalid="ignore", over="ignore"):
        for j in range(W.shape[1]):
            prob = np.where(obs[:, j], prob + b * (pos[:, j] - prob), prob)
            size = np.where(pos[:, j], size + a * (W[:, j] - size), size)
    return np.repeat((prob * size)[:, None], horizon, axis=1)


#: Candidate registry, in tie-break order.
CANDIDATES: dict[str, Candidate] = {
    "seasonal_es": seasonal_es,
    "seasonal_naive": seasonal_naive,
    "moving_average": moving_average,
    "croston_sba": croston_sba,
    "tsb": tsb,
}
#: Model family per demand class; the first entry is the default when no backtest is possible.
FAMILIES: dict[str, tuple[str, ...]] = {
    "smooth": ("seasonal_es", "seasonal_naive", "moving_average"),
    "erratic": ("seasonal_es", "seasonal_naive", "moving_average"),
    "intermittent": ("croston_sba", "tsb"),
    "lumpy": ("croston_sba", "tsb"),
}


# --------------------------------------------------------------------------------------------------
# Classification, scoring, quantiles
# --------------------------------------------------------------------------------------------------


def _classify(Y: np.ndarray) -> np.ndarray:
    """Syntetos-Boylan class of each row over the recent window (all-zero rows count as intermittent)."""
    W = _tail(Y, _win().recent)
    obs = np.isfinite(W)
    pos = obs & (W > 0)
    n_pos = pos.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        adi = np.where(n_pos > 0, obs.sum(axis=1) / np.maximum(n_pos, 1), np.inf)
        mean = _masked_mean(W, pos)
        var = _masked_mean((W - mean[:, None]) ** 2, pos)
        cv2 = np.where(mean > 0, var / mean**2, 0.0)
    cv2 = np.where(np.isfinite(cv2), cv2, 0.0)
    sparse = adi >= ADI_CUTOFF
    variable = cv2 >= CV2_CUTOFF
    cls = np.where(sparse, np.where(variable, "lumpy", "intermittent"), np.where(variable, "erratic", "smooth"))
    return cls.astype(object)


def _mase_scale(train: np.ndarray, m: int) -> np.ndarray:
    """In-sample seasonal-naive MAE of each row, guarded so it is always positive and finite."""
    W = _tail(train, max(_win().recent, 2 * m))
    with np.errstate(invalid="ignore", over="ignore"):
        diff = np.abs(W[:, m:] - W[:, :-m]) if W.shape[1] > m else np.full((W.shape[0], 1), np.nan)
    scale = _masked_mean(diff, np.isfinite(diff))
    # A flat history has zero naive error; fall back to the mean level, then to one unit, so MASE stays
    # a finite number that still ranks the candidates.
    level = _masked_mean(np.abs(W), np.isfinite(W))
    scale = np.where(np.isfinite(scale) & (scale > 0), scale, level)
    return np.where(np.isfinite(scale) & (scale > 0), scale, 1.0)


def _spread_shape(horizon: int, m: int) -> np.ndarray:
    """Relative spread per step: ``sqrt(step / season)``, floored at 1, capped, averaging 1 over the horizon.

    Backtest residuals pooled over all steps give the spread of an average step; this redistributes it
    so that near steps are tighter than far ones without changing the overall width.
    """
    steps = np.arange(1, horizon + 1)
    g = np.clip(np.sqrt(steps / max(m, 1)), 1.0, SPREAD_GROWTH_CAP)
    return g / g.mean()


def _quantile_levels(quantiles: Sequence[float]) -> list[tuple[float, str]]:
    """Validate quantile levels and return ``(level, column)`` pairs sorted by level."""
    levels = sorted({float(q) for q in quantiles})
    if not levels:
        raise ValueError("quantiles must not be empty")
    bad = [q for q in levels if not 0.0 < q < 1.0]
    if bad:
        raise ValueError(f"quantiles must be strictly between 0 and 1, got {bad}")
    names = [f"q{int(round(q * 100))}" for q in levels]
    if len(set(names)) != len(names):
        raise ValueError(f"quantiles {levels} map to duplicate column names {names}")
    return list(zip(levels, names, strict=True))


# --------------------------------------------------------------------------------------------------
# Entry point
# --------------------------------------------------------------------------------------------------


def forecast(
    history: pd.DataFrame,
    horizon: int,
    *,
    season_length: int = 7,
    quantiles: Sequence[float] = (0.5, 0.8, 0.95),
    backtest_windows: int = 2,
    min_history: int | None = None,
    freq: str = "D",
    regressors: Sequence[str] = (),
    future: pd.DataFrame | None = None,
    challenger: SeriesChallenger | None = None,
) -> ForecastResult:
    """Forecast demand for many series at once, choosing a model per series by backtest.

    The vectorised candidates read ``y``. With a ``promo`` regressor (the discount fraction of each
    day) they forecast the promotion-free level and each step is multiplied by the lift of the
    promotion planned for it, at the series' estimated price elasticity (see
    :mod:`models.forecasting.promotions`). All known regressors (``regressors`` and an ``event``
    column) reach the per-series ``challenger`` (prophet by default in the nightly), tried where they
    matter and the series is worth a fit, and taking the series tried only where their pooled
    rolling-origin backtest beats the vectorised choice (see :func:`models.forecasting.challenger.challenge`).

    Args:
        history: Long frame ``unique_id`` (str), ``ds`` (datetime64 or date, daily), ``y`` (units) and
            optionally ``censored`` (bool: the day had no stock, so its ``y`` is not demand). The last
            ``ds`` over all series is the forecast origin. Missing days after a series' first row are zero
            sales; censored days and non-finite ``y`` are left out of fitting and scoring; negative ``y``
            counts as zero.
        horizon: Periods to forecast (steps ``1..horizon`` after the origin).
        season_length: Season in periods (7 for daily data with a weekly pattern; 52 for weekly data
            with a yearly pattern).
        quantiles: Quantile levels in (0, 1); columns are named ``q{int(q * 100)}``.
        backtest_windows: Rolling-origin windows of ``horizon`` days used to select the model (0: use
            the class default without a backtest).
        min_history: Fewest observed periods before a series is modelled rather than given the
            fallback (default 28 days for daily data, 13 weeks for weekly data).
        freq: ``"D"`` (daily, the default) or ``"W"`` (weekly: one row per series and week, every ``ds``
            on the same weekday). Look-back windows keep roughly the same calendar reach.
        regressors: Numeric known-regressor columns of ``history`` (e.g. ``promo``, ``price``). An
            ``event`` column (event label or ``None``), when present, names holidays and events.
            ``promo``, when listed, must be a discount fraction in [0, 1).
        future: ``unique_id, ds`` and the same regressor (and ``event``) columns for every step of
            the horizon: what is planned, such as the published promotion calendar.
        challenger: A :class:`~models.forecasting.challenger.Challenger` (any :class:`SeriesChallenger`),
            or ``None`` for the vectorised selection alone.

    Returns:
        A :class:`ForecastResult`. Series are sorted by ``unique_id``, forecasts by ``unique_id, step``.

    Raises:
        ValueError: if ``history`` lacks a column, has a wrong dtype or duplicate ``(unique_id, ds)``
            rows, or an argument is out of range. Problems of a single series never raise; they show
            up as a ``fallback_reason``.
    """
    if not isinstance(horizon, (int, np.integer)) or horizon < 1:
        raise ValueError(f"horizon must be a positive integer, got {horizon!r}")
    if season_length < 1:
        raise ValueError(f"season_length must be >= 1, got {season_length}")
    if backtest_windows < 0:
        raise ValueError(f"backtest_windows must be >= 0, got {backtest_windows}")
    if freq not in FREQUENCIES:
        raise ValueError(f"freq must be one of {sorted(FREQUENCIES)}, got {freq!r}")
    if min_history is None:
        min_history = DEFAULT_MIN_HISTORY[freq]
    if min_history < 1:
        raise ValueError(f"min_history must be >= 1, got {min_history}")
    qlevels = _quantile_levels(quantiles)
    cols = _validate(history)
    _validate_regressors(history, future, regressors)
    elasticity = None
    if PROMO in regressors and len(history):
        from models.forecasting.promotions import promotion_elasticity, promotion_lift

        # The models see the promotion-free level: each promoted day divided by its lift.
        elasticity = promotion_elasticity(history, PROMO)
        cols = replace(cols, y=cols.y / promotion_lift(history, elasticity, PROMO))
    if len(cols.y) == 0:
        return _empty_result([name for _, name in qlevels])

    # Over- and underflow in one series must not reach the caller as warnings or errors: every
    # non-finite number is caught below and turned into a fallback for that series only.
    token = _ACTIVE.set(FREQUENCIES[freq])
    try:
        with np.errstate(all="ignore"):
            result = _forecast_packed(cols, int(horizon), int(season_length), qlevels, backtest_windows, min_history)
    finally:
        _ACTIVE.reset(token)
    if elasticity is not None:
        from models.forecasting.promotions import repromote

        result.series["promo_elasticity"] = result.series["unique_id"].map(elasticity).astype(np.float64)
        if future is not None:
            result.forecasts = repromote(result.forecasts, future, elasticity, PROMO)
    if challenger is None:
        return result
    return challenger.challenge(history, result, future, horizon=int(horizon), season_length=int(season_length),
                                freq=freq, regressors=tuple(regressors))


def _validate_regressors(history: pd.DataFrame, future: pd.DataFrame | None, regressors: Sequence[str]) -> None:
    """Regressor columns exist and are numeric in ``history`` and ``future``.

    Raises:
        ValueError: naming the frame and the column.
    """
    if isinstance(regressors, str):
        raise ValueError(f"regressors must be a sequence of column names, got the string {regressors!r}")
    for frame_name, frame in (("history", history), ("future", future)):
        if frame is None:
            continue
        needed = ["unique_id", "ds"] if frame_name == "future" else []
        missing = [c for c in [*needed, *regressors] if c not in frame.columns]
        if missing:
            raise ValueError(f"{frame_name} is missing regressor column(s): {', '.join(missing)}")
        for col in regressors:
            if pd.api.types.is_bool_dtype(frame[col]) or not pd.api.types.is_numeric_dtype(frame[col]):
                raise ValueError(f"{frame_name}.{col} must be numeric, got dtype {frame[col].dtype}")


def _forecast_packed(
    cols: _Columns,
    horizon: int,
    m: int,
    qlevels: list[tuple[float, str]],
    backtest_windows: int,
    min_history: int,
) -> ForecastResult:
    """Body of :func:`forecast` once the arguments are validated."""
    period_days = _win().period_days
    Y, ids, origin = _pack(cols, period_days)
    n, t = Y.shape
    obs = np.isfinite(Y)
    n_obs = obs.sum(axis=1)
    with np.errstate(invalid="ignore"):
        series_max = np.where(obs, Y, -np.inf).max(axis=1)

    demand_class = _classify(Y)
    recent = _tail(Y, _win().recent)
    mean_daily = _masked_mean(recent, np.isfinite(recent))
    mean_daily = np.where(np.isfinite(mean_daily), mean_daily, np.nan)

    names = list(CANDIDATES)
    eligible = np.zeros((n, len(names)), dtype=bool)
    for cls, family in FAMILIES.items():
        rows = demand_class == cls
        for name in family:
            eligible[rows, names.index(name)] = True

    # Rolling-origin backtest: windows end at the origin and step back by one horizon each.
    cutoffs = [t - w * horizon for w in range(backtest_windows, 0, -1)]
    w = _win()
    cutoffs = [c for c in cutoffs if c > w.min_train_seasons * m]
    cum_obs = np.cumsum(obs, axis=1)
    min_train = max(int(w.min_train_seasons * m), w.min_train)

    errors: dict[str, str] = {}
    point: dict[str, np.ndarray] = {}
    mase = np.full((n, len(names)), np.nan)
    rmse = np.full((n, len(names)), np.nan)
    n_res = np.zeros((n, len(names)), dtype=np.int64)
    scales = {c: _mase_scale(Y[:, :c], m) for c in cutoffs}
    for k, name in enumerate(names):
        if not eligible[:, k].any():
            continue
        model = CANDIDATES[name]
        try:
            abs_err_scaled = np.zeros(n)
            sq_err = np.zeros(n)
            count = np.zeros(n, dtype=np.int64)
            for c in cutoffs:
                fc = np.asarray(model(Y[:, :c], horizon, m), dtype=np.float64)
                if fc.shape != (n, horizon):
                    raise ValueError(f"returned shape {fc.shape}, expected {(n, horizon)}")
                actual = Y[:, c : c + horizon]
                with np.errstate(invalid="ignore", over="ignore"):
                    err = actual - np.maximum(fc, 0.0)
                    usable = np.isfinite(actual) & (cum_obs[:, c - 1] >= min_train)[:, None]
                    # A non-finite forecast poisons its series' score so it is never selected.
                    e = np.where(usable, err, 0.0)
                    abs_err_scaled += np.abs(e).sum(axis=1) / scales[c]
                    sq_err += (e**2).sum(axis=1)
                count += usable.sum(axis=1)
            with np.errstate(invalid="ignore", divide="ignore"):
                mase[:, k] = np.where(count > 0, abs_err_scaled / np.maximum(count, 1), np.nan)
                rmse[:, k] = np.where(count > 0, np.sqrt(sq_err / np.maximum(count, 1)), np.nan)
            n_res[:, k] = count
            final = np.asarray(model(Y, horizon, m), dtype=np.float64)
            if final.shape != (n, horizon):
                raise ValueError(f"returned shape {final.shape}, expected {(n, horizon)}")
            point[name] = final
        except Exception as exc:  # noqa: BLE001 - a broken model degrades its series to the fallback
            errors[name] = f"{name} failed: {type(exc).__name__}: {exc}"
            mase[:, k] = np.nan
            rmse[:, k] = np.nan
            n_res[:, k] = 0
    mase = np.where(eligible, mase, np.nan)

    # Selection: lowest MASE in the family; the family default when nothing was scored.
    default = np.array([names.index(FAMILIES[c][0]) for c in DEMAND_CLASSES])
    class_code = pd.Categorical(demand_class, categories=DEMAND_CLASSES).codes
    score = np.where(np.isfinite(mase), mase, np.inf)
    is_default = np.arange(len(names))[None, :] == default[class_code][:, None]
    handicapped = np.where(is_default, score, score * (1.0 + SELECTION_MARGIN))
    best = np.argmin(handicapped, axis=1)
    no_score = ~np.isfinite(score).any(axis=1)
    best = np.where(no_score, default[class_code], best)
    chosen_mase = np.where(no_score, np.nan, mase[np.arange(n), best])

    mean = np.full((n, horizon), np.nan)
    for k, name in enumerate(names):
        rows = best == k
        if rows.any() and name in point:
            mean[rows] = point[name][rows]

    # Fallback decisions, in order of precedence (the first reason that applies is reported).
    reason = np.full(n, None, dtype=object)

    def _flag(rows: np.ndarray, text: Callable[[int], str]) -> None:
        for i in np.flatnonzero(rows & (reason == None)):  # noqa: E711 - elementwise on an object array
            reason[i] = text(i)

    _flag(n_obs == 0, lambda i: "no observed days (all censored or missing)")
    _flag(n_obs < min_history, lambda i: f"short history: {n_obs[i]} observed days < min_history {min_history}")
    _flag(series_max <= 0, lambda i: "all-zero history")
    for k, name in enumerate(names):
        if name in errors:
            msg = errors[name]
            _flag(eligible[:, k], lambda i, msg=msg: msg)
    with np.errstate(invalid="ignore"):
        nonfinite = ~np.isfinite(mean).all(axis=1)
        peak = np.where(np.isfinite(mean), mean, 0.0).max(axis=1)
        absurd = ~nonfinite & (peak > ABSURD_FACTOR * series_max)
    chosen_name = np.array(names, dtype=object)[best]
    _flag(nonfinite, lambda i: f"{chosen_name[i]} produced a non-finite forecast")
    _flag(
        absurd,
        lambda i: f"{chosen_name[i]} forecast {peak[i]:.4g} is more than {ABSURD_FACTOR:g}x "
        f"the series max {series_max[i]:.4g}",
    )

    fallback = reason != None  # noqa: E711
    recent_mean, recent_std = _recent_mean_std(Y)
    fb_level = np.where(np.isfinite(recent_mean), recent_mean, 0.0)
    model_name = chosen_name.copy()
    model_name[fallback] = np.where(fb_level[fallback] > 0, FALLBACK_MOVING_AVERAGE, FALLBACK_ZERO)
    mean[fallback] = fb_level[fallback, None]
    ma_k = names.index("moving_average")
    chosen_mase = np.where(fallback, np.where(eligible[:, ma_k], mase[:, ma_k], np.nan), chosen_mase)
    mean = np.maximum(mean, 0.0)

    # Spread: chosen model's pooled backtest RMSE, else the recent spread of demand itself.
    sigma = rmse[np.arange(n), best]
    enough = (n_res[np.arange(n), best] >= MIN_RESIDUALS) & np.isfinite(sigma) & ~fallback
    sigma = np.where(enough, sigma, recent_std)
    sigma = np.where(np.isfinite(sigma), sigma, 0.0)
    spread = sigma[:, None] * _spread_shape(horizon, m)[None, :]

    qcols: dict[str, np.ndarray] = {}
    running = np.zeros_like(mean)
    for level, col in qlevels:
        with np.errstate(invalid="ignore", over="ignore"):
            q = np.maximum(mean + _Z.inv_cdf(level) * spread, 0.0)
        q = np.where(np.isfinite(q), q, mean)
        running = np.maximum(running, q)
        qcols[col] = running.copy()

    steps = np.arange(1, horizon + 1)
    # Build the id column once in the input's string dtype and repeat it by position: converting a
    # repeated object array would re-infer the dtype of every row.
    id_col = pd.Series(ids).astype(cols.unique_id.dtype).array
    forecasts = pd.DataFrame(
        {
            "unique_id": id_col.take(np.repeat(np.arange(n), horizon)),
            "ds": np.tile(origin + pd.to_timedelta(steps * period_days, unit="D"), n),
            "step": np.tile(steps, n),
            "mean": mean.ravel(),
            **{col: values.ravel() for col, values in qcols.items()},
        }
    )
    series = pd.DataFrame(
        {
            "unique_id": id_col,
            "model": pd.Series(model_name, dtype=object),
            "fallback_reason": pd.Series(reason, dtype=object),
            "backtest_mase": chosen_mase.astype(np.float64),
            "n_obs": n_obs.astype(np.int64),
            "demand_class": pd.Series(demand_class, dtype=object),
            "mean_daily": mean_daily.astype(np.float64),
        }
    )
    scores = pd.DataFrame(
        {
            "unique_id": id_col.take(np.repeat(np.arange(n), len(names))),
            "model": np.tile(np.array(names, dtype=object), n),
            "backtest_mase": mase.ravel(),
        }
    )
    return ForecastResult(forecasts=forecasts, series=series, scores=scores)


def _empty_result(qcols: list[str]) -> ForecastResult:
    """Result with the documented columns and no rows."""
    forecasts = pd.DataFrame(
        {
            "unique_id": pd.Series(dtype=object),
            "ds": pd.Series(dtype="datetime64[us]"),
            "step": pd.Series(dtype=np.int64),
            "mean": pd.Series(dtype=np.float64),
            **{c: pd.Series(dtype=np.float64) for c in qcols},
        }
    )
    series = pd.DataFrame(
        {
            "unique_id": pd.Series(dtype=object),
            "model": pd.Series(dtype=object),
            "fallback_reason": pd.Series(dtype=object),
            "backtest_mase": pd.Series(dtype=np.float64),
            "n_obs": pd.Series(dtype=np.int64),
            "demand_class": pd.Series(dtype=object),
            "mean_daily": pd.Series(dtype=np.float64),
        }
    )
    scores = pd.DataFrame(
        {
            "unique_id": pd.Series(dtype=object),
            "model": pd.Series(dtype=object),
            "backtest_mase": pd.Series(dtype=np.float64),
        }
    )
    return ForecastResult(forecasts=forecasts, series=series, scores=scores)
