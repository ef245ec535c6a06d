"""The demo's finance review: the finance extracts of the demo world, and one ``finance_review`` run for the night.

:func:`land` writes the shipment costs, fulfilment substitutions and shrink adjustments of every day of the
world (with an expedite surge, a substitution storm, a shrink spike and a runaway markdown in its last weeks)
and curates those before the night, as earlier runs would have; :func:`run` starts ``finance_review``
for the night with ``airflow dags test`` and returns once its items are staged, leaving it waiting for
finance at its gate (the demo's ``finance`` user decides them on the approvals page).
"""

from __future__ import annotations

import datetime as dt
import subprocess
from pathlib import Path

DAG_ID = "finance_review"


def land(world, root: str, ds: dt.date) -> None:
    """Land every day's finance extracts of ``world`` and curate those of the 98 days before ``ds``."""
    from include.contracts.contract import load_contracts
    from include.finance.contracts import FINANCE_CONTRACT_IDS, load_finance_contracts
    from include.ingest.pipeline import load_history
    from include.sample_data.finance import FinanceConfig, finance_world, write_finance_landing

    end = world.config.end_date
    days = (end - world.config.start_date).days
    fw = finance_world(world, seed=world.config.seed,
                       config=FinanceConfig(events_per_kind=1, event_weeks=(2, 2), first_start=days - 20))
    first = ds - dt.timedelta(days=98)
    for i in range((end - first).days + 1):
        write_finance_landing(root, first + dt.timedelta(days=i), fw)
    finance = load_finance_contracts()
    master = {k: c for k, c in load_contracts().items() if c.source == "master"}
    load_history(first, ds - dt.timedelta(days=1), root=root,
                 contracts={**master, **{k: finance[k] for k in FINANCE_CONTRACT_IDS}})


def run(airflow: str, env: dict[str, str], root: str, ds: dt.date, log_path: Path,
        timeout: float = 600) -> tuple[subprocess.Popen, dict | None]:
    """Start ``finance_review`` for ``ds``; return once its items are staged (or it ended)."""
    from airflow_services import dags_test_until

    return dags_test_until(airflow, env, root, DAG_ID, ds, log_path, "stage_items", timeout=timeout)


def describe(ds: dt.date, summaries: dict | None, log_path: Path) -> str:
    """What the review found and staged, for the demo's output."""
    if not summaries or "review_margin" not in summaries:
        return f"finance_review did not review {ds}; see {log_path}"
    r, staged = summaries["review_margin"], summaries.get("stage_items", {})
    return "\n".join([
        "", f"Shelfwise demo: finance_review for the week to {ds}", "=" * 64,
        f"Margin bridge: {r['cells']} category x channel x location cells, margin {r['margin']:,.2f} against "
        f"{r['expected_margin']:,.2f} expected (causes reconcile within {r['bridge_max_residual_pct']}%)",
        f"Review items: {r['new_items']} new ({r['by_cause']}), {r['continuing']} continuing; projected loss "
        f"{r['projected_loss']:,.2f}; {r['needs_manager']} need a manager (accruals)",
        f"Staged in ERP: {staged.get('pending', 0)} waiting for finance (demo user finance / finance) on the "
        "approvals page until the policy's finance deadline",
        f"  log: {log_path}",
    ])
