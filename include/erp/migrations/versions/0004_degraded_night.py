"""Degraded nights: a contract run recorded as substituted (with the date that stood in), the KPI history.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

from pathlib import Path

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

# Owner and the read grants of every table come from 0003's re-runnable SQL (run again below, as its
# header asks of a revision that creates objects); it revokes what it does not grant itself, so the
# application's write grants on the new table follow it, and a later revision that runs it again runs
# these again too.
INTEGRITY_SQL = Path(__file__).with_name("0003_integrity.sql")
GRANTS = """
GRANT INSERT ON ops.kpi_history TO shelfwise_app;
GRANT UPDATE (kpis, degraded, stale_sources, recorded_at) ON ops.kpi_history TO shelfwise_app;
"""


def upgrade() -> None:
    op.execute("ALTER TABLE ops.contract_runs ADD COLUMN IF NOT EXISTS substituted_from date")
    op.execute("ALTER TABLE ops.contract_runs DROP CONSTRAINT IF EXISTS contract_runs_outcome_check")
    op.execute("ALTER TABLE ops.contract_runs ADD CONSTRAINT contract_runs_outcome_check"
               " CHECK (outcome IN ('passed', 'warned', 'blocked', 'substituted'))")
    op.execute(
        """
        CREATE TABLE IF NOT EXISTS ops.kpi_history (
            id             bigserial   PRIMARY KEY,
            dag_id         text        NOT NULL,
            ds             date        NOT NULL,
            kpis           jsonb       NOT NULL,
            degraded       boolean     NOT NULL DEFAULT false,
            stale_sources  jsonb       NOT NULL DEFAULT '{}'::jsonb,
            recorded_at    timestamptz NOT NULL DEFAULT now(),
            UNIQUE (dag_id, ds)
        )
        """
    )
    # Several statements and dollar-quoted bodies: one simple-query batch inside Alembic's transaction.
    op.get_bind().connection.driver_connection.execute(INTEGRITY_SQL.read_text(encoding="utf-8") + GRANTS)


def downgrade() -> None:
    raise NotImplementedError("ERP staging migrations are forward-only: restore from a backup instead")
