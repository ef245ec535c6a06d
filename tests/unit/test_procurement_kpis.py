"""Procurement KPIs on hand-worked cases: cycle time, the OTIF trend, late POs flagged early or late."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest

from include.reporting.procurement_kpis import late_po_lines, procurement_kpis, procurement_report_lines

DAY = dt.date(2026, 11, 27)
T0 = pd.Timestamp("2026-11-27T02:00:00Z")


def _line(doc: str, status: str, staged_minutes: float, critical: bool = False) -> dict:
    created = T0
    released = T0 + pd.Timedelta(minutes=staged_minutes) if status == "released" else None
    return {"doc_type": doc, "status": status, "created_at": created, "released_at": released,
            "explanation": {"critical": True} if critical else {}}


def _lines() -> pd.DataFrame:
    return pd.DataFrame([
        _line("replenishment", "released", 120), _line("replenishment", "released", 240),
        _line("po_exception", "released", 0.25, critical=True), _line("replenishment", "pending_approval", 0, True),
        _line("transfer", "released", 600),  # not a buying line
    ])


def _cards() -> pd.DataFrame:
    weeks = [DAY - dt.timedelta(weeks=k) for k in (4, 0)]
    return pd.DataFrame([
        {"supplier_id": "SUP001", "week_end": weeks[0], "lines_due": 10, "otif": 0.9},
        {"supplier_id": "SUP002", "week_end": weeks[0], "lines_due": 30, "otif": 0.8},
        {"supplier_id": "SUP001", "week_end": weeks[1], "lines_due": 10, "otif": 0.5},
        {"supplier_id": "SUP002", "week_end": weeks[1], "lines_due": 30, "otif": 0.9},
    ])


def test_cycle_time_counts_buying_lines_and_the_fast_lane_apart():
    k = procurement_kpis(_lines(), pd.DataFrame(), pd.DataFrame(columns=["business_key", "promised_date"]),
                         pd.DataFrame())
    # Released buying lines took 2 h, 4 h and 15 s: median 2 h.
    assert k["lines_released"] == 3 and k["cycle_hours_median"] == 2.0
    assert k["critical_released"] == 1 and k["critical_release_seconds_max"] == 15.0
    assert k["critical_pending"] == 1


def test_otif_is_weighted_by_lines_due_and_its_trend_names_who_fell():
    k = procurement_kpis(pd.DataFrame(columns=["doc_type"]), _cards(), pd.DataFrame(), pd.DataFrame())
    # Four weeks ago (9 + 24) / 40 = 0.825; now (5 + 27) / 40 = 0.8.
    assert k["otif"] == 0.8 and k["otif_change"] == pytest.approx(-0.025)
    assert k["otif_falling"] == [{"supplier_id": "SUP001", "otif": 0.5, "change": -0.4}]


def test_late_lines_are_split_by_when_they_were_first_flagged():
    pos = pd.DataFrame({"po_id": ["P1", "P2", "P3", "P4"], "po_line": [1, 1, 1, 1],
                        "promised_date": ["2026-11-10", "2026-11-12", "2026-11-14", "2026-11-20"]})
    receipts = pd.DataFrame({"po_id": ["P1", "P2", "P3", "P4"], "po_line": [1, 1, 1, 1],
                             "received_date": ["2026-11-15", "2026-11-16", "2026-11-20", "2026-11-19"]})
    late = late_po_lines(pos, receipts, DAY)
    assert late["business_key"].tolist() == ["po:P1-1", "po:P2-1", "po:P3-1"]  # P4 arrived early
    flags = pd.DataFrame({"business_key": ["po:P1-1", "po:P2-1"],
                          "first_ds": [dt.date(2026, 11, 3), dt.date(2026, 11, 13)]})
    k = procurement_kpis(pd.DataFrame(columns=["doc_type"]), pd.DataFrame(), late, flags)
    assert (k["late_po_lines"], k["late_flagged_early_share"], k["late_flagged_late_share"],
            k["late_missed_share"]) == (3, 0.3333, 0.3333, 0.3333)
    text = "\n".join(procurement_report_lines({"procurement": k}))
    assert "## Procurement" in text and "flagged before the promised date 33.3%" in text
