"""The order router on hand-worked cases: every expected node and cost below is worked out by hand.

The network: one customer zone ``Z1``; the FC ships there for 8.00 a parcel in 2 days, store S1 for 5.00 in
1 day, store S2 for 6.00 in 1 day; every extra item in a parcel costs 1.00; a picked line costs 0.50 at
the FC and 1.00 in a store; the DC ships no parcels. Orders are placed at 09:00 on 2026-03-10, before
every cut-off, and promised for 2026-03-13 unless a case says otherwise.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from include.orchestration.baselines import route_baseline
from include.orchestration.params import (
    COST_ABOVE_THRESHOLD,
    NO_STOCK,
    PROMISE_MISSED,
    SPLIT_ABOVE_N,
    STORE_BELOW_SAFETY,
    RoutingParams,
)
from include.orchestration.router import route_orders

DAY = "2026-03-10"


def nodes(**capacity: float) -> pd.DataFrame:
    frame = pd.DataFrame({
        "location_id": ["FC", "S1", "S2", "DC"],
        "node_type": ["ecom_fc", "store", "store", "dc"],
        "ships_parcels": [True, True, True, False],
        "pick_cost_per_line": [0.5, 1.0, 1.0, 0.0],
        "cutoff_hour": [20, 17, 17, 17],
        "pick_capacity": [100.0, 100.0, 100.0, 100.0],
    })
    for node, value in capacity.items():
        frame.loc[frame["location_id"] == node, "pick_capacity"] = value
    return frame


def rates(fc_parcel: float = 8.0) -> pd.DataFrame:
    return pd.DataFrame({
        "origin_location_id": ["FC", "S1", "S2"], "zone": ["Z1"] * 3,
        "cost_per_parcel": [fc_parcel, 5.0, 6.0], "cost_per_extra_item": [1.0] * 3, "transit_days": [2, 1, 1],
    })


def stock(*rows: tuple[str, str, int]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["location_id", "sku", "on_hand"])


def lines(*rows: tuple[str, int, str, int], promised: str = "2026-03-13", hour: int = 9) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=["order_id", "line_no", "sku", "quantity"])
    return frame.assign(unit_price=20.0, customer_zone="Z1", promised_date=pd.Timestamp(promised),
                        ordered_at=pd.Timestamp(DAY) + pd.Timedelta(hours=hour))


NO_FORECAST = pd.DataFrame(columns=["location_id", "sku", "mean_daily", "sigma_daily"])
PLENTY = stock(*[(n, k, 50) for n in ("FC", "S1", "S2", "DC") for k in ("A", "B")])


def node_of(routing, order_id: str, line_no: int = 1) -> str:
    a = routing.assignments
    return a.loc[(a["order_id"] == order_id) & (a["line_no"] == line_no), "location_id"].item()


def test_a_single_line_goes_to_the_cheapest_node_at_the_hand_worked_cost():
    # S1: parcel 5.00 + pick 1.00 = 6.00; S2: 7.00; FC: 8.50. The DC never ships.
    routing = route_orders(lines(("O1", 1, "A", 1)), rates(), nodes(), PLENTY, NO_FORECAST)
    row = routing.assignments.iloc[0]
    assert row["location_id"] == "S1" and row["reason"] == "cheapest"
    assert row["line_cost"] == pytest.approx(6.0) and row["order_cost"] == pytest.approx(6.0)
    assert row["candidates"].split(";") == ["S1=6.00", "S2=7.00", "FC=8.50"]
    assert row["on_time"] and row["exceptions"] == "" and routing.exceptions.empty


def test_binding_capacity_moves_a_line_to_the_second_node():
    # S1 can pick one line: the other line's next best is S2 at 7.00, far below S1 a day late (6 + 8 + 1).
    batch = lines(("O1", 1, "A", 1), ("O2", 1, "A", 1))
    routing = route_orders(batch, rates(), nodes(S1=1), PLENTY, NO_FORECAST)
    a = routing.assignments.set_index("order_id")
    assert sorted(a["location_id"]) == ["S1", "S2"]
    moved = a[a["location_id"] == "S2"].iloc[0]
    assert moved["reason"] == "capacity" and moved["line_cost"] == pytest.approx(7.0)
    assert a["on_time"].all()
    # Without the limit both go to S1: the capacity is what moved the line.
    free = route_orders(batch, rates(), nodes(), PLENTY, NO_FORECAST)
    assert set(free.assignments["location_id"]) == {"S1"}


def test_a_promise_no_node_can_meet_is_assigned_and_flagged_not_infeasible():
    # Promised for the order day itself: S1 delivers tomorrow (1 day late), the FC in two days.
    routing = route_orders(lines(("O1", 1, "A", 1), promised=DAY), rates(), nodes(), PLENTY, NO_FORECAST)
    row = routing.assignments.iloc[0]
    assert row["location_id"] == "S1" and row["late_days"] == 1 and not row["on_time"]
    assert row["late_cost"] == pytest.approx(8.0) and row["line_cost"] == pytest.approx(14.0)
    assert routing.exceptions["exception"].tolist() == [PROMISE_MISSED]
    assert "1 day(s) after the promise 2026-03-10" in routing.exceptions["detail"].item()


def test_an_order_after_the_cut_off_leaves_the_next_day():
    # Ordered at 18:00, after the stores' 17:00 cut-off but before the FC's 20:00 one. Promised in 2 days:
    # S1 arrives on day 2 (dispatch day 1 + 1), the FC on day 2 too (dispatch day 0 + 2): S1 stays cheaper.
    routing = route_orders(lines(("O1", 1, "A", 1), promised="2026-03-11", hour=18), rates(), nodes(), PLENTY,
                           NO_FORECAST)
    row = routing.assignments.iloc[0]
    # Promised for day 1: both are a day late, so S1 (6.00 + 8.00) still beats the FC (8.50 + 8.00).
    assert row["location_id"] == "S1" and row["late_days"] == 1


def test_one_parcel_from_the_fc_beats_a_split_across_stores():
    # A only at S1, B only at S2, both at the FC. Split: (5 + 1) + (6 + 1) + split penalty 1.50 = 14.50.
    # Whole order from the FC: parcel 8 + one extra item 1 + two picks 0.50 = 10.00.
    on_hand = stock(("S1", "A", 5), ("S2", "B", 5), ("FC", "A", 5), ("FC", "B", 5))
    batch = lines(("O1", 1, "A", 1), ("O1", 2, "B", 1))
    routing = route_orders(batch, rates(), nodes(), on_hand, NO_FORECAST)
    a = routing.assignments
    assert a["location_id"].tolist() == ["FC", "FC"]
    assert a["parcels_in_order"].tolist() == [1, 1]
    assert a["order_cost"].iloc[0] == pytest.approx(10.0)
    assert a["line_cost"].sum() == pytest.approx(10.0)


def test_a_split_beats_one_dear_parcel():
    # With the FC's parcel at 14.00 the whole order costs 16.00 there, the split 14.50.
    on_hand = stock(("S1", "A", 5), ("S2", "B", 5), ("FC", "A", 5), ("FC", "B", 5))
    batch = lines(("O1", 1, "A", 1), ("O1", 2, "B", 1))
    routing = route_orders(batch, rates(fc_parcel=14.0), nodes(), on_hand, NO_FORECAST)
    a = routing.assignments
    assert a["location_id"].tolist() == ["S1", "S2"]
    assert a["parcels_in_order"].tolist() == [2, 2]
    assert a["order_cost"].iloc[0] == pytest.approx(14.5)
    assert a["split_cost"].sum() == pytest.approx(1.5)
    # Two parcels is not above the limit of two; with a limit of one it is an exception.
    assert routing.exceptions.empty
    strict = route_orders(batch, rates(fc_parcel=14.0), nodes(), on_hand, NO_FORECAST,
                          RoutingParams(max_parcels=1))
    assert set(strict.exceptions["exception"]) == {SPLIT_ABOVE_N}


def test_a_thin_store_is_spared_and_flagged_when_it_is_the_only_source():
    # S1 holds 3 units against 2 a day (sigma 0.5) for 2 days: mean 4, safety 4 + 1.28 * 0.71 = 4.9.
    # Shipping one more unit loses about one store sale at a margin of 10.00, so the FC (8.50) wins.
    forecast = pd.DataFrame({"location_id": ["S1"], "sku": ["A"], "mean_daily": [2.0], "sigma_daily": [0.5],
                             "unit_margin": [10.0]})
    both = stock(("S1", "A", 3), ("FC", "A", 9))
    routing = route_orders(lines(("O1", 1, "A", 1)), rates(), nodes(), both, forecast)
    assert node_of(routing, "O1") == "FC" and routing.exceptions.empty
    only_store = stock(("S1", "A", 3))
    routing = route_orders(lines(("O1", 1, "A", 1)), rates(), nodes(), only_store, forecast)
    row = routing.assignments.iloc[0]
    assert row["location_id"] == "S1" and STORE_BELOW_SAFETY in row["exceptions"]
    assert 8.0 < row["stockout_cost"] < 10.0
    assert "store S1 left below its safety stock of A" in routing.exceptions["detail"].tolist()


def test_aged_stock_is_a_preference_that_breaks_a_near_tie():
    # S1 and a copy of it, S2 made as cheap: markdown risk at S2 tips the choice, and costs nothing.
    on_hand = PLENTY.assign(markdown_risk=np.where(PLENTY["location_id"] == "S2", 1.0, 0.0))
    routing = route_orders(lines(("O1", 1, "A", 1)), rates().assign(cost_per_parcel=[8.0, 5.0, 5.0]), nodes(),
                           on_hand, NO_FORECAST)
    assert node_of(routing, "O1") == "S2"
    assert routing.assignments["line_cost"].item() == pytest.approx(6.0)


def test_no_stock_anywhere_leaves_the_line_for_the_next_batch():
    routing = route_orders(lines(("O1", 1, "Z", 1)), rates(), nodes(), PLENTY, NO_FORECAST)
    row = routing.assignments.iloc[0]
    assert row["location_id"] is None and row["reason"] == "no_stock" and not row["on_time"]
    assert routing.exceptions["exception"].tolist() == [NO_STOCK]


def test_an_order_above_the_cost_threshold_is_an_exception():
    routing = route_orders(lines(("O1", 1, "A", 1)), rates(), nodes(), PLENTY, NO_FORECAST,
                           RoutingParams(max_cost_per_order=5.0))
    assert routing.exceptions["exception"].tolist() == [COST_ABOVE_THRESHOLD]
    assert "order costs 6.00, above 5.00" in routing.exceptions["detail"].item()


def test_stock_is_never_promised_twice():
    # S1 has one unit for two lines: the second goes to S2 even though S1 is cheaper for both.
    on_hand = stock(("S1", "A", 1), ("S2", "A", 1))
    routing = route_orders(lines(("O1", 1, "A", 1), ("O2", 1, "A", 1)), rates(), nodes(), on_hand, NO_FORECAST)
    assert sorted(routing.assignments["location_id"]) == ["S1", "S2"]
    assert set(routing.assignments["reason"]) == {"cheapest", "stock"}


def _random_batch(seed: int, n_orders: int = 120) -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    rows = [(f"O{o:04d}", k + 1, str(rng.choice(["A", "B"])), int(rng.integers(1, 3)))
            for o in range(n_orders) for k in range(int(rng.integers(1, 4)))]
    batch = lines(*rows)
    batch["ordered_at"] = batch["ordered_at"] + pd.to_timedelta(batch["order_id"].str[1:].astype(int), "min")
    on_hand = stock(*[(n, k, int(rng.integers(5, 60)) if n != "FC" else 500) for n in ("FC", "S1", "S2")
                      for k in ("A", "B")])
    return batch, on_hand


def test_routing_is_deterministic_and_independent_of_row_order():
    batch, on_hand = _random_batch(3)
    # A dear overflow makes pick capacity a hard limit (by default a line may wait for tomorrow's pick).
    params = RoutingParams(chunk_lines=60, overflow_penalty=1000.0)
    limits = nodes(S1=30, S2=40, FC=1000)
    first = route_orders(batch, rates(), limits, on_hand, NO_FORECAST, params)
    again = route_orders(batch, rates(), limits, on_hand, NO_FORECAST, params)
    shuffled = route_orders(batch.sample(frac=1.0, random_state=1), rates(), limits, on_hand, NO_FORECAST, params)
    pd.testing.assert_frame_equal(first.assignments, again.assignments)
    pd.testing.assert_frame_equal(first.assignments, shuffled.assignments)
    pd.testing.assert_frame_equal(first.exceptions, shuffled.exceptions)
    # Capacity held (the FC can always take a line, so no overflow is worth its lateness).
    picks = first.assignments["location_id"].value_counts()
    assert picks.get("S1", 0) <= 30 and picks.get("S2", 0) <= 40
    # Stock held: no node ships more than it holds.
    shipped = first.assignments.groupby(["location_id", "sku"])["quantity"].sum()
    held = on_hand.set_index(["location_id", "sku"])["on_hand"]
    assert (shipped <= held.reindex(shipped.index)).all()


def test_lines_already_routed_are_skipped():
    batch, on_hand = _random_batch(5, n_orders=20)
    first = route_orders(batch, rates(), nodes(), on_hand, NO_FORECAST)
    keys = set(first.assignments["routing_key"])
    again = route_orders(batch, rates(), nodes(), on_hand, NO_FORECAST, already_routed=keys)
    assert again.assignments.empty and again.summary["lines_skipped_already_routed"] == len(keys)
    half = set(sorted(keys)[: len(keys) // 2])
    rest = route_orders(batch, rates(), nodes(), on_hand, NO_FORECAST, already_routed=half)
    assert set(rest.assignments["routing_key"]) == keys - half


def test_the_router_beats_both_baselines_on_the_same_accounting():
    batch, on_hand = _random_batch(11)
    args = (batch, rates(), nodes(S1=40, S2=40), on_hand, NO_FORECAST)
    router = route_orders(*args).summary
    for policy in ("nearest", "fc_first"):
        baseline = route_baseline(policy, *args).summary
        assert router["total_cost"] <= baseline["total_cost"] + 1e-9, policy


def test_baselines_follow_their_rules():
    batch = lines(("O1", 1, "A", 1), ("O1", 2, "B", 1))
    nearest = route_baseline("nearest", batch, rates(), nodes(), PLENTY, NO_FORECAST)
    assert nearest.assignments["location_id"].tolist() == ["S1", "S1"]
    fc = route_baseline("fc_first", batch, rates(), nodes(), PLENTY, NO_FORECAST)
    assert fc.assignments["location_id"].tolist() == ["FC", "FC"]
    assert fc.assignments["order_cost"].iloc[0] == pytest.approx(10.0)
    with pytest.raises(ValueError, match="unknown baseline policy 'random'"):
        route_baseline("random", batch, rates(), nodes(), PLENTY, NO_FORECAST)


@pytest.mark.parametrize(("frame", "change", "message"), [
    ("lines", lambda f: f.drop(columns="customer_zone"), r"lines is missing column\(s\) \['customer_zone'\]"),
    ("lines", lambda f: f.assign(quantity=0), "lines.quantity must be at least 1"),
    ("lines", lambda f: f.assign(unit_price=-1.0), "lines.unit_price must hold numbers of at least 0"),
    ("lines", lambda f: f.assign(sku=None), r"lines.sku has 1 empty value\(s\)"),
    ("rates", lambda f: f.drop(columns="transit_days"), r"rates is missing column\(s\) \['transit_days'\]"),
    ("nodes", lambda f: f.assign(node_type="warehouse"), r"nodes.node_type has unknown value\(s\) \['warehouse'\]"),
    ("nodes", lambda f: f.drop(columns="pick_capacity"), r"nodes is missing column\(s\) \['pick_capacity'\]"),
    ("on_hand", lambda f: f.assign(on_hand=-1), "on_hand.on_hand must hold numbers of at least 0"),
    ("on_hand", lambda f: pd.concat([f, f.iloc[[0]]]), r"on_hand has duplicate keys on \['location_id', 'sku'\]"),
])
def test_bad_inputs_name_the_frame_and_column(frame, change, message):
    args = {"lines": lines(("O1", 1, "A", 1)), "rates": rates(), "nodes": nodes(), "on_hand": PLENTY,
            "forecast": NO_FORECAST}
    args[frame] = change(args[frame])
    with pytest.raises(ValueError, match=message):
        route_orders(**args)


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"split_penalty": -1.0}, "RoutingParams.split_penalty must not be negative"),
    ({"max_candidates": 0}, "RoutingParams.max_candidates must be a whole number of at least 1"),
    ({"chunk_lines": 2.5}, "RoutingParams.chunk_lines must be a whole number"),
    ({"candidate_pool": 2, "max_candidates": 3}, r"candidate_pool \(2\) must be at least max_candidates \(3\)"),
    ({"late_penalty_per_day": "8"}, "RoutingParams.late_penalty_per_day must be a number"),
])
def test_bad_params_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        RoutingParams(**kwargs)
