"""Forecast quantiles: the levels asked for, the spread of each series' forecast over the horizon, and the
quantile columns (normal approximation around the mean, clipped at zero, monotone across levels).
"""

from __future__ import annotations

from collections.abc import Sequence
from statistics import NormalDist

import numpy as np

__all__ = ["forecast_spread", "quantile_columns", "quantile_levels"]

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
