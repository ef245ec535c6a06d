"""End to end: Airflow for real on loopback, the approvals plugin page in headless Chromium.

Starts the API server, scheduler, DAG processor and triggerer (LocalExecutor, SQLite) with an Airflow
home of its own under the test's tmp dir, stages lines for a run, then logs in through Airflow's own
login page as the planner, approves and rejects lines in the plugin page, and checks the database.
The read-only analyst and the planner on a high-tier line are refused and nothing changes.

The same stack serves the finance review items (decided or escalated by ``finance``, read only for a
planner) and the executive dashboard over nights recorded in ``ops.kpi_history`` (any Shelfwise role reads
it, ``analyst`` is refused).

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
from include.erp.staging import record_kpis, release_approved, run_lines, stage_batch
from include.governance.policy import load_policy, tier_proposals
from include.reporting.dashboard import BY_KEY, policy_targets
from tests.e2e.conftest import SHOTS, http_get, login, shot, start_airflow, wait_message

pytestmark = pytest.mark.e2e

DS = dt.date(2026, 11, 27)


@pytest.fixture(scope="module")
def airflow(tmp_path_factory, erp_url):
    """Airflow's four services on loopback, in one process group that is always stopped, with the demo's users
    (``finance`` is an Airflow viewer whom the policy's ``user_roles`` makes finance)."""
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
    # ... and approves the high transfer with another quantity, for a reason: the line keeps the proposal.
    page.locator("#message").evaluate("m => { m.textContent = ''; }")
    override = _row(page, "e2e-5").locator("details.override")
    override.locator("summary").click()
    override.locator("input.qty").fill("30")
    override.locator("select.reason").select_option("local_event")
    shot(page, "04b-manager-override")
    override.locator("button.override").click()
    assert wait_message(page).endswith("approved with 30 instead of the proposed 25 (local_event).")
    page.context.close()
    assert _statuses(erp_url, dag_id)["e2e-4"] == "approved"
    with db.connect(erp_url) as conn:
        line = run_lines(conn, dag_id, DS).set_index("business_key").loc["e2e-5"]
        overridden = conn.execute("SELECT actor, details->>'reason' FROM erp_staging.audit_log WHERE dag_id=%s"
                                  " AND action = 'overridden'", (dag_id,)).fetchall()
    assert (line["status"], float(line["quantity"])) == ("approved", 30.0)
    assert overridden == [("manager", "local_event")]
    print(f"e2e browser part: {time.monotonic() - started:.1f} s")


# --- the queue: 50 lines by keyboard, an override, a filtered bulk approval ------------------------------------


def _queue(n: int = 50) -> pd.DataFrame:
    """``n`` pending lines: replenishments and transfers a planner may decide, every fifth one high."""
    rows = []
    for i in range(n):
        doc = "replenishment" if i % 2 == 0 else "transfer"
        tier = "high" if i % 5 == 4 else "medium"
        rows.append({
            "doc_type": doc, "business_key": f"q-{i:02d}", "sku": f"SKU{i:05d}", "from_location": "DC01",
            "to_location": f"S{i % 7:04d}", "supplier_id": "SUP002" if doc == "replenishment" else None,
            "po_id": None, "po_line": None, "action": "order" if doc == "replenishment" else "replenish",
            "quantity": 10.0 + i, "unit_cost": 2.0, "value": (10.0 + i) * 2.0, "need_by": DS + dt.timedelta(days=2),
            "explanation": {"forecast_over_lead_time": 4.0, "safety_stock": 2.5, "reorder_point": 6.5,
                            "order_up_to": 13.0 + i, "inventory_position": 3.0, "on_hand": 3.0, "in_transit": 0.0,
                            "mean_daily_forecast": 2.0, "lead_time_days": 2.0, "model": "ses", "fallback_reason": None,
                            **({"supplier_late_rate": 0.25} if doc == "replenishment" else {}),
                            **({"source_options": [{"supplier_id": "SUP003", "unit_cost": 1.8, "lead_time_days": 3.0,
                                                    "moq_units": 0.0, "case_pack": 1, "reliability": 88.0}]}
                               if doc == "replenishment" else {})},
            "risk_tier": tier, "tier_reasons": [f"{tier}_value"], "auto_approve": False})
    return pd.DataFrame(rows)


def test_planner_works_a_queue_of_50_lines_by_keyboard_overrides_one_and_bulk_approves_a_filter(
        airflow, browser, erp_url):
    base, dag_id = airflow["base"], f"e2e_queue_{uuid.uuid4().hex[:8]}"
    with db.connect(erp_url) as conn:
        stage_batch(conn, _queue(), dag_id=dag_id, run_id=f"manual__{DS}", ds=DS)
    path = f"/shelfwise/approvals?dag_id={dag_id}&ds={DS.isoformat()}&limit=50"
    page = login(browser, base, "planner", path)
    assert page.locator("tbody tr[data-line]").count() == 50
    assert "<strong>50</strong>" in page.locator("#counts").inner_html()
    # Each line says why in a sentence, its numbers with their units one click away, None fields left out.
    story = page.locator("tbody tr[data-business-key=q-48] p.story").inner_text()
    assert story == ("SKU00048 at S0006 will run out in 1.5 days: 3 units in stock vs 4 units forecast over the 2-day"
                     " lead time; ordering 58 units from SUP002 brings it up to 61 units. Supplier SUP002 has been"
                     " late on 25% of recent deliveries.")
    numbers = page.locator("tbody tr[data-business-key=q-48] details.numbers")
    assert not numbers.get_attribute("open")
    numbers.locator("summary").click()
    pairs = numbers.locator("dt").all_inner_texts(), numbers.locator("dd").all_inner_texts()
    assert dict(zip(*pairs, strict=True))["mean daily forecast"] == "2 units/day"
    assert "fallback reason" not in numbers.inner_text()
    numbers.locator("summary").click()
    page.evaluate("() => document.activeElement.blur()")
    shot(page, "queue-01-planner")

    # By keyboard: j to the first line (the queue is by impact: the high lines first, read only for a planner),
    # down to the first medium line, a approves it, the focus moves on, r rejects the next one.
    page.locator("body").press("j")
    first_medium = page.locator("tbody tr[data-tier=medium]").first
    for _ in range(page.locator("tbody tr[data-tier=high]").count()):
        page.keyboard.press("ArrowDown")
    approved_key = first_medium.get_attribute("data-business-key")
    assert page.evaluate("() => document.activeElement.dataset.businessKey") == approved_key
    page.keyboard.press("a")
    assert wait_message(page) == "1 line(s) approved."
    page.locator("#message").evaluate("m => { m.textContent = ''; }")
    rejected_key = page.evaluate("() => document.activeElement.dataset.businessKey")
    assert rejected_key and rejected_key != approved_key
    page.keyboard.press("r")
    assert wait_message(page) == "1 line(s) rejected."

    # An override of a replenishment's quantity and supplier, for a reason.
    page.locator("#message").evaluate("m => { m.textContent = ''; }")
    row = page.locator("tbody tr[data-tier=medium][data-line^=replenishment]").first
    overridden_key = row.get_attribute("data-business-key")
    row.locator("details.override summary").click()
    row.locator("input.qty").fill("25")
    row.locator("select.source").select_option("SUP003")
    row.locator("select.reason").select_option("supplier_constraint")
    shot(page, "queue-01b-override")
    row.locator("button.override").click()
    said = wait_message(page)
    assert "approved with 25 instead of the proposed" in said and "from SUP003 instead of SUP002" in said

    # A line's chart, then every medium transfer at once, after a confirmation stating count and value.
    chart = page.locator("tbody tr[data-line] details.chart").first
    chart.locator("summary").click()
    page.wait_for_function("() => { const i = document.querySelector('details.chart[open] img');"
                           " return i && i.complete && i.naturalWidth > 0; }", timeout=30_000)
    chart.screenshot(path=str(SHOTS / "queue-02-line-chart.png"))
    page.goto(f"{base}{path}&doc_type=transfer&tier=medium")
    page.wait_for_selector("#who")
    left = page.locator("tbody tr[data-line]").count()
    asked = []
    page.once("dialog", lambda dialog: (asked.append(dialog.message), dialog.accept()))
    page.locator("#approve-matching").click()
    assert wait_message(page) == f"{left} line(s) approved of the {left} matching the filters."
    assert asked and asked[0].startswith(f"Approve {left} line(s) matching the filters, worth ")
    shot(page, "queue-03-bulk-approved")
    page.context.close()

    # A viewer may not decide: the bulk action says so and nothing changes.
    page = login(browser, base, "analyst", path)
    page.locator("#approve-matching").click()
    assert wait_message(page) == "No line matching the filters is yours to decide."
    page.context.close()

    with db.connect(erp_url) as conn:
        release_approved(conn, dag_id, DS, run_id=f"manual__{DS}")
        lines = run_lines(conn, dag_id, DS).set_index("business_key")
        audit = conn.execute("SELECT action, actor, details->>'reason' FROM erp_staging.audit_log WHERE dag_id = %s"
                             " AND action IN ('approved', 'rejected', 'overridden') ORDER BY audit_id",
                             (dag_id,)).fetchall()
        (source_before,) = conn.execute("SELECT proposed_source FROM erp_staging.all_lines WHERE dag_id = %s AND"
                                        " business_key = %s", (dag_id, overridden_key)).fetchone()
    transfers = [k for k in lines.index if lines.loc[k, "doc_type"] == "transfer" and lines.loc[k, "risk_tier"] == "medium"]
    assert lines.loc[approved_key, "status"] == "released" and lines.loc[rejected_key, "status"] == "rejected"
    assert (lines.loc[overridden_key, "status"], float(lines.loc[overridden_key, "quantity"])) == ("released", 25.0)
    assert (lines.loc[overridden_key, "supplier_id"], source_before) == ("SUP003", "SUP002")
    assert set(lines.loc[transfers, "status"]) <= {"released", "rejected"}
    assert set(lines.loc[lines["risk_tier"] == "high", "status"]) == {"pending_approval"}
    assert ("overridden", "planner", "supplier_constraint") in audit
    assert {a[1] for a in audit} == {"planner"}
    assert sum(a[0] == "approved" for a in audit) == 2 + left  # the keyboard's, the override's and the bulk's


def test_the_workbench_follows_the_airflow_ui_light_and_dark_mode(airflow, browser, erp_url):
    base, dag_id = airflow["base"], f"e2e_theme_{uuid.uuid4().hex[:8]}"
    with db.connect(erp_url) as conn:
        stage_batch(conn, _queue(6), dag_id=dag_id, run_id=f"manual__{DS}", ds=DS)
    path = f"/shelfwise/approvals?dag_id={dag_id}&ds={DS.isoformat()}"
    page = login(browser, base, "planner", path)
    look = ("() => ({dark: document.documentElement.classList.contains('dark'),"
            " bg: getComputedStyle(document.body).backgroundColor, fg: getComputedStyle(document.body).color})")
    assert page.evaluate(look) == {"dark": False, "bg": "rgb(255, 255, 255)", "fg": "rgb(0, 0, 0)"}
    # The Airflow UI keeps its mode in the origin's storage: the page, opened on its own, follows it.
    page.evaluate("() => localStorage.setItem('theme', 'dark')")
    page.reload()
    page.wait_for_selector("#who")
    dark = page.evaluate(look)
    assert dark["dark"] and dark["bg"] == "rgb(0, 0, 0)" and dark["fg"] != "rgb(0, 0, 0)"
    shot(page, "queue-04-dark")

    # Inside the Airflow UI, framed by its navigation entry, the page takes the UI's mode and follows its toggle.
    page.goto(f"{base}/plugin/shelfwise-approvals")
    frame = page.frame_locator("iframe")
    frame.locator("#who").wait_for(timeout=30_000)
    inner = page.frames[-1]
    assert page.evaluate("() => document.documentElement.classList.contains('dark')")
    inner.wait_for_function("() => document.documentElement.classList.contains('dark')", timeout=10_000)
    shot(page, "queue-05-in-airflow-dark")
    page.evaluate("() => document.documentElement.classList.replace('dark', 'light')")
    inner.wait_for_function("() => !document.documentElement.classList.contains('dark')", timeout=10_000)
    assert inner.evaluate("() => getComputedStyle(document.body).backgroundColor") == "rgb(255, 255, 255)"
    page.context.close()


# --- finance review items ----------------------------------------------------------------------------------


def _finance_items() -> pd.DataFrame:
    """Finance review items as the policy tiers them: margin anomalies (medium, finance decides) and one
    that implies an accrual (high, a manager decides)."""
    causes = [("margin_anomaly",), ("margin_anomaly",), ("margin_anomaly",), ("accrual",)]
    rows = [{"doc_type": "finance_review", "business_key": f"fin-{i}", "sku": f"CAT{i:02d}", "from_location": None,
             "to_location": f"S{i:04d}", "supplier_id": None, "po_id": None, "po_line": None,
             "action": "review_margin", "quantity": 1.0, "unit_cost": 1200.0 + i, "value": 1200.0 + i,
             "need_by": DS + dt.timedelta(days=2),
             "explanation": {"cause": exc[0], "excess_loss": 1200.0 + i, "robust_z": 4.2, "exceptions": list(exc)}}
            for i, exc in enumerate(causes)]
    return tier_proposals(pd.DataFrame(rows), load_policy())


def test_finance_decides_review_items_and_a_planner_may_not(airflow, browser, erp_url):
    started = time.monotonic()
    base, dag_id = airflow["base"], f"e2e_finance_{uuid.uuid4().hex[:8]}"
    items = _finance_items()
    assert items["risk_tier"].tolist() == ["medium", "medium", "medium", "high"]
    with db.connect(erp_url) as conn:
        stage_batch(conn, items, dag_id=dag_id, run_id=f"manual__{DS}", ds=DS)
    path = f"/shelfwise/approvals?dag_id={dag_id}&ds={DS.isoformat()}&doc_type=finance_review"

    # Finance acknowledges an item (approve, the note names the action), dismisses one (reject, the reason) and
    # escalates one (handed up undecided, with the reason).
    page = login(browser, base, "finance", path)
    assert "finance (Airflow role viewer = finance)" in page.locator("#who").inner_text()
    assert page.locator("tbody tr[data-line]").count() == 4
    assert _row(page, "fin-3").locator("button.approve").count() == 0  # an accrual waits for a manager
    acknowledge = "acknowledged: book a 1,200.00 shrink provision for S0000"
    page.locator("#note").fill(acknowledge)
    _row(page, "fin-0").locator("button.approve").click()
    assert wait_message(page) == "1 line(s) approved."
    _row(page, "fin-0").wait_for(state="detached")
    page.locator("#message").evaluate("m => { m.textContent = ''; }")
    dismiss = "dismissed: the promotion explains the margin; no action"
    page.locator("#note").fill(dismiss)
    _row(page, "fin-1").locator("button.reject").click()
    assert wait_message(page) == "1 line(s) rejected."
    shot(page, "05-finance-decided")
    # Finance escalates one undecided: it stays pending, marked, and the trail says who and why.
    page.locator("#message").evaluate("m => { m.textContent = ''; }")
    escalate = "escalated: the markdown was the category manager's call; the controller decides"
    page.locator("#note").fill(escalate)
    _row(page, "fin-2").locator("button.escalate").click()
    assert wait_message(page) == "1 line(s) escalated."
    _row(page, "fin-2").locator("span.escalated").wait_for()
    shot(page, "05b-finance-escalated")
    page.context.close()

    # A planner sees the remaining item read only; deciding it anyway is refused with the reason.
    page = login(browser, base, "planner", path)
    assert page.locator("tbody tr[data-line]").count() == 2 and page.locator("button.approve").count() == 0
    assert page.locator("button.escalate").count() == 0
    assert "escalated by finance" in _row(page, "fin-2").locator("span.escalated").get_attribute("title")
    line = _row(page, "fin-2").get_attribute("data-line")
    answer = page.evaluate("""async (body) => {
        const r = await fetch('/shelfwise/api/decisions', {method: 'POST', credentials: 'same-origin',
            headers: {'Content-Type': 'application/json'}, body: JSON.stringify(body)});
        return {status: r.status, body: await r.json()};
    }""", {"lines": [line], "approve": True, "dag_id": dag_id, "ds": DS.isoformat()})
    assert answer["status"] == 403
    assert answer["body"]["detail"] == (f"planner (Airflow role user = planner) may not decide medium-tier finance_review"
                                        f" lines: {line.replace(':', ' #')} (needs admin or finance or manager)."
                                        " Nothing was changed.")
    shot(page, "06-planner-finance-read-only")
    page.context.close()

    with db.connect(erp_url) as conn:
        audit = conn.execute(
            "SELECT split_part(idempotency_key, '|', 4), action, actor, note FROM erp_staging.audit_log"
            " WHERE dag_id=%s AND action IN ('approved', 'rejected') ORDER BY audit_id", (dag_id,)).fetchall()
    assert audit == [("fin-0", "approved", "finance", acknowledge), ("fin-1", "rejected", "finance", dismiss)]
    with db.connect(erp_url) as conn:
        escalated = conn.execute(
            "SELECT split_part(idempotency_key, '|', 4), actor, note, details->>'channel' FROM erp_staging.audit_log"
            " WHERE dag_id=%s AND action = 'escalated'", (dag_id,)).fetchall()
    assert escalated == [("fin-2", "finance", escalate, "log")]
    statuses = _statuses(erp_url, dag_id)
    assert statuses == {"fin-0": "approved", "fin-1": "rejected", "fin-2": "pending_approval",
                        "fin-3": "pending_approval"}
    print(f"e2e finance part: {time.monotonic() - started:.1f} s")


# --- the executive dashboard -------------------------------------------------------------------------------


def _record_nights(erp_url: str, dag_id: str, nights: int = 30, degraded: int = 3) -> dt.date:
    """``nights`` nights of KPIs for ``dag_id`` ending on ``DS``, the first ``degraded`` of them degraded."""
    first = DS - dt.timedelta(days=nights - 1)
    with db.connect(erp_url) as conn:
        for i in range(nights):
            late = i < degraded
            record_kpis(conn, dag_id, first + dt.timedelta(days=i), {
                "fill_rate": 0.95 + i / 1000, "stockout_rate_7d": 0.04 - i / 2000, "inventory_turns": 7.0 + i / 10,
                "forecast_wape": 0.3, "orchestration": {"ran": True, "fulfilment_cost_per_order": 12.5 - i / 20},
                "degraded": late, "stale_sources": {"promotions": str(first - dt.timedelta(days=1))} if late else {}})
    return first


def test_the_executive_dashboard_shows_recorded_nights_to_shelfwise_roles_only(airflow, browser, erp_url):
    started = time.monotonic()
    base, dag_id = airflow["base"], f"e2e_dashboard_{uuid.uuid4().hex[:8]}"
    first = _record_nights(erp_url, dag_id)
    assert http_get(f"{base}/shelfwise-dashboard/api/kpis?dag_id={dag_id}") == 401

    path = f"/shelfwise-dashboard/dashboard?dag_id={dag_id}"
    page = login(browser, base, "manager", path, wait_for="section.kpi")
    assert page.locator("h1").inner_text() == f"Executive dashboard: {dag_id}"
    assert f"30 night(s), {first} to {DS}, 3 degraded" in page.locator("body").inner_text()
    fill = page.locator('section.kpi[data-kpi="fill_rate"]')
    assert fill.locator("polyline.series").count() == 1 and fill.locator("line.target").count() == 1
    assert fill.locator("rect.degraded").count() == 1  # the three degraded nights are one band
    target = BY_KEY["fill_rate"].fmt(policy_targets()["fill_rate"])
    assert f"target {target}, higher is better" in fill.inner_text()
    assert "degraded night" in page.locator("p.legend").first.inner_text()
    shot(page, "dashboard")
    data = page.evaluate("""async (url) => {
        const r = await fetch(url, {credentials: 'same-origin'});
        return {status: r.status, csp: r.headers.get('content-security-policy'), body: await r.json()};
    }""", f"/shelfwise-dashboard/api/kpis?dag_id={dag_id}")
    assert data["status"] == 200 and "frame-ancestors 'self'" in data["csp"]
    assert len(data["body"]["nights"]) == 30 and data["body"]["degraded"][:4] == [True, True, True, False]

    # The navigation entry shows the page inside the Airflow UI.
    page.goto(f"{base}/plugin/shelfwise-dashboard")
    framed = page.frame_locator("iframe").locator("h1")
    framed.wait_for(timeout=30_000)
    assert framed.inner_text().startswith("Executive dashboard")
    shot(page, "dashboard-in-airflow")
    page.context.close()

    # A user the policy gives no Shelfwise role is refused.
    page = login(browser, base, "analyst", path, wait_for="body")
    assert "analyst (Airflow role viewer = no Shelfwise role) may not read the dashboard" in page.locator(
        "body").inner_text()
    page.context.close()
    print(f"e2e dashboard part: {time.monotonic() - started:.1f} s")
