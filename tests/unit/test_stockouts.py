"""Stock-outs read from zero runs (``include.demand.stockouts``), and the replay that gives them to the
forecaster and the calibration as the nightly gives its stock-out days."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from include.demand.stockouts import zero_run_stockouts
from include.simulation.forecasts import replay_calibration, rolling_forecasts
from include.simulation.replay import panel_from_frame


def _frame(units: np.ndarray) -> pd.DataFrame:
    n, t = units.shape
    dates = pd.date_range("2024-01-01", periods=t, freq="D")
    return pd.DataFrame({"unique_id": np.repeat([f"S1|I{i}" for i in range(n)], t), "ds": np.tile(dates, n),
                         "y": units.ravel().astype(float)})


def test_a_steady_seller_going_quiet_is_a_stockout_and_an_intermittent_one_is_not():
    rng = np.random.default_rng(1)
    steady = rng.poisson(6.0, 120).astype(float)
    steady[90:100] = 0.0
    # Sells on one day in five: ten zero days in a row are a 1-in-9 chance, its ordinary luck.
    slow = np.where(rng.random(120) < 0.2, 1.0, 0.0)
    slow[90:100] = 0.0
    slow[89] = slow[100] = 1.0
    mask = zero_run_stockouts(np.stack([steady, slow]))
    assert mask[0, 90:100].all() and not mask[0, :90].any() and not mask[0, 100:].any()
    assert not mask[1].any()


def test_a_run_is_judged_on_the_past_and_the_run_so_far():
    y = np.full((1, 60), 5.0)
    y[0, 40:50] = 0.0
    # For a series that never sold nothing (40 days seen: p0 = 1/42) the third zero day in a row crosses
    # 1 in 10,000, and marks the whole run so far.
    assert not zero_run_stockouts(y[:, :42]).any()
    assert zero_run_stockouts(y[:, :43])[0, 40:43].all()
    # The history before the run decides; what follows it does not change the run's verdict.
    assert (zero_run_stockouts(y)[0, :46] == zero_run_stockouts(y[:, :46])[0]).all()


def test_too_little_history_is_not_judged_and_missing_periods_break_a_run():
    y = np.full((1, 40), 4.0)
    y[0, :10] = np.nan  # before the series started
    y[0, 25:40] = 0.0
    assert not zero_run_stockouts(y).any()  # 15 observed days before the run: not enough
    z = np.full((1, 80), 4.0)
    z[0, 60:62] = 0.0
    z[0, 62] = np.nan
    z[0, 63:65] = 0.0
    mask = zero_run_stockouts(z)
    # Two runs of two: each alone is (1/62)^2 = 2.6e-4, above 1e-4 (one run of four would be below).
    assert not mask.any()


def test_weekly_periods_count_their_days():
    y = np.full((1, 30), 50.0)
    y[0, 20:23] = 0.0
    # 13 weeks before the run hold no zero: p0 = 1/15, and four zero weeks are 2e-5 (three are 3e-4).
    y[0, 23] = 0.0
    assert zero_run_stockouts(y, period_days=7)[0, 20:24].all()
    assert not zero_run_stockouts(y[:, :23], period_days=7).any()
    # As days, the same 20 periods are short of the 28 observed days a series needs.
    assert not zero_run_stockouts(y).any()


def test_ordinary_intermittent_demand_is_almost_never_read_as_a_stockout():
    rng = np.random.default_rng(11)
    rates = rng.uniform(0.2, 8.0, size=(400, 1))
    shape = rng.uniform(0.6, 6.0, size=(400, 1))
    y = rng.poisson(rates * rng.gamma(shape, 1.0 / shape, size=(400, 730))).astype(float)
    zeros = (y == 0).sum()
    assert zero_run_stockouts(y).sum() < 0.005 * zeros


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="alpha"):
        zero_run_stockouts(np.ones((1, 5)), alpha=1.0)
    with pytest.raises(ValueError, match="series, periods"):
        zero_run_stockouts(np.ones(5))
    assert zero_run_stockouts(np.ones((3, 0))).shape == (3, 0)


def test_the_replay_forecasts_demand_through_a_stockout_not_its_zero_sales():
    rng = np.random.default_rng(5)
    units = rng.poisson(6.0, size=(2, 150)).astype(float)
    units[:, 130:] = 0.0  # three weeks of empty shelf up to the origin
    panel = panel_from_frame(_frame(units), "D")
    inferred = rolling_forecasts(panel, np.array([149]), 28)
    as_sold = rolling_forecasts(panel, np.array([149]), 28, infer_stockouts=False)
    assert inferred.mean[:, 0].mean() == pytest.approx(6.0, rel=0.25)
    assert as_sold.mean[:, 0].mean() < 1.0


def test_the_calibration_leaves_out_intervals_with_a_stockout_read_from_the_zero_runs():
    # 300 series forecast 5 a day at reviews 50, 57 and 64; they sell 5 a day, but nothing on days 51-57
    # (a stock-out: never a zero day before) and 6 a day on days 58-64. The first review's interval
    # (51-57) is left out with the inference and counts as a huge over-forecast without it.
    n, reviews = 300, np.array([50, 57, 64])
    mean = np.full((3, n, 10), 5.0)
    sigma = np.sqrt(5.0 * np.arange(1, 11.0))[None, None, :].repeat(3, 0).repeat(n, 1)
    demand = np.full((n, 80), 5.0)
    demand[:, 51:58] = 0.0
    demand[:, 58:65] = 6.0
    interval = np.array([35.0]), np.array([np.sqrt(35.0)])
    plain = replay_calibration(mean, sigma, reviews, demand, np.full(n, 7))
    inferred = replay_calibration(mean, sigma, reviews, demand, np.full(n, 7), stockouts_period_days=1)
    assert plain.scale_of(*interval, 1)[0] == pytest.approx(np.sqrt(35.0))  # z = -35 / sqrt(35)
    assert inferred.scale_of(*interval, 1)[0] == 1.0  # nothing known yet
    # Review 64 knows the second interval (days 58-64, 42 sold against 35) and only it.
    assert inferred.scale_of(*interval, 2)[0] == pytest.approx(7 / np.sqrt(35.0))
    assert plain.scale_of(*interval, 2)[0] == pytest.approx(np.sqrt((35.0 + 49 / 35) / 2))
