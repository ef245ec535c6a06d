"""Optional per-series models (statsmodels exponential smoothing, prophet with regressors) for the few
series worth their cost.

The vectorised :func:`models.forecasting.forecast` gives every series a forecast; :func:`refine`
then refits the top-value smooth series one at a time with a heavier model and keeps its forecast
only when it is sane. Off by default in the nightly: a statsmodels fit costs ~0.3 s and a prophet fit
~0.5 s per series against well under a millisecond for the vectorised path (see
``benchmarks/forecast_throughput.py``), so it pays only where regressors such as promotions and price
matter and the series carries enough value.

Failure isolation, per series: a fit that raises, exceeds ``timeout_s`` or returns non-finite or
absurd values keeps its vectorised forecast, and ``heavy_note`` says why. A model-wide outage (the
library cannot be imported) keeps every vectorised forecast and logs a warning; the run completes.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import replace

import numpy as np
import pandas as pd

from models.forecasting.core import ABSURD_FACTOR, ForecastResult

__all__ = ["HEAVY_MODELS", "HeavyModelUnavailable", "refine"]

log = logging.getLogger(__name__)

#: ``(y, ds, horizon, season_length, regressors, future_regressors) -> mean[horizon]``.
HeavyFit = Callable[[np.ndarray, pd.DatetimeIndex, int, int, pd.DataFrame | None, pd.DataFrame | None], np.ndarray]


class HeavyModelUnavailable(RuntimeError):
    """The model's library cannot be loaded: every series keeps its vectorised forecast."""


def _statsmodels_ets(y, ds, horizon, season_length, regressors, future):  # noqa: ANN001, ARG001
    try:
        from statsmodels.tsa.holtwinters import ExponentialSmoothing
    except ImportError as exc:  # pragma: no cover - statsmodels is pinned
        raise HeavyModelUnavailable(f"statsmodels cannot be imported: {exc}") from exc
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = ExponentialSmoothing(
            y, trend="add", damped_trend=True, seasonal="add", seasonal_periods=season_length,
            initialization_method="estimated",
        ).fit()
    return np.asarray(fit.forecast(horizon), dtype=np.float64)


def _prophet(y, ds, horizon, season_length, regressors, future):  # noqa: ANN001, ARG001
    try:
        from prophet import Prophet
    except Exception as exc:  # noqa: BLE001 - prophet fails to load in many ways (cmdstan, plotly, numpy ABI)
        raise HeavyModelUnavailable(f"prophet cannot be loaded: {type(exc).__name__}: {exc}") from exc
    for name in ("prophet", "cmdstanpy"):
        logging.getLogger(name).setLevel(logging.ERROR)
    model = Prophet(weekly_seasonality=season_length == 7, yearly_seasonality=True, daily_seasonality=False,
                    uncertainty_samples=0)
    frame = pd.DataFrame({"ds": ds, "y": y})
    if regressors is not None:
        for col in regressors.columns:
            model.add_regressor(col)
        frame = pd.concat([frame, regressors.reset_index(drop=True)], axis=1)
    model.fit(frame)
    step = ds[-1] - ds[-2] if len(ds) > 1 else pd.Timedelta(days=1)
    fut = pd.DataFrame({"ds": ds[-1] + step * np.arange(1, horizon + 1)})
    if future is not None:
        fut = pd.concat([fut, future.reset_index(drop=True)], axis=1)
    return np.asarray(model.predict(fut)["yhat"], dtype=np.float64)


#: Heavy models by name; tests and deployments may register others.
HEAVY_MODELS: dict[str, HeavyFit] = {"statsmodels_ets": _statsmodels_ets, "prophet": _prophet}


def _run_with_timeout(fn: Callable[[], np.ndarray], timeout_s: float) -> np.ndarray:
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


def refine(
    history: pd.DataFrame,
    result: ForecastResult,
    *,
    model: str = "statsmodels_ets",
    top_n: int = 50,
    season_length: int = 7,
    value: pd.Series | None = None,
    regressors: Sequence[str] = (),
    future_regressors: pd.DataFrame | None = None,
    timeout_s: float = 10.0,
    budget_s: float = 300.0,
) -> ForecastResult:
    """Refit the top-value smooth series with a per-series model where it gives a sane forecast.

    Args:
        history: The long frame given to :func:`forecast` (``unique_id, ds, y``, optional
            ``censored``), plus one column per name in ``regressors``.
        result: What :func:`forecast` returned for ``history``.
        model: A key of :data:`HEAVY_MODELS` (``statsmodels_ets`` or ``prophet``).
        top_n: Most series refitted, by value (``value`` per ``unique_id``, e.g. unit margin times
            ``mean_daily``; default ``mean_daily``). Only ``smooth`` series without a fallback qualify.
        season_length: Season in periods.
        regressors: Known regressor columns (price, promotion, holiday) for models that use them.
        future_regressors: ``unique_id, ds`` and the ``regressors`` over the horizon; required with
            ``regressors``.
        timeout_s: Longest a single fit may take before the series keeps its vectorised forecast.
        budget_s: Total time for all fits; series not reached keep their vectorised forecast.

    Returns:
        A new :class:`ForecastResult`: refitted series get the heavy model's mean (quantiles moved by
        the same amount, spread kept) and ``model`` set to ``model``; ``series`` gains ``heavy_note``
        (``None``, or why a selected series kept its vectorised forecast).

    Raises:
        ValueError: on an unknown model or regressors without their future values.
    """
    if model not in HEAVY_MODELS:
        raise ValueError(f"model must be one of {sorted(HEAVY_MODELS)}, got {model!r}")
    missing = [c for c in regressors if c not in history.columns]
    if missing:
        raise ValueError(f"history is missing regressor column(s): {', '.join(missing)}")
    if regressors and future_regressors is None:
        raise ValueError("future_regressors is required when regressors are given")

    series = result.series.copy()
    series["heavy_note"] = pd.Series([None] * len(series), dtype=object)
    forecasts = result.forecasts.copy()
    eligible = series[(series["demand_class"] == "smooth") & series["fallback_reason"].isna()]
    worth = eligible["mean_daily"] if value is None else eligible["unique_id"].map(value).fillna(0.0)
    chosen = eligible.assign(_worth=worth.to_numpy()).nlargest(top_n, "_worth")["unique_id"].tolist()
    if not chosen:
        return replace(result, forecasts=forecasts, series=series)

    fit = HEAVY_MODELS[model]
    qcols = [c for c in forecasts.columns if c.startswith("q") and c[1:].isdigit()]
    by_id = history[history["unique_id"].isin(chosen)].sort_values(["unique_id", "ds"])
    groups = dict(tuple(by_id.groupby("unique_id", sort=False)))
    deadline = time.monotonic() + budget_s
    row_of = {uid: i for i, uid in enumerate(series["unique_id"])}
    notes: dict[str, str] = {}
    refitted = 0
    for uid in chosen:
        if time.monotonic() > deadline:
            notes[uid] = f"{model} skipped: budget of {budget_s:g}s used up"
            continue
        group = groups.get(uid)
        mask = forecasts["unique_id"] == uid
        horizon = int(mask.sum())
        if group is None or horizon == 0:
            continue
        if "censored" in group.columns:
            group = group[~group["censored"].astype(bool)]
        y = group["y"].to_numpy(dtype=np.float64).clip(min=0.0)
        ds = pd.DatetimeIndex(group["ds"])
        reg = group[list(regressors)] if regressors else None
        fut = None
        if regressors:
            fut = future_regressors[future_regressors["unique_id"] == uid].sort_values("ds")[list(regressors)]
            if len(fut) != horizon:
                notes[uid] = f"{model} skipped: {len(fut)} future regressor rows for {horizon} steps"
                continue
        try:
            mean = _run_with_timeout(lambda y=y, ds=ds, reg=reg, fut=fut, h=horizon: fit(y, ds, h, season_length, reg, fut),
                                     timeout_s)
        except HeavyModelUnavailable as exc:
            log.warning("heavy model %s is unavailable, every series keeps its vectorised forecast: %s", model, exc)
            for other in chosen:
                notes.setdefault(other, f"{model} unavailable: {exc}")
            break
        except Exception as exc:  # noqa: BLE001 - one bad series keeps its vectorised forecast
            notes[uid] = f"{model} failed: {type(exc).__name__}: {exc}"
            continue
        mean = np.asarray(mean, dtype=np.float64)
        if mean.shape != (horizon,) or not np.isfinite(mean).all():
            notes[uid] = f"{model} produced a non-finite or mis-shaped forecast"
            continue
        peak = float(y.max()) if len(y) else 0.0
        if mean.max() > ABSURD_FACTOR * max(peak, 1e-9):
            notes[uid] = f"{model} forecast {mean.max():.4g} is more than {ABSURD_FACTOR:g}x the series max {peak:.4g}"
            continue
        mean = np.maximum(mean, 0.0)
        shift = mean - forecasts.loc[mask, "mean"].to_numpy()
        forecasts.loc[mask, "mean"] = mean
        running = np.zeros(horizon)
        for col in qcols:
            running = np.maximum(running, np.maximum(forecasts.loc[mask, col].to_numpy() + shift, 0.0))
            forecasts.loc[mask, col] = running
        series.loc[row_of[uid], "model"] = model
        refitted += 1
    for uid, note in notes.items():
        series.loc[row_of[uid], "heavy_note"] = note
    log.info("heavy model %s: %d of %d selected series refitted, %d kept their vectorised forecast",
             model, refitted, len(chosen), len(notes))
    return replace(result, forecasts=forecasts, series=series)
