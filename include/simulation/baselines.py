"""The classic reorder rules a replay compares Shelfwise's policy with, as reorder levels over time.

A rule is computed once for the whole replay from the demand matrix ``D[series, period]``: column ``t``
of its arrays uses demand up to and including period ``t`` only (the order is placed at the end of the
period), so nothing leaks from the future. At a review, a series whose inventory position is below
``reorder_point`` orders ``max(order_up_to - position, min_order)``.

- :func:`odoo_min_max_levels`: Odoo-style min/max reorder rule: min = trailing average x (lead time +
  safety periods), max = min + trailing average x review period.
- :func:`erpnext_reorder_levels`: ERPNext-style fixed reorder level and reorder quantity, set once from
  the average demand of the warm-up history, or re-set every quarter.

Shelfwise's own levels are not here: the replay runs the production forecaster and the nightly's
replenishment policy (:mod:`include.simulation.forecasts`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["Levels", "erpnext_reorder_levels", "odoo_min_max_levels", "trailing_mean"]

@dataclass(frozen=True)
class Levels:
    """Reorder levels of one policy for every series and period (``[series, periods]``)."""

    reorder_point: np.ndarray
    order_up_to: np.ndarray
    min_order: np.ndarray | None = None


def trailing_mean(D: np.ndarray, window: int) -> np.ndarray:
    """Mean of the last ``window`` periods up to and including each period (fewer at the start)."""
    c = np.concatenate([np.zeros((D.shape[0], 1)), np.cumsum(D, axis=1)], axis=1)
    t = np.arange(D.shape[1])
    lo = np.maximum(t + 1 - window, 0)
    return (c[:, t + 1] - c[:, lo]) / (t + 1 - lo)


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
