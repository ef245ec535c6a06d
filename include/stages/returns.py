"""The stage adapters of ``returns_routing``: one per task, each reads, calls one owner, writes, records.

A run routes the units returned on its date (the returns system's ``returns_detail`` of that day). Each
line is scored for fraud by the model of :mod:`include.returns.fraud`, trained on what loss prevention
confirmed (its closed cases, ``lp_cases``, of the policy's ``returns.history_days``), never on anything it
was not told; with fewer confirmed cases than ``returns.min_confirmed_cases`` (a cold start) the rules
baseline scores the day instead, and the route stage says so. Then every unit goes where it recovers most
(:func:`include.returns.disposition.route_returns`, priced with the night's forecast of the stores and the
web shop's FC, the stock already on the shelf and the suppliers' return terms), and units held for review wait for loss prevention: a ``return_disposition``
proposal per line, ``return:<return_id>``, tiered by the policy's ``return_*`` rules.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import numpy as np
import pandas as pd

from include.config import as_date
from include.runs import Run
from include.stages import lines
from include.stages.summaries import record
from include.storage import iter_range, newest_partition, read_partition, read_range, write_partition

#: Landing source of the returns system's extracts (returns detail, loss-prevention cases).
SOURCE = "returns_system"
DOC_TYPE = "return_disposition"
#: The tiered proposals of a date, between the route and the stage task.
PROPOSALS = "return_proposals"
#: How many days back the newest inventory snapshot may be.
STOCK_MAX_AGE_DAYS = 3
#: Days of the night's forecast whose mean daily demand prices a returned unit: the weeks it may take to sell.
DEMAND_DAYS = 28
#: Fewest days of a past night's forecast and of the sales that followed that weigh the stores' forecasts.
MIN_SPLIT_DAYS = 14
#: Exception codes of a held line, by what its hold reason starts with (see ``route_returns``).
EXCEPTIONS = {"fraud score": "fraud_risk", "refund": "high_value"}


def ingest(run: Run, *, conn_factory=None, root: str | None = None) -> dict[str, Any]:
    """Ingest and validate the returns system's extracts of the date (returns detail, closed LP cases)."""
    from include.returns.contracts import load_returns_contracts
    from include.stages import nightly

    return nightly.ingest(run, SOURCE, conn_factory=conn_factory, root=root, contracts=load_returns_contracts())


def route(run: Run, *, root: str | None = None) -> dict[str, Any]:
    """Score, route and tier the date's returned lines; write them as proposals of the date."""
    from include.governance.policy import load_policy, tier_proposals
    from include.reporting.returns_kpis import returns_kpis
    from include.returns.disposition import route_returns
    from include.returns.fraud import review_queue
    from include.returns.params import DispositionParams, vendor_credit
    from include.stages.orchestration import latest_master

    day, policy = as_date(run.ds), load_policy()
    knobs = policy.returns
    today = read_partition("curated", "returns_detail", run.ds, root)
    scored, scoring = fraud_scores(today, day, knobs, root)
    review = review_queue(scored, knobs.review_budget_per_day, today)
    credit = vendor_credit(latest_master("suppliers", day, root))
    params = DispositionParams(fraud_hold_score=knobs.fraud_hold_score, high_value_hold=knobs.high_value_hold,
                               rtv_credit=credit)
    score = scored["fraud_score"].to_numpy(float)
    items = latest_master("items", day, root)
    demand = demand_with_stock(day, root)
    routed = route_returns(today.assign(fraud_score=score), items, demand, params,
                           locations=latest_master("locations", day, root))
    tiered = tier_proposals(proposals(routed, today, scored, review, scoring["scorer"]), policy, _stale(run, root))
    write_partition(tiered, "curated", PROPOSALS, run.ds, root)
    held = tiered["explanation"].map(lambda e: e["exceptions"])
    fraud_held = held.map(lambda x: "fraud_risk" in x).to_numpy(bool)
    kpis = returns_kpis(today, routed, score, fraud_held, day, _return_rates(day, items, root))
    return record(run, {**kpis,
        **scoring, "returns": int(len(today)), "proposed": int(len(tiered)),
        "held_fraud": int(fraud_held.sum()), "suppliers_taking_returns": len(credit) - 1,
        "store_split_weight": demand.attrs["store_split_weight"],
        "held_high_value": int(held.map(lambda x: "high_value" in x).sum()),
        "pending": int((~tiered["auto_approve"].astype(bool)).sum()), "review_queue": int(len(review)),
        "actions": {str(k): int(v) for k, v in routed["action"].value_counts().items() if v},
        "net_recovery": round(float(routed["net_value"].sum()), 2),
        "refunds": round(float(today["refund_amount"].sum()), 2)}, root)


def _return_rates(day: dt.date, items: pd.DataFrame, root: str | None) -> list[dict[str, Any]]:
    """Return rates by sales channel and category over the :data:`RATE_DAYS` ending ``day`` (curated returns
    detail against curated store and web sales; a day without an extract reads as nothing)."""
    from include.reporting.returns_kpis import RATE_DAYS, return_rates

    first = day - dt.timedelta(days=RATE_DAYS - 1)

    def read(name: str, columns: list[str]) -> pd.DataFrame:
        return read_range("curated", name, first, day, root, columns=columns).reindex(columns=columns)

    returned = read("returns_detail", ["sku", "purchase_channel", "quantity"])
    pos = read("pos_sales", ["sku", "units_sold"])
    web = read("ecommerce_orders", ["sku", "quantity", "status"])
    web = web[web["status"].astype(str) != "cancelled"]
    sold = pd.concat([pd.DataFrame({"sku": pos["sku"], "channel": "store", "units": pos["units_sold"]}),
                      pd.DataFrame({"sku": web["sku"], "channel": "ecommerce", "units": web["quantity"]})],
                     ignore_index=True)
    return return_rates(returned, sold, items)


def classify(run: Run, *, root: str | None = None) -> dict[str, Any]:
    """The explained return patterns of the week ending on the run's date, against the weeks before
    (:func:`include.returns.patterns.classify_patterns`), written to ``reports/return_patterns``."""
    from include.returns.params import DEFAULT_PATTERNS
    from include.returns.patterns import ANOMALY_COLUMNS, classify_patterns
    from include.stages.orchestration import latest_master

    day, params = as_date(run.ds), DEFAULT_PATTERNS
    start = day - dt.timedelta(days=params.recent_days + params.baseline_days - 1)
    history = read_range("curated", "returns_detail", start, day, root)
    found = (classify_patterns(history, day, latest_master("items", day, root), params) if len(history)
             else pd.DataFrame({c: pd.Series(dtype=object) for c in ANOMALY_COLUMNS}))
    write_partition(found, "reports", "return_patterns", run.ds, root)
    return record(run, {
        "returns_read": int(len(history)), "patterns": {str(k): int(v) for k, v in found["pattern"].value_counts().items()},
        "strongest": [{"pattern": r.pattern, "owner": r.owner, "key": r.key, "evidence": r.evidence}
                      for r in found.head(5).itertuples()]}, root)


def fraud_scores(today: pd.DataFrame, day: dt.date, knobs: Any, root: str | None = None
                 ) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The day's fraud scores: the model trained on loss prevention's confirmed cases, else the rules score.

    Returns:
        ``(scored, scoring)``: one row per line of ``today`` in its order (``return_id, fraud_score,
        evidence``...), and what scored them: ``scorer`` (``model`` or ``rules``), ``confirmed_cases`` in
        the history, and ``cold_start`` (why the rules scored, or ``None``).
    """
    from include.returns.fraud import rules_scores, score_returns

    start = day - dt.timedelta(days=knobs.history_days)
    history = read_range("curated", "returns_detail", start, day - dt.timedelta(days=1), root)
    labels = confirmed_labels(start, day, root)
    confirmed = int(labels["is_fraud"].sum()) if len(history) else 0
    if len(history):
        confirmed = int(labels.loc[labels["is_fraud"], "return_id"].isin(history["return_id"].astype(str)).sum())
    reason = None
    if confirmed < knobs.min_confirmed_cases:
        reason = (f"{confirmed} confirmed fraud cases in the {knobs.history_days} days before {day}, fewer than "
                  f"min_confirmed_cases {knobs.min_confirmed_cases}: the rules score the day")
    else:
        try:
            scored = score_returns(today, history, labels)
        except ValueError as exc:  # no confirmed fraud (or no legitimate line) in the training days
            reason = f"the fraud model could not be trained ({exc}): the rules score the day"
    if reason is not None:
        scored = rules_scores(today)
    return scored, {"scorer": "rules" if reason else "model", "confirmed_cases": confirmed, "cold_start": reason}


def confirmed_labels(start: dt.date, day: dt.date, root: str | None = None) -> pd.DataFrame:
    """``return_id, is_fraud`` of the loss-prevention cases closed from ``start`` through ``day`` (the last
    closing of a line counts)."""
    cases = read_range("curated", "lp_cases", start, day, root)
    if cases.empty:
        return pd.DataFrame({"return_id": pd.Series([], dtype=str), "is_fraud": pd.Series([], dtype=bool)})
    cases = cases.sort_values("closed_on", kind="stable").drop_duplicates("return_id", keep="last")
    return pd.DataFrame({"return_id": cases["return_id"].astype(str).to_numpy(),
                         "is_fraud": (cases["outcome"].astype(str) == "confirmed_fraud").to_numpy()})


def demand_with_stock(day: dt.date, root: str | None = None) -> pd.DataFrame:
    """Each selling location's daily demand over the next :data:`DEMAND_DAYS` from the night's forecast (made
    on ``day``, or the latest before it): the stores' and the web shop's at its fulfilment centre, where the
    units returned by mail are received; with the on-hand of the newest curated inventory snapshot
    (``location_id, sku, mean_daily, on_hand``).

    The stores' forecasts are weighed against the item's demand split by store
    (:mod:`include.returns.split`) with the weight that predicted best what the stores sold in the
    :data:`DEMAND_DAYS` after a night that long ago (:func:`store_split_weight`); the weight (``None``
    without that history: the stores' own forecasts) is in ``attrs["store_split_weight"]``.

    Raises:
        FileNotFoundError: no recent nightly forecast or master (run retail_nightly first).
    """
    from include.returns.split import calibrate_split
    from include.stages.intraday import night_forecast
    from include.stages.orchestration import latest_master

    locations = latest_master("locations", day, root)
    _, forecast = night_forecast(day + dt.timedelta(days=1), locations, root)
    stores = store_ids(locations)
    weight = store_split_weight(day, locations, root)
    demand = calibrate_split(routing_mean_daily(forecast), weight, stores)
    stock = newest_partition("curated", "inventory_snapshot", day, STOCK_MAX_AGE_DAYS, root, missing_ok=True)
    if stock is not None:
        on_hand = stock.assign(location_id=stock["location_id"].astype(str), sku=stock["sku"].astype(str)).groupby(
            ["location_id", "sku"], as_index=False, observed=True)["on_hand"].sum()
        demand = demand.merge(on_hand, on=["location_id", "sku"], how="left").fillna({"on_hand": 0})
    demand.attrs["store_split_weight"] = weight
    return demand


def store_split_weight(day: dt.date, locations: pd.DataFrame, root: str | None = None) -> float | None:
    """The weight of the stores' own forecasts (:func:`include.returns.split.split_weight`) on the night
    :data:`DEMAND_DAYS` before ``day`` (or the latest before it): its forecast of the days up to ``day``
    against the stores' curated POS sales of those days. ``None`` when that night's forecast or any of those
    days' sales is missing (a new installation's first weeks)."""
    from include.returns.split import mean_daily_sold, split_weight
    from include.stages.intraday import night_forecast

    start = day - dt.timedelta(days=DEMAND_DAYS)
    try:
        _, past = night_forecast(start, locations, root)
    except FileNotFoundError:
        return None
    days = int(past["step"].max()) if len(past) else 0
    end = min(start + dt.timedelta(days=days - 1), day - dt.timedelta(days=1))
    if (end - start).days + 1 < MIN_SPLIT_DAYS:
        return None
    columns = ["store_id", "sku", "business_date", "units_sold"]
    sold = mean_daily_sold((table.to_pandas() for _, table in iter_range("curated", "pos_sales", start, end, root,
                                                                         columns=columns)), start, end)
    if sold is None:
        return None
    return split_weight(routing_mean_daily(past, (end - start).days + 1), sold, store_ids(locations))


def routing_mean_daily(forecast: pd.DataFrame, days: int = DEMAND_DAYS) -> pd.DataFrame:
    """Mean daily demand over the first ``days`` of a night's forecast (``location_id, sku, channel, step,
    mean, sigma``) at the stores and the web shop's FC: ``location_id, sku, mean_daily``."""
    from include.orchestration.workflow import store_demand

    return store_demand(forecast, days=days, channels=("store", "online"))[["location_id", "sku", "mean_daily"]]


def store_ids(locations: pd.DataFrame) -> list[str]:
    """The location master's stores (the locations whose forecasts are weighed against the split)."""
    return locations.loc[locations["location_type"].astype(str) == "store", "location_id"].astype(str).tolist()


def proposals(routed: pd.DataFrame, today: pd.DataFrame, scored: pd.DataFrame, review: pd.DataFrame,
              scorer: str) -> pd.DataFrame:
    """The routed lines as ``return_disposition`` proposals, before tiering.

    The value of a line is the refund at stake; its explanation carries the routing sentence, the fraud score
    and its evidence, each option's value per unit, and the exception codes of a held line (``fraud_risk``,
    ``high_value``).
    """
    from include.returns.params import ACTIONS

    refund = np.maximum(today["refund_amount"].to_numpy(float), 0.0)
    qty = routed["quantity"].to_numpy(float)
    rank = review.set_index("return_id")["review_rank"] if len(review) else pd.Series(dtype=float)
    why = review.set_index("return_id")["review_reason"] if len(review) else pd.Series(dtype=str)
    rows = pd.DataFrame({"return_id": routed["return_id"].astype(str).to_numpy(), "score": scored["fraud_score"].to_numpy(float),
                         "evidence": scored["evidence"].astype(str).to_numpy(),
                         "reason": today["reason_code"].astype(str).to_numpy(),
                         "receipt": today["receipt_matched"].astype(bool).to_numpy(), "refund": refund})
    rows["rank"], rows["review"] = rows["return_id"].map(rank), rows["return_id"].map(why)
    options = routed[[f"value_{a}" for a in ACTIONS]].to_numpy(float)
    explanation = [_explain(r, routed_row, dict(zip(ACTIONS, opts, strict=True)), scorer) for r, routed_row, opts in
                   zip(rows.itertuples(), routed.itertuples(), options, strict=True)]
    action = routed["action"].astype(str)
    return pd.DataFrame({
        "doc_type": DOC_TYPE, "business_key": "return:" + rows["return_id"],
        "sku": routed["sku"].astype(str).to_numpy(), "from_location": routed["location_id"].astype(str).to_numpy(),
        "to_location": routed["target_location_id"].to_numpy(),
        "supplier_id": np.where(action == "return_to_vendor", routed["supplier_id"].astype(str), None),
        "action": action.to_numpy(), "quantity": qty, "value": np.round(refund, 2),
        "unit_cost": np.round(refund / np.maximum(qty, 1.0), 4), "need_by": None, "explanation": explanation})


def _explain(r: Any, routed: Any, options: dict[str, float], scorer: str) -> dict[str, Any]:
    """One line's explanation, every key present on every line (so the proposals keep one Parquet schema)."""
    hold = str(routed.hold_reason or "")
    codes = [code for prefix, code in EXCEPTIONS.items() if any(p.strip().startswith(prefix) for p in hold.split(";"))]
    return {
        "workflow": "returns", "return_id": r.return_id, "why": str(routed.explanation or ""),
        "condition_grade": str(routed.condition_grade), "reason_code": r.reason, "receipt_matched": bool(r.receipt),
        "refund_amount": round(float(r.refund), 2), "fraud_score": round(float(r.score), 4),
        "fraud_evidence": r.evidence, "scorer": scorer,
        "net_value": float(routed.net_value), "unit_net_value": float(routed.unit_net_value),
        "days_to_sell": float(routed.days_to_sell),
        "options": {a: (None if v != v else round(float(v), 2)) for a, v in options.items()},
        "hold_reason": hold, "exceptions": codes,
        "review_rank": None if r.rank != r.rank or r.rank is None else int(r.rank),
        "review_reason": r.review if isinstance(r.review, str) else None,
    }


def _stale(run: Run, root: str | None) -> frozenset[str]:
    """The contracts a stand-in replaced on the night of the run's date (its curated extracts)."""
    from include.stages.summaries import read_stage_summaries, stale_sources

    return frozenset(stale_sources(read_stage_summaries("retail_nightly", run.ds, root)))


def stage(run: Run, *, conn_factory, root: str | None = None) -> dict[str, Any]:
    """Stage the date's dispositions (a re-run replaces the undecided ones); replay records them instead."""
    return lines.stage(run, PROPOSALS, conn_factory=conn_factory, root=root)


def release(run: Run, *, conn_factory, root: str | None = None) -> dict[str, Any]:
    """Release every approved and within-policy disposition of the date (never in replay)."""
    return lines.release(run, DOC_TYPE, conn_factory=conn_factory, root=root)
