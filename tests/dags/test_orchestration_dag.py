"""DAG integrity of ``order_orchestration``: conventions, wiring, the gate and the stage adapters."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest

from tests.dags.conftest import load_dag

ROOT = Path(__file__).resolve().parents[2]
DAG_ID = "order_orchestration"


@pytest.fixture(scope="module")
def dag():
    return load_dag(DAG_ID)


def test_conventions(dag):
    assert "shelfwise" in dag.tags and "orchestration" in dag.tags
    assert dag.catchup is False
    assert dag.doc_md and DAG_ID in dag.doc_md
    # Batches overlap while a gate waits; routing and staging take turns across runs.
    assert 1 < dag.max_active_runs <= 4
    for task_id in ("route_orders", "stage_assignments"):
        assert dag.get_task(task_id).max_active_tis_per_dag == 1
    for task in dag.tasks:
        assert task.owner == "shelfwise", task.task_id
        assert task.retries is not None, task.task_id


def test_the_schedule_is_the_policy_batch(dag):
    from airflow.sdk import CronDataIntervalTimetable

    from include.governance.policy import load_policy

    assert isinstance(dag.timetable, CronDataIntervalTimetable)
    assert dag.timetable.expression == f"*/{load_policy().orchestration.batch_minutes} * * * *"


def test_chain_order(dag):
    order = ["ingest_oms", "route_orders", "stage_assignments", "release_within_policy", "wait_for_approval",
             "release_approved"]
    for upstream, downstream in zip(order, order[1:], strict=False):
        assert downstream in dag.get_task(upstream).downstream_task_ids, (upstream, downstream)
    for source in ("carrier", "labour", "wms_live"):
        assert "route_orders" in dag.get_task(f"ingest_{source}").downstream_task_ids


def test_assets_and_params(dag):
    from include.assets import FORECASTS, ORDER_LINES

    assert list(dag.get_task("ingest_oms").outlets) == [ORDER_LINES]
    assert list(dag.get_task("route_orders").inlets) == [FORECASTS]
    assert {"mode", "until", "gate_timeout_minutes", "gate_poke_seconds"} <= set(dag.params)
    assert dag.params["mode"] == "live"


def test_the_gate_is_run_scoped_with_the_orchestration_deadline(dag):
    from include.erp.gate import ApprovalGateSensor
    from include.runs import REPLAY_TEMPLATE

    gate = dag.get_task("wait_for_approval")
    assert isinstance(gate, ApprovalGateSensor)
    assert gate.run_scoped is True and gate.deadline == "orchestration" and gate.retries == 0
    assert gate.replay == REPLAY_TEMPLATE
    assert "stage_assignments" in gate.staged_at


def test_the_orchestration_deadline_comes_from_the_policy(monkeypatch):
    from include.erp.gate import gate_timeout_hours
    from include.governance.policy import load_policy

    assert gate_timeout_hours(None, "orchestration") == pytest.approx(load_policy().orchestration.deadline_minutes / 60)
    assert gate_timeout_hours("6", "orchestration") == pytest.approx(0.1)


def test_every_task_calls_its_stage_adapter(dag):
    from include.stages import orchestration

    for task in dag.tasks:
        if not hasattr(task, "python_callable"):
            continue  # the gate sensor
        name = ("ingest" if task.task_id.startswith("ingest_") else
                "release" if task.task_id.startswith("release_") else task.task_id.split("_")[0])
        assert callable(getattr(orchestration, name, None)), task.task_id
        assert f"orchestration.{name}(" in inspect.getsource(task.python_callable), task.task_id


def test_a_broken_contract_fails_without_retry(dag, monkeypatch):
    from airflow.sdk.exceptions import AirflowFailException

    from include.contracts.validate import ContractResult, ContractViolation
    from include.stages import orchestration

    call = dag.get_task("ingest_oms").python_callable
    monkeypatch.setitem(call.__globals__, "current_run", lambda: None)

    def broken(*args, **kwargs):
        raise ContractViolation([ContractResult("open_order_lines", "1.0.0", "2026-11-27", "open_order_lines.jsonl",
                                                outcome="blocked")])

    monkeypatch.setattr(orchestration, "ingest", broken)
    with pytest.raises(AirflowFailException, match="blocked by data contract: .*open_order_lines"):
        call()
