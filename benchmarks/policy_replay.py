"""Fill rate against average inventory for Shelfwise's policy and two classic reorder rules.

Replays real demand (M5 sample, daily; Walmart store x department, weekly) and a generated world under
Shelfwise's order-up-to (forecast over lead time + review, safety stock from measured forecast error and
lead-time variability, fill-rate target), an Odoo-style min/max from a trailing average and an
ERPNext-style reorder level re-set quarterly. Each policy's service parameter is swept; the script prints
every curve, the average inventory each policy needs at a 98% fill rate (interpolated on its curve),
whether Shelfwise's curve dominates, and a final one-line JSON with every figure.

    python benchmarks/policy_replay.py [--quick] [--data ../shared/data] [--world small|tiny]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from include.simulation.replay import DemandPanel, ReplayConfig, compare, replay  # noqa: E402

TARGET = 0.98
DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def m5_panel(data: Path) -> DemandPanel:
    """The 50 M5 item x store series, daily units."""
    m5 = pd.read_csv(data / "m5_sample50" / "m5_sample50_d1_d1969.csv.gz")
    days = [c for c in m5.columns if c.startswith("d_")]
    cal = pd.read_csv(data / "m5_sample50" / "calendar.csv").set_index("d")
    return DemandPanel(ids=(m5["store_id"] + "|" + m5["item_id"]).to_numpy(),
                       dates=pd.DatetimeIndex(pd.to_datetime(cal.loc[days, "date"])),
                       demand=np.clip(m5[days].to_numpy(float), 0, None), freq="D")


def walmart_panel(data: Path, max_series: int | None) -> DemandPanel:
    """Walmart store x department weekly sales (dollars), complete series only, negatives as zero."""
    df = pd.read_csv(data / "walmart_recruiting" / "train.csv.zip", usecols=["Store", "Dept", "Date", "Weekly_Sales"])
    wide = df.pivot_table(index=["Store", "Dept"], columns="Date", values="Weekly_Sales", aggfunc="sum")
    wide = wide.dropna()
    if max_series is not None and len(wide) > max_series:
        wide = wide.iloc[np.linspace(0, len(wide) - 1, max_series).astype(int)]
    ids = np.array([f"{s}|{d}" for s, d in wide.index])
    return DemandPanel(ids=ids, dates=pd.DatetimeIndex(pd.to_datetime(wide.columns)),
                       demand=np.clip(wide.to_numpy(float), 0, None), freq="W")


def world_panel(preset: str) -> DemandPanel:
    """A generated world's uncensored demand; lead time = the SKU's supplier's promised lead time."""
    from include.demand.regressors import known_regressors
    from include.sample_data.generator import PRESETS, generate_world

    world = generate_world(PRESETS[preset])
    td = world.true_demand
    td["unique_id"] = td["location_id"] + "|" + td["sku"]
    wide = td.pivot_table(index="unique_id", columns="date", values="demand", aggfunc="sum", fill_value=0)
    sku = wide.index.str.split("|").str[1]
    items = world.items.set_index("sku")
    lead = items["supplier_id"].map(world.suppliers.set_index("supplier_id")["promised_lead_time_days"])
    # The planned discount of each series and day, as the nightly reads it. The generator publishes
    # promotions six weeks ahead, longer than any supplier lead time plus review, so the whole
    # calendar is fair to use.
    keys = pd.DataFrame({"unique_id": wide.index, "location_id": wide.index.str.split("|").str[0], "sku": sku})
    discount = known_regressors(keys, wide.columns, world.promotions, None)["promo"].to_numpy().reshape(wide.shape)
    return DemandPanel(ids=wide.index.to_numpy(), dates=pd.DatetimeIndex(wide.columns),
                       demand=wide.to_numpy(float), freq="D",
                       unit_cost=items["unit_cost"].reindex(sku).to_numpy(float),
                       lead_time=lead.reindex(sku).to_numpy(float),
                       discount=discount)


def run(name: str, panel: DemandPanel, cfg: ReplayConfig) -> dict:
    start = time.perf_counter()
    result = replay(panel, cfg)
    seconds = time.perf_counter() - start
    summary = compare(result, TARGET)
    print(f"\n== {name}: {len(panel.ids)} series x {len(panel.dates)} periods ({panel.freq}), "
          f"lead time {'per series' if panel.lead_time is not None else cfg.lead_time} "
          f"(sd {cfg.lead_time_sd}), review {cfg.review}, warm-up {cfg.warmup}, {seconds:.2f} s")
    cols = ["policy", "parameter", "fill_rate", "avg_on_hand_units", "inventory_turns", "stockout_periods",
            "lost_units", "orders"]
    print(result[cols].round(4).to_string(index=False))
    print(f"average on hand at {TARGET:.0%} fill rate:")
    for policy, value in summary["inventory_at_target"].items():
        print(f"  {policy:<22} {'not reached' if value is None else f'{value:,.1f}'}")
    saving = summary["saving_vs_best_baseline"]
    met = saving is not None and saving >= 0.15 and all(summary["dominates"].values())
    print(f"saving vs best baseline ({summary['best_baseline']}): "
          f"{'n/a' if saving is None else f'{saving:.1%}'}; dominates: {summary['dominates']}; "
          f"target met: {met}")
    curves = {p: [[round(float(r.parameter), 4), round(float(r.fill_rate), 5), round(float(r.avg_on_hand_units), 3)]
                  for r in g.itertuples()] for p, g in result.groupby("policy", sort=False)}
    return {"series": int(len(panel.ids)), "periods": int(len(panel.dates)), "freq": panel.freq,
            "lead_time": "per_series" if panel.lead_time is not None else cfg.lead_time,
            "lead_time_sd": cfg.lead_time_sd, "review": cfg.review, "warmup": cfg.warmup, "seconds": round(seconds, 3),
            "inventory_at_98": summary["inventory_at_target"], "best_baseline": summary["best_baseline"],
            "saving_vs_best_baseline": saving, "dominates": summary["dominates"], "target_met": met,
            "curves_param_fill_inventory": curves}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="Walmart subset of 300 series, no world")
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA, help="folder of the shared real data")
    ap.add_argument("--walmart-series", type=int, default=None, help="cap on Walmart series (default: all complete)")
    ap.add_argument("--world", default="small", help="generator preset for the generated world")
    args = ap.parse_args(argv)

    report: dict = {"cpu_count": os.cpu_count(), "target_fill_rate": TARGET, "datasets": {}}
    report["datasets"]["m5_sample50"] = run(
        "M5 sample (daily units)", m5_panel(args.data),
        ReplayConfig(lead_time=7, lead_time_sd=2.0, review=7, warmup=365, pack=1.0, erpnext_refresh=91))
    cap = 300 if args.quick and args.walmart_series is None else args.walmart_series
    report["datasets"]["walmart"] = run(
        "Walmart store x dept (weekly dollars)", walmart_panel(args.data, cap),
        ReplayConfig(lead_time=2, lead_time_sd=0.5, review=1, warmup=52, pack=0.0, erpnext_refresh=13))
    if not args.quick:
        panel = world_panel(args.world)
        report["datasets"][f"world_{args.world}"] = run(
            f"generated world '{args.world}' (daily units)", panel,
            ReplayConfig(lead_time_sd=1.0, review=7, warmup=min(182, len(panel.dates) // 2), pack=1.0,
                         erpnext_refresh=91))
    report["target_met_all"] = all(d["target_met"] for d in report["datasets"].values())
    print(json.dumps(report, default=float, separators=(",", ":")))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
