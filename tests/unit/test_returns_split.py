"""The stores' own forecasts weighed against the item's split by store: arithmetic, the fitted weight and
the sales it is fitted on."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from include.returns.split import calibrate_split, mean_daily_sold, pooled_split, split_weight

STORES = ["S1", "S2"]


def demand(rows):
    return pd.DataFrame(rows, columns=["location_id", "sku", "mean_daily"])


def test_the_items_demand_is_split_by_each_stores_share_of_all_store_demand_and_the_fc_keeps_its_own():
    frame = demand([("S1", "A", 3.0), ("S2", "A", 1.0), ("S1", "B", 3.0), ("S2", "B", 5.0), ("FC", "A", 9.0)])
    # S1 sells 6 of the stores' 12 a day, S2 6: each gets half of A's 4 and of B's 8.
    assert pooled_split(frame, STORES).tolist() == [2.0, 2.0, 4.0, 4.0, 9.0]
    assert calibrate_split(frame, 0.25, STORES)["mean_daily"].tolist() == [2.25, 1.75, 3.75, 4.25, 9.0]
    assert calibrate_split(frame, None, STORES) is frame
    with pytest.raises(ValueError, match=r"must be in \[0, 1\]"):
        calibrate_split(frame, 1.5, STORES)


def past_and_pooled(n_items=60, seed=0):
    rng = np.random.default_rng(seed)
    own = rng.gamma(2.0, 1.0, size=(2, n_items))
    frame = demand([(store, f"K{i}", own[s, i]) for s, store in enumerate(STORES) for i in range(n_items)])
    return frame, pooled_split(frame, STORES)


def test_the_weight_is_one_where_each_store_sold_what_it_forecast_and_zero_where_sales_followed_the_split():
    past, pooled = past_and_pooled()
    assert split_weight(past, past, STORES) == pytest.approx(1.0)
    assert split_weight(past, past.assign(mean_daily=pooled), STORES) == pytest.approx(0.0)
    # Sales a third of the way from the split to each store's forecast: a weight of 1/3.
    third = past.assign(mean_daily=pooled + (past["mean_daily"] - pooled) / 3)
    assert split_weight(past, third, STORES) == pytest.approx(1 / 3)
    # A store x item with no sales rows sold nothing; the FC is not weighed.
    fc = demand([("FC", f"K{i}", 100.0) for i in range(5)])
    sold = past.assign(mean_daily=pooled).iloc[1:]
    assert split_weight(pd.concat([past, fc]), sold, STORES) == pytest.approx(
        split_weight(past, pd.concat([past.iloc[:1].assign(mean_daily=0.0), sold]), STORES))


def test_no_weight_from_too_few_series_or_forecasts_that_already_follow_the_split():
    past, pooled = past_and_pooled(n_items=10)
    assert split_weight(past, past, STORES) is None  # 20 series, fewer than 50
    assert split_weight(past, past, STORES, min_series=20) == pytest.approx(1.0)
    flat = past.assign(mean_daily=pooled)
    assert split_weight(flat, past, STORES, min_series=20) is None


def test_what_sold_is_the_mean_a_day_and_nothing_when_a_day_has_no_sales():
    pos = pd.DataFrame({"store_id": ["S1", "S1", "S2", "S1"], "sku": ["A", "A", "A", "B"],
                        "business_date": pd.to_datetime(["2026-11-01", "2026-11-02", "2026-11-02", "2026-10-31"]),
                        "units_sold": [3, 1, 4, 9]})
    sold = mean_daily_sold(pos, dt.date(2026, 11, 1), dt.date(2026, 11, 2)).set_index(["location_id", "sku"])
    assert sold["mean_daily"].to_dict() == {("S1", "A"): 2.0, ("S2", "A"): 2.0}  # B sold before the range
    assert mean_daily_sold(pos, dt.date(2026, 11, 1), dt.date(2026, 11, 3)) is None  # the 3rd has no extract
    assert mean_daily_sold(pos.iloc[:0], dt.date(2026, 11, 1), dt.date(2026, 11, 2)) is None


def test_on_walmarts_stores_which_differ_in_their_mix_the_stores_own_figures_keep_nearly_all_the_weight():
    from tests.shared_data import shared_data

    sales = pd.read_csv(shared_data("walmart_recruiting/train.csv.zip"), usecols=["Store", "Dept", "Date",
                                                                                "Weekly_Sales"])
    weekly = sales.pivot_table(index="Date", columns=["Store", "Dept"], values="Weekly_Sales").sort_index().clip(lower=0)
    stores = [str(s) for s in weekly.columns.get_level_values(0).unique()]
    weights = []
    for week in (60, 80, 120):  # each store x department's last 8 weeks against the 4 after
        frame = pd.DataFrame({"past": weekly.iloc[week - 8:week].mean(), "sold": weekly.iloc[week:week + 4].mean()})
        frame = frame.dropna().reset_index()
        keys = {"location_id": frame["Store"].astype(str), "sku": frame["Dept"].astype(str)}
        weights.append(split_weight(pd.DataFrame({**keys, "mean_daily": frame["past"]}),
                                    pd.DataFrame({**keys, "mean_daily": frame["sold"]}), stores))
    assert min(weights) > 0.9, weights
