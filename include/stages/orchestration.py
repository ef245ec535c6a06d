"""The stage adapters of ``order_orchestration``: one per task, each reads, calls one owner, writes, records.

A run is one routing batch of the run's date: the order lines ordered before its cut-off ``until`` (the
end of the run's data interval, naive in the orders' local time) that no earlier batch routed. The
extracts are the date's files (open lines, rate card, node capabilities and labour plan, opening on-hand);
what earlier batches routed comes back from ERP staging (:mod:`include.orchestration.workflow`), so a
re-run or an overlapping run never routes a line twice. Store demand is the latest night's forecast (the
nightly's forecast Asset).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pandas as pd

from include.config import as_date
from include.runs import Run
from include.stages.summaries import record
from include.storage import newest_partition, read_partition, write_partition

#: Landing sources of the orchestration extracts, one ingest task each.
SOURCES = ("oms", "carrier", "labour", "wms_live")
#: How many days back a curated master may be.
MASTER_MAX_AGE_DAYS = 3
#: The curated extracts a batch routes with.
EXTRACTS = ("open_order_lines", "carrier_rate_card", "node_capabilities", "labour_schedule", "node_on_hand")
#: What the route stage reports of the router's own summary.
ROUTING_FIGURES = ("lines", "orders", "lines_unfilled", "cost_per_order", "on_time_rate", "split_rate",
                   "ship_from_store_share", "lines_below_safety", "exceptions", "seconds")


def ingest(run: Run, source: str, *, conn_factory=None, root: str | None = None) -> dict[str, Any]:
    """Ingest and validate one orchestration source of the date, record the results, raise if one blocked."""
    from include.orchestration.contracts import load_orchestration_contracts
    from include.stages import nightly

    return nightly.ingest(run, source, conn_factory=conn_factory, root=root, contracts=load_orchestration_contracts())


def route(run: Run, until: dt.datetime, *, conn_factory, root: str | None = None) -> dict[str, Any]:
    """Route the lines that arrived by ``until`` and were not routed yet; tier them; write the batch."""
    from include.governance.policy import load_policy, tier_proposals
    from include.orchestration import workflow as wf
    from include.orchestration.router import route_orders

    day, policy = as_date(run.ds), load_policy()
    x, staged = _extracts(run.ds, root), staged_lines(run, conn_factory)
    lines, batch = wf.arrived_by(x["open_order_lines"], until), wf.batch_stamp(day, until)
    routing = route_orders(lines, x["carrier_rate_card"],
                           wf.capacity_left(x["node_capabilities"], x["labour_schedule"], day, _hour(day, until), staged),
                           wf.stock_now(x["node_on_hand"], staged)[["location_id", "sku", "on_hand", "markdown_risk"]],
                           store_forecast(day, root), wf.routing_params(policy.orchestration),
                           already_routed=staged["business_key"] if len(staged) else ())
    tiered = tier_proposals(wf.proposals(routing, lines, batch), policy)
    write_partition(tiered, "curated", f"fulfilment_proposals/batch={batch}", run.ds, root)
    return record(run, {"batch": batch, "until": until.isoformat(), "arrived": int(len(lines)),
                        "already_routed": int(len(staged)), "proposed": int(len(tiered)),
                        "exceptions_pending": int((~tiered["auto_approve"].astype(bool)).sum()),
                        **{k: routing.summary.get(k) for k in ROUTING_FIGURES}}, root)


def stage(run: Run, until: dt.datetime, *, conn_factory, root: str | None = None) -> dict[str, Any]:
    """Stage the batch's lines, adding to the date's and never touching a line already staged (replay records)."""
    from include.orchestration.workflow import batch_stamp

    batch = batch_stamp(as_date(run.ds), until)
    tiered = read_partition("curated", f"fulfilment_proposals/batch={batch}", run.ds, root)
    if run.replay:
        write_partition(tiered, "reports", f"replay_fulfilment_proposals/batch={batch}", run.ds, root)
        return record(run, {"mode": "replay", "batch": batch, "staged_at": None, "recorded": int(len(tiered))}, root)
    from include.erp.staging import stage_batch

    with conn_factory() as conn:
        result = stage_batch(conn, tiered, dag_id=run.dag_id, run_id=run.run_id, ds=run.ds, additive=True)
    return record(run, {"mode": "live", "batch": batch, "staged_at": dt.datetime.now(dt.UTC).isoformat(),
                        **result.as_summary()}, root)


def release(run: Run, *, conn_factory, root: str | None = None) -> dict[str, Any]:
    """Release every approved and within-policy line of the date (never in replay)."""
    if run.replay:
        return record(run, {"mode": "replay", "released": {}}, root)
    from include.erp.staging import release_approved

    with conn_factory() as conn:
        released = release_approved(conn, run.dag_id, run.ds, run_id=run.run_id)
    return record(run, {"mode": "live", "released": released.get("fulfilment_assignment", 0)}, root)


def staged_lines(run: Run, conn_factory) -> pd.DataFrame:
    """The date's fulfilment lines already staged by this workflow (every batch, every status)."""
    from include.erp.staging import run_lines
    from include.orchestration.workflow import DOC_TYPE

    with conn_factory() as conn:
        lines = run_lines(conn, run.dag_id, run.ds)
    lines = lines[lines["doc_type"] == DOC_TYPE] if len(lines) else lines
    return lines.assign(quantity=lines["quantity"].astype(float)) if len(lines) else lines


def store_forecast(day: dt.date, root: str | None = None) -> pd.DataFrame:
    """Each store's daily demand from the latest night's forecast, with the item master's margin.

    Raises:
        FileNotFoundError: no recent nightly forecast or master (run retail_nightly first).
    """
    from include.orchestration.workflow import store_demand
    from include.stages.intraday import night_forecast

    _, forecast = night_forecast(day, latest_master("locations", day, root), root)
    return store_demand(forecast, latest_master("items", day, root))


def latest_master(name: str, day: dt.date, root: str | None = None) -> pd.DataFrame:
    """The latest curated master (``items``, ``locations``) on or before ``day``."""
    found = newest_partition("curated", name, day, MASTER_MAX_AGE_DAYS, root, missing_ok=True)
    if found is None:
        raise FileNotFoundError(f"no curated {name} in the {MASTER_MAX_AGE_DAYS} days before {day}: "
                                "run retail_nightly first")
    return found


def _extracts(ds: str, root: str | None) -> dict[str, pd.DataFrame]:
    return {name: read_partition("curated", name, ds, root) for name in EXTRACTS}


def _hour(day: dt.date, until: dt.datetime) -> int:
    """The hour of ``day`` the batch's work starts in (24 once the day is over)."""
    return min(int((until - dt.datetime.combine(day, dt.time())).total_seconds() // 3600), 24)
