"""Shard-by-shard demand, storage and scoring: the pieces that keep a task's memory to one shard."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from include.demand.history import DEMAND_COLUMNS, build_demand, demand_shards, demand_summary
from include.demand.shards import n_shards_for, shard_of
from include.finance.sales import daily_sales, sales_lines
from include.governance.policy import ChallengerPolicy
from include.storage import (
    clear_partition,
    iter_range,
    iter_shards,
    list_shards,
    partition_exists,
    read_partition,
    read_range,
    read_shard,
    write_partition,
    write_shard,
)
from models.forecasting import Challenger
from models.forecasting.monitoring import score_forecasts, segment_scores, series_scores

END = dt.date(2026, 3, 20)
START = END - dt.timedelta(days=19)


def _world(seed: int = 3) -> dict[str, pd.DataFrame]:
    """Twenty days of POS, ecommerce and inventory for 4 stores + 1 centre x 12 SKUs, with gaps and stock-outs."""
    rng = np.random.default_rng(seed)
    days = pd.date_range(START, END)
    stores, skus = ["S1", "S2", "S3", "S4"], [f"SKU{i:02d}" for i in range(12)]
    pos = pd.DataFrame([(s, k, d, int(rng.poisson(3)), 0.0, 0.0) for d in days for s in stores for k in skus
                        if rng.random() < 0.7],
                       columns=["store_id", "sku", "business_date", "units_sold", "gross_sales", "discount_amount"])
    orders = pd.DataFrame([("FC1", k, d + pd.Timedelta(hours=int(rng.integers(0, 24))), int(rng.integers(1, 4)),
                            "cancelled" if rng.random() < 0.1 else "placed", 9.5)
                           for d in days for k in skus[:8] if rng.random() < 0.6],
                          columns=["fulfilment_location_id", "sku", "ordered_at", "quantity", "status", "unit_price"])
    inventory = pd.DataFrame([(loc, k, d, int(rng.integers(-1, 6))) for d in days for loc in [*stores, "FC1"]
                              for k in skus], columns=["location_id", "sku", "snapshot_date", "on_hand"])
    promotions = pd.DataFrame({"promo_id": ["P1", "P2"], "sku": ["SKU01", "SKU05"], "location_id": ["S2", None],
                               "start_date": [days[3], days[10]], "end_date": [days[8], days[15]],
                               "discount_pct": [0.2, 0.1]})
    items = pd.DataFrame({"sku": skus, "unit_price": np.linspace(5, 16, len(skus)), "unit_cost": 3.0})
    return {"pos_sales": pos, "ecommerce_orders": orders, "inventory_snapshot": inventory,
            "promotions": promotions, "items": items}


def _land(world: dict[str, pd.DataFrame], root: str) -> None:
    """Write the world as curated partitions, one per day (the masters on the last day)."""
    for name, column in (("pos_sales", "business_date"), ("ecommerce_orders", "ordered_at"),
                         ("inventory_snapshot", "snapshot_date")):
        frame = world[name]
        for day, rows in frame.groupby(pd.to_datetime(frame[column]).dt.normalize()):
            write_partition(rows, "curated", name, day.date(), root)
    for name in ("promotions", "items"):
        write_partition(world[name], "curated", name, END, root)


def _sorted(frame: pd.DataFrame) -> pd.DataFrame:
    out = frame.astype({c: str for c in ("unique_id", "location_id", "sku", "channel")})
    return out.sort_values(["unique_id", "channel", "ds"]).reset_index(drop=True)


def test_shards_are_whole_skus_and_together_the_same_demand_as_one_build(tmp_path):
    world, root = _world(), str(tmp_path)
    _land(world, root)
    whole = build_demand(world["pos_sales"], world["ecommerce_orders"], world["inventory_snapshot"], START, END,
                         world["promotions"], world["items"])

    parts = list(demand_shards(END, 20, shard_size=15, root=root))

    n_series = whole[["unique_id", "channel"]].drop_duplicates().shape[0]
    assert {p.n_shards for p in parts} == {n_shards_for(n_series, 15)} and len(parts) > 1
    skus = [set(p.frame["sku"]) for p in parts]
    assert sum(len(s) for s in skus) == len(set().union(*skus)), "a SKU must live in exactly one shard"
    for part in parts:  # each shard is the one its SKUs hash to
        assert set(shard_of(pd.Series(sorted(set(part.frame["sku"]))), part.n_shards)) == {part.shard}
    together = pd.concat([p.frame for p in parts], ignore_index=True)
    assert list(together.columns) == DEMAND_COLUMNS
    pd.testing.assert_frame_equal(_sorted(together), _sorted(whole), check_dtype=False)
    assert together["censored"].any() and (together["promo"] > 0).any()
    summary = {}
    for part in parts:
        summary = demand_summary(part.frame, summary)
    assert summary == demand_summary(whole)


def test_demand_shards_without_sales_names_the_fix(tmp_path):
    with pytest.raises(ValueError, match="load history first"):
        list(demand_shards(END, 20, shard_size=10, root=str(tmp_path)))


def test_shard_files_replace_only_themselves_and_read_as_one_partition(tmp_path):
    root = str(tmp_path)
    a, b = pd.DataFrame({"x": [1, 2]}), pd.DataFrame({"x": [3], "extra": ["only here"]})
    write_shard(a, "forecasts", "demand", END, 0, 2, root)
    write_shard(b, "forecasts", "demand", END, 1, 2, root)
    # A shard without rows: pandas gives its empty text column no type, or double; it must not clash.
    write_shard(pd.DataFrame({"x": pd.Series(dtype=float), "extra": pd.Series(dtype=float)}), "reports",
                "demand_anomalies", END, 0, 2, root)
    write_shard(b, "reports", "demand_anomalies", END, 1, 2, root)
    assert read_partition("reports", "demand_anomalies", END, root)["extra"].tolist() == ["only here"]
    write_shard(a.assign(x=[5, 6]), "forecasts", "demand", END, 0, 2, root)  # a retried shard

    assert list_shards("forecasts", "demand", END, root) == [{"shard": 0, "n_shards": 2}, {"shard": 1, "n_shards": 2}]
    assert sorted(read_partition("forecasts", "demand", END, root)["x"]) == [3, 5, 6]
    assert list(read_shard("forecasts", "demand", END, 1, 2, root)["extra"]) == ["only here"]
    assert read_partition("forecasts", "demand", END, root, filters=[("x", ">", 4)])["x"].tolist() == [5, 6]
    assert [len(f) for f in iter_shards("forecasts", "demand", END, root)] == [2, 1]
    clear_partition("forecasts", "demand", END, root)
    assert not partition_exists("forecasts", "demand", END, root)
    with pytest.raises(FileNotFoundError, match="part-shard-0000-of-0002"):
        read_shard("forecasts", "demand", END, 0, 2, root)


def test_a_whole_partition_is_one_shard_to_readers(tmp_path):
    root = str(tmp_path)
    write_partition(pd.DataFrame({"x": [1, 2, 3]}), "curated", "demand", END, root)
    assert list_shards("curated", "demand", END, root) == []
    assert [len(f) for f in iter_shards("curated", "demand", END, root)] == [3]


def test_iter_range_reads_one_day_at_a_time_only_the_columns_asked(tmp_path):
    root = str(tmp_path)
    for k in range(3):
        write_partition(pd.DataFrame({"a": [k], "b": [k * 10]}), "curated", "pos_sales", START + dt.timedelta(k), root)
    write_partition(pd.DataFrame(), "curated", "pos_sales", START + dt.timedelta(3), root)  # an empty day

    days = list(iter_range("curated", "pos_sales", START + dt.timedelta(1), END, root, columns=["b", "absent"]))

    assert [d for d, _ in days] == [START + dt.timedelta(k) for k in (1, 2, 3)]
    assert [t.column_names for _, t in days] == [["b"], ["b"], []]
    assert read_range("curated", "pos_sales", START, END, root, columns=["a"])["a"].tolist() == [0, 1, 2]


def test_daily_sales_sums_lines_per_channel_sku_and_day():
    world = _world()
    pos, orders, items = world["pos_sales"], world["ecommerce_orders"], world["items"]
    by_day = [rows for _, rows in pos.groupby("business_date")]

    got = daily_sales(iter(by_day), iter([orders]), items)

    lines = sales_lines(pos, orders, items)
    want = lines.groupby(["channel", "sku", "date"], as_index=False)[["units", "gross_sales", "discount_amount"]].sum()
    key = ["channel", "sku", "date"]
    pd.testing.assert_frame_equal(got.sort_values(key, ignore_index=True), want.sort_values(key, ignore_index=True),
                                  check_dtype=False)


def test_series_scores_of_shards_add_up_to_the_whole_score():
    rng = np.random.default_rng(1)
    ids = [f"L|{i}" for i in range(8)]
    history = pd.DataFrame([(u, d, float(rng.poisson(4))) for u in ids for d in pd.date_range("2026-01-01", periods=30)],
                           columns=["unique_id", "ds", "y"])
    actuals = pd.DataFrame([(u, d, float(rng.poisson(4))) for u in ids for d in pd.date_range("2026-01-31", periods=7)],
                           columns=["unique_id", "ds", "y"])
    fc = actuals.rename(columns={"y": "mean"}).assign(mean=lambda f: f["mean"] + rng.normal(0, 1, len(f)))
    fc["demand_class"] = fc["unique_id"].map({u: ["smooth", "erratic"][i % 2] for i, u in enumerate(ids)})

    parts = [series_scores(fc[fc["unique_id"].isin(half)], actuals, history, segment_col="demand_class")
             for half in (ids[:3], ids[3:])]

    pd.testing.assert_frame_equal(segment_scores(pd.concat(parts, ignore_index=True)),
                                  score_forecasts(fc, actuals, history, segment_col="demand_class"))


def test_the_challenger_budget_of_a_night_is_shared_by_its_shards():
    cfg = ChallengerPolicy(budget_seconds=300, night_budget_seconds=600)
    assert Challenger.from_policy(cfg, n_shards=1).budget_s == 300  # the shard's own cap is the smaller
    assert Challenger.from_policy(cfg, n_shards=20).budget_s == 30


def test_the_latest_po_lines_of_a_year_are_kept_one_snapshot_at_a_time():
    from models.anomaly.supplier import latest_po_lines, received_po_lines, with_fill_rate

    rng = np.random.default_rng(5)
    days = []
    for k in range(30):  # each day's snapshot: open lines, some moving on to received or cancelled
        lines = rng.choice(60, size=25, replace=False)
        days.append(pd.DataFrame({"po_id": [f"PO{i // 3}" for i in lines], "po_line": lines % 3 + 1,
                                  "supplier_id": [f"SUP{i % 4}" for i in lines], "order_date": START,
                                  "status": rng.choice(["open", "received", "cancelled"], size=25),
                                  "quantity_ordered": 10.0, "quantity_received": rng.integers(0, 11, 25).astype(float),
                                  "_ds": START + dt.timedelta(days=k)}))
    whole = pd.concat(days, ignore_index=True)

    latest = latest_po_lines(iter(days))

    assert len(latest) == whole[["po_id", "po_line"]].drop_duplicates().shape[0]
    receipts = whole[["po_id", "po_line"]].drop_duplicates().assign(received_date=START + dt.timedelta(days=9))
    suppliers = pd.DataFrame({"supplier_id": [f"SUP{i}" for i in range(4)], "promised_lead_time_days": 7})
    key = ["po_id", "po_line"]
    pd.testing.assert_frame_equal(
        received_po_lines(receipts, latest, suppliers).sort_values(key, ignore_index=True),
        received_po_lines(receipts, whole, suppliers).sort_values(key, ignore_index=True))
    stats = pd.DataFrame({"supplier_id": [f"SUP{i}" for i in range(4)]})
    pd.testing.assert_frame_equal(with_fill_rate(stats, latest), with_fill_rate(stats, whole))
