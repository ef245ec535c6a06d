"""How much the forecaster's ``sigma_cum`` under-states its error out of sample, measured on past
forecasts, for the replenishment policy.

``sigma_cum`` comes from a short backtest of the model the forecaster chose, and the winner of a backtest
is its luckiest candidate: out of sample its error is larger (on the generated world the realised error
of the protection interval's sum was 1.33 times ``sigma_cum``). Every past forecast whose protection
interval has been sold gives a *standardised error*::

    z = (actual demand over the interval - forecast sum over the interval) / sigma_cum of the interval

and :func:`calibrate` pools them per *error class*, the coefficient of variation ``sigma / forecast`` of
the interval (smooth sums are the ones whose backtest flatters them most, intermittent ones may be
over-stated), into a *scale*: the root mean square of ``z``, each error weighted by its interval's
``sigma`` (fill rates count units, so the many near-empty intervals, whose tiny sigma turns one sold
unit into a huge ``z``, do not set everyone's scale). The policy multiplies ``sigma_cum`` by its class's
scale (conformal-style). A class with fewer than ``min_errors`` errors takes the scale of every class
pooled, and with fewer than that 1.

Measured and dropped: the empirical distribution of ``z`` in place of the normal (per class, in the
expected units short ``sigma * E[(Z - k)+]``). It over-served the high targets by 0.5 to 1.5 points on
M5 and the generated world and held more stock at the same fill on M5 (13% saving instead of 16%).

The replay and the nightly run the same rule: the replay measures the errors of its own earlier
forecasts (only those whose interval ended before the review that uses them,
:func:`rolling_calibration`), the nightly those of the forecasts in its forecast store whose interval has
been sold without a stock-out (:func:`interval_errors` per past origin, pooled by :func:`calibrate`).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import pandas as pd

__all__ = ["CV_EDGES", "ErrorCalibration", "calibrate", "calibration_summary", "error_class", "interval_errors",
           "rolling_calibration", "standardized_errors"]

#: Edges of the error classes on ``sigma / forecast`` of the protection interval.
CV_EDGES = (0.25, 0.5, 1.0, 2.0)
#: Standardised errors a class needs before its own scale replaces the pooled one.
MIN_ERRORS = 200
#: Standardised errors are clipped to this range: one sold unit over a near-zero sigma is not evidence
#: that every sigma of its class is 100 times too small.
Z_CLIP = (-10.0, 30.0)


def error_class(forecast: np.ndarray, sigma: np.ndarray, edges: tuple[float, ...] = CV_EDGES) -> np.ndarray:
    """Error class of each interval, ``0..len(edges)``, from ``sigma / forecast`` (no forecast: the last)."""
    forecast, sigma = np.asarray(forecast, float), np.asarray(sigma, float)
    with np.errstate(divide="ignore", invalid="ignore"):
        cv = np.where(forecast > 0, sigma / forecast, np.inf)
    return np.searchsorted(np.asarray(edges, float), cv, side="right")


def standardized_errors(forecast: np.ndarray, sigma: np.ndarray, actual: np.ndarray) -> np.ndarray:
    """``(actual - forecast) / sigma`` of each interval; NaN where ``sigma`` is 0 or a value is missing."""
    forecast, sigma, actual = (np.asarray(x, float) for x in (forecast, sigma, actual))
    with np.errstate(divide="ignore", invalid="ignore"):
        z = (actual - forecast) / sigma
    return np.where((sigma > 0) & np.isfinite(z), z, np.nan)


@dataclass(frozen=True)
class ErrorCalibration:
    """Scale of ``sigma_cum`` per error class and version.

    Attributes:
        scale: ``[versions * classes]`` weighted root mean square of the standardised errors (1 where
            too few were known).
        errors: ``[versions * classes]`` errors behind each scale (0: none, the scale is 1).
        classes: Error classes per version (``len(edges) + 1``).
        edges: Class edges on ``sigma / forecast``.
    """

    scale: np.ndarray
    errors: np.ndarray
    classes: int
    edges: tuple[float, ...] = CV_EDGES

    def scale_of(self, forecast: np.ndarray, sigma: np.ndarray, version: np.ndarray | int = 0) -> np.ndarray:
        """The scale of each interval: that of its error class within its calibration ``version``."""
        rows = np.asarray(version, int) * self.classes + error_class(forecast, sigma, self.edges)
        return self.scale[rows]


def calibrate(z: np.ndarray, forecast: np.ndarray, sigma: np.ndarray, *, min_errors: int = MIN_ERRORS,
              edges: tuple[float, ...] = CV_EDGES) -> ErrorCalibration:
    """The calibration of one set of past standardised errors (e.g. the nightly's forecast store).

    Args:
        z: Standardised error of each past interval (:func:`standardized_errors`; NaN ignored).
        forecast: The forecast sum of each past interval (for its error class).
        sigma: The ``sigma_cum`` of each past interval.
        min_errors: Errors a class needs for its own scale.
        edges: Class edges on ``sigma / forecast``.
    """
    z = np.asarray(z, float).reshape(1, -1)
    return rolling_calibration(z, np.asarray(forecast, float).reshape(1, -1), np.asarray(sigma, float).reshape(1, -1),
                               np.zeros(z.shape, int), 1, min_errors=min_errors, edges=edges)


def rolling_calibration(z: np.ndarray, forecast: np.ndarray, sigma: np.ndarray, known_from: np.ndarray,
                        versions: int, *, min_errors: int = MIN_ERRORS,
                        edges: tuple[float, ...] = CV_EDGES) -> ErrorCalibration:
    """Calibrations that grow with time: version ``v`` pools every error with ``known_from <= v``.

    Args:
        z: ``[R, n]`` standardised errors (NaN: none).
        forecast: ``[R, n]`` forecast sums (for the error class of each).
        sigma: ``[R, n]`` their ``sigma_cum``.
        known_from: ``[R, n]`` first version that may use each error (its interval has been sold).
        versions: Number of versions.
        min_errors: Errors a class needs for its own scale (else the pooled one, else 1).
        edges: Class edges on ``sigma / forecast``.
    """
    classes = len(edges) + 1
    ok = np.isfinite(z) & (np.asarray(known_from) < versions) & (forecast > 0)
    cell = np.asarray(known_from)[ok] * classes + error_class(forecast, sigma, edges)[ok]
    weight = np.asarray(sigma, float)[ok]
    zz = np.clip(z[ok], *Z_CLIP)
    cells = versions * classes
    count, mass, square = (np.bincount(cell, weights=w, minlength=cells).reshape(versions, classes).cumsum(axis=0)
                           for w in (None, weight, weight * zz**2))
    own = count >= min_errors
    enough = count.sum(axis=1, keepdims=True) >= min_errors
    errors = np.where(own, count, np.where(enough, count.sum(axis=1, keepdims=True), 0))
    mass = np.where(own, mass, mass.sum(axis=1, keepdims=True))
    square = np.where(own, square, square.sum(axis=1, keepdims=True))
    with np.errstate(divide="ignore", invalid="ignore"):
        scale = np.where((errors > 0) & (mass > 0), np.sqrt(square / mass), 1.0)
    return ErrorCalibration(scale=np.where(scale > 0, scale, 1.0).reshape(-1), errors=errors.astype(int).reshape(-1),
                            classes=classes, edges=tuple(edges))


def interval_errors(forecasts: pd.DataFrame, demand: pd.DataFrame, origin: dt.date, periods: pd.Series) -> pd.DataFrame:
    """The standardised error of each series' forecast from one past ``origin`` over its protection interval.

    The interval's forecast sum and ``sigma_cum`` are the replenishment core's
    (:func:`include.decisions.replenishment.protection_sums`, as :func:`~include.decisions.replenishment.order_levels`
    sizes them); the actual is the demand of the interval's days. Intervals not wholly sold yet, with a day
    missing or a stock-out day (``censored``: what sold is a floor on demand, not demand) are left out.

    Args:
        forecasts: The forecasts made at ``origin`` (``unique_id, step, mean, sigma_cum``).
        demand: Daily demand (``unique_id, ds, y, censored``) covering the intervals.
        origin: The forecasts' origin; step 1 is the day after it.
        periods: Protection interval in whole days per series (indexed by ``unique_id``; NaN: left out).

    Returns:
        ``unique_id, forecast, sigma, actual, z``, one row per interval known.
    """
    from include.decisions.replenishment import forecast_matrices, protection_sums

    periods = periods[np.isfinite(periods.to_numpy(float)) & (periods.to_numpy(float) >= 1)]
    ids = pd.Index(periods.index.intersection(pd.Index(forecasts["unique_id"].unique())))
    if ids.empty:
        return pd.DataFrame(columns=["unique_id", "forecast", "sigma", "actual", "z"])
    length = np.round(periods.reindex(ids).to_numpy(float)).astype(int)
    mean, sigma_cum = forecast_matrices(forecasts, ids)
    forecast, sigma, _ = protection_sums(mean, sigma_cum, length)
    start = pd.Timestamp(origin)
    d = demand[demand["unique_id"].isin(ids)]
    offset = ((pd.to_datetime(d["ds"]) - start) / pd.Timedelta(days=1)).to_numpy(float)
    row = ids.get_indexer(d["unique_id"])
    inside = (offset >= 1) & (offset <= length[row])
    count = np.bincount(row[inside], minlength=len(ids))
    actual = np.bincount(row[inside], weights=d["y"].to_numpy(float)[inside], minlength=len(ids))
    censored = np.bincount(row[inside], weights=d["censored"].to_numpy(bool)[inside].astype(float), minlength=len(ids))
    known = (count == length) & (censored == 0)
    z = standardized_errors(forecast, sigma, actual)
    return pd.DataFrame({"unique_id": ids.to_numpy(object), "forecast": forecast, "sigma": sigma, "actual": actual,
                         "z": z})[known].reset_index(drop=True)


def calibration_summary(calibration: ErrorCalibration | None, intervals: int) -> dict | str:
    """What a stage summary says of a calibration: its scale and errors per class, or ``none: N past intervals``."""
    if calibration is None:
        return f"none: {intervals} past intervals"
    bounds = (0.0, *calibration.edges, np.inf)
    names = [f"cv {lo:g}-{hi:g}" for lo, hi in zip(bounds[:-1], bounds[1:], strict=True)]
    return {"intervals": int(intervals),
            "scales": {n: round(float(x), 3) for n, x in zip(names, calibration.scale[:calibration.classes], strict=True)},
            "errors": {n: int(e) for n, e in zip(names, calibration.errors[:calibration.classes], strict=True)}}
