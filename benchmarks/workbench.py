"""The planners' queue at scale: 10,000 pending lines listed, filtered, sorted and counted, server time.

Every figure is the production code behind ``GET /shelfwise/api/lines``: the plugin's FastAPI app, called
in process (Starlette's test client) as a planner, so a request is timed from routing to the JSON body,
through the query model, ``include.erp.approvals.list_pending`` and ``queue_counts`` on the real PostgreSQL,
and the serialisation; only the network is left out. The queue is ``--lines`` pending lines of one run, staged
by the production ``stage_batch`` (document types, tiers and values as ``benchmarks/staging.py`` makes them,
with days of cover and need-by dates spread), in a database of its own.

Requests timed (median of ``--repeat``, after one warm-up):

* ``page``: the first page (100 lines) of the whole queue by impact, with its counts;
* ``filtered``: the medium-tier transfers by days to stock-out, with their counts;
* ``search``: the lines of one store (search text), by value;
* ``deep_page``: the page at offset 9,000 by need-by date;
* ``list_ms_10k``: the slowest of the four (the target: under 200 ms).

Baseline, same queue and app: every pending line in one response (``limit=5000``, the page's largest; what
the approvals page did before paging), ``unpaged_5000_ms``.

Then a line's chart (``chart_ms``): ``include.reporting.line_chart.chart_data`` and ``chart_svg`` (what
``GET /shelfwise/api/chart.svg`` returns) for ``--chart-lines`` lines of random series, on a night of
``--chart-series`` daily series x 365 days of demand (written in the nightly's 5,000-series shards by the
production ``write_shard``) and their 28-day forecasts; the median and the 95th percentile. Baseline, same
lines: the night's demand and forecast partitions read whole and the series picked in pandas
(``chart_read_whole_ms``).

    PYTHONPATH=. .venv/bin/python benchmarks/workbench.py            # 10,000 lines, 20,000 series (~2 min)
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np

try:
    from benchmarks._common import cpu_count, emit_json, ensure_project_on_path, format_table, peak_rss_mb
except ModuleNotFoundError:  # run as a script: benchmarks/ itself is on sys.path
    from _common import cpu_count, emit_json, ensure_project_on_path, format_table, peak_rss_mb

ensure_project_on_path()

from benchmarks.staging import DS, make_lines  # noqa: E402
from include.erp import db  # noqa: E402
from include.erp.staging import stage_batch  # noqa: E402

TARGET_LIST_MS = 200.0
TARGET_CHART_MS = 100.0
DATABASE = "shelfwise_bench_workbench"
#: The server when neither ``--url`` nor ``ERP_STAGING_OWNER_URL``/``ERP_STAGING_URL`` names one (the local
#: PostgreSQL of the README, trust authentication).
LOCAL_SERVER = "postgresql://postgres@127.0.0.1:5432/postgres"


def queue_lines(n: int):
    """``n`` pending lines of one run: staging's realistic mix, none auto-approved, cover and dates spread."""
    lines = make_lines(n)
    rng = np.random.default_rng(11)
    lines["auto_approve"] = False
    lines["risk_tier"] = np.where(lines["risk_tier"] == "low", "medium", lines["risk_tier"])
    lines["need_by"] = [DS + dt.timedelta(days=int(d)) for d in rng.integers(1, 30, n)]
    lines["explanation"] = [{**e, "on_hand": float(h), "mean_daily_forecast": float(r)}
                            for e, h, r in zip(lines["explanation"], rng.gamma(2.0, 10.0, n), rng.gamma(2.0, 2.0, n),
                                               strict=True)]
    return lines


def chart_night(root: str, n_series: int, days: int = 365, shard_size: int = 5000) -> list[str]:
    """A night of ``n_series`` daily demand series and their 28-day forecasts under ``root``; the series ids."""
    import pandas as pd

    from include.storage import write_partition, write_shard

    rng = np.random.default_rng(5)
    ids = np.array([f"S{i // 200:04d}|SKU{i % 200:05d}" for i in range(n_series)])
    dates = pd.date_range(end=pd.Timestamp(DS), periods=days, freq="D")
    n_shards = -(-n_series // shard_size)
    for shard in range(n_shards):
        part = ids[shard * shard_size:(shard + 1) * shard_size]
        write_shard(pd.DataFrame({
            "unique_id": np.repeat(part, days), "ds": np.tile(dates, len(part)),
            "y": rng.poisson(3.0, len(part) * days).astype(float),
            "censored": rng.random(len(part) * days) < 0.02}), "curated", "demand", DS, shard, n_shards, root)
    ahead = pd.date_range(pd.Timestamp(DS) + pd.Timedelta(days=1), periods=28, freq="D")
    mean = np.repeat(rng.gamma(2.0, 1.5, n_series), 28)
    write_partition(pd.DataFrame({"unique_id": np.repeat(ids, 28), "ds": np.tile(ahead, n_series),
                                  "step": np.tile(np.arange(1, 29), n_series), "mean": mean, "q50": mean,
                                  "q80": mean * 1.3, "q95": mean * 1.7, "sigma_cum": mean}),
                    "forecasts", "demand", DS, root)
    return list(ids)


def time_charts(root: str, ids: list[str], n_lines: int) -> dict[str, float]:
    """Median and p95 ms of a line's chart (data and SVG), and of the baseline reading the night whole."""
    from include.reporting.line_chart import chart_data, chart_svg
    from include.storage import read_partition

    rng = np.random.default_rng(3)
    picks = [ids[i] for i in rng.integers(0, len(ids), n_lines)]
    times, whole = [], []
    for uid in picks:
        location, sku = uid.split("|")
        line = {"doc_type": "replenishment", "line_id": 1, "ds": DS.isoformat(), "sku": sku, "from_location": None,
                "to_location": location, "quantity": 24.0, "need_by": (DS + dt.timedelta(days=4)).isoformat(),
                "explanation": {"on_hand": 20.0, "in_transit": 6.0, "allocated": 0.0, "backorders": 0.0}}
        start = time.perf_counter()
        chart_svg(chart_data(line, root))
        times.append((time.perf_counter() - start) * 1000)
    for uid in picks[: max(2, n_lines // 10)]:
        start = time.perf_counter()
        demand = read_partition("curated", "demand", DS, root)
        forecast = read_partition("forecasts", "demand", DS, root)
        demand[demand["unique_id"] == uid], forecast[forecast["unique_id"] == uid]  # noqa: B018 - the selection
        whole.append((time.perf_counter() - start) * 1000)
    return {"chart_ms": round(statistics.median(times), 1), "chart_p95_ms": round(float(np.percentile(times, 95)), 1),
            "chart_read_whole_ms": round(statistics.median(whole), 1)}


def _client():
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "plugins"))
    import shelfwise_approvals
    import shelfwise_web
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser
    from fastapi.testclient import TestClient

    app = shelfwise_approvals.create_app()
    app.dependency_overrides[shelfwise_web.current_user] = lambda: SimpleAuthManagerUser(username="planner",
                                                                                       role="user")
    return TestClient(app)


def _time_get(client, path: str, repeat: int) -> tuple[float, dict]:
    answer = client.get(path)
    if answer.status_code != 200:
        raise SystemExit(f"{path}: HTTP {answer.status_code} {answer.text[:300]}")
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        answer = client.get(path)
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times), answer.json()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--chart-series", type=int, default=20_000)
    parser.add_argument("--chart-lines", type=int, default=50)
    parser.add_argument("--url", default=None, help=f"owner URL of the database (default: {DATABASE} on the "
                                                    "server of ERP_STAGING_OWNER_URL, else the local one)")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
    from shelfwise import with_database  # scripts/shelfwise.py: the same server URL, another database

    server = os.environ.get("ERP_STAGING_OWNER_URL") or os.environ.get("ERP_STAGING_URL") or LOCAL_SERVER
    url = args.url or with_database(server, DATABASE)
    db.ensure_database(url)
    with db.connect(url) as conn:
        db.migrate(conn)
        # One run's queue alone: earlier runs of this benchmark leave nothing pending.
        for table in ("replenishment_order_lines", "stock_transfer_lines", "po_exception_lines"):
            conn.execute(f"DELETE FROM erp_staging.{table} WHERE status = 'pending_approval'")
        conn.commit()
        dag_id = f"bench_workbench_{uuid.uuid4().hex[:6]}"
        start = time.perf_counter()
        stage_batch(conn, queue_lines(args.lines), dag_id=dag_id, run_id="bench-1", ds=DS)
        staged_s = time.perf_counter() - start
    os.environ["ERP_STAGING_URL"] = url
    os.environ["AIRFLOW_CONN_ERP_STAGING"] = url
    client = _client()
    requests = {
        "page": "/api/lines?limit=100&sort=impact",
        "filtered": f"/api/lines?dag_id={dag_id}&doc_type=transfer&tier=medium&sort=cover&limit=100",
        "search": "/api/lines?search=S0001&sort=value&limit=100",
        "deep_page": "/api/lines?sort=deadline&limit=100&offset=9000",
    }
    rows, figures = [], {}
    for name, path in requests.items():
        ms, body = _time_get(client, path, args.repeat)
        figures[f"{name}_ms"] = round(ms, 1)
        rows.append({"request": name, "lines returned": body["count"], "lines matching": body["total"],
                     "median ms": round(ms, 1)})
    unpaged_ms, body = _time_get(client, "/api/lines?limit=5000&sort=impact", max(3, args.repeat // 2))
    rows.append({"request": "baseline: unpaged (limit 5000)", "lines returned": body["count"],
                 "lines matching": body["total"], "median ms": round(unpaged_ms, 1)})
    list_ms = max(figures.values())
    with tempfile.TemporaryDirectory() as root:
        ids = chart_night(root, args.chart_series)
        charts = time_charts(root, ids, args.chart_lines)
    print(f"\nThe queue of {args.lines:,} pending lines ({cpu_count()} cores; staged in {staged_s:.1f} s)")
    print(format_table(rows, ["request", "lines returned", "lines matching", "median ms"]))
    print(f"list_ms_10k (slowest request): {list_ms:.1f} ms; target under {TARGET_LIST_MS:.0f} ms -> "
          f"{'met' if list_ms < TARGET_LIST_MS else 'MISSED'}; the unpaged baseline: {unpaged_ms:.0f} ms")
    print(f"\nA line's chart on a night of {args.chart_series:,} series x 365 days ({args.chart_lines} lines)")
    print(format_table([{"path": "chart_data + chart_svg (production)", "median ms": charts["chart_ms"],
                         "p95 ms": charts["chart_p95_ms"]},
                        {"path": "baseline: the night read whole, series picked", "median ms":
                         charts["chart_read_whole_ms"], "p95 ms": ""}], ["path", "median ms", "p95 ms"]))
    print(f"chart_ms: {charts['chart_ms']:.1f} ms; target under {TARGET_CHART_MS:.0f} ms -> "
          f"{'met' if charts['chart_ms'] < TARGET_CHART_MS else 'MISSED'}")
    emit_json({"benchmark": "workbench", "cores": cpu_count(), "lines": args.lines, "list_ms_10k": list_ms,
               **figures, "unpaged_5000_ms": round(unpaged_ms, 1), **charts, "chart_series": args.chart_series,
               "chart_days": 365, "target_list_ms_met": list_ms < TARGET_LIST_MS,
               "target_chart_ms_met": charts["chart_ms"] < TARGET_CHART_MS, "peak_rss_mb": round(peak_rss_mb())})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
