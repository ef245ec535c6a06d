"""Shelfwise executive dashboard: the nightly KPIs as time series across nights, inside the Airflow UI.

A FastAPI app mounted by the API server under ``/shelfwise-dashboard`` (``fastapi_apps``) and an
**Executive dashboard** entry in the Airflow UI navigation (``external_views``). Authentication is the
approvals page's (:mod:`shelfwise_approvals`): Airflow's own login (the UI's ``_token`` cookie, or an
``Authorization: Bearer`` header); any signed-in user whom the policy's ``roles:`` / ``user_roles:`` give a
Shelfwise role may read, others get 403. The page is server-rendered HTML with SVG charts and no script;
its stylesheet runs by per-response nonce (``Content-Security-Policy``), as the approvals page's does.

Query parameters (both endpoints), each at most once: ``dag_id`` (default ``retail_nightly``), ``since`` and
``until`` (``YYYY-MM-DD``, inclusive), ``nights`` (the newest this many nights, default 366) and ``segment``
(``all``, ``channel:store``, ``region:north``...). A bad one is answered 422 naming it.

Endpoints:
    GET  /shelfwise-dashboard/dashboard   the page (unauthenticated: redirect to the Airflow login)
    GET  /shelfwise-dashboard/api/kpis    the same series as JSON
"""

from __future__ import annotations

import datetime as dt
import logging
import secrets
from typing import Annotated, Any
from urllib.parse import urlencode

# plugins/ is on sys.path in every Airflow process (and in the tests), as a plugins folder is.
import shelfwise_approvals as approvals
from airflow.plugins_manager import AirflowPlugin
from fastapi import Depends, FastAPI, HTTPException, Request, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, model_validator

log = logging.getLogger(__name__)

URL_PREFIX = "/shelfwise-dashboard"
PAGE = f"{URL_PREFIX}/dashboard"
MAX_NIGHTS = 3660
#: Answers of Airflow's login that mean "sign in first" rather than "not allowed".
_SIGN_IN = ("Not authenticated", "Token Expired", "Invalid JWT token")


class DashboardQuery(BaseModel):
    """Which nights and which segment the dashboard shows; empty means the default."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    dag_id: Annotated[approvals.DagId, BeforeValidator(lambda v: approvals._blank_is_none(v) or "retail_nightly")
                      ] = "retail_nightly"
    since: Annotated[dt.date | None, BeforeValidator(approvals._iso_date)] = None
    until: Annotated[dt.date | None, BeforeValidator(approvals._iso_date)] = None
    nights: Annotated[int, BeforeValidator(approvals._whole_number), Field(ge=1, le=MAX_NIGHTS)] = 366
    segment: Annotated[approvals.FilterText | None, BeforeValidator(approvals._blank_is_none)] = None

    @model_validator(mode="after")
    def _ordered(self) -> DashboardQuery:
        if self.since and self.until and self.since > self.until:
            raise ValueError("since must not be after until")
        return self

    def shown(self) -> dict[str, str]:
        """The parameters as given, for links and the segment selector."""
        return {k: str(v) for k, v in self.model_dump(exclude_defaults=True).items() if v is not None}


def parse_query(request: Request) -> DashboardQuery:
    """The query string as :class:`DashboardQuery`; a parameter given twice is refused.

    Raises:
        RequestValidationError: with ``loc`` ``("query", <parameter>)``.
    """
    names = [name for name, _ in request.query_params.multi_items()]
    errors: list[Any] = [{"loc": (n,), "type": "duplicate", "msg": "given more than once"}
                         for n in sorted({n for n in names if names.count(n) > 1})]
    if not errors:
        try:
            return DashboardQuery.model_validate_strings(dict(request.query_params))
        except ValidationError as exc:
            errors = exc.errors(include_url=False, include_input=False, include_context=False)
    raise RequestValidationError(errors, body={"where": "query"})


def _reader(user: Annotated[Any, Depends(approvals._current_user)]):
    """The signed-in user, when the policy gives them a Shelfwise role; 403 otherwise."""
    who = approvals._approver(user)
    if not who.roles:
        log.warning("refused the dashboard to %s: no Shelfwise role", who.username)
        raise HTTPException(status.HTTP_403_FORBIDDEN,
                            f"{who.describe()} may not read the dashboard: the policy's roles: maps no Shelfwise "
                            "role to this user's Airflow roles")
    return who


Reader = Annotated[Any, Depends(_reader)]
Query = Annotated[DashboardQuery, Depends(parse_query)]


def _load(query: DashboardQuery) -> tuple[Any, Any, dict[str, float]]:
    """The query's KPI history, the decisions of its nights and the policy's targets."""
    from include.reporting.dashboard import decision_effect, load_history, policy_targets

    try:
        targets = policy_targets()
    except ValueError as exc:
        raise HTTPException(status.HTTP_500_INTERNAL_SERVER_ERROR, f"the policy's kpi_targets: {exc}") from exc
    with approvals._connect() as conn:
        history = load_history(conn, dag_id=query.dag_id, since=query.since, until=query.until, nights=query.nights)
        effect = None
        if len(history):
            effect = decision_effect(conn, history["ds"].min().date(), history["ds"].max().date())
    return history, effect, targets


def create_app() -> FastAPI:
    """The dashboard app, mounted by the Airflow API server at ``/shelfwise-dashboard``."""
    from include.erp.db import ErpConnectionError

    app = FastAPI(title="Shelfwise executive dashboard", docs_url=None, redoc_url=None, openapi_url=None)

    @app.middleware("http")
    async def _security_headers(request: Request, call_next):
        response = await call_next(request)
        response.headers.setdefault("Content-Security-Policy", approvals.API_CSP)
        for name, value in approvals.SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        return response

    @app.exception_handler(ErpConnectionError)
    async def _erp_unavailable(request: Request, exc: ErpConnectionError):
        log.error("ERP staging unavailable: %s", exc)
        return JSONResponse({"detail": str(exc)}, status_code=status.HTTP_503_SERVICE_UNAVAILABLE)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError):
        where = exc.body.get("where", "request") if isinstance(exc.body, dict) else "request"
        return approvals.validation_answer(list(exc.errors()), where)

    @app.exception_handler(HTTPException)
    async def _http_error(request: Request, exc: HTTPException):
        if request.url.path.rstrip("/").endswith("/dashboard") and exc.status_code == 401 and exc.detail in _SIGN_IN:
            from airflow.api_fastapi.app import get_auth_manager

            return RedirectResponse(get_auth_manager().get_url_login(next_url=str(request.url)), status_code=303)
        return JSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=exc.headers)

    @app.get("/api/kpis")
    def kpis(who: Reader, query: Query) -> dict[str, Any]:
        from include.reporting.dashboard import series_json

        history, effect, targets = _load(query)
        return {"dag_id": query.dag_id, **series_json(history, effect, targets, segment=query.segment)}

    @app.get("/dashboard", response_class=HTMLResponse)
    def page(who: Reader, query: Query) -> HTMLResponse:
        from include.reporting.dashboard import render_dashboard

        history, effect, targets = _load(query)
        nonce = secrets.token_urlsafe(16)
        json_link = f"{URL_PREFIX}/api/kpis" + (f"?{urlencode(query.shown())}" if query.shown() else "")
        body = render_dashboard(history, effect, targets, segment=query.segment, nonce=nonce, title=query.dag_id,
                                links={"JSON of these series": json_link}, query=query.shown())
        return HTMLResponse(body, headers={"Content-Security-Policy": approvals.page_csp(nonce)})

    return app


class ShelfwiseDashboardPlugin(AirflowPlugin):
    """Mounts the dashboard app and adds it to the Airflow UI navigation."""

    name = "shelfwise_dashboard"
    fastapi_apps = [{"app": create_app(), "url_prefix": URL_PREFIX, "name": "Shelfwise executive dashboard"}]
    external_views = [{
        "name": "Executive dashboard",
        "href": PAGE,
        "url_route": "shelfwise-dashboard",
        "destination": "nav",
        "category": "browse",
    }]
