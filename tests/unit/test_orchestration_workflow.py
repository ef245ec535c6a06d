"""The pure parts of a routing batch: what arrived, what is left of stock and capacity, the staged lines, KPIs."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from include.governance.policy import Orchestration, load_policy, tier_proposals
from include.orchestration import workflow as wf
from include.orchestration.router import route_orders
from include.reporting.orchestration_kpis import orchestration_kpis, orchestration_report_lines

DAY = dt.date(2026, 11, 27)


def _staged(rows: list[tuple[str, str, str, float, str]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["business_key", "from_location", "sku", "quantity", "status"])


def test_batch_stamp_counts_minutes_of_the_day():
    assert wf.batch_stamp(DAY, dt.datetime(2026, 11, 27, 10, 15)) == "1015"
    assert wf.batch_stamp(DAY, dt.datetime(2026, 11, 28, 0, 0)) == "2400"
    with pytest.raises(ValueError, match="ends within the day"):
        wf.batch_stamp(DAY, dt.datetime(2026, 11, 28, 0, 15))


def test_only_lines_ordered_before_the_cut_off_arrive():
    lines = pd.DataFrame({"ordered_at": pd.to_datetime(["2026-11-27 09:59", "2026-11-27 10:15", "2026-11-27 10:14"]),
                          "order_id": ["a", "b", "c"]})
    assert wf.arrived_by(lines, dt.datetime(2026, 11, 27, 10, 15))["order_id"].tolist() == ["a", "c"]


def test_stock_now_takes_off_what_earlier_batches_routed_but_not_what_was_rejected():
    on_hand = pd.DataFrame({"location_id": ["S1", "S1", "FC"], "sku": ["A", "B", "A"], "on_hand": [5, 2, 10],
                            "markdown_risk": [0.0, 0.0, 0.1]})
    staged = _staged([("o1:1", "S1", "A", 2.0, "released"), ("o2:1", "S1", "B", 3.0, "pending_approval"),
                      ("o3:1", "FC", "A", 4.0, "rejected"), ("o4:1", "FC", "A", 1.0, "expired")])
    now = wf.stock_now(on_hand, staged)
    assert now["on_hand"].tolist() == [3, 0, 10]
    assert now["markdown_risk"].tolist() == [0.0, 0.0, 0.1]
    assert wf.stock_now(on_hand, pd.DataFrame())["on_hand"].tolist() == [5, 2, 10]


def test_capacity_left_is_the_later_plan_capped_by_what_the_day_has_left():
    caps = pd.DataFrame({"location_id": ["S1", "FC", "DC"], "node_type": ["store", "ecom_fc", "dc"],
                         "ships_parcels": [True, True, False], "pick_cost_per_line": [1.5, 0.55, 0.0],
                         "cutoff_hour": [17, 20, 17]})
    labour = pd.DataFrame({"location_id": ["S1"] * 3 + ["FC"] * 3, "work_date": pd.to_datetime([DAY] * 6),
                           "hour": [9, 10, 11, 9, 10, 11], "pick_lines": [4, 4, 4, 10, 10, 10]})
    # S1: 8 left from 10:00, but 7 of the day's 12 are routed already, so 5; FC: 20 from 10:00, 2 routed.
    staged = _staged([(f"s{i}:1", "S1", "A", 1.0, "released") for i in range(7)]
                     + [("f1:1", "FC", "A", 1.0, "approved"), ("f2:1", "FC", "A", 1.0, "auto_approved"),
                        ("f3:1", "FC", "A", 1.0, "rejected")])
    left = wf.capacity_left(caps, labour, DAY, 10, staged).set_index("location_id")["pick_capacity"]
    assert left.to_dict() == {"S1": 5.0, "FC": 20.0, "DC": 0.0}
    assert wf.capacity_left(caps, labour, DAY, 24, staged)["pick_capacity"].tolist() == [0.0, 0.0, 0.0]


def test_store_demand_reads_today_and_tomorrow_of_the_night_forecast():
    forecast = pd.DataFrame({"location_id": ["S1", "S1", "S1", "FC"], "sku": ["A"] * 4,
                             "channel": ["store", "store", "store", "online"], "step": [1, 2, 3, 1],
                             "mean": [2.0, 4.0, 100.0, 9.0], "sigma": [3.0, 4.0, 1.0, 1.0]})
    items = pd.DataFrame({"sku": ["A"], "unit_price": [10.0], "unit_cost": [6.0]})
    out = wf.store_demand(forecast, items)
    assert out.to_dict("records") == [{"location_id": "S1", "sku": "A", "mean_daily": 3.0,
                                       "sigma_daily": pytest.approx(np.sqrt(12.5)), "unit_margin": 4.0}]


def test_routing_params_take_the_policy_limits():
    params = wf.routing_params(Orchestration(max_parcels=3, max_cost_per_order=40.0))
    assert (params.max_parcels, params.max_cost_per_order) == (3, 40.0)


def _network():
    rates = pd.DataFrame({"origin_location_id": ["FC", "S1", "FC", "S1"], "zone": ["Z1", "Z1", "Z2", "Z2"],
                          "cost_per_parcel": [5.0, 4.5, 5.0, 6.0], "cost_per_extra_item": [0.6, 0.6, 0.6, 0.6],
                          "transit_days": [1, 1, 3, 2]})
    nodes = pd.DataFrame({"location_id": ["FC", "S1"], "node_type": ["ecom_fc", "store"],
                          "ships_parcels": [True, True], "pick_cost_per_line": [0.55, 1.5],
                          "cutoff_hour": [20, 17], "pick_capacity": [100.0, 100.0]})
    on_hand = pd.DataFrame({"location_id": ["FC", "S1", "S1"], "sku": ["A", "A", "B"], "on_hand": [50, 2, 5]})
    forecast = pd.DataFrame({"location_id": ["S1", "S1"], "sku": ["A", "B"], "mean_daily": [1.0, 0.1],
                             "sigma_daily": [0.5, 0.1]})
    lines = pd.DataFrame({"order_id": ["o1", "o2", "o2"], "line_no": [1, 1, 2], "sku": ["A", "A", "B"],
                          "quantity": [1, 1, 1], "unit_price": [10.0, 10.0, 10.0], "customer_zone": ["Z1", "Z2", "Z2"],
                          "promised_date": pd.to_datetime([DAY + dt.timedelta(days=2)] * 2 + [DAY + dt.timedelta(days=2)]),
                          "ordered_at": pd.to_datetime(["2026-11-27 09:00", "2026-11-27 09:30", "2026-11-27 09:30"])})
    return lines, rates, nodes, on_hand, forecast


def test_routed_lines_become_tiered_fulfilment_lines_with_their_explanation():
    lines, rates, nodes, on_hand, forecast = _network()
    routing = route_orders(lines, rates, nodes, on_hand, forecast)
    out = tier_proposals(wf.proposals(routing, lines, "1015"), load_policy())
    assert sorted(out["business_key"]) == ["o1:1", "o2:1", "o2:2"]
    assert set(out["doc_type"]) == {"fulfilment_assignment"}
    assert set(out["action"]) <= {"ship_from_store", "ship_from_fc"}
    row = out.set_index("business_key").loc["o2:1"]
    assert row["to_location"] == "Z2" and row["need_by"] == DAY + dt.timedelta(days=2)
    e = row["explanation"]
    assert e["order_id"] == "o2" and e["batch"] == "1015" and e["candidates"] and e["why"]
    assert row["value"] == pytest.approx(max(e["line_cost"], 0.0), abs=0.01)
    # Any line with an exception waits for a planner; the others are released at once.
    flagged = out["explanation"].map(lambda x: bool(x["exceptions"]))
    assert (out["auto_approve"] == ~flagged).all()
    assert (out.loc[flagged, "tier_reasons"].map(list) == [["fulfilment_exception"]] * int(flagged.sum())).all()


def test_a_line_that_was_routed_already_is_not_routed_again():
    lines, rates, nodes, on_hand, forecast = _network()
    routing = route_orders(lines, rates, nodes, on_hand, forecast, already_routed=["o1:1"])
    assert sorted(wf.proposals(routing, lines, "1030")["business_key"]) == ["o2:1", "o2:2"]


def test_a_line_with_no_stock_anywhere_is_left_for_the_next_batch():
    lines, rates, nodes, on_hand, forecast = _network()
    lines.loc[0, "quantity"] = 500
    routing = route_orders(lines, rates, nodes, on_hand, forecast)
    assert "o1:1" not in set(wf.proposals(routing, lines, "1015")["business_key"])


def test_a_promise_that_cannot_be_met_is_an_exception():
    lines, rates, nodes, on_hand, forecast = _network()
    lines["promised_date"] = pd.Timestamp(DAY)
    out = tier_proposals(wf.proposals(route_orders(lines, rates, nodes, on_hand, forecast), lines, "1015"),
                         load_policy())
    assert all("promise_cannot_be_met" in e["exceptions"] for e in out["explanation"])
    assert not out["auto_approve"].any() and set(out["risk_tier"]) == {"medium"}


def _line(order: str, node: str, node_type: str, status: str, cost: float, on_time: bool = True,
          exceptions: tuple[str, ...] = ()) -> dict:
    return {"doc_type": "fulfilment_assignment", "status": status, "from_location": node, "risk_tier": "low",
            "explanation": {"order_id": order, "node_type": node_type, "line_cost": cost, "on_time": on_time,
                            "stockout_cost": 0.5 if node_type == "store" else 0.0, "exceptions": list(exceptions)}}


def test_kpis_come_from_the_released_assignments():
    lines = pd.DataFrame([
        _line("o1", "FC", "ecom_fc", "released", 6.0), _line("o1", "S1", "store", "released", 5.0, on_time=False,
                                                              exceptions=("split_above_n", "store_below_safety_stock")),
        _line("o2", "S1", "store", "released", 7.0),
        _line("o3", "S2", "store", "rejected", 30.0, exceptions=("cost_above_threshold",)),
        _line("o4", "FC", "ecom_fc", "expired", 9.0, exceptions=("promise_cannot_be_met",)),
    ])
    k = orchestration_kpis(lines)
    assert k["ran"] and k["lines_routed"] == 5 and k["lines_released"] == 3 and k["orders_released"] == 2
    assert k["fulfilment_cost_per_order"] == 9.0
    assert k["on_time_promise_rate"] == 0.5 and k["split_rate"] == 0.5
    assert k["ship_from_store_share"] == pytest.approx(0.6667, abs=1e-4)
    assert k["store_stockouts_caused"] == 1 and k["store_stockout_cost_est"] == 1.0
    assert k["exceptions"] == 3 and k["exceptions_by_status"] == {"released": 1, "rejected": 1, "expired": 1}
    text = "\n".join(orchestration_report_lines({"orchestration": k}))
    assert "fulfilment cost per order 9" in text and "split rate 50.0%" in text
    assert orchestration_kpis(pd.DataFrame()) == {"ran": False}
    assert "No order line was routed" in "\n".join(orchestration_report_lines({"orchestration": {"ran": False}}))
