"""DAG integrity and compose tests run with no server: a test that opens a PostgreSQL connection fails."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import refuse_database_connections


@pytest.fixture(scope="package", autouse=True)
def _no_database():
    """For this package only (package scope): integration tests of the same session do connect."""
    with refuse_database_connections("DAG"):
        yield


def load_dag(dag_id: str):
    """The DAG of ``dags/<dag_id>.py``, parsed alone by Airflow's DagBag (no import error allowed)."""
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(Path(__file__).resolve().parents[2] / "dags" / f"{dag_id}.py"))
    assert bag.import_errors == {}
    return bag.dags[dag_id]
