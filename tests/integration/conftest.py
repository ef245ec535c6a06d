"""Integration tests run against the prepared test environment (PostgreSQL, Airflow's metadata DB)."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session", autouse=True)
def _environment(prepared_environment) -> None:
    """Prepare (or, under ``make test``, reuse) the environment before any fixture of these tests runs."""
