"""
### returns_routing

Routes the units returned on the run's date, daily at 03:00 in the trading timezone and whenever the nightly
has curated new returns (the `shelfwise_curated_returns` Asset):

ingest the returns system's extracts (the day's returned lines, and the loss-prevention cases closed that
day) against their contracts -> classify the week's return patterns against the weeks before (a defect surge
on a supplier batch, a store with unusual refunds, an item whose online return rate jumped: explained
anomalies for supplier quality, finance and merchandising, the `shelfwise_return_patterns` Asset that supplier
scorecards read) and, beside it, score each line for fraud with the model trained on the cases loss prevention
confirmed over the policy's `returns.history_days` (fewer confirmed cases than `returns.min_confirmed_cases`:
the rules score, said in the stage summary), route each unit to the option that recovers most (restock,
transfer, open box, refurbish, return to vendor, liquidate; priced with the night's store forecast, the
`shelfwise_forecasts` Asset, and the stock already on the shelf), tier the dispositions (`return_fraud_risk`,
`return_high_value`) -> ERP staging, one `return_disposition` line per returned line (`return:<return_id>`) ->
release the routine dispositions at once -> a gate with the policy's `returns.deadline_hours` for the units
held for review, which only loss prevention decides (`deciders_by_doc_type`) -> release what it approved.

A held line nobody decided expires (the unit stays in quarantine), never released. In replay (backfills) the
dispositions are computed and recorded, never staged. Each task calls one stage adapter of
`include/stages/returns.py`.
"""

from __future__ import annotations

import datetime as dt

from airflow.sdk import Param, chain, dag, task
from airflow.timetables.assets import AssetOrTimeSchedule
from airflow.timetables.interval import CronDataIntervalTimetable

from include.assets import CURATED, FORECASTS, RETURN_PATTERNS
from include.config import trading_hours
from include.erp.gate import approval_gate
from include.runs import MODES, current_run, erp_conn, gate_params, ingest_or_fail

_, _, TZ = trading_hours()


@dag(
    # A daily interval: the 03:00 run of a day routes the day before (its logical date), after its night.
    schedule=AssetOrTimeSchedule(timetable=CronDataIntervalTimetable("0 3 * * *", timezone=TZ),
                                 assets=CURATED["returns"]),
    start_date=dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
    catchup=False,
    max_active_runs=1,
    tags=["shelfwise", "returns", "erp"],
    default_args={"owner": "shelfwise", "retries": 1, "retry_delay": dt.timedelta(minutes=2)},
    params={
        "mode": Param("live", enum=list(MODES), description="replay computes but stages nothing"),
        **gate_params("the policy's returns"),
    },
    doc_md=__doc__,
)
def returns_routing():
    @task
    def ingest_returns_system() -> dict:
        from include.stages import returns

        return ingest_or_fail(lambda: returns.ingest(current_run(), conn_factory=erp_conn))

    @task(inlets=[CURATED["master"]], outlets=[RETURN_PATTERNS])
    def classify_return_patterns() -> dict:
        from include.stages import returns

        return returns.classify(current_run())

    @task(inlets=[FORECASTS, CURATED["master"], CURATED["wms"]])
    def route_returns() -> dict:
        from include.stages import returns

        return returns.route(current_run())

    @task
    def stage_dispositions() -> dict:
        from include.stages import returns

        return returns.stage(current_run(), conn_factory=erp_conn)

    @task
    def release_within_policy() -> dict:
        from include.stages import returns

        return returns.release(current_run(), conn_factory=erp_conn)

    wait_for_approval = approval_gate(staged_by="stage_dispositions", deadline="returns")

    @task
    def release_approved() -> dict:
        from include.stages import returns

        return returns.release(current_run(), conn_factory=erp_conn)

    ingested = ingest_returns_system()
    ingested >> classify_return_patterns()
    chain(ingested, route_returns(), stage_dispositions(), release_within_policy(), wait_for_approval,
          release_approved())


returns_routing()
