"""Least-privilege roles, line immutability in the database, the audited reversal path, the ERP's view.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

from pathlib import Path

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

# The SQL file is the source of truth and is re-runnable: a later revision that creates objects in
# erp_staging or ops runs it again, so they get the owner and the grants of the others.
SQL = Path(__file__).with_name("0003_integrity.sql")


def upgrade() -> None:
    # Several statements and dollar-quoted bodies: sent unparameterised as one simple-query batch, inside
    # Alembic's transaction (as 0001 does).
    op.get_bind().connection.driver_connection.execute(SQL.read_text(encoding="utf-8"))


def downgrade() -> None:
    raise NotImplementedError("ERP staging migrations are forward-only: restore from a backup instead")
