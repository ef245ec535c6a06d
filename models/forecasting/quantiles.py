"""Forecast quantiles: the levels asked for, the spread of each series' forecast over the horizon, the
quantile columns (normal approximation around the mean, clipped at zero, monotone across levels), and the
spread of the cumulative forecast error over the first ``k`` steps (:func:`cumulative_sigma`).
"""

from __future__ import annotations

from collections.abc import Sequence
from statistics import NormalDist

import numpy as np

__all__ = ["cumulative_growth", "cumulative_sigma", "forecast_spread", "quantile_columns", "quantile_levels"]

#: Fewest backtest residuals for a per-series error estimate; below it the recent spread of demand is used.
MIN_RESIDUALS = 7
#: Cap on how much the forecast spread can grow over the horizon (as a multiple of the first week's).
SPREAD_GROWTH_CAP = 2.0

_Z = NormalDist()


def quantile_levels(quantiles: Sequence[float]) -> list[tuple[float, str]]:
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


def forecast_spread(rmse: np.ndarray, n_res: np.ndarray, fallback: np.ndarray, recent_std: np.ndarray, horizon: int,
                    m: int) -> np.ndarray:
    """``[n, horizon]`` spread: the chosen model's pooled backtest RMSE, else the recent spread of demand.

    Args:
        rmse: Backtest RMSE of each series' chosen model.
        n_res: Residuals behind it.
        fallback: Series that got the fallback rule (their model's residuals do not apply).
        recent_std: Recent spread of each series' observed demand.
        horizon: Periods forecast.
        m: Season in periods.
    """
    enough = (n_res >= MIN_RESIDUALS) & np.isfinite(rmse) & ~fallback
    sigma = np.where(enough, rmse, recent_std)
    sigma = np.where(np.isfinite(sigma), sigma, 0.0)
    return sigma[:, None] * _spread_shape(horizon, m)[None, :]


def _spread_shape(horizon: int, m: int) -> np.ndarray:
    """Relative spread per step: ``sqrt(step / season)``, floored at 1, capped, averaging 1 over the horizon.

    Backtest residuals pooled over all steps give the spread of an average step; this redistributes it
    so that near steps are tighter than far ones without changing the overall width.
    """
    steps = np.arange(1, horizon + 1)
    g = np.clip(np.sqrt(steps / max(m, 1)), 1.0, SPREAD_GROWTH_CAP)
    return g / g.mean()


def quantile_columns(mean: np.ndarray, spread: np.ndarray, qlevels: list[tuple[float, str]]) -> dict[str, np.ndarray]:
    """Quantile columns by name: normal around ``mean``, clipped at zero and kept monotone across levels."""
    qcols: dict[str, np.ndarray] = {}
    running = np.zeros_like(mean)
    for level, col in qlevels:
        with np.errstate(invalid="ignore", over="ignore"):
            q = np.maximum(mean + _Z.inv_cdf(level) * spread, 0.0)
        q = np.where(np.isfinite(q), q, mean)
        running = np.maximum(running, q)
        qcols[col] = running.copy()
    return qcols


def cumulative_growth(residuals: np.ndarray, step_rmse: np.ndarray, scored: np.ndarray,
                      demand_class: np.ndarray) -> np.ndarray:
    """``[n, horizon]`` growth factor ``g(k) >= 1`` of each series' cumulative error, pooled by demand class.

    Per class, ``g(k)**2`` is the mean over its scored series and windows of the squared cumulative
    backtest error at step ``k`` over the mean of ``n_k`` times the step MSE (``n_k``: the scored periods
    among steps ``1..k``). Each series' errors are first divided by its own step RMSE, so one large series
    does not set the growth of the whole class. Errors that are independent from step to step give
    ``g = 1``; a level that is off (errors of one sign) gives ``g`` up to ``sqrt(k)``. ``g`` is floored at
    1 and made non-decreasing in ``k``; a class without scored series takes the growth pooled over all.

    Args:
        residuals: ``[n, windows, horizon]`` backtest errors of the chosen model (``NaN``: not scored).
        step_rmse: Step RMSE of the chosen model per series.
        scored: Series whose residuals count (enough of them, not a fallback).
        demand_class: Demand class per series.
    """
    n, _, horizon = residuals.shape
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        z = residuals / step_rmse[:, None, None]
        ok = np.isfinite(z) & scored[:, None, None] & (step_rmse > 0)[:, None, None]
        cum_sq = (np.cumsum(np.where(ok, z, 0.0), axis=2) ** 2).sum(axis=1)
        n_k = np.cumsum(ok, axis=2).sum(axis=1).astype(np.float64)

    def _growth(rows: np.ndarray) -> np.ndarray | None:
        den = n_k[rows].sum(axis=0)
        if not rows.any() or den[-1] <= 0:
            return None
        with np.errstate(invalid="ignore", divide="ignore"):
            g = np.sqrt(cum_sq[rows].sum(axis=0) / den)
        g = np.where(np.isfinite(g), g, 1.0)
        return np.maximum.accumulate(np.maximum(g, 1.0))

    overall = _growth(np.ones(n, dtype=bool))
    overall = np.ones(horizon) if overall is None else overall
    out = np.empty((n, horizon))
    for cls in np.unique(demand_class.astype(str)) if n else []:
        rows = demand_class.astype(str) == cls
        g = _growth(rows)
        out[rows] = overall if g is None else g
    return out


def cumulative_sigma(residuals: np.ndarray, step_rmse: np.ndarray, scored: np.ndarray, recent_std: np.ndarray,
                     demand_class: np.ndarray, multiplier: np.ndarray | None = None) -> np.ndarray:
    """``[n, horizon]`` standard deviation of the error of the forecast summed over steps ``1..k``.

    ``step_rmse * sqrt(k) * g(k)`` (see :func:`cumulative_growth`), the recent spread of demand in place
    of the step RMSE for series without enough residuals. With a driver ``multiplier`` per step, the
    ``sqrt(k)`` becomes ``sqrt(sum of the squared multipliers of steps 1..k)``: each step's error scales
    with its multiplier, as its quantiles do, and the result stays non-decreasing in ``k``.

    Args:
        residuals: ``[n, windows, horizon]`` backtest errors of the chosen model.
        step_rmse: Its step RMSE per series.
        scored: Series with enough residuals that are not a fallback.
        recent_std: Recent spread of each series' observed demand.
        demand_class: Demand class per series.
        multiplier: ``[n, horizon]`` driver multiplier of each step, or ``None`` (1 everywhere).
    """
    sigma = np.where(scored, step_rmse, recent_std)
    sigma = np.where(np.isfinite(sigma) & (sigma > 0), sigma, 0.0)
    growth = cumulative_growth(residuals, step_rmse, scored, demand_class)
    n, horizon = growth.shape
    weight = np.ones((n, horizon)) if multiplier is None else np.where(np.isfinite(multiplier), multiplier, 1.0)
    return sigma[:, None] * growth * np.sqrt(np.cumsum(weight**2, axis=1))
