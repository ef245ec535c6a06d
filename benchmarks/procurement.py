"""Lead-time prediction on the real USAID SCMS purchase orders, walking forward in time, against two baselines.

Every line ordered from ``--start`` on is predicted on its order date (``ordered_at``: the PO-sent date, or
the quote date where the file has none, see ``include/procurement/usaid.py``) from the receipts delivered
strictly before that date, and scored against its real delivery date. In the same run:

- ``leadtime``: the production entry point, ``include.procurement.leadtime.walk_forward``
  (hierarchical, recency-weighted delay against the promise, change detection, 80% interval);
- ``promised_date``: the supplier's scheduled delivery date;
- ``trailing_365d_mean``: the order date plus the mean lead time (delivered - ordered) of the supplier's
  receipts delivered in the 365 days before, else of every supplier's, else the promise.

Two diagnostics run beside them and are not held to the targets: the production model with the change
down-weighting off, and the production model asked on each line's scheduled date instead of its order date.

    PYTHONPATH=. .venv/bin/python benchmarks/procurement.py            # lines ordered 2012-01-01 on (~5 s)
    PYTHONPATH=. .venv/bin/python benchmarks/procurement.py --quick    # lines ordered 2014-01-01 on (~4 s)

The defaults of ``LeadTimeParams`` (window, change test) were chosen on lines ordered 2009-2011, so the
default ``--start`` scores only later lines; ``--start 2009-01-01`` includes the period they were chosen on.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time

import numpy as np
import pandas as pd

try:
    from benchmarks._common import SHARED_DATA, cpu_count, emit_json, ensure_project_on_path, format_table
except ModuleNotFoundError:  # run as a script: benchmarks/ itself is on sys.path
    from _common import SHARED_DATA, cpu_count, emit_json, ensure_project_on_path, format_table

ensure_project_on_path()

from include.procurement.leadtime import LeadTimeParams, predict_arrivals, walk_forward  # noqa: E402
from include.procurement.usaid import load_scms  # noqa: E402

SCMS = SHARED_DATA / "usaid_scms" / "SCMS_Delivery_History_Dataset.csv.zip"
METHODS = ("leadtime", "promised_date", "trailing_365d_mean")
#: Same run, not compared against the targets: the change down-weighting switched off and the interval
#: from past prediction errors (ablations), and the model asked on the scheduled date instead of the order
#: date (what fresher receipts could add; not available when ordering).
DIAGNOSTICS = ("leadtime_no_drift_downweight", "leadtime_residual_interval", "leadtime_asked_at_promised_date")
#: The issue's targets: MAE at least 20% below each baseline; the 80% interval covering 75-85%.
MAE_GAIN, COVERAGE_BAND = 0.20, (0.75, 0.85)


def trailing_mean_lead(history: pd.DataFrame, lines: pd.DataFrame, days: int = 365) -> pd.Series:
    """Each line's arrival as order date + mean lead time of receipts delivered in the ``days`` before it.

    Per supplier, falling back to all suppliers, then to the promised date. Vectorised with cumulative sums
    over receipts sorted by delivery: a window's mean is a difference of two prefix sums.
    """
    day = pd.Timedelta(days=1)
    lead = ((history["received_at"] - history["ordered_at"]) / day).to_numpy()
    t = ((history["received_at"] - pd.Timestamp(0)) / day).to_numpy()
    cut = ((lines["ordered_at"] - pd.Timestamp(0)) / day).to_numpy()

    def window_mean(h_code: np.ndarray, l_code: np.ndarray) -> np.ndarray:
        span = max(t.max(), cut.max()) - min(t.min(), cut.min() - days) + 2.0
        key = h_code * span + (t - t.min() + days + 1)
        order = np.argsort(key, kind="stable")
        prefix = np.concatenate([[0.0], np.cumsum(lead[order])])
        base = l_code * span - t.min() + days + 1
        hi = np.searchsorted(key[order], base + cut, side="left")
        lo = np.searchsorted(key[order], base + cut - days, side="left")
        count = hi - lo
        return np.divide(prefix[hi] - prefix[lo], count, out=np.full(len(cut), np.nan), where=count > 0)

    codes, uniques = pd.factorize(pd.concat([history["supplier_id"], lines["supplier_id"]], ignore_index=True))
    per_supplier = window_mean(codes[: len(history)], codes[len(history):])
    overall = window_mean(np.zeros(len(history), np.int64), np.zeros(len(lines), np.int64))
    mean = np.where(np.isnan(per_supplier), overall, per_supplier)
    promised = ((lines["promised_at"] - lines["ordered_at"]) / day).to_numpy()
    mean = np.where(np.isnan(mean), promised, mean)
    return lines["ordered_at"] + pd.to_timedelta(mean, unit="D")


def evaluate(frame: pd.DataFrame, start: pd.Timestamp, params: LeadTimeParams) -> tuple[pd.DataFrame, float]:
    """Absolute arrival errors (days) per evaluated line of every method and diagnostic, the production
    method's interval coverage flag, and the seconds its walk forward took."""
    began = time.perf_counter()
    ours = walk_forward(frame, params, start=start)
    seconds = time.perf_counter() - began
    lines = frame.loc[ours.index]
    actual = lines["received_at"]
    day = pd.Timedelta(days=1)
    no_downweight = walk_forward(frame, dataclasses.replace(params, drift_downweight=1.0), start=start)
    residual = walk_forward(frame, dataclasses.replace(params, interval_from="residuals"), start=start)
    # Diagnostic only: the same model asked on each line's scheduled date, with the receipts delivered
    # before it. Not available when the order is placed; it bounds what fresher receipts could add.
    at_promise = predict_arrivals(frame, lines.assign(ordered_at=lines["promised_at"]), params)
    errors = pd.DataFrame({
        "leadtime": ours["abs_error_days"],
        "promised_date": ((actual - lines["promised_at"]) / day).abs(),
        "trailing_365d_mean": ((actual - trailing_mean_lead(frame, lines)) / day).abs(),
        "leadtime_no_drift_downweight": no_downweight["abs_error_days"],
        "leadtime_residual_interval": residual["abs_error_days"], "covered_residual_interval": residual["covered"],
        "leadtime_asked_at_promised_date": ((actual - at_promise["predicted_arrival"]) / day).abs(),
        "covered": ours["covered"], "covered_no_drift_downweight": no_downweight["covered"],
        "drift": ours["drift"], "level": ours["level"], "fulfil_via": lines["fulfil_via"],
    }, index=lines.index)
    return errors, seconds


def _by_route(errors: pd.DataFrame, column: str | None, route: str) -> float | None:
    if column is None:
        return None
    part = errors.loc[errors["fulfil_via"] == route, column]
    return float(part.mean()) if len(part) else None


def table_rows(errors: pd.DataFrame) -> list[dict[str, object]]:
    """One row per method: MAE over all lines and per fulfilment route, gain against both baselines, and
    the coverage of the 80% interval where the method has one."""
    base = {m: errors[m].mean() for m in ("promised_date", "trailing_365d_mean")}
    coverage = {"leadtime": "covered", "leadtime_no_drift_downweight": "covered_no_drift_downweight",
                "leadtime_residual_interval": "covered_residual_interval"}
    rows = []
    for method in (*METHODS, *DIAGNOSTICS):
        mae = float(errors[method].mean())
        by_route = errors.groupby("fulfil_via")[method].mean()
        rows.append({"method": method, "lines": len(errors), "mae_days": mae,
                     "mae_direct_drop": float(by_route.get("Direct Drop", np.nan)),
                     "mae_from_rdc": float(by_route.get("From RDC", np.nan)),
                     "vs_promised": f"{1 - mae / base['promised_date']:+.1%}",
                     "vs_trailing": f"{1 - mae / base['trailing_365d_mean']:+.1%}",
                     "coverage_80": float(errors[coverage[method]].mean()) if method in coverage else None,
                     "coverage_direct_drop": _by_route(errors, coverage.get(method), "Direct Drop"),
                     "coverage_from_rdc": _by_route(errors, coverage.get(method), "From RDC"),
                     "note": "diagnostic" if method in DIAGNOSTICS else ""})
    return rows


def _fast_lane_batch(n: int, seed: int = 11) -> pd.DataFrame:
    """``n`` nightly replenishment orders tiered by the shipped policy: values from 100 to 12,000, a few
    runs out before the supplier's lead time (critical when worth 500 or more)."""
    from include.governance.policy import load_policy, tier_proposals

    rng = np.random.default_rng(seed)
    qty = rng.integers(10, 400, n).astype(float)
    cost = rng.choice([1.0, 4.0, 12.0, 30.0], n)
    rate = rng.uniform(2, 20, n)
    on_hand = np.where(rng.random(n) < 0.05, rate * rng.uniform(0.5, 4, n), rate * rng.uniform(10, 40, n))
    lines = pd.DataFrame({
        "doc_type": "replenishment", "business_key": [f"order:SUP{i % 9:03d}>DC01:SKU{i:06d}" for i in range(n)],
        "sku": [f"SKU{i:06d}" for i in range(n)], "from_location": None, "to_location": "DC01",
        "supplier_id": [f"SUP{i % 9:03d}" for i in range(n)], "po_id": None, "po_line": None, "action": "order",
        "quantity": qty, "unit_cost": cost, "value": np.round(qty * cost, 2), "need_by": pd.Timestamp("2026-11-30"),
        "explanation": [{"on_hand": float(h), "in_transit": 0.0, "allocated": 0.0, "backorders": 0.0,
                         "mean_daily_forecast": float(r), "lead_time_days": 7.0, "usual_quantity": float(q)}
                        for h, r, q in zip(on_hand, rate, qty, strict=True)]})
    return tier_proposals(lines, load_policy())


def fast_lane(url: str, n: int, review_seconds: float) -> dict[str, object]:
    """Stage a night of ``n`` orders through the production path, then have a manager approve every pending
    line ``review_seconds`` later (the approval page's ``decide_lines``) and the gate release the batch.

    Measured on the database's own clock: each critical line's release against its staging (auto-approved)
    or its decision (approved); each other line's release, which waits for the batch's gate, against its
    staging (the baseline: no fast lane).
    """
    import uuid

    from include.erp import db
    from include.erp.approvals import approver, decide_lines
    from include.erp.staging import release_approved, stage_batch
    from include.governance.policy import load_policy

    batch = _fast_lane_batch(n)
    dag_id, ds = f"bench_fast_lane_{uuid.uuid4().hex[:8]}", "2026-11-27"
    with db.connect(url) as conn:
        db.migrate(conn)
        stage_batch(conn, batch, dag_id=dag_id, run_id="night", ds=ds, fast_lane=True)
        time.sleep(review_seconds)
        pending = conn.execute("SELECT doc_type, line_id FROM erp_staging.all_lines WHERE dag_id=%s"
                               " AND status='pending_approval'", (dag_id,)).fetchall()
        decide_lines(conn, approver("bench-manager", ["op"], load_policy()), [(d, int(i)) for d, i in pending],
                     approve=True, note="benchmark")
        release_approved(conn, dag_id, ds, run_id="night")
        rows = conn.execute(
            "SELECT coalesce((explanation->>'critical')::boolean, false), decided_at IS NOT NULL,"
            " extract(epoch FROM released_at - coalesce(decided_at, created_at)),"
            " extract(epoch FROM released_at - created_at) FROM erp_staging.all_lines WHERE dag_id=%s", (dag_id,),
        ).fetchall()
    frame = pd.DataFrame(rows, columns=["critical", "decided", "from_ready", "from_staging"]).astype(
        {"from_ready": float, "from_staging": float})
    crit, rest = frame[frame["critical"]], frame[~frame["critical"]]
    return {
        "lines": n, "critical_lines": int(len(crit)), "critical_auto": int((~crit["decided"]).sum()),
        "critical_decided": int(crit["decided"].sum()), "review_seconds": review_seconds,
        "critical_release_seconds": round(float(crit["from_ready"].max()), 3) if len(crit) else None,
        "critical_release_seconds_median": round(float(crit["from_ready"].median()), 3) if len(crit) else None,
        "batch_release_seconds_median": round(float(rest["from_staging"].median()), 3) if len(rest) else None,
        "batch_release_seconds_max": round(float(rest["from_staging"].max()), 3) if len(rest) else None,
    }


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; returns the exit code (2 when the data file is missing or malformed)."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="evaluate lines ordered from 2014-01-01 only")
    ap.add_argument("--start", default="2012-01-01",
                    help="first order date evaluated; the defaults of LeadTimeParams were chosen on 2009-2011")
    ap.add_argument("--data", default=str(SCMS), help="the SCMS delivery history CSV (zipped or not)")
    ap.add_argument("--coverage", type=float, default=0.8, help="nominal coverage of the interval")
    ap.add_argument("--fast-lane-lines", type=int, default=5000, help="lines of the staged night (0: skip)")
    ap.add_argument("--review-seconds", type=float, default=20.0,
                    help="when the manager decides the night's pending lines, after staging")
    ap.add_argument("--url", default=None, help="ERP staging database (default: ERP_STAGING_URL or local)")
    args = ap.parse_args(argv)
    start = pd.Timestamp("2014-01-01" if args.quick else args.start)
    try:
        frame, report = load_scms(args.data)
    except (OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    params = LeadTimeParams(coverage=args.coverage)
    errors, seconds = evaluate(frame, start, params)
    print(f"SCMS: {report.rows_read} rows read, {report.rows_kept} kept; dropped: {report.dropped}; "
          f"ordered_at from {report.ordered_at_source}; shipment mode unknown: {report.mode_unknown}")
    print(f"evaluated {len(errors)} lines ordered from {start.date()}; walk forward {seconds:.2f} s; "
          f"drift flagged on {errors['drift'].mean():.1%}; levels {errors['level'].value_counts().to_dict()}")
    rows = table_rows(errors)
    print(format_table(rows, ["method", "lines", "mae_days", "mae_direct_drop", "mae_from_rdc", "vs_promised",
                              "vs_trailing", "coverage_80", "coverage_direct_drop", "coverage_from_rdc",
                              "note"]))
    mae = {m: float(errors[m].mean()) for m in METHODS}
    coverage = float(errors["covered"].mean())
    lane = {}
    if args.fast_lane_lines:
        from include.erp import db

        url = args.url or db.resolve_erp_url()
        db.ensure_database(url)
        lane = fast_lane(url, args.fast_lane_lines, args.review_seconds)
        print(f"\nFast lane: {lane['lines']} orders staged, {lane['critical_lines']} critical "
              f"({lane['critical_auto']} auto-approved, {lane['critical_decided']} decided by a manager "
              f"{args.review_seconds:g} s after staging)")
        print(format_table([
            {"path": "fast lane (critical)", "release_after": "staging or decision",
             "median_s": lane["critical_release_seconds_median"], "max_s": lane["critical_release_seconds"]},
            {"path": "batch gate (baseline)", "release_after": "staging",
             "median_s": lane["batch_release_seconds_median"], "max_s": lane["batch_release_seconds_max"]},
        ], ["path", "release_after", "median_s", "max_s"]))
    emit_json({
        "benchmark": "procurement", "cores": cpu_count(), "data": "usaid_scms",
        "rows_read": report.rows_read, "rows_kept": report.rows_kept, "rows_dropped": report.dropped,
        "lines_evaluated": len(errors), "start": str(start.date()), "nominal_coverage": args.coverage,
        "eta_mae_days": mae, "interval_coverage": coverage,
        "eta_mae_days_diagnostic": {m: float(errors[m].mean()) for m in DIAGNOSTICS}, "walk_forward_seconds": round(seconds, 3),
        "fast_lane": lane, "critical_release_seconds": lane.get("critical_release_seconds"),
        "targets": {
            "mae_20pct_below_promised_date": mae["leadtime"] <= (1 - MAE_GAIN) * mae["promised_date"],
            "mae_20pct_below_trailing_365d_mean": mae["leadtime"] <= (1 - MAE_GAIN) * mae["trailing_365d_mean"],
            "coverage_within_75_85": COVERAGE_BAND[0] <= coverage <= COVERAGE_BAND[1],
            **({"critical_released_within_60s": lane["critical_release_seconds"] is not None
                and lane["critical_release_seconds"] <= 60} if lane else {}),
        },
    })
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
