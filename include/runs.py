"""What a workflow's DAG file needs at parse time, and what a task knows about its run.

This module is the light wiring between the thin DAG files and the stage adapters: the batch review's
choices, the one rule that says whether a run is a replay, the parameter defaults that the DAG's
``Param``s and the adapters share, and :class:`Run`, the facts of the running task. It imports
nothing heavy (no pandas, no database driver), so a DAG file may import it at module level.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

#: Choices of a workflow's batch review (the Required Action before its approval gate).
REVIEW_APPROVE_ALL = "Approve all pending"
REVIEW_REJECT_ALL = "Reject all pending"
REVIEW_DONE = "I have reviewed the lines"
REVIEW_OPTIONS = [REVIEW_APPROVE_ALL, REVIEW_REJECT_ALL, REVIEW_DONE]

#: Run modes of the ``mode`` param: ``replay`` computes everything and stages nothing for people.
MODES = ("live", "replay")

#: The same rule as :func:`is_replay`, for templated operator fields (the gate sensor).
REPLAY_TEMPLATE = "{{ dag_run.run_type == 'backfill' or params.mode == 'replay' }}"

#: Defaults of the nightly's params; the DAG's ``Param``s and the adapters both read them from here.
NIGHTLY_DEFAULTS: dict[str, Any] = {"mode": "live", "history_days": 365, "horizon": 28, "shard_size": 5000}


def staged_at_template(stage_task_id: str) -> str:
    """The templated ISO time at which ``stage_task_id`` staged its lines (its return value's ``staged_at``);
    a gate's deadline counts from it."""
    return xcom_field_template(stage_task_id, "staged_at")


def xcom_field_template(task_id: str, field: str) -> str:
    """The template of one field of what ``task_id`` returned."""
    return "{{ ti.xcom_pull(task_ids='" + task_id + "')['" + field + "'] }}"


def gate_params(deadline: str = "the policy's") -> dict[str, Any]:
    """The ``gate_timeout_minutes`` and ``gate_poke_seconds`` params of a DAG with an approval gate.

    Args:
        deadline: which policy deadline an empty timeout falls back to, for the param's description.
    """
    from airflow.sdk import Param

    return {
        "gate_timeout_minutes": Param(None, type=["null", "number"],
                                      description=f"the gate's deadline; empty uses {deadline} deadline"),
        "gate_poke_seconds": Param(None, type=["null", "number"],
                                   description="how often the gate checks; empty uses the policy"),
    }


def current_run() -> Run:
    """The running task's :class:`Run` (inside a task only)."""
    from airflow.sdk import get_current_context

    return Run.from_context(get_current_context())


def erp_conn():
    """A new connection to ERP staging through the ``erp_staging`` Airflow connection (inside a task)."""
    from include.erp.hook import ErpStagingHook

    return ErpStagingHook().get_conn()


def ingest_or_fail(ingest: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """Run an ingest task's adapter; a broken contract fails the task for good.

    A broken contract is deterministic: no retry can fix the data, while a database blip can, so only
    :class:`~include.contracts.validate.ContractViolation` becomes Airflow's fail-without-retry.
    """
    from airflow.sdk.exceptions import AirflowFailException

    from include.contracts.validate import ContractViolation

    try:
        return ingest()
    except ContractViolation as exc:
        raise AirflowFailException(str(exc)) from exc


def is_replay(run_type: object, mode: str | None) -> bool:
    """Whether a run computes everything but stages nothing for planners and releases nothing.

    Args:
        run_type: the DAG run's type (an Airflow ``DagRunType`` or its string value).
        mode: the run's ``mode`` param.

    Returns:
        True for a backfill run and for any run with ``mode=replay``.
    """
    value = getattr(run_type, "value", run_type)
    return str(value) == "backfill" or mode == "replay"


def run_date(context: Any) -> str:
    """The date a run works on, ``YYYY-MM-DD``: its logical date, else (a run triggered by Assets, which has
    none) the logical date of the newest run that updated a triggering Asset, else the day it was queued."""
    if context.get("ds"):
        return str(context["ds"])
    dates = [event.source_dag_run.logical_date for events in (context.get("triggering_asset_events") or {}).values()
             for event in events if getattr(event, "source_dag_run", None) is not None
             and event.source_dag_run.logical_date is not None]
    when = max(dates) if dates else context["dag_run"].run_after
    return when.date().isoformat()


@dataclass(frozen=True)
class Run:
    """The facts of the running task that every stage adapter needs.

    Attributes:
        dag_id: the workflow.
        run_id: the DAG run.
        ds: the logical date, ``YYYY-MM-DD``.
        task_id: the task; its stage summary is filed under this name.
        replay: see :func:`is_replay`.
        params: the run's params (defaults filled in by Airflow).
        started: ``time.monotonic()`` when the task began (the stage's seconds count from it).
    """

    dag_id: str
    run_id: str
    ds: str
    task_id: str
    replay: bool = False
    params: dict[str, Any] = field(default_factory=dict)
    started: float = field(default_factory=time.monotonic, compare=False)

    @classmethod
    def from_context(cls, context: Any) -> Run:
        """Build from an Airflow task context (``get_current_context()``)."""
        run = context["dag_run"]
        params = dict(context.get("params") or {})
        return cls(dag_id=context["dag"].dag_id, run_id=run.run_id, ds=run_date(context),
                   task_id=context["ti"].task_id, replay=is_replay(run.run_type, params.get("mode")),
                   params=params)

    def param(self, name: str, defaults: dict[str, Any] = NIGHTLY_DEFAULTS) -> Any:
        """A param of the run, else its default."""
        value = self.params.get(name)
        return defaults[name] if value is None else value
