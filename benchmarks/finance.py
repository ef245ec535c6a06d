"""Finance review: margin bridge and review items against named baselines, night by night, same worlds.

Every figure is the production code: ``include.finance.bridge.margin_bridge`` (every night's trailing week
against the cell's own baseline weeks, and its last two nights against the baseline's 2-day blocks) and
``include.finance.review.detect_items`` + ``dedupe_items`` (one item per cell x cause episode). The worlds come from :func:`include.sample_data.finance.finance_world` on
generated retailers (``small`` preset, one per seed), each with ``events_per_kind`` injected events of each
kind (runaway markdown, expedite surge, substitution storm, shrink spike); the truth is used only to score.
Every night from two weeks before the first event to a week after the last one is evaluated, on every cell.

* ``detection_rate``: share of events with an item on their cell and cause (any cause for the fixed rule)
  within 2 nights of their start (the start night counts as night 1; ``detection_rate_4_nights`` within 4);
  ``median_nights_to_detect`` over the events detected while they lasted;
* ``false_items_per_50_category_weeks``: items (episodes, after de-duplication) on a cell x cause with no
  injected event from its start to a week after its end, per 50 category-weeks evaluated (a category-week is
  one cell, category x channel x location, judged on 7 nights);
* ``bridge_max_residual_pct``: max over bridge rows of ``|sum of causes - margin change| / |actual margin|``
  in %, on rows with an actual margin of at least one currency unit.

Baselines, same nights and worlds: ``models.anomaly.margin.detect_margin_leakage`` (SKU x channel, 28 days
against the 90 before; a flag on a SKU of the event's category and channel counts for the event, whatever
the location: a generous match) and a fixed rule (a cell's margin % over the week more than
``--fixed-points`` below its expected margin %, cause unknown).

Then the bridge alone on ``--scale-categories`` categories x 3 channels x ``--scale-locations`` locations x
365 days of daily cell totals: every night of the year at once (``scale_year_seconds``), and the last night
alone from the 13 weeks it reads, with the review (``scale_nightly_seconds``: what the nightly runs).

Last, the executive dashboard: 365 nights x 20 KPIs rendered as the plugin serves them (``dashboard_ms``,
server time), against matplotlib drawing the same series to SVG (``matplotlib_svg_ms``).

    PYTHONPATH=. .venv/bin/python benchmarks/finance.py           # 4 worlds, 48 events, 50x3x50 cells (~3 min)
    PYTHONPATH=. .venv/bin/python benchmarks/finance.py --quick   # 2 worlds, 24 events, 20x3x20 cells (~80 s)
"""

from __future__ import annotations

import argparse
import dataclasses
import time

import numpy as np
import pandas as pd

try:
    from benchmarks._common import cpu_count, emit_json, ensure_project_on_path, format_table, peak_rss_mb
except ModuleNotFoundError:  # run as a script: benchmarks/ itself is on sys.path
    from _common import cpu_count, emit_json, ensure_project_on_path, format_table, peak_rss_mb

ensure_project_on_path()

from include.finance.bridge import FinanceFrames, margin_bridge  # noqa: E402
from include.finance.params import CELL_KEYS, DEFAULT_REVIEW, BridgeParams  # noqa: E402
from include.finance.review import dedupe_items, detect_items  # noqa: E402
from include.finance.sales import return_lines  # noqa: E402
from include.sample_data.finance import FinanceConfig, finance_world  # noqa: E402
from include.sample_data.generator import PRESETS, generate_world  # noqa: E402
from models.anomaly.margin import detect_margin_leakage  # noqa: E402

BRIDGE = BridgeParams()
KEYS = [*CELL_KEYS, "cause"]
METHODS = ("finance review", "fixed rule (margin % drop)", "margin leakage (SKU x channel)")


def episodes(flags: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """One row per episode of ``flags`` (``keys`` + ``night``), via the production de-duplication."""
    state, out = None, []
    for night, tonight in flags.groupby("night", sort=True):
        frame = tonight.rename(columns=dict(zip(keys, KEYS, strict=True))) if keys != KEYS else tonight
        items, state = dedupe_items(frame.assign(night=night), state)
        out.append(items.loc[items["is_new"], [*KEYS, "start"]].rename(columns=dict(zip(KEYS, keys, strict=True))))
    return pd.concat(out, ignore_index=True) if out else pd.DataFrame(columns=[*keys, "start"])


def score(found: pd.DataFrame, events: pd.DataFrame, match: list[str]) -> tuple[pd.DataFrame, int]:
    """Per event the nights to its first episode on ``match`` keys, and the episodes matching no event."""
    pairs = found.merge(events, on=match, how="left")
    live = (pairs["start_x"] >= pairs["start_y"]) & (pairs["start_x"] <= pairs["end"] + pd.Timedelta(days=7))
    during = live & (pairs["start_x"] <= pairs["end"])
    nights = ((pairs.loc[during, "start_x"] - pairs.loc[during, "start_y"]).dt.days + 1).groupby(
        pairs.loc[during, "event_id"]).min()
    true_episode = live.groupby(pairs["_episode"]).any()
    return events.assign(nights=events["event_id"].map(nights)), int((~true_episode).sum())


def evaluate_world(seed: int, args) -> dict:
    world = generate_world(dataclasses.replace(PRESETS["small"], seed=seed, history_days=args.history_days))
    fw = finance_world(world, seed=seed, config=FinanceConfig(events_per_kind=args.events_per_kind))
    events = fw.events.assign(start=pd.to_datetime(fw.events["start"]), end=pd.to_datetime(fw.events["end"]))
    nights = pd.date_range(events["start"].min() - pd.Timedelta(days=14), min(
        events["end"].max() + pd.Timedelta(days=7), pd.Timestamp(world.config.end_date)))
    frames = fw.frames()
    began = time.perf_counter()
    bridge = margin_bridge(frames, nights.to_numpy(), BRIDGE)
    flagged = detect_items(bridge, DEFAULT_REVIEW)
    seconds = time.perf_counter() - began
    judged = bridge[bridge["baseline_weeks"] >= DEFAULT_REVIEW.min_baseline_weeks]
    found = {METHODS[0]: episodes(flagged[[*KEYS, "night"]], KEYS)}
    drop = judged["expected_margin_pct"] - judged["actual_margin_pct"] > args.fixed_points
    fixed = judged.loc[drop, [*CELL_KEYS, "night"]].assign(cause="margin")
    found[METHODS[1]] = episodes(fixed, KEYS)
    found[METHODS[2]] = leakage_episodes(frames, fw, nights)
    rows = {}
    for method, eps in found.items():
        eps = eps.assign(_episode=np.arange(len(eps)), start=pd.to_datetime(eps["start"]))
        if method == METHODS[0]:
            scored, false = score(eps, events, KEYS)
        elif method == METHODS[1]:
            scored, false = score(eps.drop(columns="cause"), events, list(CELL_KEYS))
        else:
            ev = events.assign(channel=np.where(events["channel"] == "store", "store", "ecommerce"))
            scored, false = score(eps, ev, ["category", "channel"])
        rows[method] = {"events": scored, "false": false, "items": len(eps)}
    residual = bridge.loc[bridge["actual_margin"].abs() >= 1.0, "residual_pct"]
    return {"rows": rows, "category_weeks": len(judged) / 7, "bridge_rows": len(bridge), "bridge_seconds": seconds,
            "max_residual_pct": float(residual.max()), "nights": len(nights), "cells": judged[list(CELL_KEYS)]
            .drop_duplicates().shape[0]}


def leakage_episodes(frames: FinanceFrames, fw, nights: pd.DatetimeIndex) -> pd.DataFrame:
    """Episodes of the existing SKU x channel margin leakage detector, run every night."""
    sales = frames.sales.assign(channel=np.where(frames.sales["channel"] == "store", "store", "ecommerce"))
    daily = sales.groupby(["channel", "sku", "date"], as_index=False)[["units", "gross_sales"]].sum()
    daily["discount_amount"] = sales.groupby(["channel", "sku", "date"])[
        ["markdown_amount", "promo_discount"]].sum().sum(axis=1).to_numpy()
    returns = return_lines(fw.world.returns)
    items = fw.world.items[["sku", "unit_price", "unit_cost"]]
    category = fw.world.items.set_index("sku")["category"]
    flags = []
    for night in nights:
        out = detect_margin_leakage(daily, returns, items, as_of=night.date())
        if len(out):
            flags.append(pd.DataFrame({"category": out["sku"].map(category), "channel": out["channel"],
                                       "location_id": out["sku"], "cause": "margin", "night": night}))
    if not flags:
        return pd.DataFrame(columns=["category", "channel", "sku", "start"])
    eps = episodes(pd.concat(flags, ignore_index=True), KEYS)
    return eps.rename(columns={"location_id": "sku"}).drop(columns="cause")


def bridge_scale(n_categories: int, n_locations: int, days: int = 365, seed: int = 0) -> dict:
    """The bridge on daily totals of every category x channel x location for ``days`` days."""
    rng = np.random.default_rng(seed)
    cats = np.array([f"C{i:03d}" for i in range(n_categories)], dtype=object)
    locs = np.array([f"L{i:03d}" for i in range(n_locations)], dtype=object)
    day = np.datetime64("2026-01-01") + np.arange(days)
    grid = pd.MultiIndex.from_product([cats, ["store", "web", "app"], locs, day],
                                      names=["sku", "channel", "location_id", "date"]).to_frame(index=False)
    n = len(grid)
    gross = rng.gamma(4.0, 250.0, n)
    sales = grid.assign(units=gross / 20, gross_sales=gross, markdown_amount=gross * rng.uniform(0, 0.03, n),
                        promo_discount=gross * rng.uniform(0, 0.05, n), promo_gross=gross * 0.2)
    rest = {"returned_at": grid["date"], "shipped_at": grid["date"], "recorded_at": grid["date"],
            "adjusted_at": grid["date"]}
    frames = FinanceFrames(
        sales=sales, returns=grid.assign(returned_at=rest["returned_at"], refund_amount=gross * rng.uniform(0, 0.05, n)),
        shipments=grid.assign(shipped_at=rest["shipped_at"], shipping_cost=gross * 0.02,
                              service_level=np.where(rng.random(n) < 0.1, "expedited", "standard")),
        substitutions=grid.assign(recorded_at=rest["recorded_at"], extra_cost=gross * rng.uniform(0, 0.01, n)),
        shrink=grid.assign(adjusted_at=rest["adjusted_at"], value_at_cost=-gross * rng.uniform(0, 0.01, n)),
        items=pd.DataFrame({"sku": cats, "category": cats, "unit_cost": 12.0}))
    first = day[BRIDGE.window_days * (BRIDGE.baseline_weeks + 1) - 1]
    began = time.perf_counter()
    year = margin_bridge(frames, pd.date_range(first, day[-1]).to_numpy(), BRIDGE)
    year_s = time.perf_counter() - began
    # The nightly reads only the window and its baseline weeks (include/stages/finance.py does the same).
    needed = day[-BRIDGE.window_days * (BRIDGE.baseline_weeks + 1):]
    recent = FinanceFrames(**{name: f[f[when].isin(needed)] for name, f, when in (
        ("sales", frames.sales, "date"), ("returns", frames.returns, "returned_at"),
        ("shipments", frames.shipments, "shipped_at"), ("substitutions", frames.substitutions, "recorded_at"),
        ("shrink", frames.shrink, "adjusted_at"))}, items=frames.items)
    began = time.perf_counter()
    night = margin_bridge(recent, day[-1], BRIDGE)
    items = detect_items(night)
    night_s = time.perf_counter() - began
    return {"scale_cells": n_categories * 3 * n_locations, "scale_daily_rows": n, "scale_bridge_rows": len(year),
            "scale_year_seconds": round(year_s, 2), "scale_nightly_seconds": round(night_s, 2),
            "scale_nightly_items": len(items), "scale_residual_pct": float(year["residual_pct"].max())}


def summarise(worlds: list[dict]) -> tuple[list[dict], dict]:
    weeks = sum(w["category_weeks"] for w in worlds)
    table, figures = [], {}
    for method in METHODS:
        events = pd.concat([w["rows"][method]["events"] for w in worlds], ignore_index=True)
        false = sum(w["rows"][method]["false"] for w in worlds)
        within = events["nights"] <= 2
        row = {"method": method, "events": len(events), "detected_2_nights": int(within.sum()),
               "detection_rate": float(within.mean()), "detection_rate_4_nights": float((events["nights"] <= 4).mean()),
               "median_nights_to_detect": float(events["nights"].median()) if events["nights"].notna().any() else None,
               "items": sum(w["rows"][method]["items"] for w in worlds), "false_items": false,
               "false_items_per_50_category_weeks": 50 * false / weeks}
        table.append(row)
        if method == METHODS[0]:
            figures = {k: row[k] for k in ("detection_rate", "detection_rate_4_nights", "median_nights_to_detect",
                                            "false_items_per_50_category_weeks")}
            figures["by_cause"] = events.groupby("cause")["nights"].apply(lambda s: float((s <= 2).mean())).to_dict()
        else:
            tag = "fixed_rule" if method == METHODS[1] else "margin_leakage"
            figures.update({f"{tag}_detection_rate": row["detection_rate"],
                            f"{tag}_median_nights_to_detect": row["median_nights_to_detect"],
                            f"{tag}_false_items_per_50_category_weeks": row["false_items_per_50_category_weeks"]})
    figures["bridge_max_residual_pct"] = max(w["max_residual_pct"] for w in worlds)
    figures["category_weeks"] = round(weeks, 1)
    return table, figures


def dashboard_timing(nights: int = 365, kpis: int = 20) -> dict[str, float]:
    """The executive dashboard's server time for ``nights`` x ``kpis``: the page the plugin serves
    (:func:`include.reporting.dashboard.time_dashboard`, median of 5), against the same small multiples drawn
    by matplotlib to SVG (the nightly report's charting library), the named baseline."""
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from include.reporting.dashboard import KEYS, synthetic_history, time_dashboard

    history, _ = synthetic_history(nights, kpis)
    samples = []
    for _ in range(3):
        start = time.perf_counter()
        fig, axes = plt.subplots(5, 4, figsize=(16, 12))
        for ax, key in zip(axes.flat, KEYS[:kpis], strict=False):
            ax.plot(history["ds"], history[key])
            ax.set_title(key, fontsize=8)
        fig.savefig(io.BytesIO(), format="svg")
        plt.close(fig)
        samples.append((time.perf_counter() - start) * 1000.0)
    return {"dashboard_nights": nights, "dashboard_kpis": kpis, "dashboard_ms": round(time_dashboard(nights, kpis), 1),
            "matplotlib_svg_ms": round(float(np.median(samples)), 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2 worlds, 20 x 3 x 20 cells for the bridge timing")
    parser.add_argument("--seeds", type=int, default=4, help="worlds (seeds 1..n)")
    parser.add_argument("--events-per-kind", type=int, default=3)
    parser.add_argument("--history-days", type=int, default=300)
    parser.add_argument("--fixed-points", type=float, default=5.0, help="margin points the fixed rule tolerates")
    parser.add_argument("--scale-categories", type=int, default=50)
    parser.add_argument("--scale-locations", type=int, default=50)
    args = parser.parse_args()
    if args.quick:
        args.seeds, args.scale_categories, args.scale_locations = min(args.seeds, 2), 20, 20
    began = time.perf_counter()
    worlds = [evaluate_world(seed, args) for seed in range(1, args.seeds + 1)]
    table, figures = summarise(worlds)
    print(f"{len(worlds)} worlds, {sum(w['nights'] for w in worlds)} nights, {figures['category_weeks']} "
          f"category-weeks judged, {sum(w['bridge_rows'] for w in worlds)} bridge rows\n")
    print(format_table(table, list(table[0])) + "\n")
    print(format_table([{"cause": c, "detection_rate": r} for c, r in figures.pop("by_cause").items()],
                       ["cause", "detection_rate"]) + "\n")
    payload = {**figures, "worlds": len(worlds), "events": table[0]["events"],
               "bridge_rows": sum(w["bridge_rows"] for w in worlds),
               "bridge_and_review_seconds": round(sum(w["bridge_seconds"] for w in worlds), 2)}
    scale = bridge_scale(args.scale_categories, args.scale_locations)
    print(format_table([scale], list(scale)) + "\n")
    payload.update(scale)
    board = dashboard_timing()
    print(format_table([board], list(board)) + "\n")
    payload.update(board)
    payload.update({"cores": cpu_count(), "peak_rss_mb": round(peak_rss_mb()),
                    "seconds": round(time.perf_counter() - began, 1),
                    "targets_met": {"detection_90pct_in_2_nights": payload["detection_rate"] >= 0.9,
                                    "under_1_false_per_50_category_weeks":
                                        payload["false_items_per_50_category_weeks"] < 1.0,
                                    "residual_under_half_pct": payload["bridge_max_residual_pct"] <= 0.5,
                                    "dashboard_under_1s": payload["dashboard_ms"] < 1000.0}})
    print(f"peak memory {payload['peak_rss_mb']} MiB, {payload['seconds']} s in all")
    emit_json({k: (round(v, 4) if isinstance(v, float) else v) for k, v in payload.items()})


if __name__ == "__main__":
    main()
