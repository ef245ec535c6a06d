"""A misconfigured ERP staging database stops a run at its first task, with a message naming what to fix."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from include.erp import db

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
AIRFLOW = str(Path(sys.executable).parent / "airflow")


def _first_task(conn: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "ERP_STAGING_URL"}
    env.update(AIRFLOW_CONN_ERP_STAGING=conn, PYTHONPATH=str(ROOT))
    return subprocess.run([AIRFLOW, "tasks", "test", "retail_nightly", "prepare_erp_staging", "2026-10-30"],
                          env=env, cwd=ROOT, capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize(("conn", "message"), [
    ("postgresql://erp:secret@127.0.0.1:1/erp_staging",
     "cannot connect to the ERP staging database postgresql://erp:***@127.0.0.1:1/erp_staging: "),
    ("http://erp.example/api",
     "Airflow connection 'erp_staging' is of type 'http': Shelfwise needs a postgres connection"),
])
def test_a_broken_connection_fails_the_first_task_naming_it(conn, message):
    done = _first_task(conn)
    out = done.stdout + done.stderr
    # `airflow tasks test` exits 0 whatever the task did: the task's new state says it failed.
    assert "new_state=up_for_retry" in out or "new_state=failed" in out, out[-3000:]
    assert message in out, out[-3000:]
    assert "ErpConnectionError" in out and "secret" not in out


def test_an_unreachable_database_names_it_with_the_password_masked():
    with pytest.raises(db.ErpConnectionError) as err:
        db.connect("postgresql://erp:secret@127.0.0.1:1/erp_staging", connect_timeout=2)
    text = str(err.value)
    assert text.startswith("cannot connect to the ERP staging database postgresql://erp:***@127.0.0.1:1/erp_staging: ")
    assert "secret" not in text and text.endswith("Check the Airflow connection 'erp_staging' (or ERP_STAGING_URL)")
