"""The approval service against the real PostgreSQL: role mapping, filters, all-or-nothing refusals,
first decision stands, decisions scoped to a run; and the plugin's HTTP API on the same database."""

from __future__ import annotations

import datetime as dt
import re

import pandas as pd
import pytest
from fastapi.testclient import TestClient

from include.erp.approvals import (
    BadRequest,
    LineFilter,
    NotAllowed,
    OutsideRun,
    approver,
    decide_lines,
    escalate_lines,
    list_pending,
    parse_selection,
)
from include.erp.staging import run_lines, stage_batch
from include.governance.policy import load_policy

pytestmark = pytest.mark.integration
DS = dt.date(2026, 5, 2)
POLICY = load_policy()




def _batch() -> pd.DataFrame:
    """Three medium and three high pending lines, and one auto-approved low line that is not pending."""
    spec = [("replenishment", "medium", "S0001", "SUP001"), ("replenishment", "high", "S0002", "SUP001"),
            ("transfer", "medium", "S0003", None), ("transfer", "high", "S0001", None),
            ("po_exception", "medium", "DC01", "SUP002"), ("po_exception", "high", "DC01", "SUP002"),
            ("replenishment", "low", "S0004", "SUP003")]
    rows = []
    for i, (doc, tier, to, sup) in enumerate(spec):
        rows.append({"doc_type": doc, "business_key": f"bk-{i}", "sku": f"SKU{i:03d}", "from_location": "DC01",
                     "to_location": to, "supplier_id": sup, "po_id": "PO9" if doc == "po_exception" else None,
                     "po_line": i if doc == "po_exception" else None, "action": "order", "quantity": 10 + i,
                     "unit_cost": 3.0, "value": 100.0 * (i + 1), "need_by": DS,
                     "explanation": {"forecast_over_lead_time": 9.5, "model": "ses"}, "risk_tier": tier,
                     "tier_reasons": [] if tier == "low" else [f"{tier}_rule"], "auto_approve": tier == "low"})
    return pd.DataFrame(rows)


def _sel(lines: pd.DataFrame, query: str) -> list[tuple[str, int]]:
    picked = lines.query(query)
    return [(d, int(i)) for d, i in zip(picked["doc_type"], picked["line_id"], strict=True)]


def test_roles_resolve_from_airflow_roles():
    assert approver("planner", "user", POLICY).tiers == ("low", "medium")
    assert approver("manager", ["op"], POLICY).tiers == ("low", "medium", "high")
    assert approver("analyst", "viewer", POLICY).tiers == ()
    assert approver("nobody", None, POLICY).describe() == "nobody (Airflow role none = no Shelfwise role)"


def test_pending_lines_are_listed_with_explanation_and_filters(conn, dag_id):
    stage_batch(conn, _batch(), dag_id=dag_id, run_id="r1", ds=DS)
    planner = approver("planner", "user", POLICY)
    lines = list_pending(conn, LineFilter(dag_id=dag_id), user=planner)
    assert len(lines) == 6
    assert [ln["risk_tier"] for ln in lines] == ["high"] * 3 + ["medium"] * 3
    assert lines[0]["explanation"] == {"forecast_over_lead_time": 9.5, "model": "ses"}
    assert {ln["risk_tier"]: ln["may_decide"] for ln in lines} == {"high": False, "medium": True}
    assert len(list_pending(conn, LineFilter(dag_id=dag_id, doc_type="transfer"))) == 2
    assert len(list_pending(conn, LineFilter(dag_id=dag_id, tier="high"))) == 3
    assert {ln["business_key"] for ln in list_pending(conn, LineFilter(dag_id=dag_id, location="S0001"))} == {
        "bk-0", "bk-3"}
    assert len(list_pending(conn, LineFilter(dag_id=dag_id, supplier="SUP002"))) == 2
    assert list_pending(conn, LineFilter(dag_id=dag_id, ds=DS + dt.timedelta(days=1))) == []
    assert len(list_pending(conn, LineFilter.parse(dag_id=dag_id, ds=DS.isoformat(), tier="", doc_type=""))) == 6


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        pytest.param({"doc_type": "invoice"}, "unknown document type 'invoice'", id="doc-type"),
        pytest.param({"tier": "critical"}, "unknown tier 'critical'", id="tier"),
        pytest.param({"ds": "yesterday"}, "ds must be a date YYYY-MM-DD, got 'yesterday'", id="ds"),
        pytest.param({"colour": "red"}, "unknown filters ['colour']", id="unknown-filter"),
    ],
)
def test_bad_filters_are_refused_with_a_clear_message(raw, message):
    with pytest.raises(BadRequest) as caught:
        LineFilter.parse(**raw)
    assert message in str(caught.value)


def test_selection_is_parsed_strictly():
    assert parse_selection(["transfer:4", {"doc_type": "replenishment", "line_id": 7}, "transfer:4"]) == [
        ("transfer", 4), ("replenishment", 7)]
    with pytest.raises(BadRequest, match="select at least one line"):
        parse_selection([])
    with pytest.raises(BadRequest, match="line 0: 'transfer:x' is not doc_type:line_id with a positive integer"):
        parse_selection(["transfer:x"])
    for loose, kind in (("7", "str"), (2.9, "float"), (True, "bool"), (2.0, "float")):
        with pytest.raises(BadRequest, match=f"line 1: line id must be an integer, got {kind}"):
            parse_selection(["transfer:4", {"doc_type": "transfer", "line_id": loose}])


def test_planner_decides_medium_lines_with_a_note(conn, dag_id):
    stage_batch(conn, _batch(), dag_id=dag_id, run_id="r1", ds=DS)
    lines = run_lines(conn, dag_id, DS)
    planner = approver("planner", "user", POLICY)
    medium = _sel(lines, "risk_tier == 'medium'")
    out = decide_lines(conn, planner, medium[:2], approve=True, note="checked against the promo plan")
    assert len(out.decided) == 2 and out.message(True) == "2 line(s) approved."
    out = decide_lines(conn, planner, medium[2:], approve=False, note="  ")
    assert len(out.decided) == 1
    after = run_lines(conn, dag_id, DS).set_index("business_key")
    # run_lines orders by document type: po_exception (bk-4), replenishment (bk-0), transfer (bk-2).
    assert after.loc[["bk-4", "bk-0"], "status"].tolist() == ["approved", "approved"]
    assert after.loc["bk-2", "status"] == "rejected"
    audit = conn.execute("SELECT actor, action, note FROM erp_staging.audit_log WHERE dag_id=%s"
                         " AND action IN ('approved', 'rejected') ORDER BY audit_id", (dag_id,)).fetchall()
    assert audit == [("planner", "approved", "checked against the promo plan")] * 2 + [
        ("planner", "rejected", None)]


def test_planner_selecting_a_high_line_changes_nothing(conn, dag_id):
    stage_batch(conn, _batch(), dag_id=dag_id, run_id="r1", ds=DS)
    lines = run_lines(conn, dag_id, DS)
    planner = approver("planner", "user", POLICY)
    mixed = _sel(lines, "business_key in ['bk-0', 'bk-1']")
    high_id = int(lines.set_index("business_key").loc["bk-1", "line_id"])
    with pytest.raises(NotAllowed) as refused:
        decide_lines(conn, planner, mixed, approve=True)
    assert str(refused.value) == (f"planner (Airflow role user = planner) may not decide high-tier lines: "
                                  f"replenishment #{high_id} (needs admin or manager). Nothing was changed.")
    assert set(run_lines(conn, dag_id, DS).query("risk_tier != 'low'")["status"]) == {"pending_approval"}
    # The manager may.
    out = decide_lines(conn, approver("manager", "op", POLICY), mixed, approve=True)
    assert len(out.decided) == 2


def test_viewer_may_not_decide_anything(conn, dag_id):
    stage_batch(conn, _batch(), dag_id=dag_id, run_id="r1", ds=DS)
    lines = run_lines(conn, dag_id, DS)
    with pytest.raises(NotAllowed, match=r"analyst \(Airflow role viewer = no Shelfwise role\) may not approve"
                                         r" or reject lines: the role is read only. Nothing was changed."):
        decide_lines(conn, approver("analyst", "viewer", POLICY), _sel(lines, "risk_tier == 'medium'"),
                     approve=False)
    assert conn.execute("SELECT count(*) FROM erp_staging.audit_log WHERE dag_id=%s AND actor='analyst'",
                        (dag_id,)).fetchone()[0] == 0


def test_second_decision_is_told_the_first_stands(conn, dag_id):
    stage_batch(conn, _batch(), dag_id=dag_id, run_id="r1", ds=DS)
    lines = run_lines(conn, dag_id, DS)
    medium = _sel(lines, "business_key == 'bk-2'")
    decide_lines(conn, approver("planner", "user", POLICY), medium, approve=True)
    out = decide_lines(conn, approver("admin", "admin", POLICY), medium + [("transfer", 10**12)], approve=False)
    assert out.decided == []
    assert out.already_decided == [{"doc_type": "transfer", "line_id": medium[0][1], "status": "approved",
                                    "decided_by": "planner"}]
    assert out.unknown == [{"doc_type": "transfer", "line_id": 10**12}]
    assert out.message(False) == (f"0 line(s) rejected. already decided, first decision stands: transfer "
                                  f"#{medium[0][1]} approved by planner. not found: transfer #{10**12}.")
    # An already decided high line is reported as decided, not refused, even to a planner.
    high = _sel(lines, "business_key == 'bk-1'")
    decide_lines(conn, approver("manager", "op", POLICY), high, approve=False)
    out = decide_lines(conn, approver("planner", "user", POLICY), high, approve=True)
    assert out.already_decided[0]["status"] == "rejected"


def test_long_note_is_refused(conn, dag_id):
    stage_batch(conn, _batch(), dag_id=dag_id, run_id="r1", ds=DS)
    lines = run_lines(conn, dag_id, DS)
    with pytest.raises(BadRequest, match="at most 2000 are kept"):
        decide_lines(conn, approver("planner", "user", POLICY), _sel(lines, "business_key == 'bk-0'"),
                     approve=True, note="x" * 2001)
    for note, problem in (("a\x00b", "contains a NUL character"), ("a\ud800b", "contains a lone surrogate")):
        with pytest.raises(BadRequest, match=f"the note {problem}"):
            decide_lines(conn, approver("planner", "user", POLICY), _sel(lines, "business_key == 'bk-0'"),
                         approve=True, note=note)
    assert set(run_lines(conn, dag_id, DS).query("risk_tier != 'low'")["status"]) == {"pending_approval"}


def test_lines_outside_the_named_run_change_nothing(conn, dag_id):
    stage_batch(conn, _batch(), dag_id=dag_id, run_id="r1", ds=DS)
    stage_batch(conn, _batch(), dag_id=f"{dag_id}_b", run_id="r1", ds=DS)
    mine = _sel(run_lines(conn, dag_id, DS), "business_key == 'bk-0'")
    other = _sel(run_lines(conn, f"{dag_id}_b", DS), "business_key == 'bk-2'")
    planner = approver("planner", "user", POLICY)
    with pytest.raises(OutsideRun) as refused:
        decide_lines(conn, planner, mine + other, approve=True, run=(dag_id, DS))
    assert str(refused.value) == (f"1 selected line(s) are not of run {dag_id} {DS}: transfer #{other[0][1]} "
                                  f"(run {dag_id}_b {DS}). Nothing was changed.")
    assert decide_lines(conn, planner, mine, approve=True, run=(dag_id, DS)).decided == [
        {"doc_type": "replenishment", "line_id": mine[0][1]}]
    assert len(decide_lines(conn, planner, other, approve=False, run=None).decided) == 1


def _escalations(conn, dag_id: str) -> list[tuple]:
    return conn.execute(
        "SELECT split_part(idempotency_key, '|', 4), actor, note, from_status, to_status, details"
        " FROM erp_staging.audit_log WHERE dag_id=%s AND action='escalated' ORDER BY audit_id", (dag_id,)).fetchall()


def test_an_escalation_is_recorded_and_the_line_stays_pending(conn, dag_id):
    stage_batch(conn, _batch(), dag_id=dag_id, run_id="r1", ds=DS)
    lines = run_lines(conn, dag_id, DS)
    planner = approver("planner", "user", POLICY)
    bk2 = _sel(lines, "business_key == 'bk-2'")
    out = escalate_lines(conn, planner, bk2, note="  the store disputes the count ", channel="log", run=(dag_id, DS))
    assert out.escalated == [{"doc_type": "transfer", "line_id": bk2[0][1]}] and out.message() == "1 line(s) escalated."
    assert [(ln["sku"], ln["risk_tier"], ln["dag_id"], ln["ds"]) for ln in out.lines] == [("SKU002", "medium", dag_id,
                                                                                          DS)]
    by = {"by": "planner", "channel": "log"}
    assert _escalations(conn, dag_id) == [("bk-2", "planner", "the store disputes the count", "pending_approval",
                                           "pending_approval", by)]
    after = run_lines(conn, dag_id, DS).set_index("business_key")
    assert (after.loc["bk-2", "status"], after.loc["bk-2", "risk_tier"]) == ("pending_approval", "medium")
    assert after.loc["bk-2", "decided_by"] is None

    # Escalating again is allowed and recorded; the list shows the newest escalation, in the same query.
    escalate_lines(conn, planner, bk2, note="still no answer", channel="webhook")
    assert [row[2] for row in _escalations(conn, dag_id)] == ["the store disputes the count", "still no answer"]
    listed = {ln["business_key"]: ln["escalated"] for ln in list_pending(conn, LineFilter(dag_id=dag_id))}
    assert listed["bk-2"]["by"] == "planner" and listed["bk-2"]["note"] == "still no answer"
    assert listed["bk-0"] is None

    # A decided line cannot be escalated; a line the user may not decide is refused and nothing is recorded.
    decide_lines(conn, planner, bk2, approve=False, note="wrong store")
    late = escalate_lines(conn, planner, bk2 + [("transfer", 10**12)], note="too late", channel="log")
    assert late.escalated == [] and late.message() == (
        f"0 line(s) escalated. already decided, not escalated: transfer #{bk2[0][1]} rejected by planner."
        f" not found: transfer #{10**12}.")
    high = _sel(lines, "business_key == 'bk-1'")
    with pytest.raises(NotAllowed, match=r"may not decide high-tier lines: replenishment #\d+ \(needs admin or manager\)"):
        escalate_lines(conn, planner, _sel(lines, "business_key == 'bk-0'") + high, note="up", channel="log")
    with pytest.raises(BadRequest, match=r"an escalation needs a note"):
        escalate_lines(conn, planner, _sel(lines, "business_key == 'bk-0'"), note=None, channel="log")
    assert len(_escalations(conn, dag_id)) == 2
    assert set(run_lines(conn, dag_id, DS).query("business_key in ['bk-0', 'bk-1']")["status"]) == {"pending_approval"}


# --- the plugin's HTTP API on this database ------------------------------------------------------------


def _post(client: TestClient, **body):
    return client.post("/api/decisions", json=body)


def test_api_decides_exactly_the_named_lines_of_the_named_run(approvals_client, conn, dag_id):
    stage_batch(conn, _batch(), dag_id=dag_id, run_id="r1", ds=DS)
    stage_batch(conn, _batch(), dag_id=f"{dag_id}_b", run_id="r1", ds=DS)
    lines = run_lines(conn, dag_id, DS).set_index("business_key")
    other = run_lines(conn, f"{dag_id}_b", DS).set_index("business_key")
    planner = approvals_client("planner", "user")
    run = {"dag_id": dag_id, "ds": DS.isoformat()}
    bk0, bk2 = int(lines.loc["bk-0", "line_id"]), int(lines.loc["bk-2", "line_id"])

    # A loose value decides nothing: 2.9 is not line 2, "yes" is not true.
    assert _post(planner, lines=[{"doc_type": "transfer", "line_id": bk2 + 0.9}], approve=True, **run
                 ).status_code == 422
    assert _post(planner, lines=[f"transfer:{bk2}"], approve="yes", **run).status_code == 422
    assert _post(planner, lines=[f"transfer:{bk2}"], approve=True, note="ok\x00", **run).status_code == 422
    assert set(run_lines(conn, dag_id, DS).query("risk_tier != 'low'")["status"]) == {"pending_approval"}

    # A line of another run is refused by name; the request changes nothing.
    stray = int(other.loc["bk-2", "line_id"])
    refused = _post(planner, lines=[f"replenishment:{bk0}", f"transfer:{stray}"], approve=True, **run)
    assert refused.status_code == 409
    assert refused.json()["detail"] == (f"1 selected line(s) are not of run {dag_id} {DS}: transfer #{stray} "
                                        f"(run {dag_id}_b {DS}). Nothing was changed.")
    assert run_lines(conn, dag_id, DS).set_index("business_key").loc["bk-0", "status"] == "pending_approval"

    done = _post(planner, lines=[f"replenishment:{bk0}", {"doc_type": "transfer", "line_id": bk2}], approve=False,
                 note="  not this week ", **run)
    assert done.status_code == 200, done.text
    assert done.json()["message"] == "2 line(s) rejected."
    after = run_lines(conn, dag_id, DS).set_index("business_key")
    assert after.loc[["bk-0", "bk-2"], "status"].tolist() == ["rejected", "rejected"]
    notes = conn.execute("SELECT note FROM erp_staging.audit_log WHERE dag_id=%s AND action='rejected'",
                         (dag_id,)).fetchall()
    assert notes == [("not this week",)] * 2
    assert set(after.drop(["bk-0", "bk-2"]).query("risk_tier != 'low'")["status"]) == {"pending_approval"}

    # Deciding lines of two runs at once is possible when asked for.
    both = [f"po_exception:{int(lines.loc['bk-4', 'line_id'])}", f"transfer:{stray}"]
    assert _post(planner, lines=both, approve=True, across_runs=True).json()["message"] == "2 line(s) approved."


def test_api_role_refusals_are_403_and_change_nothing(approvals_client, conn, dag_id):
    stage_batch(conn, _batch(), dag_id=dag_id, run_id="r1", ds=DS)
    lines = run_lines(conn, dag_id, DS).set_index("business_key")
    run = {"dag_id": dag_id, "ds": DS.isoformat()}
    high = f"replenishment:{int(lines.loc['bk-1', 'line_id'])}"
    refused = _post(approvals_client("planner", "user"), lines=[high], approve=True, **run)
    assert refused.status_code == 403
    assert refused.json()["detail"].startswith("planner (Airflow role user = planner) may not decide high-tier")
    refused = _post(approvals_client("analyst", "viewer"), lines=[high], approve=True, **run)
    assert refused.status_code == 403 and "the role is read only" in refused.json()["detail"]
    assert set(run_lines(conn, dag_id, DS).query("risk_tier != 'low'")["status"]) == {"pending_approval"}


def test_api_lists_and_the_page_shows_the_run(approvals_client, conn, dag_id):
    stage_batch(conn, _batch(), dag_id=dag_id, run_id="r1", ds=DS)
    planner = approvals_client("planner", "user")
    listed = planner.get(f"/api/lines?dag_id={dag_id}&ds={DS}&tier=high&limit=2")
    assert listed.status_code == 200
    assert [ln["risk_tier"] for ln in listed.json()["lines"]] == ["high", "high"]
    assert planner.get(f"/api/lines?dag_id={dag_id}&location=S0001").json()["count"] == 2
    page = planner.get(f"/approvals?dag_id={dag_id}&ds={DS}&doc_type=&tier=")
    assert page.status_code == 200
    assert f'<table id="lines" data-dag-id="{dag_id}" data-ds="{DS}" ' in page.text
    assert len(re.findall(r'<tr [^>]*data-line="', page.text)) == 6
    nonce = page.headers["Content-Security-Policy"].split("'nonce-")[1].split("'")[0]
    assert f'<script nonce="{nonce}">' in page.text
    assert page.headers["X-Content-Type-Options"] == "nosniff"


def test_api_escalates_sends_through_the_channel_and_the_page_marks_the_line(approvals_client, conn, dag_id, caplog,
                                                                              monkeypatch):
    stage_batch(conn, _batch(), dag_id=dag_id, run_id="r1", ds=DS)
    lines = run_lines(conn, dag_id, DS).set_index("business_key")
    run = {"dag_id": dag_id, "ds": DS.isoformat()}
    bk0, high = f"replenishment:{int(lines.loc['bk-0', 'line_id'])}", f"transfer:{int(lines.loc['bk-3', 'line_id'])}"
    planner = approvals_client("planner", "user")

    refused = planner.post("/api/escalations", json={"lines": [bk0, high], "note": "up", **run})
    assert refused.status_code == 403 and "may not decide high-tier lines" in refused.json()["detail"]
    refused = approvals_client("analyst", "viewer").post("/api/escalations", json={"lines": [bk0], "note": "up", **run})
    assert refused.status_code == 403 and "the role is read only" in refused.json()["detail"]
    assert _escalations(conn, dag_id) == []

    with caplog.at_level("WARNING", logger="include.erp.escalation"):
        done = planner.post("/api/escalations", json={"lines": [bk0], "note": "supplier on stop?", **run})
    assert done.status_code == 200, done.text
    assert done.json()["message"] == "1 line(s) escalated."
    sent = [r.getMessage() for r in caplog.records if r.getMessage().startswith("ESCALATION")]
    assert len(sent) == 1 and f"1 line(s) of {dag_id} {DS} escalated by planner (supply-chain-manager):" \
        " supplier on stop?" in sent[0]

    # A channel that fails is logged; the escalation stands.
    import include.erp.escalation as escalation

    def down(*args, **kwargs):
        raise ConnectionError("webhook unreachable")

    monkeypatch.setattr(escalation, "notifier", down)
    caplog.clear()
    again = planner.post("/api/escalations", json={"lines": [bk0], "note": "still waiting", **run})
    assert again.status_code == 200 and again.json()["escalated"] == [{"doc_type": "replenishment",
                                                                        "line_id": int(lines.loc["bk-0", "line_id"])}]
    assert "escalation recorded but not delivered through log: webhook unreachable" in caplog.text
    assert [(row[1], row[2]) for row in _escalations(conn, dag_id)] == [("planner", "supplier on stop?"),
                                                                        ("planner", "still waiting")]

    page = planner.get(f"/approvals?dag_id={dag_id}&ds={DS}")
    assert page.text.count('<span class="escalated"') == 1
    assert ": still waiting\">escalated</span>" in page.text and "escalated by planner, " in page.text
    assert page.text.count('<button class="escalate"') == 3  # the medium lines the planner may decide
    assert set(run_lines(conn, dag_id, DS).query("risk_tier != 'low'")["status"]) == {"pending_approval"}
