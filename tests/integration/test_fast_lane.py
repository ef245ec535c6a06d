"""The fast lane on the real PostgreSQL: a critical line is released while the rest of its batch waits,
an approved one as soon as it is decided, and one nobody decides is escalated once, in the audit trail."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest

from include.erp.approvals import LineFilter, approver, decide_lines, list_pending
from include.erp.escalation import due_escalations, escalate
from include.erp.scorecards import record_scorecards
from include.erp.staging import FAST_LANE_NOTE, pending_count, run_lines, stage_batch
from include.governance.policy import load_policy, tier_proposals
from tests.worlds import clear_run_lines

pytestmark = pytest.mark.integration
DS = dt.date(2026, 3, 15)




def _order(i: int, qty: float, unit_cost: float, on_hand: float) -> dict:
    """A replenishment order of SKU ``i``: 5 a day, 7 days of lead time, ``on_hand`` units left."""
    return {"doc_type": "replenishment", "business_key": f"order:SUP001>DC01:SKU{i:05d}", "sku": f"SKU{i:05d}",
            "from_location": None, "to_location": "DC01", "supplier_id": "SUP001", "po_id": None, "po_line": None,
            "action": "order", "quantity": qty, "unit_cost": unit_cost, "value": qty * unit_cost,
            "need_by": DS + dt.timedelta(days=7),
            "explanation": {"on_hand": on_hand, "in_transit": 0.0, "allocated": 0.0, "backorders": 0.0,
                            "mean_daily_forecast": 5.0, "lead_time_days": 7.0, "usual_quantity": qty, "anomalies": []}}


def _batch() -> pd.DataFrame:
    lines = pd.DataFrame([
        _order(1, 80, 8.0, on_hand=10),    # 640: low tier, critical (2 days of cover, 7 of lead time)
        _order(2, 80, 8.0, on_hand=100),   # 640: low tier, not critical (20 days of cover)
        _order(3, 200, 40.0, on_hand=10),  # 8,000: high tier, critical, waits for a manager
        _order(4, 200, 40.0, on_hand=100), # 8,000: high tier, not critical
    ])
    return tier_proposals(lines, load_policy())


def _by_sku(conn, dag_id: str) -> dict[str, pd.Series]:
    return {r["sku"]: r for _, r in run_lines(conn, dag_id, DS).iterrows()}


def test_a_critical_line_is_released_while_the_rest_of_its_batch_waits(conn, dag_id):
    batch = _batch()
    assert batch["critical"].tolist() == [True, False, True, False]
    assert batch["auto_approve"].tolist() == [True, True, False, False]

    result = stage_batch(conn, batch, dag_id=dag_id, run_id="run-1", ds=DS, fast_lane=True)
    assert result.fast_lane_released == 1
    lines = _by_sku(conn, dag_id)
    assert lines["SKU00001"]["status"] == "released"       # critical, within policy: at once
    assert lines["SKU00002"]["status"] == "auto_approved"  # within policy, released with its batch
    assert {lines["SKU00003"]["status"], lines["SKU00004"]["status"]} == {"pending_approval"}
    assert pending_count(conn, dag_id, DS) == 2
    note = conn.execute("SELECT note FROM erp_staging.audit_log WHERE idempotency_key=%s AND action='released'",
                        (lines["SKU00001"]["idempotency_key"],)).fetchone()[0]
    assert note == FAST_LANE_NOTE

    # The approval page lists the critical pending line first, although both are high tier of equal value, and
    # shows the supplier's newest scorecard beside each line.
    record_scorecards(conn, pd.DataFrame([{"supplier_id": "SUP001", "lines_due": 20, "otif": 0.85, "reliability": 72.5,
                                           "lead_time_mean": 9.25, "lead_time_p90": 12.0}]), pd.DataFrame(),
                      week_end=DS, dag_id="supplier_scorecards", run_id="week")
    policy = load_policy()
    # This run's lines only: the test database keeps other tests' pending lines of later nights, whose newest
    # supplier scorecards (as of their own night) are not this night's.
    mine = list_pending(conn, LineFilter(dag_id=dag_id), user=approver("boss", ["op"], policy))
    assert [line["sku"] for line in mine] == ["SKU00003", "SKU00004"]
    assert mine[0]["supplier_card"]["reliability"] == 72.5 and mine[0]["supplier_card"]["otif"] == 0.85
    assert mine[0]["supplier_card"]["week_end"] == DS.isoformat()

    # Approved, the critical line goes to the ERP with its decision; the other approved line waits for release.
    manager = approver("boss", ["op"], policy)
    decide_lines(conn, manager, [("replenishment", int(lines[s]["line_id"])) for s in ("SKU00003", "SKU00004")],
                 approve=True, note=None)
    lines = _by_sku(conn, dag_id)
    assert lines["SKU00003"]["status"] == "released"
    assert lines["SKU00004"]["status"] == "approved"
    seconds = conn.execute("SELECT extract(epoch FROM released_at - decided_at) FROM"
                           " erp_staging.replenishment_order_lines WHERE line_id=%s",
                           (int(lines["SKU00003"]["line_id"]),)).fetchone()[0]
    assert float(seconds) < 1.0
    # The ERP's view shows the released critical lines and nothing else of the batch.
    released = conn.execute("SELECT count(*) FROM erp_staging.all_lines WHERE dag_id=%s AND status='released'",
                            (dag_id,)).fetchone()[0]
    assert released == 2


def test_a_pending_critical_line_is_escalated_once_and_recorded(conn, dag_id):
    stage_batch(conn, _batch(), dag_id=dag_id, run_id="run-1", ds=DS, fast_lane=True)
    # Not yet due: staged a moment ago, escalated after 15 minutes.
    assert due_escalations(conn, dag_id, DS, after_minutes=15) == []
    due = due_escalations(conn, dag_id, DS, after_minutes=0)
    assert [line["sku"] for line in due] == ["SKU00003"]
    lines, message = escalate(conn, dag_id, DS, after_minutes=0, channel="log", recipients=("supply-chain-manager",))
    assert [line["sku"] for line in lines] == ["SKU00003"]
    assert "1 critical line(s)" in message and "supply-chain-manager" in message
    assert "2.0 days of cover, 7 days of lead time" in message
    trail = conn.execute("SELECT action, note, details->>'channel' FROM erp_staging.audit_log"
                         " WHERE idempotency_key=%s AND action='escalated'", (lines[0]["idempotency_key"],)).fetchall()
    assert trail == [("escalated", "critical line undecided after 0 min", "log")]
    # Escalated once: the next look finds nothing due.
    assert escalate(conn, dag_id, DS, after_minutes=0, channel="log") == ([], "")
    # Deleted and staged afresh under the same key, it is a new line that waits again: escalated again.
    conn.commit()
    clear_run_lines(dag_id, DS)
    stage_batch(conn, _batch(), dag_id=dag_id, run_id="run-2", ds=DS, fast_lane=True)
    assert [line["sku"] for line in due_escalations(conn, dag_id, DS, after_minutes=0)] == ["SKU00003"]
