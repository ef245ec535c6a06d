"""Airflow's services on loopback for an environment: the API server alone, or the whole stack.

``api_server`` starts ``airflow api-server`` alone (no scheduler, DAG processor or triggerer) on a free
loopback port with the environment it is given, so it serves the REST API on the same metadata DB as
the ``airflow dags test`` processes started with that environment (the SQLite DB that ``airflow db
migrate`` configured under its ``AIRFLOW_HOME``). It is what the integration tests and ``make approve``
answer a run's Required Action through.

``airflow_stack`` starts everything a scheduled run needs: the API server, scheduler, DAG processor and
triggerer, and with the CeleryExecutor N ``airflow celery worker`` processes, all in one process group
that is always stopped as a whole. ``make celery``, the end-to-end tests (``tests/e2e``) and the scale
benchmark (``benchmarks/nightly_scale.py``) use it.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import json
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from pathlib import Path

START_TIMEOUT_S = 120
STOP_TIMEOUT_S = 30
STACK_START_TIMEOUT_S = 240
#: ``[api_auth] jwt_expiration_time`` of the stacks: a UI token lives one working day (Airflow: 24 h).
UI_TOKEN_SECONDS = "28800"
LOCAL = "LocalExecutor"
CELERY = "CeleryExecutor"
#: The services ``GET /api/v2/monitor/health`` reports on besides the metadata DB.
HEALTH_COMPONENTS = ("metadatabase", "scheduler", "triggerer", "dag_processor")
_SECRETS_IN_LOGS = re.compile(r"(token=)'[^']+'|eyJ[\w-]+\.[\w-]+\.[\w-]+")


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_status(url: str, timeout: float = 5.0) -> int:
    """HTTP status of ``GET url``; 0 when nothing answers."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except (OSError, ValueError):
        return 0


def health_status(base_url: str, timeout: float = 5.0) -> int:
    """HTTP status of ``GET {base_url}/api/v2/monitor/health``; 0 when nothing answers."""
    return http_status(f"{base_url}/api/v2/monitor/health", timeout)


@contextlib.contextmanager
def api_server(env: Mapping[str, str], *, log_path: Path | None = None,
               start_timeout: float = START_TIMEOUT_S) -> Iterator[str]:
    """Run ``airflow api-server`` on a free loopback port for as long as the block runs.

    Args:
        env: the whole environment of the server (``AIRFLOW_HOME`` and the simple auth manager's
            users and passwords file included); the API's host, port, base URL and single worker are
            set on top, and the home's keys (:func:`home_secrets`) unless ``env`` has them.
        log_path: where the server's output goes; ``api-server.log`` in ``AIRFLOW_HOME`` by default.
        start_timeout: seconds to wait for the health endpoint.

    Yields:
        The server's base URL, e.g. ``http://127.0.0.1:41234``.

    Raises:
        RuntimeError: the server exited or its health endpoint did not answer 200 in time; the
            message has the tail of its log. (:class:`ExposedSecrets` is one: see :func:`home_secrets`.)
    """
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    keys = home_secrets(Path(env["AIRFLOW_HOME"]))
    server_env = {
        **env,
        **{name: env.get(name) or value for name, value in keys.items()},
        "AIRFLOW__API__BASE_URL": base,
        "AIRFLOW__API__HOST": "127.0.0.1",
        "AIRFLOW__API__PORT": str(port),
        "AIRFLOW__API__WORKERS": "1",
    }
    log_path = log_path or Path(env["AIRFLOW_HOME"]) / "api-server.log"
    airflow = str(Path(sys.executable).parent / "airflow")
    with open(log_path, "w") as log:
        proc = subprocess.Popen([airflow, "api-server", "--host", "127.0.0.1", "--port", str(port)],
                                env=server_env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True, cwd=env["AIRFLOW_HOME"])
        try:
            deadline = time.monotonic() + start_timeout
            while health_status(base, timeout=2) != 200:
                if proc.poll() is not None or time.monotonic() > deadline:
                    log.flush()
                    raise RuntimeError(f"airflow api-server did not come up on {base} in {start_timeout:g} s "
                                       f"(exit code {proc.poll()}); {log_path} ends with:\n"
                                       f"{log_path.read_text(errors='replace')[-3000:]}")
                time.sleep(0.5)
            yield base
        finally:
            stop_group(proc)


def dags_test_until(airflow: str, env: Mapping[str, str], root: str, dag_id: str, ds, log_path: Path, done: str, *,
                    logical: str | None = None, timeout: float = 600) -> tuple[subprocess.Popen, dict | None]:
    """Start ``airflow dags test <dag_id> <logical>`` in its own process group, its output in ``log_path``, and
    return once the stage summary of task ``done`` is written for ``ds`` (or the run ended): the run may go on
    waiting at its approval gate. The date's earlier summaries are removed first.

    Returns:
        The process and the date's stage summaries (``None`` when ``timeout`` seconds passed first).
    """
    from include.stages.summaries import read_stage_summaries

    stages = Path(root) / "reports" / "stages" / dag_id / f"ds={ds}"
    for stale in stages.glob("*.json"):
        stale.unlink()
    with open(log_path, "w") as log:
        proc = subprocess.Popen([airflow, "dags", "test", dag_id, logical or str(ds)], env=dict(env), stdout=log,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + timeout
    while time.time() < deadline:
        summaries = read_stage_summaries(dag_id, ds, root)
        if done in summaries or proc.poll() is not None:
            return proc, summaries
        time.sleep(2)
    return proc, None


def stop_group(proc: subprocess.Popen, timeout: float = STOP_TIMEOUT_S) -> None:
    """Stop the process group ``proc`` leads (uvicorn and its worker): TERM, then KILL what is left."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            pass
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            os.killpg(proc.pid, 0)  # raises ProcessLookupError once the whole group is gone
            time.sleep(0.2)
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=5)


@dataclasses.dataclass(frozen=True)
class Stack:
    """A running Airflow stack (see :func:`airflow_stack`).

    Attributes:
        base_url: the API server (UI and REST API), e.g. ``http://127.0.0.1:41234``.
        executor: ``LocalExecutor`` or ``CeleryExecutor``.
        env: the environment every service runs with; it holds the run's secrets, so never print it.
        log_dir: one ``<service>.log`` per service (``worker-1.log``... for the Celery workers).
        workers: the Celery workers' node names (``name@host``); empty with the LocalExecutor.
        processes: the services' processes by name (``api-server``, ``scheduler``, ``worker-1``...).
    """

    base_url: str
    executor: str
    env: dict[str, str] = dataclasses.field(repr=False)
    log_dir: Path
    workers: tuple[str, ...] = ()
    processes: dict[str, subprocess.Popen] = dataclasses.field(default_factory=dict, repr=False)

    def log(self, service: str) -> Path:
        """The log file of ``service`` (``api-server``, ``scheduler``, ``worker-1``...)."""
        return self.log_dir / f"{service}.log"

    def exited(self) -> dict[str, int]:
        """Exit codes of the services that are no longer running."""
        return {name: proc.returncode for name, proc in self.processes.items() if proc.poll() is not None}

    def log_tails(self, chars: int = 1500) -> str:
        """The end of every service's log, tokens redacted: for failure messages."""
        return "\n".join(f"--- {path.name} ---\n{redacted(path.read_text(errors='replace')[-chars:])}"
                         for path in sorted(self.log_dir.glob("*.log")))


def redacted(text: str) -> str:
    """``text`` without the bearer tokens Airflow logs with a task's workload."""
    return _SECRETS_IN_LOGS.sub(lambda m: f"{m.group(1)}'***'" if m.group(1) else "***", text)


def fernet_key() -> str:
    """A new Fernet key (32 random bytes, URL-safe base64), as ``[core] fernet_key`` expects."""
    return base64.urlsafe_b64encode(secrets.token_bytes(32)).decode()


class ExposedSecrets(RuntimeError):
    """An Airflow home's configuration is readable by other users: its secrets cannot be trusted."""


def _set_option(text: str, section: str, option: str, value: str) -> str:
    """``text`` (an ``airflow.cfg``) with ``option = value`` in ``[section]``, replacing an empty setting."""
    lines = text.splitlines()
    header = next((i for i, line in enumerate(lines) if line.strip().lower() == f"[{section}]"), None)
    if header is None:
        return text.rstrip("\n") + f"\n\n[{section}]\n{option} = {value}\n"
    end = next((i for i in range(header + 1, len(lines)) if lines[i].lstrip().startswith("[")), len(lines))
    for i in range(header + 1, end):
        if re.fullmatch(rf"\s*{option}\s*=\s*", lines[i]):
            lines[i] = f"{option} = {value}"
            break
    else:
        lines.insert(header + 1, f"{option} = {value}")
    return "\n".join(lines) + "\n"


def home_secrets(home: Path) -> dict[str, str]:
    """The Fernet key, API secret key and JWT secret of an Airflow home, made on its first start.

    They live in the home's ``airflow.cfg`` (mode 0600), where every Airflow process started on that home
    reads them, ``airflow dags test`` included: what one process encrypts (a deferred trigger's
    arguments, connections) another can read, and the API server checks the tokens the others sign.
    Airflow writes fresh values itself when it creates ``airflow.cfg``; this creates a minimal one when
    the home has none yet, fills in any of the three left empty, and never reuses a value from anywhere
    else. A home of ``make celery`` from before this keeps its ``fernet.key``.

    Args:
        home: the Airflow home.

    Returns:
        ``{"AIRFLOW__CORE__FERNET_KEY": ..., "AIRFLOW__API__SECRET_KEY": ..., "AIRFLOW__API_AUTH__JWT_SECRET": ...}``.

    Raises:
        ExposedSecrets: ``airflow.cfg`` is readable or writable by group or others (a copied or committed
            home): its keys must be treated as known, so none is used.
    """
    import configparser

    home.mkdir(parents=True, exist_ok=True)
    cfg = home / "airflow.cfg"
    with contextlib.suppress(FileExistsError):
        fd = os.open(cfg, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        os.close(fd)
    mode = cfg.stat().st_mode & 0o777
    if mode & 0o077:
        raise ExposedSecrets(
            f"{cfg} has mode {mode:o}: other users can read its Fernet key, secret key and JWT secret, so they "
            "are not secret. Move this Airflow home away (a demo or test home is recreated on the next run), or "
            f"rotate the three keys and `chmod 600 {cfg}`.")
    text = cfg.read_text()
    parser = configparser.ConfigParser(interpolation=None, strict=False)
    parser.read_string(text)
    legacy = home / "fernet.key"
    fresh = {
        "core": ("fernet_key", lambda: legacy.read_text().strip() if legacy.exists() else fernet_key()),
        "api": ("secret_key", lambda: secrets.token_urlsafe(32)),
        "api_auth": ("jwt_secret", lambda: secrets.token_urlsafe(32)),
    }
    changed = text
    values = {}
    for section, (option, make) in fresh.items():
        value = parser.get(section, option, fallback="").strip()
        if not value:
            value = make()
            changed = _set_option(changed, section, option, value)
        values[f"AIRFLOW__{section.upper()}__{option.upper()}"] = value
    if changed != text:
        cfg.write_text(changed)
    return values


def sqlalchemy_url(url: str) -> str:
    """A PostgreSQL URL (``postgresql://...``) as Airflow's metadata DB connection (psycopg2 driver)."""
    return re.sub(r"^postgres(ql)?(\+\w+)?://", "postgresql+psycopg2://", url)


def stack_env(env: Mapping[str, str], *, executor: str, port: int, broker_url: str | None = None,
              queue: str | None = None, worker_concurrency: int = 2) -> dict[str, str]:
    """The environment of every service of a stack: ``env`` plus the executor, API, keys and broker.

    Args:
        env: the base environment (``AIRFLOW_HOME``, DAGs folder, users...). Its
            ``AIRFLOW__DATABASE__SQL_ALCHEMY_CONN`` is the metadata DB (SQLite under ``AIRFLOW_HOME``
            when absent); secrets it already has are kept, the others are the home's
            (:func:`home_secrets`).
        executor: ``LocalExecutor`` or ``CeleryExecutor``.
        port: the API server's loopback port.
        broker_url: the Celery broker (``redis://host:port/db``); else ``env``'s
            ``AIRFLOW__CELERY__BROKER_URL``.
        queue: the Celery queue tasks go to and workers read (``[operators] default_queue``); a name
            of its own keeps two stacks on one broker database from taking each other's tasks.
        worker_concurrency: task slots per Celery worker.

    Returns:
        The environment.

    Raises:
        ValueError: an unknown executor; for the CeleryExecutor, a metadata DB that is not PostgreSQL
            or no broker.
        ExposedSecrets: see :func:`home_secrets`.
    """
    if executor not in (LOCAL, CELERY):
        raise ValueError(f"executor {executor!r}: expected {LOCAL} or {CELERY}")
    home = Path(env["AIRFLOW_HOME"])
    base = f"http://127.0.0.1:{port}"
    conn = env.get("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN") or f"sqlite:///{home / 'airflow.db'}"
    keys = home_secrets(home)
    out = {
        **env,
        "AIRFLOW__CORE__EXECUTOR": executor,
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": conn,
        "AIRFLOW__API__BASE_URL": base,
        "AIRFLOW__API__HOST": "127.0.0.1",
        "AIRFLOW__API__PORT": str(port),
        "AIRFLOW__API__WORKERS": "1",
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{base}/execution/",
        # Every service signs or checks the execution API's tokens and reads what another encrypted, so they
        # share the home's keys (made on its first start, never a value from the repository).
        **{name: env.get(name) or value for name, value in keys.items()},
        # A stolen UI token stops working at the end of the working day.
        "AIRFLOW__API_AUTH__JWT_EXPIRATION_TIME": env.get("AIRFLOW__API_AUTH__JWT_EXPIRATION_TIME") or UI_TOKEN_SECONDS,
        # The scheduler's health server listens on a fixed port that another stack on the machine may hold.
        "AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK": "False",
    }
    if executor == CELERY:
        if not conn.startswith("postgresql"):
            raise ValueError(f"the CeleryExecutor needs a PostgreSQL metadata DB, not {conn.split(':', 1)[0]}: "
                             "set AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=postgresql+psycopg2://...")
        broker = broker_url or env.get("AIRFLOW__CELERY__BROKER_URL")
        if not broker:
            raise ValueError("the CeleryExecutor needs a broker: pass broker_url or set AIRFLOW__CELERY__BROKER_URL "
                             "(redis://127.0.0.1:6379/0)")
        out.update({
            "AIRFLOW__CELERY__BROKER_URL": broker,
            "AIRFLOW__CELERY__RESULT_BACKEND": env.get("AIRFLOW__CELERY__RESULT_BACKEND")
            or "db+" + re.sub(r"^postgresql(\+\w+)?", "postgresql", conn),
            "AIRFLOW__CELERY__WORKER_CONCURRENCY": str(worker_concurrency),
        })
        if queue:
            out["AIRFLOW__OPERATORS__DEFAULT_QUEUE"] = queue
    return out


def broker_problem(url: str, timeout: float = 2.0) -> str | None:
    """Why the Redis broker at ``url`` cannot be used.

    Args:
        url: ``redis://host:port/db``.
        timeout: seconds to connect and to wait for the answer.

    Returns:
        ``None`` when Redis answers ``PING``, else what went wrong, with the URL.
    """
    import redis

    try:
        redis.Redis.from_url(url, socket_connect_timeout=timeout, socket_timeout=timeout).ping()
    except (redis.RedisError, OSError, ValueError) as exc:
        return f"no Redis answers at {url}: {str(exc).rstrip('.')}"
    return None


def drop_queue(url: str, queue: str) -> int:
    """Remove a Celery queue of a stack's own (its messages and bindings) from the Redis broker at ``url``.

    Args:
        url: ``redis://host:port/db``.
        queue: the queue's name, as given to :func:`airflow_stack`; unique enough that no other key holds it.

    Returns:
        How many keys were removed.
    """
    import redis

    client = redis.Redis.from_url(url, socket_connect_timeout=5, socket_timeout=5)
    keys = list(client.scan_iter(match=f"*{queue}*"))
    return client.delete(*keys) if keys else 0


def stack_health(base_url: str, timeout: float = 5.0) -> dict[str, str]:
    """Status of each of :data:`HEALTH_COMPONENTS` (``healthy``, ``unhealthy``, ``None``...); empty when down."""
    try:
        with urllib.request.urlopen(f"{base_url}/api/v2/monitor/health", timeout=timeout) as response:
            body = json.loads(response.read())
    except (OSError, ValueError):
        return {}
    return {name: (body.get(name) or {}).get("status") for name in HEALTH_COMPONENTS}


def worker_commands(airflow: str, n: int, *, concurrency: int) -> dict[str, tuple[str, list[str]]]:
    """``n`` ``airflow celery worker`` command lines, each with a node name of its own.

    Args:
        airflow: the ``airflow`` executable.
        n: how many workers.
        concurrency: task slots of each.

    Returns:
        ``{"worker-1": ("shelfwise-<run>-1@<host>", [command...]), ...}``.
    """
    run, host = secrets.token_hex(3), socket.gethostname()
    # Task logs are read from the one shared log folder, so no worker serves them (that server takes a
    # fixed port); mingle and gossip only slow the start of workers that share no state.
    return {f"worker-{i}": (node := f"shelfwise-{run}-{i}@{host}",
                            [airflow, "celery", "worker", "--celery-hostname", node, "--concurrency", str(concurrency),
                             "--skip-serve-logs", "--without-mingle", "--without-gossip"])
            for i in range(1, n + 1)}


@contextlib.contextmanager
def airflow_stack(env: Mapping[str, str], *, executor: str = LOCAL, workers: int = 2, worker_concurrency: int = 2,
                  port: int = 0, broker_url: str | None = None, queue: str | None = None,
                  log_dir: Path | None = None, migrate: bool = True,
                  start_timeout: float = STACK_START_TIMEOUT_S) -> Iterator[Stack]:
    """Run Airflow's services on loopback for as long as the block runs.

    Migrates the metadata DB, then starts the API server, scheduler, DAG processor, triggerer and, with
    the CeleryExecutor, ``workers`` Celery workers, in one process group; waits until the API reports
    the metadata DB, scheduler, triggerer and DAG processor healthy and every worker answers a ping;
    stops the whole group when the block ends (TERM: Celery's warm shutdown; KILL what is left).

    Args:
        env: the base environment, as for :func:`stack_env` (``AIRFLOW_HOME`` required).
        executor: ``LocalExecutor`` (SQLite or PostgreSQL metadata DB, as ``env`` says) or
            ``CeleryExecutor`` (PostgreSQL metadata DB and a Redis broker).
        workers: Celery workers to start (ignored with the LocalExecutor).
        worker_concurrency: task slots per Celery worker.
        port: the API server's loopback port; 0 for a free one.
        broker_url: see :func:`stack_env`.
        queue: see :func:`stack_env`.
        log_dir: where the services' logs go; ``services/`` in ``AIRFLOW_HOME`` by default.
        migrate: run ``airflow db migrate`` first; False when the metadata DB is known to be current
            (another stack just migrated it), which saves Airflow's start-up of some seconds.
        start_timeout: seconds to wait for the stack to be healthy.

    Yields:
        The running :class:`Stack`.

    Raises:
        ValueError: see :func:`stack_env`.
        RuntimeError: ``airflow db migrate`` failed, the broker does not answer, a service exited, or
            the stack was not healthy in time; the message has the logs' tails.
    """
    port = port or free_port()
    full_env = stack_env(env, executor=executor, port=port, broker_url=broker_url, queue=queue,
                         worker_concurrency=worker_concurrency)
    home = Path(full_env["AIRFLOW_HOME"])
    log_dir = log_dir or home / "services"
    log_dir.mkdir(parents=True, exist_ok=True)
    airflow = str(Path(sys.executable).parent / "airflow")
    if executor == CELERY and (problem := broker_problem(full_env["AIRFLOW__CELERY__BROKER_URL"])):
        raise RuntimeError(problem)
    if migrate:
        _migrate(airflow, full_env, log_dir / "db-migrate.log")
    commands = {
        "api-server": [airflow, "api-server", "--host", "127.0.0.1", "--port", str(port)],
        "scheduler": [airflow, "scheduler", "--skip-serve-logs"],
        "dag-processor": [airflow, "dag-processor"],
        "triggerer": [airflow, "triggerer", "--skip-serve-logs"],
    }
    nodes = worker_commands(airflow, workers if executor == CELERY else 0, concurrency=worker_concurrency)
    commands |= {name: cmd for name, (_, cmd) in nodes.items()}
    stack = Stack(base_url=f"http://127.0.0.1:{port}", executor=executor, env=full_env, log_dir=log_dir,
                  workers=tuple(node for node, _ in nodes.values()))
    procs = stack.processes
    try:
        for service, cmd in commands.items():
            procs[service] = _start(cmd, full_env, stack.log(service), home,
                                    group=next(iter(procs.values())).pid if procs else 0)
        _wait_healthy(stack, start_timeout)
        yield stack
    finally:
        stop_services(list(procs.values()))


def _migrate(airflow: str, env: dict[str, str], log_path: Path) -> None:
    with open(log_path, "w") as log:
        done = subprocess.run([airflow, "db", "migrate"], env=env, stdout=log, stderr=subprocess.STDOUT,
                              stdin=subprocess.DEVNULL, cwd=env["AIRFLOW_HOME"], timeout=600)
    if done.returncode:
        raise RuntimeError(f"airflow db migrate failed (exit code {done.returncode}); {log_path} ends with:\n"
                           f"{log_path.read_text(errors='replace')[-3000:]}")


def _start(cmd: list[str], env: dict[str, str], log_path: Path, cwd: Path, *, group: int) -> subprocess.Popen:
    """Start one service; ``group`` 0 makes it the leader of a new process group, else it joins ``group``.

    The group is not the terminal's foreground group, so a Ctrl-C reaches only the Python process,
    which then stops the services in order.
    """
    with open(log_path, "w") as log:
        return subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                process_group=group, cwd=cwd)


def _wait_healthy(stack: Stack, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    seen: dict[str, str] = {}
    waiting: list[str] = list(stack.workers)
    while True:
        if exited := stack.exited():
            raise RuntimeError(f"Airflow services exited while starting: {exited}\n{stack.log_tails()}")
        seen = stack_health(stack.base_url, timeout=2)
        if seen and all(status == "healthy" for status in seen.values()):
            waiting = [name for name in waiting if name not in _pong(stack.env, waiting)]
            if not waiting:
                return
        if time.monotonic() > deadline:
            raise RuntimeError(f"the {stack.executor} stack on {stack.base_url} was not healthy in {timeout:g} s "
                               f"(health: {seen or 'no answer'}; workers not answering: {waiting})\n"
                               f"{stack.log_tails()}")
        time.sleep(1)


def _pong(env: dict[str, str], names: list[str]) -> set[str]:
    """The Celery workers among ``names`` that answer a ping on the stack's broker."""
    if not names:
        return set()
    from celery import Celery

    app = Celery(broker=env["AIRFLOW__CELERY__BROKER_URL"])
    try:
        return {name for reply in app.control.ping(destination=names, timeout=1.0) or [] for name in reply}
    finally:
        app.close()


def stop_services(procs: list[subprocess.Popen], timeout: float = STOP_TIMEOUT_S) -> None:
    """Stop a process group started by :func:`airflow_stack` (its leader first in ``procs``).

    TERM to the whole group (Celery workers finish their running tasks: a warm shutdown), then KILL
    to what is left after ``timeout`` seconds; every service is reaped.
    """
    if not procs:
        return
    group = procs[0].pid
    with contextlib.suppress(ProcessLookupError):
        os.killpg(group, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    for proc in procs:
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=max(0.1, deadline - time.monotonic()))
    # Grandchildren (uvicorn's worker, Celery's pool, task supervisors) are in the group too.
    with contextlib.suppress(ProcessLookupError):
        end = time.monotonic() + 5
        while time.monotonic() < end:
            os.killpg(group, 0)  # raises ProcessLookupError once the whole group is gone
            time.sleep(0.2)
        os.killpg(group, signal.SIGKILL)
    for proc in procs:
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=5)


def serve_until_stopped(stack: Stack, poll_seconds: float = 2.0) -> dict[str, int]:
    """Block until Ctrl-C or SIGTERM, or until a service exits by itself.

    Ctrl-C stays ignored on return, so that the stack's shutdown (Celery's warm shutdown) that follows
    runs to its end; a program that goes on restores it with ``signal.signal(signal.SIGINT,
    signal.default_int_handler)``.

    Returns:
        ``{}`` when stopped by a signal, else the exit codes of the services that exited.
    """
    def stop(signum, frame):
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        while not stack.exited():
            time.sleep(poll_seconds)
        return stack.exited()
    except KeyboardInterrupt:
        return {}
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, previous)


def trigger_commands(base_url: str, dag_id: str, logical_date: str, conf: dict, *, user: str, password: str) -> str:
    """Shell lines that sign in to the REST API, switch ``dag_id`` on and trigger a run: for people to copy.

    Args:
        base_url: the API server.
        dag_id: the DAG to trigger.
        logical_date: the run's logical date, ``YYYY-MM-DD``.
        conf: the run's conf.
        user: who signs in.
        password: that user's password (a demo user's: it is printed).

    Returns:
        The lines, for ``sh``.
    """
    json_header = "-H 'Content-Type: application/json'"
    auth = f'-H "Authorization: Bearer $TOKEN" {json_header}'
    login = json.dumps({"username": user, "password": password})
    run = json.dumps({"logical_date": f"{logical_date}T00:00:00Z", "conf": conf})
    return "\n".join([
        f"TOKEN=$(curl -s -X POST {base_url}/auth/token {json_header} -d '{login}' \\",
        """    | python3 -c 'import json, sys; print(json.load(sys.stdin)["access_token"])')""",
        f"""curl -s -X PATCH {base_url}/api/v2/dags/{dag_id} {auth} -d '{{"is_paused": false}}'""",
        f"curl -s -X POST {base_url}/api/v2/dags/{dag_id}/dagRuns {auth} -d '{run}'",
    ])
