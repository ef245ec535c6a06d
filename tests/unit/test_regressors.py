"""Unit tests for the retail event calendar and the known regressors of demand series."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from include.demand.calendar import EXTRA_EVENTS_ENV, easter, event_labels, retail_events
from include.demand.regressors import known_regressors


@pytest.mark.parametrize(("year", "sunday"), [(2024, dt.date(2024, 3, 31)), (2025, dt.date(2025, 4, 20)),
                                              (2026, dt.date(2026, 4, 5)), (2027, dt.date(2027, 3, 28))])
def test_easter_sunday(year, sunday):
    assert easter(year) == sunday


def test_the_calendar_labels_each_day_of_an_event_window():
    events = retail_events("2026-11-20", "2026-12-31").set_index("ds")["event"]
    assert events[pd.Timestamp("2026-11-26")] == "thanksgiving"
    assert events[pd.Timestamp("2026-11-27")] == "black_friday"
    assert events[pd.Timestamp("2026-11-30")] == "cyber_monday"
    assert events[pd.Timestamp("2026-12-21")] == "christmas_eve-3"
    assert events[pd.Timestamp("2026-12-24")] == "christmas_eve"
    assert events[pd.Timestamp("2026-12-31")] == "year_end"
    assert pd.Timestamp("2026-11-25") not in events.index
    # The same label every year is what lets last year's Black Friday teach this year's forecast.
    assert retail_events("2025-11-01", "2025-11-30").set_index("event").loc["black_friday", "ds"] == pd.Timestamp(
        "2025-11-28")
    assert events.index.is_unique and events.index.is_monotonic_increasing


def test_event_labels_align_with_the_days_given():
    days = pd.DatetimeIndex(["2026-11-27", "2026-06-15", "2026-04-05"])
    assert list(event_labels(days)) == ["black_friday", None, "easter"]
    assert event_labels(pd.DatetimeIndex([])).empty


def test_a_retailers_own_events_join_the_calendar(tmp_path, monkeypatch):
    path = tmp_path / "events.csv"
    path.write_text("event,ds\nstore_anniversary,2026-06-15\nblack_friday_clash,2026-11-27\n")
    monkeypatch.setenv(EXTRA_EVENTS_ENV, str(path))
    assert list(event_labels(pd.DatetimeIndex(["2026-06-15", "2026-11-27"]))) == ["store_anniversary", "black_friday"]


def test_a_broken_events_file_names_the_file_and_line(tmp_path, monkeypatch):
    path = tmp_path / "events.csv"
    path.write_text("event,ds\nok,2026-06-15\nsummer_sale,15/07/2026\n")
    monkeypatch.setenv(EXTRA_EVENTS_ENV, str(path))
    with pytest.raises(ValueError, match=rf"{EXTRA_EVENTS_ENV}=.*events.csv, line 3: event and ds"):
        retail_events("2026-01-01", "2026-12-31")
    path.write_text("name,date\nx,2026-01-01\n")
    with pytest.raises(ValueError, match=r"missing column\(s\) \['ds', 'event'\]"):
        retail_events("2026-01-01", "2026-12-31")


KEYS = pd.DataFrame({"unique_id": ["S1|A", "S2|A", "S1|B", "S1|Z"], "location_id": ["S1", "S2", "S1", "S1"],
                     "sku": ["A", "A", "B", "Z"]})
ITEMS = pd.DataFrame({"sku": ["A", "B"], "unit_price": [10.0, 4.0]})


def test_promotions_run_everywhere_or_at_their_location_and_the_deepest_wins():
    promotions = pd.DataFrame({
        "promo_id": ["P1", "P2", "P3"], "sku": ["A", "A", "B"], "location_id": [None, "S2", "S1"],
        "start_date": pd.to_datetime(["2026-03-01", "2026-03-02", "2026-02-20"]),
        "end_date": pd.to_datetime(["2026-03-02", "2026-03-05", "2026-03-01"]),
        "discount_pct": [0.1, 0.3, 0.25],
    })
    days = pd.date_range("2026-03-01", "2026-03-03")
    out = known_regressors(KEYS, days, promotions, ITEMS).set_index(["unique_id", "ds"])
    assert list(out.loc["S1|A", "promo"]) == [0.1, 0.1, 0.0]
    assert list(out.loc["S2|A", "promo"]) == [0.1, 0.3, 0.3]  # the local 30% beats the chain-wide 10%
    assert list(out.loc["S1|B", "promo"]) == [0.25, 0.0, 0.0]  # started before the window, clipped to it
    assert list(out.loc["S2|A", "price"]) == [9.0, 7.0, 7.0]
    assert out.loc["S1|Z", "price"].isna().all()  # not in the item master
    assert out["event"].isna().all()
    assert len(out) == len(KEYS) * len(days)


def test_without_a_promotion_calendar_nothing_is_promoted():
    days = pd.date_range("2026-11-26", periods=3)
    out = known_regressors(KEYS, days, None, None)
    assert (out["promo"] == 0).all() and out["price"].isna().all()
    assert list(out.loc[out["unique_id"] == "S1|A", "event"]) == ["thanksgiving", "black_friday", "black_friday+1"]
    assert np.array_equal(known_regressors(KEYS, days, pd.DataFrame(), ITEMS)["promo"], np.zeros(12))
