"""Finance review items: the interface table of the finance_review workflow, in the views, lookups and grants.

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

from alembic import op

from include.erp.line_tables import add_line_table_sql

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Several statements and dollar-quoted bodies: one simple-query batch inside Alembic's transaction.
    op.get_bind().connection.driver_connection.execute(add_line_table_sql("finance_review"))


def downgrade() -> None:
    raise NotImplementedError("ERP staging migrations are forward-only: restore from a backup instead")
