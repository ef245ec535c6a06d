"""Demand forecasting: vectorised candidates, per-series selection by backtest, fallback rule."""

from models.forecasting.core import (
    CANDIDATES,
    DEMAND_CLASSES,
    FALLBACK_MOVING_AVERAGE,
    FALLBACK_ZERO,
    ForecastResult,
    forecast,
)

__all__ = [
    "CANDIDATES",
    "DEMAND_CLASSES",
    "FALLBACK_MOVING_AVERAGE",
    "FALLBACK_ZERO",
    "ForecastResult",
    "forecast",
]
