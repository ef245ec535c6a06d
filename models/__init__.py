"""Forecasting and anomaly models: no Airflow, no ERP."""
