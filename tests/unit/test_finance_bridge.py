"""The margin bridge on hand-worked cells: one cause changed at a time, mix between items, and reconciliation.

Every case is one week (the window) after two baseline weeks of the same daily trade: item A sells at 10
and costs 6, item B sells at 10 and costs 2, so a week of 10 A a day is 700 of sales and 420 of cost.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from include.finance.bridge import BRIDGE_COLUMNS, FinanceFrames, margin_bridge, sales_frame
from include.finance.params import CAUSES, BridgeParams

PARAMS = BridgeParams(window_days=7, baseline_weeks=2)
DAYS = pd.date_range("2026-03-01", periods=21)
NIGHT = DAYS[-1]
WINDOW = DAYS[-7:]
ITEMS = pd.DataFrame({"sku": ["A", "B"], "category": ["Toys", "Toys"], "unit_cost": [6.0, 2.0]})


def _sales(units: dict[str, float], days, channel="store", location="S1", markdown=0.0, promo=0.0, promo_gross=0.0):
    return pd.DataFrame([{"channel": channel, "location_id": location, "sku": sku, "date": d, "units": u,
                          "gross_sales": 10.0 * u, "markdown_amount": markdown * 10.0 * u,
                          "promo_discount": promo * 10.0 * u, "promo_gross": promo_gross * 10.0 * u}
                         for d in days for sku, u in units.items()])


def _frames(sales, returns=None, shipments=None, substitutions=None, shrink=None) -> FinanceFrames:
    empty = {"returns": ["returned_at", "channel", "location_id", "sku", "refund_amount"],
             "shipments": ["shipped_at", "channel", "location_id", "sku", "service_level", "shipping_cost"],
             "substitutions": ["recorded_at", "channel", "location_id", "sku", "extra_cost"],
             "shrink": ["adjusted_at", "location_id", "sku", "value_at_cost"]}
    given = {"returns": returns, "shipments": shipments, "substitutions": substitutions, "shrink": shrink}
    frames = {k: v if v is not None else pd.DataFrame(columns=empty[k]) for k, v in given.items()}
    return FinanceFrames(sales=sales, items=ITEMS, **frames)


def _row(frames: FinanceFrames) -> pd.Series:
    bridge = margin_bridge(frames, NIGHT, PARAMS)
    assert list(bridge.columns) == BRIDGE_COLUMNS and len(bridge) == 1
    return bridge.iloc[0]


def _only(row: pd.Series, cause: str, amount: float) -> None:
    for c in CAUSES:
        assert row[c] == pytest.approx(amount if c == cause else 0.0, abs=1e-9), c
    assert row["margin_change"] == pytest.approx(amount)
    assert row["residual"] == pytest.approx(0.0, abs=1e-9)


def test_only_the_markdown_changed():
    sales = pd.concat([_sales({"A": 10}, DAYS[:-7]), _sales({"A": 10}, WINDOW, markdown=0.10)])
    row = _row(_frames(sales))
    # 700 of sales, 70 marked down, 420 of cost: 210 kept against 280 expected.
    assert (row["gross_sales"], row["actual_margin"], row["expected_margin"]) == pytest.approx((700, 210, 280))
    assert (row["actual_margin_pct"], row["expected_margin_pct"]) == pytest.approx((30.0, 40.0))
    _only(row, "price_markdown", -70.0)
    assert (row["rate_price_markdown"], row["median_price_markdown"]) == pytest.approx((0.10, 0.0))
    assert row["baseline_weeks"] == 2


def test_the_short_window_is_judged_against_blocks_of_the_baseline_days():
    # Baseline day d (0..13) marks down 1% x (d // 2): the seven 2-day blocks run 0%..6% (median 3%, MAD 2%,
    # SD sqrt(28 / 6)%), the two weeks 9/700 and 33/700 (median 3%). The window marks down 3% for five days,
    # then 10% on the last two nights.
    depth = [0.01 * (d // 2) for d in range(14)] + [0.03] * 5 + [0.10] * 2
    sales = pd.concat([_sales({"A": 10}, [day], markdown=m) for day, m in zip(DAYS, depth, strict=True)])
    row = _row(_frames(sales))
    assert (row["window_days"], row["short_days"], row["short_gross_sales"]) == (7, 2, 200.0)
    assert row["rate_price_markdown"] == pytest.approx(35 / 700) and row["median_price_markdown"] == pytest.approx(0.03)
    assert (row["short_rate_price_markdown"], row["short_median_price_markdown"], row["short_mad_price_markdown"],
            row["short_sd_price_markdown"]) == pytest.approx((0.10, 0.03, 0.02, np.sqrt(28 / 6) / 100))
    # 20 given over the two nights against the 3% expected of 200: 14 of margin lost.
    assert row["short_price_markdown"] == pytest.approx(-14.0)
    assert row["price_markdown"] == pytest.approx(-(35 - 21)) and row["residual"] == pytest.approx(0.0, abs=1e-9)
    assert (row["short_shrink"], row["short_rate_shrink"], row["short_median_shrink"]) == (0.0, 0.0, 0.0)


def test_the_short_window_fits_in_the_window():
    with pytest.raises(ValueError, match="short_days must be from 1 to window_days \\(7\\), got 8"):
        BridgeParams(short_days=8)
    with pytest.raises(ValueError, match="short_days must be from 1 to window_days \\(7\\), got 0"):
        BridgeParams(short_days=0)


def test_only_shrink_changed():
    sales = _sales({"A": 10}, DAYS)
    shrink = pd.DataFrame({"adjusted_at": [WINDOW[2] + pd.Timedelta(hours=9)], "location_id": ["S1"], "sku": ["B"],
                           "value_at_cost": [-50.0]})
    row = _row(_frames(sales, shrink=shrink))
    _only(row, "shrink", -50.0)
    assert row["rate_shrink"] == pytest.approx(50 / 700)


def test_a_mix_change_between_items_is_mix():
    # Half A, half B before (cost 40% of sales); all A now (60%): same sales, 140 more cost.
    sales = pd.concat([_sales({"A": 5, "B": 5}, DAYS[:-7]), _sales({"A": 10}, WINDOW)])
    row = _row(_frames(sales))
    _only(row, "mix", -140.0)
    assert (row["rate_mix"], row["median_mix"]) == pytest.approx((0.6, 0.4))


def test_deeper_promotions_are_promotion_depth_and_more_promotions_are_mix():
    base = _sales({"A": 10}, DAYS[:-7], promo=0.5 * 0.2, promo_gross=0.5)  # half promoted at 20% off
    now = _sales({"A": 10}, WINDOW, promo=1.0 * 0.3, promo_gross=1.0)  # all promoted at 30% off
    row = _row(_frames(pd.concat([base, now])))
    # Depth: 210 given against 20% of 700 promoted = 140 -> -70. Share: 350 more promoted at 20% -> -70.
    assert row["promotion_depth"] == pytest.approx(-70.0)
    assert row["mix"] == pytest.approx(-70.0)
    assert row["margin_change"] == pytest.approx(-140.0) and row["residual"] == pytest.approx(0.0, abs=1e-9)


def test_expected_margin_scales_with_the_window_volume():
    sales = pd.concat([_sales({"A": 10}, DAYS[:-7]), _sales({"A": 20}, WINDOW)])
    returns = pd.DataFrame({"returned_at": list(DAYS), "channel": "store", "location_id": "S1", "sku": "A",
                            "refund_amount": [5.0] * 14 + [10.0] * 7})
    row = _row(_frames(sales, returns=returns))
    # Refunds are 5% of sales before and now: twice the sales, twice the refunds, nothing to explain.
    assert row["gross_sales"] == pytest.approx(1400.0)
    _only(row, "returns_refunds", 0.0)


def test_every_cause_at_once_reconciles_within_half_a_percent():
    rng = np.random.default_rng(4)
    rows = []
    for channel, location in (("store", "S1"), ("store", "S2"), ("web", "FC"), ("app", "FC")):
        for day in DAYS:
            for sku in ("A", "B"):
                units = float(rng.integers(1, 30))
                promo_gross = rng.uniform(0, 0.6)
                rows.append({"channel": channel, "location_id": location, "sku": sku, "date": day, "units": units,
                             "gross_sales": 10 * units, "markdown_amount": rng.uniform(0, 0.1) * 10 * units,
                             "promo_discount": rng.uniform(0.1, 0.4) * promo_gross * 10 * units,
                             "promo_gross": promo_gross * 10 * units})
    sales = pd.DataFrame(rows)
    n = len(sales)
    common = {"channel": sales["channel"], "location_id": sales["location_id"], "sku": sales["sku"]}
    frames = _frames(
        sales,
        returns=pd.DataFrame({"returned_at": sales["date"], **common, "refund_amount": rng.uniform(0, 20, n)}),
        shipments=pd.DataFrame({"shipped_at": sales["date"], **common, "shipping_cost": rng.uniform(0, 9, n),
                                "service_level": rng.choice(["standard", "expedited"], n)}),
        substitutions=pd.DataFrame({"recorded_at": sales["date"], **common, "extra_cost": rng.uniform(0, 4, n)}),
        shrink=pd.DataFrame({"adjusted_at": sales["date"], "location_id": sales["location_id"], "sku": sales["sku"],
                             "value_at_cost": -rng.uniform(0, 6, n)}))
    bridge = margin_bridge(frames, DAYS[-3:], PARAMS)
    assert len(bridge) == 3 * 4
    total = bridge[list(CAUSES)].sum(axis=1)
    assert np.allclose(total + bridge["residual"], bridge["margin_change"])
    assert (bridge["residual_pct"] <= 0.5).all() and bridge["residual"].abs().max() < 1e-6
    assert np.allclose(bridge["actual_margin"] - bridge["expected_margin"], bridge["margin_change"])
    # FC shrink has no channel: web and app share it by their cost of goods, and none is lost.
    fc = frames.shrink[frames.shrink["location_id"] == "FC"]
    window = fc[fc["adjusted_at"] > DAYS[-8]]
    fc_rows = bridge[(bridge["location_id"] == "FC") & (bridge["night"] == NIGHT)]
    assert (fc_rows["shrink"] != 0).all()
    assert -fc_rows["rate_shrink"].mul(fc_rows["gross_sales"]).sum() == pytest.approx(window["value_at_cost"].sum())


def test_a_missing_column_is_named():
    sales = _sales({"A": 10}, DAYS).drop(columns="promo_gross")
    with pytest.raises(ValueError, match="sales is missing columns \\['promo_gross'\\]"):
        margin_bridge(_frames(sales), NIGHT, PARAMS)


def test_sales_frame_splits_markdown_from_promotion():
    items = pd.DataFrame({"sku": ["A", "B"], "unit_price": [10.0, 20.0]})
    pos = pd.DataFrame({"store_id": ["S1", "S1"], "sku": ["A", "B"], "business_date": [DAYS[0]] * 2,
                        "units_sold": [2, 1], "gross_sales": [16.0, 15.0], "discount_amount": [4.0, 5.0],
                        "promo_id": ["PR1", None]})
    orders = pd.DataFrame({"ordered_at": [DAYS[0] + pd.Timedelta(hours=10)] * 3, "channel": ["web", "app", "web"],
                           "sku": ["A", "B", "B"], "quantity": [1, 2, 1], "unit_price": [8.0, 18.0, 20.0],
                           "fulfilment_location_id": ["FC"] * 3, "status": ["shipped", "shipped", "cancelled"]})
    promotions = pd.DataFrame({"sku": ["A"], "location_id": [None], "start_date": [DAYS[0]], "end_date": [DAYS[3]]})
    out = sales_frame(pos, orders, items, promotions)
    assert list(out["channel"]) == ["store", "store", "web", "app"]
    assert list(out["location_id"]) == ["S1", "S1", "FC", "FC"]
    assert list(out["gross_sales"]) == [20.0, 20.0, 10.0, 40.0]
    assert list(out["promo_discount"]) == [4.0, 0.0, 2.0, 0.0]
    assert list(out["markdown_amount"]) == [0.0, 5.0, 0.0, 4.0]
    assert list(out["promo_gross"]) == [20.0, 0.0, 10.0, 0.0]


def test_extracts_that_never_arrived_add_nothing():
    sales = pd.concat([_sales({"A": 10}, DAYS[:-7]), _sales({"A": 10}, WINDOW, markdown=0.10)])
    frames = FinanceFrames(sales=sales, returns=pd.DataFrame(), shipments=pd.DataFrame(),
                           substitutions=pd.DataFrame(), shrink=pd.DataFrame(), items=ITEMS)
    _only(_row(frames), "price_markdown", -70.0)
    nothing = FinanceFrames(sales=pd.DataFrame(), returns=pd.DataFrame(), shipments=pd.DataFrame(),
                            substitutions=pd.DataFrame(), shrink=pd.DataFrame(), items=ITEMS)
    empty = margin_bridge(nothing, NIGHT, PARAMS)
    assert empty.empty and list(empty.columns) == BRIDGE_COLUMNS
