"""The sample retailer: deterministic, contract-exact extracts with realistic stock dynamics."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from include.config import CONTRACTS_DIR, partition_path
from include.ingest.pipeline import INTRADAY_SOURCES
from include.sample_data import PRESETS, generate_world, landing_days, write_landing

TINY = PRESETS["tiny"]
#: The nightly extracts' contracts (the hourly ones land apart, see test_sample_intraday.py).
CONTRACTS = {path.stem: doc for path in sorted(CONTRACTS_DIR.glob("*.yaml"))
             if (doc := yaml.safe_load(path.read_text()))["source"] not in INTRADAY_SOURCES}
MASTER = ("items", "locations", "suppliers", "promotions")


@pytest.fixture(scope="module")
def world():
    return generate_world(TINY)


@pytest.fixture(scope="module")
def landing(world, tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("landing_root")
    write_landing(world, str(root))
    return root


def _read(root: Path, contract: dict, day: dt.date) -> pd.DataFrame:
    """Read one landed file as text, the way an ingest would see it before typing."""
    path = Path(partition_path("landing", contract["source"], day, str(root))) / contract["file"]["name"]
    fmt = contract["file"]["format"]
    if fmt == "csv":
        return pd.read_csv(path, dtype=str, keep_default_na=False)
    if fmt == "jsonl":
        records = [json.loads(line) for line in path.read_text().splitlines() if line]
        columns = [c["name"] for c in contract["schema"]]
        return pd.DataFrame(records, columns=columns if not records else None)
    return pq.read_table(path).to_pandas()


def _check_column(values: pd.Series, spec: dict, where: str) -> list[str]:
    """Problems of one column against its contract spec (empty when it conforms)."""
    problems = []
    present = values.notna() & (values.astype(str) != "")
    if spec.get("required") and not present.all():
        problems.append(f"{where}.{spec['name']}: missing values")
    v = values[present]
    kind = spec["type"]
    if kind == "integer":
        numbers = pd.to_numeric(v, errors="coerce")
        if numbers.isna().any() or (numbers != numbers.round()).any() or v.astype(str).str.contains(r"\.").any():
            problems.append(f"{where}.{spec['name']}: not integers")
    elif kind == "number":
        numbers = pd.to_numeric(v, errors="coerce")
        if numbers.isna().any():
            problems.append(f"{where}.{spec['name']}: not numbers")
    elif kind in ("date", "timestamp"):
        fmt = "%Y-%m-%d" if kind == "date" else "%Y-%m-%dT%H:%M:%S"
        parsed = pd.to_datetime(v.astype(str), format=fmt, errors="coerce")
        if parsed.isna().any():
            problems.append(f"{where}.{spec['name']}: not {kind} values")
    if kind in ("integer", "number"):
        numbers = pd.to_numeric(v, errors="coerce")
        if "min" in spec and (numbers < spec["min"]).any():
            problems.append(f"{where}.{spec['name']}: below {spec['min']}")
        if "max" in spec and (numbers > spec["max"]).any():
            problems.append(f"{where}.{spec['name']}: above {spec['max']}")
    if "allowed_values" in spec and not v.isin(spec["allowed_values"]).all():
        problems.append(f"{where}.{spec['name']}: unexpected {sorted(set(v) - set(spec['allowed_values']))}")
    return problems


def test_same_seed_gives_identical_world_and_another_seed_does_not(world):
    again = generate_world(TINY)
    for name in ("items", "locations", "promotions", "purchase_orders", "receipts", "returns", "pos_sales",
                 "ecommerce_orders", "inventory_snapshot", "true_demand"):
        pd.testing.assert_frame_equal(getattr(world, name), getattr(again, name), obj=name)
    other = generate_world(dataclasses.replace(TINY, seed=TINY.seed + 1))
    assert not other.pos_sales.equals(world.pos_sales)


def test_history_window_ends_at_end_date(world):
    days = landing_days(world)
    assert len(days) == TINY.history_days
    assert days[-1] == TINY.end_date
    assert days == sorted(days)


def test_every_landed_file_matches_its_contract(world, landing):
    problems: list[str] = []
    frames = {}
    for name, contract in CONTRACTS.items():
        columns = [c["name"] for c in contract["schema"]]
        parts = []
        for day in landing_days(world):
            part = _read(landing, contract, day)
            assert list(part.columns) == columns, f"{name}@{day}"
            if len(part) < contract.get("volume", {}).get("min_rows", 0):
                problems.append(f"{name}@{day}: fewer than {contract['volume']['min_rows']} rows")
            parts.append(part.assign(_ds=day))
        frames[name] = pd.concat(parts, ignore_index=True)
    for name, contract in CONTRACTS.items():
        frame = frames[name]
        for spec in contract["schema"]:
            problems += _check_column(frame[spec["name"]], spec, name)
            ref = spec.get("references")
            if ref:
                # A reference must resolve in the master snapshot landed the same day.
                target = frames[ref["contract"]]
                known = pd.MultiIndex.from_arrays([target["_ds"], target[ref["column"]]])
                filled = frame[frame[spec["name"]].astype(str) != ""]
                found = pd.MultiIndex.from_arrays([filled["_ds"], filled[spec["name"]]]).isin(known)
                if not found.all():
                    problems.append(f"{name}.{spec['name']}: unknown {filled[spec['name']][~found].unique()[:3]}")
        if frame.duplicated([*contract["primary_key"], "_ds"]).any():
            problems.append(f"{name}: duplicate {contract['primary_key']} within a day")
    assert not problems, problems[:20]


def test_in_memory_frames_have_contract_columns_and_unique_keys(world):
    for name, contract in CONTRACTS.items():
        frame = getattr(world, name)
        assert list(frame.columns) == [c["name"] for c in contract["schema"]], name
        assert not frame.duplicated(contract["primary_key"]).any(), name


def test_landing_layout_and_formats(world, landing):
    day = landing_days(world)[-1]
    sources = {c["source"] for c in CONTRACTS.values()}
    assert sources == {"master", "pos", "ecommerce", "wms", "supplier", "returns"}
    for source in sources:
        folders = sorted(p.name for p in (landing / "landing" / source).iterdir())
        assert folders == [f"ds={d.isoformat()}" for d in landing_days(world)], source
    expected = {"master": {"items.csv", "locations.csv", "suppliers.csv", "promotions.csv"},
                "supplier": {"purchase_orders.csv", "receipts.csv"}, "pos": {"pos_sales.csv"},
                "ecommerce": {"order_lines.jsonl"}, "wms": {"inventory_snapshot.parquet"},
                "returns": {"returns.jsonl"}}
    for source, names in expected.items():
        folder = Path(partition_path("landing", source, day, str(landing)))
        assert {p.name for p in folder.iterdir()} == names

    schema = pq.read_schema(Path(partition_path("landing", "wms", day, str(landing))) / "inventory_snapshot.parquet")
    assert schema.field("snapshot_date").type == pa.date32()
    assert schema.field("on_hand").type == pa.int64()
    assert schema.field("location_id").type == pa.string()
    order_lines = Path(partition_path("landing", "ecommerce", day, str(landing))) / "order_lines.jsonl"
    first = json.loads(order_lines.read_text().splitlines()[0])
    assert dt.datetime.strptime(first["ordered_at"], "%Y-%m-%dT%H:%M:%S").date() == day
    pos = (Path(partition_path("landing", "pos", day, str(landing))) / "pos_sales.csv").read_text()
    assert pos.splitlines()[0] == "store_id,sku,business_date,units_sold,gross_sales,discount_amount,promo_id"


def test_write_landing_for_some_days_writes_only_those(world, tmp_path):
    days = landing_days(world)
    chosen = [days[3], days[-1]]
    paths = write_landing(world, str(tmp_path), chosen)
    assert len(paths) == 2 * len(CONTRACTS)
    for source in {c["source"] for c in CONTRACTS.values()}:
        folders = sorted(p.name for p in (tmp_path / "landing" / source).iterdir())
        assert folders == [f"ds={d.isoformat()}" for d in chosen]
    # Re-writing a day replaces its files rather than appending to them.
    pos = Path(partition_path("landing", "pos", days[-1], str(tmp_path))) / "pos_sales.csv"
    before = pos.read_bytes()
    write_landing(world, str(tmp_path), [days[-1]])
    assert pos.read_bytes() == before


def test_write_landing_rejects_days_outside_history(world, tmp_path):
    with pytest.raises(ValueError, match="outside the generated history"):
        write_landing(world, str(tmp_path), [TINY.end_date + dt.timedelta(days=1)])


def test_inventory_never_negative_and_allocation_covered(world):
    inv = world.inventory_snapshot
    assert (inv[["on_hand", "allocated", "in_transit"]] >= 0).all().all()
    assert (inv["allocated"] <= inv["on_hand"]).all()
    assert inv["allocated"].sum() > 0  # evening web orders are held overnight at the FC


def test_sales_never_exceed_demand_and_stockouts_censor_some_days(world):
    demand = world.true_demand
    assert (demand["sales"] <= demand["demand"]).all()
    stores = demand[demand["location_id"].str.startswith("S")]
    censored = stores["sales"] < stores["demand"]
    assert 0.002 < censored.mean() < 0.15, censored.mean()
    # A censored day is a day the shelf ran empty.
    inv = world.inventory_snapshot.rename(columns={"snapshot_date": "date"})
    out = stores[censored].merge(inv, on=["location_id", "sku", "date"])
    assert len(out) == censored.sum()
    assert (out["on_hand"] == 0).all()


def test_pos_sales_are_the_censored_store_sales(world):
    pos = world.pos_sales
    assert (pos["units_sold"] > 0).all()
    demand = world.true_demand
    stores = demand[demand["location_id"].str.startswith("S") & (demand["sales"] > 0)]
    assert pos["units_sold"].sum() == stores["sales"].sum()
    promo = pos["promo_id"].notna()
    assert (pos.loc[promo, "discount_amount"] > 0).all()
    assert (pos.loc[~promo, "discount_amount"] == 0).all()


def test_ecommerce_lines_match_fulfilment_centre_demand(world):
    lines = world.ecommerce_orders
    fc = world.locations.loc[world.locations["location_type"] == "ecom_fc", "location_id"].item()
    assert (lines["fulfilment_location_id"] == fc).all()
    assert lines["quantity"].between(1, 3).mean() > 0.95
    per_order = lines.groupby("order_id")["line_no"].max()
    assert per_order.between(1, 3).all()
    demand = world.true_demand[world.true_demand["location_id"] == fc]
    assert lines["quantity"].sum() == demand["demand"].sum()
    filled = lines.loc[lines["status"] != "cancelled", "quantity"].sum()
    assert filled == demand["sales"].sum()
    share = demand["demand"].sum() / world.true_demand["demand"].sum()
    assert abs(share - TINY.ecommerce_share) < 0.08


def test_purchase_orders_and_receipts_agree(world):
    po, rc = world.purchase_orders, world.receipts
    assert (po["quantity_received"] <= po["quantity_ordered"]).all()
    assert (po.loc[po["status"] == "received", "quantity_received"]
            == po.loc[po["status"] == "received", "quantity_ordered"]).all()
    assert (po.loc[po["status"] == "open", "quantity_received"] == 0).all()
    assert (po.loc[po["status"] == "cancelled", "quantity_received"] == 0).all()
    partial = po[po["status"] == "partial"]
    assert ((partial["quantity_received"] > 0) & (partial["quantity_received"] < partial["quantity_ordered"])).all()
    merged = rc.merge(po, on=["po_id", "po_line"], suffixes=("", "_po"), validate="many_to_one")
    assert len(merged) == len(rc)
    assert (merged["location_id"] == merged["destination_location_id"]).all()
    assert (merged["received_date"] > merged["order_date"]).all()
    booked = rc.groupby(["po_id", "po_line"])["quantity_received"].sum()
    assert (booked <= po.set_index(["po_id", "po_line"]).loc[booked.index, "quantity_received"]).all()


def test_some_po_receipts_are_late(world):
    merged = world.receipts.merge(world.purchase_orders, on=["po_id", "po_line"])
    late = merged["received_date"] > merged["promised_date"]
    assert 0.03 < late.mean() < 0.6, late.mean()


def test_promotions_lift_demand(world):
    demand = world.true_demand
    promos = world.promotions[world.promotions["location_id"].isna()]
    flags = []
    for promo in promos.itertuples():
        days = pd.date_range(promo.start_date, promo.end_date)
        flags.append(pd.DataFrame({"sku": promo.sku, "date": days}))
    on_promo = pd.concat(flags).drop_duplicates().assign(promo=True)
    joined = demand.merge(on_promo, on=["sku", "date"], how="left")
    joined["promo"] = joined["promo"].fillna(False).astype(bool)
    means = joined.groupby(["location_id", "sku", "promo"])["demand"].mean().unstack("promo").dropna()
    assert len(means) > 0
    assert (means[True] / means[False].clip(lower=0.01)).median() > 1.2


def test_returns_are_a_few_percent_of_units_and_reference_sales(world):
    returns = world.returns
    units = world.true_demand["sales"].sum()
    assert 0.01 < returns["quantity"].sum() / units < 0.12
    assert set(returns["channel"]) == {"store", "web"}
    web = returns[returns["channel"] == "web"]
    assert (web["location_id"] == "FC01").all()
    assert (returns.loc[returns["reason"] == "late_delivery", "channel"] == "web").all()
    assert (returns["returned_at"].dt.date <= TINY.end_date).all()


def test_fulfilment_centre_stock_reconciles_day_to_day(world):
    inv = world.inventory_snapshot
    fc = inv[inv["location_id"] == "FC01"].pivot(index="snapshot_date", columns="sku", values="on_hand")
    allocated = inv[inv["location_id"] == "FC01"].pivot(index="snapshot_date", columns="sku", values="allocated")
    received = (world.receipts[world.receipts["location_id"] == "FC01"]
                .pivot_table(index="received_date", columns="sku", values="quantity_received", aggfunc="sum")
                .reindex(index=fc.index, columns=fc.columns, fill_value=0).fillna(0))
    demand = world.true_demand[world.true_demand["location_id"] == "FC01"]
    filled = demand.pivot(index="date", columns="sku", values="sales").reindex(index=fc.index, columns=fc.columns)
    # Units leave the FC the day they are filled, except evening orders, which ship the next morning.
    shipped = filled - allocated + allocated.shift(1)
    change = fc.diff()
    expected = received - shipped
    assert np.array_equal(change.iloc[1:].to_numpy(), expected.iloc[1:].to_numpy())
