"""The nightly's account of the day's intraday sensing: surges, detection lead, unconfirmed alarms, what moved."""

from __future__ import annotations

import pandas as pd
import pytest

from include.reporting.intraday_kpis import intraday_kpis, intraday_report_lines


def _sensing() -> pd.DataFrame:
    rows = [
        # A region's two stores flagged together: one surge.
        ("S1", "A", "store", True, "region", 12, 14, 40.0, 20.0, 4.0),
        ("S2", "A", "store", True, "region", 12, 14, 38.0, 20.0, 4.0),
        # The web shop on its own, whose day closed within the forecast's usual error: unconfirmed.
        ("FC", "B", "online", True, "series", 15, 16, 33.0, 30.0, 6.0),
        ("S3", "A", "store", False, "", -1, -1, 18.0, 20.0, 4.0),
        ("DC1", "A", "dc", False, "", -1, -1, 0.0, 0.0, 0.0),
    ]
    frame = pd.DataFrame(rows, columns=["location_id", "sku", "channel", "alarm", "level", "onset_hour", "alarm_hour",
                                        "sold_today", "forecast_today", "forecast_sigma"])
    return frame.assign(as_of_hour=21)


def _lines() -> pd.DataFrame:
    return pd.DataFrame({
        "action": ["urgent_transfer", "urgent_expedite", "raise_order"], "status": ["released", "expired", "released"],
        "quantity": [10.0, 5.0, 24.0], "to_location": ["S1", "S2", "S1"], "sku": ["A", "A", "A"],
        "explanation": [{"as_of": "2026-11-27T14", "on_hand": 6.0, "margin_at_stake": 50.0},
                        {"as_of": "2026-11-27T14", "on_hand": 9.0, "margin_at_stake": 25.0},
                        {"as_of": "2026-11-27T14", "on_hand": 6.0, "margin_at_stake": 120.0}],
    })


def test_the_days_surges_are_counted_once_and_timed_from_onset_to_proposal():
    hourly = pd.DataFrame({"location_id": ["S1", "S1", "S1"], "sku": ["A"] * 3, "hour": [13, 15, 17],
                           "units": [5, 7, 6]})
    kpis = intraday_kpis(_sensing(), _lines(), hourly)
    assert kpis["surges_detected"] == 2 and kpis["last_hour"] == 21
    assert kpis["median_hours_onset_to_detection"] == pytest.approx(2.5)  # (14 + 1 - 12, 16 + 1 - 15)
    assert kpis["unconfirmed_alarms"] == 1  # the web shop's 33 against 30 +- 1.96 x 6
    # Released moves only: S1 sold 13 after 14:00 holding 6, so 7 of its 10 moved units sold.
    assert kpis["units_moved"] == 10.0 and kpis["units_ordered"] == 24.0
    assert kpis["sales_saved_units_est"] == 7.0 and kpis["margin_saved_est"] == pytest.approx(35.0)
    text = "\n".join(intraday_report_lines({"intraday": kpis}))
    assert "2 surge(s) detected" in text and "1 unconfirmed" in text


def test_a_day_no_intraday_run_read_says_so():
    kpis = intraday_kpis(None, pd.DataFrame(), pd.DataFrame())
    assert kpis == {"ran": False}
    assert intraday_report_lines({"intraday": kpis})[-1] == "No intraday run read this day."


def test_units_stores_shipped_to_web_customers_count_as_moved():
    lines = pd.concat([_lines(), pd.DataFrame({
        "action": ["ship_from_store"], "status": ["released"], "quantity": [8.0], "to_location": ["FC"],
        "sku": ["B"], "explanation": [{"as_of": "2026-11-27T16", "on_hand": 2.0, "margin_at_stake": 40.0}]})],
        ignore_index=True)
    hourly = pd.DataFrame({"location_id": ["FC", "FC"], "sku": ["B", "B"], "hour": [17, 18], "units": [4, 3]})
    kpis = intraday_kpis(_sensing(), lines, hourly)
    # The web shop sold 7 after 16:00 holding 2: 5 of the 8 units the stores gave it sold.
    assert kpis["units_moved"] == 18.0 and kpis["sales_saved_units_est"] == 5.0


def test_moves_to_shelves_running_dry_are_counted_apart():
    lines = pd.concat([_lines(), pd.DataFrame({
        "action": ["urgent_transfer"], "status": ["released"], "quantity": [6.0], "to_location": ["S3"],
        "sku": ["A"], "explanation": [{"as_of": "2026-11-27T10", "on_hand": 1.0, "margin_at_stake": 30.0,
                                       "reason": "stockout"}]})], ignore_index=True)
    kpis = intraday_kpis(_sensing(), lines, pd.DataFrame(columns=["location_id", "sku", "hour", "units"]))
    assert kpis["units_moved"] == 16.0 and kpis["stockout_rescues"] == 1 and kpis["units_moved_to_stockouts"] == 6.0
    assert kpis["surges_detected"] == 2  # a rescue is no surge
    text = "\n".join(intraday_report_lines({"intraday": kpis}))
    assert "16 units moved (6 of them by 1 move(s) to shelves running dry without a surge)" in text
    plain = intraday_kpis(_sensing(), _lines(), pd.DataFrame(columns=["location_id", "sku", "hour", "units"]))
    assert plain["stockout_rescues"] == 0 and "running dry" not in "\n".join(intraday_report_lines({"intraday": plain}))


def test_a_rescue_is_a_line_whose_explanation_says_stockout():
    from include.intraday.moves import is_rescue

    lines = pd.DataFrame({"explanation": [{"reason": "stockout"}, {"reason": "surge"}, {}, None]})
    assert is_rescue(lines).tolist() == [True, False, False, False]
    assert is_rescue(pd.DataFrame()).tolist() == []
