"""
### supplier_scorecards

Scores every supplier for the week ending on the run's date, weekly (Monday 05:00) and whenever the nightly
has curated new supplier extracts (the `shelfwise_curated_supplier` Asset):

ingest the supplier catalogue (contract cost, MOQ, case pack, lead time and capacity of every supplier for
every SKU it can supply; a late one stands in with its last good partition) -> score each supplier and each
supplier x SKU over the policy's trailing weeks: on-time-in-full, fill rate, lead time (mean, p90, trend,
variability), price against contract, defects from returns, and the reliability score the policy's
weights give -> keep them as weekly history in `ops.supplier_scorecards` (a re-run replaces its week).

The nightly's PO exceptions rank alternate suppliers with the newest catalogue and these scores. In replay
(backfills) the cards are computed and written to files, never to the history. Each task calls one stage
adapter of `include/stages/procurement.py`.
"""

from __future__ import annotations

import datetime as dt

from airflow.sdk import Param, chain, dag, task
from airflow.timetables.assets import AssetOrTimeSchedule
from airflow.timetables.trigger import CronTriggerTimetable

from include.assets import CURATED, RETURN_PATTERNS, SUPPLIER_SCORECARDS
from include.config import trading_hours
from include.runs import MODES, current_run, erp_conn, ingest_or_fail

_, _, TZ = trading_hours()


@dag(
    schedule=AssetOrTimeSchedule(timetable=CronTriggerTimetable("0 5 * * 1", timezone=TZ),
                                 assets=CURATED["supplier"]),
    start_date=dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
    catchup=False,
    max_active_runs=1,
    tags=["shelfwise", "procurement"],
    default_args={"owner": "shelfwise", "retries": 1, "retry_delay": dt.timedelta(minutes=2)},
    params={"mode": Param("live", enum=list(MODES), description="replay computes but keeps no history")},
    doc_md=__doc__,
)
def supplier_scorecards():
    @task(inlets=[CURATED["master"]])
    def ingest_procurement() -> dict:
        from include.stages import procurement

        return ingest_or_fail(lambda: procurement.ingest(current_run(), "procurement", conn_factory=erp_conn))

    @task(inlets=[CURATED["supplier"], CURATED["returns"], RETURN_PATTERNS], outlets=[SUPPLIER_SCORECARDS])
    def score_suppliers() -> dict:
        from include.stages import procurement

        return procurement.score(current_run(), conn_factory=erp_conn)

    chain(ingest_procurement(), score_suppliers())


supplier_scorecards()
