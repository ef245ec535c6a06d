"""Only Airflow's API server, on loopback, for an environment that already has an Airflow home.

``api_server`` starts ``airflow api-server`` alone (no scheduler, DAG processor or triggerer) on a free
loopback port with the environment it is given, so it serves the REST API on the same metadata DB as
the ``airflow dags test`` processes started with that environment (the SQLite DB that ``airflow db
migrate`` configured under its ``AIRFLOW_HOME``). It is what the integration tests and ``make approve``
answer a run's Required Action through. Modelled on ``start_airflow`` in ``tests/e2e/conftest.py``.
"""

from __future__ import annotations

import contextlib
import os
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


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def health_status(base_url: str, timeout: float = 5.0) -> int:
    """HTTP status of ``GET {base_url}/api/v2/monitor/health``; 0 when nothing answers."""
    try:
        with urllib.request.urlopen(f"{base_url}/api/v2/monitor/health", timeout=timeout) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except (OSError, ValueError):
        return 0


@contextlib.contextmanager
def api_server(env: Mapping[str, str], *, log_path: Path | None = None,
               start_timeout: float = START_TIMEOUT_S) -> Iterator[str]:
    """Run ``airflow api-server`` on a free loopback port for as long as the block runs.

    Args:
        env: the whole environment of the server (``AIRFLOW_HOME`` and the simple auth manager's
            users and passwords file included); the API's host, port, base URL, single worker and a
            JWT secret of its own are set on top. The secret is generated per server unless ``env``
            has one: the server both issues and checks the tokens, so nothing else needs it.
        log_path: where the server's output goes; ``api-server.log`` in ``AIRFLOW_HOME`` by default.
        start_timeout: seconds to wait for the health endpoint.

    Yields:
        The server's base URL, e.g. ``http://127.0.0.1:41234``.

    Raises:
        RuntimeError: the server exited or its health endpoint did not answer 200 in time; the
            message has the tail of its log.
    """
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    server_env = {
        **env,
        "AIRFLOW__API__BASE_URL": base,
        "AIRFLOW__API__HOST": "127.0.0.1",
        "AIRFLOW__API__PORT": str(port),
        "AIRFLOW__API__WORKERS": "1",
        "AIRFLOW__API_AUTH__JWT_SECRET": env.get("AIRFLOW__API_AUTH__JWT_SECRET") or secrets.token_urlsafe(32),
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
