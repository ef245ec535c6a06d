"""How a run decides it is a replay (backfill) and who a Required Action answer speaks for."""

from __future__ import annotations

import pytest
from airflow.utils.types import DagRunType as RunType

from include.nightly import REVIEW_OPTIONS, apply_batch_decision, is_replay, shelfwise_roles


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


USERS = "admin:admin,planner:user,manager:op,analyst:viewer"


@pytest.mark.parametrize(("user", "roles"), [
    ("admin", {"admin"}), ("planner", {"planner"}), ("manager", {"manager"}), ("analyst", set()),
    ("stranger", set()),
])
def test_airflow_users_map_to_policy_roles(user, roles):
    assert shelfwise_roles(user, USERS) == roles


def test_unknown_review_choice_is_refused_before_touching_anything():
    def no_db():
        raise AssertionError("must not connect")

    with pytest.raises(ValueError, match="unknown review choice 'Approve everything'"):
        apply_batch_decision("2026-11-27", dag_id="retail_nightly", choice="Approve everything", user="planner",
                             roles={"planner"}, conn_factory=no_db)
    assert REVIEW_OPTIONS == ["Approve all pending", "Reject all pending", "I have reviewed the lines"]


def test_reviewed_changes_nothing(tmp_path):
    def no_db():
        raise AssertionError("must not connect")

    out = apply_batch_decision("2026-11-27", dag_id="retail_nightly", choice="I have reviewed the lines",
                               user="planner", roles={"planner"}, conn_factory=no_db, root=str(tmp_path))
    assert out == {"choice": "I have reviewed the lines", "user": "planner", "decided": 0, "not_allowed": 0}
