"""ERP staging interface tables, status machine, append-only audit log, contract run record.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

from pathlib import Path

from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

# The SQL file is the source of truth; it is written to be re-runnable (IF NOT EXISTS, OR REPLACE).
SQL = Path(__file__).with_name("0001_erp_staging.sql")


def upgrade() -> None:
    # The file holds several statements, dollar-quoted bodies and format() placeholders: hand it to
    # psycopg unparameterised, which sends it as one simple-query batch inside Alembic's transaction.
    op.get_bind().connection.driver_connection.execute(SQL.read_text(encoding="utf-8"))


def downgrade() -> None:
    raise NotImplementedError("ERP staging migrations are forward-only: restore from a backup instead")
