"""Shelfwise approvals: the planners' line-level review page inside the Airflow UI.

A FastAPI app mounted by the API server under ``/shelfwise`` (``fastapi_apps``) and a navigation entry
(``external_views``) that shows the page in the Airflow UI. Plugin apps are not protected by Airflow
automatically, so every endpoint resolves the caller with Airflow's own login (the JWT the UI holds in
its ``_token`` cookie, or an ``Authorization: Bearer`` header) through the API server's ``get_user``
dependency, and every decision is checked against the caller's role by ``include.erp.approvals``.

Endpoints:
    GET  /shelfwise/approvals       the page (unauthenticated: redirect to the Airflow login)
    GET  /shelfwise/api/me          who the caller is and which tiers they may decide
    GET  /shelfwise/api/lines       pending lines; filters doc_type, tier, location, supplier, dag_id, ds
    POST /shelfwise/api/decisions   {"lines": ["transfer:12", ...], "approve": true, "note": "..."}
"""

from __future__ import annotations

import html
import json
import logging
from functools import cache
from typing import Annotated, Any
from urllib.parse import urlencode

from airflow.plugins_manager import AirflowPlugin
from fastapi import Depends, FastAPI, HTTPException, Request, status
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse
from pydantic import BaseModel, Field

log = logging.getLogger(__name__)

URL_PREFIX = "/shelfwise"
PAGE = f"{URL_PREFIX}/approvals"
FILTERS = ("doc_type", "tier", "location", "supplier", "dag_id", "ds")


@cache
def _policy():
    from include.governance.policy import load_policy

    return load_policy()


def _airflow_connection(conn_id: str):
    """An Airflow connection from the API server's secrets backends (environment, metadata DB...)."""
    from airflow.models.connection import Connection

    return Connection.get_connection_from_secrets(conn_id)


@cache
def _erp_url() -> str:
    """The ERP staging URL, resolved as the DAGs resolve it (connection ``erp_staging``, else
    ``ERP_STAGING_URL``); a missing or broken one is an error naming what to fix. The schema is the
    nightly's business (``prepare_erp_staging``): a request never migrates it."""
    from include.erp import db

    return db.resolve_erp_url(lookup=_airflow_connection)


def _connect():
    from include.erp import db

    return db.connect(_erp_url())


async def _current_user(request: Request):
    """The caller, authenticated with Airflow's own login; 401 when there is no valid token."""
    from airflow.api_fastapi.core_api.security import bearer_scheme, get_user, oauth2_scheme

    credentials = await bearer_scheme(request)
    token = await oauth2_scheme(request)
    return await get_user(request, token, credentials)


def _approver(user: Any):
    from include.erp.approvals import approver
    from include.governance.roles import airflow_roles

    return approver(user.get_name(), airflow_roles(user), _policy())


CurrentUser = Annotated[Any, Depends(_current_user)]


class DecisionBody(BaseModel):
    """A decision on a selection of lines."""

    lines: list[str | dict[str, Any]] = Field(min_length=1, max_length=5000)
    approve: bool
    note: str | None = None


def create_app() -> FastAPI:
    """The approvals app, mounted by the Airflow API server at ``/shelfwise``."""
    from include.erp.db import ErpConnectionError

    app = FastAPI(title="Shelfwise approvals", docs_url=None, redoc_url=None, openapi_url=None)

    @app.exception_handler(ErpConnectionError)
    async def _erp_unavailable(request: Request, exc: ErpConnectionError):
        log.error("ERP staging unavailable: %s", exc)
        return JSONResponse({"detail": str(exc)}, status_code=status.HTTP_503_SERVICE_UNAVAILABLE)

    @app.exception_handler(HTTPException)
    async def _http_error(request: Request, exc: HTTPException):
        wants_page = request.url.path.rstrip("/").endswith("/approvals") and request.method == "GET"
        if wants_page and exc.status_code in (401, 403) and exc.detail in ("Not authenticated", "Token Expired",
                                                                             "Invalid JWT token"):
            from airflow.api_fastapi.app import get_auth_manager

            return RedirectResponse(get_auth_manager().get_url_login(next_url=str(request.url)), status_code=303)
        return JSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=exc.headers)

    @app.get("/api/me")
    def me(user: CurrentUser) -> dict[str, Any]:
        who = _approver(user)
        return {"username": who.username, "airflow_roles": list(who.airflow_roles), "roles": sorted(who.roles),
                "tiers": list(who.tiers)}

    @app.get("/api/lines")
    def lines(user: CurrentUser, request: Request, limit: int = 500) -> dict[str, Any]:
        from include.erp.approvals import BadRequest, LineFilter, list_pending

        who = _approver(user)
        try:
            filters = LineFilter.parse(**{k: request.query_params.get(k) for k in FILTERS})
        except BadRequest as exc:
            raise HTTPException(status.HTTP_400_BAD_REQUEST, str(exc)) from exc
        with _connect() as conn:
            found = list_pending(conn, filters, user=who, limit=limit)
        return {"user": who.username, "tiers": list(who.tiers), "count": len(found), "lines": found}

    @app.post("/api/decisions")
    def decisions(user: CurrentUser, body: DecisionBody) -> dict[str, Any]:
        from include.erp.approvals import BadRequest, NotAllowed, decide_lines, parse_selection

        who = _approver(user)
        try:
            selection = parse_selection(body.lines)
            with _connect() as conn:
                outcome = decide_lines(conn, who, selection, approve=body.approve, note=body.note)
        except NotAllowed as exc:
            log.warning("refused decision by %s on %d line(s): %s", who.username, len(body.lines), exc)
            raise HTTPException(status.HTTP_403_FORBIDDEN, str(exc)) from exc
        except BadRequest as exc:
            raise HTTPException(status.HTTP_400_BAD_REQUEST, str(exc)) from exc
        log.info("%s %s %d line(s)", who.username, "approved" if body.approve else "rejected",
                 len(outcome.decided))
        return outcome.as_dict(body.approve)

    @app.get("/approvals", response_class=HTMLResponse)
    def page(user: CurrentUser, request: Request) -> HTMLResponse:
        from include.erp.approvals import BadRequest, LineFilter, list_pending

        who = _approver(user)
        raw = {k: request.query_params.get(k) or "" for k in FILTERS}
        try:
            filters = LineFilter.parse(**raw)
            error = ""
        except BadRequest as exc:
            filters, error = LineFilter(), str(exc)
        with _connect() as conn:
            found = list_pending(conn, filters, user=who)
        return HTMLResponse(_render(who, found, raw, error))

    return app


def _esc(value: Any) -> str:
    return html.escape("" if value is None else str(value))


def _explain(line: dict[str, Any]) -> str:
    explain = line.get("explanation") or {}
    shown = []
    for key, value in explain.items():
        if isinstance(value, float):
            value = f"{value:,.2f}"
        elif isinstance(value, list | dict):
            value = json.dumps(value) if value else "none"
        shown.append(f"{key.replace('_', ' ')}: {value}")
    reasons = ", ".join(line.get("tier_reasons") or []) or "none"
    return _esc("; ".join(shown)) + f"<br><em>tier reasons: {_esc(reasons)}</em>"


def _render(who, lines: list[dict[str, Any]], raw: dict[str, str], error: str) -> str:
    options = {
        "doc_type": ["", "replenishment", "transfer", "po_exception"],
        "tier": ["", "low", "medium", "high"],
    }
    fields = []
    for name in FILTERS:
        if name in options:
            opts = "".join(f'<option value="{o}"{" selected" if raw[name] == o else ""}>{o or "any"}</option>'
                           for o in options[name])
            fields.append(f'<label>{name.replace("_", " ")} <select name="{name}">{opts}</select></label>')
        else:
            fields.append(f'<label>{name.replace("_", " ")} <input name="{name}" value="{_esc(raw[name])}"'
                          f' size="12"></label>')
    rows = []
    for ln in lines:
        key = f"{ln['doc_type']}:{ln['line_id']}"
        can = ln.get("may_decide")
        buttons = (f'<button class="approve" data-line="{key}">Approve</button> '
                   f'<button class="reject" data-line="{key}">Reject</button>') if can else (
            '<span class="ro" title="your role may not decide this tier">read only</span>')
        where = " &rarr; ".join(_esc(x) for x in (ln["from_location"], ln["to_location"]) if x)
        rows.append(
            f'<tr data-line="{key}" data-business-key="{_esc(ln["business_key"])}" data-tier="{ln["risk_tier"]}">'
            f'<td><input type="checkbox" class="pick" value="{key}"></td>'
            f'<td>{_esc(ln["doc_type"])} #{ln["line_id"]}<br><small>{_esc(ln["dag_id"])} {ln["ds"]}</small></td>'
            f'<td class="tier {ln["risk_tier"]}">{ln["risk_tier"]}</td>'
            f'<td>{_esc(ln["sku"])}<br><small>{_esc(ln["business_key"])}</small></td>'
            f'<td>{_esc(ln["action"])}</td><td>{where}</td><td>{_esc(ln["supplier_id"])}</td>'
            f'<td class="num">{ln["quantity"]:,.2f}</td><td class="num">{ln["value"]:,.2f}</td>'
            f'<td>{_esc(ln["need_by"])}</td><td class="why">{_explain(ln)}</td><td>{buttons}</td></tr>'
        )
    tiers = ", ".join(who.tiers) or "none (read only)"
    body = "".join(rows) or '<tr><td colspan="12" class="empty">No line is waiting for a decision.</td></tr>'
    return _PAGE.format(
        user=_esc(who.describe()), tiers=_esc(tiers), filters="".join(fields), rows=body, count=len(lines),
        error=f'<p class="error">{_esc(error)}</p>' if error else "", api=URL_PREFIX,
        query=_esc(urlencode({k: v for k, v in raw.items() if v})),
    )


_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Shelfwise approvals</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 1rem 1.5rem; color: #1f2933; }}
h1 {{ font-size: 1.3rem; margin: 0 0 .3rem; }}
form.filters label {{ margin-right: .8rem; font-size: .9rem; }}
table {{ border-collapse: collapse; width: 100%; margin-top: .8rem; font-size: .85rem; }}
th, td {{ border-bottom: 1px solid #d9e2ec; padding: .35rem .4rem; text-align: left; vertical-align: top; }}
td.num {{ text-align: right; }} td.why {{ max-width: 28rem; color: #52606d; }}
td.tier.high {{ color: #b42318; font-weight: 600; }} td.tier.medium {{ color: #b54708; }}
.bar {{ margin-top: .8rem; display: flex; gap: .5rem; align-items: flex-start; }}
textarea {{ width: 28rem; height: 2.6rem; }}
#message {{ margin-top: .6rem; padding: .4rem .6rem; min-height: 1.2rem; }}
#message.ok {{ background: #e3f9e5; }} #message.refused {{ background: #fde8e8; color: #9b1c1c; }}
.error {{ color: #9b1c1c; }} .ro {{ color: #7b8794; font-style: italic; }}
</style></head>
<body>
<h1>Lines waiting for a decision</h1>
<p>Signed in as <strong id="who">{user}</strong>; you may decide tiers: <strong>{tiers}</strong>.</p>
{error}
<form class="filters" method="get">{filters}<button type="submit">Filter</button></form>
<div class="bar">
  <textarea id="note" placeholder="Note recorded with the decision (optional)"></textarea>
  <button id="approve-selected">Approve selected</button>
  <button id="reject-selected">Reject selected</button>
</div>
<div id="message" role="status"></div>
<table id="lines"><thead><tr><th><input type="checkbox" id="pick-all" title="select all"></th><th>line</th>
<th>tier</th><th>SKU</th><th>action</th><th>where</th><th>supplier</th><th>quantity</th><th>value</th>
<th>need by</th><th>why</th><th></th></tr></thead>
<tbody>{rows}</tbody></table>
<p><small>{count} line(s) shown. JSON: <a href="{api}/api/lines?{query}">{api}/api/lines</a></small></p>
<script>
const message = document.getElementById("message");
async function decide(lines, approve) {{
  if (!lines.length) {{ message.className = "refused"; message.textContent = "Select at least one line."; return; }}
  const note = document.getElementById("note").value;
  const response = await fetch("{api}/api/decisions", {{
    method: "POST", credentials: "same-origin",
    headers: {{"Content-Type": "application/json", "Accept": "application/json"}},
    body: JSON.stringify({{lines, approve, note}}),
  }});
  const data = await response.json().catch(() => ({{}}));
  if (!response.ok) {{
    message.className = "refused";
    message.textContent = (data.detail || response.statusText) + " (HTTP " + response.status + ")";
    return;
  }}
  message.className = "ok";
  message.textContent = data.message;
  for (const done of [...data.decided, ...data.already_decided]) {{
    const row = document.querySelector(`tr[data-line="${{done.doc_type}}:${{done.line_id}}"]`);
    if (row) row.remove();
  }}
}}
const picked = () => [...document.querySelectorAll("input.pick:checked")].map((box) => box.value);
document.getElementById("approve-selected").onclick = () => decide(picked(), true);
document.getElementById("reject-selected").onclick = () => decide(picked(), false);
document.getElementById("pick-all").onchange = (e) =>
  document.querySelectorAll("input.pick").forEach((box) => {{ box.checked = e.target.checked; }});
document.querySelectorAll("button.approve").forEach((b) => {{ b.onclick = () => decide([b.dataset.line], true); }});
document.querySelectorAll("button.reject").forEach((b) => {{ b.onclick = () => decide([b.dataset.line], false); }});
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
    }]
