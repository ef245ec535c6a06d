"""The demo's summary says what each fill-rate target was planned at and how the forecast error was scaled."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))
import shelfwise  # noqa: E402 - scripts/ is not a package


def test_service_and_calibration_lines_read_the_decisions_summary():
    decisions = {
        "service": {"0.95": {"planned": 0.9612, "lost_vs_planned": 1.29},
                    "0.98": {"planned": 0.985, "lost_vs_planned": 1.333}},
        "calibration": {"intervals": 1200, "scales": {"cv 0-0.25": 1.31, "cv 0.25-0.5": 0.97}, "errors": {}},
    }
    service, calibration = shelfwise._service_lines(decisions)
    assert "0.95 -> 0.9612 (1.29)" in service and "0.98 -> 0.985 (1.333)" in service
    assert calibration == "Forecast error scaled from 1200 past intervals: cv 0-0.25 x1.31, cv 0.25-0.5 x0.97"


def test_a_night_without_history_says_the_error_is_not_scaled():
    lines = shelfwise._service_lines({"service": {}, "calibration": "none: 3 past intervals"})
    assert lines == ["Forecast error not scaled (none: 3 past intervals)"]
    assert shelfwise._service_lines({}) == []


def test_the_returns_part_says_what_was_routed_released_and_held():
    import returns_demo

    summaries = {
        "route_returns": {"returns": 149, "refunds": 5189.11, "scorer": "model", "confirmed_cases": 454,
                          "return_rate": 0.097, "actions": {"restock_as_new": 53, "return_to_vendor": 27},
                          "net_recovery": 3541.55, "recovery_rate": 0.682, "suppliers_taking_returns": 5,
                          "pending": 4, "held_fraud": 4, "held_high_value": 0},
        "classify_return_patterns": {"patterns": {"defect_surge": 2}},
        "release_within_policy": {"released": 145}}
    text = returns_demo.describe("2026-11-27", summaries, Path("/x/returns.log"))
    assert "149 line(s), refunds 5,189.11; fraud scored by the model (454 confirmed cases" in text
    assert "return rate over 7 days 9.7%" in text and "recovered 3,541.55 net (68.2% of the refunds)" in text
    assert "{'defect_surge': 2}" in text and "145 routine disposition(s) released; 4 held (4 for fraud risk" in text
    assert "Store demand: each store's own forecast (no night four weeks back" in text
    weighed = returns_demo.describe("2026-11-27", {**summaries, "route_returns": {
        **summaries["route_returns"], "store_split_weight": 0.04}}, Path("/x/r.log"))
    assert "each store's forecast at 4%, the item's split by store share at 96%" in weighed
    again = returns_demo.describe("2026-11-27", {**summaries, "release_within_policy": {"released": 0},
                                                 "stage_dispositions": {"kept_decided": 145}}, Path("/x/r.log"))
    assert "0 routine disposition(s) released (145 released by an earlier run and kept as they were)" in again
    assert returns_demo.describe("2026-11-27", {}, Path("/x/r.log")) == \
        "returns_routing did not route 2026-11-27; see /x/r.log"
