"""The production forecaster at every review origin of a replay, and the policy's levels on its output.

At each origin the history through that period goes to :func:`models.forecasting.forecast` (the
vectorised path the nightly runs, with the same candidate selection and the panel's known regressors and
events, planned values for the periods ahead), and :func:`include.decisions.replenishment.order_levels`
turns the forecast into the reorder point and order-up-to level of every series, exactly as the nightly's
``propose_replenishment`` does. Nothing after the origin is seen except the regressors, which are a
published plan (prices, promotion calendar, events).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from include.decisions.calibration import ErrorCalibration, rolling_calibration, standardized_errors
from include.decisions.replenishment import forecast_matrices, order_levels, protection_sums
from include.demand.history_file import SEASON_LENGTH
from include.demand.stockouts import zero_run_stockouts
from include.simulation.panel import DemandPanel

__all__ = ["OriginForecasts", "ReviewForecasts", "policy_levels", "replay_calibration", "rolling_forecasts"]



@dataclass
class OriginForecasts:
    """Forecasts made at a series of origins.

    Attributes:
        origins: ``[O]`` period index of each origin (the forecast saw periods ``0..origin``).
        mean: ``[n, O, horizon]`` forecast per step after each origin.
        sigma_cum: ``[n, O, horizon]`` error of the cumulative forecast through each step.
        models: Series per model chosen, summed over origins.
        seconds: Time spent forecasting.
    """

    origins: np.ndarray
    mean: np.ndarray
    sigma_cum: np.ndarray
    models: dict[str, int]
    seconds: float


def _long(panel: DemandPanel, horizon: int) -> tuple[pd.DataFrame, np.ndarray]:
    """The panel as the forecaster's long history, and the planned regressors of ``horizon`` periods past
    its end (regular: no driver, no event), with the period index of each row."""
    n, t = panel.demand.shape
    step = pd.Timedelta(days=panel.period_days)
    dates = panel.dates.append(pd.DatetimeIndex([panel.dates[-1] + step * (k + 1) for k in range(horizon)]))
    ids = pd.array(np.repeat(panel.ids.astype(str), t + horizon), dtype="string")
    frame = pd.DataFrame({"unique_id": ids, "ds": np.tile(dates.to_numpy(), n),
                          "y": np.concatenate([panel.demand, np.full((n, horizon), np.nan)], axis=1).ravel()})
    for name, values in panel.regressors.items():
        frame[name] = np.concatenate([values, np.zeros((n, horizon))], axis=1).ravel()
    if panel.events is not None:
        frame["event"] = np.concatenate([panel.events, np.full((n, horizon), None, dtype=object)], axis=1).ravel()
    return frame, np.tile(np.arange(t + horizon), n)


def rolling_forecasts(panel: DemandPanel, origins: np.ndarray, horizon: int, *,
                      infer_stockouts: bool = True) -> OriginForecasts:
    """The production forecast at each origin, every series at once.

    Args:
        panel: The history.
        origins: Period indices; each forecast sees the history through its origin.
        horizon: Periods forecast after each origin.
        infer_stockouts: A panel has sales, not stock: give the forecaster the zero runs only a stock-out
            explains (:func:`include.demand.stockouts.zero_run_stockouts`, judged on the history through
            each origin) as ``censored`` days, as the nightly gives it the days its stock records show
            empty. False: every zero is demand.
    """
    from models.forecasting import forecast

    n = len(panel.ids)
    frame, period = _long(panel, horizon)
    regressors = list(panel.regressors)
    known = [*regressors, *(["event"] if panel.events is not None else [])]
    mean = np.zeros((n, len(origins), horizon))
    sigma = np.zeros_like(mean)
    models: dict[str, int] = {}
    position = pd.Index(panel.ids.astype(str))
    start = time.perf_counter()
    for o, origin in enumerate(origins):
        history = frame[period <= origin]
        if infer_stockouts:
            empty = zero_run_stockouts(panel.demand[:, : origin + 1], period_days=panel.period_days)
            history = history.assign(censored=empty.ravel())
        ahead = (period > origin) & (period <= origin + horizon)
        future = frame.loc[ahead, ["unique_id", "ds", *known]]
        result = forecast(history, horizon, season_length=SEASON_LENGTH[panel.freq], freq=panel.freq,
                          regressors=regressors, future=future if known else None)
        mean[:, o], sigma[:, o] = forecast_matrices(result.forecasts, position, horizon)
        for model, count in result.series["model"].value_counts().items():
            models[model] = models.get(model, 0) + int(count)
    return OriginForecasts(np.asarray(origins), mean, sigma, models, time.perf_counter() - start)


def replay_calibration(mean: np.ndarray, sigma: np.ndarray, reviews: np.ndarray, demand: np.ndarray,
                       protection: np.ndarray, *, stockouts_period_days: int | None = None) -> ErrorCalibration:
    """The calibration each review may use: the errors of the earlier reviews' forecasts over their
    protection interval, each from the first review at which its whole interval has been sold.

    Args:
        mean: ``[R, n, width]`` forecast per step after each review.
        sigma: ``[R, n, width]`` error of the cumulative forecast from each review.
        reviews: ``[R]`` period index of each review.
        demand: ``[n, T]`` actual demand (NaN: not observed, no demand).
        protection: ``[n]`` protection interval in whole periods.
        stockouts_period_days: With the days a period lasts, an interval holding a stock-out read from the
            zero runs (:func:`include.demand.stockouts.zero_run_stockouts`, judged on the history up to the
            review that first uses the interval) is left out, as the nightly leaves out an interval with a
            day its stock records show empty. None: every interval counts.

    Returns:
        A calibration with one version per review.
    """
    n_reviews, n, _ = mean.shape
    t = demand.shape[1]
    periods = np.tile(protection, n_reviews)
    forecast, fsigma, _ = protection_sums(mean.reshape(n_reviews * n, -1), sigma.reshape(n_reviews * n, -1), periods)
    end = reviews[:, None] + protection[None, :].astype(int)
    past = end < t
    rows = np.broadcast_to(np.arange(n), end.shape)

    def interval_sums(values: np.ndarray) -> np.ndarray:
        cum = np.concatenate([np.zeros((n, 1)), np.cumsum(values, axis=1)], axis=1)
        return np.where(past, cum[rows, np.minimum(end, t - 1) + 1] - cum[rows, reviews[:, None] + 1], np.nan)

    actual = interval_sums(np.nan_to_num(demand, nan=0.0))
    known_from = np.searchsorted(reviews, end, side="left")
    if stockouts_period_days is not None:
        empty = np.zeros_like(actual)
        for k in np.unique(known_from[past & (known_from < n_reviews)]):
            seen = min(int(reviews[k]) + 1, t)
            mask = np.zeros((n, t))
            mask[:, :seen] = zero_run_stockouts(demand[:, :seen], period_days=stockouts_period_days)
            empty = np.where(known_from == k, interval_sums(mask), empty)
        actual = np.where(empty > 0, np.nan, actual)
    z = standardized_errors(forecast.reshape(n_reviews, n), fsigma.reshape(n_reviews, n), actual)
    return rolling_calibration(z, forecast.reshape(n_reviews, n), fsigma.reshape(n_reviews, n), known_from, n_reviews)


@dataclass
class ReviewForecasts:
    """What the policy reads at each review: the latest forecast from the review on, and the calibration
    of the errors known by then.

    Attributes:
        reviews: ``[R]`` period index of each review.
        mean: ``[R, n, width]`` forecast per step after each review.
        sigma: ``[R, n, width]`` error of the cumulative forecast from each review.
        calibration: One version per review (``None``: the backtest's ``sigma_cum`` as it is).
        lead: ``[n]`` lead time of each series in periods.
        lead_sd: Spread of the lead times in periods.
        review: Periods between reviews.
        pack: Order multiple the levels are rounded up to (0: continuous).
    """

    reviews: np.ndarray
    mean: np.ndarray
    sigma: np.ndarray
    calibration: ErrorCalibration | None
    lead: np.ndarray
    lead_sd: float
    review: int
    pack: float

    @classmethod
    def of(cls, fc: OriginForecasts, reviews: np.ndarray, *, lead: np.ndarray, lead_sd: float, review: int,
           demand: np.ndarray | None = None, pack: float = 0.0, stockouts_period_days: int | None = None
           ) -> ReviewForecasts:
        """A review between two forecast origins uses the latest forecast, read from the review onwards.
        With the actual ``demand``, each review scales ``sigma_cum`` by the calibration of the errors known
        by then (:func:`replay_calibration`, which leaves out intervals with a stock-out read from the zero
        runs when given ``stockouts_period_days``)."""
        n, horizon = fc.mean.shape[0], fc.mean.shape[2]
        origin = np.searchsorted(fc.origins, reviews, side="right") - 1
        offset = reviews - fc.origins[origin]
        if (origin < 0).any() or (offset >= horizon).any():
            raise ValueError("a review comes before the first forecast or past the horizon of the latest one")
        width = horizon - int(offset.max())
        mean = np.empty((len(reviews), n, width))
        sigma = np.empty_like(mean)
        for r, (o, off) in enumerate(zip(origin, offset, strict=True)):
            mean[r] = fc.mean[:, o, off:off + width]
            # The error of the sum from the review on: what accumulates after the steps already behind it.
            done = fc.sigma_cum[:, o, off - 1:off] ** 2 if off else 0.0
            sigma[r] = np.sqrt(np.maximum(fc.sigma_cum[:, o, off:off + width] ** 2 - done, 0.0))
        calibration = None
        if demand is not None:
            calibration = replay_calibration(mean, sigma, reviews, demand, np.maximum(lead, 1) + review - 1,
                                             stockouts_period_days=stockouts_period_days)
        return cls(np.asarray(reviews), mean, sigma, calibration, np.asarray(lead), lead_sd, review, pack)

    def levels(self, fill_rate: float, r: np.ndarray | None = None) -> np.ndarray:
        """``[len(r), n]`` order-up-to levels of the reviews ``r`` (default: all) for one target, sized in
        one call of the replenishment core, each review a pool of its own (as each night of the nightly)."""
        r = np.arange(len(self.reviews)) if r is None else np.atleast_1d(r)
        n, width = self.mean.shape[1], self.mean.shape[2]
        version = np.repeat(r, n)
        lv = order_levels(self.mean[r].reshape(-1, width), self.sigma[r].reshape(-1, width),
                          lead=np.tile(self.lead, len(r)), lead_sd=self.lead_sd, review=self.review,
                          fill_rate=fill_rate, pool=version, calibration=self.calibration,
                          calibration_version=version, unit=self.pack)
        return lv.order_up_to.reshape(len(r), n)


def policy_levels(fc: OriginForecasts, reviews: np.ndarray, shape: tuple[int, int], *, lead: np.ndarray,
                  lead_sd: float, review: int, fill_rates: Sequence[float],
                  demand: np.ndarray | None = None, pack: float = 0.0) -> list[np.ndarray]:
    """``[n, T]`` order-up-to level of the production policy at each review (0 elsewhere), one per
    fill-rate target, each target planned as it is (no service feedback; :class:`ReviewForecasts`)."""
    inputs = ReviewForecasts.of(fc, reviews, lead=lead, lead_sd=lead_sd, review=review, demand=demand, pack=pack)
    out = []
    for target in fill_rates:
        levels = np.zeros(shape)
        levels[:, reviews] = inputs.levels(target).T
        out.append(levels)
    return out
