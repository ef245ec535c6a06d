"""DAG integrity of ``finance_review``: conventions, the schedule on the nightly's Assets, wiring, gate, adapters."""

from __future__ import annotations

import inspect

import pytest

from tests.dags.conftest import load_dag

DAG_ID = "finance_review"
ORDER = ["ingest_finance", "review_margin", "stage_items", "wait_for_approval", "release_acknowledged"]


@pytest.fixture(scope="module")
def dag():
    return load_dag(DAG_ID)


def test_conventions(dag):
    assert {"shelfwise", "finance", "erp"} <= set(dag.tags)
    assert dag.catchup is False and dag.max_active_runs == 1
    assert dag.doc_md and DAG_ID in dag.doc_md
    for task in dag.tasks:
        assert task.owner == "shelfwise", task.task_id
        assert task.retries is not None, task.task_id


def test_it_runs_once_the_night_curated_sales_orders_and_returns(dag):
    from include.assets import CURATED

    assert type(dag.timetable).__name__ == "AssetTriggeredTimetable"
    condition = dag.timetable.asset_condition
    # All three, not any one of them.
    assert type(condition).__name__ == "AssetAll"
    assert {a.name for a in condition.objects} == {CURATED[s].name for s in ("pos", "ecommerce", "returns")}


def test_chain_order_params_and_inlets(dag):
    from include.assets import CURATED

    assert [t.task_id for t in dag.topological_sort()] == ORDER
    for upstream, downstream in zip(ORDER, ORDER[1:], strict=False):
        assert dag.get_task(upstream).downstream_task_ids == {downstream}, upstream
    assert set(dag.params) == {"mode", "gate_timeout_minutes", "gate_poke_seconds"}
    assert CURATED["returns"] in list(dag.get_task("review_margin").inlets)
    from include.assets import RETURN_PATTERNS

    assert RETURN_PATTERNS in list(dag.get_task("review_margin").inlets)  # the refunds items' return patterns


def test_the_gate_is_run_scoped_with_the_finance_deadline(dag):
    from include.erp.gate import ApprovalGateSensor, gate_timeout_hours
    from include.governance.policy import load_policy
    from include.runs import REPLAY_TEMPLATE

    gate = dag.get_task("wait_for_approval")
    assert isinstance(gate, ApprovalGateSensor)
    assert gate.run_scoped is True and gate.deadline == "finance" and gate.retries == 0
    assert gate.replay == REPLAY_TEMPLATE and "stage_items" in gate.staged_at
    assert gate_timeout_hours(None, "finance") == pytest.approx(load_policy().finance.deadline_hours)


def test_every_task_calls_its_stage_adapter(dag):
    from include.stages import finance

    names = {"ingest_finance": "ingest", "review_margin": "review", "stage_items": "stage",
             "release_acknowledged": "release"}
    for task in dag.tasks:
        if not hasattr(task, "python_callable"):
            continue  # the gate sensor
        name = names[task.task_id]
        assert callable(getattr(finance, name, None)), task.task_id
        assert f"finance.{name}(" in inspect.getsource(task.python_callable), task.task_id


def test_a_broken_contract_fails_without_retry(dag, monkeypatch):
    from airflow.sdk.exceptions import AirflowFailException

    from include.contracts.validate import ContractResult, ContractViolation
    from include.stages import finance

    call = dag.get_task("ingest_finance").python_callable
    monkeypatch.setitem(call.__globals__, "current_run", lambda: None)

    def broken(*args, **kwargs):
        raise ContractViolation([ContractResult("shipment_costs", "1.0.0", "2026-11-27", "shipment_costs.csv",
                                                outcome="blocked")])

    monkeypatch.setattr(finance, "ingest", broken)
    with pytest.raises(AirflowFailException, match="blocked by data contract: .*shipment_costs"):
        call()
