"""The ERP staging database enforces its own integrity against the application role that writes to it.

Every test connects as ``shelfwise_app`` (what the DAGs, the plugin and the command line use) unless it
says otherwise, and shows a tampering attempt refused by the database itself, whatever the client: the
content of decided and released lines, their deletion, the triggers, the audit log, the ERP reader's
view. Then the legitimate paths: the audited reversal, the release audit, concurrent staging of a date.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pandas as pd
import psycopg
import pytest

from include.erp import db, roles
from include.erp.staging import (
    ReversalRefused,
    decide,
    release_approved,
    reverse_line,
    run_lines,
    stage_batch,
    stage_batch_rowwise,
)

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
DS = dt.date(2026, 7, 9)
LINE_TABLES = ("replenishment_order_lines", "stock_transfer_lines", "po_exception_lines",
               "fulfilment_assignment_lines")


@pytest.fixture
def dag_id() -> str:
    return f"test_integrity_{uuid.uuid4().hex[:10]}"


@pytest.fixture
def conn(erp_url):
    """The application's connection; autocommit, so what a call commits is visible to the other sessions."""
    with db.connect(erp_url, autocommit=True) as connection:
        assert connection.info.user == roles.APP_ROLE
        yield connection


@pytest.fixture
def owner(erp_owner_url):
    """The migrator's connection; tests act through it as ``shelfwise_owner`` with ``SET LOCAL ROLE``."""
    with db.connect(erp_owner_url, autocommit=True) as connection:
        yield connection


@pytest.fixture
def reader(erp_owner_url):
    with db.connect(roles.reader_url(erp_owner_url), autocommit=True) as connection:
        assert connection.info.user == roles.READER_ROLE
        yield connection


def _lines(n: int = 4) -> pd.DataFrame:
    """Replenishment lines; odd ones low risk (auto-approved), even ones pending a planner."""
    return pd.DataFrame([{
        "doc_type": "replenishment", "business_key": f"bk-{i}", "sku": f"SKU{i:04d}", "from_location": "DC01",
        "to_location": f"S{i:04d}", "supplier_id": "SUP001", "po_id": None, "po_line": None, "action": "order",
        "quantity": 10.0 + i, "unit_cost": 2.0, "value": (10.0 + i) * 2.0, "need_by": DS + dt.timedelta(days=2),
        "explanation": {"forecast_over_lead_time": 8.0}, "risk_tier": "low" if i % 2 else "medium",
        "tier_reasons": [] if i % 2 else ["medium_value"], "auto_approve": bool(i % 2),
    } for i in range(n)])


def _released_and_approved(conn, dag_id: str) -> tuple[int, int]:
    """Stage four lines, approve bk-0 (bk-2 stays pending), release.

    Returns:
        The ids of bk-1 (auto-approved, then released) and bk-0 (approved by a planner, then released).
    """
    stage_batch(conn, _lines(), dag_id=dag_id, run_id="r1", ds=DS)
    lines = run_lines(conn, dag_id, DS).set_index("business_key")
    decide(conn, "replenishment", [int(lines.loc["bk-0", "line_id"])], approve=True, user="planner",
           note="checked the shelf")
    release_approved(conn, dag_id, DS, run_id="r1")
    return int(lines.loc["bk-1", "line_id"]), int(lines.loc["bk-0", "line_id"])


def _refused(conn, statement: str, params=(), error=psycopg.errors.CheckViolation) -> str:
    with pytest.raises(error) as err, conn.transaction():
        conn.execute(statement, params)
    return str(err.value)


def _row(conn, line_id: int) -> tuple:
    return conn.execute("SELECT * FROM erp_staging.replenishment_order_lines WHERE line_id = %s",
                        (line_id,)).fetchone()


def test_content_of_a_released_line_cannot_change(conn, dag_id):
    released, _ = _released_and_approved(conn, dag_id)
    before = _row(conn, released)
    message = _refused(conn, "UPDATE erp_staging.replenishment_order_lines SET quantity = 99999, value = 99999"
                             " WHERE line_id = %s", (released,))
    assert f"line {released} " in message and "is released and can no longer be changed" in message
    for column, value in (("sku", "OTHER"), ("to_location", "S9999"), ("explanation", '{}'),
                          ("released_at", "2030-01-01")):
        _refused(conn, f"UPDATE erp_staging.replenishment_order_lines SET {column} = %s WHERE line_id = %s",
                 (value, released))
    assert _row(conn, released) == before


def test_a_legal_move_cannot_carry_other_changes(conn, owner, dag_id):
    stage_batch(conn, _lines(2), dag_id=dag_id, run_id="r1", ds=DS)
    lines = run_lines(conn, dag_id, DS).set_index("business_key")
    pending, auto = int(lines.loc["bk-0", "line_id"]), int(lines.loc["bk-1", "line_id"])
    message = _refused(conn, "UPDATE erp_staging.replenishment_order_lines SET status = 'approved',"
                             " quantity = 99999, value = 99999 WHERE line_id = %s", (pending,))
    assert "moving pending_approval -> approved: quantity, value may not change" in message
    message = _refused(conn, "UPDATE erp_staging.replenishment_order_lines SET status = 'released',"
                             " unit_cost = 0 WHERE line_id = %s", (auto,))
    assert "moving auto_approved -> released: unit_cost may not change" in message
    # Keys never change, not even while the line is undecided: the application may not update them, and
    # the owner, who may, is refused by the trigger.
    forge = ("UPDATE erp_staging.replenishment_order_lines SET status = 'pending_approval',"
             " idempotency_key = 'forged' WHERE line_id = %s")
    _refused(conn, forge, (auto,), psycopg.errors.InsufficientPrivilege)
    with pytest.raises(psycopg.errors.CheckViolation) as err, owner.transaction():
        owner.execute("SET LOCAL ROLE shelfwise_owner")
        owner.execute(forge, (auto,))
    assert "moving auto_approved -> pending_approval: idempotency_key may not change" in str(err.value)


def test_a_decision_cannot_be_rewritten(conn, dag_id):
    _, approved = _released_and_approved(conn, dag_id)
    stage_batch(conn, _lines(6), dag_id=dag_id, run_id="r2", ds=DS)
    pending = run_lines(conn, dag_id, DS).query("status == 'pending_approval'")
    undecided_id = int(pending.iloc[0]["line_id"])
    decide(conn, "replenishment", [undecided_id], approve=True, user="planner", note="fine")
    for line_id in (approved, undecided_id):  # released after approval, and approved awaiting release
        before = _row(conn, line_id)
        message = _refused(conn, "UPDATE erp_staging.replenishment_order_lines SET decided_by = 'mallory',"
                                 " decision_note = 'rewritten' WHERE line_id = %s", (line_id,))
        assert "can no longer be changed" in message
        assert _row(conn, line_id) == before
    message = _refused(conn, "UPDATE erp_staging.replenishment_order_lines SET status = 'released',"
                             " decided_by = 'mallory' WHERE line_id = %s", (undecided_id,))
    assert "moving approved -> released: decided_by may not change" in message


def test_lines_cannot_be_deleted_by_the_application_nor_decided_ones_by_the_owner(conn, owner, dag_id):
    released, _ = _released_and_approved(conn, dag_id)
    pending = int(run_lines(conn, dag_id, DS).query("status == 'pending_approval'").iloc[0]["line_id"])
    for line_id in (released, pending):
        message = _refused(conn, "DELETE FROM erp_staging.replenishment_order_lines WHERE line_id = %s",
                           (line_id,), psycopg.errors.InsufficientPrivilege)
        assert "permission denied for table replenishment_order_lines" in message
    _refused(conn, "TRUNCATE erp_staging.replenishment_order_lines", (), psycopg.errors.InsufficientPrivilege)
    with pytest.raises(psycopg.errors.CheckViolation) as err, owner.transaction():
        owner.execute("SET LOCAL ROLE shelfwise_owner")
        owner.execute("DELETE FROM erp_staging.replenishment_order_lines WHERE line_id = %s", (released,))
    assert f"line {released} " in str(err.value) and "is released and cannot be deleted" in str(err.value)
    with pytest.raises(psycopg.errors.CheckViolation) as err, owner.transaction():
        owner.execute("SET LOCAL ROLE shelfwise_owner")
        owner.execute("TRUNCATE erp_staging.replenishment_order_lines")
    assert "cannot be truncated" in str(err.value)
    assert run_lines(conn, dag_id, DS)["line_id"].isin([released, pending]).sum() == 2


def test_the_application_cannot_insert_a_line_already_decided(conn, dag_id):
    columns = ("idempotency_key, dag_id, run_id, ds, business_key, sku, action, quantity, unit_cost, value,"
               " risk_tier, status")
    for status in ("released", "approved"):
        message = _refused(conn, f"INSERT INTO erp_staging.replenishment_order_lines ({columns}) VALUES"
                                 " (%s, %s, 'r1', %s, 'bk', 'SKU', 'order', 1, 1, 1, 'low', %s)",
                           (f"{dag_id}|forged-{status}", dag_id, DS, status))
        assert "a new line starts proposed, pending_approval or auto_approved" in message
    _refused(conn, f"INSERT INTO erp_staging.replenishment_order_lines ({columns}, decided_by) VALUES"
                   " (%s, %s, 'r1', %s, 'bk', 'SKU', 'order', 1, 1, 1, 'low', 'pending_approval', 'mallory')",
             (f"{dag_id}|forged-decider", dag_id, DS))


@pytest.mark.parametrize("statement", [
    "SET session_replication_role = replica",
    "ALTER TABLE erp_staging.replenishment_order_lines DISABLE TRIGGER status_transition",
    "ALTER TABLE erp_staging.replenishment_order_lines DISABLE TRIGGER ALL",
    "ALTER TABLE erp_staging.audit_log DISABLE TRIGGER audit_log_append_only",
    "DROP TABLE erp_staging.audit_log",
    "DROP TRIGGER status_transition ON erp_staging.replenishment_order_lines",
    "TRUNCATE erp_staging.audit_log",
    "UPDATE erp_staging.audit_log SET actor = 'mallory'",
    "DELETE FROM erp_staging.audit_log",
    "ALTER TABLE erp_staging.audit_log OWNER TO shelfwise_app",
    "CREATE TABLE erp_staging.shadow (id int)",
    "CREATE OR REPLACE FUNCTION erp_staging.check_status_transition() RETURNS trigger LANGUAGE plpgsql"
    " AS 'BEGIN RETURN NEW; END'",
    "SET ROLE shelfwise_owner",
    "GRANT shelfwise_owner TO shelfwise_app",
    "ALTER ROLE shelfwise_app SUPERUSER",
], ids=lambda s: " ".join(s.split()[:3]))
def test_the_application_cannot_switch_off_the_rules(conn, statement):
    _refused(conn, statement, (), psycopg.errors.InsufficientPrivilege)


def test_the_application_may_append_to_the_audit_log_only(conn, dag_id):
    conn.execute("INSERT INTO erp_staging.audit_log (actor, action, dag_id) VALUES ('shelfwise', 'noted', %s)",
                 (dag_id,))
    conn.commit()
    assert conn.execute("SELECT count(*) FROM erp_staging.audit_log WHERE dag_id = %s",
                        (dag_id,)).fetchone()[0] == 1


@pytest.mark.parametrize("statement", [
    *(f"SELECT * FROM erp_staging.{t}" for t in LINE_TABLES),
    "SELECT * FROM erp_staging.all_lines",
    "SELECT * FROM erp_staging.audit_log",
    "SELECT * FROM ops.contract_runs",
    "SELECT * FROM ops.forecast_scores",
    "SELECT * FROM ops.alembic_version",
    "CREATE TEMP TABLE scratch (id int)",
    "SELECT erp_staging.reverse_line('replenishment', 1, 'erp', 'x')",
    "SELECT erp_staging.withdraw_lines('replenishment', 'd', '2026-01-01', '{}', 'r', 'erp')",
    "INSERT INTO erp_staging.audit_log (actor, action) VALUES ('erp', 'read')",
], ids=lambda s: " ".join(s.split()[:4]))
def test_the_erp_reader_sees_nothing_but_released_lines(reader, statement):
    _refused(reader, statement, (), psycopg.errors.InsufficientPrivilege)


def test_the_erp_reader_reads_released_lines(conn, reader, dag_id):
    released, approved = _released_and_approved(conn, dag_id)
    rows = reader.execute("SELECT doc_type, business_key, line_id, decided_by FROM erp_staging.released_lines"
                          " WHERE dag_id = %s ORDER BY business_key", (dag_id,)).fetchall()
    assert [r[:2] for r in rows] == [("replenishment", "bk-0"), ("replenishment", "bk-1"),
                                     ("replenishment", "bk-3")]
    assert (rows[0][2], rows[0][3]) == (approved, "planner") and rows[1][2] == released


def test_a_released_line_is_corrected_by_an_audited_reversal(conn, reader, dag_id):
    released, _ = _released_and_approved(conn, dag_id)
    before = _row(conn, released)
    line = reverse_line(conn, "replenishment", released, actor="controller", reason="delivered to the wrong store")
    assert line["reverses_line_id"] == released and line["idempotency_key"] == f"{line['reverses']}|reversal"
    assert _row(conn, released) == before  # the original is untouched
    columns = "status, action, quantity, unit_cost, value, reverses_line_id, decided_by, decision_note, business_key"
    query = f"SELECT {columns} FROM erp_staging.replenishment_order_lines WHERE line_id = %s"
    original, new = conn.execute(query, (released,)).fetchone(), conn.execute(query, (line["line_id"],)).fetchone()
    assert new[:2] == ("released", "reverse") and new[2:5] == original[2:5] and new[8] == original[8]
    assert new[5:8] == (released, "controller", "delivered to the wrong store")
    audit_rows = conn.execute(
        "SELECT action, actor, idempotency_key, from_status, to_status, note FROM erp_staging.audit_log"
        " WHERE dag_id = %s AND action IN ('reversal', 'reversed') OR idempotency_key = %s ORDER BY audit_id",
        (dag_id, line["idempotency_key"])).fetchall()
    reason = "delivered to the wrong store"
    assert audit_rows == [
        ("reversal", "controller", line["idempotency_key"], None, "approved", reason),
        ("released", "controller", line["idempotency_key"], "approved", "released", reason),
        ("reversed", "controller", line["reverses"], "released", "released", reason),
    ]
    # The ERP nets the pair: the reversal books the original's quantity with the opposite sign.
    net = reader.execute(
        "SELECT sum(CASE WHEN action = 'reverse' THEN -quantity ELSE quantity END) FROM erp_staging.released_lines"
        " WHERE dag_id = %s AND business_key = %s", (dag_id, new[8])).fetchone()[0]
    assert net == 0
    # The reversal itself is frozen like any released line.
    _refused(conn, "UPDATE erp_staging.replenishment_order_lines SET quantity = 1 WHERE line_id = %s",
             (line["line_id"],))


def test_fulfilment_assignments_follow_the_same_rules(conn, owner, reader, dag_id):
    """The fourth document type: additive staging, frozen once released, never deleted, reversed, read by the ERP."""
    lines = _lines(3).assign(doc_type="fulfilment_assignment", action="ship_from_store", supplier_id=None,
                             business_key=[f"OO1:{i + 1}" for i in range(3)])
    first = stage_batch(conn, lines.iloc[:2], dag_id=dag_id, run_id="b1", ds=DS, additive=True)
    assert (first.inserted, first.auto_approved, first.pending) == (2, 1, 1)
    # A later batch adds its own lines: a line already staged stays as it is, and none is withdrawn.
    later = stage_batch(conn, lines.iloc[1:].assign(quantity=99.0), dag_id=dag_id, run_id="b2", ds=DS, additive=True)
    assert (later.inserted, later.already_staged, later.withdrawn) == (1, 1, 0)
    staged = run_lines(conn, dag_id, DS).set_index("business_key")
    assert staged.loc["OO1:2", "quantity"] == 11 and staged.loc["OO1:2", "status"] == "auto_approved"
    release_approved(conn, dag_id, DS, run_id="b2")
    released = int(run_lines(conn, dag_id, DS).set_index("business_key").loc["OO1:2", "line_id"])
    _refused(conn, "UPDATE erp_staging.fulfilment_assignment_lines SET from_location = 'S9' WHERE line_id = %s",
             (released,))
    _refused(conn, "DELETE FROM erp_staging.fulfilment_assignment_lines WHERE line_id = %s", (released,),
             psycopg.errors.InsufficientPrivilege)
    with pytest.raises(psycopg.errors.CheckViolation), owner.transaction():
        owner.execute("SET LOCAL ROLE shelfwise_owner")
        owner.execute("DELETE FROM erp_staging.fulfilment_assignment_lines WHERE line_id = %s", (released,))
    rows = reader.execute("SELECT doc_type, business_key FROM erp_staging.released_lines WHERE dag_id = %s",
                          (dag_id,)).fetchall()
    assert rows == [("fulfilment_assignment", "OO1:2")]
    line = reverse_line(conn, "fulfilment_assignment", released, actor="planner", reason="order cancelled")
    assert line["reverses_line_id"] == released
    # A fulfilment line that stayed pending may be withdrawn by a re-run of the date that does not add.
    stage_batch(conn, lines.iloc[:0], dag_id=dag_id, run_id="r", ds=DS)
    assert set(run_lines(conn, dag_id, DS)["business_key"]) == {"OO1:2"}


def test_a_reversal_is_refused_twice_or_for_a_line_not_released(conn, dag_id):
    released, _ = _released_and_approved(conn, dag_id)
    first = reverse_line(conn, "replenishment", released, actor="controller", reason="wrong store")
    with pytest.raises(ReversalRefused, match=f"replenishment line {released} was already reversed by line "
                                              f"{first['line_id']}"):
        reverse_line(conn, "replenishment", released, actor="controller", reason="again")
    with pytest.raises(ReversalRefused, match=f"is itself the reversal of line {released}"):
        reverse_line(conn, "replenishment", first["line_id"], actor="controller", reason="undo")
    stage_batch(conn, _lines(6), dag_id=dag_id, run_id="r2", ds=DS)
    pending = int(run_lines(conn, dag_id, DS).query("status == 'pending_approval'").iloc[0]["line_id"])
    with pytest.raises(ReversalRefused, match="is pending_approval: only released lines are reversed"):
        reverse_line(conn, "replenishment", pending, actor="controller", reason="not yet")
    with pytest.raises(ReversalRefused, match="no replenishment line 999999999"):
        reverse_line(conn, "replenishment", 999_999_999, actor="controller", reason="typo")
    with pytest.raises(ValueError, match="actor and reason are required"):
        reverse_line(conn, "replenishment", released, actor="controller", reason="  ")


def _cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "include.erp", *args], env={**env, "PYTHONPATH": str(ROOT)},
                          cwd=ROOT, capture_output=True, text=True, timeout=120)


def test_the_command_line_reverses_as_the_application_and_migrates_as_the_owner(conn, dag_id, erp_owner_url):
    released, _ = _released_and_approved(conn, dag_id)
    base = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW_CONN_ERP", "ERP_STAGING"))}
    args = ("reverse", "--doc-type", "replenishment", "--line-id", str(released), "--actor", "controller",
            "--reason", "double order")
    done = _cli(*args, env={**base, "ERP_STAGING_URL": os.environ["ERP_STAGING_URL"]})
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["reverses_line_id"] == released
    again = _cli(*args, env={**base, "ERP_STAGING_URL": os.environ["ERP_STAGING_URL"]})
    assert again.returncode == 1 and "reversal refused: replenishment line" in again.stderr
    migrated = _cli("migrate", env={**base, "ERP_STAGING_OWNER_URL": erp_owner_url})
    assert migrated.returncode == 0, migrated.stderr
    assert json.loads(migrated.stdout)["migrations_applied"] == []
    unconfigured = _cli("migrate", env=base)
    assert unconfigured.returncode == 2 and "no owner connection: set ERP_STAGING_OWNER_URL" in unconfigured.stderr


def test_release_audit_records_the_status_each_line_left(conn, dag_id):
    released, approved = _released_and_approved(conn, dag_id)
    keys = run_lines(conn, dag_id, DS).set_index("line_id")["idempotency_key"]
    rows = dict(conn.execute("SELECT idempotency_key, from_status FROM erp_staging.audit_log WHERE dag_id = %s"
                             " AND action = 'released'", (dag_id,)).fetchall())
    assert rows[keys[approved]] == "approved"
    assert rows[keys[released]] == "auto_approved"
    assert sorted(rows.values()) == ["approved", "auto_approved", "auto_approved"]


def _waiting_on_advisory_lock(owner, pid: int) -> bool:
    row = owner.execute("SELECT count(*) FROM pg_locks WHERE pid = %s AND locktype = 'advisory' AND NOT granted",
                        (pid,)).fetchone()
    owner.rollback()
    return bool(row[0])


@pytest.mark.parametrize("stage", [stage_batch, stage_batch_rowwise], ids=["copy", "rowwise"])
def test_concurrent_staging_of_one_date_takes_turns(erp_url, conn, owner, dag_id, stage):
    batch = _lines(6)
    results = {}
    with db.connect(erp_url) as second:
        second_pid = second.info.backend_pid
        with conn.transaction():
            results["first"] = stage(conn, batch, dag_id=dag_id, run_id="r1", ds=DS)
            worker = threading.Thread(target=lambda: results.update(
                second=stage(second, batch, dag_id=dag_id, run_id="r2", ds=DS)))
            worker.start()
            deadline = time.monotonic() + 30
            while not _waiting_on_advisory_lock(owner, second_pid):
                assert time.monotonic() < deadline, "the second run never waited for the first"
                time.sleep(0.05)
            assert "second" not in results
        worker.join(60)
    first, second_result = results["first"], results["second"]
    assert (first.inserted, first.updated) == (6, 0)
    assert (second_result.inserted, second_result.updated, second_result.withdrawn) == (0, 6, 0)
    audit_counts = dict(conn.execute("SELECT action, count(*) FROM erp_staging.audit_log WHERE dag_id = %s"
                                     " GROUP BY action", (dag_id,)).fetchall())
    assert audit_counts == {"proposed": 6, "tiered": 6}
    assert len(run_lines(conn, dag_id, DS)) == 6


def test_the_nightly_checks_the_schema_when_it_may_not_migrate(conn, erp_url, monkeypatch):
    from include.runs import Run
    from include.stages.nightly import prepare_erp_staging

    monkeypatch.delenv(roles.OWNER_URL_ENV, raising=False)
    monkeypatch.delenv("AIRFLOW_CONN_ERP_STAGING_OWNER", raising=False)
    run = Run(dag_id="retail_nightly", run_id="manual", ds=DS.isoformat(), task_id="prepare_erp_staging")
    summary = prepare_erp_staging(run, conn_factory=lambda: db.connect(erp_url))
    assert summary == {"migrations_applied": [], "revision": roles.head_revision(), "migrated_by": None}
    monkeypatch.setattr(roles, "head_revision", lambda: "9999")  # code newer than the database
    with pytest.raises(roles.SchemaNotAtHead) as err:
        prepare_erp_staging(run, conn_factory=lambda: db.connect(erp_url))
    assert str(err.value).startswith(f"the ERP staging schema is at revision {summary['revision']}; this code "
                                     "needs revision 9999. Migrate it as the owner: python -m include.erp migrate")


def test_provision_roles_sets_login_passwords_only_when_given(owner):
    import secrets

    from psycopg import sql

    def verifier() -> str | None:
        row = owner.execute("SELECT rolpassword FROM pg_authid WHERE rolname = 'shelfwise_erp_reader'").fetchone()
        owner.rollback()
        return row[0]

    original = verifier()
    try:
        assert roles.provision_roles(owner, reader_password=secrets.token_urlsafe(16)) == ["shelfwise_erp_reader"]
        changed = verifier()
        assert changed.startswith("SCRAM-SHA-256$") and changed != original
        assert roles.provision_roles(owner) == []
        assert verifier() == changed
    finally:  # the role is the server's: leave its password as it was (a stored verifier is accepted as is)
        with owner.transaction():
            owner.execute(sql.SQL("ALTER ROLE shelfwise_erp_reader PASSWORD {}").format(
                sql.Literal(original) if original else sql.SQL("NULL")))
