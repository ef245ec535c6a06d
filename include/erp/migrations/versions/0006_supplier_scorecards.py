"""Supplier scorecards per week (per supplier, and per supplier and SKU), for the supplier_scorecards workflow.

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

from pathlib import Path

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

SQL = Path(__file__).with_name("0006_supplier_scorecards.sql")


def upgrade() -> None:
    # Several statements: one simple-query batch inside Alembic's transaction.
    op.get_bind().connection.driver_connection.execute(SQL.read_text(encoding="utf-8"))


def downgrade() -> None:
    raise NotImplementedError("ERP staging migrations are forward-only: restore from a backup instead")
