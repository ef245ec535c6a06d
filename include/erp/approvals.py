"""The planners' approval service: who may decide what, the pending lines with their explanation, decisions.

Used by the approval pages of the Airflow plugin and by anything else that decides lines on behalf of a
person. It knows nothing of Airflow: the caller says who the user is and which Airflow roles they hold;
the policy file maps those to Shelfwise roles (``roles:``) and says which roles decide each tier
(``deciders:``).

A request deciding several lines is all-or-nothing on permissions: if the user may not decide the tier
of any selected line, nothing changes and the refusal names those lines. Lines somebody else decided
first keep that decision; the answer says who decided them and how.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

import psycopg

from include.erp.staging import TABLES, decide
from include.governance.policy import TIERS, Policy

MAX_NOTE_CHARS = 2000
DEFAULT_LIMIT = 500


class NotAllowed(PermissionError):
    """The user may not make this decision; nothing was changed."""


class BadRequest(ValueError):
    """The request itself is malformed (unknown document type, filter or selection)."""


@dataclass(frozen=True)
class Approver:
    """A person deciding lines: their user name, their Airflow roles and what those allow."""

    username: str
    airflow_roles: tuple[str, ...]
    roles: frozenset[str]
    tiers: tuple[str, ...]
    deciders: dict[str, tuple[str, ...]] = field(default_factory=dict, compare=False, hash=False)

    @property
    def may_decide_any(self) -> bool:
        return bool(self.tiers)

    def describe(self) -> str:
        """``planner (Airflow role user = planner)`` for messages."""
        airflow = ", ".join(self.airflow_roles) or "none"
        shelfwise = ", ".join(sorted(self.roles)) or "no Shelfwise role"
        return f"{self.username} (Airflow role {airflow} = {shelfwise})"


def approver(username: str, airflow_roles: list[str] | tuple[str, ...] | str | None, policy: Policy) -> Approver:
    """Resolve what a user may decide from their Airflow roles and the policy."""
    if isinstance(airflow_roles, str):
        airflow_roles = [airflow_roles]
    airflow = tuple(r for r in (airflow_roles or ()) if r)
    roles = frozenset(policy.shelfwise_roles(airflow))
    return Approver(username=username, airflow_roles=airflow, roles=roles,
                    tiers=tuple(policy.decidable_tiers(roles)), deciders=dict(policy.deciders))


@dataclass(frozen=True)
class LineFilter:
    """Filters of the pending list; ``None`` means any."""

    doc_type: str | None = None
    tier: str | None = None
    location: str | None = None
    supplier: str | None = None
    dag_id: str | None = None
    ds: dt.date | None = None

    @classmethod
    def parse(cls, **raw: Any) -> LineFilter:
        """Build a filter from request parameters; empty strings mean any.

        Raises:
            BadRequest: an unknown document type or tier, or a date that is not ``YYYY-MM-DD``.
        """
        values = {k: (str(v).strip() or None) if v is not None else None for k, v in raw.items()}
        unknown = set(values) - {"doc_type", "tier", "location", "supplier", "dag_id", "ds"}
        if unknown:
            raise BadRequest(f"unknown filters {sorted(unknown)}")
        if values.get("doc_type") and values["doc_type"] not in TABLES:
            raise BadRequest(f"unknown document type {values['doc_type']!r} (known: {', '.join(TABLES)})")
        if values.get("tier") and values["tier"] not in TIERS:
            raise BadRequest(f"unknown tier {values['tier']!r} (known: {', '.join(TIERS)})")
        ds = values.pop("ds", None)
        try:
            parsed = dt.date.fromisoformat(ds) if ds else None
        except ValueError as exc:
            raise BadRequest(f"ds must be a date YYYY-MM-DD, got {ds!r}") from exc
        return cls(ds=parsed, **values)


_LIST_COLUMNS = ("doc_type", "line_id", "idempotency_key", "dag_id", "run_id", "ds", "business_key", "sku",
                 "from_location", "to_location", "supplier_id", "po_id", "po_line", "action", "quantity",
                 "unit_cost", "value", "need_by", "explanation", "risk_tier", "tier_reasons", "status")


def list_pending(conn: psycopg.Connection, filters: LineFilter | None = None, *, user: Approver | None = None,
                 limit: int = DEFAULT_LIMIT) -> list[dict[str, Any]]:
    """Lines waiting for a planner, highest tier and value first, with their explanation.

    Args:
        conn: ERP staging connection.
        filters: document type, tier, location (from or to), supplier, DAG and logical date.
        user: when given, each line says whether this user may decide it (``may_decide``).
        limit: at most this many lines.

    Returns:
        One JSON-safe dict per line.
    """
    f = filters or LineFilter()
    where, params = ["status = 'pending_approval'"], []
    for column, value in (("doc_type", f.doc_type), ("risk_tier", f.tier), ("supplier_id", f.supplier),
                          ("dag_id", f.dag_id), ("ds", f.ds)):
        if value is not None:
            where.append(f"{column} = %s")
            params.append(value)
    if f.location is not None:
        where.append("(from_location = %s OR to_location = %s)")
        params += [f.location, f.location]
    params.append(max(1, min(int(limit), 5000)))
    with conn.transaction():
        rows = conn.execute(
            f"SELECT {', '.join(_LIST_COLUMNS)} FROM erp_staging.all_lines WHERE {' AND '.join(where)}"
            " ORDER BY array_position(ARRAY['high','medium','low'], risk_tier), value DESC, doc_type, line_id"
            " LIMIT %s", params,
        ).fetchall()
    lines = []
    for row in rows:
        line = dict(zip(_LIST_COLUMNS, row, strict=True))
        for key in ("quantity", "unit_cost", "value"):
            line[key] = float(line[key])
        for key in ("ds", "need_by"):
            line[key] = line[key].isoformat() if line[key] else None
        if user is not None:
            line["may_decide"] = line["risk_tier"] in user.tiers
        lines.append(line)
    return lines


@dataclass
class DecisionOutcome:
    """What a decision request did."""

    decided: list[dict[str, Any]] = field(default_factory=list)
    already_decided: list[dict[str, Any]] = field(default_factory=list)
    unknown: list[dict[str, Any]] = field(default_factory=list)

    def message(self, approve: bool) -> str:
        verb = "approved" if approve else "rejected"
        parts = [f"{len(self.decided)} line(s) {verb}"]
        if self.already_decided:
            parts.append("already decided, first decision stands: " + "; ".join(
                f"{d['doc_type']} #{d['line_id']} {d['status']} by {d['decided_by'] or 'the system'}"
                for d in self.already_decided))
        if self.unknown:
            parts.append("not found: " + ", ".join(f"{u['doc_type']} #{u['line_id']}" for u in self.unknown))
        return ". ".join(parts) + "."

    def as_dict(self, approve: bool) -> dict[str, Any]:
        return {"decided": self.decided, "already_decided": self.already_decided, "unknown": self.unknown,
                "message": self.message(approve)}


def parse_selection(raw: Any) -> list[tuple[str, int]]:
    """``[{"doc_type": ..., "line_id": ...}, ...]`` (or ``"doc_type:line_id"`` strings) as pairs.

    Raises:
        BadRequest: an empty selection, an unknown document type or a line id that is not an integer.
    """
    if not isinstance(raw, list | tuple) or not raw:
        raise BadRequest("select at least one line")
    out: list[tuple[str, int]] = []
    for item in raw:
        if isinstance(item, str) and ":" in item:
            doc_type, _, line_id = item.partition(":")
        elif isinstance(item, dict):
            doc_type, line_id = item.get("doc_type"), item.get("line_id")
        else:
            raise BadRequest(f"a selected line must name doc_type and line_id, got {item!r}")
        if doc_type not in TABLES:
            raise BadRequest(f"unknown document type {doc_type!r} (known: {', '.join(TABLES)})")
        try:
            pair = (doc_type, int(line_id))
        except (TypeError, ValueError) as exc:
            raise BadRequest(f"line id must be an integer, got {line_id!r}") from exc
        if pair not in out:
            out.append(pair)
    return out


def decide_lines(conn: psycopg.Connection, user: Approver, selection: list[tuple[str, int]], *, approve: bool,
                 note: str | None = None) -> DecisionOutcome:
    """Approve or reject a selection of lines as ``user``, in one transaction.

    Args:
        conn: ERP staging connection.
        user: who decides (see :func:`approver`).
        selection: ``(doc_type, line_id)`` pairs.
        approve: approve (``True``) or reject (``False``).
        note: the user's note, recorded with each decision.

    Returns:
        The lines decided now, those somebody decided first (with status and who), and unknown ids.

    Raises:
        NotAllowed: the user's role may not decide the tier of one or more selected lines (or any tier);
            nothing is changed.
        BadRequest: a malformed selection or a note that is too long.
    """
    if not user.may_decide_any:
        raise NotAllowed(f"{user.describe()} may not approve or reject lines: the role is read only. "
                         "Nothing was changed.")
    note = (note or "").strip() or None
    if note and len(note) > MAX_NOTE_CHARS:
        raise BadRequest(f"the note has {len(note)} characters; at most {MAX_NOTE_CHARS} are kept")
    by_type: dict[str, list[int]] = {}
    for doc_type, line_id in selection:
        if doc_type not in TABLES:
            raise BadRequest(f"unknown document type {doc_type!r} (known: {', '.join(TABLES)})")
        by_type.setdefault(doc_type, []).append(int(line_id))
    outcome = DecisionOutcome()
    with conn.transaction():
        found: dict[tuple[str, int], tuple[str, str, str | None]] = {}
        for doc_type, ids in by_type.items():
            # Lock the selection before checking it, so the check and the decision see the same lines.
            for line_id, tier, status, decided_by in conn.execute(
                f"SELECT line_id, risk_tier, status, decided_by FROM erp_staging.{TABLES[doc_type]}"
                " WHERE line_id = ANY(%s) ORDER BY line_id FOR UPDATE", (ids,),
            ).fetchall():
                found[(doc_type, line_id)] = (tier, status, decided_by)
        refused = [(d, i, found[(d, i)][0]) for d, i in selection
                   if (d, i) in found and found[(d, i)][1] == "pending_approval" and found[(d, i)][0] not in user.tiers]
        if refused:
            tiers = sorted({t for _, _, t in refused}, key=TIERS.index)
            needs = sorted(set.intersection(*(set(user.deciders.get(t, ())) for t in tiers)))
            raise NotAllowed(
                f"{user.describe()} may not decide {'/'.join(tiers)}-tier lines: "
                + ", ".join(f"{d} #{i}" for d, i, _ in refused)
                + (f" (needs {' or '.join(needs)})" if needs else "")
                + ". Nothing was changed."
            )
        for doc_type, ids in by_type.items():
            result = decide(conn, doc_type, ids, approve=approve, user=user.username, note=note)
            outcome.decided += [{"doc_type": doc_type, "line_id": i} for i in result["decided"]]
            outcome.unknown += [{"doc_type": doc_type, "line_id": i} for i in result["unknown"]]
            for line_id in result["already_decided"]:
                status, decided_by = conn.execute(
                    f"SELECT status, decided_by FROM erp_staging.{TABLES[doc_type]} WHERE line_id = %s",
                    (line_id,)).fetchone()
                outcome.already_decided.append({"doc_type": doc_type, "line_id": line_id, "status": status,
                                                "decided_by": decided_by})
    return outcome
