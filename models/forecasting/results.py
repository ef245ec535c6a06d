"""The result of :func:`models.forecasting.forecast`: its documented frames, built from the per-series
arrays of the vectorised path, and the same columns without rows for an empty history.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

__all__ = ["ForecastResult", "build_result", "empty_result"]


@dataclass
class ForecastResult:
    """Forecasts and a per-series record of how they were made.

    Attributes:
        forecasts: Long frame, one row per series and step: ``unique_id``, ``ds`` (forecast day),
            ``step`` (1..horizon), ``mean``, one column per quantile named ``q{int(q * 100)}``
            (``q50``, ``q80``, ``q95`` by default) and ``sigma_cum``. All values are finite and
            non-negative, and the quantiles monotone across levels. ``sigma_cum`` at step ``k`` is the
            standard deviation of the error of the forecast summed over steps ``1..k`` (the demand of a
            protection interval of ``k`` periods): the chosen model's backtest step RMSE times
            ``sqrt(k)`` times a growth factor ``g(k) >= 1`` pooled over the series of the same demand
            class in the call, measured from the rolling-origin backtest residuals (errors that stay
            on one side, as when a level is off, widen it faster than ``sqrt(k)``). Series without
            enough residuals (fallbacks) use their recent spread of demand in place of the step RMSE.
            It is non-decreasing in ``k`` and scales with the driver multiplier of each step, like the
            quantiles (see :func:`models.forecasting.quantiles.cumulative_sigma`).
        series: One row per series: ``unique_id``, ``model`` (the model used, ``fallback_*`` when the
            fallback rule applied), ``fallback_reason`` (``None`` or why the fallback was used),
            ``backtest_mase`` (``NaN`` when not computed), ``backtest_rmse`` (step RMSE of the same
            model's backtest, in units of the driver-free demand; ``NaN`` when not computed), ``n_obs``
            (observed, uncensored days), ``demand_class`` and ``mean_daily`` (mean observed demand
            over the last year, ``NaN`` when there is none). With known drivers (regressors or an
            ``event`` column) also ``coef_<regressor>`` per declared regressor (log-demand
            coefficient; ``NaN`` when the regressor was left out), ``coef_event`` and, with a ``promo``
            regressor, ``promo_elasticity`` (see :mod:`models.forecasting.drivers`).
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


@dataclass(frozen=True)
class SeriesFacts:
    """Per-series arrays of the result's ``series`` frame, in the order of ``ids``."""

    ids: np.ndarray
    model: np.ndarray
    reason: np.ndarray
    mase: np.ndarray
    rmse: np.ndarray
    n_obs: np.ndarray
    demand_class: np.ndarray
    mean_daily: np.ndarray
    extra: dict[str, np.ndarray] = field(default_factory=dict)


def build_result(facts: SeriesFacts, id_dtype: object, origin: pd.Timestamp, period_days: int,
                 values: dict[str, np.ndarray], mase: np.ndarray, names: list[str]) -> ForecastResult:
    """The documented frames of :class:`ForecastResult` from the per-series arrays.

    Args:
        facts: What the ``series`` frame says about each series.
        id_dtype: dtype of the caller's ``unique_id`` column.
        origin: Forecast origin (last period of the history).
        period_days: Days per period.
        values: ``[n, horizon]`` forecast columns by name (``mean``, quantiles, ``sigma_cum``), in order.
        mase: ``[n, candidates]`` backtest MASE of every candidate.
        names: Candidate names, the columns of ``mase``.
    """
    n = len(facts.ids)
    horizon = values["mean"].shape[1]
    steps = np.arange(1, horizon + 1)
    # Build the id column once in the input's string dtype and repeat it by position: converting a
    # repeated object array would re-infer the dtype of every row.
    id_col = pd.Series(facts.ids).astype(id_dtype).array
    forecasts = pd.DataFrame(
        {
            "unique_id": id_col.take(np.repeat(np.arange(n), horizon)),
            "ds": np.tile(origin + pd.to_timedelta(steps * period_days, unit="D"), n),
            "step": np.tile(steps, n),
            **{col: v.ravel() for col, v in values.items()},
        }
    )
    series = pd.DataFrame(
        {
            "unique_id": id_col,
            "model": pd.Series(facts.model, dtype=object),
            "fallback_reason": pd.Series(facts.reason, dtype=object),
            "backtest_mase": facts.mase.astype(np.float64),
            "backtest_rmse": facts.rmse.astype(np.float64),
            "n_obs": facts.n_obs.astype(np.int64),
            "demand_class": pd.Series(facts.demand_class, dtype=object),
            "mean_daily": facts.mean_daily.astype(np.float64),
            **{col: v.astype(np.float64) for col, v in facts.extra.items()},
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


def empty_result(qcols: list[str], extra: list[str] = ()) -> ForecastResult:
    """Result with the documented columns and no rows (``extra``: the driver columns of the call)."""
    forecasts = pd.DataFrame(
        {
            "unique_id": pd.Series(dtype=object),
            "ds": pd.Series(dtype="datetime64[us]"),
            "step": pd.Series(dtype=np.int64),
            "mean": pd.Series(dtype=np.float64),
            **{c: pd.Series(dtype=np.float64) for c in qcols},
            "sigma_cum": pd.Series(dtype=np.float64),
        }
    )
    series = pd.DataFrame(
        {
            "unique_id": pd.Series(dtype=object),
            "model": pd.Series(dtype=object),
            "fallback_reason": pd.Series(dtype=object),
            "backtest_mase": pd.Series(dtype=np.float64),
            "backtest_rmse": pd.Series(dtype=np.float64),
            "n_obs": pd.Series(dtype=np.int64),
            "demand_class": pd.Series(dtype=object),
            "mean_daily": pd.Series(dtype=np.float64),
            **{c: pd.Series(dtype=np.float64) for c in extra},
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
