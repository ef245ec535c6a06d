"""End to end: ``retail_nightly`` on Celery workers proposes exactly what the same night proposes in one process.

On a tiny generated world, the same replay night (2026-10-30, ``mode=replay``: nothing waits for a
planner) runs twice: first its tasks in the DAG's order in this process (the reference, the same stage
adapters the tasks call), then through Airflow's own scheduler on the CeleryExecutor with two
``airflow celery worker`` processes, triggered and polled through the REST API, Redis (database 5 unless
``SHELFWISE_TEST_REDIS_URL`` says otherwise) as the broker. The stack has a PostgreSQL metadata DB of the
test's own (named after the ERP test database, ending in ``_celery``; dropped afterwards) and a Celery
queue of its own, so another stack on the same Redis database never takes these tasks. (The
LocalExecutor runs the scheduler's nights in the other end-to-end tests.)

The Celery run must succeed with the forecast fanned out to more than one shard, every shard run by
one of the two workers (their logs name each task instance they execute), and write replay proposals
identical, row for row, to the reference's.

Redis missing: the test skips, saying how to start it; under CI (``CI=true``) it fails instead.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import secrets
import shutil
import sys
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import psycopg
import pytest

from tests.worlds import night_in_process, tiny_world

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts"))
from airflow_services import CELERY, Stack, airflow_stack, broker_problem, drop_queue, sqlalchemy_url  # noqa: E402
from required_action import AirflowApiError, ApiSession  # noqa: E402
from shelfwise import with_database  # noqa: E402

pytestmark = pytest.mark.e2e

DAG_ID = "retail_nightly"
DS = dt.date(2026, 10, 30)
CONF = {"mode": "replay", "history_days": 120, "shard_size": 25}
REDIS_URL = os.environ.get("SHELFWISE_TEST_REDIS_URL") or "redis://127.0.0.1:6379/5"
#: A proposal's business key within a night (the ERP line's idempotency key without dag_id and ds).
KEY = ["doc_type", "business_key"]
PARSE_TIMEOUT_S = 120
RUN_TIMEOUT_S = 240
#: What a Celery worker logs for each task instance it runs (the workload's repr), and its fields.
WORKLOAD = "Executing workload in Celery"
FIELDS = {name: re.compile(rf"\b{name}=(?P<value>'[^']*'|-?\d+)") for name in ("task_id", "run_id", "map_index")}


@pytest.fixture(scope="module")
def broker() -> str:
    """The Redis URL of the test's broker; skips (fails under CI) when nothing answers there."""
    problem = broker_problem(REDIS_URL)
    if problem:
        message = (f"{problem}. Start Redis on this machine (`apt-get install redis-server`, then "
                   "`redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save ''`) or point "
                   "SHELFWISE_TEST_REDIS_URL at one")
        if os.environ.get("CI") == "true":
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    return REDIS_URL


@pytest.fixture
def queue(broker) -> Iterator[str]:
    """A Celery queue of the test's own; its keys are removed from the broker afterwards."""
    name = f"shelfwise-e2e-{secrets.token_hex(4)}"
    yield name
    drop_queue(broker, name)


@pytest.fixture(scope="module")
def metadata_db(erp_url, erp_owner_url) -> Iterator[str]:
    """A PostgreSQL metadata DB of the test's own, on the ERP test database's server, dropped after.

    Named after the ERP test database (``<its name>_<random>_celery``), so that it stays within the names
    that ``SHELFWISE_TEST_ERP_DB`` gives an engineer on a shared server.
    """
    name = f"{psycopg.conninfo.conninfo_to_dict(erp_url)['dbname']}_{secrets.token_hex(4)}_celery"
    admin = psycopg.conninfo.make_conninfo(erp_owner_url, dbname="postgres")  # the app role creates nothing
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield sqlalchemy_url(with_database(erp_owner_url, name))
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="module")
def world_root(tmp_path_factory) -> str:
    """The tiny retailer up to ``DS``, its history before ``DS`` loaded as earlier nights did."""
    return tiny_world(str(tmp_path_factory.mktemp("celery-world") / "shelfwise"), DS)


@pytest.fixture(scope="module")
def night_env(prepared_environment, tmp_path_factory, metadata_db, world_root) -> dict[str, str]:
    """What the stack runs with: its Airflow home and metadata DB, the tiny world, no scheduled nights."""
    return {
        **prepared_environment,
        "AIRFLOW_HOME": str(tmp_path_factory.mktemp("celery-airflow-home")),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": metadata_db,
        "SHELFWISE_DATA_ROOT": world_root,
        "AIRFLOW__CORE__PARALLELISM": "4",
        # Only the triggered run: no scheduled night (catchup=False would still create the latest one).
        "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "False",
        # INFO: a Celery worker logs each workload it executes, the evidence of where a task ran.
        "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
        # One parse is enough: re-parsing every 30 s takes a share of the two cores the runs need.
        "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "600",
    }


def _admin(stack: Stack) -> ApiSession:
    passwords = Path(stack.env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"])
    return ApiSession.login(stack.base_url, "admin", json.loads(passwords.read_text())["admin"])


def _run_night(stack: Stack) -> tuple[str, list[dict]]:
    """Trigger the replay night through the REST API and wait for it; its run id and task instances."""
    api = _admin(stack)
    deadline = time.monotonic() + PARSE_TIMEOUT_S
    while True:
        try:
            api.call("PATCH", f"/api/v2/dags/{DAG_ID}", body={"is_paused": False})
            break
        except AirflowApiError as exc:
            if exc.status != 404 or time.monotonic() > deadline:
                pytest.fail(f"{DAG_ID} not parsed on the {stack.executor} stack: {exc}\n{stack.log_tails()}")
            time.sleep(2)
    run = api.call("POST", f"/api/v2/dags/{DAG_ID}/dagRuns",
                   body={"logical_date": f"{DS.isoformat()}T00:00:00+00:00", "conf": CONF})
    run_path = f"/api/v2/dags/{DAG_ID}/dagRuns/{urllib.parse.quote(run['dag_run_id'], safe='')}"
    deadline = time.monotonic() + RUN_TIMEOUT_S
    state = run["state"]
    while state not in ("success", "failed") and time.monotonic() < deadline:
        time.sleep(2)
        state = api.call("GET", run_path)["state"]
    tis = api.call("GET", f"{run_path}/taskInstances", params={"limit": 100})["task_instances"]
    if state != "success":
        states = {f"{t['task_id']}[{t['map_index']}]": t["state"] for t in tis}
        pytest.fail(f"the {stack.executor} run ended {state!r} (timeout {RUN_TIMEOUT_S} s), expected success\n"
                    f"task states: {states}\n{stack.log_tails()}")
    return run["dag_run_id"], tis


def _replay_proposals(root: str) -> pd.DataFrame:
    from include.storage import read_partition

    frame = read_partition("reports", "replay_proposals", DS, root)
    return frame.sort_values(KEY).reset_index(drop=True)


def _executed_by_workers(stack: Stack, run_id: str) -> dict[tuple[str, int], str]:
    """``(task_id, map_index) -> worker`` for every task instance of ``run_id`` a worker's log names."""
    ran = {}
    for i, _ in enumerate(stack.workers, start=1):
        for line in stack.log(f"worker-{i}").read_text(errors="replace").splitlines():
            found = {name: pattern.search(line) for name, pattern in FIELDS.items()} if WORKLOAD in line else {}
            if all(found.values()) and found and found["run_id"]["value"].strip("'") == run_id:
                ran[(found["task_id"]["value"].strip("'"), int(found["map_index"]["value"]))] = f"worker-{i}"
    return ran


def test_celery_workers_propose_what_the_same_night_proposes_in_process(broker, queue, night_env, world_root):
    clock = [time.monotonic()]
    took = {}

    def lap(what: str) -> None:
        clock.append(time.monotonic())
        took[what] = round(clock[-1] - clock[-2])

    from include.erp import db

    night_in_process(world_root, DS, {k: v for k, v in CONF.items() if k != "mode"}, conn_factory=db.connect)
    lap("in-process night")
    local_proposals = _replay_proposals(world_root)
    assert len(local_proposals) > 0, "the tiny world's night proposes something"
    shutil.rmtree(Path(world_root) / "reports" / "replay_proposals" / f"ds={DS.isoformat()}")

    with airflow_stack(night_env, executor=CELERY, workers=2, worker_concurrency=2, broker_url=broker,
                       queue=queue) as celery:
        lap("celery start")
        celery_run, tis = _run_night(celery)
        lap("celery run")
        ran = _executed_by_workers(celery, celery_run)
    lap("celery stop")
    shards = [t for t in tis if t["task_id"] == "forecast_demand"]
    assert len(shards) > 1, f"the forecast fanned out to {len(shards)} shard(s); expected more than one"
    assert {t["state"] for t in shards} == {"success"}
    assert {t["queue"] for t in tis if t["state"] == "success"} == {queue}
    missing = [t["map_index"] for t in shards if ("forecast_demand", t["map_index"]) not in ran]
    assert not missing, f"forecast shards {missing} are in no Celery worker's log; workers ran {sorted(ran)}"

    celery_proposals = _replay_proposals(world_root)
    quantities = [*KEY, "quantity"]
    assert celery_proposals[quantities].to_dict("records") == local_proposals[quantities].to_dict("records")
    pd.testing.assert_frame_equal(celery_proposals, local_proposals)  # explanations, tiers, values too
    by_worker = pd.Series(ran).value_counts().to_dict()
    print(f"e2e celery: seconds {took}; {len(shards)} forecast shards; task instances per worker {by_worker}; "
          f"{len(celery_proposals)} identical replay proposals")
