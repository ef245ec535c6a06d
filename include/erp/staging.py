"""Stage tiered proposals into the ERP interface tables, decide them, expire them, release them.

Every function takes an open psycopg connection and runs as one transaction: a batch is staged whole
or not at all. Lines are keyed by ``dag_id|ds|doc_type|business_key``, so a re-run of the same date
updates the lines nobody has decided yet, withdraws undecided lines it no longer proposes, and never
touches a decided or released line. Every change is written to the append-only ``audit_log``.

Staging, expiring and releasing one ``(dag_id, ds)`` hold a transaction-scoped advisory lock on it
(:func:`lock_run`), so two runs of the same date take turns: each audit entry is written once per real
change and the counts are true. The application role cannot delete lines: a re-run withdraws what it no
longer proposes through ``erp_staging.withdraw_lines``, and a released line that was wrong is corrected
by a reversal line (:func:`reverse_line`), never edited.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
import psycopg
from psycopg.types.json import Jsonb

from include.erp.line_tables import TABLES, UNDECIDED

log = logging.getLogger(__name__)

SYSTEM_ACTOR = "shelfwise"
#: First key of the two-key advisory locks of one run's lines (the one-key space is the migrator's).
RUN_LOCK_CLASS = 4242_0002


class DecisionRefused(Exception):
    """A decision that cannot be applied (already decided, wrong role, unknown line)."""


class ReversalRefused(Exception):
    """A reversal the database refused (unknown line, not released, already reversed); nothing changed."""


def lock_run(conn: psycopg.Connection, dag_id: str, ds: str | dt.date) -> None:
    """Wait for, then hold until the transaction ends, the lock on the lines of ``(dag_id, ds)``."""
    conn.execute("SELECT pg_advisory_xact_lock(%s, hashtext(%s))",
                 (RUN_LOCK_CLASS, f"{dag_id}|{_as_date(ds).isoformat()}"))


def _withdraw(conn: psycopg.Connection, doc_type: str, keep: Any, run: dict[str, Any]) -> int:
    """Withdraw the run's undecided lines of ``doc_type`` not in ``keep`` (audited by the database)."""
    row = conn.execute(
        f"SELECT erp_staging.withdraw_lines(%(doc_type)s, %(dag_id)s, %(ds)s, {keep}, %(run_id)s, %(actor)s)",
        {**run, "doc_type": doc_type},
    ).fetchone()
    return int(row[0])


@dataclass
class StageResult:
    """Counts of one staging call."""

    inserted: int = 0
    updated: int = 0
    unchanged_decided: int = 0
    withdrawn: int = 0
    auto_approved: int = 0
    pending: int = 0
    superseded: bool = False
    already_staged: int = 0
    fast_lane_released: int = 0

    def as_summary(self) -> dict[str, int]:
        """The counts as a run's stage summary names them."""
        return {"inserted": self.inserted, "updated": self.updated, "kept_decided": self.unchanged_decided,
                "withdrawn": self.withdrawn, "auto_approved": self.auto_approved, "pending": self.pending,
                **({"superseded": True} if self.superseded else {}),
                **({"already_staged": self.already_staged} if self.already_staged else {}),
                **({"fast_lane_released": self.fast_lane_released} if self.fast_lane_released else {})}


def idempotency_key(dag_id: str, ds: str | dt.date, doc_type: str, business_key: str) -> str:
    """The key that makes a proposal unique across re-runs of the same date."""
    ds = ds.isoformat() if isinstance(ds, dt.date) else str(ds)[:10]
    return f"{dag_id}|{ds}|{doc_type}|{business_key}"


def _json_default(value: Any) -> Any:
    if isinstance(value, dt.date | pd.Timestamp):
        return value.isoformat()
    if hasattr(value, "tolist"):  # numpy scalars and arrays (a list read back from Parquet)
        return value.tolist()
    return str(value)


def _json_text(value: Any) -> str:
    """JSON text for a jsonb column: dates as ISO strings, numpy scalars as numbers, NaN as null."""
    try:
        return json.dumps(value, default=_json_default, allow_nan=False)
    except ValueError:
        return json.dumps(_strip_nan(value), default=_json_default)


def _jsonable(value: Any) -> Any:
    """The same value as plain JSON types, for psycopg's ``Jsonb``."""
    return json.loads(_json_text(value))


def _strip_nan(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _strip_nan(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_strip_nan(v) for v in value]
    if isinstance(value, float) and value != value:  # NaN
        return None
    return value


def audit(conn: psycopg.Connection, action: str, *, actor: str = SYSTEM_ACTOR, doc_type: str | None = None,
          key: str | None = None, from_status: str | None = None, to_status: str | None = None,
          dag_id: str | None = None, run_id: str | None = None, ds: Any = None, note: str | None = None,
          details: dict | None = None) -> None:
    """Append one entry to ``erp_staging.audit_log``."""
    conn.execute(
        "INSERT INTO erp_staging.audit_log (actor, action, doc_type, idempotency_key, from_status,"
        " to_status, dag_id, run_id, ds, note, details) VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s)",
        (actor, action, doc_type, key, from_status, to_status, dag_id, run_id, ds, note,
         Jsonb(_jsonable(details or {}))),
    )


def stage_batch_rowwise(conn: psycopg.Connection, lines: pd.DataFrame, *, dag_id: str, run_id: str,
                        ds: str | dt.date) -> StageResult:
    """Stage one run's tiered proposals line by line, in a single transaction.

    Same arguments, result and contract as :func:`stage_batch`, one statement per line; kept as the
    reference the set-based path is tested and benchmarked against.
    """
    ds_date = ds if isinstance(ds, dt.date) else dt.date.fromisoformat(str(ds)[:10])
    result = StageResult()
    records = lines.to_dict("records")
    keys_by_type: dict[str, set[str]] = {t: set() for t in TABLES}
    with conn.transaction():
        lock_run(conn, dag_id, ds_date)
        for rec in records:
            doc_type = rec["doc_type"]
            table = TABLES[doc_type]
            key = idempotency_key(dag_id, ds_date, doc_type, rec["business_key"])
            keys_by_type[doc_type].add(key)
            target = "auto_approved" if rec.get("auto_approve") else "pending_approval"
            existing = conn.execute(
                f"SELECT status FROM erp_staging.{table} WHERE idempotency_key = %s FOR UPDATE", (key,)
            ).fetchone()
            if existing and existing[0] not in UNDECIDED:
                result.unchanged_decided += 1
                continue
            params = {
                "key": key, "dag_id": dag_id, "run_id": run_id, "ds": ds_date,
                "business_key": rec["business_key"], "sku": rec["sku"],
                "from_location": _opt(rec.get("from_location")), "to_location": _opt(rec.get("to_location")),
                "supplier_id": _opt(rec.get("supplier_id")), "po_id": _opt(rec.get("po_id")),
                "po_line": _opt_int(rec.get("po_line")), "action": rec["action"],
                "quantity": float(rec["quantity"]), "unit_cost": float(rec["unit_cost"]),
                "value": float(rec["value"]), "need_by": _opt_date(rec.get("need_by")),
                "explanation": Jsonb(_jsonable(rec.get("explanation") or {})),
                "risk_tier": rec["risk_tier"], "tier_reasons": Jsonb(_jsonable(list(rec.get("tier_reasons") or []))),
            }
            if existing is None:
                conn.execute(
                    f"INSERT INTO erp_staging.{table} (idempotency_key, dag_id, run_id, ds, business_key, sku,"
                    " from_location, to_location, supplier_id, po_id, po_line, action, quantity, unit_cost,"
                    " value, need_by, explanation, risk_tier, tier_reasons, status) VALUES (%(key)s,"
                    " %(dag_id)s, %(run_id)s, %(ds)s, %(business_key)s, %(sku)s, %(from_location)s,"
                    " %(to_location)s, %(supplier_id)s, %(po_id)s, %(po_line)s, %(action)s, %(quantity)s,"
                    " %(unit_cost)s, %(value)s, %(need_by)s, %(explanation)s, %(risk_tier)s,"
                    " %(tier_reasons)s, 'proposed') ON CONFLICT (idempotency_key) DO NOTHING",
                    params,
                )
                audit(conn, "proposed", doc_type=doc_type, key=key, to_status="proposed", dag_id=dag_id,
                      run_id=run_id, ds=ds_date, details={"quantity": params["quantity"],
                                                          "value": params["value"]})
                from_status = "proposed"
                result.inserted += 1
            else:
                conn.execute(
                    f"UPDATE erp_staging.{table} SET run_id=%(run_id)s, sku=%(sku)s,"
                    " from_location=%(from_location)s, to_location=%(to_location)s,"
                    " supplier_id=%(supplier_id)s, po_id=%(po_id)s, po_line=%(po_line)s, action=%(action)s,"
                    " quantity=%(quantity)s, unit_cost=%(unit_cost)s, value=%(value)s, need_by=%(need_by)s,"
                    " explanation=%(explanation)s, risk_tier=%(risk_tier)s, tier_reasons=%(tier_reasons)s,"
                    " updated_at=now() WHERE idempotency_key=%(key)s",
                    params,
                )
                from_status = existing[0]
                result.updated += 1
            if from_status != target:
                conn.execute(f"UPDATE erp_staging.{table} SET status=%s WHERE idempotency_key=%s", (target, key))
                audit(conn, "tiered", doc_type=doc_type, key=key, from_status=from_status, to_status=target,
                      dag_id=dag_id, run_id=run_id, ds=ds_date,
                      details={"risk_tier": rec["risk_tier"], "reasons": list(rec.get("tier_reasons") or [])})
            if target == "auto_approved":
                result.auto_approved += 1
            else:
                result.pending += 1
        run = {"dag_id": dag_id, "run_id": run_id, "ds": ds_date, "actor": SYSTEM_ACTOR}
        for doc_type in TABLES:
            run["keep"] = sorted(keys_by_type[doc_type])
            result.withdrawn += _withdraw(conn, doc_type, "%(keep)s::text[]", run)
    log.info("staged %s ds=%s: %s", dag_id, ds_date, result)
    return result


_COPY_COLUMNS = ("doc_type", "idempotency_key", "business_key", "sku", "from_location", "to_location",
                 "supplier_id", "po_id", "po_line", "action", "quantity", "unit_cost", "value", "need_by",
                 "explanation", "risk_tier", "tier_reasons", "target")
_LINE_COLUMNS = ("idempotency_key", "business_key", "sku", "from_location", "to_location", "supplier_id",
                 "po_id", "po_line", "action", "quantity", "unit_cost", "value", "need_by", "explanation",
                 "risk_tier", "tier_reasons")
_UPDATABLE = [c for c in _LINE_COLUMNS if c not in ("idempotency_key", "business_key")]


_NULL = "\\N"


def _field(value: Any) -> str:
    """One free-text COPY field: NULL for missing values, backslash and control characters escaped."""
    if value is None or value is pd.NA or (isinstance(value, float) and value != value):
        return _NULL
    return (str(value).replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n")
            .replace("\r", "\\r"))


def _column(lines: pd.DataFrame, name: str) -> list:
    return lines[name].tolist() if name in lines else [None] * len(lines)


def _as_list(value: Any) -> list:
    if value is None or (isinstance(value, float) and value != value):
        return []
    return list(value)


def _copy_text(lines: pd.DataFrame, dag_id: str, ds_date: dt.date) -> tuple[str, int]:
    """The batch as COPY text-format rows of ``_stage_in``; a business key proposed twice keeps its last line.

    Conversions match :func:`stage_batch_rowwise` (``_opt``, ``_opt_int``, ``_opt_date``, ``_jsonable``).

    Returns:
        The text and the number of rows in it.
    """
    if lines.empty:
        return "", 0
    unknown = ~lines["doc_type"].isin(list(TABLES))
    if unknown.any():
        bad = lines[unknown].iloc[0]
        raise ValueError(f"unknown doc_type {bad['doc_type']!r} for business key {bad['business_key']!r} "
                         f"(known: {', '.join(TABLES)})")
    prefix = f"{dag_id}|{ds_date.isoformat()}|"
    doc_types = [str(v) for v in lines["doc_type"].tolist()]
    business_keys = [str(v) for v in lines["business_key"].tolist()]
    keys = [_field(f"{prefix}{d}|{b}") for d, b in zip(doc_types, business_keys, strict=True)]
    need_by = (pd.to_datetime(lines["need_by"]).dt.strftime("%Y-%m-%d").tolist() if "need_by" in lines
               else [None] * len(lines))
    reasons_json: dict[tuple, str] = {}

    def reasons(value: Any) -> str:
        items = tuple(_as_list(value))
        if items not in reasons_json:
            reasons_json[items] = _field(_json_text(list(items)))
        return reasons_json[items]

    auto = _column(lines, "auto_approve")
    columns = [
        doc_types, keys, [_field(v) for v in business_keys],
        [_field(v) for v in lines["sku"].tolist()],
        *([_field(v) for v in _column(lines, c)] for c in ("from_location", "to_location", "supplier_id", "po_id")),
        [_NULL if _opt(v) is None else str(int(v)) for v in _column(lines, "po_line")],
        [_field(v) for v in lines["action"].tolist()],
        *([repr(float(v)) for v in lines[c].tolist()] for c in ("quantity", "unit_cost", "value")),
        [v if isinstance(v, str) else _NULL for v in need_by],
        [_field(_json_text(v or {})) for v in _column(lines, "explanation")],
        [_field(v) for v in lines["risk_tier"].tolist()],
        [reasons(v) for v in _column(lines, "tier_reasons")],
        ["auto_approved" if a else "pending_approval" for a in auto],
    ]
    rows: dict[str, str] = {}
    for row in zip(*columns, strict=True):
        rows[row[1]] = "\t".join(row)
    return "\n".join(rows.values()) + "\n", len(rows)


def stage_batch(conn: psycopg.Connection, lines: pd.DataFrame, *, dag_id: str, run_id: str,
                ds: str | dt.date, as_of: str | None = None, additive: bool = False,
                fast_lane: bool = False) -> StageResult:
    """Stage one run's tiered proposals in a single transaction, set-based.

    The batch is copied (``COPY``) into a temporary table; then, per document type, one
    ``INSERT ... ON CONFLICT ... DO UPDATE ... WHERE`` the line is still undecided, one
    ``erp_staging.withdraw_lines`` call removing the run's undecided lines the batch no longer proposes,
    and set-based audit inserts (``proposed``, ``tiered``, ``withdrawn``). Decided and released lines are
    never touched. Runs under :func:`lock_run`, so a concurrent run of the same date waits for this one.

    Args:
        conn: ERP staging connection.
        lines: proposals with ``doc_type, business_key, sku, action, quantity, unit_cost, value,
            explanation, risk_tier, tier_reasons, auto_approve`` and optional ``from_location,
            to_location, supplier_id, po_id, po_line, need_by``.
        dag_id: the DAG staging them.
        run_id: the run staging them (recorded, not part of the key).
        ds: logical date.
        as_of: when the batch's data ends (ISO), for runs of one date that may overlap (intraday hours):
            each line's explanation carries it, and a batch older than what is already staged for the
            date changes nothing (``StageResult.superseded``), so a late run never undoes a newer one.
        additive: the batch only adds lines to the date (order orchestration: each batch routes the lines
            no earlier batch routed): a line whose key is already staged, in any status, is left as it is
            (``StageResult.already_staged``), and no line of the date is withdrawn.
        fast_lane: then release the date's auto-approved critical lines at once (``explanation.critical``,
            see :func:`include.governance.policy.critical_reason`), without waiting for the batch's gate
            (``StageResult.fast_lane_released``).

    Returns:
        Counts of what changed.

    Raises:
        ValueError: a line names an unknown document type (nothing is staged).
    """
    ds_date = _as_date(ds)
    data, _ = _copy_text(lines, dag_id, ds_date)
    result = StageResult()
    undecided = list(UNDECIDED)
    run = {"dag_id": dag_id, "run_id": run_id, "ds": ds_date, "undecided": undecided, "actor": SYSTEM_ACTOR}
    with conn.transaction():
        lock_run(conn, dag_id, ds_date)
        if as_of is not None and _newer_staged(conn, dag_id, ds_date, as_of):
            log.info("staged %s ds=%s: a batch newer than %s is staged; nothing changed", dag_id, ds_date, as_of)
            return StageResult(superseded=True)
        conn.execute(
            "CREATE TEMP TABLE IF NOT EXISTS _stage_in (doc_type text, idempotency_key text, business_key text,"
            " sku text, from_location text, to_location text, supplier_id text, po_id text, po_line integer,"
            " action text, quantity float8, unit_cost float8, value float8, need_by date, explanation jsonb,"
            " risk_tier text, tier_reasons jsonb, target text, prior_status text) ON COMMIT DELETE ROWS"
        )
        conn.execute("TRUNCATE _stage_in")
        with conn.cursor().copy(f"COPY _stage_in ({', '.join(_COPY_COLUMNS)}) FROM STDIN") as copy:
            copy.write(data)
        cols = ", ".join(_LINE_COLUMNS)
        for doc_type, table in TABLES.items():
            run["doc_type"] = doc_type
            # Lock this batch's existing lines first, so a planner deciding one meanwhile either
            # finished before (the line counts as decided) or waits until this batch commits.
            conn.execute(
                f"WITH locked AS (SELECT idempotency_key, status FROM erp_staging.{table} WHERE idempotency_key"
                " IN (SELECT idempotency_key FROM _stage_in WHERE doc_type = %(doc_type)s) FOR UPDATE)"
                " UPDATE _stage_in s SET prior_status = locked.status FROM locked"
                " WHERE s.idempotency_key = locked.idempotency_key", run,
            )
            if additive:
                gone = conn.execute("DELETE FROM _stage_in WHERE doc_type = %(doc_type)s"
                                    " AND prior_status IS NOT NULL", run)
                result.already_staged += gone.rowcount
            counts = conn.execute(
                "SELECT count(*) FILTER (WHERE prior_status IS NULL),"
                " count(*) FILTER (WHERE prior_status = ANY(%(undecided)s)),"
                " count(*) FILTER (WHERE prior_status <> ALL(%(undecided)s)),"
                " count(*) FILTER (WHERE (prior_status IS NULL OR prior_status = ANY(%(undecided)s))"
                "   AND target = 'auto_approved'),"
                " count(*) FILTER (WHERE (prior_status IS NULL OR prior_status = ANY(%(undecided)s))"
                "   AND target = 'pending_approval')"
                " FROM _stage_in WHERE doc_type = %(doc_type)s", run,
            ).fetchone()
            if counts[0] + counts[1]:
                conn.execute(
                    f"INSERT INTO erp_staging.{table} AS t ({cols}, dag_id, run_id, ds, status)"
                    f" SELECT {cols}, %(dag_id)s, %(run_id)s, %(ds)s, target FROM _stage_in"
                    " WHERE doc_type = %(doc_type)s AND (prior_status IS NULL OR prior_status = ANY(%(undecided)s))"
                    " ON CONFLICT (idempotency_key) DO UPDATE SET run_id = EXCLUDED.run_id, "
                    + ", ".join(f"{c} = EXCLUDED.{c}" for c in _UPDATABLE)
                    + ", status = EXCLUDED.status, updated_at = now() WHERE t.status = ANY(%(undecided)s)",
                    run,
                )
                conn.execute(
                    "INSERT INTO erp_staging.audit_log (actor, action, doc_type, idempotency_key, to_status,"
                    " dag_id, run_id, ds, details) SELECT %(actor)s, 'proposed', doc_type, idempotency_key,"
                    " 'proposed', %(dag_id)s, %(run_id)s, %(ds)s,"
                    " jsonb_build_object('quantity', quantity, 'value', value) FROM _stage_in"
                    " WHERE doc_type = %(doc_type)s AND prior_status IS NULL ORDER BY idempotency_key", run,
                )
                conn.execute(
                    "INSERT INTO erp_staging.audit_log (actor, action, doc_type, idempotency_key, from_status,"
                    " to_status, dag_id, run_id, ds, details) SELECT %(actor)s, 'tiered', doc_type,"
                    " idempotency_key, coalesce(prior_status, 'proposed'), target, %(dag_id)s, %(run_id)s,"
                    " %(ds)s, jsonb_build_object('risk_tier', risk_tier, 'reasons', tier_reasons)"
                    " FROM _stage_in WHERE doc_type = %(doc_type)s"
                    " AND (prior_status IS NULL OR prior_status = ANY(%(undecided)s))"
                    " AND coalesce(prior_status, 'proposed') <> target ORDER BY idempotency_key", run,
                )
            withdrawn = 0 if additive else _withdraw(conn, doc_type, "ARRAY(SELECT idempotency_key FROM _stage_in"
                                                     " WHERE doc_type = %(doc_type)s)", run)
            result.inserted += counts[0]
            result.updated += counts[1]
            result.unchanged_decided += counts[2]
            result.auto_approved += counts[3]
            result.pending += counts[4]
            result.withdrawn += withdrawn
        conn.execute("TRUNCATE _stage_in")
    if fast_lane:
        result.fast_lane_released = sum(release_approved(conn, dag_id, ds_date, run_id=run_id,
                                                         critical_only=True).values())
    log.info("staged %s ds=%s: %s", dag_id, ds_date, result)
    return result


def _newer_staged(conn: psycopg.Connection, dag_id: str, ds: dt.date, as_of: str) -> bool:
    row = conn.execute(
        "SELECT max(explanation->>'as_of') FROM erp_staging.all_lines WHERE dag_id=%s AND ds=%s", (dag_id, ds),
    ).fetchone()
    return row[0] is not None and row[0] > as_of


def _opt(value: Any) -> Any:
    return None if value is None or (isinstance(value, float) and value != value) or value is pd.NA else str(value)


def _opt_int(value: Any) -> int | None:
    return None if _opt(value) is None else int(value)


def _opt_date(value: Any) -> dt.date | None:
    if _opt(value) is None:
        return None
    return pd.Timestamp(value).date()


def pending_count(conn: psycopg.Connection, dag_id: str, ds: str | dt.date, *, run_id: str | None = None) -> int:
    """Lines of a date still waiting for a planner (with ``run_id``: only those that run staged last)."""
    row = conn.execute(
        "SELECT count(*) FROM erp_staging.all_lines WHERE dag_id=%s AND ds=%s AND status='pending_approval'"
        " AND (%s::text IS NULL OR run_id = %s)",
        (dag_id, _as_date(ds), run_id, run_id),
    ).fetchone()
    return int(row[0])


def _as_date(ds: str | dt.date) -> dt.date:
    return ds if isinstance(ds, dt.date) else dt.date.fromisoformat(str(ds)[:10])


#: The column that names a line's source, per document type whose source a planner may change.
SOURCE_COLUMNS = {"replenishment": "supplier_id", "transfer": "from_location"}


@dataclass(frozen=True)
class Override:
    """An approval with another quantity or source than the proposed ones (:func:`decide`).

    Attributes:
        quantity: the approved quantity, released instead of the proposed one.
        value: its value at the approved unit cost.
        reason: the reason code (the policy's ``overrides.reason_codes``).
        details: what the audit entry ``overridden`` records beside the quantities (the tier it implies...).
        source: the approved source (supplier of an order, DC of a transfer: :data:`SOURCE_COLUMNS`), or
            ``None`` to keep the proposed one.
        unit_cost: the approved source's unit cost (with ``source``).
    """

    quantity: float
    value: float
    reason: str
    details: dict[str, Any] = field(default_factory=dict)
    source: str | None = None
    unit_cost: float | None = None


def decide(conn: psycopg.Connection, doc_type: str, line_ids: list[int], *, approve: bool, user: str,
           note: str | None = None, overrides: dict[int, Override] | None = None) -> dict[str, list[int]]:
    """Approve or reject pending lines as ``user``; the first decision on a line stands.

    Args:
        overrides: line id -> :class:`Override`: the line is approved with that quantity (and source), keeping
            the proposed ones in ``proposed_quantity`` (and ``proposed_source``); an ``overridden`` audit entry
            records both before ``approved``.

    Returns:
        ``{"decided": [...], "already_decided": [...], "unknown": [...]}`` line ids.
    """
    table = TABLES[doc_type]
    target = "approved" if approve else "rejected"
    if overrides and not approve:
        raise ValueError("an override is an approval with another quantity: it cannot reject")
    out: dict[str, list[int]] = {"decided": [], "already_decided": [], "unknown": []}
    with conn.transaction():
        for line_id in line_ids:
            row = conn.execute(
                f"SELECT status, idempotency_key, dag_id, run_id, ds, {CRITICAL}, quantity, value"
                f" FROM erp_staging.{table} WHERE line_id=%s FOR UPDATE", (line_id,),
            ).fetchone()
            if row is None:
                out["unknown"].append(line_id)
                continue
            status, key, dag_id, run_id, ds, critical, proposed, proposed_value = row
            if status != "pending_approval":
                out["already_decided"].append(line_id)
                continue
            change = (overrides or {}).get(line_id)
            if change is None:
                conn.execute(
                    f"UPDATE erp_staging.{table} SET status=%s, decided_by=%s, decided_at=now(), decision_note=%s"
                    " WHERE line_id=%s", (target, user, note, line_id),
                )
            else:
                sets, args = "", []
                if change.source is not None:
                    # The right-hand sides read the row as it was: proposed_source keeps the proposed source.
                    column = SOURCE_COLUMNS[doc_type]
                    sets, args = f", proposed_source={column}, {column}=%s, unit_cost=%s", [change.source, change.unit_cost]
                conn.execute(
                    f"UPDATE erp_staging.{table} SET status=%s, decided_by=%s, decided_at=now(), decision_note=%s,"
                    f" quantity=%s, value=%s, proposed_quantity=quantity, override_reason=%s, overridden_by=%s{sets}"
                    " WHERE line_id=%s",
                    (target, user, note, change.quantity, change.value, change.reason, user, *args, line_id),
                )
                audit(conn, "overridden", actor=user, doc_type=doc_type, key=key, from_status=status,
                      to_status=target, dag_id=dag_id, run_id=run_id, ds=ds, note=note,
                      details={"proposed_quantity": float(proposed), "quantity": change.quantity,
                               "proposed_value": float(proposed_value), "value": change.value,
                               "reason": change.reason, **change.details})
            audit(conn, target, actor=user, doc_type=doc_type, key=key, from_status=status, to_status=target,
                  dag_id=dag_id, run_id=run_id, ds=ds, note=note)
            if approve and critical:
                # The fast lane: an approved critical line goes to the ERP with its decision, not with its batch.
                conn.execute(f"UPDATE erp_staging.{table} SET status='released', released_at=now()"
                             " WHERE line_id=%s", (line_id,))
                audit(conn, "released", doc_type=doc_type, key=key, from_status=target, to_status="released",
                      dag_id=dag_id, run_id=run_id, ds=ds, note=FAST_LANE_NOTE)
            out["decided"].append(line_id)
    return out


def decide_all_pending(conn: psycopg.Connection, dag_id: str, ds: str | dt.date, *, approve: bool, user: str,
                       note: str | None = None) -> int:
    """Approve or reject every pending line of a run; returns how many were decided."""
    total = 0
    for doc_type, table in TABLES.items():
        ids = [r[0] for r in conn.execute(
            f"SELECT line_id FROM erp_staging.{table} WHERE dag_id=%s AND ds=%s AND status='pending_approval'"
            " ORDER BY line_id", (dag_id, _as_date(ds)),
        ).fetchall()]
        if ids:
            total += len(decide(conn, doc_type, ids, approve=approve, user=user, note=note)["decided"])
    return total


def expire_pending(conn: psycopg.Connection, dag_id: str, ds: str | dt.date, *, reason: str,
                   run_id: str | None = None) -> int:
    """Expire every line of a date still pending (the gate timed out); they are never released.

    With ``run_id``, only the lines that run staged last: an hourly run's gate leaves the lines a later
    hour has proposed again to that hour's gate.
    """
    total = 0
    with conn.transaction():
        lock_run(conn, dag_id, ds)
        for doc_type, table in TABLES.items():
            rows = conn.execute(
                f"UPDATE erp_staging.{table} SET status='expired' WHERE dag_id=%s AND ds=%s"
                " AND status='pending_approval' AND (%s::text IS NULL OR run_id = %s)"
                " RETURNING idempotency_key, run_id",
                (dag_id, _as_date(ds), run_id, run_id),
            ).fetchall()
            for key, run_id in rows:
                audit(conn, "expired", doc_type=doc_type, key=key, from_status="pending_approval",
                      to_status="expired", dag_id=dag_id, run_id=run_id, ds=_as_date(ds), note=reason)
            total += len(rows)
    return total


#: SQL condition of a critical line (``tier_proposals`` marks it in the explanation): it takes the fast lane.
CRITICAL = "coalesce((explanation->>'critical')::boolean, false)"
#: The audit note of a release by the fast lane.
FAST_LANE_NOTE = "fast lane: critical line released without waiting for its batch"


def release_approved(conn: psycopg.Connection, dag_id: str, ds: str | dt.date, *, run_id: str,
                     critical_only: bool = False) -> dict[str, int]:
    """Release every approved and auto-approved line of a run to the ERP, in one transaction.

    Each ``released`` audit entry carries the status the line had (``approved`` or ``auto_approved``).

    Args:
        critical_only: release only the critical lines (the fast lane, right after staging), noted as such
            in the audit trail; the rest of the batch waits for its gate.
    """
    counts: dict[str, int] = {}
    only = f" AND {CRITICAL}" if critical_only else ""
    with conn.transaction():
        lock_run(conn, dag_id, ds)
        for doc_type, table in TABLES.items():
            rows = conn.execute(
                f"WITH prior AS (SELECT line_id, status FROM erp_staging.{table} WHERE dag_id=%s AND ds=%s"
                f" AND status IN ('approved', 'auto_approved'){only} FOR UPDATE)"
                f" UPDATE erp_staging.{table} AS t SET status='released', released_at=now() FROM prior"
                " WHERE t.line_id = prior.line_id RETURNING t.idempotency_key, prior.status",
                (dag_id, _as_date(ds)),
            ).fetchall()
            for key, from_status in rows:
                audit(conn, "released", doc_type=doc_type, key=key, from_status=from_status,
                      to_status="released", dag_id=dag_id, run_id=run_id, ds=_as_date(ds),
                      note=FAST_LANE_NOTE if critical_only else None)
            counts[doc_type] = len(rows)
    return counts


def reverse_line(conn: psycopg.Connection, doc_type: str, line_id: int, *, actor: str,
                 reason: str) -> dict[str, Any]:
    """Reverse a released line that was wrong, through ``erp_staging.reverse_line`` (one transaction).

    The database writes a new released line with action ``reverse``, the same quantity, unit cost and
    value, ``reverses_line_id`` set to the original and the key ``<original key>|reversal``; the ERP books
    it with the opposite sign, so the pair nets to nothing. The original line is not modified. Three
    audit entries record it: ``reversal`` and ``released`` on the new line, ``reversed`` on the original,
    each with ``actor`` and ``reason``.

    Args:
        conn: ERP staging connection (the application role may call the function).
        doc_type: ``replenishment``, ``transfer``, ``po_exception``, ``fulfilment_assignment`` or
            ``return_disposition``.
        line_id: the released line.
        actor: who reverses it (recorded).
        reason: why (recorded; required).

    Returns:
        ``{"doc_type", "line_id", "idempotency_key", "reverses_line_id", "reverses"}`` of the new line.

    Raises:
        ValueError: an unknown document type, or an empty actor or reason.
        ReversalRefused: no such line, the line is not released, is itself a reversal, or was already
            reversed; the message says which.
    """
    if doc_type not in TABLES:
        raise ValueError(f"unknown document type {doc_type!r} (known: {', '.join(TABLES)})")
    if not (actor or "").strip() or not (reason or "").strip():
        raise ValueError("a reversal names who makes it and why: actor and reason are required")
    try:
        with conn.transaction():
            new_id = conn.execute("SELECT erp_staging.reverse_line(%s, %s, %s, %s)",
                                  (doc_type, int(line_id), actor.strip(), reason.strip())).fetchone()[0]
            key, original = conn.execute(
                f"SELECT r.idempotency_key, o.idempotency_key FROM erp_staging.{TABLES[doc_type]} r"
                f" JOIN erp_staging.{TABLES[doc_type]} o ON o.line_id = r.reverses_line_id WHERE r.line_id = %s",
                (new_id,)).fetchone()
    except (psycopg.errors.NoDataFound, psycopg.errors.CheckViolation) as exc:
        raise ReversalRefused(exc.diag.message_primary or str(exc)) from exc
    log.info("reversed %s line %s by line %s (%s)", doc_type, line_id, new_id, actor)
    return {"doc_type": doc_type, "line_id": int(new_id), "idempotency_key": key,
            "reverses_line_id": int(line_id), "reverses": original}


def pending_lines(conn: psycopg.Connection, dag_id: str, ds: str | dt.date) -> pd.DataFrame:
    """The lines of a run waiting for a planner, largest value first, with explanation and tier reasons."""
    cur = conn.execute(
        "SELECT doc_type, line_id, risk_tier, business_key, sku, from_location, to_location, supplier_id, po_id,"
        " po_line, action, quantity, value, tier_reasons, explanation FROM erp_staging.all_lines"
        " WHERE dag_id=%s AND ds=%s AND status='pending_approval' ORDER BY value DESC, doc_type, line_id",
        (dag_id, _as_date(ds)),
    )
    return pd.DataFrame(cur.fetchall(), columns=[c.name for c in cur.description])


#: Columns of a staged line as :func:`run_lines` and :func:`lines_between` give it.
_STAGED_COLUMNS = ("doc_type, line_id, idempotency_key, business_key, sku, from_location, to_location, supplier_id,"
                   " po_id, po_line, action, quantity, value, risk_tier, status, decided_by, explanation, created_at,"
                   " released_at")


def run_lines(conn: psycopg.Connection, dag_id: str, ds: str | dt.date) -> pd.DataFrame:
    """Every staged line of a run, all document types."""
    cur = conn.execute(
        f"SELECT {_STAGED_COLUMNS} FROM erp_staging.all_lines WHERE dag_id=%s AND ds=%s ORDER BY doc_type, line_id",
        (dag_id, _as_date(ds)),
    )
    return pd.DataFrame(cur.fetchall(), columns=[c.name for c in cur.description])


def lines_between(conn: psycopg.Connection, dag_id: str, first: str | dt.date, last: str | dt.date,
                  actions: tuple[str, ...]) -> pd.DataFrame:
    """The staged lines of ``actions`` of every run of ``dag_id`` dated ``first`` to ``last``, with their ``ds``
    and the columns of :func:`run_lines`."""
    cur = conn.execute(
        f"SELECT ds, {_STAGED_COLUMNS} FROM erp_staging.all_lines WHERE dag_id=%s AND ds BETWEEN %s AND %s"
        " AND action = ANY(%s) ORDER BY ds, doc_type, line_id", (dag_id, _as_date(first), _as_date(last), list(actions)),
    )
    return pd.DataFrame(cur.fetchall(), columns=[c.name for c in cur.description])


def first_staged(conn: psycopg.Connection, dag_id: str, doc_type: str, since: str | dt.date) -> pd.DataFrame:
    """The first date each business key of a document type was staged by ``dag_id``, on or after ``since``.

    Returns:
        ``business_key, first_ds`` (a PO exception's key is ``po:<po_id>-<po_line>``).
    """
    rows = conn.execute(
        "SELECT business_key, min(ds) FROM erp_staging.all_lines WHERE dag_id=%s AND doc_type=%s AND ds >= %s"
        " GROUP BY business_key", (dag_id, doc_type, _as_date(since)),
    ).fetchall()
    return pd.DataFrame(rows, columns=["business_key", "first_ds"])


def released_dispositions(conn: psycopg.Connection, actions: tuple[str, ...], since: str | dt.date) -> pd.DataFrame:
    """Released ``return_disposition`` lines of ``actions``, of return days on or after ``since``, that no
    reversal has undone: what the ERP was told to do with the returned units.

    Returns:
        ``ds, to_location, sku, action, quantity`` (``ds``: the day the units were returned).
    """
    table = f"erp_staging.{TABLES['return_disposition']}"
    rows = conn.execute(
        f"SELECT l.ds, l.to_location, l.sku, l.action, l.quantity FROM {table} l"
        " WHERE l.status = 'released' AND l.action = ANY(%s) AND l.ds >= %s"
        f" AND NOT EXISTS (SELECT 1 FROM {table} r WHERE r.reverses_line_id = l.line_id)"
        " ORDER BY l.ds, l.line_id", (list(actions), _as_date(since)),
    ).fetchall()
    frame = pd.DataFrame(rows, columns=["ds", "to_location", "sku", "action", "quantity"])
    return frame.assign(quantity=frame["quantity"].astype(float))


def record_contract_runs(conn: psycopg.Connection, records: list[dict], *, dag_id: str | None,
                         run_id: str | None) -> None:
    """Append validation results to ``ops.contract_runs``."""
    with conn.transaction():
        for r in records:
            conn.execute(
                "INSERT INTO ops.contract_runs (dag_id, run_id, contract_id, contract_version, ds, file,"
                " rows_in, rows_passed, rows_quarantined, breaches, outcome, reasons, sample_keys, substituted_from)"
                " VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s)",
                (dag_id, run_id, r["contract_id"], r["contract_version"], _as_date(r["ds"]), r["file"],
                 r["rows_in"], r["rows_passed"], r["rows_quarantined"], Jsonb(r["breaches"]), r["outcome"],
                 Jsonb(r["reasons"]), Jsonb(r["sample_keys"]), _opt_date(r.get("substituted_from"))),
            )


def record_kpis(conn: psycopg.Connection, dag_id: str, ds: str | dt.date, kpis: dict[str, Any]) -> None:
    """Replace a night's row of ``ops.kpi_history``: its KPIs, whether it was degraded and by which sources."""
    with conn.transaction():
        conn.execute(
            "INSERT INTO ops.kpi_history (dag_id, ds, kpis, degraded, stale_sources) VALUES (%s,%s,%s,%s,%s)"
            " ON CONFLICT (dag_id, ds) DO UPDATE SET kpis=EXCLUDED.kpis, degraded=EXCLUDED.degraded,"
            " stale_sources=EXCLUDED.stale_sources, recorded_at=now()",
            (dag_id, _as_date(ds), Jsonb(_jsonable(kpis)), bool(kpis.get("degraded")),
             Jsonb(kpis.get("stale_sources") or {})),
        )


def record_forecast_scores(conn: psycopg.Connection, dag_id: str, ds: str | dt.date, origin: dt.date,
                           table: pd.DataFrame) -> None:
    """Replace a night's forecast scores per segment in ``ops.forecast_scores``, in one transaction.

    Args:
        table: one row per segment: ``segment, n_series, n_points, mase, rmsse, bias, baseline, ratio,
            drift, reason`` (``models.forecasting.monitoring.drift_table``).
    """
    with conn.transaction():
        for r in table.itertuples():
            conn.execute(
                "INSERT INTO ops.forecast_scores (dag_id, ds, origin, segment, n_series, n_points, mase, rmsse,"
                " bias, baseline, ratio, drift, reason) VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s)"
                " ON CONFLICT (dag_id, ds, segment) DO UPDATE SET origin=EXCLUDED.origin,"
                " n_series=EXCLUDED.n_series, n_points=EXCLUDED.n_points, mase=EXCLUDED.mase,"
                " rmsse=EXCLUDED.rmsse, bias=EXCLUDED.bias, baseline=EXCLUDED.baseline, ratio=EXCLUDED.ratio,"
                " drift=EXCLUDED.drift, reason=EXCLUDED.reason, recorded_at=now()",
                (dag_id, _as_date(ds), origin, r.segment, int(r.n_series), int(r.n_points), _opt_float(r.mase),
                 _opt_float(r.rmsse), _opt_float(r.bias), _opt_float(r.baseline), _opt_float(r.ratio),
                 bool(r.drift), r.reason))


def _opt_float(value: Any) -> float | None:
    return None if value is None or pd.isna(value) else float(value)
