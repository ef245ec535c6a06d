"""Stage summaries: what each task of a run did, filed under its task id beside the run's reports.

``reports/stages/<dag_id>/ds=<ds>/<task_id>.json``: the run summary of the demo, the KPI report and the
tests read them; each is also the task's XCom. Beside them, ``reports/stage_metrics/<dag_id>/ds=<ds>/``
holds each stage's seconds and the peak memory of the process that ran it (under ``airflow dags test``
every task runs in one process, so the peak is the run's so far; under a scheduler, the task's own).
"""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

from include.progress import peak_rss_mb
from include.runs import Run
from include.storage import read_json_files, write_json


def record(run: Run, summary: dict[str, Any], root: str | None = None) -> dict[str, Any]:
    """File ``summary`` and the stage's metrics under the run's task id; return the summary (the XCom)."""
    write_json(summary, "reports", f"stages/{run.dag_id}", run.ds, run.task_id, root)
    record_metrics(run, run.task_id, root)
    return summary


def record_metrics(run: Run, name: str, root: str | None = None) -> dict[str, float]:
    """File the seconds since the task began and the process's peak memory under ``name``."""
    metrics = {"seconds": round(time.monotonic() - run.started, 2), "peak_rss_mb": peak_rss_mb()}
    write_json(metrics, "reports", f"stage_metrics/{run.dag_id}", run.ds, name, root)
    return metrics


def read_stage_summaries(dag_id: str, ds: str | dt.date, root: str | None = None) -> dict[str, Any]:
    """Every stage summary of a workflow's run for ``ds``, keyed by task id."""
    return read_json_files("reports", f"stages/{dag_id}", ds, root)


def stale_sources(summaries: dict[str, Any], reads: tuple[str, ...] | None = None) -> dict[str, dict[str, str]]:
    """The contracts whose last good partition stood in for the run's extract, as the ingest stages said.

    Args:
        summaries: the run's stage summaries (:func:`read_stage_summaries`).
        reads: only these contracts (the ones a stage reads); every one when None.

    Returns:
        ``{contract: {"substituted_from": date, "reason": text}}``, empty on a night without stand-ins.
    """
    found: dict[str, dict[str, str]] = {}
    for task_id, summary in summaries.items():
        if task_id.startswith("ingest_") and isinstance(summary, dict):
            found.update(summary.get("stale_sources") or {})
    return {cid: found[cid] for cid in sorted(found) if reads is None or cid in reads}


def degraded_entry(summaries: dict[str, Any], reads: tuple[str, ...] | None = None) -> dict[str, Any]:
    """What a stage adds to its summary when it read a stand-in: ``degraded`` and ``stale_sources``.

    Returns:
        ``{"degraded": True, "stale_sources": {...}}``, or an empty dict when nothing it read was stale.
    """
    stale = stale_sources(summaries, reads)
    return {"degraded": True, "stale_sources": stale} if stale else {}


def read_stage_metrics(dag_id: str, ds: str | dt.date, root: str | None = None) -> dict[str, dict[str, float]]:
    """Seconds and peak memory of every stage of a workflow's run for ``ds``, keyed by task (or shard)."""
    return read_json_files("reports", f"stage_metrics/{dag_id}", ds, root)
