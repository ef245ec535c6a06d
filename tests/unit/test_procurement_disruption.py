"""Supplier disruptions: the generator's injected episodes and the early-warning detector."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest

from include.procurement.disruption import (
    FLAG_COLUMNS,
    LEAD_COLUMNS,
    DisruptionParams,
    flag_disruptions,
    known_lines,
    planning_lead_times,
)
from include.sample_data.generator import PRESETS, DisruptionConfig, WorldConfig, generate_world

START = pd.Timestamp("2026-01-05")
#: Supplier B stops delivering the lines it is sent from this day on.
ONSET = pd.Timestamp("2026-06-01")
AS_OF = pd.Timestamp("2026-06-12")
UNTIL = AS_OF + pd.Timedelta(days=60)


def _book(onset: pd.Timestamp | None = ONSET, until: pd.Timestamp = UNTIL) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Weekly orders of two suppliers (3 POs of 4 lines each, promised in 7 days), received on time or a
    day late; B's lines ordered from ``onset`` are received 20 days late (after ``AS_OF``)."""
    rng = np.random.default_rng(0)
    po_rows, rc_rows = [], []
    for week, ordered in enumerate(pd.date_range(START, until, freq="7D")):
        for supplier in ("A", "B"):
            for po in range(3):
                po_id = f"{supplier}{week:03d}{po}"
                for line in range(1, 5):
                    promised = ordered + pd.Timedelta(days=7)
                    late = int(rng.random() < 0.1)
                    if supplier == "B" and onset is not None and ordered >= onset:
                        late = 20
                    po_rows.append((po_id, line, supplier, ordered, promised, 10, "open"))
                    rc_rows.append((po_id, line, promised + pd.Timedelta(days=late)))
    purchase_orders = pd.DataFrame(po_rows, columns=["po_id", "po_line", "supplier_id", "order_date", "promised_date",
                                                     "quantity_ordered", "status"])
    receipts = pd.DataFrame(rc_rows, columns=["po_id", "po_line", "received_date"])
    return purchase_orders, receipts


def test_overdue_lines_flag_a_supplier_before_any_late_receipt() -> None:
    po, rc = _book()
    flags = flag_disruptions(po, rc, AS_OF).set_index("supplier_id")
    assert list(flags.reset_index().columns) == FLAG_COLUMNS
    # Nothing B was sent since the onset has arrived by AS_OF: the evidence is the open lines alone.
    b_lines = known_lines(po, rc, AS_OF).query("supplier_id == 'B' and order_date >= @ONSET")
    assert b_lines["first_received"].isna().all()
    assert flags.at["B", "flagged"] and flags.at["B", "overdue_flag"]
    assert not flags.at["B", "receipt_drift"]
    assert flags.at["B", "lines_late"] >= 6 and flags.at["B", "orders_late"] >= 2
    assert "not received within 0 d" in flags.at["B", "evidence"]
    assert not flags.at["A", "flagged"] and flags.at["A", "evidence"] == ""


def test_a_normal_supplier_is_never_flagged() -> None:
    po, rc = _book(onset=None)
    for as_of in pd.date_range(START + pd.Timedelta(days=60), AS_OF, freq="3D"):
        flags = flag_disruptions(po, rc, as_of)
        assert not flags["flagged"].any(), as_of


def test_not_yet_judged_before_the_promise_and_grace_run_out() -> None:
    po, rc = _book()
    # B's first disrupted lines (ordered on the onset) are due on the 8th and judged at its end.
    assert not flag_disruptions(po, rc, pd.Timestamp("2026-06-07")).set_index("supplier_id").at["B", "flagged"]
    assert flag_disruptions(po, rc, pd.Timestamp("2026-06-08")).set_index("supplier_id").at["B", "flagged"]
    late = DisruptionParams(grace_days=2)
    assert not flag_disruptions(po, rc, pd.Timestamp("2026-06-09"), late).set_index("supplier_id").at["B", "flagged"]


def test_nothing_after_as_of_is_read() -> None:
    po, rc = _book()
    before = flag_disruptions(po, rc, AS_OF)
    # Receipts and orders dated after as_of, even ones that would clear B's overdue lines, change nothing.
    po_cut = po[po["order_date"] <= AS_OF]
    rc_cut = rc[rc["received_date"] <= AS_OF]
    early = rc.assign(received_date=rc["received_date"].where(rc["received_date"] <= AS_OF, AS_OF + pd.Timedelta(days=1)))
    for purchase_orders, receipts in ((po_cut, rc_cut), (po, early)):
        pd.testing.assert_frame_equal(flag_disruptions(purchase_orders, receipts, AS_OF), before)
    lead = planning_lead_times(po, rc, AS_OF)
    pd.testing.assert_frame_equal(planning_lead_times(po_cut, rc_cut, AS_OF), lead)


def test_planning_lead_time_rises_to_the_overdue_lines_age() -> None:
    po, rc = _book()
    lead = planning_lead_times(po, rc, AS_OF).set_index("supplier_id")
    assert list(lead.reset_index().columns) == LEAD_COLUMNS
    assert lead.at["A", "lead_time_mean"] == pytest.approx(7.0, abs=1.0) and not lead.at["A", "flagged"]
    # B's oldest open line was ordered on the onset: 11 days ago, against a promise of 7.
    assert lead.at["B", "flagged"] and lead.at["B", "overdue_floor_days"] == 11
    assert lead.at["B", "lead_time_mean"] >= 11
    # The received lines the model read: as many as the book's first receipts within the lookback.
    known = rc[rc["received_date"] <= AS_OF].merge(po[["po_id", "po_line", "supplier_id"]], on=["po_id", "po_line"])
    first = known.drop_duplicates(["po_id", "po_line"]).groupby("supplier_id").size()
    assert lead["received_lines"].to_dict() == first.reindex(lead.index, fill_value=0).to_dict()
    assert planning_lead_times(po, rc.iloc[0:0], AS_OF)["received_lines"].eq(0).all()


def test_cancelled_lines_are_not_overdue() -> None:
    po, rc = _book()
    cancelled = po.assign(status=np.where((po["supplier_id"] == "B") & (po["order_date"] >= ONSET), "cancelled", "open"))
    assert not flag_disruptions(cancelled, rc, AS_OF).set_index("supplier_id").at["B", "flagged"]


def test_bad_inputs_say_what_is_wrong() -> None:
    po, rc = _book()
    with pytest.raises(ValueError, match=r"purchase_orders lacks column\(s\) \['promised_date'\]"):
        flag_disruptions(po.drop(columns="promised_date"), rc, AS_OF)
    bad = rc.astype({"received_date": object})
    bad.loc[3, "received_date"] = "soon"
    with pytest.raises(ValueError, match="receipts.received_date is not a date in row 3: 'soon'"):
        flag_disruptions(po, bad, AS_OF)
    with pytest.raises(ValueError, match="DisruptionParams out of range: grace_days=-1"):
        DisruptionParams(grace_days=-1)


def test_generator_default_has_no_disruptions_and_is_unchanged() -> None:
    tiny = PRESETS["tiny"]
    plain, explicit = generate_world(tiny), generate_world(dataclasses.replace(tiny, disruptions=DisruptionConfig()))
    assert plain.disruptions.empty and list(plain.disruptions.columns) == [
        "supplier_id", "onset_date", "end_date", "extra_days", "ramp_days", "lines_delayed"]
    pd.testing.assert_frame_equal(plain.purchase_orders, explicit.purchase_orders)
    pd.testing.assert_frame_equal(plain.receipts, explicit.receipts)


def test_generator_injects_late_deliveries_and_records_the_truth() -> None:
    config = dataclasses.replace(PRESETS["tiny"], disruptions=DisruptionConfig(n_suppliers=2, onset_window=(0.3, 0.5)))
    world = generate_world(config)
    truth = world.disruptions
    assert len(truth) == 2 and "SUP001" not in set(truth["supplier_id"])  # the drifting supplier is spared
    assert (truth["lines_delayed"] > 0).all()
    first, last = pd.Timestamp(config.start_date), pd.Timestamp(config.end_date)
    assert truth["onset_date"].between(first, last).all()
    # No extract carries the truth, and the delayed lines arrive later than the supplier's other lines.
    for frame in (world.purchase_orders, world.receipts, world.suppliers, world.items):
        assert not {"onset_date", "extra_days", "disruption_days"} & set(frame.columns)
    lines = world._sim.po_lines
    hit = lines["disruption_days"] > 0
    got = lines["first_day"] < np.iinfo(np.int32).max // 2
    delay = (lines["first_day"] - lines["promised_day"]).astype(float)
    same_suppliers = np.isin(lines["supplier"], np.unique(lines["supplier"][hit]))
    assert delay[hit & got].mean() > delay[~hit & got & same_suppliers].mean() + 5


def test_too_many_disrupted_suppliers_is_an_error() -> None:
    with pytest.raises(ValueError, match="must leave the drifting supplier out: at most 2, got 3"):
        WorldConfig(n_suppliers=3, disruptions=DisruptionConfig(n_suppliers=3))
    with pytest.raises(ValueError, match="onset_window"):
        DisruptionConfig(onset_window=(0.8, 0.2))


def test_no_receipts_yet_falls_back_to_the_promise() -> None:
    po, _ = _book()
    none = pd.DataFrame({"po_id": [], "po_line": [], "received_date": []})
    lead = planning_lead_times(po, none, START + pd.Timedelta(days=3)).set_index("supplier_id")
    assert lead["lead_time_mean"].tolist() == [7.0, 7.0] and not lead["flagged"].any()
    empty = flag_disruptions(po.iloc[:0], none, AS_OF, suppliers=["A"])
    assert empty["supplier_id"].tolist() == ["A"] and not empty["flagged"].any()
    assert flag_disruptions(po.iloc[:0], none, AS_OF).empty


def test_a_stale_open_line_does_not_set_the_lead_time() -> None:
    po, rc = _book()
    # A line of B's from January that the ERP never closed: a stale record, not a 160-day lead time.
    stale = po[(po["supplier_id"] == "B") & (po["order_date"] == START)].head(1)
    lead = planning_lead_times(po, rc[~rc["po_id"].isin(stale["po_id"]) | (rc["po_line"] != 1)], AS_OF)
    b = lead.set_index("supplier_id").loc["B"]
    assert b["flagged"] and b["overdue_floor_days"] == 11
