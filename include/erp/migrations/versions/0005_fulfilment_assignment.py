"""Fulfilment assignments: the interface table of order orchestration, in the views, lookups and grants.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

SQL = Path(__file__).with_name("0005_fulfilment_assignment.sql")
# Owner and read grants of every table come from 0003's re-runnable SQL, which also defines the views and
# the document-type lookup for the first three tables and revokes what it does not grant itself. So this
# revision's SQL runs before it (creating the table 0003 then owns) and again after it (the four-table
# views and lookup, the write grants), followed by 0004's grants, which 0003 revokes as well; a later
# revision that runs 0003 again runs both after it too.
INTEGRITY_SQL = Path(__file__).with_name("0003_integrity.sql")


def _grants_of_0004() -> str:
    spec = importlib.util.spec_from_file_location("_revision_0004", Path(__file__).with_name("0004_degraded_night.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.GRANTS


def upgrade() -> None:
    mine = SQL.read_text(encoding="utf-8")
    batch = mine + INTEGRITY_SQL.read_text(encoding="utf-8") + mine + _grants_of_0004()
    # Several statements and dollar-quoted bodies: one simple-query batch inside Alembic's transaction.
    op.get_bind().connection.driver_connection.execute(batch)


def downgrade() -> None:
    raise NotImplementedError("ERP staging migrations are forward-only: restore from a backup instead")
