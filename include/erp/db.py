"""Connections to the ERP staging database and its versioned migrations.

Migrations form an Alembic environment in ``migrations/`` (revisions in ``migrations/versions/``,
version table ``ops.alembic_version``). :func:`migrate` runs ``alembic upgrade head`` on the caller's
connection under an advisory lock, so every entry point (the Makefile, the DAG's first task, the
tests) can call it safely and concurrently. A database migrated before Alembic (recorded in
``ops.schema_migrations``) is adopted by stamping the revisions it already has, never by re-running them.
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

import psycopg

log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
VERSION_TABLE_SCHEMA = "ops"
# Serialises concurrent migrators (two tasks starting together) on one database.
_MIGRATION_LOCK = 4242_0001
# Versions of the pre-Alembic ``ops.schema_migrations`` table and the revision each one equals.
_LEGACY_REVISIONS = {1: "0001"}


class ErpConnectionError(RuntimeError):
    """The ERP staging database is not configured, or cannot be reached; the message says what to fix."""


#: The Airflow connection that names the ERP staging database.
CONN_ID = "erp_staging"
#: The same, for commands run outside Airflow.
URL_ENV = "ERP_STAGING_URL"
#: Seconds a connection attempt may take before it fails with a clear error instead of hanging.
CONNECT_TIMEOUT_S = 10


def _not_found(exc: Exception) -> bool:
    return type(exc).__name__ in ("AirflowNotFoundException", "ConnectionNotFound")


def _env_connection(conn_id: str) -> Any:
    """The Airflow connection ``conn_id`` as defined in the environment (``AIRFLOW_CONN_<ID>``), or None."""
    raw = os.environ.get(f"AIRFLOW_CONN_{conn_id.upper()}")
    if not raw:
        return None
    if raw.lstrip().startswith("{"):
        spec = json.loads(raw)
        auth = spec.get("login") or ""
        if spec.get("password"):
            auth += f":{quote(str(spec['password']), safe='')}"
        netloc = (f"{auth}@" if auth else "") + str(spec.get("host") or "") + (
            f":{spec['port']}" if spec.get("port") else "")
        return _UrlConnection(str(spec.get("conn_type") or ""), f"postgresql://{netloc}/{spec.get('schema') or ''}")
    return _UrlConnection(raw.split("://", 1)[0] if "://" in raw else "", raw)


class _UrlConnection:
    """The two things Shelfwise reads of an Airflow connection: its type and its URI."""

    def __init__(self, conn_type: str, uri: str) -> None:
        self.conn_type = conn_type
        self._uri = uri

    def get_uri(self) -> str:
        return self._uri


def resolve_erp_url(conn_id: str = CONN_ID, *, lookup: Callable[[str], Any] | None = None) -> str:
    """The ERP staging database URL, the same way for the DAGs, the plugin and the command line.

    1. The Airflow connection ``conn_id`` (``erp_staging``): through ``lookup`` (the hook passes its
       ``get_connection``, the plugin Airflow's secrets backends), else from ``AIRFLOW_CONN_ERP_STAGING``.
    2. Else ``ERP_STAGING_URL``.
    3. Else nothing: an error. There is no silent default database.

    Raises:
        ErpConnectionError: naming the connection or variable and what to fix, when neither is defined, the
            connection is not a PostgreSQL one, or its URL names no database.
    """
    try:
        conn = lookup(conn_id) if lookup is not None else _env_connection(conn_id)
    except Exception as exc:  # noqa: BLE001 - a broken definition is reported with its name, not swallowed
        if not _not_found(exc):
            raise ErpConnectionError(f"Airflow connection {conn_id!r} cannot be read: {exc}. Fix the connection "
                                 f"(Admin > Connections, or AIRFLOW_CONN_{conn_id.upper()})") from exc
        conn = None
    if conn is not None:
        source = f"Airflow connection {conn_id!r}"
        if str(conn.conn_type).lower() not in ("postgres", "postgresql"):
            raise ErpConnectionError(f"{source} is of type {conn.conn_type!r}: Shelfwise needs a postgres connection "
                                 "to the ERP staging database")
        return _checked(conn.get_uri(), source)
    if os.environ.get(URL_ENV):
        return _checked(os.environ[URL_ENV], URL_ENV)
    raise ErpConnectionError(f"no ERP staging database is configured: define the Airflow connection {conn_id!r} "
                         f"(AIRFLOW_CONN_{conn_id.upper()}=postgresql://user@host:5432/dbname) or set {URL_ENV}")


def _checked(url: str, source: str) -> str:
    url = url.replace("postgres://", "postgresql://", 1)
    try:
        info = psycopg.conninfo.conninfo_to_dict(url)
    except psycopg.ProgrammingError as exc:
        raise ErpConnectionError(f"{source} is not a valid PostgreSQL URL ({redact(url)}): {exc}") from exc
    if not info.get("dbname"):
        raise ErpConnectionError(f"{source} names no database ({redact(url)}): add /<dbname> to its URL")
    return url


def redact(url: str) -> str:
    """``url`` with its password masked, for messages and logs."""
    return re.sub(r"://([^:@/]+):[^@/]+@", r"://\1:***@", url)


def connect(url: str | None = None, **kwargs) -> psycopg.Connection:
    """Open a psycopg connection (autocommit off: callers own their transactions).

    Args:
        url: the database; :func:`resolve_erp_url` when omitted.
        **kwargs: psycopg connection arguments; ``connect_timeout`` defaults to :data:`CONNECT_TIMEOUT_S`.

    Raises:
        ErpConnectionError: when the database cannot be reached, naming it (password masked) and where its
            URL came from.
    """
    url = url or resolve_erp_url()
    kwargs.setdefault("connect_timeout", CONNECT_TIMEOUT_S)
    try:
        return psycopg.connect(url, **kwargs)
    except psycopg.OperationalError as exc:
        raise ErpConnectionError(f"cannot connect to the ERP staging database {redact(url)}: "
                             f"{str(exc).strip()}. Check the Airflow connection {CONN_ID!r} (or {URL_ENV})") from exc


def alembic_config():
    """The Alembic configuration of the ERP staging migrations (no ini file needed)."""
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    return cfg


def migrate(conn: psycopg.Connection) -> list[str]:
    """Bring the ERP staging schema to the latest revision (``alembic upgrade head``).

    Runs in one transaction on ``conn`` under an advisory lock; idempotent.

    Args:
        conn: an open psycopg connection to the ERP staging database, not inside a transaction.

    Returns:
        Names of the revisions applied by this call (``0001_erp_staging`` ...), oldest first.
    """
    from alembic import command
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory
    from sqlalchemy import create_engine, text
    from sqlalchemy.pool import StaticPool

    cfg = alembic_config()
    script = ScriptDirectory.from_config(cfg)
    # SQLAlchemy drives the caller's own psycopg connection: same session, same advisory lock.
    engine = create_engine("postgresql+psycopg://", creator=lambda: conn, poolclass=StaticPool,
                           use_native_hstore=False)
    was_autocommit = conn.autocommit
    conn.autocommit = False
    try:
        with engine.connect() as sa_conn, sa_conn.begin():
            sa_conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK})
            sa_conn.execute(text(f"CREATE SCHEMA IF NOT EXISTS {VERSION_TABLE_SCHEMA}"))
            context = MigrationContext.configure(sa_conn, opts={"version_table_schema": VERSION_TABLE_SCHEMA})
            before = context.get_current_heads()
            if not before:
                adopted = _legacy_revision(sa_conn)
                if adopted:
                    context.stamp(script, adopted)
                    log.info("adopted pre-Alembic ERP staging schema at revision %s", adopted)
                    before = context.get_current_heads()
            cfg.attributes["connection"] = sa_conn
            command.upgrade(cfg, "head")
            after = context.get_current_heads()
    finally:
        conn.autocommit = was_autocommit
    applied = _revisions_between(script, before, after)
    if applied:
        log.info("applied ERP staging migrations: %s", ", ".join(applied))
    return applied


def _legacy_revision(sa_conn) -> str | None:
    """The revision a database migrated by the former numbered-SQL runner is at, if any."""
    from sqlalchemy import text

    exists = sa_conn.execute(text("SELECT to_regclass('ops.schema_migrations')")).scalar()
    if not exists:
        return None
    latest = sa_conn.execute(text("SELECT max(version) FROM ops.schema_migrations")).scalar()
    if latest is None:
        return None
    if latest not in _LEGACY_REVISIONS:
        raise RuntimeError(f"ops.schema_migrations is at version {latest}, which has no Alembic revision "
                           f"(known: {sorted(_LEGACY_REVISIONS)})")
    return _LEGACY_REVISIONS[latest]


def _revisions_between(script, before: tuple[str, ...], after: tuple[str, ...]) -> list[str]:
    if set(before) == set(after):
        return []
    lower = before[0] if before else "base"
    revs = [r for head in after for r in script.iterate_revisions(head, lower)]
    return [Path(r.path).stem for r in reversed(revs)]


def ensure_database(url: str) -> None:
    """Create the database named in ``url`` when the server does not have it yet."""
    info = psycopg.conninfo.conninfo_to_dict(url)
    name = info.get("dbname")
    if not name:
        raise ValueError(f"ERP staging URL names no database: {url!r}")
    admin = dict(info, dbname="postgres")
    with psycopg.connect(psycopg.conninfo.make_conninfo(**admin), autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        if not exists:
            conn.execute(f'CREATE DATABASE "{name}"')
            log.info("created database %s", name)
