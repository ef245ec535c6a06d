"""Finance review items: the robust test, owners, accruals, projected loss, and one item per episode."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest

from include.finance.bridge import BRIDGE_COLUMNS
from include.finance.params import CAUSES, ReviewParams
from include.finance.review import ITEM_COLUMNS, business_key, dedupe_items, detect_items, robust_z

PARAMS = ReviewParams(min_z=4.0, min_excess=35.0, min_excess_by_cause={"shrink": 150.0}, rate_floor=0.004,
                      relative_floor=0.15, sd_weight=0.5, horizon_weeks=4.0, min_baseline_weeks=4, short_min_z=10.0,
                      short_min_excess=15.0, short_causes=("price_markdown", "fulfilment_substitution"))
NIGHT = pd.Timestamp("2026-06-10")


def _row(cause: str, rate: float, median: float, mad: float, sd: float = 0.0, gross: float = 2000.0,
         weeks: int = 12, night=NIGHT, category="Toys", channel="store", location="S0001") -> dict:
    row = dict.fromkeys(BRIDGE_COLUMNS, 0.0)
    row.update({"category": category, "channel": channel, "location_id": location, "night": night,
                "gross_sales": gross, "actual_margin": 600.0, "expected_margin": 800.0, "actual_margin_pct": 30.0,
                "expected_margin_pct": 40.0, "baseline_weeks": weeks, "window_days": 7, "short_days": 2})
    row.update({f"rate_{cause}": rate, f"median_{cause}": median, f"mad_{cause}": mad, f"sd_{cause}": sd,
                cause: -(rate - median) * gross})
    row["margin_change"] = sum(row[c] for c in CAUSES)
    return row


def _short(row: dict, cause: str, rate: float, median: float, mad: float, sd: float = 0.0,
           gross: float = 500.0) -> dict:
    """``row`` with its last two nights: ``gross`` of sales at ``rate``, against 2-night baseline blocks of
    ``median``, ``mad`` and ``sd`` (the money is judged against the week's expected rate, ``median_<cause>``)."""
    return {**row, "short_gross_sales": gross, f"short_rate_{cause}": rate, f"short_median_{cause}": median,
            f"short_mad_{cause}": mad, f"short_sd_{cause}": sd,
            f"short_{cause}": -(rate - row[f"median_{cause}"]) * gross}


def _bridge(*rows: dict) -> pd.DataFrame:
    return pd.DataFrame(list(rows))[BRIDGE_COLUMNS]


def test_robust_z_takes_the_largest_scale():
    rate, med = np.array([0.05, 0.05, 0.05, 0.05]), np.array([0.01, 0.01, 0.01, 0.2])
    mad, sd = np.array([0.005, 0.0, 0.0, 0.0]), np.array([0.0, 0.02, 0.0, 0.0])
    z, scale = robust_z(rate, med, mad, sd, PARAMS)
    # MAD (1.4826 * 0.005), half the sd (0.01), the floor (0.004), 15% of the median (0.03).
    assert scale == pytest.approx([1.4826 * 0.005, 0.01, 0.004, 0.03])
    assert z == pytest.approx([0.04 / (1.4826 * 0.005), 4.0, 10.0, -0.15 / 0.03])


def test_an_unusual_shrink_is_an_item_for_finance_with_a_manager():
    items = detect_items(_bridge(_row("shrink", rate=0.12, median=0.01, mad=0.005)), PARAMS)
    assert list(items.columns) == ITEM_COLUMNS and len(items) == 1
    item = items.iloc[0]
    assert (item["cause"], item["owner"], item["needs_manager"]) == ("shrink", "finance", True)
    assert item["excess"] == pytest.approx(220.0) and item["projected_loss"] == pytest.approx(880.0)
    assert item["robust_z"] == pytest.approx(0.11 / (1.4826 * 0.005))
    ev = item["evidence"]
    assert (ev["actual_rate"], ev["baseline_median"], ev["baseline_mad"], ev["weeks_of_history"]) == (0.12, 0.01, 0.005, 12)
    assert ev["excess"] == pytest.approx(220.0) and ev["bridge"]["shrink"] == pytest.approx(-220.0)
    assert ev["bridge"]["actual_margin_pct"] == 30.0
    assert "shrink at 12.00% vs a usual 1.00%" in item["explanation"] and "880.00 over 4 weeks" in item["explanation"]


def test_owners_and_accruals_follow_the_cause():
    bridge = _bridge(_row("expedited_shipping", 0.08, 0.02, 0.004, location="S1"),
                     _row("returns_refunds", 0.30, 0.04, 0.01, location="S2"),
                     _row("price_markdown", 0.10, 0.0, 0.0, location="S3"),
                     _row("fulfilment_substitution", 0.05, 0.01, 0.002, location="S4"))
    items = detect_items(bridge, PARAMS).set_index("cause")
    assert items.loc["expedited_shipping", "owner"] == "supply chain"
    assert items.loc["fulfilment_substitution", "owner"] == "supply chain"
    assert items.loc["returns_refunds", "owner"] == "customer service"
    assert items.loc["price_markdown", "owner"] == "merchandising"
    assert items["needs_manager"].to_dict() == {"expedited_shipping": False, "returns_refunds": True,
                                                "price_markdown": False, "fulfilment_substitution": False}


def test_what_is_not_an_item():
    bridge = _bridge(
        _row("shrink", 0.05, 0.01, 0.005),  # z 5.4 but 80 lost: below shrink's own floor of 150
        _row("expedited_shipping", 0.05, 0.04, 0.01, location="S2"),  # within its range (z 0.7)
        _row("price_markdown", 0.0, 0.05, 0.001, location="S3"),  # a gain, not a loss
        _row("price_markdown", 0.2, 0.0, 0.0, weeks=3, location="S4"),  # too little history
        _row("mix", 0.9, 0.5, 0.001, location="S5"),  # mix is reported, not reviewed
        _row("price_markdown", 0.02, 0.0, 0.0, gross=1000.0, location="S6"),  # z 5, but 20 lost: below 35
    )
    assert detect_items(bridge, PARAMS).empty
    assert len(detect_items(bridge, dataclasses.replace(PARAMS, min_excess_by_cause={}))) == 1


def test_an_event_on_its_first_nights_is_an_item_on_the_short_window():
    # Week: substitutions at 1.6% vs 0.2% (z 0.014 / 0.004 = 3.5, 28 lost): not an item on the week alone.
    # Last two nights: 6% of 500 vs 2-night blocks at 0.2% (MAD 0.002, so the scale is the 0.004 floor):
    # z 14.5, and 500 * (0.06 - 0.002) = 29 lost against the week's expected 0.2%.
    week = _row("fulfilment_substitution", rate=0.016, median=0.002, mad=0.001)
    assert detect_items(_bridge(week), PARAMS).empty
    items = detect_items(_bridge(_short(week, "fulfilment_substitution", 0.06, 0.002, 0.002)), PARAMS)
    assert len(items) == 1
    item = items.iloc[0]
    assert item["robust_z"] == pytest.approx(14.5)
    # 29 over 2 nights is 101.5 a week, 406 over the 4 weeks of the horizon.
    assert item["excess"] == pytest.approx(29.0) and item["projected_loss"] == pytest.approx(406.0)
    ev = item["evidence"]
    assert (ev["window"], ev["window_days"], ev["actual_rate"], ev["expected_rate"]) == ("short", 2, 0.06, 0.002)
    assert ev["week"]["z"] == pytest.approx(3.5) and ev["week"]["excess"] == pytest.approx(28.0)
    assert ev["short"]["nights"] == 2 and ev["short"]["gross_sales"] == 500.0
    assert "29.00 of margin lost in the last 2 nights, 406.00 over 4 weeks" in item["explanation"]


def test_the_week_speaks_for_an_item_both_windows_flag():
    row = _short(_row("price_markdown", 0.1, 0.0, 0.0), "price_markdown", 0.2, 0.0, 0.0)
    item = detect_items(_bridge(row), PARAMS).iloc[0]
    assert item["evidence"]["window"] == "week" and item["excess"] == pytest.approx(200.0)
    assert item["projected_loss"] == pytest.approx(800.0) and item["evidence"]["short"]["z"] == pytest.approx(50.0)
    assert "200.00 of margin lost in the week" in item["explanation"]


def test_what_the_short_window_does_not_make_an_item():
    week = _row("fulfilment_substitution", rate=0.004, median=0.002, mad=0.001, location="S1")
    shrink = _row("shrink", rate=0.01, median=0.005, mad=0.005, location="S2")
    bridge = _bridge(
        _short(week, "fulfilment_substitution", 0.04, 0.002, 0.002),  # 19 lost, but z 9.5: below 10
        _short({**week, "location_id": "S3"}, "fulfilment_substitution", 0.045, 0.002, 0.002,
               gross=300.0),  # z 10.75, but 12.90 lost: below 15
        _short(shrink, "shrink", 0.5, 0.0, 0.0),  # shrink is judged on the week alone
        _short({**week, "location_id": "S4", "baseline_weeks": 3}, "fulfilment_substitution", 0.2, 0.002, 0.001),
    )
    assert detect_items(bridge, PARAMS).empty
    every = dataclasses.replace(PARAMS, short_causes=("fulfilment_substitution", "shrink"))
    assert list(detect_items(bridge, every)["location_id"]) == ["S2"]
    laxer = dataclasses.replace(PARAMS, short_min_z=9.0, short_min_excess=12.0)
    assert list(detect_items(bridge, laxer)["location_id"]) == ["S1", "S3"]


def test_one_ongoing_event_is_one_item_and_a_long_gap_starts_another():
    keys, state = [], None
    for offset in (0, 1, 2, 5, 9):  # flagged on these nights: 2 quiet nights continue, 3 start anew
        night = NIGHT + pd.Timedelta(days=offset)
        items = detect_items(_bridge(_row("price_markdown", 0.1, 0.0, 0.0, night=night)), PARAMS)
        items, state = dedupe_items(items, state, PARAMS)
        keys.append((items.iloc[0]["business_key"], bool(items.iloc[0]["is_new"])))
    first = business_key("Toys", "store", "S0001", "price_markdown", NIGHT)
    assert first == "finance_review:Toys:store:S0001:price_markdown:2026-06-10"
    second = business_key("Toys", "store", "S0001", "price_markdown", NIGHT + pd.Timedelta(days=9))
    assert keys == [(first, True), (first, False), (first, False), (first, False), (second, True)]
    assert len(state) == 1 and state.iloc[0]["business_key"] == second


def test_dedupe_keeps_quiet_episodes_open_and_refuses_several_nights():
    items = detect_items(_bridge(_row("price_markdown", 0.1, 0.0, 0.0)), PARAMS)
    _, state = dedupe_items(items, None, PARAMS)
    empty = items.iloc[:0]
    _, state = dedupe_items(empty, state, PARAMS)
    assert len(state) == 1  # a night without items keeps the episode open
    two = pd.concat([items, items.assign(night=NIGHT + pd.Timedelta(days=1))])
    with pytest.raises(ValueError, match="one night at a time, got 2"):
        dedupe_items(two, None, PARAMS)


def test_params_name_what_is_wrong():
    with pytest.raises(ValueError, match="owners must name the owner of every cause"):
        ReviewParams(owners={"shrink": "finance"})
    with pytest.raises(ValueError, match="accrual_causes must be causes"):
        ReviewParams(accrual_causes=("theft",))
    with pytest.raises(ValueError, match="min_excess_by_cause must be non-negative, got {'shrink': -1.0}"):
        ReviewParams(min_excess_by_cause={"shrink": -1.0})
    with pytest.raises(ValueError, match="min_z must be a non-negative number"):
        ReviewParams(min_z=-1.0)
    with pytest.raises(ValueError, match="short_causes must be rate causes .* got \\['mix'\\]"):
        ReviewParams(short_causes=("mix",))
    with pytest.raises(ValueError, match="min_z, short_min_z and horizon_weeks must be above 0"):
        ReviewParams(short_min_z=0.0)
