"""Shelfwise approvals: the planners' line-level review page inside the Airflow UI.

A FastAPI app mounted by the API server under ``/shelfwise`` (``fastapi_apps``) and a navigation entry
(``external_views``) that shows the page in the Airflow UI. Plugin apps are not protected by Airflow
automatically, so every endpoint resolves the caller with Airflow's own login (the JWT the UI holds in
its ``_token`` cookie, or an ``Authorization: Bearer`` header) through the API server's ``get_user``
dependency (:mod:`shelfwise_web`, shared with the executive dashboard), and every decision is checked
against the caller's role by ``include.erp.approvals``.

Input is validated strictly by the pydantic models below before any SQL runs: no coercion (``"yes"``,
``0``, ``2.9``, ``true`` are refused where a boolean or a line id is expected), unknown or repeated
parameters are refused, and text PostgreSQL cannot store (NUL, lone surrogates) is refused. A bad request
is answered 422 with ``detail`` naming each field and ``errors`` listing them (``loc``, ``msg``, ``type``).
A decision names the run it is about (``dag_id`` and ``ds``, as the page shows it) and lines of another
run are refused with 409; deciding lines of several runs at once takes ``"across_runs": true``.

An escalation hands pending lines up without deciding them: same body, protections and checks as a
decision (no ``approve``, a required ``note``); each line gets an ``escalated`` audit entry and stays
pending, then one message goes through the policy's ``fast_lane.escalation`` channel (a failed delivery is
logged; the audit entry stands). The page marks lines escalated since they were staged.

Every response carries ``Content-Security-Policy`` (the page: scripts and styles only by per-response
nonce, framing only by the Airflow UI of the same origin), ``X-Content-Type-Options: nosniff``,
``Referrer-Policy`` and ``Cache-Control: no-store`` (:func:`shelfwise_web.protect`). See SECURITY.md.

Endpoints:
    GET  /shelfwise/approvals       the page (unauthenticated: redirect to the Airflow login)
    GET  /shelfwise/api/me          who the caller is and which tiers they may decide
    GET  /shelfwise/api/lines       pending lines, each with its sentence (``why``); filters doc_type, tier,
                                    location, supplier, dag_id, ds, search; sort, limit, offset; with the counts
                                    per tier and document type
    GET  /shelfwise/api/chart       ?line=replenishment:12: the numbers of the line's chart
                                    (include.reporting.line_chart); /api/chart.svg the same as an image
    POST /shelfwise/api/decisions   {"lines": ["transfer:12", {"doc_type": "replenishment", "line_id": 7}],
                                     "approve": true, "note": "...", "dag_id": "retail_nightly",
                                     "ds": "2026-11-27"}  (or "across_runs": true instead of dag_id/ds)
    POST /shelfwise/api/escalations {"lines": [...], "note": "why it goes up", "dag_id": ..., "ds": ...}
    POST /shelfwise/api/overrides   {"lines": ["replenishment:7"], "quantity": 40, "reason": "promotion_plan",
                                     "source": "SUP004", "note": "...", "dag_id": ..., "ds": ...}: approve one
                                     line with another quantity or source (bounds and reason codes: the policy's
                                     ``overrides``; sources: the line's ``source_options``)
"""

from __future__ import annotations

import datetime as dt
import html
import json
import logging
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any, Literal
from urllib.parse import urlencode

import shelfwise_web as web  # plugins/ is on sys.path in every Airflow process, as a plugins folder is
from airflow.plugins_manager import AirflowPlugin
from fastapi import Depends, FastAPI, HTTPException, Request, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, Response
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    StringConstraints,
    Tag,
    ValidationError,
)

log = logging.getLogger(__name__)

URL_PREFIX = "/shelfwise"
PAGE = f"{URL_PREFIX}/approvals"
FILTERS = ("doc_type", "tier", "location", "supplier", "dag_id", "ds", "run_id", "search")
#: ``include.erp.approvals.SORTS`` (a unit test keeps them equal), with what the page calls them.
SORTS = {"impact": "impact (critical, tier, value)", "value": "value", "deadline": "need-by date",
         "cover": "days to stock-out"}
#: ``include.erp.staging.TABLES`` and ``include.governance.policy.TIERS`` (a unit test keeps them equal);
#: spelled out so that loading the plugin does not import pandas into every Airflow process.
DOC_TYPES = ("replenishment", "transfer", "po_exception", "fulfilment_assignment", "return_disposition",
             "finance_review")
TIERS = ("low", "medium", "high")
DocType = Literal["replenishment", "transfer", "po_exception", "fulfilment_assignment", "return_disposition",
                  "finance_review"]
Tier = Literal["low", "medium", "high"]
MAX_LINES = 5000
MAX_LINE_ID = 2**63 - 1
MAX_NOTE_CHARS = 2000
MAX_BODY_BYTES = 1_000_000
LINE_KEY_PATTERN = rf"^({'|'.join(DOC_TYPES)}):[1-9][0-9]{{0,18}}$"

# --- request models ----------------------------------------------------------------------------------


Note = Annotated[str, StringConstraints(max_length=MAX_NOTE_CHARS), web.text_check(multiline=True)]
LineKey = Annotated[str, StringConstraints(pattern=LINE_KEY_PATTERN)]


class LinesQuery(BaseModel):
    """Filters of the pending lines (query string of the page and of ``/api/lines``); empty means any."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    doc_type: Annotated[DocType | None, BeforeValidator(web.blank_is_none)] = None
    tier: Annotated[Tier | None, BeforeValidator(web.blank_is_none)] = None
    location: Annotated[web.FilterText | None, BeforeValidator(web.blank_is_none)] = None
    supplier: Annotated[web.FilterText | None, BeforeValidator(web.blank_is_none)] = None
    dag_id: Annotated[web.DagId | None, BeforeValidator(web.blank_is_none)] = None
    ds: Annotated[dt.date | None, BeforeValidator(web.iso_date)] = None
    run_id: Annotated[web.FilterText | None, BeforeValidator(web.blank_is_none)] = None
    search: Annotated[web.FilterText | None, BeforeValidator(web.blank_is_none)] = None
    sort: Annotated[Literal["impact", "value", "deadline", "cover"], BeforeValidator(web.blank_is_none)] = "impact"
    limit: Annotated[int, BeforeValidator(web.whole_number), Field(ge=1, le=MAX_LINES)] = 500
    offset: Annotated[int, BeforeValidator(web.whole_number), Field(ge=0, le=10_000_000)] = 0

    def line_filter(self):
        from include.erp.approvals import LineFilter

        return LineFilter(**self.model_dump(include=set(FILTERS)))

    @property
    def run(self) -> tuple[str, dt.date] | None:
        """The one run the filters show, when they name both its DAG and date."""
        return (self.dag_id, self.ds) if self.dag_id and self.ds else None


class LineRef(BaseModel):
    """A selected line as an object."""

    model_config = ConfigDict(extra="forbid", strict=True)

    doc_type: DocType
    line_id: Annotated[int, Field(ge=1, le=MAX_LINE_ID)]


def _line_kind(value: Any) -> str | None:
    if isinstance(value, str):
        return "key"
    if isinstance(value, dict | LineRef):
        return "ref"
    return None


SelectedLine = Annotated[
    Annotated[LineRef, Tag("ref")] | Annotated[LineKey, Tag("key")],
    Discriminator(_line_kind, custom_error_type="line_type",
                  custom_error_message='a line is "doc_type:line_id" or {"doc_type": ..., "line_id": ...}'),
]


def _note_given(value: str) -> str:
    from include.erp.approvals import NOTE_REQUIRED

    if not value.strip():
        raise ValueError(NOTE_REQUIRED)
    return value


class SelectionBody(BaseModel):
    """A selection of lines of one run (or, with ``across_runs``, of several) and a note."""

    model_config = ConfigDict(extra="forbid", strict=True)

    lines: list[SelectedLine] = Field(min_length=1, max_length=MAX_LINES)
    note: Note | None = None
    dag_id: web.DagId | None = None
    ds: dt.date | None = None
    across_runs: bool = False

    def scope_errors(self) -> list[dict[str, Any]]:
        """Errors in the shape of pydantic's when the request does not say which run it decides."""
        if self.across_runs and (self.dag_id is not None or self.ds is not None):
            return [{"loc": ("across_runs",), "type": "scope",
                     "msg": "name one run (dag_id and ds) or set across_runs, not both"}]
        if self.across_runs:
            return []
        missing = [name for name in ("dag_id", "ds") if getattr(self, name) is None]
        return [{"loc": (name,), "type": "missing",
                 "msg": "name the run the lines belong to (dag_id and ds), or set across_runs: true "
                        "to decide lines of several runs"} for name in missing]

    def selection(self) -> list[Any]:
        return [line if isinstance(line, str) else line.model_dump() for line in self.lines]

    @property
    def run(self) -> tuple[str, dt.date] | None:
        """The run the lines must belong to; ``None`` across runs."""
        return None if self.across_runs else (self.dag_id, self.ds)


class DecisionBody(SelectionBody):
    """A decision on a selection of lines: approve or reject."""

    approve: bool


class EscalationBody(SelectionBody):
    """An escalation of a selection of pending lines: handed up undecided, with the reason."""

    note: Annotated[Note, AfterValidator(_note_given)]


class OverrideBody(SelectionBody):
    """An approval of one line with another quantity or source: the quantity, a reason code, the run, optionally
    another source (a supplier or DC id) and a note."""

    lines: list[SelectedLine] = Field(min_length=1, max_length=1)
    quantity: Annotated[float, Field(ge=0, allow_inf_nan=False)]
    reason: Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,39}$")]
    source: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$")] | None = None


def parse_query(request: Request) -> LinesQuery:
    """The query string as :class:`LinesQuery`; a parameter given twice is refused, not overridden.

    Raises:
        RequestValidationError: with ``loc`` ``("query", <parameter>)``.
    """
    return web.validated_query(request, LinesQuery)


async def decision_body(request: Request) -> DecisionBody:
    """The JSON body as :class:`DecisionBody` (see :func:`selection_body`)."""
    return await selection_body(request, DecisionBody, "decision")


async def escalation_body(request: Request) -> EscalationBody:
    """The JSON body as :class:`EscalationBody` (see :func:`selection_body`)."""
    return await selection_body(request, EscalationBody, "escalation")


async def override_body(request: Request) -> OverrideBody:
    """The JSON body as :class:`OverrideBody` (see :func:`selection_body`)."""
    return await selection_body(request, OverrideBody, "override")


async def selection_body(request: Request, model: type[SelectionBody], what: str) -> Any:
    """The JSON body as ``model``, parsed in pydantic's strict JSON mode.

    Raises:
        HTTPException: 415 for a body that is not ``application/json``; 413 for one over 1 MB.
        RequestValidationError: with ``loc`` ``("body", ...)``.
    """
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != "application/json":
        # Also keeps cross-site HTML forms out: they cannot send application/json.
        raise HTTPException(status.HTTP_415_UNSUPPORTED_MEDIA_TYPE, f"send the {what} as application/json")
    raw = await request.body()
    if len(raw) > MAX_BODY_BYTES:
        raise HTTPException(413,
                            f"the request has {len(raw)} bytes; at most {MAX_BODY_BYTES}")
    if errors := _lone_surrogates(raw):
        raise RequestValidationError(errors, body={"where": "body"})
    try:
        body = model.model_validate_json(raw)
    except ValidationError as exc:
        raise RequestValidationError(exc.errors(include_url=False, include_input=False, include_context=False),
                                     body={"where": "body"}) from None
    if errors := body.scope_errors():
        raise RequestValidationError(errors, body={"where": "body"})
    return body


def _lone_surrogates(raw: bytes) -> list[dict[str, Any]]:
    """Errors naming each string of a JSON body that holds a lone surrogate (``"\\ud800"``).

    Strict JSON parsing refuses such a body as a whole; this names the field. A body that is not JSON at
    all is left to the model's parser, which says where it breaks.
    """
    try:
        parsed = json.loads(raw)
    except ValueError:
        return []
    found: list[dict[str, Any]] = []

    def bad(text: str) -> bool:
        return any(0xD800 <= ord(c) <= 0xDFFF for c in text)

    def walk(node: Any, loc: tuple[Any, ...]) -> None:
        if isinstance(node, str) and bad(node):
            found.append({"loc": loc, "type": "string_unicode", "msg": "contains a lone surrogate (not valid Unicode)"})
        elif isinstance(node, dict):
            for key, value in node.items():
                if bad(key):
                    found.append({"loc": (*loc, key), "type": "string_unicode",
                                  "msg": "the field name contains a lone surrogate (not valid Unicode)"})
                else:
                    walk(value, (*loc, key))
        elif isinstance(node, list):
            for i, value in enumerate(node):
                walk(value, (*loc, i))

    walk(parsed, ())
    return found


# --- the app ---------------------------------------------------------------------------------------------


Query = Annotated[LinesQuery, Depends(parse_query)]
Decision = Annotated[DecisionBody, Depends(decision_body)]
Escalation = Annotated[EscalationBody, Depends(escalation_body)]
OverrideRequest = Annotated[OverrideBody, Depends(override_body)]


@contextmanager
def _answering_refusals(who, body: SelectionBody, what: str) -> Iterator[None]:
    """The domain's refusals as HTTP answers: 403 (role), 409 (another run), 422 (bad request)."""
    from include.erp.approvals import BadRequest, NotAllowed, OutsideRun

    try:
        yield
    except NotAllowed as exc:
        log.warning("refused %s by %s on %d line(s): %s", what, who.username, len(body.lines), exc)
        raise HTTPException(status.HTTP_403_FORBIDDEN, str(exc)) from exc
    except OutsideRun as exc:
        log.warning("refused %s by %s: lines outside the named run", what, who.username)
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from exc
    except BadRequest as exc:
        raise HTTPException(422, str(exc)) from exc


def create_app() -> FastAPI:
    """The approvals app, mounted by the Airflow API server at ``/shelfwise``."""
    app = web.protect(FastAPI(title="Shelfwise approvals", docs_url=None, redoc_url=None, openapi_url=None),
                  pages=("/approvals",))

    @app.get("/api/me")
    def me(user: web.CurrentUser) -> dict[str, Any]:
        who = web.approver(user)
        return {"username": who.username, "airflow_roles": list(who.airflow_roles), "roles": sorted(who.roles),
                "tiers": list(who.tiers), "tiers_by_doc_type": {d: list(t) for d, t in who.tiers_by_doc_type.items()}}

    @app.get("/api/lines")
    def lines(user: web.CurrentUser, query: Query) -> dict[str, Any]:
        from include.erp.approvals import list_pending, queue_counts
        from include.reporting.line_text import line_story

        who = web.approver(user)
        with web.connect() as conn:
            found = list_pending(conn, query.line_filter(), user=who, limit=query.limit, offset=query.offset,
                                 sort=query.sort)
            counts = queue_counts(conn, query.line_filter())
        currency = web.policy().currency
        for line in found:
            line["why"] = line_story(line, currency)
        return {"user": who.username, "tiers": list(who.tiers), "count": len(found), "offset": query.offset,
                "sort": query.sort, **counts, "lines": found}

    @app.post("/api/decisions")
    def decisions(user: web.CurrentUser, body: Decision) -> dict[str, Any]:
        from include.erp.approvals import decide_lines, parse_selection

        who = web.approver(user)
        with _answering_refusals(who, body, "decision"):
            selection = parse_selection(body.selection())
            with web.connect() as conn:
                outcome = decide_lines(conn, who, selection, approve=body.approve, note=body.note, run=body.run)
        log.info("%s %s %d line(s)%s", who.username, "approved" if body.approve else "rejected",
                 len(outcome.decided), " across runs" if body.run is None else "")
        return outcome.as_dict(body.approve)

    @app.post("/api/escalations")
    def escalations(user: web.CurrentUser, body: Escalation) -> dict[str, Any]:
        from include.erp.approvals import escalate_lines, parse_selection
        from include.erp.escalation import deliver, escalation_message

        who = web.approver(user)
        settings = web.policy().fast_lane.escalation
        with _answering_refusals(who, body, "escalation"):
            selection = parse_selection(body.selection())
            with web.connect() as conn:
                outcome = escalate_lines(conn, who, selection, note=body.note, channel=settings.channel, run=body.run)
        log.info("%s escalated %d line(s) through %s", who.username, len(outcome.escalated), settings.channel)
        if outcome.lines:
            dag_id, ds = body.run or (None, None)
            message = escalation_message(dag_id, ds, outcome.lines, settings.recipients, by=who.username,
                                         note=outcome.note)
            deliver(settings, message, subject=f"Shelfwise: {who.username} escalated line(s) for a decision")
        return outcome.as_dict()

    @app.post("/api/overrides")
    def overrides(user: web.CurrentUser, body: OverrideRequest) -> dict[str, Any]:
        from include.erp.approvals import override_line, parse_selection

        who = web.approver(user)
        with _answering_refusals(who, body, "override"):
            (line,) = parse_selection(body.selection())
            with web.connect() as conn:
                outcome = override_line(conn, who, line, quantity=body.quantity, reason=body.reason,
                                        policy=web.policy(), note=body.note, run=body.run, source=body.source)
        answer = outcome.as_dict(True)
        if outcome.decided:
            done = outcome.decided[0]
            change = _override_change(done)
            answer["message"] = f"{done['doc_type']} #{done['line_id']} approved with {change} ({body.reason})."
            log.info("%s approved %s #%s with %s (%s)", who.username, done["doc_type"], done["line_id"], change,
                     body.reason)
        return answer

    def _chart_line(line: str):
        from include.erp.approvals import BadRequest, get_line, parse_selection

        try:
            ((doc_type, line_id),) = parse_selection([line])
        except BadRequest as exc:
            raise HTTPException(422, str(exc)) from exc
        with web.connect() as conn:
            found = get_line(conn, doc_type, line_id)
        if found is None:
            raise HTTPException(404, f"no {doc_type} line #{line_id}")
        return found

    @app.get("/api/chart")
    def chart(user: web.CurrentUser, line: str = "") -> dict[str, Any]:
        """The numbers of a line's chart (any signed-in user who may read lines)."""
        from include.reporting.line_chart import chart_data

        return chart_data(_chart_line(line))

    @app.get("/api/chart.svg")
    def chart_image(user: web.CurrentUser, line: str = "") -> Response:
        """The line's chart as an SVG image (the page shows it in an ``img``)."""
        from include.reporting.line_chart import chart_data, chart_svg

        return Response(chart_svg(chart_data(_chart_line(line))), media_type="image/svg+xml")

    @app.get("/approvals", response_class=HTMLResponse)
    def page(user: web.CurrentUser, request: Request) -> HTMLResponse:
        from include.erp.approvals import list_pending, queue_counts

        who = web.approver(user)
        try:
            query, error = parse_query(request), ""
        except RequestValidationError as exc:
            answer = json.loads(web.validation_answer(list(exc.errors()), "query").body)
            query, error = None, answer["detail"]
        found, counts = [], None
        if query is not None:
            with web.connect() as conn:
                found = list_pending(conn, query.line_filter(), user=who, limit=query.limit, offset=query.offset,
                                     sort=query.sort)
                counts = queue_counts(conn, query.line_filter())
        nonce = secrets.token_urlsafe(16)
        return HTMLResponse(_render(who, found, query, error, nonce, web.policy(), counts),
                            status_code=422 if error else status.HTTP_200_OK,
                            headers={"Content-Security-Policy": web.page_csp(nonce)})

    return app


def _esc(value: Any) -> str:
    # A lone surrogate cannot be encoded as UTF-8: shown as its escape rather than failing the page.
    text = "" if value is None else str(value)
    return html.escape(text.encode("utf-8", "backslashreplace").decode("utf-8"))


def _explain(line: dict[str, Any], currency: str) -> str:
    """Why the line exists in a sentence or two (:func:`include.reporting.line_text.line_story`), its numbers
    with their units one click away (open when there is no sentence), and its tier's reasons."""
    from include.reporting.line_text import line_numbers, line_story

    story = line_story(line, currency)
    numbers = "".join(f"<dt>{_esc(label)}</dt><dd>{_esc(text)}</dd>" for label, text in line_numbers(line, currency))
    reasons = ", ".join(line.get("tier_reasons") or []) or "none"
    body = f'<p class="story">{_esc(story)}</p>' if story else ""
    if numbers:
        body += f'<details class="numbers"{"" if story else " open"}><summary>numbers</summary><dl>{numbers}</dl></details>'
    return body + f'<em class="reasons">tier reasons: {_esc(reasons.replace("_", " "))}</em>'


def _supplier(line: dict[str, Any]) -> str:
    """The supplier, with its newest scorecard (reliability, OTIF, lead time) when it has one."""
    card = line.get("supplier_card")
    if not card:
        return _esc(line["supplier_id"])
    parts = []
    if card.get("reliability") is not None:
        parts.append(f"reliability {card['reliability']:.0f}/100")
    if card.get("otif") is not None:
        parts.append(f"OTIF {card['otif']:.0%}")
    if card.get("lead_time_mean") is not None:
        p90 = card.get("lead_time_p90")
        parts.append(f"lead time {card['lead_time_mean']:.1f} d" + (f" (p90 {p90:.0f})" if p90 is not None else ""))
    return (f'{_esc(line["supplier_id"])}<br><small class="card" title="week ending {_esc(card.get("week_end"))}">'
            f'{_esc(" · ".join(parts))}</small>')


def _escalation_title(up: dict[str, Any]) -> str:
    """``escalated by finance, 2026-11-27 08:15 UTC: <note>``: the newest escalation of a line."""
    at = dt.datetime.fromisoformat(up["at"]).astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    return f"escalated by {up['by']}, {at}" + (f": {up['note']}" if up.get("note") else "")


def _chart_control(line: dict[str, Any], key: str) -> str:
    """A closed *Chart* disclosure whose image (history, forecast, stock with and without the line) loads when
    opened; for the document types that move stock to a location."""
    if line["doc_type"] not in ("replenishment", "transfer") or not line.get("to_location"):
        return ""
    alt = f"{line['doc_type']} #{line['line_id']}: demand, forecast and stock of {line['sku']} at {line['to_location']}"
    return (f'<details class="chart"><summary>Chart</summary><img alt="{_esc(alt)}" width="640"'
            f' data-src="{URL_PREFIX}/api/chart.svg?{_esc(urlencode({"line": key}))}"></details>')


def _override_change(done: dict[str, Any]) -> str:
    """``40 instead of the proposed 25, from SUP004 instead of SUP002``: what an override changed."""
    parts = []
    if done["quantity"] != done["proposed_quantity"]:
        parts.append(f"{done['quantity']:g} instead of the proposed {done['proposed_quantity']:g}")
    if done.get("source") != done.get("proposed_source"):
        parts.append(f"{done['quantity']:g} from {done['source']} instead of {done['proposed_source']}"
                     if not parts else f"from {done['source']} instead of {done['proposed_source']}")
    return ", ".join(parts)


def _source_choices(line: dict[str, Any]) -> str:
    """The ``<select>`` of the line's sources: the proposed one, then its ``source_options`` with what sets
    them apart (cost, lead time, minimum order and reliability of a supplier; free stock of a DC)."""
    options = (line.get("explanation") or {}).get("source_options") or []
    if not options:
        return ""
    if line["doc_type"] == "replenishment":
        current = line["supplier_id"]
        labels = []
        for o in options:
            facts = [f"cost {o['unit_cost']:,.2f}" if o.get("unit_cost") is not None else "",
                     f"{o['lead_time_days']:g} d lead time" if o.get("lead_time_days") is not None else "",
                     f"MOQ {o['moq_units']:g}" if o.get("moq_units") else "",
                     f"reliability {o['reliability']:.0f}/100" if o.get("reliability") is not None else ""]
            labels.append((o["supplier_id"], f"{o['supplier_id']} ({', '.join(f for f in facts if f)})"))
        what = "supplier"
    else:
        current = line["from_location"]
        labels = [(o["from_location"], f"{o['from_location']} ({o.get('region')}, {o['free_stock']:,.0f} free)")
                  for o in options]
        what = "ship from"
    choices = f'<option value="" selected>{_esc(current)} (proposed)</option>' + "".join(
        f'<option value="{_esc(value)}">{_esc(label)}</option>' for value, label in labels)
    return f' <label>{what} <select class="source">{choices}</select></label>'


def _override_form(line: dict[str, Any], key: str, overrides: Any) -> str:
    """The control that approves a line with another quantity or source (the policy's ``overrides``; the
    line's ``source_options``), for the document types a planner may change."""
    if line["doc_type"] not in overrides.doc_types:
        return ""
    reasons = "".join(f'<option value="{_esc(r)}">{_esc(r.replace("_", " "))}</option>' for r in overrides.reason_codes)
    ceiling = overrides.ceiling(line["quantity"])
    sources = _source_choices(line)
    return (f'<details class="override"><summary>Change quantity{" or source" if sources else ""}</summary>'
            f'<label>approved quantity <input type="number" class="qty" min="0" max="{ceiling:.2f}" step="any"'
            f' value="{line["quantity"]:.2f}"></label>{sources} <label>reason <select class="reason">{reasons}'
            f'</select></label> <button class="override" data-line="{key}">Approve with these</button></details>')


def _queue_summary(counts: dict[str, Any] | None, query: LinesQuery | None, shown: dict[str, str], n: int,
                   currency: str) -> str:
    """The queue's counts (in all, per tier and document type) and the links to the pages before and after."""
    if not counts or query is None:
        return ""
    parts = ", ".join(f"{k.replace('_', ' ')} {v:,}" for k, v in {**counts["by_tier"], **counts["by_doc_type"]}.items())
    first, last = query.offset + 1 if n else 0, query.offset + n
    link = {k: v for k, v in shown.items() if v}
    links = []
    if query.offset > 0:
        before = urlencode({**link, "sort": query.sort, "limit": query.limit, "offset": max(query.offset - query.limit, 0)})
        links.append(f'<a href="?{_esc(before)}" rel="prev">previous {query.limit:,}</a>')
    if last < counts["total"]:
        after = urlencode({**link, "sort": query.sort, "limit": query.limit, "offset": last})
        links.append(f'<a href="?{_esc(after)}" rel="next">next {query.limit:,}</a>')
    return (f'<p id="counts"><strong>{counts["total"]:,}</strong> line(s) waiting, worth {counts["value"]:,.2f}'
            f' {_esc(currency)}'
            f'{": " + _esc(parts) if parts else ""}. Showing {first:,} to {last:,}. {" ".join(links)}</p>')


def _render(who, lines: list[dict[str, Any]], query: LinesQuery | None, error: str, nonce: str,
            policy: Any, counts: dict[str, Any] | None = None) -> str:
    from include.reporting.theme import theme_head

    overrides, currency = policy.overrides, policy.currency
    options = {"doc_type": ["", *DOC_TYPES], "tier": ["", *TIERS]}
    shown = {name: ("" if query is None or getattr(query, name) is None else str(getattr(query, name)))
             for name in FILTERS}
    fields = []
    for name in FILTERS:
        if name in options:
            opts = "".join(f'<option value="{o}"{" selected" if shown[name] == o else ""}>{o or "any"}</option>'
                           for o in options[name])
            fields.append(f'<label>{name.replace("_", " ")} <select name="{name}">{opts}</select></label>')
        else:
            fields.append(f'<label>{name.replace("_", " ")} <input name="{name}" value="{_esc(shown[name])}"'
                          f' size="12"></label>')
    sort = query.sort if query is not None else "impact"
    fields.append('<label>sort <select name="sort">' + "".join(
        f'<option value="{k}"{" selected" if k == sort else ""}>{_esc(label)}</option>' for k, label in SORTS.items())
        + "</select></label>")
    rows = []
    for ln in lines:
        key = _esc(f"{ln['doc_type']}:{ln['line_id']}")
        name = _esc(f"{ln['doc_type'].replace('_', ' ')} #{ln['line_id']}, {ln['sku']}")
        can = ln.get("may_decide")
        buttons = (f'<button class="approve primary" data-line="{key}" aria-label="Approve {name}">Approve</button> '
                   f'<button class="reject" data-line="{key}" aria-label="Reject {name}">Reject</button> '
                   f'<button class="escalate" data-line="{key}" aria-label="Escalate {name}">Escalate</button>'
                   + _override_form(ln, key, overrides)) if can else (
            '<span class="ro" title="your role may not decide this tier">read only</span>')
        where = " &rarr; ".join(_esc(x) for x in (ln["from_location"], ln["to_location"]) if x)
        tier = _esc(ln["risk_tier"])
        critical = bool((ln.get("explanation") or {}).get("critical"))
        badge = '<br><span class="critical" title="fast lane: released as soon as approved">critical</span>' \
            if critical else ""
        if up := ln.get("escalated"):
            badge += (f'<br><span class="escalated" title="{_esc(_escalation_title(up))}">escalated</span>')
        rows.append(
            f'<tr tabindex="-1" aria-label="{name}, {tier} tier" data-line="{key}"'
            f' data-business-key="{_esc(ln["business_key"])}" data-tier="{tier}"'
            f' data-dag-id="{_esc(ln["dag_id"])}" data-ds="{_esc(ln["ds"])}">'
            f'<td><input type="checkbox" class="pick" value="{key}" aria-label="Select {name}"></td>'
            f'<td>{_esc(ln["doc_type"])} #{_esc(ln["line_id"])}<br><small>{_esc(ln["dag_id"])} {_esc(ln["ds"])}'
            f'</small></td><td class="tier {tier}">{tier}{badge}</td>'
            f'<td>{_esc(ln["sku"])}<br><small>{_esc(ln["business_key"])}</small></td>'
            f'<td>{_esc(ln["action"])}</td><td>{where}</td><td>{_supplier(ln)}</td>'
            f'<td class="num">{ln["quantity"]:,.2f}</td><td class="num">{ln["value"]:,.2f}</td>'
            f'<td>{_esc(ln["need_by"])}</td><td class="why">{_explain(ln, currency)}{_chart_control(ln, key)}</td>'
            f'<td class="actions">{buttons}</td></tr>'
        )
    tiers = "; ".join([", ".join(who.tiers) or "none"]
                      + [f"{d}: {', '.join(t) or 'none'}" for d, t in who.tiers_by_doc_type.items()])
    tiers = tiers if who.may_decide_any else "none (read only)"
    body = "".join(rows) or '<tr><td colspan="12" class="empty">No line is waiting for a decision.</td></tr>'
    run = query.run if query is not None else None
    return _PAGE.format(
        theme=theme_head(nonce), currency=_esc(currency), user=_esc(who.describe()), tiers=_esc(tiers),
        filters="".join(fields), rows=body, count=len(lines),
        summary=_queue_summary(counts, query, shown, len(lines), currency),
        error=f'<p class="error">{_esc(error)}</p>' if error else "", api=URL_PREFIX,
        query=_esc(urlencode({k: v for k, v in shown.items() if v})), nonce=_esc(nonce),
        run_dag_id=_esc(run[0] if run else ""), run_ds=_esc(run[1].isoformat() if run else ""),
    )


_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Shelfwise approvals</title>
{theme}
<style nonce="{nonce}">
form.filters {{ display: flex; flex-wrap: wrap; gap: .4rem .9rem; align-items: center; margin: .6rem 0 .3rem; }}
table {{ margin-top: .8rem; }}
span.critical, span.escalated {{ color: #fff; border-radius: 4px; padding: 0 .35rem; font-size: .72rem; font-weight: 600; }}
span.critical {{ background: var(--error); }} span.escalated {{ background: var(--escalated); }}
html.dark span.critical, html.dark span.escalated {{ color: #000; }}
small.card {{ color: var(--fg-muted); }}
td.num {{ text-align: right; font-variant-numeric: tabular-nums; }} td.why {{ max-width: 30rem; }}
p.story {{ margin: 0 0 .2rem; color: var(--fg); }} em.reasons {{ display: block; color: var(--fg-muted); font-size: .78rem; }}
details.numbers dl {{ display: grid; grid-template-columns: auto auto; gap: 0 .8rem; margin: .2rem 0;
                      color: var(--fg-muted); font-size: .8rem; }}
details.numbers dd {{ margin: 0; text-align: right; font-variant-numeric: tabular-nums; color: var(--fg); }}
td.tier.high {{ color: var(--error); font-weight: 600; }} td.tier.medium {{ color: var(--warning); }}
td.actions {{ white-space: nowrap; }} td.actions button {{ margin: 0 .15rem .25rem 0; }}
.bar {{ margin-top: .8rem; display: flex; flex-wrap: wrap; gap: .5rem; align-items: flex-start; }}
textarea {{ width: 28rem; height: 2.6rem; }}
#counts {{ margin: .3rem 0; }}
#message {{ margin-top: .6rem; padding: .4rem .6rem; min-height: 1.2rem; border-radius: 6px; }}
#message.ok {{ background: var(--success-bg); color: var(--success); }}
#message.refused {{ background: var(--error-bg); color: var(--error); }}
.error {{ color: var(--error); }} .ro {{ color: var(--fg-subtle); font-style: italic; }}
tr:focus {{ outline: 2px solid var(--focus); outline-offset: -2px; background: var(--brand-subtle); }}
p.keys {{ color: var(--fg-muted); font-size: .8rem; margin: .4rem 0 0; }}
.sr {{ position: absolute; width: 1px; height: 1px; overflow: hidden; clip: rect(0 0 0 0); }}
details.override {{ margin-top: .3rem; white-space: normal; }} details.override input.qty {{ width: 6rem; }}
details.override label {{ display: block; margin: .2rem 0; }}
details.chart img {{ max-width: 100%; height: auto; border: 1px solid var(--border); border-radius: 6px;
                    background: #fff; margin-top: .3rem; }}
</style></head>
<body>
<h1>Lines waiting for a decision</h1>
<p>Signed in as <strong id="who">{user}</strong>; you may decide tiers: <strong>{tiers}</strong>.</p>
{error}
<form class="filters" method="get">{filters}<button type="submit">Filter</button></form>
{summary}
<div class="bar">
  <textarea id="note" placeholder="Note recorded with the decision (optional; required to escalate)"></textarea>
  <button id="approve-selected" class="primary">Approve selected</button>
  <button id="reject-selected">Reject selected</button>
  <button id="escalate-selected" title="hand the lines up undecided, with the note">Escalate selected</button>
  <button id="approve-matching" title="every line the filters select that you may decide, after a confirmation">Approve all matching&hellip;</button>
</div>
<div id="message" role="status"></div>
<p class="keys" id="keys">Keyboard: <kbd>j</kbd>/<kbd>k</kbd> or <kbd>&darr;</kbd>/<kbd>&uarr;</kbd> next and previous line,
<kbd>a</kbd> approve, <kbd>r</kbd> reject, <kbd>x</kbd> select, <kbd>c</kbd> chart.</p>
<table id="lines" data-dag-id="{run_dag_id}" data-ds="{run_ds}" data-query="{query}" aria-describedby="keys">
<caption class="sr">Lines waiting for a decision; {count} shown</caption><thead><tr><th><input type="checkbox" id="pick-all" title="select all"></th><th>line</th>
<th>tier</th><th>SKU</th><th>action</th><th>where</th><th>supplier</th><th>quantity</th><th>value ({currency})</th>
<th>need by</th><th>why</th><th></th></tr></thead>
<tbody>{rows}</tbody></table>
<p><small>{count} line(s) shown. JSON: <a href="{api}/api/lines?{query}">{api}/api/lines</a></small></p>
<script nonce="{nonce}">
const message = document.getElementById("message");
const table = document.getElementById("lines");
// A decision names the run it is about: the one the filters show, else the one run of the selected rows;
// only a selection spanning several runs asks for across_runs.
function scope(lines) {{
  if (table.dataset.dagId && table.dataset.ds) return {{dag_id: table.dataset.dagId, ds: table.dataset.ds}};
  const runs = new Map();
  for (const key of lines) {{
    const row = document.querySelector(`tr[data-line="${{CSS.escape(key)}}"]`);
    if (row) runs.set(`${{row.dataset.dagId}}|${{row.dataset.ds}}`, {{dag_id: row.dataset.dagId, ds: row.dataset.ds}});
  }}
  return runs.size === 1 ? [...runs.values()][0] : {{across_runs: true}};
}}
// Posts the lines with the note to an endpoint; shows its answer and returns it when it was accepted.
async function send(path, lines, fields) {{
  if (!lines.length) {{ message.className = "refused"; message.textContent = "Select at least one line."; return null; }}
  const note = document.getElementById("note").value;
  const response = await fetch("{api}" + path, {{
    method: "POST", credentials: "same-origin",
    headers: {{"Content-Type": "application/json", "Accept": "application/json"}},
    body: JSON.stringify({{lines, ...fields, note, ...scope(lines)}}),
  }});
  const data = await response.json().catch(() => ({{}}));
  if (!response.ok) {{
    message.className = "refused";
    message.textContent = (data.detail || response.statusText) + " (HTTP " + response.status + ")";
    return null;
  }}
  message.className = "ok";
  message.textContent = data.message;
  return data;
}}
const rowOf = (line) => document.querySelector(`tr[data-line="${{line.doc_type}}:${{line.line_id}}"]`);
// A decided row leaves the queue; the focus moves to the line after it, so the keyboard carries on.
function drop(line) {{
  const row = rowOf(line);
  if (!row) return;
  const next = row.nextElementSibling || row.previousElementSibling;
  const focused = document.activeElement === row;
  row.remove();
  if (focused && next) next.focus();
}}
async function decide(lines, approve) {{
  const data = await send("/api/decisions", lines, {{approve}});
  if (data) [...data.decided, ...data.already_decided].forEach(drop);
}}
// An escalated line stays pending: it keeps its row and gets the badge.
async function escalate(lines) {{
  const data = await send("/api/escalations", lines, {{}});
  if (!data) return;
  data.already_decided.forEach((line) => rowOf(line)?.remove());
  for (const line of data.escalated) {{
    const tier = rowOf(line)?.querySelector("td.tier");
    if (!tier || tier.querySelector("span.escalated")) continue;
    const badge = document.createElement("span");
    badge.className = "escalated";
    badge.textContent = "escalated";
    badge.title = "escalated just now: " + document.getElementById("note").value.trim();
    tier.append(document.createElement("br"), badge);
  }}
}}
const picked = () => [...document.querySelectorAll("input.pick:checked")].map((box) => box.value);
document.getElementById("approve-selected").onclick = () => decide(picked(), true);
document.getElementById("reject-selected").onclick = () => decide(picked(), false);
document.getElementById("escalate-selected").onclick = () => escalate(picked());
document.getElementById("pick-all").onchange = (e) =>
  document.querySelectorAll("input.pick").forEach((box) => {{ box.checked = e.target.checked; }});
document.querySelectorAll("button.approve").forEach((b) => {{ b.onclick = () => decide([b.dataset.line], true); }});
document.querySelectorAll("button.reject").forEach((b) => {{ b.onclick = () => decide([b.dataset.line], false); }});
document.querySelectorAll("button.escalate").forEach((b) => {{ b.onclick = () => escalate([b.dataset.line]); }});
// Approve every line the filters select that the user may decide, page by page, after saying how many and
// what they are worth; each request is checked by the server as any decision.
document.getElementById("approve-matching").onclick = async () => {{
  const found = [];
  for (let offset = 0; ; offset += 5000) {{
    const r = await fetch("{api}/api/lines?" + table.dataset.query + "&limit=5000&offset=" + offset,
                          {{credentials: "same-origin", headers: {{"Accept": "application/json"}}}});
    const page = await r.json();
    if (!r.ok) {{ message.className = "refused"; message.textContent = page.detail || r.statusText; return; }}
    found.push(...page.lines);
    if (found.length >= page.total || !page.lines.length) break;
  }}
  const mine = found.filter((l) => l.may_decide);
  const value = mine.reduce((sum, l) => sum + l.value, 0);
  if (!mine.length) {{ message.className = "refused"; message.textContent = "No line matching the filters is yours to decide."; return; }}
  const others = found.length - mine.length;
  if (!confirm(`Approve ${{mine.length}} line(s) matching the filters, worth ${{value.toLocaleString(undefined, {{maximumFractionDigits: 2}})}}?`
               + (others ? ` ${{others}} line(s) your role may not decide stay pending.` : ""))) return;
  const runs = new Set(mine.map((l) => `${{l.dag_id}}|${{l.ds}}`));
  const scope = runs.size === 1 ? {{dag_id: mine[0].dag_id, ds: mine[0].ds}} : {{across_runs: true}};
  let decided = 0;
  for (let i = 0; i < mine.length; i += 5000) {{
    const chunk = mine.slice(i, i + 5000).map((l) => `${{l.doc_type}}:${{l.line_id}}`);
    const r = await fetch("{api}/api/decisions", {{method: "POST", credentials: "same-origin",
      headers: {{"Content-Type": "application/json", "Accept": "application/json"}},
      body: JSON.stringify({{lines: chunk, approve: true, note: document.getElementById("note").value, ...scope}})}});
    const data = await r.json().catch(() => ({{}}));
    if (!r.ok) {{ message.className = "refused"; message.textContent = (data.detail || r.statusText) + ` (after ${{decided}} approved)`; return; }}
    decided += data.decided.length;
    [...data.decided, ...data.already_decided].forEach(drop);
  }}
  message.className = "ok";
  message.textContent = `${{decided}} line(s) approved of the ${{mine.length}} matching the filters.`;
}};
// The queue by keyboard: move between lines, decide the focused one, select it, open its chart.
const rows = () => [...table.querySelectorAll("tbody tr[data-line]")];
table.addEventListener("keydown", (e) => {{
  if (e.target.closest("input, select, textarea, summary, button") || e.altKey || e.ctrlKey || e.metaKey) return;
  const row = e.target.closest("tr[data-line]");
  const all = rows();
  const at = row ? all.indexOf(row) : -1;
  const go = (i) => {{ if (all[i]) {{ all[i].focus(); e.preventDefault(); }} }};
  if (e.key === "ArrowDown" || e.key === "j") return go(at + 1);
  if (e.key === "ArrowUp" || e.key === "k") return go(Math.max(at - 1, 0));
  if (!row) return;
  const click = (sel) => {{ const el = row.querySelector(sel); if (el) {{ el.click(); e.preventDefault(); }} }};
  if (e.key === "a") return click("button.approve");
  if (e.key === "r") return click("button.reject");
  if (e.key === "x") return click("input.pick");
  if (e.key === "c") return click("details.chart summary");
}});
document.addEventListener("keydown", (e) => {{
  if ((e.key === "j" || e.key === "ArrowDown") && !e.target.closest("input, select, textarea, table")) {{
    const first = rows()[0];
    if (first) {{ first.focus(); e.preventDefault(); }}
  }}
}});
// A line's chart is fetched the first time its disclosure opens.
document.querySelectorAll("details.chart").forEach((d) => {{ d.ontoggle = () => {{
  const img = d.querySelector("img");
  if (d.open && !img.src) img.src = img.dataset.src;
}}; }});
// Approve one line with the quantity typed in its row, for the reason picked; the line keeps the proposal.
document.querySelectorAll("button.override").forEach((b) => {{ b.onclick = async () => {{
  const form = b.closest("details");
  const source = form.querySelector("select.source")?.value;
  const data = await send("/api/overrides", [b.dataset.line], {{
    quantity: Number(form.querySelector("input.qty").value), reason: form.querySelector("select.reason").value,
    ...(source ? {{source}} : {{}})}});
  if (data) [...data.decided, ...data.already_decided].forEach(drop);
}}; }});
</script>
</body></html>
"""


class ShelfwiseApprovalsPlugin(AirflowPlugin):
    """Mounts the approvals app and adds it to the Airflow UI navigation."""

    name = "shelfwise_approvals"
    fastapi_apps = [{"app": create_app(), "url_prefix": URL_PREFIX, "name": "Shelfwise approvals"}]
    external_views = [{
        "name": "Approvals",
        "href": PAGE,
        "url_route": "shelfwise-approvals",
        "destination": "nav",
        "category": "browse",
    }, {
        # A tab of every DAG run page: the lines that run staged, waiting for a decision.
        "name": "Lines to decide",
        "href": f"{PAGE}?dag_id={{DAG_ID}}&run_id={{RUN_ID}}",
        "url_route": "shelfwise-run-lines",
        "destination": "dag_run",
    }]
