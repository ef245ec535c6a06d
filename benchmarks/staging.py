"""Staging throughput: the set-based COPY path (``stage_batch``) against the row-by-row baseline.

Each size is staged into a fresh DAG id (all inserts), then staged again with every line changed (all
updates), so both the first run of a date and its re-run are measured. Prints a table and, last, one
JSON line with the figures.

    .venv/bin/python benchmarks/staging.py                 # 10k and 100k lines
    .venv/bin/python benchmarks/staging.py --sizes 1000 --baseline-max 1000
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
import time
import uuid
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from include.erp import db  # noqa: E402
from include.erp.staging import stage_batch, stage_batch_rowwise  # noqa: E402

DS = dt.date(2026, 11, 27)
TARGET_SECONDS_100K = 5.0


def make_lines(n: int, *, seed: int = 7, scale: float = 1.0) -> pd.DataFrame:
    """``n`` realistic proposal lines over the three document types (a third auto-approved)."""
    rng = np.random.default_rng(seed)
    doc = np.array(["replenishment", "transfer", "po_exception"])[np.arange(n) % 3]
    qty = np.round(rng.gamma(2.0, 20.0, n) * scale, 2)
    cost = np.round(rng.uniform(0.5, 40.0, n), 4)
    tier = np.array(["low", "medium", "high"])[rng.integers(0, 3, n)]
    return pd.DataFrame({
        "doc_type": doc,
        "business_key": [f"SKU{i % 5000:05d}|S{i // 5000:04d}|{i}" for i in range(n)],
        "sku": [f"SKU{i % 5000:05d}" for i in range(n)],
        "from_location": "DC01",
        "to_location": [f"S{i // 5000:04d}" for i in range(n)],
        "supplier_id": np.where(doc == "transfer", None, "SUP003"),
        "po_id": np.where(doc == "po_exception", "PO-77", None),
        "po_line": np.where(doc == "po_exception", np.arange(n), None),
        "action": np.select([doc == "replenishment", doc == "transfer"], ["order", "replenish"], "expedite"),
        "quantity": qty, "unit_cost": cost, "value": np.round(qty * cost, 2),
        "need_by": DS + dt.timedelta(days=4),
        "explanation": [{"forecast_over_lead_time": float(q) * 1.1, "inventory_position": 12.0,
                         "safety_stock": 6.5, "model": "ses_seasonal", "fallback_reason": None,
                         "anomalies": []} for q in qty],
        "risk_tier": tier,
        "tier_reasons": [[] if t == "low" else [f"{t}_value"] for t in tier],
        "auto_approve": tier == "low",
    })


def _time(fn, conn, lines: pd.DataFrame, dag_id: str, run_id: str) -> float:
    start = time.perf_counter()
    fn(conn, lines, dag_id=dag_id, run_id=run_id, ds=DS)
    return time.perf_counter() - start


def _cleanup(url: str, dag_ids: list[str]) -> None:
    # Interface lines of benchmark DAGs only; the audit log is append-only and keeps its entries.
    with db.connect(url) as conn, conn.transaction():
        for table in ("replenishment_order_lines", "stock_transfer_lines", "po_exception_lines"):
            conn.execute(f"DELETE FROM erp_staging.{table} WHERE dag_id = ANY(%s) AND status <> 'released'",
                         (dag_ids,))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--baseline-max", type=int, default=100_000,
                        help="largest size the row-by-row baseline is run at (it is slow)")
    parser.add_argument("--url", default=None, help="ERP staging database (default: ERP_STAGING_URL or local)")
    args = parser.parse_args(argv)
    url = args.url or db.resolve_erp_url()
    db.ensure_database(url)
    with db.connect(url) as conn:
        db.migrate(conn)
    results = []
    dag_ids: list[str] = []
    try:
        for n in args.sizes:
            first, rerun = make_lines(n), make_lines(n, scale=1.5)
            paths = [("copy", stage_batch)]
            if n <= args.baseline_max:
                paths.append(("rowwise", stage_batch_rowwise))
            for name, fn in paths:
                dag_id = f"bench_{name}_{n}_{uuid.uuid4().hex[:6]}"
                dag_ids.append(dag_id)
                with db.connect(url) as conn:
                    insert_s = _time(fn, conn, first, dag_id, "bench-1")
                    update_s = _time(fn, conn, rerun, dag_id, "bench-2")
                results.append({"path": name, "lines": n, "insert_s": round(insert_s, 3),
                                "insert_lines_per_s": round(n / insert_s),
                                "rerun_s": round(update_s, 3), "rerun_lines_per_s": round(n / update_s)})
                print(f"  staged {n:>7,} lines via {name:<7}: {insert_s:6.2f} s first run, "
                      f"{update_s:6.2f} s re-run", file=sys.stderr, flush=True)
    finally:
        _cleanup(url, dag_ids)

    print(f"\nERP staging throughput ({os.cpu_count()} cores, PostgreSQL at {url.split('@')[-1]})")
    print(f"{'path':<8} {'lines':>8} {'first run s':>12} {'lines/s':>10} {'re-run s':>10} {'lines/s':>10}")
    for r in results:
        print(f"{r['path']:<8} {r['lines']:>8,} {r['insert_s']:>12.2f} {r['insert_lines_per_s']:>10,}"
              f" {r['rerun_s']:>10.2f} {r['rerun_lines_per_s']:>10,}")
    speedups = {}
    for n in args.sizes:
        by = {r["path"]: r for r in results if r["lines"] == n}
        if "rowwise" in by:
            speedups[str(n)] = round(by["rowwise"]["insert_s"] / by["copy"]["insert_s"], 1)
            print(f"copy path is {speedups[str(n)]}x the row-by-row baseline at {n:,} lines (first run)")
    big = [r for r in results if r["path"] == "copy" and r["lines"] == 100_000]
    target_met = bool(big) and max(big[0]["insert_s"], big[0]["rerun_s"]) < TARGET_SECONDS_100K
    if big:
        print(f"target: 100,000 lines in under {TARGET_SECONDS_100K:.0f} s -> {'met' if target_met else 'MISSED'}")
    print(json.dumps({"benchmark": "erp_staging", "cores": os.cpu_count(), "sizes": args.sizes,
                      "results": results, "speedup_first_run": speedups,
                      "target_100k_under_5s": target_met if big else None}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
