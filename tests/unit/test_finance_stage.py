"""The finance review's proposals carry the unusual-refund pattern returns_routing found at the item's location."""

from __future__ import annotations

import datetime as dt

import pandas as pd

from include.stages.finance import proposals, refund_patterns

DAY = dt.date(2026, 11, 27)


def _pattern(pattern: str, key: str, z: float, evidence: str) -> dict:
    return {"pattern": pattern, "key": key, "owner": "finance", "supplier_id": None, "recent_returns": 9,
            "expected_returns": 2.0, "ratio": 4.5, "z_score": z, "evidence": evidence}


def _item(location: str, cause: str) -> dict:
    return {"business_key": f"finance:Audio|store|{location}|{cause}", "category": "Audio", "channel": "store",
            "location_id": location, "cause": cause, "owner": "finance", "explanation": "why",
            "projected_loss": 400.0, "excess": 120.0, "robust_z": 5.2, "needs_manager": False,
            "start": pd.Timestamp(DAY), "evidence": {}}


def test_a_refunds_item_carries_the_strongest_unusual_refund_pattern_of_its_location():
    days = pd.DataFrame([_pattern("store_unusual_refunds", "S1", 4.5, "S1: weaker"),
                         _pattern("store_unusual_refunds", "S1", 8.0, "S1: 9 of 40 refunds above the sale price"),
                         _pattern("store_unusual_refunds", "S2", 5.0, "S2: 6 of 30"),
                         _pattern("defect_surge", "B1", 9.0, "batch B1")])
    refunds = refund_patterns(days)
    assert refunds == {"S1": "S1: 9 of 40 refunds above the sale price", "S2": "S2: 6 of 30"}
    assert refund_patterns(pd.DataFrame()) == {}
    items = pd.DataFrame([_item("S1", "returns_refunds"), _item("S1", "shrink"), _item("S3", "returns_refunds")])
    said = [e["return_pattern"] for e in proposals(items, DAY, refunds)["explanation"]]
    assert said == ["S1: 9 of 40 refunds above the sale price", None, None]
    assert [e["return_pattern"] for e in proposals(items, DAY)["explanation"]] == [None, None, None]
