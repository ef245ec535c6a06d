"""The vectorised candidate models and their registry: each maps ``Y[n, t]`` (``NaN`` = unknown demand) to
``forecasts[n, horizon]`` for every series at once.

``seasonal_naive``, ``moving_average``, ``seasonal_es``, ``damped_trend`` and ``naive`` serve smooth and erratic
series, ``croston_sba`` and ``tsb`` intermittent and lumpy ones (:data:`FAMILIES`). Candidates keep the plain
``(Y, horizon, season_length)`` signature and read their look-back windows from
:func:`models.forecasting.windows.active_windows`.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from models.forecasting.windows import active_windows, last_observed, masked_mean, tail

__all__ = ["CANDIDATES", "FAMILIES", "Candidate", "croston_sba", "damped_trend", "moving_average", "naive",
           "seasonal_es", "seasonal_naive", "tsb"]

ES_ALPHAS = np.array([0.05, 0.1, 0.2, 0.3, 0.5])
#: Damped-trend grid: level alpha, trend beta (as a share of alpha's correction) and damping phi.
DAMPED_ALPHAS = (0.05, 0.1, 0.2, 0.4)
DAMPED_BETAS = (0.02, 0.1)
DAMPED_PHIS = (0.8, 0.9, 0.98)
CROSTON_ALPHA = 0.1
TSB_SIZE_ALPHA = 0.1
TSB_PROB_BETA = 0.1

Candidate = Callable[[np.ndarray, int, int], np.ndarray]


def _seasonal_indices(Y: np.ndarray, m: int) -> np.ndarray:
    """Weekly-style seasonal indices ``[n, m]`` indexed by phase relative to the end of ``Y``.

    Phase ``r`` of a day at absolute column ``j`` is ``(j - t) % m`` with ``t = Y.shape[1]``, so the
    first forecast step has phase 0. A phase observed fewer than ``MIN_PHASE_OBS`` times (stock-outs,
    a new series) is topped up with the overall mean, which keeps one odd day from swinging its index;
    well-observed phases are left unshrunk, because shrinking them biases the level low.
    """
    n = Y.shape[0]
    if m <= 1:
        return np.ones((n, max(m, 1)))
    w = active_windows()
    B = tail(Y, w.index_seasons * m).reshape(n, w.index_seasons, m)
    obs = np.isfinite(B)
    psum = np.where(obs, B, 0.0).sum(axis=1)
    pcnt = obs.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        overall = psum.sum(axis=1) / np.maximum(pcnt.sum(axis=1), 1)
        top_up = np.maximum(w.min_phase_obs - pcnt, 0)
        idx = (psum + top_up * overall[:, None]) / (pcnt + top_up) / overall[:, None]
        idx = idx / idx.mean(axis=1, keepdims=True)
    ok = np.isfinite(idx).all(axis=1) & (overall > 0)
    return np.where(ok[:, None], idx, 1.0)


def seasonal_naive(Y: np.ndarray, horizon: int, season_length: int) -> np.ndarray:
    """Repeat the last season; a stocked-out day takes the same phase from an earlier season."""
    n, m = Y.shape[0], max(season_length, 1)
    k = active_windows().naive_lookback
    B = tail(Y, k * m).reshape(n, k, m)
    obs = np.isfinite(B)
    last = np.where(obs, np.arange(k)[None, :, None], -1).max(axis=1)
    val = np.take_along_axis(B, np.maximum(last, 0)[:, None, :], axis=1)[:, 0, :]
    val = np.where(last >= 0, val, np.nan)
    # A phase never observed in the lookback takes the mean of the phases that were.
    fill = masked_mean(val, np.isfinite(val))
    val = np.where(np.isfinite(val), val, fill[:, None])
    return val[:, np.arange(horizon) % m]


def moving_average(Y: np.ndarray, horizon: int, season_length: int) -> np.ndarray:
    """Flat forecast at the mean of the last ``MA_WINDOW`` observed days."""
    w = active_windows()
    W = tail(Y, w.recent)
    level = masked_mean(W, last_observed(W, w.ma))
    return np.repeat(level[:, None], horizon, axis=1)


def naive(Y: np.ndarray, horizon: int, season_length: int) -> np.ndarray:
    """Random walk: the last observed value, flat over the horizon (``NaN`` when nothing was observed)."""
    W = tail(Y, active_windows().recent)
    obs = np.isfinite(W)
    last = np.where(obs, np.arange(W.shape[1])[None, :], -1).max(axis=1)
    value = np.where(last >= 0, W[np.arange(W.shape[0]), np.maximum(last, 0)], np.nan)
    return np.repeat(value[:, None], horizon, axis=1)


def _deseasonalised(Y: np.ndarray, m: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, int]:
    """The smoothing window of ``Y`` divided by its seasonal index, for the level models.

    Returns:
        ``(idx, S, D, level0, warm)``: seasonal indices ``[n, m]``, the index of every column of the
        window, the deseasonalised window (``NaN`` where unknown or on near-closed days), the starting
        level and the warm-up columns that are not scored.
    """
    idx = _seasonal_indices(Y, m)
    w = active_windows()
    W = tail(Y, w.smoothing)
    length = W.shape[1]
    phase = (np.arange(length) - length) % m
    S = idx[:, phase]
    # Near-closed days (index < 0.2) say almost nothing about the level; dividing by their small index
    # would turn noise into level swings, so they are skipped.
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        D = np.where(S >= 0.2, W / S, np.nan)
    warm = min(int(w.min_train_seasons * m), length // 2)
    first = masked_mean(D[:, :warm], np.isfinite(D[:, :warm]))
    level0 = np.where(np.isfinite(first), first, masked_mean(D, np.isfinite(D)))
    level0 = np.where(np.isfinite(level0), level0, 0.0)
    return idx, S, D, level0, warm


def seasonal_es(Y: np.ndarray, horizon: int, season_length: int) -> np.ndarray:
    """Simple exponential smoothing of the deseasonalised level, times the seasonal index.

    Alpha is chosen per series from ``ES_ALPHAS`` by in-sample one-step squared error; all alphas run
    side by side as an ``[n, len(alphas)]`` state, so the time loop is the only Python loop. Unknown
    days leave the level unchanged, which is the same as imputing them by the model's own fit.
    """
    n, m = Y.shape[0], max(season_length, 1)
    idx, S, D, level0, warm = _deseasonalised(Y, m)
    level = np.repeat(level0[:, None], len(ES_ALPHAS), axis=1)
    sse = np.zeros_like(level)
    alphas = ES_ALPHAS[None, :]
    with np.errstate(invalid="ignore", over="ignore"):
        for j in range(D.shape[1]):
            d = D[:, j]
            ok = np.isfinite(d)[:, None]
            err = np.where(ok, d[:, None] - level, 0.0)
            if j >= warm:
                sse += (err * S[:, j : j + 1]) ** 2
            level += alphas * err
    best = np.argmin(np.where(np.isfinite(sse), sse, np.inf), axis=1)
    final = level[np.arange(n), best]
    return final[:, None] * idx[:, np.arange(horizon) % m]


def damped_trend(Y: np.ndarray, horizon: int, season_length: int) -> np.ndarray:
    """Damped-trend exponential smoothing (additive damped Holt) of the deseasonalised level, times the
    seasonal index.

    Every ``(alpha, beta, phi)`` of the grid runs side by side as an ``[n, grid]`` state and each series
    keeps the one with the lowest in-sample one-step squared error. The trend's contribution to step
    ``h`` is ``phi + ... + phi**h`` times the last trend, so the forecast follows a trend at first and
    flattens out. Unknown days carry the level forward along the damped trend without a correction.
    """
    n, m = Y.shape[0], max(season_length, 1)
    idx, S, D, level0, warm = _deseasonalised(Y, m)
    grid = np.array([(a, b, p) for a in DAMPED_ALPHAS for b in DAMPED_BETAS for p in DAMPED_PHIS])
    alpha, beta, phi = (grid[None, :, k] for k in range(3))
    level = np.repeat(level0[:, None], len(grid), axis=1)
    trend = np.zeros_like(level)
    sse = np.zeros_like(level)
    with np.errstate(invalid="ignore", over="ignore"):
        for j in range(D.shape[1]):
            d = D[:, j]
            ok = np.isfinite(d)[:, None]
            fit = level + phi * trend
            err = np.where(ok, d[:, None] - fit, 0.0)
            if j >= warm:
                sse += (err * S[:, j : j + 1]) ** 2
            level = fit + alpha * err
            trend = phi * trend + alpha * beta * err
    best = np.argmin(np.where(np.isfinite(sse), sse, np.inf), axis=1)
    rows = np.arange(n)
    damping = np.cumsum(grid[best, 2][:, None] ** np.arange(1, horizon + 1)[None, :], axis=1)
    path = level[rows, best][:, None] + damping * trend[rows, best][:, None]
    return np.maximum(path, 0.0) * idx[:, np.arange(horizon) % m]


def croston_sba(Y: np.ndarray, horizon: int, season_length: int) -> np.ndarray:
    """Croston's method with the Syntetos-Boylan bias correction, flat over the horizon.

    Demand sizes and inter-demand intervals are smoothed separately; intervals count observed days
    only, so a stock-out does not look like a long gap between demands.
    """
    W = tail(Y, active_windows().smoothing)
    n = W.shape[0]
    obs = np.isfinite(W)
    pos = obs & (W > 0)
    n_pos = pos.sum(axis=1)
    size = masked_mean(W, pos)
    with np.errstate(invalid="ignore", divide="ignore"):
        interval = np.where(n_pos > 0, obs.sum(axis=1) / np.maximum(n_pos, 1), 1.0)
    size = np.where(np.isfinite(size), size, 0.0)
    since = np.ones(n)
    a = CROSTON_ALPHA
    with np.errstate(invalid="ignore", over="ignore"):
        for j in range(W.shape[1]):
            col = W[:, j]
            demand = pos[:, j]
            size = np.where(demand, size + a * (col - size), size)
            interval = np.where(demand, interval + a * (since - interval), interval)
            since = np.where(demand, 1.0, since + obs[:, j])
        rate = (1.0 - a / 2.0) * size / interval
    return np.repeat(rate[:, None], horizon, axis=1)


def tsb(Y: np.ndarray, horizon: int, season_length: int) -> np.ndarray:
    """Teunter-Syntetos-Babai: smooth the probability of a demand day and the demand size, flat forecast.

    Unlike Croston, the probability decays on every observed day without demand, so an item that has
    stopped selling sees its forecast fall instead of freezing at the last interval. Unknown (censored)
    days update nothing.
    """
    W = tail(Y, active_windows().smoothing)
    obs = np.isfinite(W)
    pos = obs & (W > 0)
    n_obs = obs.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        prob = np.where(n_obs > 0, pos.sum(axis=1) / np.maximum(n_obs, 1), 0.0)
    size = masked_mean(W, pos)
    size = np.where(np.isfinite(size), size, 0.0)
    a, b = TSB_SIZE_ALPHA, TSB_PROB_BETA
    with np.errstate(invalid="ignore", over="ignore"):
        for j in range(W.shape[1]):
            prob = np.where(obs[:, j], prob + b * (pos[:, j] - prob), prob)
            size = np.where(pos[:, j], size + a * (W[:, j] - size), size)
    return np.repeat((prob * size)[:, None], horizon, axis=1)


#: Candidate registry, in tie-break order.
CANDIDATES: dict[str, Candidate] = {
    "seasonal_es": seasonal_es,
    "seasonal_naive": seasonal_naive,
    "moving_average": moving_average,
    "damped_trend": damped_trend,
    "naive": naive,
    "croston_sba": croston_sba,
    "tsb": tsb,
}
#: Model family per demand class; the first entry is the default when no backtest is possible.
FAMILIES: dict[str, tuple[str, ...]] = {
    "smooth": ("seasonal_es", "seasonal_naive", "moving_average", "damped_trend", "naive"),
    "erratic": ("seasonal_es", "seasonal_naive", "moving_average", "damped_trend", "naive"),
    "intermittent": ("croston_sba", "tsb"),
    "lumpy": ("croston_sba", "tsb"),
}
