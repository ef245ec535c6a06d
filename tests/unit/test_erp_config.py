"""The ERP staging database resolves in one place, loudly: no silent default, errors that say what to fix;
every connection carries connect, statement, lock and idle timeouts, and a timeout that fires says which."""

from __future__ import annotations

import psycopg
import pytest

from include.erp import db

MISSING = ("no ERP staging database is configured: define the Airflow connection 'erp_staging' "
           "(AIRFLOW_CONN_ERP_STAGING=postgresql://user@host:5432/dbname) or set ERP_STAGING_URL")


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch):
    monkeypatch.delenv("ERP_STAGING_URL", raising=False)
    monkeypatch.delenv("AIRFLOW_CONN_ERP_STAGING", raising=False)
    for limit in db.LIMITS:
        monkeypatch.delenv(limit.env, raising=False)
    monkeypatch.delenv(db.MIGRATION_TIMEOUT_ENV, raising=False)


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


URL = "postgresql://erp:secret@db.internal:5432/erp_staging"
DEFAULT_OPTIONS = ("-c statement_timeout=300000ms -c lock_timeout=60000ms "
                   "-c idle_in_transaction_session_timeout=600000ms")


def test_every_connection_gets_the_default_timeouts_and_keepalives():
    params, limits = db.connection_settings(URL)
    assert params == {"connect_timeout": 10, "options": DEFAULT_OPTIONS, "keepalives": 1, "keepalives_idle": 30,
                      "keepalives_interval": 10, "keepalives_count": 3}
    assert limits == {"connect_timeout": 10, "statement_timeout": 300, "lock_timeout": 60,
                      "idle_in_transaction_session_timeout": 600}


def test_the_environment_sets_the_timeouts_in_seconds(monkeypatch):
    monkeypatch.setenv("SHELFWISE_DB_CONNECT_TIMEOUT_S", "2.5")
    monkeypatch.setenv("SHELFWISE_DB_STATEMENT_TIMEOUT_S", "45")
    monkeypatch.setenv("SHELFWISE_DB_LOCK_TIMEOUT_S", "0.25")
    monkeypatch.setenv("SHELFWISE_DB_IDLE_IN_TRANSACTION_TIMEOUT_S", "0")
    params, limits = db.connection_settings(URL)
    assert params["connect_timeout"] == 3  # libpq counts whole seconds
    assert params["options"] == ("-c statement_timeout=45000ms -c lock_timeout=250ms "
                                 "-c idle_in_transaction_session_timeout=0ms")
    assert limits["lock_timeout"] == 0.25 and limits["idle_in_transaction_session_timeout"] == 0


@pytest.mark.parametrize(("name", "value", "message"), [
    ("SHELFWISE_DB_STATEMENT_TIMEOUT_S", "five", "SHELFWISE_DB_STATEMENT_TIMEOUT_S sets statement_timeout: it must "
     "be a number of seconds (0 turns the limit off), got 'five'"),
    ("SHELFWISE_DB_LOCK_TIMEOUT_S", "-1", "SHELFWISE_DB_LOCK_TIMEOUT_S sets lock_timeout: it must be a number of "
     "seconds (0 turns the limit off), got '-1'"),
    ("SHELFWISE_DB_CONNECT_TIMEOUT_S", "0", "SHELFWISE_DB_CONNECT_TIMEOUT_S sets connect_timeout: it must be a "
     "number of seconds of at least 1 (0 would wait forever), got '0'"),
])
def test_a_bad_timeout_variable_names_itself(monkeypatch, name, value, message):
    monkeypatch.setenv(name, value)
    with pytest.raises(db.ErpConnectionError) as err:
        db.connection_settings(URL)
    assert str(err.value) == message


def test_the_connections_extras_override_the_environment(monkeypatch):
    monkeypatch.setenv("SHELFWISE_DB_STATEMENT_TIMEOUT_S", "45")
    monkeypatch.setenv("AIRFLOW_CONN_ERP_STAGING", '{"conn_type": "postgres", "host": "db", "login": "erp", '
                                                   '"schema": "erp_staging", "extra": {"statement_timeout_s": 900, '
                                                   '"connect_timeout": 4, "sslmode": "require"}}')
    url = db.resolve_erp_url()
    assert url == ("postgresql://erp@db/erp_staging?connect_timeout=4&sslmode=require"
                   "&options=-c%20statement_timeout%3D900000ms")
    params, limits = db.connection_settings(url)
    assert limits["statement_timeout"] == 900 and limits["connect_timeout"] == 4
    assert params["options"].endswith("-c statement_timeout=900000ms")  # after the variable's: a later -c wins


def test_extras_of_an_airflow_connection_object_and_of_a_connection_uri(monkeypatch):
    class WithExtras(_Conn):
        extra_dejson = {"options": "-c search_path=erp", "lock_timeout_s": 5, "connect_timeout": 3}

    conn = WithExtras("postgres", "postgres://erp:pw@db:5432/erp?__extra__=%7B%7D")
    assert db.resolve_erp_url(lookup=lambda cid: conn) == (
        "postgresql://erp:pw@db:5432/erp?options=-c%20search_path%3Derp%20-c%20lock_timeout%3D5000ms"
        "&connect_timeout=3")
    monkeypatch.setenv("AIRFLOW_CONN_ERP_STAGING", "postgres://erp@db/erp?lock_timeout_s=2&sslmode=disable")
    assert db.resolve_erp_url() == "postgresql://erp@db/erp?sslmode=disable&options=-c%20lock_timeout%3D2000ms"
    # A URL without timeout extras is kept exactly as it was given.
    monkeypatch.setenv("ERP_STAGING_URL", "postgresql://erp@db/erp?sslmode=require&application_name=a+b")
    assert db.resolve_erp_url(lookup=lambda cid: None) == "postgresql://erp@db/erp?sslmode=require&application_name=a+b"


def test_explicit_arguments_and_url_options_win_and_are_reported():
    url = URL + "?options=-c%20lock_timeout%3D2min%20-c%20search_path%3Derp&connect_timeout=5"
    params, limits = db.connection_settings(url, options="-c statement_timeout=1500", connect_timeout=7)
    assert params["connect_timeout"] == 7
    assert params["options"] == ("-c statement_timeout=1500ms -c lock_timeout=120000ms "
                                 "-c idle_in_transaction_session_timeout=600000ms -c lock_timeout=2min "
                                 "-c search_path=erp -c statement_timeout=1500")
    assert limits["lock_timeout"] == 120 and limits["statement_timeout"] == 1.5


@pytest.mark.parametrize(("extras", "message"), [
    ({"cursor": "dictcursor"}, "Airflow connection 'erp_staging' has the extra 'cursor', which is neither a "
     "PostgreSQL connection parameter nor one of idle_in_transaction_timeout_s, lock_timeout_s, statement_timeout_s: "
     "remove it from the connection's extras"),
    ({"lock_timeout_s": "soon"}, "the extra 'lock_timeout_s' of Airflow connection 'erp_staging' sets lock_timeout: "
     "it must be a number of seconds (0 turns the limit off), got 'soon'"),
])
def test_a_bad_extra_is_an_error_naming_the_connection(extras, message):
    class WithExtras(_Conn):
        extra_dejson = extras

    with pytest.raises(db.ErpConnectionError) as err:
        db.resolve_erp_url(lookup=lambda cid: WithExtras("postgres", "postgres://erp@db/erp"))
    assert str(err.value) == message


def test_a_timeout_option_that_is_not_a_duration_is_refused():
    with pytest.raises(db.ErpConnectionError) as err:
        db.connection_settings(URL + "?options=-c%20statement_timeout%3Dlong")
    assert str(err.value) == ("the options of the connection postgresql://erp:***@db.internal:5432/erp_staging"
                              "?options=-c%20statement_timeout%3Dlong sets statement_timeout='long', which is not "
                              "a PostgreSQL time (e.g. 30s, 500ms, 5min)")


def test_passwords_are_masked_in_the_netloc_and_the_query():
    assert db.redact("postgresql://erp:s3cr%40t@db/erp?password=x&sslmode=require") == (
        "postgresql://erp:***@db/erp?password=***&sslmode=require")


class _Target:
    erp_target = "postgresql://erp:***@db:5432/erp_staging"
    erp_timeouts = {"statement_timeout": 2.0, "lock_timeout": 0.5, "idle_in_transaction_session_timeout": 30.0}
    broken = False


@pytest.mark.parametrize(("error", "setting", "message"), [
    (psycopg.errors.QueryCanceled("canceling statement due to statement timeout"), "statement_timeout",
     "the ERP staging database postgresql://erp:***@db:5432/erp_staging cancelled a statement that ran longer than "
     "its statement_timeout (2 s): canceling statement due to statement timeout. Nothing of the open transaction "
     "was committed; if the work needs longer, raise SHELFWISE_DB_STATEMENT_TIMEOUT_S (seconds) or the Airflow "
     "connection extra 'statement_timeout_s'"),
    (psycopg.errors.LockNotAvailable("canceling statement due to lock timeout"), "lock_timeout",
     "the ERP staging database postgresql://erp:***@db:5432/erp_staging cancelled a statement that waited longer "
     "for a lock another session holds (a decision, a staging of the same date, a migration) than its lock_timeout "
     "(0.5 s): canceling statement due to lock timeout. Nothing of the open transaction was committed; if the work "
     "needs longer, raise SHELFWISE_DB_LOCK_TIMEOUT_S (seconds) or the Airflow connection extra 'lock_timeout_s'"),
    (psycopg.errors.IdleInTransactionSessionTimeout("terminating connection due to idle-in-transaction timeout"),
     "idle_in_transaction_session_timeout",
     "the ERP staging database postgresql://erp:***@db:5432/erp_staging closed a connection whose transaction "
     "stayed idle longer than its idle_in_transaction_session_timeout (30 s): terminating connection due to "
     "idle-in-transaction timeout. Nothing of the open transaction was committed; if the work needs longer, raise "
     "SHELFWISE_DB_IDLE_IN_TRANSACTION_TIMEOUT_S (seconds) or the Airflow connection extra "
     "'idle_in_transaction_timeout_s'"),
])
def test_a_timeout_that_fires_names_the_database_the_limit_and_how_to_raise_it(error, setting, message):
    clear = db.explain_error(error, _Target())
    assert isinstance(clear, db.ErpTimeoutError) and clear.setting == setting
    assert str(clear) == message


def test_a_lost_connection_says_a_retry_is_safe():
    clear = db.explain_error(psycopg.errors.AdminShutdown("terminating connection due to administrator command"),
                             _Target())
    assert type(clear) is db.ErpConnectionError
    assert str(clear) == ("lost the connection to the ERP staging database postgresql://erp:***@db:5432/erp_staging: "
                          "terminating connection due to administrator command. The server rolls back a transaction "
                          "left open; a retry is safe (staging, expiring, releasing and deciding are idempotent)")


def test_a_timeout_inside_a_migration_is_explained_through_sqlalchemys_wrapper():
    from sqlalchemy.exc import OperationalError

    wrapped = OperationalError("SELECT 1", {}, psycopg.errors.QueryCanceled("canceling statement due to "
                                                                          "statement timeout"))
    assert db.explain_error(wrapped, _Target()).setting == "statement_timeout"


@pytest.mark.parametrize("error", [
    psycopg.errors.QueryCanceled("canceling statement due to user request"),
    psycopg.errors.LockNotAvailable('could not obtain lock on row in relation "replenishment_order_lines"'),
    psycopg.errors.CheckViolation("new row violates check constraint"),
    ValueError("not a database error"),
], ids=["user-cancel", "nowait", "constraint", "other"])
def test_other_errors_are_left_as_they_are(error):
    assert db.explain_error(error, _Target()) is None


def test_explained_raises_the_clear_error_chained_to_psycopgs():
    cause = psycopg.errors.QueryCanceled("canceling statement due to statement timeout")
    with pytest.raises(db.ErpTimeoutError) as err, db.explained(_Target()):
        raise cause
    assert err.value.__cause__ is cause
    with pytest.raises(psycopg.errors.CheckViolation), db.explained(_Target()):
        raise psycopg.errors.CheckViolation("new row violates check constraint")


def test_a_bad_migration_timeout_names_its_variable(monkeypatch):
    assert db._migration_timeout_s() == db.MIGRATION_TIMEOUT_S
    monkeypatch.setenv(db.MIGRATION_TIMEOUT_ENV, "an hour")
    with pytest.raises(db.ErpConnectionError, match=r"^SHELFWISE_DB_MIGRATION_TIMEOUT_S sets statement_timeout: "
                                                    r"it must be a number of seconds"):
        db._migration_timeout_s()
