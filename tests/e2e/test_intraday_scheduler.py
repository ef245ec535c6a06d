"""End to end: ``retail_intraday`` run by Airflow's own scheduler, and the Assets that connect the workflows.

Starts the API server, scheduler, DAG processor and triggerer (LocalExecutor, SQLite) on loopback with
``SHELFWISE_DATA_ROOT`` at a busy tiny world with surges on 2026-10-30 (last night's forecast made, the day's
hours through 16:00 landed), triggers ``retail_intraday`` for the hour 16:00-17:00 through the REST API and
waits for it to finish ``success`` with urgent lines staged and every pending one decided by its gate's
deadline. Then, in headless Chromium, the Assets page lists the nightly's Assets and the forecast Asset
shows ``retail_intraday`` reading it. Screenshots: ``test-output/e2e/intraday-*.png``.
"""

from __future__ import annotations

import datetime as dt
import sys
import time
from pathlib import Path

import pytest

from include.erp import db
from include.erp.staging import run_lines

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))
from required_action import ApiSession  # noqa: E402 - scripts/ is not a package

from tests.e2e.conftest import USERS, shot, start_airflow
from tests.worlds import clear_run_lines, intraday_world

pytestmark = pytest.mark.e2e

DAG_ID = "retail_intraday"
DS = dt.date(2026, 10, 30)
HOUR = 16
FINISH_TIMEOUT_S = 240


@pytest.fixture(scope="module")
def world_root(tmp_path_factory) -> str:
    return intraday_world(str(tmp_path_factory.mktemp("intraday-e2e") / "shelfwise"), DS, HOUR)[0]


@pytest.fixture(scope="module")
def airflow(tmp_path_factory, erp_url, world_root):
    extra = {"SHELFWISE_DATA_ROOT": world_root, "AIRFLOW__CORE__PARALLELISM": "4",
             "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "False"}
    with start_airflow(tmp_path_factory.mktemp("airflow-home"), erp_url, extra) as services:
        yield services


def _admin(airflow: dict) -> ApiSession:
    admin = ApiSession.login(airflow["base"], "admin", USERS["admin"][0])
    deadline = time.monotonic() + 120
    while True:
        try:
            admin.call("GET", f"/api/v2/dags/{DAG_ID}")
            break
        except Exception:  # noqa: BLE001 - not parsed yet
            if time.monotonic() > deadline:
                pytest.fail(f"{DAG_ID} was not parsed within 120 s:\n{airflow['log'].read_text()[-3000:]}")
            time.sleep(2)
    admin.call("PATCH", f"/api/v2/dags/{DAG_ID}", body={"is_paused": False})
    return admin


def test_the_scheduler_runs_an_intraday_hour_through_its_gate(airflow, world_root):
    clear_run_lines(DAG_ID, DS)
    admin = _admin(airflow)
    logical = f"{DS}T{HOUR + 1:02d}:00:00+00:00"
    run = admin.call("POST", f"/api/v2/dags/{DAG_ID}/dagRuns", body={
        "logical_date": logical, "conf": {"gate_timeout_minutes": 0.1, "gate_poke_seconds": 2}})
    run_path = f"/api/v2/dags/{DAG_ID}/dagRuns/{run['dag_run_id']}"
    deadline = time.monotonic() + FINISH_TIMEOUT_S
    state = run["state"]
    while state not in ("success", "failed") and time.monotonic() < deadline:
        time.sleep(3)
        state = admin.call("GET", run_path)["state"]
    tis = {t["task_id"]: t["state"] for t in admin.call("GET", f"{run_path}/taskInstances")["task_instances"]}
    assert state == "success", f"{state}: {tis}\n{airflow['log'].read_text(errors='replace')[-3000:]}"
    assert tis["wait_for_approval"] == "success"
    with db.connect() as conn:
        lines = run_lines(conn, DAG_ID, DS)
    assert len(lines) > 0 and set(lines["status"]) <= {"released", "expired"}
    assert {e["as_of"] for e in lines["explanation"]} == {f"{DS}T{HOUR:02d}"}


def test_the_assets_page_shows_the_nightlys_outputs_and_who_reads_them(airflow, browser):
    admin = _admin(airflow)
    assets = admin.call("GET", "/api/v2/assets?limit=100")["assets"]
    names = {a["name"]: a for a in assets}
    assert {"shelfwise_forecasts", "shelfwise_decisions", "shelfwise_kpis", "shelfwise_curated_pos"} <= set(names)
    forecasts = names["shelfwise_forecasts"]
    assert {(t["dag_id"], t["task_id"]) for t in forecasts["producing_tasks"]} == {("retail_nightly", "combine_forecasts")}
    assert {(t["dag_id"], t["task_id"]) for t in forecasts["consuming_tasks"]} == {
        ("retail_intraday", "sense_demand"), ("order_orchestration", "route_orders"),
        ("returns_routing", "route_returns")}
    context = browser.new_context(viewport={"width": 1500, "height": 1000})
    page = context.new_page()
    page.goto(f"{airflow['base']}/assets")
    page.wait_for_url("**/auth/login**", timeout=30_000)
    page.locator("input:not([type=password])").first.fill("admin")
    page.locator("input[type=password]").fill(USERS["admin"][0])
    page.locator("button[type=submit]").click()
    page.wait_for_url("**/assets**", timeout=30_000)
    row = page.get_by_role("row").filter(has_text="shelfwise_forecasts")
    row.wait_for(timeout=30_000)
    # Produced by one task of the nightly, read by one task each of the intraday, the orchestration and the
    # returns workflow, in the page's own columns.
    assert row.get_by_text("1 Task", exact=True).count() == 1 and row.get_by_text("3 Tasks", exact=True).count() == 1
    shot(page, "intraday-01-assets")
    page.get_by_text("shelfwise_forecasts").first.click()
    page.wait_for_url("**/assets/**", timeout=30_000)
    page.get_by_text("shelfwise_forecasts").first.wait_for(timeout=30_000)
    shot(page, "intraday-02-forecast-asset")
    context.close()
