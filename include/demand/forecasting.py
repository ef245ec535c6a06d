"""The nightly's demand forecast of one shard, the combination of shards, and the one-step expectation
that demand anomalies are scored against.

Frames in, frames out: reading and writing partitions is the stage adapters' business.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

import pandas as pd

from include.demand.regressors import REGRESSORS, known_regressors

log = logging.getLogger(__name__)

ANOMALY_COLUMNS = ["unique_id", "ds", "anomaly_type", "severity", "explanation"]


def forecast_shard(demand: pd.DataFrame, day: dt.date, horizon: int, *, promotions: pd.DataFrame | None,
                   items: pd.DataFrame | None, challenger: Any = None, drifting: dict[str, str] | None = None):
    """Forecast the series of one shard; one bad series falls back, never fails the shard.

    The vectorised selection forecasts every series; the challenger (prophet with promotion, price and
    event regressors) then takes the valuable series where it wins the backtest. The horizon's
    regressors are the promotions published by ``day`` and the item master's list prices. Demand
    classes in forecast drift (``drifting``) are forecast by the deterministic rule.

    Args:
        demand: the shard's curated demand rows (``unique_id, location_id, sku, ds, y, censored`` and
            the known regressors when the partition has them).
        day: the run's logical date; the horizon starts the day after.
        horizon: days to forecast.
        promotions: curated promotion calendar as published by ``day`` (None: no promotion planned).
        items: curated item master (list prices).
        challenger: a :class:`models.forecasting.Challenger`, or None.
        drifting: demand class -> reason, from the forecast monitoring.

    Returns:
        The :class:`models.forecasting.ForecastResult`.
    """
    from models.forecasting import forecast
    from models.forecasting.monitoring import fall_back_for_drift

    # Partitions written before regressors existed have none: the challenger then sees only y.
    regressors = [c for c in REGRESSORS if c in demand.columns]
    known = [*regressors, "event"] if "event" in demand.columns else regressors
    history = demand[["unique_id", "ds", "y", "censored", *known]]
    keys = demand[["unique_id", "location_id", "sku"]].drop_duplicates("unique_id")
    days = pd.date_range(day + dt.timedelta(days=1), periods=horizon, freq="D")
    future = known_regressors(keys, days, promotions, items)
    result = forecast(history, horizon, regressors=regressors, future=future[["unique_id", "ds", *known]],
                      challenger=challenger)
    return fall_back_for_drift(result, history, drifting) if drifting else result


def shard_summary(shard: int, result, challenger: Any) -> dict[str, Any]:
    """What one shard's forecast did: series, fallbacks, models, the challenger's decision."""
    from models.forecasting import challenger_counts

    series = result.series
    return {"shard": shard, "series": int(len(series)), "fallback": int(series["fallback_reason"].notna().sum()),
            "models": series["model"].value_counts().to_dict(),
            "challenger": None if challenger is None else {
                "model": challenger.model, **challenger_counts(series, challenger.model),
                "warnings": result.notes, "decision": result.decision}}


def combined_summary(series: pd.DataFrame, shard_summaries: list[dict[str, Any]]) -> dict[str, Any]:
    """The night's forecast in one summary, from the combined series table and the shards' summaries.

    Logs a warning when every series fell back, and each challenger warning.
    """
    challengers = [s["challenger"] for s in shard_summaries if s.get("challenger")]
    summary = {
        "series": int(len(series)), "shards": len(shard_summaries),
        "fallback_series": int(series["fallback_reason"].notna().sum()) if len(series) else 0,
        "models": series["model"].value_counts().to_dict() if len(series) else {},
        "challenger": None if not challengers else {
            "model": challengers[0]["model"], "tried": sum(c["tried"] for c in challengers),
            "taken": sum(c["taken"] for c in challengers),
            "warnings": sorted({w for c in challengers for w in c["warnings"]}),
            "decisions": [c["decision"] for c in challengers if c.get("decision")]},
    }
    if len(series) and summary["fallback_series"] == len(series):
        log.warning("every series fell back to the deterministic rule: check the model stage")
    for warning in (summary["challenger"] or {}).get("warnings", []):
        log.warning("forecast challenger: %s", warning)
    return summary


def demand_anomalies(demand: pd.DataFrame, day: dt.date) -> pd.DataFrame:
    """Today's demand anomalies, scored against a one-step forecast from the history up to yesterday.

    Every night (the first one included) has an expectation to compare with, made by the same models.
    """
    from models.anomaly import detect_demand_anomalies
    from models.forecasting import forecast

    today = pd.Timestamp(day)
    before = demand[demand["ds"] < today][["unique_id", "ds", "y", "censored"]]
    actual = demand[(demand["ds"] == today) & ~demand["censored"]][["unique_id", "ds", "y"]]
    if not len(before) or not len(actual):
        return pd.DataFrame(columns=ANOMALY_COLUMNS)
    expected = forecast(before, 1, quantiles=(0.05, 0.5, 0.8, 0.95)).forecasts
    return detect_demand_anomalies(actual, expected.assign(ds=pd.to_datetime(expected["ds"])))


def step_one_forecasts(forecasts: list[pd.DataFrame], day: dt.date) -> pd.DataFrame:
    """The first forecast day of each earlier night's forecast up to ``day``: what KPIs score."""
    past = []
    for frame in forecasts:
        f = frame.assign(ds=pd.to_datetime(frame["ds"]))
        past.append(f[(f["step"] == 1) & (f["ds"] <= pd.Timestamp(day))][["unique_id", "ds", "mean"]])
    return pd.concat(past, ignore_index=True) if past else pd.DataFrame(columns=["unique_id", "ds", "mean"])


__all__ = ["combined_summary", "demand_anomalies", "forecast_shard", "shard_summary", "step_one_forecasts"]
