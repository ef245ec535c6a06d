"""Demand forecasting: vectorised candidates, per-series selection by backtest, fallback rule.

The per-series challengers (prophet with regressors, statsmodels) live in :mod:`models.forecasting.heavy`;
the libraries they need are imported only when a challenger runs.
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
from models.forecasting.heavy import Challenger

__all__ = [
    "CANDIDATES",
    "Challenger",
    "DEMAND_CLASSES",
    "FALLBACK_MOVING_AVERAGE",
    "FALLBACK_ZERO",
    "FREQUENCIES",
    "ForecastResult",
    "forecast",
]
