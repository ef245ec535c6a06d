"""Throughput of the data contracts: parse + validate + split + write, against plain GX validation.

For each size, a synthetic POS extract matching the ``pos_sales`` contract is generated with numpy
(about 3% bad rows: negative units, unknown SKUs, unparseable amounts) and measured in fresh
subprocesses, so that each figure has its own peak memory:

* ``pipeline``: ``parse_extract`` + ``validate_extract`` (GX suite for the verdict, vectorised row
  split) + writing the curated and quarantine partitions, from the CSV file on disk. As in
  ``ingest_source``, the parsed extract is dropped once validated, before the writes.
* ``gx``: the baseline, plain GX Core validation of the same already-typed frame with the same suite and
  ``COMPLETE`` results (what a pipeline needs to find the bad rows with GX alone). Parsing the frame is
  not counted for the baseline.

Each subprocess first runs the same code on the file's first 2,000 lines (one-off import and first-call
costs are not throughput). Peak memory is the process's peak RSS above its RSS just before the measured work (imports and the GX
context already loaded), compared with the typed extract's size in memory (``memory_usage(deep=True)`` of
the contract's columns; the lineage columns added by parsing are part of the measured work, not of the
extract).

Usage::

    python benchmarks/contracts.py                  # 1M and 10M rows
    python benchmarks/contracts.py --sizes 100000   # a quick run

Prints a table and, as the last line, one JSON object with every figure.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DS = "2026-11-27"
N_STORES, N_SKUS = 1_000, 20_000


def _rss_mb() -> float:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _maxrss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def generate(path: Path, n: int, seed: int = 7) -> dict[str, int]:
    """Write a POS extract of ``n`` rows with unique keys and a few percent of bad rows."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.csv as pacsv

    rng = np.random.default_rng(seed)
    combos = rng.permutation(N_STORES * N_SKUS)[:n]
    store, sku = combos // N_SKUS, combos % N_SKUS
    stores = pa.array([f"S{i:04d}" for i in range(1, N_STORES + 1)])
    # The second half are SKUs the item master does not know (keys stay unique).
    skus = pa.array([f"SKU{i:05d}" for i in range(1, N_SKUS + 1)] + [f"XSKU{i:05d}" for i in range(1, N_SKUS + 1)])
    units = rng.poisson(3, n).astype(np.int64)
    price = rng.choice(np.array([1.99, 2.99, 4.5, 9.99, 24.99]), n)
    bad = rng.random(n)
    negative, unknown, unparseable = bad < 0.01, (bad >= 0.01) & (bad < 0.02), (bad >= 0.02) & (bad < 0.03)
    units[negative] = -1
    sku[unknown] += N_SKUS
    gross = pc.cast(pa.array(np.round(units * price, 2)), pa.string())
    gross = pc.if_else(pa.array(unparseable), pa.scalar("n/a"), gross)
    table = pa.table({
        "store_id": pc.take(stores, pa.array(store)),
        "sku": pc.take(skus, pa.array(sku)),
        "business_date": pa.array([DS] * 1).take(pa.array(np.zeros(n, dtype=np.int64))),
        "units_sold": pc.cast(pa.array(units), pa.string()),
        "gross_sales": gross,
        "discount_amount": pa.array(["0.0"]).take(pa.array(np.zeros(n, dtype=np.int64))),
        "promo_id": pa.nulls(n, pa.string()),
    })
    pacsv.write_csv(table, path, write_options=pacsv.WriteOptions(quoting_style="none"))
    return {"negative": int(negative.sum()), "unknown_sku": int(unknown.sum()),
            "unparseable": int(unparseable.sum())}


def _references() -> dict[tuple[str, str], list[str]]:
    return {("locations", "location_id"): [f"S{i:04d}" for i in range(1, N_STORES + 1)],
            ("items", "sku"): [f"SKU{i:05d}" for i in range(1, N_SKUS + 1)]}


def measure(mode: str, path: str, out: str) -> dict:
    """Run one measurement in this process (called in a fresh subprocess)."""
    from include.contracts.contract import load_contracts
    from include.contracts.expectations import build_suite, gx_context, run_gx
    from include.contracts.validate import validate_extract
    from include.ingest.parse import parse_extract
    from include.storage import write_partition

    contract = load_contracts()["pos_sales"]
    refs = _references()
    gx_context()
    # Warm up on the file's first lines, as a long-lived worker would be: the first call of each Arrow,
    # pandas and GX code path pays one-off costs that are not throughput.
    warm = Path(out) / "warmup.csv"
    warm.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "rb") as src:
        warm.write_bytes(b"".join(src.readline() for _ in range(2001)))
    warm_parsed = parse_extract(contract, str(warm), DS)
    if mode == "gx":
        run_gx(warm_parsed.frame[[*contract.column_names, "_ds"]], build_suite(contract, refs)[0], contract.id,
                result_format="COMPLETE")
    else:
        _, warm_curated, _ = validate_extract(contract, warm_parsed, DS, refs)
        write_partition(warm_curated, "curated", "warmup", DS, out)
    del warm_parsed
    figures: dict = {"mode": mode}
    if mode == "gx":
        parsed = parse_extract(contract, path, DS)
        frame = parsed.frame[[*contract.column_names, "_ds"]]
        figures["frame_mb"] = frame[contract.column_names].memory_usage(deep=True).sum() / 2**20
        suite, _ = build_suite(contract, refs)
        del parsed
        base_rss = _rss_mb()
        start = time.perf_counter()
        validation = run_gx(frame, suite, contract.id, result_format="COMPLETE")
        figures["seconds"] = time.perf_counter() - start
        figures["success"] = bool(validation.success)
        figures["unexpected"] = {er.expectation_config.type: er.result.get("unexpected_count")
                                 for er in validation.results if not er.success}
    else:
        base_rss = _rss_mb()
        start = time.perf_counter()
        parsed = parse_extract(contract, path, DS)
        t_parse = time.perf_counter()
        frame_mb = parsed.frame[contract.column_names].memory_usage(deep=True).sum() / 2**20
        t_size = time.perf_counter()
        result, curated, quarantine = validate_extract(contract, parsed, DS, refs)
        # As ``ingest_source`` does: the parsed extract is not needed for writing the split.
        del parsed
        t_validate = time.perf_counter()
        write_partition(curated, "curated", contract.id, DS, out)
        write_partition(quarantine, "quarantine", contract.id, DS, out)
        end = time.perf_counter()
        figures.update(seconds=end - start - (t_size - t_parse), parse_s=t_parse - start,
                       validate_s=t_validate - t_size, write_s=end - t_validate, outcome=result.outcome,
                       rows_passed=result.rows_passed, rows_quarantined=result.rows_quarantined,
                       breaches=result.breaches, frame_mb=frame_mb)
    figures["peak_mb"] = max(0.0, _maxrss_mb() - base_rss)
    return figures


def _child(mode: str, path: Path, out: Path) -> dict:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "GX_ANALYTICS_ENABLED": "false"}
    proc = subprocess.run([sys.executable, __file__, "--child", mode, str(path), str(out)], env=env,
                          capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"{mode} run failed:\n{proc.stderr[-4000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="1000000,10000000", help="comma-separated row counts")
    parser.add_argument("--child", nargs=3, metavar=("MODE", "PATH", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        import logging

        logging.disable(logging.WARNING)
        print(json.dumps(measure(*args.child), default=str))
        return
    sizes = [int(s) for s in args.sizes.split(",") if s]
    rows = []
    with tempfile.TemporaryDirectory(prefix="shelfwise-bench-") as tmp:
        for n in sizes:
            path = Path(tmp) / f"pos_sales_{n}.csv"
            bad = generate(path, n)
            size_mb = path.stat().st_size / 2**20
            pipe = _child("pipeline", path, Path(tmp) / "out")
            gx = _child("gx", path, Path(tmp) / "out")
            rows.append({
                "rows": n, "file_mb": round(size_mb, 1), "frame_mb": round(pipe["frame_mb"], 1), "bad_rows": bad,
                "pipeline_s": round(pipe["seconds"], 3), "pipeline_rows_per_s": round(n / pipe["seconds"]),
                "parse_s": round(pipe["parse_s"], 3), "validate_s": round(pipe["validate_s"], 3),
                "write_s": round(pipe["write_s"], 3), "pipeline_peak_mb": round(pipe["peak_mb"], 1),
                "pipeline_peak_x_frame": round(pipe["peak_mb"] / pipe["frame_mb"], 2),
                "outcome": pipe["outcome"], "rows_quarantined": pipe["rows_quarantined"],
                "gx_baseline_s": round(gx["seconds"], 3), "gx_baseline_rows_per_s": round(n / gx["seconds"]),
                "gx_baseline_peak_mb": round(gx["peak_mb"], 1),
                "speedup_vs_gx": round(gx["seconds"] / pipe["seconds"], 2),
            })
            path.unlink()
    header = (f"{'rows':>11} {'file MB':>8} {'frame MB':>9} {'pipeline s':>11} {'rows/s':>10} {'parse':>6} "
              f"{'valid.':>6} {'write':>6} {'peak MB':>8} {'xframe':>6} | {'GX s':>7} {'GX rows/s':>10} "
              f"{'GX peak':>8} | {'quarantined':>11}")
    print(header)
    print("-" * len(header))
    for r in rows:
        print(f"{r['rows']:>11,} {r['file_mb']:>8} {r['frame_mb']:>9} {r['pipeline_s']:>11} "
              f"{r['pipeline_rows_per_s']:>10,} {r['parse_s']:>6} {r['validate_s']:>6} {r['write_s']:>6} "
              f"{r['pipeline_peak_mb']:>8} {r['pipeline_peak_x_frame']:>6} | {r['gx_baseline_s']:>7} "
              f"{r['gx_baseline_rows_per_s']:>10,} {r['gx_baseline_peak_mb']:>8} | {r['rows_quarantined']:>11,}")
    print("pipeline = parse + validate (GX verdict + vectorised split) + write curated and quarantine Parquet; "
          "GX = plain GX COMPLETE validation of the typed frame (parsing not counted)")
    print(json.dumps({"benchmark": "contracts", "cores": os.cpu_count(), "sizes": rows}))


if __name__ == "__main__":
    main()
