"""Score earlier forecasts against what happened, by segment, and flag drift.

Pure functions over frames; storing the scores and alerting is the caller's business. Errors are
scaled per series, so a segment's figure is comparable across fast and slow sellers:

* MASE: mean absolute error over the scored days / the series' in-sample seasonal naive MAE.
* RMSSE: root mean squared error / the series' in-sample one-step naive RMSE (as in M5).
* bias: (sum of forecast - sum of actual) / sum of actual; positive means over-forecasting.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["SCORE_COLUMNS", "drift_table", "fall_back_for_drift", "flag_drift", "monitoring_summary",
           "score_origin", "score_forecasts", "segment_scores", "series_scores"]

log = logging.getLogger(__name__)

SCORE_COLUMNS = ["segment", "n_series", "n_points", "mase", "rmsse", "bias"]
_SERIES_SCORE_COLUMNS = ["segment", "unique_id", "mae", "mse", "fc", "act", "n", "mase", "rmsse"]


def _scales(history: pd.DataFrame, season_length: int) -> pd.DataFrame:
    """Per series: seasonal naive MAE and one-step naive MSE over ``history``."""
    wide = history.pivot_table(index="unique_id", columns="ds", values="y", aggfunc="sum").sort_index(axis=1)
    values = wide.to_numpy(dtype=np.float64)
    with np.errstate(invalid="ignore"):
        d1 = np.diff(values, axis=1)
        dm = values[:, season_length:] - values[:, :-season_length]

    def nanmean(a: np.ndarray) -> np.ndarray:
        ok = np.isfinite(a)
        return np.where(ok.any(axis=1), np.where(ok, a, 0.0).sum(axis=1) / np.maximum(ok.sum(axis=1), 1), np.nan)

    return pd.DataFrame(
        {"unique_id": wide.index, "mae_scale": nanmean(np.abs(dm)), "mse_scale": nanmean(d1**2)}
    )


def score_forecasts(
    forecasts: pd.DataFrame,
    actuals: pd.DataFrame,
    history: pd.DataFrame,
    *,
    segment_col: str | None = None,
    season_length: int = 7,
) -> pd.DataFrame:
    """MASE, RMSSE and bias of earlier forecasts per segment.

    Args:
        forecasts: ``unique_id, ds, mean`` (and ``segment_col`` unless ``actuals`` carries it).
        actuals: ``unique_id, ds, y`` for the days that have happened; days without an actual are not
            scored (a censored day should be left out by the caller).
        history: ``unique_id, ds, y`` before the forecast origin, for the per-series scales.
        segment_col: Column naming the segment (e.g. ``demand_class`` or ``model``), looked up in
            ``forecasts`` then ``actuals``; ``None`` scores everything as segment ``all``.
        season_length: Season of the MASE scale.

    Returns:
        ``SCORE_COLUMNS``, one row per segment, sorted. Series whose scale is zero (a flat history)
        count in ``bias`` but not in MASE and RMSSE.

    Raises:
        ValueError: naming a missing column.
    """
    return segment_scores(series_scores(forecasts, actuals, history, segment_col=segment_col,
                                        season_length=season_length))


def series_scores(
    forecasts: pd.DataFrame,
    actuals: pd.DataFrame,
    history: pd.DataFrame,
    *,
    segment_col: str | None = None,
    season_length: int = 7,
) -> pd.DataFrame:
    """The per-series half of :func:`score_forecasts` (same arguments).

    Series are scored on their own, so the series scores of disjoint shards concatenate into the night's
    and :func:`segment_scores` of the concatenation is :func:`score_forecasts` of the whole.

    Returns:
        ``segment, unique_id, mae, mse, fc, act, n, mase, rmsse``, one row per scored series.
    """
    for name, frame, cols in (
        ("forecasts", forecasts, ["unique_id", "ds", "mean"]),
        ("actuals", actuals, ["unique_id", "ds", "y"]),
        ("history", history, ["unique_id", "ds", "y"]),
    ):
        missing = [c for c in cols if c not in frame.columns]
        if missing:
            raise ValueError(f"{name} is missing required column(s): {', '.join(missing)}")
    joined = forecasts.merge(actuals, on=["unique_id", "ds"], how="inner", suffixes=("", "_actual"))
    if segment_col is None:
        joined = joined.assign(segment="all")
    elif segment_col in joined.columns:
        joined = joined.assign(segment=joined[segment_col].astype(str))
    else:
        raise ValueError(f"segment column {segment_col!r} is in neither forecasts nor actuals")
    if joined.empty:
        return pd.DataFrame({c: pd.Series(dtype=object if c in ("segment", "unique_id") else np.float64)
                             for c in _SERIES_SCORE_COLUMNS})
    joined = joined.assign(ae=(joined["mean"] - joined["y"]).abs(), se=(joined["mean"] - joined["y"]) ** 2)
    per = joined.groupby(["segment", "unique_id"]).agg(
        mae=("ae", "mean"), mse=("se", "mean"), fc=("mean", "sum"), act=("y", "sum"), n=("y", "size")
    ).reset_index()
    per = per.merge(_scales(history, season_length), on="unique_id", how="left")
    per["mase"] = per["mae"] / per["mae_scale"].where(per["mae_scale"] > 0)
    per["rmsse"] = np.sqrt(per["mse"] / per["mse_scale"].where(per["mse_scale"] > 0))
    return per[_SERIES_SCORE_COLUMNS]


def segment_scores(per: pd.DataFrame) -> pd.DataFrame:
    """``SCORE_COLUMNS`` per segment from :func:`series_scores` (of one shard or several concatenated)."""
    if per.empty:
        return pd.DataFrame({c: pd.Series(dtype=object if c == "segment" else np.float64) for c in SCORE_COLUMNS})
    seg = per.groupby("segment").agg(
        n_series=("unique_id", "nunique"), n_points=("n", "sum"), mase=("mase", "mean"), rmsse=("rmsse", "mean"),
        fc=("fc", "sum"), act=("act", "sum"),
    ).reset_index()
    seg["bias"] = (seg["fc"] - seg["act"]) / seg["act"].where(seg["act"] > 0)
    return seg[SCORE_COLUMNS].sort_values("segment").reset_index(drop=True)


def flag_drift(
    scores: pd.DataFrame,
    baseline: pd.DataFrame,
    *,
    metric: str = "mase",
    max_ratio: float = 1.25,
    max_abs_bias: float | None = 0.3,
) -> pd.DataFrame:
    """Segments whose error degraded past a threshold against their baseline.

    Args:
        scores: Output of :func:`score_forecasts` for the recent period.
        baseline: The same for a reference period (e.g. the previous 8 weeks).
        metric: ``mase`` or ``rmsse``.
        max_ratio: A segment drifts when ``metric`` exceeds ``max_ratio`` times its baseline.
        max_abs_bias: A segment also drifts when ``|bias|`` exceeds this (``None``: bias ignored).

    Returns:
        One row per segment: ``segment, metric, current, baseline, ratio, bias, drift, reason``.
        Segments without a baseline are reported with ``drift`` False and a reason.
    """
    if metric not in ("mase", "rmsse"):
        raise ValueError(f"metric must be 'mase' or 'rmsse', got {metric!r}")
    merged = scores[["segment", metric, "bias"]].merge(
        baseline[["segment", metric]].rename(columns={metric: "baseline"}), on="segment", how="left"
    ).rename(columns={metric: "current"})
    merged["ratio"] = merged["current"] / merged["baseline"].where(merged["baseline"] > 0)
    worse = merged["ratio"] > max_ratio
    biased = merged["bias"].abs() > max_abs_bias if max_abs_bias is not None else pd.Series(False, index=merged.index)
    merged["drift"] = (worse | biased).fillna(False).astype(bool)
    reasons = []
    for row in merged.itertuples():
        parts = []
        if pd.isna(row.baseline):
            parts.append("no baseline")
        elif row.ratio > max_ratio:
            parts.append(f"{metric} {row.current:.3g} is {row.ratio:.2f}x its baseline {row.baseline:.3g} (> {max_ratio:g}x)")
        if max_abs_bias is not None and pd.notna(row.bias) and abs(row.bias) > max_abs_bias:
            parts.append(f"bias {row.bias:+.0%} beyond +/-{max_abs_bias:.0%}")
        reasons.append("; ".join(parts) or None)
    merged["reason"] = reasons
    merged.insert(1, "metric", metric)
    return merged[["segment", "metric", "current", "baseline", "ratio", "bias", "drift", "reason"]]


def score_origin(forecasts: pd.DataFrame, series: pd.DataFrame, demand: pd.DataFrame, origin: dt.date,
                 horizon_days: int) -> pd.DataFrame:
    """Score the forecast made on ``origin`` per series over its first ``horizon_days`` days.

    Args:
        forecasts: that night's forecasts (``unique_id, ds, step, mean``).
        series: that night's series table (``unique_id, demand_class``).
        demand: curated demand up to today (``unique_id, ds, y, censored``), of every series scored or of
            one shard of them; censored days are not scored.
        origin: the night the forecast was made.
        horizon_days: how many forecast days to score.

    Returns:
        :func:`series_scores` with ``demand_class`` as the segment; :func:`segment_scores` of it (of all
        shards concatenated) scores the night per demand class.
    """
    actuals = demand[~demand["censored"]][["unique_id", "ds", "y"]]
    fc = forecasts[forecasts["step"] <= horizon_days].assign(ds=lambda f: pd.to_datetime(f["ds"]))
    history = demand[demand["ds"] <= pd.Timestamp(origin)][["unique_id", "ds", "y"]]
    return series_scores(fc.merge(series[["unique_id", "demand_class"]], on="unique_id"), actuals, history,
                         segment_col="demand_class")


def drift_table(recent: pd.DataFrame, earlier: list[pd.DataFrame], *, metric: str, max_ratio: float,
                max_abs_bias: float | None) -> pd.DataFrame:
    """The recent scores with each segment's baseline (mean of the earlier scores) and drift verdict.

    Returns:
        ``recent``'s columns plus ``baseline, ratio, drift, reason`` (see :func:`flag_drift`).
    """
    earlier = [s for s in earlier if s is not None and len(s)]
    baseline = (pd.concat(earlier).groupby("segment", as_index=False)[["mase", "rmsse"]].mean() if earlier
                else recent.iloc[0:0][["segment", "mase", "rmsse"]])
    drift = flag_drift(recent, baseline, metric=metric, max_ratio=max_ratio, max_abs_bias=max_abs_bias)
    return recent.merge(drift[["segment", "baseline", "ratio", "drift", "reason"]], on="segment", how="left")


def monitoring_summary(table: pd.DataFrame, origin: dt.date, *, fallback_on_drift: bool) -> dict[str, Any]:
    """The stage summary of a scored night: MASE per segment, drift alerts, segments to fall back.

    Logs the alerts as a warning.
    """
    alerts = [f"{r.segment}: {r.reason}" for r in table.itertuples() if r.drift]
    drifting = {r.segment: r.reason for r in table.itertuples() if r.drift} if fallback_on_drift else {}
    if alerts:
        log.warning("forecast drift: %s", "; ".join(alerts))
    return {"scored": True, "origin": origin.isoformat(), "segments": int(len(table)),
            "mase": {r.segment: _num(r.mase) for r in table.itertuples()}, "alerts": alerts,
            "fallback_segments": drifting}


def _num(value: Any) -> float | None:
    return None if value is None or pd.isna(value) else float(value)


def fall_back_for_drift(result, history: pd.DataFrame, drifting: dict[str, str], window: int = 28):
    """Forecast the series of drifting demand classes with the deterministic rule, and say so.

    The rule is the mean of the last ``window`` uncensored days, flat over the horizon; each quantile
    keeps the model's spread above its mean, so safety stock still reflects the series' uncertainty.

    Args:
        result: a :class:`models.forecasting.ForecastResult`.
        history: the history it was made from (``unique_id, ds, y, censored``).
        drifting: demand class -> reason.
        window: days of the rule's mean.

    Returns:
        The result with the drifting classes' forecasts replaced and their ``fallback_reason`` set.
    """
    series = result.series.copy()
    hit = series["demand_class"].astype(str).isin(drifting)
    if not hit.any():
        return result
    ids = set(series.loc[hit, "unique_id"])
    recent = history[history["unique_id"].isin(ids) & ~history["censored"].astype(bool)]
    recent = recent[recent["ds"] > recent["ds"].max() - pd.Timedelta(days=window)] if len(recent) else recent
    level = recent.groupby("unique_id")["y"].mean() if len(recent) else pd.Series(dtype=float)
    fc = result.forecasts.copy()
    rows = fc["unique_id"].isin(ids)
    new_mean = fc.loc[rows, "unique_id"].map(level).fillna(0.0).clip(lower=0)
    for col in [c for c in fc.columns if c.startswith("q")]:
        fc.loc[rows, col] = (new_mean + (fc.loc[rows, col] - fc.loc[rows, "mean"]).clip(lower=0)).to_numpy()
    fc.loc[rows, "mean"] = new_mean.to_numpy()
    series.loc[hit, "model"] = "fallback_moving_average"
    series.loc[hit, "fallback_reason"] = [f"demand class {c} in forecast drift: {drifting[c]}"
                                          for c in series.loc[hit, "demand_class"].astype(str)]
    log.warning("forecast drift: %d series of %s use the fallback rule", len(ids), sorted(drifting))
    return dataclasses.replace(result, forecasts=fc, series=series)
