"""The Airflow Assets the workflows produce, for workflows scheduled on them (``retail_intraday``...).

Imported by DAG files at parse time, so this module only builds the Asset objects: no configuration,
no file or database read. The URIs use the ``x-shelfwise`` scheme, which Airflow takes as it is (a scheme
starting with ``x-`` is not normalised by a provider): an Asset names the dataset, wherever the data root
is (``SHELFWISE_DATA_ROOT``, a folder or any fsspec URL), so one deployment's Assets do not change when its
storage moves. The data itself lives at ``<data root>/<zone>/<dataset>/ds=<logical date>``.
"""

from __future__ import annotations

from airflow.sdk import Asset

__all__ = ["CURATED", "DECISIONS", "FORECASTS", "KPIS", "NIGHTLY_SOURCES", "ORDER_LINES", "SUPPLIER_SCORECARDS"]

#: The landing sources the nightly ingests, one task each (``master`` first, then the others).
NIGHTLY_SOURCES = ("master", "pos", "ecommerce", "wms", "supplier", "returns")
_GROUP = "shelfwise"


def _asset(name: str, path: str) -> Asset:
    return Asset(name=f"shelfwise_{name}", uri=f"x-shelfwise://{path}", group=_GROUP)


#: The curated extracts of each source (``curated/<contract>/ds=<ds>``), updated by its ingest task.
CURATED: dict[str, Asset] = {source: _asset(f"curated_{source}", f"curated/{source}") for source in NIGHTLY_SOURCES}
#: The night's demand forecasts (``forecasts/demand`` and ``forecasts/series``), updated by combine_forecasts.
FORECASTS = _asset("forecasts", "forecasts/demand")
#: The night's tiered proposals staged for decision in the ERP staging schema, updated by stage_proposals.
DECISIONS = _asset("decisions", "erp_staging/proposals")
#: The night's KPIs and report (``reports/kpis``, ``ops.kpi_history``), updated by report_kpis.
KPIS = _asset("kpis", "reports/kpis")
#: The open order lines waiting for a fulfilment node (``curated/open_order_lines``), updated by
#: ``order_orchestration``'s ingest_oms.
ORDER_LINES = _asset("order_lines", "curated/open_order_lines")
#: The week's supplier scorecards (``curated/supplier_scorecards``, ``ops.supplier_scorecards``), updated by
#: ``supplier_scorecards``; the nightly's PO exceptions read the newest reliability of each alternate.
SUPPLIER_SCORECARDS = _asset("supplier_scorecards", "curated/supplier_scorecards")
#: The explained return patterns of the week ending each day (``reports/return_patterns``), updated by
#: ``returns_routing``'s classify_return_patterns; supplier scorecards read their defect surges.
RETURN_PATTERNS = _asset("return_patterns", "reports/return_patterns")
