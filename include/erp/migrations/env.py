"""Alembic environment of the ERP staging database.

Runs only online, on the connection :func:`include.erp.db.migrate` hands over in
``config.attributes["connection"]``; the version table lives in schema ``ops``.
"""

from __future__ import annotations

from alembic import context

VERSION_TABLE_SCHEMA = "ops"


def run_migrations_online() -> None:
    connection = context.config.attributes.get("connection")
    if connection is None:
        raise RuntimeError("ERP staging migrations run through include.erp.db.migrate(conn), "
                           "which passes the connection in config.attributes['connection']")
    context.configure(connection=connection, target_metadata=None,
                      version_table_schema=VERSION_TABLE_SCHEMA, transactional_ddl=True)
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    raise RuntimeError("ERP staging migrations run online only")
run_migrations_online()
