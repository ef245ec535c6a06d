"""Urgent moves for a surge: who gives, by which route, at what cost, and what no one can cover."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from include.decisions.params import PROPOSAL_COLUMNS
from include.intraday.moves import (
    MoveCosts,
    committed_moves,
    propose_urgent_moves,
    shipped_for_the_web_shop,
    topup_keys,
)

DS = dt.date(2026, 11, 27)
LOCATIONS = pd.DataFrame({
    "location_id": ["S1", "S2", "S3", "S9", "DC1", "DC9", "FC01"],
    "location_type": ["store", "store", "store", "store", "dc", "dc", "ecom_fc"],
    "region": ["North", "North", "North", "South", "North", "South", "North"],
    "parent_dc": ["DC1", "DC1", "DC1", "DC9", None, None, None],
    "transfer_cost_per_unit": [0.5, 0.5, 0.5, 0.5, 0.0, 0.0, 0.8],
})
ITEMS = pd.DataFrame({"sku": ["A", "CHEAP", "LIGHT"], "unit_price": [20.0, 1.0, 5.0], "unit_cost": [8.0, 0.9, 1.5],
                      "case_pack": [6, 12, 6], "supplier_id": ["SUP1", "SUP1", "SUP1"]})


def _receiver(location: str, sku: str = "A", shortfall: float = 10.0, hours: float = 3.0) -> dict:
    return {"location_id": location, "sku": sku, "channel": "online" if location == "FC01" else "store",
            "shortfall": shortfall, "hours_to_stockout": hours, "on_hand": 4.0, "sold_since_onset": 30.0,
            "expected_since_onset": 9.5, "ratio": 3.1, "onset_hour": 12, "statistic": 14.2}


def _donors(rows: list[tuple[str, str, float]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["location_id", "sku", "spare"])


def test_stores_of_the_region_give_first_and_the_rest_is_raised():
    receivers = pd.DataFrame([_receiver("S1", shortfall=25)])
    donors = _donors([("S2", "A", 8), ("S3", "A", 5), ("S9", "A", 50)])  # S9 is in another region
    lines = propose_urgent_moves(receivers, donors, ITEMS, LOCATIONS, DS)
    assert list(lines.columns) == PROPOSAL_COLUMNS
    moves = lines.set_index("business_key")
    assert moves.loc["urgent:S2>S1:A", "quantity"] == 8 and moves.loc["urgent:S3>S1:A", "quantity"] == 5
    assert "urgent:S9>S1:A" not in moves.index
    raised = moves.loc["urgent:SUP1>S1:A"]
    assert raised["doc_type"] == "replenishment" and raised["action"] == "raise_order"
    assert raised["quantity"] == 12  # 12 uncovered, in whole packs of 6
    why = moves.loc["urgent:S2>S1:A", "explanation"]
    assert why["margin_at_stake"] == 8 * 12 and why["move_cost"] == pytest.approx(8 * (0.5 + 0.15))
    assert why["surge_ratio"] == 3.1 and why["hours_to_stockout"] == 3.0 and why["arrives_after_stockout"] is True


def test_the_dc_expedites_to_its_own_stores_and_the_fc_takes_any_store():
    receivers = pd.DataFrame([_receiver("S1", shortfall=6), _receiver("FC01", shortfall=4, hours=np.inf)])
    donors = _donors([("DC1", "A", 100), ("DC9", "A", 100), ("S9", "A", 4)])
    lines = propose_urgent_moves(receivers, donors, ITEMS, LOCATIONS, DS).set_index("business_key")
    assert lines.loc["urgent:DC1>S1:A", "action"] == "urgent_expedite"
    assert "urgent:DC9>S1:A" not in lines.index  # not its DC
    # The FC's cheapest source is the far store's spare (transfer + handling < expedite surcharge).
    assert lines.loc["urgent:S9>FC01:A", "quantity"] == 4
    assert lines.loc["urgent:S9>FC01:A", "explanation"]["hours_to_stockout"] is None


def test_no_move_that_costs_more_than_the_margin_it_saves():
    receivers = pd.DataFrame([_receiver("S1", sku="CHEAP", shortfall=10)])
    lines = propose_urgent_moves(receivers, _donors([("S2", "CHEAP", 50)]), ITEMS, LOCATIONS, DS)
    assert not (lines["action"] == "urgent_transfer").any()
    assert (lines["action"] == "raise_order").all()


def test_nothing_to_cover_gives_no_lines():
    assert propose_urgent_moves(pd.DataFrame(columns=list(_receiver("S1"))), _donors([]), ITEMS, LOCATIONS, DS).empty
    tiny = pd.DataFrame([_receiver("S1", shortfall=0.4)])
    assert propose_urgent_moves(tiny, _donors([("S2", "A", 5)]), ITEMS, LOCATIONS, DS).empty


def test_costs_come_from_the_policy():
    costs = MoveCosts.from_policy({"expedite_cost_pct_of_value": 0.2, "store_handling_cost_per_unit": 0.3})
    assert costs.expedite_pct_of_value == 0.2 and costs.handling_per_unit == 0.3
    assert MoveCosts.from_policy({}).expedite_pct_of_value == MoveCosts().expedite_pct_of_value


def test_a_transfer_says_what_its_donor_keeps_of_its_own():
    receivers = pd.DataFrame([_receiver("S1", shortfall=6)])
    donors = _donors([("S2", "A", 8)]).assign(keep=[21.3], need=[14.0])
    why = propose_urgent_moves(receivers, donors, ITEMS, LOCATIONS, DS).set_index("business_key").loc[
        "urgent:S2>S1:A", "explanation"]
    assert why["donor_spare"] == 8 and why["donor_keeps"] == 21.3 and why["donor_need"] == 14.0
    # A caller that passes only what is spare gets only that.
    plain = propose_urgent_moves(receivers, _donors([("S2", "A", 8)]), ITEMS, LOCATIONS, DS)
    assert "donor_keeps" not in plain.iloc[0]["explanation"] and plain.iloc[0]["explanation"]["donor_spare"] == 8


def test_what_only_a_transfer_arrives_in_time_for_is_not_left_to_a_cheaper_expedite():
    # The DC's expedite of LIGHT is 3 cents cheaper a unit than S2's transfer (0.5 + 8% of 1.5 against
    # 0.5 + 0.15), but lands two hours later: the 10 units S1 needs in between can only come from S2.
    receiver = {**_receiver("S1", sku="LIGHT", shortfall=20), "short_after_transfer": 18.0, "short_after_expedite": 8.0}
    donors = _donors([("DC1", "LIGHT", 100), ("S2", "LIGHT", 15)])
    timed = propose_urgent_moves(pd.DataFrame([receiver]), donors, ITEMS, LOCATIONS, DS).set_index("business_key")
    assert timed.loc["urgent:S2>S1:LIGHT", "quantity"] == 10 and timed.loc["urgent:DC1>S1:LIGHT", "quantity"] == 10
    assert timed.loc["urgent:S2>S1:LIGHT", "explanation"]["lost_before_arrival"] == 2.0
    assert timed.loc["urgent:DC1>S1:LIGHT", "explanation"]["lost_before_arrival"] == 12.0
    assert not (timed["action"] == "raise_order").any()
    # Told nothing of time, the cheapest route takes it all.
    plain = pd.DataFrame([_receiver("S1", sku="LIGHT", shortfall=20)])
    untimed = propose_urgent_moves(plain, donors, ITEMS, LOCATIONS, DS)
    assert untimed.set_index("business_key")["quantity"].to_dict() == {"urgent:DC1>S1:LIGHT": 20}
    assert "lost_before_arrival" not in untimed.iloc[0]["explanation"]
    # Routes arriving together: no part is the transfer's alone.
    same = MoveCosts(transfer_hours=5.0, expedite_hours=5.0)
    tied = propose_urgent_moves(pd.DataFrame([receiver]), donors, ITEMS, LOCATIONS, DS, same)
    assert tied.set_index("business_key")["quantity"].to_dict() == {"urgent:DC1>S1:LIGHT": 20}


def test_the_hours_come_from_the_policy_intraday_section():
    from include.governance.policy import Intraday

    costs = MoveCosts.from_policy({}, Intraday(transfer_hours=2.5, expedite_hours=9.0))
    assert (costs.transfer_hours, costs.expedite_hours) == (2.5, 9.0) and costs.hours("transfer") == 2.5
    assert costs.hours("expedite") == 9.0


def _staged(rows: list[tuple]) -> pd.DataFrame:
    """Staged lines: (business_key, status, action, from, to, sku, quantity, as_of hour, hours to arrive)."""
    return pd.DataFrame([{"business_key": k, "status": st, "action": a, "from_location": f, "to_location": t, "sku": s,
                          "quantity": q, "explanation": {"as_of": f"2026-11-27T{h:02d}", "hours_to_arrive": arrive}}
                         for k, st, a, f, t, s, q, h, arrive in rows])


def test_decided_moves_count_until_the_stock_shows_them():
    staged = _staged([
        ("urgent:S2>S1:A", "released", "urgent_transfer", "S2", "S1", "A", 10.0, 12, 3.0),  # leaves 13:00, in 16:00
        ("urgent:DC1>S1:A", "approved", "urgent_expedite", "DC1", "S1", "A", 20.0, 14, 6.0),  # leaves 15:00, in 21:00
        ("urgent:S3>S1:A", "pending_approval", "urgent_transfer", "S3", "S1", "A", 7.0, 15, 3.0),  # not decided
        ("urgent:S9>S1:A", "rejected", "urgent_transfer", "S9", "S1", "A", 5.0, 12, 3.0),
        ("urgent:SUP1>S1:A", "released", "raise_order", None, "S1", "A", 12.0, 12, 48.0),
    ])
    moving = committed_moves(staged, since_hour=14).set_index("location_id")
    assert moving.loc["S1", "moving_in"] == 30 and moving.loc["S1", "on_order"] == 12  # neither move shown by 14:00
    assert "S2" not in moving.index  # it left at 13:00: the 14:00 stock has it out already
    assert moving.loc["DC1", "moving_out"] == 20
    later = committed_moves(staged, since_hour=17).set_index("location_id")
    assert later.loc["S1", "moving_in"] == 20 and "S2" not in later.index
    assert committed_moves(staged.iloc[:0], since_hour=14).empty


def test_a_decided_route_is_topped_up_under_its_next_key_and_an_undecided_one_updated():
    staged = _staged([("urgent:S2>S1:A", "released", "urgent_transfer", "S2", "S1", "A", 10.0, 12, 3.0),
                      ("urgent:S2>S1:A+1", "withdrawn", "urgent_transfer", "S2", "S1", "A", 4.0, 13, 3.0),
                      ("urgent:S3>S1:A", "pending_approval", "urgent_transfer", "S3", "S1", "A", 5.0, 13, 3.0)])
    lines = pd.DataFrame({"business_key": ["urgent:S2>S1:A", "urgent:S3>S1:A", "urgent:DC1>S1:A"]})
    assert topup_keys(lines, staged)["business_key"].tolist() == ["urgent:S2>S1:A+2", "urgent:S3>S1:A",
                                                                  "urgent:DC1>S1:A"]
    assert topup_keys(lines, staged.iloc[:0]).equals(lines)


def test_what_is_on_order_today_is_not_raised_again():
    receivers = pd.DataFrame([{**_receiver("S1", shortfall=25), "on_order": 12.0}])
    lines = propose_urgent_moves(receivers, _donors([("S2", "A", 8)]), ITEMS, LOCATIONS, DS).set_index("business_key")
    assert lines.loc["urgent:S2>S1:A", "quantity"] == 8
    assert lines.loc["urgent:SUP1>S1:A", "quantity"] == 6  # 25 - 8 - 12 = 5, in a pack of 6


SHIPPING = MoveCosts(transfer_hours=3.0, expedite_hours=6.0, ship_hours=0.25)


def test_stores_serve_a_web_surge_from_their_shelves_when_the_policy_ships_from_stores():
    # The web shop runs short of 20 before tomorrow: 14 of them before a transfer could land, 4 more before
    # the DC's expedite: only the stores' shelves are in time for those 18; the DC's cheaper expedite
    # (0.8 + 8% of 8 = 1.44 a unit against 1.5 + 0.15) serves the last 2.
    web = {**_receiver("FC01", shortfall=20, hours=1.0), "short_after_ship": 20.0, "short_after_transfer": 6.0,
           "short_after_expedite": 2.0}
    donors = _donors([("S9", "A", 30), ("DC1", "A", 100)])
    lines = propose_urgent_moves(pd.DataFrame([web]), donors, ITEMS, LOCATIONS, DS, SHIPPING).set_index("business_key")
    ship = lines.loc["ship:S9>FC01:A"]
    assert (ship["doc_type"], ship["action"], ship["quantity"]) == ("transfer", "ship_from_store", 18)
    assert ship["from_location"] == "S9" and ship["to_location"] == "FC01"
    why = ship["explanation"]
    assert why["hours_to_arrive"] == 0.25 and why["move_cost"] == pytest.approx(18 * (1.5 + 0.15))
    assert why["arrives_after_stockout"] is False and why["lost_before_arrival"] == 0.0
    assert lines.loc["urgent:DC1>FC01:A", "quantity"] == 2
    # Without shipping from stores, the stores give the web shop stock by a transfer to its centre.
    plain = propose_urgent_moves(pd.DataFrame([web]), donors, ITEMS, LOCATIONS, DS).set_index("business_key")
    assert plain.loc["urgent:S9>FC01:A", "action"] == "urgent_transfer"
    assert not plain.index.str.startswith("ship:").any()
    # A store the location master says ships no parcels transfers instead.
    no_parcels = LOCATIONS.assign(ships_parcels=LOCATIONS["location_id"] != "S9")
    held = propose_urgent_moves(pd.DataFrame([web]), donors, ITEMS, no_parcels, DS, SHIPPING)
    assert set(held["action"]) == {"urgent_transfer"}  # cheaper than the expedite and sooner


def test_a_store_surge_is_not_served_from_shelves_and_keeps_its_transfer_tiers():
    receiver = {**_receiver("S1", sku="LIGHT", shortfall=20), "short_after_ship": 20.0, "short_after_transfer": 18.0,
                "short_after_expedite": 8.0}
    donors = _donors([("DC1", "LIGHT", 100), ("S2", "LIGHT", 15)])
    lines = propose_urgent_moves(pd.DataFrame([receiver]), donors, ITEMS, LOCATIONS, DS, SHIPPING)
    assert lines.set_index("business_key")["quantity"].to_dict() == {"urgent:S2>S1:LIGHT": 10,
                                                                     "urgent:DC1>S1:LIGHT": 10}


def test_shipping_from_stores_comes_from_the_policy():
    from include.governance.policy import Intraday

    costs = MoveCosts.from_policy({"ship_from_store_cost_per_unit": 2.25}, Intraday(ship_from_store_hours=0.5))
    assert (costs.ship_hours, costs.ship_cost_per_unit, costs.hours("ship")) == (0.5, 2.25, 0.5)
    assert MoveCosts.from_policy({}, Intraday()).ship_hours is None


def test_units_given_to_the_web_shop_count_as_moving_all_day():
    staged = _staged([("ship:S9>FC01:A", "released", "ship_from_store", "S9", "FC01", "A", 18.0, 12, 0.25),
                      ("urgent:S2>FC01:A", "released", "urgent_transfer", "S2", "FC01", "A", 5.0, 12, 3.0)])
    late = committed_moves(staged, since_hour=20).set_index("location_id")
    assert late.loc["FC01", "moving_in"] == 18  # the transfer is in the 20:00 stock, the allocation never
    assert late.loc["S9", "moving_out"] == 18 and "S2" not in late.index


def test_web_orders_a_store_ships_for_the_web_shop_are_the_web_shops_demand():
    staged = _staged([("ship:S9>FC01:A", "released", "ship_from_store", "S9", "FC01", "A", 5.0, 14, 0.25),
                      ("ship:S2>FC01:A", "pending_approval", "ship_from_store", "S2", "FC01", "A", 9.0, 14, 0.25)])
    sales = pd.DataFrame([("S9", "A", 13, 2.0, "web"),   # before the line took effect at 15:00: the store's
                          ("S9", "A", 15, 3.0, "pos"),   # the store's own customers
                          ("S9", "A", 15, 2.0, "web"), ("S9", "A", 16, 2.0, "web"),  # 4 of the 5 given
                          ("S9", "A", 17, 3.0, "web"),   # the line reaching past the 5: still the web shop's
                          ("S9", "A", 18, 1.0, "web"),   # beyond what was given: the store's again
                          ("S2", "A", 16, 4.0, "web")],  # an undecided line gives nothing
                         columns=["location_id", "sku", "hour", "units", "source"]).assign(node=lambda f: f["location_id"])
    read = shipped_for_the_web_shop(sales, staged)
    assert read["location_id"].tolist() == ["S9", "S9", "FC01", "FC01", "FC01", "S9", "S2"]
    assert read["node"].equals(sales["node"])  # the stock they took is the store's
    assert shipped_for_the_web_shop(sales, staged.iloc[:0]).equals(sales)


def test_the_profile_learns_web_orders_a_store_shipped_for_the_web_shop_as_web_shop_hours():
    from include.stages.intraday import _profile_rows

    lines = _staged([("ship:S9>FC01:A", "released", "ship_from_store", "S9", "FC01", "A", 5.0, 14, 0.25)])
    sales = pd.DataFrame([("S9", "A", 15, 3.0, "pos"), ("S9", "A", 16, 4.0, "web"), ("FC01", "A", 16, 2.0, "web")],
                         columns=["location_id", "sku", "hour", "units", "source"]).assign(node=lambda f: f["location_id"])
    stores = pd.Series(["S9"])
    that_day = _profile_rows(sales, "2026-11-26", stores, lines.assign(ds=dt.date(2026, 11, 26)))
    assert that_day[["location_id", "channel"]].values.tolist() == [["S9", "store"], ["FC01", "online"],
                                                                     ["FC01", "online"]]
    # Another day's line, or none, leaves the store's web orders where they were shipped from.
    for other in (lines.assign(ds=dt.date(2026, 11, 25)), None):
        assert _profile_rows(sales, "2026-11-26", stores, other)["channel"].tolist() == ["store", "store", "online"]


def test_stores_ship_for_the_web_shop_unless_order_orchestrations_node_capabilities_say_they_ship_no_parcels(
        tmp_path):
    from include.stages.intraday import _shipping_locations
    from include.storage import write_partition

    root = str(tmp_path)
    write_partition(LOCATIONS, "curated", "locations", DS - dt.timedelta(days=1), root)
    assert "ships_parcels" not in _shipping_locations(DS, root).columns  # no capabilities: every store may ship
    write_partition(pd.DataFrame({"location_id": ["S9", "S1", "FC01"], "ships_parcels": [False, True, True]}),
                    "curated", "node_capabilities", DS - dt.timedelta(days=2), root)
    locations = _shipping_locations(DS, root)
    assert locations.set_index("location_id")["ships_parcels"].to_dict() == {
        "S1": True, "S2": True, "S3": True, "S9": False, "DC1": True, "DC9": True, "FC01": True}
    web = {**_receiver("FC01", shortfall=6, hours=1.0), "short_after_ship": 6.0, "short_after_transfer": 0.0}
    lines = propose_urgent_moves(pd.DataFrame([web]), _donors([("S9", "A", 10)]), ITEMS, locations, DS, SHIPPING)
    assert lines["action"].tolist() == ["urgent_transfer"]


def test_a_shelf_running_dry_gets_what_its_region_spares_and_no_raised_order():
    dry = {**_receiver("S1", shortfall=25), "reason": "stockout", "need_in_window": 29.0, "sold_today": 11.0,
           "expected_so_far": 10.4}
    lines = propose_urgent_moves(pd.DataFrame([dry]), _donors([("S2", "A", 8), ("S3", "A", 5)]), ITEMS, LOCATIONS, DS)
    # The 12 units no store can spare are the next night's to order, not an expedited order today.
    assert lines["action"].tolist() == ["urgent_transfer", "urgent_transfer"] and lines["quantity"].sum() == 13
    why = lines.set_index("business_key").loc["urgent:S2>S1:A", "explanation"]
    assert why["reason"] == "stockout" and why["expected_before_next_delivery"] == 29.0
    assert why["sold_today"] == 11.0 and why["on_hand"] == 4.0 and why["units_short_before_next_delivery"] == 25
    assert "surge_ratio" not in why and "evidence_log_likelihood_ratio" not in why
    surge = propose_urgent_moves(pd.DataFrame([{**dry, "reason": "surge"}]), _donors([("S2", "A", 8)]), ITEMS,
                                 LOCATIONS, DS)
    assert set(surge["action"]) == {"urgent_transfer", "raise_order"}
    assert surge["explanation"].iloc[0]["reason"] == "surge" and surge["explanation"].iloc[0]["surge_ratio"] == 3.1


def test_a_receiver_the_location_master_lacks_or_without_a_transfer_cost_gets_no_move():
    receivers = pd.DataFrame([_receiver("S404", shortfall=10), _receiver("S1", shortfall=10)])
    unpriced = LOCATIONS.assign(transfer_cost_per_unit=[np.nan, 0.5, 0.5, 0.5, 0.0, 0.0, 0.8])
    lines = propose_urgent_moves(receivers, _donors([("S2", "A", 30)]), ITEMS, unpriced, DS)
    # S404 is in no master and S1's transfers have no price: both are raised with the supplier instead.
    assert set(lines["action"]) == {"raise_order"} and set(lines["to_location"]) == {"S404", "S1"}
    priced = propose_urgent_moves(receivers, _donors([("S2", "A", 30)]), ITEMS, LOCATIONS, DS)
    assert priced.set_index("business_key").loc["urgent:S2>S1:A", "quantity"] == 10
    assert not priced["business_key"].str.contains("S2>S404").any()


def test_a_location_master_read_from_parquet_with_missing_values_routes_as_one_built_by_hand():
    receivers = pd.DataFrame([_receiver("S1", shortfall=6), _receiver("FC01", shortfall=4, hours=np.inf)])
    donors = _donors([("DC1", "A", 100), ("DC9", "A", 100), ("S9", "A", 4), ("S2", "A", 3)])
    typed = LOCATIONS.astype({"location_type": "string", "region": "string", "parent_dc": "string",
                              "transfer_cost_per_unit": "Float64"})
    assert typed["parent_dc"].isna().sum() == 3  # pd.NA, as a parquet file's string columns read back
    by_hand = propose_urgent_moves(receivers, donors, ITEMS, LOCATIONS, DS)
    read = propose_urgent_moves(receivers, donors, ITEMS, typed, DS)
    pd.testing.assert_frame_equal(read[["business_key", "action", "quantity"]], by_hand[["business_key", "action", "quantity"]])
