"""
### order_orchestration

Routes the day's online order lines to fulfilment nodes in batches, every 15 minutes (the policy's
`orchestration.batch_minutes`), each batch covering the lines ordered by the end of its interval:

ingest the open order lines, the carrier rate card, the node capabilities with the labour plan and the
live on-hand against their contracts -> route the lines no earlier batch routed (shipping, pick, split,
lateness and the store stock-outs priced with the night's forecast, the `shelfwise_forecasts` Asset;
stock and pick capacity less what earlier batches took) -> tiers -> ERP staging, every routed line once
(`order_id:line_no`) -> release the assignments within policy at once -> a gate with the policy's short
orchestration deadline for the exceptions (splits above the limit, a store taken below its safety stock,
a promise that cannot be met, an order above the cost limit) -> release what planners approved.

A line no node can ship now is left to the next batch. Runs may overlap: each gate waits only for the
lines its run staged. Each task calls one stage adapter of `include/stages/orchestration.py`.
"""

from __future__ import annotations

import datetime as dt

from airflow.sdk import CronDataIntervalTimetable, Param, chain, dag, get_current_context, task

from include.assets import FORECASTS, ORDER_LINES
from include.config import trading_hours
from include.erp.gate import approval_gate
from include.runs import MODES, current_run, erp_conn, gate_params, ingest_or_fail

SOURCES = ("oms", "carrier", "labour", "wms_live")
#: The policy's ``orchestration.batch_minutes`` (a DAG test keeps them equal; the file is not read at parse time).
BATCH_MINUTES = 15
_, _, TZ = trading_hours()


def _until() -> dt.datetime:
    """The batch's cut-off, naive in the orders' local time: the ``until`` param, else the interval's end."""
    from zoneinfo import ZoneInfo

    context = get_current_context()
    given = context["params"].get("until")
    if given:
        return dt.datetime.combine(dt.date.fromisoformat(context["ds"]), dt.time.fromisoformat(given))
    return context["data_interval_end"].astimezone(ZoneInfo(TZ)).replace(tzinfo=None)


@dag(
    schedule=CronDataIntervalTimetable(f"*/{BATCH_MINUTES} * * * *", timezone=TZ),
    start_date=dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
    catchup=False,
    max_active_runs=4,
    tags=["shelfwise", "orchestration", "erp"],
    default_args={"owner": "shelfwise", "retries": 1, "retry_delay": dt.timedelta(minutes=1)},
    params={
        "mode": Param("live", enum=list(MODES), description="replay computes but stages nothing"),
        "until": Param(None, type=["null", "string"], pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]$",
                       description="route the lines ordered before this time of the day (HH:MM); "
                                   "empty: the end of the run's interval"),
        **gate_params("the policy's orchestration"),
    },
    doc_md=__doc__,
)
def order_orchestration():
    def ingest_task(source: str):
        @task(task_id=f"ingest_{source}", outlets=[ORDER_LINES] if source == "oms" else [])
        def ingest_source() -> dict:
            from include.stages import orchestration

            return ingest_or_fail(lambda: orchestration.ingest(current_run(), source, conn_factory=erp_conn))

        return ingest_source()

    # One batch routes at a time, so each sees the stock and capacity the one before it took.
    @task(inlets=[FORECASTS], max_active_tis_per_dag=1)
    def route_orders() -> dict:
        from include.stages import orchestration

        return orchestration.route(current_run(), _until(), conn_factory=erp_conn)

    @task(max_active_tis_per_dag=1)
    def stage_assignments() -> dict:
        from include.stages import orchestration

        return orchestration.stage(current_run(), _until(), conn_factory=erp_conn)

    @task
    def release_within_policy() -> dict:
        from include.stages import orchestration

        return orchestration.release(current_run(), conn_factory=erp_conn)

    wait_for_approval = approval_gate(staged_by="stage_assignments", deadline="orchestration")

    @task
    def release_approved() -> dict:
        from include.stages import orchestration

        return orchestration.release(current_run(), conn_factory=erp_conn)

    ingested = [ingest_task(s) for s in SOURCES]
    chain(ingested, route_orders(), stage_assignments(), release_within_policy(), wait_for_approval,
          release_approved())


order_orchestration()
