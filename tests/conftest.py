"""Shared test setup: the same environment `make test` prepares, so plain `pytest` works too."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")


def _ensure_environment() -> None:
    """Set AIRFLOW_HOME, the ERP test database and friends when pytest runs without the runner."""
    if os.environ.get("SHELFWISE_TEST_ENV") == "1":
        return
    sys.path.insert(0, str(ROOT / "scripts"))
    import shelfwise  # scripts/shelfwise.py

    env = shelfwise.environment(airflow_home=ROOT / ".airflow-test", data_root=ROOT / "data" / "test" / "shelfwise",
                                erp_db="shelfwise_test")
    os.environ.update(env)
    shelfwise.prepare(env)
    os.environ["SHELFWISE_TEST_ENV"] = "1"


_ensure_environment()


@pytest.fixture(scope="session")
def erp_url() -> str:
    """URL of the real PostgreSQL test database (migrated)."""
    return os.environ["ERP_STAGING_URL"]
