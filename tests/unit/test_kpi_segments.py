"""The KPIs the executive dashboard shows beyond the flat set: gross margin, segments, cycle time, trends."""

from __future__ import annotations

import datetime as dt
import math

import pandas as pd
import pytest

from include.reporting.dashboard import flatten_history
from include.reporting.kpis import compute_kpis, render_report, reporting_cycle_hours, with_channel_fulfilment
from include.reporting.margin_kpis import (
    gross_margin_rate,
    margin_by,
    refund_cells,
    region_of,
    sales_cells,
    window_cells,
)
from include.reporting.trends import trend_lines, trend_table

END = dt.date(2026, 3, 10)
DAYS = pd.date_range("2026-03-08", "2026-03-10", freq="D")
ITEMS = pd.DataFrame({"sku": ["A", "B"], "unit_price": [10.0, 20.0], "unit_cost": [6.0, 8.0]})
LOCATIONS = pd.DataFrame({"location_id": ["S1", "S2", "FC1"], "region": ["North", "South", "North"],
                          "transfer_cost_per_unit": [0.5, 0.5, 0.0]})


def _cells() -> pd.DataFrame:
    regions = region_of(LOCATIONS)
    pos = pd.DataFrame({"store_id": ["S1", "S2"], "sku": ["A", "B"], "business_date": ["2026-03-10"] * 2,
                        "units_sold": [10, 5], "gross_sales": [90.0, 100.0], "discount_amount": [10.0, 0.0]})
    orders = pd.DataFrame({"sku": ["A", "A"], "ordered_at": ["2026-03-10T09:00:00"] * 2, "quantity": [4, 9],
                           "unit_price": [9.0, 9.0], "status": ["shipped", "cancelled"]})
    returns = pd.DataFrame({"channel": ["store", "web"], "location_id": ["S1", "FC1"], "refund_amount": [20.0, 4.0]})
    return window_cells([sales_cells(pos, pd.DataFrame(), ITEMS, regions),
                         sales_cells(pd.DataFrame(), orders, ITEMS, regions), refund_cells(returns, regions)])


def test_gross_margin_is_realised_margin_over_net_sales():
    # S1 (North): shelf 90 + 10 = 100, discount 10, cost 10 x 6 = 60, refund 20 -> net 70, margin 10.
    # S2 (South): shelf 100, no discount, cost 5 x 8 = 40 -> net 100, margin 60.
    # Web: 4 shipped at shelf 10 = 40, discount 4 x (10 - 9) = 4, cost 24, refund 4 (the cancelled line is
    # not a sale) -> net 32, margin 8.
    cells = _cells()
    assert gross_margin_rate(cells) == pytest.approx(78 / 202)
    assert margin_by(cells, "channel") == pytest.approx({"store": 70 / 170, "ecommerce": 8 / 32})
    # Ecommerce ships nationally: the fulfilment centre's region takes neither its sales nor its refunds.
    assert margin_by(cells, "region") == pytest.approx({"North": 10 / 70, "South": 60 / 100})
    assert gross_margin_rate(window_cells([])) is None


def _demand() -> pd.DataFrame:
    def series(location, channel, y, censored):
        return pd.DataFrame({"unique_id": f"{location}|A", "location_id": location, "sku": "A", "channel": channel,
                             "ds": DAYS, "y": y, "censored": censored})

    return pd.concat([series("S1", "store", [4.0, 1.0, 4.0], [False, True, False]),
                      series("S2", "store", [2.0, 2.0, 2.0], False),
                      series("FC1", "ecommerce", [3.0, 3.0, 0.0], [False, False, True])], ignore_index=True)


@pytest.fixture(scope="module")
def kpis() -> dict:
    forecasts = pd.DataFrame({"unique_id": ["S1|A", "S2|A", "FC1|A"], "ds": pd.to_datetime(["2026-03-10"] * 3),
                              "mean": [5.0, 1.0, 2.0]})
    inventory = pd.DataFrame({"location_id": ["S1"], "sku": ["A"], "on_hand": [1]})
    released = pd.DataFrame(columns=["doc_type", "to_location", "quantity"])
    return compute_kpis(END, _demand(), inventory, ITEMS, pd.DataFrame(), forecasts, released, LOCATIONS, {},
                        window_days=3, margin_cells=_cells())


def test_segments_carry_each_channels_and_regions_kpis(kpis):
    channel, region = kpis["segments"]["by_channel"], kpis["segments"]["by_region"]
    assert kpis["gross_margin_rate"] == round(78 / 202, 4)
    # Store: 6 points, 1 censored. S1 lost 4 - 1 = 3 on 03-09 (its uncensored mean is 4); sold 9 + 6 = 15.
    # WAPE: S1 |5 - 4| + S2 |1 - 2| = 2 over 6.
    assert channel["store"] == {"series": 2, "stockout_rate_7d": round(1 / 6, 4), "fill_rate": round(15 / 18, 4),
                                "lost_sales_units_est": 3.0, "forecast_wape": round(2 / 6, 4),
                                "gross_margin_rate": round(70 / 170, 4)}
    # Ecommerce: the censored 03-10 sold 0 against a mean of 3 -> lost 3, fill 6 / 9; its only forecast
    # falls on the censored day, so nothing is scored.
    assert channel["ecommerce"]["fill_rate"] == round(6 / 9, 4) and channel["ecommerce"]["forecast_wape"] is None
    assert channel["ecommerce"]["gross_margin_rate"] == 0.25
    # Regions are the stores' only: FC1 sits in North in the master but ships everywhere.
    assert set(region) == {"North", "South"}
    assert region["North"]["series"] == 1 and region["North"]["fill_rate"] == round(9 / 12, 4)
    assert region["North"]["gross_margin_rate"] == round(10 / 70, 4)
    assert region["South"] == {"series": 1, "stockout_rate_7d": 0.0, "fill_rate": 1.0, "lost_sales_units_est": 0.0,
                               "forecast_wape": 0.5, "gross_margin_rate": 0.6}


def test_segments_are_read_by_the_dashboard(kpis):
    doc = with_channel_fulfilment({**kpis, "orchestration": {"fulfilment_cost_per_order": 11.5}})
    assert doc["segments"]["by_channel"]["ecommerce"]["orchestration"] == {"fulfilment_cost_per_order": 11.5}
    assert "orchestration" not in doc["segments"]["by_channel"]["store"]
    frame = flatten_history([(END, doc, False, {})]).set_index("segment")
    assert frame.loc["region:South", "gross_margin_rate"] == 0.6
    assert frame.loc["channel:ecommerce", "orchestration.fulfilment_cost_per_order"] == 11.5
    assert math.isnan(frame.loc["channel:store", "orchestration.fulfilment_cost_per_order"])
    # No routed order, no cost per order: the segment is left as it was.
    assert with_channel_fulfilment({**kpis, "orchestration": {"ran": False}}) == {**kpis, "orchestration": {"ran": False}}


def test_a_master_without_regions_gives_channels_only():
    kpis = compute_kpis(END, _demand(), pd.DataFrame(columns=["location_id", "sku", "on_hand"]), ITEMS,
                        pd.DataFrame(), pd.DataFrame(columns=["unique_id", "ds", "mean"]),
                        pd.DataFrame(columns=["doc_type", "to_location", "quantity"]),
                        LOCATIONS.drop(columns="region"), {}, window_days=3)
    assert kpis["gross_margin_rate"] is None and kpis["segments"]["by_region"] == {}
    assert set(kpis["segments"]["by_channel"]) == {"store", "ecommerce"}


def test_reporting_cycle_runs_from_the_end_of_the_day_in_the_trading_time_zone():
    # 2026-03-10 ends at 2026-03-11 00:00 in Berlin (UTC+1): 23:00 UTC. A report at 02:30 UTC is 3.5 h later.
    written = dt.datetime(2026, 3, 11, 2, 30, tzinfo=dt.UTC)
    assert reporting_cycle_hours(END, written, "Europe/Berlin") == 3.5
    assert reporting_cycle_hours(END, written, "UTC") == 2.5


def _history() -> pd.DataFrame:
    nights = [(dt.date(2026, 2, 10), {"fill_rate": 0.9, "forecast_wape": 0.4}, False, {}),
              (dt.date(2026, 3, 3), {"fill_rate": 0.95, "gross_margin_rate": 0.3}, True, {"returns": "2026-03-02"}),
              (dt.date(2026, 3, 9), {"fill_rate": 0.5}, False, {})]
    return flatten_history(nights)


def test_trends_compare_with_the_nights_7_and_28_days_before():
    night = {"ds": "2026-03-10", "fill_rate": 0.97, "forecast_wape": 0.35, "gross_margin_rate": 0.32,
             "reporting_cycle_hours": 3.5, "degraded": False, "stale_sources": {}}
    table = trend_table(night, _history(), {"fill_rate": 0.98, "gross_margin_rate": 0.35}).set_index("key")
    assert list(table.index) == ["fill_rate", "forecast_wape", "gross_margin_rate", "reporting_cycle_hours"]
    assert table.at["fill_rate", "change_7"] == pytest.approx(0.02)   # 03-03 (degraded), not 03-09
    assert table.at["fill_rate", "change_28"] == pytest.approx(0.07)  # 02-10
    assert bool(table.at["fill_rate", "degraded_7"]) and not bool(table.at["fill_rate", "degraded_28"])
    assert math.isnan(table.at["forecast_wape", "change_7"])          # 03-03 recorded no WAPE: no change
    assert table.at["forecast_wape", "change_28"] == pytest.approx(-0.05)
    assert math.isnan(table.at["reporting_cycle_hours", "target"])

    lines = trend_lines(night, table.reset_index())
    assert "| Fill rate | 97.0% | +2.0 pts † | +7.0 pts | 98.0% |" in lines
    assert "| Forecast WAPE | 35.0% | n/a | -5.0 pts | none |" in lines
    assert "| Gross margin | 32.0% | +2.0 pts † | n/a | 35.0% |" in lines
    assert "| Reporting cycle time | 3.5 h | n/a | n/a | none |" in lines
    assert lines[-1] == "† against a degraded night (stand-in extracts)."


def test_the_report_has_trends_and_segments(kpis):
    night = {**kpis, "reporting_cycle_hours": 3.5, "degraded": True, "stale_sources": {"returns": "2026-03-09"}}
    text = render_report(night, {}, trends=trend_table(night, _history(), {"fill_rate": 0.98}))
    assert "| gross_margin_rate | 0.3861 |" in text and "| reporting_cycle_hours | 3.5 |" in text
    assert "## Trends" in text and "This night is degraded †" in text
    assert "| Reporting cycle time | 3.5 h | n/a | n/a | none |" in text
    assert "| region:South | 0.0% | 100.0% | 50.0% | 60.0% | n/a |" in text
    assert "## Trends" not in render_report(kpis, {})
