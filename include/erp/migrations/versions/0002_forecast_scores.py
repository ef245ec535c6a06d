"""Forecast accuracy scores per night and segment, with the drift verdict.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE IF NOT EXISTS ops.forecast_scores (
            id           bigserial   PRIMARY KEY,
            dag_id       text        NOT NULL,
            ds           date        NOT NULL,
            origin       date        NOT NULL,
            segment      text        NOT NULL,
            n_series     integer     NOT NULL,
            n_points     integer     NOT NULL,
            mase         double precision,
            rmsse        double precision,
            bias         double precision,
            baseline     double precision,
            ratio        double precision,
            drift        boolean     NOT NULL DEFAULT false,
            reason       text,
            recorded_at  timestamptz NOT NULL DEFAULT now(),
            UNIQUE (dag_id, ds, segment)
        )
        """
    )


def downgrade() -> None:
    raise NotImplementedError("ERP staging migrations are forward-only: restore from a backup instead")
