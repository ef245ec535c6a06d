"""The anomalies of a night, each detector on its own evidence: demand against its one-step forecast,
supplier lead-time drift, margin leakage and return-rate spikes.

They are written beside the report, and the decisions read the demand anomalies (a line that involves
one is tiered up).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pandas as pd

#: Days of sales and returns the margin and return detectors look back over.
MARGIN_WINDOW_DAYS = 118


def detect_anomalies(received: pd.DataFrame, sales: pd.DataFrame, returns: pd.DataFrame, items: pd.DataFrame,
                     day: dt.date) -> dict[str, pd.DataFrame]:
    """The night's anomalies beyond demand (demand anomalies are scored by each forecast shard), by the
    name of the report partition each belongs in.

    Args:
        received: received PO lines of the past year (``models.anomaly.supplier.received_po_lines``).
        sales: sales per channel x SKU x day of the last :data:`MARGIN_WINDOW_DAYS` days
            (``include.finance.sales.daily_sales``).
        returns: curated returns of those days.
        items: curated item master.
        day: the run's logical date.

    Returns:
        ``supplier_anomalies``, ``margin_anomalies``, ``return_anomalies``.
    """
    from include.finance.sales import margin_and_return_anomalies
    from models.anomaly import detect_lead_time_drift

    margin, return_spikes = margin_and_return_anomalies(sales, returns, items, day)
    return {"supplier_anomalies": detect_lead_time_drift(received, as_of=day) if len(received) else pd.DataFrame(),
            "margin_anomalies": margin, "return_anomalies": return_spikes}


def anomaly_summary(found: dict[str, pd.DataFrame]) -> dict[str, Any]:
    """Counts per detector, and demand anomalies by type."""
    demand = found["demand_anomalies"]
    return {**{name: int(len(frame)) for name, frame in found.items()},
            "by_type": demand["anomaly_type"].value_counts().to_dict() if len(demand) else {}}
