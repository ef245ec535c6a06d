"""DAG integrity: every DAG file imports cleanly, fast, with the conventions the team relies on."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DAGS = ROOT / "dags"
HEAVY = ("pandas", "great_expectations", "prophet", "statsmodels", "pyarrow", "psycopg")


@pytest.fixture(scope="module")
def dagbag():
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(DAGS))


def test_no_import_errors(dagbag):
    assert dagbag.import_errors == {}


def test_every_dag_file_has_a_dag_named_after_it(dagbag):
    files = sorted(p.stem for p in DAGS.glob("*.py") if not p.name.startswith("_"))
    assert sorted(dagbag.dag_ids) == files


@pytest.mark.parametrize("dag_id", ["retail_nightly"])
def test_conventions(dagbag, dag_id):
    dag = dagbag.dags[dag_id]
    assert dag.tags and "shelfwise" in dag.tags
    assert dag.max_active_runs == 1, "a DAG that writes must not overlap itself"
    assert dag.catchup is False
    assert dag.doc_md and dag_id in dag.doc_md
    for task in dag.tasks:
        assert task.owner == "shelfwise", task.task_id
        assert task.retries is not None, task.task_id


def test_a_broken_contract_fails_without_retry_and_a_database_blip_retries(dagbag, monkeypatch):
    from airflow.sdk.exceptions import AirflowFailException

    from include.contracts.validate import ContractResult, ContractViolation
    from include.erp.db import ErpConnectionError
    from include.stages import nightly

    dag = dagbag.dags["retail_nightly"]
    ingest = [t for t in dag.tasks if t.task_id.startswith("ingest_")]
    assert {t.task_id for t in ingest} == {f"ingest_{s}" for s in
                                           ("master", "pos", "ecommerce", "wms", "supplier", "returns")}
    assert all(t.retries >= 1 for t in ingest)
    call = dag.get_task("ingest_pos").python_callable
    monkeypatch.setitem(call.__globals__, "current_run", lambda: None)

    def broken(*args, **kwargs):
        raise ContractViolation([ContractResult("pos_sales", "1.2.0", "2026-11-27", "pos_sales.csv", outcome="blocked")])

    monkeypatch.setattr(nightly, "ingest", broken)
    with pytest.raises(AirflowFailException, match="blocked by data contract: .*pos_sales"):
        call()

    def unreachable(*args, **kwargs):
        raise ErpConnectionError("lost the connection to the ERP staging database")

    monkeypatch.setattr(nightly, "ingest", unreachable)
    with pytest.raises(ErpConnectionError):  # an ordinary failure: the task's retries apply
        call()


def test_the_review_times_out_with_the_gate(dagbag):
    review = dagbag.dags["retail_nightly"].get_task("review_batch")
    gate_task = dagbag.dags["retail_nightly"].get_task("wait_for_approval")
    assert (review.timeout_minutes, review.staged_at) == (gate_task.timeout_minutes, gate_task.staged_at)
    assert review.response_timeout is None  # worked out when the task runs, from the gate's deadline


def test_chain_order(dagbag):
    dag = dagbag.dags["retail_nightly"]
    order = ["prepare_erp_staging", "ingest_master", "ingest_pos", "build_demand", "plan_forecast_shards",
             "forecast_demand", "combine_forecasts", "detect_anomalies", "propose_decisions", "tier_proposals",
             "stage_proposals", "wait_for_approval", "release_approved", "report_kpis"]
    for upstream, downstream in zip(order, order[1:], strict=False):
        assert downstream in dag.get_task(upstream).get_flat_relative_ids(upstream=False), (upstream, downstream)
    # The forecast fans out over shards of series with dynamic task mapping.
    assert type(dag.get_task("forecast_demand")).__name__.endswith("MappedOperator")


def test_the_nightly_outputs_are_assets(dagbag):
    """Every producing task names its Asset, and a degraded source never skips the work after it."""
    from include.assets import CURATED, DECISIONS, FORECASTS, KPIS

    dag = dagbag.dags["retail_nightly"]
    expected = {f"ingest_{source}": [asset] for source, asset in CURATED.items()}
    expected.update(combine_forecasts=[FORECASTS], stage_proposals=[DECISIONS], report_kpis=[KPIS])
    assert {t.task_id: list(t.outlets) for t in dag.tasks if t.outlets} == expected
    assert FORECASTS.name == "shelfwise_forecasts" and FORECASTS.uri == "x-shelfwise://forecasts/demand"
    # A stand-in makes its ingest task succeed; the work downstream of an ingest waits for success only,
    # so nothing is skipped on a degraded night and nothing runs on a blocked critical extract.
    for source in CURATED:
        for task_id in dag.get_task(f"ingest_{source}").downstream_task_ids:
            assert dag.get_task(task_id).trigger_rule == "all_success", task_id


def test_gate_is_deferrable_sensor(dagbag):
    from include.erp.gate import ApprovalGateSensor

    gate = dagbag.dags["retail_nightly"].get_task("wait_for_approval")
    assert isinstance(gate, ApprovalGateSensor)
    assert set(gate.template_fields) >= {"replay", "timeout_minutes", "poke_interval_seconds"}


def test_parse_is_fast_and_light():
    """Parse the whole folder in a fresh interpreter: under 2 s, and no heavy library imported."""
    code = (
        "import time, sys, json\n"
        "from airflow.dag_processing.dagbag import DagBag\n"
        "t = time.perf_counter()\n"
        f"bag = DagBag(dag_folder={str(DAGS)!r})\n"
        "elapsed = time.perf_counter() - t\n"
        f"print(json.dumps({{'elapsed': elapsed, 'errors': len(bag.import_errors), "
        f"'heavy': [m for m in {HEAVY!r} if m in sys.modules]}}))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONPATH": str(ROOT)}, cwd=ROOT)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["errors"] == 0
    assert result["elapsed"] < 2.0, result
    assert [m for m in result["heavy"] if m in ("great_expectations", "prophet", "statsmodels")] == []


def test_ruff_airflow3_rules():
    """Airflow 2 idioms stay out (ruff AIR3 rules) across DAGs, plugins and the library."""
    ruff = Path(sys.executable).parent / "ruff"
    out = subprocess.run([str(ruff), "check", "--select", "AIR3", "dags", "plugins", "include", "models"],
                         capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stdout + out.stderr


def test_every_contract_and_the_policy_load():
    """The files the DAG reads at run time are checked here, so a typo fails before a night does."""
    from include.contracts.contract import load_contracts
    from include.governance.policy import load_policy

    contracts = load_contracts()
    assert len(contracts) == 13
    assert load_policy().gate_timeout_hours > 0


def test_a_malformed_contract_fails_with_file_and_line(tmp_path):
    from include.contracts.contract import ContractError, load_contracts

    good = (ROOT / "data_contracts" / "returns.yaml").read_text()
    for path in (ROOT / "data_contracts").glob("*.yaml"):
        (tmp_path / path.name).write_text(path.read_text())
    (tmp_path / "returns.yaml").write_text(good + "\nownr: typo\n")
    with pytest.raises(ContractError) as err:
        load_contracts(tmp_path)
    line = len(good.splitlines()) + 2
    assert f"returns.yaml:{line}:" in str(err.value) and "unknown key 'ownr'" in str(err.value)


def test_the_dag_and_the_domain_agree(dagbag):
    """Params, review choices and the replay rule the DAG wires come from include.runs, and mean the same."""
    from types import SimpleNamespace

    import jinja2
    from airflow.utils.types import DagRunType

    from include.runs import MODES, NIGHTLY_DEFAULTS, REPLAY_TEMPLATE, REVIEW_OPTIONS, is_replay

    dag = dagbag.dags["retail_nightly"]
    assert {name: dag.params[name] for name in NIGHTLY_DEFAULTS} == NIGHTLY_DEFAULTS
    assert dag.get_task("review_batch").options == REVIEW_OPTIONS
    assert dag.get_task("review_batch").defaults == [REVIEW_OPTIONS[-1]]
    assert dag.get_task("wait_for_approval").replay == REPLAY_TEMPLATE
    for run_type in DagRunType:
        for mode in MODES:
            rendered = jinja2.Template(REPLAY_TEMPLATE).render(dag_run=SimpleNamespace(run_type=run_type),
                                                               params={"mode": mode})
            assert (rendered == "True") is is_replay(run_type, mode), (run_type, mode, rendered)


def test_every_task_calls_its_stage_adapter(dagbag):
    """One adapter per task, named after it, in include/stages/nightly.py."""
    import inspect

    from include.stages import nightly

    dag = dagbag.dags["retail_nightly"]
    renamed = {"needs_review": "review_text"}
    for task in dag.tasks:
        if not hasattr(task, "python_callable"):
            continue  # the gate sensor and the Required Action are operators of their own
        name = "ingest" if task.task_id.startswith("ingest_") else renamed.get(task.task_id, task.task_id)
        assert callable(getattr(nightly, name, None)), f"no stage adapter {name} for task {task.task_id}"
        assert f"nightly.{name}(" in inspect.getsource(task.python_callable), task.task_id
