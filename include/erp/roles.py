"""The ERP staging database's roles: who migrates, who the application is, who the ERP reads as.

Revision ``0003`` creates three cluster roles (see its SQL for their privileges):

* ``shelfwise_owner`` (no login) owns schemas ``erp_staging`` and ``ops``; the migrator acts through it.
* ``shelfwise_app`` is the application: the DAGs, the plugin and the command line (connection
  ``erp_staging``, ``ERP_STAGING_URL``).
* ``shelfwise_erp_reader`` reads ``erp_staging.released_lines`` and nothing else.

The migrator's URL is the Airflow connection ``erp_staging_owner`` (``AIRFLOW_CONN_ERP_STAGING_OWNER``) or
``ERP_STAGING_OWNER_URL``; the application's and the reader's URLs are derived from it
(:func:`app_url`, :func:`reader_url`). Login passwords come from ``SHELFWISE_APP_DB_PASSWORD`` and
``SHELFWISE_READER_DB_PASSWORD`` and are set by :func:`provision_roles`; there is no default password.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from typing import Any
from urllib.parse import quote, urlencode

import psycopg
from psycopg import sql

from include.erp import db

log = logging.getLogger(__name__)

OWNER_ROLE = "shelfwise_owner"
APP_ROLE = "shelfwise_app"
READER_ROLE = "shelfwise_erp_reader"
#: The Airflow connection of the migrator (the owner's member, or a superuser).
OWNER_CONN_ID = "erp_staging_owner"
#: The same, for commands run outside Airflow.
OWNER_URL_ENV = "ERP_STAGING_OWNER_URL"
APP_PASSWORD_ENV = "SHELFWISE_APP_DB_PASSWORD"
READER_PASSWORD_ENV = "SHELFWISE_READER_DB_PASSWORD"
MIGRATE_COMMAND = "python -m include.erp migrate"


class SchemaNotAtHead(RuntimeError):
    """The ERP staging schema is older than the code; the message names the command that migrates it."""


def _role_url(owner_url: str, role: str, password: str | None) -> str:
    info = {k: v for k, v in psycopg.conninfo.conninfo_to_dict(owner_url).items() if v not in (None, "")}
    info.pop("user", None)
    info.pop("password", None)
    dbname = info.pop("dbname", None)
    if not dbname:
        raise db.ErpConnectionError(f"the owner URL names no database ({db.redact(owner_url)}): add /<dbname>")
    host, port = info.pop("host", ""), info.pop("port", "")
    auth = quote(role, safe="") + (f":{quote(password, safe='')}" if password else "")
    if host.startswith("/") or "," in host:
        # A socket directory (or several hosts) travels as parameters, as libpq reads them.
        info.update({"host": host, **({"port": port} if port else {})})
        netloc = f"{auth}@"
    else:
        netloc = f"{auth}@{host or 'localhost'}" + (f":{port}" if port else "")
    query = urlencode(info)
    return f"postgresql://{netloc}/{quote(dbname, safe='')}" + (f"?{query}" if query else "")


def app_url(owner_url: str, password: str | None = None) -> str:
    """The application's URL: the owner's server and database, as ``shelfwise_app``.

    Args:
        owner_url: the migrator's URL.
        password: the application's password; none (trust, peer or certificate authentication) when omitted.
    """
    return _role_url(owner_url, APP_ROLE, password)


def reader_url(owner_url: str, password: str | None = None) -> str:
    """The ERP reader's URL: the owner's server and database, as ``shelfwise_erp_reader``."""
    return _role_url(owner_url, READER_ROLE, password)


def resolve_owner_url(*, lookup: Callable[[str], Any] | None = None) -> str | None:
    """The migrator's URL, or None when no owner connection is configured.

    1. The Airflow connection ``erp_staging_owner``: through ``lookup`` (Airflow's ``get_connection``),
       else from ``AIRFLOW_CONN_ERP_STAGING_OWNER``.
    2. Else ``ERP_STAGING_OWNER_URL``.

    Raises:
        include.erp.db.ErpConnectionError: the connection exists but is unreadable, not PostgreSQL or
            names no database.
    """
    try:
        conn = lookup(OWNER_CONN_ID) if lookup is not None else db._env_connection(OWNER_CONN_ID)
    except Exception as exc:  # noqa: BLE001 - a broken definition is reported with its name
        if not db._not_found(exc):
            raise db.ErpConnectionError(f"Airflow connection {OWNER_CONN_ID!r} cannot be read: {exc}") from exc
        conn = None
    if conn is not None:
        source = f"Airflow connection {OWNER_CONN_ID!r}"
        if str(conn.conn_type).lower() not in ("postgres", "postgresql"):
            raise db.ErpConnectionError(f"{source} is of type {conn.conn_type!r}: the ERP staging migrator "
                                        "needs a postgres connection")
        return db._checked(conn.get_uri(), source)
    if os.environ.get(OWNER_URL_ENV):
        return db._checked(os.environ[OWNER_URL_ENV], OWNER_URL_ENV)
    return None


def provision_roles(conn: psycopg.Connection, *, app_password: str | None = None,
                    reader_password: str | None = None) -> list[str]:
    """Give the login roles their passwords (when given); run as the migrator after :func:`db.migrate`.

    A role whose password is not given keeps the one it has (or none, for servers that authenticate
    otherwise). Passwords are sent as literals of ``ALTER ROLE``: keep ``log_statement`` off ``ddl``/``all``
    on the migrator's sessions.

    Args:
        conn: the migrator's connection.
        app_password: password of ``shelfwise_app``.
        reader_password: password of ``shelfwise_erp_reader``.

    Returns:
        The roles whose password was set.

    Raises:
        SchemaNotAtHead: the roles do not exist yet (the database was never migrated to ``0003``).
    """
    wanted = {APP_ROLE: app_password, READER_ROLE: reader_password}
    done = []
    with conn.transaction():
        missing = [r for r in (OWNER_ROLE, *wanted) if conn.execute(
            "SELECT 1 FROM pg_roles WHERE rolname = %s", (r,)).fetchone() is None]
        if missing:
            raise SchemaNotAtHead(f"roles {', '.join(missing)} do not exist: migrate first ({MIGRATE_COMMAND})")
        for role, password in wanted.items():
            if password:
                conn.execute(sql.SQL("ALTER ROLE {} WITH LOGIN PASSWORD {}").format(
                    sql.Identifier(role), sql.Literal(password)))
                done.append(role)
    if done:
        log.info("set the login passwords of %s", ", ".join(done))
    return done


def provision_from_environment(conn: psycopg.Connection) -> list[str]:
    """:func:`provision_roles` with the passwords of ``SHELFWISE_APP_DB_PASSWORD`` and ``..._READER_...``."""
    return provision_roles(conn, app_password=os.environ.get(APP_PASSWORD_ENV) or None,
                           reader_password=os.environ.get(READER_PASSWORD_ENV) or None)


def head_revision() -> str:
    """The newest migration revision of the code."""
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(db.alembic_config()).get_current_head()


def require_head(conn: psycopg.Connection) -> str:
    """Check, without changing anything, that the schema is at the code's revision.

    For a connection that may not migrate (the application's): the nightly calls this when no owner
    connection is configured.

    Returns:
        The revision.

    Raises:
        SchemaNotAtHead: naming the revision found, the one needed and the command that migrates.
    """
    head = head_revision()
    try:
        with conn.transaction():
            rows = conn.execute("SELECT version_num FROM ops.alembic_version").fetchall()
    except (psycopg.errors.UndefinedTable, psycopg.errors.InvalidSchemaName,
            psycopg.errors.InsufficientPrivilege) as exc:
        raise SchemaNotAtHead(_behind_message("not migrated (or not readable by this role)", head)) from exc
    found = sorted(r[0] for r in rows)
    if found != [head]:
        raise SchemaNotAtHead(_behind_message(f"at revision {', '.join(found) or 'none'}", head))
    return head


def _behind_message(state: str, head: str) -> str:
    return (f"the ERP staging schema is {state}; this code needs revision {head}. Migrate it as the owner: "
            f"{MIGRATE_COMMAND} with {OWNER_URL_ENV} set, or define the Airflow connection {OWNER_CONN_ID!r} "
            "so that the nightly's prepare_erp_staging migrates it")
