"""Planner overrides against the real PostgreSQL: a pending line approved with another quantity or source keeps
the proposal, the audit trail records both, the ERP receives the approved quantity and source, the policy's
bounds, reason codes and tiers and the line's source options hold, and the database refuses any other way of
changing a quantity or source."""

from __future__ import annotations

import dataclasses
import datetime as dt
from decimal import Decimal

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


#: The other sources the night offered (``include.decisions.sources``): two suppliers for the cheap order, one DC
#: for the transfer.
OPTIONS = {
    "cheap": [{"supplier_id": "SUP003", "unit_cost": 3.5, "lead_time_days": 4.0, "moq_units": 20.0, "case_pack": 1,
               "reliability": 91.0},
              {"supplier_id": "SUP004", "unit_cost": 2.8, "lead_time_days": 9.0, "moq_units": 0.0, "case_pack": 1,
               "reliability": None}],
    "move": [{"from_location": "DC02", "region": "South", "free_stock": 6.0}],
}


def _batch() -> pd.DataFrame:
    """Pending medium lines: two replenishments (one of costly units), a transfer and a PO exception."""
    spec = [("cheap", "replenishment", 10, 3.0), ("costly", "replenishment", 10, 200.0), ("move", "transfer", 4, 1.0),
            ("po", "po_exception", 8, 5.0)]
    return pd.DataFrame([{
        "doc_type": doc, "business_key": bk, "sku": f"SKU-{bk}", "from_location": "DC01", "to_location": "S0001",
        "supplier_id": "SUP001", "po_id": "PO1" if doc == "po_exception" else None,
        "po_line": 1 if doc == "po_exception" else None, "action": "order", "quantity": qty, "unit_cost": cost,
        "value": qty * cost, "need_by": DS,
        "explanation": {"model": "ses", **({"source_options": OPTIONS[bk]} if bk in OPTIONS else {})},
        "risk_tier": "medium", "tier_reasons": ["medium_rule"], "auto_approve": False} for bk, doc, qty, cost in spec])


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
                            "proposed_quantity": 10.0, "value": 75.0, "source": "SUP001",
                            "proposed_source": "SUP001"}]
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
    ("move", 4, "other", r"4 from DC01 is what was proposed: approve the line instead"),
    ("move", float("nan"), "other", r"quantity must be a number"),
    ("move", True, "other", r"quantity must be a number"),
    ("move", 6, "gut_feeling", r"unknown override reason 'gut_feeling' \(policy overrides.reason_codes: promotion_plan"),
    ("po", 6, "other", r"a po_exception line cannot be overridden"),
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


def test_a_source_override_approves_another_supplier_at_its_cost_and_the_erp_gets_it(conn, dag_id, lines):
    cheap = _line(lines, "cheap")
    out = override_line(conn, PLANNER, cheap, quantity=10, source="SUP004", reason="supplier_constraint",
                        note="SUP001 is on strike", policy=POLICY, run=(dag_id, DS))
    assert out.decided == [{"doc_type": "replenishment", "line_id": cheap[1], "quantity": 10.0,
                            "proposed_quantity": 10.0, "value": 28.0, "source": "SUP004",
                            "proposed_source": "SUP001"}]
    row = conn.execute("SELECT status, supplier_id, proposed_source, unit_cost, value, quantity, proposed_quantity"
                       " FROM erp_staging.replenishment_order_lines WHERE line_id = %s", (cheap[1],)).fetchone()
    assert row == ("approved", "SUP004", "SUP001", Decimal("2.8"), 28, 10, 10)
    details = conn.execute("SELECT details FROM erp_staging.audit_log WHERE idempotency_key = %s AND action ="
                           " 'overridden'", (lines.loc["cheap", "idempotency_key"],)).fetchone()[0]
    assert details == {"proposed_quantity": 10.0, "quantity": 10.0, "proposed_value": 30.0, "value": 28.0,
                       "reason": "supplier_constraint", "tier": "medium", "tier_after": "medium",
                       "proposed_source": "SUP001", "source": "SUP004", "unit_cost": 2.8}
    release_approved(conn, dag_id, DS, run_id="r1")
    released = conn.execute("SELECT supplier_id, quantity, unit_cost, value FROM erp_staging.released_lines"
                            " WHERE idempotency_key = %s", (lines.loc["cheap", "idempotency_key"],)).fetchone()
    assert released == ("SUP004", 10, Decimal("2.8"), 28)


def test_a_transfer_ships_from_another_dc_with_its_quantity(conn, dag_id, lines):
    move = _line(lines, "move")
    out = override_line(conn, PLANNER, move, quantity=6, source="DC02", reason="other", policy=POLICY)
    assert out.decided[0] | {"line_id": 0} == {"doc_type": "transfer", "line_id": 0, "quantity": 6.0,
                                               "proposed_quantity": 4.0, "value": 6.0, "source": "DC02",
                                               "proposed_source": "DC01"}
    row = conn.execute("SELECT from_location, proposed_source, to_location, quantity FROM erp_staging."
                       "stock_transfer_lines WHERE line_id = %s", (move[1],)).fetchone()
    assert row == ("DC02", "DC01", "S0001", 6)


@pytest.mark.parametrize(("bk", "quantity", "source", "message"), [
    ("cheap", 10, "SUP009", r"'SUP009' is not one of the line's other sources \(offered: SUP003, SUP004\)"),
    ("cheap", 10, "SUP003", r"10 is below SUP003's minimum order of 20"),
    ("move", 7, "DC02", r"DC02 had 6 free when the line was proposed, less than 7"),
    ("costly", 10, "SUP003", r"not one of the line's other sources \(offered: none\)"),
    ("cheap", 10, "SUP001", r"10 from SUP001 is what was proposed: approve the line instead"),
])
def test_a_source_that_is_not_an_option_or_does_not_fit_is_refused(conn, dag_id, lines, bk, quantity, source,
                                                                    message):
    with pytest.raises(BadRequest, match=message):
        override_line(conn, PLANNER, _line(lines, bk), quantity=quantity, source=source, reason="other",
                      policy=POLICY)
    assert set(run_lines(conn, dag_id, DS)["status"]) == {"pending_approval"}


def test_a_document_type_without_a_source_column_may_change_only_its_quantity(conn, dag_id, lines):
    rules = POLICY.overrides.model_copy(update={"doc_types": [*POLICY.overrides.doc_types, "po_exception"]})
    policy = dataclasses.replace(POLICY, overrides=rules)
    with pytest.raises(BadRequest, match="the source of a po_exception line cannot be changed, only its quantity"):
        override_line(conn, PLANNER, _line(lines, "po"), quantity=8, source="SUP003", reason="other", policy=policy)
    assert override_line(conn, PLANNER, _line(lines, "po"), quantity=6, reason="other", policy=policy).decided


def test_the_database_refuses_a_source_change_that_is_not_an_override(conn, dag_id, lines, erp_url):
    cheap = int(lines.loc["cheap", "line_id"])
    conn.commit()
    with psycopg.connect(erp_url) as app:
        for sql in ("UPDATE erp_staging.replenishment_order_lines SET status = 'approved', decided_by = 'x',"
                    " supplier_id = 'SUP004' WHERE line_id = %s",
                    "UPDATE erp_staging.replenishment_order_lines SET proposed_source = 'SUP001' WHERE line_id = %s"):
            with pytest.raises(psycopg.errors.CheckViolation):
                with app.transaction():
                    app.execute(sql, (cheap,))
    override_line(conn, PLANNER, _line(lines, "cheap"), quantity=10, source="SUP004", reason="other", policy=POLICY)
    conn.commit()
    with psycopg.connect(erp_url) as app, pytest.raises(psycopg.errors.CheckViolation, match="can no longer be changed"):
        app.execute("UPDATE erp_staging.replenishment_order_lines SET supplier_id = 'SUP003' WHERE line_id = %s",
                    (cheap,))


def test_api_overrides_the_source_and_the_page_offers_the_options(approvals_client, dag_id, lines):
    planner, run = approvals_client("planner", "user"), {"dag_id": dag_id, "ds": DS.isoformat()}
    page = planner.get(f"/approvals?dag_id={dag_id}&ds={DS}").text
    assert '<option value="SUP003">SUP003 (cost 3.50, 4 d lead time, MOQ 20, reliability 91/100)</option>' in page
    assert '<option value="DC02">DC02 (South, 6 free)</option>' in page
    assert "source options" not in page  # offered in the control, not dumped with the numbers
    key = f"replenishment:{_line(lines, 'cheap')[1]}"
    bad = planner.post("/api/overrides", json={"lines": [key], "quantity": 10, "source": "SUP 1; --",
                                               "reason": "other", **run})
    assert bad.status_code == 422
    done = planner.post("/api/overrides", json={"lines": [key], "quantity": 20, "source": "SUP003",
                                                "reason": "supplier_constraint", **run})
    assert done.status_code == 200, done.text
    assert done.json()["message"] == (f"{key.replace(':', ' #')} approved with 20 instead of the proposed 10, from "
                                      "SUP003 instead of SUP001 (supplier_constraint).")
