"""Answer a run's Required Action (Airflow human-in-the-loop task) through Airflow's public REST API.

A user signs in as in any API client (``POST /auth/token`` of the simple auth manager), finds the run of
a logical date whose task waits for input, and answers with
``PATCH /api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/{map_index}/hitlDetails``, so
Airflow records who answered and resumes the task exactly as it does for an answer from its UI. Used
by ``make approve`` and the integration tests.

``answer`` first waits, by polling the API, until the answer cannot be lost. On Airflow 3.3 a
human-in-the-loop task writes its request, then the worker parks it in ``awaiting_input``; a response
that arrives between the two is handled by the Execution API, which resumes the task instead of
parking it. Under ``airflow dags test`` (the demo and the integration tests), though, the runner writes
the task's state once more after the task returns (``ti.set_state(taskrun_result.ti.state)`` in
``_run_task``, ``airflow/sdk/definitions/dag.py``), from the task's own view, ``awaiting_input``: a
response recorded before that write is accepted (HTTP 200) and then undone, and the run waits forever
for an answer it already has. The runner re-examines the run (``DagRun.update_state``, which stamps
``last_scheduling_decision``) only after that write, so an answer given once the task waits for input
and the run was re-examined after the task started always resumes it. A scheduler re-examines a run the
same way, so the wait holds for scheduled runs too.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

REVIEW_TASK = "review_batch"
AWAITING_INPUT = "awaiting_input"
FINISHED = {"success", "failed", "skipped", "upstream_failed", "removed"}


class AirflowApiError(RuntimeError):
    """Airflow's REST API refused a request.

    Attributes:
        status: HTTP status of the answer (401 bad credentials, 403 not allowed, 404 not found,
            409 already answered, 400 invalid option...).
        detail: Airflow's ``detail`` for the refusal, or the body as text.
    """

    def __init__(self, method: str, path: str, status: int, detail: Any, user: str | None = None):
        self.status = status
        self.detail = detail
        who = f" as {user}" if user else ""
        super().__init__(f"{method} {urllib.parse.unquote(path)}{who}: HTTP {status}: {detail}")


@dataclasses.dataclass(frozen=True)
class ApiSession:
    """Airflow's REST API as one signed-in user.

    Attributes:
        base_url: the API server, e.g. ``http://localhost:8080``.
        user: the user name the token was issued to.
        token: the bearer token (left out of ``repr``, so test failures never print it).
    """

    base_url: str
    user: str
    token: str = dataclasses.field(repr=False)

    @classmethod
    def login(cls, base_url: str, user: str, password: str, *, timeout: float = 30.0) -> ApiSession:
        """Sign in with the simple auth manager's ``POST /auth/token``.

        Args:
            base_url: the API server.
            user: user name.
            password: that user's password.
            timeout: seconds for the request.

        Returns:
            The signed-in session.

        Raises:
            AirflowApiError: the credentials were refused (HTTP 401) or the server failed.
        """
        base_url = base_url.rstrip("/")
        body = _request(base_url, "POST", "/auth/token", body={"username": user, "password": password},
                        user=user, timeout=timeout)
        return cls(base_url=base_url, user=user, token=body["access_token"])

    def call(self, method: str, path: str, *, body: dict | None = None, params: dict | None = None,
             timeout: float = 30.0) -> dict:
        """One request as this user; the JSON answer.

        Raises:
            AirflowApiError: Airflow answered with an error status.
        """
        return _request(self.base_url, method, path, body=body, params=params, token=self.token, user=self.user,
                        timeout=timeout)


def awaiting_run_id(api: ApiSession, dag_id: str, ds: str | dt.date, task_id: str = REVIEW_TASK) -> str | None:
    """The run of ``dag_id`` for logical date ``ds`` whose ``task_id`` waits for an answer, if any.

    Args:
        api: a signed-in session (reading DAG runs and HITL details needs the viewer role).
        dag_id: DAG id.
        ds: logical date, ``YYYY-MM-DD`` or a date.
        task_id: the human-in-the-loop task.

    Returns:
        The newest such run's id, or ``None`` when no run of that date waits for an answer.

    Raises:
        AirflowApiError: the API refused a request.
    """
    day = dt.datetime.combine(dt.date.fromisoformat(str(ds)), dt.time(), tzinfo=dt.UTC).isoformat()
    runs = api.call("GET", f"/api/v2/dags/{_q(dag_id)}/dagRuns",
                    params={"logical_date_gte": day, "logical_date_lte": day, "order_by": "-id"})["dag_runs"]
    for run in runs:
        waiting = api.call("GET", f"/api/v2/dags/{_q(dag_id)}/dagRuns/{_q(run['dag_run_id'])}/hitlDetails",
                           params={"task_id": task_id, "state": AWAITING_INPUT, "response_received": "false"})
        if waiting["total_entries"]:
            return run["dag_run_id"]
    return None


def answer(api: ApiSession, dag_id: str, run_id: str, option: str, *, task_id: str = REVIEW_TASK,
           map_index: int = -1, timeout: float = 60.0, poll_seconds: float = 0.5) -> dict:
    """Record ``option`` as the session user's answer to the run's Required Action.

    Waits (see the module docstring) until the task waits for input and the run was re-examined after
    the task started, then answers.

    Args:
        api: the session of the user answering (the simple auth manager's ``user`` role or above).
        dag_id: DAG id.
        run_id: DAG run id.
        option: one of the task's options.
        task_id: the human-in-the-loop task.
        map_index: its map index, -1 when not mapped.
        timeout: seconds to wait for the task to be ready for the answer.
        poll_seconds: seconds between two looks.

    Returns:
        The recorded response (``responded_by``, ``responded_at``, ``chosen_options``, ``params_input``).

    Raises:
        AirflowApiError: the API refused the answer or a look at the run, e.g. HTTP 403 for a user who
            may not answer, 409 when the task was already answered, 400 for an option it does not offer.
        RuntimeError: the task finished without waiting for this answer.
        TimeoutError: the task was not ready for an answer within ``timeout`` seconds.
    """
    path = _hitl_path(dag_id, run_id, task_id, map_index)
    _wait_until_answerable(api, dag_id, run_id, path, timeout=timeout, poll_seconds=poll_seconds)
    return api.call("PATCH", path, body={"chosen_options": [option]})


def _wait_until_answerable(api: ApiSession, dag_id: str, run_id: str, path: str, *, timeout: float,
                           poll_seconds: float) -> None:
    deadline = time.monotonic() + timeout
    seen = "no look yet"
    while True:
        try:
            detail = api.call("GET", path)
        except AirflowApiError as exc:
            if exc.status != 404:  # 404: the task has not written its request yet
                raise
            seen = f"no Required Action yet ({exc.detail})"
        else:
            ti = detail["task_instance"]
            if detail["response_received"]:
                return  # Airflow's own 409 says who answered
            if ti["state"] in FINISHED:
                raise RuntimeError(f"{dag_id} {run_id} {ti['task_id']} is {ti['state']}: it no longer waits "
                                   "for an answer")
            if ti["state"] == AWAITING_INPUT:
                run = api.call("GET", f"/api/v2/dags/{_q(dag_id)}/dagRuns/{_q(run_id)}")
                if _after(run["last_scheduling_decision"], ti["start_date"]):
                    return
                seen = (f"waiting for input since a start at {ti['start_date']}, run last examined at "
                        f"{run['last_scheduling_decision']}")
            else:
                seen = f"task state {ti['state']}"
        if time.monotonic() > deadline:
            raise TimeoutError(f"{dag_id} {run_id}: the Required Action was not ready for an answer in "
                               f"{timeout:g} s ({seen})")
        time.sleep(poll_seconds)


def _after(stamp: str | None, than: str | None) -> bool:
    if not stamp or not than:
        return False
    return dt.datetime.fromisoformat(stamp) > dt.datetime.fromisoformat(than)


def _hitl_path(dag_id: str, run_id: str, task_id: str, map_index: int) -> str:
    return (f"/api/v2/dags/{_q(dag_id)}/dagRuns/{_q(run_id)}/taskInstances/{_q(task_id)}/{map_index}"
            "/hitlDetails")


def _q(segment: str) -> str:
    return urllib.parse.quote(segment, safe="")


def _request(base_url: str, method: str, path: str, *, body: dict | None = None, params: dict | None = None,
             token: str | None = None, user: str | None = None, timeout: float = 30.0) -> dict:
    url = f"{base_url}{path}" + (f"?{urllib.parse.urlencode(params)}" if params else "")
    headers = {"Accept": "application/json", "Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as exc:
        raise AirflowApiError(method, path, exc.code, _detail(exc.read()), user) from None


def _detail(raw: bytes) -> Any:
    try:
        return json.loads(raw).get("detail", raw.decode(errors="replace"))
    except (ValueError, AttributeError):
        return raw.decode(errors="replace")[:500]
