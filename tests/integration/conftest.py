"""Integration tests run against the prepared test environment (PostgreSQL, Airflow's metadata DB)."""

from __future__ import annotations

import uuid

import pytest


@pytest.fixture(scope="session", autouse=True)
def _environment(prepared_environment) -> None:
    """Prepare (or, under ``make test``, reuse) the environment before any fixture of these tests runs."""


@pytest.fixture
def dag_id(request) -> str:
    """A DAG id of its own per test (named after its module), so tests never see each other's lines or nights."""
    return f"{request.module.__name__.rsplit('.', 1)[-1]}_{uuid.uuid4().hex[:10]}"


@pytest.fixture
def conn(erp_url):
    """The application role's connection (the session's preparation migrated the database)."""
    from include.erp import db

    with db.connect(erp_url) as connection:
        yield connection
