"""`retail_intraday` end to end under `airflow dags test`: a surge sensed in the afternoon becomes urgent lines
in ERP staging, through the gate; an hour re-run updates its lines, and an older hour never undoes a newer one."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from include.erp import db
from include.erp.staging import run_lines
from include.runs import Run
from tests.worlds import clear_run_lines, intraday_world

ROOT = Path(__file__).resolve().parents[2]
AIRFLOW = str(Path(sys.executable).parent / "airflow")
DS = dt.date(2026, 10, 30)
DAG_ID = "retail_intraday"
HOUR = 16


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    return intraday_world(str(tmp_path_factory.mktemp("intraday") / "shelfwise"), DS, HOUR)


@pytest.fixture(scope="module")
def world_root(world) -> str:
    return world[0]


def _dags_test(root: str, logical: str, conf: dict, log_path: Path) -> str:
    env = {**os.environ, "SHELFWISE_DATA_ROOT": root, "PYTHONPATH": str(ROOT)}
    with open(log_path, "w") as log:
        proc = subprocess.run([AIRFLOW, "dags", "test", DAG_ID, logical, "-c", json.dumps(conf)], env=env,
                              stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=ROOT, timeout=300,
                              check=False)
    text = log_path.read_text(errors="replace")
    assert proc.returncode == 0 and "state=success" in text.split("DagRun Finished", 1)[-1][:2000], text[-4000:]
    return text


def test_an_afternoon_surge_becomes_urgent_lines_through_the_gate(world, world_root, tmp_path):
    clear_run_lines(DAG_ID, DS)
    # The run at 17:00 reads the hour 16:00-17:00.
    _dags_test(world_root, f"{DS}T{HOUR + 1:02d}:00:00+00:00", {"gate_poke_seconds": 1, "gate_timeout_minutes": 0.05},
               tmp_path / "run.log")
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
    explanation = lines["explanation"].iloc[0]
    for key in ("surge_ratio", "hours_to_stockout", "margin_at_stake", "move_cost", "as_of"):
        assert key in explanation
    assert explanation["as_of"] == f"{DS}T{HOUR:02d}"


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
