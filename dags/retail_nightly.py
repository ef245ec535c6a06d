"""
### retail_nightly

The whole Shelfwise chain for the business day that just closed (the logical date `ds`):

ingest + validate every extract against its data contract -> daily demand (stock-outs censored), written
in shards of SKUs -> forecast and demand anomalies, one mapped task per shard, shards side by side ->
supplier, margin and return anomalies -> replenishment, transfers and PO exceptions ->
risk tiers from the governance policy -> ERP staging (idempotent) -> approval gate (planners decide in
the Airflow UI or the CLI) -> release of approved lines to the ERP -> KPIs and report.

A late or blocked extract of a non-critical source (its data contract's ``criticality``) is replaced by
its last good partition: its ingest task succeeds, the night is marked degraded in the stage summaries,
the report and ``ops.kpi_history``, and lines that depend on it go up a tier. A critical one fails its
ingest task, naming the contract, the file and why. Its outputs are Assets (``include/assets.py``):
curated extracts per source, ``shelfwise_forecasts``, ``shelfwise_decisions``, ``shelfwise_kpis``.

Runs at 02:00 UTC for the previous day. A re-run of a date replaces that date's outputs and the lines
nobody has decided yet. A backfill (or `mode=replay`) computes everything but stages nothing for
planners and releases nothing: what would have been proposed is written to `reports/replay_proposals`.
Each task calls one stage adapter of `include/stages/nightly.py`.
"""

from __future__ import annotations

import datetime as dt

from airflow.sdk import CronDataIntervalTimetable, Param, chain, dag, task

from include.assets import CURATED, DECISIONS, FORECASTS, KPIS
from include.config import shard_concurrency
from include.erp.gate import BatchReviewOperator, approval_gate
from include.runs import (
    MODES,
    NIGHTLY_DEFAULTS,
    REVIEW_DONE,
    REVIEW_OPTIONS,
    current_run,
    erp_conn,
    gate_params,
    ingest_or_fail,
    staged_at_template,
)

SOURCES = ("pos", "ecommerce", "wms", "supplier", "returns")


@dag(
    schedule=CronDataIntervalTimetable("0 2 * * *", timezone="UTC"),
    start_date=dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
    catchup=False,
    max_active_runs=1,
    tags=["shelfwise", "nightly", "erp"],
    default_args={"owner": "shelfwise", "retries": 1, "retry_delay": dt.timedelta(minutes=2)},
    params={
        "mode": Param(NIGHTLY_DEFAULTS["mode"], enum=list(MODES), description="replay computes but stages nothing"),
        "history_days": Param(NIGHTLY_DEFAULTS["history_days"], type="integer", minimum=28,
                              description="days of demand history"),
        "horizon": Param(NIGHTLY_DEFAULTS["horizon"], type="integer", minimum=1, maximum=120,
                         description="forecast horizon, days"),
        "shard_size": Param(NIGHTLY_DEFAULTS["shard_size"], type="integer", minimum=1,
                            description="series per forecast shard"),
        **gate_params("the policy's"),
    },
    doc_md=__doc__,
)
def retail_nightly():
    @task
    def prepare_erp_staging() -> dict:
        from airflow.sdk.bases.hook import BaseHook

        from include.stages import nightly

        return nightly.prepare_erp_staging(current_run(), conn_factory=erp_conn, owner_lookup=BaseHook.get_connection)

    def ingest_task(source: str):
        @task(task_id=f"ingest_{source}", outlets=[CURATED[source]])
        def ingest_source() -> dict:
            from include.stages import nightly

            return ingest_or_fail(lambda: nightly.ingest(current_run(), source, conn_factory=erp_conn))

        return ingest_source()

    @task
    def build_demand() -> dict:
        from include.stages import nightly

        return nightly.build_demand(current_run())

    @task
    def plan_forecast_shards() -> list[dict]:
        from include.stages import nightly

        return nightly.plan_forecast_shards(current_run())

    # Shards run side by side up to a bound (config.shard_concurrency), so memory stays within the machine.
    @task(**shard_concurrency())
    def forecast_demand(shard: dict) -> dict:
        from include.stages import nightly

        return nightly.forecast_demand(current_run(), shard["shard"], shard["n_shards"])

    @task(outlets=[FORECASTS])
    def combine_forecasts(shards: list[dict]) -> dict:
        from include.stages import nightly

        return nightly.combine_forecasts(current_run(), list(shards))

    @task
    def monitor_forecasts() -> dict:
        from include.stages import nightly

        return nightly.monitor_forecasts(current_run(), conn_factory=erp_conn)

    @task
    def detect_anomalies() -> dict:
        from include.stages import nightly

        return nightly.detect_anomalies(current_run())

    @task
    def propose_decisions() -> dict:
        from include.stages import nightly

        return nightly.propose_decisions(current_run(), conn_factory=erp_conn)

    @task
    def tier_proposals() -> dict:
        from include.stages import nightly

        return nightly.tier_proposals(current_run())

    @task(outlets=[DECISIONS])
    def stage_proposals() -> dict:
        from include.stages import nightly

        return nightly.stage_proposals(current_run(), conn_factory=erp_conn)

    # Runs after the batch review (or when none was needed): its deadline counts from staging time,
    # so the review and the gate share one timeout rather than adding up.
    wait_for_approval = approval_gate(staged_by="stage_proposals", run_scoped=False, trigger_rule="none_failed")

    @task.short_circuit(retries=0, ignore_downstream_trigger_rules=False)
    def needs_review() -> str:
        """The Required Action's text, or empty (skip the review) when nothing waits for a planner."""
        from include.stages import nightly

        return nightly.review_text(current_run(), conn_factory=erp_conn)

    # Batch-level review where Airflow users look (Required Actions). The approval gate after it, not
    # this task, decides when release may run: line-level decisions made elsewhere count just as well.
    review_batch = BatchReviewOperator(
        task_id="review_batch",
        subject="Shelfwise {{ ds }}: proposals waiting for a planner",
        body="{{ ti.xcom_pull(task_ids='needs_review') }}",
        options=REVIEW_OPTIONS,
        defaults=[REVIEW_DONE],
        # Times out at the gate's deadline, so the review never outlasts the gate that follows it.
        timeout_minutes="{{ params.gate_timeout_minutes }}",
        staged_at=staged_at_template("stage_proposals"),
        retries=0,
    )

    @task(retries=0)
    def apply_review(response: dict) -> dict:
        from include.governance.roles import airflow_roles_of
        from include.stages import nightly

        return nightly.apply_review(current_run(), response, conn_factory=erp_conn, roles_of=airflow_roles_of)

    @task
    def release_approved() -> dict:
        from include.stages import nightly

        return nightly.release_approved(current_run(), conn_factory=erp_conn)

    @task(outlets=[KPIS])
    def report_kpis() -> dict:
        from include.stages import nightly

        return nightly.report_kpis(current_run(), conn_factory=erp_conn)

    prepared = prepare_erp_staging()
    master = ingest_task("master")
    pos, ecommerce, wms, supplier, returns = (ingest_task(s) for s in SOURCES)
    chain(prepared, master, [pos, ecommerce, wms, supplier, returns])
    demand = build_demand()
    chain([pos, ecommerce, wms], demand)
    shards = plan_forecast_shards()
    forecasts = combine_forecasts(forecast_demand.expand(shard=shards))
    chain(demand, shards)
    anomalies = detect_anomalies()
    chain([forecasts, supplier, returns], anomalies)
    proposals = propose_decisions()
    staged = stage_proposals()
    chain(anomalies, proposals, tier_proposals(), staged)
    chain(staged, needs_review(), review_batch, apply_review(review_batch.output), wait_for_approval)
    report = report_kpis()
    chain(staged, wait_for_approval, release_approved(), report)
    # Monitoring runs before the forecast: a demand class in drift is forecast by the fallback rule.
    monitor = monitor_forecasts()
    chain(demand, monitor, shards)
    chain(monitor, report)


retail_nightly()
