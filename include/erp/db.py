"""Connections to the ERP staging database and its versioned migrations.

Every connection (:func:`connect`, used by the hook, the approvals plugin and the command line) has a
connect timeout and the server-side ``statement_timeout``, ``lock_timeout`` and
``idle_in_transaction_session_timeout`` (sent as libpq ``options``), so a database that accepts
connections but never answers, a statement stuck behind a lock or a transaction left open fails within
bounds instead of hanging a task. The limits come from the environment (:data:`LIMITS`); the Airflow
connection's extras override them. Leaving ``with conn:`` on a limit that fired, or on a lost connection,
raises an error naming the database (password masked), the limit and how to raise it (:func:`explain_error`).

Migrations form an Alembic environment in ``migrations/`` (revisions in ``migrations/versions/``,
version table ``ops.alembic_version``). :func:`migrate` runs ``alembic upgrade head`` on the caller's
connection under an advisory lock, so every entry point (the Makefile, the DAG's first task, the
tests) can call it safely and concurrently. A database migrated before Alembic (recorded in
``ops.schema_migrations``) is adopted by stamping the revisions it already has, never by re-running them.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from types import MappingProxyType
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode

import psycopg

log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
VERSION_TABLE_SCHEMA = "ops"
# Serialises concurrent migrators (two tasks starting together) on one database.
_MIGRATION_LOCK = 4242_0001
# Versions of the pre-Alembic ``ops.schema_migrations`` table and the revision each one equals.
_LEGACY_REVISIONS = {1: "0001"}


class ErpConnectionError(RuntimeError):
    """The ERP staging database is not configured, or cannot be reached; the message says what to fix."""


class ErpTimeoutError(ErpConnectionError):
    """A timeout of an ERP staging connection fired; the message names the database, the limit and its setting.

    Attributes:
        setting: the limit that fired (``connect_timeout``, ``statement_timeout``, ``lock_timeout`` or
            ``idle_in_transaction_session_timeout``).
    """

    def __init__(self, message: str, setting: str = "") -> None:
        super().__init__(message)
        self.setting = setting


#: The Airflow connection that names the ERP staging database.
CONN_ID = "erp_staging"
#: The same, for commands run outside Airflow.
URL_ENV = "ERP_STAGING_URL"
#: Seconds a connection attempt may take by default before it fails with a clear error instead of hanging.
CONNECT_TIMEOUT_S = 10


@dataclass(frozen=True)
class Limit:
    """One timeout every ERP staging connection carries.

    Attributes:
        setting: the libpq parameter (``connect_timeout``) or PostgreSQL setting it sets.
        env: the variable that sets it, in seconds.
        extra: the Airflow connection extra that overrides the variable, in seconds.
        default_s: seconds when neither is given.
    """

    setting: str
    env: str
    extra: str
    default_s: float

    def how_to_raise(self) -> str:
        return f"raise {self.env} (seconds) or the Airflow connection extra {self.extra!r}"


# libpq counts whole seconds, and at least 2.
CONNECT = Limit("connect_timeout", "SHELFWISE_DB_CONNECT_TIMEOUT_S", "connect_timeout", CONNECT_TIMEOUT_S)
# The longest statements stage a night's batch (tens of thousands of lines in seconds).
STATEMENT = Limit("statement_timeout", "SHELFWISE_DB_STATEMENT_TIMEOUT_S", "statement_timeout_s", 300)
# Locks are held by a planner's decision or another staging of the same date: seconds at most.
LOCK = Limit("lock_timeout", "SHELFWISE_DB_LOCK_TIMEOUT_S", "lock_timeout_s", 60)
IDLE = Limit("idle_in_transaction_session_timeout", "SHELFWISE_DB_IDLE_IN_TRANSACTION_TIMEOUT_S",
             "idle_in_transaction_timeout_s", 600)
#: The timeouts of every connection; the last three are sent to the server as ``options``.
LIMITS = (CONNECT, STATEMENT, LOCK, IDLE)
_SERVER_LIMITS = {lim.setting: lim for lim in (STATEMENT, LOCK, IDLE)}
#: Statement and lock timeout of :func:`migrate`'s own transaction (it waits for other migrators).
MIGRATION_TIMEOUT_ENV = "SHELFWISE_DB_MIGRATION_TIMEOUT_S"
MIGRATION_TIMEOUT_S = 1800
# A server that vanishes mid-statement (host down, network cut) is noticed by TCP in about a minute.
_KEEPALIVES = {"keepalives": 1, "keepalives_idle": 30, "keepalives_interval": 10, "keepalives_count": 3}
_TIME_UNITS_S = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "min": 60.0, "h": 3600.0, "d": 86400.0}
_OPTION = re.compile(r"(?:-c\s*|--)([A-Za-z_][\w.-]*)=(\S+)")


def _seconds(raw: Any, setting: str, where: str) -> float:
    """``raw`` as seconds for ``setting``, or an error naming ``where`` it was set."""
    try:
        value = float(str(raw).strip())
    except ValueError:
        value = math.nan
    least = 1.0 if setting == CONNECT.setting else 0.0
    if not (least <= value < math.inf):
        rule = ("a number of seconds of at least 1 (0 would wait forever)" if least
                else "a number of seconds (0 turns the limit off)")
        raise ErpConnectionError(f"{where} sets {setting}: it must be {rule}, got {raw!r}")
    return value


def _pg_seconds(raw: str, setting: str, where: str) -> float:
    """A PostgreSQL time value (``30s``, ``500ms``, ``5min``; a bare number is milliseconds) in seconds."""
    match = re.fullmatch(r"(\d+(?:\.\d+)?)([a-z]*)", raw.strip().strip("'\""))
    if match is None or match.group(2) not in ("", *_TIME_UNITS_S):
        raise ErpConnectionError(f"{where} sets {setting}={raw!r}, which is not a PostgreSQL time "
                                 "(e.g. 30s, 500ms, 5min)")
    return float(match.group(1)) * _TIME_UNITS_S[match.group(2) or "ms"]


def _fmt(seconds: float) -> str:
    return f"{seconds:g} s" if seconds else "0 s (off)"


def connection_settings(url: str, **kwargs: Any) -> tuple[dict[str, Any], dict[str, float]]:
    """The psycopg arguments that connect to ``url`` with every timeout set, and those timeouts.

    Each timeout is, from weakest to strongest: its default, its variable (:data:`LIMITS`), the URL's
    ``connect_timeout`` or ``options`` ``-c <setting>=...`` (where the Airflow connection's extras land),
    then ``kwargs``.

    Args:
        url: a libpq URL of the ERP staging database.
        **kwargs: psycopg connection arguments; an ``options`` string is added after the timeouts' own.

    Returns:
        Keyword arguments for ``psycopg.connect(url, ...)``, and seconds per setting of :data:`LIMITS`.

    Raises:
        ErpConnectionError: a variable, extra or option sets a timeout to something that is not a duration.
    """
    info = psycopg.conninfo.conninfo_to_dict(url)
    limits = {lim.setting: _seconds(os.environ.get(lim.env) or lim.default_s, lim.setting, lim.env) for lim in LIMITS}
    raw_connect = kwargs.get("connect_timeout", info.get("connect_timeout"))
    if raw_connect not in (None, ""):
        limits[CONNECT.setting] = _seconds(raw_connect, CONNECT.setting, f"the connection {redact(url)}")
    given = " ".join(str(o) for o in (info.get("options"), kwargs.get("options")) if o)
    for name, value in _OPTION.findall(given):
        name = name.replace("-", "_")
        if name in _SERVER_LIMITS:
            limits[name] = _pg_seconds(value, name, f"the options of the connection {redact(url)}")
    ours = " ".join(f"-c {name}={round(limits[name] * 1000)}ms" for name in _SERVER_LIMITS)
    params = {k: v for k, v in _KEEPALIVES.items() if k not in info}
    params.update(kwargs)
    params["connect_timeout"] = math.ceil(limits[CONNECT.setting])
    params["options"] = f"{ours} {given}".strip()
    return params, limits


def _not_found(exc: Exception) -> bool:
    return type(exc).__name__ in ("AirflowNotFoundException", "ConnectionNotFound")


def _env_connection(conn_id: str) -> Any:
    """The Airflow connection ``conn_id`` as defined in the environment (``AIRFLOW_CONN_<ID>``), or None."""
    raw = os.environ.get(f"AIRFLOW_CONN_{conn_id.upper()}")
    if not raw:
        return None
    if raw.lstrip().startswith("{"):
        spec = json.loads(raw)
        auth = spec.get("login") or ""
        if spec.get("password"):
            auth += f":{quote(str(spec['password']), safe='')}"
        netloc = (f"{auth}@" if auth else "") + str(spec.get("host") or "") + (
            f":{spec['port']}" if spec.get("port") else "")
        extra = spec.get("extra") or {}
        return _UrlConnection(str(spec.get("conn_type") or ""), f"postgresql://{netloc}/{spec.get('schema') or ''}",
                              json.loads(extra) if isinstance(extra, str) else dict(extra))
    return _UrlConnection(raw.split("://", 1)[0] if "://" in raw else "", raw)


class _UrlConnection:
    """What Shelfwise reads of an Airflow connection: its type, its URI and (JSON form) its extras."""

    def __init__(self, conn_type: str, uri: str, extra: dict[str, Any] | None = None) -> None:
        self.conn_type = conn_type
        self._uri = uri
        if extra is not None:
            self.extra_dejson = extra

    def get_uri(self) -> str:
        return self._uri


@cache
def _libpq_keywords() -> frozenset[str]:
    return frozenset(o.keyword.decode() for o in psycopg.pq.Conninfo.get_defaults())


def _with_extras(uri: str, extras: Mapping[str, Any] | None, source: str) -> str:
    """``uri`` with the connection's extras as libpq parameters; the timeout extras become ``options``.

    ``extras`` None means they are the URI's query (an Airflow connection URI): rewritten only when it
    holds timeout extras or Airflow's ``__extra__``, else kept as it is.
    """
    base, _, query = uri.partition("?")
    if extras is None:
        pairs = parse_qsl(query, keep_blank_values=True)
        timeout_keys = {lim.extra for lim in _SERVER_LIMITS.values()} | {"__extra__"}
        if not any(key in timeout_keys for key, _ in pairs):
            return uri
        extras = dict(pairs)
        if "__extra__" in extras:
            extras.update(json.loads(extras.pop("__extra__")))
    params: dict[str, str] = {}
    options: list[str] = []
    by_extra = {lim.extra: lim for lim in _SERVER_LIMITS.values()}
    for key, value in extras.items():
        if key in by_extra:
            seconds = _seconds(value, by_extra[key].setting, f"the extra {key!r} of {source}")
            options.append(f"-c {by_extra[key].setting}={round(seconds * 1000)}ms")
        elif key in _libpq_keywords():
            params[key] = str(value)
        else:
            raise ErpConnectionError(
                f"{source} has the extra {key!r}, which is neither a PostgreSQL connection parameter nor one of "
                f"{', '.join(sorted(by_extra))}: remove it from the connection's extras")
    if options:
        # After the connection's own options: a later -c wins.
        params["options"] = " ".join([params["options"], *options] if "options" in params else options)
    return f"{base}?{urlencode(params, quote_via=quote)}" if params else base


def resolve_erp_url(conn_id: str = CONN_ID, *, lookup: Callable[[str], Any] | None = None) -> str:
    """The ERP staging database URL, the same way for the DAGs, the plugin and the command line.

    1. The Airflow connection ``conn_id`` (``erp_staging``): through ``lookup`` (the hook passes its
       ``get_connection``, the plugin Airflow's secrets backends), else from ``AIRFLOW_CONN_ERP_STAGING``.
       Its extras become libpq parameters of the URL: ``connect_timeout``, ``sslmode``... and the
       timeouts ``statement_timeout_s``, ``lock_timeout_s``, ``idle_in_transaction_timeout_s`` (seconds).
    2. Else ``ERP_STAGING_URL``.
    3. Else nothing: an error. There is no silent default database.

    Raises:
        ErpConnectionError: naming the connection or variable and what to fix, when neither is defined, the
            connection is not a PostgreSQL one, its URL names no database or an extra is unknown.
    """
    try:
        conn = lookup(conn_id) if lookup is not None else _env_connection(conn_id)
    except Exception as exc:  # noqa: BLE001 - a broken definition is reported with its name, not swallowed
        if not _not_found(exc):
            raise ErpConnectionError(f"Airflow connection {conn_id!r} cannot be read: {exc}. Fix the connection "
                                 f"(Admin > Connections, or AIRFLOW_CONN_{conn_id.upper()})") from exc
        conn = None
    if conn is not None:
        source = f"Airflow connection {conn_id!r}"
        if str(conn.conn_type).lower() not in ("postgres", "postgresql"):
            raise ErpConnectionError(f"{source} is of type {conn.conn_type!r}: Shelfwise needs a postgres connection "
                                 "to the ERP staging database")
        uri = conn.get_uri()
        extras = getattr(conn, "extra_dejson", None)
        if extras is not None:
            uri = uri.partition("?")[0]
        return _checked(_with_extras(uri, extras, source), source)
    if os.environ.get(URL_ENV):
        return _checked(_with_extras(os.environ[URL_ENV], None, URL_ENV), URL_ENV)
    raise ErpConnectionError(f"no ERP staging database is configured: define the Airflow connection {conn_id!r} "
                         f"(AIRFLOW_CONN_{conn_id.upper()}=postgresql://user@host:5432/dbname) or set {URL_ENV}")


def _checked(url: str, source: str) -> str:
    url = url.replace("postgres://", "postgresql://", 1)
    try:
        info = psycopg.conninfo.conninfo_to_dict(url)
    except psycopg.ProgrammingError as exc:
        raise ErpConnectionError(f"{source} is not a valid PostgreSQL URL ({redact(url)}): {exc}") from exc
    if not info.get("dbname"):
        raise ErpConnectionError(f"{source} names no database ({redact(url)}): add /<dbname> to its URL")
    return url


def redact(url: str) -> str:
    """``url`` with its password masked, for messages and logs."""
    url = re.sub(r"://([^:@/]+):[^@/]+@", r"://\1:***@", url)
    return re.sub(r"((?:^|[?&\s])password=)('[^']*'|[^&\s]*)", r"\1***", url)


class ErpConnection(psycopg.Connection):
    """A psycopg connection to the ERP staging database, opened by :func:`connect`.

    Leaving ``with conn:`` on a timeout or a lost connection raises :func:`explain_error`'s error, which
    names the database, the limit and how to raise it, instead of psycopg's bare one (chained to it).
    """

    #: The database, password masked.
    erp_target: str = "the ERP staging database"
    #: Seconds per setting of :data:`LIMITS` this connection was opened with.
    erp_timeouts: Mapping[str, float] = MappingProxyType({})

    def __exit__(self, exc_type, exc_val, exc_tb) -> None:
        with explained(self):  # the commit, when the block succeeded
            super().__exit__(exc_type, exc_val, exc_tb)
        clear = explain_error(exc_val, self) if exc_val is not None else None
        if clear is not None:
            raise clear from exc_val


def explain_error(exc: BaseException, conn: Any = None) -> ErpConnectionError | None:
    """The clear error for a timeout or a lost connection met by a statement on an ERP staging connection.

    Args:
        exc: what the statement raised (a psycopg error, or SQLAlchemy's wrapping one during migrations).
        conn: the connection it ran on (an :class:`ErpConnection` names its database and limits).

    Returns:
        :class:`ErpTimeoutError` for a statement, lock or idle-in-transaction timeout,
        :class:`ErpConnectionError` for a lost connection; None for any other error (raise it as it is).
    """
    exc = _psycopg_error(exc)
    if exc is None:
        return None
    target = getattr(conn, "erp_target", None) or "the ERP staging database"
    limits = getattr(conn, "erp_timeouts", None) or {}
    text = _describe(exc)
    # The SQLSTATE alone cannot tell a statement timeout from a cancel request, nor a lock timeout from NOWAIT.
    for marker, limit, what in (
        ("due to statement timeout", STATEMENT, "cancelled a statement that ran longer"),
        ("due to lock timeout", LOCK, "cancelled a statement that waited longer for a lock another session holds "
         "(a decision, a staging of the same date, a migration)"),
        ("due to idle-in-transaction timeout", IDLE, "closed a connection whose transaction stayed idle longer"),
    ):
        if marker in text:
            seconds = limits.get(limit.setting)
            value = f" ({_fmt(seconds)})" if seconds is not None else ""
            return ErpTimeoutError(
                f"the ERP staging database {target} {what} than its {limit.setting}{value}: {text}. Nothing of the "
                f"open transaction was committed; if the work needs longer, {limit.how_to_raise()}",
                setting=limit.setting)
    state = exc.sqlstate or ""
    if isinstance(exc, psycopg.OperationalError) and (
            state.startswith("08") or state in ("57P01", "57P02", "57P03") or getattr(conn, "broken", False)):
        return ErpConnectionError(f"lost the connection to the ERP staging database {target}: {text}. The server "
                                  "rolls back a transaction left open; a retry is safe (staging, expiring, releasing "
                                  "and deciding are idempotent)")
    return None


def _psycopg_error(exc: BaseException) -> psycopg.Error | None:
    exc = exc if isinstance(exc, psycopg.Error) else getattr(exc, "orig", None)
    return exc if isinstance(exc, psycopg.Error) else None


def _describe(exc: psycopg.Error) -> str:
    """The server's message on one line, with what the statement was doing (``while locking tuple ...``)."""
    text = (exc.diag.message_primary or str(exc)).strip()
    if exc.diag.context:
        text += f" ({' / '.join(exc.diag.context.strip().splitlines())})"
    return text


@contextlib.contextmanager
def explained(conn: Any) -> Iterator[Any]:
    """Run statements on ``conn``; a timeout or a lost connection raises :func:`explain_error`'s error.

    For code that holds a connection without ``with conn:`` (which does the same for :class:`ErpConnection`).
    """
    try:
        yield conn
    except psycopg.Error as exc:
        clear = explain_error(exc, conn)
        if clear is None:
            raise
        raise clear from exc


def connect(url: str | None = None, **kwargs: Any) -> ErpConnection:
    """Open a connection with every timeout of :data:`LIMITS` set (autocommit off: callers own their transactions).

    Args:
        url: the database; :func:`resolve_erp_url` when omitted.
        **kwargs: psycopg connection arguments; ``connect_timeout`` and ``options`` override the timeouts
            (see :func:`connection_settings`).

    Raises:
        ErpConnectionError: when the database cannot be reached, naming it (password masked) and where its
            URL came from; :class:`ErpTimeoutError` when it did not answer within the connect timeout.
    """
    url = url or resolve_erp_url()
    params, limits = connection_settings(url, **kwargs)
    try:
        conn = ErpConnection.connect(url, **params)
    except psycopg.OperationalError as exc:
        where = f"Check the Airflow connection {CONN_ID!r} (or {URL_ENV})"
        if isinstance(exc, psycopg.errors.ConnectionTimeout):
            raise ErpTimeoutError(
                f"cannot connect to the ERP staging database {redact(url)}: no answer within its connect_timeout "
                f"({_fmt(limits[CONNECT.setting])}). {where}; if the server is only slow, {CONNECT.how_to_raise()}",
                setting=CONNECT.setting) from exc
        raise ErpConnectionError(f"cannot connect to the ERP staging database {redact(url)}: "
                             f"{str(exc).strip()}. {where}") from exc
    conn.erp_target, conn.erp_timeouts = redact(url), MappingProxyType(limits)
    return conn


def alembic_config():
    """The Alembic configuration of the ERP staging migrations (no ini file needed)."""
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    return cfg


def migrate(conn: psycopg.Connection) -> list[str]:
    """Bring the ERP staging schema to the latest revision (``alembic upgrade head``).

    Runs in one transaction on ``conn`` under an advisory lock; idempotent. The transaction sets its own
    statement, lock and idle timeouts (``SET LOCAL``: ``SHELFWISE_DB_MIGRATION_TIMEOUT_S``, default
    :data:`MIGRATION_TIMEOUT_S`), so the connection's shorter ones neither kill a long migration nor a wait
    for another migrator; they apply again once it ends.

    Args:
        conn: an open psycopg connection to the ERP staging database, not inside a transaction.

    Returns:
        Names of the revisions applied by this call (``0001_erp_staging`` ...), oldest first.
    """
    from alembic import command
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory
    from sqlalchemy import create_engine, text
    from sqlalchemy.pool import StaticPool

    cfg = alembic_config()
    script = ScriptDirectory.from_config(cfg)
    # SQLAlchemy drives the caller's own psycopg connection: same session, same advisory lock.
    engine = create_engine("postgresql+psycopg://", creator=lambda: conn, poolclass=StaticPool,
                           use_native_hstore=False)
    limit_s = _migration_timeout_s()
    was_autocommit = conn.autocommit
    conn.autocommit = False
    try:
        with engine.connect() as sa_conn, sa_conn.begin():
            # set_config(..., true) is SET LOCAL: for this transaction only, before any wait.
            sa_conn.execute(text("SELECT set_config('statement_timeout', :ms, true), set_config('lock_timeout', :ms, true),"
                                 " set_config('idle_in_transaction_session_timeout', :ms, true)"),
                            {"ms": f"{round(limit_s * 1000)}ms"})
            sa_conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK})
            sa_conn.execute(text(f"CREATE SCHEMA IF NOT EXISTS {VERSION_TABLE_SCHEMA}"))
            context = MigrationContext.configure(sa_conn, opts={"version_table_schema": VERSION_TABLE_SCHEMA})
            before = context.get_current_heads()
            if not before:
                adopted = _legacy_revision(sa_conn)
                if adopted:
                    context.stamp(script, adopted)
                    log.info("adopted pre-Alembic ERP staging schema at revision %s", adopted)
                    before = context.get_current_heads()
            cfg.attributes["connection"] = sa_conn
            command.upgrade(cfg, "head")
            after = context.get_current_heads()
    except Exception as exc:
        clear = explain_error(exc, conn)
        if isinstance(clear, ErpTimeoutError):
            target = getattr(conn, "erp_target", None) or "the ERP staging database"
            raise ErpTimeoutError(
                f"the ERP staging migration on {target} outran its own timeout ({_fmt(limit_s)}): "
                f"{_describe(_psycopg_error(exc))}. Nothing of it was committed; if it needs longer, raise "
                f"{MIGRATION_TIMEOUT_ENV} (seconds)", setting=clear.setting) from exc
        raise
    finally:
        conn.autocommit = was_autocommit
    applied = _revisions_between(script, before, after)
    if applied:
        log.info("applied ERP staging migrations: %s", ", ".join(applied))
    return applied


def _migration_timeout_s() -> float:
    return _seconds(os.environ.get(MIGRATION_TIMEOUT_ENV) or MIGRATION_TIMEOUT_S, "statement_timeout",
                    MIGRATION_TIMEOUT_ENV)


def _legacy_revision(sa_conn) -> str | None:
    """The revision a database migrated by the former numbered-SQL runner is at, if any."""
    from sqlalchemy import text

    exists = sa_conn.execute(text("SELECT to_regclass('ops.schema_migrations')")).scalar()
    if not exists:
        return None
    latest = sa_conn.execute(text("SELECT max(version) FROM ops.schema_migrations")).scalar()
    if latest is None:
        return None
    if latest not in _LEGACY_REVISIONS:
        raise RuntimeError(f"ops.schema_migrations is at version {latest}, which has no Alembic revision "
                           f"(known: {sorted(_LEGACY_REVISIONS)})")
    return _LEGACY_REVISIONS[latest]


def _revisions_between(script, before: tuple[str, ...], after: tuple[str, ...]) -> list[str]:
    if set(before) == set(after):
        return []
    lower = before[0] if before else "base"
    revs = [r for head in after for r in script.iterate_revisions(head, lower)]
    return [Path(r.path).stem for r in reversed(revs)]


def ensure_database(url: str) -> None:
    """Create the database named in ``url`` when the server does not have it yet."""
    info = psycopg.conninfo.conninfo_to_dict(url)
    name = info.get("dbname")
    if not name:
        raise ValueError(f"ERP staging URL names no database: {url!r}")
    admin = dict(info, dbname="postgres")
    with connect(psycopg.conninfo.make_conninfo(**admin), autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        if not exists:
            conn.execute(f'CREATE DATABASE "{name}"')
            log.info("created database %s", name)
