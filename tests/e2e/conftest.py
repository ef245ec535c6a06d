"""Shared end-to-end setup: Airflow's four services on loopback, headless Chromium, login.

``start_airflow`` runs the API server, scheduler, DAG processor and triggerer (LocalExecutor, SQLite)
with an Airflow home of its own, in one process group that is always stopped; tests pass the extra
environment their DAG runs need (it reaches the task subprocesses through the scheduler).
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
SHOTS = ROOT / "test-output" / "e2e"
USERS = {"admin": ("admin", "admin"), "planner": ("planner", "user"), "manager": ("manager", "op"),
         "analyst": ("analyst", "viewer")}
START_TIMEOUT_S = 240


@pytest.fixture(scope="session", autouse=True)
def _environment(prepared_environment) -> None:
    """Prepare (or, under ``make test``, reuse) the environment before any fixture of these tests runs."""


@pytest.fixture(scope="session")
def chromium() -> str:
    """The installed Chromium; never installs one (``make browser`` does, once).

    Missing, it fails the browser tests under CI (``CI=true``), where a skip would hide them, and skips
    them elsewhere.
    """
    sys.path.insert(0, str(ROOT / "scripts"))
    from ensure_browser import CANDIDATES, find_chromium

    path = find_chromium()
    if path:
        return path
    names = ", ".join(CANDIDATES)
    message = f"no Chromium for the browser tests (none of {names} on PATH): run `make browser`"
    if os.environ.get("CI") == "true":
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


@pytest.fixture(scope="module")
def browser(chromium):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        launched = pw.chromium.launch(
            executable_path=chromium, headless=True,
            args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync"])
        yield launched
        launched.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_get(url: str, timeout: float = 5.0) -> int:
    """Status of a GET, 0 when nothing answers."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return 0


@contextlib.contextmanager
def start_airflow(home: Path, erp_url: str, extra_env: dict[str, str] | None = None):
    """Airflow's four services on loopback under ``home``; yields ``{"base", "home", "env"}``."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    passwords = home / "simple_auth_manager_passwords.json"
    passwords.write_text(json.dumps({u: p for u, (p, _) in USERS.items()}))
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(ROOT / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": ",".join(f"{u}:{r}" for u, (_, r) in USERS.items()),
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords),
        "AIRFLOW__API__BASE_URL": base,
        "AIRFLOW__API__HOST": "127.0.0.1",
        "AIRFLOW__API__PORT": str(port),
        "AIRFLOW__API__WORKERS": "1",
        "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(32),
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{base}/execution/",
        "AIRFLOW__LOGGING__LOGGING_LEVEL": "WARNING",
        "AIRFLOW_CONN_ERP_STAGING": erp_url,
        "ERP_STAGING_URL": erp_url,
        "GX_ANALYTICS_ENABLED": "false",
        "PYTHONPATH": str(ROOT),
        "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        **(extra_env or {}),
    }
    airflow_bin = str(VENV_BIN / "airflow")
    subprocess.run([airflow_bin, "db", "migrate"], env=env, check=True, capture_output=True, timeout=300)
    log_path = home / "services.log"
    log = log_path.open("w")
    services = (f"{airflow_bin} api-server --host 127.0.0.1 --port {port} & {airflow_bin} scheduler & "
                f"{airflow_bin} dag-processor & {airflow_bin} triggerer & wait")
    proc = subprocess.Popen(["/bin/sh", "-c", services], env=env, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True, cwd=home)
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while http_get(f"{base}/api/v2/monitor/health") != 200:
            if proc.poll() is not None or time.monotonic() > deadline:
                log.flush()
                pytest.fail(f"Airflow did not come up on {base} (exit {proc.poll()}):\n"
                            f"{log_path.read_text()[-3000:]}")
            time.sleep(1)
        yield {"base": base, "home": home, "env": env, "log": log_path, "proc": proc}
    finally:
        stop_group(proc)
        log.close()


def stop_group(proc: subprocess.Popen) -> None:
    """Stop every service of the group: TERM, then KILL what is left."""
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        pass
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        try:
            os.killpg(proc.pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.5)
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def login(browser, base: str, user: str, next_path: str, wait_for: str | None = "#who"):
    """Sign in through Airflow's own login page; returns the page, landed on ``next_path``."""
    context = browser.new_context(viewport={"width": 1500, "height": 1000})
    page = context.new_page()
    page.goto(f"{base}{next_path}")
    # Not signed in: the plugin page sends the browser to Airflow's login.
    page.wait_for_url("**/auth/login**", timeout=30_000)
    page.locator("input:not([type=password])").first.fill(user)
    page.locator("input[type=password]").fill(USERS[user][0])
    page.locator("button[type=submit]").click()
    page.wait_for_url(f"**{next_path.split('?')[0]}**", timeout=30_000)
    if wait_for:
        page.wait_for_selector(wait_for, timeout=30_000)
    return page


def shot(page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def wait_message(page) -> str:
    """The plugin page's status message once it is set."""
    page.wait_for_function("document.getElementById('message').textContent.length > 0", timeout=30_000)
    return page.locator("#message").inner_text()
