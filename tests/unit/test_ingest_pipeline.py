"""Unit tests for include.ingest.pipeline on a tiny generated retailer written to a temporary data root."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

from include.contracts.contract import load_contracts
from include.contracts.validate import BLOCKED, PASSED, WARNED, ContractViolation
from include.ingest.pipeline import ingest_source, load_history
from include.sample_data import PRESETS, generate_world, write_landing
from include.storage import read_partition, write_partition

CONTRACTS = load_contracts()


@pytest.fixture(scope="module")
def world():
    return generate_world(PRESETS["tiny"])


@pytest.fixture
def end(world) -> dt.date:
    return world.config.end_date


@pytest.fixture
def root(world, end, tmp_path) -> str:
    write_landing(world, str(tmp_path), days=[end - dt.timedelta(days=2), end - dt.timedelta(days=1), end])
    return str(tmp_path)


def _landing(root: str, source: str, day: dt.date, name: str) -> Path:
    return Path(root) / "landing" / source / f"ds={day.isoformat()}" / name


def _snapshot(root: str) -> dict[str, tuple[bytes, int]]:
    files = sorted(p for p in (Path(root) / "landing").rglob("*") if p.is_file())
    return {str(p): (p.read_bytes(), p.stat().st_mtime_ns) for p in files}


def _pos_rows(root: str, day: dt.date) -> pd.DataFrame:
    return pd.read_csv(_landing(root, "pos", day, "pos_sales.csv"), dtype=str, keep_default_na=False)


def _edit_pos_cell(root: str, day: dt.date, row: int, value: str) -> None:
    """Set ``units_sold`` of one data row of the landed POS file (row 0 is on line 2)."""
    path = _landing(root, "pos", day, "pos_sales.csv")
    lines = path.read_text().splitlines()
    header = lines[0].split(",")
    cells = lines[row + 1].split(",")
    cells[header.index("units_sold")] = value
    lines[row + 1] = ",".join(cells)
    path.write_text("\n".join(lines) + "\n")


def test_ingest_writes_curated_partitions_and_leaves_landing_untouched(root, end):
    before = _snapshot(root)

    master = ingest_source("master", end, root=root, contracts=CONTRACTS)
    pos = ingest_source("pos", end, root=root, contracts=CONTRACTS)

    assert [r.contract_id for r in master] == ["suppliers", "locations", "items", "promotions"]
    assert [r.outcome for r in master + pos] == [PASSED] * 5
    landed = _pos_rows(root, end)
    part = Path(root) / "curated" / "pos_sales" / f"ds={end.isoformat()}" / "part-0.parquet"
    assert part.is_file()
    curated = pq.read_table(part).to_pandas()
    assert len(curated) == len(landed) == pos[0].rows_in == pos[0].rows_passed
    assert sorted(curated["store_id"] + "/" + curated["sku"]) == sorted(landed["store_id"] + "/" + landed["sku"])
    assert curated["units_sold"].sum() == landed["units_sold"].astype(int).sum()
    assert curated["_source_line"].tolist() == list(range(2, len(landed) + 2))
    assert set(curated["_source_file"]) == {str(_landing(root, "pos", end, "pos_sales.csv"))}
    items = read_partition("curated", "items", end, root)
    assert len(items) == len(pd.read_csv(_landing(root, "master", end, "items.csv")))
    # Landing files are only ever read.
    assert _snapshot(root) == before


@pytest.mark.parametrize(
    ("value", "rule", "reason"),
    [
        ("abc", "type:units_sold", "units_sold='abc' is not a valid integer (line 5, column 4)"),
        ("-3", "range:units_sold", "range:units_sold broken by units_sold=-3"),
    ],
)
def test_one_bad_pos_cell_quarantines_exactly_that_row(root, end, value, rule, reason):
    ingest_source("master", end, root=root, contracts=CONTRACTS)
    _edit_pos_cell(root, end, row=3, value=value)
    landed = _pos_rows(root, end)
    bad = landed.iloc[3]

    [result] = ingest_source("pos", end, root=root, contracts=CONTRACTS)

    # One row in ~25 is under the contract's 5%: the extract goes through with a warning.
    assert result.outcome == WARNED
    assert (result.rows_in, result.rows_passed, result.rows_quarantined) == (len(landed), len(landed) - 1, 1)
    assert result.breaches == {rule: 1}
    assert result.sample_keys == [f"{bad['store_id']}/{bad['sku']}/{bad['business_date']} 00:00:00"]
    quarantine = read_partition("quarantine", "pos_sales", end, root)
    assert len(quarantine) == 1
    row = quarantine.iloc[0]
    assert (row["_rules"], row["_reasons"], row["_source_line"]) == (rule, reason, 5)
    assert (row["store_id"], row["sku"], row["units_sold"]) == (bad["store_id"], bad["sku"], value)
    assert row["_source_file"] == str(_landing(root, "pos", end, "pos_sales.csv"))
    assert result.quarantine_path == f"{root}/quarantine/pos_sales/ds={end.isoformat()}/part-0.parquet"
    curated = read_partition("curated", "pos_sales", end, root)
    assert len(curated) == len(landed) - 1
    assert 5 not in curated["_source_line"].tolist()


def test_missing_file_blocks_and_empties_the_curated_partition(root, end):
    ingest_source("master", end, root=root, contracts=CONTRACTS)
    ingest_source("pos", end, root=root, contracts=CONTRACTS)
    assert len(read_partition("curated", "pos_sales", end, root)) > 0
    path = _landing(root, "pos", end, "pos_sales.csv")
    path.unlink()

    with pytest.raises(ContractViolation) as caught:
        ingest_source("pos", end, root=root, contracts=CONTRACTS)

    [result] = caught.value.results
    assert result.outcome == BLOCKED
    assert result.breaches == {"freshness": 1}
    critical = (f"critical: pos_sales is a critical source (its data contract's criticality), so no earlier "
                f"partition stands in for the extract {path} and the night stops")
    assert result.reasons == [f"freshness: no file for {end.isoformat()} at {path} (error)", critical]
    assert str(caught.value) == (
        f"blocked by data contract: pos_sales v1.2.0 ds={end.isoformat()}: blocked; 0 rows in, 0 passed, "
        f"0 quarantined; breaches freshness=1; freshness: no file for {end.isoformat()} at {path} (error); "
        f"{critical} (every validation is recorded in ops.contract_runs)"
    )
    # The partitions of the date exist and are empty: yesterday's rows cannot pass for today's.
    assert len(read_partition("curated", "pos_sales", end, root)) == 0
    assert len(read_partition("quarantine", "pos_sales", end, root)) == 0


def test_an_extract_that_fails_to_process_leaves_no_earlier_partition(root, end, monkeypatch):
    import include.ingest.pipeline as pipeline

    ingest_source("master", end, root=root, contracts=CONTRACTS)
    _edit_pos_cell(root, end, row=0, value="abc")
    ingest_source("pos", end, root=root, contracts=CONTRACTS)
    assert len(read_partition("quarantine", "pos_sales", end, root)) == 1

    def broken(*args, **kwargs):
        raise RuntimeError("GX says range:units_sold passed but the row split finds 1 breaking rows")

    monkeypatch.setattr(pipeline, "validate_extract", broken)
    with pytest.raises(RuntimeError, match="GX says"):
        ingest_source("pos", end, root=root, contracts=CONTRACTS)

    assert len(read_partition("curated", "pos_sales", end, root)) == 0
    assert len(read_partition("quarantine", "pos_sales", end, root)) == 0
    # Only the date's partition folders are left: no staging or superseded folder.
    for zone in ("curated", "quarantine"):
        assert [p.name for p in (Path(root) / zone / "pos_sales").iterdir()] == [f"ds={end.isoformat()}"]


def test_a_failed_write_keeps_the_earlier_partitions_whole(root, end, monkeypatch):
    import include.ingest.publish as publish

    ingest_source("master", end, root=root, contracts=CONTRACTS)
    ingest_source("pos", end, root=root, contracts=CONTRACTS)
    before = read_partition("curated", "pos_sales", end, root)
    real_write = publish.write_partition

    def write_then_fail(frame, zone, *args, **kwargs):
        if zone == "quarantine":
            raise OSError("disk full")
        return real_write(frame, zone, *args, **kwargs)

    monkeypatch.setattr(publish, "write_partition", write_then_fail)
    with pytest.raises(OSError, match="disk full"):
        publish.publish_partitions("pos_sales", end, root, {"curated": before.iloc[:1], "quarantine": before.iloc[0:0]})

    pd.testing.assert_frame_equal(read_partition("curated", "pos_sales", end, root), before)
    assert [p.name for p in (Path(root) / "curated" / "pos_sales").iterdir()] == [f"ds={end.isoformat()}"]


def test_blocked_extract_can_be_returned_instead_of_raised(root, end):
    _landing(root, "wms", end, "inventory_snapshot.parquet").unlink()

    [result] = ingest_source("wms", end, root=root, contracts=CONTRACTS, raise_on_block=False)

    assert (result.contract_id, result.outcome) == ("inventory_snapshot", BLOCKED)


def test_empty_jsonl_delivery_passes(root, end):
    ingest_source("master", end, root=root, contracts=CONTRACTS)
    _landing(root, "returns", end, "returns.jsonl").write_bytes(b"")

    [result] = ingest_source("returns", end, root=root, contracts=CONTRACTS)

    assert (result.outcome, result.rows_in) == (PASSED, 0)
    assert len(read_partition("curated", "returns", end, root)) == 0


def test_rerun_replaces_partitions(root, end):
    ingest_source("master", end, root=root, contracts=CONTRACTS)
    _edit_pos_cell(root, end, row=0, value="abc")
    ingest_source("pos", end, root=root, contracts=CONTRACTS)
    first = read_partition("curated", "pos_sales", end, root)
    assert len(read_partition("quarantine", "pos_sales", end, root)) == 1

    # The store resends a corrected file and the date is run again.
    _edit_pos_cell(root, end, row=0, value="2")
    ingest_source("pos", end, root=root, contracts=CONTRACTS)
    ingest_source("pos", end, root=root, contracts=CONTRACTS)

    second = read_partition("curated", "pos_sales", end, root)
    assert len(second) == len(first) + 1 == len(_pos_rows(root, end))
    assert not second.duplicated(["store_id", "sku", "business_date"]).any()
    assert len(read_partition("quarantine", "pos_sales", end, root)) == 0


def test_load_history_splits_days_and_is_idempotent(root, end):
    start = end - dt.timedelta(days=2)
    days = [start + dt.timedelta(days=i) for i in range(3)]
    before = _snapshot(root)

    counts = load_history(start, end, root=root, contracts=CONTRACTS)
    again = load_history(start, end, root=root, contracts=CONTRACTS)

    assert again == counts
    assert counts["pos_sales"] == sum(len(_pos_rows(root, d)) for d in days)
    for day in days:
        curated = read_partition("curated", "pos_sales", day, root)
        assert len(curated) == len(_pos_rows(root, day))
        assert set(curated["business_date"]) == {pd.Timestamp(day)}
        assert not curated.duplicated(["store_id", "sku"]).any()
        # Open purchase orders are a daily snapshot: the same PO line lands every day it is open, and
        # each day's partition keeps all of them.
        landed_pos = pd.read_csv(_landing(root, "supplier", day, "purchase_orders.csv"))
        assert len(read_partition("curated", "purchase_orders", day, root)) == len(landed_pos)
        assert len(read_partition("quarantine", "purchase_orders", day, root)) == 0
        inventory = pq.read_table(_landing(root, "wms", day, "inventory_snapshot.parquet"))
        assert len(read_partition("curated", "inventory_snapshot", day, root)) == inventory.num_rows
    assert counts["inventory_snapshot"] == sum(
        pq.read_table(_landing(root, "wms", d, "inventory_snapshot.parquet")).num_rows for d in days)
    assert _snapshot(root) == before


def test_reingest_command_applies_corrections_for_the_date(root, end, capsys):
    from include.ingest.__main__ import main

    ingest_source("master", end, root=root, contracts=CONTRACTS)
    _edit_pos_cell(root, end, row=2, value="-5")
    delivered = _landing(root, "pos", end, "pos_sales.csv").read_bytes()
    assert main(["reingest", "--source", "pos", "--ds", end.isoformat(), "--root", root]) == 0
    [bad] = read_partition("quarantine", "pos_sales", end, root).to_dict("records")
    assert (bad["_rules"], bad["_source_line"], bad["units_sold"]) == ("range:units_sold", 4, "-5")

    # The data engineer writes the fixed row (same columns, no lineage) under corrections/ and re-ingests.
    fixed = _pos_rows(root, end).iloc[[2]].assign(units_sold="5")
    corrections = _landing(root, "pos", end, "corrections/pos_sales.csv")
    corrections.parent.mkdir()
    fixed.to_csv(corrections, index=False)
    assert main(["reingest", "--source", "pos", "--ds", end.isoformat(), "--root", root]) == 0

    assert "pos_sales v1.2.0 ds=" + end.isoformat() + ": passed" in capsys.readouterr().out
    assert len(read_partition("quarantine", "pos_sales", end, root)) == 0
    curated = read_partition("curated", "pos_sales", end, root)
    assert len(curated) == len(_pos_rows(root, end))
    row = curated[curated["_source_file"] == str(corrections)]
    assert row["units_sold"].tolist() == [5] and row["_source_line"].tolist() == [2]
    assert _landing(root, "pos", end, "pos_sales.csv").read_bytes() == delivered


def test_volume_far_from_the_trailing_median_warns(root, end):
    ingest_source("master", end, root=root, contracts=CONTRACTS)
    landed = len(_pos_rows(root, end))
    for back in range(1, 9):
        # Earlier days delivered three times as many rows.
        write_partition(pd.DataFrame({"row": range(3 * landed)}), "curated", "pos_sales",
                        end - dt.timedelta(days=back), root)

    [result] = ingest_source("pos", end, root=root, contracts=CONTRACTS)

    assert result.outcome == WARNED
    assert result.breaches == {"volume": landed}
    assert result.reasons == [f"volume: {landed} rows is 0.33x the median of {3 * landed} over the last 8 delivered "
                              "days (expected 0.5x to 2x) (warning)"]
    assert result.rows_passed == landed
