"""Escalation messages and their delivery channels (the database side is in tests/integration/test_fast_lane.py)."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from types import SimpleNamespace

import pytest

from include.erp.escalation import escalation_message, notifier

LINES = [
    {"doc_type": "replenishment", "line_id": 7, "action": "order", "quantity": 200.0, "sku": "SKU00003",
     "to_location": "DC01", "value": 8000.0, "risk_tier": "high", "critical_reason": "2.0 days of cover",
     "minutes_waiting": 16.2},
    {"doc_type": "po_exception", "line_id": 9, "action": "expedite", "quantity": 40.0, "sku": "SKU00011",
     "to_location": "FC01", "value": 12000.0, "risk_tier": "medium", "critical_reason": "the delay leaves 3 days",
     "minutes_waiting": 31.0},
]


def test_the_message_lists_each_line_most_valuable_first():
    text = escalation_message("retail_nightly", "2026-11-27", LINES, ("ops-lead",))
    head, first, second = text.splitlines()
    assert head == "2 critical line(s) of retail_nightly 2026-11-27 still wait for a decision (ops-lead):"
    assert first.startswith("- po_exception #9 expedite 40 x SKU00011 to FC01 (12,000.00, medium)")
    assert second.endswith("2.0 days of cover; waiting 16 min")


def test_the_webhook_channel_posts_the_message_as_json(monkeypatch):
    received = []

    class Hook(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 - the http.server API
            received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=server.handle_request, daemon=True).start()
    from airflow.sdk.bases.hook import BaseHook

    url = f"http://127.0.0.1:{server.server_port}/escalations"
    monkeypatch.setattr(BaseHook, "get_connection", classmethod(
        lambda cls, conn_id: SimpleNamespace(host=url, schema=None, port=None) if conn_id == "chat" else None))
    message = escalation_message("retail_nightly", "2026-11-27", LINES)
    notifier("webhook", message, connection_id="chat").notify({})
    server.server_close()
    assert received == [{"subject": "Shelfwise: critical lines wait for a decision", "text": message}]


def test_channels_are_the_airflow_notifiers_named_in_the_policy():
    from airflow.providers.smtp.notifications.smtp import SmtpNotifier
    from airflow.sdk import BaseNotifier

    assert isinstance(notifier("log", "x"), BaseNotifier)
    smtp = notifier("smtp", "x", connection_id="smtp_default", recipients=("a@example.com",))
    assert isinstance(smtp, SmtpNotifier)
    with pytest.raises(ValueError, match="unknown escalation channel"):
        notifier("pager", "x")


def test_a_channel_other_than_log_needs_a_connection():
    from include.governance.policy import Escalation

    with pytest.raises(ValueError, match="needs an Airflow connection id"):
        Escalation(channel="webhook")
