"""Vectorised daily or weekly demand forecasting with per-series model selection and a fallback rule.

The input is long format (``unique_id, ds, y`` and optionally ``censored``). It is validated once, then
packed into a dense ``[n_series, T]`` matrix on a common daily index, where ``NaN`` marks a day that tells
us nothing about demand: before the series started, or a stock-out day (``censored``), whose sales are a
floor of demand, not demand. Every candidate model works on the whole matrix at once, so the cost grows
with the number of series only through numpy array sizes, not through Python loops.

How a series gets its forecast:

0. With known drivers (regressors, an ``event`` column) the history is divided by each period's driver
   multiplier first, so the models see driver-free demand (:mod:`~models.forecasting.drivers`).
1. It is classified by Syntetos-Boylan (ADI / CV² of non-zero demand) into ``smooth``, ``erratic``,
   ``intermittent`` or ``lumpy``. The class picks the model family: ``seasonal_es``, ``seasonal_naive``,
   ``moving_average``, ``damped_trend`` and ``naive`` for smooth and erratic series, ``croston_sba`` for
   intermittent and lumpy ones, with ``tsb`` as the challenger (level models chase the zeros of
   intermittent demand).
2. Within the family, a rolling-origin backtest over the last ``backtest_windows`` windows of ``horizon``
   periods scores every candidate by MASE; the lowest wins, but a candidate other than the family's
   default must beat the default by ``SELECTION_MARGIN`` (a short backtest is noisy). Without a usable backtest (history too short for
   a window) the family's default is used (``seasonal_es`` or ``croston_sba``).
3. Quantiles come from the chosen model's backtest residuals (normal approximation, spread widening with
   the step), clipped at zero and kept monotone; ``sigma_cum`` from the same residuals summed over the
   steps. Every step is then multiplied by the multiplier of the drivers planned for it.
4. A series with too little history, no demand at all, a failed model, or a non-finite / absurd forecast
   gets a deterministic fallback (recent mean of observed days, or zero) and a ``fallback_reason``; one
   bad series never fails the batch.

The steps live in modules named after them: :mod:`~models.forecasting.inputs` (validation and packing),
:mod:`~models.forecasting.windows` (look-back windows and NaN-aware helpers),
:mod:`~models.forecasting.candidates` (the models), :mod:`~models.forecasting.selection` (classification,
backtest, choice), :mod:`~models.forecasting.quantiles` (spread and quantiles),
:mod:`~models.forecasting.drivers` (known drivers), :mod:`~models.forecasting.results` (the result); this
module holds the entry point and the fallback rule.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Protocol

import numpy as np
import pandas as pd

from models.forecasting.candidates import CANDIDATES
from models.forecasting.drivers import DriverFit, driver_columns, driver_names, fit_drivers
from models.forecasting.inputs import check_arguments, pack_grid, validate_history, validate_regressors
from models.forecasting.quantiles import (
    MIN_RESIDUALS,
    cumulative_sigma,
    forecast_spread,
    quantile_columns,
    quantile_levels,
)
from models.forecasting.results import ForecastResult, SeriesFacts, build_result, empty_result
from models.forecasting.selection import (
    DEMAND_CLASSES,
    Backtest,
    backtest_candidates,
    chosen_forecast,
    chosen_residuals,
    classify,
    eligibility,
    select,
)
from models.forecasting.windows import (
    ACTIVE_WINDOWS,
    FREQUENCIES,
    active_windows,
    masked_mean,
    recent_mean_std,
    tail,
)

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

FALLBACK_MOVING_AVERAGE = "fallback_moving_average"
FALLBACK_ZERO = "fallback_zero"

#: A forecast above this multiple of the largest observed day is treated as a model failure.
ABSURD_FACTOR = 10.0

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

    The vectorised candidates read ``y``. Every known driver (the numeric ``regressors`` and an
    ``event`` column) multiplies demand: per series, its effects are estimated from the history
    (shrunk toward the item's and the call's), the candidates forecast the driver-free demand, and each
    step (mean, quantiles and ``sigma_cum``) is multiplied by the effect of the drivers planned for it in
    ``future`` (see :mod:`models.forecasting.drivers`). The same regressors and events reach the
    per-series ``challenger`` (prophet by default in the nightly), tried where they matter and the series
    is worth a fit, and taking the series tried only where their pooled rolling-origin backtest beats
    the vectorised choice (see :func:`models.forecasting.challenger.challenge`).

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
        regressors: Numeric known-regressor columns of ``history`` (e.g. ``promo``, ``price``, a SNAP or
            display flag, markdown amounts); ``NaN`` is the regular level. An ``event`` column (event
            label or ``None``), when present, names holidays and events. ``promo``, when listed, must
            be a discount fraction in [0, 1).
        future: ``unique_id, ds`` and the same regressor (and ``event``) columns for every step of
            the horizon: what is planned, such as the published promotion calendar. A step without a
            row, or with a missing value, is at the regular level; ``None``: every step is.
        challenger: A :class:`~models.forecasting.challenger.Challenger` (any :class:`SeriesChallenger`),
            or ``None`` for the vectorised selection alone.

    Returns:
        A :class:`ForecastResult`. Series are sorted by ``unique_id``, forecasts by ``unique_id, step``.

    Raises:
        ValueError: if ``history`` lacks a column, has a wrong dtype or duplicate ``(unique_id, ds)``
            rows, or an argument is out of range. Problems of a single series never raise; they show
            up as a ``fallback_reason``.
    """
    min_history = check_arguments(horizon, season_length, backtest_windows, freq, min_history)
    qlevels = quantile_levels(quantiles)
    cols = validate_history(history)
    validate_regressors(history, future, regressors)
    regressors = list(regressors)
    with_drivers = driver_columns(history, regressors)
    if len(cols.y) == 0:
        extra = list(driver_names(history, regressors)) if with_drivers else []
        return empty_result([name for _, name in qlevels], extra)

    # Over- and underflow in one series must not reach the caller as warnings or errors: every
    # non-finite number is caught below and turned into a fallback for that series only.
    windows = FREQUENCIES[freq]
    token = ACTIVE_WINDOWS.set(windows)
    try:
        with np.errstate(all="ignore"):
            Y, grid = pack_grid(cols, windows.period_days)
            fit = None
            if with_drivers:
                fit = fit_drivers(history, grid, Y, regressors, future, horizon=int(horizon),
                                  season_length=int(season_length), period_days=windows.period_days,
                                  backtest_windows=backtest_windows)
                Y = Y / fit.history
            packed = _packed(Y, grid.ids, grid.origin)
            result = _forecast_packed(packed, cols.unique_id.dtype, int(horizon), int(season_length), qlevels,
                                      backtest_windows, min_history, fit)
    finally:
        ACTIVE_WINDOWS.reset(token)
    if challenger is None:
        return result
    return challenger.challenge(history, result, future, horizon=int(horizon), season_length=int(season_length),
                                freq=freq, regressors=tuple(regressors))


@dataclass(frozen=True)
class _Packed:
    """The packed history and what it says about each series (see :func:`~models.forecasting.inputs.pack`)."""

    Y: np.ndarray
    ids: np.ndarray
    origin: pd.Timestamp
    n_obs: np.ndarray
    series_max: np.ndarray
    demand_class: np.ndarray
    mean_daily: np.ndarray


@dataclass(frozen=True)
class _Choice:
    """Each series' outcome: the candidate chosen, the model used, its MASE, its mean and any fallback reason."""

    best: np.ndarray
    model: np.ndarray
    mase: np.ndarray
    mean: np.ndarray
    reason: np.ndarray

    @property
    def fallback(self) -> np.ndarray:
        """Series the fallback rule applies to: those with a reason."""
        return self.reason != None  # noqa: E711 - elementwise on an object array


def _forecast_packed(
    packed: _Packed,
    id_dtype: object,
    horizon: int,
    m: int,
    qlevels: list[tuple[float, str]],
    backtest_windows: int,
    min_history: int,
    fit: DriverFit | None,
) -> ForecastResult:
    """Body of :func:`forecast` once the history is packed (and divided by its drivers' multiplier)."""
    names = list(CANDIDATES)
    eligible = eligibility(packed.demand_class, names)
    bt = backtest_candidates(packed.Y, horizon, m, eligible, backtest_windows, names)
    best, chosen_mase = select(bt.mase, packed.demand_class, names)
    mean = chosen_forecast(bt.point, best, names, horizon)
    chosen_name = np.array(names, dtype=object)[best]
    reason = _fallback_reasons(packed, bt, eligible, names, mean, chosen_name, min_history)
    choice = _Choice(best, chosen_name, chosen_mase, mean, reason)
    choice, recent_std, rmse = _fall_back(packed.Y, choice, bt, eligible, names)
    rows = np.arange(len(best))
    step_rmse, n_res = bt.rmse[rows, best], bt.n_res[rows, best]
    spread = forecast_spread(step_rmse, n_res, choice.fallback, recent_std, horizon, m)
    multiplier = None if fit is None else fit.future
    scored = (n_res >= MIN_RESIDUALS) & np.isfinite(step_rmse) & ~choice.fallback
    sigma_cum = cumulative_sigma(chosen_residuals(bt, best, names, horizon), step_rmse, scored, recent_std,
                                 packed.demand_class, multiplier)
    mean = choice.mean if multiplier is None else choice.mean * multiplier
    qcols = quantile_columns(choice.mean, spread, qlevels)
    if multiplier is not None:
        qcols = {col: q * multiplier for col, q in qcols.items()}
    facts = SeriesFacts(packed.ids, choice.model, choice.reason, choice.mase, rmse, packed.n_obs,
                        packed.demand_class, packed.mean_daily, {} if fit is None else fit.series_columns())
    values = {"mean": mean, **qcols, "sigma_cum": sigma_cum}
    return build_result(facts, id_dtype, packed.origin, active_windows().period_days, values, bt.mase, names)


def _packed(Y: np.ndarray, ids: np.ndarray, origin: pd.Timestamp) -> _Packed:
    """Measure each series of the packed history ``Y``."""
    obs = np.isfinite(Y)
    n_obs = obs.sum(axis=1)
    with np.errstate(invalid="ignore"):
        series_max = np.where(obs, Y, -np.inf).max(axis=1)
    demand_class = classify(Y)
    recent = tail(Y, active_windows().recent)
    mean_daily = masked_mean(recent, np.isfinite(recent))
    mean_daily = np.where(np.isfinite(mean_daily), mean_daily, np.nan)
    return _Packed(Y, ids, origin, n_obs, series_max, demand_class, mean_daily)


def _fallback_reasons(packed: _Packed, bt: Backtest, eligible: np.ndarray, names: list[str], mean: np.ndarray,
                      chosen_name: np.ndarray, min_history: int) -> np.ndarray:
    """Why each series gets the fallback (``None`` where it does not).

    Reasons are checked in order of precedence; the first that applies is reported.
    """
    n_obs, series_max = packed.n_obs, packed.series_max
    reason = np.full(len(n_obs), None, dtype=object)

    def _flag(rows: np.ndarray, text: Callable[[int], str]) -> None:
        for i in np.flatnonzero(rows & (reason == None)):  # noqa: E711 - elementwise on an object array
            reason[i] = text(i)

    _flag(n_obs == 0, lambda i: "no observed days (all censored or missing)")
    _flag(n_obs < min_history, lambda i: f"short history: {n_obs[i]} observed days < min_history {min_history}")
    _flag(series_max <= 0, lambda i: "all-zero history")
    for k, name in enumerate(names):
        if name in bt.errors:
            msg = bt.errors[name]
            _flag(eligible[:, k], lambda i, msg=msg: msg)
    with np.errstate(invalid="ignore"):
        nonfinite = ~np.isfinite(mean).all(axis=1)
        peak = np.where(np.isfinite(mean), mean, 0.0).max(axis=1)
        absurd = ~nonfinite & (peak > ABSURD_FACTOR * series_max)
    _flag(nonfinite, lambda i: f"{chosen_name[i]} produced a non-finite forecast")
    _flag(
        absurd,
        lambda i: f"{chosen_name[i]} forecast {peak[i]:.4g} is more than {ABSURD_FACTOR:g}x "
        f"the series max {series_max[i]:.4g}",
    )
    return reason


def _fall_back(Y: np.ndarray, choice: _Choice, bt: Backtest, eligible: np.ndarray,
               names: list[str]) -> tuple[_Choice, np.ndarray, np.ndarray]:
    """``choice`` with the fallback rule applied where it has a reason, the recent spread of demand, and
    the backtest RMSE of the model each series reports.

    A fallback series forecasts the recent mean of its observed days (``fallback_moving_average``), or
    zero (``fallback_zero``) when it has none, and reports the ``moving_average`` backtest MASE and RMSE.
    """
    fallback = choice.fallback
    recent_mean, recent_std = recent_mean_std(Y)
    fb_level = np.where(np.isfinite(recent_mean), recent_mean, 0.0)
    model_name = choice.model.copy()
    model_name[fallback] = np.where(fb_level[fallback] > 0, FALLBACK_MOVING_AVERAGE, FALLBACK_ZERO)
    mean = choice.mean.copy()
    mean[fallback] = fb_level[fallback, None]
    ma_k = names.index("moving_average")
    rows = np.arange(len(choice.best))
    chosen_mase = np.where(fallback, np.where(eligible[:, ma_k], bt.mase[:, ma_k], np.nan), choice.mase)
    scored = np.isfinite(chosen_mase)
    rmse = np.where(fallback, bt.rmse[:, ma_k], bt.rmse[rows, choice.best])
    rmse = np.where(scored, rmse, np.nan)
    mean = np.maximum(mean, 0.0)
    return replace(choice, model=model_name, mase=chosen_mase, mean=mean), recent_std, rmse
