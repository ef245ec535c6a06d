"""Source overrides: a pending line approved from another supplier or DC keeps the proposed source beside it.

Revision ID: 0010
Revises: 0009
"""

from __future__ import annotations

from pathlib import Path

from alembic import op

from include.erp.line_tables import views_sql

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

SQL = Path(__file__).with_name("0010_override_source.sql")


def upgrade() -> None:
    # The column, its grant and the status trigger that lets an override set the source; then the views over
    # every table again (``all_lines`` selects ``*``, so it picks the new columns up).
    driver = op.get_bind().connection.driver_connection
    driver.execute(SQL.read_text(encoding="utf-8"))
    driver.execute(views_sql("finance_review"))  # the last document type at this revision


def downgrade() -> None:
    raise NotImplementedError("ERP staging migrations are forward-only: restore from a backup instead")
