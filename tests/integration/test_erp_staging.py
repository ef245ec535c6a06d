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
from include.erp.line_tables import TABLES
from include.erp.staging import (
    decide,
    decide_all_pending,
    expire_pending,
    idempotency_key,
    pending_count,
    release_approved,
    run_lines,
    stage_batch,
    stage_batch_rowwise,
)

pytestmark = pytest.mark.integration
#: The ERP staging migrations, in order.
REVISIONS = ("0001_erp_staging", "0002_forecast_scores", "0003_integrity", "0004_degraded_night",
             "0005_fulfilment_assignment", "0006_supplier_scorecards", "0007_return_disposition",
             "0008_finance_review", "0009_overrides", "0010_override_source")
DS = dt.date(2026, 3, 14)




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


@pytest.mark.parametrize("stage", [stage_batch, stage_batch_rowwise], ids=["copy", "rowwise"])
def test_batch_is_staged_with_tiers_and_audited(conn, dag_id, stage):
    result = stage(conn, _lines(), dag_id=dag_id, run_id="run-1", ds=DS)
    assert (result.inserted, result.auto_approved, result.pending) == (4, 2, 2)
    lines = run_lines(conn, dag_id, DS)
    assert sorted(lines["status"]) == ["auto_approved", "auto_approved", "pending_approval", "pending_approval"]
    assert set(lines["idempotency_key"]) == {idempotency_key(dag_id, DS, d, f"key-{i}") for i, d in
                                             enumerate(("replenishment", "transfer", "po_exception",
                                                        "replenishment"))}
    actions = conn.execute("SELECT action, count(*) FROM erp_staging.audit_log WHERE dag_id=%s GROUP BY action",
                           (dag_id,)).fetchall()
    assert dict(actions) == {"proposed": 4, "tiered": 4}


@pytest.mark.parametrize("stage", [stage_batch, stage_batch_rowwise], ids=["copy", "rowwise"])
def test_rerun_replaces_undecided_keeps_decided_and_withdraws_stale(conn, dag_id, stage):
    stage(conn, _lines(), dag_id=dag_id, run_id="run-1", ds=DS)
    pending = run_lines(conn, dag_id, DS).query("status == 'pending_approval'")
    first = pending.iloc[0]
    decide(conn, first["doc_type"], [int(first["line_id"])], approve=True, user="planner")
    changed = _lines(3, qty=99.0)  # key-3 no longer proposed; quantities changed
    result = stage(conn, changed, dag_id=dag_id, run_id="run-2", ds=DS)
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
    again = stage(conn, changed, dag_id=dag_id, run_id="run-3", ds=DS)
    assert (again.inserted, again.withdrawn) == (0, 0)
    assert len(run_lines(conn, dag_id, DS)) == 3


@pytest.mark.parametrize("stage", [stage_batch, stage_batch_rowwise], ids=["copy", "rowwise"])
def test_batch_is_all_or_nothing(conn, dag_id, stage):
    bad = _lines()
    bad.loc[3, "quantity"] = -5  # refused by the table's CHECK constraint
    with pytest.raises(psycopg.errors.CheckViolation):
        stage(conn, bad, dag_id=dag_id, run_id="run-1", ds=DS)
    assert len(run_lines(conn, dag_id, DS)) == 0


def test_illegal_transition_is_refused_by_the_database(conn, dag_id):
    stage_batch(conn, _lines(2), dag_id=dag_id, run_id="run-1", ds=DS)
    line = run_lines(conn, dag_id, DS).query("status == 'pending_approval'").iloc[0]
    with pytest.raises(psycopg.errors.CheckViolation) as err, conn.transaction():
        conn.execute("UPDATE erp_staging.replenishment_order_lines SET status='released' WHERE line_id=%s",
                     (int(line["line_id"]),))
    assert f"illegal status transition for line {int(line['line_id'])}" in str(err.value)
    assert "pending_approval -> released" in str(err.value)


def test_audit_log_refuses_update_delete_and_truncate(conn, erp_owner_url, dag_id):
    stage_batch(conn, _lines(1), dag_id=dag_id, run_id="run-1", ds=DS)
    statements = ("UPDATE erp_staging.audit_log SET actor='someone' WHERE dag_id=%s",
                  "DELETE FROM erp_staging.audit_log WHERE dag_id=%s")
    # The application has no such privilege; the owner has, and the append-only triggers refuse it.
    for statement in statements:
        with pytest.raises(psycopg.errors.InsufficientPrivilege) as err, conn.transaction():
            conn.execute(statement, (dag_id,))
        assert "permission denied for table audit_log" in str(err.value)
    with db.connect(erp_owner_url) as owner:
        for statement in statements:
            with pytest.raises(psycopg.errors.InsufficientPrivilege) as err, owner.transaction():
                owner.execute("SET LOCAL ROLE shelfwise_owner")
                owner.execute(statement, (dag_id,))
            assert "append-only" in str(err.value)
        with pytest.raises(psycopg.errors.InsufficientPrivilege) as err, owner.transaction():
            owner.execute("SET LOCAL ROLE shelfwise_owner")
            owner.execute("TRUNCATE erp_staging.audit_log")
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


def _state(conn, dag_id: str) -> tuple[list, list]:
    """Lines (without ids and timestamps) and audit entries of one DAG, comparable across DAG ids."""
    lines = conn.execute(
        "SELECT doc_type, business_key, sku, from_location, to_location, supplier_id, po_id, po_line, action,"
        " quantity, unit_cost, value, need_by, explanation, risk_tier, tier_reasons, status, decided_by,"
        " run_id FROM erp_staging.all_lines WHERE dag_id=%s ORDER BY doc_type, business_key", (dag_id,),
    ).fetchall()
    audit_rows = conn.execute(
        "SELECT action, doc_type, split_part(idempotency_key, '|', 4), from_status, to_status, actor, run_id,"
        " note, details FROM erp_staging.audit_log WHERE dag_id=%s", (dag_id,),
    ).fetchall()
    # Order within one statement is not part of the contract; JSON numbers compare by value (10 == 10.0).
    return lines, sorted(audit_rows, key=lambda row: tuple(str(v) for v in row[:8]))


def test_copy_path_matches_rowwise_path_step_by_step(conn):
    """Same batches, same decisions: both staging paths leave the same lines and the same audit trail."""
    ids = {stage: f"test_equiv_{uuid.uuid4().hex[:8]}" for stage in ("copy", "rowwise")}
    first = _lines(9)
    first.loc[0, "explanation"] = [{"forecast_over_lead_time": float("nan"), "anomalies": ["demand_spike"]}]
    retier = _lines(7, qty=12.0)
    retier["auto_approve"] = ~retier["auto_approve"]  # every undecided line changes tier
    retier["risk_tier"] = retier["risk_tier"].map({"low": "medium", "medium": "low"})
    for name, stage in (("copy", stage_batch), ("rowwise", stage_batch_rowwise)):
        dag = ids[name]
        results = [stage(conn, first, dag_id=dag, run_id="r1", ds=DS)]
        pending = run_lines(conn, dag, DS).query("status == 'pending_approval'").iloc[:2]
        decide(conn, pending.iloc[0]["doc_type"], [int(pending.iloc[0]["line_id"])], approve=True, user="ann")
        decide(conn, pending.iloc[1]["doc_type"], [int(pending.iloc[1]["line_id"])], approve=False, user="ann")
        results.append(stage(conn, retier, dag_id=dag, run_id="r2", ds=DS))
        results.append(stage(conn, retier, dag_id=dag, run_id="r3", ds=DS))
        ids[name] = (dag, results)
    (copy_dag, copy_results), (row_dag, row_results) = ids["copy"], ids["rowwise"]
    assert copy_results == row_results
    # key-2 and key-8 were decided; key-8 and key-7 are no longer proposed: key-7 is withdrawn.
    assert (copy_results[1].withdrawn, copy_results[1].unchanged_decided, copy_results[1].updated) == (1, 1, 6)
    assert _state(conn, copy_dag) == _state(conn, row_dag)


def test_copy_path_stages_ten_thousand_lines_as_one_batch(conn, dag_id):
    big = pd.concat([_lines(3).assign(business_key=lambda f, i=i: f["business_key"] + f"-{i}")
                     for i in range(3334)], ignore_index=True)
    result = stage_batch(conn, big, dag_id=dag_id, run_id="run-1", ds=DS)
    assert result.inserted == len(big) == 10002
    again = stage_batch(conn, big.iloc[:5000], dag_id=dag_id, run_id="run-2", ds=DS)
    assert (again.inserted, again.updated, again.withdrawn) == (0, 5000, 5002)
    assert len(run_lines(conn, dag_id, DS)) == 5000


def test_unknown_doc_type_stages_nothing(conn, dag_id):
    bad = _lines(3)
    bad.loc[2, "doc_type"] = "invoice"
    with pytest.raises(ValueError, match="unknown doc_type 'invoice' for business key 'key-2'"):
        stage_batch(conn, bad, dag_id=dag_id, run_id="run-1", ds=DS)
    assert len(run_lines(conn, dag_id, DS)) == 0


def test_migrations_are_idempotent(erp_owner_url):
    with db.connect(erp_owner_url) as owner:
        assert db.migrate(owner) == []
        head = sorted(p.name.split("_", 1)[0] for p in (db.MIGRATIONS_DIR / "versions").glob("[0-9]*.py"))[-1]
        assert owner.execute("SELECT version_num FROM ops.alembic_version").fetchall() == [(head,)]
        owner.rollback()


def test_the_application_role_cannot_migrate(conn):
    from sqlalchemy.exc import DBAPIError

    with pytest.raises(DBAPIError) as err:
        db.migrate(conn)
    assert isinstance(err.value.orig, psycopg.errors.InsufficientPrivilege), err.value


@pytest.fixture
def scratch_db(erp_owner_url):
    """An empty database of its own (named after the test database), dropped afterwards."""
    base = psycopg.conninfo.conninfo_to_dict(erp_owner_url)["dbname"]
    name = f"{base}_mig_{uuid.uuid4().hex[:8]}"
    url = psycopg.conninfo.make_conninfo(erp_owner_url, dbname=name)
    db.ensure_database(url)
    yield url
    admin = psycopg.conninfo.make_conninfo(erp_owner_url, dbname="postgres")
    with psycopg.connect(admin, autocommit=True) as c:
        c.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_fresh_database_is_migrated_to_head_once(scratch_db):
    with db.connect(scratch_db) as c:
        assert db.migrate(c) == list(REVISIONS)
        assert db.migrate(c) == []
        assert c.execute("SELECT version_num FROM ops.alembic_version").fetchall() == [(REVISIONS[-1][:4],)]
        tables = c.execute("SELECT count(*) FROM information_schema.tables WHERE table_schema='erp_staging'"
                           " AND table_type='BASE TABLE'").fetchone()[0]
        assert tables == len(TABLES) + 1  # a line table per document type, and the audit log
        # Every document type's table is in the lookup and in both views.
        for doc_type, table in TABLES.items():
            assert c.execute("SELECT erp_staging.line_table(%s)", (doc_type,)).fetchone()[0] == table
        views = c.execute("SELECT string_agg(pg_get_viewdef(('erp_staging.' || v)::regclass), ' ')"
                          " FROM unnest(ARRAY['all_lines', 'released_lines']) v").fetchone()[0]
        assert all(views.count(f"FROM erp_staging.{table}") == 2 for table in TABLES.values())


def test_database_from_the_numbered_sql_runner_is_adopted_not_rerun(scratch_db):
    sql = (db.MIGRATIONS_DIR / "versions" / "0001_erp_staging.sql").read_text(encoding="utf-8")
    with db.connect(scratch_db) as c:
        with c.transaction():
            c.execute(sql)
            c.execute("CREATE TABLE ops.schema_migrations (version integer PRIMARY KEY, name text NOT NULL,"
                      " applied_at timestamptz NOT NULL DEFAULT now())")
            c.execute("INSERT INTO ops.schema_migrations VALUES (1, '0001_erp_staging.sql')")
            # A marker the SQL would undo if it ran again (CREATE INDEX IF NOT EXISTS); no later revision
            # touches that index.
            c.execute("DROP INDEX ops.contract_runs_ds")
        # Stamped at 0001 (its SQL not re-run), then upgraded by the later revisions only.
        assert db.migrate(c) == list(REVISIONS[1:])
        assert c.execute("SELECT version_num FROM ops.alembic_version").fetchall() == [(REVISIONS[-1][:4],)]
        assert c.execute("SELECT to_regclass('ops.contract_runs_ds')").fetchone()[0] is None


def test_concurrent_migrators_apply_each_revision_once(scratch_db):
    results: list[list[str]] = []
    barrier = threading.Barrier(3)

    def migrator() -> None:
        with db.connect(scratch_db) as own:
            barrier.wait()
            results.append(db.migrate(own))

    threads = [threading.Thread(target=migrator) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == [[], [], list(REVISIONS)]


def _table_shape(c, table: str) -> dict:
    """Columns (type, null, default), CHECKs, triggers, indexes and column grants of an erp_staging table, with
    the table's name taken out, so that two tables of the same shape compare equal."""
    def strip(rows):
        return sorted(tuple(str(v).replace(table, "T") if v is not None else None for v in row) for row in rows)

    q = {
        "columns": "SELECT column_name, data_type, numeric_precision, numeric_scale, is_nullable, column_default"
                   " FROM information_schema.columns WHERE table_schema='erp_staging' AND table_name=%s",
        "checks": "SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conrelid=('erp_staging.'||%s)::regclass",
        "triggers": "SELECT tgname, pg_get_triggerdef(oid) FROM pg_trigger WHERE NOT tgisinternal"
                    " AND tgrelid=('erp_staging.'||%s)::regclass",
        "indexes": "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname='erp_staging' AND tablename=%s",
        "grants": "SELECT grantee, privilege_type, column_name FROM information_schema.column_privileges"
                  " WHERE table_schema='erp_staging' AND table_name=%s AND grantee LIKE 'shelfwise%%'",
        "owner": "SELECT tableowner FROM pg_tables WHERE schemaname='erp_staging' AND tablename=%s",
    }
    return {k: strip(c.execute(sql, (table,)).fetchall()) for k, sql in q.items()}


def test_return_dispositions_have_the_shape_of_fulfilment_assignments(scratch_db):
    with db.connect(scratch_db) as c:
        db.migrate(c)
        ret, ful = _table_shape(c, "return_disposition_lines"), _table_shape(c, "fulfilment_assignment_lines")
        assert ret == ful and ret["triggers"] and ret["indexes"]
        assert c.execute("SELECT erp_staging.line_table('return_disposition')").fetchone()[0] == \
            "return_disposition_lines"
        views = c.execute("SELECT definition FROM pg_views WHERE schemaname='erp_staging'"
                          " AND viewname IN ('all_lines', 'released_lines')").fetchall()
        assert len(views) == 2 and all("return_disposition_lines" in v for (v,) in views)
