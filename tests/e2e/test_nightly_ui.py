"""End to end: a real ``retail_nightly`` run, scheduled by Airflow's own scheduler, decided in the browser.

Starts the API server, scheduler, DAG processor and triggerer (LocalExecutor, SQLite, parallelism 4) on
loopback with ``SHELFWISE_DATA_ROOT`` at a tiny generated world, triggers ``retail_nightly`` for
2026-10-30 through the REST API and waits until ``review_batch`` (the Required Action) waits for input.
Then, in headless Chromium: the planner approves some lines and rejects others on the Approvals page, a
high-tier line is refused to the planner and approved by the manager, and the planner answers the run's
Required Action in Airflow's own UI ("Reject all pending" for the rest). The run must finish
``success``, releasing exactly the approved and auto-approved lines, with the audit log naming who
decided. Screenshots: ``test-output/e2e/nightly-*.png``.

Then, on the same services, an analyst backfills the night before (``POST /api/v2/backfills``, what
``airflow backfill create`` does): the scheduler runs it in replay, it must succeed without a Required
Action, write what it would have proposed to ``reports/replay_proposals``, stage nothing, and leave the
live night's lines and the audit log exactly as they were.
"""

from __future__ import annotations

import datetime as dt
import sys
import time
import urllib.parse
from pathlib import Path

import pytest

from include.erp import db
from include.erp.staging import run_lines

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))
from required_action import AirflowApiError, ApiSession  # noqa: E402 - scripts/ is not a package

from tests.e2e.conftest import SHOTS, USERS, login, shot, start_airflow, wait_message
from tests.worlds import clear_run_lines, review_policy, tiny_world

pytestmark = pytest.mark.e2e

DAG_ID = "retail_nightly"
DS = dt.date(2026, 10, 30)
CONF = {"history_days": 120, "shard_size": 25, "gate_poke_seconds": 2}
REVIEW_TIMEOUT_S = 180
FINISH_TIMEOUT_S = 120


@pytest.fixture(scope="module")
def world_root(tmp_path_factory) -> str:
    """The tiny retailer up to ``DS``, its history before ``DS`` loaded as earlier nights did."""
    return tiny_world(str(tmp_path_factory.mktemp("nightly-ui") / "shelfwise"), DS)


@pytest.fixture(scope="module")
def airflow(tmp_path_factory, erp_url, world_root):
    """Airflow on loopback whose scheduler runs tasks (LocalExecutor) against the tiny world."""
    extra = {
        "SHELFWISE_DATA_ROOT": world_root,
        "SHELFWISE_POLICY_FILE": review_policy(tmp_path_factory.mktemp("policy")),
        "AIRFLOW__CORE__PARALLELISM": "4",
        # Only the triggered run: no scheduled night (catchup=False would still create the latest one).
        "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "False",
    }
    with start_airflow(tmp_path_factory.mktemp("airflow-home"), erp_url, extra) as services:
        yield services


def _status(api: ApiSession, path: str) -> int:
    """HTTP status of a GET as ``api``'s user."""
    try:
        api.call("GET", path)
        return 200
    except AirflowApiError as exc:
        return exc.status


def _create_backfill(api: ApiSession, body: dict, attempts: int = 10) -> dict:
    """``POST /api/v2/backfills``, again while the SQLite metadata DB is busy: Airflow refuses a backfill
    with HTTP 503 while another writer (here the scheduler) holds the database, as the README says."""
    for _ in range(attempts - 1):
        try:
            return api.call("POST", "/api/v2/backfills", body=body)
        except AirflowApiError as exc:
            if exc.status != 503:
                raise
            time.sleep(3)
    return api.call("POST", "/api/v2/backfills", body=body)


def _clean(erp_url: str) -> None:
    clear_run_lines(DAG_ID, DS)  # as the owner: the application role cannot delete decided lines


def _audit(erp_url: str) -> list[tuple]:
    with db.connect(erp_url) as conn:
        return conn.execute(
            "SELECT actor, action, idempotency_key FROM erp_staging.audit_log WHERE dag_id=%s AND ds=%s"
            " ORDER BY audit_id", (DAG_ID, DS)).fetchall()


def _task_states(api: ApiSession, run_path: str) -> dict[str, str | None]:
    tis = api.call("GET", f"{run_path}/taskInstances?limit=100")["task_instances"]
    return {f"{t['task_id']}[{t['map_index']}]": t["state"] for t in tis}


def _fail(airflow: dict, api: ApiSession, run_path: str, what: str) -> None:
    states = _task_states(api, run_path)
    tail = airflow["log"].read_text(errors="replace")[-3000:]
    pytest.fail(f"{what}\ntask states: {states}\nservices log tail:\n{tail}")


def _wait_for_review(airflow: dict, api: ApiSession, run_path: str) -> None:
    deadline = time.monotonic() + REVIEW_TIMEOUT_S
    while time.monotonic() < deadline:
        run = api.call("GET", run_path)
        if run["state"] in ("failed", "success"):
            _fail(airflow, api, run_path, f"the run ended {run['state']} before the review")
        ti = api.call("GET", f"{run_path}/taskInstances/review_batch")
        if ti["state"] == "awaiting_input":
            return
        time.sleep(2)
    _fail(airflow, api, run_path, f"review_batch did not wait for input within {REVIEW_TIMEOUT_S} s")


def _ready(airflow: dict) -> ApiSession:
    """The admin's API once ``retail_nightly`` is parsed, unpaused."""
    admin = ApiSession.login(airflow["base"], "admin", USERS["admin"][0])
    deadline = time.monotonic() + 120
    while _status(admin, f"/api/v2/dags/{DAG_ID}") != 200:
        if time.monotonic() > deadline:
            pytest.fail(f"{DAG_ID} was not parsed within 120 s:\n{airflow['log'].read_text()[-3000:]}")
        time.sleep(2)
    admin.call("PATCH", f"/api/v2/dags/{DAG_ID}", body={"is_paused": False})
    return admin


def _pick(page, keys: list[str]) -> None:
    page.locator("#message").evaluate("m => { m.textContent = ''; }")
    for key in keys:
        page.locator(f'input.pick[value="{key}"]').check()


def _answer_required_action(page, base: str, run_id: str, option: str) -> None:
    """The planner answers the run's Required Action in Airflow's UI (task instance, Required Actions tab)."""
    quoted = urllib.parse.quote(run_id, safe="")
    page.goto(f"{base}/dags/{DAG_ID}/runs/{quoted}/tasks/review_batch/required_actions")
    button = page.get_by_role("button", name=option, exact=True)
    button.wait_for(state="visible", timeout=60_000)
    shot(page, "nightly-03-required-action")
    button.click()


def test_nightly_run_decided_in_the_browser_releases_only_approved_lines(airflow, browser, erp_url):
    started = time.monotonic()
    base = airflow["base"]
    _clean(erp_url)
    audit_before = len(_audit(erp_url))

    admin = _ready(airflow)
    run = admin.call("POST", f"/api/v2/dags/{DAG_ID}/dagRuns",
                     body={"logical_date": f"{DS.isoformat()}T00:00:00+00:00", "conf": CONF})
    run_id = run["dag_run_id"]
    run_path = f"/api/v2/dags/{DAG_ID}/dagRuns/{urllib.parse.quote(run_id, safe='')}"
    _wait_for_review(airflow, admin, run_path)
    waiting_since = time.monotonic()
    print(f"review_batch awaiting input after {waiting_since - started:.1f} s")

    with db.connect(erp_url) as conn:
        lines = run_lines(conn, DAG_ID, DS)
    lines["key"] = lines["doc_type"] + ":" + lines["line_id"].astype(int).astype(str)
    auto = set(lines.loc[lines["status"] == "auto_approved", "idempotency_key"])
    waiting = lines[lines["status"] == "pending_approval"]
    high = waiting[waiting["risk_tier"] == "high"]
    rest = waiting[waiting["risk_tier"] != "high"]
    assert len(rest) >= 1, "the tiny world has planner-level lines waiting"
    # Of the planner-level lines: a half approved and a line or more rejected on the page, the rest left
    # for the Required Action. (The test's policy sends every transfer to a planner, so the tiny world
    # of 2026-10-30 has planner-level lines waiting whatever the replenishment policy proposes.)
    n_approve = len(rest) // 2
    n_reject = max(1, (len(rest) - n_approve) // 2)
    to_approve = rest.iloc[:n_approve]
    to_reject = rest.iloc[n_approve:n_approve + n_reject]
    left = rest.iloc[n_approve + n_reject:]
    key_of = dict(zip(lines["key"], lines["idempotency_key"], strict=True))

    # The planner decides on the Approvals page, filtered to this run's date.
    path = f"/shelfwise/approvals?dag_id={DAG_ID}&ds={DS.isoformat()}"
    page = login(browser, base, "planner", path)
    assert page.locator("tbody tr[data-line]").count() == len(waiting)
    shot(page, "nightly-01-planner-pending")
    # A line's chart (history, forecast, stock with and without it) loads when its disclosure opens.
    charted = page.locator("details.chart").first
    charted.locator("summary").click()
    page.wait_for_function("() => { const i = document.querySelector('details.chart[open] img');"
                           " return i && i.complete && i.naturalWidth > 0; }", timeout=30_000)
    assert "demand, forecast and stock of" in charted.locator("img").get_attribute("alt")
    charted.screenshot(path=str(SHOTS / "nightly-01b-line-chart.png"))
    charted.locator("summary").click()
    if len(to_approve):
        _pick(page, list(to_approve["key"]))
        page.locator("#approve-selected").click()
        assert wait_message(page) == f"{len(to_approve)} line(s) approved."
    _pick(page, list(to_reject["key"]))
    page.locator("#note").fill("not needed this week")
    page.locator("#reject-selected").click()
    assert wait_message(page) == f"{len(to_reject)} line(s) rejected."
    for key in [*to_approve["key"], *to_reject["key"]]:
        page.locator(f'tr[data-line="{key}"]').wait_for(state="detached", timeout=30_000)
    shot(page, "nightly-02-planner-decided")

    # High-tier lines are read only for the planner, and a direct call is refused.
    for key in high["key"]:
        assert page.locator(f'tr[data-line="{key}"] button.approve').count() == 0
    if len(high):
        refused = page.evaluate(
            """async ([line, dag_id, ds]) => {
                const r = await fetch('/shelfwise/api/decisions', {method: 'POST', credentials: 'same-origin',
                    headers: {'Content-Type': 'application/json'},
                    body: JSON.stringify({lines: [line], approve: true, dag_id, ds})});
                return r.status;
            }""", [high["key"].iloc[0], DAG_ID, DS.isoformat()])
        assert refused == 403
        manager = login(browser, base, "manager", path)
        _pick(manager, list(high["key"]))
        manager.locator("#approve-selected").click()
        assert wait_message(manager) == f"{len(high)} line(s) approved."
        shot(manager, "nightly-02b-manager-decided")
        manager.context.close()

    # The planner closes the review in Airflow's Required Actions: the rest is rejected.
    option = "Reject all pending" if len(left) else "I have reviewed the lines"
    time.sleep(max(0.0, 3 - (time.monotonic() - waiting_since)))  # an answer in the first ~1 s is lost
    _answer_required_action(page, base, run_id, option)
    deadline = time.monotonic() + FINISH_TIMEOUT_S
    state = None
    while time.monotonic() < deadline:
        state = admin.call("GET", run_path)["state"]
        if state in ("success", "failed"):
            break
        time.sleep(2)
    shot(page, "nightly-04-answered")
    if state != "success":
        _fail(airflow, admin, run_path, f"the run ended {state!r}, expected success")
    page.context.close()
    hitl = admin.call("GET", f"{run_path}/taskInstances/review_batch/-1/hitlDetails")
    assert hitl["chosen_options"] == [option]
    assert hitl["responded_by_user"]["name"] == "planner"

    approved = {key_of[k] for k in [*to_approve["key"], *high["key"]]}
    rejected = {key_of[k] for k in [*to_reject["key"], *left["key"]]}
    with db.connect(erp_url) as conn:
        after = run_lines(conn, DAG_ID, DS).set_index("idempotency_key")
    assert set(after.index[after["status"] == "released"]) == auto | approved
    assert set(after.index[after["status"] == "rejected"]) == rejected
    assert (after["status"] == "pending_approval").sum() == 0
    by_user = {key_of[k]: "planner" for k in [*to_approve["key"], *to_reject["key"], *left["key"]]}
    by_user.update({key_of[k]: "manager" for k in high["key"]})
    assert after.loc[list(by_user), "decided_by"].to_dict() == by_user
    audit = _audit(erp_url)[audit_before:]
    assert {(a[2], a[1], a[0]) for a in audit if a[0] in ("planner", "manager")} == \
        {(k, "approved", by_user[k]) for k in approved} | {(k, "rejected", "planner") for k in rejected}
    assert {a[2] for a in audit if a[1] == "released"} == auto | approved
    print(f"e2e nightly: {time.monotonic() - started:.1f} s; {len(auto)} auto, {len(approved)} approved "
          f"({len(high)} high by the manager), {len(rejected)} rejected ({len(left)} by the Required Action)")


def test_a_backfill_replays_a_past_night_without_touching_the_erp(airflow, erp_url, world_root):
    """An analyst's backfill, run by the scheduler: everything is computed, nothing reaches the ERP."""
    from include.storage import read_partition

    past = DS - dt.timedelta(days=1)
    clear_run_lines(DAG_ID, past)
    admin = _ready(airflow)
    with db.connect(erp_url) as conn:
        live_before = run_lines(conn, DAG_ID, DS)[["idempotency_key", "status"]].sort_values("idempotency_key")
        audit_before = conn.execute("SELECT count(*) FROM erp_staging.audit_log").fetchone()[0]
    backfill = _create_backfill(admin, {
        "dag_id": DAG_ID, "from_date": f"{past.isoformat()}T00:00:00+00:00",
        "to_date": f"{past.isoformat()}T23:59:59+00:00", "dag_run_conf": CONF, "max_active_runs": 1,
        "reprocess_behavior": "completed"})
    # A whole night under the scheduler, beside the other lane's tests on 2 cores: generous, never waited out.
    deadline = time.monotonic() + 2 * FINISH_TIMEOUT_S + 60
    run = None
    while time.monotonic() < deadline:
        runs = admin.call("GET", f"/api/v2/dags/{DAG_ID}/dagRuns?run_type=backfill&limit=50")["dag_runs"]
        run = next((r for r in runs if r["logical_date"].startswith(past.isoformat())), None)
        if run and run["state"] in ("success", "failed"):
            break
        time.sleep(3)
    assert run is not None, f"backfill {backfill['id']} created no run for {past}"
    run_path = f"/api/v2/dags/{DAG_ID}/dagRuns/{urllib.parse.quote(run['dag_run_id'], safe='')}"
    if run["state"] != "success":
        _fail(airflow, admin, run_path, f"the backfill run ended {run['state']!r}, expected success")
    states = _task_states(admin, run_path)
    assert states["report_kpis[-1]"] == "success" and states["review_batch[-1]"] == "skipped", states

    # What would have been proposed is on disk for the analyst; the ERP saw none of it, and the live
    # night's lines are exactly as they were.
    replayed = read_partition("reports", "replay_proposals", past, world_root)
    assert len(replayed) > 0 and {"doc_type", "risk_tier"} <= set(replayed.columns)
    with db.connect(erp_url) as conn:
        assert run_lines(conn, DAG_ID, past).empty
        live_after = run_lines(conn, DAG_ID, DS)[["idempotency_key", "status"]].sort_values("idempotency_key")
        audit_after = conn.execute("SELECT count(*) FROM erp_staging.audit_log").fetchone()[0]
    assert live_after.reset_index(drop=True).equals(live_before.reset_index(drop=True))
    assert audit_after == audit_before
