"""Demand forecasting: vectorised candidates, per-series selection by backtest, fallback rule.

The optional per-series models live in :mod:`models.forecasting.heavy` (imported on demand).
"""

from models.forecasting.core import (
    CANDIDATES,
    DEMAND_CLASSES,
    FALLBACK_MOVING_AVERAGE,
    FALLBACK_ZERO,
    FREQUENCIES,
    ForecastResult,
    forecast,
)

__all__ = [
    "CANDIDATES",
    "DEMAND_CLASSES",
    "FALLBACK_MOVING_AVERAGE",
    "FALLBACK_ZERO",
    "FREQUENCIES",
    "ForecastResult",
    "forecast",
]
