"""Stage summaries: what each task of a run did, filed under its task id beside the run's reports.

``reports/stages/<dag_id>/ds=<ds>/<task_id>.json``: the run summary of the demo, the KPI report and the
tests read them; each is also the task's XCom.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from include.runs import Run
from include.storage import read_json_files, write_json


def record(run: Run, summary: dict[str, Any], root: str | None = None) -> dict[str, Any]:
    """File ``summary`` under the run's task id and return it (it becomes the task's XCom)."""
    write_json(summary, "reports", f"stages/{run.dag_id}", run.ds, run.task_id, root)
    return summary


def read_stage_summaries(dag_id: str, ds: str | dt.date, root: str | None = None) -> dict[str, Any]:
    """Every stage summary of a workflow's run for ``ds``, keyed by task id."""
    return read_json_files("reports", f"stages/{dag_id}", ds, root)
