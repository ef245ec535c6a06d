"""Explained return anomalies: the injected defect batch and ring store are found with their owners, a
hand-built online jump is explained, and steady returns raise nothing."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from include.returns.params import OWNER_FINANCE, OWNER_MERCHANDISING, OWNER_SUPPLIER_QUALITY
from include.returns.patterns import (
    ANOMALY_COLUMNS,
    classify_patterns,
    return_profile,
    supplier_defect_surges,
)
from include.sample_data import returns as sample_returns
from include.sample_data.generator import PRESETS, generate_world

TODAY = dt.date(2026, 5, 31)
ITEMS = pd.DataFrame({"sku": ["K1", "K2"], "category": ["Audio", "Knitwear"], "supplier_id": ["SUPA", "SUPB"]})


@pytest.fixture(scope="module")
def generated():
    world = generate_world(PRESETS["small"])
    extract, truth = sample_returns.returns_detail(world, 56, seed=4,
                                                   config=sample_returns.ReturnsConfig(returns_per_day=300))
    return world, extract, truth


def test_the_defect_batch_and_the_ring_store_are_found_with_owners(generated):
    world, extract, truth = generated
    found = classify_patterns(extract, world.config.end_date, world.items)
    assert list(found.columns) == list(ANOMALY_COLUMNS)
    pattern = truth["pattern"].astype(str).to_numpy()
    batch = extract.loc[pattern == "defect_batch", "supplier_batch_id"].astype(str).iat[0]
    defects = found[found["pattern"] == "defect_surge"]
    assert batch in set(defects["key"]) and set(defects["owner"]) == {OWNER_SUPPLIER_QUALITY}
    batch_skus = extract.loc[extract["supplier_batch_id"].astype(str) == batch, "sku"].astype(str)
    supplier = world.items.set_index("sku").loc[batch_skus.mode().iat[0], "supplier_id"]
    assert set(defects.loc[defects["key"] == batch, "supplier_id"]) == {supplier}
    assert found.loc[found["pattern"] != "defect_surge", "supplier_id"].isna().all()
    cards = supplier_defect_surges(found).set_index("supplier_id")
    assert cards.loc[supplier, "defect_surge_batches"] >= 1
    ring = extract.loc[pattern == "return_ring", "location_id"].astype(str).value_counts().index[0]
    refunds = found[found["pattern"] == "store_unusual_refunds"]
    assert refunds["key"].iat[0] == ring and refunds["owner"].iat[0] == OWNER_FINANCE
    assert "above the sale price" in refunds["evidence"].iat[0]
    assert found["z_score"].is_monotonic_decreasing


def _lines(day, n, sku="K1", channel="web", reason="changed_mind", loc="S1", batch="SUPA-W01"):
    when = pd.Timestamp(day) + pd.Timedelta(hours=12)
    return pd.DataFrame({"returned_at": [when] * n, "sku": sku, "purchase_channel": channel, "return_channel": "mail",
                         "location_id": loc, "quantity": 1, "unit_price": 10.0, "refund_amount": 10.0,
                         "reason_code": reason, "supplier_batch_id": batch})


def steady(days=56):
    return pd.concat([_lines(TODAY - dt.timedelta(days=d), 2, sku=s, loc=loc)
                      for d in range(days) for s in ("K1", "K2") for loc in ("S1", "S2")], ignore_index=True)


def test_steady_returns_raise_nothing():
    assert classify_patterns(steady(), TODAY, ITEMS).empty


def test_an_online_return_jump_is_explained_with_the_reason_that_grew():
    jump = pd.concat([steady()] + [_lines(TODAY - dt.timedelta(days=d), 8, sku="K2", reason="not_as_described")
                                   for d in range(5)], ignore_index=True)
    found = classify_patterns(jump, TODAY, ITEMS)
    row = found[found["pattern"] == "online_return_jump"].iloc[0]
    assert row["key"] == "K2" and row["owner"] == OWNER_MERCHANDISING
    assert row["recent_returns"] == 28 + 40 and row["expected_returns"] == 28.0
    assert "not_as_described" in row["evidence"] and set(found["key"]) == {"K2"}


def test_the_profile_compares_own_history_and_peers():
    frame = pd.concat([steady(), _lines(TODAY, 10, sku="K1", loc="S1", reason="size_fit")], ignore_index=True)
    profile = return_profile(frame, TODAY)
    row = profile[(profile["sku"] == "K1") & (profile["location_id"] == "S1")].iloc[0]
    assert row["recent_per_day"] == pytest.approx((14 + 10) / 7)
    assert row["baseline_per_day"] == pytest.approx(2.0)
    assert row["peer_per_day"] == pytest.approx(2.0) and row["ratio_peers"] == pytest.approx(24 / 14)
    assert row["share_size_fit"] == pytest.approx(10 / 24)
    assert np.isclose(profile.filter(like="share_").sum(axis=1), 1.0).all()


def test_defect_surges_are_counted_per_supplier_across_days_with_the_strongest_evidence():
    def row(key, supplier, z):
        return {"pattern": "defect_surge", "key": key, "owner": OWNER_SUPPLIER_QUALITY, "supplier_id": supplier,
                "recent_returns": 9, "expected_returns": 2.0, "ratio": 4.5, "z_score": z, "evidence": f"batch {key}"}

    days = pd.DataFrame([row("B1", "SUPA", 5.0), row("B1", "SUPA", 6.5), row("B2", "SUPA", 4.2),
                         row("B9", "SUPB", 7.0),
                         {**row("S3", None, 9.0), "pattern": "store_unusual_refunds", "owner": OWNER_FINANCE}])
    out = supplier_defect_surges(days)
    assert out.to_dict("records") == [
        {"supplier_id": "SUPA", "defect_surge_batches": 2, "defect_surge_evidence": "batch B1"},
        {"supplier_id": "SUPB", "defect_surge_batches": 1, "defect_surge_evidence": "batch B9"}]
    assert supplier_defect_surges(pd.DataFrame()).empty
    assert supplier_defect_surges(days[days["pattern"] != "defect_surge"]).empty
