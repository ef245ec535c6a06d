"""The stage adapters of ``finance_review``: one per task, each reads, calls one owner, writes, records.

A run reviews the margin of the week ending on its date. The margin bridge
(:func:`include.finance.bridge.margin_bridge`) of every category x channel x location puts the week's gross
margin against the cell's own baseline weeks and splits the change into its causes; a cause beyond its
normal range (:func:`include.finance.review.detect_items`, sensitivity in the policy's ``finance``) is an
item for finance. An event that goes on for nights is one item: :func:`include.finance.review.dedupe_items`
gives each night's flag the key of the episode it continues, and only a new episode is staged, as a
``finance_review`` line (``finance_review:<category>:<channel>:<location>:<cause>:<start>``) whose value is
the loss projected if it continues, tiered by the policy's ``margin_anomaly`` and ``finance_accrual`` rules.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import numpy as np
import pandas as pd

from include.config import as_date
from include.finance.params import RETURNS_REFUNDS
from include.runs import Run
from include.stages import lines
from include.stages.summaries import record
from include.storage import newest_partition, read_range, write_partition

#: Landing source of the finance extracts (shipment costs, fulfilment substitutions, shrink adjustments).
SOURCE = "finance"
DOC_TYPE = "finance_review"
#: The night's bridge (``reports``), items (``curated``, between the review and the stage task) and the
#: episodes still open after the night (``curated``, read by the next night).
BRIDGE, ITEMS, OPEN = "margin_bridge", "finance_items", "finance_open_items"
#: Curated extracts the bridge reads over its window and baseline, and the date column of each.
EXTRACTS = {"pos_sales": "business_date", "ecommerce_orders": "ordered_at", "returns": "returned_at",
            "shipment_costs": "shipped_at", "fulfilment_substitutions": "recorded_at",
            "shrink_adjustments": "adjusted_at"}


def ingest(run: Run, *, conn_factory=None, root: str | None = None) -> dict[str, Any]:
    """Ingest and validate the finance extracts of the date against their contracts."""
    from include.finance.contracts import load_finance_contracts
    from include.stages import nightly

    return nightly.ingest(run, SOURCE, conn_factory=conn_factory, root=root, contracts=load_finance_contracts())


def params(policy: Any) -> tuple[Any, Any]:
    """The bridge's and the review's parameters from the policy's ``finance`` section."""
    from include.finance.params import BridgeParams, ReviewParams

    f = policy.finance
    return (BridgeParams(window_days=f.window_days, baseline_weeks=f.baseline_weeks, short_days=f.short_days),
            ReviewParams(min_z=f.min_z, min_excess=f.min_excess, min_excess_by_cause=dict(f.min_excess_by_cause),
                         min_baseline_weeks=f.min_baseline_weeks, horizon_weeks=f.horizon_weeks,
                         gap_nights=f.gap_nights, short_min_z=f.short_min_z, short_min_excess=f.short_min_excess,
                         short_causes=tuple(f.short_causes)))


def frames(day: dt.date, first: dt.date, root: str | None = None):
    """The bridge's frames (:class:`include.finance.bridge.FinanceFrames`) from the curated extracts of
    ``first`` through ``day`` and the newest master data."""
    from include.finance.bridge import FinanceFrames, sales_frame
    from include.stages.orchestration import latest_master

    got = {name: read_range("curated", name, first, day, root) for name in EXTRACTS}
    items = latest_master("items", day, root)
    promotions = newest_partition("curated", "promotions", day, 7, root, missing_ok=True)
    orders = got["ecommerce_orders"]
    sales = sales_frame(got["pos_sales"], orders, items, promotions)
    return FinanceFrames(sales=sales, returns=got["returns"], shipments=got["shipment_costs"],
                         substitutions=got["fulfilment_substitutions"], shrink=got["shrink_adjustments"],
                         items=items[["sku", "category", "unit_cost"]])


def review(run: Run, *, root: str | None = None) -> dict[str, Any]:
    """Bridge the week ending on the date, find the causes beyond their range, tier the new items."""
    from include.finance.bridge import margin_bridge
    from include.finance.review import dedupe_items, detect_items
    from include.governance.policy import load_policy, tier_proposals

    day, policy = as_date(run.ds), load_policy()
    bridge_params, review_params = params(policy)
    first = day - dt.timedelta(days=bridge_params.window_days * (bridge_params.baseline_weeks + 1) - 1)
    bridge = margin_bridge(frames(day, first, root), day, bridge_params)
    write_partition(_flat(bridge), "reports", BRIDGE, run.ds, root)
    before = newest_partition("curated", OPEN, day - dt.timedelta(days=1), review_params.gap_nights + 1, root,
                              missing_ok=True)
    items, still_open = dedupe_items(detect_items(bridge, review_params), before, review_params)
    write_partition(still_open, "curated", OPEN, run.ds, root)
    new = items[items["is_new"].astype(bool)] if len(items) else items
    refunds = refund_patterns(read_range("reports", "return_patterns",
                                         day - dt.timedelta(days=bridge_params.window_days - 1), day, root))
    tiered = tier_proposals(proposals(new, day, refunds), policy)
    write_partition(tiered, "curated", ITEMS, run.ds, root)
    residual = bridge["residual_pct"].to_numpy(float) if len(bridge) else np.zeros(0)
    return record(run, {
        "cells": int(len(bridge)), "window_days": bridge_params.window_days,
        "margin": round(float(bridge["actual_margin"].sum()), 2) if len(bridge) else 0.0,
        "expected_margin": round(float(bridge["expected_margin"].sum()), 2) if len(bridge) else 0.0,
        "bridge_max_residual_pct": round(float(np.nanmax(residual)), 6) if np.isfinite(residual).any() else None,
        "flagged": int(len(items)), "new_items": int(len(new)), "continuing": int(len(items) - len(new)),
        "projected_loss": round(float(new["projected_loss"].sum()), 2) if len(new) else 0.0,
        "needs_manager": int(new["needs_manager"].astype(bool).sum()) if len(new) else 0,
        "by_cause": {str(k): int(v) for k, v in new["cause"].value_counts().items()} if len(new) else {},
        "unusual_refund_locations": sorted(refunds)}, root)


def _flat(bridge: pd.DataFrame) -> pd.DataFrame:
    return bridge.assign(night=pd.to_datetime(bridge["night"]).dt.date.astype(str)) if len(bridge) else bridge


def refund_patterns(patterns: pd.DataFrame) -> dict[str, str]:
    """Location -> the strongest sentence of the ``store_unusual_refunds`` patterns ``returns_routing`` found
    there (``reports/return_patterns`` of the window's days)."""
    if patterns.empty or "pattern" not in patterns.columns:
        return {}
    odd = patterns[patterns["pattern"] == "store_unusual_refunds"].sort_values("z_score", ascending=False)
    odd = odd.drop_duplicates("key")
    return dict(zip(odd["key"].astype(str), odd["evidence"].astype(str), strict=True))


def proposals(items: pd.DataFrame, day: dt.date, refunds: dict[str, str] | None = None) -> pd.DataFrame:
    """New review items as ``finance_review`` proposals, before tiering.

    The cell's category stands in the ``sku`` column and its location in ``from_location``; the action is the
    cause; the value is the loss projected if the cause continues; finance is asked to decide within a week
    (``need_by``). The explanation carries the owner function, the sentence, every number of the evidence and
    the exception codes the policy tiers on (``margin_anomaly``, and ``accrual`` when a manager must decide);
    a refunds item at a location whose returns show unusual refunds (``refunds``: :func:`refund_patterns`)
    carries that pattern's sentence as ``return_pattern``.
    """
    refunds = refunds or {}
    columns = ["doc_type", "business_key", "sku", "from_location", "to_location", "supplier_id", "action",
               "quantity", "unit_cost", "value", "need_by", "explanation"]
    if not len(items):
        return pd.DataFrame({c: pd.Series(dtype=float if c in ("quantity", "unit_cost", "value") else object)
                             for c in columns})
    loss = np.round(np.maximum(items["projected_loss"].to_numpy(float), 0.0), 2)
    explanation = [{
        "workflow": "finance", "category": str(r.category), "channel": str(r.channel),
        "location_id": str(r.location_id), "cause": str(r.cause), "owner": str(r.owner), "why": str(r.explanation),
        "projected_loss": float(p), "excess": round(float(r.excess), 2), "robust_z": round(float(r.robust_z), 2),
        "needs_manager": bool(r.needs_manager), "episode_start": str(pd.Timestamp(r.start).date()),
        "exceptions": ["margin_anomaly", *(["accrual"] if r.needs_manager else [])], "evidence": r.evidence,
        "return_pattern": refunds.get(str(r.location_id)) if str(r.cause) == RETURNS_REFUNDS else None,
    } for r, p in zip(items.itertuples(), loss, strict=True)]
    return pd.DataFrame({
        "doc_type": DOC_TYPE, "business_key": items["business_key"].astype(str).to_numpy(),
        "sku": items["category"].astype(str).to_numpy(), "from_location": items["location_id"].astype(str).to_numpy(),
        "to_location": None, "supplier_id": None, "action": items["cause"].astype(str).to_numpy(), "quantity": 1.0,
        "unit_cost": loss, "value": loss, "need_by": day + dt.timedelta(days=7), "explanation": explanation})[columns]


def stage(run: Run, *, conn_factory, root: str | None = None) -> dict[str, Any]:
    """Stage the night's new items (a re-run replaces the undecided ones); replay records them instead."""
    return lines.stage(run, ITEMS, conn_factory=conn_factory, root=root)


def release(run: Run, *, conn_factory, root: str | None = None) -> dict[str, Any]:
    """Hand the items finance acknowledged to the ERP (``released``); never in replay."""
    return lines.release(run, DOC_TYPE, conn_factory=conn_factory, root=root)
