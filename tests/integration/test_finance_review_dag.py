"""`finance_review` end to end under `airflow dags test`: a week with an expedite surge, a substitution storm
and a shrink spike becomes finance review items in ERP staging, each once, with its projected loss, owner and
evidence; nobody decides them and they expire. Then (through the stage adapters) the next night flags the same
events again and stages nothing new, and a planner may not decide an item that finance may."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from pathlib import Path

import pytest

from include.erp import db
from include.erp.staging import run_lines
from include.runs import Run
from tests.worlds import clear_run_lines, dags_test, tiny_world

pytestmark = pytest.mark.integration
DS = dt.date(2026, 10, 29)
NEXT = DS + dt.timedelta(days=1)
DAG_ID = "finance_review"
DOC = "finance_review"
#: The finance extracts landed: the bridge's window and baseline weeks before ``DS``, and the two run dates.
FINANCE_DAYS = [NEXT - dt.timedelta(days=i) for i in range(98, -1, -1)]


@pytest.fixture(scope="module")
def policy(tmp_path_factory) -> str:
    """The shipped policy with a floor on the margin lost that fits the tiny retailer's web shop (a few
    hundred a week): the shipped one is for a real retailer's cells."""
    import yaml

    from include.config import policy_file

    doc = yaml.safe_load(Path(policy_file()).read_text())
    doc["finance"]["min_excess"] = 5.0
    path = tmp_path_factory.mktemp("policy") / "policy.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return str(path)


@pytest.fixture(scope="module")
def events_and_root(tmp_path_factory):
    """The tiny retailer through ``NEXT`` (history curated through ``DS``) with one event of each kind in its last
    two weeks, the finance extracts of every day landed and those before ``DS`` curated."""
    from include.contracts.contract import load_contracts
    from include.finance.contracts import FINANCE_CONTRACT_IDS, load_finance_contracts
    from include.ingest.pipeline import load_history
    from include.sample_data.finance import FinanceConfig, finance_world, write_finance_landing
    from include.sample_data.generator import PRESETS, generate_world

    root = tiny_world(str(tmp_path_factory.mktemp("finance") / "shelfwise"), NEXT, history_through=DS)
    world = generate_world(dataclasses.replace(PRESETS["tiny"], end_date=NEXT))
    fw = finance_world(world, seed=1, config=FinanceConfig(events_per_kind=1, min_cell_weekly_sales=200,
                                                           event_weeks=(2, 2), first_start=105))
    for day in FINANCE_DAYS:
        write_finance_landing(root, day, fw)
    contracts = load_finance_contracts()
    master = {k: c for k, c in load_contracts().items() if c.source == "master"}
    load_history(FINANCE_DAYS[0], DS - dt.timedelta(days=1), root=root,
                 contracts={**master, **{k: contracts[k] for k in FINANCE_CONTRACT_IDS}})
    return fw.events, root


def _cells(frame, cause_column: str = "cause") -> set[tuple[str, str, str, str]]:
    return {(r["category"], r["channel"], r["location_id"], r[cause_column]) for r in frame.to_dict("records")}


def test_a_week_of_margin_events_becomes_items_once_and_finance_decides_them(events_and_root, policy, tmp_path,
                                                                           monkeypatch):
    from include.erp.approvals import NotAllowed, approver, decide_lines
    from include.governance.policy import load_policy
    from include.stages import finance
    from include.storage import read_partition

    events, root = events_and_root
    clear_run_lines(DAG_ID, DS)
    clear_run_lines(DAG_ID, NEXT)
    dags_test(DAG_ID, DS.isoformat(), root=root, log_path=tmp_path / "run.log",
              conf={"gate_poke_seconds": 1, "gate_timeout_minutes": 0.05}, policy=policy)
    monkeypatch.setenv("SHELFWISE_POLICY_FILE", policy)
    stages = Path(root) / "reports" / "stages" / DAG_ID / f"ds={DS}"
    reviewed = json.loads((stages / "review_margin.json").read_text())
    assert reviewed["cells"] > 0 and reviewed["bridge_max_residual_pct"] <= 0.5
    bridge = read_partition("reports", "margin_bridge", DS, root)
    assert (bridge["residual_pct"].fillna(0) <= 0.5).all()

    # The events the extracts carry (markdowns change the sales of the night's own landing, not these) are
    # each flagged, on their own cell and cause.
    injected = _cells(events[events["cause"] != "price_markdown"].assign(
        category=lambda e: e["category"].astype(str)))
    with db.connect() as conn:
        lines = run_lines(conn, DAG_ID, DS)
    assert len(lines) == reviewed["new_items"] > 0
    staged = {(e["category"], e["channel"], e["location_id"], e["cause"]) for e in lines["explanation"]}
    assert injected <= staged, (injected, staged)
    assert set(lines["status"]) == {"expired"}  # nobody decided within the run's deadline
    for line in lines.to_dict("records"):
        e = line["explanation"]
        assert line["doc_type"] == DOC and line["business_key"].startswith("finance_review:")
        assert float(line["value"]) == pytest.approx(e["projected_loss"], abs=0.01) and e["projected_loss"] > 0
        assert e["owner"] in ("merchandising", "supply chain", "customer service", "finance")
        assert {"robust_z", "baseline_median", "weeks_of_history", "bridge"} <= set(e["evidence"])
        assert line["risk_tier"] == ("high" if e["needs_manager"] else "medium")

    # The next night the same events are flagged again: one event is one item, nothing new is staged.
    def run(task_id: str) -> Run:
        return Run(dag_id=DAG_ID, run_id=f"next__{NEXT}", ds=NEXT.isoformat(), task_id=task_id)

    finance.ingest(run("ingest_finance"), conn_factory=db.connect, root=root)
    again = finance.review(run("review_margin"), root=root)
    assert again["continuing"] > 0 and again["new_items"] < again["flagged"]
    new = read_partition("curated", "finance_items", NEXT, root)
    assert not (_cells(new.assign(category=new["sku"], channel=new["explanation"].map(lambda e: e["channel"]),
                                  location_id=new["from_location"], cause=new["action"])) & staged)
    finance.stage(run("stage_items"), conn_factory=db.connect, root=root)

    # Finance decides an item; a planner may not; a manager decides an accrual.
    policy = load_policy()
    with db.connect() as conn:
        pending = run_lines(conn, DAG_ID, NEXT)
    if len(pending):
        pick = [(DOC, int(pending["line_id"].iloc[0]))]
        tier = pending["risk_tier"].iloc[0]
        with db.connect() as conn, pytest.raises(NotAllowed):
            decide_lines(conn, approver("planner", "user", policy), pick, approve=True, note="reprice")
        decider = approver("finance" if tier != "high" else "manager", "viewer" if tier != "high" else "op", policy)
        with db.connect() as conn:
            outcome = decide_lines(conn, decider, pick, approve=True, note="action: reprice the category")
        assert len(outcome.decided) == 1
