"""Faults injected into the ERP staging database: a stager killed mid-transaction, a server that accepts and
never answers, statements stuck behind a lock or running long, a server restarted mid-stage, two runs staging
one date, two planners deciding one line, an approval gate that times out. Each ends in a clear error or a
clean retry, never a hang or a half-written batch.

The restart runs on a private PostgreSQL started here from the ``pgserver`` wheel, never on the shared server.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace

import psycopg
import pytest

from include.erp import db
from include.erp.approvals import approver, decide_lines
from include.erp.gate import ApprovalGateSensor, ApprovalGateTrigger
from include.erp.hook import ErpStagingHook
from include.erp.staging import expire_pending, release_approved, run_lines, stage_batch
from include.runs import Run
from include.stages import nightly
from tests.conftest import DATA_ROOT, ERP_DB
from tests.integration.test_approvals import POLICY, _batch, _sel
from tests.integration.test_erp_staging import _lines
from tests.unit.test_gate import _first_event

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
DS = dt.date(2026, 7, 3)
PLANNER = approver("planner", "user", POLICY)
MANAGER = approver("manager", "op", POLICY)

# Stages the pickled batch as a DAG task would; killed with SIGKILL while its transaction is open.
STAGER = """
import sys
import pandas as pd
from include.erp import db
from include.erp.staging import stage_batch
url, path, dag_id, ds = sys.argv[1:]
with db.connect(url) as conn:
    stage_batch(conn, pd.read_pickle(path), dag_id=dag_id, run_id="run-killed", ds=ds)
"""



@pytest.fixture
def conn(erp_url) -> Iterator[psycopg.Connection]:
    """The application role's connection (the session's preparation migrated the database)."""
    with db.connect(erp_url) as connection:
        yield connection


def _state(conn: psycopg.Connection, dag_id: str) -> tuple[list, list]:
    """A run's lines and audit entries, to compare before and after a fault."""
    lines = conn.execute("SELECT doc_type, business_key, status, quantity, run_id FROM erp_staging.all_lines"
                         " WHERE dag_id=%s ORDER BY doc_type, business_key", (dag_id,)).fetchall()
    audit = conn.execute("SELECT action, idempotency_key, from_status, to_status, actor FROM erp_staging.audit_log"
                         " WHERE dag_id=%s ORDER BY audit_id", (dag_id,)).fetchall()
    conn.rollback()
    return lines, audit


def _proposed_per_key(conn: psycopg.Connection, dag_id: str) -> dict[str, int]:
    rows = conn.execute("SELECT idempotency_key, count(*) FROM erp_staging.audit_log WHERE dag_id=%s"
                        " AND action='proposed' GROUP BY idempotency_key", (dag_id,)).fetchall()
    conn.rollback()
    return dict(rows)


def _with_app(url: str, app: str) -> str:
    """``url`` with an application name, so the test can find its sessions in ``pg_stat_activity``."""
    return psycopg.conninfo.make_conninfo(url, application_name=app)


def _sessions(url: str, app: str, *, until: Callable[[list[tuple]], bool], timeout: float = 20.0,
              proc: subprocess.Popen | None = None) -> list[tuple]:
    """Poll ``(pid, wait_event_type)`` of the sessions named ``app`` until ``until`` holds them."""
    deadline = time.monotonic() + timeout
    with db.connect(url, autocommit=True) as watch:
        while True:
            rows = watch.execute("SELECT pid, wait_event_type FROM pg_stat_activity WHERE application_name=%s",
                                 (app,)).fetchall()
            if until(rows):
                return rows
            if proc is not None and proc.poll() is not None:
                pytest.fail(f"the stager exited with {proc.returncode}: {proc.stdout.read().decode()[-3000:]}")
            if time.monotonic() > deadline:
                pytest.fail(f"sessions of {app} never reached the expected state in {timeout} s: {rows}")
            time.sleep(0.05)


def _waiting_on_a_lock(count: int) -> Callable[[list[tuple]], bool]:
    return lambda rows: sum(1 for _, wait in rows if wait == "Lock") >= count


def _hold_lines(url: str, table: str, where: str, params: tuple) -> psycopg.Connection:
    """A session holding row locks on some lines (as a planner's open decision would) until it rolls back."""
    holder = db.connect(url)
    holder.execute(f"SELECT line_id FROM erp_staging.{table} WHERE {where} FOR UPDATE", params)
    return holder


def _run_threads(targets: dict[str, Callable[[], object]]
                 ) -> tuple[dict[str, object], dict[str, BaseException], list[threading.Thread]]:
    """Start one thread per target; the results and errors fill in as they finish."""
    results: dict[str, object] = {}
    errors: dict[str, BaseException] = {}

    def run(name: str, target: Callable[[], object]) -> None:
        try:
            results[name] = target()
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            errors[name] = exc

    threads = [threading.Thread(target=run, args=item, daemon=True) for item in targets.items()]
    for t in threads:
        t.start()
    return results, errors, threads


def _join(threads: list[threading.Thread], timeout: float = 30.0) -> None:
    for t in threads:
        t.join(timeout)
    assert not any(t.is_alive() for t in threads), "a session hung"


# --- a stager killed with SIGKILL mid-transaction ---------------------------------------------------------


def test_a_stager_killed_mid_transaction_leaves_nothing_and_the_retry_stages_all(erp_url, conn, dag_id, tmp_path):
    lines = _lines(8_000)
    # One transfer line exists already; holding its row lock parks the stager mid-transaction, after it has
    # written its replenishment lines and their audit entries.
    stage_batch(conn, lines.iloc[[1]], dag_id=dag_id, run_id="run-0", ds=DS)
    before = _state(conn, dag_id)
    batch = tmp_path / "batch.pkl"
    lines.to_pickle(batch)
    app = f"faults_kill_{dag_id}"
    holder = _hold_lines(erp_url, "stock_transfer_lines", "dag_id=%s", (dag_id,))
    proc = subprocess.Popen([sys.executable, "-c", STAGER, _with_app(erp_url, app), str(batch), dag_id,
                             DS.isoformat()], cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        [(pid, _)] = _sessions(erp_url, app, until=_waiting_on_a_lock(1), timeout=60, proc=proc)
        with db.connect(erp_url, autocommit=True) as watch:
            written = {r[0] for r in watch.execute(
                "SELECT c.relname FROM pg_locks l JOIN pg_class c ON c.oid = l.relation WHERE l.pid=%s"
                " AND l.mode='RowExclusiveLock' AND l.granted", (pid,)).fetchall()}
        assert {"replenishment_order_lines", "audit_log"} <= written, "the stager was not mid-transaction"
        proc.send_signal(signal.SIGKILL)
        assert proc.wait(timeout=10) == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        proc.stdout.close()
        holder.rollback()
        holder.close()
    # The orphaned backend finds its client gone once it runs again, and rolls back.
    _sessions(erp_url, app, until=lambda rows: not rows)
    assert _state(conn, dag_id) == before

    retry = stage_batch(conn, lines, dag_id=dag_id, run_id="run-2", ds=DS)
    assert (retry.inserted, retry.updated) == (len(lines) - 1, 1)
    proposed = _proposed_per_key(conn, dag_id)
    assert len(proposed) == len(lines) and set(proposed.values()) == {1}


# --- a server that accepts and never answers, statements that wait or run too long -------------------------


@pytest.fixture
def silent_server() -> Iterator[tuple[int, list[socket.socket]]]:
    """A TCP port that accepts connections and never says a word."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.1)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                accepted.append(listener.accept()[0])
            except TimeoutError:
                continue

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield listener.getsockname()[1], accepted
    stop.set()
    thread.join()
    listener.close()
    for s in accepted:
        s.close()


def _silent_message(port: int, seconds: int) -> str:
    return (f"cannot connect to the ERP staging database postgresql://erp:***@127.0.0.1:{port}/erp_staging: no "
            f"answer within its connect_timeout ({seconds} s). Check the Airflow connection 'erp_staging' (or "
            "ERP_STAGING_URL); if the server is only slow, raise SHELFWISE_DB_CONNECT_TIMEOUT_S (seconds) or the "
            "Airflow connection extra 'connect_timeout'")


def test_a_silent_server_fails_the_connection_within_its_connect_timeout(silent_server, monkeypatch):
    port, accepted = silent_server
    monkeypatch.setenv("SHELFWISE_DB_CONNECT_TIMEOUT_S", "2")
    started = time.monotonic()
    with pytest.raises(db.ErpTimeoutError) as err:
        db.connect(f"postgresql://erp:secret@127.0.0.1:{port}/erp_staging")
    assert 1.5 < time.monotonic() - started < 8
    assert accepted, "the server accepted the connection: the fault is silence, not refusal"
    assert err.value.setting == "connect_timeout"
    assert str(err.value) == _silent_message(port, 2)


def test_a_task_facing_a_silent_server_fails_instead_of_hanging(silent_server, monkeypatch):
    """The DAG's first task, through the hook and its stage adapter; the connection's extra sets the timeout."""
    port, _ = silent_server
    monkeypatch.setenv("AIRFLOW_CONN_ERP_STAGING", json.dumps({
        "conn_type": "postgres", "host": "127.0.0.1", "port": port, "login": "erp", "password": "secret",
        "schema": "erp_staging", "extra": {"connect_timeout": 3}}))
    run = Run(dag_id="retail_nightly", run_id="manual__faults", ds=DS.isoformat(), task_id="prepare_erp_staging")
    started = time.monotonic()
    with pytest.raises(db.ErpTimeoutError) as err:
        nightly.prepare_erp_staging(run, conn_factory=ErpStagingHook().get_conn)
    assert 2.5 < time.monotonic() - started < 10
    assert str(err.value) == _silent_message(port, 3).replace(
        "/erp_staging:", "/erp_staging?connect_timeout=3:")


def test_a_stage_stuck_behind_a_held_lock_fails_with_the_lock_timeout(erp_url, conn, dag_id, monkeypatch):
    """Through the hook, with the connection's extras setting the lock timeout; nothing is half-staged."""
    lines = _lines(6)
    stage_batch(conn, lines, dag_id=dag_id, run_id="run-1", ds=DS)
    before = _state(conn, dag_id)
    monkeypatch.setenv("AIRFLOW_CONN_ERP_STAGING", erp_url + ("&" if "?" in erp_url else "?") + "lock_timeout_s=0.5")
    holder = _hold_lines(erp_url, "stock_transfer_lines", "dag_id=%s", (dag_id,))
    started = time.monotonic()
    try:
        with pytest.raises(db.ErpTimeoutError) as err, ErpStagingHook().get_conn() as hooked:
            stage_batch(hooked, lines.assign(quantity=lines["quantity"] + 1), dag_id=dag_id, run_id="run-2", ds=DS)
    finally:
        holder.rollback()
        holder.close()
    assert time.monotonic() - started < 5
    assert err.value.setting == "lock_timeout"
    text = str(err.value)
    assert text.startswith("the ERP staging database postgresql://") and ERP_DB in text
    assert "cancelled a statement that waited longer for a lock another session holds" in text
    assert ("than its lock_timeout (0.5 s): canceling statement due to lock timeout (while locking tuple "
            in text) and 'in relation "stock_transfer_lines")' in text
    assert text.endswith("raise SHELFWISE_DB_LOCK_TIMEOUT_S (seconds) or the Airflow connection extra "
                         "'lock_timeout_s'")
    assert isinstance(err.value.__cause__, psycopg.errors.LockNotAvailable)
    assert _state(conn, dag_id) == before


def test_a_statement_running_too_long_fails_with_the_statement_timeout(erp_url, monkeypatch):
    monkeypatch.setenv("SHELFWISE_DB_STATEMENT_TIMEOUT_S", "0.5")
    started = time.monotonic()
    with pytest.raises(db.ErpTimeoutError) as err, db.connect(erp_url) as slow:
        slow.execute("SELECT pg_sleep(10)")
    assert time.monotonic() - started < 5
    assert err.value.setting == "statement_timeout"
    assert str(err.value) == (
        f"the ERP staging database {db.redact(erp_url)} cancelled a statement that ran longer than its "
        "statement_timeout (0.5 s): canceling statement due to statement timeout. Nothing of the open transaction "
        "was committed; if the work needs longer, raise SHELFWISE_DB_STATEMENT_TIMEOUT_S (seconds) or the Airflow "
        "connection extra 'statement_timeout_s'")


def test_a_transaction_left_idle_is_ended_by_the_server(erp_url, monkeypatch):
    monkeypatch.setenv("SHELFWISE_DB_IDLE_IN_TRANSACTION_TIMEOUT_S", "0.3")
    with pytest.raises(db.ErpTimeoutError) as err, db.connect(erp_url) as idle:
        idle.execute("SELECT 1")
        time.sleep(1.0)
        idle.execute("SELECT 1")
    assert err.value.setting == "idle_in_transaction_session_timeout"
    assert "closed a connection whose transaction stayed idle longer than its idle_in_transaction_session_timeout " \
           "(0.3 s)" in str(err.value)


# --- a private PostgreSQL, migrated under short timeouts, restarted mid-stage ---------------------------------


@pytest.fixture(scope="module")
def private_server():
    """A PostgreSQL of this module's own (``pgserver``), deleted afterwards."""
    import pgserver

    DATA_ROOT.parent.mkdir(parents=True, exist_ok=True)
    home = Path(tempfile.mkdtemp(prefix="pg_faults_", dir=DATA_ROOT.parent))
    server = pgserver.get_server(home / "pgdata", cleanup_mode="delete")
    yield server
    server.cleanup()
    shutil.rmtree(home, ignore_errors=True)


def _private_url(server, name: str) -> str:
    base, _, query = server.get_uri().partition("?")
    return f"{base.rsplit('/', 1)[0]}/{name}?{query}"


def test_the_migration_outlasts_the_connections_short_timeouts(private_server, monkeypatch):
    """It waits for another migrator longer than the connection's lock and statement timeouts allow."""
    url = _private_url(private_server, f"{ERP_DB}_migrate")
    db.ensure_database(url)
    monkeypatch.setenv("SHELFWISE_DB_STATEMENT_TIMEOUT_S", "0.3")
    monkeypatch.setenv("SHELFWISE_DB_LOCK_TIMEOUT_S", "0.3")
    revisions = sorted(p.stem for p in (db.MIGRATIONS_DIR / "versions").glob("[0-9]*.py"))
    with db.connect(url, autocommit=True) as other:
        other.execute("SELECT pg_advisory_lock(%s)", (db._MIGRATION_LOCK,))
        # A migration limit of its own that is too short fails the wait clearly, naming its variable.
        monkeypatch.setenv(db.MIGRATION_TIMEOUT_ENV, "0.2")
        with pytest.raises(db.ErpTimeoutError) as err, db.connect(url) as migrator:
            db.migrate(migrator)
        assert str(err.value).startswith(f"the ERP staging migration on {db.redact(url)} outran its own timeout "
                                         "(0.2 s): canceling statement due to ")
        assert str(err.value).endswith("Nothing of it was committed; if it needs longer, raise "
                                       "SHELFWISE_DB_MIGRATION_TIMEOUT_S (seconds)")
        monkeypatch.delenv(db.MIGRATION_TIMEOUT_ENV)
        release = threading.Timer(1.0, lambda: other.execute("SELECT pg_advisory_unlock(%s)", (db._MIGRATION_LOCK,)))
        release.start()
        with db.connect(url) as migrator:
            started = time.monotonic()
            assert db.migrate(migrator) == revisions
            assert time.monotonic() - started > 0.9
            # SET LOCAL: once the migration ends, the connection's own limits apply again.
            assert migrator.execute("SHOW statement_timeout").fetchone() == ("300ms",)
            assert migrator.execute("SHOW lock_timeout").fetchone() == ("300ms",)
        release.join()


@pytest.fixture(scope="module")
def private_url(private_server) -> str:
    url = _private_url(private_server, ERP_DB)
    db.ensure_database(url)
    with db.connect(url) as c:
        db.migrate(c)
    return url


def test_a_server_restarted_mid_stage_fails_cleanly_and_the_retry_is_idempotent(private_server, private_url,
                                                                                 dag_id):
    from pgserver._commands import pg_ctl

    lines = _lines(3_000)
    with db.connect(private_url) as c:
        stage_batch(c, lines.iloc[[1]], dag_id=dag_id, run_id="run-0", ds=DS)
        before = _state(c, dag_id)
    app = f"faults_restart_{dag_id}"
    holder = _hold_lines(private_url, "stock_transfer_lines", "dag_id=%s", (dag_id,))

    def stage() -> object:
        with db.connect(_with_app(private_url, app)) as c:
            return stage_batch(c, lines, dag_id=dag_id, run_id="run-1", ds=DS)

    results, errors, threads = _run_threads({"stager": stage})
    _sessions(private_url, app, until=_waiting_on_a_lock(1))
    pg_ctl(["-w", "-m", "fast", "stop"], pgdata=private_server.pgdata, user=private_server.system_user, timeout=30)
    _join(threads)
    holder.close()
    with pytest.raises(db.ErpConnectionError, match=r"^cannot connect to the ERP staging database "):
        db.connect(private_url)
    private_server.ensure_postgres_running()

    assert not results
    lost = errors["stager"]
    assert type(lost) is db.ErpConnectionError
    assert str(lost).startswith(f"lost the connection to the ERP staging database {db.redact(_with_app(private_url, app))}")
    assert ": terminating connection due to administrator command (while locking tuple " in str(lost)
    assert str(lost).endswith("The server rolls back a transaction left open; a retry is safe (staging, expiring, "
                              "releasing and deciding are idempotent)")
    with db.connect(private_url) as c:
        assert _state(c, dag_id) == before
        retry = stage_batch(c, lines, dag_id=dag_id, run_id="run-2", ds=DS)
        assert (retry.inserted, retry.updated) == (len(lines) - 1, 1)
        staged = _state(c, dag_id)
        again = stage_batch(c, lines, dag_id=dag_id, run_id="run-2", ds=DS)
        assert (again.inserted, again.updated, again.withdrawn) == (0, len(lines), 0)
        assert _state(c, dag_id) == staged
        assert set(_proposed_per_key(c, dag_id).values()) == {1}


# --- two runs staging one date, two planners deciding one line -------------------------------------------------


def test_two_runs_staging_one_date_take_turns(erp_url, conn, dag_id):
    lines = _lines(900)
    stage_batch(conn, lines.iloc[[0]], dag_id=dag_id, run_id="run-0", ds=DS)
    app = f"faults_twice_{dag_id}"
    # Both stagers start while a lock on the existing line holds them, so they really overlap.
    holder = _hold_lines(erp_url, "replenishment_order_lines", "dag_id=%s", (dag_id,))

    def stager(run_id: str) -> Callable[[], object]:
        def stage() -> object:
            with db.connect(_with_app(erp_url, app)) as c:
                return stage_batch(c, lines, dag_id=dag_id, run_id=run_id, ds=DS)
        return stage

    try:
        results, errors, threads = _run_threads({"run-a": stager("run-a"), "run-b": stager("run-b")})
        _sessions(erp_url, app, until=_waiting_on_a_lock(2))
    finally:
        holder.rollback()
        holder.close()
    _join(threads)
    assert not errors, errors
    counts = sorted((r.inserted, r.updated) for r in results.values())
    assert counts == [(0, len(lines)), (len(lines) - 1, 1)]
    proposed = _proposed_per_key(conn, dag_id)
    assert len(proposed) == len(lines) and set(proposed.values()) == {1}
    tiered = conn.execute("SELECT idempotency_key, count(*) FROM erp_staging.audit_log WHERE dag_id=%s"
                          " AND action='tiered' GROUP BY idempotency_key", (dag_id,)).fetchall()
    assert len(tiered) == len(lines) and {n for _, n in tiered} == {1}
    assert len(run_lines(conn, dag_id, DS)) == len(lines)


def test_two_planners_deciding_one_line_exactly_one_wins(erp_url, conn, dag_id):
    stage_batch(conn, _batch(), dag_id=dag_id, run_id="r1", ds=DS)
    [(doc_type, line_id)] = line = _sel(run_lines(conn, dag_id, DS), "business_key == 'bk-0'")
    conn.rollback()
    app = f"faults_decide_{dag_id}"
    holder = _hold_lines(erp_url, "replenishment_order_lines", "line_id=%s", (line_id,))

    def decider(user, approve: bool) -> Callable[[], object]:
        def run() -> object:
            with db.connect(_with_app(erp_url, app)) as c:
                return decide_lines(c, user, line, approve=approve, note=f"{user.username} checked it")
        return run

    try:
        results, errors, threads = _run_threads({"planner": decider(PLANNER, True),
                                                 "manager": decider(MANAGER, False)})
        _sessions(erp_url, app, until=_waiting_on_a_lock(2))
    finally:
        holder.rollback()
        holder.close()
    _join(threads)
    assert not errors, errors
    [winner] = [name for name, out in results.items() if out.decided]
    [loser] = [name for name in results if name != winner]
    status = "approved" if winner == "planner" else "rejected"
    refused = results[loser]
    assert refused.decided == [] and refused.already_decided == [
        {"doc_type": doc_type, "line_id": line_id, "status": status, "decided_by": winner}]
    verb = "rejected" if loser == "manager" else "approved"
    assert refused.message(loser == "planner") == (
        f"0 line(s) {verb}. already decided, first decision stands: {doc_type} #{line_id} {status} by {winner}.")
    decisions = conn.execute("SELECT actor, action FROM erp_staging.audit_log WHERE dag_id=%s"
                             " AND action IN ('approved', 'rejected')", (dag_id,)).fetchall()
    assert decisions == [(winner, status)]


# --- the approval gate's timeout ----------------------------------------------------------------------------------


def _gate_context(dag_id: str) -> dict:
    return {"dag": SimpleNamespace(dag_id=dag_id), "ds": DS.isoformat()}


def test_the_gate_times_out_on_real_staging_and_expires_what_is_pending(conn, dag_id):
    stage_batch(conn, _batch(), dag_id=dag_id, run_id="r1", ds=DS)  # six pending lines, one auto-approved
    conn.rollback()
    deadline = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=1)
    trigger = ApprovalGateTrigger(dag_id=dag_id, ds=DS.isoformat(), deadline=deadline.isoformat(),
                                  poke_interval=0.2)
    event = _first_event(trigger)
    assert event == {"status": "timeout", "pending": 6}
    sensor = ApprovalGateSensor(task_id="wait_for_approval", timeout_minutes="30")
    assert sensor.execute_complete(_gate_context(dag_id), event=event) == {"status": "timeout", "expired": 6}
    assert sum(release_approved(conn, dag_id, DS, run_id="r1").values()) == 1
    lines = run_lines(conn, dag_id, DS)
    assert lines["status"].value_counts().to_dict() == {"expired": 6, "released": 1}
    # A planner arriving late is told the line expired; it stays expired and is never released.
    late = decide_lines(conn, MANAGER, _sel(lines, "business_key == 'bk-1'"), approve=True)
    assert late.decided == [] and late.already_decided[0]["status"] == "expired"
    audit = conn.execute("SELECT action, idempotency_key, note FROM erp_staging.audit_log WHERE dag_id=%s",
                         (dag_id,)).fetchall()
    expired = {key for action, key, _ in audit if action == "expired"}
    assert len(expired) == 6 and not expired & {key for action, key, _ in audit if action == "released"}
    assert {note for action, _, note in audit if action == "expired"} == {"approval gate timed out after 0.5 h"}


def test_a_silent_database_does_not_keep_the_gate_from_timing_out(silent_server, monkeypatch):
    """Every check fails within the connect timeout, so the trigger still fires at its deadline."""
    port, accepted = silent_server
    monkeypatch.setenv("AIRFLOW_CONN_ERP_SILENT", f"postgresql://erp:secret@127.0.0.1:{port}/erp_staging")
    monkeypatch.setenv("SHELFWISE_DB_CONNECT_TIMEOUT_S", "2")
    deadline = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=1)
    trigger = ApprovalGateTrigger(dag_id="retail_nightly", ds=DS.isoformat(), deadline=deadline.isoformat(),
                                  poke_interval=0.1, conn_id="erp_silent")
    started = time.monotonic()
    assert _first_event(trigger) == {"status": "timeout", "pending": 0}
    assert time.monotonic() - started < 8 and accepted
    # Expiring then fails the task clearly (nothing can be released while the database is silent).
    sensor = ApprovalGateSensor(task_id="wait_for_approval", timeout_minutes="0.5", conn_id="erp_silent")
    with pytest.raises(db.ErpTimeoutError, match="no answer within its connect_timeout"):
        sensor.execute_complete(_gate_context("retail_nightly"), event={"status": "timeout", "pending": 0})


def test_a_decision_racing_the_gates_expiry_is_applied_once(erp_url, conn, dag_id):
    stage_batch(conn, _batch(), dag_id=dag_id, run_id="r1", ds=DS)
    line = _sel(run_lines(conn, dag_id, DS), "business_key == 'bk-0'")
    conn.rollback()
    app = f"faults_expiry_{dag_id}"
    holder = _hold_lines(erp_url, "replenishment_order_lines", "line_id=%s", (line[0][1],))

    def expire() -> object:
        with db.connect(_with_app(erp_url, app)) as c:
            return expire_pending(c, dag_id, DS, reason="approval gate timed out")

    def decide() -> object:
        with db.connect(_with_app(erp_url, app)) as c:
            return decide_lines(c, PLANNER, line, approve=True)

    try:
        results, errors, threads = _run_threads({"gate": expire, "planner": decide})
        _sessions(erp_url, app, until=_waiting_on_a_lock(2))
    finally:
        holder.rollback()
        holder.close()
    _join(threads)
    assert not errors, errors
    final = run_lines(conn, dag_id, DS).set_index("business_key").loc["bk-0"]
    if results["planner"].decided:
        assert final["status"] == "approved" and results["gate"] == 5
    else:
        assert final["status"] == "expired" and results["gate"] == 6
        assert results["planner"].already_decided[0]["status"] == "expired"
    changes = conn.execute("SELECT action FROM erp_staging.audit_log WHERE dag_id=%s AND idempotency_key=%s"
                           " AND action IN ('approved', 'expired')",
                           (dag_id, final["idempotency_key"])).fetchall()
    assert changes == [(final["status"],)]
