"""How a run decides it is a replay (backfill), and who a Required Action answer speaks for."""

from __future__ import annotations

import json

import pytest
from airflow.utils.types import DagRunType as RunType

from include.governance.policy import load_policy
from include.governance.review import apply_review
from include.governance.roles import airflow_roles, airflow_roles_of
from include.runs import REVIEW_OPTIONS, Run, is_replay
from include.stages import nightly


@pytest.mark.parametrize(("run_type", "mode", "expected"), [
    (RunType.BACKFILL_JOB, "live", True),
    ("backfill", "live", True),
    (RunType.SCHEDULED, "live", False),
    (RunType.MANUAL, "live", False),
    (RunType.MANUAL, "replay", True),
    ("scheduled", None, False),
])
def test_backfills_and_replay_mode_are_replays(run_type, mode, expected):
    assert is_replay(run_type, mode) is expected


SIMPLE = "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"


@pytest.mark.parametrize(("user", "roles"), [
    ("admin", {"admin"}), ("planner", {"planner"}), ("manager", {"manager"}), ("analyst", set()),
    ("stranger", set()),
])
def test_simple_auth_manager_users_map_to_policy_roles(monkeypatch, user, roles):
    monkeypatch.setenv("AIRFLOW__CORE__AUTH_MANAGER", SIMPLE)
    monkeypatch.setenv("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS", "admin:admin,planner:user,manager:op,analyst:viewer")
    assert load_policy().shelfwise_roles(airflow_roles_of(user, user)) == roles


class _Role:
    def __init__(self, name: str) -> None:
        self.name = name


class _FabLikeUser:
    def __init__(self, user_id: str) -> None:
        self.roles = [_Role("Op")] if user_id == "7" else []


class FabLikeAuthManager:
    """An auth manager that lists no users and rebuilds one from its id, as FAB does from its database."""

    def deserialize_user(self, token: dict) -> _FabLikeUser:
        if token["sub"] == "404":
            raise LookupError("no such user")
        return _FabLikeUser(token["sub"])


def test_other_auth_managers_are_asked_for_the_user_by_id(monkeypatch):
    monkeypatch.setenv("AIRFLOW__CORE__AUTH_MANAGER", f"{__name__}.FabLikeAuthManager")
    assert airflow_roles_of("7", "Maria Planner") == ["Op"]
    assert load_policy().shelfwise_roles(airflow_roles_of("7")) == {"manager"}
    assert airflow_roles_of("404") == []  # an unknown user decides nothing


def test_roles_are_read_from_either_shape_of_user():
    assert airflow_roles(type("U", (), {"role": "user"})()) == ["user"]
    assert airflow_roles(_FabLikeUser("7")) == ["Op"]
    assert airflow_roles(object()) == []


def _no_db():
    raise AssertionError("must not connect")


def test_unknown_review_choice_is_refused_before_touching_anything():
    with pytest.raises(ValueError, match="unknown review choice 'Approve everything'"):
        apply_review(_no_db, "retail_nightly", "2026-11-27", choice="Approve everything", user="planner",
                     roles={"planner"}, policy=load_policy())
    assert REVIEW_OPTIONS == ["Approve all pending", "Reject all pending", "I have reviewed the lines"]


def test_reviewed_changes_nothing_and_is_recorded_under_the_task_id(tmp_path):
    run = Run(dag_id="retail_nightly", run_id="manual__1", ds="2026-11-27", task_id="apply_review")
    response = {"chosen_options": ["I have reviewed the lines"], "responded_by_user": {"id": "planner",
                                                                                       "name": "planner"}}
    asked = []
    out = nightly.apply_review(run, response, conn_factory=_no_db, root=str(tmp_path),
                               roles_of=lambda uid, name: asked.append((uid, name)) or ["user"])
    assert out == {"choice": "I have reviewed the lines", "user": "planner", "decided": 0, "not_allowed": 0}
    assert asked == [("planner", "planner")]
    filed = tmp_path / "reports" / "stages" / "retail_nightly" / "ds=2026-11-27" / "apply_review.json"
    assert json.loads(filed.read_text()) == out
