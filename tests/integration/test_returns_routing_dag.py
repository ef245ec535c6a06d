"""`returns_routing` end to end under `airflow dags test`: a day's returns are scored by the model trained on
loss prevention's confirmed cases, routed, the routine dispositions released at once and the held ones
expired when nobody decides them; on the next day (through the stage adapters) a planner may not decide a
held line, loss prevention may, and only what it approved is released."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pandas as pd
import pytest
import yaml

from include.erp import db
from include.erp.staging import run_lines
from include.runs import Run
from tests.worlds import clear_run_lines, dags_test, tiny_world

pytestmark = pytest.mark.integration
DS = dt.date(2026, 10, 30)
NEXT = DS + dt.timedelta(days=1)
DAG_ID = "returns_routing"
DOC = "return_disposition"


@pytest.fixture(scope="module")
def policy(tmp_path_factory) -> str:
    """The shipped policy with a lower high-value hold, so that a day has medium lines besides the fraud-held
    high ones; the forecast challenger off, so that the night before is quick."""
    from include.config import policy_file

    doc = yaml.safe_load(Path(policy_file()).read_text())
    doc["returns"]["high_value_hold"] = 60.0
    doc["forecasting"]["challenger"]["enabled"] = False
    path = tmp_path_factory.mktemp("policy") / "policy.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return str(path)


@pytest.fixture(scope="module")
def world_root(tmp_path_factory, policy) -> str:
    """The tiny retailer through the day after ``DS`` (history through ``DS``, the night's forecast of ``DS``),
    with the returns and the closed loss-prevention cases of the policy's history and the two routed days
    landed and those before ``DS`` curated (the demo's :func:`returns_demo.land`)."""
    import dataclasses
    import sys

    from include.sample_data.generator import PRESETS, generate_world
    from include.stages import nightly

    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))
    from returns_demo import land

    root = tiny_world(str(tmp_path_factory.mktemp("returns") / "shelfwise"), NEXT, history_through=DS)
    world = generate_world(dataclasses.replace(PRESETS["tiny"], end_date=NEXT))
    land(world, root, DS, through=NEXT, returns_per_day=60, seed=5)
    run = Run(dag_id="retail_nightly", run_id="returns-world-night", ds=DS.isoformat(), task_id="forecast",
              params={"history_days": 100, "shard_size": 50})
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SHELFWISE_POLICY_FILE", policy)
        nightly.build_demand(run, root=root)
        for shard in nightly.plan_forecast_shards(run, root=root):
            nightly.forecast_demand(run, shard["shard"], shard["n_shards"], root=root)
    return root


@pytest.fixture(scope="module", autouse=True)
def _leave_no_dispositions():
    """Take the module's lines out of the shared test database afterwards: a later night of the same dates
    would count its restocked units in the inventory position."""
    yield
    clear_run_lines(DAG_ID, DS)
    clear_run_lines(DAG_ID, NEXT)


def _lines(ds: dt.date):
    with db.connect() as conn:
        lines = run_lines(conn, DAG_ID, ds)
    lines = lines[lines["doc_type"] == DOC]
    return lines.assign(held=lines["explanation"].map(lambda e: sorted(e["exceptions"])))


def _adapter(task_id: str, ds: dt.date) -> Run:
    return Run(dag_id=DAG_ID, run_id=f"adapters-{ds}", ds=ds.isoformat(), task_id=task_id)


def test_routine_dispositions_are_released_and_only_loss_prevention_decides_held_ones(world_root, policy, tmp_path,
                                                                                      monkeypatch):
    from include.erp.approvals import NotAllowed, approver, decide_lines, list_pending
    from include.governance.policy import load_policy
    from include.stages import returns

    monkeypatch.setenv("SHELFWISE_POLICY_FILE", policy)
    clear_run_lines(DAG_ID, DS)
    clear_run_lines(DAG_ID, NEXT)
    # The day's run: nobody decides the held lines before the (short) gate expires them.
    dags_test(DAG_ID, DS.isoformat(), root=world_root, policy=policy, log_path=tmp_path / "run.log",
              conf={"gate_poke_seconds": 1, "gate_timeout_minutes": 0.1})
    stages = Path(world_root) / "reports" / "stages" / DAG_ID / f"ds={DS}"
    routed = json.loads((stages / "route_returns.json").read_text())
    assert routed["scorer"] == "model" and routed["cold_start"] is None and routed["confirmed_cases"] >= 20
    # The day's returns KPIs for the nightly report.
    assert 0 < routed["recovery_rate"] < 1 and routed["fraud_losses_prevented_est"] > 0
    assert 0 < routed["days_receipt_to_disposition"] <= 1 and routed["held_for_review"] == routed["pending"]
    assert {r["channel"] for r in routed["return_rates"]} == {"store", "ecommerce"}
    # Vendor return terms from the curated supplier master; the FC's mail returns priced with its own demand.
    assert routed["suppliers_taking_returns"] > 0 and routed["actions"].get("return_to_vendor", 0) > 0
    assert routed["return_rate"] > 0
    # The week's return patterns, classified beside the routing from the same curated history.
    classified = json.loads((stages / "classify_return_patterns.json").read_text())
    assert classified["returns_read"] > routed["returns"]
    from include.returns.patterns import ANOMALY_COLUMNS
    from include.storage import read_partition as read

    patterns = read("reports", "return_patterns", DS.isoformat(), world_root)
    assert list(patterns.columns) == list(ANOMALY_COLUMNS) and len(patterns) == sum(classified["patterns"].values())
    first = _lines(DS)
    assert len(first) == routed["proposed"] == routed["returns"] > 0 and first["business_key"].is_unique
    assert first["business_key"].str.startswith("return:").all()
    routine, held = first[first["held"].map(len) == 0], first[first["held"].map(len) > 0]
    assert len(routine) and set(routine["status"]) == {"released"}
    assert routed["held_fraud"] > 0 and len(held) == routed["pending"]
    assert set(held["status"]) == {"expired"}  # the gate timed out: a held unit is never released
    fraud = held[held["held"].map(lambda c: "fraud_risk" in c)]
    assert set(fraud["risk_tier"]) == {"high"} and all(e["fraud_score"] >= 0.5 for e in fraud["explanation"])
    assert (first["value"].astype(float) >= 0).all()

    # A cold start (too few confirmed cases for the policy) scores with the rules, and says so.
    from include.storage import read_partition

    today = read_partition("curated", "returns_detail", DS.isoformat(), world_root)
    knobs = load_policy().returns.model_copy(update={"min_confirmed_cases": 10**6})
    scored, scoring = returns.fraud_scores(today, DS, knobs, world_root)
    assert scoring["scorer"] == "rules" and "min_confirmed_cases" in scoring["cold_start"]
    assert set(scored["fraud_score"]) <= {0.0, 1.0} and len(scored) == len(today)

    # The next day through the adapters: held lines wait; a planner may not decide them, loss prevention may.
    returns.ingest(_adapter("ingest_returns_system", NEXT), conn_factory=db.connect, root=world_root)
    returns.route(_adapter("route_returns", NEXT), root=world_root)
    returns.stage(_adapter("stage_dispositions", NEXT), conn_factory=db.connect, root=world_root)
    returns.release(_adapter("release_within_policy", NEXT), conn_factory=db.connect, root=world_root)
    second = _lines(NEXT)
    pending = second[second["status"] == "pending_approval"]
    fraud = pending[pending["held"].map(lambda c: "fraud_risk" in c)]
    assert len(fraud) and len(pending) > len(fraud), "fraud-held and high-value lines wait"
    pick = [(DOC, int(fraud["line_id"].iloc[0]))]
    policy_now = load_policy()
    planner, lp = approver("planner", "user", policy_now), approver("lp", "viewer", policy_now)
    with db.connect() as conn:
        with pytest.raises(NotAllowed, match="may not decide high-tier return_disposition lines.*loss_prevention"):
            decide_lines(conn, planner, pick, approve=True, run=(DAG_ID, NEXT))
        shown = {ln["line_id"]: ln["may_decide"] for ln in list_pending(conn, user=planner) if ln["dag_id"] == DAG_ID}
        assert shown and not any(shown.values())
        assert all(ln["may_decide"] for ln in list_pending(conn, user=lp) if ln["dag_id"] == DAG_ID)
        outcome = decide_lines(conn, lp, pick, approve=True, note="receipt found", run=(DAG_ID, NEXT))
    assert outcome.decided == [{"doc_type": DOC, "line_id": pick[0][1]}]
    released = returns.release(_adapter("release_approved", NEXT), conn_factory=db.connect, root=world_root)
    assert released["released"] == 1
    after = _lines(NEXT).set_index("line_id")
    assert after.loc[pick[0][1], "status"] == "released" and after.loc[pick[0][1], "decided_by"] == "lp"
    others = after.loc[pending["line_id"].drop(pending.index[pending["line_id"] == pick[0][1]])]
    assert set(others["status"]) == {"pending_approval"}
    assert set(after.loc[after["held"].map(len) == 0, "status"]) == {"released"}


def test_released_restocks_count_in_the_nights_inventory_position_until_shelved_and_a_reversal_takes_them_back(
        world_root, policy, monkeypatch):
    from include.erp.staging import released_dispositions, reverse_line
    from include.returns.stock import RESTOCKING_ACTIONS
    from include.stages import nightly

    monkeypatch.setenv("SHELFWISE_POLICY_FILE", policy)
    lines = pd.concat([_lines(DS).assign(ds=DS), _lines(NEXT).assign(ds=NEXT)], ignore_index=True)
    restocking = lines[(lines["status"] == "released") & lines["action"].isin(RESTOCKING_ACTIONS)]
    assert (restocking["ds"] == DS).any(), "the day released units back to a shelf"
    assert set(lines["action"]) - set(RESTOCKING_ACTIONS), "and routed others elsewhere"

    def released() -> list[tuple]:
        with db.connect() as conn:
            found = released_dispositions(conn, RESTOCKING_ACTIONS, DS)
        return sorted(zip(found["ds"], found["to_location"], found["sku"], found["quantity"], strict=True))

    assert released() == sorted(zip(restocking["ds"], restocking["to_location"], restocking["sku"],
                                    restocking["quantity"].astype(float), strict=True))
    # Loss prevention finds a restocked unit was not sellable after all: the reversal takes it back.
    wrong = restocking[restocking["ds"] == DS].iloc[0]
    with db.connect() as conn:
        reverse_line(conn, DOC, int(wrong["line_id"]), actor="lp", reason="not sellable after all")
    assert len(released()) == len(restocking) - 1

    # The night of DS counts the day's restocked units (shelved tomorrow) and its transfers, not the reversed
    # one and not the next day's.
    run = Run(dag_id="retail_nightly", run_id="returns-to-stock", ds=DS.isoformat(), task_id="propose_decisions")
    summary = nightly.propose_decisions(run, conn_factory=db.connect, root=world_root)
    coming = restocking[(restocking["ds"] == DS) & (restocking["line_id"] != wrong["line_id"])]
    assert summary["returns_to_stock"]["units"] == float(coming["quantity"].astype(float).sum())
    assert summary["returns_to_stock"]["locations_skus"] == len(coming.groupby(["to_location", "sku"]))
    assert nightly.propose_decisions(run, root=world_root)["returns_to_stock"] is None  # no ERP staging to read
