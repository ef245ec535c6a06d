"""ERP staging against the real PostgreSQL: idempotent batches, the status machine, audit immutability,
first-decision-wins, expiry and release."""

from __future__ import annotations

import datetime as dt
import threading
import uuid

import pandas as pd
import psycopg
import pytest

from include.erp import db
from include.erp.staging import (
    decide,
    decide_all_pending,
    expire_pending,
    idempotency_key,
    pending_count,
    release_approved,
    run_lines,
    stage_batch,
)

pytestmark = pytest.mark.integration
DS = dt.date(2026, 3, 14)


@pytest.fixture
def dag_id() -> str:
    """A DAG id of its own per test, so tests never see each other's lines."""
    return f"test_staging_{uuid.uuid4().hex[:10]}"


@pytest.fixture
def conn(erp_url):
    with db.connect(erp_url) as connection:
        db.migrate(connection)
        yield connection


def _lines(n: int = 4, *, qty: float = 10.0) -> pd.DataFrame:
    rows = []
    for i in range(n):
        doc = ("replenishment", "transfer", "po_exception")[i % 3]
        rows.append({
            "doc_type": doc, "business_key": f"key-{i}", "sku": f"SKU{i:05d}", "from_location": "DC01",
            "to_location": f"S{i:04d}", "supplier_id": "SUP001" if doc != "transfer" else None,
            "po_id": "PO1" if doc == "po_exception" else None, "po_line": i if doc == "po_exception" else None,
            "action": {"replenishment": "order", "transfer": "replenish", "po_exception": "expedite"}[doc],
            "quantity": qty + i, "unit_cost": 2.5, "value": (qty + i) * 2.5, "need_by": DS + dt.timedelta(days=3),
            "explanation": {"forecast_over_lead_time": 12.5, "anomalies": []}, "risk_tier": "low" if i % 2 else "medium",
            "tier_reasons": [] if i % 2 else ["medium_value"], "auto_approve": bool(i % 2),
        })
    return pd.DataFrame(rows)


def test_batch_is_staged_with_tiers_and_audited(conn, dag_id):
    result = stage_batch(conn, _lines(), dag_id=dag_id, run_id="run-1", ds=DS)
    assert (result.inserted, result.auto_approved, result.pending) == (4, 2, 2)
    lines = run_lines(conn, dag_id, DS)
    assert sorted(lines["status"]) == ["auto_approved", "auto_approved", "pending_approval", "pending_approval"]
    assert set(lines["idempotency_key"]) == {idempotency_key(dag_id, DS, d, f"key-{i}") for i, d in
                                             enumerate(("replenishment", "transfer", "po_exception",
                                                        "replenishment"))}
    actions = conn.execute("SELECT action, count(*) FROM erp_staging.audit_log WHERE dag_id=%s GROUP BY action",
                           (dag_id,)).fetchall()
    assert dict(actions) == {"proposed": 4, "tiered": 4}


def test_rerun_replaces_undecided_keeps_decided_and_withdraws_stale(conn, dag_id):
    stage_batch(conn, _lines(), dag_id=dag_id, run_id="run-1", ds=DS)
    pending = run_lines(conn, dag_id, DS).query("status == 'pending_approval'")
    first = pending.iloc[0]
    decide(conn, first["doc_type"], [int(first["line_id"])], approve=True, user="planner")
    changed = _lines(3, qty=99.0)  # key-3 no longer proposed; quantities changed
    result = stage_batch(conn, changed, dag_id=dag_id, run_id="run-2", ds=DS)
    assert result.unchanged_decided == 1
    assert result.withdrawn == 1
    after = run_lines(conn, dag_id, DS).set_index("business_key")
    assert list(after.index.sort_values()) == ["key-0", "key-1", "key-2"]
    decided = after.loc[first["business_key"]]
    assert decided["status"] == "approved" and float(decided["quantity"]) == float(first["quantity"])
    others = after.drop(index=first["business_key"])
    assert sorted(others["quantity"].astype(float)) == sorted(
        float(q) for k, q in zip(changed["business_key"], changed["quantity"], strict=True)
        if k != first["business_key"])
    # A third identical run changes nothing at all.
    again = stage_batch(conn, changed, dag_id=dag_id, run_id="run-3", ds=DS)
    assert (again.inserted, again.withdrawn) == (0, 0)
    assert len(run_lines(conn, dag_id, DS)) == 3


def test_batch_is_all_or_nothing(conn, dag_id):
    bad = _lines()
    bad.loc[3, "quantity"] = -5  # refused by the table's CHECK constraint
    with pytest.raises(psycopg.errors.CheckViolation):
        stage_batch(conn, bad, dag_id=dag_id, run_id="run-1", ds=DS)
    assert len(run_lines(conn, dag_id, DS)) == 0


def test_illegal_transition_is_refused_by_the_database(conn, dag_id):
    stage_batch(conn, _lines(2), dag_id=dag_id, run_id="run-1", ds=DS)
    line = run_lines(conn, dag_id, DS).query("status == 'pending_approval'").iloc[0]
    with pytest.raises(psycopg.errors.CheckViolation) as err, conn.transaction():
        conn.execute("UPDATE erp_staging.replenishment_order_lines SET status='released' WHERE line_id=%s",
                     (int(line["line_id"]),))
    assert f"illegal status transition for line {int(line['line_id'])}" in str(err.value)
    assert "pending_approval -> released" in str(err.value)


def test_audit_log_refuses_update_delete_and_truncate(conn, dag_id):
    stage_batch(conn, _lines(1), dag_id=dag_id, run_id="run-1", ds=DS)
    for statement in ("UPDATE erp_staging.audit_log SET actor='someone' WHERE dag_id=%s",
                      "DELETE FROM erp_staging.audit_log WHERE dag_id=%s"):
        with pytest.raises(psycopg.errors.InsufficientPrivilege) as err, conn.transaction():
            conn.execute(statement, (dag_id,))
        assert "append-only" in str(err.value)
    with pytest.raises(psycopg.errors.InsufficientPrivilege), conn.transaction():
        conn.execute("TRUNCATE erp_staging.audit_log")


def test_first_decision_stands_under_concurrency(erp_url, conn, dag_id):
    stage_batch(conn, _lines(1), dag_id=dag_id, run_id="run-1", ds=DS)
    line = run_lines(conn, dag_id, DS).iloc[0]
    results: dict[str, dict] = {}
    barrier = threading.Barrier(2)

    def planner(name: str, approve: bool) -> None:
        with db.connect(erp_url) as own:
            barrier.wait()
            results[name] = decide(own, line["doc_type"], [int(line["line_id"])], approve=approve, user=name)

    threads = [threading.Thread(target=planner, args=("alice", True)),
               threading.Thread(target=planner, args=("bob", False))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    winners = [n for n, r in results.items() if r["decided"]]
    losers = [n for n, r in results.items() if r["already_decided"]]
    assert len(winners) == 1 and len(losers) == 1
    final = run_lines(conn, dag_id, DS).iloc[0]
    assert final["decided_by"] == winners[0]
    assert final["status"] == ("approved" if winners[0] == "alice" else "rejected")
    decisions = conn.execute("SELECT actor FROM erp_staging.audit_log WHERE dag_id=%s AND action IN "
                             "('approved', 'rejected')", (dag_id,)).fetchall()
    assert [d[0] for d in decisions] == winners


def test_expiry_and_release(conn, dag_id):
    stage_batch(conn, _lines(4), dag_id=dag_id, run_id="run-1", ds=DS)
    assert pending_count(conn, dag_id, DS) == 2
    assert expire_pending(conn, dag_id, DS, reason="gate timed out") == 2
    assert pending_count(conn, dag_id, DS) == 0
    released = release_approved(conn, dag_id, DS, run_id="run-1")
    assert sum(released.values()) == 2
    statuses = run_lines(conn, dag_id, DS)["status"].value_counts().to_dict()
    assert statuses == {"expired": 2, "released": 2}
    # Released and expired lines can no longer be decided.
    assert decide_all_pending(conn, dag_id, DS, approve=True, user="planner") == 0
    ids = run_lines(conn, dag_id, DS)
    expired = ids[ids["status"] == "expired"].iloc[0]
    out = decide(conn, expired["doc_type"], [int(expired["line_id"])], approve=True, user="planner")
    assert out == {"decided": [], "already_decided": [int(expired["line_id"])], "unknown": []}


def test_migrations_are_idempotent(conn):
    assert db.migrate(conn) == []
    versions = conn.execute("SELECT version FROM ops.schema_migrations ORDER BY version").fetchall()
    assert [v[0] for v in versions] == [1]
