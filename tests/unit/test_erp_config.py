"""The ERP staging database resolves in one place, loudly: no silent default, errors that say what to fix."""

from __future__ import annotations

import pytest

from include.erp import db

MISSING = ("no ERP staging database is configured: define the Airflow connection 'erp_staging' "
           "(AIRFLOW_CONN_ERP_STAGING=postgresql://user@host:5432/dbname) or set ERP_STAGING_URL")


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch):
    monkeypatch.delenv("ERP_STAGING_URL", raising=False)
    monkeypatch.delenv("AIRFLOW_CONN_ERP_STAGING", raising=False)


class _Conn:
    def __init__(self, conn_type: str, uri: str) -> None:
        self.conn_type, self._uri = conn_type, uri

    def get_uri(self) -> str:
        return self._uri


class AirflowNotFoundException(Exception):
    """Named as Airflow's: an undefined connection."""


def test_nothing_configured_is_an_error_not_a_local_default():
    with pytest.raises(db.ErpConnectionError) as err:
        db.resolve_erp_url()
    assert str(err.value) == MISSING


def test_the_airflow_connection_wins_over_the_variable(monkeypatch):
    monkeypatch.setenv("ERP_STAGING_URL", "postgresql://other@h/other")
    monkeypatch.setenv("AIRFLOW_CONN_ERP_STAGING", "postgres://erp:pw@db.internal:5432/erp_staging")
    assert db.resolve_erp_url() == "postgresql://erp:pw@db.internal:5432/erp_staging"
    assert db.resolve_erp_url(lookup=lambda cid: _Conn("postgres", "postgres://x@y/z")) == "postgresql://x@y/z"


def test_an_undefined_connection_falls_back_to_the_variable(monkeypatch):
    monkeypatch.setenv("ERP_STAGING_URL", "postgresql://erp@h:5432/erp")

    def lookup(conn_id):
        raise AirflowNotFoundException(f"The conn_id `{conn_id}` isn't defined")

    assert db.resolve_erp_url(lookup=lookup) == "postgresql://erp@h:5432/erp"


def test_a_connection_in_json_form(monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_ERP_STAGING", '{"conn_type": "postgres", "host": "db", "login": "erp", '
                                                   '"password": "p@ss", "port": 5432, "schema": "erp_staging"}')
    assert db.resolve_erp_url() == "postgresql://erp:p%40ss@db:5432/erp_staging"


@pytest.mark.parametrize(("conn", "message"), [
    (_Conn("http", "http://erp.example/api"),
     "Airflow connection 'erp_staging' is of type 'http': Shelfwise needs a postgres connection to the ERP "
     "staging database"),
    (_Conn("postgres", "postgresql://erp:secret@db:5432"),
     "Airflow connection 'erp_staging' names no database (postgresql://erp:***@db:5432): add /<dbname> to its URL"),
])
def test_a_broken_connection_names_itself_and_the_fix(conn, message):
    with pytest.raises(db.ErpConnectionError) as err:
        db.resolve_erp_url(lookup=lambda cid: conn)
    assert str(err.value) == message


def test_an_unreadable_connection_is_reported_not_swallowed():
    def lookup(conn_id):
        raise ValueError("Invalid connection string")

    with pytest.raises(db.ErpConnectionError, match=r"^Airflow connection 'erp_staging' cannot be read: "
                                                    r"Invalid connection string\. Fix the connection"):
        db.resolve_erp_url(lookup=lookup)
