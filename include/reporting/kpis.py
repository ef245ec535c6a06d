"""The KPIs retail leaders track, computed for one logical date, with a chart and a short report.

Stock-outs, fill rate, inventory turns, forecast accuracy and fulfilment cost. Every figure comes
from the curated data and the forecasts written by earlier runs, so a re-run gives the same numbers.
"""

from __future__ import annotations

import datetime as dt
import json
import math

import numpy as np
import pandas as pd

from include.reporting.baseline_replay import baseline_report_lines
from include.reporting.intraday_kpis import intraday_report_lines
from include.reporting.orchestration_kpis import orchestration_report_lines
from include.reporting.procurement_kpis import procurement_report_lines
from include.reporting.returns_kpis import returns_report_lines

# The same metric code the replay simulator reports with, so nightly KPIs and replays agree.
from include.simulation import metrics


def forecast_accuracy(demand: pd.DataFrame, past_forecasts: pd.DataFrame) -> dict[str, float | None]:
    """WAPE and bias of earlier forecasts against the demand that happened, uncensored days only.

    Args:
        demand: ``unique_id, ds, y, censored``.
        past_forecasts: ``unique_id, ds, mean`` made by earlier runs, for days now in the past.

    Returns:
        ``{"wape": ..., "bias": ..., "n": ...}``; values are None when nothing can be scored yet.
    """
    if past_forecasts.empty or demand.empty:
        return {"wape": None, "bias": None, "n": 0}
    joined = past_forecasts.merge(demand[~demand["censored"]], on=["unique_id", "ds"], how="inner")
    if joined.empty or joined["y"].sum() <= 0:
        return {"wape": None, "bias": None, "n": int(len(joined))}
    err = joined["mean"] - joined["y"]
    return {"wape": float(err.abs().sum() / joined["y"].sum()), "bias": float(err.sum() / joined["y"].sum()),
            "n": int(len(joined))}


def compute_kpis(
    ds: dt.date,
    demand: pd.DataFrame,
    inventory: pd.DataFrame,
    items: pd.DataFrame,
    orders_today: pd.DataFrame,
    past_forecasts: pd.DataFrame,
    released: pd.DataFrame,
    locations: pd.DataFrame,
    costs: dict[str, float],
    *,
    window_days: int = 28,
    margin_cells: pd.DataFrame | None = None,
) -> dict:
    """Compute the KPI set for ``ds``.

    Args:
        ds: logical date.
        demand: the demand frame of the demand stage (``unique_id, sku, channel, ds, y, censored``, and
            ``location_id`` for the regions).
        inventory: curated inventory snapshot of ``ds``.
        items: curated item master.
        orders_today: curated ecommerce order lines of ``ds``.
        past_forecasts: forecasts made by earlier runs for days up to ``ds``.
        released: lines released to the ERP for ``ds`` (``doc_type, to_location, quantity``).
        locations: curated location master (``region`` for the regions' segments).
        costs: cost rates from the governance policy.
        window_days: trailing window for rates.
        margin_cells: the window's sales and refunds per channel x region
            (:func:`include.reporting.margin_kpis.window_cells`); no gross margin without them.

    Returns:
        A JSON-safe dict of KPIs with the inputs' sizes, and ``segments`` (:func:`segment_kpis`).
    """
    from include.reporting.margin_kpis import gross_margin_rate

    end = pd.Timestamp(ds)
    start = end - pd.Timedelta(days=window_days - 1)
    if demand.empty:
        # A night with no demand history still reports, with every rate unknown rather than a crash.
        demand = pd.DataFrame({"unique_id": pd.Series(dtype=str), "sku": pd.Series(dtype=str),
                               "channel": pd.Series(dtype=str), "ds": pd.Series(dtype="datetime64[us]"),
                               "y": pd.Series(dtype=float), "censored": pd.Series(dtype=bool)})
    window = demand[(demand["ds"] >= start) & (demand["ds"] <= end)]
    rates = demand_kpis(window, end, past_forecasts)
    sold = rates["units_sold"]

    cost = items.set_index("sku")["unit_cost"].astype(float)
    cogs = float((window["y"] * window["sku"].map(cost).astype(float).fillna(0)).sum())
    inv_value = float((inventory["on_hand"].astype(float) * inventory["sku"].map(cost).fillna(0)).sum()) \
        if len(inventory) else 0.0
    turns = metrics.inventory_turns(cogs, inv_value, window_days, "D")

    today = demand[demand["ds"] == end]
    ecommerce_lines = int((orders_today["status"].astype(str) != "cancelled").sum()) if len(orders_today) else 0
    store_units = float(today.loc[today["channel"] == "store", "y"].sum())
    transfer_cost_rate = locations.set_index("location_id")["transfer_cost_per_unit"].astype(float)
    transfers = released[released["doc_type"] == "transfer"] if len(released) else released
    transfer_cost = float((transfers["quantity"].astype(float)
                           * transfers["to_location"].map(transfer_cost_rate).fillna(0)).sum()) if len(transfers) else 0.0
    fulfilment_cost = (ecommerce_lines * costs.get("ecommerce_cost_per_order_line", 0.0)
                       + store_units * costs.get("store_handling_cost_per_unit", 0.0) + transfer_cost)
    return _clean({
        "ds": ds.isoformat(),
        "window_days": window_days,
        "series": rates["series"],
        "stockout_rate_7d": rates["stockout_rate_7d"],
        "fill_rate": rates["fill_rate"],
        "units_sold": sold,
        "lost_sales_units_est": rates["lost_sales_units_est"],
        "inventory_value_at_cost": inv_value,
        "inventory_turns": turns,
        "forecast_wape": rates["forecast_wape"],
        "forecast_bias": rates["forecast_bias"],
        "forecast_points_scored": rates["forecast_points_scored"],
        "gross_margin_rate": gross_margin_rate(margin_cells) if margin_cells is not None else None,
        "fulfilment_cost": fulfilment_cost,
        "fulfilment_cost_per_unit": fulfilment_cost / (store_units + ecommerce_lines)
        if store_units + ecommerce_lines > 0 else None,
        "released_lines": int(len(released)),
        "segments": segment_kpis(window, end, past_forecasts, locations, margin_cells),
    })


def demand_kpis(window: pd.DataFrame, end: pd.Timestamp, past_forecasts: pd.DataFrame) -> dict:
    """Stock-out rate (last 7 days), fill rate, lost sales and forecast accuracy of a window of demand.

    Args:
        window: the demand of the KPI window (all series, or one segment's).
        end: the window's last day.
        past_forecasts: ``unique_id, ds, mean`` made by earlier runs (only the window's series are scored).
    """
    last7 = window[window["ds"] > end - pd.Timedelta(days=7)]
    uncensored = window[~window["censored"]]
    mean_rate = uncensored.groupby("unique_id", observed=True)["y"].mean()
    censored = window[window["censored"]]
    # On a stock-out day demand is at least what sold and, estimated, the series' uncensored mean.
    expected = censored["unique_id"].map(mean_rate).astype(float).fillna(0)
    lost = metrics.lost_sales(np.maximum(expected.to_numpy(), censored["y"].to_numpy(float)),
                              censored["y"].to_numpy(float))
    sold = float(window["y"].sum())
    accuracy = forecast_accuracy(window, past_forecasts)
    return {"series": int(window["unique_id"].nunique()),
            "stockout_rate_7d": float(last7["censored"].mean()) if len(last7) else None,
            "fill_rate": metrics.fill_rate(sold + lost, sold), "units_sold": sold, "lost_sales_units_est": lost,
            "forecast_wape": accuracy["wape"], "forecast_bias": accuracy["bias"],
            "forecast_points_scored": accuracy["n"]}


#: The KPIs a segment carries: the demand's, and the gross margin of its sales.
SEGMENT_KEYS = ("series", "stockout_rate_7d", "fill_rate", "lost_sales_units_est", "forecast_wape")


def segment_kpis(window: pd.DataFrame, end: pd.Timestamp, past_forecasts: pd.DataFrame, locations: pd.DataFrame,
                 margin_cells: pd.DataFrame | None) -> dict[str, dict[str, dict]]:
    """The KPIs of each channel (``by_channel``) and of each region's stores (``by_region``).

    A channel is the demand's (``store``, ``ecommerce``); a region is the location master's, over the store
    series only (ecommerce ships nationally from the fulfilment centre, whatever region it sits in). Without
    ``location_id`` in the demand or ``region`` in the master there are no regions.

    Returns:
        ``{"by_channel": {name: {...}}, "by_region": {name: {...}}}``, each leaf of :data:`SEGMENT_KEYS` and
        ``gross_margin_rate`` where sales were given.
    """
    from include.reporting.margin_kpis import margin_by, region_of

    cells = margin_cells if margin_cells is not None else pd.DataFrame(columns=["channel", "region"])
    out: dict[str, dict[str, dict]] = {"by_channel": {}, "by_region": {}}
    margins = {"by_channel": margin_by(cells, "channel"), "by_region": margin_by(cells, "region")}
    groups = {"by_channel": window["channel"].astype(str)}
    regions = region_of(locations)
    if "location_id" in window and len(regions):
        stores = window["channel"].astype(str) == "store"
        groups["by_region"] = window["location_id"].astype(str).map(regions).where(stores)
    for kind, key in groups.items():
        for name, part in window.groupby(key, sort=True, observed=True):
            rates = demand_kpis(part, end, past_forecasts)
            out[kind][str(name)] = _clean({k: rates[k] for k in SEGMENT_KEYS})
    for kind, found in margins.items():
        for name, rate in found.items():
            if kind in groups:
                out[kind].setdefault(name, {})["gross_margin_rate"] = None if rate is None else round(rate, 4)
    return out


def with_channel_fulfilment(kpis: dict) -> dict:
    """``kpis`` with the fulfilment cost per order of the routed orders in the ``ecommerce`` channel's
    segment: every order ``order_orchestration`` routes is an ecommerce order."""
    per_order = (kpis.get("orchestration") or {}).get("fulfilment_cost_per_order")
    if per_order is None:
        return kpis
    channels = (kpis.get("segments") or {}).get("by_channel") or {}
    ecommerce = {**channels.get("ecommerce", {}), "orchestration": {"fulfilment_cost_per_order": per_order}}
    return {**kpis, "segments": {**kpis["segments"], "by_channel": {**channels, "ecommerce": ecommerce}}}


def reporting_cycle_hours(day: dt.date, written_at: dt.datetime, tz: str) -> float:
    """Hours from the close of the business day (the end of ``day`` in the trading time zone ``tz``,
    :func:`include.config.trading_hours`) to ``written_at`` (timezone-aware)."""
    from zoneinfo import ZoneInfo

    close = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), tzinfo=ZoneInfo(tz))
    return round((written_at - close).total_seconds() / 3600.0, 2)


def night_state(stale: dict[str, dict[str, str]]) -> dict:
    """Whether the night is degraded, and the date each stand-in partition came from, for the KPI row.

    Args:
        stale: the night's stand-ins by contract (``substituted_from``, ``reason``).
    """
    return {"degraded": bool(stale), "stale_sources": {cid: s["substituted_from"] for cid, s in stale.items()}}


def _clean(d: dict) -> dict:
    out = {}
    for k, v in d.items():
        if isinstance(v, float | np.floating):
            out[k] = None if not math.isfinite(float(v)) else round(float(v), 4)
        else:
            out[k] = v
    return out


def daily_trend(demand: pd.DataFrame, ds: dt.date, window_days: int = 28) -> pd.DataFrame:
    """Units sold and stock-out share per day over the window, for the chart."""
    end = pd.Timestamp(ds)
    w = demand[(demand["ds"] > end - pd.Timedelta(days=window_days)) & (demand["ds"] <= end)]
    return w.groupby("ds").agg(units=("y", "sum"), stockout_share=("censored", "mean")).reset_index()


def window_label(trend: pd.DataFrame) -> str:
    """``28 days`` for a trend frame of 28 daily rows."""
    return f"{len(trend)} days"


def render_chart(trend: pd.DataFrame, kpis: dict, path: str, trends: pd.DataFrame | None = None) -> str:
    """Write the KPI chart (PNG) to ``path`` through fsspec.

    Args:
        trend: :func:`daily_trend`.
        kpis: the night's KPIs.
        path: where to write.
        trends: :func:`include.reporting.trends.trend_table`: drawn under the chart as the report's table.
    """
    import fsspec
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = _trend_rows(trends)
    if rows:
        fig, (ax, below) = plt.subplots(2, 1, figsize=(9, 4 + 0.25 * len(rows)),
                                        gridspec_kw={"height_ratios": [4, 0.25 * len(rows)]})
        below.axis("off")
        table = below.table(cellText=rows[1:], colLabels=rows[0], loc="center", bbox=[0.0, 0.0, 1.0, 1.0])
        table.auto_set_font_size(False)
        table.set_fontsize(7)
    else:
        fig, ax = plt.subplots(figsize=(9, 4))
    ax.bar(trend["ds"], trend["units"], color="#4C78A8", label="units sold")
    ax.set_ylabel("units sold")
    ax2 = ax.twinx()
    ax2.plot(trend["ds"], 100 * trend["stockout_share"], color="#E45756", marker="o", label="stock-out %")
    ax2.set_ylabel("series out of stock (%)")
    fill, turns = kpis.get("fill_rate"), kpis.get("inventory_turns")
    ax.set_title(f"Shelfwise KPIs, {window_label(trend)} to {kpis['ds']}: fill rate "
                 f"{'n/a' if fill is None else f'{100 * fill:.1f}%'}, inventory turns "
                 f"{'n/a' if turns is None else f'{turns:.1f}'}")
    fig.autofmt_xdate()
    fig.tight_layout()
    with fsspec.open(path, "wb") as fh:
        fig.savefig(fh, format="png", dpi=100)
    plt.close(fig)
    return path


def _trend_rows(trends: pd.DataFrame | None) -> list[tuple[str, ...]]:
    """The trend table as text rows under a header row (none without a table)."""
    if trends is None or trends.empty:
        return []
    from include.reporting.trends import trend_cells

    return [("KPI", "value", "7 nights", "28 nights", "target"), *trend_cells(trends)]


def render_report(kpis: dict, summary: dict, metrics: dict[str, dict[str, float]] | None = None, *,
                  trends: pd.DataFrame | None = None) -> str:
    """A short Markdown report of the night.

    Args:
        kpis: the night's KPIs.
        summary: the stage summaries, by task id.
        metrics: seconds and peak memory per stage, by task id (a table of them when given).
        trends: :func:`include.reporting.trends.trend_table` (a "Trends" section when given).
    """
    from include.reporting.trends import trend_lines

    lines = [f"# Shelfwise nightly report, {kpis['ds']}", "", *degraded_lines(kpis, summary),
             "| KPI | value |", "| --- | --- |"]
    for key in ("stockout_rate_7d", "fill_rate", "inventory_turns", "forecast_wape", "forecast_bias",
                "gross_margin_rate", "fulfilment_cost", "fulfilment_cost_per_unit", "units_sold",
                "lost_sales_units_est", "reporting_cycle_hours"):
        lines.append(f"| {key} | {kpis.get(key) if kpis.get(key) is not None else 'n/a'} |")
    lines += trend_lines(kpis, trends)
    lines += segment_lines(kpis)
    monitor = summary.get("monitor_forecasts") or {}
    lines += ["", "## Forecast monitoring", ""]
    if not monitor.get("scored"):
        lines.append(f"Not scored: {monitor.get('reason', 'the monitoring stage did not run')}.")
    else:
        lines.append(f"Forecast made on {monitor['origin']} scored per demand class (MASE): "
                     + ", ".join(f"{k} {v:.3f}" for k, v in monitor["mase"].items() if v is not None) + ".")
        lines += [f"- **drift alert** {a}" for a in monitor.get("alerts", [])] or ["No drift alert."]
    challenger = (summary.get("combine_forecasts") or {}).get("challenger")
    if challenger:
        lines.append(f"Challenger {challenger['model']} (promotion, price and event regressors) was tried on "
                     f"{challenger['tried']} series and took {challenger['taken']}.")
        lines += [f"- {d}" for d in challenger.get("decisions", [])]
        lines += [f"- **challenger down** {w}" for w in challenger.get("warnings", [])]
    lines += intraday_report_lines(kpis)
    lines += orchestration_report_lines(kpis)
    lines += procurement_report_lines(kpis)
    lines += returns_report_lines(kpis)
    lines += baseline_report_lines(kpis)
    lines += stage_table(metrics or {})
    lines += ["", "## Run", "", "```json", json.dumps(summary, indent=2, default=str), "```", ""]
    return "\n".join(lines)


def segment_lines(kpis: dict) -> list[str]:
    """The report's Markdown section "Segments": each channel's and region's KPIs (none without segments)."""
    rows = [(f"{kind.removeprefix('by_')}:{name}", doc) for kind, members in (kpis.get("segments") or {}).items()
            for name, doc in members.items()]
    if not rows:
        return []

    def shown(value: float | None, pct: bool = True) -> str:
        return "n/a" if value is None else f"{value:.1%}" if pct else f"{value:,.2f}"

    return ["", "## Segments", "", "| segment | stock-out rate (7 days) | fill rate | forecast WAPE | gross margin "
            "| fulfilment cost per order |", "| --- | ---: | ---: | ---: | ---: | ---: |",
            *[f"| {name} | {shown(d.get('stockout_rate_7d'))} | {shown(d.get('fill_rate'))} | "
              f"{shown(d.get('forecast_wape'))} | {shown(d.get('gross_margin_rate'))} | "
              f"{shown((d.get('orchestration') or {}).get('fulfilment_cost_per_order'), pct=False)} |"
              for name, d in rows]]


def degraded_lines(kpis: dict, summary: dict) -> list[str]:
    """Markdown lines saying the night is degraded: each stand-in, its date and why, and the stages that read
    it; none on a night without stand-ins."""
    stale = kpis.get("stale_sources") or {}
    if not kpis.get("degraded"):
        return []
    lines = ["**Degraded night**: late or blocked non-critical extracts were replaced by their last good "
             "partition; lines that depend on them went up a tier (`stale_input:<contract>`).", ""]
    said = {task: (s or {}).get("stale_sources") or {} for task, s in summary.items() if isinstance(s, dict)}
    for cid, since in sorted(stale.items()):
        stages = sorted(task for task, sources in said.items() if cid in sources and not task.startswith("ingest_"))
        reason = next((sources[cid].get("reason", "") for task, sources in said.items()
                       if cid in sources and task.startswith("ingest_")), "")
        lines.append(f"- `{cid}`: data of {since} used; read by {', '.join(stages) or 'no stage yet'}. {reason}")
    return [*lines, ""]


def stage_table(metrics: dict[str, dict[str, float]]) -> list[str]:
    """Markdown lines: each stage's seconds and peak memory, slowest first."""
    if not metrics:
        return []
    rows = sorted(metrics.items(), key=lambda item: -item[1].get("seconds", 0.0))
    return ["", "## Stages", "", "| stage | seconds | peak memory (MB) |", "| --- | ---: | ---: |",
            *[f"| {name} | {m.get('seconds', 0):,.1f} | {m.get('peak_rss_mb', 0):,.0f} |" for name, m in rows]]
