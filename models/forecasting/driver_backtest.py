"""Which estimated drivers earn their place: a rolling-origin backtest of the forecast with and without each.

A driver can fit the history well and still forecast badly: a markdown column that switches on in the
same months as a growth spurt gets the credit for the growth, and a seasonal model that repeats last
year's (unmarked) week then adds a lift that never comes. So every driver group (each numeric regressor,
and the event labels together) is checked out of sample before it is used. A proxy forecaster (the
class default: ``seasonal_es`` for smooth and erratic series, ``croston_sba`` for intermittent and lumpy
ones) forecasts the last ``backtest_windows`` windows of the history divided by the drivers' multiplier,
and each window's forecast is multiplied by the drivers of its periods. The coefficients of this check
are estimated on the history before the first window, so the windows are truly out of sample: a
driver fitted on them would always seem to help there. A group is kept when leaving it out
makes the pooled error (squared errors over each series' naive scale, summed over the series whose
drivers move inside the windows) worse by :data:`GROUP_MARGIN`; the drivers kept must also beat none at
all by :data:`TOTAL_MARGIN`. Only the series a driver touches count: a promotion calendar that runs on
a third of the series would otherwise have its gain diluted by the other two thirds and be dropped.

A group that does not move inside the windows cannot be judged there. A numeric driver (a promotion, a
price, a flag) then stands on its shrunk estimate: it recurs often enough to be estimated. The event
labels do not: each comes once a year, so its effect rests on a few days of one or two years, and on the
generated world the Black Friday learnt from the year before overshot the held-out one by a third.
"""

from __future__ import annotations

import numpy as np

from models.forecasting.candidates import croston_sba, seasonal_es
from models.forecasting.driver_estimation import LOG_EFFECT_BOUNDS
from models.forecasting.selection import classify, mase_scale
from models.forecasting.windows import active_windows

__all__ = ["GROUP_MARGIN", "TOTAL_MARGIN", "backtest_cutoffs", "useful_groups"]

#: Leaving a group out must raise the pooled backtest error by this fraction for the group to be kept.
GROUP_MARGIN = 0.01
#: The groups kept must lower the pooled backtest error of no drivers at all by this fraction. A driver
#: that buys less is more likely fitted noise than signal: on the M5 sample, SNAP days bought 0.1 % in
#: the backtest and cost 1.5 % on the held-out month; on Walmart, markdowns bought 1.5 % at one origin
#: and cost 9 % after it.
TOTAL_MARGIN = 0.03


def _proxy(Y: np.ndarray, horizon: int, m: int, sparse: np.ndarray) -> np.ndarray:
    fc = seasonal_es(Y, horizon, m)
    if sparse.any():
        fc[sparse] = croston_sba(Y[sparse], horizon, m)
    return np.maximum(np.where(np.isfinite(fc), fc, 0.0), 0.0)


def _pooled_error(Y: np.ndarray, eta: np.ndarray, cutoffs: list[int], horizon: int, m: int,
                  sparse: np.ndarray, scales: dict[int, np.ndarray]) -> float:
    """Sum over windows, series and periods of the squared scaled error of the proxy with multiplier ``exp(eta)``."""
    mult = np.exp(np.clip(eta, *LOG_EFFECT_BOUNDS))
    free = Y / mult
    total = 0.0
    for c in cutoffs:
        fc = _proxy(free[:, :c], horizon, m, sparse) * mult[:, c : c + horizon]
        actual = Y[:, c : c + horizon]
        err = (actual - fc[:, : actual.shape[1]]) / scales[c][:, None]
        total += float(np.where(np.isfinite(err), err**2, 0.0).sum())
    return total


def backtest_cutoffs(t: int, horizon: int, m: int, backtest_windows: int) -> list[int]:
    """First period of each backtest window (windows of ``horizon`` periods ending at the origin) that
    leaves enough training history before it."""
    w = active_windows()
    return [c for c in (t - k * horizon for k in range(max(backtest_windows, 1), 0, -1))
            if c > max(w.min_train_seasons * m, w.min_train)]


def useful_groups(Y: np.ndarray, parts: list[np.ndarray], moving: list[bool], cutoffs: list[int], horizon: int,
                  m: int, trusted: list[bool]) -> list[bool]:
    """Whether each driver group improves the backtest of the call.

    Args:
        Y: ``[n, T]`` demand (``NaN``: unknown).
        parts: Each group's ``[n, T]`` log multiplier, at coefficients estimated on the history before
            the first window (so the windows are out of sample).
        moving: Per group, whether its drivers move inside the windows. One that moves there but had no
            estimate before them (a new column) fails: there is nothing out of sample to back it.
        cutoffs: First period of each window (:func:`backtest_cutoffs`).
        horizon: Periods per window.
        m: Season length.
        trusted: Per group, whether it stands when the windows cannot judge it (it does not move in them).

    Returns:
        One flag per group.
    """
    if not parts or not cutoffs or not any(moving):
        return list(trusted)
    # Only the series whose judged drivers move inside the windows can tell a driver's worth.
    inside = np.zeros(Y.shape[1], dtype=bool)
    for c in cutoffs:
        inside[c:c + horizon] = True
    touched = np.zeros(Y.shape[0], dtype=bool)
    for part, judged in zip(parts, moving, strict=True):
        if judged:
            touched |= (np.abs(part[:, inside]) > 0).any(axis=1)
    if not touched.any():
        return list(trusted)
    Y, parts = Y[touched], [p[touched] for p in parts]
    cls = classify(Y)
    sparse = (cls == "intermittent") | (cls == "lumpy")
    scales = {c: mase_scale(Y[:, :c], m) for c in cutoffs}

    def error(eta: np.ndarray) -> float:
        return _pooled_error(Y, eta, cutoffs, horizon, m, sparse, scales)

    parts = [p if judged or trust else np.zeros_like(p) for p, judged, trust in zip(parts, moving, trusted, strict=True)]
    total = np.sum(parts, axis=0)
    full = error(total)
    keep = [error(total - part) > full * (1.0 + GROUP_MARGIN) if judged else trust
            for part, judged, trust in zip(parts, moving, trusted, strict=True)]
    if not any(k and judged for k, judged in zip(keep, moving, strict=True)):
        return keep
    kept = np.sum([p for p, k in zip(parts, keep, strict=True) if k], axis=0)
    kept_error = full if all(keep) else error(kept)
    untested = np.sum([np.zeros_like(total), *(p for p, judged in zip(parts, moving, strict=True) if not judged)],
                      axis=0)
    if kept_error >= error(untested) * (1.0 - TOTAL_MARGIN):
        return [trust and not judged for judged, trust in zip(moving, trusted, strict=True)]
    return keep
