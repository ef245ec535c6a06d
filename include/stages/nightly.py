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
from include.stages.summaries import (
    degraded_entry,
    read_stage_metrics,
    read_stage_summaries,
    record,
    record_metrics,
    stale_sources,
)
from include.storage import (
    clear_partition,
    iter_range,
    iter_shards,
    list_shards,
    newest_partition,
    partition_exists,
    read_nested_partition,
    read_partition,
    read_range,
    read_shard,
    write_nested_partition,
    write_partition,
    write_shard,
)

ConnFactory = Callable[[], Any]

#: Days of purchase-order snapshots and receipts that supplier statistics look back over.
PO_LOOKBACK_DAYS = 365
#: How long before its promised date a late PO line may have been flagged, for the report's "flagged early".
PO_FLAG_LOOKBACK_DAYS = 60

#: The curated contracts each stage's outputs depend on, through earlier stages too: when one of them was a
#: stand-in (a degraded night), the stage's summary says so (``degraded``, ``stale_sources``).
FORECAST_READS = ("items", "promotions")
ANOMALY_READS = ("items", "pos_sales", "ecommerce_orders", "purchase_orders", "receipts", "suppliers", "returns")
DECISION_READS = ("inventory_snapshot", "items", "locations", "suppliers", "purchase_orders", "receipts",
                  "promotions")


def _record_reading(run: Run, summary: dict[str, Any], reads: tuple[str, ...] | None,
                    root: str | None) -> dict[str, Any]:
    """:func:`record` the summary, saying which of the contracts the stage ``reads`` were stand-ins."""
    return record(run, {**summary, **degraded_entry(read_stage_summaries(run.dag_id, run.ds, root), reads)}, root)


def prepare_erp_staging(run: Run, *, conn_factory: ConnFactory,
                        owner_lookup: Callable[[str], Any] | None = None) -> dict[str, Any]:
    """The first task: the application's connection works, and the schema is at the code's revision.

    Opens the application's connection first, so a broken one stops the run here, named. Then, when an
    owner connection is configured (``erp_staging_owner``, else ``ERP_STAGING_OWNER_URL``), migrates as
    the owner; otherwise only checks the schema is at head, failing with the command that migrates it.

    Args:
        owner_lookup: Airflow's connection lookup for ``erp_staging_owner``; the environment's
            ``AIRFLOW_CONN_ERP_STAGING_OWNER`` when omitted.
    """
    from include.erp import db, roles

    with conn_factory() as conn:
        owner = roles.resolve_owner_url(lookup=owner_lookup)
        if owner is None:
            return {"migrations_applied": [], "revision": roles.require_head(conn), "migrated_by": None}
    with db.connect(owner) as owner_conn:
        applied = db.migrate(owner_conn)
    return {"migrations_applied": applied, "revision": roles.head_revision(), "migrated_by": roles.OWNER_CONN_ID}


def ingest(run: Run, source: str, *, conn_factory: ConnFactory | None = None,
           root: str | None = None, contracts: dict | None = None) -> dict[str, Any]:
    """Ingest and validate one source (against ``contracts``, else the nightly's), record every contract's
    result, raise if an extract blocked."""
    from include.ingest.outcome import ingest_results, source_summary

    results, blocked = ingest_results(source, run.ds, root, contracts=contracts)
    if conn_factory is not None:
        from include.erp.staging import record_contract_runs

        with conn_factory() as conn:
            record_contract_runs(conn, [r.as_record() for r in results], dag_id=run.dag_id, run_id=run.run_id)
    summary = record(run, source_summary(source, results), root)
    if blocked is not None:
        raise blocked
    return summary


def build_demand(run: Run, *, root: str | None = None) -> dict[str, Any]:
    """Daily demand per series for the trailing window, stock-out days censored, written shard by shard."""
    from include.demand.history import demand_shards, demand_summary

    clear_partition("curated", "demand", run.ds, root)
    summary: dict[str, Any] = {}
    for part in demand_shards(run.ds, int(run.param("history_days")), int(run.param("shard_size")), root):
        write_shard(part.frame, "curated", "demand", run.ds, part.shard, part.n_shards, root)
        summary = {**demand_summary(part.frame, summary), "shards": part.n_shards}
    return record(run, summary, root)


#: What the forecast shards write, shard by shard, for the date.
SHARD_OUTPUTS = (("forecasts", "demand"), ("forecasts", "series"), ("reports", "demand_anomalies"))


def plan_forecast_shards(run: Run, *, root: str | None = None) -> list[dict[str, int]]:
    """The shards the demand was written in (one mapped forecast task each); clears their outputs."""
    for zone, dataset in SHARD_OUTPUTS:
        clear_partition(zone, dataset, run.ds, root)
    return list_shards("curated", "demand", run.ds, root)


def forecast_demand(run: Run, shard: int, n_shards: int, *, root: str | None = None) -> dict[str, Any]:
    """Forecast the series of one shard and score its day for demand anomalies; writes the shard's files."""
    from include.demand.forecasting import demand_anomalies, forecast_shard, shard_summary

    demand = read_shard("curated", "demand", run.ds, shard, n_shards, root)
    inputs = _forecast_inputs(run, n_shards, root)
    result = forecast_shard(demand, as_date(run.ds), int(run.param("horizon")), **inputs)
    anomalies = demand_anomalies(demand, as_date(run.ds))
    for (zone, dataset), frame in zip(SHARD_OUTPUTS, (result.forecasts, result.series, anomalies), strict=True):
        write_shard(frame, zone, dataset, run.ds, shard, n_shards, root)
    record_metrics(run, f"forecast_demand_shard={shard:04d}-of-{n_shards:04d}", root)
    return {**shard_summary(shard, result, inputs["challenger"]), "demand_anomalies": int(len(anomalies))}


def _forecast_inputs(run: Run, n_shards: int, root: str | None) -> dict[str, Any]:
    """What every shard's forecast shares: the challenger on its share of the night's budget, the
    promotions and prices of the horizon, and the demand classes in drift."""
    from include.governance.policy import load_policy
    from models.forecasting import Challenger

    drifting = (read_stage_summaries(run.dag_id, run.ds, root).get("monitor_forecasts") or {}).get(
        "fallback_segments") or {}
    return {"challenger": Challenger.from_policy(load_policy().challenger, n_shards=n_shards),
            "promotions": read_partition("curated", "promotions", run.ds, root, missing_ok=True),
            "items": read_partition("curated", "items", run.ds, root, missing_ok=True), "drifting": drifting}


def combine_forecasts(run: Run, shard_summaries: list[dict[str, Any]], *, root: str | None = None) -> dict[str, Any]:
    """The night's forecast in one summary (the shards' files together are ``forecasts/demand``)."""
    from include.demand.forecasting import combined_summary

    series = read_partition("forecasts", "series", run.ds, root, columns=["model", "fallback_reason"])
    return _record_reading(run, combined_summary(series, list(shard_summaries)), FORECAST_READS, root)


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
    """The score per demand class of each origin's forecast (None where no forecast was made).

    Today's demand is read one shard at a time; each origin's forecasts only for the days scored.
    """
    import pandas as pd

    from models.forecasting.monitoring import score_origin, segment_scores

    made = [o for o in origins if partition_exists("forecasts", "demand", o, root)]
    made_fc = {o: (read_partition("forecasts", "demand", o, root, columns=["unique_id", "ds", "step", "mean"],
                                  filters=[("step", "<=", horizon_days)]),
                   read_partition("forecasts", "series", o, root, columns=["unique_id", "demand_class"]))
               for o in made}
    per: dict[dt.date, list] = {o: [] for o in made}
    for demand in iter_shards("curated", "demand", ds, root, columns=["unique_id", "ds", "y", "censored"]):
        for o, (forecasts, series) in made_fc.items():
            mine = forecasts[forecasts["unique_id"].isin(demand["unique_id"].unique())]
            per[o].append(score_origin(mine, series, demand, o, horizon_days))
    return [segment_scores(pd.concat(per[o], ignore_index=True)) if o in made and per[o] else None
            for o in origins]


def detect_anomalies(run: Run, *, root: str | None = None) -> dict[str, Any]:
    """Supplier lead-time drift, margin leakage and return spikes for the date, beside the demand anomalies
    the forecast shards scored."""
    from include.decisions.anomalies import MARGIN_WINDOW_DAYS, anomaly_summary
    from include.decisions.anomalies import detect_anomalies as detect
    from include.finance.sales import daily_sales

    day, items = as_date(run.ds), read_partition("curated", "items", run.ds, root)
    start = day - dt.timedelta(days=MARGIN_WINDOW_DAYS - 1)
    days = {name: (t.to_pandas() for _, t in iter_range("curated", name, start, day, root, columns=columns))
            for name, columns in _SALES_COLUMNS.items()}
    found = detect(_received_po_lines(day, root)[0], daily_sales(days["pos_sales"], days["ecommerce_orders"], items),
                   read_range("curated", "returns", start, day, root), items, day)
    for name, frame in found.items():
        write_partition(frame, "reports", name, run.ds, root)
    demand_anomalies = read_partition("reports", "demand_anomalies", run.ds, root, missing_ok=True)
    return _record_reading(run, anomaly_summary({"demand_anomalies": demand_anomalies, **found}), ANOMALY_READS, root)


#: The columns of the sales extracts the margin and return detectors read.
_SALES_COLUMNS = {"pos_sales": ["sku", "business_date", "units_sold", "gross_sales", "discount_amount"],
                  "ecommerce_orders": ["sku", "ordered_at", "quantity", "unit_price", "status"]}


def _received_po_lines(day: dt.date, root: str | None):
    """Received PO lines of the past year, and the latest snapshot of every PO line of the year."""
    from models.anomaly.supplier import PO_HISTORY_COLUMNS, latest_po_lines, received_po_lines

    start = day - dt.timedelta(days=PO_LOOKBACK_DAYS - 1)
    po_history = latest_po_lines(t.to_pandas() for _, t in iter_range("curated", "purchase_orders", start, day, root,
                                                                      columns=PO_HISTORY_COLUMNS))
    receipts = read_range("curated", "receipts", start, day, root)
    return received_po_lines(receipts, po_history, read_partition("curated", "suppliers", day, root)), po_history


def propose_decisions(run: Run, *, conn_factory: ConnFactory | None = None, root: str | None = None
                      ) -> dict[str, Any]:
    """Replenishment, rebalancing transfers and PO exceptions, explained, one forecast shard at a time; the
    supplier lead times planned with, the calibration of the forecast error and, with ``conn_factory``, the
    returned units going back to a shelf (:func:`_decision_inputs`) in the summary."""
    from include.decisions.batch import batch_summary, night_safety_factors, propose_shards
    from include.decisions.calibration import calibration_summary
    from include.decisions.params import DecisionParams
    from include.governance.policy import load_policy

    day = as_date(run.ds)
    curated = _decision_inputs(day, conn_factory, root)
    stats = _planning_supplier_stats(day, curated["suppliers"], root)
    calibration, intervals = _nightly_calibration(day, curated, stats, root)
    params = DecisionParams.from_policy(load_policy().replenishment)
    params, service = _service_feedback(run, day, curated, params, root)
    factors = night_safety_factors(_forecast_shards(run, root), curated, stats, params=params, calibration=calibration)
    proposals = propose_shards(
        _forecast_shards(run, root), curated, stats, day,
        anomalies=read_partition("reports", "demand_anomalies", run.ds, root, missing_ok=True),
        alternates=alternate_suppliers(day, root), params=params, calibration=calibration, safety_factors=factors)
    write_nested_partition(proposals, "curated", "proposals", run.ds, root)
    return _record_reading(run, {**batch_summary(proposals), "supplier_lead_times": _lead_time_sources(stats),
                                 "calibration": calibration_summary(calibration, intervals), "service": service,
                                 "returns_to_stock": _returning_summary(curated)}, DECISION_READS, root)


def _decision_inputs(day: dt.date, conn_factory: ConnFactory | None, root: str | None) -> dict[str, Any]:
    """The curated partitions the decisions read and, with ERP staging, the returned units released to go back
    on a shelf that ``day``'s snapshot does not show yet, per location and SKU (:mod:`include.returns.stock`):
    they count in the inventory position."""
    from include.decisions.batch import INPUTS, RETURNS_TO_STOCK
    from include.erp.staging import released_dispositions
    from include.governance.policy import load_policy
    from include.returns.params import DEFAULT_DISPOSITION
    from include.returns.stock import (
        RESTOCKING_ACTIONS,
        first_return_day,
        returning_units,
        transfer_days_by_location,
    )

    curated = {name: read_partition("curated", name, day, root) for name in INPUTS}
    if conn_factory is not None:
        timing = {"lag_days": load_policy().returns.shelve_days, "transfer_days": transfer_days_by_location(
            curated["locations"], DEFAULT_DISPOSITION.transfer_days)}
        with conn_factory() as conn:
            released = released_dispositions(conn, RESTOCKING_ACTIONS, first_return_day(day, **timing))
        curated[RETURNS_TO_STOCK] = returning_units(released, day, **timing)
    return curated


def _returning_summary(curated: dict[str, Any]) -> dict[str, Any] | None:
    """Units and location x SKU cells of the returned stock the position counted (``None``: not read)."""
    from include.decisions.batch import RETURNS_TO_STOCK

    returning = curated.get(RETURNS_TO_STOCK)
    if returning is None:
        return None
    return {"units": float(returning["returning"].sum()), "locations_skus": int(len(returning))}


def _service_feedback(run: Run, day: dt.date, curated: dict[str, Any], params, root: str | None):  # noqa: ANN001, ANN202
    """The decision knobs with tonight's planned targets, and what the service ledger says of them.

    The last night's ledger (``reports/service_ledger``, at most ``max_age_days`` old) records the latest
    day of the demand history: per target, the units lost to stock-outs and the demand
    (:func:`include.decisions.service.day_of_service`, a series' target from its category and its demand
    class as the forecast classed it). The ledger is kept under tonight's date, so a re-run of the night
    records the same day once.
    """
    from dataclasses import replace
    from types import MappingProxyType

    import pandas as pd

    from include.decisions.service import TYPICAL_DAYS, ServiceFeedback, ServiceLedger, day_of_service
    from include.governance.policy import load_policy

    feedback = ServiceFeedback.from_policy(load_policy().replenishment.service_feedback)
    targets = params.targets()
    ledger = ServiceLedger.from_frame(
        newest_partition("reports", "service_ledger", day - dt.timedelta(days=1), feedback.max_age_days, root,
                         missing_ok=True), targets)
    demand_class = read_partition("forecasts", "series", run.ds, root, columns=["unique_id", "demand_class"]
                                  ).drop_duplicates("unique_id").set_index("unique_id")["demand_class"]
    category = curated["items"].set_index("sku")["category"] if "category" in curated["items"].columns else None
    since = dt.datetime.combine(day - dt.timedelta(days=TYPICAL_DAYS + 1), dt.time())
    measured = []
    for demand in iter_shards("curated", "demand", day, root, columns=["unique_id", "sku", "ds", "y", "censored"],
                              filters=[("ds", ">=", since)]):
        if not len(demand):
            continue
        keys = demand.drop_duplicates("unique_id")
        target = pd.Series(params.series_fill_rates(keys["sku"], keys["unique_id"].map(demand_class), category),
                           index=keys["unique_id"].to_numpy())
        measured.append(day_of_service(demand, demand["ds"].max(), target))
    found = (pd.concat(measured).groupby("target")[["lost", "demand"]].sum() if measured
             else pd.DataFrame(columns=["lost", "demand"], dtype=float))
    found = found.reindex(ledger.target).fillna(0.0)
    ledger = ledger.record(found["lost"].to_numpy(float), found["demand"].to_numpy(float), feedback).update(feedback)
    write_partition(ledger.to_frame(), "reports", "service_ledger", day, root)
    ratio = ledger.ratio(feedback)
    summary = {f"{t:g}": {"planned": round(float(e), 4), "lost_vs_planned": round(float(r), 3)}
               for t, e, r in zip(ledger.target, ledger.effective_target, ratio, strict=True)}
    return replace(params, planned_fill_rates=MappingProxyType(ledger.mapping())), summary


def _forecast_shards(run: Run, root: str | None):  # noqa: ANN202
    """``(forecasts, series)`` of each of the night's forecast shards, one shard held at a time."""
    return zip(iter_shards("forecasts", "demand", run.ds, root), iter_shards("forecasts", "series", run.ds, root),
               strict=True)


def _planning_supplier_stats(day: dt.date, suppliers, root: str | None):  # noqa: ANN001, ANN202
    """The past year's supplier statistics (``models.anomaly.supplier.supplier_stats``) with the disruption
    detector's planning lead time of each supplier beside them (``include.decisions.lead_times``)."""
    import pandas as pd

    from include.decisions.lead_times import with_planning_lead_times
    from include.procurement.disruption import RECEIPT_COLUMNS, planning_lead_times
    from models.anomaly.supplier import PO_HISTORY_COLUMNS, latest_po_lines, received_po_lines, supplier_stats

    start = day - dt.timedelta(days=PO_LOOKBACK_DAYS - 1)
    po_history = latest_po_lines(t.to_pandas() for _, t in iter_range(
        "curated", "purchase_orders", start, day, root, columns=[*PO_HISTORY_COLUMNS, "promised_date"]))
    receipts = read_range("curated", "receipts", start, day, root)
    stats = supplier_stats(received_po_lines(receipts, po_history, suppliers), po_history, day)
    if po_history.empty:
        return stats
    if receipts.empty:
        receipts = pd.DataFrame({c: pd.Series(dtype="datetime64[ns]" if c.endswith("date") else object)
                                 for c in RECEIPT_COLUMNS})
    return with_planning_lead_times(stats, planning_lead_times(po_history, receipts, day,
                                                               suppliers=suppliers["supplier_id"]))


def _lead_time_sources(stats) -> dict[str, Any]:  # noqa: ANN001
    """Suppliers planned with a predicted lead time, and those flagged as disrupted."""
    if "planned_lead_time" not in stats:
        return {"predicted": 0, "flagged": []}
    return {"predicted": int(stats["planned_lead_time"].notna().sum()),
            "flagged": sorted(stats.loc[stats["disruption_flagged"], "supplier_id"].astype(str))}


#: Past forecasts whose errors calibrate ``sigma_cum``: weekly origins, this many, at most this old.
CALIBRATION_ORIGINS, CALIBRATION_MAX_AGE_DAYS = 8, 60


def _nightly_calibration(day: dt.date, curated: dict[str, Any], stats, root: str | None):  # noqa: ANN001, ANN202
    """The calibration of the forecast error (``include.decisions.calibration``) from the forecasts stored at
    the last weekly origins whose protection interval has been sold without a stock-out, read one demand
    shard at a time; ``(None, intervals)`` when too few errors are known (a fresh deployment)."""
    import numpy as np
    import pandas as pd

    from include.decisions.calibration import MIN_ERRORS, calibrate, interval_errors
    from include.decisions.lead_times import series_lead_times

    origins = [o for o in (day - dt.timedelta(days=7 * k) for k in range(1, CALIBRATION_ORIGINS + 1))
               if (day - o).days <= CALIBRATION_MAX_AGE_DAYS and partition_exists("forecasts", "demand", o, root)]
    if not origins:
        return None, 0
    since = dt.datetime.combine(min(origins) + dt.timedelta(days=1), dt.time())
    errors = []
    for demand in iter_shards("curated", "demand", day, root, columns=["unique_id", "ds", "y", "censored"],
                              filters=[("ds", ">=", since)]):
        ids = pd.Index(demand["unique_id"].unique())
        lead = series_lead_times(ids, curated["items"], curated["locations"], curated["suppliers"], stats)
        longest = int(np.nanmax(lead.to_numpy(float), initial=1.0))
        for origin in origins:
            fc = read_partition("forecasts", "demand", origin, root, columns=["unique_id", "step", "mean", "sigma_cum"],
                                filters=[("step", "<=", longest), ("unique_id", "in", list(ids))])
            errors.append(interval_errors(fc, demand, origin, lead))
    found = pd.concat(errors, ignore_index=True) if errors else pd.DataFrame(columns=["z", "forecast", "sigma"])
    known = int(found["z"].notna().sum())
    if known < MIN_ERRORS:
        return None, known
    return calibrate(found["z"].to_numpy(float), found["forecast"].to_numpy(float), found["sigma"].to_numpy(float)), known


#: How old the newest supplier scorecards may be for the alternates' reliability (a weekly workflow, and a late week).
SCORECARD_MAX_AGE_DAYS = 14


def alternate_suppliers(day: dt.date, root: str | None = None):
    """Alternate suppliers per SKU, ranked with the newest supplier catalogue and scorecards of the
    ``supplier_scorecards`` workflow; ``None`` when it has not delivered a catalogue recently enough."""
    from include.governance.policy import load_policy
    from include.procurement.alternates import rank_alternates
    from include.stages.procurement import newest_catalogue

    catalogue = newest_catalogue(day, load_policy().procurement.catalogue_max_age_days, root)
    if catalogue is None or catalogue.empty:
        return None
    cards = newest_partition("curated", "supplier_scorecards", day, SCORECARD_MAX_AGE_DAYS, root, missing_ok=True)
    return rank_alternates(catalogue, read_partition("curated", "items", day, root), cards)


def tier_proposals(run: Run, *, root: str | None = None) -> dict[str, Any]:
    """Give every proposal its risk tier from the governance policy; a line that depends on a stand-in
    partition goes up a tier (``stale_input:<contract>``)."""
    from include.decisions.batch import tier_summary
    from include.governance.policy import load_policy
    from include.governance.policy import tier_proposals as tier

    stale = frozenset(stale_sources(read_stage_summaries(run.dag_id, run.ds, root), DECISION_READS))
    tiered = tier(read_nested_partition("curated", "proposals", run.ds, root), load_policy(), stale)
    write_nested_partition(tiered, "curated", "proposals_tiered", run.ds, root)
    return _record_reading(run, tier_summary(tiered), DECISION_READS, root)


def stage_proposals(run: Run, *, conn_factory: ConnFactory, root: str | None = None) -> dict[str, Any]:
    """Stage the tiered proposals in the ERP (live) or record them as a replay (backfill)."""
    tiered = read_nested_partition("curated", "proposals_tiered", run.ds, root)
    if run.replay:
        write_nested_partition(tiered, "reports", "replay_proposals", run.ds, root)
        return record(run, {"mode": "replay", "staged_at": None, "recorded": int(len(tiered)), "staged": 0,
                            "pending": 0, "auto_approved": 0}, root)
    from include.erp.staging import stage_batch

    with conn_factory() as conn:
        result = stage_batch(conn, tiered, dag_id=run.dag_id, run_id=run.run_id, ds=run.ds, fast_lane=True)
    # Wall-clock on purpose: the approval deadline is operational time, not data time.
    return record(run, {"mode": "live", "staged_at": dt.datetime.now(dt.UTC).isoformat(), **result.as_summary()},
                  root)


def review_text(run: Run, *, conn_factory: ConnFactory) -> str:
    """The Required Action's text, or empty (no review needed) when nothing waits or the run is a replay."""
    if run.replay:
        return ""
    from include.erp.staging import pending_lines
    from include.governance.policy import load_policy
    from include.governance.review import review_markdown

    with conn_factory() as conn:
        return review_markdown(pending_lines(conn, run.dag_id, run.ds), run.ds, currency=load_policy().currency)


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
    roles = policy.shelfwise_roles(roles_of(str(who.get("id") or user), who.get("name")), user)
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
    """KPIs of the date, recorded in the KPI history and written with their chart and the Markdown report,
    which set them against the nights before (``Trends``)."""
    from include.reporting.publish import publish_report

    demand, summaries = _kpi_demand(run.ds, root), read_stage_summaries(run.dag_id, run.ds, root)
    kpis = _night_kpis(run, demand, summaries, conn_factory, root)
    _record_kpi_history(run, kpis, conn_factory)
    return record(run, {**publish_report(kpis, demand, summaries, run.ds, root,
                                         metrics=read_stage_metrics(run.dag_id, run.ds, root),
                                         trends=_kpi_trends(run, kpis, conn_factory)),
                        **degraded_entry(summaries)}, root)


def _night_kpis(run: Run, demand, summaries: dict[str, Any], conn_factory: ConnFactory,  # noqa: ANN001
                root: str | None) -> dict[str, Any]:
    """The night's KPI document: :func:`include.reporting.kpis.compute_kpis` with the gross margin of the
    window's sales, the sections of the other workflows, the stock-out reduction and markdowns avoided
    against the ERP's rule (the week's replay), and how long after the day closed it was written."""
    from include.config import trading_hours
    from include.demand.forecasting import step_one_forecasts
    from include.governance.policy import load_policy
    from include.reporting.baseline_replay import weekly_kpis
    from include.reporting.kpis import (
        compute_kpis,
        night_state,
        reporting_cycle_hours,
        with_channel_fulfilment,
    )

    day, curated = as_date(run.ds), _curated_for_kpis(run.ds, root)
    earlier = [read_partition("forecasts", "demand", d, root, columns=["unique_id", "ds", "step", "mean"],
                              filters=[("step", "==", 1)])
               for d in (day - dt.timedelta(days=k) for k in range(1, KPI_WINDOW_DAYS + 1))
               if partition_exists("forecasts", "demand", d, root)]
    kpis = {**compute_kpis(day, demand, curated["inventory_snapshot"], curated["items"], curated["ecommerce_orders"],
                           step_one_forecasts(earlier, day), _released_lines(run, conn_factory), curated["locations"],
                           load_policy().costs, margin_cells=_margin_cells(day, curated, root)),
            **night_state(stale_sources(summaries)),
            "intraday": _intraday_of_day(run, conn_factory, root),
            "orchestration": _orchestration_of_day(run, conn_factory),
            "procurement": _procurement_of_night(run, conn_factory, root), **_returns_of_day(run.ds, root),
            **weekly_kpis(day, curated["items"], root)}
    if not run.replay:
        # Wall-clock on purpose: the cycle time is how long after the day closed its report came out. A
        # backfill's would measure only how late the backfill ran.
        kpis["reporting_cycle_hours"] = reporting_cycle_hours(day, dt.datetime.now(dt.UTC), trading_hours()[2])
    return with_channel_fulfilment(kpis)


def _margin_cells(day: dt.date, curated: dict[str, Any], root: str | None):  # noqa: ANN202
    """The KPI window's sales at shelf price, discounts, cost of sales and refunds per channel x region
    (:mod:`include.reporting.margin_kpis`), one day's extracts at a time."""
    import pandas as pd

    from include.reporting.margin_kpis import refund_cells, region_of, sales_cells, window_cells

    start, empty = day - dt.timedelta(days=KPI_WINDOW_DAYS - 1), pd.DataFrame()
    items, regions = curated["items"], region_of(curated["locations"])
    pos = (sales_cells(t.to_pandas(), empty, items, regions) for _, t in iter_range(
        "curated", "pos_sales", start, day, root, columns=["store_id", *_SALES_COLUMNS["pos_sales"]]))
    orders = (sales_cells(empty, t.to_pandas(), items, regions) for _, t in iter_range(
        "curated", "ecommerce_orders", start, day, root, columns=_SALES_COLUMNS["ecommerce_orders"]))
    refunds = read_range("curated", "returns", start, day, root, columns=["channel", "location_id", "refund_amount"])
    return window_cells([*pos, *orders, refund_cells(refunds, regions)])


#: The task of ``returns_routing`` whose summary holds the day's recovery value.
RETURNS_ROUTE_TASK = "route_returns"


def _returns_of_day(ds: str, root: str | None) -> dict[str, Any]:
    """``{"returns": {net_recovery, returns, refunds, ...}}`` (the KPIs of :mod:`include.reporting.returns_kpis`)
    from the latest summary ``returns_routing`` filed for the date; empty (a gap on the dashboard) when it has
    not routed the date yet."""
    route = read_stage_summaries("returns_routing", ds, root).get(RETURNS_ROUTE_TASK) or {}
    if route.get("net_recovery") is None:
        return {}
    return {"returns": {key: route.get(key) for key in ("net_recovery", "returns", "refunds", "recovery_rate",
                                                       "fraud_losses_prevented_est", "days_receipt_to_disposition",
                                                       "held_for_review", "return_rates", "return_rate")}}


def _kpi_trends(run: Run, kpis: dict[str, Any], conn_factory: ConnFactory):  # noqa: ANN202
    """The night's dashboard KPIs against the recorded nights of the last 28 days, with their targets."""
    from include.erp.kpis import kpi_history
    from include.reporting.dashboard import flatten_history, policy_targets
    from include.reporting.trends import SPANS, trend_table

    day = as_date(run.ds)
    with conn_factory() as conn:
        rows = kpi_history(conn, dag_id=run.dag_id, since=day - dt.timedelta(days=max(SPANS)),
                           until=day - dt.timedelta(days=1))
    return trend_table(kpis, flatten_history(reversed(rows)), policy_targets())


def _intraday_of_day(run: Run, conn_factory: ConnFactory, root: str | None) -> dict[str, Any]:
    """What ``retail_intraday`` sensed and moved during the day the night reports on."""
    import pandas as pd

    from include.intraday.moves import shipped_for_the_web_shop
    from include.reporting.intraday_kpis import intraday_kpis
    from include.stages.intraday import hourly_sales

    if not partition_exists("reports", "intraday_sensing", run.ds, root):
        return intraday_kpis(None, pd.DataFrame(), pd.DataFrame())
    lines = pd.DataFrame(columns=["action", "status", "quantity", "to_location", "sku", "explanation"])
    if not run.replay:
        from include.erp.staging import run_lines

        with conn_factory() as conn:
            lines = run_lines(conn, "retail_intraday", run.ds)
    # The web orders stores shipped under the day's allocations are the web shop's sales, as sensing read them.
    sales = shipped_for_the_web_shop(hourly_sales(run.ds, 23, root), lines)
    return intraday_kpis(read_partition("reports", "intraday_sensing", run.ds, root), lines, sales)


def _orchestration_of_day(run: Run, conn_factory: ConnFactory) -> dict[str, Any]:
    """What ``order_orchestration`` routed and released during the day the night reports on."""
    from include.reporting.orchestration_kpis import orchestration_kpis

    if run.replay:
        return orchestration_kpis(None)
    from include.erp.staging import run_lines

    with conn_factory() as conn:
        return orchestration_kpis(run_lines(conn, "order_orchestration", run.ds))


def _procurement_of_night(run: Run, conn_factory: ConnFactory, root: str | None) -> dict[str, Any]:
    """Procurement cycle time, the supplier OTIF trend and how early late POs were flagged (none in a replay)."""
    from include.reporting.procurement_kpis import (
        LATE_WINDOW_DAYS,
        TREND_WEEKS,
        late_po_lines,
        procurement_kpis,
    )

    if run.replay:
        return {}
    from include.erp.scorecards import scorecard_trend
    from include.erp.staging import first_staged, run_lines

    day = as_date(run.ds)
    start = day - dt.timedelta(days=LATE_WINDOW_DAYS + PO_FLAG_LOOKBACK_DAYS)
    purchase_orders = read_range("curated", "purchase_orders", start, day, root,
                                 columns=["po_id", "po_line", "promised_date"])
    late = late_po_lines(purchase_orders, read_range("curated", "receipts", start, day, root), day)
    with conn_factory() as conn:
        return procurement_kpis(run_lines(conn, run.dag_id, run.ds), scorecard_trend(conn, day, weeks=TREND_WEEKS + 1),
                                late, first_staged(conn, run.dag_id, "po_exception", start))


def _record_kpi_history(run: Run, kpis: dict[str, Any], conn_factory: ConnFactory) -> None:
    """The night's row of ``ops.kpi_history``; a replay's KPIs (nothing released) would overwrite the night
    that really ran, so a replay records none."""
    if run.replay:
        return
    from include.erp.staging import record_kpis

    with conn_factory() as conn:
        record_kpis(conn, run.dag_id, as_date(run.ds), kpis)


#: Days of demand and earlier forecasts the KPIs and their trend chart look back over.
KPI_WINDOW_DAYS = 28


def _kpi_demand(ds: str, root: str | None):
    """The last :data:`KPI_WINDOW_DAYS` days of demand, only the columns the KPIs read."""
    since = dt.datetime.combine(as_date(ds) - dt.timedelta(days=KPI_WINDOW_DAYS - 1), dt.time())
    return read_partition("curated", "demand", ds, root,
                          columns=["unique_id", "location_id", "sku", "channel", "ds", "y", "censored"],
                          filters=[("ds", ">=", since)])


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
