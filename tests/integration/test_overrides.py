"""Planner overrides against the real PostgreSQL: a pending line approved with another quantity keeps the
proposal, the audit trail records both, the ERP receives the approved quantity, the policy's bounds, reason
codes and tiers hold, and the database refuses any other way of changing a quantity."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import psycopg
import pytest

from include.erp.approvals import BadRequest, NotAllowed, approver, override_line
from include.erp.staging import release_approved, run_lines, stage_batch
from include.governance.policy import load_policy

pytestmark = pytest.mark.integration
DS = dt.date(2026, 5, 9)
POLICY = load_policy()
PLANNER = approver("planner", "user", POLICY)
MANAGER = approver("manager", "op", POLICY)


def _batch() -> pd.DataFrame:
    """Pending medium lines: two replenishments (one of costly units), a transfer and a PO exception."""
    spec = [("cheap", "replenishment", 10, 3.0), ("costly", "replenishment", 10, 200.0), ("move", "transfer", 4, 1.0),
            ("po", "po_exception", 8, 5.0)]
    return pd.DataFrame([{
        "doc_type": doc, "business_key": bk, "sku": f"SKU-{bk}", "from_location": "DC01", "to_location": "S0001",
        "supplier_id": "SUP001", "po_id": "PO1" if doc == "po_exception" else None,
        "po_line": 1 if doc == "po_exception" else None, "action": "order", "quantity": qty, "unit_cost": cost,
        "value": qty * cost, "need_by": DS, "explanation": {"model": "ses"}, "risk_tier": "medium",
        "tier_reasons": ["medium_rule"], "auto_approve": False} for bk, doc, qty, cost in spec])


@pytest.fixture
def lines(conn, dag_id) -> pd.DataFrame:
    stage_batch(conn, _batch(), dag_id=dag_id, run_id="r1", ds=DS)
    return run_lines(conn, dag_id, DS).set_index("business_key")


def _line(lines: pd.DataFrame, bk: str) -> tuple[str, int]:
    return str(lines.loc[bk, "doc_type"]), int(lines.loc[bk, "line_id"])


def test_an_override_approves_the_new_quantity_keeps_the_proposal_and_the_erp_gets_it(conn, dag_id, lines):
    out = override_line(conn, PLANNER, _line(lines, "cheap"), quantity=25, reason="promotion_plan",
                        note="the week-49 promotion is not in the plan", policy=POLICY, run=(dag_id, DS))
    assert out.decided == [{"doc_type": "replenishment", "line_id": _line(lines, "cheap")[1], "quantity": 25.0,
                            "proposed_quantity": 10.0, "value": 75.0}]
    row = conn.execute("SELECT status, quantity, value, proposed_quantity, override_reason, overridden_by, decided_by,"
                       " decision_note FROM erp_staging.replenishment_order_lines WHERE line_id = %s",
                       (_line(lines, "cheap")[1],)).fetchone()
    assert row == ("approved", 25, 75, 10, "promotion_plan", "planner", "planner",
                   "the week-49 promotion is not in the plan")
    audit = conn.execute("SELECT action, actor, from_status, to_status, details FROM erp_staging.audit_log"
                         " WHERE idempotency_key = %s ORDER BY audit_id", (lines.loc["cheap", "idempotency_key"],)).fetchall()
    assert [a[:4] for a in audit[-2:]] == [("overridden", "planner", "pending_approval", "approved"),
                                          ("approved", "planner", "pending_approval", "approved")]
    assert audit[-2][4] == {"proposed_quantity": 10.0, "quantity": 25.0, "proposed_value": 30.0, "value": 75.0,
                            "reason": "promotion_plan", "tier": "medium", "tier_after": "medium"}

    release_approved(conn, dag_id, DS, run_id="r1")
    released = conn.execute("SELECT quantity, value FROM erp_staging.released_lines WHERE idempotency_key = %s",
                            (lines.loc["cheap", "idempotency_key"],)).fetchone()
    assert released == (25, 75)
    # The first decision stands: a second override finds the line decided.
    again = override_line(conn, PLANNER, _line(lines, "cheap"), quantity=5, reason="other", policy=POLICY)
    assert again.decided == [] and again.already_decided[0]["status"] == "released"


@pytest.mark.parametrize(("bk", "quantity", "reason", "message"), [
    ("move", 12.01, "other", r"transfer #\d+: quantity 12.01 is outside 0 to 12 \(policy overrides.max_ratio 3"),
    ("move", -1, "other", r"quantity -1 is outside 0 to 12"),
    ("move", 4, "other", r"4 is the proposed quantity: approve the line instead"),
    ("move", float("nan"), "other", r"quantity must be a number"),
    ("move", True, "other", r"quantity must be a number"),
    ("move", 6, "gut_feeling", r"unknown override reason 'gut_feeling' \(policy overrides.reason_codes: promotion_plan"),
    ("po", 6, "other", r"the quantity of a po_exception line cannot be overridden"),
])
def test_out_of_policy_overrides_are_refused_and_change_nothing(conn, dag_id, lines, bk, quantity, reason, message):
    with pytest.raises(BadRequest, match=message):
        override_line(conn, PLANNER, _line(lines, bk), quantity=quantity, reason=reason, policy=POLICY)
    assert set(run_lines(conn, dag_id, DS)["status"]) == {"pending_approval"}


def test_a_small_proposal_may_go_up_to_the_minimum_ceiling(conn, dag_id, lines):
    # 4 x 3 = 12 is the ratio's bound; a proposal of 2 would have 6, and min_ceiling (10) lifts it.
    assert override_line(conn, PLANNER, _line(lines, "move"), quantity=12, reason="local_event", policy=POLICY).decided


def test_an_override_into_a_higher_tier_needs_a_decider_of_that_tier(conn, dag_id, lines):
    costly = _line(lines, "costly")
    with pytest.raises(NotAllowed, match=r"may not approve replenishment #\d+ with 30: at a value of 6,000.00 it is a "
                                         r"high-tier line \(large_value, medium_value\), decided by manager or admin"):
        override_line(conn, PLANNER, costly, quantity=30, reason="promotion_plan", policy=POLICY)
    assert run_lines(conn, dag_id, DS).set_index("business_key").loc["costly", "status"] == "pending_approval"
    done = override_line(conn, MANAGER, costly, quantity=30, reason="promotion_plan", policy=POLICY)
    assert done.decided[0]["value"] == 6000.0
    details = conn.execute("SELECT details FROM erp_staging.audit_log WHERE idempotency_key = %s AND action = "
                           "'overridden'", (lines.loc["costly", "idempotency_key"],)).fetchone()[0]
    assert details["tier_after"] == "high"


def test_the_database_refuses_a_quantity_change_that_is_not_an_override(conn, dag_id, lines, erp_url):
    cheap = int(lines.loc["cheap", "line_id"])
    with psycopg.connect(erp_url) as app:  # the application's role, as the plugin connects
        for sql in ("UPDATE erp_staging.replenishment_order_lines SET proposed_quantity = 10, override_reason = 'other',"
                    " overridden_by = 'x' WHERE line_id = %s",
                    "UPDATE erp_staging.replenishment_order_lines SET status = 'approved', decided_by = 'x',"
                    " quantity = 99 WHERE line_id = %s",
                    "UPDATE erp_staging.replenishment_order_lines SET status = 'approved', decided_by = 'x',"
                    " quantity = 99, overridden_by = 'x' WHERE line_id = %s"):
            with pytest.raises(psycopg.errors.CheckViolation):
                with app.transaction():
                    app.execute(sql, (cheap,))
    override_line(conn, PLANNER, _line(lines, "cheap"), quantity=20, reason="other", policy=POLICY)
    conn.commit()  # the fixture's connection had a transaction open (run_lines): the override was a savepoint in it
    with psycopg.connect(erp_url) as app, pytest.raises(psycopg.errors.CheckViolation, match="is approved and can no longer be changed"):
        app.execute("UPDATE erp_staging.replenishment_order_lines SET quantity = 21 WHERE line_id = %s", (cheap,))


def test_api_overrides_one_line_of_the_named_run(approvals_client, conn, dag_id, lines):
    planner, run = approvals_client("planner", "user"), {"dag_id": dag_id, "ds": DS.isoformat()}
    key = f"replenishment:{_line(lines, 'cheap')[1]}"
    page = planner.get(f"/approvals?dag_id={dag_id}&ds={DS}")
    assert page.text.count('<details class="override">') == 3  # the two replenishments and the transfer
    assert '<option value="promotion_plan">promotion plan</option>' in page.text
    for bad in ({"quantity": "12"}, {"quantity": 12, "reason": "Promo!"}, {"quantity": 12, "extra": 1},
                {"quantity": 12, "lines": [key, key]}):
        body = {"lines": [key], "reason": "promotion_plan", **run, **bad}
        assert planner.post("/api/overrides", json=body).status_code == 422, bad
    viewer = approvals_client("analyst", "viewer").post("/api/overrides", json={
        "lines": [key], "quantity": 12, "reason": "other", **run})
    assert viewer.status_code == 403 and "read only" in viewer.json()["detail"]
    out_of_bounds = planner.post("/api/overrides", json={"lines": [key], "quantity": 31, "reason": "other", **run})
    assert out_of_bounds.status_code == 422 and "outside 0 to 30" in out_of_bounds.json()["detail"]
    done = planner.post("/api/overrides", json={"lines": [key], "quantity": 12, "reason": "shelf_space",
                                                "note": "only 12 fit", **run})
    assert done.status_code == 200, done.text
    assert done.json()["message"] == (f"replenishment #{_line(lines, 'cheap')[1]} approved with 12 instead of the "
                                      "proposed 10 (shelf_space).")
    assert run_lines(conn, dag_id, DS).set_index("business_key").loc["cheap", "quantity"] == 12
