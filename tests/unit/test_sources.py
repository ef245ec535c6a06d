"""The other sources a line offers its approver: alternate suppliers of an order, other DCs of a transfer."""

from __future__ import annotations

import pandas as pd

from include.decisions.sources import with_source_options

LOCATIONS = pd.DataFrame({
    "location_id": ["DC1", "DC2", "DC3", "DC4", "S1", "S2"],
    "location_type": ["dc", "dc", "dc", "dc", "store", "store"],
    "region": ["A", "A", "B", "A", "A", "A"],
})
INVENTORY = pd.DataFrame({
    "location_id": ["DC1", "DC2", "DC3", "DC4", "S2", "DC2"],
    "sku": ["K1", "K1", "K1", "K1", "K1", "K2"],
    "on_hand": [100.0, 12.0, 50.0, 3.0, 90.0, 40.0],
    "allocated": [0.0, 2.0, 0.0, 0.0, 0.0, None],
})
ALTERNATES = pd.DataFrame({
    "sku": ["K1"] * 5,
    "supplier_id": ["SUP5", "SUP2", "SUP3", "SUP4", "SUP6"],
    "unit_cost": [9.0, 4.25, 4.5, 5.0, 4.0],
    "lead_time_days": [3, 7, 5, 9, 2],
    "moq_units": [0, 24, 0, 12, 0],
    "case_pack": [1, 6, 1, 12, 1],
    "reliability": [80.0, 90.0, float("nan"), 70.0, 60.0],
    "rank": [4, 1, 2, 3, 5],
})


def _lines() -> pd.DataFrame:
    return pd.DataFrame([
        {"doc_type": "replenishment", "sku": "K1", "supplier_id": "SUP1", "from_location": None, "to_location": "DC1",
         "quantity": 48.0, "explanation": {"safety_stock": 3.0}},
        {"doc_type": "transfer", "sku": "K1", "supplier_id": None, "from_location": "DC1", "to_location": "S1",
         "quantity": 5.0, "explanation": {"safety_stock": 1.0}},
        {"doc_type": "transfer", "sku": "K1", "supplier_id": None, "from_location": "DC1", "to_location": "S1",
         "quantity": 80.0, "explanation": {}},
        {"doc_type": "po_exception", "sku": "K1", "supplier_id": "SUP1", "from_location": None, "to_location": "DC1",
         "quantity": 10.0, "explanation": {"lost_units": 4}},
    ])


def test_an_order_offers_the_best_ranked_alternates_with_what_sets_them_apart():
    out = with_source_options(_lines(), alternates=ALTERNATES, inventory=INVENTORY, locations=LOCATIONS)
    options = out.loc[0, "explanation"]["source_options"]
    assert [o["supplier_id"] for o in options] == ["SUP2", "SUP3", "SUP4"]
    assert options[0] == {"supplier_id": "SUP2", "unit_cost": 4.25, "lead_time_days": 7, "moq_units": 24,
                          "case_pack": 6, "reliability": 90.0}
    assert options[1]["reliability"] is None  # no scorecard: no number, not NaN
    assert out.loc[0, "explanation"]["safety_stock"] == 3.0


def test_an_order_from_an_alternate_does_not_offer_its_own_supplier():
    lines = _lines().iloc[[0]].assign(supplier_id="SUP2")
    options = with_source_options(lines, alternates=ALTERNATES, inventory=INVENTORY,
                                  locations=LOCATIONS).iloc[0]["explanation"]["source_options"]
    assert [o["supplier_id"] for o in options] == ["SUP3", "SUP4", "SUP5"]


def test_a_transfer_offers_the_dcs_whose_free_stock_covers_it_its_region_first():
    out = with_source_options(_lines(), alternates=ALTERNATES, inventory=INVENTORY, locations=LOCATIONS)
    # DC1 is the proposed source, DC4 has 3 free, the store S2 is no DC; DC2 (10 free, region A) before DC3.
    assert out.loc[1, "explanation"]["source_options"] == [
        {"from_location": "DC2", "region": "A", "free_stock": 10.0},
        {"from_location": "DC3", "region": "B", "free_stock": 50.0}]
    assert "source_options" not in out.loc[2, "explanation"]  # no other DC holds 80
    assert "source_options" not in out.loc[3, "explanation"]  # a PO exception moves or splits on its own


def test_without_alternates_or_stock_lines_are_left_as_they_are():
    lines = _lines()
    out = with_source_options(lines, alternates=None, inventory=INVENTORY.iloc[:0], locations=LOCATIONS)
    assert out["explanation"].tolist() == lines["explanation"].tolist()
    assert with_source_options(lines.iloc[:0], alternates=ALTERNATES, inventory=INVENTORY,
                               locations=LOCATIONS).empty
