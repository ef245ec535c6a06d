"""
### finance_review

Reviews the margin of the week ending on the run's date, after every night that curated new sales, orders
and returns (the nightly's `shelfwise_curated_pos`, `shelfwise_curated_ecommerce` and
`shelfwise_curated_returns` Assets), and on demand:

ingest the finance extracts of the date (shipment costs, fulfilment substitutions, shrink adjustments)
against their contracts -> the margin bridge of every category x channel x location: the week's gross
margin against the cell's own baseline weeks, the change split into price/markdown, promotion depth,
returns and refunds, expedited shipping, fulfilment substitutions, shrink and mix (written to
`reports/margin_bridge`) -> a cause beyond its normal range by the policy's robust test (`finance.min_z`)
that cost at least `finance.min_excess` becomes a review item with the loss projected if it continues, the
owner function and the evidence; an event that goes on for nights stays one item -> ERP staging, one
`finance_review` line per new item -> a gate with the policy's `finance.deadline_hours`, where finance
acknowledges (approve, with the action in the note) or dismisses (reject, with the reason) each item in the
Airflow UI, and a manager decides those that imply an accrual -> release of the acknowledged items.

An item nobody decided expires. In replay (backfills) the bridge and the items are computed and written,
never staged. Each task calls one stage adapter of `include/stages/finance.py`.
"""

from __future__ import annotations

import datetime as dt

from airflow.sdk import Param, chain, dag, task

from include.assets import CURATED, RETURN_PATTERNS
from include.erp.gate import approval_gate
from include.runs import MODES, current_run, erp_conn, gate_params, ingest_or_fail


@dag(
    # Runs once the night has curated the three sources its bridge reads (all three, or a run would review
    # a week whose sales are there but whose returns are not yet).
    schedule=(CURATED["pos"] & CURATED["ecommerce"] & CURATED["returns"]),
    start_date=dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
    catchup=False,
    max_active_runs=1,
    tags=["shelfwise", "finance", "erp"],
    default_args={"owner": "shelfwise", "retries": 1, "retry_delay": dt.timedelta(minutes=2)},
    params={
        "mode": Param("live", enum=list(MODES), description="replay computes but stages nothing"),
        **gate_params("the policy's finance"),
    },
    doc_md=__doc__,
)
def finance_review():
    @task(inlets=[CURATED["master"]])
    def ingest_finance() -> dict:
        from include.stages import finance

        return ingest_or_fail(lambda: finance.ingest(current_run(), conn_factory=erp_conn))

    @task(inlets=[CURATED["pos"], CURATED["ecommerce"], CURATED["returns"], RETURN_PATTERNS])
    def review_margin() -> dict:
        from include.stages import finance

        return finance.review(current_run())

    @task
    def stage_items() -> dict:
        from include.stages import finance

        return finance.stage(current_run(), conn_factory=erp_conn)

    wait_for_approval = approval_gate(staged_by="stage_items", deadline="finance")

    @task
    def release_acknowledged() -> dict:
        from include.stages import finance

        return finance.release(current_run(), conn_factory=erp_conn)

    chain(ingest_finance(), review_margin(), stage_items(), wait_for_approval, release_acknowledged())


finance_review()
