"""What the Shelfwise plugin apps share: login, the caller's permissions, the ERP connection, strict query
parameters, security headers and the answers to errors.

Plugin apps are not protected by Airflow automatically. Every endpoint of a Shelfwise plugin depends on
:func:`current_user` (Airflow's own login: the JWT the UI holds in its ``_token`` cookie, or an
``Authorization: Bearer`` header, through the API server's ``get_user``) and :func:`protect` gives an app
the same answers to everything else: security headers on every response, 503 when the ERP database is
unreachable, 422 naming each bad field without echoing it, and a redirect to the Airflow login for a page
asked for without a valid login.

Not a plugin itself (it defines no ``AirflowPlugin``): ``plugins/`` is on ``sys.path`` in every Airflow
process, as a plugins folder is, so the plugins import it as ``shelfwise_web``. Nothing here touches the
database or the policy at import time.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from collections.abc import Iterable
from functools import cache
from typing import Annotated, Any, TypeVar

from fastapi import Depends, FastAPI, HTTPException, Request, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse
from pydantic import AfterValidator, BaseModel, StringConstraints, ValidationError

log = logging.getLogger(__name__)

MAX_FILTER_CHARS = 200
#: Airflow's own rule for a DAG id (``airflow.utils.helpers.KEY_REGEX``), at most 250 characters.
DAG_ID_PATTERN = r"^[A-Za-z0-9_.-]{1,250}$"
#: Answers of Airflow's login (``get_user``) that mean "sign in first" rather than "not allowed".
SIGN_IN = ("Not authenticated", "Token Expired", "Invalid JWT token")

#: JSON answers are never framed, never run as anything else and never cached.
API_CSP = "default-src 'none'; frame-ancestors 'self'; base-uri 'none'; form-action 'none'"
SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "SAMEORIGIN",
    "Cache-Control": "no-store",
}


def page_csp(nonce: str) -> str:
    """A page's policy: its own inline script and style by nonce, requests to this origin only, framed
    only by the Airflow UI of the same origin (the ``external_views`` entry)."""
    return (f"default-src 'self'; script-src 'nonce-{nonce}'; style-src 'nonce-{nonce}'; img-src 'self' data:; "
            "connect-src 'self'; form-action 'self'; base-uri 'none'; object-src 'none'; frame-ancestors 'self'")


# --- query-string values -------------------------------------------------------------------------------------


def text_check(*, multiline: bool) -> AfterValidator:
    """Refuses text PostgreSQL cannot store (NUL, lone surrogates) and, unless ``multiline``, line breaks."""

    def check(value: str) -> str:
        from include.erp.approvals import text_problem

        if problem := text_problem(value, multiline=multiline):
            raise ValueError(problem)
        return value

    return AfterValidator(check)


def blank_is_none(value: Any) -> Any:
    """An empty form field means "any"."""
    return None if isinstance(value, str) and not value.strip() else value


def whole_number(value: Any) -> Any:
    """A query-string integer: ASCII digits only (``5.0``, `` 5``, ``true`` are refused, not coerced)."""
    if isinstance(value, str):
        if not (value.isascii() and value.isdigit() and len(value) <= 6):
            raise ValueError("must be a whole number written with digits 0-9")
        return int(value)
    return value


def iso_date(value: Any) -> Any:
    """A query-string date: exactly ``YYYY-MM-DD``; empty means any."""
    value = blank_is_none(value)
    if isinstance(value, str):
        try:
            if not re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", value):
                raise ValueError(value)  # fromisoformat would also take 20261127 or 2026-W48-5
            return dt.date.fromisoformat(value)
        except ValueError:
            raise ValueError("must be a date YYYY-MM-DD") from None
    return value


FilterText = Annotated[str, StringConstraints(strip_whitespace=True, max_length=MAX_FILTER_CHARS),
                       text_check(multiline=False)]
DagId = Annotated[str, StringConstraints(pattern=DAG_ID_PATTERN)]
Model = TypeVar("Model", bound=BaseModel)


def validated_query(request: Request, model: type[Model]) -> Model:
    """The query string as ``model`` (validated from strings); a parameter given twice is refused, not overridden.

    Raises:
        RequestValidationError: with ``loc`` ``("query", <parameter>)``.
    """
    seen: dict[str, str] = {}
    errors: list[Any] = []
    for name, value in request.query_params.multi_items():
        if name in seen:
            errors.append({"loc": (name,), "type": "duplicate", "msg": "given more than once"})
        seen[name] = value
    if not errors:
        try:
            return model.model_validate_strings(seen)
        except ValidationError as exc:
            errors = exc.errors(include_url=False, include_input=False, include_context=False)
    raise RequestValidationError(errors, body={"where": "query"})


def _printable(value: Any) -> Any:
    """``value`` safe to put in a JSON answer: control characters and lone surrogates escaped."""
    if not isinstance(value, str):
        return value
    return "".join(c if c.isprintable() and not 0xD800 <= ord(c) <= 0xDFFF else f"\\u{ord(c):04x}" for c in value)


def validation_answer(errors: Iterable[dict[str, Any]], where: str) -> JSONResponse:
    """422 naming each field; the offending input is never echoed (it may not even be encodable)."""
    items = [{"loc": [where, *(_printable(part) for part in error["loc"])], "msg": _printable(error["msg"]),
              "type": error["type"]} for error in errors]
    detail = "; ".join(f"{'.'.join(str(p) for p in item['loc'][1:]) or where}: {item['msg']}" for item in items)
    return JSONResponse({"detail": f"invalid request: {detail}", "errors": items},
                        status_code=422)


# --- who is asking, and the ERP ------------------------------------------------------------------------------


@cache
def policy():
    """The governance policy, loaded once per process (on the first request, never at import)."""
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


def connect():
    """A connection to the ERP staging database (a context manager).

    Raises:
        include.erp.db.ErpConnectionError: the database is unreachable (answered 503 by :func:`protect`).
    """
    from include.erp import db

    return db.connect(_erp_url())


async def current_user(request: Request):
    """The caller, authenticated with Airflow's own login; 401 (or 403 for a forged token) without one."""
    from airflow.api_fastapi.core_api.security import bearer_scheme, get_user, oauth2_scheme

    credentials = await bearer_scheme(request)
    token = await oauth2_scheme(request)
    return await get_user(request, token, credentials)


def approver(user: Any):
    """What the signed-in user may do: their Airflow roles and their name (the policy's ``user_roles``)."""
    from include.erp.approvals import approver as for_user
    from include.governance.roles import airflow_roles

    return for_user(user.get_name(), airflow_roles(user), policy())


CurrentUser = Annotated[Any, Depends(current_user)]


# --- the protections every app gets --------------------------------------------------------------------------


def protect(app: FastAPI, *, pages: tuple[str, ...]) -> FastAPI:
    """Installs on ``app`` what every Shelfwise plugin app answers alike.

    - ``Content-Security-Policy`` (:data:`API_CSP` unless the endpoint set a page's) and
      :data:`SECURITY_HEADERS` on every response;
    - 503 with the reason when the ERP database is unreachable (``ErpConnectionError``);
    - 422 naming each bad field (:func:`validation_answer`) for a ``RequestValidationError`` whose ``body`` is
      ``{"where": "query" | "body"}``;
    - a redirect (303) to the Airflow login, back to the page afterwards, when a page is asked for (``GET``
      of a path ending in one of ``pages``) without a valid login; other HTTP errors as JSON ``detail``.

    Args:
        app: the plugin's FastAPI app.
        pages: the app's HTML pages, as the last part of their path (``"/approvals"``).

    Returns:
        ``app``.
    """
    from include.erp.db import ErpConnectionError

    @app.middleware("http")
    async def _security_headers(request: Request, call_next):
        response = await call_next(request)
        response.headers.setdefault("Content-Security-Policy", API_CSP)
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        return response

    @app.exception_handler(ErpConnectionError)
    async def _erp_unavailable(request: Request, exc: ErpConnectionError):
        log.error("ERP staging unavailable: %s", exc)
        return JSONResponse({"detail": str(exc)}, status_code=status.HTTP_503_SERVICE_UNAVAILABLE)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError):
        where = exc.body.get("where", "request") if isinstance(exc.body, dict) else "request"
        return validation_answer(exc.errors(), where)

    @app.exception_handler(HTTPException)
    async def _http_error(request: Request, exc: HTTPException):
        wants_page = request.method == "GET" and request.url.path.rstrip("/").endswith(pages)
        if wants_page and exc.status_code in (401, 403) and exc.detail in SIGN_IN:
            from airflow.api_fastapi.app import get_auth_manager

            return RedirectResponse(get_auth_manager().get_url_login(next_url=str(request.url)), status_code=303)
        return JSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=exc.headers)

    return app
