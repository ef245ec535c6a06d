"""
### retail_nightly

The whole Shelfwise chain for the business day that just closed (the logical date `ds`):

ingest + validate every extract against its data contract -> daily demand (stock-outs censored) ->
forecast, fanned out by shards of series -> anomalies -> replenishment, transfers and PO exceptions ->
risk tiers from the governance policy -> ERP staging (idempotent) -> approval gate (planners decide in
the Airflow UI or the CLI) -> release of approved lines to the ERP -> KPIs and report.

Runs at 02:00 UTC for the previous day. A re-run of a date replaces that date's outputs and the lines
nobody has decided yet. A backfill (or `mode=replay`) computes everything but stages nothing for
planners and releases nothing: what would have been proposed is written to `reports/replay_proposals`.
"""

from __future__ import annotations

import datetime as dt

from airflow.sdk import CronDataIntervalTimetable, Param, chain, dag, get_current_context, task

from include.erp.gate import ApprovalGateSensor, BatchReviewOperator

# Mirrors include.nightly.REVIEW_*; kept literal so parsing imports nothing heavy.
REVIEW_OPTIONS = ["Approve all pending", "Reject all pending", "I have reviewed the lines"]

REPLAY = "{{ dag_run.run_type == 'backfill' or params.mode == 'replay' }}"


def _run_facts() -> tuple[str, str, str, bool]:
    from include.nightly import is_replay

    context = get_current_context()
    run = context["dag_run"]
    return context["dag"].dag_id, run.run_id, context["ds"], is_replay(run.run_type, context["params"]["mode"])


def _erp_conn():
    from include.erp.hook import ErpStagingHook

    return ErpStagingHook().get_conn()


@dag(
    schedule=CronDataIntervalTimetable("0 2 * * *", timezone="UTC"),
    start_date=dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
    catchup=False,
    max_active_runs=1,
    tags=["shelfwise", "nightly", "erp"],
    default_args={"owner": "shelfwise", "retries": 1, "retry_delay": dt.timedelta(minutes=2)},
    params={
        "mode": Param("live", enum=["live", "replay"], description="replay computes but stages nothing"),
        "history_days": Param(365, type="integer", minimum=28, description="days of demand history"),
        "horizon": Param(28, type="integer", minimum=1, maximum=120, description="forecast horizon, days"),
        "shard_size": Param(5000, type="integer", minimum=1, description="series per forecast shard"),
        "gate_timeout_minutes": Param(None, type=["null", "number"],
                                      description="approval gate timeout; empty uses the policy"),
        "gate_poke_seconds": Param(None, type=["null", "number"],
                                   description="how often the gate checks; empty uses the policy"),
    },
    doc_md=__doc__,
)
def retail_nightly():
    @task
    def prepare_erp_staging() -> dict:
        from include.erp.hook import ErpStagingHook
        from include.nightly import prepare_erp_staging as prepare

        return prepare(ErpStagingHook().get_uri())

    def ingest_task(source: str):
        # A broken contract is deterministic: retrying cannot fix the data.
        @task(task_id=f"ingest_{source}", retries=0)
        def ingest_source() -> dict:
            from include.nightly import ingest

            dag_id, run_id, ds, _ = _run_facts()
            return ingest(source, ds, dag_id=dag_id, run_id=run_id, conn_factory=_erp_conn)

        return ingest_source()

    @task
    def build_demand() -> dict:
        from include.nightly import build_demand as run

        context = get_current_context()
        return run(context["ds"], history_days=int(context["params"]["history_days"]))

    @task
    def plan_forecast_shards() -> list[dict]:
        from include.nightly import plan_forecast_shards as run

        context = get_current_context()
        return run(context["ds"], shard_size=int(context["params"]["shard_size"]))

    @task
    def forecast_demand(shard: dict) -> dict:
        from include.nightly import forecast_shard

        context = get_current_context()
        return forecast_shard(context["ds"], shard["shard"], shard["n_shards"],
                              horizon=int(context["params"]["horizon"]))

    @task
    def combine_forecasts(shards: list[dict]) -> dict:
        from include.nightly import combine_forecasts as run

        return run(get_current_context()["ds"], list(shards))

    @task
    def monitor_forecasts() -> dict:
        from include.nightly import monitor_forecasts as run

        dag_id, _, ds, _ = _run_facts()
        return run(ds, dag_id=dag_id, conn_factory=_erp_conn)

    @task
    def detect_anomalies() -> dict:
        from include.nightly import detect_anomalies as run

        return run(get_current_context()["ds"])

    @task
    def propose_decisions() -> dict:
        from include.nightly import propose

        return propose(get_current_context()["ds"])

    @task
    def tier_proposals() -> dict:
        from include.nightly import tier

        return tier(get_current_context()["ds"])

    @task
    def stage_proposals() -> dict:
        from include.nightly import stage

        dag_id, run_id, ds, replay = _run_facts()
        return stage(ds, dag_id=dag_id, run_id=run_id, replay=replay, conn_factory=_erp_conn)

    # Runs after the batch review (or when none was needed): its deadline counts from staging time,
    # so the review and the gate share one timeout rather than adding up.
    wait_for_approval = ApprovalGateSensor(
        task_id="wait_for_approval",
        replay=REPLAY,
        timeout_minutes="{{ params.gate_timeout_minutes }}",
        poke_interval_seconds="{{ params.gate_poke_seconds }}",
        staged_at="{{ ti.xcom_pull(task_ids='stage_proposals')['staged_at'] }}",
        trigger_rule="none_failed",
        retries=0,
    )

    @task.short_circuit(retries=0, ignore_downstream_trigger_rules=False)
    def needs_review() -> str:
        """The Required Action's text, or empty (skip the review) when nothing waits for a planner."""
        from include.nightly import review_summary

        dag_id, _, ds, replay = _run_facts()
        return "" if replay else review_summary(ds, dag_id=dag_id, conn_factory=_erp_conn)

    # Batch-level review where Airflow users look (Required Actions). The approval gate after it, not
    # this task, decides when release may run: line-level decisions made elsewhere count just as well.
    review_batch = BatchReviewOperator(
        task_id="review_batch",
        subject="Shelfwise {{ ds }}: proposals waiting for a planner",
        body="{{ ti.xcom_pull(task_ids='needs_review') }}",
        options=REVIEW_OPTIONS,
        defaults=["I have reviewed the lines"],
        # Times out at the gate's deadline, so the review never outlasts the gate that follows it.
        timeout_minutes="{{ params.gate_timeout_minutes }}",
        staged_at="{{ ti.xcom_pull(task_ids='stage_proposals')['staged_at'] }}",
        retries=0,
    )

    @task(retries=0)
    def apply_review(response: dict) -> dict:
        from include.nightly import apply_batch_decision, shelfwise_roles

        dag_id, _, ds, _ = _run_facts()
        user = (response.get("responded_by_user") or {}).get("name") or "unknown"
        return apply_batch_decision(ds, dag_id=dag_id, choice=response["chosen_options"][0], user=user,
                                    roles=shelfwise_roles(user), conn_factory=_erp_conn)

    @task
    def release_approved() -> dict:
        from include.nightly import release

        dag_id, run_id, ds, replay = _run_facts()
        return release(ds, dag_id=dag_id, run_id=run_id, replay=replay, conn_factory=_erp_conn)

    @task
    def report_kpis() -> dict:
        from include.nightly import report

        dag_id, _, ds, replay = _run_facts()
        return report(ds, dag_id=dag_id, replay=replay, conn_factory=_erp_conn)

    prepared = prepare_erp_staging()
    master = ingest_task("master")
    pos, ecommerce, wms, supplier, returns = (ingest_task(s) for s in ("pos", "ecommerce", "wms", "supplier", "returns"))
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
