"""Unit tests run with no server: a test that opens a PostgreSQL connection fails, saying so."""

from __future__ import annotations

import pytest

from tests.conftest import refuse_database_connections


@pytest.fixture(scope="package", autouse=True)
def _no_database():
    """For this package only (package scope): integration tests of the same session do connect."""
    with refuse_database_connections("unit"):
        yield
