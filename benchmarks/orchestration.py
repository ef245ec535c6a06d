"""Order orchestration: the router against two routing rules, on the same generated order streams.

Every figure is the production code: ``include.orchestration.router.route_orders`` (the router) and
``include.orchestration.baselines.route_baseline`` (``nearest``: nearest node holding the whole order,
else each line's nearest; ``fc_first``: the ecommerce FC, then the nearest store), all priced by
``include.orchestration.costs.price_routing``. A generated retailer (:mod:`include.sample_data.orders`)
sends its online orders over several days ending with a peak day (more orders, store labour on the shop
floor). Each day is routed in batches of ``--batch-hours`` of orders; within a day every policy depletes
its own copy of the nodes' on-hand and pick capacity, so later batches see what earlier ones took.

Figures per policy, over all days:

* ``cost_per_order``: shipping + pick + split penalty + lateness + expected store stock-out cost (+ the
  penalty of lines left unfilled), over orders;
* ``on_time_rate``: orders whose every line arrives by its promise (an unfilled line is not on time);
* ``split_rate``: orders shipped in more than one parcel; ``ship_from_store_share``: lines shipped by stores;
* ``store_stockouts_caused``: units of store demand a store cannot serve because of the units it shipped
  online that day: per store, SKU and day, ``max(0, D - (x - s)) - max(0, D - x)`` with ``x`` the store's
  opening on-hand, ``s`` the units it shipped online and ``D`` its forecast demand of the day;
* ``cost_reduction_vs_best_baseline``: ``1 - router / min(baselines)`` of cost per order.

Last, ``route_orders`` is timed on one batch of ``--speed-lines`` lines (100,000 by default), giving
``lines_per_second``. The batch comes from a larger retailer (120 stores, 800 SKUs: about 75,000 online
lines on an ordinary day), so that its stock and labour are those of a business that sees such a batch,
not of one drowned in seven days of orders at once. The process's peak resident memory is printed.

    PYTHONPATH=. .venv/bin/python benchmarks/orchestration.py            # 5 days, ~92k lines + 100k timed (~2 min)
    PYTHONPATH=. .venv/bin/python benchmarks/orchestration.py --quick    # 3 small days + 20k timed (~20 s)
"""

from __future__ import annotations

import argparse
import datetime as dt
import time

import numpy as np
import pandas as pd

try:
    from benchmarks._common import cpu_count, emit_json, ensure_project_on_path, format_table, peak_rss_mb
except ModuleNotFoundError:  # run as a script: benchmarks/ itself is on sys.path
    from _common import cpu_count, emit_json, ensure_project_on_path, format_table, peak_rss_mb

ensure_project_on_path()

from include.orchestration.baselines import route_baseline  # noqa: E402
from include.orchestration.inputs import batch_nodes  # noqa: E402
from include.orchestration.params import RoutingParams  # noqa: E402
from include.orchestration.router import route_orders  # noqa: E402
from include.sample_data import orders as sample_orders  # noqa: E402
from include.sample_data.generator import WorldConfig, generate_world  # noqa: E402

POLICIES = ("router", "nearest", "fc_first")


def route(policy: str, *args, params: RoutingParams):
    """Route one batch with ``policy`` (the production entry points)."""
    if policy == "router":
        return route_orders(*args, params=params)
    return route_baseline(policy, *args, params=params)


def stockouts_caused(opening: pd.DataFrame, shipped: pd.DataFrame, forecast: pd.DataFrame) -> float:
    """Store demand units left unserved because of online shipments (see the module docstring)."""
    stores = shipped[shipped["node_type"] == "store"].groupby(["location_id", "sku"])["quantity"].sum()
    if stores.empty:
        return 0.0
    frame = stores.rename("s").reset_index()
    frame = frame.merge(opening[["location_id", "sku", "on_hand"]], on=["location_id", "sku"], how="left")
    frame = frame.merge(forecast[["location_id", "sku", "mean_daily"]], on=["location_id", "sku"], how="left")
    x, s, d = frame["on_hand"].fillna(0).to_numpy(float), frame["s"].to_numpy(float), frame["mean_daily"].fillna(0)
    return float((np.maximum(d - (x - s), 0) - np.maximum(d - x, 0)).sum())


def run_day(world, day: dt.date, config, params: RoutingParams, batch_hours: int) -> dict[str, dict]:
    """Route one day's orders in batches with every policy; per policy its assignments and timings."""
    ex = sample_orders.order_extracts(world, day, config)
    forecast = sample_orders.store_forecast(world, day)
    lines, opening = ex["open_order_lines"], ex["node_on_hand"]
    hour = lines["ordered_at"].dt.hour.to_numpy()
    out = {}
    for policy in POLICIES:
        on_hand, picked, frames, seconds = opening.copy(), pd.Series(dtype=float), [], 0.0
        for start in range(0, 24, batch_hours):
            batch = lines[(hour >= start) & (hour < start + batch_hours)]
            if batch.empty:
                continue
            nodes = batch_nodes(ex["node_capabilities"], ex["labour_schedule"], day, from_hour=start)
            total = batch_nodes(ex["node_capabilities"], ex["labour_schedule"], day)["pick_capacity"]
            used = nodes["location_id"].map(picked).fillna(0).to_numpy()
            nodes["pick_capacity"] = np.minimum(nodes["pick_capacity"], np.maximum(total - used, 0))
            began = time.perf_counter()
            routing = route(policy, batch, ex["carrier_rate_card"], nodes, on_hand, forecast, params=params)
            seconds += time.perf_counter() - began
            done = routing.assignments[routing.assignments["location_id"].notna()]
            picked = picked.add(done.groupby("location_id").size(), fill_value=0)
            taken = done.groupby(["location_id", "sku"])["quantity"].sum().rename("taken")
            on_hand = on_hand.merge(taken.reset_index(), on=["location_id", "sku"], how="left")
            on_hand["on_hand"] = on_hand["on_hand"] - on_hand.pop("taken").fillna(0).astype(np.int64)
            frames.append(routing.assignments)
        assignments = pd.concat(frames, ignore_index=True)
        out[policy] = {"assignments": assignments, "seconds": seconds,
                       "stockouts": stockouts_caused(opening, assignments, forecast)}
    return out


def kpis(assignments: pd.DataFrame, stockouts: float) -> dict:
    """Figures of one policy over all its assignments."""
    orders = assignments.groupby("order_id")
    on_time = orders["on_time"].all()
    first = assignments.drop_duplicates("order_id")
    routed = assignments["location_id"].notna()
    return {
        "orders": int(len(on_time)), "lines": int(len(assignments)),
        "cost_per_order": float(assignments["line_cost"].sum() / len(on_time)),
        "on_time_rate": float(on_time.mean()),
        "split_rate": float((first["parcels_in_order"] > 1).mean()),
        "ship_from_store_share": float((assignments.loc[routed, "node_type"] == "store").mean()),
        "store_stockouts_caused": round(stockouts, 1),
        "lines_unfilled": int((~routed).sum()),
        "exceptions_per_100_lines": float(100 * (assignments["exceptions"] != "").mean()),
    }


def speed(world, day: dt.date, n_lines: int, params: RoutingParams) -> dict:
    """Time ``route_orders`` on one batch of ``n_lines`` lines of ``world`` on ``day``."""
    # A few more lines than asked, then whole orders up to the count: the batch holds at least n_lines.
    config = sample_orders.OrderConfig(lines_per_day=int(n_lines * 1.05))
    ex = sample_orders.order_extracts(world, day, config)
    lines = ex["open_order_lines"]
    first_line = lines.groupby("order_id", sort=False).cumcount() == 0
    order_start = np.flatnonzero(first_line.to_numpy())
    end = order_start[np.searchsorted(order_start, n_lines)] if n_lines < len(lines) else len(lines)
    nodes = batch_nodes(ex["node_capabilities"], ex["labour_schedule"], day)
    args = (lines.iloc[:end], ex["carrier_rate_card"], nodes, ex["node_on_hand"],
            sample_orders.store_forecast(world, day))
    began = time.perf_counter()
    routing = route_orders(*args, params=params)
    seconds = time.perf_counter() - began
    return {"lines": len(routing.assignments), "seconds": round(seconds, 2),
            "lines_per_second": round(len(routing.assignments) / seconds),
            "milp_lines": routing.summary["milp_lines"], "chunks": routing.summary["chunks"]}


def run(args: argparse.Namespace) -> dict:
    """The whole benchmark; returns the JSON payload."""
    world = generate_world(WorldConfig(seed=args.seed, n_regions=args.regions, stores_per_region=args.stores,
                                       n_skus=args.skus, history_days=45, volume=args.volume))
    end = world.config.end_date
    days = [end - dt.timedelta(days=k) for k in range(args.days - 1, -1, -1)]
    config = sample_orders.OrderConfig(peak_dates=(end,))
    params = RoutingParams()
    per_policy = {p: {"frames": [], "stockouts": 0.0, "seconds": 0.0} for p in POLICIES}
    for day in days:
        for policy, result in run_day(world, day, config, params, args.batch_hours).items():
            per_policy[policy]["frames"].append(result["assignments"])
            per_policy[policy]["stockouts"] += result["stockouts"]
            per_policy[policy]["seconds"] += result["seconds"]
    table = []
    for policy, acc in per_policy.items():
        row = {"policy": policy, **kpis(pd.concat(acc["frames"], ignore_index=True), acc["stockouts"]),
               "route_seconds": round(acc["seconds"], 2)}
        table.append(row)
    by = {row["policy"]: row for row in table}
    best = min(by["nearest"]["cost_per_order"], by["fc_first"]["cost_per_order"])
    reduction = 1.0 - by["router"]["cost_per_order"] / best
    del world
    big = generate_world(WorldConfig(seed=args.seed, n_regions=args.regions, stores_per_region=args.speed_stores,
                                     n_skus=args.speed_skus, history_days=30, volume=args.speed_volume))
    timed = speed(big, days[0], args.speed_lines, params)
    columns = ["policy", "orders", "lines", "cost_per_order", "on_time_rate", "split_rate", "ship_from_store_share",
               "store_stockouts_caused", "lines_unfilled", "exceptions_per_100_lines", "route_seconds"]
    print(f"{len(days)} days ending {end} (peak day {end}), batches of {args.batch_hours} h, {cpu_count()} cores\n")
    print(format_table(table, columns))
    print(f"\ncost_reduction_vs_best_baseline: {reduction:.1%}")
    print("\n" + format_table([timed], list(timed)))
    print(f"\npeak memory (max RSS): {peak_rss_mb():.0f} MiB")
    return {
        "benchmark": "orchestration", "cores": cpu_count(), "days": len(days), "peak_day": end.isoformat(),
        "lines_routed": int(by["router"]["lines"]), "orders_routed": int(by["router"]["orders"]),
        "cost_per_order": {p: round(by[p]["cost_per_order"], 4) for p in POLICIES},
        "on_time_rate": {p: round(by[p]["on_time_rate"], 4) for p in POLICIES},
        "split_rate": {p: round(by[p]["split_rate"], 4) for p in POLICIES},
        "ship_from_store_share": {p: round(by[p]["ship_from_store_share"], 4) for p in POLICIES},
        "store_stockouts_caused": {p: by[p]["store_stockouts_caused"] for p in POLICIES},
        "cost_reduction_vs_best_baseline": round(reduction, 4),
        "speed_lines": timed["lines"], "speed_seconds": timed["seconds"],
        "lines_per_second": timed["lines_per_second"], "speed_milp_lines": timed["milp_lines"],
        "peak_rss_mb": round(peak_rss_mb(), 1),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="3 small days and 20,000 lines timed")
    ap.add_argument("--seed", type=int, default=7, help="seed of the generated world")
    ap.add_argument("--days", type=int, default=5, help="days routed, the last one a peak")
    ap.add_argument("--regions", type=int, default=6, help="regions of the world")
    ap.add_argument("--stores", type=int, default=10, help="stores per region")
    ap.add_argument("--skus", type=int, default=500, help="SKUs of the assortment")
    ap.add_argument("--volume", type=float, default=2.5, help="the world's units per day multiplier")
    ap.add_argument("--batch-hours", type=int, default=2, help="hours of orders per routing batch")
    ap.add_argument("--speed-lines", type=int, default=100_000, help="lines of the timed single batch")
    ap.add_argument("--speed-stores", type=int, default=20, help="stores per region of the timed retailer")
    ap.add_argument("--speed-skus", type=int, default=800, help="SKUs of the timed retailer")
    ap.add_argument("--speed-volume", type=float, default=4.0, help="units per day multiplier of the timed retailer")
    args = ap.parse_args(argv)
    if args.quick:
        args.days, args.regions, args.stores, args.skus, args.volume = 3, 4, 8, 200, 1.5
        args.speed_lines, args.speed_stores, args.speed_skus, args.speed_volume = 20_000, 8, 300, 2.0
    emit_json(run(args))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
