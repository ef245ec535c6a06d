"""The stage adapters of ``supplier_scorecards``: one per task, each reads, calls one owner, writes, records.

A run scores the week that ends on its date: the supplier catalogue of the date is ingested against its
contract (a missing one stands in with its last good partition, the contract's ``max_age_days``), then
every supplier and supplier x SKU gets its card from the purchase-order snapshots, receipts and returns
the nightly curated, and the catalogue (:func:`include.procurement.scorecards.weekly_scorecards`). The
cards go to ``curated/supplier_scorecards`` and ``curated/supplier_item_scorecards`` for the date and to
the weekly history in ``ops.supplier_scorecards`` (replacing what an earlier run wrote for the week).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import numpy as np
import pandas as pd

from include.config import as_date
from include.runs import Run
from include.stages.summaries import record
from include.storage import iter_range, newest_partition, read_range, write_partition

#: Landing sources of the procurement extracts, one ingest task each.
SOURCES = ("procurement",)
#: How far back purchase-order lines and receipts are read: a line due in the window may be ordered long before.
LOOKBACK_DAYS = 365


def ingest(run: Run, source: str, *, conn_factory=None, root: str | None = None) -> dict[str, Any]:
    """Ingest and validate one procurement source of the date, record the results, raise if one blocked."""
    from include.procurement.contracts import load_procurement_contracts
    from include.stages import nightly

    return nightly.ingest(run, source, conn_factory=conn_factory, root=root, contracts=load_procurement_contracts())


def newest_catalogue(day: dt.date, max_age_days: int, root: str | None = None) -> pd.DataFrame | None:
    """The newest curated supplier catalogue at most ``max_age_days`` before ``day``, or ``None``."""
    return newest_partition("curated", "supplier_catalogue", day, max_age_days, root, missing_ok=True)


def _with_defect_surges(suppliers: pd.DataFrame, patterns: pd.DataFrame) -> pd.DataFrame:
    """The cards with each supplier's batches that ``returns_routing`` flagged with a defect surge in the
    window (``defect_surge_batches``, 0 for none; ``defect_surge_evidence``, the strongest one's sentence)."""
    from include.returns.patterns import supplier_defect_surges

    surges = supplier_defect_surges(patterns).set_index("supplier_id")
    ids = suppliers["supplier_id"].astype(str)
    return suppliers.assign(
        defect_surge_batches=ids.map(surges["defect_surge_batches"]).fillna(0).astype(np.int64).to_numpy(),
        defect_surge_evidence=ids.map(surges["defect_surge_evidence"]).to_numpy(object))


def score(run: Run, *, conn_factory, root: str | None = None) -> dict[str, Any]:
    """Score every supplier for the week ending on the run's date; keep the cards (history in ``ops``)."""
    from include.governance.policy import load_policy
    from include.procurement.scorecards import ScorecardWeights, weekly_scorecards
    from models.anomaly.supplier import latest_po_lines

    day, policy = as_date(run.ds), load_policy().procurement
    start = day - dt.timedelta(days=LOOKBACK_DAYS - 1)
    purchase_orders = latest_po_lines(t.to_pandas() for _, t in iter_range("curated", "purchase_orders", start, day,
                                                                          root))
    window = day - dt.timedelta(weeks=policy.scorecard_weeks)
    catalogue = newest_catalogue(day, policy.catalogue_max_age_days, root)
    suppliers, items = weekly_scorecards(
        purchase_orders, read_range("curated", "receipts", start, day, root),
        read_range("curated", "returns", window, day, root),
        newest_partition("curated", "items", day, 3, root), catalogue, day, weeks=policy.scorecard_weeks,
        weights=ScorecardWeights.from_mapping(dict(policy.reliability_weights)))
    suppliers = _with_defect_surges(suppliers, read_range("reports", "return_patterns", window, day, root))
    write_partition(suppliers, "curated", "supplier_scorecards", run.ds, root)
    write_partition(items, "curated", "supplier_item_scorecards", run.ds, root)
    written = {}
    if not run.replay:
        from include.erp.scorecards import record_scorecards

        with conn_factory() as conn:
            written = record_scorecards(conn, suppliers, items, week_end=day, dag_id=run.dag_id, run_id=run.run_id)
    worst = suppliers.nsmallest(3, "reliability") if len(suppliers) else suppliers
    return record(run, {
        "mode": "replay" if run.replay else "live", "week_end": run.ds, "weeks": policy.scorecard_weeks,
        "suppliers": int(len(suppliers)), "supplier_items": int(len(items)),
        "catalogue": None if catalogue is None else int(len(catalogue)), "recorded": written,
        "median_reliability": None if suppliers.empty else round(float(suppliers["reliability"].median()), 1),
        "defect_surges": {str(r.supplier_id): r.defect_surge_evidence
                          for r in suppliers[suppliers["defect_surge_batches"] > 0].itertuples()},
        "least_reliable": [{"supplier_id": r.supplier_id, "reliability": None if pd.isna(r.reliability)
                            else round(float(r.reliability), 1), "otif": None if pd.isna(r.otif) else round(float(r.otif), 3)}
                           for r in worst.itertuples()],
    }, root)
