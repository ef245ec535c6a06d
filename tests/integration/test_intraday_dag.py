"""`retail_intraday` end to end under `airflow dags test`: a surge sensed in the afternoon becomes urgent lines
in ERP staging, through the gate; an hour re-run updates its lines, and an older hour never undoes a newer one."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pandas as pd
import pytest

from include.erp import db
from include.erp.staging import run_lines
from include.reporting.line_text import line_story
from include.runs import Run
from tests.worlds import clear_run_lines, dags_test, intraday_world

DS = dt.date(2026, 10, 30)
DAG_ID = "retail_intraday"
HOUR = 16


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    return intraday_world(str(tmp_path_factory.mktemp("intraday") / "shelfwise"), DS, HOUR)


@pytest.fixture(scope="module")
def world_root(world) -> str:
    return world[0]


def _escalating_policy(directory: Path) -> str:
    """The shipped policy with every urgent line that would arrive after its stock-out critical, whatever its
    value, and escalated as soon as it waits: the gate escalates while it waits, then goes on waiting."""
    import yaml

    from include.config import policy_file

    doc = yaml.safe_load(Path(policy_file()).read_text())
    doc["fast_lane"].update({"min_value": 0, "escalation": {"after_minutes": 0.01, "channel": "log"}})
    path = directory / "policy.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return str(path)


def test_an_afternoon_surge_becomes_urgent_lines_through_the_gate(world, world_root, tmp_path):
    clear_run_lines(DAG_ID, DS)
    with db.connect() as conn:  # the trail is append-only: earlier runs of this date stay in it
        since = conn.execute("SELECT now()").fetchone()[0]
    # The run at 17:00 reads the hour 16:00-17:00.
    text = dags_test(DAG_ID, f"{DS}T{HOUR + 1:02d}:00:00+00:00", root=world_root, log_path=tmp_path / "run.log",
                     conf={"gate_poke_seconds": 1, "gate_timeout_minutes": 0.1}, policy=_escalating_policy(tmp_path))
    stages = Path(world_root) / "reports" / "stages" / DAG_ID / f"ds={DS}"
    sensed = json.loads((stages / "sense_demand.json").read_text())
    assert sensed["hour"] == HOUR and sensed["forecast_origin"] == (DS - dt.timedelta(days=1)).isoformat()
    assert sensed["alarms"] > 0 and sensed["hours_missing"] == []
    from include.storage import read_partition

    reading = read_partition("reports", "intraday_sensing", DS, world_root)
    flagged = set(reading.loc[reading["alarm"].fillna(False).astype(bool), "sku"])
    assert flagged & set(world[1].shocks["sku"]), "a surge of the day is sensed"
    with db.connect() as conn:
        lines = run_lines(conn, DAG_ID, DS)
    assert len(lines) > 0
    assert set(lines["status"]) <= {"released", "expired"}  # decided by the tier or expired at the deadline
    reasons = lines["explanation"].map(lambda e: e.get("reason"))
    assert set(reasons) <= {"surge", "stockout"} and (reasons == "surge").any()
    explanation = lines.loc[reasons == "surge", "explanation"].iloc[0]
    for key in ("surge_ratio", "hours_to_stockout", "margin_at_stake", "move_cost", "as_of"):
        assert key in explanation
    assert {e["as_of"] for e in lines["explanation"]} == {f"{DS}T{HOUR:02d}"}
    # A surge's line tells its surge; a shelf running dry without one (the policy's rescue) says so.
    for line, reason in zip(lines.to_dict("records"), reasons, strict=True):
        assert (" the forecast since " if reason == "surge" else " before its next delivery: ") in line_story(line)
    # The fast lane: a critical line within policy went to the ERP when it was staged; one waiting for a
    # planner was escalated by the gate, which then waited on until its deadline.
    critical = lines[lines["explanation"].map(lambda e: bool(e.get("critical")))]
    assert len(critical), "an urgent move that arrives after the stock-out is critical"
    with db.connect() as conn:
        trail = dict(conn.execute(
            "SELECT idempotency_key, string_agg(action || ':' || coalesce(note, ''), '|') FROM erp_staging.audit_log"
            " WHERE dag_id=%s AND ds=%s AND action IN ('released', 'escalated') AND recorded_at >= %s"
            " GROUP BY idempotency_key", (DAG_ID, DS, since)).fetchall())
    for key, status in zip(critical["idempotency_key"], critical["status"], strict=True):
        assert ("escalated:" if status == "expired" else "fast lane") in trail.get(key, ""), (key, status)
    if (critical["status"] == "expired").any():
        assert "escalated" in text and "ESCALATION" in text


def test_an_hour_run_again_updates_its_lines_and_an_older_hour_changes_nothing(world_root):
    from include.stages import intraday

    clear_run_lines(DAG_ID, DS)

    def run(hour: int, run_id: str) -> dict:
        r = Run(dag_id=DAG_ID, run_id=run_id, ds=DS.isoformat(), task_id="stage_moves")
        intraday.sense(r, hour, root=world_root)
        intraday.propose(r, hour, root=world_root)
        return intraday.stage(r, hour, conn_factory=db.connect, root=world_root)

    first = run(HOUR, "h16-a")
    with db.connect() as conn:
        before = run_lines(conn, DAG_ID, DS)
    assert first["inserted"] == len(before) > 0
    again = run(HOUR, "h16-b")
    with db.connect() as conn:
        after = run_lines(conn, DAG_ID, DS)
    assert again["inserted"] == 0 and len(after) == len(before)  # the same surges, the same lines
    assert sorted(after["idempotency_key"]) == sorted(before["idempotency_key"])
    older = run(HOUR - 2, "h14-late")
    assert older.get("superseded") is True and older["inserted"] == older["withdrawn"] == 0
    with db.connect() as conn:
        pd.testing.assert_frame_equal(run_lines(conn, DAG_ID, DS)[["idempotency_key", "quantity", "status"]]
                                      .sort_values("idempotency_key", ignore_index=True),
                                      after[["idempotency_key", "quantity", "status"]]
                                      .sort_values("idempotency_key", ignore_index=True))


def test_the_next_hour_counts_decided_moves_and_tops_them_up_without_changing_them(world_root):
    from include.erp.staging import decide_all_pending, release_approved
    from include.intraday.moves import MOVE_ACTIONS
    from include.stages import intraday
    from include.storage import read_partition

    clear_run_lines(DAG_ID, DS)

    def run(hour: int, run_id: str) -> tuple[Run, dict]:
        r = Run(dag_id=DAG_ID, run_id=run_id, ds=DS.isoformat(), task_id="propose_moves")
        intraday.sense(r, hour, root=world_root)
        return r, intraday.propose(r, hour, conn_factory=db.connect, root=world_root)

    first, _ = run(HOUR - 1, "h15")
    intraday.stage(first, HOUR - 1, conn_factory=db.connect, root=world_root)
    with db.connect() as conn:  # a planner approves what waits, and the gate releases the hour
        decide_all_pending(conn, DAG_ID, DS, approve=True, user="planner", note="the 15:00 surge")
        release_approved(conn, DAG_ID, DS, run_id="h15")
        decided = run_lines(conn, DAG_ID, DS)
    assert len(decided) > 0 and set(decided["status"]) == {"released"}
    moves = decided[decided["action"].isin(MOVE_ACTIONS)]
    assert len(moves), "the 15:00 surge is fed by moves"

    later, summary = run(HOUR, "h16")
    # Each decided move leaves its donor at 16:00 and arrives hours_to_arrive later; the stock read for the
    # 16:00 run does not show those still on their way (units a store ships to the web shop never show).
    stock_hour = float(read_partition("reports", "intraday_sensing", DS, world_root)["stock_hour"].max())
    on_the_way = sum(q for q, e, a in zip(moves["quantity"], moves["explanation"], moves["action"], strict=True)
                     if a == "ship_from_store" or HOUR + float(e["hours_to_arrive"]) > stock_hour)
    assert summary["units_already_moving"] == pytest.approx(on_the_way) and on_the_way > 0
    proposed = read_partition("curated", "intraday_proposals", DS, world_root)
    assert not set(proposed["business_key"]) & set(decided["business_key"]), "a decided line is never re-proposed"
    bases = set(decided["business_key"])
    assert all(k.rsplit("+", 1)[0] in bases for k in proposed["business_key"] if "+" in k)
    intraday.stage(later, HOUR, conn_factory=db.connect, root=world_root)
    with db.connect() as conn:
        after = run_lines(conn, DAG_ID, DS).set_index("idempotency_key")
    kept = after.loc[decided["idempotency_key"], ["quantity", "status"]].reset_index(drop=True)
    pd.testing.assert_frame_equal(kept, decided[["quantity", "status"]].reset_index(drop=True))
    # The night after reports what was released and moved.
    from include.stages.nightly import _intraday_of_day

    kpis = _intraday_of_day(Run(dag_id="retail_nightly", run_id="night", ds=DS.isoformat(), task_id="report"),
                            db.connect, world_root)
    released = after[after["status"] == "released"]
    assert kpis["ran"] and kpis["units_moved"] == float(released.loc[released["action"].isin(MOVE_ACTIONS),
                                                                      "quantity"].astype(float).sum())
