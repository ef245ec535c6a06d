"""A late returns extract on the tiny world: the night goes on, degraded, stage by stage against PostgreSQL.

The returns file of the run's day never arrives. Its ingest succeeds with yesterday's curated returns
standing in, the stages that read returns say so, proposals are still staged, and the report and the
night's row of ``ops.kpi_history`` say the night was degraded and by which source.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from include.erp import db
from include.runs import Run
from include.stages import nightly
from include.stages.summaries import read_stage_summaries
from include.storage import partition_path, read_partition
from tests.worlds import clear_run_lines, tiny_world

pytestmark = pytest.mark.integration
DS = dt.date(2026, 8, 20)
DAG_ID = "retail_nightly"
PARAMS = {"history_days": 120, "horizon": 14, "shard_size": 100_000, "mode": "live"}


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> str:
    root = tiny_world(str(tmp_path_factory.mktemp("degraded") / "shelfwise"), DS)
    (Path(root) / "landing" / "returns" / f"ds={DS}" / "returns.jsonl").unlink()
    return root


def _run(task_id: str) -> Run:
    return Run(dag_id=DAG_ID, run_id=f"test_degraded__{DS}", ds=DS.isoformat(), task_id=task_id, params=PARAMS)


@pytest.fixture(scope="module")
def night(world, erp_url) -> dict:
    """Every stage of the night but the review, in the DAG's order; the summaries of the stages."""
    clear_run_lines(DAG_ID, DS)

    def conn():
        return db.connect(erp_url)

    for source in ("master", "pos", "ecommerce", "wms", "supplier", "returns"):
        nightly.ingest(_run(f"ingest_{source}"), source, conn_factory=conn, root=world)
    nightly.build_demand(_run("build_demand"), root=world)
    nightly.monitor_forecasts(_run("monitor_forecasts"), conn_factory=conn, root=world)
    shards = nightly.plan_forecast_shards(_run("plan_forecast_shards"), root=world)
    done = [nightly.forecast_demand(_run("forecast_demand"), s["shard"], s["n_shards"], root=world) for s in shards]
    nightly.combine_forecasts(_run("combine_forecasts"), done, root=world)
    for stage in (nightly.detect_anomalies, nightly.propose_decisions, nightly.tier_proposals):
        stage(_run(stage.__name__), root=world)
    nightly.stage_proposals(_run("stage_proposals"), conn_factory=conn, root=world)
    nightly.release_approved(_run("release_approved"), conn_factory=conn, root=world)
    nightly.report_kpis(_run("report_kpis"), conn_factory=conn, root=world)
    return read_stage_summaries(DAG_ID, DS, world)


def test_a_late_returns_extract_degrades_the_night_and_the_night_goes_on(world, night, erp_url):
    yesterday = (DS - dt.timedelta(days=1)).isoformat()
    stale = night["ingest_returns"]["stale_sources"]
    assert night["ingest_returns"]["degraded"] is True and list(stale) == ["returns"]
    assert stale["returns"]["substituted_from"] == yesterday
    assert stale["returns"]["reason"].startswith(f"substituted: the curated partition of {yesterday}")
    assert night["ingest_returns"]["contracts"]["returns"]["outcome"] == "substituted"
    assert len(read_partition("curated", "returns", DS, world)) == len(read_partition("curated", "returns",
                                                                                       yesterday, world))
    # The stages that read returns say so; the ones that do not, do not.
    assert night["detect_anomalies"]["stale_sources"] == stale
    assert "degraded" not in night["propose_decisions"] and "degraded" not in night["ingest_pos"]
    assert night["report_kpis"]["degraded"] is True
    # Proposals were still staged, and none was tiered up for returns (no line depends on them).
    tiered = sum(night["tier_proposals"]["by_type_and_tier"].values())
    assert tiered > 0 and "degraded" not in night["tier_proposals"]
    staged = night["stage_proposals"]
    assert staged["mode"] == "live" and staged["inserted"] + staged["updated"] + staged["kept_decided"] == tiered

    report = (Path(partition_path("reports", "kpis", DS, world)) / "report.md").read_text()
    assert "**Degraded night**" in report and f"- `returns`: data of {yesterday} used" in report
    assert night["report_kpis"]["kpis"]["stale_sources"] == {"returns": yesterday}
    with db.connect(erp_url) as conn:
        row = conn.execute("SELECT degraded, stale_sources, kpis->>'degraded' FROM ops.kpi_history"
                           " WHERE dag_id=%s AND ds=%s", (DAG_ID, DS)).fetchone()
        run = conn.execute("SELECT outcome, substituted_from FROM ops.contract_runs WHERE dag_id=%s AND ds=%s"
                           " AND contract_id='returns' ORDER BY id DESC LIMIT 1", (DAG_ID, DS)).fetchone()
    assert row == (True, {"returns": yesterday}, "true")
    assert run == ("substituted", DS - dt.timedelta(days=1))
