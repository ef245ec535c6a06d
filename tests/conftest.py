"""Shared test setup: nothing here needs a server at import.

Unit and DAG tests run as they are. Tests that need PostgreSQL or Airflow's metadata DB use the
``prepared_environment`` fixture (autouse in ``tests/integration`` and ``tests/e2e``): it prepares the
environment ``make test`` prepares, once per session and only when asked. ``SHELFWISE_TEST_ENV=1``
means the runner (``scripts/shelfwise.py test``) already prepared it: ``os.environ`` is used as it is.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")

#: Where the test environment lives; the three variables give a checkout or an engineer one of its own
#: on a shared server (the database is created on the resolved server, never dropped).
AIRFLOW_HOME = Path(os.environ.get("SHELFWISE_TEST_AIRFLOW_HOME") or ROOT / ".airflow-test")
DATA_ROOT = Path(os.environ.get("SHELFWISE_TEST_DATA_ROOT") or ROOT / "data" / "test" / "shelfwise")
ERP_DB = os.environ.get("SHELFWISE_TEST_ERP_DB") or "shelfwise_test"

#: ``SHELFWISE_TEST_LANES=1`` (``make test`` sets it for the server tests, run on pytest-xdist workers):
#: each worker is a lane with an Airflow home, data root and ERP database of its own, named after the
#: worker (``shelfwise_test_gw0``...), so two DAG runs never share a metadata DB, a file or a staging table.
LANE = os.environ.get("PYTEST_XDIST_WORKER") if os.environ.get("SHELFWISE_TEST_LANES") == "1" else None
if LANE:
    AIRFLOW_HOME = AIRFLOW_HOME.with_name(f"{AIRFLOW_HOME.name}-{LANE}")
    DATA_ROOT = DATA_ROOT.with_name(f"{DATA_ROOT.name}-{LANE}")
    ERP_DB = f"{ERP_DB}_{LANE}"

if os.environ.get("SHELFWISE_TEST_ENV") != "1" or LANE:
    # Paths only. Airflow reads its home once, at import (collection imports it), so the home must be the
    # one the environment is prepared in; and no test may fall back to the demo's data root.
    os.environ["AIRFLOW_HOME"] = str(AIRFLOW_HOME)
    os.environ["SHELFWISE_DATA_ROOT"] = str(DATA_ROOT)


NO_DATABASE = "{suite} tests must not connect to a database: move this test to tests/integration"


@contextlib.contextmanager
def refuse_database_connections(suite: str) -> Iterator[None]:
    """Make every psycopg connection attempt fail the test that makes it (``tests/unit``, ``tests/dags``).

    Args:
        suite: the tests' folder name, for the message.
    """
    def refuse(*args, **kwargs):
        # pytest.fail, not an Exception: code that catches Exception around a connection must not hide it.
        pytest.fail(NO_DATABASE.format(suite=suite))

    import psycopg

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(psycopg, "connect", refuse)
        patch.setattr(psycopg.Connection, "connect", classmethod(refuse))
        patch.setattr(psycopg.AsyncConnection, "connect", classmethod(refuse))
        yield


def _runner():
    sys.path.insert(0, str(ROOT / "scripts"))
    import shelfwise  # scripts/shelfwise.py

    return shelfwise


def suite_environment() -> dict[str, str]:
    """Variables of the test environment; resolves the PostgreSQL server but creates nothing in it.

    Used by the runner (``scripts/shelfwise.py test``) and by :func:`prepared_environment`, so both prepare
    the same Airflow home, data root and database.
    """
    return _runner().environment(airflow_home=AIRFLOW_HOME, data_root=DATA_ROOT, erp_db=ERP_DB)


@pytest.fixture(scope="session")
def prepared_environment() -> dict[str, str]:
    """The prepared test environment: ERP test database created and migrated, Airflow's DB migrated.

    Returns:
        ``os.environ`` as the tests see it, once prepared.
    """
    if os.environ.get("SHELFWISE_TEST_ENV") != "1" or LANE:
        env = suite_environment()
        _runner().prepare(env)
        os.environ.update({**env, "SHELFWISE_TEST_ENV": "1"})
    return dict(os.environ)


@pytest.fixture(scope="session")
def erp_url(prepared_environment) -> str:
    """URL of the real PostgreSQL test database (migrated), as the application role ``shelfwise_app``."""
    return prepared_environment["ERP_STAGING_URL"]


@pytest.fixture(scope="session")
def erp_owner_url(prepared_environment) -> str:
    """URL of the same database as its migrator (the server's superuser on this machine)."""
    return prepared_environment["ERP_STAGING_OWNER_URL"]
