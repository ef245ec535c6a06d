"""The approvals plugin's HTTP contract without a database: strict input, clear 422s, security headers.

The app is the one the API server mounts (``create_app``), driven with FastAPI's TestClient; the caller
is a real simple-auth-manager user put in place of Airflow's login dependency. Every request here is
refused before any SQL runs: the unit suite fails a test that opens a connection. Decisions that reach
PostgreSQL are tested in ``tests/integration/test_approvals.py``.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import get_args

import pytest
from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser
from fastapi.testclient import TestClient

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "plugins"))
import shelfwise_approvals as plugin  # noqa: E402 - plugins/ is Airflow's plugins folder, not a package
import shelfwise_web as web  # noqa: E402


def client_as(username: str, role: str) -> TestClient:
    app = plugin.create_app()
    app.dependency_overrides[web.current_user] = lambda: SimpleAuthManagerUser(username=username, role=role)
    return TestClient(app)


@pytest.fixture(scope="module")
def planner() -> TestClient:
    return client_as("planner", "user")


def _decide(client: TestClient, body: str | bytes, content_type: str = "application/json"):
    return client.post("/api/decisions", content=body, headers={"Content-Type": content_type})


def _locs(response) -> list[str]:
    assert response.status_code == 422, response.text
    return [".".join(str(p) for p in error["loc"]) for error in response.json()["errors"]]


def test_plugin_literals_match_the_domain():
    from include.erp.approvals import FILTERS, SORTS
    from include.erp.staging import TABLES
    from include.governance.policy import TIERS

    assert plugin.DOC_TYPES == tuple(TABLES)
    assert plugin.TIERS == TIERS
    assert plugin.FILTERS == FILTERS
    assert tuple(plugin.SORTS) == tuple(SORTS)
    assert get_args(plugin.LinesQuery.model_fields["sort"].annotation) == tuple(SORTS)


@pytest.mark.parametrize(
    ("body", "loc"),
    [
        pytest.param('{"lines": ["transfer:1"], "approve": "yes"}', "body.approve", id="approve-yes"),
        pytest.param('{"lines": ["transfer:1"], "approve": "off"}', "body.approve", id="approve-off"),
        pytest.param('{"lines": ["transfer:1"], "approve": 0}', "body.approve", id="approve-zero"),
        pytest.param('{"lines": ["transfer:1"], "approve": null}', "body.approve", id="approve-null"),
        pytest.param('{"lines": [{"doc_type": "transfer", "line_id": 2.9}], "approve": true}',
                     "body.lines.0.ref.line_id", id="line-id-float"),
        pytest.param('{"lines": [{"doc_type": "transfer", "line_id": 2.0}], "approve": true}',
                     "body.lines.0.ref.line_id", id="line-id-integral-float"),
        pytest.param('{"lines": [{"doc_type": "transfer", "line_id": true}], "approve": true}',
                     "body.lines.0.ref.line_id", id="line-id-bool"),
        pytest.param('{"lines": [{"doc_type": "transfer", "line_id": "7"}], "approve": true}',
                     "body.lines.0.ref.line_id", id="line-id-string"),
        pytest.param('{"lines": [{"doc_type": "transfer", "line_id": 0}], "approve": true}',
                     "body.lines.0.ref.line_id", id="line-id-zero"),
        pytest.param('{"lines": [{"doc_type": "transfer", "line_id": 9223372036854775808}], "approve": true}',
                     "body.lines.0.ref.line_id", id="line-id-over-bigint"),
        pytest.param('{"lines": [{"doc_type": "invoice", "line_id": 3}], "approve": true}',
                     "body.lines.0.ref.doc_type", id="doc-type"),
        pytest.param('{"lines": [{"doc_type": "transfer", "line_id": 3, "run": 1}], "approve": true}',
                     "body.lines.0.ref.run", id="line-extra-field"),
        pytest.param('{"lines": ["transfer:2.9"], "approve": true}', "body.lines.0.key", id="key-float"),
        pytest.param('{"lines": ["transfer:07"], "approve": true}', "body.lines.0.key", id="key-leading-zero"),
        pytest.param('{"lines": [7], "approve": true}', "body.lines.0", id="line-number"),
        pytest.param('{"lines": [], "approve": true}', "body.lines", id="no-lines"),
        pytest.param('{"lines": ["transfer:1"], "approve": true, "note": "a\\u0000b"}', "body.note", id="note-nul"),
        pytest.param('{"lines": ["transfer:1"], "approve": true, "note": "a\\ud800b"}', "body.note",
                     id="note-lone-surrogate"),
        pytest.param('{"lines": ["transfer:1"], "approve": true, "note": "a\\u0007b"}', "body.note",
                     id="note-control"),
        pytest.param('{"lines": ["transfer:1"], "approve": true, "note": 5}', "body.note", id="note-number"),
        pytest.param('{"lines": ["transfer:1"], "approve": true, "ds": "2026-11-27T00:00:00",'
                     ' "dag_id": "retail_nightly"}', "body.ds", id="ds-datetime"),
        pytest.param('{"lines": ["transfer:1"], "approve": true, "ds": "2026-11-27", "dag_id": "a b"}',
                     "body.dag_id", id="dag-id-space"),
        pytest.param('{"lines": ["transfer:1"], "approve": true, "approve_all": true}', "body.approve_all",
                     id="unknown-field"),
    ],
)
def test_decision_bodies_are_validated_strictly(planner, body, loc):
    response = _decide(planner, body)
    assert loc in _locs(response)
    detail = response.json()["detail"]
    assert detail.startswith("invalid request: ") and loc.removeprefix("body.") in detail


def test_a_decision_must_name_its_run_or_ask_for_several(planner):
    response = _decide(planner, '{"lines": ["transfer:1"], "approve": true}')
    assert _locs(response) == ["body.dag_id", "body.ds"]
    assert "name the run the lines belong to (dag_id and ds), or set across_runs: true" in response.json()["detail"]
    response = _decide(planner, '{"lines": ["transfer:1"], "approve": true, "dag_id": "retail_nightly"}')
    assert _locs(response) == ["body.ds"]
    response = _decide(planner, '{"lines": ["transfer:1"], "approve": true, "across_runs": true,'
                                ' "dag_id": "retail_nightly", "ds": "2026-11-27"}')
    assert _locs(response) == ["body.across_runs"]
    response = _decide(planner, '{"lines": ["transfer:1"], "approve": true, "across_runs": "yes"}')
    assert _locs(response) == ["body.across_runs"]


def test_malformed_bodies_are_refused_cleanly(planner):
    assert _decide(planner, '{"lines": ["transfer:1"], "approve": true', ).status_code == 422
    assert _locs(_decide(planner, b'{"lines": ["transfer:1"], "approve": true, "note": "\xed\xa0\x80"}')) == ["body.note"]
    assert _locs(_decide(planner, '["transfer:1"]')) == ["body"]
    response = _decide(planner, "lines=transfer:1&approve=true", "application/x-www-form-urlencoded")
    assert response.status_code == 415
    assert response.json() == {"detail": "send the decision as application/json"}
    response = _decide(planner, b'{"note": "' + b"x" * plugin.MAX_BODY_BYTES + b'"}')
    assert response.status_code == 413


def test_a_surrogate_in_a_key_is_named_without_echoing_it(planner):
    response = _decide(planner, '{"lines": ["transfer:1"], "approve": true, "\\udc80x": 1}')
    assert _locs(response) == ["body.\\udc80x"]
    response.content.decode("utf-8")  # the answer itself is valid UTF-8


@pytest.mark.parametrize(
    ("query", "loc"),
    [
        pytest.param("doc_type=invoice", "query.doc_type", id="doc-type"),
        pytest.param("tier=critical", "query.tier", id="tier"),
        pytest.param("ds=yesterday", "query.ds", id="ds-word"),
        pytest.param("ds=2026-11-27T00:00", "query.ds", id="ds-datetime"),
        pytest.param("ds=2026-W48-5", "query.ds", id="ds-week-date"),
        pytest.param("limit=5.0", "query.limit", id="limit-float"),
        pytest.param("limit=%205", "query.limit", id="limit-space"),
        pytest.param("limit=true", "query.limit", id="limit-bool"),
        pytest.param("limit=0", "query.limit", id="limit-zero"),
        pytest.param("limit=5001", "query.limit", id="limit-too-big"),
        pytest.param("location=S%00001", "query.location", id="location-nul"),
        pytest.param("supplier=SUP%0A1", "query.supplier", id="supplier-newline"),
        pytest.param("location=" + "x" * 201, "query.location", id="location-too-long"),
        pytest.param("dag_id=retail%20nightly", "query.dag_id", id="dag-id-space"),
        pytest.param("colour=red", "query.colour", id="unknown-filter"),
        pytest.param("tier=low&tier=high", "query.tier", id="repeated"),
    ],
)
def test_line_filters_are_validated_strictly(planner, query, loc):
    response = planner.get(f"/api/lines?{query}")
    assert loc in _locs(response)


def test_the_page_shows_a_bad_filter_as_an_error_without_querying(planner):
    response = planner.get("/approvals?tier=critical&location=S%00001")
    assert response.status_code == 422
    assert response.headers["content-type"].startswith("text/html")
    assert "invalid request: tier: Input should be &#x27;low&#x27;, &#x27;medium&#x27; or &#x27;high&#x27;" in (
        response.text)
    assert "location: Value error, contains a NUL character" in response.text
    assert "No line is waiting for a decision." in response.text
    _assert_page_csp(response)


def _assert_page_csp(response) -> None:
    csp = response.headers["Content-Security-Policy"]
    nonce = re.search(r"script-src 'nonce-([\w-]+)'", csp)[1]
    assert f"style-src 'nonce-{nonce}'" in csp and "frame-ancestors 'self'" in csp and "default-src 'self'" in csp
    # The theme's style and script, then the page's own: every one carries this response's nonce.
    assert re.findall(r"<script nonce=\"([\w-]+)\">", response.text) == [nonce, nonce]
    assert re.findall(r"<style nonce=\"([\w-]+)\">", response.text) == [nonce, nonce]
    assert "<script>" not in response.text and "<style>" not in response.text
    assert "unsafe-inline" not in csp
    _assert_common_headers(response)


def _assert_common_headers(response) -> None:
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Referrer-Policy"] == "same-origin"
    assert response.headers["Cache-Control"] == "no-store"


def test_api_answers_carry_security_headers(planner):
    for response in (planner.get("/api/me"), planner.get("/api/lines?tier=x"),
                     _decide(planner, '{"lines": [], "approve": true}')):
        assert response.headers["Content-Security-Policy"] == web.API_CSP
        assert "frame-ancestors 'self'" in web.API_CSP
        _assert_common_headers(response)


def test_me_reports_the_tiers_of_the_role():
    assert client_as("planner", "user").get("/api/me").json() == {
        "username": "planner", "airflow_roles": ["user"], "roles": ["planner"], "tiers": ["low", "medium"],
        "tiers_by_doc_type": {"return_disposition": [], "finance_review": [], "fulfilment_assignment": ["low", "medium"]}}
    assert client_as("analyst", "viewer").get("/api/me").json()["tiers"] == []


def test_me_gives_loss_prevention_to_the_lp_user_by_name():
    """The demo's ``lp`` is a viewer to Airflow; the policy's ``user_roles`` makes it loss prevention."""
    me = client_as("lp", "viewer").get("/api/me").json()
    assert me["roles"] == ["loss_prevention"] and me["tiers"] == []
    assert me["tiers_by_doc_type"] == {"return_disposition": ["low", "medium", "high"], "finance_review": [],
                                       "fulfilment_assignment": []}
    fin = client_as("finance", "viewer").get("/api/me").json()
    assert fin["roles"] == ["finance"] and fin["tiers_by_doc_type"]["finance_review"] == ["low", "medium"]
    assert client_as("someone", "viewer").get("/api/me").json()["roles"] == []


class _FakeConn:
    """Just enough of a psycopg connection for ``decide_lines`` to lock and check a selection; it refuses
    any write, so a test that reaches one fails."""

    def __init__(self, rows):
        self.rows = rows

    def transaction(self):
        import contextlib

        return contextlib.nullcontext()

    def execute(self, sql, params=None):
        assert sql.lstrip().startswith("SELECT line_id, risk_tier"), sql
        table = sql.split("erp_staging.")[1].split()[0]
        rows = self.rows.get(table, [])

        class _Result:
            def fetchall(self):
                return rows

        return _Result()


def test_decide_lines_refuses_a_planner_a_return_line_and_names_who_may():
    import datetime as dt

    from include.erp.approvals import NotAllowed, approver, decide_lines
    from include.governance.policy import load_policy

    policy = load_policy()
    planner = approver("planner", "user", policy)
    held = {"return_disposition_lines": [(7, "medium", "pending_approval", None, "returns_routing",
                                          dt.date(2026, 10, 30))]}
    assert planner.may_decide("transfer", "medium") and not planner.may_decide("return_disposition", "medium")
    with pytest.raises(NotAllowed) as refused:
        decide_lines(_FakeConn(held), planner, [("return_disposition", 7)], approve=True)
    assert str(refused.value) == ("planner (Airflow role user = planner) may not decide medium-tier return_disposition "
                                  "lines: return_disposition #7 (needs admin or loss_prevention or manager). "
                                  "Nothing was changed.")
    lp = approver("lp", "viewer", policy)
    assert lp.may_decide_any and lp.may_decide("return_disposition", "high")
    assert not lp.may_decide("replenishment", "low")
    with pytest.raises(NotAllowed, match=r"may not decide low-tier lines: replenishment #3 \(needs admin or manager"):
        decide_lines(_FakeConn({"replenishment_order_lines": [(3, "low", "pending_approval", None, "retail_nightly",
                                                               dt.date(2026, 10, 30))]}),
                     lp, [("replenishment", 3)], approve=True)



# --- escalations -------------------------------------------------------------------------------------------


def _escalate(client: TestClient, body: str | bytes, content_type: str = "application/json"):
    return client.post("/api/escalations", content=body, headers={"Content-Type": content_type})


def test_an_escalation_needs_a_note_and_is_protected_like_a_decision(planner):
    run = '"dag_id": "retail_nightly", "ds": "2026-11-27"'
    assert _locs(_escalate(planner, f'{{"lines": ["transfer:1"], {run}}}')) == ["body.note"]
    blank = _escalate(planner, f'{{"lines": ["transfer:1"], "note": "  ", {run}}}')
    assert _locs(blank) == ["body.note"]
    assert "an escalation needs a note: say why the line(s) go up" in blank.json()["detail"]
    assert _locs(_escalate(planner, f'{{"lines": ["transfer:1"], "note": "why", "approve": true, {run}}}')) == [
        "body.approve"]
    assert _locs(_escalate(planner, '{"lines": ["transfer:1"], "note": "why"}')) == ["body.dag_id", "body.ds"]
    form = _escalate(planner, "lines=transfer:1&note=why", "application/x-www-form-urlencoded")
    assert form.status_code == 415 and form.json() == {"detail": "send the escalation as application/json"}
    assert form.headers["Content-Security-Policy"] == web.API_CSP


def test_escalate_lines_checks_like_decide_lines_before_writing_anything():
    import datetime as dt

    from include.erp.approvals import BadRequest, NotAllowed, approver, escalate_lines
    from include.governance.policy import load_policy

    policy = load_policy()
    finance, planner = approver("finance", "viewer", policy), approver("planner", "user", policy)
    with pytest.raises(BadRequest, match=r"^an escalation needs a note: say why the line\(s\) go up. Nothing was"):
        escalate_lines(_FakeConn({}), finance, [("finance_review", 4)], note=" \n ", channel="log")
    with pytest.raises(NotAllowed, match=r"analyst \(Airflow role viewer = no Shelfwise role\) may not approve or"
                                         r" reject lines: the role is read only. Nothing was changed."):
        escalate_lines(_FakeConn({}), approver("analyst", "viewer", policy), [("transfer", 1)], note="x",
                       channel="log")
    held = {"finance_review_lines": [(4, "medium", "pending_approval", None, "finance_review",
                                      dt.date(2026, 11, 27))]}
    with pytest.raises(NotAllowed) as refused:
        escalate_lines(_FakeConn(held), planner, [("finance_review", 4)], note="for finance", channel="log")
    assert str(refused.value) == ("planner (Airflow role user = planner) may not decide medium-tier finance_review "
                                  "lines: finance_review #4 (needs admin or finance or manager). Nothing was changed.")
    accrual = {"finance_review_lines": [(5, "high", "pending_approval", None, "finance_review",
                                         dt.date(2026, 11, 27))]}
    with pytest.raises(NotAllowed, match=r"finance .* may not decide high-tier finance_review lines: finance_review"
                                         r" #5 \(needs admin or manager\)"):
        escalate_lines(_FakeConn(accrual), finance, [("finance_review", 5)], note="up", channel="log")


def test_the_escalation_outcome_says_what_was_escalated_and_what_was_not():
    from include.erp.approvals import EscalationOutcome

    outcome = EscalationOutcome(
        escalated=[{"doc_type": "finance_review", "line_id": 4}],
        already_decided=[{"doc_type": "finance_review", "line_id": 5, "status": "approved", "decided_by": "finance"},
                         {"doc_type": "transfer", "line_id": 6, "status": "expired", "decided_by": None}],
        unknown=[{"doc_type": "transfer", "line_id": 99}], note="for the controller")
    assert outcome.message() == ("1 line(s) escalated. already decided, not escalated: finance_review #5 approved by"
                                 " finance; transfer #6 expired by the system. not found: transfer #99.")
    assert outcome.as_dict() == {"escalated": outcome.escalated, "already_decided": outcome.already_decided,
                                 "unknown": outcome.unknown, "message": outcome.message()}


def test_the_user_escalation_message_names_who_and_why():
    from include.erp.escalation import escalation_message

    lines = [{"doc_type": "finance_review", "line_id": 4, "dag_id": "finance_review", "ds": "2026-11-27",
              "action": "review_margin", "quantity": 1, "sku": "CAT02", "to_location": "S0002", "value": 1202,
              "risk_tier": "medium", "critical_reason": None}]
    text = escalation_message("finance_review", "2026-11-27", lines, ("controller",), by="finance", note="why")
    assert text.splitlines() == [
        "1 line(s) of finance_review 2026-11-27 escalated by finance (controller): why",
        "- finance_review #4 review_margin 1 x CAT02 to S0002 (1,202.00, medium)"]
    across = escalation_message(None, None, lines, by="finance", note="why").splitlines()
    assert across == ["1 line(s) of several runs escalated by finance: why",
                      "- finance_review #4 (finance_review 2026-11-27) review_margin 1 x CAT02 to S0002"
                      " (1,202.00, medium)"]
