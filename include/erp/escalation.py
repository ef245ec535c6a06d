"""Escalation of critical lines nobody decided: found in staging, recorded in the audit trail, then sent.

A critical line (the fast lane, :func:`include.governance.policy.critical_reason`) that is still
``pending_approval`` ``fast_lane.escalation.after_minutes`` after it was staged is escalated once: an
``escalated`` entry in ``erp_staging.audit_log`` per line (which is also what keeps it from being escalated
twice; a line deleted and staged afresh under the same key is a new line and is escalated again), then one message through the policy's channel, an Airflow notifier: ``log`` (the task log),
``webhook`` (a JSON POST to the host of an Airflow HTTP connection) or ``smtp`` (Airflow's SMTP notifier
and connection). The approval gate's trigger watches for due lines while it waits, and its sensor calls
:func:`escalate` when some are due, then waits again with the same deadline.

A decider may also hand pending lines up without deciding them (``include.erp.approvals.escalate_lines``,
the Escalate button of the approval page): the same ``escalated`` audit entry, with the user as actor and
their note, and the same channel (:func:`escalation_message` with ``by``, :func:`deliver`). A critical line a
user escalated is not escalated again by the gate.
"""

from __future__ import annotations

import json
import logging
import urllib.request
from typing import TYPE_CHECKING, Any

import psycopg

from include.erp.staging import CRITICAL, audit

if TYPE_CHECKING:
    from include.governance.policy import Escalation

log = logging.getLogger(__name__)

__all__ = ["deliver", "due_escalations", "escalate", "escalation_message", "notifier"]

#: Columns of a due line, as :func:`due_escalations` returns them.
DUE_COLUMNS = ("doc_type", "line_id", "idempotency_key", "run_id", "sku", "to_location", "supplier_id", "action",
               "quantity", "value", "risk_tier", "critical_reason", "minutes_waiting")


def due_escalations(conn: psycopg.Connection, dag_id: str, ds: Any, *, after_minutes: float,
                    run_id: str | None = None) -> list[dict[str, Any]]:
    """Critical lines of a run still pending ``after_minutes`` after staging and not escalated since, oldest first.

    Args:
        run_id: only the lines this run staged last (run-scoped gates), else every line of the date.
    """
    rows = conn.execute(
        "SELECT doc_type, line_id, idempotency_key, run_id, sku, to_location, supplier_id, action, quantity,"
        " value, risk_tier, explanation->>'critical_reason', extract(epoch FROM now() - created_at) / 60.0"
        f" FROM erp_staging.all_lines l WHERE dag_id=%s AND ds=%s AND status='pending_approval' AND {CRITICAL}"
        " AND (%s::text IS NULL OR run_id = %s) AND created_at <= now() - make_interval(secs => %s)"
        " AND NOT EXISTS (SELECT 1 FROM erp_staging.audit_log a WHERE a.idempotency_key = l.idempotency_key"
        " AND a.action = 'escalated' AND a.recorded_at >= l.created_at) ORDER BY created_at, line_id",
        (dag_id, ds, run_id, run_id, float(after_minutes) * 60.0),
    ).fetchall()
    return [dict(zip(DUE_COLUMNS, row, strict=True)) for row in rows]


def escalation_message(dag_id: str | None, ds: Any, lines: list[dict[str, Any]], recipients: tuple[str, ...] = (),
                       *, by: str | None = None, note: str | None = None) -> str:
    """The text sent for escalated lines: why, then one line each, most valuable first.

    Args:
        dag_id: the run of the lines with ``ds``; ``None`` when they are of several runs (each line then names
            its ``dag_id`` and ``ds``).
        lines: ``doc_type``, ``line_id``, ``action``, ``quantity``, ``sku``, ``to_location``, ``value``,
            ``risk_tier``, and when known ``critical_reason`` and ``minutes_waiting``.
        by: the user who handed the lines up, with ``note`` their reason; ``None`` for critical lines
            escalated because nobody decided them in time.
    """
    of = f" of {dag_id} {ds}" if dag_id is not None else " of several runs"
    to = f" ({', '.join(recipients)})" if recipients else ""
    head = (f"{len(lines)} critical line(s){of} still wait for a decision{to}:" if by is None
            else f"{len(lines)} line(s){of} escalated by {by}{to}: {note}")
    return "\n".join([head, *(_line_text(line, with_run=dag_id is None)
                               for line in sorted(lines, key=lambda x: -float(x["value"])))])


def _line_text(line: dict[str, Any], *, with_run: bool) -> str:
    """``- transfer #12 replenish 20 x SKU1 to S0001 (80.00, medium): <critical reason>; waiting 16 min``."""
    run = f" ({line['dag_id']} {line['ds']})" if with_run else ""
    why = [str(line["critical_reason"])] if line.get("critical_reason") else []
    if line.get("minutes_waiting") is not None:
        why.append(f"waiting {float(line['minutes_waiting']):.0f} min")
    return (f"- {line['doc_type']} #{line['line_id']}{run} {line['action']} {float(line['quantity']):g} x"
            f" {line['sku']} to {line['to_location'] or '-'} ({float(line['value']):,.2f}, {line['risk_tier']})"
            + (f": {'; '.join(why)}" if why else ""))


def escalate(conn: psycopg.Connection, dag_id: str, ds: Any, *, after_minutes: float, channel: str,
             run_id: str | None = None, recipients: tuple[str, ...] = ()) -> tuple[list[dict[str, Any]], str]:
    """Record an ``escalated`` audit entry for every due line (one transaction) and return them with the message.

    Sending is the caller's (:func:`notifier`): the trail says a line was escalated, and through which
    channel, even when a delivery fails.
    """
    with conn.transaction():
        lines = due_escalations(conn, dag_id, ds, after_minutes=after_minutes, run_id=run_id)
        for line in lines:
            audit(conn, "escalated", doc_type=line["doc_type"], key=line["idempotency_key"],
                  from_status="pending_approval", to_status="pending_approval", dag_id=dag_id,
                  run_id=line["run_id"], ds=ds, note=f"critical line undecided after {after_minutes:g} min",
                  details={"channel": channel, "critical_reason": line["critical_reason"],
                           "minutes_waiting": round(float(line["minutes_waiting"]), 1)})
    return lines, escalation_message(dag_id, ds, lines, recipients) if lines else ""


def notifier(channel: str, message: str, *, connection_id: str | None = None, recipients: tuple[str, ...] = (),
             subject: str = "Shelfwise: critical lines wait for a decision"):
    """The Airflow notifier that delivers ``message`` through ``channel`` (``log``, ``webhook``, ``smtp``)."""
    if channel == "smtp":
        from airflow.providers.smtp.notifications.smtp import SmtpNotifier

        return SmtpNotifier(to=list(recipients), subject=subject, html_content=f"<pre>{message}</pre>",
                            smtp_conn_id=connection_id)
    if channel == "webhook":
        return _WebhookNotifier(message=message, subject=subject, connection_id=connection_id)
    if channel == "log":
        return _LogNotifier(message=message)
    raise ValueError(f"unknown escalation channel {channel!r}: log, webhook or smtp")


def deliver(settings: Escalation, message: str, *, subject: str, context: Any = None) -> bool:
    """Send ``message`` through the policy's escalation channel; a failed delivery is logged, never raised.

    The ``escalated`` audit entries are written before, in their own transaction: a channel that is down
    leaves the trail saying what was escalated and through which channel, and the caller's answer stands.

    Args:
        settings: the policy's ``fast_lane.escalation`` (``channel``, ``connection_id``, ``recipients``).
        message: the text (:func:`escalation_message`).
        subject: the subject of an email or webhook.
        context: the Airflow context when sent from a task; outside one (the approval page) ``None``.

    Returns:
        Whether the channel took the message.
    """
    try:
        notifier(settings.channel, message, connection_id=settings.connection_id, recipients=settings.recipients,
                 subject=subject).notify(context or {})
    except Exception as exc:  # noqa: BLE001 - a failed delivery must not undo or fail the escalation
        log.error("escalation recorded but not delivered through %s: %s", settings.channel, exc)
        return False
    return True


def _base():
    from airflow.sdk import BaseNotifier

    return BaseNotifier


class _LogNotifier(_base()):
    """Writes the escalation to the task log (the audit trail holds it too)."""

    template_fields = ("message",)

    def __init__(self, *, message: str) -> None:
        super().__init__()
        self.message = message

    def notify(self, context) -> None:
        log.warning("ESCALATION\n%s", self.message)


class _WebhookNotifier(_base()):
    """POSTs ``{"subject", "text"}`` as JSON to the URL of an Airflow connection (chat webhooks take this shape)."""

    template_fields = ("message", "subject")

    def __init__(self, *, message: str, subject: str, connection_id: str | None) -> None:
        super().__init__()
        self.message, self.subject, self.connection_id = message, subject, connection_id

    def notify(self, context) -> None:
        from airflow.sdk.bases.hook import BaseHook

        conn = BaseHook.get_connection(self.connection_id)
        url = conn.host if "://" in (conn.host or "") else (
            f"{conn.schema or 'https'}://{conn.host}{f':{conn.port}' if conn.port else ''}")
        request = urllib.request.Request(url, data=json.dumps({"subject": self.subject, "text": self.message}).encode(),
                                         headers={"Content-Type": "application/json"}, method="POST")
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - the URL is the operator's
            log.info("escalation sent to %s: HTTP %s", self.connection_id, response.status)
