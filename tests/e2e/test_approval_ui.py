"""End to end: Airflow for real on loopback, the approvals plugin page in headless Chromium.

Starts the API server, scheduler, DAG processor and triggerer (LocalExecutor, SQLite) with an Airflow
home of its own under the test's tmp dir, stages lines for a run, then logs in through Airflow's own
login page as the planner, approves and rejects lines in the plugin page, and checks the database.
The read-only analyst and the planner on a high-tier line are refused and nothing changes.

The lines are staged directly for a run of their own (``staged_run``); ``test_nightly_ui.py`` drives a
real ``retail_nightly`` run that stages through the DAG. Services, browser and login: ``conftest.py``.
Screenshots: ``test-output/e2e/``.
"""

from __future__ import annotations

import datetime as dt
import time
import urllib.error
import urllib.request
import uuid

import pandas as pd
import pytest

from include.erp import db
from include.erp.staging import run_lines, stage_batch
from tests.e2e.conftest import http_get, login, shot, start_airflow, wait_message

pytestmark = pytest.mark.e2e

DS = dt.date(2026, 11, 27)


@pytest.fixture(scope="module")
def airflow(tmp_path_factory, erp_url):
    """Airflow's four services on loopback, in one process group that is always stopped."""
    with start_airflow(tmp_path_factory.mktemp("airflow-home"), erp_url) as services:
        yield services


def _lines() -> pd.DataFrame:
    """Four medium lines a planner may decide, two high lines only a manager may, one auto-approved."""
    spec = [("replenishment", "medium"), ("replenishment", "medium"), ("transfer", "medium"),
            ("po_exception", "medium"), ("replenishment", "high"), ("transfer", "high"), ("transfer", "low")]
    rows = []
    for i, (doc, tier) in enumerate(spec):
        rows.append({
            "doc_type": doc, "business_key": f"e2e-{i}", "sku": f"SKU{i:05d}", "from_location": "DC01",
            "to_location": f"S{i:04d}", "supplier_id": None if doc == "transfer" else "SUP002",
            "po_id": "PO-1" if doc == "po_exception" else None, "po_line": i if doc == "po_exception" else None,
            "action": {"replenishment": "order", "transfer": "replenish", "po_exception": "expedite"}[doc],
            "quantity": 20.0 + i, "unit_cost": 4.0, "value": (20.0 + i) * 4.0, "need_by": DS + dt.timedelta(days=3),
            "explanation": {"forecast_over_lead_time": 18.5, "inventory_position": 4.0, "safety_stock": 6.0,
                            "model": "ses_seasonal", "anomalies": []},
            "risk_tier": tier, "tier_reasons": [] if tier == "low" else [f"{tier}_value"],
            "auto_approve": tier == "low",
        })
    return pd.DataFrame(rows)


@pytest.fixture
def staged_run(erp_url):
    """A run's lines waiting at the gate: ``(dag_id, ds)``."""
    dag_id = f"e2e_nightly_{uuid.uuid4().hex[:8]}"
    with db.connect(erp_url) as conn:
        stage_batch(conn, _lines(), dag_id=dag_id, run_id=f"manual__{DS}", ds=DS)
    return dag_id, DS


def _statuses(erp_url: str, dag_id: str) -> dict[str, str]:
    with db.connect(erp_url) as conn:
        lines = run_lines(conn, dag_id, DS)
    return dict(zip(lines["business_key"], lines["status"], strict=True))


def _row(page, business_key: str):
    return page.locator(f'tr[data-business-key="{business_key}"]')


def test_plugin_endpoints_require_airflow_login(airflow):
    base = airflow["base"]
    assert http_get(f"{base}/shelfwise/api/lines") == 401
    with pytest.raises(urllib.error.HTTPError) as anonymous:
        urllib.request.urlopen(f"{base}/shelfwise/api/me", timeout=10)
    headers = anonymous.value.headers
    assert "frame-ancestors 'self'" in headers["Content-Security-Policy"]
    assert (headers["X-Content-Type-Options"], headers["Referrer-Policy"]) == ("nosniff", "same-origin")
    request = urllib.request.Request(f"{base}/shelfwise/api/decisions", method="POST",
                                     data=b'{"lines": ["transfer:1"], "approve": true}',
                                     headers={"Content-Type": "application/json"})
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=10)
    assert refused.value.code == 401
    bogus = urllib.request.Request(f"{base}/shelfwise/api/lines", headers={"Authorization": "Bearer not-a-jwt"})
    with pytest.raises(urllib.error.HTTPError) as invalid:
        urllib.request.urlopen(bogus, timeout=10)
    assert invalid.value.code in (401, 403)


def test_planner_decides_in_the_plugin_page_and_others_are_refused(airflow, browser, staged_run, erp_url):
    started = time.monotonic()
    base = airflow["base"]
    dag_id, ds = staged_run
    path = f"/shelfwise/approvals?dag_id={dag_id}&ds={ds.isoformat()}"
    before = _statuses(erp_url, dag_id)
    assert sorted(before.values()).count("pending_approval") == 6

    # The planner: approves two lines one by one, rejects two as a selection with a note.
    page = login(browser, base, "planner", path)
    assert "planner (Airflow role user = planner)" in page.locator("#who").inner_text()
    assert page.locator("tbody tr[data-line]").count() == 6
    shot(page, "01-planner-pending")
    for key in ("e2e-0", "e2e-2"):
        page.locator("#message").evaluate("m => { m.textContent = ''; }")
        _row(page, key).locator("button.approve").click()
        assert wait_message(page) == "1 line(s) approved."
        _row(page, key).wait_for(state="detached")
    page.locator("#message").evaluate("m => { m.textContent = ''; }")
    for key in ("e2e-1", "e2e-3"):
        _row(page, key).locator("input.pick").check()
    page.locator("#note").fill("over-ordered against the promo plan")
    page.locator("#reject-selected").click()
    assert wait_message(page) == "2 line(s) rejected."
    shot(page, "02-planner-decided")

    # A high line is read only for the planner; a direct call is refused with 403 and changes nothing.
    assert _row(page, "e2e-4").locator("button.approve").count() == 0
    high = _row(page, "e2e-4").get_attribute("data-line")
    call = """async (body) => {
        const r = await fetch('/shelfwise/api/decisions', {method: 'POST', credentials: 'same-origin',
            headers: {'Content-Type': 'application/json'}, body: JSON.stringify(body)});
        return {status: r.status, body: await r.json()};
    }"""
    run = {"dag_id": dag_id, "ds": ds.isoformat()}
    answer = page.evaluate(call, {"lines": [high], "approve": True, **run})
    assert answer["status"] == 403
    assert answer["body"]["detail"].startswith("planner (Airflow role user = planner) may not decide high-tier lines")
    assert answer["body"]["detail"].endswith("Nothing was changed.")
    # Loose values are refused, not coerced, and a decision must say which run it is about.
    loose = page.evaluate(call, {"lines": [high], "approve": "yes", **run})
    assert loose["status"] == 422 and "approve" in loose["body"]["detail"]
    unscoped = page.evaluate(call, {"lines": [high], "approve": True})
    assert unscoped["status"] == 422 and [e["loc"] for e in unscoped["body"]["errors"]] == [
        ["body", "dag_id"], ["body", "ds"]]

    after_planner = _statuses(erp_url, dag_id)
    assert after_planner == {**before, "e2e-0": "approved", "e2e-2": "approved", "e2e-1": "rejected",
                             "e2e-3": "rejected"}
    with db.connect(erp_url) as conn:
        audit = conn.execute(
            "SELECT split_part(idempotency_key, '|', 4), action, actor, note FROM erp_staging.audit_log"
            " WHERE dag_id=%s AND action IN ('approved', 'rejected') ORDER BY audit_id", (dag_id,)).fetchall()
    assert sorted(audit) == [("e2e-0", "approved", "planner", None), ("e2e-1", "rejected", "planner",
                             "over-ordered against the promo plan"), ("e2e-2", "approved", "planner", None),
                             ("e2e-3", "rejected", "planner", "over-ordered against the promo plan")]
    page.context.close()

    # The analyst (viewer) sees the lines read only; trying anyway is refused and nothing changes.
    page = login(browser, base, "analyst", path)
    assert "may decide tiers: none (read only)" in page.locator("body").inner_text()
    assert page.locator("button.approve").count() == 0
    page.locator("#pick-all").check()
    page.locator("#approve-selected").click()
    message = wait_message(page)
    assert "analyst (Airflow role viewer = no Shelfwise role) may not approve or reject lines" in message
    assert "HTTP 403" in message
    shot(page, "03-analyst-refused")
    assert _statuses(erp_url, dag_id) == after_planner
    page.context.close()

    # The manager may decide the high line the planner could not.
    page = login(browser, base, "manager", path)
    _row(page, "e2e-4").locator("button.approve").click()
    assert wait_message(page) == "1 line(s) approved."
    shot(page, "04-manager-decided")
    page.context.close()
    assert _statuses(erp_url, dag_id)["e2e-4"] == "approved"
    print(f"e2e browser part: {time.monotonic() - started:.1f} s")
