"""Demand forecasting: vectorised candidates, per-series selection by backtest, fallback rule.

The per-series challengers live in :mod:`models.forecasting.challenger` (which series, the backtest, the
pooled decision) and :mod:`models.forecasting.per_series` (the models, prophet with regressors and
statsmodels, and their registry); both depend on :mod:`models.forecasting.core` and never the other way
round. Their names are exported here but those modules are loaded on first use, so importing the
vectorised core (``models.forecasting.core``) does not load them; the libraries the challengers need are
imported only when one runs.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from models.forecasting.core import (
    CANDIDATES,
    DEMAND_CLASSES,
    FALLBACK_MOVING_AVERAGE,
    FALLBACK_ZERO,
    FREQUENCIES,
    ForecastResult,
    SeriesChallenger,
    forecast,
)

if TYPE_CHECKING:
    from models.forecasting.challenger import Challenger, challenge, challenger_counts
    from models.forecasting.per_series import HEAVY_MODELS, HeavyModel, HeavyModelUnavailable

#: Names exported here from the challenger modules, by the module that loads on first access.
_LAZY: dict[str, str] = {
    **dict.fromkeys(("Challenger", "challenge", "challenger_counts"), "models.forecasting.challenger"),
    **dict.fromkeys(("HEAVY_MODELS", "HeavyModel", "HeavyModelUnavailable"), "models.forecasting.per_series"),
}

__all__ = [
    "CANDIDATES",
    "Challenger",
    "DEMAND_CLASSES",
    "FALLBACK_MOVING_AVERAGE",
    "FALLBACK_ZERO",
    "FREQUENCIES",
    "ForecastResult",
    "HEAVY_MODELS",
    "HeavyModel",
    "HeavyModelUnavailable",
    "SeriesChallenger",
    "challenge",
    "challenger_counts",
    "forecast",
]


def __getattr__(name: str) -> Any:
    """Load a challenger name from the module that holds it on first access (PEP 562)."""
    if name in _LAZY:
        value = getattr(import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
