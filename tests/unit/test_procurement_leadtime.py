"""Lead-time prediction: pooling, change detection, walk-forward honesty, calibration, input errors, and
the USAID SCMS adapter on a tiny hand-written file."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from include.procurement.leadtime import LeadTimeParams, predict_arrivals, score, walk_forward
from include.procurement.usaid import load_scms, parse_dates

DAY = pd.Timedelta(days=1)
T0 = pd.Timestamp("2020-01-01")


def receipts(rows: list[tuple[str, str, str, int, int]], lead: int = 30) -> pd.DataFrame:
    """Receipts from ``(supplier, lane, mode, order day, delay days)``: promised ``lead`` days after ordering."""
    frame = pd.DataFrame(rows, columns=["supplier_id", "lane", "mode", "day", "delay"])
    ordered = T0 + frame["day"] * DAY
    promised = ordered + lead * DAY
    return pd.DataFrame({"supplier_id": frame["supplier_id"], "lane": frame["lane"], "mode": frame["mode"],
                         "ordered_at": ordered, "promised_at": promised,
                         "received_at": promised + frame["delay"] * DAY})


def line(supplier: str, lane: str, mode: str, day: int, lead: int = 30) -> pd.DataFrame:
    ordered = T0 + day * DAY
    return pd.DataFrame({"supplier_id": [supplier], "lane": [lane], "mode": [mode], "ordered_at": [ordered],
                         "promised_at": [ordered + lead * DAY]})


# --------------------------------------------------------------------------------------------- pooling


def test_thin_group_falls_back_to_the_parent_level():
    # Lane L1 has two receipts 30 days late; the supplier's other Air lanes ten receipts 5 days late.
    rows = [("A", "L1", "Air", d, 30) for d in (0, 10)] + [("A", f"L{2 + i % 3}", "Air", i * 5, 5) for i in range(10)]
    hist = receipts(rows)
    open_line = line("A", "L1", "Air", 200)
    params = LeadTimeParams(min_receipts=5, shrink_receipts=0.0, halflife_days=1e6)

    pooled = predict_arrivals(hist, open_line, params).iloc[0]
    assert pooled["level"] == "supplier_id x mode"
    assert pooled["level_receipts"] == 12
    assert pooled["predicted_delay_days"] == 5.0  # median of ten 5s and two 30s
    assert pooled["predicted_arrival"] == open_line["promised_at"].iloc[0] + 5 * DAY

    specific = predict_arrivals(hist, open_line, LeadTimeParams(min_receipts=2, shrink_receipts=0.0)).iloc[0]
    assert specific["level"] == "supplier_id x lane x mode"
    assert specific["predicted_delay_days"] == 30.0


def test_shrinkage_pulls_a_thin_group_toward_its_parent():
    rows = [("A", "L1", "Air", d, 30) for d in (0, 10, 20, 30, 40)]
    rows += [("B", "L9", "Air", i * 3, 0) for i in range(40)]
    hist = receipts(rows)
    alone = predict_arrivals(hist, line("A", "L1", "Air", 300), LeadTimeParams(shrink_receipts=0.0)).iloc[0]
    shrunk = predict_arrivals(hist, line("A", "L1", "Air", 300), LeadTimeParams(shrink_receipts=50.0)).iloc[0]
    assert alone["predicted_delay_days"] == 30.0
    # Fifty pseudo-receipts of the mode level (mostly on time) outweigh five receipts of the lane.
    assert shrunk["predicted_delay_days"] == 0.0
    assert shrunk["level"] == "supplier_id x lane x mode"


def test_lead_time_target_adds_the_usual_lead_time_to_the_order_date():
    hist = receipts([("A", "L1", "Air", d, 15) for d in range(0, 50, 10)], lead=30)  # 45 days order to door
    open_line = line("A", "L1", "Air", 200, lead=10)
    by_delay = predict_arrivals(hist, open_line, LeadTimeParams()).iloc[0]
    by_lead = predict_arrivals(hist, open_line, LeadTimeParams(target="lead_time")).iloc[0]
    assert by_delay["predicted_arrival"] == T0 + 225 * DAY and by_delay["predicted_delay_days"] == 15.0
    assert by_lead["predicted_arrival"] == T0 + 245 * DAY and by_lead["predicted_delay_days"] == 35.0


def test_no_receipt_keeps_the_promise_and_says_so():
    hist = receipts([("A", "L1", "Air", 100, 9)])
    out = predict_arrivals(hist, line("A", "L1", "Air", 50), LeadTimeParams()).iloc[0]
    assert out["level"] == "none" and out["level_receipts"] == 0
    assert out["predicted_delay_days"] == 0.0
    assert pd.isna(out["interval_low"]) and pd.isna(out["interval_high"])


# --------------------------------------------------------------------------------------------- change


def step_history(n_before: int, n_after: int, step: int) -> pd.DataFrame:
    noise = [0, 1, -1, 2, -2]
    rows = [("A", "L1", "Sea", 7 * i, noise[i % 5]) for i in range(n_before)]
    rows += [("A", "L1", "Sea", 7 * (n_before + i), step + noise[i % 5]) for i in range(n_after)]
    return receipts(rows, lead=10)


@pytest.mark.parametrize("n_after", [3, 4, 6])
def test_step_change_is_detected_and_followed_within_a_few_receipts(n_after):
    hist = step_history(30, n_after, step=20)
    # Predict just after the last receipt arrived.
    day = 7 * (30 + n_after - 1) + 10 + 25
    params = LeadTimeParams(halflife_days=1e6, shrink_receipts=0.0)
    out = predict_arrivals(hist, line("A", "L1", "Sea", day), params).iloc[0]
    assert bool(out["drift"])
    assert out["drift_shift_days"] >= 18
    assert "recent median moved +" in out["drift_evidence"]
    assert out["predicted_delay_days"] >= 18

    # Without down-weighting the receipts before the change, thirty old receipts hold the median at ~0.
    still = predict_arrivals(hist, line("A", "L1", "Sea", day), LeadTimeParams(
        halflife_days=1e6, shrink_receipts=0.0, drift_downweight=1.0)).iloc[0]
    assert abs(still["predicted_delay_days"]) <= 2


def test_a_single_late_receipt_is_not_a_change():
    hist = step_history(30, 1, step=40)
    out = predict_arrivals(hist, line("A", "L1", "Sea", 7 * 31 + 60), LeadTimeParams(halflife_days=1e6)).iloc[0]
    assert not out["drift"]
    assert out["drift_evidence"] == ""
    assert abs(out["predicted_delay_days"]) <= 2


def test_one_late_shipment_of_many_lines_is_one_event_not_a_change():
    hist = step_history(30, 0, step=0)
    # Four lines of one shipment, ordered together and delivered together 25 days late.
    batch = receipts([("A", "L1", "Sea", 7 * 30, 25)] * 4, lead=10)
    hist = pd.concat([hist, batch], ignore_index=True)
    open_line = line("A", "L1", "Sea", 7 * 30 + 60)
    default = predict_arrivals(hist, open_line, LeadTimeParams(halflife_days=1e6)).iloc[0]
    assert not default["drift"]
    assert abs(default["predicted_delay_days"]) <= 2
    per_receipt = predict_arrivals(hist, open_line, LeadTimeParams(halflife_days=1e6, drift_min_dates=1)).iloc[0]
    assert per_receipt["drift"]


# --------------------------------------------------------------------------------------------- honesty


def test_receipts_delivered_at_or_after_the_prediction_time_are_not_used():
    # Five receipts on time, delivered before day 100; ten 50 days late, ordered before day 100 but
    # delivered on or after it (the first exactly on day 100). Leaking them would predict +50.
    rows = [("A", "L1", "Air", d, 0) for d in range(0, 50, 10)]
    hist = receipts(rows)
    late = receipts([("A", "L1", "Air", 20 + i, 50) for i in range(10)])
    hist = pd.concat([hist, late], ignore_index=True)
    assert hist["received_at"].min() < T0 + 100 * DAY <= late["received_at"].min()

    at_order = predict_arrivals(hist, line("A", "L1", "Air", 100), LeadTimeParams()).iloc[0]
    assert at_order["level_receipts"] == 5
    assert at_order["predicted_delay_days"] == 0.0

    later = predict_arrivals(hist, line("A", "L1", "Air", 100), LeadTimeParams(), as_of=T0 + 400 * DAY).iloc[0]
    assert later["predicted_delay_days"] > 40


def test_walk_forward_matches_a_brute_force_past_only_median():
    rng = np.random.default_rng(7)
    n = 80
    days = np.sort(rng.integers(0, 400, n))
    delays = rng.integers(-10, 30, n)
    leads = rng.integers(5, 60, n)
    hist = pd.concat([receipts([("A", "L", "Air", int(d), int(x))], lead=int(le))
                      for d, x, le in zip(days, delays, leads, strict=True)], ignore_index=True)
    params = LeadTimeParams(levels=((),), window=n, halflife_days=float("inf"), drift_downweight=1.0, min_receipts=1)
    result = walk_forward(hist, params)
    for i, row in result.iterrows():
        past = hist[hist["received_at"] < hist.at[i, "ordered_at"]]
        assert row["level_receipts"] == len(past)
        if len(past):
            d = np.sort(((past["received_at"] - past["promised_at"]) / DAY).to_numpy())
            assert row["predicted_delay_days"] == d[(len(d) - 1) // 2]  # the lower median
        else:
            assert row["level"] == "none"


# --------------------------------------------------------------------------------------------- calibration


def synthetic(n: int, seed: int, sigma: float = 5.0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    ordered = T0 + pd.to_timedelta(np.sort(rng.uniform(0, 2000, n)), unit="D")
    supplier = rng.choice(["A", "B", "C"], n)
    offset = pd.Series(supplier).map({"A": 0.0, "B": 4.0, "C": -3.0}).to_numpy()
    promised = ordered + pd.to_timedelta(rng.uniform(20, 90, n), unit="D")
    received = promised + pd.to_timedelta(offset + rng.normal(0, sigma, n), unit="D")
    return pd.DataFrame({"supplier_id": supplier, "lane": "L", "mode": "Air", "ordered_at": ordered,
                         "promised_at": promised, "received_at": received})


@pytest.mark.parametrize(("coverage", "window"), [(0.8, 40), (0.5, 40), (0.8, 12)])
def test_interval_coverage_matches_the_requested_level_on_known_noise(coverage, window):
    # With only 12 receipts per window plain sample quantiles cover about 70%; the finite-sample
    # correction has to bring it back into the band.
    hist = synthetic(3000, seed=11)
    result = walk_forward(hist, LeadTimeParams(coverage=coverage, window=window), start=T0 + 300 * DAY)
    got = score(result)
    assert coverage - 0.05 <= got["interval_coverage"] <= coverage + 0.05
    # Gaussian noise of sd 5: the best possible MAE is 5 * sqrt(2 / pi) = 3.99 days.
    assert got["eta_mae_days"] < 4.6
    assert result["interval_low"].notna().all()


def test_residual_intervals_carry_the_lag_of_a_trending_supplier():
    # Delays grow 0.03 day per day and lines are promised 60 days out: by delivery, the median of past
    # delays lags ~2-3 days behind, more than the noise (sd 2). Quantiles of the delays centred on that
    # median miss most arrivals; quantiles of the past prediction errors carry the lag.
    rng = np.random.default_rng(3)
    day = np.sort(rng.uniform(0, 1500, 1500))
    ordered = T0 + pd.to_timedelta(day, unit="D")
    promised = ordered + 60 * DAY
    hist = pd.DataFrame({"supplier_id": "A", "lane": "L", "mode": "Sea", "ordered_at": ordered,
                         "promised_at": promised,
                         "received_at": promised + pd.to_timedelta(0.03 * day + rng.normal(0, 2, 1500), unit="D")})
    start = T0 + 300 * DAY
    delays = score(walk_forward(hist, LeadTimeParams(interval_from="delays"), start=start))
    residuals = score(walk_forward(hist, LeadTimeParams(interval_from="residuals"), start=start))
    assert delays["interval_coverage"] < 0.5
    assert 0.75 <= residuals["interval_coverage"] <= 0.85
    assert residuals["eta_mae_days"] == delays["eta_mae_days"]  # the interval mode leaves the point alone


# --------------------------------------------------------------------------------------------- bad input


def test_bad_input_names_the_column_and_the_row():
    hist = receipts([("A", "L1", "Air", d, 0) for d in range(3)])
    with pytest.raises(ValueError, match=r"history lacks column\(s\) \['received_at'\]"):
        predict_arrivals(hist.drop(columns="received_at"), line("A", "L1", "Air", 9))
    broken = hist.astype({"received_at": object}).set_axis(["r0", "r1", "r2"])
    broken.loc["r2", "received_at"] = "Date Not Captured"
    with pytest.raises(ValueError, match=r"history\.received_at is not a date in row 'r2': 'Date Not Captured'"):
        predict_arrivals(broken, line("A", "L1", "Air", 9))
    open_lines = pd.concat([line("A", "L1", "Air", 9), line("A", "L1", "Air", 9)], ignore_index=True)
    open_lines.loc[1, "supplier_id"] = None
    with pytest.raises(ValueError, match=r"open_lines\.supplier_id is empty in row 1"):
        predict_arrivals(hist, open_lines)
    early = hist.copy()
    early.loc[1, "received_at"] = early.loc[1, "ordered_at"] - DAY
    with pytest.raises(ValueError, match=r"history row 1: received_at .* is before ordered_at"):
        predict_arrivals(early, line("A", "L1", "Air", 9))


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"coverage": 1.2}, r"coverage=1\.2"),
    ({"target": "eta"}, r"target must be 'delay' or 'lead_time', not 'eta'"),
    ({"interval_from": "errors"}, r"interval_from must be 'residuals' or 'delays', not 'errors'"),
    ({"drift_min_dates": 5}, r"drift_min_dates=5"),
    ({"levels": (("supplier_id",),)}, r"levels must end with \(\)"),
    ({"levels": (("vendor",), ())}, r"unknown column\(s\) \['vendor'\]"),
    ({"window": 8, "drift_recent": 4, "drift_min_older": 6}, r"exceeds window \(8\)"),
])
def test_params_are_validated(kwargs, message):
    with pytest.raises(ValueError, match=message):
        LeadTimeParams(**kwargs)


# --------------------------------------------------------------------------------------------- USAID adapter

SCMS_HEADER = ("ID,Country,Fulfill Via,Shipment Mode,PQ First Sent to Client Date,PO Sent to Vendor Date,"
               "Scheduled Delivery Date,Delivered to Client Date,Vendor\n")
SCMS_ROWS = [
    '1,Nigeria,Direct Drop,Air,Pre-PQ Process,3/4/10,2-Jun-10,5-Jun-10,"Vendor, Ltd"',   # PO date, month first
    "2,Haiti,From RDC,Truck,11/6/09,N/A - From RDC,15-Jan-10,10-Jan-10,SCMS from RDC",  # quote fallback
    "3,Haiti,From RDC,N/A,Pre-PQ Process,N/A - From RDC,15-Jan-10,10-Jan-10,SCMS from RDC",  # no date: drop
    "4,Zambia,Direct Drop,Ocean,Date Not Captured,Date Not Captured,1-Mar-11,3-Mar-11,V2",  # no date: drop
    "5,Zambia,Direct Drop,Air,1/5/11,Date Not Captured,1-Mar-11,Date Not Captured,V2",  # no delivery: drop
    "6,Zambia,Direct Drop,Air,Pre-PQ Process,6/1/11,1-Jul-11,20-May-11,V2",  # delivered before PO: drop
    "7,Uganda,Direct Drop,N/A,Pre-PQ Process,7/1/11,1-Sep-11,2-Sep-11,V3",  # mode not recorded: kept
    "8,Uganda,From RDC,Air,9/1/12,N/A - From RDC,1-Aug-12,3-Aug-12,SCMS from RDC",  # quote after promise: drop
]


def test_usaid_adapter_parses_messy_dates_and_counts_what_it_drops(tmp_path):
    path = tmp_path / "scms.csv"
    path.write_text(SCMS_HEADER + "\n".join(SCMS_ROWS) + "\n", encoding="utf-8")
    frame, report = load_scms(path)

    assert report.rows_read == 8 and report.rows_kept == 3
    assert report.dropped == {
        "scheduled delivery date is not a date": 0,
        "delivered to client date is not a date": 1,
        "no PO-sent date and no quote date on or before the scheduled date": 3,
        "delivered before the order date": 1,
    }
    assert report.ordered_at_source == {"po_sent": 2, "quote": 1}
    assert report.text_dates["po_sent"] == {"N/A - From RDC": 3, "Date Not Captured": 2}
    assert report.mode_unknown == 1
    assert frame["line_id"].tolist() == [2, 1, 7]  # sorted by order date
    first = frame.set_index("line_id").loc[1]
    assert first["ordered_at"] == pd.Timestamp("2010-03-04")  # month first, as the file writes it
    assert first["promised_at"] == pd.Timestamp("2010-06-02")
    assert first["received_at"] == pd.Timestamp("2010-06-05")
    assert first["supplier_id"] == "Vendor, Ltd" and first["lane"] == "Nigeria" and first["mode"] == "Air"
    rdc = frame.set_index("line_id").loc[2]
    assert rdc["ordered_at"] == pd.Timestamp("2009-11-06") and rdc["ordered_at_source"] == "quote"
    assert frame.set_index("line_id").loc[7, "mode"] == "unknown"
    # The adapter's output is what the predictor takes.
    assert len(predict_arrivals(frame, frame)) == 3


def test_usaid_adapter_rejects_a_file_without_the_mapped_columns(tmp_path):
    path = tmp_path / "scms.csv"
    path.write_text("ID,Vendor\n1,V\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"lacks column\(s\) \['Country'"):
        load_scms(path)


def test_parse_dates_turns_text_into_nat_and_never_guesses_day_first():
    parsed = parse_dates(pd.Series(["3/4/10", "29-Aug-14", "Date Not Captured", None, "2015-02-01"]))
    assert parsed.tolist()[:2] == [pd.Timestamp("2010-03-04"), pd.Timestamp("2014-08-29")]
    assert parsed.isna().tolist() == [False, False, True, True, False]
