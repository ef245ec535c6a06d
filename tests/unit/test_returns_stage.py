"""Loss-prevention cases (the labels of the fraud model) and the pieces of the returns-routing route stage."""

from __future__ import annotations

import datetime as dt
import shutil

import numpy as np
import pandas as pd
import pytest

from include.contracts.validate import PASSED
from include.ingest.pipeline import ingest_source
from include.returns.contracts import load_returns_contracts
from include.sample_data import returns as sample_returns
from include.sample_data.generator import PRESETS, generate_world, write_landing
from include.storage import read_partition

CONTRACTS = load_returns_contracts()


@pytest.fixture(scope="module")
def world():
    return generate_world(PRESETS["tiny"])


@pytest.fixture(scope="module")
def month(world):
    return sample_returns.returns_detail(world, 30, seed=3, config=sample_returns.ReturnsConfig(returns_per_day=80))


def test_lp_cases_confirm_every_fraud_and_clear_a_sample_a_few_days_later(month):
    extract, truth = month
    cases = sample_returns.lp_cases(extract, truth, seed=1)
    assert list(cases.columns) == list(sample_returns.LP_COLUMNS) and cases["return_id"].is_unique
    fraud = set(truth.loc[truth["is_fraud"], "return_id"])
    assert set(cases.loc[cases["outcome"] == "confirmed_fraud", "return_id"]) == fraud
    cleared = cases.loc[cases["outcome"] == "cleared", "return_id"]
    assert not set(cleared) & fraud and 0 < len(cleared) < 0.1 * (len(extract) - len(fraud))
    returned = extract.set_index("return_id")["returned_at"].reindex(cases["return_id"]).to_numpy()
    after = (cases["closed_on"].to_numpy().astype("datetime64[D]") - returned.astype("datetime64[D]")).astype(int)
    assert after.min() >= 1 and after.max() <= 6


def test_a_day_s_cases_do_not_depend_on_the_range_generated(world, month):
    extract, truth = month
    day = extract["returned_at"].dt.date.max()
    alone = extract[extract["returned_at"].dt.date == day]
    full = sample_returns.lp_cases(extract, truth, seed=1)
    assert sample_returns.lp_cases(alone, truth, seed=1).equals(
        full[full["return_id"].isin(alone["return_id"])].reset_index(drop=True))


def test_the_day_s_export_holds_the_cases_closed_that_day_and_passes_its_contract(world, month, tmp_path):
    extract, truth = month
    day = world.config.end_date
    cases = sample_returns.lp_cases(extract, truth, seed=1)
    path = sample_returns.write_lp_cases(str(tmp_path), day, cases)
    assert path.endswith(f"landing/returns_system/ds={day}/lp_cases.csv")
    written = pd.read_csv(path)
    assert len(written) == int((cases["closed_on"].dt.date == day).sum()) > 0
    assert (written["closed_on"] == day.isoformat()).all()
    later = sample_returns.write_lp_cases(str(tmp_path), day + dt.timedelta(days=30), cases)
    assert open(later).read() == "return_id,outcome,closed_on\n"  # a day without closed cases: a header only
    write_landing(world, str(tmp_path), days=[day])
    scope = {c: CONTRACTS[c] for c in ("suppliers", "locations", "items", "promotions", "lp_cases")}
    ingest_source("master", day, root=str(tmp_path), contracts=scope)
    [result] = ingest_source("returns_system", day, root=str(tmp_path), contracts=scope)
    assert result.outcome == PASSED and result.rows_passed == len(written)
    assert len(read_partition("curated", "lp_cases", day, str(tmp_path))) == len(written)


def test_confirmed_labels_keep_the_last_closing_of_a_line(tmp_path):
    from include.stages.returns import confirmed_labels
    from include.storage import write_partition

    day = dt.date(2026, 10, 30)
    for ds, rows in ((day - dt.timedelta(days=2), [("R1", "cleared"), ("R2", "confirmed_fraud")]),
                     (day, [("R1", "confirmed_fraud")])):
        frame = pd.DataFrame(rows, columns=["return_id", "outcome"]).assign(closed_on=pd.Timestamp(ds))
        write_partition(frame, "curated", "lp_cases", ds, str(tmp_path))
    labels = confirmed_labels(day - dt.timedelta(days=5), day, str(tmp_path)).set_index("return_id")["is_fraud"]
    assert labels.to_dict() == {"R1": True, "R2": True}
    assert confirmed_labels(day - dt.timedelta(days=5), day - dt.timedelta(days=1), str(tmp_path)).set_index(
        "return_id")["is_fraud"].to_dict() == {"R1": False, "R2": True}
    assert confirmed_labels(day + dt.timedelta(days=1), day + dt.timedelta(days=2), str(tmp_path)).empty


def test_proposals_carry_the_refund_the_routing_and_the_exception_codes():
    from include.returns.params import ACTIONS
    from include.stages.returns import proposals

    today = pd.DataFrame({"return_id": ["A", "B", "C"], "reason_code": ["size_fit", "changed_mind", "defective"],
                          "receipt_matched": [True, False, True], "refund_amount": [20.0, 500.0, 450.0]})
    routed = pd.DataFrame({
        "return_id": ["A", "B", "C"], "location_id": ["S1", "S2", "S1"], "sku": ["K1", "K2", "K3"],
        "quantity": [1, 2, 1], "condition_grade": ["A", "A", "D"],
        "action": pd.Categorical(["restock_as_new", "transfer_to", "return_to_vendor"], ACTIONS),
        "target_location_id": ["S1", "S3", None], "supplier_id": ["P1", "P2", "P3"],
        "unit_net_value": [15.0, 200.0, 5.0], "net_value": [15.0, 400.0, 5.0], "days_to_sell": [3.0, 9.0, 120.0],
        "hold_for_review": [False, True, True],
        "hold_reason": ["", "fraud score 0.91 >= 0.50; refund 500.00 >= 400.00", "refund 450.00 >= 400.00"],
        "explanation": ["restock_as_new at S1: ...", "transfer_to at S3: ...", "return_to_vendor: ..."],
        **{f"value_{a}": [1.0, 2.0, np.nan] for a in ACTIONS}})
    scored = pd.DataFrame({"return_id": ["A", "B", "C"], "fraud_score": [0.01, 0.91, 0.2],
                           "evidence": pd.Categorical(["none", "no_receipt;log_refund", "none"])})
    review = pd.DataFrame({"return_id": ["B"], "review_rank": [1], "review_reason": ["score 0.91 ..."]})
    out = proposals(routed, today, scored, review, "model")
    assert list(out["business_key"]) == ["return:A", "return:B", "return:C"]
    assert list(out["value"]) == [20.0, 500.0, 450.0] and list(out["unit_cost"]) == [20.0, 250.0, 450.0]
    assert list(out["from_location"]) == ["S1", "S2", "S1"]
    assert list(out["to_location"].isna()) == [False, False, True] and list(out["to_location"][:2]) == ["S1", "S3"]
    # The supplier takes only a return to vendor.
    assert list(out["supplier_id"].isna()) == [True, True, False] and out["supplier_id"].iloc[2] == "P3"
    a, b, c = out["explanation"]
    assert (a["exceptions"], b["exceptions"], c["exceptions"]) == ([], ["fraud_risk", "high_value"], ["high_value"])
    assert b["fraud_score"] == 0.91 and b["fraud_evidence"] == "no_receipt;log_refund" and b["review_rank"] == 1
    assert a["review_rank"] is None and c["options"]["liquidate"] is None and a["why"].startswith("restock_as_new")
    assert set(a) == set(b) == set(c)


def test_returned_units_are_priced_with_four_weeks_of_demand_at_the_stores_and_the_web_shops_fc(tmp_path):
    from include.stages.returns import DEMAND_DAYS, demand_with_stock
    from include.storage import write_partition

    root, day = str(tmp_path), dt.date(2026, 11, 20)
    steps = np.arange(1, 30)
    # The night of ``day`` forecasts from the next day on; the store's weekend peak is in the first two days.
    forecast = pd.concat([pd.DataFrame({"unique_id": uid, "step": steps, "mean": mean(steps), "sigma_cum": 1.0})
                          for uid, mean in (("S1|A", lambda s: np.where(s <= 2, 10.0, 1.0)),
                                            ("FC1|A", lambda s: np.full(len(s), 4.0)))], ignore_index=True)
    write_partition(forecast, "forecasts", "demand", day, root)
    write_partition(pd.DataFrame({"location_id": ["S1", "FC1", "DC1"], "location_type": ["store", "ecom_fc", "dc"]}),
                    "curated", "locations", day, root)
    write_partition(pd.DataFrame({"location_id": ["S1", "FC1", "FC1"], "sku": ["A", "A", "A"], "on_hand": [3, 5, 2]}),
                    "curated", "inventory_snapshot", day, root)
    demand = demand_with_stock(day, root).set_index("location_id")
    assert sorted(demand.index) == ["FC1", "S1"]  # mail returns land at the FC, which sells the web shop's demand
    assert demand.loc["S1", "mean_daily"] == pytest.approx((2 * 10 + (DEMAND_DAYS - 2)) / DEMAND_DAYS)
    assert demand.loc["FC1", "mean_daily"] == 4.0 and demand.loc["FC1", "on_hand"] == 7
    assert demand.attrs["store_split_weight"] is None  # no night four weeks back: the stores' own forecasts


def test_the_stores_forecasts_are_weighed_by_what_the_stores_sold_after_a_night_four_weeks_back(tmp_path):
    from include.returns.split import pooled_split
    from include.stages.returns import DEMAND_DAYS, demand_with_stock
    from include.storage import partition_path, write_partition

    root, day = str(tmp_path), dt.date(2026, 11, 20)
    start = day - dt.timedelta(days=DEMAND_DAYS)
    stores, skus = ["S1", "S2"], [f"K{i:02d}" for i in range(30)]
    rng = np.random.default_rng(5)
    rates = {(s, k): float(r) for (s, k), r in zip([(s, k) for s in stores for k in skus],
                                                   rng.gamma(2.0, 10.0, 2 * len(skus)), strict=True)}

    def night(origin: dt.date, scale: float) -> None:
        steps = np.arange(1, DEMAND_DAYS + 2)
        write_partition(pd.concat([pd.DataFrame({"unique_id": f"{s}|{k}", "step": steps, "mean": scale * r,
                                                 "sigma_cum": 1.0}) for (s, k), r in rates.items()],
                                  ignore_index=True), "forecasts", "demand", origin, root)

    night(start - dt.timedelta(days=1), 1.0)  # forecasts from ``start`` on
    night(day, 2.0)
    write_partition(pd.DataFrame({"location_id": [*stores, "FC1"], "location_type": ["store", "store", "ecom_fc"]}),
                    "curated", "locations", day, root)
    past = pd.DataFrame([(s, k, r) for (s, k), r in rates.items()], columns=["location_id", "sku", "mean_daily"])
    # Over those four weeks every store sold the item's split by store, not its own forecast.
    sold = past.assign(mean_daily=pooled_split(past, stores))
    for d in range(DEMAND_DAYS):
        write_partition(pd.DataFrame({"store_id": sold["location_id"], "sku": sold["sku"],
                                      "business_date": pd.Timestamp(start + dt.timedelta(days=d)),
                                      "units_sold": sold["mean_daily"].round().astype(int)}),
                        "curated", "pos_sales", start + dt.timedelta(days=d), root)
    demand = demand_with_stock(day, root)
    weight = demand.attrs["store_split_weight"]
    assert weight is not None and weight < 0.05  # what sold followed the split, not each store's own figure
    tonight = pd.DataFrame([(s, k, 2.0 * r) for (s, k), r in rates.items()], columns=past.columns)
    expected = weight * tonight["mean_daily"] + (1 - weight) * pooled_split(tonight, stores)
    assert demand.set_index(["location_id", "sku"])["mean_daily"].to_numpy() == pytest.approx(expected.to_numpy())
    # A day of those four weeks without sales: no weight, the stores' own forecasts.
    shutil.rmtree(partition_path("curated", "pos_sales", start + dt.timedelta(days=3), root))
    again = demand_with_stock(day, root)
    assert again.attrs["store_split_weight"] is None
    assert again["mean_daily"].to_numpy() == pytest.approx(tonight["mean_daily"].to_numpy())
