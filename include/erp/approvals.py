"""The planners' approval service: who may decide what, the pending lines with their explanation, decisions.

Used by the approval pages of the Airflow plugin and by anything else that decides lines on behalf of a
person. It knows nothing of Airflow: the caller says who the user is and which Airflow roles they hold;
the policy file maps those (and the user name, ``user_roles:``) to Shelfwise roles (``roles:``) and says which
roles decide each tier (``deciders:``), for some document types apart (``deciders_by_doc_type:``: loss
prevention decides return dispositions, planners do not).

A request deciding several lines is all-or-nothing on permissions and on scope: if the user may not
decide the tier of any selected line, or a line belongs to another run than the one the request names,
nothing changes and the refusal names those lines. Lines somebody else decided first keep that decision;
the answer says who decided them and how. A decider may also escalate pending lines they may decide: hand
them up undecided with a note (:func:`escalate_lines`), under the same checks.

Input is taken strictly: a line id is an integer (never a float, a boolean or a numeric string), and text
that PostgreSQL cannot store (NUL, lone surrogates) or that no identifier holds (control characters) is
refused as a bad request naming the field, before any SQL runs.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
import psycopg

from include.erp.staging import CRITICAL, TABLES, audit, decide
from include.governance.policy import TIERS, Policy

MAX_NOTE_CHARS = 2000
MAX_FILTER_CHARS = 200
DEFAULT_LIMIT = 500
MAX_LIMIT = 5000
#: The largest ``bigserial`` line id.
MAX_LINE_ID = 2**63 - 1
FILTERS = ("doc_type", "tier", "location", "supplier", "dag_id", "ds", "run_id", "search")
#: Days a line's destination lasts on what it has (``hours_to_stockout`` of an intraday move, else on hand
#: plus in transit over the daily forecast the nightly explains it with); unknown for other lines.
COVER_DAYS = ("coalesce((l.explanation->>'hours_to_stockout')::float / 24,"
              " (coalesce((l.explanation->>'on_hand')::float, 0) + coalesce((l.explanation->>'in_transit')::float, 0))"
              " / nullif((l.explanation->>'mean_daily_forecast')::float, 0))")
#: How the queue may be ordered: ``impact`` (critical first, then the highest tier, then value), ``value``,
#: ``deadline`` (need-by date, soonest first) or ``cover`` (days to stock-out, fewest first); ties by line.
SORTS: dict[str, str] = {
    "impact": f"{CRITICAL} DESC, array_position(ARRAY['high','medium','low'], l.risk_tier), l.value DESC",
    "value": "l.value DESC",
    "deadline": "l.need_by ASC NULLS LAST, l.value DESC",
    "cover": f"{COVER_DAYS} ASC NULLS LAST, l.value DESC",
}
#: Surrogates (U+D800..U+DFFF) cannot be encoded as UTF-8; PostgreSQL text cannot hold NUL.
_UNSTORABLE = re.compile(r"[\x00\ud800-\udfff]")
#: Control characters besides tab, newline and carriage return (C0, DEL, C1).
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
_LINE_KEY = re.compile(r"(?P<doc_type>[a-z_]+):(?P<line_id>[1-9][0-9]{0,18})")
#: Why an escalation without a note is refused.
NOTE_REQUIRED = "an escalation needs a note: say why the line(s) go up"


class NotAllowed(PermissionError):
    """The user may not make this decision; nothing was changed."""


class BadRequest(ValueError):
    """The request itself is malformed (unknown document type, filter or selection)."""


class OutsideRun(BadRequest):
    """Selected lines belong to another run than the one the request names; nothing was changed."""


def text_problem(value: str, *, multiline: bool = False) -> str | None:
    """Why ``value`` cannot be taken as request text, or ``None`` when it can.

    Args:
        value: the text.
        multiline: a free text (a note) where tab, newline and carriage return are allowed; other control
            characters are refused everywhere.

    Returns:
        ``"contains a NUL character"``, ``"contains a lone surrogate (not valid Unicode)"`` or
        ``"contains a control character"``; ``None`` for acceptable text.
    """
    if "\x00" in value:
        return "contains a NUL character"
    if _UNSTORABLE.search(value):
        return "contains a lone surrogate (not valid Unicode)"
    if _CONTROL.search(value) or (not multiline and any(c in value for c in "\t\n\r")):
        return "contains a control character"
    return None


def clean_note(note: str | None) -> str | None:
    """A decision note as stored: stripped, ``None`` when empty.

    Raises:
        BadRequest: the note is too long or holds characters that cannot be stored.
    """
    if note is not None and not isinstance(note, str):
        raise BadRequest(f"the note must be text, got {type(note).__name__}")
    note = (note or "").strip() or None
    if note is None:
        return None
    if len(note) > MAX_NOTE_CHARS:
        raise BadRequest(f"the note has {len(note)} characters; at most {MAX_NOTE_CHARS} are kept")
    if problem := text_problem(note, multiline=True):
        raise BadRequest(f"the note {problem}")
    return note


@dataclass(frozen=True)
class Approver:
    """A person deciding lines: their user name, their Airflow roles and what those allow.

    Attributes:
        tiers: the tiers they may decide of the document types the policy's ``deciders`` cover.
        tiers_by_doc_type: the tiers they may decide of each document type with deciders of its own.
        deciders: the roles deciding each tier; ``deciders_by_doc_type`` those of the document types apart.
    """

    username: str
    airflow_roles: tuple[str, ...]
    roles: frozenset[str]
    tiers: tuple[str, ...]
    deciders: dict[str, tuple[str, ...]] = field(default_factory=dict, compare=False, hash=False)
    tiers_by_doc_type: dict[str, tuple[str, ...]] = field(default_factory=dict, compare=False, hash=False)
    deciders_by_doc_type: dict[str, dict[str, tuple[str, ...]]] = field(default_factory=dict, compare=False,
                                                                         hash=False)

    @property
    def may_decide_any(self) -> bool:
        return bool(self.tiers) or any(self.tiers_by_doc_type.values())

    def may_decide(self, doc_type: str, tier: str) -> bool:
        """Whether they may approve or reject a line of ``doc_type`` and ``tier``."""
        return tier in self.tiers_by_doc_type.get(doc_type, self.tiers)

    def deciders_of(self, doc_type: str, tier: str) -> tuple[str, ...]:
        """The roles that decide a line of ``doc_type`` and ``tier``."""
        return self.deciders_by_doc_type.get(doc_type, self.deciders).get(tier, ())

    def describe(self) -> str:
        """``planner (Airflow role user = planner)`` for messages."""
        airflow = ", ".join(self.airflow_roles) or "none"
        shelfwise = ", ".join(sorted(self.roles)) or "no Shelfwise role"
        return f"{self.username} (Airflow role {airflow} = {shelfwise})"


def approver(username: str, airflow_roles: list[str] | tuple[str, ...] | str | None, policy: Policy) -> Approver:
    """Resolve what a user may decide from their Airflow roles, their user name and the policy."""
    if isinstance(airflow_roles, str):
        airflow_roles = [airflow_roles]
    airflow = tuple(r for r in (airflow_roles or ()) if r)
    roles = frozenset(policy.shelfwise_roles(airflow, username))
    return Approver(username=username, airflow_roles=airflow, roles=roles,
                    tiers=tuple(policy.decidable_tiers(roles)), deciders=dict(policy.deciders),
                    tiers_by_doc_type={d: tuple(policy.decidable_tiers(roles, d)) for d in policy.deciders_by_doc_type},
                    deciders_by_doc_type=dict(policy.deciders_by_doc_type))


@dataclass(frozen=True)
class LineFilter:
    """Filters of the pending list; ``None`` means any."""

    doc_type: str | None = None
    tier: str | None = None
    location: str | None = None
    supplier: str | None = None
    dag_id: str | None = None
    ds: dt.date | None = None
    #: The Airflow run that staged the lines (the DAG run page's view of its own lines).
    run_id: str | None = None
    #: Text found (case-insensitively) in the SKU, business key, either location or the supplier.
    search: str | None = None

    @classmethod
    def parse(cls, **raw: Any) -> LineFilter:
        """Build a filter from request parameters; empty strings mean any.

        Raises:
            BadRequest: an unknown filter, document type or tier, a date that is not ``YYYY-MM-DD``, or
                text that is too long or holds NUL, lone surrogates or control characters.
        """
        unknown = set(raw) - set(FILTERS)
        if unknown:
            raise BadRequest(f"unknown filters {sorted(unknown)}")
        values: dict[str, Any] = {}
        for name, value in raw.items():
            if value is not None and not isinstance(value, str | dt.date):
                raise BadRequest(f"filter {name} must be text, got {type(value).__name__}")
            text = value.isoformat() if isinstance(value, dt.date) else (value or "").strip()
            if len(text) > MAX_FILTER_CHARS:
                raise BadRequest(f"filter {name} has {len(text)} characters; at most {MAX_FILTER_CHARS}")
            if problem := text_problem(text):
                raise BadRequest(f"filter {name} {problem}")
            values[name] = text or None
        if values.get("doc_type") and values["doc_type"] not in TABLES:
            raise BadRequest(f"unknown document type {values['doc_type']!r} (known: {', '.join(TABLES)})")
        if values.get("tier") and values["tier"] not in TIERS:
            raise BadRequest(f"unknown tier {values['tier']!r} (known: {', '.join(TIERS)})")
        ds = values.pop("ds", None)
        try:
            if ds and not re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", ds):
                raise ValueError(ds)
            parsed = dt.date.fromisoformat(ds) if ds else None
        except ValueError as exc:
            raise BadRequest(f"ds must be a date YYYY-MM-DD, got {ds!r}") from exc
        return cls(ds=parsed, **values)


_LIST_COLUMNS = ("doc_type", "line_id", "idempotency_key", "dag_id", "run_id", "ds", "business_key", "sku",
                 "from_location", "to_location", "supplier_id", "po_id", "po_line", "action", "quantity",
                 "unit_cost", "value", "need_by", "explanation", "risk_tier", "tier_reasons", "status")


#: The newest ``escalated`` audit entry of line ``l`` since it was staged (a line staged afresh under the same key
#: is a new line); the audit log is indexed by key.
_LAST_ESCALATION = ("SELECT a.actor AS escalated_by, a.recorded_at AS escalated_at, a.note AS escalation_note"
                    " FROM erp_staging.audit_log a WHERE a.idempotency_key = l.idempotency_key"
                    " AND a.action = 'escalated' AND a.recorded_at >= l.created_at ORDER BY a.audit_id DESC LIMIT 1")


def _pending_where(f: LineFilter) -> tuple[str, list[Any]]:
    """The SQL condition (on ``all_lines l``) and parameters of the pending lines ``f`` selects."""
    where, params = ["l.status = 'pending_approval'"], []
    for column, value in (("doc_type", f.doc_type), ("risk_tier", f.tier), ("supplier_id", f.supplier),
                          ("dag_id", f.dag_id), ("ds", f.ds), ("run_id", f.run_id)):
        if value is not None:
            where.append(f"l.{column} = %s")
            params.append(value)
    if f.location is not None:
        where.append("(l.from_location = %s OR l.to_location = %s)")
        params += [f.location, f.location]
    if f.search is not None:
        pattern = "%" + f.search.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        where.append("concat_ws(' ', l.sku, l.business_key, l.from_location, l.to_location, l.supplier_id)"
                     " ILIKE %s")
        params.append(pattern)
    return " AND ".join(where), params


def list_pending(conn: psycopg.Connection, filters: LineFilter | None = None, *, user: Approver | None = None,
                 limit: int = DEFAULT_LIMIT, offset: int = 0, sort: str = "impact") -> list[dict[str, Any]]:
    """A page of the lines waiting for a decision, in the order of ``sort``.

    Args:
        conn: ERP staging connection.
        filters: document type, tier, location (from or to), supplier, DAG, logical date and search text.
        user: when given, each line says whether this user may decide it (``may_decide``).
        limit: at most this many lines (1 to ``MAX_LIMIT``).
        offset: lines of the order skipped before the page (paging).
        sort: a key of :data:`SORTS`; ``impact`` by default (critical first, the fast lane, then the highest tier
            and value).

    Returns:
        One JSON-safe dict per line; ``escalated`` is the newest escalation (``by``, ``at``, ``note``) or ``None``.

    Raises:
        BadRequest: a limit or offset that is not an integer in range, an unknown sort.
    """
    where, params = _pending_where(filters or LineFilter())
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_LIMIT:
        raise BadRequest(f"limit must be an integer from 1 to {MAX_LIMIT}, got {limit!r}")
    if isinstance(offset, bool) or not isinstance(offset, int) or offset < 0:
        raise BadRequest(f"offset must be a whole number, got {offset!r}")
    if sort not in SORTS:
        raise BadRequest(f"unknown sort {sort!r} (known: {', '.join(SORTS)})")
    with conn.transaction():
        # The page first, then each of its lines' newest escalation: never one lookup per pending line.
        rows = conn.execute(
            f"SELECT {', '.join(f'l.{c}' for c in _LIST_COLUMNS)}, escalated_by, escalated_at, escalation_note"
            f" FROM (SELECT l.* FROM erp_staging.all_lines l WHERE {where}"
            f" ORDER BY {SORTS[sort]}, l.doc_type, l.line_id LIMIT %s OFFSET %s) l"
            f" LEFT JOIN LATERAL ({_LAST_ESCALATION}) e ON true ORDER BY {SORTS[sort]}, l.doc_type, l.line_id",
            [*params, limit, offset],
        ).fetchall()
    lines = []
    for row in rows:
        line = _json_line(row[:len(_LIST_COLUMNS)])
        by, at, note = row[len(_LIST_COLUMNS):]
        line["escalated"] = None if at is None else {"by": by, "at": at.isoformat(), "note": note}
        if user is not None:
            line["may_decide"] = user.may_decide(line["doc_type"], line["risk_tier"])
        lines.append(line)
    return _with_supplier_cards(conn, lines)


def get_line(conn: psycopg.Connection, doc_type: str, line_id: int) -> dict[str, Any] | None:
    """One line of any status (what its chart is drawn for), as :func:`list_pending` gives a line; None if absent.

    Raises:
        BadRequest: an unknown document type.
    """
    if doc_type not in TABLES:
        raise BadRequest(f"unknown document type {doc_type!r} (known: {', '.join(TABLES)})")
    row = conn.execute(f"SELECT '{doc_type}', {', '.join(_LIST_COLUMNS[1:])} FROM erp_staging.{TABLES[doc_type]}"
                       " WHERE line_id = %s", (line_id,)).fetchone()
    return None if row is None else _json_line(row)


def _json_line(row: tuple) -> dict[str, Any]:
    """A row of :data:`_LIST_COLUMNS` as a JSON-safe dict (numbers as floats, dates as ISO text)."""
    line = dict(zip(_LIST_COLUMNS, row, strict=True))
    for key in ("quantity", "unit_cost", "value"):
        line[key] = float(line[key])
    for key in ("ds", "need_by"):
        line[key] = line[key].isoformat() if line[key] else None
    return line


def queue_counts(conn: psycopg.Connection, filters: LineFilter | None = None) -> dict[str, Any]:
    """How many pending lines ``filters`` selects and their value, in all and per tier and document type.

    Returns:
        ``{"total", "value", "by_tier": {tier: n}, "by_doc_type": {doc_type: n}}`` (only the ones present).
    """
    where, params = _pending_where(filters or LineFilter())
    rows = conn.execute(
        f"SELECT l.risk_tier, l.doc_type, count(*), sum(l.value) FROM erp_staging.all_lines l WHERE {where}"
        " GROUP BY l.risk_tier, l.doc_type", params).fetchall()
    by_tier: dict[str, int] = {}
    by_doc_type: dict[str, int] = {}
    for tier, doc_type, n, _ in rows:
        by_tier[tier] = by_tier.get(tier, 0) + n
        by_doc_type[doc_type] = by_doc_type.get(doc_type, 0) + n
    return {"total": sum(r[2] for r in rows), "value": round(float(sum(r[3] for r in rows)), 2),
            "by_tier": {t: by_tier[t] for t in reversed(TIERS) if t in by_tier},
            "by_doc_type": {d: by_doc_type[d] for d in TABLES if d in by_doc_type}}


#: What the approval page shows of a line's supplier scorecard.
CARD_FIELDS = ("week_end", "reliability", "otif", "fill_rate", "lead_time_mean", "lead_time_p90",
               "lead_time_trend_days_per_week")


def _with_supplier_cards(conn: psycopg.Connection, lines: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each line of a supplier gets ``supplier_card``: that supplier's newest weekly scorecard, or ``None``."""
    from include.erp.scorecards import latest_scorecards

    dates = [dt.date.fromisoformat(line["ds"]) for line in lines if line.get("supplier_id") and line.get("ds")]
    if not dates:
        return lines
    cards = latest_scorecards(conn, max(dates)).set_index("supplier_id")
    for line in lines:
        sup = line.get("supplier_id")
        if sup in cards.index:
            card = cards.loc[sup]
            line["supplier_card"] = {k: (card[k].isoformat() if k == "week_end" else
                                         None if pd.isna(card[k]) else round(float(card[k]), 3)) for k in CARD_FIELDS}
        else:
            line["supplier_card"] = None
    return lines


def _refusal(user: Approver, refused: list[tuple[str, int, str]]) -> str:
    """Why ``user`` may not decide the ``(doc_type, line_id, tier)`` lines: the lines and the roles that may."""
    tiers = sorted({t for _, _, t in refused}, key=TIERS.index)
    needs = sorted(set.intersection(*(set(user.deciders_of(d, t)) for d, _, t in refused)))
    kinds = sorted({d for d, _, _ in refused})
    apart = [d for d in kinds if d in user.deciders_by_doc_type]
    return (f"{user.describe()} may not decide {'/'.join(tiers)}-tier "
            + (f"{'/'.join(apart)} " if apart else "") + "lines: "
            + ", ".join(f"{d} #{i}" for d, i, _ in refused)
            + (f" (needs {' or '.join(needs)})" if needs else "")
            + ". Nothing was changed.")


@dataclass
class _Outcome:
    """What a request on a selection found besides the lines it acted on."""

    already_decided: list[dict[str, Any]] = field(default_factory=list)
    unknown: list[dict[str, Any]] = field(default_factory=list)

    def _message(self, done: str, already: str) -> str:
        parts = [done]
        if self.already_decided:
            parts.append(f"{already}: " + "; ".join(
                f"{d['doc_type']} #{d['line_id']} {d['status']} by {d['decided_by'] or 'the system'}"
                for d in self.already_decided))
        if self.unknown:
            parts.append("not found: " + ", ".join(f"{u['doc_type']} #{u['line_id']}" for u in self.unknown))
        return ". ".join(parts) + "."


@dataclass
class DecisionOutcome(_Outcome):
    """What a decision request did."""

    decided: list[dict[str, Any]] = field(default_factory=list)

    def message(self, approve: bool) -> str:
        verb = "approved" if approve else "rejected"
        return self._message(f"{len(self.decided)} line(s) {verb}", "already decided, first decision stands")

    def as_dict(self, approve: bool) -> dict[str, Any]:
        return {"decided": self.decided, "already_decided": self.already_decided, "unknown": self.unknown,
                "message": self.message(approve)}


@dataclass
class EscalationOutcome(_Outcome):
    """What an escalation request did.

    Attributes:
        escalated: the lines escalated now (``doc_type``, ``line_id``).
        lines: those lines as :func:`include.erp.escalation.escalation_message` shows them (with their run).
        note: the note as recorded.
    """

    escalated: list[dict[str, Any]] = field(default_factory=list)
    lines: list[dict[str, Any]] = field(default_factory=list, repr=False)
    note: str = ""

    def message(self) -> str:
        return self._message(f"{len(self.escalated)} line(s) escalated", "already decided, not escalated")

    def as_dict(self) -> dict[str, Any]:
        return {"escalated": self.escalated, "already_decided": self.already_decided, "unknown": self.unknown,
                "message": self.message()}


def parse_selection(raw: Any) -> list[tuple[str, int]]:
    """``[{"doc_type": ..., "line_id": ...}, ...]`` (or ``"doc_type:line_id"`` strings) as pairs.

    Taken strictly: a line id is a positive integer, as a JSON number without a fraction or as the digits
    of a ``"doc_type:line_id"`` key; ``"7"``, ``2.9``, ``true`` are refused, never rounded or coerced.

    Raises:
        BadRequest: an empty selection, an unknown document type or field, or a line id that is not a
            positive integer.
    """
    if not isinstance(raw, list | tuple) or not raw:
        raise BadRequest("select at least one line")
    out: list[tuple[str, int]] = []
    for n, item in enumerate(raw):
        if isinstance(item, str):
            if (problem := text_problem(item)) or len(item) > 100:
                raise BadRequest(f"line {n}: a line key {problem or 'is too long'}")
            match = _LINE_KEY.fullmatch(item)
            if match is None:
                raise BadRequest(f"line {n}: {item!r} is not doc_type:line_id with a positive integer line id")
            doc_type, line_id = match["doc_type"], int(match["line_id"])
        elif isinstance(item, dict):
            extra = sorted(set(item) - {"doc_type", "line_id"})
            if extra:
                raise BadRequest(f"line {n}: unknown fields {extra} (a line has doc_type and line_id)")
            doc_type, line_id = item.get("doc_type"), item.get("line_id")
            if isinstance(line_id, bool) or not isinstance(line_id, int):
                raise BadRequest(f"line {n}: line id must be an integer, got {type(line_id).__name__}")
        else:
            raise BadRequest(f"line {n}: a selected line must name doc_type and line_id, got {type(item).__name__}")
        if not isinstance(doc_type, str) or doc_type not in TABLES:
            raise BadRequest(f"line {n}: unknown document type {doc_type!r} (known: {', '.join(TABLES)})")
        if not 1 <= line_id <= MAX_LINE_ID:
            raise BadRequest(f"line {n}: line id must be from 1 to {MAX_LINE_ID}, got {line_id}")
        if (doc_type, line_id) not in out:
            out.append((doc_type, line_id))
    return out


def _require_decider(user: Approver) -> None:
    if not user.may_decide_any:
        raise NotAllowed(f"{user.describe()} may not approve or reject lines: the role is read only. "
                         "Nothing was changed.")


def _by_type(selection: list[tuple[str, int]]) -> dict[str, list[int]]:
    by_type: dict[str, list[int]] = {}
    for doc_type, line_id in selection:
        if doc_type not in TABLES:
            raise BadRequest(f"unknown document type {doc_type!r} (known: {', '.join(TABLES)})")
        by_type.setdefault(doc_type, []).append(int(line_id))
    return by_type


def _lock_and_check(conn: psycopg.Connection, user: Approver, selection: list[tuple[str, int]],
                    by_type: dict[str, list[int]], run: tuple[str, dt.date] | None) -> dict[tuple[str, int], tuple]:
    """Lock the selected lines (inside the caller's transaction) and check them as a whole.

    Returns:
        ``{(doc_type, line_id): (tier, status, decided_by)}`` of the lines found.

    Raises:
        OutsideRun: a line of another run than ``run``.
        NotAllowed: a pending line whose tier ``user`` may not decide.
    """
    found: dict[tuple[str, int], tuple[str, str, str | None]] = {}
    outside: list[str] = []
    for doc_type, ids in by_type.items():
        # Lock the selection before checking it, so the check and the action see the same lines.
        for line_id, tier, status, decided_by, dag_id, ds in conn.execute(
            f"SELECT line_id, risk_tier, status, decided_by, dag_id, ds FROM erp_staging.{TABLES[doc_type]}"
            " WHERE line_id = ANY(%s) ORDER BY line_id FOR UPDATE", (ids,),
        ).fetchall():
            found[(doc_type, line_id)] = (tier, status, decided_by)
            if run is not None and (dag_id, ds) != tuple(run):
                outside.append(f"{doc_type} #{line_id} (run {dag_id} {ds.isoformat()})")
    if outside:
        raise OutsideRun(f"{len(outside)} selected line(s) are not of run {run[0]} {run[1].isoformat()}: "
                         + ", ".join(outside) + ". Nothing was changed.")
    refused = [(d, i, found[(d, i)][0]) for d, i in selection
               if (d, i) in found and found[(d, i)][1] == "pending_approval"
               and not user.may_decide(d, found[(d, i)][0])]
    if refused:
        raise NotAllowed(_refusal(user, refused))
    return found


def decide_lines(conn: psycopg.Connection, user: Approver, selection: list[tuple[str, int]], *, approve: bool,
                 note: str | None = None, run: tuple[str, dt.date] | None = None) -> DecisionOutcome:
    """Approve or reject a selection of lines as ``user``, in one transaction.

    Args:
        conn: ERP staging connection.
        user: who decides (see :func:`approver`).
        selection: ``(doc_type, line_id)`` pairs.
        approve: approve (``True``) or reject (``False``).
        note: the user's note, recorded with each decision.
        run: ``(dag_id, ds)`` the selection must belong to (the run the user is looking at); ``None``
            when the caller deliberately decides lines of several runs.

    Returns:
        The lines decided now, those somebody decided first (with status and who), and unknown ids.

    Raises:
        NotAllowed: the user's role may not decide the tier of one or more selected lines (or any tier);
            nothing is changed.
        OutsideRun: one or more selected lines belong to another run than ``run``; nothing is changed.
        BadRequest: a malformed selection or a note that is too long or cannot be stored.
    """
    if not isinstance(approve, bool):
        raise BadRequest(f"approve must be true or false, got {approve!r}")
    _require_decider(user)
    note = clean_note(note)
    by_type = _by_type(selection)
    outcome = DecisionOutcome()
    with conn.transaction():
        _lock_and_check(conn, user, selection, by_type, run)
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


def override_line(conn: psycopg.Connection, user: Approver, line: tuple[str, int], *, quantity: float, reason: str,
                  policy: Policy, note: str | None = None, run: tuple[str, dt.date] | None = None,
                  source: str | None = None) -> DecisionOutcome:
    """Approve one pending line with another quantity or source than the proposed ones, as ``user``.

    The line keeps the proposed quantity (``proposed_quantity``) and source (``proposed_source``), who overrode
    it and the reason code; its quantity, source, unit cost and value become the approved ones, which is what is
    released. The audit trail records an ``overridden`` entry (both quantities, sources and values, the reason,
    the tier the new value implies) and the ``approved`` one. A critical line is released at once, as any
    approved critical line.

    Args:
        line: ``(doc_type, line_id)``.
        quantity: the approved quantity: from 0 to ``policy.overrides.max_ratio`` times the proposed one (at
            least up to ``min_ceiling``).
        reason: one of ``policy.overrides.reason_codes``.
        policy: the governance policy (bounds, reason codes, tier rules).
        note: the user's note, recorded with the decision.
        run: ``(dag_id, ds)`` the line must belong to.
        source: another supplier (an order) or distribution centre (a transfer) to approve the line from: one
            of the line's ``explanation["source_options"]`` (:mod:`include.decisions.sources`), whose unit cost
            the line takes; ``None`` or the proposed source keeps it. The quantity must meet the supplier's
            minimum order, or fit the DC's free stock.

    Returns:
        The outcome, as :func:`decide_lines` (the line decided, or already decided by someone, or unknown).

    Raises:
        BadRequest: a document type the policy does not let a planner change, an unknown reason code, a quantity
            that is not a number in bounds, a source that is not one of the line's options, or the proposed
            quantity and source unchanged (that is a plain approval); nothing is changed.
        NotAllowed: the user may not decide the line's tier, or the tier its new value implies (a value rule
            of the policy); nothing is changed.
        OutsideRun: the line is of another run than ``run``.
    """
    from include.erp.staging import SOURCE_COLUMNS, Override
    from include.governance.policy import assign_tier

    rules = policy.overrides
    doc_type, line_id = line
    if doc_type not in rules.doc_types:
        raise BadRequest(f"a {doc_type} line cannot be overridden (policy overrides.doc_types: "
                         f"{', '.join(rules.doc_types)}): approve or reject it")
    if reason not in rules.reason_codes:
        raise BadRequest(f"unknown override reason {reason!r} (policy overrides.reason_codes: "
                         f"{', '.join(rules.reason_codes)})")
    if isinstance(quantity, bool) or not isinstance(quantity, int | float) or not quantity == quantity \
            or quantity in (float("inf"), float("-inf")):
        raise BadRequest(f"quantity must be a number, got {quantity!r}")
    if source is not None and doc_type not in SOURCE_COLUMNS:
        raise BadRequest(f"the source of a {doc_type} line cannot be changed, only its quantity")
    _require_decider(user)
    note = clean_note(note)
    outcome = DecisionOutcome()
    with conn.transaction():
        found = _lock_and_check(conn, user, [line], {doc_type: [line_id]}, run)
        if (doc_type, line_id) not in found:
            outcome.unknown.append({"doc_type": doc_type, "line_id": line_id})
            return outcome
        column = SOURCE_COLUMNS.get(doc_type, "NULL")
        row = conn.execute(
            f"SELECT status, decided_by, quantity, unit_cost, action, risk_tier, explanation, {column}"
            f" FROM erp_staging.{TABLES[doc_type]} WHERE line_id = %s", (line_id,)).fetchone()
        status, decided_by, proposed, unit_cost, action, tier, explanation, proposed_source = row
        if status != "pending_approval":
            outcome.already_decided.append({"doc_type": doc_type, "line_id": line_id, "status": status,
                                            "decided_by": decided_by})
            return outcome
        proposed, unit_cost = float(proposed), float(unit_cost)
        ceiling = rules.ceiling(proposed)
        quantity = round(float(quantity), 2)
        what = f"{doc_type} #{line_id}"
        if not 0 <= quantity <= ceiling:
            raise BadRequest(f"{what}: quantity {quantity:g} is outside 0 to {ceiling:g} (policy overrides.max_ratio"
                             f" {rules.max_ratio:g} x the proposed {proposed:g}). Nothing was changed.")
        moved = source is not None and source != proposed_source
        if moved:
            unit_cost = _source_unit_cost(what, doc_type, explanation or {}, source, quantity, unit_cost)
        if quantity == proposed and not moved:
            raise BadRequest(f"{what}: {quantity:g} from {proposed_source or 'its source'} is what was proposed:"
                             " approve the line instead")
        value = round(quantity * unit_cost, 2)
        implied, reasons = assign_tier({"doc_type": doc_type, "quantity": quantity, "value": value, "action": action,
                                        "explanation": explanation or {}}, policy)
        after = max(tier, implied, key=TIERS.index)
        if not user.may_decide(doc_type, after):
            raise NotAllowed(f"{user.describe()} may not approve {what} with {quantity:g}: at a value "
                             f"of {value:,.2f} it is a {after}-tier line ({', '.join(reasons)}), decided by "
                             f"{' or '.join(user.deciders_of(doc_type, after))}. Nothing was changed.")
        details: dict[str, Any] = {"tier": tier, "tier_after": after}
        if moved:
            details.update(proposed_source=proposed_source, source=source, unit_cost=unit_cost)
        decide(conn, doc_type, [line_id], approve=True, user=user.username, note=note,
               overrides={line_id: Override(quantity, value, reason, details,
                                            source=source if moved else None, unit_cost=unit_cost)})
        outcome.decided.append({"doc_type": doc_type, "line_id": line_id, "quantity": quantity,
                                "proposed_quantity": proposed, "value": value,
                                "source": source if moved else proposed_source, "proposed_source": proposed_source})
    return outcome


def _source_unit_cost(what: str, doc_type: str, explanation: dict[str, Any], source: str, quantity: float,
                      unit_cost: float) -> float:
    """The unit cost of approving the line from ``source``, one of its ``source_options``.

    Raises:
        BadRequest: ``source`` is not an option of the line, or ``quantity`` is below the supplier's minimum
            order or above the DC's free stock.
    """
    key = "supplier_id" if doc_type == "replenishment" else "from_location"
    options = {str(o.get(key)): o for o in explanation.get("source_options") or [] if isinstance(o, dict)}
    if source not in options:
        offered = ", ".join(options) or "none"
        raise BadRequest(f"{what}: {source!r} is not one of the line's other sources (offered: {offered})."
                         " Nothing was changed.")
    option = options[source]
    if doc_type == "replenishment":
        moq = float(option.get("moq_units") or 0)
        if quantity < moq:
            raise BadRequest(f"{what}: {quantity:g} is below {source}'s minimum order of {moq:g}. Nothing was changed.")
        return float(option.get("unit_cost") or unit_cost)
    free = float(option.get("free_stock") or 0)
    if quantity > free:
        raise BadRequest(f"{what}: {source} had {free:g} free when the line was proposed, less than {quantity:g}."
                         " Nothing was changed.")
    return unit_cost


#: What an escalation message shows of a line, with what its audit entry needs.
_ESCALATED_COLUMNS = ("doc_type", "line_id", "idempotency_key", "dag_id", "run_id", "ds", "action", "quantity",
                      "sku", "to_location", "value", "risk_tier", "critical_reason")


def escalate_lines(conn: psycopg.Connection, user: Approver, selection: list[tuple[str, int]], *, note: str | None,
                   channel: str, run: tuple[str, dt.date] | None = None) -> EscalationOutcome:
    """Hand pending lines up without deciding them, as ``user``, in one transaction.

    Each pending line gets an ``escalated`` audit entry with the user as actor, their note, and
    ``details`` ``{"by": user, "channel": channel}``; the line stays ``pending_approval`` with its tier, and
    may be escalated again. The checks are those of :func:`decide_lines`: only a user who may decide a
    pending line may escalate it. Sending the message is the caller's
    (:func:`include.erp.escalation.escalation_message` of ``outcome.lines``, then
    :func:`include.erp.escalation.deliver`), after this transaction.

    Args:
        conn: ERP staging connection.
        user: who escalates (see :func:`approver`).
        selection: ``(doc_type, line_id)`` pairs.
        note: why the lines go up; required.
        channel: the policy's escalation channel (``fast_lane.escalation.channel``), recorded in the trail.
        run: ``(dag_id, ds)`` the selection must belong to; ``None`` for lines of several runs.

    Returns:
        The lines escalated now (and, in ``lines``, what the message shows of them), those already
        decided (with status and who), and unknown ids.

    Raises:
        NotAllowed: the user's role may not decide the tier of one or more selected pending lines (or any
            tier); nothing is changed.
        OutsideRun: one or more selected lines belong to another run than ``run``; nothing is changed.
        BadRequest: no note, a note that is too long or cannot be stored, or a malformed selection.
    """
    _require_decider(user)
    note = clean_note(note)
    if note is None:
        raise BadRequest(f"{NOTE_REQUIRED}. Nothing was changed.")
    by_type = _by_type(selection)
    outcome = EscalationOutcome(note=note)
    with conn.transaction():
        found = _lock_and_check(conn, user, selection, by_type, run)
        pending = [key for key in selection if key in found and found[key][1] == "pending_approval"]
        outcome.unknown = [{"doc_type": d, "line_id": i} for d, i in selection if (d, i) not in found]
        outcome.already_decided = [{"doc_type": d, "line_id": i, "status": found[(d, i)][1],
                                    "decided_by": found[(d, i)][2]} for d, i in selection
                                   if (d, i) in found and (d, i) not in pending]
        for doc_type, line_id in pending:
            row = conn.execute(
                f"SELECT {', '.join(_ESCALATED_COLUMNS[1:-1])}, explanation->>'critical_reason'"
                f" FROM erp_staging.{TABLES[doc_type]} WHERE line_id = %s", (line_id,)).fetchone()
            line = {"doc_type": doc_type, **dict(zip(_ESCALATED_COLUMNS[1:], row, strict=True))}
            audit(conn, "escalated", actor=user.username, doc_type=line["doc_type"], key=line["idempotency_key"],
                  from_status="pending_approval", to_status="pending_approval", dag_id=line["dag_id"],
                  run_id=line["run_id"], ds=line["ds"], note=note, details={"by": user.username, "channel": channel})
            outcome.escalated.append({"doc_type": line["doc_type"], "line_id": line["line_id"]})
            outcome.lines.append(line)
    return outcome
