"""Anomaly detection: demand against its forecast, supplier lead-time drift, margin leakage, return spikes."""

from models.anomaly.demand import detect_demand_anomalies
from models.anomaly.margin import detect_margin_leakage
from models.anomaly.returns import detect_return_spikes
from models.anomaly.supplier import detect_lead_time_drift, supplier_lead_time_stats

__all__ = [
    "detect_demand_anomalies",
    "detect_lead_time_drift",
    "detect_margin_leakage",
    "detect_return_spikes",
    "supplier_lead_time_stats",
]
