"""Anomaly detection: demand against its forecast, supplier lead-time drift."""

from models.anomaly.demand import detect_demand_anomalies
from models.anomaly.supplier import detect_lead_time_drift, supplier_lead_time_stats

__all__ = ["detect_demand_anomalies", "detect_lead_time_drift", "supplier_lead_time_stats"]
