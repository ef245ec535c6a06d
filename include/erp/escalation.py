"""Escalation of critical lines nobody decided: found in staging, recorded in the audit trail, then sent.

A critical line (the fast lane, :func:`include.governance.policy.critical_reason`) that is still
``pending_approval`` ``fast_lane.escalation.after_minutes`` after it was staged is escalated once: an
``escalated`` entry in ``erp_staging.audit_log`` per line (which is also what keeps it from being escalated
twice; a line deleted and staged afresh under the same key is a new line and is escalated again), then one message through the policy's channel, an Airflow notifier: ``log`` (the task log),
``webhook`` (a JSON POST to the host of an Airflow HTTP connection) or ``smtp`` (Airflow's SMTP notifier
and connection). The approval gate's trigger watches for due lines while it waits, and its sensor calls
:func:`escalate` when some are due, then waits again with the same deadline.
"""

from __future__ import annotations

import json
import logging
import urllib.request
from typing import Any

import psycopg

from include.erp.staging import CRITICAL, audit

log = logging.getLogger(__name__)

__all__ = ["due_escalations", "escalate", "escalation_message", "notifier"]

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


def escalation_message(dag_id: str, ds: Any, lines: list[dict[str, Any]], recipients: tuple[str, ...] = ()) -> str:
    """The text sent for escalated lines: one line each, most valuable first."""
    head = (f"{len(lines)} critical line(s) of {dag_id} {ds} still wait for a decision"
            + (f" ({', '.join(recipients)})" if recipients else "") + ":")
    body = [f"- {line['doc_type']} #{line['line_id']} {line['action']} {float(line['quantity']):g} x {line['sku']}"
            f" to {line['to_location'] or '-'} ({float(line['value']):,.2f}, {line['risk_tier']}):"
            f" {line['critical_reason']}; waiting {float(line['minutes_waiting']):.0f} min"
            for line in sorted(lines, key=lambda x: -float(x["value"]))]
    return "\n".join([head, *body])


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
