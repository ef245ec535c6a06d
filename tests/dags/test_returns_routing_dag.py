"""DAG integrity of ``returns_routing``: conventions, the daily-or-Asset schedule, wiring, gate and adapters."""

from __future__ import annotations

import datetime as dt
import inspect
from types import SimpleNamespace

import pytest

from tests.dags.conftest import load_dag

DAG_ID = "returns_routing"
ORDER = ["ingest_returns_system", "route_returns", "stage_dispositions", "release_within_policy",
         "wait_for_approval", "release_approved"]


@pytest.fixture(scope="module")
def dag():
    return load_dag(DAG_ID)


def test_conventions(dag):
    assert {"shelfwise", "returns", "erp"} <= set(dag.tags)
    assert dag.catchup is False and dag.max_active_runs == 1
    assert dag.doc_md and DAG_ID in dag.doc_md
    for task in dag.tasks:
        assert task.owner == "shelfwise", task.task_id
        assert task.retries is not None, task.task_id


def test_it_runs_daily_at_three_and_when_the_nightly_curates_returns(dag):
    from airflow.timetables.assets import AssetOrTimeSchedule
    from airflow.timetables.interval import CronDataIntervalTimetable

    from include.assets import CURATED
    from include.config import trading_hours

    timetable = dag.timetable
    assert isinstance(timetable, AssetOrTimeSchedule)
    assert isinstance(timetable.timetable, CronDataIntervalTimetable)
    assert timetable.timetable._expression == "0 3 * * *"
    assert str(timetable.timetable._timezone.name) == trading_hours()[2]
    assert {key.name for key, _ in timetable.asset_condition.iter_assets()} == {CURATED["returns"].name}


def test_an_asset_triggered_run_routes_the_night_s_date():
    from include.runs import run_date

    night = SimpleNamespace(logical_date=dt.datetime(2026, 11, 27, 2, 0, tzinfo=dt.UTC))
    run = SimpleNamespace(run_after=dt.datetime(2026, 11, 28, 3, 10, tzinfo=dt.UTC))
    assert run_date({"ds": None, "triggering_asset_events": {"a": [SimpleNamespace(source_dag_run=night)]},
                     "dag_run": run}) == "2026-11-27"


def test_chain_order(dag):
    order = [t.task_id for t in dag.topological_sort() if t.task_id != "classify_return_patterns"]
    assert order == ORDER
    for upstream, downstream in zip(ORDER[1:], ORDER[2:], strict=False):
        assert dag.get_task(upstream).downstream_task_ids == {downstream}, upstream
    # The week's return patterns are classified beside the routing, from the same ingested extracts.
    assert dag.get_task(ORDER[0]).downstream_task_ids == {"route_returns", "classify_return_patterns"}
    assert dag.get_task("classify_return_patterns").downstream_task_ids == set()


def test_assets_and_params(dag):
    from include.assets import FORECASTS

    assert FORECASTS in list(dag.get_task("route_returns").inlets)
    from include.assets import RETURN_PATTERNS

    assert list(dag.get_task("classify_return_patterns").outlets) == [RETURN_PATTERNS]
    assert set(dag.params) == {"mode", "gate_timeout_minutes", "gate_poke_seconds"}
    assert dag.params["mode"] == "live"


def test_the_gate_is_run_scoped_with_the_returns_deadline(dag):
    from include.erp.gate import ApprovalGateSensor
    from include.runs import REPLAY_TEMPLATE

    gate = dag.get_task("wait_for_approval")
    assert isinstance(gate, ApprovalGateSensor)
    assert gate.run_scoped is True and gate.deadline == "returns" and gate.retries == 0
    assert gate.replay == REPLAY_TEMPLATE
    assert "stage_dispositions" in gate.staged_at


def test_the_returns_deadline_comes_from_the_policy():
    from include.erp.gate import gate_timeout_hours
    from include.governance.policy import load_policy

    assert gate_timeout_hours(None, "returns") == pytest.approx(load_policy().returns.deadline_hours) == 24.0
    assert gate_timeout_hours("6", "returns") == pytest.approx(0.1)


def test_every_task_calls_its_stage_adapter(dag):
    from include.stages import returns

    names = {"ingest_returns_system": "ingest", "classify_return_patterns": "classify", "route_returns": "route",
             "stage_dispositions": "stage",
             "release_within_policy": "release", "release_approved": "release"}
    for task in dag.tasks:
        if not hasattr(task, "python_callable"):
            continue  # the gate sensor
        name = names[task.task_id]
        assert callable(getattr(returns, name, None)), task.task_id
        assert f"returns.{name}(" in inspect.getsource(task.python_callable), task.task_id


def test_a_broken_contract_fails_without_retry(dag, monkeypatch):
    from airflow.sdk.exceptions import AirflowFailException

    from include.contracts.validate import ContractResult, ContractViolation
    from include.stages import returns

    call = dag.get_task("ingest_returns_system").python_callable
    monkeypatch.setitem(call.__globals__, "current_run", lambda: None)

    def broken(*args, **kwargs):
        raise ContractViolation([ContractResult("returns_detail", "1.0.0", "2026-11-27", "returns_detail.jsonl",
                                                outcome="blocked")])

    monkeypatch.setattr(returns, "ingest", broken)
    with pytest.raises(AirflowFailException, match="blocked by data contract: .*returns_detail"):
        call()
