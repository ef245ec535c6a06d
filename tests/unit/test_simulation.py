"""Unit tests for the replay simulator and its metrics, on hand-worked cases, and the proof that its
Shelfwise policy is the production forecaster plus the nightly's replenishment core."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from include.decisions.replenishment import order_levels
from include.simulation import metrics
from include.simulation.baselines import Levels, erpnext_reorder_levels, odoo_min_max_levels
from include.simulation.forecasts import policy_levels, rolling_forecasts
from include.simulation.replay import (
    ReplayConfig,
    compare,
    dominates,
    fill_error,
    inventory_at_fill_rate,
    panel_from_frame,
    replay,
    simulate,
)
from models.forecasting import forecast


def _frame(units: np.ndarray, start: str = "2024-01-01", freq: str = "D", **columns: np.ndarray) -> pd.DataFrame:
    """Long frame of ``units[series, period]``, series ``S1|I<i>``."""
    n, t = units.shape
    dates = pd.date_range(start, periods=t, freq=freq if freq == "D" else "7D")
    extra = {name: np.asarray(v).ravel() for name, v in columns.items()}
    return pd.DataFrame({"unique_id": np.repeat([f"S1|I{i}" for i in range(n)], t), "ds": np.tile(dates, n),
                         "y": units.ravel().astype(float), **extra})


def test_metrics_by_hand():
    demand = np.array([[4.0, 0.0, 6.0], [2.0, 2.0, 0.0]])
    served = np.array([[4.0, 0.0, 3.0], [2.0, 1.0, 0.0]])
    on_hand = np.array([[2.0, 2.0, 0.0], [1.0, 0.0, 5.0]])
    assert metrics.fill_rate(demand, served) == 10 / 14
    assert metrics.lost_sales(demand, served) == 4.0
    assert metrics.stockout_periods(demand, served) == 2
    assert metrics.average_on_hand(on_hand) == 10 / 3
    assert metrics.average_on_hand(on_hand, np.array([1.0, 2.0])) == (2 + 4 + 10) / 3
    # 10 units sold in 3 days against 10/3 on hand: 3 turns in 3 days, 365 a year.
    assert metrics.inventory_turns(10.0, 10 / 3, 3, "D") == pytest.approx(365.0)
    assert metrics.fill_rate([0, 0], [0, 0]) is None
    assert metrics.inventory_turns(5.0, 0.0, 3) is None
    s = metrics.summarize(demand, served, on_hand, np.array([[1, 0, 0], [0, 0, 1]]), freq="D")
    assert (s["orders"], s["stockout_periods"], s["lost_units"]) == (2, 2, 4.0)


def test_lost_sales_and_arrivals_by_hand():
    # One series, demand 3 a period, lead time 2, review 1, order up to 9 from period 1 on.
    # Start (warm-up 1): stock = level of period 0 = 9.
    D = np.full((1, 6), 3.0)
    up = np.full((1, 6), 9.0)
    sim = simulate(D, [Levels(up, up)], np.array([2]), review=1, warmup=1)
    # Period 1: sell 3 (6 left), position 6 < 9: order 3, arriving at period 3. Period 2: sell 3
    # (3 left), position 3 + 3 = 6: order 3 for period 4. Period 3: 3 arrive, sell 3 (3 left)...
    assert sim["served"][0, 0].tolist() == [3, 3, 3, 3, 3]
    assert sim["on_hand"][0, 0].tolist() == [6, 3, 3, 3, 3]
    # An order-up-to of 3 cannot cover a 2-period lead time: every other period sells nothing.
    low = np.full((1, 6), 3.0)
    sim = simulate(D, [Levels(low, low)], np.array([2]), review=1, warmup=1)
    assert sim["served"][0, 0].tolist() == [3, 0, 3, 0, 3]
    assert sim["orders"][0, 0].tolist() == [True, False, True, False, True]


def test_zero_demand_never_orders():
    panel = panel_from_frame(_frame(np.zeros((1, 60))), "D")
    out = replay(panel, ReplayConfig(lead_time=2, review=7, warmup=28)).curves
    assert (out["orders"] == 0).all() and out["fill_rate"].isna().all()


def test_baseline_levels_by_hand():
    D = np.array([[2.0] * 10])
    odoo = odoo_min_max_levels(D, np.array([3]), safety_periods=2, review=7, window=4)
    assert (odoo.reorder_point[0, -1], odoo.order_up_to[0, -1]) == (10.0, 24.0)  # 2 x (3 + 2), + 2 x 7
    erp = erpnext_reorder_levels(D, np.array([3]), 1, 7, warmup=5)
    assert (erp.reorder_point[0, -1], erp.min_order[0, -1]) == (8.0, 14.0)


def test_replay_runs_the_production_forecaster_and_the_nightly_policy():
    rng = np.random.default_rng(0)
    units = rng.poisson(5.0, size=(3, 120)).astype(float)
    panel = panel_from_frame(_frame(units), "D")
    fc = rolling_forecasts(panel, np.array([80, 87]), 28)
    # The forecast at an origin is models.forecasting.forecast on the history through it, unchanged.
    direct = forecast(_frame(units[:, :81]), 28, season_length=7, freq="D").forecasts
    assert np.allclose(fc.mean[:, 0, :], direct["mean"].to_numpy().reshape(3, 28))
    assert np.allclose(fc.sigma_cum[:, 0, :], direct["sigma_cum"].to_numpy().reshape(3, 28))
    # And its levels are the replenishment core's on that forecast.
    lead = np.array([3, 3, 5])
    levels, = policy_levels(fc, np.array([80]), units.shape, lead=lead, lead_sd=1.0, review=7, fill_rates=[0.95])
    # (Each review is a pool of its own, as each night of the nightly.)
    core = order_levels(fc.mean[:, 0], fc.sigma_cum[:, 0], lead=lead, lead_sd=1.0, review=7, fill_rate=0.95,
                        pool=np.zeros(3))
    assert np.allclose(levels[:, 80], core.order_up_to)
    # Nothing after the origin is seen: changing the future leaves the forecast alone.
    later = units.copy()
    later[:, 82:] = 100.0
    fc2 = rolling_forecasts(panel_from_frame(_frame(later), "D"), np.array([80]), 28)
    assert np.allclose(fc.mean[:, 0], fc2.mean[:, 0])
    assert abs(fc.mean[:, 0].mean() - 5.0) < 1.0


def test_a_review_between_forecasts_reads_the_latest_forecast_from_its_own_period():
    rng = np.random.default_rng(3)
    panel = panel_from_frame(_frame(rng.poisson(4.0, size=(2, 100)).astype(float)), "D")
    fc = rolling_forecasts(panel, np.array([70]), 28)
    levels, = policy_levels(fc, np.array([70, 77]), (2, 100), lead=np.array([4, 4]), lead_sd=0.0, review=7,
                            fill_rates=[0.9])
    sigma = np.sqrt(fc.sigma_cum[:, 0, 7:] ** 2 - fc.sigma_cum[:, 0, 6:7] ** 2)
    core = order_levels(fc.mean[:, 0, 7:], sigma, lead=4, lead_sd=0.0, review=7, fill_rate=0.9, pool=np.zeros(2))
    assert np.allclose(levels[:, 77], core.order_up_to)


def test_planned_regressors_reach_the_forecaster():
    # Demand 10 a day, 40 on promotion at 50% off; a promotion is planned right after the origin.
    t = 200
    promo = np.zeros((1, t))
    for start in (20, 60, 100, 150, 185):
        promo[:, start:start + 7] = 0.5
    units = np.where(promo > 0, 40.0, 10.0)
    with_plan = panel_from_frame(_frame(units, promo=promo), "D", regressors=["promo"])
    without = panel_from_frame(_frame(units), "D")
    origin = np.array([183])
    fc = rolling_forecasts(with_plan, origin, 28)
    plain = rolling_forecasts(without, origin, 28)
    # Steps 2..8 are the promoted days 185..191.
    assert fc.mean[0, 0, 1:8].mean() > 2 * fc.mean[0, 0, 10:].mean()
    assert fc.mean[0, 0, 1:8].mean() > 2 * plain.mean[0, 0, 1:8].mean()


def test_sweep_curves_and_calibration_on_steady_demand():
    rng = np.random.default_rng(1)
    n, t = 30, 400
    rate = rng.uniform(2.0, 20.0, size=(n, 1))
    units = rng.poisson(rate * np.ones((n, t))).astype(float)
    result = replay(panel_from_frame(_frame(units), "D"),
                    ReplayConfig(lead_time=5, lead_time_sd=1.0, review=7, warmup=120, erpnext_refresh=91,
                                 sweep={"shelfwise": (0.9, 0.95, 0.99)}))
    curves = result.curves
    for _, curve in curves.groupby("policy"):
        # A higher service parameter never buys a lower fill rate with less stock.
        assert curve["avg_on_hand_units"].is_monotonic_increasing
        assert curve["fill_rate"].iloc[-1] > curve["fill_rate"].iloc[0]
    shelf = curves[curves["policy"] == "shelfwise"]
    # On steady Poisson demand the fill rate achieved is close to the one asked for.
    assert fill_error(shelf) < 0.02
    summary = compare(curves, 0.95)
    assert set(summary["dominates"]) == {"odoo_min_max", "erpnext_reorder_level"}
    assert summary["inventory_at_target"]["shelfwise"] == inventory_at_fill_rate(shelf, 0.95)
    assert summary["fill_error_max"] == fill_error(shelf)
    assert result.forecasts is not None and result.forecasts.origins[0] == 120


def test_dominance_over_the_fill_range():
    base = pd.DataFrame({"fill_rate": [0.85, 0.95, 0.999], "avg_on_hand_units": [10.0, 20.0, 40.0]})
    better = base.assign(avg_on_hand_units=[8.0, 16.0, 30.0])
    short = pd.DataFrame({"fill_rate": [0.85, 0.95], "avg_on_hand_units": [1.0, 2.0]})
    assert dominates(better, base) and not dominates(base, better)
    # Cheaper where it reaches, but it never reaches the fill rates above 95% the baseline does.
    assert not dominates(short, base)
    assert fill_error(pd.DataFrame({"parameter": [0.8, 0.9, 0.99], "fill_rate": [0.5, 0.91, 0.985]})) == pytest.approx(0.01)


def test_panel_keeps_missing_periods_unknown():
    frame = pd.DataFrame({"unique_id": ["L|A", "L|A", "L|B"], "ds": pd.to_datetime(["2024-01-01", "2024-01-03",
                                                                                    "2024-01-02"]),
                          "y": [2.0, -1.0, 4.0], "lead_time": [3.0, 3.0, np.nan]})
    panel = panel_from_frame(frame, "D")
    assert np.array_equal(panel.demand, np.array([[2.0, np.nan, 0.0], [np.nan, 4.0, np.nan]]), equal_nan=True)
    assert panel.served_demand.tolist() == [[2.0, 0.0, 0.0], [0.0, 4.0, 0.0]]
    assert panel.lead_time[0] == 3.0 and np.isnan(panel.lead_time[1])
    with pytest.raises(ValueError, match="lacks column"):
        panel_from_frame(frame.drop(columns="y"), "D")
    with pytest.raises(ValueError, match="duplicate"):
        panel_from_frame(pd.concat([frame, frame.iloc[:1]]), "D")
    with pytest.raises(ValueError, match="freq must be"):
        panel_from_frame(frame, "M")


def test_too_short_history_is_an_error():
    panel = panel_from_frame(_frame(np.ones((1, 20))), "D")
    with pytest.raises(ValueError, match="too short"):
        replay(panel, ReplayConfig(warmup=14))


def test_replay_calibration_uses_only_errors_already_sold():
    from include.simulation.forecasts import replay_calibration

    # 300 series forecast 1 a day (error of the 7-day sum sqrt(7)) at reviews 10, 17 and 24; they sell
    # 3 a day from period 11 to 17, 1 a day after. The first review's error is known from review 17
    # (its interval ends at period 17), not before; the second's from review 24.
    n, reviews = 300, np.array([10, 17, 24])
    mean = np.ones((3, n, 10))
    sigma = np.sqrt(np.arange(1, 11.0))[None, None, :].repeat(3, 0).repeat(n, 1)
    demand = np.ones((n, 40))
    demand[:, 11:18] = 3.0
    cal = replay_calibration(mean, sigma, reviews, demand, np.full(n, 7))
    first = np.array([7.0]), np.array([np.sqrt(7.0)])
    assert cal.scale_of(*first, 0)[0] == 1.0  # nothing sold yet
    assert cal.scale_of(*first, 1)[0] == pytest.approx(14 / np.sqrt(7))  # z = (21 - 7) / sqrt(7)
    # Review 24 also knows review 17's interval (periods 18-24, sold as forecast: z = 0).
    assert cal.scale_of(*first, 2)[0] == pytest.approx(np.sqrt((14 / np.sqrt(7)) ** 2 / 2))


def test_service_feedback_closes_the_gap_a_wrong_error_model_leaves():
    # Poisson demand with rare bursts of five times the rate: heavier-tailed than the normal the policy
    # sizes with, so planning at the target under-serves it.
    rng = np.random.default_rng(7)
    n, t = 40, 560
    rate = rng.uniform(3.0, 12.0, size=(n, 1))
    burst = rng.random((n, t)) < 0.03
    units = rng.poisson(rate * np.where(burst, 5.0, 1.0)).astype(float)
    panel = panel_from_frame(_frame(units), "D")
    config = dict(lead_time=5, lead_time_sd=1.0, review=7, warmup=140, reforecast_every=4,
                  sweep={"shelfwise": (0.98,), "odoo_min_max": (), "erpnext_reorder_level": ()})
    plain = replay(panel, ReplayConfig(**config, service_feedback=None)).curves.iloc[0]
    closed = replay(panel, ReplayConfig(**config)).curves.iloc[0]
    assert plain["fill_rate"] < 0.975
    assert abs(closed["fill_rate"] - 0.98) < abs(plain["fill_rate"] - 0.98) / 2
    assert closed["effective_target"] > 0.98  # it planned above the target to serve the target
    assert "effective_target" not in plain or pd.isna(plain.get("effective_target"))


def test_burn_in_periods_are_simulated_but_not_scored():
    rng = np.random.default_rng(2)
    units = rng.poisson(6.0, size=(5, 300)).astype(float)
    panel = panel_from_frame(_frame(units), "D")
    config = dict(lead_time=3, review=7, warmup=100, sweep={"shelfwise": (), "odoo_min_max": (7,),
                                                             "erpnext_reorder_level": ()})
    whole = replay(panel, ReplayConfig(**config)).curves.iloc[0]
    later = replay(panel, ReplayConfig(**config, burn_in=70)).curves.iloc[0]
    levels = odoo_min_max_levels(units, np.full(5, 3), 7, 7)
    sim = simulate(units, [levels], np.full(5, 3), review=7, warmup=100)
    assert later["fill_rate"] == pytest.approx(sim["served"][0][:, 70:].sum() / units[:, 170:].sum())
    assert whole["fill_rate"] == pytest.approx(sim["served"][0].sum() / units[:, 100:].sum())
