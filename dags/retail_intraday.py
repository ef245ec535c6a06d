"""
### retail_intraday

Demand sensing during the trading day, at the end of every hour the stores trade (`SHELFWISE_TRADING_HOURS`,
default 08:00-22:00) or the web shop is read (`SHELFWISE_ONLINE_HOURS`, default 08:00-24:00), on the clock
of `SHELFWISE_TRADING_TZ`, and on demand:

ingest the hour's POS, web-order and WMS extracts against their contracts -> read sales so far against
the night's forecast (the `shelfwise_forecasts` Asset) spread by the hour-of-day profile, with a
sequential test per item x location and per region x item whose false-alarm rate the policy sets ->
urgent store transfers, expedites and raised orders for the surges that will run short, each with its
cost, the margin at stake and the hours to stock-out -> risk tiers -> ERP staging -> a gate with the
policy's intraday deadline -> release.

The run covers the hour that just closed on the trading clock (the run at midnight reads 23:00-24:00 of
the day before; `hour` param to choose another); after the stores close, stock moves only to the web shop,
from the DCs. Hourly runs may overlap: each
one's gate waits only for the lines it staged last, and a run finishing after a newer hour changes
nothing. Each task calls one stage adapter of `include/stages/intraday.py`.
"""

from __future__ import annotations

import dataclasses
import datetime as dt

from airflow.sdk import CronTriggerTimetable, Param, chain, dag, get_current_context, task

from include.assets import FORECASTS
from include.config import hour_read, hourly_cron, hours_read, trading_hours
from include.erp.gate import approval_gate
from include.runs import MODES, Run, current_run, erp_conn, gate_params, ingest_or_fail

SOURCES = ("pos_intraday", "ecommerce_intraday", "wms_intraday")
TZ = trading_hours()[2]


def _reading() -> tuple[Run, int]:
    """The run, on the trading day it reads, and the hour: the ``hour`` param of the run's date, else the
    hour that just closed on the trading clock (:func:`include.config.hour_read`)."""
    context = get_current_context()
    run = current_run()
    given = context["params"].get("hour")
    if given is not None:
        return run, int(given)
    day, hour = hour_read(context["data_interval_start"], TZ)
    return dataclasses.replace(run, ds=day.isoformat()), hour


@dag(
    schedule=CronTriggerTimetable(hourly_cron(hours_read()), timezone=TZ, interval=dt.timedelta(hours=1)),
    start_date=dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
    catchup=False,
    max_active_runs=4,
    tags=["shelfwise", "intraday", "erp"],
    default_args={"owner": "shelfwise", "retries": 1, "retry_delay": dt.timedelta(minutes=1)},
    params={
        "mode": Param("live", enum=list(MODES), description="replay computes but stages nothing"),
        "hour": Param(None, type=["null", "integer"], minimum=0, maximum=23,
                      description="trading hour to read (0-23); empty: the hour that just closed"),
        **gate_params("the policy's intraday"),
    },
    doc_md=__doc__,
)
def retail_intraday():
    def ingest_task(source: str):
        @task(task_id=f"ingest_{source}")
        def ingest_source() -> dict:
            from include.stages import intraday

            run, hour = _reading()
            return ingest_or_fail(lambda: intraday.ingest(run, source, hour, conn_factory=erp_conn))

        return ingest_source()

    # Sensing reads whatever hours were ingested: one broken hourly file leaves a gap, not a blind day.
    @task(inlets=[FORECASTS], trigger_rule="all_done")
    def sense_demand() -> dict:
        from include.stages import intraday

        return intraday.sense(*_reading(), conn_factory=erp_conn)

    @task
    def propose_moves() -> dict:
        from include.stages import intraday

        return intraday.propose(*_reading(), conn_factory=erp_conn)

    @task
    def stage_moves() -> dict:
        from include.stages import intraday

        return intraday.stage(*_reading(), conn_factory=erp_conn)

    # The gate waits for the lines of the day the stage staged them on (the run at midnight: the day before).
    wait_for_approval = approval_gate(staged_by="stage_moves", deadline="intraday", ds_from_stage=True)

    @task
    def release_approved() -> dict:
        from include.stages import intraday

        return intraday.release(_reading()[0], conn_factory=erp_conn)

    ingested = [ingest_task(s) for s in SOURCES]
    chain(ingested, sense_demand(), propose_moves(), stage_moves(), wait_for_approval, release_approved())


retail_intraday()
