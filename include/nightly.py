"""The stages of ``retail_nightly`` as plain functions: one per task, no Airflow inside.

Each stage reads what exists as of the logical date ``ds`` under the data root, writes its outputs
for ``ds`` (replacing an earlier run's), and returns a small JSON-safe summary that becomes the task's
XCom and is also written to ``reports/stages/ds=<ds>/<stage>.json`` for the run summary.
In replay mode (backfills) nothing is staged for planners or released to the ERP: the proposals that
would have been made are written to ``reports/replay_proposals`` instead.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
import zlib
from typing import Any

import fsspec
import numpy as np
import pandas as pd

from include.config import as_date, data_root, partition_path
from include.storage import partition_exists, read_partition, read_range, write_partition

log = logging.getLogger(__name__)

DEFAULT_HISTORY_DAYS = 365
DEFAULT_HORIZON = 28


def write_stage_summary(stage: str, ds: str | dt.date, summary: dict[str, Any], root: str | None = None) -> None:
    """Record a stage's summary next to the run's reports."""
    path = f"{partition_path('reports', 'stages', ds, root)}/{stage}.json"
    fs, _, (local,) = fsspec.get_fs_token_paths(path)
    fs.makedirs(local.rsplit("/", 1)[0], exist_ok=True)
    with fs.open(local, "w") as fh:
        json.dump(summary, fh, indent=2, default=str)


def read_stage_summaries(ds: str | dt.date, root: str | None = None) -> dict[str, Any]:
    """Every stage summary written for ``ds``, keyed by stage."""
    folder = partition_path("reports", "stages", ds, root)
    fs, _, (local,) = fsspec.get_fs_token_paths(folder)
    if not fs.exists(local):
        return {}
    out = {}
    for path in sorted(fs.ls(local, detail=False)):
        if path.endswith(".json"):
            with fs.open(path, "r") as fh:
                out[path.rsplit("/", 1)[-1][:-5]] = json.load(fh)
    return out


def prepare_erp_staging(url: str | None = None) -> dict[str, Any]:
    """Apply pending ERP staging migrations."""
    from include.erp import db

    with db.connect(url) as conn:
        applied = db.migrate(conn)
    return {"migrations_applied": applied}


def ingest(source: str, ds: str, *, dag_id: str | None = None, run_id: str | None = None,
           conn_factory=None, root: str | None = None) -> dict[str, Any]:
    """Ingest + validate one source, record the results, raise if an extract is blocked."""
    from include.contracts.validate import ContractViolation
    from include.ingest.pipeline import ingest_source

    blocked: ContractViolation | None = None
    try:
        results = ingest_source(source, ds, root=root)
    except ContractViolation as exc:
        blocked, results = exc, exc.all_results
    if conn_factory is not None:
        from include.erp.staging import record_contract_runs

        with conn_factory() as conn:
            record_contract_runs(conn, [r.as_record() for r in results], dag_id=dag_id, run_id=run_id)
    summary = {
        "source": source,
        "contracts": {r.contract_id: {"outcome": r.outcome, "rows_in": r.rows_in, "rows_passed": r.rows_passed,
                                      "rows_quarantined": r.rows_quarantined} for r in results},
        "rows_in": sum(r.rows_in for r in results),
        "rows_passed": sum(r.rows_passed for r in results),
        "rows_quarantined": sum(r.rows_quarantined for r in results),
    }
    write_stage_summary(f"ingest_{source}", ds, summary, root)
    if blocked is not None:
        raise blocked
    return summary


def build_demand(ds: str, *, history_days: int = DEFAULT_HISTORY_DAYS, root: str | None = None) -> dict[str, Any]:
    """Daily demand per series for the trailing window, with stock-out days censored."""
    from include.demand.history import load_demand

    demand = load_demand(ds, history_days, root)
    if demand.empty:
        raise ValueError(f"no curated sales found for the {history_days} days up to {ds}: load history first "
                         "(python -m include.ingest history --start YYYY-MM-DD --end YYYY-MM-DD)")
    write_partition(demand, "curated", "demand", ds, root)
    summary = {"series": int(demand["unique_id"].nunique()), "rows": int(len(demand)),
               "censored_days": int(demand["censored"].sum()), "units": float(demand["y"].sum())}
    write_stage_summary("build_demand", ds, summary, root)
    return summary


def shard_of(unique_ids: pd.Series, n_shards: int) -> np.ndarray:
    """Stable shard number of each series (the same series lands in the same shard every night)."""
    return np.array([zlib.crc32(u.encode()) % n_shards for u in unique_ids], dtype=np.int64)


def plan_forecast_shards(ds: str, *, shard_size: int = 5000, root: str | None = None) -> list[dict[str, int]]:
    """How many shards the forecast fans out to; one mapped task per shard."""
    n_series = int(read_partition("curated", "demand", ds, root, columns=["unique_id"])["unique_id"].nunique())
    n_shards = max(1, -(-n_series // max(shard_size, 1)))
    return [{"shard": i, "n_shards": n_shards} for i in range(n_shards)]


def forecast_shard(ds: str, shard: int, n_shards: int, *, horizon: int = DEFAULT_HORIZON,
                   root: str | None = None, policy_path: str | None = None) -> dict[str, Any]:
    """Forecast the series of one shard; one bad series falls back, never fails the shard.

    The vectorised selection forecasts every series; the policy's challenger (prophet with promotion,
    price and event regressors) then takes the valuable series where it wins the backtest. The
    horizon's regressors are the promotions published by ``ds`` and the item master's list prices.
    """
    from include.demand.regressors import REGRESSORS, known_regressors
    from include.governance.policy import load_policy
    from models.forecasting import Challenger, forecast
    from models.forecasting.heavy import challenger_counts

    demand = read_partition("curated", "demand", ds, root)
    ids = demand["unique_id"].drop_duplicates()
    mine = set(ids[shard_of(ids, n_shards) == shard])
    rows = demand[demand["unique_id"].isin(mine)]
    # Partitions written before regressors existed have none: the challenger then sees only y.
    regressors = [c for c in REGRESSORS if c in rows.columns]
    known = [*regressors, "event"] if "event" in rows.columns else regressors
    history = rows[["unique_id", "ds", "y", "censored", *known]]
    day = as_date(ds)
    keys = rows[["unique_id", "location_id", "sku"]].drop_duplicates("unique_id")
    future = known_regressors(keys, pd.date_range(day + dt.timedelta(days=1), periods=horizon, freq="D"),
                              read_partition("curated", "promotions", ds, root, missing_ok=True),
                              read_partition("curated", "items", ds, root, missing_ok=True))
    challenger = Challenger.from_policy((load_policy(policy_path) if policy_path else load_policy()).challenger)
    result = forecast(history, horizon, regressors=regressors, future=future[["unique_id", "ds", *known]],
                      challenger=challenger)
    drifting = (read_stage_summaries(ds, root).get("monitor_forecasts") or {}).get("fallback_segments") or {}
    if drifting:
        result = fall_back_for_drift(result, history, drifting)
    write_partition(result.forecasts, "forecasts", f"shards/shard={shard:04d}-of-{n_shards:04d}", ds, root)
    write_partition(result.series, "forecasts", f"series_shards/shard={shard:04d}-of-{n_shards:04d}", ds, root)
    fallback = int(result.series["fallback_reason"].notna().sum())
    return {"shard": shard, "series": int(len(result.series)), "fallback": fallback,
            "models": result.series["model"].value_counts().to_dict(),
            "challenger": None if challenger is None else {
                "model": challenger.model, **challenger_counts(result.series, challenger.model),
                "warnings": result.notes, "decision": result.decision}}


def fall_back_for_drift(result, history: pd.DataFrame, drifting: dict[str, str], window: int = 28):
    """Forecast the series of drifting demand classes with the deterministic rule, and say so.

    The rule is the mean of the last ``window`` uncensored days, flat over the horizon; each quantile
    keeps the model's spread above its mean, so safety stock still reflects the series' uncertainty.
    """
    series = result.series.copy()
    hit = series["demand_class"].astype(str).isin(drifting)
    if not hit.any():
        return result
    ids = set(series.loc[hit, "unique_id"])
    recent = history[history["unique_id"].isin(ids) & ~history["censored"].astype(bool)]
    recent = recent[recent["ds"] > recent["ds"].max() - pd.Timedelta(days=window)] if len(recent) else recent
    level = recent.groupby("unique_id")["y"].mean() if len(recent) else pd.Series(dtype=float)
    fc = result.forecasts.copy()
    rows = fc["unique_id"].isin(ids)
    new_mean = fc.loc[rows, "unique_id"].map(level).fillna(0.0).clip(lower=0)
    for col in [c for c in fc.columns if c.startswith("q")]:
        fc.loc[rows, col] = (new_mean + (fc.loc[rows, col] - fc.loc[rows, "mean"]).clip(lower=0)).to_numpy()
    fc.loc[rows, "mean"] = new_mean.to_numpy()
    series.loc[hit, "model"] = "fallback_moving_average"
    series.loc[hit, "fallback_reason"] = [f"demand class {c} in forecast drift: {drifting[c]}"
                                          for c in series.loc[hit, "demand_class"].astype(str)]
    log.warning("forecast drift: %d series of %s use the fallback rule", len(ids), sorted(drifting))
    return dataclasses.replace(result, forecasts=fc, series=series)


def combine_forecasts(ds: str, shard_summaries: list[dict[str, Any]], *, root: str | None = None) -> dict[str, Any]:
    """Gather the shards into ``forecasts/demand`` and ``forecasts/series`` for the date."""
    n = max(s["shard"] for s in shard_summaries) + 1 if shard_summaries else 0
    fcs, meta = [], []
    for s in range(n):
        fcs.append(read_partition("forecasts", f"shards/shard={s:04d}-of-{n:04d}", ds, root))
        meta.append(read_partition("forecasts", f"series_shards/shard={s:04d}-of-{n:04d}", ds, root))
    forecasts = pd.concat(fcs, ignore_index=True) if fcs else pd.DataFrame()
    series = pd.concat(meta, ignore_index=True) if meta else pd.DataFrame()
    write_partition(forecasts, "forecasts", "demand", ds, root)
    write_partition(series, "forecasts", "series", ds, root)
    challengers = [s["challenger"] for s in shard_summaries if s.get("challenger")]
    summary = {
        "series": int(len(series)), "shards": n,
        "fallback_series": int(series["fallback_reason"].notna().sum()) if len(series) else 0,
        "models": series["model"].value_counts().to_dict() if len(series) else {},
        "challenger": None if not challengers else {
            "model": challengers[0]["model"], "tried": sum(c["tried"] for c in challengers),
            "taken": sum(c["taken"] for c in challengers),
            "warnings": sorted({w for c in challengers for w in c["warnings"]}),
            "decisions": [c["decision"] for c in challengers if c.get("decision")]},
    }
    if len(series) and summary["fallback_series"] == len(series):
        log.warning("every series fell back to the deterministic rule: check the model stage")
    for warning in (summary["challenger"] or {}).get("warnings", []):
        log.warning("forecast challenger: %s", warning)
    write_stage_summary("forecast", ds, summary, root)
    return summary


def detect_anomalies(ds: str, *, root: str | None = None) -> dict[str, Any]:
    """Demand anomalies and supplier lead-time drift for the date.

    Today's demand is scored against a one-step forecast made from the history up to yesterday, so
    every night (the first one included) has an expectation to compare with, made by the same models.
    """
    from models.anomaly import detect_demand_anomalies, detect_lead_time_drift
    from models.forecasting import forecast

    day = as_date(ds)
    demand = read_partition("curated", "demand", ds, root)
    today = pd.Timestamp(day)
    before = demand[demand["ds"] < today][["unique_id", "ds", "y", "censored"]]
    actual = demand[(demand["ds"] == today) & ~demand["censored"]][["unique_id", "ds", "y"]]
    demand_anoms = pd.DataFrame(columns=["unique_id", "ds", "anomaly_type", "severity", "explanation"])
    if len(before) and len(actual):
        expected = forecast(before, 1, quantiles=(0.05, 0.5, 0.8, 0.95)).forecasts
        expected = expected.assign(ds=pd.to_datetime(expected["ds"]))
        demand_anoms = detect_demand_anomalies(actual, expected)
    receipts = _received_po_lines(day, root)
    drift = detect_lead_time_drift(receipts, as_of=day) if len(receipts) else pd.DataFrame()
    margin, return_spikes = _margin_and_return_anomalies(day, root)
    write_partition(demand_anoms, "reports", "demand_anomalies", ds, root)
    write_partition(drift, "reports", "supplier_anomalies", ds, root)
    write_partition(margin, "reports", "margin_anomalies", ds, root)
    write_partition(return_spikes, "reports", "return_anomalies", ds, root)
    summary = {"demand_anomalies": int(len(demand_anoms)), "supplier_anomalies": int(len(drift)),
               "margin_anomalies": int(len(margin)), "return_anomalies": int(len(return_spikes)),
               "by_type": demand_anoms["anomaly_type"].value_counts().to_dict() if len(demand_anoms) else {}}
    write_stage_summary("detect_anomalies", ds, summary, root)
    return summary


def _margin_and_return_anomalies(day: dt.date, root: str | None, days: int = 118) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Margin leakage and return-rate spikes per SKU x channel, from the last ``days`` of curated data."""
    from models.anomaly import detect_margin_leakage, detect_return_spikes

    start = day - dt.timedelta(days=days - 1)
    items = read_partition("curated", "items", day, root)
    pos = read_range("curated", "pos_sales", start, day, root)
    orders = read_range("curated", "ecommerce_orders", start, day, root)
    returns = read_range("curated", "returns", start, day, root)
    parts = []
    if len(pos):
        # POS gross sales are at the price paid: shelf-price revenue adds the discount back.
        parts.append(pd.DataFrame({
            "channel": "store", "sku": pos["sku"], "date": pd.to_datetime(pos["business_date"]),
            "units": pos["units_sold"].astype(float),
            "gross_sales": (pos["gross_sales"] + pos["discount_amount"]).astype(float),
            "discount_amount": pos["discount_amount"].astype(float)}))
    if len(orders):
        o = orders[orders["status"].astype(str) != "cancelled"]
        shelf = o["sku"].map(items.set_index("sku")["unit_price"]).astype(float)
        qty = o["quantity"].astype(float)
        parts.append(pd.DataFrame({
            "channel": "ecommerce", "sku": o["sku"], "date": pd.to_datetime(o["ordered_at"]).dt.normalize(),
            "units": qty, "gross_sales": qty * shelf,
            "discount_amount": (qty * (shelf - o["unit_price"].astype(float))).clip(lower=0)}))
    if not parts:
        return pd.DataFrame(), pd.DataFrame()
    sales = pd.concat(parts, ignore_index=True).dropna(subset=["gross_sales"])
    rets = (returns.rename(columns={"returned_at": "date"})[["sku", "channel", "date", "quantity", "refund_amount",
                                                            "reason"]]
            if len(returns) else pd.DataFrame(columns=["sku", "channel", "date", "quantity", "refund_amount", "reason"]))
    margin = detect_margin_leakage(sales, rets, items[["sku", "unit_price", "unit_cost"]], as_of=day)
    spikes = detect_return_spikes(sales, rets, as_of=day)
    return margin, spikes


def _po_history(day: dt.date, root: str | None, lookback_days: int = 365) -> pd.DataFrame:
    """Daily purchase-order snapshots of the last year, up to and including ``day``, oldest first."""
    return read_range("curated", "purchase_orders", day - dt.timedelta(days=lookback_days - 1), day, root)


def _received_po_lines(day: dt.date, root: str | None, po_history: pd.DataFrame | None = None,
                       lookback_days: int = 365) -> pd.DataFrame:
    """Received PO lines of the last year, with the supplier's promised lead time.

    Args:
        po_history: :func:`_po_history` when the caller already read it.
    """
    receipts = read_range("curated", "receipts", day - dt.timedelta(days=lookback_days - 1), day, root)
    history = _po_history(day, root, lookback_days) if po_history is None else po_history
    if receipts.empty or history.empty:
        return pd.DataFrame()
    # Snapshots are read oldest first: the last one of a line is its latest state.
    po = history.drop_duplicates(["po_id", "po_line"], keep="last")
    first = receipts.groupby(["po_id", "po_line"], as_index=False)["received_date"].min()
    merged = first.merge(po[["po_id", "po_line", "supplier_id", "order_date"]], on=["po_id", "po_line"])
    suppliers = read_partition("curated", "suppliers", day, root)
    merged["promised_lead_time_days"] = merged["supplier_id"].map(
        suppliers.set_index("supplier_id")["promised_lead_time_days"])
    return merged.dropna(subset=["promised_lead_time_days"])


def monitor_forecasts(ds: str, *, dag_id: str, conn_factory=None, root: str | None = None,
                      policy_path: str | None = None) -> dict[str, Any]:
    """Score the forecast made ``horizon_days`` ago against what happened, per demand class.

    The recent score is compared with the same segment's score over the three previous weekly origins;
    a segment whose error grew past the policy's ratio, or whose bias left its band, is a drift alert.
    Scores are stored in ``ops.forecast_scores`` and the alerts appear in the KPI report.
    """
    from include.governance.policy import load_policy
    from models.forecasting.monitoring import flag_drift, score_forecasts

    cfg = (load_policy(policy_path) if policy_path else load_policy()).monitoring
    day, h = as_date(ds), cfg["horizon_days"]
    origin = day - dt.timedelta(days=h)
    if not partition_exists("forecasts", "demand", origin, root):
        summary = {"scored": False, "reason": f"no forecast made on {origin} to score yet", "alerts": []}
        write_stage_summary("monitor_forecasts", ds, summary, root)
        return summary
    demand = read_partition("curated", "demand", ds, root)
    actuals = demand[~demand["censored"]][["unique_id", "ds", "y"]]

    def score(origin: dt.date) -> pd.DataFrame | None:
        if not partition_exists("forecasts", "demand", origin, root):
            return None
        fc = read_partition("forecasts", "demand", origin, root)
        fc = fc[fc["step"] <= h].assign(ds=lambda f: pd.to_datetime(f["ds"]))
        meta = read_partition("forecasts", "series", origin, root)[["unique_id", "demand_class"]]
        history = demand[demand["ds"] <= pd.Timestamp(origin)][["unique_id", "ds", "y"]]
        return score_forecasts(fc.merge(meta, on="unique_id"), actuals, history, segment_col="demand_class")

    recent = score(origin)
    if recent is None or recent.empty:
        summary = {"scored": False, "reason": f"no forecast made on {origin} to score yet", "alerts": []}
        write_stage_summary("monitor_forecasts", ds, summary, root)
        return summary
    earlier = [s for s in (score(origin - dt.timedelta(days=7 * k)) for k in (1, 2, 3)) if s is not None and len(s)]
    baseline = (pd.concat(earlier).groupby("segment", as_index=False)[["mase", "rmsse"]].mean() if earlier
                else recent.iloc[0:0][["segment", "mase", "rmsse"]])
    drift = flag_drift(recent, baseline, metric=cfg["metric"], max_ratio=cfg["max_ratio"],
                       max_abs_bias=cfg["max_abs_bias"])
    table = recent.merge(drift[["segment", "baseline", "ratio", "drift", "reason"]], on="segment", how="left")
    if conn_factory is not None:
        with conn_factory() as conn, conn.transaction():
            for r in table.itertuples():
                conn.execute(
                    "INSERT INTO ops.forecast_scores (dag_id, ds, origin, segment, n_series, n_points, mase, rmsse,"
                    " bias, baseline, ratio, drift, reason) VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s)"
                    " ON CONFLICT (dag_id, ds, segment) DO UPDATE SET origin=EXCLUDED.origin,"
                    " n_series=EXCLUDED.n_series, n_points=EXCLUDED.n_points, mase=EXCLUDED.mase,"
                    " rmsse=EXCLUDED.rmsse, bias=EXCLUDED.bias, baseline=EXCLUDED.baseline, ratio=EXCLUDED.ratio,"
                    " drift=EXCLUDED.drift, reason=EXCLUDED.reason, recorded_at=now()",
                    (dag_id, day, origin, r.segment, int(r.n_series), int(r.n_points), _num(r.mase), _num(r.rmsse),
                     _num(r.bias), _num(r.baseline), _num(r.ratio), bool(r.drift), r.reason))
    alerts = [f"{r.segment}: {r.reason}" for r in table.itertuples() if r.drift]
    drifting = {r.segment: r.reason for r in table.itertuples() if r.drift} if cfg["fallback_on_drift"] else {}
    if alerts:
        log.warning("forecast drift: %s", "; ".join(alerts))
    summary = {"scored": True, "origin": origin.isoformat(), "segments": int(len(table)),
               "mase": {r.segment: _num(r.mase) for r in table.itertuples()}, "alerts": alerts,
               "fallback_segments": drifting}
    write_stage_summary("monitor_forecasts", ds, summary, root)
    return summary


def _num(value: Any) -> float | None:
    return None if value is None or pd.isna(value) else float(value)


def propose(ds: str, *, root: str | None = None) -> dict[str, Any]:
    """Replenishment, rebalancing transfers and PO exceptions, explained."""
    from include.decisions.propose import propose_po_exceptions, propose_rebalancing, propose_replenishment
    from models.anomaly import supplier_lead_time_stats

    day = as_date(ds)
    forecasts = read_partition("forecasts", "demand", ds, root)
    series = read_partition("forecasts", "series", ds, root)
    inventory = read_partition("curated", "inventory_snapshot", ds, root)
    pos = read_partition("curated", "purchase_orders", ds, root)
    open_pos = pos[pos["status"].isin(["open", "partial"])] if len(pos) else pos
    items = read_partition("curated", "items", ds, root)
    locations = read_partition("curated", "locations", ds, root)
    suppliers = read_partition("curated", "suppliers", ds, root)
    po_history = _po_history(day, root)
    received = _received_po_lines(day, root, po_history)
    stats = supplier_lead_time_stats(received, as_of=day) if len(received) else pd.DataFrame(
        columns=["supplier_id", "mean_lead_time", "std_lead_time", "late_rate", "n"])
    stats = _with_fill_rate(stats, po_history)
    anomalies = read_partition("reports", "demand_anomalies", ds, root, missing_ok=True)
    parts = [
        propose_replenishment(forecasts, series, inventory, open_pos, items, locations, suppliers, stats, day,
                              anomalies=anomalies),
        propose_rebalancing(forecasts, inventory, items, locations, day),
        propose_po_exceptions(open_pos, stats, suppliers, inventory, series, locations, day),
    ]
    proposals = pd.concat([p for p in parts if len(p)], ignore_index=True) if any(len(p) for p in parts) \
        else parts[0]
    _write_json_frame(proposals, "curated", "proposals", ds, root)
    summary = {"proposals": int(len(proposals)),
               "by_type": proposals["doc_type"].value_counts().to_dict() if len(proposals) else {}}
    write_stage_summary("propose", ds, summary, root)
    return summary


def _with_fill_rate(stats: pd.DataFrame, po_history: pd.DataFrame) -> pd.DataFrame:
    """Add each supplier's fill rate: units received over units ordered on its closed PO lines."""
    if po_history.empty:
        return stats
    last = po_history.sort_values("_ds", kind="stable").drop_duplicates(["po_id", "po_line"], keep="last")
    # A line the supplier cancelled delivered nothing of what was ordered.
    closed = last[last["status"].isin(["received", "cancelled"])]
    if closed.empty:
        return stats
    sums = closed.groupby("supplier_id")[["quantity_received", "quantity_ordered"]].sum().astype(float)
    fill = (sums["quantity_received"] / sums["quantity_ordered"]).clip(upper=1.0).rename("fill_rate")
    if stats.empty:
        return fill.reset_index()
    return stats.merge(fill.reset_index(), on="supplier_id", how="left")


def _write_json_frame(frame: pd.DataFrame, zone: str, dataset: str, ds: str, root: str | None) -> None:
    """Parquet cannot hold free-form dicts across rows: keep nested fields as JSON text."""
    out = frame.copy()
    for col in ("explanation", "tier_reasons"):
        if col in out.columns:
            out[col] = out[col].map(lambda v: json.dumps(v, default=str))
    write_partition(out, zone, dataset, ds, root)


def _read_json_frame(zone: str, dataset: str, ds: str, root: str | None) -> pd.DataFrame:
    frame = read_partition(zone, dataset, ds, root)
    for col in ("explanation", "tier_reasons"):
        if col in frame.columns:
            frame[col] = frame[col].map(json.loads)
    return frame


def tier(ds: str, *, policy_path: str | None = None, root: str | None = None) -> dict[str, Any]:
    """Give every proposal its risk tier from the governance policy."""
    from include.governance.policy import load_policy, tier_proposals

    policy = load_policy(policy_path) if policy_path else load_policy()
    proposals = _read_json_frame("curated", "proposals", ds, root)
    tiered = tier_proposals(proposals, policy) if len(proposals) else proposals.assign(
        risk_tier=pd.Series(dtype=str), tier_reasons=pd.Series(dtype=object), auto_approve=pd.Series(dtype=bool))
    _write_json_frame(tiered, "curated", "proposals_tiered", ds, root)
    counts = tiered.groupby(["doc_type", "risk_tier"]).size() if len(tiered) else pd.Series(dtype=int)
    summary = {"by_type_and_tier": {f"{d}/{t}": int(n) for (d, t), n in counts.items()},
               "auto_approve": int(tiered["auto_approve"].sum()) if len(tiered) else 0,
               "needs_planner": int((~tiered["auto_approve"]).sum()) if len(tiered) else 0}
    write_stage_summary("tier", ds, summary, root)
    return summary


def stage(ds: str, *, dag_id: str, run_id: str, replay: bool, conn_factory, root: str | None = None) -> dict[str, Any]:
    """Stage the tiered proposals in the ERP (live) or record them as a replay (backfill)."""
    tiered = _read_json_frame("curated", "proposals_tiered", ds, root)
    if replay:
        _write_json_frame(tiered, "reports", "replay_proposals", ds, root)
        summary = {"mode": "replay", "staged_at": None, "recorded": int(len(tiered)), "staged": 0, "pending": 0,
                   "auto_approved": 0}
    else:
        from include.erp.staging import stage_batch

        with conn_factory() as conn:
            result = stage_batch(conn, tiered, dag_id=dag_id, run_id=run_id, ds=ds)
        # Wall-clock on purpose: the approval deadline is operational time, not data time.
        summary = {"mode": "live", "staged_at": dt.datetime.now(dt.UTC).isoformat(),
                   "inserted": result.inserted, "updated": result.updated,
                   "kept_decided": result.unchanged_decided, "withdrawn": result.withdrawn,
                   "auto_approved": result.auto_approved, "pending": result.pending}
    write_stage_summary("stage", ds, summary, root)
    return summary


def is_replay(run_type: object, mode: str | None) -> bool:
    """A backfill run, or a run asked to replay, computes everything but stages nothing for planners."""
    value = getattr(run_type, "value", run_type)
    return str(value) == "backfill" or mode == "replay"


REVIEW_APPROVE_ALL = "Approve all pending"
REVIEW_REJECT_ALL = "Reject all pending"
REVIEW_DONE = "I have reviewed the lines"
REVIEW_OPTIONS = [REVIEW_APPROVE_ALL, REVIEW_REJECT_ALL, REVIEW_DONE]


def review_summary(ds: str, *, dag_id: str, conn_factory, top: int = 10) -> str:
    """Markdown summary of the lines waiting for a planner; empty when none waits.

    It is the body of the run's Required Action in the Airflow UI: counts and value by document type
    and tier, the largest lines with their reason, and the anomalies behind them.
    """
    with conn_factory() as conn:
        cur = conn.execute(
            "SELECT doc_type, risk_tier, business_key, sku, from_location, to_location, supplier_id, action,"
            " quantity, value, tier_reasons, explanation FROM erp_staging.all_lines"
            " WHERE dag_id=%s AND ds=%s AND status='pending_approval' ORDER BY value DESC",
            (dag_id, as_date(ds)))
        rows = cur.fetchall()
        cols = [c.name for c in cur.description]
    if not rows:
        return ""
    lines = pd.DataFrame(rows, columns=cols)
    lines["value"] = lines["value"].astype(float)
    by = lines.groupby(["doc_type", "risk_tier"]).agg(lines=("value", "size"), value=("value", "sum"))
    text = [f"**{len(lines)} lines worth {lines['value'].sum():,.2f}** wait for a planner for {ds}.", "",
            "| document | tier | lines | value |", "| --- | --- | ---: | ---: |"]
    text += [f"| {d} | {t} | {int(r.lines)} | {r.value:,.2f} |" for (d, t), r in by.iterrows()]
    text += ["", f"Largest {min(top, len(lines))} lines:", "",
             "| document | action | sku | from | to | supplier | qty | value | why |",
             "| --- | --- | --- | --- | --- | --- | ---: | ---: | --- |"]
    for r in lines.head(top).itertuples():
        why = ", ".join(r.tier_reasons or []) or "-"
        text.append(f"| {r.doc_type} | {r.action} | {r.sku} | {r.from_location or '-'} | {r.to_location or '-'} |"
                    f" {r.supplier_id or '-'} | {float(r.quantity):g} | {r.value:,.2f} | {why} |")
    anomalous = int(lines["explanation"].map(lambda e: bool((e or {}).get("anomalies"))).sum())
    text += ["", f"{anomalous} of these lines involve a demand anomaly.", "",
             f"*{REVIEW_APPROVE_ALL}* / *{REVIEW_REJECT_ALL}* decide every line you may decide; decide line by "
             f"line in the Shelfwise approvals page, then choose *{REVIEW_DONE}*."]
    return "\n".join(text)


def shelfwise_roles(user: str, users_setting: str | None = None, policy_path: str | None = None) -> set[str]:
    """Shelfwise roles of an Airflow user of the simple auth manager.

    The user's Airflow role comes from ``[core] simple_auth_manager_users`` (``name:role,...``); the
    governance policy's ``roles:`` maps it to the roles its ``deciders`` name.
    """
    from include.governance.policy import load_policy

    if users_setting is None:
        import os

        users_setting = os.environ.get("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS", "")
    policy = load_policy(policy_path) if policy_path else load_policy()
    for entry in users_setting.split(","):
        name, _, role = entry.strip().partition(":")
        if name == user:
            return policy.shelfwise_roles(role.strip())
    return set()


def apply_batch_decision(ds: str, *, dag_id: str, choice: str, user: str, roles: set[str], conn_factory,
                         policy_path: str | None = None, root: str | None = None) -> dict[str, Any]:
    """Apply a Required Action answer: approve or reject every pending line the user may decide.

    Lines of a tier the user's roles may not decide stay pending (for someone who may) and are counted.
    """
    from include.erp.staging import decide
    from include.governance.policy import load_policy

    if choice not in REVIEW_OPTIONS:
        raise ValueError(f"unknown review choice {choice!r}; expected one of {REVIEW_OPTIONS}")
    if choice == REVIEW_DONE:
        summary = {"choice": choice, "user": user, "decided": 0, "not_allowed": 0}
        write_stage_summary("apply_review", ds, summary, root)
        return summary
    policy = load_policy(policy_path) if policy_path else load_policy()
    approve = choice == REVIEW_APPROVE_ALL
    decided = not_allowed = 0
    with conn_factory() as conn:
        pending = conn.execute(
            "SELECT doc_type, line_id, risk_tier FROM erp_staging.all_lines WHERE dag_id=%s AND ds=%s"
            " AND status='pending_approval' ORDER BY line_id", (dag_id, as_date(ds))).fetchall()
        allowed: dict[str, list[int]] = {}
        for doc_type, line_id, tier in pending:
            if policy.may_decide(roles, tier):
                allowed.setdefault(doc_type, []).append(int(line_id))
            else:
                not_allowed += 1
        for doc_type, ids in allowed.items():
            decided += len(decide(conn, doc_type, ids, approve=approve, user=user,
                                  note=f"Required Action: {choice}")["decided"])
    if not_allowed:
        log.warning("%s may not decide %d pending lines (tier); they stay pending", user, not_allowed)
    summary = {"choice": choice, "user": user, "decided": decided, "not_allowed": not_allowed}
    write_stage_summary("apply_review", ds, summary, root)
    return summary


def release(ds: str, *, dag_id: str, run_id: str, replay: bool, conn_factory, root: str | None = None) -> dict[str, Any]:
    """Release approved lines to the ERP (never in replay)."""
    if replay:
        summary = {"mode": "replay", "released": {}}
    else:
        from include.erp.staging import release_approved

        with conn_factory() as conn:
            summary = {"mode": "live", "released": release_approved(conn, dag_id, ds, run_id=run_id)}
    write_stage_summary("release", ds, summary, root)
    return summary


def report(ds: str, *, dag_id: str, replay: bool, conn_factory, root: str | None = None) -> dict[str, Any]:
    """KPIs, chart and report for the date."""
    from include.governance.policy import load_policy
    from include.reporting.kpis import compute_kpis, daily_trend, render_chart, render_report

    day = as_date(ds)
    demand = read_partition("curated", "demand", ds, root)
    inventory = read_partition("curated", "inventory_snapshot", ds, root)
    items = read_partition("curated", "items", ds, root)
    locations = read_partition("curated", "locations", ds, root)
    orders = read_partition("curated", "ecommerce_orders", ds, root, missing_ok=True)
    past = []
    for k in range(1, 29):
        prev_day = day - dt.timedelta(days=k)
        if partition_exists("forecasts", "demand", prev_day, root):
            f = read_partition("forecasts", "demand", prev_day, root)
            f = f.assign(ds=pd.to_datetime(f["ds"]))
            past.append(f[(f["step"] == 1) & (f["ds"] <= pd.Timestamp(day))][["unique_id", "ds", "mean"]])
    past_forecasts = pd.concat(past, ignore_index=True) if past else pd.DataFrame(columns=["unique_id", "ds", "mean"])
    if replay:
        released = pd.DataFrame(columns=["doc_type", "to_location", "quantity"])
    else:
        from include.erp.staging import run_lines

        with conn_factory() as conn:
            lines = run_lines(conn, dag_id, ds)
        released = lines[lines["status"] == "released"] if len(lines) else lines
    kpis = compute_kpis(day, demand, inventory, items, orders, past_forecasts, released, locations,
                        load_policy().costs)
    folder = partition_path("reports", "kpis", ds, root)
    fs, _, (local,) = fsspec.get_fs_token_paths(folder)
    fs.makedirs(local, exist_ok=True)
    with fs.open(f"{local}/kpis.json", "w") as fh:
        json.dump(kpis, fh, indent=2)
    render_chart(daily_trend(demand, day), kpis, f"{folder}/kpis.png")
    with fs.open(f"{local}/report.md", "w") as fh:
        fh.write(render_report(kpis, read_stage_summaries(ds, root)))
    summary = {"kpis": kpis, "report": f"{folder}/report.md", "chart": f"{folder}/kpis.png"}
    write_stage_summary("report", ds, summary, root)
    return summary


__all__ = [
    "build_demand", "combine_forecasts", "data_root", "detect_anomalies", "forecast_shard", "ingest",
    "plan_forecast_shards", "prepare_erp_staging", "propose", "read_stage_summaries", "release", "report",
    "stage", "tier",
]
