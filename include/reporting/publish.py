"""The night's report as files: KPIs as JSON, the chart as PNG and the Markdown report, side by side."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pandas as pd

from include.config import as_date, partition_path
from include.reporting.kpis import daily_trend, render_chart, render_report
from include.storage import write_json, write_text


def publish_report(kpis: dict[str, Any], demand: pd.DataFrame, stage_summaries: dict[str, Any],
                   ds: str | dt.date, root: str | None = None, *,
                   metrics: dict[str, dict[str, float]] | None = None,
                   trends: pd.DataFrame | None = None) -> dict[str, Any]:
    """Write ``reports/kpis/ds=<ds>/``: ``kpis.json``, ``kpis.png`` (28-day trend) and ``report.md``.

    ``trends`` (:func:`include.reporting.trends.trend_table`) goes into both the chart and the report.

    Returns:
        ``{"kpis", "report", "chart"}`` with the paths written.
    """
    write_json(kpis, "reports", "kpis", ds, "kpis", root)
    chart = render_chart(daily_trend(demand, as_date(ds)),
                         kpis, f"{partition_path('reports', 'kpis', ds, root)}/kpis.png", trends)
    report = write_text(render_report(kpis, stage_summaries, metrics, trends=trends), "reports", "kpis", ds,
                        "report.md", root)
    return {"kpis": kpis, "report": report, "chart": chart}
