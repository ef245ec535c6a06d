"""Shelfwise domain library: importable without Airflow."""
