"""Integration tests run against the prepared test environment (PostgreSQL, Airflow's metadata DB)."""

from __future__ import annotations

import sys
import uuid
from pathlib import Path

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


@pytest.fixture(scope="session")
def approvals_client():
    """``approvals_client(username, airflow_role)``: a test client of the approvals plugin's app (on the test
    database) with Airflow's login answered as that user."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "plugins"))
    import shelfwise_approvals
    import shelfwise_web
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser
    from fastapi.testclient import TestClient

    def client(username: str, role: str) -> TestClient:
        app = shelfwise_approvals.create_app()
        app.dependency_overrides[shelfwise_web.current_user] = lambda: SimpleAuthManagerUser(username=username,
                                                                                           role=role)
        return TestClient(app)

    return client
