"""Connections to the ERP staging database and its versioned migrations.

Migrations form an Alembic environment in ``migrations/`` (revisions in ``migrations/versions/``,
version table ``ops.alembic_version``). :func:`migrate` runs ``alembic upgrade head`` on the caller's
connection under an advisory lock, so every entry point (the Makefile, the DAG's first task, the
tests) can call it safely and concurrently. A database migrated before Alembic (recorded in
``ops.schema_migrations``) is adopted by stamping the revisions it already has, never by re-running them.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import psycopg

log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
VERSION_TABLE_SCHEMA = "ops"
DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/shelfwise_erp"
# Serialises concurrent migrators (two tasks starting together) on one database.
_MIGRATION_LOCK = 4242_0001
# Versions of the pre-Alembic ``ops.schema_migrations`` table and the revision each one equals.
_LEGACY_REVISIONS = {1: "0001"}


def erp_url() -> str:
    """The ERP staging database URL: ``ERP_STAGING_URL``, else the Airflow connection env, else local."""
    url = os.environ.get("ERP_STAGING_URL") or os.environ.get("AIRFLOW_CONN_ERP_STAGING") or DEFAULT_URL
    return url.replace("postgres://", "postgresql://", 1)


def connect(url: str | None = None, **kwargs) -> psycopg.Connection:
    """Open a psycopg connection (autocommit off: callers own their transactions)."""
    return psycopg.connect(url or erp_url(), **kwargs)


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
