"""The nightly's demand build, shard by shard, against building the whole window at once.

Both run on the same loaded world, each in a child process of its own so its peak memory is its own:

- ``shards`` (production, ``include.demand.history.demand_shards``): the window's curated POS, ecommerce
  and inventory read a day at a time, spooled as integer codes to local Parquet, each shard of SKUs read
  back with a pyarrow filter and made dense;
- ``whole window`` (the baseline, the way the build ran before it was sharded): every day of the three
  sources read into pandas at once (``include.storage.read_range``), then ``build_demand`` over all of it.

Both must give the same demand (series, rows, censored days, units). Prints a table and, last, one JSON
line with every figure.

    PYTHONPATH=. .venv/bin/python benchmarks/demand_build.py --series 10000           # generates and loads
    PYTHONPATH=. .venv/bin/python benchmarks/demand_build.py --root data/scale/100000/shelfwise --ds 2026-11-26
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import subprocess
import sys
import time

try:
    from benchmarks._common import (
        ROOT,
        cpu_count,
        emit_json,
        ensure_project_on_path,
        format_table,
        peak_rss_mb,
    )
except ModuleNotFoundError:  # run as a script: benchmarks/ itself is on sys.path
    from _common import ROOT, cpu_count, emit_json, ensure_project_on_path, format_table, peak_rss_mb

ensure_project_on_path()

RUN_DATE = dt.date(2026, 11, 27)
METHODS = ("shards", "whole window")


def worker(method: str, root: str, ds: str, history_days: int, shard_size: int) -> dict:
    from include.demand.history import build_demand, demand_shards, demand_summary
    from include.storage import read_partition, read_range

    started, summary, shards = time.perf_counter(), {}, 0
    if method == "shards":
        for part in demand_shards(ds, history_days, shard_size, root):
            summary, shards = demand_summary(part.frame, summary), part.n_shards
    else:
        end = dt.date.fromisoformat(ds)
        start = end - dt.timedelta(days=history_days - 1)
        frames = [read_range("curated", name, start, end, root)
                  for name in ("pos_sales", "ecommerce_orders", "inventory_snapshot")]
        demand = build_demand(*frames, start, end, read_partition("curated", "promotions", end, root, missing_ok=True),
                              read_partition("curated", "items", end, root, missing_ok=True))
        summary, shards = demand_summary(demand), 1
    return {"method": method, "seconds": round(time.perf_counter() - started, 1), "peak_mb": round(peak_rss_mb()),
            "shards": shards, **summary}


def load_world(series: int) -> tuple[str, str]:
    """Generate and load a world of about ``series`` series (reused when already loaded)."""
    from nightly_scale import world_config

    from include.ingest.pipeline import load_history
    from include.sample_data.generator import generate_world, write_landing

    root = ROOT / "data" / "bench-demand" / str(series)
    last = RUN_DATE - dt.timedelta(days=1)
    config = world_config(series, RUN_DATE)
    if not (root / "curated" / "inventory_snapshot" / f"ds={last}").exists():
        write_landing(generate_world(config), str(root))
        load_history(RUN_DATE - dt.timedelta(days=config.history_days - 1), last, root=str(root))
    return str(root), last.isoformat()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--series", type=int, default=10_000, help="world size to generate (without --root)")
    parser.add_argument("--root", help="an already loaded data root")
    parser.add_argument("--ds", help="the run date of --root (its last loaded day)")
    parser.add_argument("--history-days", type=int, default=365)
    parser.add_argument("--shard-size", type=int, default=5000)
    parser.add_argument("--methods", default=",".join(METHODS),
                        help="comma-separated; the whole window needs about 230 MB per 1,000 series")
    parser.add_argument("--worker", choices=METHODS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker, args.root, args.ds, args.history_days, args.shard_size)))
        return
    root, ds = (args.root, args.ds) if args.root else load_world(args.series)
    rows = []
    for method in args.methods.split(","):
        out = subprocess.run([sys.executable, __file__, "--worker", method, "--root", root, "--ds", ds,
                              "--history-days", str(args.history_days), "--shard-size", str(args.shard_size)],
                             cwd=ROOT, capture_output=True, text=True, check=False)
        if out.returncode:
            raise SystemExit(f"{method} failed:\n{out.stderr[-3000:]}")
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
    same = all(r[k] == rows[0][k] for r in rows for k in ("series", "rows", "censored_days", "units"))
    print(format_table(rows, ["method", "seconds", "peak_mb", "shards", "series", "rows", "censored_days"]))
    if len(rows) == 2:
        print(f"\nsame demand from both: {same}; memory {rows[1]['peak_mb'] / rows[0]['peak_mb']:.1f}x lower "
              f"and {rows[1]['seconds'] / rows[0]['seconds']:.1f}x faster shard by shard ({cpu_count()} cores)")
    emit_json({"benchmark": "demand_build", "cores": cpu_count(), "root": root, "ds": ds,
               "history_days": args.history_days, "shard_size": args.shard_size, "same_demand": same,
               "results": rows})
    if not same:
        raise SystemExit("the two builds disagree")


if __name__ == "__main__":
    main()
