"""Answer a run's Required Action (Airflow human-in-the-loop task) from the command line.

The answer goes through Airflow's own HITL route code (the one behind
``PATCH /api/v2/dags/{dag}/dagRuns/{run}/taskInstances/{task}/{map_index}/hitlDetails``) on the
metadata DB, so it is recorded with the user's identity and resumes the task exactly as an answer from
the Airflow UI does. Used by ``make approve`` and the integration tests.
"""

from __future__ import annotations

import datetime as dt
import time


def awaiting_run_id(dag_id: str, ds: str, task_id: str = "review_batch") -> str | None:
    """The run of ``dag_id`` for logical date ``ds`` whose ``task_id`` waits for input, if any."""
    from airflow.models.dagrun import DagRun
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session
    from airflow.utils.state import TaskInstanceState
    from sqlalchemy import select

    day = dt.datetime.fromisoformat(ds).replace(tzinfo=dt.UTC)
    with create_session() as session:
        row = session.execute(
            select(DagRun.run_id)
            .join(TaskInstance, (TaskInstance.dag_id == DagRun.dag_id) & (TaskInstance.run_id == DagRun.run_id))
            .where(DagRun.dag_id == dag_id, DagRun.logical_date == day, TaskInstance.task_id == task_id,
                   TaskInstance.state == TaskInstanceState.AWAITING_INPUT)
            .order_by(DagRun.id.desc())
        ).first()
    return row[0] if row else None


def answer(dag_id: str, run_id: str, option: str, *, user: str, role: str, task_id: str = "review_batch",
           min_wait_seconds: float = 2.0) -> dict:
    """Record ``option`` as ``user``'s answer to the run's Required Action.

    Args:
        dag_id: DAG id.
        run_id: DAG run id.
        option: one of the task's options.
        user: Airflow user name answering.
        role: that user's Airflow role (simple auth manager).
        task_id: the human-in-the-loop task.
        min_wait_seconds: an answer recorded within about a second of the task starting to wait is
            lost by the task; wait at least this long after it started waiting.

    Returns:
        The recorded response.
    """
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser
    from airflow.api_fastapi.core_api.datamodels.hitl import UpdateHITLDetailPayload
    from airflow.api_fastapi.core_api.routes.public.hitl import update_hitl_detail
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session

    with create_session() as session:
        ti = session.query(TaskInstance).filter_by(dag_id=dag_id, run_id=run_id, task_id=task_id).one()
        started = ti.start_date or ti.updated_at
    if started is not None:
        waited = (dt.datetime.now(dt.UTC) - started).total_seconds()
        if waited < min_wait_seconds:
            time.sleep(min_wait_seconds - waited)
    with create_session() as session:
        response = update_hitl_detail(
            dag_id=dag_id, dag_run_id=run_id, task_id=task_id,
            update_hitl_detail_payload=UpdateHITLDetailPayload(chosen_options=[option]),
            user=SimpleAuthManagerUser(username=user, role=role), session=session, map_index=-1,
        )
    return response.model_dump(mode="json")
