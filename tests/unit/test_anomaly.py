"""Unit tests for models.anomaly: demand spikes and drops, supplier lead-time drift and stats."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from models.anomaly import detect_demand_anomalies, detect_lead_time_drift, supplier_lead_time_stats
from models.anomaly.demand import OUTPUT_COLUMNS
from models.anomaly.supplier import DRIFT_COLUMNS, STATS_COLUMNS
from tests.shared_data import shared_data

DAY = pd.Timestamp("2024-06-01")
AS_OF = pd.Timestamp("2024-12-31")


# ---------------------------------------------------------------------------------------------------
# Demand
# ---------------------------------------------------------------------------------------------------


def _forecasts(rows: list[tuple[str, float, float]], **extra: list[float]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=["unique_id", "mean", "q95"]).assign(ds=DAY)
    for col, values in extra.items():
        frame[col] = values
    return frame


def _actuals(rows: list[tuple[str, float]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["unique_id", "y"]).assign(ds=DAY)


def test_spike_is_flagged_with_severity_and_numbers():
    forecasts = _forecasts([("big", 10.0, 14.0), ("mild", 10.0, 14.0), ("inside", 10.0, 14.0), ("tiny", 0.5, 1.0)])
    actuals = _actuals([("big", 30.0), ("mild", 17.0), ("inside", 13.0), ("tiny", 2.0)])

    out = detect_demand_anomalies(actuals, forecasts)

    assert list(out.columns) == OUTPUT_COLUMNS
    # "inside" is within the interval; "tiny" is above q95 but by fewer than min_units.
    assert out["unique_id"].tolist() == ["big", "mild"]
    big = out.iloc[0]
    assert big["anomaly_type"] == "demand_spike"
    assert big["severity"] == "high"
    assert big["score"] == pytest.approx(5.0)  # (30 - 10) / (14 - 10)
    assert (big["actual"], big["expected"], big["upper"]) == (30.0, 10.0, 14.0)
    assert big["explanation"] == "sold 30 units vs expected 10.0 (95% upper 14.0): +20.0 units, 5.0x the usual spread"
    mild = out.iloc[1]
    assert mild["severity"] == "low"
    assert mild["score"] == pytest.approx(1.75)


def test_spike_severity_medium_band():
    out = detect_demand_anomalies(_actuals([("sku", 19.0)]), _forecasts([("sku", 10.0, 14.0)]))
    assert out["severity"].tolist() == ["medium"]


def test_drop_is_flagged_for_a_series_that_usually_sells():
    forecasts = _forecasts([("usual", 20.0, 26.0), ("slow", 1.0, 3.0)])
    actuals = _actuals([("usual", 0.0), ("slow", 0.0)])

    out = detect_demand_anomalies(actuals, forecasts)

    assert out["unique_id"].tolist() == ["usual"]
    row = out.iloc[0]
    assert row["anomaly_type"] == "demand_drop"
    assert row["severity"] == "high"  # 20 / 6 = 3.3
    assert "sold 0 units vs expected 20.0 (lower bound 0.0)" in row["explanation"]


def test_drop_uses_the_lower_quantile_when_present():
    forecasts = _forecasts([("sku", 20.0, 26.0)], q5=[14.0], q50=[20.0])
    # 12 is below the 5% quantile (14): a drop. Without q5 the bound would be 0 and 12 would pass.
    out = detect_demand_anomalies(_actuals([("sku", 12.0)]), forecasts)
    assert out["anomaly_type"].tolist() == ["demand_drop"]
    assert "lower bound 14.0" in out["explanation"].iloc[0]
    assert detect_demand_anomalies(_actuals([("sku", 12.0)]), forecasts.drop(columns="q5")).empty


def test_days_without_a_forecast_are_not_judged():
    out = detect_demand_anomalies(_actuals([("unknown", 500.0)]), _forecasts([("sku", 1.0, 2.0)]))
    assert out.empty
    assert list(out.columns) == OUTPUT_COLUMNS


def test_demand_anomalies_missing_column_raises():
    with pytest.raises(ValueError, match=r"forecasts is missing required column\(s\): q95"):
        detect_demand_anomalies(_actuals([("sku", 1.0)]), _forecasts([("sku", 1.0, 2.0)]).drop(columns="q95"))


# ---------------------------------------------------------------------------------------------------
# Supplier lead time
# ---------------------------------------------------------------------------------------------------


def _receipts(supplier_id: str, lead_times: np.ndarray, received: pd.DatetimeIndex, promised: float = 7.0):
    received = pd.DatetimeIndex(received)
    return pd.DataFrame(
        {
            "supplier_id": supplier_id,
            "order_date": received - pd.to_timedelta(lead_times, unit="D"),
            "received_date": received,
            "promised_lead_time_days": promised,
        }
    )


def _history() -> pd.DataFrame:
    rng = np.random.default_rng(11)
    baseline_days = pd.date_range("2024-03-01", "2024-10-31", freq="5D")
    recent_days = pd.date_range("2024-11-05", "2024-12-30", freq="4D")
    stable = _receipts(
        "stable",
        rng.integers(6, 9, len(baseline_days) + len(recent_days)),
        baseline_days.append(recent_days),
    )
    slower = pd.concat(
        [
            _receipts("slower", rng.integers(6, 9, len(baseline_days)), baseline_days),
            _receipts("slower", rng.integers(11, 14, len(recent_days)), recent_days),
        ]
    )
    # Slow receipts after as_of are in the future for this run and must be ignored.
    future = pd.concat(
        [
            _receipts("future", rng.integers(6, 9, len(baseline_days)), baseline_days),
            _receipts("future", rng.integers(6, 9, 5), pd.date_range("2024-11-10", periods=5, freq="7D")),
            _receipts("future", np.full(10, 30), pd.date_range("2025-01-02", periods=10, freq="D")),
        ]
    )
    return pd.concat([stable, slower, future], ignore_index=True)


def test_lead_time_drift_flags_the_supplier_that_got_slower():
    out = detect_lead_time_drift(_history(), as_of=AS_OF)

    assert list(out.columns) == DRIFT_COLUMNS
    assert out["supplier_id"].tolist() == ["slower"]
    row = out.iloc[0]
    assert row["anomaly_type"] == "lead_time_drift"
    assert row["severity"] == "high"  # ~12 vs ~7 days: a shift of more than half the baseline
    assert row["recent_mean_lead_time"] == pytest.approx(12.0, abs=1.0)
    assert row["baseline_mean_lead_time"] == pytest.approx(7.0, abs=1.0)
    assert row["recent_late_rate"] == 1.0
    assert row["baseline_late_rate"] < 0.5
    assert row["p_value"] < 0.001
    assert row["promised_lead_time"] == 7.0
    assert row["n_recent"] == 14  # 2024-11-05 .. 2024-12-30 every 4 days
    assert row["n_baseline"] == 49  # 2024-03-01 .. 2024-10-31 every 5 days
    assert f"{row['recent_mean_lead_time']:.1f} days over the last 60 days" in row["explanation"]


def test_lead_time_drift_ignores_a_shift_within_the_noise():
    baseline_days = pd.date_range("2024-03-01", periods=40, freq="5D")
    recent_days = pd.DatetimeIndex(["2024-11-20", "2024-12-05", "2024-12-20"])
    noisy = pd.concat(
        [
            _receipts("noisy", np.tile([3, 15], 20), baseline_days),
            # Mean 10.3 against 9.0: more than a day longer, but well inside the usual spread.
            _receipts("noisy", np.array([4, 16, 11]), recent_days),
        ]
    )
    assert detect_lead_time_drift(noisy, as_of=AS_OF).empty


def test_lead_time_drift_needs_enough_recent_receipts():
    out = detect_lead_time_drift(_history(), as_of=AS_OF, min_recent=20)
    assert out.empty
    assert list(out.columns) == DRIFT_COLUMNS


def test_supplier_stats_use_only_received_lines_up_to_as_of():
    receipts = pd.concat(
        [
            _receipts("acme", np.array([5, 7, 9, 11]), pd.date_range("2024-12-01", periods=4, freq="D")),
            # Open lines (not received yet) are not history.
            _receipts("newco", np.array([0]), pd.DatetimeIndex(["2024-12-20"])).assign(received_date=pd.NaT),
            _receipts("later", np.array([3]), pd.DatetimeIndex(["2025-02-01"])),
        ],
        ignore_index=True,
    )
    stats = supplier_lead_time_stats(receipts, AS_OF)

    assert list(stats.columns) == STATS_COLUMNS
    assert stats["supplier_id"].tolist() == ["acme"]  # no row for newco or later: callers use the promise
    acme = stats.iloc[0]
    assert acme["mean_lead_time"] == pytest.approx(8.0)
    assert acme["std_lead_time"] == pytest.approx(np.std([5, 7, 9, 11], ddof=1))
    assert acme["late_rate"] == pytest.approx(0.5)  # 9 and 11 days against a 7-day promise
    assert acme["n"] == 4


def test_supplier_stats_empty_when_nothing_received():
    receipts = _receipts("newco", np.array([3]), pd.DatetimeIndex(["2025-02-01"]))
    stats = supplier_lead_time_stats(receipts, "2024-12-31")
    assert stats.empty
    assert list(stats.columns) == STATS_COLUMNS


def test_supplier_functions_validate_columns():
    receipts = _receipts("acme", np.array([5]), pd.DatetimeIndex(["2024-12-01"])).drop(columns="order_date")
    with pytest.raises(ValueError, match=r"receipts is missing required column\(s\): order_date"):
        supplier_lead_time_stats(receipts, AS_OF)
    with pytest.raises(ValueError, match=r"receipts is missing required column\(s\): order_date"):
        detect_lead_time_drift(receipts, as_of=AS_OF)


# ---------------------------------------------------------------------------------------------------
# Real purchase orders (USAID SCMS): the lead-time models on dirty real dates
# ---------------------------------------------------------------------------------------------------

SCMS = "usaid_scms/SCMS_Delivery_History_Dataset.csv.zip"


@pytest.fixture(scope="module")
def scms_receipts() -> pd.DataFrame:
    raw = pd.read_csv(shared_data(SCMS), dtype=str)
    # Dates come in two formats and with text such as "Date Not Captured" or "N/A - From RDC" (orders
    # served from a regional centre have no PO date): parse each column with its own format, keep NaT.
    order = pd.to_datetime(raw["PO Sent to Vendor Date"], format="%m/%d/%y", errors="coerce")
    scheduled = pd.to_datetime(raw["Scheduled Delivery Date"], format="%d-%b-%y", errors="coerce")
    delivered = pd.to_datetime(raw["Delivered to Client Date"], format="%d-%b-%y", errors="coerce")
    receipts = pd.DataFrame(
        {
            "supplier_id": raw["Vendor"],
            "order_date": order,
            "received_date": delivered,
            "promised_lead_time_days": (scheduled - order).dt.days,
        }
    ).dropna()
    return receipts[(receipts["received_date"] >= receipts["order_date"]) & (receipts["promised_lead_time_days"] >= 0)]


def test_real_purchase_orders_parse_into_plausible_lead_times(scms_receipts):
    assert len(scms_receipts) > 4000  # about 45% of the 10,324 lines have a real PO date
    stats = supplier_lead_time_stats(scms_receipts, "2015-12-31", lookback_days=None)
    assert list(stats.columns) == STATS_COLUMNS
    assert stats["n"].sum() == len(scms_receipts)
    big = stats[stats["n"] >= 100]
    assert len(big) >= 5
    # International pharma shipments: weeks to months, not days or years.
    assert big["mean_lead_time"].between(20, 250).all()
    assert big["late_rate"].between(0, 1).all() and big["std_lead_time"].gt(0).all()


def test_real_purchase_orders_drift_is_flagged_with_evidence(scms_receipts):
    drift = detect_lead_time_drift(scms_receipts, as_of="2012-12-31", recent_days=180)
    assert list(drift.columns) == DRIFT_COLUMNS
    assert "Trinity Biotech, Plc" in set(drift["supplier_id"])
    assert (drift["recent_mean_lead_time"] > drift["baseline_mean_lead_time"]).all()
    assert (drift["p_value"] < 0.05).all() and drift["n_recent"].ge(3).all()
    trinity = drift.set_index("supplier_id").loc["Trinity Biotech, Plc"]
    assert trinity["severity"] == "high"  # ~141 vs ~94 days: a 50% slowdown
