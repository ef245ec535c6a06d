"""Test worlds: the tiny generated retailer with its history loaded, and clean staging for a date."""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import sys
from pathlib import Path

import yaml

from include.erp import db
from include.erp.staging import TABLES
from include.runs import Run


def tiny_world(root: str, end_date: dt.date, *, history_through: dt.date | None = None) -> str:
    """Generate the tiny world up to ``end_date`` under ``root`` and load its history.

    Args:
        root: data root to write under.
        end_date: last generated day (the run date of the tests).
        history_through: last day loaded as history; the day before ``end_date`` by default, as if
            earlier nights had run and the night of ``end_date`` had not.

    Returns:
        ``root``.
    """
    from include.ingest.pipeline import load_history
    from include.sample_data.generator import PRESETS, generate_world, write_landing

    config = dataclasses.replace(PRESETS["tiny"], end_date=end_date)
    write_landing(generate_world(config), root)
    last = history_through or end_date - dt.timedelta(days=1)
    load_history(end_date - dt.timedelta(days=config.history_days - 1), last, root=root)
    return root


def intraday_world(root: str, ds: dt.date, hour: int) -> tuple[str, object]:
    """A busy tiny retailer with demand surges on ``ds``, as ``retail_intraday`` finds it at the end of ``hour``
    (:func:`intraday_demo.prepare_world`: history through the night before, that night's forecast, the hourly
    extracts of the three days before ingested, the day's hours through ``hour`` landed).

    Returns:
        ``(root, world)``: the world keeps the surges' ground truth (``world.shocks``).
    """
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
    from intraday_demo import prepare_world

    world = prepare_world(root, "tiny", ds, hour, volume=8.0, shocks_per_day=3, min_daily_units=20, history_days=100,
                          shard_size=50, days=3)
    return root, world


def review_policy(directory: Path) -> str:
    """The shipped governance policy with one more rule: every transfer waits for a planner.

    The tiny world's stock is ample on most days, so what the replenishment policy proposes for a date
    may all be low-risk; tests of the approval flow need planner-level lines whatever it proposes.

    Returns:
        The path of the policy file written in ``directory`` (for ``SHELFWISE_POLICY_FILE``).
    """
    from include.config import policy_file

    doc = yaml.safe_load(Path(policy_file()).read_text())
    doc["rules"].append({"name": "planner_reviews_transfers", "doc_types": ["transfer"],
                         "when": {"value_above": 0}, "tier": "medium"})
    path = Path(directory) / "policy.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return str(path)


def clear_run_lines(dag_id: str, ds: dt.date, url: str | None = None) -> None:
    """Delete a date's staged lines of earlier test runs (the audit log is append-only and stays).

    Decided and released lines cannot be deleted, by the application or the owner: this runs as the
    server's superuser (``ERP_STAGING_OWNER_URL`` of the test environment) with the database's triggers
    switched off for its own session (``session_replication_role = replica``), a test database's purge.
    """
    url = url or os.environ["ERP_STAGING_OWNER_URL"]
    with db.connect(url) as conn, conn.transaction():
        conn.execute("SET LOCAL session_replication_role = replica")
        for table in TABLES.values():
            conn.execute(f"DELETE FROM erp_staging.{table} WHERE dag_id=%s AND ds=%s", (dag_id, ds))


def dags_test(dag_id: str, logical: str, *, root: str, log_path: Path, conf: dict | None = None,
              policy: str | None = None, timeout: int = 300) -> str:
    """Run one DAG run with ``airflow dags test`` on the data under ``root``; assert it succeeded.

    Args:
        logical: the run's logical date (or date-time).
        policy: a governance policy file for the run (``SHELFWISE_POLICY_FILE``), else the shipped one.

    Returns:
        The run's log (also written to ``log_path``).
    """
    import json
    import subprocess

    project = Path(__file__).resolve().parents[1]
    env = {**os.environ, "SHELFWISE_DATA_ROOT": root, "PYTHONPATH": str(project),
           **({"SHELFWISE_POLICY_FILE": policy} if policy else {})}
    with open(log_path, "w") as log:
        proc = subprocess.run([str(Path(sys.executable).parent / "airflow"), "dags", "test", dag_id, logical,
                               "-c", json.dumps(conf or {})], env=env, stdout=log, stderr=subprocess.STDOUT,
                              stdin=subprocess.DEVNULL, cwd=project, timeout=timeout, check=False)
    text = Path(log_path).read_text(errors="replace")
    assert proc.returncode == 0 and "state=success" in text.split("DagRun Finished", 1)[-1][:2000], text[-4000:]
    return text


def night_in_process(root: str, ds: dt.date, params: dict, *, conn_factory=None) -> None:
    """The nightly's tasks in the DAG's order, in this process, as a replay (nothing staged for planners).

    Args:
        params: the run's params (``history_days``, ``shard_size``...).
        conn_factory: the ERP staging connection the ingest, monitoring and staging tasks record through.
    """
    from include.stages import nightly

    def run(task_id: str) -> Run:
        return Run(dag_id="retail_nightly", run_id=f"in_process__{ds}", ds=ds.isoformat(), task_id=task_id,
                   replay=True, params={**params, "mode": "replay"})

    for source in ("master", "pos", "ecommerce", "wms", "supplier", "returns"):
        nightly.ingest(run(f"ingest_{source}"), source, conn_factory=conn_factory, root=root)
    nightly.build_demand(run("build_demand"), root=root)
    nightly.monitor_forecasts(run("monitor_forecasts"), conn_factory=conn_factory, root=root)
    shards = nightly.plan_forecast_shards(run("plan_forecast_shards"), root=root)
    summaries = [nightly.forecast_demand(run("forecast_demand"), s["shard"], s["n_shards"], root=root) for s in shards]
    nightly.combine_forecasts(run("combine_forecasts"), summaries, root=root)
    nightly.detect_anomalies(run("detect_anomalies"), root=root)
    nightly.propose_decisions(run("propose_decisions"), root=root)
    nightly.tier_proposals(run("tier_proposals"), root=root)
    nightly.stage_proposals(run("stage_proposals"), conn_factory=conn_factory, root=root)
