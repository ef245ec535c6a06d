"""The day's returns KPIs, worked by hand: rates by channel and category, recovery, fraud prevented, waiting."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from include.reporting.returns_kpis import return_rates, returns_kpis, returns_report_lines

DAY = dt.date(2026, 11, 27)
ITEMS = pd.DataFrame({"sku": ["A", "B"], "category": ["Apparel", "Audio"]})


def test_return_rates_are_units_returned_over_units_sold_per_sales_channel_and_category():
    returned = pd.DataFrame({"sku": ["A", "A", "A", "B"], "purchase_channel": ["web", "app", "store", "store"],
                             "quantity": [2, 1, 1, 1]})
    sold = pd.DataFrame({"sku": ["A", "A", "B", "Z"], "channel": ["ecommerce", "store", "ecommerce", "store"],
                         "units": [10.0, 20.0, 4.0, 9.0]})
    rates = {(r["channel"], r["category"]): r for r in return_rates(returned, sold, ITEMS)}
    assert rates[("ecommerce", "Apparel")]["return_rate"] == 0.3  # web and app are the web shop's sales
    assert rates[("store", "Apparel")]["return_rate"] == 0.05
    assert rates[("ecommerce", "Audio")]["return_rate"] == 0.0
    assert rates[("store", "Audio")] == {"channel": "store", "category": "Audio", "returned": 1.0, "sold": 0.0,
                                         "return_rate": None}  # a return of a sale older than the window
    assert [r["return_rate"] for r in return_rates(returned, sold, ITEMS)][:2] == [0.3, 0.05]  # highest first


def test_recovery_fraud_prevented_and_days_to_disposition():
    today = pd.DataFrame({"returned_at": pd.to_datetime(["2026-11-27 09:00", "2026-11-27 18:00", "2026-11-27 12:00"]),
                          "refund_amount": [100.0, 50.0, 250.0]})
    routed = pd.DataFrame({"net_value": [80.0, 10.0, 0.0], "hold_for_review": [False, False, True]})
    k = returns_kpis(today, routed, np.array([0.1, 0.2, 0.8]), np.array([False, False, True]), DAY, [])
    assert k["recovery_rate"] == pytest.approx(90.0 / 400.0, abs=1e-4)
    assert k["fraud_losses_prevented_est"] == 200.0  # 0.8 of the held 250
    assert k["days_receipt_to_disposition"] == pytest.approx((15 + 6) / 2 / 24, abs=0.01)  # to the day's close
    assert k["held_for_review"] == 1
    lines = "\n".join(returns_report_lines({"returns": {"net_recovery": 90.0, "returns": 3, "refunds": 400.0, **k}}))
    assert "22.5% of the refunds" in lines and "fraud losses prevented (estimated) 200.00" in lines
    assert returns_report_lines({})[-1] == "returns_routing has not routed this day."


def test_the_days_returns_kpis_are_the_dashboards_returns_tiles():
    from include.reporting.dashboard import flatten_history

    today = pd.DataFrame({"returned_at": pd.to_datetime(["2026-11-27 10:00", "2026-11-27 22:00"]),
                          "refund_amount": [60.0, 40.0]})
    routed = pd.DataFrame({"net_value": [45.0, 5.0], "hold_for_review": [False, True]})
    rates = [{"channel": "ecommerce", "category": "Apparel", "returned": 3.0, "sold": 10.0, "return_rate": 0.3},
             {"channel": "store", "category": "Audio", "returned": 1.0, "sold": 0.0, "return_rate": None},
             {"channel": "store", "category": "Apparel", "returned": 1.0, "sold": 30.0, "return_rate": 0.0333}]
    k = returns_kpis(today, routed, np.array([0.1, 0.9]), np.array([False, True]), DAY, rates)
    assert k["return_rate"] == pytest.approx(5 / 40)  # every unit returned over every unit sold
    assert returns_kpis(today, routed, np.zeros(2), np.zeros(2, bool), DAY, [])["return_rate"] is None
    frame = flatten_history([(DAY, {"returns": {"net_recovery": 50.0, **k}}, False, {})])
    assert frame.loc[0, "returns.recovery_rate"] == 0.5 and frame.loc[0, "returns.return_rate"] == 0.125
    assert frame.loc[0, "returns.fraud_losses_prevented_est"] == 36.0
    assert frame.loc[0, "returns.days_receipt_to_disposition"] == pytest.approx(14 / 24, abs=0.01)
    assert "Return rate over 7 days: 12.5% of the units sold." in returns_report_lines({"returns": {
        "net_recovery": 50.0, **k}})
