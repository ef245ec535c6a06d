"""Fill rate against average inventory: the nightly's replenishment policy on the production forecaster,
against an Odoo-style min/max and an ERPNext-style reorder level, replayed on real and generated demand.

Shelfwise's curve is the code the nightly runs: at every review the replay calls
``models.forecasting.forecast`` (the vectorised path, with the dataset's known regressors and events) on
the history so far, and ``include.decisions.replenishment.order_levels`` (the core of
``propose_replenishment``) sizes the order-up-to level for each fill-rate target of the sweep
(``include/simulation``), each review's series pooled for their target as the nightly pools a night's,
``sigma_cum`` scaled by the calibration of the errors of the replay's own earlier forecasts
(``include/decisions/calibration.py``; ``--no-calibration``: as the backtest gives it), each target
planned at the effective target its service ledger asks for after the fill achieved so far
(``include/decisions/service.py``, the policy file's ``service_feedback``; ``--no-feedback``: the target
as it is). The baselines are swept over their safety periods. Every policy runs a quarter of reviews
(``--burn-in``) before scoring starts. Datasets:

* **M5 sample**: 50 item x store series, daily units, SNAP days and calendar events as regressors.
* **Walmart**: weekly sales of every complete store x department series (dollars), markdowns and holiday
  weeks as regressors.
* **world**: a generated world's uncensored demand with its promotion calendar, prices and events, each
  SKU's supplier lead time and unit cost.
* **speed**: a generated world of about 1,000 series x 2 years, timed with weekly re-forecasting.

Per dataset the script prints every curve, the inventory each policy needs at a 98% fill rate, whether
Shelfwise's curve dominates each baseline from 90% to 99.5% fill, the largest gap between a target
(90% to 99%) and the fill rate achieved, then one line of JSON with every figure.

    PYTHONPATH=. .venv/bin/python benchmarks/policy_replay.py [--quick] [--datasets m5,walmart,world,speed]
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path

import pandas as pd

try:
    from benchmarks._common import SHARED_DATA, cpu_count, emit_json, ensure_project_on_path, format_table
except ModuleNotFoundError:  # run as a script: benchmarks/ itself is on sys.path
    from _common import SHARED_DATA, cpu_count, emit_json, ensure_project_on_path, format_table

ensure_project_on_path()

from include.decisions.service import ServiceFeedback  # noqa: E402
from include.governance.policy import load_policy  # noqa: E402
from include.simulation.panel import DemandPanel, panel_from_frame  # noqa: E402
from include.simulation.replay import ReplayConfig, compare, replay  # noqa: E402

TARGET = 0.98
#: Reviews of every replay simulated before scoring (a quarter of weekly reviews): see ``ReplayConfig.burn_in``.
BURN_IN_REVIEWS = 13
#: A world of about 1,000 series over two years, for the speed figure.
SPEED_WORLD = {"n_regions": 2, "stores_per_region": 3, "n_skus": 125, "n_suppliers": 6, "history_days": 730}


def _started(frame: pd.DataFrame) -> pd.DataFrame:
    """Each series from its first positive sale on (before it, the item was not on sale there)."""
    frame = frame.sort_values(["unique_id", "ds"], kind="stable")
    started = (frame["y"] > 0).groupby(frame["unique_id"]).cummax()
    return frame.assign(y=frame["y"].where(started))


def dataset_panel(data) -> DemandPanel:  # noqa: ANN001 - benchmarks.accuracy_data.Dataset
    """The replay panel of an accuracy-benchmark dataset: the same history, regressors and events."""
    frame = _started(data.frame)
    events = "event" if "event" in frame.columns else None
    return panel_from_frame(frame, data.freq, regressors=data.regressors, events=events)


def world_panel(config: dict | str) -> DemandPanel:
    """A generated world's uncensored demand with its regressors and events, each SKU's supplier's
    promised lead time and the SKU's unit cost. The generator publishes promotions six weeks ahead,
    longer than any lead time plus review, so the whole calendar is fair to use."""
    from benchmarks.accuracy_data import load_world

    data = load_world(config)
    return panel_from_frame(data.frame, data.freq, regressors=data.regressors, events="event")


def run(name: str, panel: DemandPanel, cfg: ReplayConfig) -> tuple[dict, list[dict]]:
    """Replay one dataset; the figures for the JSON line and the rows of the summary table."""
    start = time.perf_counter()
    result = replay(panel, cfg)
    seconds = time.perf_counter() - start
    curves = result.curves
    summary = compare(curves, TARGET)
    n, t = panel.demand.shape
    print(f"\n== {name}: {n} series x {t} periods ({panel.freq}), lead time "
          f"{'per series' if panel.lead_time is not None else cfg.lead_time} (sd {cfg.lead_time_sd}), review "
          f"{cfg.review}, warm-up {cfg.warmup}, burn-in {cfg.burn_in}, re-forecast every {cfg.reforecast_every} review(s); "
          f"regressors {sorted(panel.regressors) or 'none'}{', events' if panel.events is not None else ''}; "
          f"{seconds:.1f} s ({result.forecasts.seconds:.1f} s forecasting at {len(result.forecasts.origins)} origins)")
    cols = ["policy", "parameter", "fill_rate", "avg_on_hand_units", "inventory_turns", "lost_units", "orders",
            *(["effective_target"] if "effective_target" in curves else [])]
    print(curves[cols].round(4).to_string(index=False))
    saving = summary["saving_vs_best_baseline"]
    met = {"dominates_both": all(summary["dominates"].values()),
           "saving_at_98_at_least_15pct": saving is not None and saving >= 0.15,
           "fill_error_within_half_point": summary["fill_error_max"] is not None and summary["fill_error_max"] <= 0.005}
    figures = {
        "series": n, "periods": t, "freq": panel.freq, "seconds": round(seconds, 2),
        "forecast_seconds": round(result.forecasts.seconds, 2), "origins": len(result.forecasts.origins),
        "reforecast_every": cfg.reforecast_every, "models_chosen": result.forecasts.models,
        "regressors": sorted(panel.regressors), "events": panel.events is not None,
        "inventory_at_98": summary["inventory_at_target"], "best_baseline": summary["best_baseline"],
        "saving_vs_best_baseline": saving, "dominates": summary["dominates"],
        "fill_error_max": summary["fill_error_max"], "targets": met, "burn_in_periods": cfg.burn_in,
        "effective_targets": ({f"{r.parameter:g}": round(float(r.effective_target), 5)
                               for r in curves[curves["policy"] == "shelfwise"].itertuples()}
                              if "effective_target" in curves else None),
        "curves_param_fill_inventory": {
            p: [[round(float(r.parameter), 4), None if pd.isna(r.fill_rate) else round(float(r.fill_rate), 5),
                 round(float(r.avg_on_hand_units), 3)] for r in g.itertuples()]
            for p, g in curves.groupby("policy", sort=False)},
    }
    at = summary["inventory_at_target"]
    row = {"dataset": name, "series": n, "shelfwise_at_98": at.get("shelfwise"), "odoo_at_98": at.get("odoo_min_max"),
           "erpnext_at_98": at.get("erpnext_reorder_level"), "saving": saving,
           "dominates": "/".join(k.split("_")[0] for k, v in summary["dominates"].items() if v) or "none",
           "fill_error_max": summary["fill_error_max"], "seconds": round(seconds, 1)}
    return figures, [row]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--datasets", default="m5,walmart,world,speed", help="comma list of m5, walmart, world, speed")
    ap.add_argument("--quick", action="store_true", help="300 Walmart series, world 'tiny', no speed run")
    ap.add_argument("--data", type=Path, default=SHARED_DATA, help="folder of the shared real data")
    ap.add_argument("--walmart-series", type=int, default=0, help="evenly spaced sample of Walmart series (0: all)")
    ap.add_argument("--world", default="small", help="generator preset of the world dataset")
    ap.add_argument("--reforecast-every", type=int, default=1, help="reviews between two forecasts")
    ap.add_argument("--no-calibration", action="store_true",
                    help="size Shelfwise's levels on the backtest's sigma_cum, without the measured error scale")
    ap.add_argument("--no-feedback", action="store_true",
                    help="plan every review at the target as it is, without the service ledger's correction")
    ap.add_argument("--no-stockout-inference", action="store_true",
                    help="every zero sale is demand: no stock-out read from the zero runs (include.demand.stockouts)")
    ap.add_argument("--burn-in", type=int, default=BURN_IN_REVIEWS,
                    help="reviews simulated under every policy before scoring starts (default: a quarter)")
    args = ap.parse_args(argv)
    from benchmarks.accuracy_data import load_m5, load_walmart, sample_series

    wanted = {d.strip() for d in args.datasets.split(",") if d.strip()}
    every = args.reforecast_every
    calibrate = not args.no_calibration
    feedback = None if args.no_feedback else ServiceFeedback.from_policy(load_policy().replenishment.service_feedback)
    common = {"reforecast_every": every, "calibrate": calibrate, "service_feedback": feedback,
              "infer_stockouts": not args.no_stockout_inference}
    report: dict = {"benchmark": "policy_replay", "cores": cpu_count(), "target_fill_rate": TARGET,
                    "calibration": calibrate, "service_feedback": None if feedback is None else dataclasses.asdict(feedback),
                    "burn_in_reviews": args.burn_in, "stockouts_from_zero_runs": not args.no_stockout_inference,
                    "datasets": {}}
    rows: list[dict] = []

    def add(name: str, panel: DemandPanel, cfg: ReplayConfig) -> None:
        figures, table = run(name, panel, cfg)
        report["datasets"][name] = figures
        rows.extend(table)

    if "m5" in wanted:
        add("m5_sample50", dataset_panel(load_m5(args.data)),
            ReplayConfig(lead_time=7, lead_time_sd=2.0, review=7, warmup=365, erpnext_refresh=91,
                         burn_in=7 * args.burn_in, **common))
    if "walmart" in wanted:
        walmart = load_walmart(args.data)
        cap = 300 if args.quick and not args.walmart_series else args.walmart_series
        walmart = sample_series(walmart, cap, "walmart_sample") if cap else walmart
        add(walmart.name, dataset_panel(walmart),
            ReplayConfig(lead_time=2, lead_time_sd=0.5, review=1, warmup=52, pack=0.0, erpnext_refresh=13,
                         burn_in=args.burn_in, **common))
    if "world" in wanted:
        preset = "tiny" if args.quick else args.world
        panel = world_panel(preset)
        add(f"world_{preset}", panel,
            ReplayConfig(lead_time_sd=1.0, review=7, warmup=min(182, len(panel.dates) // 2), erpnext_refresh=91,
                         burn_in=7 * args.burn_in, **common))
    if "speed" in wanted and not args.quick:
        panel = world_panel(SPEED_WORLD)
        add("speed_world_2y", panel, ReplayConfig(lead_time_sd=1.0, review=7, warmup=182, erpnext_refresh=91,
                                                  burn_in=7 * args.burn_in, **common))
        report["datasets"]["speed_world_2y"]["under_5_minutes"] = report["datasets"]["speed_world_2y"]["seconds"] < 300

    print()
    print(format_table(rows, ["dataset", "series", "shelfwise_at_98", "odoo_at_98", "erpnext_at_98", "saving",
                              "dominates", "fill_error_max", "seconds"]))
    report["fill_error_max"] = max((d["fill_error_max"] for d in report["datasets"].values()
                                    if d["fill_error_max"] is not None), default=None)
    emit_json(report)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
