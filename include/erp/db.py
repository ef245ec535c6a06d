"""Connections to the ERP staging database and its versioned migrations.

Migrations are the numbered SQL files in ``migrations/``; each is applied once, in order, inside a
transaction, and recorded in ``ops.schema_migrations``. Applying them again is a no-op, so every
entry point (the Makefile, the DAG's first task, the tests) can call :func:`migrate` safely.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import psycopg

log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/shelfwise_erp"
# Serialises concurrent migrators (two tasks starting together) on one database.
_MIGRATION_LOCK = 4242_0001


def erp_url() -> str:
    """The ERP staging database URL: ``ERP_STAGING_URL``, else the Airflow connection env, else local."""
    url = os.environ.get("ERP_STAGING_URL") or os.environ.get("AIRFLOW_CONN_ERP_STAGING") or DEFAULT_URL
    return url.replace("postgres://", "postgresql://", 1)


def connect(url: str | None = None, **kwargs) -> psycopg.Connection:
    """Open a psycopg connection (autocommit off: callers own their transactions)."""
    return psycopg.connect(url or erp_url(), **kwargs)


def migrate(conn: psycopg.Connection) -> list[str]:
    """Apply pending migrations.

    Returns:
        Names of the migrations applied by this call.
    """
    applied_now: list[str] = []
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK,))
        conn.execute("CREATE SCHEMA IF NOT EXISTS ops")
        conn.execute(
            "CREATE TABLE IF NOT EXISTS ops.schema_migrations ("
            " version integer PRIMARY KEY, name text NOT NULL,"
            " applied_at timestamptz NOT NULL DEFAULT now())"
        )
        done = {row[0] for row in conn.execute("SELECT version FROM ops.schema_migrations")}
        for path in sorted(MIGRATIONS_DIR.glob("[0-9][0-9][0-9][0-9]_*.sql")):
            version = int(path.name[:4])
            if version in done:
                continue
            conn.execute(path.read_text(encoding="utf-8"))
            conn.execute(
                "INSERT INTO ops.schema_migrations (version, name) VALUES (%s, %s)", (version, path.name)
            )
            applied_now.append(path.name)
    if applied_now:
        log.info("applied ERP staging migrations: %s", ", ".join(applied_now))
    return applied_now


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
