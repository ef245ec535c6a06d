"""End to end: Airflow for real on loopback, the approvals plugin page in headless Chromium.

Starts the API server, scheduler, DAG processor and triggerer (LocalExecutor, SQLite) with an Airflow
home of its own under the test's tmp dir, stages lines for a run, then logs in through Airflow's own
login page as the planner, approves and rejects lines in the plugin page, and checks the database.
The read-only analyst and the planner on a high-tier line are refused and nothing changes.

The lines are staged directly for a run of their own (``staged_run``); a test driving a real
``retail_nightly`` run can stage through the DAG instead and reuse ``airflow``, ``login`` and the checks.
Screenshots: ``test-output/e2e/``.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

import pandas as pd
import pytest

from include.erp import db
from include.erp.staging import run_lines, stage_batch

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
SHOTS = ROOT / "test-output" / "e2e"
USERS = {"admin": ("admin", "admin"), "planner": ("planner", "user"), "manager": ("manager", "op"),
         "analyst": ("analyst", "viewer")}
DS = dt.date(2026, 11, 27)
START_TIMEOUT_S = 240


@pytest.fixture(scope="session")
def chromium() -> str:
    """Debian's chromium, installed on demand by scripts/ensure_browser.py."""
    sys.path.insert(0, str(ROOT / "scripts"))
    from ensure_browser import ensure_chromium

    path, reason = ensure_chromium()
    if not path:
        pytest.skip(f"no Chromium for the browser test: {reason}")
    return path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str, timeout: float = 5.0) -> int:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return 0


@pytest.fixture(scope="module")
def airflow(tmp_path_factory, erp_url):
    """Airflow's four services on loopback, in one process group that is always stopped."""
    home = tmp_path_factory.mktemp("airflow-home")
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    passwords = home / "simple_auth_manager_passwords.json"
    passwords.write_text(json.dumps({u: p for u, (p, _) in USERS.items()}))
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(ROOT / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": ",".join(f"{u}:{r}" for u, (_, r) in USERS.items()),
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords),
        "AIRFLOW__API__BASE_URL": base,
        "AIRFLOW__API__HOST": "127.0.0.1",
        "AIRFLOW__API__PORT": str(port),
        "AIRFLOW__API__WORKERS": "1",
        "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(32),
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{base}/execution/",
        "AIRFLOW__LOGGING__LOGGING_LEVEL": "WARNING",
        "AIRFLOW_CONN_ERP_STAGING": erp_url,
        "ERP_STAGING_URL": erp_url,
        "PYTHONPATH": str(ROOT),
        "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    airflow_bin = str(VENV_BIN / "airflow")
    subprocess.run([airflow_bin, "db", "migrate"], env=env, check=True, capture_output=True, timeout=300)
    log = (home / "services.log").open("w")
    services = (f"{airflow_bin} api-server --host 127.0.0.1 --port {port} & {airflow_bin} scheduler & "
                f"{airflow_bin} dag-processor & {airflow_bin} triggerer & wait")
    proc = subprocess.Popen(["/bin/sh", "-c", services], env=env, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True, cwd=home)
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while _get(f"{base}/api/v2/monitor/health") != 200:
            if proc.poll() is not None or time.monotonic() > deadline:
                log.flush()
                tail = (home / "services.log").read_text()[-3000:]
                pytest.fail(f"Airflow did not come up on {base} (exit {proc.poll()}):\n{tail}")
            time.sleep(1)
        yield {"base": base, "home": home, "env": env}
    finally:
        _stop_group(proc)
        log.close()


def _stop_group(proc: subprocess.Popen) -> None:
    """Stop every service of the group: TERM, then KILL what is left."""
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        pass
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        try:
            os.killpg(proc.pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.5)
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


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


@pytest.fixture(scope="module")
def browser(chromium):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        launched = pw.chromium.launch(
            executable_path=chromium, headless=True,
            args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync"])
        yield launched
        launched.close()


def login(browser, base: str, user: str, next_path: str):
    """Sign in through Airflow's own login page; returns the page, landed on ``next_path``."""
    context = browser.new_context(viewport={"width": 1500, "height": 1000})
    page = context.new_page()
    page.goto(f"{base}{next_path}")
    # Not signed in: the plugin page sends the browser to Airflow's login.
    page.wait_for_url("**/auth/login**", timeout=30_000)
    page.locator("input:not([type=password])").first.fill(user)
    page.locator("input[type=password]").fill(USERS[user][0])
    page.locator("button[type=submit]").click()
    page.wait_for_url(f"**{next_path.split('?')[0]}**", timeout=30_000)
    page.wait_for_selector("#who", timeout=30_000)
    return page


def _shot(page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def _statuses(erp_url: str, dag_id: str) -> dict[str, str]:
    with db.connect(erp_url) as conn:
        lines = run_lines(conn, dag_id, DS)
    return dict(zip(lines["business_key"], lines["status"], strict=True))


def _row(page, business_key: str):
    return page.locator(f'tr[data-business-key="{business_key}"]')


def _wait_message(page) -> str:
    page.wait_for_function("document.getElementById('message').textContent.length > 0", timeout=30_000)
    return page.locator("#message").inner_text()


def test_plugin_endpoints_require_airflow_login(airflow):
    base = airflow["base"]
    assert _get(f"{base}/shelfwise/api/lines") == 401
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
    _shot(page, "01-planner-pending")
    for key in ("e2e-0", "e2e-2"):
        page.locator("#message").evaluate("m => { m.textContent = ''; }")
        _row(page, key).locator("button.approve").click()
        assert _wait_message(page) == "1 line(s) approved."
        _row(page, key).wait_for(state="detached")
    page.locator("#message").evaluate("m => { m.textContent = ''; }")
    for key in ("e2e-1", "e2e-3"):
        _row(page, key).locator("input.pick").check()
    page.locator("#note").fill("over-ordered against the promo plan")
    page.locator("#reject-selected").click()
    assert _wait_message(page) == "2 line(s) rejected."
    _shot(page, "02-planner-decided")

    # A high line is read only for the planner; a direct call is refused with 403 and changes nothing.
    assert _row(page, "e2e-4").locator("button.approve").count() == 0
    high = _row(page, "e2e-4").get_attribute("data-line")
    answer = page.evaluate(
        """async (line) => {
            const r = await fetch('/shelfwise/api/decisions', {method: 'POST', credentials: 'same-origin',
                headers: {'Content-Type': 'application/json'}, body: JSON.stringify({lines: [line], approve: true})});
            return {status: r.status, body: await r.json()};
        }""", high)
    assert answer["status"] == 403
    assert answer["body"]["detail"].startswith("planner (Airflow role user = planner) may not decide high-tier lines")
    assert answer["body"]["detail"].endswith("Nothing was changed.")

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
    message = _wait_message(page)
    assert "analyst (Airflow role viewer = no Shelfwise role) may not approve or reject lines" in message
    assert "HTTP 403" in message
    _shot(page, "03-analyst-refused")
    assert _statuses(erp_url, dag_id) == after_planner
    page.context.close()

    # The manager may decide the high line the planner could not.
    page = login(browser, base, "manager", path)
    _row(page, "e2e-4").locator("button.approve").click()
    assert _wait_message(page) == "1 line(s) approved."
    _shot(page, "04-manager-decided")
    page.context.close()
    assert _statuses(erp_url, dag_id)["e2e-4"] == "approved"
    print(f"e2e browser part: {time.monotonic() - started:.1f} s")
