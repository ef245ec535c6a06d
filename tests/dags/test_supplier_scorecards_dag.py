"""DAG integrity of ``supplier_scorecards``: weekly or on the nightly's supplier Asset, its Assets and adapters."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from types import SimpleNamespace

import pytest

from tests.dags.conftest import load_dag

ROOT = Path(__file__).resolve().parents[2]
DAG_ID = "supplier_scorecards"


@pytest.fixture(scope="module")
def dag():
    return load_dag(DAG_ID)


def test_conventions(dag):
    assert {"shelfwise", "procurement"} <= set(dag.tags)
    assert dag.catchup is False and dag.max_active_runs == 1
    assert dag.doc_md and DAG_ID in dag.doc_md
    for task in dag.tasks:
        assert task.owner == "shelfwise", task.task_id
        assert task.retries is not None, task.task_id
    assert [t.task_id for t in dag.topological_sort()] == ["ingest_procurement", "score_suppliers"]


def test_it_runs_weekly_and_when_the_nightly_curates_supplier_extracts(dag):
    from airflow.timetables.assets import AssetOrTimeSchedule

    from include.assets import CURATED, RETURN_PATTERNS, SUPPLIER_SCORECARDS

    timetable = dag.timetable
    assert isinstance(timetable, AssetOrTimeSchedule)
    assert timetable.timetable._expression == "0 5 * * 1"
    assert {key.name for key, _ in timetable.asset_condition.iter_assets()} == {CURATED["supplier"].name}
    outlets = dag.get_task("score_suppliers").outlets
    assert [a.name for a in outlets] == [SUPPLIER_SCORECARDS.name]
    assert RETURN_PATTERNS in list(dag.get_task("score_suppliers").inlets)  # the defect surges of the window


def test_an_asset_triggered_run_works_on_the_date_of_the_night_that_curated_the_extracts():
    from include.runs import run_date

    night = SimpleNamespace(logical_date=dt.datetime(2026, 11, 27, 2, 0, tzinfo=dt.UTC))
    older = SimpleNamespace(logical_date=dt.datetime(2026, 11, 26, 2, 0, tzinfo=dt.UTC))
    run = SimpleNamespace(run_after=dt.datetime(2026, 11, 28, 3, 10, tzinfo=dt.UTC))
    events = {"asset": [SimpleNamespace(source_dag_run=older), SimpleNamespace(source_dag_run=night)]}
    assert run_date({"ds": None, "triggering_asset_events": events, "dag_run": run}) == "2026-11-27"
    # Scheduled runs keep their logical date; a run with neither falls back to when it was queued.
    assert run_date({"ds": "2026-11-30", "dag_run": run}) == "2026-11-30"
    assert run_date({"triggering_asset_events": {}, "dag_run": run}) == "2026-11-28"
