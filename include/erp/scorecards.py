"""Supplier scorecards in ``ops.supplier_scorecards`` and ``ops.supplier_item_scorecards``: weekly history.

A week's cards replace what an earlier run wrote for the same week (a re-run, a late receipt), in one
transaction, so a reader never sees half a week. Metrics the tables have no column for (``weeks``,
``lines_otif``, units...) are kept in ``details``.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from typing import Any

import pandas as pd
import psycopg

__all__ = ["CARD_COLUMNS", "latest_scorecards", "record_scorecards", "scorecard_trend"]

#: The typed metric columns of both tables.
CARD_COLUMNS = ("lines_due", "lines_received", "n_receipts", "otif", "fill_rate", "lead_time_mean", "lead_time_p90",
                "lead_time_trend_days_per_week", "lead_time_cv", "price_variance", "defect_rate", "reliability")
_INTS = {"lines_due", "lines_received", "n_receipts"}
_TABLES = {"supplier": ("ops.supplier_scorecards", ("supplier_id",)),
           "item": ("ops.supplier_item_scorecards", ("supplier_id", "sku"))}


def _value(column: str, value: Any) -> Any:
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA:
        return 0 if column in _INTS else None
    return int(value) if column in _INTS else float(value)


def _details(row: dict[str, Any], keys: tuple[str, ...]) -> str:
    extra = {k: v for k, v in row.items() if k not in (*keys, *CARD_COLUMNS, "week_end")}
    clean = {k: (None if isinstance(v, float) and math.isnan(v) else v.item() if hasattr(v, "item") else v)
             for k, v in extra.items()}
    return json.dumps(clean, default=str)


def record_scorecards(conn: psycopg.Connection, suppliers: pd.DataFrame, items: pd.DataFrame, *, week_end: dt.date,
                      dag_id: str, run_id: str) -> dict[str, int]:
    """Replace the cards of ``week_end`` with these (per supplier, per supplier x SKU).

    Returns:
        Rows written per table (``supplier``, ``item``).
    """
    written = {}
    with conn.transaction():
        for kind, frame in (("supplier", suppliers), ("item", items)):
            table, keys = _TABLES[kind]
            conn.execute(f"DELETE FROM {table} WHERE week_end = %s", (week_end,))
            columns = (*keys, "week_end", *CARD_COLUMNS, "details", "dag_id", "run_id")
            rows = [(*(str(r[k]) for k in keys), week_end, *(_value(c, r.get(c)) for c in CARD_COLUMNS),
                     _details(r, keys), dag_id, run_id) for r in frame.to_dict("records")]
            if rows:
                with conn.cursor() as cur:
                    cur.executemany(f"INSERT INTO {table} ({', '.join(columns)}) VALUES"
                                    f" ({', '.join(['%s'] * len(columns))})", rows)
            written[kind] = len(rows)
    return written


def latest_scorecards(conn: psycopg.Connection, as_of: dt.date, *, kind: str = "supplier") -> pd.DataFrame:
    """Each supplier's (``kind="item"``: supplier x SKU's) newest card of a week ending on or before ``as_of``."""
    table, keys = _TABLES[kind]
    cols = (*keys, "week_end", *CARD_COLUMNS)
    rows = conn.execute(
        f"SELECT DISTINCT ON ({', '.join(keys)}) {', '.join(cols)} FROM {table} WHERE week_end <= %s"
        f" ORDER BY {', '.join(keys)}, week_end DESC", (as_of,),
    ).fetchall()
    return pd.DataFrame(rows, columns=list(cols))


def scorecard_trend(conn: psycopg.Connection, as_of: dt.date, *, weeks: int = 13) -> pd.DataFrame:
    """Every supplier's cards of the ``weeks`` weeks up to ``as_of`` (oldest first), for trends in reports."""
    rows = conn.execute(
        f"SELECT supplier_id, week_end, {', '.join(CARD_COLUMNS)} FROM ops.supplier_scorecards"
        " WHERE week_end <= %s AND week_end > %s ORDER BY supplier_id, week_end",
        (as_of, as_of - dt.timedelta(weeks=weeks)),
    ).fetchall()
    return pd.DataFrame(rows, columns=["supplier_id", "week_end", *CARD_COLUMNS])
