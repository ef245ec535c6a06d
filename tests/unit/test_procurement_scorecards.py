"""Weekly supplier scorecards on hand-worked frames: OTIF, fill rate, lead time and its trend, price
variance, defects, the reliability score with missing metrics, no leakage of later receipts, and weights."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from include.procurement.scorecards import (
    SUPPLIER_COLUMNS,
    SUPPLIER_ITEM_COLUMNS,
    ScorecardWeights,
    scorecard_history,
    weekly_scorecards,
)

WEEK_END = dt.date(2026, 3, 29)  # 4-week window: 2026-03-02 .. 2026-03-29
ITEMS = pd.DataFrame({"sku": ["A", "B"], "supplier_id": ["S1", "S2"], "unit_cost": [2.0, 5.0],
                      "unit_price": [4.0, 9.0]})
PO_COLUMNS = ["po_id", "po_line", "supplier_id", "sku", "destination_location_id", "order_date", "promised_date",
              "quantity_ordered", "quantity_received", "unit_cost", "status"]
# S1: four lines of A due in the window, 10 units each. quantity_received is the portal's current
# figure (all complete): the scorecard must read the receipts instead.
POS = pd.DataFrame([
    ("P1", 1, "S1", "A", "DC1", "2026-03-01", "2026-03-06", 10, 10, 2.0, "received"),
    ("P2", 1, "S1", "A", "DC1", "2026-03-08", "2026-03-13", 10, 10, 2.0, "received"),
    ("P3", 1, "S1", "A", "DC1", "2026-03-15", "2026-03-20", 10, 10, 2.0, "received"),
    ("P3", 2, "S1", "A", "DC2", "2026-03-15", "2026-03-22", 10, 10, 2.2, "received"),
    # S2: one line of B due, never received; a cancelled one that does not count.
    ("P4", 1, "S2", "B", "DC1", "2026-03-10", "2026-03-17", 5, 0, 5.0, "open"),
    ("P5", 1, "S2", "B", "DC1", "2026-03-10", "2026-03-17", 5, 0, 5.0, "cancelled"),
], columns=PO_COLUMNS)
RECEIPTS = pd.DataFrame([
    ("R1", "P1", 1, "A", "DC1", "2026-03-05", 10),  # lead 4, on time
    ("R2", "P2", 1, "A", "DC1", "2026-03-12", 6),  # lead 4: a line received in two parts, complete on
    ("R3", "P2", 1, "A", "DC1", "2026-03-13", 4),  # its promised date (lead 5)
    ("R4", "P3", 1, "A", "DC1", "2026-03-20", 10),  # lead 5, on the promised day
    ("R5", "P3", 2, "A", "DC2", "2026-03-25", 10),  # lead 10, three days late
], columns=["receipt_id", "po_id", "po_line", "sku", "location_id", "received_date", "quantity_received"])
RETURNS = pd.DataFrame([
    ("T1", "2026-03-20T10:00:00", "store", "S01", "A", 1, "defective"),
    ("T2", "2026-03-21T10:00:00", "store", "S01", "A", 3, "changed_mind"),  # not the supplier's fault
    ("T3", "2026-04-01T10:00:00", "store", "S01", "A", 5, "damaged"),  # after the week
], columns=["return_id", "returned_at", "channel", "location_id", "sku", "quantity", "reason"])
CATALOGUE = pd.DataFrame({"supplier_id": ["S1", "S2"], "sku": ["A", "B"], "unit_cost": [2.0, 5.0],
                          "valid_from": ["2026-01-01", "2026-01-01"]})
LEADS = np.array([4, 4, 5, 5, 10], float)


def _cards(catalogue=CATALOGUE, receipts=RECEIPTS, week_end=WEEK_END, **kw):
    return weekly_scorecards(POS, receipts, RETURNS, ITEMS, catalogue, week_end, weeks=4, **kw)


def _row(frame: pd.DataFrame, supplier: str) -> pd.Series:
    return frame.set_index("supplier_id").loc[supplier]


def test_delivery_metrics_of_four_lines_one_late():
    suppliers, items = _cards()
    assert list(suppliers.columns) == SUPPLIER_COLUMNS and list(items.columns) == SUPPLIER_ITEM_COLUMNS
    s1 = _row(suppliers, "S1")
    assert (s1["lines_due"], s1["lines_received"], s1["lines_otif"]) == (4, 4, 3)
    assert s1["otif"] == 0.75 and s1["fill_rate"] == 1.0
    assert s1["week_end"] == pd.Timestamp(WEEK_END) and s1["weeks"] == 4
    # S2's one line (the cancelled one aside) was never received.
    s2 = _row(suppliers, "S2")
    assert (s2["lines_due"], s2["lines_received"], s2["otif"], s2["fill_rate"], s2["n_receipts"]) == (1, 0, 0, 0, 0)


def test_lead_time_statistics_and_robust_trend():
    s1 = _row(_cards()[0], "S1")
    assert s1["n_receipts"] == 5
    assert s1["lead_time_mean"] == pytest.approx(5.6)
    assert s1["lead_time_p90"] == pytest.approx(8.0)  # 5 + 0.6 x (10 - 5)
    assert s1["lead_time_cv"] == pytest.approx(LEADS.std(ddof=1) / 5.6)
    # Weekly medians 4, 4.5, 5, 10 (weeks 0..3): pairwise slopes 0.5, 0.5, 2, 0.5, 2.75, 5 -> median 1.25.
    assert s1["lead_time_trend_days_per_week"] == pytest.approx(1.25)


def test_trend_needs_enough_weeks():
    # Only the receipts of the first two weeks are known on 03-15: two weekly medians, below the minimum 3.
    s1 = _row(_cards(week_end=dt.date(2026, 3, 15))[0], "S1")
    assert s1["n_receipts"] == 3 and np.isnan(s1["lead_time_trend_days_per_week"])
    s1 = _row(_cards(week_end=dt.date(2026, 3, 15), weights=ScorecardWeights(trend_min_weeks=2))[0], "S1")
    assert s1["lead_time_trend_days_per_week"] == pytest.approx(0.5)


def test_price_variance_and_defect_rate():
    s1 = _row(_cards()[0], "S1")
    # Ordered in the window: P2, P3-1 at the contract's 2.00, P3-2 at 2.20: 2.00 extra on 60.00 of contract spend.
    assert s1["price_variance"] == pytest.approx(2.0 / 60.0)
    # One defective unit of A in the window over the 40 received; the changed mind and the later return do not count.
    assert (s1["units_defective"], s1["defect_rate"]) == (1.0, 0.025)
    assert np.isnan(_cards(catalogue=None)[0]["price_variance"]).all()


def test_reliability_from_the_weights_with_missing_metrics_renormalised():
    s1 = _row(_cards()[0], "S1")
    cv = LEADS.std(ddof=1) / 5.6
    sub = {"otif": 0.75, "fill_rate": 1.0, "lead_time_variability": 1 - cv / 0.5, "lead_time_trend": 0.0,
           "price_variance": 1 - (2 / 60) / 0.10, "defect_rate": 1 - 0.025 / 0.05}
    w = ScorecardWeights()
    expected = 100 * sum(getattr(w, k) * v for k, v in sub.items())
    assert s1["reliability"] == pytest.approx(expected, abs=0.01)
    # Without a catalogue the price sub-score is missing: the other weights are renormalised.
    no_price = _row(_cards(catalogue=None)[0], "S1")
    rest = {k: v for k, v in sub.items() if k != "price_variance"}
    expected = 100 * sum(getattr(w, k) * v for k, v in rest.items()) / (1 - w.price_variance)
    assert no_price["reliability"] == pytest.approx(expected, abs=0.01)
    # S2 has no receipts: only OTIF and fill rate (both 0) and its price, at the contract's (sub-score 1).
    assert _row(_cards()[0], "S2")["reliability"] == pytest.approx(100 * 0.1 / 0.65, abs=0.01)
    assert np.isnan(_row(_cards()[0], "S2")["lead_time_cv"])


def test_supplier_item_rows_match_a_single_sku_supplier():
    suppliers, items = _cards()
    row = items.set_index(["supplier_id", "sku"]).loc[("S1", "A")]
    assert row["otif"] == 0.75 and row["reliability"] == _row(suppliers, "S1")["reliability"]
    assert set(zip(items["supplier_id"], items["sku"], strict=True)) == {("S1", "A"), ("S2", "B")}


def test_receipts_after_the_week_are_not_known():
    # P3-2 arrives on 03-31, after the week: on 03-29 it is due and not received.
    late = RECEIPTS.assign(received_date=RECEIPTS["received_date"].replace("2026-03-25", "2026-03-31"))
    s1 = _row(_cards(receipts=late)[0], "S1")
    assert (s1["lines_received"], s1["otif"], s1["fill_rate"], s1["n_receipts"]) == (3, 0.75, 0.75, 4)
    # Exactly what a run without that receipt at all gives.
    without = _row(_cards(receipts=RECEIPTS.iloc[:4])[0], "S1")
    pd.testing.assert_series_equal(s1, without)


def test_defects_are_shared_among_the_suppliers_of_a_sku():
    # S2 also delivers A in the window: 30 units against S1's 40; 7 defective units of A split 4 : 3.
    pos = pd.concat([POS, pd.DataFrame([("P6", 1, "S2", "A", "DC1", "2026-03-10", "2026-03-14", 30, 30, 2.1,
                                         "received")], columns=PO_COLUMNS)], ignore_index=True)
    receipts = pd.concat([RECEIPTS, pd.DataFrame([("R6", "P6", 1, "A", "DC1", "2026-03-14", 30)],
                                                 columns=RECEIPTS.columns)], ignore_index=True)
    returns = RETURNS.assign(quantity=[7, 3, 5])
    suppliers, items = weekly_scorecards(pos, receipts, returns, ITEMS, CATALOGUE, WEEK_END, weeks=4)
    assert _row(suppliers, "S1")["units_defective"] == pytest.approx(4.0)
    assert _row(suppliers, "S2")["units_defective"] == pytest.approx(3.0)
    assert _row(suppliers, "S2")["defect_rate"] == pytest.approx(0.1)
    # S2 has no contract for A: its price variance is that of B alone, at the contract's price.
    assert _row(suppliers, "S2")["price_variance"] == 0.0
    assert np.isnan(items.set_index(["supplier_id", "sku"]).loc[("S2", "A"), "price_variance"])


def test_history_stacks_the_weeks_each_as_known_on_its_own_date():
    weeks = [dt.date(2026, 3, 22), WEEK_END]
    suppliers, items = scorecard_history(POS, RECEIPTS, RETURNS, ITEMS, CATALOGUE, weeks, weeks=4)
    assert suppliers["week_end"].drop_duplicates().tolist() == [pd.Timestamp(d) for d in weeks]
    for day in weeks:
        alone = _cards(week_end=day)[0]
        got = suppliers[suppliers["week_end"] == pd.Timestamp(day)].reset_index(drop=True)
        pd.testing.assert_frame_equal(got, alone)
    empty = scorecard_history(POS, RECEIPTS, RETURNS, ITEMS, CATALOGUE, [], weeks=4)
    assert empty[0].empty and list(empty[1].columns) == SUPPLIER_ITEM_COLUMNS


def test_weights_from_a_mapping_are_validated():
    w = ScorecardWeights.from_mapping({"otif": 0.5, "defect_scale": 0.1})
    assert (w.otif, w.fill_rate, w.defect_scale) == (0.5, 0.2, 0.1)
    with pytest.raises(ValueError, match="unknown scorecard weight 'otiff'"):
        ScorecardWeights.from_mapping({"otiff": 0.5})
    with pytest.raises(ValueError, match=r"ScorecardWeights.fill_rate must be >= 0, got -0.1"):
        ScorecardWeights.from_mapping({"fill_rate": -0.1})
    zero = dict.fromkeys(["otif", "fill_rate", "lead_time_variability", "lead_time_trend", "price_variance",
                          "defect_rate"], 0.0)
    with pytest.raises(ValueError, match="must sum to more than 0"):
        ScorecardWeights.from_mapping(zero)
    with pytest.raises(ValueError, match="cv_scale must be > 0"):
        ScorecardWeights(cv_scale=0)
    with pytest.raises(ValueError, match="weeks must be at least 1, got 0"):
        weekly_scorecards(POS, RECEIPTS, RETURNS, ITEMS, None, WEEK_END, weeks=0)


def test_only_otif_weighted_reliability_is_otif():
    weights = ScorecardWeights.from_mapping({"fill_rate": 0, "lead_time_variability": 0, "lead_time_trend": 0,
                                             "price_variance": 0, "defect_rate": 0, "otif": 1})
    assert _row(_cards(weights=weights)[0], "S1")["reliability"] == 75.0
