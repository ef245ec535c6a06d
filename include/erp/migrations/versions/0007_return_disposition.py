"""Return dispositions: the interface table of returns routing, in the views, lookups and grants.

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

from pathlib import Path

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

SQL = Path(__file__).with_name("0007_return_disposition.sql")


def upgrade() -> None:
    # Several statements and dollar-quoted bodies: one simple-query batch inside Alembic's transaction. The
    # SQL sets the new objects' owner and grants itself, so 0003's re-runnable SQL need not run again.
    op.get_bind().connection.driver_connection.execute(SQL.read_text(encoding="utf-8"))


def downgrade() -> None:
    raise NotImplementedError("ERP staging migrations are forward-only: restore from a backup instead")
