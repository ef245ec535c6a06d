"""Stock-outs read from sales alone: a run of zero periods that only an empty shelf explains.

The nightly knows each day's stock, and a day that ended with none is ``censored``: what sold is a floor on
demand, not demand, and the forecaster and the error calibration leave it out
(:mod:`include.demand.history`). A sales history without stock records (the M5 sample, an analyst's file,
a replay panel) says nothing of the shelf, and its stock-outs read as days nobody wanted the item: an item
that sold five a day and then nothing for three weeks gets a forecast of zero, and the policy orders none
just as the shelf is refilled and the sales come back. On the M5 sample a third of the units the replay
lost at 98% fill were lost within four months after a zero run of four weeks or more.

:func:`zero_run_stockouts` takes a run of zero periods as a stock-out when the series' own share of zero
periods before it makes the run improbable: with ``p0`` the share of zero periods among the observed
periods of the :data:`WINDOW_DAYS` before the run (add-one smoothed, so a series that never sold nothing
still has a small ``p0``), a run of ``L`` zeros is a stock-out when ``p0 ** L`` is below :data:`ALPHA`.
For a series that sells on four days in five that is 6 zero days in a row; for one that sells on one day
in five, 42. On ordinary gamma-Poisson demand (400 series, 0.2 to 8 a day, two years) 0.2% of the zero
days are read as stock-outs; on the M5 sample (its last 4 years) 19% of them, in 150 runs of 7 to 157
days (10th to 90th percentile; 95% of those days in runs of two weeks or more). A series needs
:data:`MIN_OBSERVED_DAYS` observed days before the run to be judged. Each period is judged on what came
before it and the run so far, never on what follows: a run in progress becomes a stock-out on the day it
becomes improbable, as it would in a nightly, and a replay calls this on the history up to each origin.

What this cannot tell apart: an item taken off the range (its demand really is zero from then on) reads
as a stock-out for as long as the run lasts. No order follows from it while nothing sells (the position
stays at its level), the same as a stock-out day the nightly reads from stock.
"""

from __future__ import annotations

import numpy as np

__all__ = ["ALPHA", "MIN_OBSERVED_DAYS", "WINDOW_DAYS", "zero_run_stockouts"]

#: Chance below which a run of zeros is not the series' ordinary luck.
ALPHA = 1e-4
#: Days before a run whose zero share sets how likely the run is.
WINDOW_DAYS = 91
#: Observed days a series needs in that window before its runs are judged.
MIN_OBSERVED_DAYS = 28


def zero_run_stockouts(demand: np.ndarray, *, period_days: int = 1, alpha: float = ALPHA,
                       window_days: int = WINDOW_DAYS, min_observed_days: int = MIN_OBSERVED_DAYS) -> np.ndarray:
    """``[n, T]`` bool: the zero periods that belong to a run too long for the series' zero share.

    Args:
        demand: ``[n, T]`` units per period; NaN is a period not observed (before the series started, or
            missing), which ends a run and counts in no share.
        period_days: Days one period lasts (1 daily, 7 weekly): the window and the minimum are in days.
        alpha: A run whose chance under the series' zero share is below this is a stock-out.
        window_days: Days before a run whose periods give the zero share.
        min_observed_days: Observed days the window needs before a run is judged.

    Returns:
        True at every period of every improbable run (through the last period for a run in progress).
    """
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must lie in (0, 1), got {alpha}")
    y = np.asarray(demand, float)
    if y.ndim != 2:
        raise ValueError(f"demand must be [series, periods], got shape {y.shape}")
    n, t = y.shape
    if t == 0:
        return np.zeros((n, 0), dtype=bool)
    observed = np.isfinite(y)
    zero = observed & (y <= 0)
    index = np.arange(t)
    before = np.concatenate([np.zeros((n, 1), bool), zero[:, :-1]], axis=1)
    after = np.concatenate([zero[:, 1:], np.zeros((n, 1), bool)], axis=1)
    # First and last period of the run each zero period belongs to.
    start = np.maximum.accumulate(np.where(zero & ~before, index, -1), axis=1)
    end = np.minimum.accumulate(np.where(zero & ~after, index, t)[:, ::-1], axis=1)[:, ::-1]
    length = np.where(zero, end - start + 1, 0)
    start = np.maximum(start, 0)
    window = max(int(np.ceil(window_days / period_days)), 1)
    lo = np.maximum(start - window, 0)
    rows = np.arange(n)[:, None]
    zeros_cum = np.concatenate([np.zeros((n, 1)), np.cumsum(zero, axis=1)], axis=1)
    seen_cum = np.concatenate([np.zeros((n, 1)), np.cumsum(observed, axis=1)], axis=1)
    zeros_before = zeros_cum[rows, start] - zeros_cum[rows, lo]
    seen_before = seen_cum[rows, start] - seen_cum[rows, lo]
    p0 = (zeros_before + 1.0) / (seen_before + 2.0)
    judged = seen_before * period_days >= min_observed_days
    return zero & judged & (length * np.log(p0) < np.log(alpha))
