"""Staging and release of a date's tiered proposals, the two tasks every gated daily workflow ends with.

A workflow's review or route task writes its tiered proposals to ``curated/<name>``; :func:`stage` puts them
in ERP staging (or, in replay, records them to ``reports/replay_<name>``) and :func:`release` hands what was
approved or is within policy to the ERP.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from include.runs import Run
from include.stages.summaries import record
from include.storage import read_partition, write_partition


def stage(run: Run, name: str, *, conn_factory, root: str | None = None) -> dict[str, Any]:
    """Stage the date's tiered proposals ``curated/<name>`` (a re-run replaces the undecided ones); a replay
    records them to ``reports/replay_<name>`` instead."""
    tiered = read_partition("curated", name, run.ds, root)
    if run.replay:
        write_partition(tiered, "reports", f"replay_{name}", run.ds, root)
        return record(run, {"mode": "replay", "staged_at": None, "recorded": int(len(tiered))}, root)
    from include.erp.staging import stage_batch

    with conn_factory() as conn:
        result = stage_batch(conn, tiered, dag_id=run.dag_id, run_id=run.run_id, ds=run.ds)
    # Wall-clock on purpose: the approval deadline is operational time, not data time.
    return record(run, {"mode": "live", "staged_at": dt.datetime.now(dt.UTC).isoformat(), **result.as_summary()},
                  root)


def release(run: Run, doc_type: str, *, conn_factory, root: str | None = None) -> dict[str, Any]:
    """Release the run's approved and within-policy lines of ``doc_type`` (never in replay)."""
    if run.replay:
        return record(run, {"mode": "replay", "released": 0}, root)
    from include.erp.staging import release_approved

    with conn_factory() as conn:
        released = release_approved(conn, run.dag_id, run.ds, run_id=run.run_id)
    return record(run, {"mode": "live", "released": released.get(doc_type, 0)}, root)
