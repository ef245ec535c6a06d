"""Shared end-to-end setup: Airflow's four services on loopback, headless Chromium, login.

``start_airflow`` runs the API server, scheduler, DAG processor and triggerer (LocalExecutor, SQLite)
with an Airflow home of its own through ``scripts/airflow_services.airflow_stack``, in one process
group that is always stopped; tests pass the extra environment their DAG runs need (it reaches the
task subprocesses through the scheduler).
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts"))
from airflow_services import LOCAL, airflow_stack, http_status  # noqa: E402 - scripts/ is not a package
from shelfwise import DEMO_USERS  # noqa: E402

SHOTS = ROOT / "test-output" / "e2e"
#: The demo's users: user -> (password, Airflow role).
USERS = dict(DEMO_USERS)


@pytest.fixture(scope="session", autouse=True)
def _environment(prepared_environment) -> None:
    """Prepare (or, under ``make test``, reuse) the environment before any fixture of these tests runs."""


@pytest.fixture(scope="session")
def chromium() -> str:
    """The installed Chromium; never installs one (``make browser`` does, once).

    Missing, it fails the browser tests under CI (``CI=true``), where a skip would hide them, and skips
    them elsewhere.
    """
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


#: The status of a GET, 0 when nothing answers (the browser tests check the plugin's endpoints with it).
http_get = http_status


@contextlib.contextmanager
def start_airflow(home: Path, erp_url: str, extra_env: dict[str, str] | None = None):
    """Airflow's four services (LocalExecutor, SQLite) on loopback under ``home``, for as long as the block runs.

    The services run with the prepared test environment (``os.environ`` once the session's
    ``_environment`` fixture ran: DAGs and plugins of this checkout, the users' roles, the data root),
    with ``home`` as the Airflow home, a SQLite metadata DB in it, ``USERS``' passwords, the ERP
    database ``erp_url`` and ``extra_env`` on top; ``scripts/airflow_services.airflow_stack`` starts
    and always stops them.

    Args:
        home: an empty Airflow home of the test's own.
        erp_url: the ERP staging database the DAG runs stage into.
        extra_env: more variables for every service and the task processes they start.

    Yields:
        ``{"base": API server URL, "home": home, "env": the services' environment, "log": the
        scheduler's log, "proc": the API server's process}``.
    """
    passwords = home / "simple_auth_manager_passwords.json"
    passwords.write_text(json.dumps({u: p for u, (p, _) in USERS.items()}))
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": ",".join(f"{u}:{r}" for u, (_, r) in USERS.items()),
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords),
        "AIRFLOW__LOGGING__LOGGING_LEVEL": "WARNING",
        "AIRFLOW_CONN_ERP_STAGING": erp_url,
        "ERP_STAGING_URL": erp_url,
        **(extra_env or {}),
    }
    with contextlib.ExitStack() as running:
        try:
            stack = running.enter_context(airflow_stack(env, executor=LOCAL))
        except RuntimeError as exc:  # the message has the services' logs
            pytest.fail(f"Airflow did not come up under {home}: {exc}", pytrace=False)
        yield {"base": stack.base_url, "home": home, "env": stack.env, "log": stack.log("scheduler"),
               "proc": stack.processes["api-server"]}


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
    # A function, not an expression string: the page's CSP forbids eval, which an expression string needs.
    page.wait_for_function("() => document.getElementById('message').textContent.length > 0", timeout=30_000)
    return page.locator("#message").inner_text()
