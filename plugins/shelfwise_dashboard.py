"""Shelfwise executive dashboard: the nightly KPIs as time series across nights, inside the Airflow UI.

A FastAPI app mounted by the API server under ``/shelfwise-dashboard`` (``fastapi_apps``) and an
**Executive dashboard** entry in the Airflow UI navigation (``external_views``). Login, security headers
and error answers are the approvals page's (:mod:`shelfwise_web`): Airflow's own login (the UI's ``_token`` cookie, or an
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

import shelfwise_web as web  # plugins/ is on sys.path in every Airflow process, as a plugins folder is
from airflow.plugins_manager import AirflowPlugin
from fastapi import Depends, FastAPI, HTTPException, Request, status
from fastapi.responses import HTMLResponse
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

log = logging.getLogger(__name__)

URL_PREFIX = "/shelfwise-dashboard"
PAGE = f"{URL_PREFIX}/dashboard"
MAX_NIGHTS = 3660


class DashboardQuery(BaseModel):
    """Which nights and which segment the dashboard shows; empty means the default."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    dag_id: Annotated[web.DagId, BeforeValidator(lambda v: web.blank_is_none(v) or "retail_nightly")] = "retail_nightly"
    since: Annotated[dt.date | None, BeforeValidator(web.iso_date)] = None
    until: Annotated[dt.date | None, BeforeValidator(web.iso_date)] = None
    nights: Annotated[int, BeforeValidator(web.whole_number), Field(ge=1, le=MAX_NIGHTS)] = 366
    segment: Annotated[web.FilterText | None, BeforeValidator(web.blank_is_none)] = None

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
    return web.validated_query(request, DashboardQuery)


def _reader(user: web.CurrentUser):
    """The signed-in user, when the policy gives them a Shelfwise role; 403 otherwise."""
    who = web.approver(user)
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

    targets = policy_targets(web.policy())  # loaded and checked once per process
    with web.connect() as conn:
        history = load_history(conn, dag_id=query.dag_id, since=query.since, until=query.until, nights=query.nights)
        effect = None
        if len(history):
            effect = decision_effect(conn, history["ds"].min().date(), history["ds"].max().date())
    return history, effect, targets


def create_app() -> FastAPI:
    """The dashboard app, mounted by the Airflow API server at ``/shelfwise-dashboard``."""
    app = web.protect(FastAPI(title="Shelfwise executive dashboard", docs_url=None, redoc_url=None, openapi_url=None),
                  pages=("/dashboard",))

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
        return HTMLResponse(body, headers={"Content-Security-Policy": web.page_csp(nonce)})

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
