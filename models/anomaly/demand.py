"""Demand anomalies: days whose actual sales fall outside the forecast's interval.

A spike is a day that sold above the forecast's upper quantile by a meaningful number of units; a drop
is a day of a series that usually sells whose sales fell to or below the lower bound. Both are scored
in units of the forecast's upper spread (``upper - expected``), so one scale ranks spikes and drops
across fast and slow movers.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

__all__ = ["OUTPUT_COLUMNS", "detect_demand_anomalies"]

OUTPUT_COLUMNS = [
    "unique_id",
    "ds",
    "anomaly_type",
    "severity",
    "actual",
    "expected",
    "upper",
    "score",
    "explanation",
]
#: Score (deviation over the upper spread) at which a flag becomes medium, then high.
MEDIUM_SCORE = 2.0
HIGH_SCORE = 3.0
#: The spread is floored at one unit: a slow mover with a razor-thin interval would otherwise turn
#: a single extra unit into a "high" anomaly.
MIN_SPREAD = 1.0
_QUANTILE_COLUMN = re.compile(r"^q(\d+)$")


def _lower_column(forecasts: pd.DataFrame) -> str | None:
    """The lowest quantile column below the median (``q5``, ``q05``, ``q10``...), if any."""
    lows = []
    for col in forecasts.columns:
        match = _QUANTILE_COLUMN.match(str(col))
        if match:
            digits = match.group(1)
            # "q05" and "q5" both mean the 5% quantile; a leading zero marks a fraction of ten.
            level = int(digits) / (10 ** len(digits) / 100) if digits.startswith("0") else int(digits)
            if level < 50:
                lows.append((level, col))
    return min(lows)[1] if lows else None


def _require(frame: pd.DataFrame, name: str, columns: list[str]) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(f"{name} is missing required column(s): {', '.join(missing)}")


def detect_demand_anomalies(
    actuals: pd.DataFrame,
    forecasts: pd.DataFrame,
    *,
    min_units: float = 3,
) -> pd.DataFrame:
    """Flag demand spikes and drops against the forecast made for the same days.

    A spike: ``y > q95`` and ``y - mean >= min_units``. A drop: the series usually sells
    (``mean >= min_units``), ``y`` is at or below the lower bound and ``mean - y >= min_units``.
    The lower bound is the lowest quantile column under the median (``q5``, ``q05``, ``q10``...) when
    ``forecasts`` has one, else 0, so without it only days with no sales can be drops.

    The score is the deviation from ``mean`` over the upper spread ``max(q95 - mean, 1)``; severity is
    ``low`` below 2, ``medium`` below 3, ``high`` from 3.

    Args:
        actuals: ``unique_id``, ``ds``, ``y`` (units sold per day).
        forecasts: ``unique_id``, ``ds``, ``mean``, ``q95`` and optionally a lower quantile column.
            Days without a forecast are not judged.
        min_units: Smallest absolute deviation (units) worth flagging.

    Returns:
        One row per flagged day with ``OUTPUT_COLUMNS``, sorted by ``unique_id, ds, anomaly_type``.

    Raises:
        ValueError: if a required column is missing.
    """
    _require(actuals, "actuals", ["unique_id", "ds", "y"])
    _require(forecasts, "forecasts", ["unique_id", "ds", "mean", "q95"])
    lower_col = _lower_column(forecasts)

    left = actuals[["unique_id", "ds", "y"]].assign(ds=lambda f: pd.to_datetime(f["ds"]))
    right_cols = ["unique_id", "ds", "mean", "q95"] + ([lower_col] if lower_col else [])
    right = forecasts[right_cols].assign(ds=lambda f: pd.to_datetime(f["ds"]))
    df = left.merge(right, on=["unique_id", "ds"], how="inner", validate="many_to_one")

    y = df["y"].to_numpy(dtype=np.float64)
    mean = df["mean"].to_numpy(dtype=np.float64)
    upper = df["q95"].to_numpy(dtype=np.float64)
    lower = df[lower_col].to_numpy(dtype=np.float64) if lower_col else np.zeros(len(df))
    spread = np.maximum(upper - mean, MIN_SPREAD)

    with np.errstate(invalid="ignore"):
        spike = (y > upper) & (y - mean >= min_units)
        drop = (mean >= min_units) & (y <= lower) & (mean - y >= min_units) & ~spike
    score = np.abs(y - mean) / spread

    flagged = spike | drop
    out = pd.DataFrame(
        {
            "unique_id": df["unique_id"].to_numpy()[flagged],
            "ds": df["ds"].to_numpy()[flagged],
            "anomaly_type": np.where(spike, "demand_spike", "demand_drop")[flagged],
            "severity": np.select(
                [score >= HIGH_SCORE, score >= MEDIUM_SCORE], ["high", "medium"], default="low"
            )[flagged],
            "actual": y[flagged],
            "expected": mean[flagged],
            "upper": upper[flagged],
            "score": score[flagged],
        }
    )
    low = lower[flagged]
    out["explanation"] = [
        (
            f"sold {a:g} units vs expected {e:.1f} (95% upper {u:.1f}): "
            f"{a - e:+.1f} units, {s:.1f}x the usual spread"
            if kind == "demand_spike"
            else f"sold {a:g} units vs expected {e:.1f} (lower bound {lo:.1f}): "
            f"{a - e:+.1f} units, {s:.1f}x the usual spread"
        )
        for kind, a, e, u, lo, s in zip(
            out["anomaly_type"], out["actual"], out["expected"], out["upper"], low, out["score"], strict=True
        )
    ]
    return out.sort_values(["unique_id", "ds", "anomaly_type"], ignore_index=True)[OUTPUT_COLUMNS]
