"""The approval gate: a deferrable sensor that waits until planners have decided a run's lines.

The trigger watches the staging tables (not an Airflow state), so a decision made anywhere, in the
approval page, the command line or the ERP, counts. At the deadline it reports a timeout and the
sensor expires what is still pending: an undecided line is never released.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import AsyncIterator
from typing import Any

from airflow.providers.standard.operators.hitl import HITLOperator
from airflow.sdk import BaseSensorOperator
from airflow.triggers.base import BaseTrigger, TriggerEvent

from include.runs import run_date

log = logging.getLogger(__name__)

#: The policy deadlines a gate can wait by (see :func:`gate_timeout_hours`).
DEADLINES = ("gate", "intraday", "orchestration", "returns", "finance")


def _given(value: object) -> bool:
    """Whether a templated value was set (an empty param renders as ``""`` or ``"None"``)."""
    return value not in (None, "", "None")


def gate_timeout_hours(timeout_minutes: str | float | None, deadline: str = "gate") -> float:
    """The gate's timeout: ``timeout_minutes`` when given, else the governance policy's.

    ``deadline`` names the policy's setting: ``gate`` (``gate.timeout_hours``), ``intraday``
    (``intraday.deadline_hours``), ``orchestration`` (``orchestration.deadline_minutes``), ``returns``
    (``returns.deadline_hours``) or ``finance`` (``finance.deadline_hours``).
    """
    from include.governance.policy import load_policy

    if _given(timeout_minutes):
        hours = float(timeout_minutes) / 60.0
    else:
        policy = load_policy()
        hours = {"intraday": policy.intraday.deadline_hours,
                 "orchestration": policy.orchestration.deadline_minutes / 60.0,
                 "returns": policy.returns.deadline_hours,
                 "finance": policy.finance.deadline_hours}.get(deadline, policy.gate_timeout_hours)
    if hours <= 0:
        raise ValueError(f"approval gate needs a positive timeout, got {hours} h")
    return hours


def gate_deadline(timeout_hours: float, staged_at: str | None, now: dt.datetime) -> dt.datetime:
    """When the gate gives up: ``timeout_hours`` after staging (after ``now`` when staging time is unknown)."""
    start = now
    if _given(staged_at):
        start = min(start, dt.datetime.fromisoformat(str(staged_at)))
    return start + dt.timedelta(hours=timeout_hours)


def _pending(conn_id: str, dag_id: str, ds: str, run_id: str | None = None) -> int:
    from include.erp.hook import ErpStagingHook
    from include.erp.staging import pending_count

    with ErpStagingHook(conn_id).get_conn() as conn:
        return pending_count(conn, dag_id, ds, run_id=run_id)


def _due(conn_id: str, dag_id: str, ds: str, run_id: str | None, after_minutes: float) -> int:
    from include.erp.escalation import due_escalations
    from include.erp.hook import ErpStagingHook

    with ErpStagingHook(conn_id).get_conn() as conn:
        return len(due_escalations(conn, dag_id, ds, after_minutes=after_minutes, run_id=run_id))


class ApprovalGateTrigger(BaseTrigger):
    """Fires once no line of ``(dag_id, ds)`` is ``pending_approval``, at ``deadline``, or to escalate.

    Args:
        dag_id: DAG whose lines are watched.
        ds: logical date (``YYYY-MM-DD``).
        deadline: ISO timestamp (UTC) after which the trigger reports a timeout.
        poke_interval: seconds between checks.
        conn_id: ERP staging connection id.
        run_id: watch only the lines this run staged last (hourly runs of one date).
        escalate_after_minutes: when set, also fires (``escalate``) as soon as a critical line has waited
            this long without being escalated (:mod:`include.erp.escalation`).
    """

    def __init__(self, *, dag_id: str, ds: str, deadline: str, poke_interval: float = 30.0,
                 conn_id: str = "erp_staging", run_id: str | None = None,
                 escalate_after_minutes: float | None = None) -> None:
        super().__init__()
        self.escalate_after_minutes = escalate_after_minutes
        self.dag_id = dag_id
        self.ds = ds
        self.run_id = run_id
        self.deadline = deadline
        self.poke_interval = poke_interval
        self.conn_id = conn_id

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            "include.erp.gate.ApprovalGateTrigger",
            {"dag_id": self.dag_id, "ds": self.ds, "deadline": self.deadline,
             "poke_interval": self.poke_interval, "conn_id": self.conn_id, "run_id": self.run_id,
             "escalate_after_minutes": self.escalate_after_minutes},
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        from asgiref.sync import sync_to_async

        deadline = dt.datetime.fromisoformat(self.deadline)
        check = sync_to_async(_pending)
        while True:
            try:
                pending = await check(self.conn_id, self.dag_id, self.ds, self.run_id)
            except Exception as exc:  # noqa: BLE001 - a database blip must not end the wait
                log.warning("approval gate could not read staging: %s; retrying", exc)
                pending = -1
            if pending == 0:
                yield TriggerEvent({"status": "decided", "pending": 0})
                return
            if pending > 0 and self.escalate_after_minutes is not None:
                try:
                    due = await sync_to_async(_due)(self.conn_id, self.dag_id, self.ds, self.run_id,
                                                    self.escalate_after_minutes)
                except Exception as exc:  # noqa: BLE001 - as above
                    log.warning("approval gate could not look for escalations: %s; retrying", exc)
                    due = 0
                if due:
                    yield TriggerEvent({"status": "escalate", "due": due, "deadline": self.deadline})
                    return
            if dt.datetime.now(dt.UTC) >= deadline:
                yield TriggerEvent({"status": "timeout", "pending": max(pending, 0)})
                return
            await asyncio.sleep(self.poke_interval)


#: A gate whose deadline is closer than this waits in its task instead of deferring (:meth:`ApprovalGateSensor._wait`).
INLINE_WAIT_SECONDS = 60.0


async def _first_event(trigger: ApprovalGateTrigger) -> dict[str, Any]:
    """The payload of the first event ``trigger`` fires, run in the task's own event loop."""
    async for event in trigger.run():
        return event.payload
    raise RuntimeError("the approval gate trigger ended without an event")


class ApprovalGateSensor(BaseSensorOperator):
    """Wait, deferred, until planners have decided every pending line of this run.

    In replay mode (backfills) nothing is put in front of planners, so the gate passes at once.

    Args:
        timeout_minutes: templated; how long to wait before expiring what is still pending. Empty
            means the governance policy's ``gate.timeout_hours``.
        poke_interval_seconds: templated; how often the trigger checks (empty: the policy's).
        conn_id: ERP staging connection id.
        replay: templated; ``"True"`` when the run is a replay.
        staged_at: templated ISO timestamp of staging; the deadline counts from it (else from now).
        run_scoped: wait for and expire only the lines this run staged last, so the hourly runs of one
            date each keep their own deadline and never block or expire each other's lines.
        deadline: which policy deadline applies when ``timeout_minutes`` is empty (:data:`DEADLINES`).
        ds: templated; the date of the lines to wait for (empty: the run's, :func:`include.runs.run_date`).
    """

    template_fields = ("replay", "timeout_minutes", "poke_interval_seconds", "staged_at", "ds")

    def __init__(self, *, timeout_minutes: str | float | None = None,
                 poke_interval_seconds: str | float | None = None, conn_id: str = "erp_staging",
                 replay: str | bool = False, staged_at: str | None = None, run_scoped: bool = False,
                 deadline: str = "gate", ds: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.ds = ds
        if deadline not in DEADLINES:
            raise ValueError(f"deadline must be one of {', '.join(DEADLINES)}, got {deadline!r}")
        self.run_scoped = run_scoped
        self.deadline = deadline
        self.staged_at = staged_at
        self.timeout_minutes = timeout_minutes
        self.poke_interval_seconds = poke_interval_seconds
        self.conn_id = conn_id
        self.replay = replay

    def _settings(self) -> tuple[float, float]:
        """Timeout (hours) and poke interval (s): explicit values, else the governance policy."""
        from include.governance.policy import load_policy

        timeout = gate_timeout_hours(self.timeout_minutes, self.deadline)
        poke = load_policy().poke_interval_seconds
        if _given(self.poke_interval_seconds):
            poke = float(self.poke_interval_seconds)
        if timeout <= 0 or poke <= 0:
            raise ValueError(f"approval gate needs a positive timeout and poke interval, got {timeout} h, {poke} s")
        return timeout, poke

    def _ds(self, context) -> str:  # noqa: ANN001
        """The date of the lines this gate waits for."""
        return str(self.ds)[:10] if _given(self.ds) else run_date(context)

    def _is_replay(self) -> bool:
        return str(self.replay).lower() in ("true", "1", "replay")

    def execute(self, context) -> dict[str, Any]:
        dag_id, ds = context["dag"].dag_id, self._ds(context)
        if self._is_replay():
            log.info("replay run: nothing waits for planners")
            return {"status": "replay", "pending": 0}
        run_id = context["run_id"] if self.run_scoped else None
        pending = _pending(self.conn_id, dag_id, ds, run_id)
        if pending == 0:
            log.info("no line of %s ds=%s waits for a planner", dag_id, ds)
            return {"status": "decided", "pending": 0}
        timeout_hours, _ = self._settings()
        deadline = gate_deadline(timeout_hours, self.staged_at, dt.datetime.now(dt.UTC))
        log.info("%d lines of %s ds=%s wait for a planner until %s", pending, dag_id, ds, deadline.isoformat())
        return self._wait(context, deadline.isoformat())

    def _wait(self, context, deadline: str) -> dict[str, Any]:
        """Defer to the trigger until ``deadline`` (ISO), escalating critical lines as the policy says.

        A deadline less than :data:`INLINE_WAIT_SECONDS` away is waited for in the task itself, by the same
        trigger: deferring for seconds costs a round trip through the triggerer, and a task that resumes before
        the scheduler has processed its deferral can be taken for one killed externally and failed.
        """
        from include.governance.policy import load_policy

        fast_lane = load_policy().fast_lane
        trigger = ApprovalGateTrigger(dag_id=context["dag"].dag_id, ds=self._ds(context), deadline=deadline,
                                      poke_interval=self._settings()[1], conn_id=self.conn_id,
                                      run_id=context["run_id"] if self.run_scoped else None,
                                      escalate_after_minutes=fast_lane.escalation.after_minutes
                                      if fast_lane.enabled else None)
        left = (dt.datetime.fromisoformat(deadline) - dt.datetime.now(dt.UTC)).total_seconds()
        if left < INLINE_WAIT_SECONDS:
            log.info("the deadline is %.0f s away: waiting in the task", left)
            return self.execute_complete(context, asyncio.run(_first_event(trigger)))
        self.defer(trigger=trigger, method_name="execute_complete")

    def _escalate(self, context) -> int:
        """Escalate the critical lines that waited too long (audit trail, then the policy's notifier)."""
        from include.erp.escalation import deliver, escalate
        from include.erp.hook import ErpStagingHook
        from include.governance.policy import load_policy

        policy = load_policy().fast_lane.escalation
        with ErpStagingHook(self.conn_id).get_conn() as conn:
            lines, message = escalate(conn, context["dag"].dag_id, self._ds(context), after_minutes=policy.after_minutes,
                                      channel=policy.channel, recipients=policy.recipients,
                                      run_id=context["run_id"] if self.run_scoped else None)
        if lines:  # a failed delivery must not stop the gate: the trail has it
            deliver(policy, message, subject="Shelfwise: critical lines wait for a decision", context=context)
        return len(lines)

    def execute_complete(self, context, event: dict[str, Any] | None = None) -> dict[str, Any]:
        """Resume after the trigger: escalate and wait on, or expire what is still pending on timeout."""
        event = event or {}
        if event.get("status") == "escalate":
            log.warning("escalated %d critical line(s) still waiting for a decision", self._escalate(context))
            return self._wait(context, event["deadline"])
        if event.get("status") == "timeout":
            from include.erp.hook import ErpStagingHook
            from include.erp.staging import expire_pending

            with ErpStagingHook(self.conn_id).get_conn() as conn:
                expired = expire_pending(conn, context["dag"].dag_id, self._ds(context),
                                         reason=f"approval gate timed out after {self._settings()[0]:g} h",
                                         run_id=context["run_id"] if self.run_scoped else None)
            log.warning("approval gate timed out: %d lines expired, never released", expired)
            return {"status": "timeout", "expired": expired}
        if event.get("status") != "decided":
            raise ValueError(f"approval gate got an unexpected event: {event!r}")
        return {"status": "decided", "expired": 0}


class BatchReviewOperator(HITLOperator):
    """The batch review (a Required Action) that times out with the approval gate after it.

    The gate's deadline counts from staging time and the review runs before the gate, so a review
    that waited longer than the gate's timeout would stretch the gate to its own. The response
    timeout is therefore worked out when the task runs: what is left until the gate's deadline, from
    the run's ``gate_timeout_minutes`` or the governance policy. On timeout Airflow answers with the
    operator's ``defaults``.

    Args:
        timeout_minutes: templated; as for :class:`ApprovalGateSensor` (empty: the policy's).
        staged_at: templated ISO timestamp of staging.
        **kwargs: :class:`HITLOperator`'s arguments, except ``response_timeout``.
    """

    template_fields = (*HITLOperator.template_fields, "timeout_minutes", "staged_at")

    def __init__(self, *, timeout_minutes: str | float | None = None, staged_at: str | None = None,
                 **kwargs: Any) -> None:
        if "response_timeout" in kwargs:
            raise ValueError("BatchReviewOperator takes its timeout from the approval gate, not response_timeout")
        super().__init__(**kwargs)
        self.timeout_minutes = timeout_minutes
        self.staged_at = staged_at

    def execute(self, context) -> Any:
        now = dt.datetime.now(dt.UTC)
        deadline = gate_deadline(gate_timeout_hours(self.timeout_minutes), self.staged_at, now)
        # A deadline already past still gets a moment, so Airflow records the default answer.
        self.response_timeout = max(deadline - now, dt.timedelta(seconds=1))
        log.info("the batch review waits until %s, the approval gate's deadline", deadline.isoformat())
        return super().execute(context)


def approval_gate(*, staged_by: str, deadline: str = "gate", run_scoped: bool = True, ds_from_stage: bool = False,
                  **kwargs: Any) -> ApprovalGateSensor:
    """The ``wait_for_approval`` task of a workflow: its run's lines wait for people here.

    The timeout and poke interval come from the DAG's :func:`include.runs.gate_params`, the deadline counts
    from the time ``staged_by`` staged the lines, a replay passes at once, and the gate is never retried
    (a retry would restart the wait).

    Args:
        staged_by: task id of the stage task (it returns ``staged_at``).
        deadline: which policy deadline applies when no timeout is given (:data:`DEADLINES`).
        run_scoped: wait for and expire only the lines this run staged last.
        ds_from_stage: wait for the lines of the date ``staged_by`` staged them on (its return value's
            ``ds``), not the run's logical date: for a run that reads another day than its own (the
            intraday's run at midnight reads the hour before it).
        **kwargs: other operator arguments (``trigger_rule``...).
    """
    from include.runs import REPLAY_TEMPLATE, staged_at_template, xcom_field_template

    return ApprovalGateSensor(task_id=kwargs.pop("task_id", "wait_for_approval"), replay=REPLAY_TEMPLATE,
                              timeout_minutes="{{ params.gate_timeout_minutes }}",
                              poke_interval_seconds="{{ params.gate_poke_seconds }}",
                              staged_at=staged_at_template(staged_by), run_scoped=run_scoped, deadline=deadline,
                              ds=xcom_field_template(staged_by, "ds") if ds_from_stage else None, retries=0, **kwargs)
