"""
### retail_intraday

Demand sensing during the trading day, at the end of every trading hour (`SHELFWISE_TRADING_HOURS`,
default 08:00-22:00, in `SHELFWISE_TRADING_TZ`), and on demand:

ingest the hour's POS, web-order and WMS extracts against their contracts -> read sales so far against
the night's forecast (the `shelfwise_forecasts` Asset) spread by the hour-of-day profile, with a
sequential test per item x location and per region x item whose false-alarm rate the policy sets ->
urgent store transfers, expedites and raised orders for the surges that will run short, each with its
cost, the margin at stake and the hours to stock-out -> risk tiers -> ERP staging -> a gate with the
policy's intraday deadline -> release.

The run covers the hour that just closed (`hour` param to choose another). Hourly runs may overlap: each
one's gate waits only for the lines it staged last, and a run finishing after a newer hour changes
nothing. Each task calls one stage adapter of `include/stages/intraday.py`.
"""

from __future__ import annotations

import datetime as dt

from airflow.sdk import CronTriggerTimetable, Param, chain, dag, get_current_context, task

from include.assets import FORECASTS
from include.config import trading_hours
from include.erp.gate import ApprovalGateSensor
from include.runs import MODES, REPLAY_TEMPLATE, Run, ingest_or_fail

SOURCES = ("pos_intraday", "ecommerce_intraday", "wms_intraday")
OPEN, CLOSE, TZ = trading_hours()
STAGED_AT = "{{ ti.xcom_pull(task_ids='stage_moves')['staged_at'] }}"


def _run() -> Run:
    return Run.from_context(get_current_context())


def _hour() -> int:
    """The trading hour this run reads: the ``hour`` param, else the hour that just closed."""
    context = get_current_context()
    given = context["params"].get("hour")
    return int(given) if given is not None else context["data_interval_start"].hour


def _erp_conn():
    from include.erp.hook import ErpStagingHook

    return ErpStagingHook().get_conn()


@dag(
    schedule=CronTriggerTimetable(f"0 {OPEN + 1}-{CLOSE} * * *", timezone=TZ, interval=dt.timedelta(hours=1)),
    start_date=dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
    catchup=False,
    max_active_runs=4,
    tags=["shelfwise", "intraday", "erp"],
    default_args={"owner": "shelfwise", "retries": 1, "retry_delay": dt.timedelta(minutes=1)},
    params={
        "mode": Param("live", enum=list(MODES), description="replay computes but stages nothing"),
        "hour": Param(None, type=["null", "integer"], minimum=0, maximum=23,
                      description="trading hour to read (0-23); empty: the hour that just closed"),
        "gate_timeout_minutes": Param(None, type=["null", "number"],
                                      description="the gate's deadline; empty uses the policy's intraday deadline"),
        "gate_poke_seconds": Param(None, type=["null", "number"],
                                   description="how often the gate checks; empty uses the policy"),
    },
    doc_md=__doc__,
)
def retail_intraday():
    def ingest_task(source: str):
        @task(task_id=f"ingest_{source}")
        def ingest_source() -> dict:
            from include.stages import intraday

            return ingest_or_fail(lambda: intraday.ingest(_run(), source, _hour(), conn_factory=_erp_conn))

        return ingest_source()

    # Sensing reads whatever hours were ingested: one broken hourly file leaves a gap, not a blind day.
    @task(inlets=[FORECASTS], trigger_rule="all_done")
    def sense_demand() -> dict:
        from include.stages import intraday

        return intraday.sense(_run(), _hour())

    @task
    def propose_moves() -> dict:
        from include.stages import intraday

        return intraday.propose(_run(), _hour())

    @task
    def stage_moves() -> dict:
        from include.stages import intraday

        return intraday.stage(_run(), _hour(), conn_factory=_erp_conn)

    wait_for_approval = ApprovalGateSensor(
        task_id="wait_for_approval",
        replay=REPLAY_TEMPLATE,
        timeout_minutes="{{ params.gate_timeout_minutes }}",
        poke_interval_seconds="{{ params.gate_poke_seconds }}",
        staged_at=STAGED_AT,
        run_scoped=True,
        deadline="intraday",
        retries=0,
    )

    @task
    def release_approved() -> dict:
        from include.stages import intraday

        return intraday.release(_run(), conn_factory=_erp_conn)

    ingested = [ingest_task(s) for s in SOURCES]
    chain(ingested, sense_demand(), propose_moves(), stage_moves(), wait_for_approval, release_approved())


retail_intraday()
