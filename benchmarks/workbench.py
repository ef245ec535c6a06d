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

The chart payload of a line (``chart_ms``) is not served yet: reported as null.

    PYTHONPATH=. .venv/bin/python benchmarks/workbench.py            # 10,000 lines (~1 min)
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import statistics
import sys
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
    print(f"\nThe queue of {args.lines:,} pending lines ({cpu_count()} cores; staged in {staged_s:.1f} s)")
    print(format_table(rows, ["request", "lines returned", "lines matching", "median ms"]))
    print(f"list_ms_10k (slowest request): {list_ms:.1f} ms; target under {TARGET_LIST_MS:.0f} ms -> "
          f"{'met' if list_ms < TARGET_LIST_MS else 'MISSED'}; the unpaged baseline: {unpaged_ms:.0f} ms")
    emit_json({"benchmark": "workbench", "cores": cpu_count(), "lines": args.lines, "list_ms_10k": list_ms,
               **figures, "unpaged_5000_ms": round(unpaged_ms, 1), "chart_ms": None,
               "target_list_ms_met": list_ms < TARGET_LIST_MS, "peak_rss_mb": round(peak_rss_mb())})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
