"""One intraday reading end to end on a small region: a store surges, it will run short, its region covers it."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from include.intraday.day import DayParams, Rescue, donor_keep, receivers_and_donors, sense_day
from include.intraday.moves import propose_urgent_moves
from include.intraday.profile import IntradayProfile, trading_shape
from include.intraday.sensing import SensingParams

DS = dt.date(2026, 11, 27)  # a Friday
STORE = trading_shape(8, 22)
PROFILE = IntradayProfile(shares={"store": np.tile(STORE, (7, 1)), "online": np.tile(trading_shape(0, 24), (7, 1))},
                          fallback=STORE)
LOCATIONS = pd.DataFrame({"location_id": ["S1", "S2", "S3", "DC1"], "location_type": ["store", "store", "store", "dc"],
                          "region": ["North"] * 4, "parent_dc": ["DC1", "DC1", "DC1", None],
                          "transfer_cost_per_unit": [0.4, 0.4, 0.4, 0.0]})
ITEMS = pd.DataFrame({"sku": ["A"], "unit_price": [12.0], "unit_cost": [5.0], "case_pack": [6], "supplier_id": ["SUP1"]})


def _forecast() -> pd.DataFrame:
    rows = [(loc, "A", "store", step, 70.0, 12.0) for loc in ("S1", "S2", "S3") for step in (1, 2)]
    return pd.DataFrame(rows, columns=["location_id", "sku", "channel", "step", "mean", "sigma"])


def _sales(hour: int, rng: np.random.Generator) -> pd.DataFrame:
    rows = []
    for loc in ("S1", "S2", "S3"):
        rate = 70.0 * STORE[: hour + 1]
        if loc == "S1":
            rate = rate * np.where(np.arange(hour + 1) >= 12, 3.5, 1.0)  # a surge from noon at S1
        rows += [(loc, "A", h, u) for h, u in enumerate(rng.poisson(rate)) if u]
    return pd.DataFrame(rows, columns=["location_id", "sku", "hour", "units"])


def test_a_surging_store_is_sensed_projected_and_covered_by_its_region():
    rng = np.random.default_rng(5)
    hour = 15
    on_hand = pd.DataFrame({"location_id": ["S1", "S2", "S3", "DC1"], "sku": "A", "on_hand": [30.0, 160.0, 90.0, 400.0]})
    sensed = sense_day(_forecast(), _sales(hour, rng), on_hand, PROFILE, weekday=DS.weekday(), hour=hour,
                       params=DayParams(cover_days=1))
    s1, s2 = sensed.set_index("location_id").loc["S1"], sensed.set_index("location_id").loc["S2"]
    assert s1["alarm"] and not s2["alarm"]
    assert 12 <= s1["onset_hour"] <= 13 and s1["alarm_hour"] <= hour
    assert s1["ratio"] == pytest.approx(3.5, rel=0.3)
    # The rest of today at the surge's pace, then tomorrow with half the surplus left.
    assert s1["rest_of_today"] == pytest.approx(s1["ratio"] * 70 * 6 / 14, rel=1e-6)
    assert s1["hours_to_stockout"] < 6 and np.isinf(s2["hours_to_stockout"])  # S2 holds more than its outlook
    assert s1["need_in_window"] > s1["on_hand"]
    # It runs out within the 4 hours a transfer takes: what it needs before then is lost whatever comes.
    shortfall = s1["need_in_window"] - s1["on_hand"]
    assert 0 < s1["short_after_expedite"] < s1["short_after_transfer"] < shortfall
    assert s2["short_after_transfer"] == s2["short_after_expedite"] == 0
    assert "short_after_ship" not in sensed.columns  # stores ship no web orders unless the policy says so
    shipping = sense_day(_forecast(), _sales(hour, np.random.default_rng(5)), on_hand, PROFILE, weekday=DS.weekday(),
                         hour=hour, params=DayParams(cover_days=1, ship_hours=0.25)).set_index("location_id")
    assert s1["short_after_transfer"] < shipping.loc["S1", "short_after_ship"] <= shortfall

    dc = pd.DataFrame({"location_id": ["DC1"], "sku": ["A"], "channel": ["dc"], "alarm": [False],
                       "need_in_window": [0.0], "on_hand": [400.0]})
    receivers, donors = receivers_and_donors(pd.concat([sensed, dc], ignore_index=True))
    assert receivers["location_id"].tolist() == ["S1"]
    spare = donors.set_index("location_id")["spare"]
    assert spare["DC1"] == 300  # the DC keeps a quarter
    keep = donor_keep(sensed.set_index("location_id").loc[["S2"]], 0.95)[0]
    assert s2["need_in_window"] < keep < 160 and spare["S2"] == np.floor(160 - keep)
    s2_donor = donors.set_index("location_id").loc["S2"]
    assert s2_donor["keep"] == round(keep, 1) and s2_donor["need"] == round(s2["need_in_window"], 1)
    assert donors.set_index("location_id").loc["DC1", "need"] == 0 and donors.set_index("location_id").loc["DC1", "keep"] == 100
    assert "S3" not in spare.index or spare["S3"] < 90

    lines = propose_urgent_moves(receivers, donors, ITEMS, LOCATIONS, DS)
    assert lines["quantity"].sum() >= receivers["shortfall"].iloc[0]
    assert set(lines["to_location"]) == {"S1"}
    first = lines.iloc[0]["explanation"]
    assert first["sold_since_onset"] > first["expected_since_onset"] * 2


def test_a_quiet_day_raises_nothing():
    rng = np.random.default_rng(8)
    sales = _sales(20, rng)
    sales = sales[sales["location_id"] != "S1"]
    on_hand = pd.DataFrame({"location_id": ["S1", "S2", "S3"], "sku": "A", "on_hand": [5.0, 50.0, 50.0]})
    sensed = sense_day(_forecast(), sales, on_hand, PROFILE, weekday=4, hour=20)
    assert not sensed["alarm"].any()
    receivers, donors = receivers_and_donors(sensed)
    assert receivers.empty and donors.empty


def _region_day(rng: np.random.Generator, hour: int, surge: float, n_skus: int = 1, n_stores: int = 4,
                mean: float = 12.0, surging: int | None = None, surging_skus: int | None = None):
    """Stores (the first four in North, the others in South) each selling ``mean`` of each of ``n_skus`` SKUs a
    day (each SKU a day of its own,
    its forecast off by its usual error); from noon the first ``surging`` stores (all) sell ``surge`` times it
    of the first ``surging_skus`` SKUs (all)."""
    stores = [f"S{i}" for i in range(n_stores)]
    skus = [f"K{k:04d}" for k in range(n_skus)]
    sigma = 0.25 * mean
    forecast = pd.DataFrame([(s, k, "store", step, mean, sigma) for s in stores for k in skus for step in (1, 2)],
                            columns=["location_id", "sku", "channel", "step", "mean", "sigma"])
    shape = mean**2 / max(sigma**2 - mean, 1e-9) if sigma**2 > mean else 1e9
    rows = []
    for j, k in enumerate(skus):
        theta = rng.gamma(shape, 1.0 / shape, size=n_stores)
        for i, (s, th) in enumerate(zip(stores, theta, strict=True)):
            on_promotion = surging_skus is None or j < surging_skus
            lift = surge if on_promotion and (surging is None or i < surging) else 1.0
            rate = th * mean * STORE[: hour + 1] * np.where(np.arange(hour + 1) >= 12, lift, 1.0)
            rows += [(s, k, h, u) for h, u in enumerate(rng.poisson(rate)) if u]
    sales = pd.DataFrame(rows, columns=["location_id", "sku", "hour", "units"])
    on_hand = pd.DataFrame([(s, k, 50.0) for s in stores for k in skus], columns=["location_id", "sku", "on_hand"])
    regions = pd.DataFrame({"location_id": stores, "region": ["North"] * 4 + ["South"] * (n_stores - 4)})
    return forecast, sales, on_hand, regions


def test_a_surge_across_a_region_is_found_by_its_stores_together():
    # A promotion on 10 of the chain's 60 SKUs in North: three of its four stores surge; the fourth, the
    # other SKUs and the stores of South sell as forecast.
    forecast, sales, on_hand, regions = _region_day(np.random.default_rng(3), 15, surge=3.0, n_skus=60, n_stores=8,
                                                    surging=3, surging_skus=10)
    alone = sense_day(forecast, sales, on_hand, PROFILE, weekday=4, hour=15)
    pooled = sense_day(forecast, sales, on_hand, PROFILE, weekday=4, hour=15, regions=regions)
    promoted = pooled["sku"].isin([f"K{k:04d}" for k in range(10)])
    assert not pooled[~promoted]["alarm"].any()
    north = pooled["location_id"].isin(["S0", "S1", "S2", "S3"])
    assert not pooled[~north]["alarm"].any()
    pooled = pooled[promoted & north]
    alone = alone[alone["sku"].isin(pooled["sku"]) & alone["location_id"].isin(pooled["location_id"])]
    surging = pooled[pooled["location_id"] != "S3"]
    found_alone = alone[alone["location_id"] != "S3"].groupby("sku")["alarm"].sum().sum()
    found_pooled = surging["alarm"].sum()
    # 12 a day per store, 25% off as usual, trebled from noon: by 15:00 most regions are found together,
    # while a store alone rarely has the evidence yet.
    assert found_pooled >= 0.5 * 30 and found_pooled > 2 * found_alone
    # The store that is not surging is mostly left to donate, not flagged with its region.
    assert pooled.loc[pooled["location_id"] == "S3", "alarm"].sum() <= 4
    flagged = pooled[pooled["level"] == "region"]
    assert flagged["onset_hour"].between(8, 13).all() and (flagged["ratio"] > 1.5).all()
    # Each store's explanation counts its own sales since the region's surge began.
    own = sales.groupby(["location_id", "sku"])["units"].sum()
    assert (flagged["sold_since_onset"].to_numpy() <= own.loc[list(zip(flagged["location_id"], flagged["sku"],
                                                                       strict=True))].to_numpy()).all()
    assert (pooled.loc[pooled["alarm"], "threshold"] <= SensingParams().threshold).all()


def test_regions_do_not_raise_false_alarms_on_ordinary_days():
    # 400 ordinary region days: 1,600 store days and 400 region days at a budget of 1 per 1,000.
    forecast, sales, on_hand, regions = _region_day(np.random.default_rng(11), 21, surge=1.0, n_skus=400)
    sensed = sense_day(forecast, sales, on_hand, PROFILE, weekday=4, hour=21, regions=regions)
    assert sensed["alarm"].sum() <= 4


def test_a_donor_keeps_its_need_at_the_service_level_of_its_own_spread():
    rows = pd.DataFrame({"need_in_window": [4.0, 400.0, 400.0, 0.0], "forecast_today": [4.0, 400.0, 400.0, 0.0],
                         "forecast_sigma": [2.0, 20.0, 80.0, 0.0], "clumping": [1.0, 1.0, 1.0, 1.0],
                         "day_spread": [0.0, 0.0, 0.0, 0.0]})
    keep = donor_keep(rows, 0.95)
    z = 1.6448536
    # A small donor: Poisson spread only (its forecast error is all counting noise), sqrt(4) = 2 units.
    assert keep[0] == pytest.approx(4 + z * 2)
    # A large one within counting noise keeps about 8% more, not a flat quarter.
    assert keep[1] == pytest.approx(400 + z * 20)
    # Its forecast error beyond counting (80^2 - 400 of 400^2) widens what it keeps.
    assert keep[2] == pytest.approx(400 + z * np.sqrt(400 + (6000 / 160000) * 400**2))
    assert keep[3] == 0.0
    # The channel running uneven today and lumpy orders widen it too; a higher service keeps more.
    wider = donor_keep(rows.assign(clumping=1.7, day_spread=0.2), 0.95)
    assert (wider[:3] > keep[:3]).all()
    assert (donor_keep(rows, 0.99)[:3] > keep[:3]).all()


def test_without_the_spread_columns_a_donor_keeps_its_need_and_counting_noise():
    keep = donor_keep(pd.DataFrame({"need_in_window": [9.0]}), 0.95)
    assert keep[0] == pytest.approx(9 + 1.6448536 * 3)


def test_moves_already_decided_count_for_receivers_and_donors():
    sensed = pd.DataFrame({
        "location_id": ["S1", "S4", "S2", "DC1"], "sku": "A", "channel": ["store", "store", "store", "dc"],
        "alarm": [True, True, False, False], "need_in_window": [60.0, 60.0, 10.0, 0.0],
        "on_hand": [10.0, 10.0, 50.0, 100.0], "short_after_transfer": [40.0, 40.0, 0.0, np.nan],
        "short_after_expedite": [30.0, 30.0, 0.0, np.nan]})
    receivers, donors = receivers_and_donors(sensed)
    assert receivers.set_index("location_id")["shortfall"].to_dict() == {"S1": 50.0, "S4": 50.0}
    committed = pd.DataFrame({"location_id": ["S1", "S4", "S2", "DC1"], "sku": "A", "moving_in": [44.0, 30.0, 0, 0],
                              "moving_out": [0, 0, 20.0, 40.0], "on_order": 0.0})
    receivers, donors = receivers_and_donors(sensed, committed=committed)
    # S1 lacks 6 beyond the 44 on their way: under a fifth of them, not worth another move. S4 lacks 20.
    s4 = receivers.set_index("location_id").loc["S4"]
    assert receivers["location_id"].tolist() == ["S4"] and s4["shortfall"] == 20 and s4["moving_in"] == 30
    assert (s4["short_after_transfer"], s4["short_after_expedite"]) == (10.0, 0.0)
    shipping = receivers_and_donors(sensed.assign(short_after_ship=[50.0, 50.0, 0.0, np.nan]), committed=committed)[0]
    assert shipping.set_index("location_id").loc["S4", "short_after_ship"] == 20.0  # every route's, less what comes
    # What donors already gave and their stock does not show yet is not theirs to give again.
    spare = donors.set_index("location_id")["spare"]
    assert spare["DC1"] == np.floor(0.75 * 60) and spare["S2"] < 30


def _shelves(**overrides) -> pd.DataFrame:
    """S1 runs dry in 2 hours without a surge (8 in stock, 20 to sell before its next delivery); S2 and S3 hold
    plenty; S5 runs dry only tomorrow afternoon; S6 lacks 2 units."""
    rows = pd.DataFrame({
        "location_id": ["S1", "S2", "S3", "S5", "S6", "DC1"], "sku": "A",
        "channel": ["store", "store", "store", "store", "store", "dc"], "alarm": False,
        "need_in_window": [20.0, 10.0, 10.0, 30.0, 10.0, 0.0], "on_hand": [8.0, 60.0, 40.0, 20.0, 8.0, 100.0],
        "hours_to_stockout": [2.0, np.inf, np.inf, 20.0, 9.0, np.nan],
        "short_after_transfer": [12.0, 0.0, 0.0, 10.0, 2.0, np.nan],
        "short_after_expedite": [12.0, 0.0, 0.0, 10.0, 2.0, np.nan]})
    return rows.assign(**overrides)


def test_a_shelf_running_dry_without_a_surge_is_rescued_only_when_the_policy_says_so():
    sensed = _shelves()
    receivers, donors = receivers_and_donors(sensed)
    assert receivers.empty and donors.empty  # surges only: nothing surges
    receivers, donors = receivers_and_donors(sensed, rescue=Rescue(min_units=3, within_hours=12))
    # S1 runs out in 2 hours, 12 short; S5 runs out after 12 hours (the next night's to plan); S6 lacks 2 units.
    assert receivers["location_id"].tolist() == ["S1"]
    s1 = receivers.iloc[0]
    assert s1["reason"] == "stockout" and s1["shortfall"] == 12.0 and s1["short_after_transfer"] == 12.0
    # A shelf running dry is no donor; the ones with plenty are.
    assert set(donors["location_id"]) == {"S2", "S3", "DC1"}
    assert set(receivers_and_donors(sensed, rescue=Rescue(min_units=2, within_hours=24))[0]["location_id"]) == {
        "S1", "S5", "S6"}


def test_a_rescued_shelf_is_not_rescued_again_while_stock_is_on_its_way_and_a_surge_keeps_its_reason():
    sensed = _shelves(alarm=[False, False, False, True, False, False])
    committed = pd.DataFrame({"location_id": ["S1"], "sku": "A", "moving_in": [5.0], "moving_out": 0.0,
                              "on_order": 0.0})
    rescue = Rescue(min_units=3, within_hours=12)
    receivers = receivers_and_donors(sensed, rescue=rescue)[0].set_index("location_id")
    assert receivers["reason"].to_dict() == {"S1": "stockout", "S5": "surge"}
    receivers = receivers_and_donors(sensed, committed=committed, rescue=rescue)[0]
    assert receivers["location_id"].tolist() == ["S5"]


def test_the_shipped_policy_rescues_shelves_and_a_policy_without_the_setting_does_not():
    from include.governance.policy import Intraday, load_policy

    assert load_policy().intraday.rescue() == Rescue(min_units=3.0, within_hours=12.0)
    assert Intraday().rescue() is None
    with pytest.raises(ValueError):
        Intraday(rescue_min_units=0.5)


def test_after_the_stores_close_a_surging_web_shop_is_supplied_from_the_dc_alone():
    sensed = _shelves(location_id=["S1", "S2", "S3", "FC1", "S6", "DC1"],
                      channel=["store", "store", "store", "online", "store", "dc"],
                      alarm=[False, False, False, True, False, False])
    rescue = Rescue(min_units=3, within_hours=12)
    receivers, donors = receivers_and_donors(sensed, rescue=rescue)
    assert set(receivers["location_id"]) == {"S1", "FC1"} and set(donors["location_id"]) == {"S2", "S3", "DC1"}
    receivers, donors = receivers_and_donors(sensed, rescue=rescue, closed={"store"})
    assert receivers["location_id"].tolist() == ["FC1"] and donors["location_id"].tolist() == ["DC1"]
    receivers, donors = receivers_and_donors(sensed, rescue=rescue, closed={"store", "online"})
    assert receivers.empty


def _web_shop(hour: int, new_from: int | None, new_per_hour: float, bulk_at: int | None = None) -> pd.DataFrame:
    """The web shop's order lines: the usual 3 orders of 2 units an hour (96 a day over 16 hours), plus
    ``new_per_hour`` new customers of one unit each from ``new_from``, plus one order of 12 at ``bulk_at``."""
    rows = []
    for h in range(8, hour + 1):
        rows.append(("FC1", "A", h, 6.0, 3.0))
        if new_from is not None and h >= new_from:
            rows.append(("FC1", "A", h, new_per_hour, new_per_hour))
        if h == bulk_at:
            rows.append(("FC1", "A", h, 12.0, 1.0))
    return pd.DataFrame(rows, columns=["location_id", "sku", "hour", "units", "orders"])


WEB_PROFILE = IntradayProfile(shares={"online": np.tile(trading_shape(8, 24), (7, 1))}, fallback=trading_shape(8, 24),
                              clumping={"online": 2.0}, order_size={"online": 2.0})
WEB_FORECAST = pd.DataFrame([("FC1", "A", "online", step, 96.0, 29.0) for step in (1, 2)],
                            columns=["location_id", "sku", "channel", "step", "mean", "sigma"])
WEB_STOCK = pd.DataFrame({"location_id": ["FC1"], "sku": ["A"], "on_hand": [500.0]})


def test_the_web_shop_is_read_in_orders_so_new_customers_stand_out_of_the_basket_noise():
    # From noon six new customers an hour, one unit each: twice the units, three times the orders.
    surge = _web_shop(17, 12, 6.0)
    by_orders = sense_day(WEB_FORECAST, surge, WEB_STOCK, WEB_PROFILE, weekday=DS.weekday(), hour=17).iloc[0]
    assert by_orders["alarm"] and by_orders["onset_hour"] == 12
    # The surge's size and what sold since are in units, for the moves.
    assert (by_orders["sold_since_onset"], by_orders["expected_since_onset"]) == (72.0, 36.0)
    assert by_orders["ratio"] == pytest.approx(2.0, abs=0.1)
    # Read in units (lumps of 2), the same hours stay within the day's noise.
    in_units = sense_day(WEB_FORECAST, surge.drop(columns="orders"), WEB_STOCK, WEB_PROFILE, weekday=DS.weekday(),
                         hour=17).iloc[0]
    assert not in_units["alarm"] and in_units["statistic"] < by_orders["statistic"] / 2


def test_one_bulk_order_is_one_customer_not_a_surge():
    bulk = _web_shop(17, None, 0.0, bulk_at=13)
    sensed = sense_day(WEB_FORECAST, bulk, WEB_STOCK, WEB_PROFILE, weekday=DS.weekday(), hour=17).iloc[0]
    assert not sensed["alarm"]
