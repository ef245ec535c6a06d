"""Returns intelligence: the fraud model and the disposition router against their baselines, same returns.

Every figure is the production code: ``include.returns.fraud.score_returns`` (a logistic model fitted on the
confirmed fraud of the days before, never the day scored) against ``include.returns.fraud.rules_scores``
(receipt-less and at least ``high_value``), and ``include.returns.disposition.route_returns`` against
``include.returns.disposition.route_baseline`` (restock grade A/B where received, liquidate the rest).
The returns come from :func:`include.sample_data.returns.returns_detail` on a generated retailer, with the
truth (what loss prevention would confirm) kept apart and used only as past labels and for scoring.

For each of ``--eval-days`` days (ending 28 days before the world's end, so that the demand that really
followed is known):

* **fraud at the review budget**: the reviewers look at ``--budget-share`` of the day's lines, riskiest
  first (the rules queue takes its flagged lines, dearest first). ``fraud_precision_at_budget`` is the share
  of reviewed lines that are fraud, ``fraud_value_recall_at_budget`` the share of the day's fraud value
  reviewed (both pooled over the days), against ``base_rate`` (fraud share of all lines); calibration
  as the mean score against the fraud rate, the Brier score and the fraud share of lines scored >= 0.5;
* **recovered value**: both policies route with what ``returns_routing`` reads (:func:`routing_demand`: the
  mean daily demand of the next 28 days in the forecast the nightly made that night, at the stores and
  the web shop's FC, the stores' weighed against the item's split by store as ``include.returns.split``
  weighs them, and the stock at the start of the day); their actions are valued by
  ``include.returns.disposition.recovery_value`` with the demand that really came in the 28 days from the
  day and the same opening stock; ``recovery_value_ratio_vs_baseline`` is router / baseline, also shown
  per grade. The same router routing with the demand that really came (a perfect forecast) gives the
  ceiling of what a better forecast could add: ``recovery_value_ratio_foresight_vs_baseline``; and if
  every unit kept to sell sold the day it came back (no queue, no wait), the bound of any routing with
  these prices and costs: ``recovery_value_ratio_sold_at_once_vs_baseline``. The router with each store's
  own forecast (the weight at 1): ``recovery_value_ratio_own_forecasts_vs_baseline``; told each item's demand
  that came over all stores, split by each store's share (a perfect forecast of every item's rate, blind to
  which store happens to sell first): ``recovery_value_ratio_item_foresight_vs_baseline``.
  Supplier return terms are the supplier master's ``return_credit_rate``, as the stage reads them
  (the generator: about 60% of suppliers credit 60-100% of cost).

Last, one batch of ``--speed-rows`` lines (a larger retailer, 40 stores, 800 SKUs, with ``--speed-days``
days of history) is scored (model fitted on the history, then scored) and routed with explanations,
giving ``returns_per_second`` (its demand is the 28 days before: the routing's time does not depend on it). The process's peak resident memory is printed.

    PYTHONPATH=. .venv/bin/python benchmarks/returns.py           # 7 days + 1,000,000 lines timed (~2 min)
    PYTHONPATH=. .venv/bin/python benchmarks/returns.py --quick   # 2 days + 100,000 lines timed (~35 s)
"""

from __future__ import annotations

import argparse
import datetime as dt
import time

import numpy as np
import pandas as pd

try:
    from benchmarks._common import cpu_count, emit_json, ensure_project_on_path, format_table, peak_rss_mb
    from benchmarks.world_nightly import night_forecast
except ModuleNotFoundError:  # run as a script: benchmarks/ itself is on sys.path
    from _common import cpu_count, emit_json, ensure_project_on_path, format_table, peak_rss_mb
    from world_nightly import night_forecast

ensure_project_on_path()

from include.returns.disposition import recovery_value, route_baseline, route_returns  # noqa: E402
from include.returns.fraud import fit_fraud_model, review_queue, rules_scores, score_returns  # noqa: E402
from include.returns.params import DispositionParams, FraudParams, vendor_credit  # noqa: E402
from include.returns.split import calibrate_split, mean_daily_sold, split_weight  # noqa: E402
from include.sample_data.generator import PRESETS, WorldConfig, generate_world  # noqa: E402
from include.sample_data.returns import ReturnsConfig, demand_rates, returns_detail  # noqa: E402
from include.stages.returns import DEMAND_DAYS, routing_mean_daily, store_ids  # noqa: E402


def day_config(eval_end: dt.date, returns_per_day: int) -> ReturnsConfig:
    """Patterns timed against the evaluated days: a defect surge and events in their run-up."""
    return ReturnsConfig(returns_per_day=returns_per_day, defect_start=eval_end - dt.timedelta(days=20),
                         event_dates=(eval_end - dt.timedelta(days=40), eval_end - dt.timedelta(days=5)))


def routing_demand(world, day: dt.date) -> tuple[pd.DataFrame, float | None]:
    """What ``returns_routing`` prices the day's units with (``include.stages.returns.demand_with_stock``):
    the mean daily demand of the next :data:`DEMAND_DAYS` in the forecast the nightly made that night, at the
    stores and the web shop's FC, with the stock at the start of the day; and the weight of the stores' own
    forecasts, the one that predicted best what the stores sold in the :data:`DEMAND_DAYS` after the night
    that long before (``None`` without that history). ``calibrate_split(demand, weight, stores)`` is what the
    stage routes with."""
    def mean_daily(origin: dt.date) -> pd.DataFrame:
        return routing_mean_daily(night_forecast(world, origin).rename(columns={"sigma_cum": "sigma"}))

    start = day - dt.timedelta(days=DEMAND_DAYS)
    sold = mean_daily_sold(world.pos_sales, start, day - dt.timedelta(days=1))
    # The night before ``start`` forecasts from ``start`` on, as the stage reads it.
    weight = None if sold is None else split_weight(mean_daily(start - dt.timedelta(days=1)), sold,
                                                    store_ids(world.locations))
    stock = demand_rates(world, day)[["location_id", "sku", "on_hand"]]
    return mean_daily(day).merge(stock, on=["location_id", "sku"], how="left").fillna({"on_hand": 0}), weight


def at_budget(order_score: pd.DataFrame, truth: pd.DataFrame, budget: int, returns: pd.DataFrame) -> dict:
    """Reviewed lines, fraud among them and fraud value reached, for one day's queue."""
    queue = review_queue(order_score, budget, returns)
    hit = truth.set_index("return_id").reindex(queue["return_id"])
    return {"reviewed": len(queue), "fraud": int(hit["is_fraud"].sum()), "value": float(hit["fraud_value"].sum())}


def evaluate_day(world, extract, truth, day, budget_share, fraud_params, disp_params) -> dict:
    """Fraud at budget and recovered value of both policies on one day."""
    days = extract["returned_at"].to_numpy().astype("datetime64[D]")
    today = extract[days == np.datetime64(day, "D")].reset_index(drop=True)
    history = extract[days < np.datetime64(day, "D")]
    labels = truth[truth["return_id"].isin(history["return_id"])]
    day_truth = truth[truth["return_id"].isin(today["return_id"])]
    budget = int(np.ceil(budget_share * len(today)))
    model = fit_fraud_model(history, labels, day, fraud_params)
    scored = score_returns(today, history, model=model)
    label = day_truth.set_index("return_id")["is_fraud"].reindex(scored["return_id"]).to_numpy(float)
    score = scored["fraud_score"].to_numpy(float)
    row = {"lines": len(today), "budget": budget, "fraud_lines": int(day_truth["is_fraud"].sum()),
           "fraud_value": float(day_truth["fraud_value"].sum()), "score_sum": float(score.sum()),
           "brier_sum": float(((score - label) ** 2).sum()), "high_lines": int((score >= 0.5).sum()),
           "high_fraud": int(label[score >= 0.5].sum())}
    for name, ranking in (("model", scored), ("rules", rules_scores(today, fraud_params))):
        row.update({f"{name}_{k}": v for k, v in at_budget(ranking, day_truth, budget, today).items()})
    own, weight = routing_demand(world, day)
    stores = store_ids(world.locations)
    forecast, realised = calibrate_split(own, weight, stores), demand_rates(world, day, ahead=True)
    where = world.locations
    routed = route_returns(today.assign(fraud_score=scored["fraud_score"].to_numpy()), world.items, forecast,
                           disp_params, locations=where)
    base = route_baseline(today, world.items, forecast, disp_params, locations=where)
    # The same router with each store's own forecast (the weight at 1).
    own_routed = route_returns(today, world.items, own, disp_params, explain=False, locations=where)
    # The same router told the demand that really came: what a perfect forecast would let it recover.
    foreseen = route_returns(today, world.items, realised, disp_params, explain=False, locations=where)
    # Told each item's demand that came over all stores (and the FC's), split by store share: a perfect
    # forecast of every item's rate, which cannot know which store happens to sell first.
    item_foreseen = route_returns(today, world.items, calibrate_split(realised, 0.0, stores), disp_params,
                                  explain=False, locations=where)
    values = {name: recovery_value(policy, today, world.items, realised, disp_params, locations=where)
              for name, policy in (("router", routed), ("baseline", base), ("foresight", foreseen),
                                   ("own", own_routed), ("item_foresight", item_foreseen))}
    # And if every unit kept to sell sold the day it came back, nothing on the shelf ahead of it: the most
    # any routing could recover with these prices and costs.
    at_once = realised.assign(mean_daily=np.inf, on_hand=0.0)
    values["at_once"] = recovery_value(route_returns(today, world.items, at_once, disp_params, explain=False,
                                                     locations=where), today, world.items, at_once, disp_params,
                                       locations=where)
    row["held"] = int(routed["hold_for_review"].sum())
    row["weights"] = [weight]
    grade = today["condition_grade"].astype(str).to_numpy()
    for name, value in values.items():
        row[f"{name}_value"] = float(value.sum())
        row.update({f"{name}_{g}": float(value[grade == g].sum()) for g in "ABCD"})
    row["actions"] = routed["action"].value_counts()
    return row


def quality(args) -> tuple[list[dict], dict]:
    world = generate_world(PRESETS["small"])
    eval_end = world.config.end_date - dt.timedelta(days=28)
    fraud_params = FraudParams()
    first = eval_end - dt.timedelta(days=fraud_params.window_days + fraud_params.train_days + args.eval_days)
    all_days = [first + dt.timedelta(days=i) for i in range((eval_end - first).days + 1)]
    extract, truth = returns_detail(world, all_days, seed=args.seed, config=day_config(eval_end, args.returns_per_day))
    disp = DispositionParams(rtv_credit=vendor_credit(world.suppliers))
    rows = [evaluate_day(world, extract, truth, d, args.budget_share, fraud_params, disp)
            for d in all_days[-args.eval_days:]]
    return rows, {"world": "small", "history_lines": len(extract)}


def speed(args) -> dict:
    world = generate_world(WorldConfig(n_regions=4, stores_per_region=10, n_skus=800, n_suppliers=20,
                                       history_days=120))
    end = world.config.end_date
    history, truth = returns_detail(world, args.speed_days, seed=1,
                                    config=ReturnsConfig(returns_per_day=args.speed_rows // (2 * args.speed_days)))
    history = history[history["returned_at"] < pd.Timestamp(end)]
    today, _ = returns_detail(world, [end], seed=2, config=ReturnsConfig(returns_per_day=args.speed_rows))
    forecast = demand_rates(world, end)
    disp = DispositionParams(rtv_credit=vendor_credit(world.suppliers))
    start = time.perf_counter()
    scored = score_returns(today, history, labels=truth)
    fitted = time.perf_counter()
    routed = route_returns(today.assign(fraud_score=scored["fraud_score"].to_numpy()), world.items, forecast, disp,
                           locations=world.locations)
    seconds = time.perf_counter() - start
    assert len(routed) == len(today) and routed["explanation"].notna().all()
    return {"speed_rows": len(today), "speed_history_lines": len(history), "speed_seconds": round(seconds, 2),
            "score_seconds": round(fitted - start, 2), "returns_per_second": round(len(today) / seconds)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2 days, 100,000 lines timed")
    parser.add_argument("--eval-days", type=int, default=7)
    parser.add_argument("--returns-per-day", type=int, default=600)
    parser.add_argument("--budget-share", type=float, default=0.04, help="share of a day's lines reviewed")
    parser.add_argument("--speed-rows", type=int, default=1_000_000)
    parser.add_argument("--speed-days", type=int, default=14)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if args.quick:
        args.eval_days, args.speed_rows = min(args.eval_days, 2), min(args.speed_rows, 100_000)
    began = time.perf_counter()
    rows, facts = quality(args)
    total = {k: sum(r[k] for r in rows) for k in rows[0] if k not in ("actions", "weights")}
    weights = [w for r in rows for w in r["weights"]]
    pooled = {
        "base_rate": total["fraud_lines"] / total["lines"],
        "fraud_precision_at_budget": total["model_fraud"] / max(total["model_reviewed"], 1),
        "fraud_value_recall_at_budget": total["model_value"] / max(total["fraud_value"], 1e-9),
        "baseline_precision": total["rules_fraud"] / max(total["rules_reviewed"], 1),
        "baseline_value_recall": total["rules_value"] / max(total["fraud_value"], 1e-9),
        "mean_fraud_score": total["score_sum"] / total["lines"], "brier_score": total["brier_sum"] / total["lines"],
        "fraud_share_scored_above_half": total["high_fraud"] / max(total["high_lines"], 1),
        "recovered_value": total["router_value"], "baseline_recovered_value": total["baseline_value"],
        "recovery_value_ratio_vs_baseline": total["router_value"] / total["baseline_value"],
        "foresight_recovered_value": total["foresight_value"],
        "recovery_value_ratio_foresight_vs_baseline": total["foresight_value"] / total["baseline_value"],
        "recovery_value_ratio_sold_at_once_vs_baseline": total["at_once_value"] / total["baseline_value"],
        "recovery_value_ratio_own_forecasts_vs_baseline": total["own_value"] / total["baseline_value"],
        "recovery_value_ratio_item_foresight_vs_baseline": total["item_foresight_value"] / total["baseline_value"],
        "store_split_weights": [None if w is None else round(w, 3) for w in weights],
    }
    table = [{"policy": "fraud model", "reviewed": total["model_reviewed"], "fraud_found": total["model_fraud"],
              "precision": pooled["fraud_precision_at_budget"], "value_recall": pooled["fraud_value_recall_at_budget"]},
             {"policy": "rules (no receipt, high value)", "reviewed": total["rules_reviewed"],
              "fraud_found": total["rules_fraud"], "precision": pooled["baseline_precision"],
              "value_recall": pooled["baseline_value_recall"]}]
    print(f"{len(rows)} days, {total['lines']} lines, budget {args.budget_share:.0%} of a day's lines "
          f"({total['budget']} reviews), fraud base rate {pooled['base_rate']:.2%}\n")
    print(format_table(table, ["policy", "reviewed", "fraud_found", "precision", "value_recall"]))
    print(f"calibration: mean score {pooled['mean_fraud_score']:.4f} vs fraud rate {pooled['base_rate']:.4f}, "
          f"Brier {pooled['brier_score']:.4f}, fraud among lines scored >= 0.5: "
          f"{pooled['fraud_share_scored_above_half']:.2%} of {total['high_lines']}\n")
    actions = pd.concat([r["actions"] for r in rows], axis=1).sum(axis=1).astype(int)
    grades = [f"grade_{g}" for g in "ABCD"]
    def recovered(name: str, label: str) -> dict:
        return {"policy": label, "recovered_value": round(total[f"{name}_value"]),
                **{f"grade_{g}": round(total[f"{name}_{g}"]) for g in "ABCD"}}

    print("weight of the stores' own forecasts, by day: "
          + ", ".join("none" if w is None else f"{w:.3f}" for w in weights))
    print(format_table([{**recovered("router", "router"), **actions.to_dict()},
                        recovered("own", "router with each store's own forecast"),
                        recovered("item_foresight", "router told each item's demand that came, split by store"),
                        recovered("foresight", "router told the demand that came (ceiling)"),
                        recovered("baseline", "baseline (restock A/B, else liquidate)"),
                        recovered("at_once", "every kept unit sold the day it came back (bound)")],
                       ["policy", "recovered_value", *grades, *actions.index]) + "\n")
    result = speed(args)
    print(format_table([result], list(result)) + "\n")
    payload = {**pooled, **result, **facts, "eval_days": len(rows), "eval_lines": total["lines"],
               "budget_share": args.budget_share, "held_for_review": total["held"], "cores": cpu_count(),
               "peak_rss_mb": round(peak_rss_mb()), "seconds": round(time.perf_counter() - began, 1),
               "targets_met": {"precision_3x_base": pooled["fraud_precision_at_budget"] >= 3 * pooled["base_rate"],
                               "value_recall_70pct": pooled["fraud_value_recall_at_budget"] >= 0.7,
                               "recovery_15pct": pooled["recovery_value_ratio_vs_baseline"] >= 1.15,
                               "million_in_2_min": result["speed_rows"] / result["returns_per_second"] < 120}}
    print(f"peak memory {payload['peak_rss_mb']} MiB, {payload['seconds']} s in all")
    emit_json({k: (round(v, 4) if isinstance(v, float) else v) for k, v in payload.items()})


if __name__ == "__main__":
    main()
