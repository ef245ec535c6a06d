"""Reads behind the executive dashboard: the KPI history of the nights and what became of their staged lines.

Both are read-only and take a psycopg connection to the ERP staging database (``include.erp.db.connect``);
the nightly writes ``ops.kpi_history`` with :func:`include.erp.staging.record_kpis`.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

#: ``ops.kpi_history`` has one row per DAG and night; the newest ``nights`` of the period, newest first.
_HISTORY_SQL = (
    "SELECT ds, kpis, degraded, stale_sources FROM ops.kpi_history WHERE dag_id = %(dag_id)s"
    " AND (%(since)s::date IS NULL OR ds >= %(since)s) AND (%(until)s::date IS NULL OR ds <= %(until)s)"
    " ORDER BY ds DESC LIMIT %(nights)s"
)
#: A line the ERP received (``released``) was approved first: by someone, or by the policy when nobody
#: decided it (``decided_by`` is NULL), so it counts as approved and, then, as auto-approved.
_OUTCOMES_SQL = (
    "SELECT ds, count(*) FILTER (WHERE status IN ('approved', 'auto_approved', 'released')),"
    " count(*) FILTER (WHERE status = 'auto_approved' OR (status = 'released' AND decided_by IS NULL)),"
    " count(*) FILTER (WHERE status = 'rejected'), count(*) FILTER (WHERE status = 'expired'),"
    " count(*) FILTER (WHERE status = 'pending_approval'), count(*) FILTER (WHERE status = 'released'),"
    " coalesce(sum(value) FILTER (WHERE status = 'released'), 0) FROM erp_staging.all_lines"
    " WHERE ds BETWEEN %(since)s AND %(until)s AND (%(dag_id)s::text IS NULL OR dag_id = %(dag_id)s)"
    " GROUP BY ds ORDER BY ds"
)
#: The columns of :func:`line_outcomes`' rows.
OUTCOME_COLUMNS = ("ds", "approved", "auto_approved", "rejected", "expired", "pending", "released", "value_released")


def kpi_history(conn: Any, *, dag_id: str, since: dt.date | None = None, until: dt.date | None = None,
                nights: int = 366) -> list[tuple[Any, ...]]:
    """The newest ``nights`` nights of ``dag_id``'s KPI history between ``since`` and ``until`` (inclusive).

    Args:
        conn: a psycopg connection to the ERP staging database.
        dag_id: the DAG whose nights are read (``retail_nightly``).
        since: the first night, or None for no bound.
        until: the last night, or None for no bound.
        nights: at most this many nights, the newest.

    Returns:
        ``(ds, kpis, degraded, stale_sources)`` per night, **newest first**.
    """
    return conn.execute(_HISTORY_SQL, {"dag_id": dag_id, "since": since, "until": until, "nights": nights}).fetchall()


def line_outcomes(conn: Any, since: dt.date, until: dt.date, *, dag_id: str | None = None) -> list[tuple[Any, ...]]:
    """What became of the lines staged for each night between ``since`` and ``until``: all workflows, or one.

    Args:
        conn: a psycopg connection to the ERP staging database.
        since: the first night.
        until: the last night (inclusive).
        dag_id: only this DAG's lines; None for every workflow's.

    Returns:
        One row per night with staged lines, oldest first, of :data:`OUTCOME_COLUMNS`: counts of lines approved
        (auto-approved and released included), of those auto-approved, rejected, expired, still pending and
        released, and the value released.
    """
    return conn.execute(_OUTCOMES_SQL, {"since": since, "until": until, "dag_id": dag_id}).fetchall()
