"""The generated order orchestration extracts: deterministic, realistic in shape, and landed like the others."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from include.sample_data import orders as sample_orders
from include.sample_data.generator import PRESETS, WorldConfig, generate_world


@pytest.fixture(scope="module")
def world():
    return generate_world(WorldConfig(n_regions=3, stores_per_region=4, n_skus=40, history_days=40))


def test_extracts_are_deterministic_and_follow_the_contract_columns(world):
    day = world.config.end_date
    first = sample_orders.order_extracts(world, day)
    again = sample_orders.order_extracts(generate_world(world.config), day)
    for name, frame in first.items():
        assert list(frame.columns) == sample_orders.ORDER_COLUMNS[name]
        pd.testing.assert_frame_equal(frame, again[name])
    other = sample_orders.open_order_lines(world, day - dt.timedelta(days=1))
    assert not other["sku"].reset_index(drop=True).equals(first["open_order_lines"]["sku"].iloc[:len(other)])


def test_orders_have_several_lines_consecutive_numbers_and_one_promise(world):
    lines = sample_orders.open_order_lines(world, world.config.end_date,
                                           sample_orders.OrderConfig(lines_per_day=3000))
    sizes = lines.groupby("order_id").size()
    assert 2600 < len(lines) < 3400
    assert (sizes > 1).mean() > 0.35 and sizes.max() <= 5
    assert (lines.groupby("order_id")["line_no"].apply(lambda s: list(s) == list(range(1, len(s) + 1)))).all()
    per_order = lines.groupby("order_id")[["customer_zone", "promised_date", "ordered_at"]].nunique()
    assert (per_order == 1).all().all()
    days_ahead = (lines["promised_date"] - lines["ordered_at"].dt.normalize()).dt.days
    assert set(days_ahead) == set(sample_orders.PROMISE_DAYS)
    assert lines["ordered_at"].is_monotonic_increasing
    assert not lines.duplicated(["order_id", "line_no"]).any()


def test_rate_card_bands_by_distance(world):
    card = sample_orders.rate_card(world)
    caps = sample_orders.node_capabilities(world)
    assert set(card["origin_location_id"]) == set(caps.loc[caps["ships_parcels"], "location_id"])
    assert "DC01" not in set(card["origin_location_id"])
    band = np.searchsorted(sample_orders.BAND_EDGES_KM, card["distance_km"])
    fc = card["origin_location_id"] == "FC01"
    # Within one origin type the carrier's price and transit never fall as distance grows.
    for part in (card[fc], card[~fc]):
        ordered = part.assign(band=band[part.index]).sort_values("distance_km")
        assert ordered["cost_per_parcel"].is_monotonic_increasing
        assert ordered["transit_days"].is_monotonic_increasing
    # Stores pay the courier's collection fee on top of the band's rate.
    store = card[~fc].iloc[0]
    assert store["cost_per_parcel"] == pytest.approx(
        sample_orders.BAND_PARCEL[np.searchsorted(sample_orders.BAND_EDGES_KM, store["distance_km"])]
        + sample_orders.STORE_COLLECTION_FEE)
    assert card["transit_days"].max() > card["transit_days"].min()


def test_store_labour_collapses_on_a_peak_day_while_orders_surge(world):
    end = world.config.end_date
    config = sample_orders.OrderConfig(peak_dates=(end,), lines_per_day=2000)
    ordinary, peak = end - dt.timedelta(days=1), end
    caps = sample_orders.node_capabilities(world, config)
    stores = set(caps.loc[(caps["node_type"] == "store") & caps["ships_parcels"], "location_id"])

    def capacity(day):
        plan = sample_orders.labour_schedule(world, day, config)
        store = plan[plan["location_id"].isin(stores)]["pick_lines"].sum()
        return store, plan[plan["location_id"] == "FC01"]["pick_lines"].sum()

    (store_o, fc_o), (store_p, fc_p) = capacity(ordinary), capacity(peak)
    assert store_p < 0.5 * store_o and fc_p > fc_o
    n_o = len(sample_orders.open_order_lines(world, ordinary, config))
    n_p = len(sample_orders.open_order_lines(world, peak, config))
    assert 1.8 < n_p / n_o < 2.6
    # On the peak day, stores and FC together cannot pick every line: labour binds.
    assert store_p + fc_p < n_p


def test_on_hand_is_the_worlds_opening_stock(world):
    day = world.config.end_date
    on_hand = sample_orders.node_on_hand(world, day)
    close = world.inventory_snapshot
    close = close[close["snapshot_date"] == pd.Timestamp(day - dt.timedelta(days=1))]
    merged = on_hand.merge(close, on=["location_id", "sku"], suffixes=("", "_close"))
    # The snapshot adds the FC's evening allocations back on the shelf; stores' stock matches exactly.
    stores = merged["location_id"].str.startswith("S")
    assert len(merged) == len(on_hand) and (merged.loc[stores, "on_hand"] == merged.loc[stores, "on_hand_close"]).all()
    assert on_hand["markdown_risk"].between(0, 1).all() and (on_hand["on_hand"] > 0).all()


def test_store_forecast_covers_every_store_and_sku(world):
    forecast = sample_orders.store_forecast(world, world.config.end_date)
    n_stores = (world.locations["location_type"] == "store").sum()
    assert len(forecast) == n_stores * len(world.items)
    assert (forecast["sigma_daily"] >= 0).all() and forecast["mean_daily"].sum() > 0
    assert (forecast["unit_margin"] > 0).all()


def test_landing_layout_and_rewrite(tmp_path):
    world = generate_world(PRESETS["tiny"])
    day = world.config.end_date
    written = sample_orders.write_order_landing(world, str(tmp_path), [day, day])
    expected = {f"{tmp_path}/landing/{source}/ds={day}/{name}" for source, name, _ in sample_orders.ORDER_FILES.values()}
    assert set(written) == expected and len(written) == 5
    lines = pd.read_json(f"{tmp_path}/landing/oms/ds={day}/open_order_lines.jsonl", lines=True)
    assert list(lines.columns) == sample_orders.ORDER_COLUMNS["open_order_lines"]
    on_hand = pd.read_parquet(f"{tmp_path}/landing/wms_live/ds={day}/node_on_hand.parquet")
    assert len(on_hand) == len(sample_orders.node_on_hand(world, day))


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"zones_per_region": 0}, "zones_per_region must be at least 1"),
    ({"lines_per_day": 0}, "lines_per_day must be at least 1"),
    ({"peak_store_labour": 1.5}, r"peak_store_labour must be in \[0, 1\]"),
    ({"peak_volume": 0}, "peak_volume must be above 0"),
])
def test_bad_order_config_is_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        sample_orders.OrderConfig(**kwargs)


def test_a_day_outside_the_history_is_refused(world):
    with pytest.raises(ValueError, match="must lie in the world's history"):
        sample_orders.open_order_lines(world, world.config.end_date + dt.timedelta(days=1))
