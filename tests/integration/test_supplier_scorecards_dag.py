"""`supplier_scorecards` end to end under `airflow dags test`: the week's supplier catalogue is ingested against
its contract, every supplier and supplier x SKU is scored from the curated POs, receipts and returns, the cards
land in the weekly history in PostgreSQL, and a re-run replaces its week rather than adding to it."""

from __future__ import annotations

import datetime as dt

import pytest

from include.erp import db
from include.erp.scorecards import latest_scorecards, scorecard_trend
from include.runs import Run
from include.storage import read_partition
from tests.worlds import dags_test, tiny_world

pytestmark = pytest.mark.integration
DS = dt.date(2026, 11, 2)  # a Monday
DAG_ID = "supplier_scorecards"


@pytest.fixture(scope="module")
def world_root(tmp_path_factory) -> str:
    """The tiny retailer with its history curated through the run date and the week's supplier catalogue."""
    from include.sample_data.procurement import supplier_catalogue, write_supplier_catalogue

    root = tiny_world(str(tmp_path_factory.mktemp("procurement") / "shelfwise"), DS, history_through=DS)
    master = (read_partition("curated", "items", DS, root), read_partition("curated", "suppliers", DS, root))
    write_supplier_catalogue(root, DS, supplier_catalogue(master, seed=7))
    return root


def _week(conn, table: str) -> int:
    return conn.execute(f"SELECT count(*) FROM ops.{table} WHERE week_end=%s", (DS,)).fetchone()[0]


def test_a_weekly_run_scores_every_supplier_and_keeps_the_week(world_root, erp_url, tmp_path):
    text = dags_test(DAG_ID, DS.isoformat(), root=world_root, log_path=tmp_path / "run.log")
    assert "ingest_procurement" in text and "score_suppliers" in text
    suppliers = read_partition("curated", "suppliers", DS, world_root)
    with db.connect(erp_url) as conn:
        cards = latest_scorecards(conn, DS)
        assert set(cards["supplier_id"]) == set(suppliers["supplier_id"])
        assert cards["week_end"].eq(DS).all()
        assert cards["reliability"].between(0, 100).all()
        assert cards["otif"].between(0, 1).all() and cards["lead_time_mean"].gt(0).all()
        # The catalogue names every supplier's contract cost, so every card prices its POs against it.
        assert cards["price_variance"].notna().all()
        items = latest_scorecards(conn, DS, kind="item")
        assert len(items) > len(cards) and set(items["supplier_id"]) <= set(cards["supplier_id"])
        counts = _week(conn, "supplier_scorecards"), _week(conn, "supplier_item_scorecards")
        # The contract run of the catalogue is recorded with the others.
        outcome = conn.execute("SELECT outcome FROM ops.contract_runs WHERE contract_id='supplier_catalogue'"
                               " AND ds=%s ORDER BY id DESC LIMIT 1", (DS,)).fetchone()
        assert outcome == ("passed",)

    # A re-run of the week (a late receipt, a fix) replaces the week's cards, never adds to them.
    from include.stages import procurement

    run = Run(dag_id=DAG_ID, run_id="rerun", ds=DS.isoformat(), task_id="score_suppliers")
    summary = procurement.score(run, conn_factory=lambda: db.connect(erp_url), root=world_root)
    assert summary["recorded"] == {"supplier": counts[0], "item": counts[1]}
    with db.connect(erp_url) as conn:
        assert (_week(conn, "supplier_scorecards"), _week(conn, "supplier_item_scorecards")) == counts
        assert set(scorecard_trend(conn, DS)["supplier_id"]) == set(suppliers["supplier_id"])


def test_a_defect_surge_returns_routing_flagged_on_a_batch_shows_on_its_suppliers_card(world_root, erp_url):
    import pandas as pd

    from include.stages import procurement
    from include.storage import write_partition

    supplier = str(read_partition("curated", "suppliers", DS, world_root)["supplier_id"].iloc[0])
    surge = {"pattern": "defect_surge", "key": "BATCH-7", "owner": "procurement/supplier quality",
             "supplier_id": supplier, "recent_returns": 12, "expected_returns": 2.0, "ratio": 6.0, "z_score": 7.1,
             "evidence": "batch BATCH-7 (Audio): 12 of 20 returns defective in 7 d against 10% for its category"}
    refunds = {**surge, "pattern": "store_unusual_refunds", "key": "S0001", "owner": "finance", "supplier_id": None}
    write_partition(pd.DataFrame([surge, refunds]), "reports", "return_patterns", DS - dt.timedelta(days=2), world_root)
    run = Run(dag_id=DAG_ID, run_id="with-patterns", ds=DS.isoformat(), task_id="score_suppliers")
    summary = procurement.score(run, conn_factory=lambda: db.connect(erp_url), root=world_root)
    assert summary["defect_surges"] == {supplier: surge["evidence"]}
    cards = read_partition("curated", "supplier_scorecards", DS, world_root).set_index("supplier_id")
    assert cards.loc[supplier, "defect_surge_batches"] == 1
    assert (cards.drop(index=supplier)["defect_surge_batches"] == 0).all()
