"""The executive dashboard's reads against PostgreSQL: KPI history as the nightly records it, and what became
of the lines staged for each night (``include.erp.kpis`` through ``include.reporting.dashboard``)."""

from __future__ import annotations

import datetime as dt
import math

import pandas as pd
import pytest

from include.erp.staging import decide, expire_pending, record_kpis, release_approved, run_lines, stage_batch
from include.governance.policy import load_policy, tier_proposals
from include.reporting.dashboard import EFFECT_COLUMNS, decision_effect, load_history

FIRST = dt.date(2026, 4, 1)




def _night(i: int, *, degraded: bool = False) -> dict:
    """The KPI document of night ``i`` as the nightly records it (nested sections, a gap on night 2)."""
    kpis = {"fill_rate": 0.90 + i / 100, "inventory_turns": 6.0 + i,
            "orchestration": {"ran": True, "fulfilment_cost_per_order": 11.0 - i / 10},
            "degraded": degraded, "stale_sources": {"promotions": str(FIRST)} if degraded else {}}
    if i == 2:
        del kpis["fill_rate"]
    return kpis


def test_history_is_read_per_dag_and_period_oldest_night_first(conn, dag_id):
    for i in range(6):
        record_kpis(conn, dag_id, FIRST + dt.timedelta(days=i), _night(i, degraded=i in (1, 4)))
    record_kpis(conn, f"{dag_id}_other", FIRST, {"fill_rate": 0.1})
    record_kpis(conn, dag_id, FIRST + dt.timedelta(days=5), _night(5))  # a re-run replaces its night

    history = load_history(conn, dag_id=dag_id)
    assert [d.date() for d in history["ds"]] == [FIRST + dt.timedelta(days=i) for i in range(6)]
    assert history["degraded"].tolist() == [False, True, False, False, True, False]
    assert history.loc[4, "stale_sources"] == {"promotions": str(FIRST)} and history.loc[0, "stale_sources"] == {}
    assert history.loc[0, "fill_rate"] == pytest.approx(0.90) and math.isnan(history.loc[2, "fill_rate"])
    assert history["orchestration.fulfilment_cost_per_order"].tolist() == pytest.approx(
        [11.0, 10.9, 10.8, 10.7, 10.6, 10.5])
    assert history["inventory_turns"].iloc[-1] == 11.0

    newest = load_history(conn, dag_id=dag_id, nights=2)
    assert [d.date() for d in newest["ds"]] == [FIRST + dt.timedelta(days=4), FIRST + dt.timedelta(days=5)]
    window = load_history(conn, dag_id=dag_id, since=FIRST + dt.timedelta(days=1), until=FIRST + dt.timedelta(days=3))
    assert [d.date().day for d in window["ds"]] == [2, 3, 4]
    assert len(load_history(conn, dag_id=f"{dag_id}_none")) == 0


def _line(doc_type: str, key: str, value: float, *, exceptions: tuple[str, ...] = ()) -> dict:
    return {"doc_type": doc_type, "business_key": key, "sku": "SKU00001", "from_location": None,
            "to_location": "DC01", "supplier_id": "SUP001", "po_id": None, "po_line": None,
            "action": "review" if doc_type == "finance_review" else "order", "quantity": value / 10.0,
            "unit_cost": 10.0, "value": value, "need_by": FIRST + dt.timedelta(days=9),
            "explanation": {"mean_daily_forecast": 5.0, "lead_time_days": 7.0, "on_hand": 100.0,
                            "exceptions": list(exceptions), "anomalies": []}}


def _stage(conn, dag_id: str, ds: dt.date, lines: list[dict]) -> dict[str, tuple[str, int]]:
    """Stage ``lines`` for ``ds``; returns business key -> (doc_type, line_id)."""
    stage_batch(conn, tier_proposals(pd.DataFrame(lines), load_policy()), dag_id=dag_id, run_id=f"r-{ds}", ds=ds)
    staged = run_lines(conn, dag_id, ds)
    return {r.business_key: (r.doc_type, int(r.line_id)) for r in staged.itertuples()}


def test_decision_effect_counts_each_nights_outcomes_across_document_types(conn, dag_id):
    night1, night2 = FIRST, FIRST + dt.timedelta(days=1)
    one = _stage(conn, dag_id, night1, [_line("replenishment", "auto", 100.0), _line("replenishment", "ok", 3000.0),
                                       _line("replenishment", "no", 3000.0), _line("replenishment", "late", 3000.0)])
    two = _stage(conn, dag_id, night2, [_line("replenishment", "wait", 3000.0),
                                       _line("finance_review", "margin", 500.0, exceptions=("margin_anomaly",))])
    statuses = run_lines(conn, dag_id, night1).set_index("business_key")["status"].to_dict()
    assert statuses == {"auto": "auto_approved", "ok": "pending_approval", "no": "pending_approval",
                        "late": "pending_approval"}
    decide(conn, *_ids(one, "ok"), approve=True, user="planner")
    decide(conn, *_ids(one, "no"), approve=False, user="planner", note="over-ordered")
    release_approved(conn, dag_id, night1, run_id="release")
    expire_pending(conn, dag_id, night1, reason="the gate timed out")
    decide(conn, *_ids(two, "margin"), approve=True, user="finance")

    effect = decision_effect(conn, night1, night2 + dt.timedelta(days=5), dag_id=dag_id)
    assert list(effect.columns) == list(EFFECT_COLUMNS)
    rows = effect.set_index(effect["ds"].dt.date).drop(columns="ds").to_dict("index")
    assert rows == {
        night1: {"approved": 2.0, "auto_approved": 1.0, "rejected": 1.0, "expired": 1.0, "pending": 0.0,
                 "released": 2.0, "value_released": 3100.0},
        night2: {"approved": 1.0, "auto_approved": 0.0, "rejected": 0.0, "expired": 0.0, "pending": 1.0,
                 "released": 0.0, "value_released": 0.0},
    }
    only_first = decision_effect(conn, night1, night1, dag_id=dag_id)
    assert only_first["ds"].dt.date.tolist() == [night1]
    _stage(conn, f"{dag_id}_b", night2, [_line("replenishment", "elsewhere", 3000.0)])
    every_dag = decision_effect(conn, night2, night2)
    assert len(every_dag) == 1 and every_dag["pending"].iloc[0] >= 2.0  # another workflow's line counts too
    assert decision_effect(conn, dt.date(1999, 1, 1), dt.date(1999, 1, 2), dag_id=dag_id).empty


def _ids(staged: dict[str, tuple[str, int]], key: str) -> tuple[str, list[int]]:
    doc_type, line_id = staged[key]
    return doc_type, [line_id]
