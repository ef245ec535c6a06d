"""Unit tests for include.demand.history.build_demand and include.reporting.kpis, numbers worked by hand."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest

from include.demand.history import DEMAND_COLUMNS, build_demand, demand_summary
from include.reporting.kpis import compute_kpis, daily_trend, forecast_accuracy, render_chart, render_report

D1, D2, D3 = pd.Timestamp("2026-03-01"), pd.Timestamp("2026-03-02"), pd.Timestamp("2026-03-03")


def _demand_inputs():
    pos = pd.DataFrame({
        "store_id": ["S1", "S1", "S1"],
        "sku": ["A", "A", "A"],
        "business_date": [D1, D3, pd.Timestamp("2026-02-28")],  # the last is before the window
        "units_sold": [5, 2, 9],
    })
    orders = pd.DataFrame({
        "fulfilment_location_id": ["FC1", "FC1", "FC1"],
        "sku": ["A", "A", "A"],
        "ordered_at": pd.to_datetime(["2026-03-02T21:15:00", "2026-03-02T08:00:00", "2026-03-03T23:59:59"]),
        "quantity": [3, 4, 1],
        "status": ["placed", "cancelled", "shipped"],
    })
    inventory = pd.DataFrame({
        "location_id": ["S1", "S1", "FC1"],
        "sku": ["A", "A", "A"],
        "snapshot_date": [D2, D3, D1],
        "on_hand": [4, 0, 5],
    })
    return pos, orders, inventory


def test_build_demand_dense_grid_with_channels_and_censoring():
    pos, orders, inventory = _demand_inputs()

    out = build_demand(pos, orders, inventory, dt.date(2026, 3, 1), dt.date(2026, 3, 3))

    assert list(out.columns) == DEMAND_COLUMNS
    # No promotion calendar, no item master: no promotion, unknown price, and no retail event in March.
    assert (out["promo"] == 0).all() and out["price"].isna().all() and out["event"].isna().all()
    got = out.drop(columns=["promo", "price", "event"]).sort_values(["unique_id", "ds"]).reset_index(drop=True)
    expected = pd.DataFrame({
        "unique_id": ["FC1|A"] * 3 + ["S1|A"] * 3,
        "location_id": ["FC1"] * 3 + ["S1"] * 3,
        "sku": ["A"] * 6,
        # Ecommerce demand is the fulfilment centre's; the cancelled line of 4 is not demand.
        "channel": ["ecommerce"] * 3 + ["store"] * 3,
        "ds": [D1, D2, D3] * 2,
        # Day 2 has no POS row for S1: zero. The 2026-02-28 sale is outside the window.
        "y": [0.0, 3.0, 1.0, 5.0, 0.0, 2.0],
        # S1 ended day 3 with nothing on hand: its 2 units are a floor on demand.
        "censored": [False, False, False, False, False, True],
    })
    pd.testing.assert_frame_equal(got, expected, check_dtype=False)


def test_build_demand_carries_the_known_regressors_of_each_day():
    pos, orders, inventory = _demand_inputs()
    promotions = pd.DataFrame({"promo_id": ["P1"], "sku": ["A"], "location_id": ["S1"],
                               "start_date": [D2], "end_date": [D3], "discount_pct": [0.2]})
    items = pd.DataFrame({"sku": ["A"], "unit_price": [10.0]})
    out = build_demand(pos, orders, inventory, dt.date(2026, 3, 1), dt.date(2026, 3, 3), promotions, items)
    got = out.set_index(["unique_id", "ds"])
    assert list(got.loc["S1|A", "promo"]) == [0.0, 0.2, 0.2]
    assert list(got.loc["S1|A", "price"]) == [10.0, 8.0, 8.0]
    assert list(got.loc["FC1|A", "promo"]) == [0.0, 0.0, 0.0]  # a store's promotion is not the web shop's


def test_build_demand_without_sales_is_empty():
    empty = pd.DataFrame()
    out = build_demand(empty, empty, empty, dt.date(2026, 3, 1), dt.date(2026, 3, 3))
    assert out.empty
    assert list(out.columns) == DEMAND_COLUMNS


# ---------------------------------------------------------------------------------------------------
# KPIs
# ---------------------------------------------------------------------------------------------------

END = dt.date(2026, 3, 10)
DAYS = pd.date_range("2026-03-01", "2026-03-10", freq="D")


def _kpi_demand() -> pd.DataFrame:
    s1 = pd.DataFrame({"unique_id": "S1|A", "sku": "A", "channel": "store", "ds": DAYS,
                       "y": [4.0] * 7 + [2.0, 0.0, 4.0],
                       "censored": [False] * 7 + [True, True, False]})
    fc1 = pd.DataFrame({"unique_id": "FC1|A", "sku": "A", "channel": "ecommerce", "ds": DAYS, "y": 1.0,
                        "censored": False})
    # Before the 10-day window: must not count anywhere.
    old = pd.DataFrame({"unique_id": ["S1|A"], "sku": ["A"], "channel": ["store"],
                        "ds": [pd.Timestamp("2026-02-28")], "y": [100.0], "censored": [True]})
    return pd.concat([s1, fc1, old], ignore_index=True)


def _past_forecasts() -> pd.DataFrame:
    return pd.DataFrame({
        "unique_id": ["S1|A", "S1|A", "FC1|A", "FC1|A", "S1|A"],
        "ds": pd.to_datetime(["2026-03-09", "2026-03-10", "2026-03-10", "2026-03-05", "2026-02-28"]),
        "mean": [4.0, 5.0, 0.5, 2.0, 50.0],
    })


@pytest.fixture(scope="module")
def kpis() -> dict:
    items = pd.DataFrame({"sku": ["A"], "unit_cost": [2.0]})
    inventory = pd.DataFrame({"location_id": ["S1", "FC1"], "sku": ["A", "A"], "on_hand": [10, 12]})
    orders_today = pd.DataFrame({"status": ["placed", "shipped", "cancelled"]})
    released = pd.DataFrame({"doc_type": ["transfer", "replenishment"], "to_location": ["S1", "DC1"],
                             "quantity": [10.0, 100.0]})
    locations = pd.DataFrame({"location_id": ["S1", "DC1", "FC1"], "transfer_cost_per_unit": [0.5, 0.0, 0.0]})
    costs = {"ecommerce_cost_per_order_line": 4.5, "store_handling_cost_per_unit": 0.15}
    return compute_kpis(END, _kpi_demand(), inventory, items, orders_today, _past_forecasts(), released, locations,
                        costs, window_days=10)


def test_fill_rate_uses_lost_sales_from_the_uncensored_mean(kpis):
    # S1 sells 4 a day on its 8 uncensored days; the censored days sold 2 and 0: lost (4-2) + (4-0) = 6.
    # Sold: S1 4*8 + 2 + 0 = 34, FC1 10 -> 44. Fill rate 44 / (44 + 6) = 0.88.
    assert kpis["units_sold"] == 44.0
    assert kpis["lost_sales_units_est"] == 6.0
    assert kpis["fill_rate"] == 0.88
    assert kpis["series"] == 2 and kpis["window_days"] == 10 and kpis["ds"] == "2026-03-10"


def test_stockout_rate_over_the_last_seven_days(kpis):
    # 03-04..03-10: 7 days x 2 series = 14 points, 2 censored -> 0.142857.
    assert kpis["stockout_rate_7d"] == 0.1429


def test_inventory_turns(kpis):
    # COGS over 10 days 44 * 2 = 88; stock at cost (10 + 12) * 2 = 44; 88 * 365 / 10 / 44 = 73.
    assert kpis["inventory_value_at_cost"] == 44.0
    assert kpis["inventory_turns"] == 73.0


def test_forecast_wape_and_bias(kpis):
    # Scored: S1 03-10 (5 vs 4), FC1 03-10 (0.5 vs 1), FC1 03-05 (2 vs 1); S1 03-09 is censored and
    # 02-28 is outside the window. Errors +1, -0.5, +1: WAPE 2.5 / 6, bias 1.5 / 6.
    assert kpis["forecast_points_scored"] == 3
    assert kpis["forecast_wape"] == 0.4167
    assert kpis["forecast_bias"] == 0.25


def test_fulfilment_cost_from_cost_rates(kpis):
    # 2 ecommerce lines (one cancelled) * 4.5 = 9; 4 store units today * 0.15 = 0.6; transfer of 10 to S1
    # at 0.5 = 5 (the replenishment order is not a transfer). 14.6 over 4 + 2 units = 2.4333.
    assert kpis["fulfilment_cost"] == 14.6
    assert kpis["fulfilment_cost_per_unit"] == 2.4333
    assert kpis["released_lines"] == 2


def test_forecast_accuracy_edge_cases():
    demand = _kpi_demand()
    assert forecast_accuracy(demand, pd.DataFrame()) == {"wape": None, "bias": None, "n": 0}
    zero = demand.assign(y=0.0)
    assert forecast_accuracy(zero, _past_forecasts()) == {"wape": None, "bias": None, "n": 3}
    # Without the window, the 02-28 forecast meets a censored day and is still not scored.
    result = forecast_accuracy(demand, _past_forecasts())
    assert result["n"] == 3
    assert result["wape"] == pytest.approx(2.5 / 6) and result["bias"] == pytest.approx(1.5 / 6)


def test_render_chart_writes_a_png(kpis, tmp_path):
    trend = daily_trend(_kpi_demand(), END, window_days=10)
    assert trend["units"].tolist() == [5.0] * 7 + [3.0, 1.0, 5.0]
    path = str(tmp_path / "kpis.png")

    assert render_chart(trend, kpis, path) == path

    data = (tmp_path / "kpis.png").read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(data) > 1000


def test_render_report_lists_kpis(kpis):
    text = render_report(kpis, {"proposals": 3})
    assert text.startswith("# Shelfwise nightly report, 2026-03-10\n")
    assert "| fill_rate | 0.88 |" in text
    assert "| forecast_bias | 0.25 |" in text
    assert '"proposals": 3' in text


def test_render_report_says_what_the_forecast_challenger_did_and_when_it_was_down(kpis):
    challenger = {"model": "prophet", "tried": 50, "taken": 0, "warnings": ["prophet unavailable, the vectorised "
                  "selection stands for every series: no cmdstan"], "decisions": ["pooled backtest MASE ...: kept"]}
    text = render_report(kpis, {"combine_forecasts": {"challenger": challenger}})
    assert "Challenger prophet (promotion, price and event regressors) was tried on 50 series and took 0." in text
    assert "- pooled backtest MASE ...: kept" in text
    assert "- **challenger down** prophet unavailable, the vectorised selection stands" in text


def test_kpis_of_a_night_without_demand_history_are_unknown_not_a_crash():
    import datetime as dt

    import pandas as pd

    from include.reporting.kpis import compute_kpis

    items = pd.DataFrame({"sku": ["A"], "unit_cost": [2.0]})
    inventory = pd.DataFrame({"location_id": ["S1"], "sku": ["A"], "on_hand": [5]})
    locations = pd.DataFrame({"location_id": ["S1"], "transfer_cost_per_unit": [0.5]})
    kpis = compute_kpis(dt.date(2026, 11, 27), pd.DataFrame(), inventory, items, pd.DataFrame(),
                        pd.DataFrame(columns=["unique_id", "ds", "mean"]),
                        pd.DataFrame(columns=["doc_type", "to_location", "quantity"]), locations, {})
    assert kpis["series"] == 0
    assert kpis["stockout_rate_7d"] is None and kpis["fill_rate"] is None and kpis["forecast_wape"] is None
    assert kpis["inventory_value_at_cost"] == 10.0


def _steady_sales_with_a_gap(days: int = 80, gap: tuple[int, int] = (50, 62)) -> tuple[pd.DataFrame, pd.DatetimeIndex]:
    dates = pd.date_range("2026-01-01", periods=days, freq="D")
    units = [0 if gap[0] <= i < gap[1] else 4 + i % 3 for i in range(days)]
    pos = pd.DataFrame({"store_id": "S1", "sku": "A", "business_date": dates, "units_sold": units})
    return pos[pos["units_sold"] > 0], dates


def test_without_a_stock_snapshot_a_zero_run_only_an_empty_shelf_explains_is_censored():
    pos, dates = _steady_sales_with_a_gap()
    no_orders = pd.DataFrame(columns=["fulfilment_location_id", "sku", "ordered_at", "quantity", "status"])
    no_stock = pd.DataFrame(columns=["location_id", "sku", "snapshot_date", "on_hand"])

    built = build_demand(pos, no_orders, no_stock, dates[0].date(), dates[-1].date())
    out = built.set_index("ds")
    # Twelve days without a sale from a series that never missed a day: an empty shelf, not demand.
    assert out["censored"].sum() == 12 and out.loc[dates[50]:dates[61], "censored"].all()
    summary = demand_summary(built)
    assert (summary["censored_days"], summary["stockouts_inferred_days"]) == (12, 12)
    assert (out.loc[dates[50]:dates[61], "y"] == 0).all()

    # Where the warehouse system says the shelf held stock, its snapshot decides: those were days of no demand.
    stocked = pd.DataFrame({"location_id": "S1", "sku": "A", "snapshot_date": dates, "on_hand": 30})
    out = build_demand(pos, no_orders, stocked, dates[0].date(), dates[-1].date())
    assert not out["censored"].any() and demand_summary(out)["stockouts_inferred_days"] == 0


def test_a_short_or_ordinary_gap_stays_demand():
    pos, dates = _steady_sales_with_a_gap(gap=(50, 51))  # one day without a sale
    no_orders = pd.DataFrame(columns=["fulfilment_location_id", "sku", "ordered_at", "quantity", "status"])
    no_stock = pd.DataFrame(columns=["location_id", "sku", "snapshot_date", "on_hand"])
    assert not build_demand(pos, no_orders, no_stock, dates[0].date(), dates[-1].date())["censored"].any()
