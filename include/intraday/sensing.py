"""Is a series selling faster today than its forecast allows? A sequential likelihood-ratio test.

Each series (item x location x channel) is read hour by hour: ``x_t`` units sold against ``lambda_t``
expected (the night's daily forecast spread by the intraday profile). The forecast is uncertain, and its
error is shared by every hour of the day: the null is that the hours are Poisson with rate
``theta * lambda_t``, one ``theta`` for the whole day drawn from a gamma of mean 1 and variance ``1 / r``,
so the day's total is negative binomial with the forecast's mean and its measured error
(:func:`dispersion`). A surge that began at hour ``tau`` multiplies the rate from ``tau`` on by
``shock_ratio`` (``rho``). With ``theta`` integrated out, the likelihood ratio of the hours seen through
``t`` is, with ``X``, ``Lambda`` the units sold and expected through ``t`` and ``X_tau``, ``Lambda_tau``
those from ``tau`` on::

    log LR_tau(t) = X_tau log(rho) - (r + X) log(1 + (rho - 1) Lambda_tau / (r + Lambda))

A uniform excess over the whole day is what a wrong forecast looks like and weighs little; an excess that
starts during the day, or one far beyond the forecast's usual error, weighs a lot. The statistic is the
largest ``log LR_tau`` over the onsets ``tau`` so far, and it alarms at ``h``. Each ``LR_tau`` is a ratio of
two joint likelihoods, hence a martingale under the null, so by Ville's inequality it ever reaches
``e^h`` with probability at most ``e^-h``; over the ``T`` possible onsets of a day the false-alarm
probability is at most ``T e^-h``. The threshold ``h = log(T / alpha)`` therefore keeps false alarms below
the policy's rate ``alpha`` per series and day, whatever the series' volume, without simulation. The onset
is the ``tau`` of the largest ratio when it alarmed; the surge's size is estimated from the sales since.

That bound holds whatever the volume but is loose: the ratios of neighbouring onsets move together, and
few null days come near it. Given the whole day's expectation, :func:`calibrated_threshold` instead draws
null days of the series themselves (their hourly expectation and forecast error, as the null says) and
takes the quantile of the day's largest statistic that leaves the policy's rate: the same false-alarm rate
under the same model, at a much lower threshold. It never exceeds the bound, and it is seeded (a re-run of
an hour alarms alike).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: Gamma shape of a forecast whose error is within counting noise (a Poisson day).
POISSON_SHAPE = 1e9
#: Expected units of pseudo-history that keep a surge estimate from one sale near the forecast.
RATIO_PRIOR_UNITS = 1.0


@dataclass(frozen=True)
class SensingParams:
    """How sensitive the test is.

    Attributes:
        shock_ratio: The surge the test is tuned to find, as a multiple of the forecast (> 1).
        false_alarms_per_1000_series_day: The most false alarms the threshold allows, per 1,000 series
            and day of trading.
        looks_per_day: Hours at which a series can alarm in a day (the union bound's ``T``).
        calibrate: Set the threshold by simulating null days (:func:`calibrated_threshold`) when the
            day's expectation is known; else the bound.
    """

    shock_ratio: float = 2.0
    false_alarms_per_1000_series_day: float = 1.0
    looks_per_day: int = 24
    calibrate: bool = True

    def __post_init__(self) -> None:
        if not self.shock_ratio > 1.0:
            raise ValueError(f"shock_ratio must be above 1, got {self.shock_ratio}")
        if not 0.0 < self.false_alarms_per_1000_series_day < 1000.0:
            raise ValueError("false_alarms_per_1000_series_day must lie in (0, 1000), "
                             f"got {self.false_alarms_per_1000_series_day}")
        if self.looks_per_day < 1:
            raise ValueError(f"looks_per_day must be at least 1, got {self.looks_per_day}")

    @property
    def alpha(self) -> float:
        """False alarms allowed per series and day."""
        return self.false_alarms_per_1000_series_day / 1000.0

    @property
    def threshold(self) -> float:
        """The bound's threshold ``h = log(T / alpha)``."""
        return float(np.log(self.looks_per_day / self.alpha))


@dataclass(frozen=True)
class Sensing:
    """The test's verdict for every series after the hours seen so far (each attribute ``[n]``).

    Attributes:
        alarm: The series alarmed today.
        alarm_hour: Index of the first hour at which it alarmed (-1: none).
        onset_hour: Index of the hour the surge began, by the CUSUM (-1: no alarm).
        statistic: The CUSUM after the last hour seen.
        sold_since_onset: Units sold from the onset through the last hour (0 without alarm).
        expected_since_onset: Units the forecast expected over the same hours.
        ratio: Estimated multiple of the forecast since the onset (1 without alarm).
        threshold: The threshold the statistic was held to.
    """

    alarm: np.ndarray
    alarm_hour: np.ndarray
    onset_hour: np.ndarray
    statistic: np.ndarray
    sold_since_onset: np.ndarray
    expected_since_onset: np.ndarray
    ratio: np.ndarray
    threshold: float = float("nan")


#: Null days drawn per false alarm the calibration's quantile rests on.
DRAWS_PER_ALARM = 50
#: Most null days drawn (memory: about 200 bytes each, in chunks).
MAX_DRAWS = 400_000
_CHUNK = 50_000


def dispersion(mean: np.ndarray, sigma: np.ndarray) -> np.ndarray:
    """Gamma shape ``r`` of the day's forecast multiplier, from the day's forecast ``mean`` and error ``sigma``.

    The day's total is negative binomial, variance ``mu + mu^2 / r``, which equals ``sigma^2`` at
    ``r = mu^2 / (sigma^2 - mu)``. Where the error is within counting noise (``sigma^2 <= mu``) the day is
    Poisson (``r`` very large).
    """
    mean = np.maximum(np.asarray(mean, float), 0.0)
    sigma = np.maximum(np.asarray(sigma, float), 0.0)
    excess = sigma**2 - mean
    with np.errstate(divide="ignore", invalid="ignore"):
        shape = np.where((excess > 0) & (mean > 0), mean**2 / excess, POISSON_SHAPE)
    return np.clip(shape, 1e-3, POISSON_SHAPE)


def log_ratios(sold: np.ndarray, expected: np.ndarray, shape: np.ndarray, ratio: float, through: int) -> np.ndarray:
    """``[n, through + 1]`` log likelihood ratio, through hour ``through``, of a surge begun at each hour ``tau``.

    Args:
        sold: ``[n, T]`` units sold per hour.
        expected: ``[n, T]`` units the forecast expected per hour.
        shape: ``[n]`` gamma shape ``r`` of the day's forecast multiplier (:func:`dispersion`).
        ratio: The surge multiple of the alternative (> 1).
        through: The last hour seen (index into ``T``).
    """
    x = np.maximum(np.asarray(sold, float)[:, : through + 1], 0.0)
    lam = np.maximum(np.asarray(expected, float)[:, : through + 1], 0.0)
    r = np.asarray(shape, float).reshape(-1, 1)
    total_x, total_lam = x.sum(axis=1, keepdims=True), lam.sum(axis=1, keepdims=True)
    # Units sold and expected from each onset tau through the last hour.
    x_tau = np.cumsum(x[:, ::-1], axis=1)[:, ::-1]
    lam_tau = np.cumsum(lam[:, ::-1], axis=1)[:, ::-1]
    return x_tau * np.log(ratio) - (r + total_x) * np.log1p((ratio - 1.0) * lam_tau / (r + total_lam))


def day_statistic(sold: np.ndarray, expected: np.ndarray, shape: np.ndarray, ratio: float) -> np.ndarray:
    """``[n, T]``: the statistic (largest log ratio over the onsets so far) after each hour of the day."""
    hours = np.asarray(sold).shape[1]
    return np.stack([log_ratios(sold, expected, shape, ratio, t).max(axis=1) for t in range(hours)], axis=1)


def calibrated_threshold(day_expected: np.ndarray, shape: np.ndarray, params: SensingParams, *, seed: int = 0) -> float:
    """The threshold that null days of these series cross at the policy's rate (never above the bound).

    Draws ``DRAWS_PER_ALARM / alpha`` days (at most :data:`MAX_DRAWS`) of series picked at random, each
    with its forecast multiplier ``theta ~ Gamma(r, 1 / r)`` and Poisson hours at ``theta`` times its
    expectation, runs the test over the whole day, and takes the ``1 - alpha`` quantile of the day's largest
    statistic.

    Args:
        day_expected: ``[n, 24]`` units each series is expected to sell in each hour of the day.
        shape: ``[n]`` gamma shape of each day's forecast multiplier.
        params: The test's settings (its shock ratio and false-alarm rate).
        seed: Seed of the draws.
    """
    day_expected = np.maximum(np.asarray(day_expected, float), 0.0)
    shape = np.asarray(shape, float)
    live = np.flatnonzero(day_expected.sum(axis=1) > 0)
    if len(live) == 0:
        return params.threshold
    rng = np.random.default_rng([seed, 20_261_202])
    draws = int(min(MAX_DRAWS, np.ceil(DRAWS_PER_ALARM / params.alpha)))
    peaks = []
    for start in range(0, draws, _CHUNK):
        rows = live[rng.integers(len(live), size=min(_CHUNK, draws - start))]
        lam, r = day_expected[rows], shape[rows]
        x = rng.poisson(lam * rng.gamma(r, 1.0 / r)[:, None]).astype(float)
        peaks.append(day_statistic(x, lam, r, params.shock_ratio).max(axis=1))
    return float(min(params.threshold, np.quantile(np.concatenate(peaks), 1.0 - params.alpha)))


def sense(sold: np.ndarray, expected: np.ndarray, shape: np.ndarray, params: SensingParams, *,
          day_expected: np.ndarray | None = None, seed: int = 0) -> Sensing:
    """Run the test over the hours seen so far, for every series at once.

    Args:
        sold: ``[n, T]`` units sold per hour since the day opened (``T`` hours seen).
        expected: ``[n, T]`` units the forecast expected in the same hours.
        shape: ``[n]`` gamma shape of each day's forecast multiplier (:func:`dispersion`).
        params: The test's :class:`SensingParams`.
        day_expected: ``[n, 24]`` the whole day's expectation: with ``params.calibrate``, the threshold is
            :func:`calibrated_threshold`'s; without it, the bound.
        seed: Seed of the calibration's draws.

    Returns:
        The :class:`Sensing` of every series.
    """
    sold = np.asarray(sold, float)
    expected = np.asarray(expected, float)
    if sold.shape != expected.shape or sold.ndim != 2:
        raise ValueError(f"sold {sold.shape} and expected {expected.shape} must both be [series, hours]")
    n, hours = sold.shape
    h = params.threshold
    if params.calibrate and day_expected is not None and n:
        h = calibrated_threshold(day_expected, shape, params, seed=seed)
    stat = np.zeros(n)
    alarm_hour = np.full(n, -1)
    onset = np.full(n, -1)
    for t in range(hours):
        ratios = log_ratios(sold, expected, shape, params.shock_ratio, t)
        stat = ratios.max(axis=1)
        fresh = (stat >= h) & (alarm_hour < 0)
        alarm_hour[fresh] = t
        # Of onsets that fit equally well (the closed hours before opening), the latest.
        onset[fresh] = t - ratios[fresh][:, ::-1].argmax(axis=1)
    alarm = alarm_hour >= 0
    since = np.arange(hours)[None, :] >= np.where(alarm, onset, hours)[:, None]
    sold_since = (sold * since).sum(axis=1)
    expected_since = (expected * since).sum(axis=1)
    ratio = np.where(alarm, (sold_since + RATIO_PRIOR_UNITS) / (expected_since + RATIO_PRIOR_UNITS), 1.0)
    return Sensing(alarm=alarm, alarm_hour=alarm_hour, onset_hour=onset, statistic=stat,
                   sold_since_onset=sold_since, expected_since_onset=expected_since, ratio=ratio, threshold=h)
