"""retail_nightly for real: `airflow dags test` on a tiny generated world against the real PostgreSQL.

Covers the approval path (planner approves some lines and rejects others while the run waits at the
gate), a re-run of the same date (nothing duplicated, decided lines untouched), a gate timeout
(pending lines expire and are never released) and a replay run (nothing staged for planners).

The run's Required Action is answered as a user would: through Airflow's REST API, served by an
``airflow api-server`` on the metadata DB of the ``airflow dags test`` runs (one per module).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from include.erp import db
from include.erp.staging import decide, pending_count, run_lines
from include.reporting.line_text import line_story

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))
import required_action  # noqa: E402 - scripts/ is not a package
from airflow_services import api_server  # noqa: E402 - scripts/ is not a package

from tests.worlds import clear_run_lines, review_policy, tiny_world  # noqa: E402

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
AIRFLOW = str(Path(sys.executable).parent / "airflow")
DS = dt.date(2026, 10, 30)
DAG_ID = "retail_nightly"


@pytest.fixture(scope="module")
def world_root(tmp_path_factory) -> str:
    return tiny_world(str(tmp_path_factory.mktemp("nightly") / "shelfwise"), DS)


@pytest.fixture(scope="module")
def airflow_api(tmp_path_factory) -> Iterator[str]:
    """Base URL of an API server on the metadata DB that ``airflow dags test`` uses (``AIRFLOW_HOME``)."""
    with api_server(os.environ, log_path=tmp_path_factory.mktemp("api-server") / "api-server.log") as base:
        yield base


def _login(base: str, user: str) -> required_action.ApiSession:
    passwords = json.loads(Path(os.environ["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"]).read_text())
    return required_action.ApiSession.login(base, user, passwords[user])


@pytest.fixture(scope="module")
def planner(airflow_api) -> required_action.ApiSession:
    return _login(airflow_api, "planner")


def _clean(ds: dt.date) -> None:
    clear_run_lines(DAG_ID, ds)


def _start(root: str, ds: dt.date, conf: dict, log_path: Path) -> subprocess.Popen:
    env = {**os.environ, "SHELFWISE_DATA_ROOT": root, "PYTHONPATH": str(ROOT),
           "SHELFWISE_POLICY_FILE": review_policy(log_path.parent)}
    conf = {"history_days": 120, "shard_size": 25, **conf}
    log = open(log_path, "w")  # noqa: SIM115 - closed with the process below
    return subprocess.Popen([AIRFLOW, "dags", "test", DAG_ID, ds.isoformat(), "-c", json.dumps(conf)], env=env,
                            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=ROOT,
                            start_new_session=True)


def _finish(proc: subprocess.Popen, log_path: Path, timeout: float = 300) -> str:
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, 9)
        pytest.fail(f"retail_nightly did not finish in {timeout} s; log {log_path}")
    text = log_path.read_text(errors="replace")
    assert "DagRun Finished" in text and "state=success" in text.split("DagRun Finished", 1)[1][:2000], \
        text[-4000:]
    return text


def _wait_pending(api: required_action.ApiSession, proc: subprocess.Popen, ds: dt.date, log_path: Path,
                  timeout: float = 300) -> int:
    deadline = time.time() + timeout
    while time.time() < deadline:
        assert proc.poll() is None, log_path.read_text(errors="replace")[-4000:]
        with db.connect() as conn:
            n = pending_count(conn, DAG_ID, ds)
        if n and required_action.awaiting_run_id(api, DAG_ID, ds):
            return n
        time.sleep(1)
    os.killpg(proc.pid, 9)
    pytest.fail(f"no line reached pending_approval in {timeout} s; log {log_path}")


def _awaiting_run(api: required_action.ApiSession, ds: dt.date, proc: subprocess.Popen, log_path: Path,
                  timeout: float = 120) -> str:
    """The id of the run whose Required Action waits for input, once it does."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        assert proc.poll() is None, log_path.read_text(errors="replace")[-4000:]
        run_id = required_action.awaiting_run_id(api, DAG_ID, ds)
        if run_id:
            return run_id
        time.sleep(1)
    os.killpg(proc.pid, 9)
    pytest.fail(f"the Required Action never waited for input; log {log_path}")


def _answer_review(api: required_action.ApiSession, ds: dt.date, option: str, proc: subprocess.Popen,
                   log_path: Path) -> None:
    """Answer the run's Required Action through the REST API as ``api``'s user once it waits for input."""
    run_id = _awaiting_run(api, ds, proc, log_path)
    response = required_action.answer(api, DAG_ID, run_id, option)
    assert response["chosen_options"] == [option]
    assert response["responded_by"]["name"] == api.user


def _audit(run_ds: dt.date) -> list[tuple]:
    with db.connect() as conn:
        return conn.execute(
            "SELECT actor, action, idempotency_key, from_status, to_status FROM erp_staging.audit_log"
            " WHERE dag_id=%s AND ds=%s ORDER BY audit_id", (DAG_ID, run_ds)).fetchall()


def test_planner_decisions_release_only_approved_lines_and_rerun_is_idempotent(world_root, tmp_path, airflow_api,
                                                                                planner):
    _clean(DS)
    audit_before = len(_audit(DS))
    proc = _start(world_root, DS, {"gate_poke_seconds": 1}, tmp_path / "run1.log")
    pending = _wait_pending(planner, proc, DS, tmp_path / "run1.log")
    assert pending > 0
    with db.connect() as conn:
        lines = run_lines(conn, DAG_ID, DS)
        waiting = lines[lines["status"] == "pending_approval"]
        # Every line of the night reads as a sentence on the approvals page, from what the night staged.
        stories = [line_story(line) for line in lines.to_dict("records")]
        assert all(stories), lines.loc[[not s for s in stories], ["doc_type", "action", "explanation"]]
        auto = set(lines.loc[lines["status"] == "auto_approved", "idempotency_key"])
        # Line by line (as in the approvals page): high-tier lines by the manager (a planner may not
        # decide them), and half of the others by the planner...
        approved, by_user = set(), {}
        high = waiting[waiting["risk_tier"] == "high"]
        rest = waiting[waiting["risk_tier"] != "high"]
        assert len(rest) >= 1, "the tiny world has planner-level lines waiting"
        for user, frame in (("manager", high), ("planner", rest.iloc[: len(rest) // 2])):
            for row in frame.itertuples():
                out = decide(conn, row.doc_type, [int(row.line_id)], approve=True, user=user, note="checked")
                assert out["decided"] == [int(row.line_id)]
                approved.add(row.idempotency_key)
                by_user[row.idempotency_key] = user
    rejected = set(waiting["idempotency_key"]) - approved
    by_user.update({k: "planner" for k in rejected})
    # An analyst (viewer) may read the Required Action but not answer it: the API says so.
    run_id = _awaiting_run(planner, DS, proc, tmp_path / "run1.log")
    with pytest.raises(required_action.AirflowApiError, match="as analyst: HTTP 403") as refused:
        required_action.answer(_login(airflow_api, "analyst"), DAG_ID, run_id, "Reject all pending")
    assert refused.value.status == 403
    # ...and the rest through the run's Required Action, as the planner.
    _answer_review(planner, DS, "Reject all pending", proc, tmp_path / "run1.log")
    _finish(proc, tmp_path / "run1.log")

    with db.connect() as conn:
        after = run_lines(conn, DAG_ID, DS).set_index("idempotency_key")
    assert set(after.index[after["status"] == "released"]) == auto | approved
    assert set(after.index[after["status"] == "rejected"]) == rejected
    assert (after["status"] == "pending_approval").sum() == 0
    assert after.loc[list(by_user), "decided_by"].to_dict() == by_user
    audit = _audit(DS)[audit_before:]
    assert {(a[2], a[1], a[0]) for a in audit if a[0] in ("planner", "manager")} == \
        {(k, "approved", by_user[k]) for k in approved} | {(k, "rejected", "planner") for k in rejected}
    assert {a[2] for a in audit if a[1] == "released"} == auto | approved

    with db.connect() as conn:
        runs = conn.execute("SELECT contract_id, outcome FROM ops.contract_runs WHERE ds=%s AND dag_id=%s",
                            (DS, DAG_ID)).fetchall()
    assert {r[0] for r in runs} >= {"pos_sales", "items", "inventory_snapshot", "returns"}
    report = Path(world_root) / "reports" / "kpis" / f"ds={DS}"
    kpis = json.loads((report / "kpis.json").read_text())
    assert kpis["released_lines"] == len(auto | approved)
    assert (report / "kpis.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # The week's replay against the ERP's rule ran on a night's own demand and is in the report.
    assert kpis["baseline_replay"].get("measured_on"), kpis["baseline_replay"]
    assert kpis["stockout_reduction"] is not None and kpis["markdown_avoided_value"] is not None
    assert "## Against the ERP's rule" in (report / "report.md").read_text()

    # The same date again: nothing duplicated, decided and released lines untouched.
    audit_mark = len(_audit(DS))
    proc = _start(world_root, DS, {"gate_poke_seconds": 1, "gate_timeout_minutes": 1}, tmp_path / "run2.log")
    _finish(proc, tmp_path / "run2.log")
    with db.connect() as conn:
        again = run_lines(conn, DAG_ID, DS).set_index("idempotency_key")
    assert sorted(again.index) == sorted(after.index)
    assert again["status"].to_dict() == after["status"].to_dict()
    rerun_audit = _audit(DS)[audit_mark:]
    assert [a for a in rerun_audit if a[1] in ("proposed", "released", "approved")] == []


def test_gate_timeout_expires_pending_lines_and_never_releases_them(world_root, tmp_path, planner):
    ds = DS - dt.timedelta(days=1)
    _clean(ds)
    audit_before = len(_audit(ds))  # the audit log is append-only: earlier runs' entries stay
    proc = _start(world_root, ds, {"gate_poke_seconds": 1, "gate_timeout_minutes": 0.1}, tmp_path / "run.log")
    # The review closes without deciding anything; the gate then finds its deadline passed.
    _answer_review(planner, ds, "I have reviewed the lines", proc, tmp_path / "run.log")
    _finish(proc, tmp_path / "run.log")
    with db.connect() as conn:
        lines = run_lines(conn, DAG_ID, ds)
    assert (lines["status"] == "expired").sum() > 0, "the tiny world always has lines above the low tier"
    assert set(lines["status"]) <= {"expired", "released"}
    expired = set(lines.loc[lines["status"] == "expired", "idempotency_key"])
    audit = _audit(ds)[audit_before:]
    assert {a[2] for a in audit if a[1] == "expired"} == expired
    assert not expired & {a[2] for a in audit if a[1] == "released"}


def test_replay_computes_everything_but_stages_nothing(world_root, tmp_path):
    ds = DS - dt.timedelta(days=2)
    _clean(ds)
    proc = _start(world_root, ds, {"mode": "replay"}, tmp_path / "run.log")
    _finish(proc, tmp_path / "run.log")
    with db.connect() as conn:
        assert len(run_lines(conn, DAG_ID, ds)) == 0
    from include.storage import read_partition

    replayed = read_partition("reports", "replay_proposals", ds, world_root)
    assert len(replayed) > 0
    assert set(replayed["risk_tier"]) <= {"low", "medium", "high"}
    stages = Path(world_root) / "reports" / "stages" / DAG_ID / f"ds={ds}"
    assert json.loads((stages / "stage_proposals.json").read_text())["mode"] == "replay"
    assert json.loads((stages / "release_approved.json").read_text()) == {"mode": "replay", "released": {}}
