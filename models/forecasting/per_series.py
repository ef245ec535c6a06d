"""Per-series models a challenger can fit (prophet with regressors, statsmodels exponential smoothing),
their registry, and the guards around one fit: a timeout, usable regressors, a sanity check of the result.

:data:`HEAVY_MODELS` is the registry :class:`models.forecasting.challenger.Challenger` looks models up in;
tests and deployments may register others. Each model's library is imported only when it fits, and a
library that cannot be loaded raises :class:`HeavyModelUnavailable`, which the challenger treats as a
model-wide outage rather than a failure of one series.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from models.forecasting.core import ABSURD_FACTOR

__all__ = ["HEAVY_MODELS", "HeavyFit", "HeavyModel", "HeavyModelUnavailable", "run_with_timeout",
           "unusable_reason", "usable_regressors"]

#: ``(train, future, season_length, holidays) -> mean[len(future)]``: ``train`` holds ``ds, y`` and the
#: regressor columns, ``future`` holds ``ds`` and the same regressors, ``holidays`` is prophet-shaped
#: (``holiday, ds``) or ``None``.
HeavyFit = Callable[[pd.DataFrame, pd.DataFrame, int, pd.DataFrame | None], np.ndarray]


class HeavyModelUnavailable(RuntimeError):
    """The model's library cannot be loaded: every series keeps its vectorised forecast."""


@dataclass(frozen=True)
class HeavyModel:
    """A per-series model and whether it uses known regressors and events."""

    fit: HeavyFit
    uses_regressors: bool


def _statsmodels_ets(train, future, season_length, holidays):  # noqa: ANN001, ARG001
    try:
        from statsmodels.tsa.holtwinters import ExponentialSmoothing
    except ImportError as exc:  # pragma: no cover - statsmodels is pinned
        raise HeavyModelUnavailable(f"statsmodels cannot be imported: {exc}") from exc
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = ExponentialSmoothing(
            train["y"].to_numpy(dtype=np.float64), trend="add", damped_trend=True, seasonal="add",
            seasonal_periods=season_length, initialization_method="estimated",
        ).fit()
    return np.asarray(fit.forecast(len(future)), dtype=np.float64)


def _warnings_only(record: logging.LogRecord) -> bool:
    return record.levelno >= logging.WARNING


_QUIET = _warnings_only


def _prophet(train, future, season_length, holidays):  # noqa: ANN001
    # prophet logs an ERROR at import when plotly (plots only) is absent; forecasts need no plots.
    logging.getLogger("prophet.plot").setLevel(logging.CRITICAL)
    try:
        from prophet import Prophet
    except Exception as exc:  # noqa: BLE001 - prophet fails to load in many ways (cmdstan, plotly, numpy ABI)
        raise HeavyModelUnavailable(f"prophet cannot be loaded: {type(exc).__name__}: {exc}") from exc
    for name in ("prophet", "cmdstanpy"):
        # cmdstanpy resets its own level on every fit; a filter holds where a level does not.
        quiet = logging.getLogger(name)
        if _QUIET not in quiet.filters:
            quiet.addFilter(_QUIET)
    model = Prophet(weekly_seasonality=season_length == 7, yearly_seasonality="auto", daily_seasonality=False,
                    holidays=holidays, uncertainty_samples=0)
    regressors = [c for c in train.columns if c not in ("ds", "y")]
    for col in regressors:
        model.add_regressor(col)
    model.fit(train)
    return np.asarray(model.predict(future[["ds", *regressors]])["yhat"], dtype=np.float64)


#: Per-series models by name; tests and deployments may register others.
HEAVY_MODELS: dict[str, HeavyModel] = {
    "statsmodels_ets": HeavyModel(_statsmodels_ets, uses_regressors=False),
    "prophet": HeavyModel(_prophet, uses_regressors=True),
}


def run_with_timeout(fn: Callable[[], np.ndarray], timeout_s: float) -> np.ndarray:
    """Run ``fn`` in a daemon thread; raise ``TimeoutError`` when it is not done in ``timeout_s``.

    A fit that overruns is abandoned, not killed (Python cannot stop a thread): it finishes in the
    background and its result is dropped, which is why the total work is also bounded by ``budget_s``.
    """
    box: dict[str, object] = {}

    def target() -> None:
        try:
            box["value"] = fn()
        except BaseException as exc:  # noqa: BLE001 - handed back to the caller below
            box["error"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(timeout_s)
    if thread.is_alive():
        raise TimeoutError(f"no result after {timeout_s:g}s")
    if "error" in box:
        raise box["error"]  # type: ignore[misc]
    return box["value"]  # type: ignore[return-value]


def unusable_reason(mean: np.ndarray, horizon: int, peak: float, model: str) -> str | None:
    """Why a fitted forecast cannot be used, or ``None``."""
    mean = np.asarray(mean, dtype=np.float64)
    if mean.shape != (horizon,) or not np.isfinite(mean).all():
        return f"{model} produced a non-finite or mis-shaped forecast"
    if mean.max() > ABSURD_FACTOR * max(peak, 1e-9):
        return f"{model} forecast {mean.max():.4g} is more than {ABSURD_FACTOR:g}x the series max {peak:.4g}"
    return None


def usable_regressors(train: pd.DataFrame, regressors: Sequence[str]) -> list[str]:
    """Regressors that vary over the training rows and are not a linear copy of one already kept.

    A constant column teaches nothing, and with list prices fixed ``price`` is ``list * (1 - promo)``:
    fitting both would split one effect between two collinear terms.
    """
    kept: list[str] = []
    for col in regressors:
        values = train[col].to_numpy(dtype=np.float64)
        if not np.isfinite(values).all() or np.nanstd(values) == 0:
            continue
        if any(abs(np.corrcoef(values, train[k].to_numpy(dtype=np.float64))[0, 1]) > 0.99 for k in kept):
            continue
        kept.append(col)
    return kept

