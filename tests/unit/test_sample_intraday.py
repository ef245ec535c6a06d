"""The generated trading day by the hour: shocks, hourly extracts that agree with the nightly ones, stock."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest

from include.sample_data.generator import PRESETS, generate_world
from include.sample_data.intraday import (
    ONSET_HOURS,
    RATIO_RANGE,
    STORE_HOURS,
    ShockConfig,
    plan_shocks,
    split_by_hour,
)
from include.sample_data.intraday_landing import (
    SNAPSHOT_HOURS,
    hourly_store_sales,
    on_hand_at,
    write_intraday_landing,
)

SHOCK_DAYS = 6


@pytest.fixture(scope="module")
def worlds():
    plain = generate_world(PRESETS["tiny"])
    shocked = generate_world(dataclasses.replace(PRESETS["tiny"], shocks=ShockConfig(days=SHOCK_DAYS, per_day=3)))
    return plain, shocked


def test_shocks_are_recorded_apart_and_leave_the_days_before_them_alone(worlds):
    plain, shocked = worlds
    assert plain.shocks.empty
    truth = shocked.shocks
    assert len(truth) == SHOCK_DAYS * 3
    last = pd.Timestamp(shocked.config.end_date)
    assert truth["date"].min() == last - pd.Timedelta(days=SHOCK_DAYS - 1)
    assert truth["onset_hour"].between(*ONSET_HOURS).all() and truth["ratio"].between(*RATIO_RANGE).all()
    assert set(truth["scope"]) <= {"online", "region", "store"}
    online = truth[truth["scope"] == "online"]
    assert (online["location_ids"] == "FC01").all()
    before = plain.true_demand["date"] < truth["date"].min()
    assert before.any()
    pd.testing.assert_frame_equal(plain.true_demand[before], shocked.true_demand[before])
    # On the first shocked day the usual demand is the same draw: the surge's units come on top of it.
    day = truth["date"].min()
    on_day = (shocked.true_demand["date"] == day).to_numpy()
    added = shocked.true_demand.loc[on_day, "demand"] - plain.true_demand.loc[on_day, "demand"]
    assert added.min() >= 0 and added.sum() == truth.loc[truth["date"] == day, "extra_units"].sum() > 0


def test_hourly_store_sales_add_up_to_the_nightly_extract(worlds):
    _, shocked = worlds
    for day in shocked.shocks["date"].dt.date.unique()[:3]:
        hourly = hourly_store_sales(shocked, day)
        nightly = shocked.pos_sales[shocked.pos_sales["business_date"] == pd.Timestamp(day)]
        by_cell = hourly.groupby(["store_id", "sku"])["units_sold"].sum().sort_index()
        pd.testing.assert_series_equal(by_cell, nightly.set_index(["store_id", "sku"])["units_sold"].sort_index())
        assert hourly["hour"].between(8, 21).all()  # the stores trade 08:00 to 22:00


def test_stock_during_the_day_ends_at_the_nightly_snapshot(worlds):
    _, shocked = worlds
    day = shocked.config.end_date
    nightly = shocked.inventory_snapshot[shocked.inventory_snapshot["snapshot_date"] == pd.Timestamp(day)]
    evening = on_hand_at(shocked, day, 23).merge(nightly, on=["location_id", "sku"], suffixes=("", "_nightly"))
    selling = ~evening["location_id"].str.startswith("DC")
    assert (evening.loc[selling, "on_hand"] == evening.loc[selling, "on_hand_nightly"]).all()
    morning = on_hand_at(shocked, day, 7).set_index(["location_id", "sku"])["on_hand"]
    noon = on_hand_at(shocked, day, 12).set_index(["location_id", "sku"])["on_hand"]
    assert (noon <= morning).all() and (noon < morning).any()


def test_online_shock_orders_arrive_after_the_onset(worlds):
    plain, shocked = worlds
    # The first shocked day has the same usual orders in both worlds (seed 7: an online shock that day).
    first = shocked.shocks[shocked.shocks["date"] == shocked.shocks["date"].min()]
    online = first[(first["scope"] == "online") & (first["extra_units"] > 0)]
    assert len(online) == 1
    shock = online.iloc[0]

    def late_units(world):
        lines = world.ecommerce_orders
        lines = lines[(lines["ordered_at"].dt.normalize() == shock["date"]) & (lines["sku"] == shock["sku"])]
        return lines.loc[lines["ordered_at"].dt.hour >= shock["onset_hour"], "quantity"].sum()

    assert late_units(shocked) - late_units(plain) == shock["extra_units"]


def test_split_by_hour_sells_nothing_after_a_stock_out():
    rng = np.random.default_rng(3)
    shares = np.broadcast_to(STORE_HOURS[0], (2, 24))
    demand, hourly_sales = split_by_hour(rng, np.array([40, 40]), np.array([10, 40]), np.array([0, 20]), shares,
                                         np.array([24, 15]))
    assert demand.sum(axis=1).tolist() == [40, 40] and hourly_sales.sum(axis=1).tolist() == [10, 40]
    sold_out = np.flatnonzero(np.cumsum(hourly_sales[0]) == 10)[0]
    assert hourly_sales[0, sold_out + 1:].sum() == 0
    assert demand[1, 15:].sum() >= 20  # the shock's 20 units all came from 15:00 on


def test_write_intraday_landing_lays_out_hours(tmp_path, worlds):
    _, shocked = worlds
    day = shocked.config.end_date
    paths = write_intraday_landing(shocked, str(tmp_path), day, hours=[8, SNAPSHOT_HOURS[0]])
    names = sorted(p.replace(str(tmp_path), "") for p in paths)
    hour_a, hour_b = "08", f"{SNAPSHOT_HOURS[0]:02d}"
    assert f"/landing/pos_intraday/ds={day}/hour={hour_a}/pos_sales.csv" in names
    assert f"/landing/ecommerce_intraday/ds={day}/hour={hour_b}/order_lines.jsonl" in names
    assert f"/landing/wms_intraday/ds={day}/hour={hour_b}/inventory_snapshot.parquet" in names
    assert not any(f"wms_intraday/ds={day}/hour={hour_a}" in n for n in names)
    pos = pd.read_csv(tmp_path / f"landing/pos_intraday/ds={day}/hour={hour_a}/pos_sales.csv")
    assert (pos["hour"] == 8).all()
    with pytest.raises(ValueError, match="hours must lie in 0..23"):
        write_intraday_landing(shocked, str(tmp_path), day, hours=[24])
    with pytest.raises(ValueError, match="outside the generated history"):
        hourly_store_sales(shocked, "2001-01-01")


def test_shocks_fall_on_skus_that_sell_where_they_surge():
    config = dataclasses.replace(PRESETS["tiny"], volume=10.0, shocks=ShockConfig(days=4, per_day=3, min_daily_units=10))
    world = generate_world(config)
    busy = world.true_demand[world.true_demand["date"] < world.shocks["date"].min()]
    daily = busy.groupby(["location_id", "sku"])["demand"].mean()
    for shock in world.shocks.itertuples(index=False):
        usual = sum(daily[(loc, shock.sku)] for loc in shock.location_ids.split(";"))
        assert usual >= 0.5 * 10, (shock.scope, shock.sku, usual)  # season and promotions move it around
    assert world.shocks.groupby("date")["sku"].nunique().eq(3).all()  # three SKUs a day, none twice
    plain = generate_world(PRESETS["tiny"])
    assert world.true_demand["demand"].mean() > 5 * plain.true_demand["demand"].mean()


def _cells_surged(shocks: pd.DataFrame) -> list[tuple[int, int, int]]:
    """(location row, sku, day) of every location a shock covers."""
    return [(r, s.sku, s.day) for s in shocks.itertuples() for r in s.rows]


def test_a_cell_surges_again_only_after_min_days_between():
    # A web shop (row 0) and six stores in two regions; twelve SKUs sell 40 a day at the FC, four at the
    # stores: 24 surges in 8 days leave a scope without a fresh cell on some draws, never all of them.
    usual = np.zeros((7, 12))
    usual[0, :] = 40.0
    usual[1:, :4] = 40.0
    kwargs = dict(seed=3, n_days=30, first_day=0, usual=usual, store_rows=np.arange(1, 7),
                  store_region=np.array([0, 0, 0, 1, 1, 1]), fc_row=0)
    spaced = plan_shocks(ShockConfig(days=8, per_day=3, min_daily_units=30, min_days_between=28), **kwargs)
    assert len(spaced) == 24 and spaced.groupby("day")["sku"].nunique().eq(3).all()
    seen = _cells_surged(spaced)
    assert len({(r, k) for r, k, _ in seen}) == len(seen)  # no location and SKU twice
    assert all(usual[list(s.rows), s.sku].sum() >= 30 for s in spaced.itertuples())  # still on sellers
    # Without the spacing the same draw surges cells again within days.
    repeated = _cells_surged(plan_shocks(ShockConfig(days=8, per_day=3, min_daily_units=30, min_days_between=0),
                                         **kwargs))
    assert len({(r, k) for r, k, _ in repeated}) < len(repeated)
    with pytest.raises(ValueError, match="min_days_between"):
        ShockConfig(min_days_between=-1)
