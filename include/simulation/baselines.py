"""Replenishment policies for the replay simulator, each as reorder levels over time.

A policy is computed once for the whole replay from the demand matrix ``D[series, period]``: column
``t`` of its arrays uses demand up to and including period ``t`` only (the order is placed at the end
of the period), so nothing leaks from the future. At a review, a series whose inventory position is
below ``reorder_point`` orders ``max(order_up_to - position, min_order)``.

- :func:`shelfwise_levels`: Shelfwise's periodic-review order-up-to. The forecast of demand over the
  protection interval (lead time + review period) comes from a small set of vectorised forecasters
  (moving average, exponential smoothing at several rates, a seasonal profile from a year ago), chosen
  per series and period by their trailing error over that same interval, like the per-series model
  selection by rolling-origin backtest of :mod:`models.forecasting`. Safety stock is ``k * sigma`` with
  ``sigma`` the trailing root mean square error of that forecast over the protection interval (forecast
  error, measured) combined with lead-time variability, and ``k`` set per series so that the expected
  shortage per review cycle meets the fill-rate target (normal loss function).
- :func:`odoo_min_max_levels`: Odoo-style min/max reorder rule: min = trailing average x (lead time +
  safety periods), max = min + trailing average x review period.
- :func:`erpnext_reorder_levels`: ERPNext-style fixed reorder level and reorder quantity, set once from
  the average demand of the warm-up history.
"""

from __future__ import annotations

from dataclasses import dataclass
from statistics import NormalDist

import numpy as np
from scipy.signal import lfilter

_N = NormalDist()
_K_GRID = np.linspace(-4.0, 6.0, 2001)
_PDF = np.exp(-0.5 * _K_GRID**2) / np.sqrt(2 * np.pi)
_CDF = np.array([_N.cdf(k) for k in _K_GRID])
#: Standard normal loss function G(k) = E[(Z - k)+], decreasing in k.
_LOSS = _PDF - _K_GRID * (1.0 - _CDF)


def normal_loss(k: np.ndarray | float) -> np.ndarray:
    """Standard normal loss function ``G(k) = phi(k) - k (1 - Phi(k))``."""
    return np.interp(k, _K_GRID, _LOSS)


def safety_factor_for_fill_rate(target: float, sigma: np.ndarray, cycle_demand: np.ndarray) -> np.ndarray:
    """Safety factor ``k`` with ``sigma * G(k) = (1 - target) * cycle_demand`` (expected shortage per cycle).

    Args:
        target: Fill-rate target in (0, 1).
        sigma: Standard deviation of demand over the protection interval.
        cycle_demand: Expected demand per review cycle.

    Returns:
        ``k`` per element, clipped to ``[-4, 6]``; 0 where ``sigma`` is 0.
    """
    sigma = np.asarray(sigma, float)
    with np.errstate(divide="ignore", invalid="ignore"):
        g = (1.0 - target) * np.asarray(cycle_demand, float) / sigma
    g = np.where(np.isfinite(g), g, _LOSS[0])
    # np.interp needs increasing x: G is decreasing in k.
    k = np.interp(g, _LOSS[::-1], _K_GRID[::-1])
    return np.where(sigma > 0, k, 0.0)


@dataclass(frozen=True)
class Levels:
    """Reorder levels of one policy for every series and period (``[series, periods]``)."""

    reorder_point: np.ndarray
    order_up_to: np.ndarray
    min_order: np.ndarray | None = None


def ewma(x: np.ndarray, alpha: float) -> np.ndarray:
    """Exponentially weighted mean along the last axis, ignoring NaN (weights renormalised)."""
    w = np.isfinite(x).astype(float)
    xs = np.where(w > 0, x, 0.0)
    b, a = [alpha], [1.0, -(1.0 - alpha)]
    num = lfilter(b, a, xs, axis=-1)
    den = lfilter(b, a, w, axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 1e-12, num / den, np.nan)


def trailing_mean(D: np.ndarray, window: int) -> np.ndarray:
    """Mean of the last ``window`` periods up to and including each period (fewer at the start)."""
    c = np.concatenate([np.zeros((D.shape[0], 1)), np.cumsum(D, axis=1)], axis=1)
    t = np.arange(D.shape[1])
    lo = np.maximum(t + 1 - window, 0)
    return (c[:, t + 1] - c[:, lo]) / (t + 1 - lo)


def forward_sums(D: np.ndarray, horizon: int) -> np.ndarray:
    """``A[:, t]`` = demand over periods ``t+1 .. t+horizon`` (NaN where it runs past the data)."""
    n, T = D.shape
    c = np.concatenate([np.zeros((n, 1)), np.cumsum(D, axis=1)], axis=1)
    out = np.full((n, T), np.nan)
    t = np.arange(T - horizon)
    out[:, t] = c[:, t + 1 + horizon] - c[:, t + 1]
    return out


def shift_right(x: np.ndarray, k: int) -> np.ndarray:
    """Move values ``k`` periods later (what was known at ``t - k`` is read at ``t``)."""
    out = np.full_like(x, np.nan, dtype=float)
    if k < x.shape[1]:
        out[:, k:] = x[:, : x.shape[1] - k]
    return out


@dataclass(frozen=True)
class Forecast:
    """Rolling forecast over the protection interval, per series and period."""

    mean: np.ndarray  # forecast demand over the protection interval
    sigma: np.ndarray  # trailing RMSE of that forecast
    rate: np.ndarray  # forecast demand per period
    model: np.ndarray  # index into ``names`` of the forecaster chosen
    names: tuple[str, ...]


#: Price elasticities tried when estimating the demand lift of a promotion, ``lift = (1 - discount) ** -e``.
_ELASTICITY_GRID = np.linspace(0.0, 5.0, 26)
#: Baseline units a group must have sold on promotion before its own elasticity replaces the pooled one.
_MIN_PROMO_MASS = 20.0


def promotion_elasticity(D: np.ndarray, discount: np.ndarray, groups: np.ndarray | None = None,
                         freq: str = "D") -> np.ndarray:
    """Price elasticity of promoted demand, estimated at every period from the promotions already run.

    On each promoted period the baseline is the smoothed demand of non-promoted periods before it; the
    elasticity ``e`` (per group of series, e.g. an item across its locations) is the one for which the
    baseline times ``(1 - discount) ** -e`` adds up to the demand actually seen on promotion so far. A
    group with little promoted history takes the elasticity pooled over every series.

    Args:
        D: ``[n, T]`` demand.
        discount: ``[n, T]`` fraction off the regular price in each period (0 when not promoted).
        groups: ``[n]`` group label per series (default: one group per series).
        freq: ``"D"`` or ``"W"``.

    Returns:
        ``[n, T]`` elasticity known at the end of each period (0 until a promotion has been seen).
    """
    n, T = D.shape
    promoted = discount > 0
    base = shift_right(ewma(np.where(promoted, np.nan, D), 0.05 if freq == "D" else 0.2), 1)
    base = np.where(promoted & np.isfinite(base), base, 0.0)
    gid = np.unique(np.arange(n) if groups is None else np.asarray(groups), return_inverse=True)[1].ravel()
    ng = int(gid.max()) + 1

    def by_group(x: np.ndarray) -> np.ndarray:
        out = np.zeros((ng, T))
        np.add.at(out, gid, x)
        return out

    actual = np.cumsum(by_group(np.where(base > 0, D, 0.0)), axis=1)
    act_all = actual.sum(axis=0)
    below, below_all, mass, mass_all = np.zeros((ng, T)), np.zeros(T), None, None
    for e in _ELASTICITY_GRID:
        pred = np.cumsum(by_group(base * (1.0 - discount) ** -e), axis=1)
        if mass is None:
            mass, mass_all = pred, pred.sum(axis=0)
        below += pred < actual
        below_all += pred.sum(axis=0) < act_all
    step = _ELASTICITY_GRID[1] - _ELASTICITY_GRID[0]
    # The solution lies between the last grid value below and the first above: take the midpoint.
    top = _ELASTICITY_GRID[-1]
    own = np.clip((below - 0.5) * step, 0.0, top)
    pooled = np.where(mass_all >= _MIN_PROMO_MASS, np.clip((below_all - 0.5) * step, 0.0, top), 0.0)
    return np.where(mass >= _MIN_PROMO_MASS, own, pooled[None, :])[gid]


def rolling_forecast(D: np.ndarray, horizon: int, freq: str = "D", *, discount: np.ndarray | None = None,
                     groups: np.ndarray | None = None) -> Forecast:
    """Forecast of demand over the next ``horizon`` periods made at every period, vectorised.

    Candidates: trailing moving average, exponential smoothing (three rates) and, once a year of history
    exists, last year's demand over the same window scaled by the change in level. Each candidate's
    errors over ``horizon`` become known ``horizon`` periods later; the candidate with the lowest trailing
    mean square error is used, and its root mean square error is the forecast's ``sigma``.

    With ``discount`` (the promotion calendar, published ahead of the protection interval), the level
    forecasters run on demand with the estimated promotion lift taken out, and the forecast over the
    interval is that level times the lift of the promotions planned in it (see
    :func:`promotion_elasticity`).
    """
    n, T = D.shape
    ma_window, season, err_alpha = (28, 364, 0.02) if freq == "D" else (8, 52, 0.08)
    alphas = (0.05, 0.15, 0.3) if freq == "D" else (0.1, 0.3, 0.5)
    if discount is not None and np.any(discount > 0):
        disc = np.clip(np.nan_to_num(np.asarray(discount, float)), 0.0, 0.95)
        elasticity = promotion_elasticity(D, disc, groups, freq)
        level_demand = D / (1.0 - disc) ** -elasticity
        # Planned lift over the interval per unit of level, at the elasticity known at the origin.
        lift = np.zeros((n, T))
        grid_index = np.rint(elasticity / (_ELASTICITY_GRID[1] - _ELASTICITY_GRID[0])).astype(int)
        for g, e in enumerate(_ELASTICITY_GRID):
            pick_g = grid_index == g
            if pick_g.any():
                ahead = forward_sums_padded((1.0 - disc) ** -e, horizon)
                lift = np.where(pick_g, ahead, lift)
    else:
        level_demand, lift = D, np.full((n, T), float(horizon))
    names = [f"ma{ma_window}"] + [f"ses{a}" for a in alphas]
    rates = [trailing_mean(level_demand, ma_window)] + [ewma(level_demand, a) for a in alphas]
    sums = [r * lift for r in rates]
    if T > season + ma_window:
        level = trailing_mean(D, ma_window)
        last_year = shift_right(forward_sums(np.nan_to_num(D), horizon), season)
        ratio = np.clip(level / np.where(shift_right(level, season) > 0, shift_right(level, season), np.nan),
                        0.5, 2.0)
        seasonal = last_year * np.where(np.isfinite(ratio), ratio, 1.0)
        names.append("seasonal_profile")
        rates.append(seasonal / horizon)
        sums.append(seasonal)
    actual = forward_sums(D, horizon)
    mse = np.stack([ewma(shift_right((s - actual) ** 2, horizon), err_alpha) for s in sums])
    mse = np.where(np.isfinite(mse) & np.stack([np.isfinite(s) for s in sums]), mse, np.inf)
    best = np.argmin(mse, axis=0)
    # Until any error is known, use the moving average and the spread of demand over the interval.
    known = np.isfinite(np.take_along_axis(mse, best[None], 0)[0])
    best = np.where(known, best, 0)
    pick = np.maximum(np.nan_to_num(np.take_along_axis(np.stack(sums), best[None], 0)[0]), 0.0)
    rate = np.take_along_axis(np.stack(rates), best[None], 0)[0]
    sd_naive = np.sqrt(np.maximum(ewma(D**2, 0.05) - ewma(D, 0.05) ** 2, 0) * horizon)
    sigma = np.nan_to_num(np.where(known, np.sqrt(np.take_along_axis(mse, best[None], 0)[0]), sd_naive))
    return Forecast(pick, sigma, np.maximum(np.nan_to_num(rate), 0.0), best, tuple(names))


def forward_sums_padded(x: np.ndarray, horizon: int) -> np.ndarray:
    """:func:`forward_sums` where the window may run past the data (the calendar is finite, not unknown)."""
    n, T = x.shape
    padded = np.concatenate([x, np.ones((n, horizon))], axis=1)
    return forward_sums(padded, horizon)[:, :T]


def shelfwise_levels(
    fc: Forecast,
    target_fill_rate: float,
    review: int,
    *,
    lead_time_sd: np.ndarray | float = 0.0,
) -> Levels:
    """Shelfwise order-up-to levels for one fill-rate target.

    ``S = forecast over (lead time + review) + k * sigma``, ``sigma = sqrt(rmse^2 + (rate * sd_L)^2)``,
    ``k`` from the fill-rate target (expected shortage per cycle = (1 - target) x demand per cycle).
    """
    sd_l = np.asarray(lead_time_sd, float).reshape(-1, 1) if np.ndim(lead_time_sd) else float(lead_time_sd)
    sigma = np.sqrt(fc.sigma**2 + (fc.rate * sd_l) ** 2)
    k = safety_factor_for_fill_rate(target_fill_rate, sigma, fc.rate * review)
    up_to = np.maximum(fc.mean + k * sigma, 0.0)
    return Levels(reorder_point=up_to, order_up_to=up_to)


def odoo_min_max_levels(D: np.ndarray, lead: np.ndarray, safety_periods: float, review: int,
                        *, window: int = 28) -> Levels:
    """Odoo-style min/max from the trailing ``window``-period average demand."""
    avg = trailing_mean(D, window)
    lo = avg * (np.asarray(lead, float).reshape(-1, 1) + safety_periods)
    return Levels(reorder_point=lo, order_up_to=lo + avg * review)


def erpnext_reorder_levels(D: np.ndarray, lead: np.ndarray, safety_periods: float, review: int,
                           warmup: int, *, refresh: int | None = None) -> Levels:
    """ERPNext-style fixed reorder level and reorder quantity.

    Set from the average demand of the last ``refresh`` periods of the warm-up (all of it when
    ``refresh`` is None) and held fixed; with ``refresh``, re-set every ``refresh`` periods from the
    trailing ``refresh``-period average, as a planner revising the item's reorder table each quarter.
    """
    n, T = D.shape
    window = refresh or warmup
    avg_t = trailing_mean(D, window)
    t = np.arange(T)
    start = max(warmup - 1, 0)
    if refresh:
        anchor = np.where(t < start, t, start + ((t - start) // refresh) * refresh)
    else:
        anchor = np.where(t < start, t, start)
    avg = avg_t[:, anchor]
    level = avg * (np.asarray(lead, float).reshape(-1, 1) + safety_periods)
    return Levels(reorder_point=level, order_up_to=level, min_order=avg * review)
