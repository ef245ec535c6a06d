"""The one replenishment policy: order levels and order quantities from a forecast, for every series at once.

The nightly's replenishment proposals (:func:`include.decisions.propose.propose_replenishment`) and the
replay simulator (:mod:`include.simulation.replay`) both call these functions on the output of the
production forecaster (:func:`models.forecasting.forecast`), so what the replay measures is what the
nightly orders.

Timing, in periods of the data (days or weeks): an order placed at the end of period ``t`` arrives at the
start of period ``t + L`` (the lead time) and serves that period. The next review is at ``t + R`` and its
order arrives at ``t + R + L``, so stock on hand and on order at ``t`` must cover the ``L + R - 1``
periods in between: that is the *protection interval*. The nightly reviews every item every night
(``R = 1``: the interval is the lead time); the replay reviews every ``R`` periods.

Levels, per series:

- ``demand``: the forecast summed over the protection interval (linear between whole periods for a
  fractional lead time; past the forecast horizon at the horizon's mean rate).
- ``sigma``: the forecast error of that sum, measured by the forecaster's backtest (``sigma_cum``, the
  spread of the cumulative error, which grows faster than the square root of the periods when errors are
  correlated), times the scale its error class showed out of sample when a calibration is given
  (:mod:`include.decisions.calibration`), combined with lead-time variability:
  ``sqrt((scale * sigma_f)^2 + (rate * sd_L)^2)``.
- ``safety_factor`` ``k``: the one for which the expected units short per order cycle,
  ``sigma * G(k)`` (``G`` the standard normal loss function; with lost sales, see
  :func:`periodic_shortage`), is ``(1 - fill_rate)`` of the demand of one cycle, so the expected share
  of demand served from stock is the target fill rate. ``k`` is negative when the target is low and the
  cycle long: the cycle's own stock then serves enough. With a ``pool`` (the nightly's series of one
  night, the replay's of one review) the series sharing a target get one ``k``, the one whose units
  short over all of them are ``(1 - fill_rate)`` of their demand: the least stock for that fill rate.
- ``reorder_point`` ``s = demand + k * sigma``; ``order_up_to`` ``S = s + rate * order_cycle``
  (``order_cycle = 0``: order up to ``s`` at every review, an (R, S) policy; the nightly uses its review
  days, an (s, S) policy that orders about a week of demand at a time).

:func:`order_quantity` turns ``S`` minus the inventory position into units: whole case packs, at least
the minimum order quantity, at most what fits the room left (a store's shelf).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from statistics import NormalDist
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from include.decisions.calibration import ErrorCalibration

__all__ = ["OrderLevels", "expected_shortfall", "fixed_levels", "forecast_matrices", "level_for_fill_rate", "normal_loss",
           "order_cycle_shortage", "order_levels", "order_quantity", "periodic_shortage", "pooled_safety_factors",
           "protection_sums", "safety_factor_for_fill_rate"]

_K_GRID = np.linspace(-4.0, 6.0, 4001)
_PDF = np.exp(-0.5 * _K_GRID**2) / np.sqrt(2 * np.pi)
_CDF = np.array([NormalDist().cdf(k) for k in _K_GRID])
#: Standard normal loss function ``G(k) = E[(Z - k)+]``, decreasing in ``k``.
_LOSS = _PDF - _K_GRID * (1.0 - _CDF)


def normal_loss(k: np.ndarray | float) -> np.ndarray:
    """Standard normal loss function ``G(k) = phi(k) - k (1 - Phi(k))``."""
    return np.interp(k, _K_GRID, _LOSS)


def safety_factor_for_fill_rate(target: np.ndarray | float, sigma: np.ndarray, cycle_demand: np.ndarray) -> np.ndarray:
    """Safety factor ``k`` with ``sigma * G(k) = (1 - target) * cycle_demand``.

    Args:
        target: Fill-rate target in (0, 1), one for all or one per element.
        sigma: Standard deviation of demand over the protection interval.
        cycle_demand: Expected demand per order cycle.

    Returns:
        ``k`` per element, within ``[-4, 6]``; 0 where ``sigma`` is 0 (nothing uncertain to protect).
    """
    sigma = np.asarray(sigma, float)
    with np.errstate(divide="ignore", invalid="ignore"):
        g = (1.0 - np.asarray(target, float)) * np.asarray(cycle_demand, float) / sigma
    g = np.where(np.isfinite(g), g, _LOSS[0])
    # np.interp needs increasing x: G is decreasing in k.
    k = np.interp(g, _LOSS[::-1], _K_GRID[::-1])
    return np.where(sigma > 0, k, 0.0)


def forecast_matrices(forecasts: pd.DataFrame, ids: pd.Index, horizon: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``[n, horizon]`` mean and cumulative-error matrices of the series ``ids``, in that order, from the
    forecaster's long frame (``unique_id, step, mean, sigma_cum``); rows of other series are left out.

    Args:
        forecasts: The long forecasts.
        ids: The series wanted, one row each.
        horizon: Steps per row (default: the largest step in ``forecasts``).
    """
    f = forecasts[forecasts["unique_id"].isin(ids)]
    rows = ids.get_indexer(f["unique_id"])
    steps = f["step"].to_numpy(int) - 1
    if horizon is None:
        horizon = int(steps.max()) + 1 if len(steps) else 1
    mean = np.zeros((len(ids), horizon))
    sigma = np.zeros((len(ids), horizon))
    mean[rows, steps] = f["mean"].to_numpy(float)
    sigma[rows, steps] = f["sigma_cum"].to_numpy(float)
    return mean, sigma


def protection_sums(mean: np.ndarray, sigma_cum: np.ndarray, periods: np.ndarray) -> tuple[np.ndarray, ...]:
    """Forecast demand over the first ``periods`` steps of each series, its error, and its rate.

    Args:
        mean: ``[n, horizon]`` forecast per step.
        sigma_cum: ``[n, horizon]`` standard deviation of the cumulative forecast error through each step.
        periods: ``[n]`` length of the interval in periods (fractional allowed, >= 0).

    Returns:
        ``(demand, sigma, rate)``, each ``[n]``: the sum over the interval (linear inside a period; past
        the horizon at the horizon's mean rate), the error of that sum (past the horizon it grows with the
        square root of the length), and the mean forecast per period over the interval (over the horizon
        when the interval is empty).
    """
    mean = np.maximum(np.asarray(mean, float), 0.0)
    sigma_cum = np.maximum(np.asarray(sigma_cum, float), 0.0)
    n, h = mean.shape
    periods = np.maximum(np.broadcast_to(np.asarray(periods, float), (n,)), 0.0)
    cum = np.concatenate([np.zeros((n, 1)), np.cumsum(mean, axis=1)], axis=1)
    sig = np.concatenate([np.zeros((n, 1)), sigma_cum], axis=1)
    inside = np.minimum(periods, h)
    whole = np.minimum(np.floor(inside).astype(int), h - 1)
    frac = inside - whole
    rows = np.arange(n)
    demand = cum[rows, whole] + frac * (cum[rows, whole + 1] - cum[rows, whole])
    sigma = sig[rows, whole] + frac * (sig[rows, whole + 1] - sig[rows, whole])
    horizon_rate = cum[:, h] / h
    beyond = np.maximum(periods - h, 0.0)
    demand = demand + beyond * horizon_rate
    sigma = np.where(beyond > 0, sig[:, h] * np.sqrt(np.maximum(periods, 1e-12) / h), sigma)
    with np.errstate(divide="ignore", invalid="ignore"):
        rate = np.where(periods > 0, demand / periods, horizon_rate)
    return demand, sigma, rate


def expected_shortfall(mean: np.ndarray, sigma: np.ndarray, level: np.ndarray) -> np.ndarray:
    """``E[(X - level)+]`` for a normal ``X`` of ``mean`` and ``sigma`` (``(mean - level)+`` when ``sigma`` is 0)."""
    mean, sigma, level = np.broadcast_arrays(np.asarray(mean, float), np.asarray(sigma, float),
                                             np.asarray(level, float))
    with np.errstate(divide="ignore", invalid="ignore"):
        z = (level - mean) / sigma
    return np.where(sigma > 0, sigma * normal_loss(np.where(sigma > 0, z, 0.0)), np.maximum(mean - level, 0.0))


#: Bisection steps of :func:`level_for_fill_rate` (a thousandth of the bracket or better).
BISECTIONS = 30


def periodic_shortage(level: np.ndarray, interval: tuple[np.ndarray, np.ndarray],
                      before: tuple[np.ndarray, np.ndarray], cycle: tuple[np.ndarray, np.ndarray], *,
                      fill_rate: np.ndarray, window: np.ndarray, review: np.ndarray) -> np.ndarray:
    """Expected units short per review cycle of an (R, S) policy at stock level ``level``, demand being
    lost, not backordered, when the policy serves the share ``fill_rate`` of demand.

    The order placed at a review arrives after the ``window`` periods of the interval before its cycle
    (the lead time but one) and finds ``S - served_B`` on hand, ``served_B`` being what was sold in the
    window: not its demand ``D_B``, since demand lost there did not consume stock. So the cycle is short
    by ``(D_P - lost_B - S)+``, ``D_P`` the demand of the protection interval. In a steady state that
    serves the share ``f`` of demand, the window's losses are those of the cycles whose end it holds:
    ``q = floor(window / R)`` whole cycles and the end of one more, whose last ``r = window mod R``
    periods hold a share ``phi`` of its losses (at least ``r / R``; losses gather at a cycle's end)::

        lost_B = (1 - f) * E[D_R] * (q + phi)     short = E[(D_P - lost_B - S)+]

    with the spread of ``D_P`` less ``(1 - f^2)`` of the window's (what is sold varies as ``f`` of the
    demand). ``D_P``, ``D_B`` and ``D_R`` (demand of one cycle) are each the ``(mean, sigma)`` of a
    normal. Treating the window's losses as backorders (Hadley and Whitin's form, with a fixed point for
    the losses of the cycle before) over-served a low target by several points, the more so the longer
    the lead time is than the review: on Poisson demand, lead time 21 and review 7, a 90% target was
    served 94.8%; it is now 91.1%.
    """
    mean_p, sigma_p = interval
    _, sigma_b = before
    mean_r, _ = cycle
    f = np.asarray(fill_rate, float)
    whole, rest = np.divmod(np.asarray(window, float), np.asarray(review, float))
    spread = np.sqrt(np.maximum(sigma_p**2 - (1.0 - f**2) * sigma_b**2, 0.0))
    # phi from the shortfall of the interval without the cycle's last ``rest`` periods, at first-order losses.
    base = mean_p - (1.0 - f) * mean_r * (whole + rest / review)
    periods = window + review
    head = np.where(periods > 0, (periods - rest) / np.maximum(periods, 1e-12), 1.0)
    full = expected_shortfall(base, spread, level)
    part = expected_shortfall(base * head, spread * np.sqrt(head), level)
    with np.errstate(divide="ignore", invalid="ignore"):
        phi = np.clip(np.where(full > 0, 1.0 - part / full, 0.0), rest / review, 1.0)
    lost = (1.0 - f) * mean_r * (whole + phi)
    return expected_shortfall(mean_p - lost, spread, level)


def order_cycle_shortage(level: np.ndarray, interval: tuple[np.ndarray, np.ndarray], headroom: np.ndarray) -> np.ndarray:
    """Expected units short per order cycle of an (s, S) policy reviewed every period, reorder point
    ``level``: those of the protection interval beyond ``s`` less those beyond ``s + headroom`` (the
    order cycle's demand)."""
    mean_p, sigma_p = interval
    return expected_shortfall(mean_p, sigma_p, level) - expected_shortfall(mean_p, sigma_p, level + headroom)


def level_for_fill_rate(target: np.ndarray, cycle_demand: np.ndarray, shortage, start: np.ndarray) -> np.ndarray:  # noqa: ANN001
    """The stock level whose expected units short per order cycle, ``shortage(level)``, are
    ``(1 - target) * cycle_demand``; solved by bisection for every series at once.

    Args:
        target: Fill-rate target per series.
        cycle_demand: Expected demand of one order cycle.
        shortage: Expected units short per cycle at a level (decreasing), e.g. :func:`periodic_shortage`.
        start: A level that is usually enough (the upper end of the first bracket; raised where not).

    Returns:
        The level per series; 0 where no demand is expected (there is no share of nothing to serve).
    """
    cycle_demand = np.asarray(cycle_demand, float)
    goal = (1.0 - np.asarray(target, float)) * cycle_demand
    none = cycle_demand <= 1e-9
    goal = np.where(none, np.inf, goal)
    scale = np.maximum(cycle_demand, 1e-9)
    # Shortage falls as the level rises: bracket between no stock and far above the cycle's needs.
    lo = np.zeros_like(goal)
    hi = np.maximum(np.asarray(start, float), 1.0)
    for _ in range(40):  # grow the upper bracket until it is short by less than the goal
        too_low = shortage(hi) > goal
        if not too_low.any():
            break
        hi = np.where(too_low, 2.0 * hi + scale, hi)
    for _ in range(BISECTIONS):
        mid = 0.5 * (lo + hi)
        above = shortage(mid) > goal
        lo = np.where(above, mid, lo)
        hi = np.where(above, hi, mid)
    return np.where(none, 0.0, 0.5 * (lo + hi))


#: Bracket of the pooled safety factor (in sigmas) and its bisection steps (a millionth of a sigma).
POOLED_K = (-4.0, 30.0)
POOLED_BISECTIONS = 40


def pooled_level_for_fill_rate(target: np.ndarray, cycle_demand: np.ndarray, shortage, demand: np.ndarray,  # noqa: ANN001
                               sigma: np.ndarray, pool: np.ndarray, unit: np.ndarray | float = 0.0) -> np.ndarray:
    """Levels ``demand + k * sigma`` with one safety factor ``k`` for all the series of a pool that share a
    target: the one whose expected units short over them are ``(1 - target)`` of their cycle demand.

    Serving a share of the demand of many series with the least stock (a Lagrangian of stock against
    units short) equalises the stock-out probability per cycle, one ``k`` for all, rather than giving
    each series the target: a series whose target costs much stock (erratic, intermittent) serves a
    little less, one whose target is cheap a little more, and the pool serves its target with less.

    Args:
        target: Fill-rate target per series.
        cycle_demand: Expected demand of one order cycle.
        shortage: Expected units short per cycle at a level (decreasing), e.g. :func:`periodic_shortage`.
        demand: Forecast demand of the protection interval.
        sigma: Its error.
        pool: Pool of each series (e.g. one night of the nightly, one review of the replay).
        unit: Levels are rounded up to whole multiples of it (0: not rounded), as the orders that reach
            them are; the pool's units short are those of the rounded levels, so rounding does not
            over-serve the target.

    Returns:
        The level per series; 0 where no demand is expected.
    """
    k, levels = _pooled(target, cycle_demand, shortage, demand, sigma, pool, unit)
    return levels(k)


def pooled_safety_factors(target: np.ndarray, cycle_demand: np.ndarray, shortage, demand: np.ndarray,  # noqa: ANN001
                          sigma: np.ndarray, pool: np.ndarray) -> np.ndarray:
    """The safety factor of each series in :func:`pooled_level_for_fill_rate` (unrounded levels): one per
    pool and target. The nightly solves it over all its shards' series together, then sizes each shard
    with it (``order_levels(..., safety_factor=...)``), so a night decides the same in one shard or many."""
    return _pooled(target, cycle_demand, shortage, demand, sigma, pool, 0.0)[0]


def _pooled(target, cycle_demand, shortage, demand, sigma, pool, unit):  # noqa: ANN001, ANN202
    """Per series the pooled safety factor, and the function from safety factors to levels."""
    target = np.asarray(target, float)
    _, group = np.unique(np.stack([np.asarray(pool, float), target]), axis=1, return_inverse=True)
    group = group.reshape(-1)
    g = int(group.max()) + 1 if len(group) else 0
    none = np.asarray(cycle_demand, float) <= 1e-9

    def levels(k: np.ndarray) -> np.ndarray:
        return fixed_levels(k, demand, sigma, cycle_demand, unit)

    goal = np.bincount(group, weights=np.where(none, 0.0, (1.0 - target) * cycle_demand), minlength=g)
    lo, hi = np.full(g, POOLED_K[0]), np.full(g, POOLED_K[1])
    for _ in range(POOLED_BISECTIONS):
        mid = 0.5 * (lo + hi)
        short = np.bincount(group, weights=np.where(none, 0.0, shortage(levels(mid[group]))), minlength=g)
        above = short > goal
        lo = np.where(above, mid, lo)
        hi = np.where(above, hi, mid)
    return hi[group], levels


def fixed_levels(k: np.ndarray, demand: np.ndarray, sigma: np.ndarray, cycle_demand: np.ndarray,
                 unit: np.ndarray | float = 0.0) -> np.ndarray:
    """Levels ``demand + k * sigma`` (at least 0) rounded up to whole ``unit``s (0: not rounded); 0 where
    no demand is expected."""
    unit = np.broadcast_to(np.asarray(unit, float), np.shape(demand))
    rounded = unit > 0
    safe_unit = np.where(rounded, unit, 1.0)
    level = np.maximum(demand + k * sigma, 0.0)
    level = np.where(rounded, np.ceil(level / safe_unit - 1e-9) * safe_unit, level)
    return np.where(np.asarray(cycle_demand, float) <= 1e-9, 0.0, level)


@dataclass(frozen=True)
class OrderLevels:
    """Order levels of every series (each attribute ``[n]``); see the module docstring."""

    protection_periods: np.ndarray
    demand: np.ndarray
    rate: np.ndarray
    forecast_sigma: np.ndarray
    sigma: np.ndarray
    fill_rate: np.ndarray
    safety_factor: np.ndarray
    safety_stock: np.ndarray
    reorder_point: np.ndarray
    order_up_to: np.ndarray


def order_levels(mean: np.ndarray, sigma_cum: np.ndarray, *, lead: np.ndarray | float, lead_sd: np.ndarray | float,
                 review: np.ndarray | float, fill_rate: np.ndarray | float,
                 order_cycle: np.ndarray | float = 0.0, pool: np.ndarray | None = None,
                 calibration: ErrorCalibration | None = None, calibration_version: np.ndarray | int = 0,
                 unit: np.ndarray | float = 0.0, safety_factor: np.ndarray | None = None) -> OrderLevels:
    """Reorder point and order-up-to level of every series for its fill-rate target.

    Args:
        mean: ``[n, horizon]`` forecast per period from the origin (step 1 is the period after it).
        sigma_cum: ``[n, horizon]`` error of the cumulative forecast through each step.
        lead: Mean lead time in periods (``[n]`` or one for all, >= 1).
        lead_sd: Standard deviation of the lead time in periods.
        review: Periods between reviews (1: every period).
        fill_rate: Target share of demand served from stock, in (0, 1).
        order_cycle: Periods of demand the order-up-to level adds above the reorder point.
        pool: ``[n]`` pool of each series: the series of a pool that share a target serve it together,
            with one safety factor (:func:`pooled_level_for_fill_rate`; the nightly pools one night, the
            replay one review). ``None``: each series serves its own target.
        calibration: The measured out-of-sample error of the forecaster
            (:mod:`include.decisions.calibration`): ``sigma_cum`` is multiplied by the scale of its
            error class. ``None``: the backtest's ``sigma_cum`` as it is.
        calibration_version: Version of ``calibration`` each series uses (the replay's calibration grows
            with the errors known at each review).
        unit: Periodic review only, with ``pool``: order quantities are rounded up to multiples of it
            (0: continuous), and the levels with them.
        safety_factor: ``[n]`` pooled safety factors solved beforehand over more series than these
            (:func:`pooled_safety_factors`; the nightly's over all its shards): the levels are
            ``demand + k * sigma`` and ``pool`` is not solved again.

    Returns:
        The :class:`OrderLevels`.
    """
    n = np.asarray(mean).shape[0]

    def per_series(x: np.ndarray | float) -> np.ndarray:
        return np.broadcast_to(np.asarray(x, float), (n,)).astype(float)

    lead, lead_sd, review = per_series(lead), per_series(lead_sd), per_series(review)
    target, cycle = per_series(fill_rate), per_series(order_cycle)
    if ((target <= 0) | (target >= 1)).any():
        raise ValueError(f"fill_rate targets must lie strictly between 0 and 1, got {sorted(set(target[(target <= 0) | (target >= 1)]))}")
    lead, review = np.maximum(lead, 1.0), np.maximum(review, 1.0)
    protection = lead + review - 1.0
    demand, forecast_sigma, rate = protection_sums(mean, sigma_cum, protection)
    scale = 1.0 if calibration is None else calibration.scale_of(demand, forecast_sigma, calibration_version)
    spread = rate * np.maximum(lead_sd, 0.0)
    sigma = np.sqrt((scale * forecast_sigma)**2 + spread**2)
    periodic = cycle <= 0
    if periodic.all():
        cycle_demand = rate * review
        # The periods of the interval before the cycle (the lead time but one) and one cycle's demand.
        demand_b, sigma_fb, _ = protection_sums(mean, sigma_cum, protection - review)
        demand_r, sigma_fr, _ = protection_sums(mean, sigma_cum, review)
        shortage = partial(periodic_shortage, interval=(demand, sigma),
                           before=(demand_b, np.sqrt((scale * sigma_fb)**2 + spread**2)),
                           cycle=(demand_r, scale * sigma_fr), fill_rate=target, window=protection - review,
                           review=review)
    elif not periodic.any():
        cycle_demand = rate * cycle
        shortage = partial(order_cycle_shortage, interval=(demand, sigma), headroom=cycle_demand)
    else:
        raise ValueError("order_cycle must be 0 for every series (periodic review) or positive for every one")
    if safety_factor is not None:
        reorder = fixed_levels(np.asarray(safety_factor, float), demand, sigma, cycle_demand,
                               unit if periodic.all() else 0.0)
    elif pool is None:
        reorder = level_for_fill_rate(target, cycle_demand, shortage, demand + 6.0 * sigma + cycle_demand)
    else:
        reorder = pooled_level_for_fill_rate(target, cycle_demand, shortage, demand, sigma, np.asarray(pool),
                                             unit if periodic.all() else 0.0)
    reorder = np.maximum(reorder, 0.0)
    safety = reorder - demand
    with np.errstate(divide="ignore", invalid="ignore"):
        k = np.where(sigma > 0, safety / sigma, 0.0)
    return OrderLevels(protection_periods=protection, demand=demand, rate=rate, forecast_sigma=forecast_sigma,
                       sigma=sigma, fill_rate=target, safety_factor=k, safety_stock=safety, reorder_point=reorder,
                       order_up_to=reorder if periodic.all() else reorder + cycle_demand)


def order_quantity(order_up_to: np.ndarray, position: np.ndarray, *, case_pack: np.ndarray | float = 1.0,
                   moq: np.ndarray | float = 0.0, room: np.ndarray | float = np.inf) -> np.ndarray:
    """Units that bring each position up to its order-up-to level.

    Rounded up to whole case packs (``case_pack <= 0``: no rounding), at least the minimum order
    quantity (itself in whole packs), and at most the whole packs that fit ``room`` (a store's shelf
    space left). Nothing is ordered where the position already reaches the level.
    """
    need = np.maximum(np.asarray(order_up_to, float) - np.asarray(position, float), 0.0)
    pack = np.broadcast_to(np.asarray(case_pack, float), need.shape)
    rounded = pack > 0
    safe_pack = np.where(rounded, pack, 1.0)
    qty = np.where(rounded, np.ceil(need / safe_pack - 1e-9) * safe_pack, need)
    min_qty = np.where(rounded, np.ceil(np.asarray(moq, float) / safe_pack - 1e-9) * safe_pack, moq)
    qty = np.where(qty > 0, np.maximum(qty, min_qty), 0.0)
    room = np.maximum(np.broadcast_to(np.asarray(room, float), need.shape), 0.0)
    fits = np.where(rounded, np.floor(room / safe_pack + 1e-9) * safe_pack, room)
    return np.minimum(qty, fits)
