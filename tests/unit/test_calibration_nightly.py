"""The nightly's calibration of the forecast error and its planning lead times, on hand-built frames:
include.decisions.calibration (interval_errors, calibration_summary), include.decisions.lead_times, their
use by propose_replenishment / propose_po_exceptions, and replay.simulate's per-period lead times."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from include.decisions.calibration import ErrorCalibration, calibrate, calibration_summary, interval_errors
from include.decisions.lead_times import series_lead_times, supplier_lead_times, with_planning_lead_times
from include.decisions.params import DecisionParams
from include.decisions.propose import propose_po_exceptions, propose_replenishment
from include.simulation.baselines import Levels
from include.simulation.replay import simulate

ORIGIN = dt.date(2026, 3, 1)
PER_SERIES = DecisionParams(fill_rate_per_series=True)
LOCATIONS = pd.DataFrame({"location_id": ["DC1", "S1", "FC1"], "location_type": ["dc", "store", "ecom_fc"],
                          "region": "North", "parent_dc": [None, "DC1", None], "transfer_lead_time_days": [0, 2, 0],
                          "transfer_cost_per_unit": 0.5})
ITEMS = pd.DataFrame({"sku": ["A", "C"], "unit_price": [5.0, 9.0], "unit_cost": [2.5, 4.0], "case_pack": [1, 1],
                      "moq_units": [0, 0], "shelf_capacity": [100, 100], "supplier_id": ["SUP1", "SUP2"]})
SUPPLIERS = pd.DataFrame({"supplier_id": ["SUP1", "SUP2"], "promised_lead_time_days": [5, 4]})
STATS = pd.DataFrame({"supplier_id": ["SUP1"], "mean_lead_time": [3.0], "std_lead_time": [1.0], "late_rate": [0.1]})
PLANNING = pd.DataFrame({"supplier_id": ["SUP1", "SUP2"], "lead_time_mean": [9.0, 4.0], "lead_time_sd": [2.0, 0.0],
                         "predicted_delay_days": [4.0, 0.0], "overdue_floor_days": [9.0, np.nan],
                         "flagged": [True, False], "received_lines": [30, 0]})


def _forecast(unique_id: str, mean: float, sigma: float, steps: int = 14) -> pd.DataFrame:
    step = np.arange(1, steps + 1)
    return pd.DataFrame({"unique_id": unique_id, "step": step, "mean": mean, "sigma_cum": sigma * np.sqrt(step)})


def _demand(unique_id: str, values: list[float], censored: list[bool] | None = None) -> pd.DataFrame:
    days = pd.date_range(pd.Timestamp(ORIGIN) + pd.Timedelta(days=1), periods=len(values), freq="D")
    return pd.DataFrame({"unique_id": unique_id, "ds": days, "y": values,
                         "censored": censored if censored is not None else [False] * len(values)})


# --------------------------------------------------------------------------------------------- calibration


def test_interval_errors_over_each_series_protection_interval():
    forecasts = pd.concat([_forecast("S1|A", 2.0, 1.0), _forecast("DC1|A", 5.0, 2.0), _forecast("S2|A", 1.0, 1.0),
                           _forecast("S3|A", 1.0, 1.0)], ignore_index=True)
    demand = pd.concat([
        _demand("S1|A", [3, 3, 9]),                      # interval 2 days: 6 sold against 4 +- sqrt(2)
        _demand("DC1|A", [5, 5, 5, 5]),                  # interval 4 days: exactly the forecast
        _demand("S2|A", [1, 0], censored=[False, True]),  # a stock-out day: no error
        _demand("S3|A", [1, 1, 1]),                      # interval 5 days, only 3 sold so far: not yet
    ], ignore_index=True)
    periods = pd.Series({"S1|A": 2.0, "DC1|A": 4.0, "S2|A": 2.0, "S3|A": 5.0, "X|A": 3.0})
    out = interval_errors(forecasts, demand, ORIGIN, periods).set_index("unique_id")
    assert sorted(out.index) == ["DC1|A", "S1|A"]
    assert out.loc["S1|A", "forecast"] == 4.0 and out.loc["S1|A", "actual"] == 6.0
    assert out.loc["S1|A", "sigma"] == pytest.approx(np.sqrt(2))
    assert out.loc["S1|A", "z"] == pytest.approx(2 / np.sqrt(2))
    assert out.loc["DC1|A", "z"] == 0.0 and out.loc["DC1|A", "sigma"] == pytest.approx(4.0)


def test_interval_errors_of_no_series_and_the_summary_without_calibration():
    out = interval_errors(_forecast("S1|A", 1.0, 1.0), _demand("S1|A", [1.0]), ORIGIN, pd.Series(dtype=float))
    assert out.empty and list(out.columns) == ["unique_id", "forecast", "sigma", "actual", "z"]
    assert calibration_summary(None, 0) == "none: 0 past intervals"
    assert calibration_summary(None, 37) == "none: 37 past intervals"


def test_calibration_summary_names_every_class_and_its_scale():
    rng = np.random.default_rng(0)
    z = rng.standard_normal(400) * 1.5
    cal = calibrate(z, np.full(400, 10.0), np.full(400, 1.0))  # every error in the class cv 0-0.25
    summary = calibration_summary(cal, 400)
    assert summary["intervals"] == 400
    assert list(summary["scales"]) == ["cv 0-0.25", "cv 0.25-0.5", "cv 0.5-1", "cv 1-2", "cv 2-inf"]
    assert summary["scales"]["cv 0-0.25"] == pytest.approx(1.5, abs=0.15)
    assert summary["errors"]["cv 0-0.25"] == 400
    # The other classes have too few errors of their own: the pooled scale.
    assert summary["scales"]["cv 1-2"] == summary["scales"]["cv 0-0.25"]


def test_replenishment_levels_take_the_calibration():
    forecasts = _forecast("S1|A", 2.0, 1.0)
    inventory = pd.DataFrame({"location_id": ["S1"], "sku": ["A"], "on_hand": [0.0], "allocated": [0.0],
                              "in_transit": [0.0]})
    no_pos = pd.DataFrame(columns=["po_id", "po_line", "supplier_id", "sku", "destination_location_id",
                                   "order_date", "promised_date", "quantity_ordered", "quantity_received",
                                   "unit_cost", "status"])
    series = pd.DataFrame({"unique_id": ["S1|A"], "model": ["ets"], "fallback_reason": [None],
                           "backtest_mase": [0.8], "mean_daily": [2.0]})
    doubled = ErrorCalibration(scale=np.full(5, 2.0), errors=np.full(5, 500), classes=5)

    def line(calibration):
        out = propose_replenishment(forecasts, series, inventory, no_pos, ITEMS, LOCATIONS, SUPPLIERS, STATS,
                                    ORIGIN, params=PER_SERIES, calibration=calibration)
        return out.set_index("business_key").loc["replenish:DC1>S1:A", "explanation"]

    plain, scaled = line(None), line(doubled)
    # Lead time 2 at 2 a day, sigma_cum sqrt(2); no lead-time spread for a store: sigma doubles.
    assert plain["forecast_error_over_lead_time"] == scaled["forecast_error_over_lead_time"] == 1.41
    assert plain["demand_sigma_with_lead_time_spread"] == 1.41
    assert scaled["demand_sigma_with_lead_time_spread"] == 2.83
    assert scaled["safety_stock"] > plain["safety_stock"]


# --------------------------------------------------------------------------------------------- lead times


def test_planning_lead_times_are_usable_with_receipts_or_a_flag():
    merged = with_planning_lead_times(STATS, PLANNING).set_index("supplier_id")
    assert merged.loc["SUP1", "planned_lead_time"] == 9.0 and merged.loc["SUP1", "disruption_flagged"]
    # SUP2: no receipts read and not flagged: the prediction rests on the promise alone.
    assert np.isnan(merged.loc["SUP2", "planned_lead_time"]) and not merged.loc["SUP2", "disruption_flagged"]
    assert merged.loc["SUP1", "mean_lead_time"] == 3.0
    assert with_planning_lead_times(STATS, None) is STATS


def test_supplier_lead_time_sources_in_order_predicted_measured_promised():
    ids = pd.Series(["SUP1", "SUP2", "SUP3"], index=[10, 11, 12])
    promised = pd.Series([5.0, 4.0, 8.0], index=ids.index)
    stats = pd.DataFrame({"supplier_id": ["SUP1", "SUP2"], "mean_lead_time": [3.0, 6.0],
                          "std_lead_time": [1.0, np.nan]}).set_index("supplier_id")
    plain = supplier_lead_times(ids, stats, promised)
    assert plain["source"].tolist() == ["measured", "measured", "promised"]
    assert plain["lead"].tolist() == [3.0, 6.0, 8.0] and plain["lead_sd"].tolist() == [1.0, 1.5, 2.0]
    assert not plain["flagged"].any()
    planned = with_planning_lead_times(stats.reset_index(), PLANNING).set_index("supplier_id")
    out = supplier_lead_times(ids, planned, promised)
    assert out["source"].tolist() == ["predicted", "measured", "promised"]
    assert out["lead"].tolist() == [9.0, 6.0, 8.0] and out["lead_sd"].tolist() == [2.0, 1.5, 2.0]
    assert out["flagged"].tolist() == [True, False, False]
    assert list(out.index) == [10, 11, 12]
    empty = supplier_lead_times(ids, pd.DataFrame(), promised)
    assert empty["source"].tolist() == ["promised"] * 3


def test_series_lead_times_as_the_policy_plans_them():
    stats = with_planning_lead_times(STATS, PLANNING)
    lead = series_lead_times(pd.Index(["S1|A", "DC1|A", "FC1|C", "X|A"]), ITEMS, LOCATIONS, SUPPLIERS, stats)
    # A store: its transfer lead time; the DC: SUP1's predicted 9 days; the FC: SUP2's promise; X: unknown.
    assert lead.iloc[:3].tolist() == [2.0, 9.0, 4.0] and np.isnan(lead.iloc[3])
    assert series_lead_times(pd.Index([]), ITEMS, LOCATIONS, SUPPLIERS, stats).empty


def test_replenishment_and_po_exceptions_say_which_lead_time_they_used():
    stats = with_planning_lead_times(STATS, PLANNING)
    forecasts = pd.concat([_forecast("S1|A", 2.0, 1.0), _forecast("FC1|C", 1.0, 0.5)], ignore_index=True)
    inventory = pd.DataFrame({"location_id": ["DC1", "FC1", "S1"], "sku": ["A", "C", "A"], "on_hand": [0.0, 0.0, 50.0],
                              "allocated": 0.0, "in_transit": 0.0})
    series = pd.DataFrame({"unique_id": ["S1|A", "FC1|C"], "model": "ets", "fallback_reason": None,
                           "backtest_mase": 0.8, "mean_daily": [2.0, 1.0]})
    no_pos = pd.DataFrame(columns=["po_id", "po_line", "supplier_id", "sku", "destination_location_id",
                                   "order_date", "promised_date", "quantity_ordered", "quantity_received",
                                   "unit_cost", "status"])
    out = propose_replenishment(forecasts, series, inventory, no_pos, ITEMS, LOCATIONS, SUPPLIERS, stats, ORIGIN,
                                params=PER_SERIES).set_index("business_key")
    dc = out.loc["order:SUP1>DC1:A", "explanation"]
    assert (dc["supplier_lead_time_source"], dc["supplier_disruption_flagged"]) == ("predicted", True)
    assert (dc["lead_time_days"], dc["lead_time_sd_days"]) == (9.0, 2.0)
    fc = out.loc["order:SUP2>FC1:C", "explanation"]
    assert (fc["supplier_lead_time_source"], fc["supplier_disruption_flagged"]) == ("promised", False)
    open_pos = pd.DataFrame([("P1", 1, "SUP1", "A", "DC1", "2026-02-27", "2026-03-04", 40, 0, 2.5, "open")],
                            columns=no_pos.columns)
    line = propose_po_exceptions(open_pos, stats, SUPPLIERS, inventory, series, LOCATIONS, ORIGIN).iloc[0]
    e = line["explanation"]
    # Ordered Feb 27 with a predicted 9 days: Mar 8, four days past its promise (3 measured days: on time).
    assert e["expected_arrival"] == "2026-03-08" and e["late_days"] == 4
    assert (e["supplier_lead_time_source"], e["supplier_disruption_flagged"]) == ("predicted", True)
    assert e["supplier_lead_time_days"] == 9.0
    assert propose_po_exceptions(open_pos, STATS, SUPPLIERS, inventory, series, LOCATIONS, ORIGIN).empty
    # No receipt statistics at all (only the detector's planning lead times): still predicted, no late rate.
    alone = with_planning_lead_times(STATS.iloc[0:0], PLANNING)
    e = propose_po_exceptions(open_pos, alone, SUPPLIERS, inventory, series, LOCATIONS, ORIGIN).iloc[0]["explanation"]
    assert (e["supplier_lead_time_source"], e["supplier_late_rate"], e["late_days"]) == ("predicted", None, 4)
    dc = propose_replenishment(forecasts, series, inventory, no_pos, ITEMS, LOCATIONS, SUPPLIERS, alone, ORIGIN,
                               params=PER_SERIES).set_index("business_key").loc["order:SUP1>DC1:A", "explanation"]
    assert (dc["supplier_lead_time_source"], dc["supplier_late_rate"]) == ("predicted", None)


# --------------------------------------------------------------------------------------------- replay


def test_simulate_takes_a_lead_time_per_period():
    demand = np.full((2, 40), 3.0)
    up = np.full((2, 40), 12.0)
    per_series = simulate(demand, [Levels(up, up)], np.array([2, 3]), review=1, warmup=1, lead_time_sd=1.0, seed=3)
    same = simulate(demand, [Levels(up, up)], np.tile(np.array([[2.0], [3.0]]), (1, 40)), review=1, warmup=1,
                    lead_time_sd=1.0, seed=3)
    for key in ("served", "on_hand", "orders"):
        np.testing.assert_array_equal(per_series[key], same[key])
    # Orders placed from period 10 on take 6 periods instead of 2: the stock runs dry for a while.
    lead = np.full((2, 40), 2.0)
    lead[:, 10:] = 6.0
    slipping = simulate(demand, [Levels(up, up)], lead, review=1, warmup=1)
    steady = simulate(demand, [Levels(up, up)], np.array([2, 2]), review=1, warmup=1)
    assert slipping["served"].sum() < steady["served"].sum()
    assert (slipping["served"][0, :, :9] == steady["served"][0, :, :9]).all()
    with pytest.raises(ValueError, match=r"lead must be \[n\] or \[n, T\]"):
        simulate(demand, [Levels(up, up)], np.ones((2, 5)), review=1, warmup=1)


# --------------------------------------------------------------------------------------------- the nightly's store


def _store(root: str, day: dt.date, origins: list[dt.date], n: int, noise: float) -> dict[str, pd.DataFrame]:
    """``n`` store series forecast flat at 2 a day (error 1 a day) at each origin, whose demand was 2 a day
    plus ``noise`` x N(0, 1): the forecast's error is ``noise`` times what it claimed."""
    from include.storage import write_partition

    rng = np.random.default_rng(1)
    skus = [f"K{i:03d}" for i in range(n)]
    items = pd.DataFrame({"sku": skus, "supplier_id": "SUP1", "category": "x"})
    days = pd.date_range(pd.Timestamp(day) - pd.Timedelta(days=69), pd.Timestamp(day), freq="D")
    y = 2.0 + noise * rng.standard_normal((n, len(days)))
    demand = pd.DataFrame({"unique_id": np.repeat([f"S1|{s}" for s in skus], len(days)),
                           "ds": np.tile(days.to_numpy(), n), "y": y.ravel(), "censored": False})
    write_partition(demand, "curated", "demand", day, root)
    for origin in origins:
        fc = pd.concat([_forecast(f"S1|{s}", 2.0, 1.0) for s in skus], ignore_index=True)
        write_partition(fc, "forecasts", "demand", origin, root)
    return {"items": items, "locations": LOCATIONS, "suppliers": SUPPLIERS}


def test_nightly_calibration_from_its_forecast_store(tmp_path):
    from include.stages.nightly import _nightly_calibration

    day, root = dt.date(2026, 3, 30), str(tmp_path)
    origins = [day - dt.timedelta(days=7 * k) for k in (1, 2, 3)]
    curated = _store(root, day, origins, 120, noise=2.0)
    # The store's transfer lead time, 2 days: 120 series x 3 weekly origins = 360 intervals sold.
    calibration, intervals = _nightly_calibration(day, curated, STATS, root)
    assert intervals == 360
    # Each interval's error spread is 2 x sqrt(2) where the forecast claimed sqrt(2): scale about 2.
    assert calibration.scale[0] == pytest.approx(2.0, rel=0.15)
    assert calibration_summary(calibration, intervals)["intervals"] == 360


def test_nightly_calibration_none_without_enough_past_forecasts(tmp_path):
    from include.stages.nightly import _nightly_calibration

    day, root = dt.date(2026, 3, 30), str(tmp_path)
    curated = _store(root, day, [], 50, noise=1.0)
    assert _nightly_calibration(day, curated, STATS, root) == (None, 0)
    # An origin 9 weeks back is past the window; last week's 50 intervals are too few to calibrate.
    curated = _store(root, day, [day - dt.timedelta(days=63), day - dt.timedelta(days=7)], 50, noise=1.0)
    assert _nightly_calibration(day, curated, STATS, root) == (None, 50)


# --------------------------------------------------------------------------------------------- one pool a night


def test_a_night_pools_its_target_over_every_shard():
    from include.decisions.batch import night_safety_factors, propose_shards

    locations = pd.DataFrame({"location_id": ["DC1"], "location_type": ["dc"], "region": "North", "parent_dc": [None],
                              "transfer_lead_time_days": [0], "transfer_cost_per_unit": 0.5})
    items = pd.DataFrame({"sku": ["A", "B"], "unit_price": 5.0, "unit_cost": 2.5, "case_pack": 1, "moq_units": 0,
                          "shelf_capacity": 100, "supplier_id": "SUP1", "category": "x"})
    curated = {"items": items, "locations": locations, "suppliers": SUPPLIERS,
               "inventory_snapshot": pd.DataFrame({"location_id": ["DC1", "DC1"], "sku": ["A", "B"], "on_hand": 0.0,
                                                   "allocated": 0.0, "in_transit": 0.0}),
               "purchase_orders": pd.DataFrame(columns=["po_id", "po_line", "supplier_id", "sku",
                                                        "destination_location_id", "order_date", "promised_date",
                                                        "quantity_ordered", "quantity_received", "unit_cost",
                                                        "status"])}
    series = pd.DataFrame({"unique_id": ["DC1|A", "DC1|B"], "model": "ets", "fallback_reason": None,
                           "backtest_mase": 0.8, "mean_daily": [2.0, 2.0], "demand_class": "smooth"})
    # A smooth and an erratic SKU, each in a shard of its own.
    shards = [(_forecast("DC1|A", 2.0, 0.5), series.iloc[:1]), (_forecast("DC1|B", 2.0, 3.0), series.iloc[1:])]
    factors = night_safety_factors(iter(shards), curated, STATS)
    assert list(factors) == [0.98]
    both = pd.concat([s[0] for s in shards], ignore_index=True)
    one = propose_shards(iter([(both, series)]), curated, STATS, ORIGIN)
    many = propose_shards(iter(shards), curated, STATS, ORIGIN, safety_factors=factors)
    apart = propose_shards(iter(shards), curated, STATS, ORIGIN)
    k = {line["business_key"]: line["explanation"]["safety_factor"] for line in many.to_dict("records")}
    assert k["order:SUP1>DC1:A"] == pytest.approx(k["order:SUP1>DC1:B"], abs=1e-3)
    pd.testing.assert_frame_equal(one[["business_key", "quantity"]], many[["business_key", "quantity"]])
    own = {line["business_key"]: line["explanation"]["safety_factor"] for line in apart.to_dict("records")}
    assert abs(own["order:SUP1>DC1:A"] - own["order:SUP1>DC1:B"]) > 0.1  # each shard its own pool
    assert night_safety_factors(iter(shards), curated, STATS, params=PER_SERIES) is None
