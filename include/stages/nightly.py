"""The stage adapters of ``retail_nightly``: one per task, each reads, calls one owner, writes, records.

Every adapter reads what exists as of the run's logical date under the data root and writes its outputs
for that date, replacing an earlier run's. In a replay (backfill) nothing is staged for planners or
released: what would have been proposed is written to ``reports/replay_proposals`` instead.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

from include.config import as_date
from include.runs import Run
from include.stages.summaries import read_stage_metrics, read_stage_summaries, record, record_metrics
from include.storage import (
    partition_exists,
    read_nested_partition,
    read_partition,
    read_range,
    write_nested_partition,
    write_partition,
)

ConnFactory = Callable[[], Any]

#: Days of purchase-order snapshots and receipts that supplier statistics look back over.
PO_LOOKBACK_DAYS = 365


def prepare_erp_staging(run: Run, *, conn_factory: ConnFactory) -> dict[str, Any]:
    """Apply pending ERP staging migrations: the first task, so a broken connection stops the run here."""
    from include.erp import db

    with conn_factory() as conn:
        return {"migrations_applied": db.migrate(conn)}


def ingest(run: Run, source: str, *, conn_factory: ConnFactory | None = None,
           root: str | None = None) -> dict[str, Any]:
    """Ingest and validate one source, record every contract's result, raise if an extract blocked."""
    from include.ingest.outcome import ingest_results, source_summary

    results, blocked = ingest_results(source, run.ds, root)
    if conn_factory is not None:
        from include.erp.staging import record_contract_runs

        with conn_factory() as conn:
            record_contract_runs(conn, [r.as_record() for r in results], dag_id=run.dag_id, run_id=run.run_id)
    summary = record(run, source_summary(source, results), root)
    if blocked is not None:
        raise blocked
    return summary


def build_demand(run: Run, *, root: str | None = None) -> dict[str, Any]:
    """Daily demand per series for the trailing window, with stock-out days censored."""
    from include.demand.history import demand_summary, load_demand

    demand = load_demand(run.ds, int(run.param("history_days")), root)
    write_partition(demand, "curated", "demand", run.ds, root)
    return record(run, demand_summary(demand), root)


def plan_forecast_shards(run: Run, *, root: str | None = None) -> list[dict[str, int]]:
    """How many shards the forecast fans out to; one mapped task per shard."""
    from include.demand.shards import plan_shards

    ids = read_partition("curated", "demand", run.ds, root, columns=["unique_id"])["unique_id"]
    return plan_shards(int(ids.nunique()), int(run.param("shard_size")))


def forecast_demand(run: Run, shard: int, n_shards: int, *, root: str | None = None) -> dict[str, Any]:
    """Forecast the series of one shard (the mapped task's summary is its XCom, combined downstream)."""
    from include.demand.forecasting import forecast_shard, shard_summary
    from include.demand.shards import shard_rows
    from include.governance.policy import load_policy
    from models.forecasting import Challenger

    demand = shard_rows(read_partition("curated", "demand", run.ds, root), shard, n_shards)
    challenger = Challenger.from_policy(load_policy().challenger)
    drifting = (read_stage_summaries(run.dag_id, run.ds, root).get("monitor_forecasts") or {}).get(
        "fallback_segments") or {}
    result = forecast_shard(demand, as_date(run.ds), int(run.param("horizon")), challenger=challenger,
                            promotions=read_partition("curated", "promotions", run.ds, root, missing_ok=True),
                            items=read_partition("curated", "items", run.ds, root, missing_ok=True),
                            drifting=drifting)
    name = f"shard={shard:04d}-of-{n_shards:04d}"
    write_partition(result.forecasts, "forecasts", f"shards/{name}", run.ds, root)
    write_partition(result.series, "forecasts", f"series_shards/{name}", run.ds, root)
    record_metrics(run, f"forecast_demand_{name}", root)
    return shard_summary(shard, result, challenger)


def combine_forecasts(run: Run, shard_summaries: list[dict[str, Any]], *, root: str | None = None) -> dict[str, Any]:
    """Gather the shards into ``forecasts/demand`` and ``forecasts/series`` for the date."""
    import pandas as pd

    from include.demand.forecasting import combined_summary

    n = len(shard_summaries)
    combined = {}
    for kind, target in (("shards", "demand"), ("series_shards", "series")):
        parts = [read_partition("forecasts", f"{kind}/shard={s:04d}-of-{n:04d}", run.ds, root) for s in range(n)]
        combined[target] = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()
        write_partition(combined[target], "forecasts", target, run.ds, root)
    return record(run, combined_summary(combined["series"], shard_summaries), root)


def monitor_forecasts(run: Run, *, conn_factory: ConnFactory | None = None, root: str | None = None) -> dict[str, Any]:
    """Score the forecast made ``horizon_days`` ago per demand class, store the scores, flag drift."""
    from include.governance.policy import load_policy
    from models.forecasting.monitoring import drift_table, monitoring_summary

    cfg, day = load_policy().monitoring, as_date(run.ds)
    origin = day - dt.timedelta(days=cfg.horizon_days)
    scores = _scores(run.ds, [origin - dt.timedelta(days=7 * k) for k in range(4)], cfg.horizon_days, root)
    if scores[0] is None or scores[0].empty:
        return record(run, {"scored": False, "reason": f"no forecast made on {origin} to score yet", "alerts": []},
                      root)
    table = drift_table(scores[0], scores[1:], metric=cfg.metric, max_ratio=cfg.max_ratio,
                        max_abs_bias=cfg.max_abs_bias)
    if conn_factory is not None:
        from include.erp.staging import record_forecast_scores

        with conn_factory() as conn:
            record_forecast_scores(conn, run.dag_id, day, origin, table)
    return record(run, monitoring_summary(table, origin, fallback_on_drift=cfg.fallback_on_drift), root)


def _scores(ds: str, origins: list[dt.date], horizon_days: int, root: str | None) -> list:
    """The score per demand class of each origin's forecast (None where no forecast was made)."""
    from models.forecasting.monitoring import score_origin

    made = [o for o in origins if partition_exists("forecasts", "demand", o, root)]
    demand = read_partition("curated", "demand", ds, root) if made else None
    return [score_origin(read_partition("forecasts", "demand", o, root), read_partition("forecasts", "series", o, root),
                         demand, o, horizon_days) if o in made else None for o in origins]


def detect_anomalies(run: Run, *, root: str | None = None) -> dict[str, Any]:
    """Demand anomalies, supplier lead-time drift, margin leakage and return spikes for the date."""
    from include.decisions.anomalies import MARGIN_WINDOW_DAYS, anomaly_summary
    from include.decisions.anomalies import detect_anomalies as detect

    day = as_date(run.ds)
    start = day - dt.timedelta(days=MARGIN_WINDOW_DAYS - 1)
    sales = {name: read_range("curated", name, start, day, root) for name in ("pos_sales", "ecommerce_orders", "returns")}
    found = detect(read_partition("curated", "demand", run.ds, root), _received_po_lines(day, root)[0],
                   sales["pos_sales"], sales["ecommerce_orders"], sales["returns"],
                   read_partition("curated", "items", run.ds, root), day)
    for name, frame in found.items():
        write_partition(frame, "reports", name, run.ds, root)
    return record(run, anomaly_summary(found), root)


def _received_po_lines(day: dt.date, root: str | None):
    """Received PO lines of the past year and the PO snapshots they were read from."""
    from models.anomaly.supplier import received_po_lines

    start = day - dt.timedelta(days=PO_LOOKBACK_DAYS - 1)
    po_history = read_range("curated", "purchase_orders", start, day, root)
    receipts = read_range("curated", "receipts", start, day, root)
    return received_po_lines(receipts, po_history, read_partition("curated", "suppliers", day, root)), po_history


def propose_decisions(run: Run, *, root: str | None = None) -> dict[str, Any]:
    """Replenishment, rebalancing transfers and PO exceptions, explained."""
    from include.decisions.batch import INPUTS, batch_summary, propose_batch
    from models.anomaly.supplier import supplier_stats

    day = as_date(run.ds)
    received, po_history = _received_po_lines(day, root)
    proposals = propose_batch(
        read_partition("forecasts", "demand", run.ds, root), read_partition("forecasts", "series", run.ds, root),
        {name: read_partition("curated", name, run.ds, root) for name in INPUTS},
        supplier_stats(received, po_history, day), day,
        anomalies=read_partition("reports", "demand_anomalies", run.ds, root, missing_ok=True))
    write_nested_partition(proposals, "curated", "proposals", run.ds, root)
    return record(run, batch_summary(proposals), root)


def tier_proposals(run: Run, *, root: str | None = None) -> dict[str, Any]:
    """Give every proposal its risk tier from the governance policy."""
    from include.decisions.batch import tier_summary
    from include.governance.policy import load_policy
    from include.governance.policy import tier_proposals as tier

    tiered = tier(read_nested_partition("curated", "proposals", run.ds, root), load_policy())
    write_nested_partition(tiered, "curated", "proposals_tiered", run.ds, root)
    return record(run, tier_summary(tiered), root)


def stage_proposals(run: Run, *, conn_factory: ConnFactory, root: str | None = None) -> dict[str, Any]:
    """Stage the tiered proposals in the ERP (live) or record them as a replay (backfill)."""
    tiered = read_nested_partition("curated", "proposals_tiered", run.ds, root)
    if run.replay:
        write_nested_partition(tiered, "reports", "replay_proposals", run.ds, root)
        return record(run, {"mode": "replay", "staged_at": None, "recorded": int(len(tiered)), "staged": 0,
                            "pending": 0, "auto_approved": 0}, root)
    from include.erp.staging import stage_batch

    with conn_factory() as conn:
        result = stage_batch(conn, tiered, dag_id=run.dag_id, run_id=run.run_id, ds=run.ds)
    # Wall-clock on purpose: the approval deadline is operational time, not data time.
    return record(run, {"mode": "live", "staged_at": dt.datetime.now(dt.UTC).isoformat(), **result.as_summary()},
                  root)


def review_text(run: Run, *, conn_factory: ConnFactory) -> str:
    """The Required Action's text, or empty (no review needed) when nothing waits or the run is a replay."""
    if run.replay:
        return ""
    from include.erp.staging import pending_lines
    from include.governance.review import review_markdown

    with conn_factory() as conn:
        return review_markdown(pending_lines(conn, run.dag_id, run.ds), run.ds)


def apply_review(run: Run, response: dict[str, Any], *, conn_factory: ConnFactory, roles_of: Callable[..., list[str]],
                 root: str | None = None) -> dict[str, Any]:
    """Apply a Required Action answer as the user who gave it, with that user's roles.

    Args:
        response: the review task's output (``chosen_options``, ``responded_by_user``: id and name).
        roles_of: ``(user_id, user_name) -> Airflow roles`` (``include.governance.roles.airflow_roles_of``).
    """
    from include.governance.policy import load_policy
    from include.governance.review import apply_review as apply

    who, policy = response.get("responded_by_user") or {}, load_policy()
    user = who.get("name") or who.get("id") or "unknown"
    roles = policy.shelfwise_roles(roles_of(str(who.get("id") or user), who.get("name")))
    return record(run, apply(conn_factory, run.dag_id, run.ds, choice=response["chosen_options"][0], user=user,
                             roles=roles, policy=policy), root)


def release_approved(run: Run, *, conn_factory: ConnFactory, root: str | None = None) -> dict[str, Any]:
    """Release approved lines to the ERP (never in replay)."""
    if run.replay:
        return record(run, {"mode": "replay", "released": {}}, root)
    from include.erp.staging import release_approved as release

    with conn_factory() as conn:
        return record(run, {"mode": "live", "released": release(conn, run.dag_id, run.ds, run_id=run.run_id)}, root)


def report_kpis(run: Run, *, conn_factory: ConnFactory, root: str | None = None) -> dict[str, Any]:
    """KPIs of the date, written with their chart and the Markdown report."""
    from include.demand.forecasting import step_one_forecasts
    from include.governance.policy import load_policy
    from include.reporting.kpis import compute_kpis
    from include.reporting.publish import publish_report

    day = as_date(run.ds)
    earlier = [read_partition("forecasts", "demand", d, root) for d in (day - dt.timedelta(days=k) for k in range(1, 29))
               if partition_exists("forecasts", "demand", d, root)]
    demand, curated = read_partition("curated", "demand", run.ds, root), _curated_for_kpis(run.ds, root)
    kpis = compute_kpis(day, demand, curated["inventory_snapshot"], curated["items"], curated["ecommerce_orders"],
                        step_one_forecasts(earlier, day), _released_lines(run, conn_factory), curated["locations"],
                        load_policy().costs)
    return record(run, publish_report(kpis, demand, read_stage_summaries(run.dag_id, run.ds, root), run.ds, root,
                                      metrics=read_stage_metrics(run.dag_id, run.ds, root)), root)


def _curated_for_kpis(ds: str, root: str | None) -> dict[str, Any]:
    names = ("inventory_snapshot", "items", "locations")
    return {**{n: read_partition("curated", n, ds, root) for n in names},
            "ecommerce_orders": read_partition("curated", "ecommerce_orders", ds, root, missing_ok=True)}


def _released_lines(run: Run, conn_factory: ConnFactory):
    """The run's released lines (none in a replay)."""
    import pandas as pd

    if run.replay:
        return pd.DataFrame(columns=["doc_type", "to_location", "quantity"])
    from include.erp.staging import run_lines

    with conn_factory() as conn:
        lines = run_lines(conn, run.dag_id, run.ds)
    return lines[lines["status"] == "released"] if len(lines) else lines
