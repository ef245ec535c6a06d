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
