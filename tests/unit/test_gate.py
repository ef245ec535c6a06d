"""The approval gate's trigger and sensor, without a database (the pending count is stubbed)."""

from __future__ import annotations

import asyncio
import datetime as dt
from types import SimpleNamespace

import pytest

from include.erp import gate
from include.erp.gate import ApprovalGateSensor, ApprovalGateTrigger, BatchReviewOperator


def _trigger(deadline: dt.datetime) -> ApprovalGateTrigger:
    return ApprovalGateTrigger(dag_id="retail_nightly", ds="2026-11-27", deadline=deadline.isoformat(),
                               poke_interval=0.01, conn_id="erp_staging")


def _first_event(trigger: ApprovalGateTrigger):
    async def run():
        async for event in trigger.run():
            return event.payload
    return asyncio.run(run())


def test_serialize_round_trip():
    deadline = dt.datetime(2026, 11, 28, 14, 0, tzinfo=dt.UTC)
    classpath, kwargs = _trigger(deadline).serialize()
    assert classpath == "include.erp.gate.ApprovalGateTrigger"
    rebuilt = ApprovalGateTrigger(**kwargs)
    assert rebuilt.serialize() == (classpath, kwargs)
    assert kwargs == {"dag_id": "retail_nightly", "ds": "2026-11-27", "deadline": deadline.isoformat(),
                      "poke_interval": 0.01, "conn_id": "erp_staging", "run_id": None,
                      "escalate_after_minutes": None}


def test_fires_decided_once_nothing_is_pending(monkeypatch):
    counts = iter([3, 2, 0])
    monkeypatch.setattr(gate, "_pending", lambda *a: next(counts))
    event = _first_event(_trigger(dt.datetime.now(dt.UTC) + dt.timedelta(minutes=5)))
    assert event == {"status": "decided", "pending": 0}


def test_fires_timeout_at_the_deadline(monkeypatch):
    monkeypatch.setattr(gate, "_pending", lambda *a: 4)
    event = _first_event(_trigger(dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)))
    assert event == {"status": "timeout", "pending": 4}


def test_database_blip_does_not_end_the_wait(monkeypatch):
    calls = {"n": 0}

    def flaky(*_):
        calls["n"] += 1
        if calls["n"] == 1:
            raise ConnectionError("server closed the connection")
        return 0

    monkeypatch.setattr(gate, "_pending", flaky)
    assert _first_event(_trigger(dt.datetime.now(dt.UTC) + dt.timedelta(minutes=1)))["status"] == "decided"
    assert calls["n"] == 2


def _context():
    return {"dag": SimpleNamespace(dag_id="retail_nightly"), "ds": "2026-11-27"}


def test_replay_passes_without_looking_at_staging(monkeypatch):
    monkeypatch.setattr(gate, "_pending", lambda *a: pytest.fail("replay must not read staging"))
    sensor = ApprovalGateSensor(task_id="wait_for_approval", replay="True")
    assert sensor.execute(_context()) == {"status": "replay", "pending": 0}


def test_nothing_pending_passes_at_once(monkeypatch):
    monkeypatch.setattr(gate, "_pending", lambda *a: 0)
    sensor = ApprovalGateSensor(task_id="wait_for_approval", replay="False")
    assert sensor.execute(_context()) == {"status": "decided", "pending": 0}


def test_pending_lines_defer_with_the_policy_timeout(monkeypatch):
    from airflow.sdk.exceptions import TaskDeferred

    monkeypatch.setattr(gate, "_pending", lambda *a: 5)
    sensor = ApprovalGateSensor(task_id="wait_for_approval", replay="False", timeout_minutes="90",
                                poke_interval_seconds="None")
    before = dt.datetime.now(dt.UTC)
    with pytest.raises(TaskDeferred) as deferred:
        sensor.execute(_context())
    trigger = deferred.value.trigger
    assert isinstance(trigger, ApprovalGateTrigger)
    assert deferred.value.method_name == "execute_complete"
    deadline = dt.datetime.fromisoformat(trigger.deadline)
    assert dt.timedelta(minutes=89) < deadline - before < dt.timedelta(minutes=91)
    assert trigger.poke_interval == 30.0  # the policy file's poke interval


def test_execute_complete_on_timeout_expires_pending(monkeypatch):
    expired = {}

    class FakeConn:
        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

    class FakeHook:
        def __init__(self, conn_id):
            pass

        def get_conn(self):
            return FakeConn()

    def fake_expire(conn, dag_id, ds, *, reason, run_id=None):
        expired.update(dag_id=dag_id, ds=ds, reason=reason, run_id=run_id)
        return 7

    import include.erp.hook
    import include.erp.staging

    monkeypatch.setattr(include.erp.hook, "ErpStagingHook", FakeHook)
    monkeypatch.setattr(include.erp.staging, "expire_pending", fake_expire)
    sensor = ApprovalGateSensor(task_id="wait_for_approval", timeout_minutes="30")
    out = sensor.execute_complete(_context(), event={"status": "timeout", "pending": 7})
    assert out == {"status": "timeout", "expired": 7}
    assert expired == {"dag_id": "retail_nightly", "ds": "2026-11-27", "reason": "approval gate timed out after 0.5 h",
                       "run_id": None}


def test_an_hourly_gate_waits_for_its_own_lines_until_the_intraday_deadline(monkeypatch):
    """Hourly runs of one date overlap: each gate watches the lines its run staged last, on the
    policy's intraday deadline, so one hour's gate never blocks or expires the next hour's lines."""
    from airflow.sdk.exceptions import TaskDeferred

    asked = []
    monkeypatch.setattr(gate, "_pending", lambda *a: asked.append(a) or 2)
    sensor = ApprovalGateSensor(task_id="wait_for_approval", replay="False", timeout_minutes="None",
                                run_scoped=True, deadline="intraday")
    context = {**_context(), "dag": SimpleNamespace(dag_id="retail_intraday"), "run_id": "scheduled__15"}
    before = dt.datetime.now(dt.UTC)
    with pytest.raises(TaskDeferred) as deferred:
        sensor.execute(context)
    trigger = deferred.value.trigger
    assert asked == [("erp_staging", "retail_intraday", "2026-11-27", "scheduled__15")]
    assert trigger.run_id == "scheduled__15"
    deadline = dt.datetime.fromisoformat(trigger.deadline)
    assert dt.timedelta(minutes=119) < deadline - before < dt.timedelta(minutes=121)  # the policy's 2 h
    with pytest.raises(ValueError, match="deadline"):
        ApprovalGateSensor(task_id="g", deadline="weekly")


def test_a_gate_with_critical_lines_due_fires_escalate_and_keeps_its_deadline(monkeypatch):
    monkeypatch.setattr(gate, "_pending", lambda *a: 4)
    dues = iter([0, 2])
    monkeypatch.setattr(gate, "_due", lambda *a: next(dues))
    deadline = dt.datetime.now(dt.UTC) + dt.timedelta(minutes=5)
    trigger = ApprovalGateTrigger(dag_id="retail_nightly", ds="2026-11-27", deadline=deadline.isoformat(),
                                  poke_interval=0.01, escalate_after_minutes=15.0)
    assert _first_event(trigger) == {"status": "escalate", "due": 2, "deadline": deadline.isoformat()}
    # Without escalation the same trigger only waits for decisions or the deadline.
    monkeypatch.setattr(gate, "_due", lambda *a: pytest.fail("looked for escalations it was not asked for"))
    quiet = _trigger(dt.datetime.now(dt.UTC) + dt.timedelta(milliseconds=50))
    assert _first_event(quiet)["status"] == "timeout"


def test_the_sensor_escalates_then_waits_again_until_the_same_deadline(monkeypatch):
    from airflow.sdk.exceptions import TaskDeferred

    escalated = []
    monkeypatch.setattr(ApprovalGateSensor, "_escalate", lambda self, context: escalated.append(1) or 3)
    sensor = ApprovalGateSensor(task_id="wait_for_approval", timeout_minutes="30")
    deadline = (dt.datetime.now(dt.UTC) + dt.timedelta(minutes=20)).isoformat()
    with pytest.raises(TaskDeferred) as deferred:
        sensor.execute_complete(_context(), event={"status": "escalate", "due": 3, "deadline": deadline})
    assert escalated == [1]
    assert deferred.value.trigger.deadline == deadline
    assert deferred.value.trigger.escalate_after_minutes == 15.0  # the policy's fast_lane.escalation


def test_a_deadline_seconds_away_is_waited_for_in_the_task_not_deferred(monkeypatch):
    # Deferring for seconds would let the task resume before the scheduler saw it defer (a task "killed
    # externally"); the same trigger runs in the task, and its event completes the gate there.
    pending = iter([3, 3, 0])
    monkeypatch.setattr(gate, "_pending", lambda *a: next(pending))
    monkeypatch.setattr(gate, "_due", lambda *a: 0)  # no critical line is due for escalation
    sensor = ApprovalGateSensor(task_id="wait_for_approval", replay="False", timeout_minutes="0.5",
                                poke_interval_seconds="0.01")
    assert sensor.execute(_context()) == {"status": "decided", "expired": 0}
    # ... and one that times out there expires what is left, as after a deferral.
    monkeypatch.setattr(gate, "_pending", lambda *a: 3)
    monkeypatch.setattr(ApprovalGateSensor, "execute_complete", lambda self, context, event: event)
    short = ApprovalGateSensor(task_id="wait_for_approval", replay="False", timeout_minutes="0.001",
                               poke_interval_seconds="0.01")
    assert short.execute(_context()) == {"status": "timeout", "pending": 3}


def test_execute_complete_rejects_unknown_events():
    sensor = ApprovalGateSensor(task_id="wait_for_approval")
    with pytest.raises(ValueError, match="unexpected event"):
        sensor.execute_complete(_context(), event={"status": "exploded"})


def test_bad_settings_are_refused():
    sensor = ApprovalGateSensor(task_id="wait_for_approval", timeout_minutes="0")
    with pytest.raises(ValueError, match="positive timeout"):
        sensor._settings()


def _review(**kw) -> BatchReviewOperator:
    return BatchReviewOperator(task_id="review_batch", subject="s", options=["Approve all pending", "Fine"],
                               defaults=["Fine"], **kw)


@pytest.mark.parametrize(
    ("timeout_minutes", "staged_minutes_ago", "low", "high"),
    [("90", 30, 59, 61),  # the run's own gate timeout, counted from staging
     ("None", 60, 11 * 60 - 1, 11 * 60 + 1),  # the policy's 12 h
     ("30", 45, 0, 0.02)],  # the gate's deadline has passed: a moment, for Airflow to record the default
)
def test_the_batch_review_times_out_at_the_gates_deadline(monkeypatch, timeout_minutes, staged_minutes_ago,
                                                          low, high):
    from airflow.providers.standard.operators.hitl import HITLOperator

    seen = {}
    monkeypatch.setattr(HITLOperator, "execute", lambda self, context: seen.setdefault("t", self.response_timeout))
    staged = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=staged_minutes_ago)
    _review(timeout_minutes=timeout_minutes, staged_at=staged.isoformat()).execute(_context())
    assert dt.timedelta(minutes=low) <= seen["t"] <= dt.timedelta(minutes=high)


def test_the_batch_review_refuses_a_timeout_of_its_own():
    assert {"timeout_minutes", "staged_at", "subject", "body"} <= set(BatchReviewOperator.template_fields)
    with pytest.raises(ValueError, match="takes its timeout from the approval gate"):
        _review(response_timeout=dt.timedelta(hours=1))


def test_a_gate_given_the_stages_date_waits_for_that_days_lines(monkeypatch):
    asked = []
    monkeypatch.setattr(gate, "_pending", lambda conn_id, dag_id, ds, run_id=None: asked.append(ds) or 0)
    ApprovalGateSensor(task_id="wait_for_approval", replay="False", ds="2026-11-26").execute(_context())
    ApprovalGateSensor(task_id="wait_for_approval", replay="False", ds="None").execute(_context())
    assert asked == ["2026-11-26", "2026-11-27"]  # an empty template: the run's own date
