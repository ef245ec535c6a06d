"""Unit tests for the replay simulator and its metrics, on hand-worked cases."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from include.simulation import metrics
from include.simulation.__main__ import main
from include.simulation.policies import (
    Levels,
    erpnext_reorder_levels,
    normal_loss,
    odoo_min_max_levels,
    promotion_elasticity,
    rolling_forecast,
    safety_factor_for_fill_rate,
)
from include.simulation.replay import (
    ReplayConfig,
    compare,
    inventory_at_fill_rate,
    pack_demand,
    replay,
    simulate,
)


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


def test_normal_loss_and_fill_rate_safety_factor():
    assert normal_loss(0.0) == pytest.approx(0.3989, abs=1e-3)
    # sigma 10, 100 a cycle at a 99% fill rate: G(k) = 0.1 -> k = 0.9 (tables: G(0.9) = 0.1004).
    k = safety_factor_for_fill_rate(0.99, np.array([10.0, 0.0]), np.array([100.0, 100.0]))
    assert k[0] == pytest.approx(0.90, abs=0.01)
    assert k[1] == 0.0  # no uncertainty, no safety stock


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
    panel = pack_demand(pd.DataFrame({"item": "A", "location": "L", "date": pd.date_range("2024-01-01", periods=60),
                                      "units": 0.0}), "D")
    out = replay(panel, ReplayConfig(lead_time=2, review=7, warmup=28))
    assert (out["orders"] == 0).all() and out["fill_rate"].isna().all()


def test_baseline_levels_by_hand():
    D = np.array([[2.0] * 10])
    odoo = odoo_min_max_levels(D, np.array([3]), safety_periods=2, review=7, window=4)
    assert (odoo.reorder_point[0, -1], odoo.order_up_to[0, -1]) == (10.0, 24.0)  # 2 x (3 + 2), + 2 x 7
    erp = erpnext_reorder_levels(D, np.array([3]), 1, 7, warmup=5)
    assert (erp.reorder_point[0, -1], erp.min_order[0, -1]) == (8.0, 14.0)


def test_rolling_forecast_uses_only_the_past():
    rng = np.random.default_rng(0)
    D = rng.poisson(5.0, size=(3, 200)).astype(float)
    fc = rolling_forecast(D, 10)
    D2 = D.copy()
    D2[:, 150:] = 100.0  # change the future
    fc2 = rolling_forecast(D2, 10)
    assert np.allclose(fc.mean[:, :150], fc2.mean[:, :150])
    assert np.allclose(fc.sigma[:, :150], fc2.sigma[:, :150])
    assert abs(fc.mean[:, 120:150].mean() / 10 - 5.0) < 1.0


def test_sweep_curves_on_intermittent_demand():
    rng = np.random.default_rng(1)
    n, t = 20, 400
    rate = rng.uniform(0.2, 5.0, size=(n, 1))
    units = rng.poisson(rate * rng.uniform(0.3, 1.7, size=(n, t)) * (rng.random((n, t)) < 0.6))
    frame = pd.DataFrame({"item": np.repeat([f"I{i}" for i in range(n)], t), "location": "S1",
                          "date": np.tile(pd.date_range("2024-01-01", periods=t), n), "units": units.ravel()})
    result = replay(pack_demand(frame, "D"), ReplayConfig(lead_time=5, lead_time_sd=1.0, review=7, warmup=120,
                                                          erpnext_refresh=91))
    summary = compare(result, 0.95)
    for _, curve in result.groupby("policy"):
        # A higher service parameter never buys a lower fill rate with less stock.
        assert curve["avg_on_hand_units"].is_monotonic_increasing
        assert curve["fill_rate"].iloc[-1] > curve["fill_rate"].iloc[0]
    assert set(summary["dominates"]) == {"odoo_min_max", "erpnext_reorder_level"}
    assert summary["inventory_at_target"]["shelfwise"] == inventory_at_fill_rate(
        result[result["policy"] == "shelfwise"], 0.95)


def test_pack_demand_validates():
    with pytest.raises(ValueError, match="lacks columns"):
        pack_demand(pd.DataFrame({"item": [1]}), "D")
    with pytest.raises(ValueError, match="freq must be"):
        pack_demand(pd.DataFrame({"item": [1], "location": [1], "date": ["2024-01-01"], "units": [1]}), "M")
    panel = pack_demand(pd.DataFrame({"item": ["A", "A"], "location": ["L", "L"], "date": ["2024-01-01", "2024-01-03"],
                                      "units": [2, -1], "lead_time": [3, 3]}), "D")
    assert panel.demand.tolist() == [[2.0, 0.0, 0.0]] and panel.lead_time.tolist() == [3.0]


def test_too_short_history_is_an_error():
    panel = pack_demand(pd.DataFrame({"item": "A", "location": "L", "date": pd.date_range("2024-01-01", periods=20),
                                      "units": 1.0}), "D")
    with pytest.raises(ValueError, match="too short"):
        replay(panel, ReplayConfig(warmup=14))


def test_command_line(tmp_path, capsys):
    rng = np.random.default_rng(2)
    dates = pd.date_range("2023-01-02", periods=120, freq="W-MON")
    frame = pd.DataFrame({"item": np.repeat(["A", "B"], 120), "location": "S1", "date": np.tile(dates, 2),
                          "units": rng.poisson(20, 240)})
    path = tmp_path / "demand.parquet"
    frame.to_parquet(path)
    assert main(["--input", str(path), "--freq", "W", "--lead-time", "2"]) == 0
    out = capsys.readouterr().out
    assert "average on hand at 98.0% fill rate" in out and "odoo_min_max" in out
    assert main(["--input", str(tmp_path / "missing.csv")]) == 2


def test_promotion_lift_is_learned_and_planned_ahead():
    # Demand 10 a day; on promotion at 50% off it is 10 * 0.5 ** -2 = 40 (elasticity 2).
    T = 200
    disc = np.zeros((2, T))
    for start in (20, 60, 100, 150):
        disc[:, start:start + 7] = 0.5
    D = np.where(disc > 0, 40.0, 10.0)
    e = promotion_elasticity(D, disc, np.array(["a", "a"]))
    assert e[0, 19] == 0.0  # nothing learned before the first promotion
    assert e[0, 100] == pytest.approx(2.0, abs=0.25)  # within one step of the elasticity grid
    fc = rolling_forecast(D, 14, discount=disc)
    # At day 140 the next 14 days hold 4 promoted days (150..153): 10 * 10 + 4 * 40 = 260.
    assert fc.mean[0, 139] == pytest.approx(260.0, rel=0.05)
    plain = rolling_forecast(D, 14)
    assert plain.mean[0, 139] < 200.0
    # The lift is taken out of the level, so the forecast outside promotions is unchanged.
    assert fc.mean[0, 120] == pytest.approx(140.0, rel=0.05)


def test_pack_demand_reads_a_promotion_calendar():
    frame = pd.DataFrame({"item": ["A"] * 3, "location": ["S1"] * 3,
                          "date": ["2024-01-01", "2024-01-02", "2024-01-03"], "units": [1, 5, 1],
                          "discount": [0.0, 0.3, None]})
    panel = pack_demand(frame, "D")
    assert panel.discount.tolist() == [[0.0, 0.3, 0.0]]
    assert panel.items.tolist() == ["A"]
