"""Stock-out reduction and markdowns avoided, measured on the retailer's own recent demand.

A dashboard that says "stock-outs down 30%" must say against what. Once a week (``baseline_replay`` in the
policy) the nightly replays the last weeks of demand of a fixed sample of its series twice, with the same
demand, the same suppliers' lead times and the same review days (:func:`include.simulation.replay.replay`):

- under **Shelfwise**: the production forecaster at every review and the replenishment core sized for the
  policy's fill rate, as the nightly plans;
- under **the ERP's own rule**: ERPNext's reorder level (or Odoo's min/max) with the policy's days of
  safety stock, the rule a retailer runs before Shelfwise.

From the two runs over the scored window:

- ``stockout_reduction = 1 - stock-out rate under Shelfwise / stock-out rate under the ERP's rule`` (the
  share of series x days with demand not served);
- ``markdown_avoided_value``: overstock (stock beyond ``markdown_cover_days`` of a series' mean demand,
  valued at cost) the ERP's rule holds and Shelfwise does not, times the ``markdown_depth`` a clearance
  takes, scaled from the sample to every series. Negative when Shelfwise holds more overstock.

The demand replayed is what sold: on a stock-out day the sale is a lower bound of the demand, for both
policies alike.
"""

from __future__ import annotations

import datetime as dt
import zlib
from typing import Any

import numpy as np
import pandas as pd

from include.demand.regressors import REGRESSORS
from include.governance.policy import BaselineReplay
from include.simulation.panel import DemandPanel, panel_from_frame
from include.simulation.replay import ReplayConfig, replay

__all__ = ["DATASET", "RESULT_COLUMNS", "baseline_kpis", "baseline_report_lines", "measure", "replay_panel", "sample_ids", "weekly_kpis"]

#: One row per policy of the replay (Shelfwise, the ERP's rule), as the nightly stores it.
RESULT_COLUMNS = ["policy", "parameter", "fill_rate", "stockout_rate", "lost_units", "avg_inventory_value",
                  "overstock_value", "series", "series_total", "window_start", "window_end"]
#: The replays' results, one partition per night a replay ran (zone ``reports``).
DATASET = "baseline_replay"
#: Days of warm-up the replay needs at least before its scored window (the reorder rules' trailing demand).
MIN_WARMUP_DAYS = 28


def sample_ids(ids: np.ndarray, max_series: int) -> np.ndarray:
    """At most ``max_series`` of ``ids``: the first by CRC-32 of the id, so the sample is the same every
    week while the series exist, and unrelated to their location or item order."""
    ids = np.asarray(ids, dtype=object)
    if len(ids) <= max_series:
        return ids
    keys = np.fromiter((zlib.crc32(str(i).encode()) for i in ids), dtype=np.uint64, count=len(ids))
    return ids[np.sort(np.argsort(keys, kind="stable")[:max_series])]


def replay_panel(demand: pd.DataFrame, items: pd.DataFrame, suppliers: pd.DataFrame, *,
                 max_series: int) -> DemandPanel:
    """The sample's daily demand as a replay panel, with unit cost and the supplier's lead time per series.

    Args:
        demand: curated demand ``unique_id, sku, ds, y`` and the known regressors it has.
        items: item master (``sku, unit_cost, supplier_id``).
        suppliers: supplier master (``supplier_id, promised_lead_time_days``; empty: the replay's default).
        max_series: the sample's size (:func:`sample_ids`).

    Raises:
        ValueError: no demand.
    """
    if demand.empty:
        raise ValueError("no demand to replay")
    keep = sample_ids(demand["unique_id"].astype(str).unique(), max_series)
    frame = demand[demand["unique_id"].astype(str).isin(set(keep))].copy()
    item = items.drop_duplicates("sku").set_index("sku")
    frame["unit_cost"] = frame["sku"].map(item["unit_cost"]).astype(float)
    if len(suppliers):  # else the replay's default lead time
        lead = suppliers.drop_duplicates("supplier_id").set_index("supplier_id")["promised_lead_time_days"]
        frame["lead_time"] = frame["sku"].map(item["supplier_id"]).map(lead).astype(float)
    # A driver with gaps (a price the item master lacks) would read as zero: it is left out.
    regressors = [c for c in REGRESSORS if c in frame.columns and frame[c].notna().all()]
    return panel_from_frame(frame, "D", regressors=regressors)


def measure(panel: DemandPanel, settings: BaselineReplay, *, fill_rate: float, review_days: int,
            series_total: int) -> pd.DataFrame:
    """Replay the panel under Shelfwise and the ERP's rule; one row per policy (:data:`RESULT_COLUMNS`).

    The scored window is the last ``settings.window_days`` days, shortened to leave
    :data:`MIN_WARMUP_DAYS` of warm-up when the history is shorter than ``settings.history_days``.

    Raises:
        ValueError: the history is too short for a warm-up and two review cycles.
    """
    periods = len(panel.dates)
    window = min(settings.window_days, periods - MIN_WARMUP_DAYS)
    if window < 2 * review_days:
        raise ValueError(f"{periods} days of demand are too few: the replay needs {MIN_WARMUP_DAYS} days of "
                         f"warm-up and two reviews of {review_days} days")
    sweep = {"shelfwise": (fill_rate,), "odoo_min_max": (), "erpnext_reorder_level": (),
             settings.baseline: (float(settings.baseline_safety_days),)}
    config = ReplayConfig(review=review_days, warmup=periods - window, sweep=sweep,
                          overstock_cover=settings.markdown_cover_days)
    curves = replay(panel, config).curves
    curves["policy"] = curves["policy"].where(curves["policy"] == "shelfwise", "baseline")
    return curves.assign(series=len(panel.ids), series_total=series_total,
                         window_start=panel.dates[periods - window].date().isoformat(),
                         window_end=panel.dates[-1].date().isoformat()).reindex(columns=RESULT_COLUMNS)


def baseline_kpis(result: pd.DataFrame | None, settings: BaselineReplay, measured_on: dt.date | None,
                  reason: str | None = None) -> dict[str, Any]:
    """The KPI document's ``stockout_reduction``, ``markdown_avoided_value`` and ``baseline_replay`` section.

    Args:
        result: :func:`measure`'s rows (None: no replay, ``reason`` says why).
        settings: the policy's ``baseline_replay``.
        measured_on: the night the replay ran.
        reason: why there is no result.

    Returns:
        Both KPIs (None when unknown) and the section with both policies' figures, for the report.
    """
    if result is None or result.empty:
        return {"stockout_reduction": None, "markdown_avoided_value": None,
                "baseline_replay": {"measured_on": None, "reason": reason or "not replayed yet"}}
    by = result.set_index("policy")
    mine, theirs = by.loc["shelfwise"], by.loc["baseline"]
    base_rate = _number(theirs["stockout_rate"])
    reduction = None if not base_rate else 1.0 - (_number(mine["stockout_rate"]) or 0.0) / base_rate
    scale = _number(mine["series_total"]) / _number(mine["series"]) if _number(mine["series"]) else None
    avoided = None
    if scale is not None and _number(mine["overstock_value"]) is not None and _number(theirs["overstock_value"]) is not None:
        avoided = (_number(theirs["overstock_value"]) - _number(mine["overstock_value"])) * settings.markdown_depth * scale
    return {"stockout_reduction": reduction, "markdown_avoided_value": avoided,
            "baseline_replay": {
                "measured_on": measured_on.isoformat() if measured_on else None, "baseline": settings.baseline,
                "series": int(mine["series"]), "series_total": int(mine["series_total"]),
                "window_start": str(mine["window_start"]), "window_end": str(mine["window_end"]),
                "shelfwise": _figures(mine), "erp_rule": _figures(theirs)}}


def _figures(row: pd.Series) -> dict[str, float | None]:
    return {k: _number(row[k]) for k in ("parameter", "fill_rate", "stockout_rate", "lost_units",
                                         "avg_inventory_value", "overstock_value")}


def _number(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if np.isfinite(number) else None


def weekly_kpis(day: dt.date, items: pd.DataFrame, root: str | None = None, policy: Any = None) -> dict[str, Any]:
    """:func:`baseline_kpis` of the latest replay: the one of the last ``every_days`` nights, else tonight's.

    Tonight's replay reads the curated demand of ``day`` (the sample only) and the supplier master, and is
    written to ``reports/baseline_replay``. A history too short to replay gives both KPIs as unknown, with
    the reason; it never fails the night.

    Args:
        day: the night.
        items: the curated item master of the night.
        root: data root.
        policy: a loaded governance policy (None: the policy file).
    """
    from include.governance.policy import load_policy
    from include.storage import partition_exists, read_partition, write_partition

    policy = policy or load_policy()
    settings = policy.baseline_replay
    for back in range(settings.every_days):
        on = day - dt.timedelta(days=back)
        if partition_exists("reports", DATASET, on, root):
            return baseline_kpis(read_partition("reports", DATASET, on, root), settings, on)
    today = pd.Timestamp(day)
    ids = read_partition("curated", "demand", day, root, columns=["unique_id"], filters=[("ds", "==", today)])
    series = ids["unique_id"].astype(str).unique()
    if not len(series):
        return baseline_kpis(None, settings, None, f"no demand on {day}")
    since = today - pd.Timedelta(days=settings.history_days - 1)
    sample = [str(i) for i in sample_ids(series, settings.max_series)]
    demand = read_partition("curated", "demand", day, root,
                            filters=[("unique_id", "in", sample), ("ds", ">=", since)])
    suppliers = read_partition("curated", "suppliers", day, root, missing_ok=True)
    try:
        result = measure(replay_panel(demand, items, suppliers, max_series=settings.max_series), settings,
                         fill_rate=policy.replenishment.fill_rate, review_days=policy.replenishment.review_days,
                         series_total=len(series))
    except ValueError as exc:
        return baseline_kpis(None, settings, None, str(exc))
    write_partition(result, "reports", DATASET, day, root)
    return baseline_kpis(result, settings, day)


def baseline_report_lines(kpis: dict[str, Any]) -> list[str]:
    """The report's Markdown section "Against the ERP's rule": both KPIs and the two replays behind them."""
    section = kpis.get("baseline_replay") or {}
    lines = ["", "## Against the ERP's rule", ""]
    if not section.get("measured_on"):
        return [*lines, f"Not measured: {section.get('reason', 'the nightly has not replayed yet')}."]
    mine, theirs = section["shelfwise"], section["erp_rule"]

    def pct(value: float | None) -> str:
        return "n/a" if value is None else f"{value:.1%}"

    def money(value: float | None) -> str:
        return "n/a" if value is None else f"{value:,.2f}"

    return [*lines,
            f"Replayed on {section['measured_on']}: {section['series']} of {section['series_total']} series, "
            f"{section['window_start']} to {section['window_end']}, the same demand and lead times under "
            f"Shelfwise and under {section['baseline']} with {theirs['parameter']:g} days of safety stock. "
            f"Stock-out reduction **{pct(kpis.get('stockout_reduction'))}**, markdown avoided "
            f"**{money(kpis.get('markdown_avoided_value'))}** (all series).", "",
            "| policy | fill rate | stock-out rate | lost units | average stock at cost | overstock at cost |",
            "| --- | ---: | ---: | ---: | ---: | ---: |",
            *[f"| {name} | {pct(f['fill_rate'])} | {pct(f['stockout_rate'])} | {money(f['lost_units'])} | "
              f"{money(f['avg_inventory_value'])} | {money(f['overstock_value'])} |"
              for name, f in (("Shelfwise", mine), (section["baseline"], theirs))]]
