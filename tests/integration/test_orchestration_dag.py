"""`order_orchestration` end to end under `airflow dags test`: a batch routes the morning's order lines,
releases the assignments within policy at once and expires the exceptions nobody decided; the batch run
again routes nothing twice; the next batch routes only the new lines, and only the exceptions a planner
approved are released."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import re
import sys
from pathlib import Path

import pytest
import yaml

from include.erp import db
from include.erp.staging import decide, run_lines
from include.runs import Run
from tests.worlds import clear_run_lines, dags_test

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
DS = dt.date(2026, 10, 30)
DAG_ID = "order_orchestration"
DOC = "fulfilment_assignment"


@pytest.fixture(scope="module")
def policy(tmp_path_factory) -> str:
    """The shipped policy with a low cost limit per order, so that a batch has exceptions and clean lines;
    the forecast challenger off, so that the night before is quick."""
    from include.config import policy_file

    doc = yaml.safe_load(Path(policy_file()).read_text())
    doc["orchestration"]["max_cost_per_order"] = 7.0
    doc["forecasting"]["challenger"]["enabled"] = False
    path = tmp_path_factory.mktemp("policy") / "policy.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return str(path)


@pytest.fixture(scope="module")
def world_root(tmp_path_factory, policy) -> str:
    """The tiny retailer: history through the night before, that night's forecast, the day's order extracts."""
    from include.ingest.pipeline import load_history
    from include.sample_data import orders
    from include.sample_data.generator import PRESETS, generate_world, write_landing
    from include.stages import nightly

    root = str(tmp_path_factory.mktemp("orchestration") / "shelfwise")
    config = dataclasses.replace(PRESETS["tiny"], end_date=DS)
    world = generate_world(config)
    write_landing(world, root)
    night = DS - dt.timedelta(days=1)
    load_history(DS - dt.timedelta(days=config.history_days - 1), night, root=root)
    run = Run(dag_id="retail_nightly", run_id="orchestration-world-night", ds=night.isoformat(), task_id="forecast",
              params={"history_days": 100, "shard_size": 50})
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SHELFWISE_POLICY_FILE", policy)
        nightly.build_demand(run, root=root)
        for shard in nightly.plan_forecast_shards(run, root=root):
            nightly.forecast_demand(run, shard["shard"], shard["n_shards"], root=root)
    orders.write_order_landing(world, root, [DS], orders.OrderConfig(lines_per_day=120))
    return root


def _dags_test(root: str, policy: str, logical: str, conf: dict, log_path: Path) -> str:
    return dags_test(DAG_ID, logical, root=root, policy=policy, conf=conf, log_path=log_path)


def _lines():
    with db.connect() as conn:
        lines = run_lines(conn, DAG_ID, DS)
    lines = lines[lines["doc_type"] == DOC]
    return lines.assign(flagged=lines["explanation"].map(lambda e: bool(e["exceptions"])))


def _adapter_run(task_id: str, run_id: str) -> Run:
    return Run(dag_id=DAG_ID, run_id=run_id, ds=DS.isoformat(), task_id=task_id)


def test_batches_route_each_line_once_and_release_only_what_policy_or_a_planner_allows(world_root, policy, tmp_path,
                                                                                       monkeypatch):
    from include.stages import orchestration

    monkeypatch.setenv("SHELFWISE_POLICY_FILE", policy)
    clear_run_lines(DAG_ID, DS)
    # The batch that ends at noon routes every line ordered before it; nobody decides its exceptions.
    _dags_test(world_root, policy, f"{DS}T11:45:00+00:00",
               {"until": "12:00", "gate_poke_seconds": 1, "gate_timeout_minutes": 0.05}, tmp_path / "run.log")
    stages = Path(world_root) / "reports" / "stages" / DAG_ID / f"ds={DS}"
    routed = json.loads((stages / "route_orders.json").read_text())
    assert routed["batch"] == "1200" and routed["arrived"] > 0 and routed["already_routed"] == 0
    first = _lines()
    assert len(first) == routed["proposed"] > 0 and first["business_key"].is_unique
    assert first["flagged"].any() and (~first["flagged"]).any(), "the cost limit makes some lines exceptions"
    assert set(first.loc[~first["flagged"], "status"]) == {"released"}  # within policy: released at once
    assert set(first.loc[first["flagged"], "status"]) == {"expired"}  # the gate timed out: never released
    assert set(first.loc[first["flagged"], "risk_tier"]) == {"medium"}
    ordered = {e["order_id"] for e in first["explanation"]}
    assert all(str(k).split(":")[0] in ordered for k in first["business_key"])

    # The same batch run again routes nothing: every line it saw is staged already.
    again = orchestration.route(_adapter_run("route_orders", "again"), dt.datetime(2026, 10, 30, 12, 0),
                                conn_factory=db.connect, root=world_root)
    assert again["proposed"] == 0 and again["already_routed"] == len(first)
    staged = orchestration.stage(_adapter_run("stage_assignments", "again"), dt.datetime(2026, 10, 30, 12, 0),
                                 conn_factory=db.connect, root=world_root)
    assert staged["inserted"] == staged["withdrawn"] == 0

    # The afternoon batch routes only the new lines; a planner approves one exception and rejects the rest.
    until = dt.datetime(2026, 10, 30, 18, 0)
    later = orchestration.route(_adapter_run("route_orders", "b2"), until, conn_factory=db.connect, root=world_root)
    staged = orchestration.stage(_adapter_run("stage_assignments", "b2"), until, conn_factory=db.connect,
                                 root=world_root)
    assert staged["inserted"] == later["proposed"] > 0 and staged.get("already_staged", 0) == 0
    orchestration.release(_adapter_run("release_within_policy", "b2"), conn_factory=db.connect, root=world_root)
    second = _lines()
    new = second[~second["business_key"].isin(first["business_key"])]
    assert len(new) == later["proposed"] and second["business_key"].is_unique
    old = second.set_index("business_key").loc[first["business_key"], "status"]
    assert old.tolist() == first["status"].tolist()  # nothing of the first batch changed
    pending = new[new["status"] == "pending_approval"]
    assert len(pending) and set(new.loc[~new["flagged"], "status"]) == {"released"}
    approved, rejected = int(pending["line_id"].iloc[0]), [int(i) for i in pending["line_id"].iloc[1:]]
    with db.connect() as conn:
        decide(conn, DOC, [approved], approve=True, user="planner", note="split accepted")
        if rejected:
            decide(conn, DOC, rejected, approve=False, user="planner", note="ship from the FC tomorrow")
    orchestration.release(_adapter_run("release_approved", "b2"), conn_factory=db.connect, root=world_root)
    final = _lines().set_index("line_id")
    assert final.loc[approved, "status"] == "released" and final.loc[approved, "decided_by"] == "planner"
    assert set(final.loc[rejected, "status"]) <= {"rejected"}
    released = final[final["status"] == "released"]
    assert set(released.index[released["flagged"]]) == {approved}


def test_the_erp_reader_sees_released_fulfilment_lines(erp_owner_url):
    from include.erp import roles

    with db.connect(roles.reader_url(erp_owner_url)) as reader:
        rows = reader.execute("SELECT doc_type, action, from_location FROM erp_staging.released_lines"
                              " WHERE dag_id = %s AND ds = %s", (DAG_ID, DS)).fetchall()
    assert rows and {r[0] for r in rows} == {DOC}
    assert {r[1] for r in rows} <= {"ship_from_store", "ship_from_fc", "ship_from_dc"}


def test_exceptions_reach_the_approvals_page_and_a_planner_approves_there(world_root, policy, monkeypatch):
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser
    from fastapi.testclient import TestClient

    from include.stages import orchestration

    sys.path.insert(0, str(ROOT / "plugins"))
    import shelfwise_approvals as plugin
    import shelfwise_web

    monkeypatch.setenv("SHELFWISE_POLICY_FILE", policy)
    until = dt.datetime(2026, 10, 31, 0, 0)  # the day's last batch
    routed = orchestration.route(_adapter_run("route_orders", "b3"), until, conn_factory=db.connect, root=world_root)
    orchestration.stage(_adapter_run("stage_assignments", "b3"), until, conn_factory=db.connect, root=world_root)
    assert routed["batch"] == "2400" and routed["exceptions_pending"] > 0
    app = plugin.create_app()
    app.dependency_overrides[shelfwise_web.current_user] = lambda: SimpleAuthManagerUser(username="planner", role="user")
    planner = TestClient(app)
    listed = planner.get(f"/api/lines?dag_id={DAG_ID}&ds={DS}&doc_type={DOC}").json()
    assert listed["count"] == routed["exceptions_pending"]
    first = listed["lines"][0]
    assert first["doc_type"] == DOC and first["explanation"]["exceptions"] and first["may_decide"]
    page = planner.get(f"/approvals?dag_id={DAG_ID}&ds={DS}&doc_type={DOC}&tier=")
    assert page.status_code == 200 and len(re.findall(r'<tr [^>]*data-line="', page.text)) == listed["count"]
    done = planner.post("/api/decisions", json={"lines": [f"{DOC}:{first['line_id']}"], "approve": True,
                                                "dag_id": DAG_ID, "ds": DS.isoformat()})
    assert done.status_code == 200, done.text
    orchestration.release(_adapter_run("release_approved", "b3"), conn_factory=db.connect, root=world_root)
    lines = _lines().set_index("line_id")
    assert lines.loc[first["line_id"], "status"] == "released"
    assert (lines.loc[[ln["line_id"] for ln in listed["lines"][1:]], "status"] == "pending_approval").all()
