"""Demand forecasting: vectorised candidates, per-series selection by backtest, fallback rule.

The per-series challengers (prophet with regressors, statsmodels) live in
:mod:`models.forecasting.challenger`, which depends on :mod:`models.forecasting.core` and never the other
way round. Their names are exported here but the module is loaded on first use, so importing the
vectorised core (``models.forecasting.core``) does not load it; the libraries the challengers need are
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
    from models.forecasting.challenger import (
        HEAVY_MODELS,
        Challenger,
        HeavyModel,
        HeavyModelUnavailable,
        challenge,
        challenger_counts,
    )

#: Names of :mod:`models.forecasting.challenger` exported here, loaded on first access.
_FROM_CHALLENGER = frozenset(
    {"HEAVY_MODELS", "Challenger", "HeavyModel", "HeavyModelUnavailable", "challenge", "challenger_counts"}
)

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
    """Load a challenger name from :mod:`models.forecasting.challenger` on first access (PEP 562)."""
    if name in _FROM_CHALLENGER:
        value = getattr(import_module("models.forecasting.challenger"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
