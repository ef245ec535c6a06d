"""Each disposition on a hand-built line, the review holds, the explanation, the baseline and its valuation."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from include.returns.disposition import ROUTED_COLUMNS, recovery_value, route_baseline, route_returns
from include.returns.params import DispositionParams

ITEMS = pd.DataFrame({"sku": ["K1", "K2", "K3"], "department": ["Apparel", "Electronics", "Grocery"],
                      "unit_price": [40.0, 100.0, 3.0], "unit_cost": [20.0, 60.0, 1.5],
                      "supplier_id": ["SUPA", "SUPB", "SUPA"]})
FORECAST = pd.DataFrame({"location_id": ["S1", "S2", "FC", "S1", "S2", "FC", "S1"],
                         "sku": ["K1", "K1", "K1", "K2", "K2", "K2", "K3"],
                         "mean_daily": [2.0, 0.01, 0.5, 0.3, 0.2, 1.0, 5.0],
                         "on_hand": [3, 10, 40, 2, 2, 5, 50]})
PARAMS = DispositionParams(rtv_credit={"SUPB": 0.9, "*": 0.0})


def returns(*lines):
    rows = [{"return_id": f"R{i}", "location_id": loc, "sku": sku, "quantity": qty, "condition_grade": grade,
             "reason_code": reason, "refund_amount": refund}
            for i, (loc, sku, grade, reason, qty, refund) in enumerate(lines)]
    return pd.DataFrame(rows)


def route_one(loc, sku, grade, reason="changed_mind", qty=1, refund=10.0, params=PARAMS):
    routed = route_returns(returns((loc, sku, grade, reason, qty, refund)), ITEMS, FORECAST, params)
    assert list(routed.columns) == list(ROUTED_COLUMNS)
    return routed.iloc[0]


def test_a_new_unit_where_it_sells_is_restocked_there():
    row = route_one("S1", "K1", "A")
    assert row["action"] == "restock_as_new" and row["target_location_id"] == "S1"
    # (3 on hand + 1) / 2 a day = 2 days at 1% a day, less restock handling.
    assert row["unit_net_value"] == pytest.approx(40 * math.exp(-0.01 * 2) - 1.2, abs=0.01)
    assert row["days_to_sell"] == 2.0


def test_a_new_unit_where_it_does_not_sell_is_transferred_to_where_it_sells_soonest():
    row = route_one("S2", "K1", "A", qty=2)
    assert row["action"] == "transfer_to" and row["target_location_id"] == "S1"
    # Two units behind the 3 on S1's shelf sell on average at place 3 + 1.5: 2.25 days at 2 a day, plus 3 on the road.
    expected = 40 * math.exp(-0.01 * (2.25 + 3)) - 1.2 - 2.5
    assert row["unit_net_value"] == pytest.approx(expected, abs=0.01)
    assert row["net_value"] == pytest.approx(2 * expected, abs=0.02)
    assert row["value_restock_as_new"] < row["value_transfer_to"]


def test_returns_of_one_item_queue_behind_each_other_and_the_router_sends_the_surplus_where_it_sells():
    # K2 sells 0.3 a day at S1 (2 on hand), 0.2 at S2 (2 on hand) and 1.0 at the FC (5 on hand): the first
    # returned unit at S1 sells there in 10 days (92.98 net), the second in 13.3 (91.11) still beats the FC
    # (6 units ahead at 1 a day plus 3 days on the road: 91.04), the third would wait 16.7 days at S1.
    lines = returns(*[("S1", "K2", "A", "changed_mind", 1, 100.0)] * 4)
    routed = route_returns(lines, ITEMS, FORECAST, PARAMS)
    assert routed["action"].tolist() == ["restock_as_new", "restock_as_new", "transfer_to", "transfer_to"]
    assert routed["target_location_id"].tolist() == ["S1", "S1", "FC", "FC"]
    assert routed["days_to_sell"].tolist() == [10.0, 13.3, 16.7, 16.7]  # S1's queue stops growing at the third
    assert routed["unit_net_value"].tolist() == [92.98, 91.11, 91.04, 90.48]  # the FC's queue grows too
    # Valued as routed, each unit in its place in its queue; the baseline piles all four on S1's shelf.
    assert recovery_value(routed, lines, ITEMS, FORECAST, PARAMS) == pytest.approx(routed["net_value"], abs=0.01)
    base = recovery_value(route_baseline(lines, ITEMS, FORECAST, PARAMS), lines, ITEMS, FORECAST, PARAMS)
    assert base == pytest.approx([100 * math.exp(-0.006 * d) - 1.2 for d in (10, 40 / 3, 50 / 3, 20)], abs=0.01)
    # A line of four units is valued at the middle of its units: the same total as four lines of one.
    pile = route_baseline(returns(("S1", "K2", "A", "changed_mind", 4, 400.0)), ITEMS, FORECAST, PARAMS)
    assert pile["days_to_sell"].iat[0] == pytest.approx((2 + 2.5) / 0.3, abs=0.05)


def test_an_opened_unit_goes_to_open_box():
    row = route_one("S1", "K1", "B")
    assert row["action"] == "open_box" and row["target_location_id"] == "S1"
    assert np.isnan(row["value_restock_as_new"]) and np.isnan(row["value_transfer_to"])
    assert row["value_open_box"] > row["value_liquidate"]


def test_an_opened_unit_is_sold_open_box_where_its_item_sells_when_that_beats_the_road():
    # K1 barely sells at S2 (0.01 a day): half of that takes an open-box unit, so it would wait the 120-day
    # cap there. S1 sells 2 a day (1 a day open box) three days and 2.50 a unit away; the FC 0.5 a day.
    row = route_one("S2", "K1", "B")
    expected = 0.7 * 40 * math.exp(-0.01 * (1 / 1.0 + 3)) - 1.5 - 2.5
    assert row["action"] == "open_box" and row["target_location_id"] == "S1"
    assert row["unit_net_value"] == pytest.approx(expected, abs=0.01)
    assert row["explanation"].startswith("open_box at S1: ")
    # Valued at its target (where it queues among open-box units), not where it was received.
    lines = returns(("S2", "K1", "B", "changed_mind", 1, 40.0), ("S2", "K1", "B", "changed_mind", 1, 40.0))
    routed = route_returns(lines, ITEMS, FORECAST, PARAMS)
    assert routed["target_location_id"].tolist() == ["S1", "S1"]
    second = 0.7 * 40 * math.exp(-0.01 * (2 / 1.0 + 3)) - 1.5 - 2.5  # behind the first open-box unit at S1
    assert routed["unit_net_value"].tolist() == pytest.approx([expected, second], abs=0.01)
    assert recovery_value(routed, lines, ITEMS, FORECAST, PARAMS) == pytest.approx([expected, second], abs=0.01)
    # Where the road costs more than the wait, open box is priced where it was received: 120 days at S2,
    # less than a liquidator pays.
    far = route_one("S2", "K1", "B", params=DispositionParams(rtv_credit=PARAMS.rtv_credit, transfer_cost=25.0))
    assert far["value_open_box"] == pytest.approx(0.7 * 40 * math.exp(-0.01 * 120) - 1.5, abs=0.01)
    assert far["action"] == "liquidate"


def test_a_damaged_electronic_unit_is_refurbished_when_its_supplier_takes_nothing_back():
    params = DispositionParams(rtv_credit={"*": 0.0})
    row = route_one("S1", "K2", "C", params=params)
    assert row["action"] == "refurbish" and row["target_location_id"] is None
    assert np.isnan(row["value_return_to_vendor"])
    assert row["value_refurbish"] == pytest.approx(75 * math.exp(-0.006 * (14 + 1 / 1.0)) - 15 - 6, abs=0.01)


def test_an_unsellable_unit_goes_back_to_a_supplier_that_credits_it():
    row = route_one("S1", "K2", "D", reason="defective")
    assert row["action"] == "return_to_vendor"
    assert row["value_return_to_vendor"] == pytest.approx(0.9 * 60 - 2.0)
    assert np.isnan(row["value_refurbish"])  # a grade-D unit cannot be refurbished


def test_a_defective_unit_of_any_grade_may_go_back_to_the_supplier():
    row = route_one("S1", "K2", "B", reason="defective")
    assert not np.isnan(row["value_return_to_vendor"])
    assert np.isnan(route_one("S1", "K2", "B")["value_return_to_vendor"])  # not defective, grade B: no


def test_the_rest_is_liquidated():
    row = route_one("S1", "K3", "D")
    assert row["action"] == "liquidate" and row["target_location_id"] is None
    assert row["unit_net_value"] == pytest.approx(0.02 * 3 - 0.4)


def test_fraud_and_high_value_lines_are_held_with_their_reason():
    lines = returns(("S1", "K1", "A", "changed_mind", 1, 40.0), ("S1", "K1", "A", "changed_mind", 1, 40.0),
                    ("S1", "K2", "A", "changed_mind", 5, 500.0), ("S1", "K2", "A", "changed_mind", 5, 500.0))
    lines["fraud_score"] = [0.1, 0.8, 0.1, 0.9]
    routed = route_returns(lines, ITEMS, FORECAST, PARAMS)
    assert routed["hold_for_review"].tolist() == [False, True, True, True]
    assert routed["hold_reason"].tolist() == ["", "fraud score 0.80 >= 0.50", "refund 500.00 >= 400.00",
                                              "fraud score 0.90 >= 0.50; refund 500.00 >= 400.00"]
    # A held unit still gets its disposition: what happens once it is cleared.
    assert routed["action"].notna().all()


def test_the_explanation_names_the_action_and_every_options_value():
    row = route_one("S2", "K1", "A")
    text = row["explanation"]
    assert text.startswith("transfer_to at S1: best net recovery per unit ")
    for action in ("restock_as_new", "transfer_to", "open_box", "refurbish", "return_to_vendor", "liquidate"):
        assert action in text
    assert f"{row['value_transfer_to']:g}" in text and "refurbish n/a" in text


def test_baseline_restocks_sellable_units_and_liquidates_the_rest():
    lines = returns(("S2", "K1", "A", "changed_mind", 1, 40.0), ("S1", "K1", "B", "changed_mind", 1, 40.0),
                    ("S1", "K2", "C", "defective", 1, 100.0), ("S1", "K2", "D", "defective", 1, 100.0))
    base = route_baseline(lines, ITEMS, FORECAST, PARAMS)
    assert base["action"].tolist() == ["restock_as_new", "restock_as_new", "liquidate", "liquidate"]
    routed = route_returns(lines, ITEMS, FORECAST, PARAMS)
    assert routed["action"].tolist() == ["transfer_to", "open_box", "return_to_vendor", "return_to_vendor"]
    got = recovery_value(routed, lines, ITEMS, FORECAST, PARAMS)
    assert got == pytest.approx(routed["net_value"].to_numpy(), abs=0.01)
    assert got.sum() > recovery_value(base, lines, ITEMS, FORECAST, PARAMS).sum()


def test_recovery_values_a_transfer_with_the_demand_that_came_at_its_target():
    lines = returns(("S2", "K1", "A", "changed_mind", 1, 40.0))
    routed = route_returns(lines, ITEMS, FORECAST, PARAMS)
    quiet = FORECAST.assign(mean_daily=np.where(FORECAST["location_id"] == "S1", 0.0, FORECAST["mean_daily"]))
    assert recovery_value(routed, lines, ITEMS, quiet, PARAMS)[0] < routed["net_value"].iat[0] - 20


def test_unknown_skus_and_bad_params_fail_saying_what():
    with pytest.raises(ValueError, match="missing from the item master: \\['K9'\\]"):
        route_returns(returns(("S1", "K9", "A", "changed_mind", 1, 1.0)), ITEMS, FORECAST, PARAMS)
    with pytest.raises(ValueError, match="lacks the columns \\['mean_daily'\\]"):
        route_returns(returns(("S1", "K1", "A", "changed_mind", 1, 1.0)), ITEMS, FORECAST.drop(columns="mean_daily"))
    with pytest.raises(ValueError, match="open_box_price must give every grade"):
        DispositionParams(open_box_price={"A": 0.8})
    with pytest.raises(ValueError, match="rtv_credit\\['X'\\] must be in \\[0, 1\\]"):
        DispositionParams(rtv_credit={"X": 1.5})


def test_supplier_return_terms_come_from_the_supplier_master():
    from include.returns.params import vendor_credit

    master = pd.DataFrame({"supplier_id": ["SUPA", "SUPB", "SUPC"], "return_credit_rate": [0.0, 0.9, np.nan]})
    assert vendor_credit(master) == {"*": 0.0, "SUPB": 0.9}  # 0 and empty: takes nothing back
    assert vendor_credit(master.drop(columns="return_credit_rate")) == {"*": 0.0}  # an older master
    row = route_one("S1", "K2", "D", reason="defective", params=DispositionParams(rtv_credit=vendor_credit(master)))
    assert row["action"] == "return_to_vendor" and row["supplier_id"] == "SUPB"


def test_a_transfer_is_priced_with_the_location_masters_days_and_cost_of_its_destination():
    # K2 at S1 (2 on hand, 0.3 a day): restocked there it sells in 10 days (92.98 net). The FC (5 on hand,
    # 1 a day) after the parameters' 3 days and 2.50 is worth 91.04: restock; after the master's 1 day and
    # 0.30, 94.39: transfer.
    line = returns(("S1", "K2", "A", "changed_mind", 1, 100.0))
    assert route_returns(line, ITEMS, FORECAST, PARAMS).iloc[0]["action"] == "restock_as_new"
    master = pd.DataFrame({"location_id": ["S1", "S2", "FC"], "transfer_lead_time_days": [2, 2, 1],
                           "transfer_cost_per_unit": [0.4, 0.4, 0.3]})
    row = route_returns(line, ITEMS, FORECAST, PARAMS, locations=master).iloc[0]
    assert row["action"] == "transfer_to" and row["target_location_id"] == "FC"
    assert row["unit_net_value"] == pytest.approx(100 * math.exp(-0.006 * (6 + 1)) - 1.2 - 0.3, abs=0.01)
    valued = recovery_value(route_returns(line, ITEMS, FORECAST, PARAMS, locations=master), line, ITEMS, FORECAST,
                            PARAMS, locations=master)
    assert valued == pytest.approx([row["unit_net_value"]], abs=0.01)
    # The destination is the one worth most net of its road, not merely the fastest seller: 30 days to the
    # FC (36 in all) lose to S2's slower shelf (15 days) 2 days away.
    far = master.assign(transfer_lead_time_days=[2, 2, 30])
    row = route_returns(line, ITEMS, FORECAST, PARAMS, locations=far).iloc[0]
    assert row["action"] == "restock_as_new"
    assert row["value_transfer_to"] == pytest.approx(100 * math.exp(-0.006 * 17) - 1.2 - 0.4, abs=0.01)
