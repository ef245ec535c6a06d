"""Hourly ingest of the intraday extracts: contracts, partition rules, atomic hour partitions, the day so far.

The tiny world with shocks lands its master and nightly extracts of the day before (curated, as the last
night would have left them: references are checked against them) and every hour of the last day.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

from include.contracts.contract import load_contracts
from include.contracts.validate import BLOCKED, PASSED, WARNED, ContractViolation
from include.ingest.intraday import NOT_DELIVERED, hour_landing_file, ingest_hour, read_intraday
from include.ingest.pipeline import INTRADAY_SOURCES, ingest_source
from include.sample_data.generator import PRESETS, generate_world, landing_days, write_landing
from include.sample_data.intraday import ShockConfig
from include.sample_data.intraday_landing import SNAPSHOT_HOURS, write_intraday_landing
from include.storage import partition_hours, read_hours

CONTRACTS = load_contracts()


@pytest.fixture(scope="module")
def world():
    return generate_world(dataclasses.replace(PRESETS["tiny"], shocks=ShockConfig(days=3, per_day=2)))


@pytest.fixture(scope="module")
def day(world) -> str:
    return landing_days(world)[-1].isoformat()


@pytest.fixture(scope="module")
def landed(world, day, tmp_path_factory) -> Path:
    """A data root with last night's master curated and every hour of ``day`` landed (never ingested here)."""
    root = tmp_path_factory.mktemp("intraday_landed")
    previous = landing_days(world)[-2]
    write_landing(world, str(root), [previous])
    assert [r.outcome for r in ingest_source("master", previous, root=str(root))] == [PASSED] * 4
    write_intraday_landing(world, str(root), day)
    return root


@pytest.fixture
def root(landed, tmp_path) -> str:
    """A copy of the landed root for one test, which may change its files."""
    shutil.copytree(landed, tmp_path / "root")
    return str(tmp_path / "root")


def _file(root: str, source: str, day: str, hour: int) -> Path:
    name = {"pos_intraday": "pos_sales.csv", "ecommerce_intraday": "order_lines.jsonl",
            "wms_intraday": "inventory_snapshot.parquet"}[source]
    return Path(root) / "landing" / source / f"ds={day}" / f"hour={hour:02d}" / name


def _landed_rows(path: Path) -> pd.DataFrame:
    if path.suffix == ".csv":
        return pd.read_csv(path, dtype=str, keep_default_na=False)
    if path.suffix == ".jsonl":
        return pd.DataFrame([json.loads(line) for line in path.read_text().splitlines() if line])
    return pq.read_table(path).to_pandas()


def _write_rows(path: Path, rows: pd.DataFrame) -> None:
    if path.suffix == ".csv":
        rows.to_csv(path, index=False, lineterminator="\n")
    elif path.suffix == ".jsonl":
        path.write_text("".join(json.dumps(r) + "\n" for r in rows.to_dict(orient="records")))
    else:
        rows.to_parquet(path, index=False)


def _busiest_hour(root: str, source: str, day: str) -> int:
    hours = SNAPSHOT_HOURS if source == "wms_intraday" else range(24)
    return max(hours, key=lambda h: len(_landed_rows(_file(root, source, day, h))))


@pytest.fixture(scope="module")
def ingested(landed, day, tmp_path_factory) -> tuple[str, dict]:
    """A copy of the landed root with every delivered hour ingested once, and the result of each."""
    root = str(tmp_path_factory.mktemp("intraday_ingested") / "root")
    shutil.copytree(landed, root)
    results = {}
    for source in INTRADAY_SOURCES:
        for hour in SNAPSHOT_HOURS if source == "wms_intraday" else range(24):
            [results[source, hour]] = ingest_hour(source, day, hour, root)
    return root, results


def test_every_delivered_hour_passes_with_the_rows_landed(ingested, day):
    root, results = ingested
    for (source, hour), result in results.items():
        landed_rows = len(_landed_rows(_file(root, source, day, hour)))
        assert (result.outcome, result.rows_in, result.rows_passed) == (PASSED, landed_rows, landed_rows), \
            result.summary()
        assert result.file == hour_landing_file(root, _contract(source), day, hour)
        assert len(read_hours("curated", source, day, [hour], root)) == landed_rows
        assert len(read_hours("quarantine", source, day, [hour], root)) == 0
    # A closed hour is a header without rows: delivered, and passed with none.
    assert len(_landed_rows(_file(root, "pos_intraday", day, 3))) == 0
    assert partition_hours("curated", "pos_intraday", day, root) == list(range(24))
    assert partition_hours("curated", "wms_intraday", day, root) == list(SNAPSHOT_HOURS)


def _contract(source: str):
    return CONTRACTS[source]


def _break_row(rows: pd.DataFrame, source: str, hour: int, case: str) -> pd.DataFrame:
    rows = rows.copy()
    if case == "unknown_sku":
        rows.loc[1, "sku"] = "SKU99999"
    elif case == "negative_units":
        rows.loc[1, "units_sold"] = "-2"
    elif case in ("other_hour", "negative_units_other_hour"):
        rows.loc[1, "hour"] = str(hour - 1)
        if case == "negative_units_other_hour":
            rows.loc[1, "units_sold"] = "-2"
    elif case == "ordered_earlier":
        rows.loc[1, "ordered_at"] = f"{rows.loc[1, 'ordered_at'][:11]}{hour - 1:02d}:59:00"
    elif case == "snapshot_of_yesterday":
        rows.loc[1, "snapshot_at"] = rows.loc[1, "snapshot_at"] - pd.Timedelta(days=1)
    return rows


@pytest.mark.parametrize(("source", "case", "rules", "reason"), [
    ("pos_intraday", "unknown_sku", "reference:sku", "reference:sku broken by sku='SKU99999'"),
    ("pos_intraday", "negative_units", "range:units_sold", "range:units_sold broken by units_sold=-2"),
    ("pos_intraday", "other_hour", "partition:hour", "partition:hour broken by hour={prev} on line 3: the file of "
     "{day} hour {hour:02d} holds hour {hour} only"),
    ("pos_intraday", "negative_units_other_hour", "range:units_sold;partition:hour",
     "range:units_sold broken by units_sold=-2 | partition:hour broken by hour={prev} on line 3"),
    ("ecommerce_intraday", "ordered_earlier", "partition:ordered_at",
     "partition:ordered_at broken by ordered_at='{day}T{prev:02d}:59:00' on line 2: the file of {day} hour "
     "{hour:02d} holds {day} {hour:02d}:00 to before {next:02d}:00"),
    ("wms_intraday", "snapshot_of_yesterday", "partition:snapshot_at", "partition:snapshot_at broken by snapshot_at="),
])
def test_a_bad_row_is_quarantined_naming_file_line_and_rule(root, day, source, case, rules, reason):
    hour = _busiest_hour(root, source, day)
    path = _file(root, source, day, hour)
    rows = _landed_rows(path)
    _write_rows(path, _break_row(rows, source, hour, case))
    line = 3 if path.suffix == ".csv" else 2  # the second row, under a CSV header

    # A tiny world's hour: one bad row of a handful is beyond the 5% the contract trusts; of a snapshot
    # of every location x SKU it is not.
    blocks = source != "wms_intraday"
    assert (100 / len(rows) > 5) == blocks
    if blocks:
        with pytest.raises(ContractViolation) as caught:
            ingest_hour(source, day, hour, root)
        [result] = caught.value.results
        assert str(caught.value).startswith(f"blocked by data contract: {source} v1.0.0 ds={day}: blocked")
        assert "quarantine_share" in result.breaches
    else:
        [result] = ingest_hour(source, day, hour, root)
        assert result.outcome == WARNED
    quarantine = read_hours("quarantine", source, day, [hour], root)
    assert len(quarantine) == 1 and result.rows_quarantined == 1
    [bad] = quarantine.to_dict(orient="records")
    assert (bad["_source_file"], bad["_source_line"], bad["_rules"]) == (str(path), line, rules)
    assert reason.format(day=day, hour=hour, prev=hour - 1, next=hour + 1) in bad["_reasons"]
    for rule in rules.split(";"):
        assert result.breaches[rule] == 1
    assert result.quarantine_path is not None and f"/quarantine/{source}/ds={day}/hour={hour:02d}/" in \
        result.quarantine_path
    assert result.rows_passed == len(rows) - 1
    curated = read_hours("curated", source, day, [hour], root)
    assert len(curated) == (0 if blocks else len(rows) - 1)
    assert line not in curated.get("_source_line", pd.Series(dtype="int64")).tolist()


@pytest.mark.parametrize(("source", "damage", "breach"), [
    ("pos_intraday", "garbage", "parse:"),
    ("pos_intraday", "missing_column", "schema:missing_columns"),
    ("ecommerce_intraday", "garbage", "parse:"),
    ("wms_intraday", "garbage", "parse:format"),
    ("wms_intraday", "missing_column", "schema:missing_columns"),
])
def test_a_broken_file_blocks_and_leaves_no_curated_rows_of_its_hour(root, day, source, damage, breach):
    hour = _busiest_hour(root, source, day)
    path = _file(root, source, day, hour)
    other = 9 if hour != 9 else 13
    ingest_hour(source, day, other, root)
    other_rows = read_hours("curated", source, day, [other], root)
    [good] = ingest_hour(source, day, hour, root)
    assert good.rows_passed > 0
    if damage == "garbage":
        path.write_bytes(b"\x00\xff\xfe garbage \x81\x00\n" * 5)
    else:
        _write_rows(path, _landed_rows(path).drop(columns=["sku"]))

    with pytest.raises(ContractViolation) as caught:
        ingest_hour(source, day, hour, root)

    [result] = caught.value.results
    assert result.outcome == BLOCKED and any(rule.startswith(breach) for rule in result.breaches), result.breaches
    message = str(caught.value)
    assert message.startswith(f"blocked by data contract: {source} v1.0.0 ds={day}: blocked")
    assert (str(path) if damage == "garbage" else "schema:missing_columns: missing columns ['sku']") in message
    # The hour's earlier curated rows are gone; the other hour is left as it was.
    assert len(read_hours("curated", source, day, [hour], root)) == 0
    pd.testing.assert_frame_equal(read_hours("curated", source, day, [other], root), other_rows)


def test_reingesting_an_hour_replaces_it_and_leaves_the_other_hours(root, day):
    source, hour = "pos_intraday", _busiest_hour(root, "pos_intraday", day)
    ingest_hour(source, day, hour - 1, root)
    ingest_hour(source, day, hour, root)
    before = read_hours("curated", source, day, [hour - 1], root)
    path = _file(root, source, day, hour)
    rows = _landed_rows(path)
    _write_rows(path, rows.iloc[:-1])

    [result] = ingest_hour(source, day, hour, root)

    assert result.rows_passed == len(rows) - 1
    assert len(read_hours("curated", source, day, [hour], root)) == len(rows) - 1
    pd.testing.assert_frame_equal(read_hours("curated", source, day, [hour - 1], root), before)
    leftovers = [p for p in (Path(root) / "curated" / source).rglob(".*")]
    assert not leftovers, "a publish left its staging or superseded folders"


def test_an_hour_not_delivered_yet_is_a_result_not_an_error(root, day):
    _file(root, "pos_intraday", day, 14).unlink()

    [result] = ingest_hour("pos_intraday", day, 14, root)
    [snapshot] = ingest_hour("wms_intraday", day, 10, root)

    assert result.outcome == snapshot.outcome == BLOCKED
    assert result.breaches == {"freshness": 1}
    assert result.reasons == [f"freshness: no file for {day} hour 14 at {_file(root, 'pos_intraday', day, 14)}: "
                              f"{NOT_DELIVERED} (error)"]
    assert len(read_intraday("pos_intraday", day, 14, root)) == 0


def test_read_intraday_takes_the_hours_through_the_given_one(ingested, day, tmp_path):
    root = str(tmp_path / "root")
    shutil.copytree(ingested[0], root)

    pos = read_intraday("pos_intraday", day, 12, root)
    landed = sum(len(_landed_rows(_file(root, "pos_intraday", day, h))) for h in range(13))
    assert len(pos) == landed > 0 and pos["hour"].max() <= 12
    assert pos["hour"].is_monotonic_increasing
    orders = read_intraday("ecommerce_intraday", day, 12, root)
    assert len(orders) == sum(len(_landed_rows(_file(root, "ecommerce_intraday", day, h))) for h in range(13))
    assert orders["ordered_at"].dt.hour.max() <= 12
    assert len(read_intraday("pos_intraday", day, 23, root)) >= len(pos)

    def snapshot_hour(through: int) -> set[int]:
        return set(read_intraday("wms_intraday", day, through, root)["snapshot_at"].dt.hour)

    assert read_intraday("wms_intraday", day, 8, root).empty
    assert snapshot_hour(12) == {9} and snapshot_hour(13) == {13} and snapshot_hour(23) == {21}
    # A blocked snapshot has no rows: the day so far is the one before it.
    _file(root, "wms_intraday", day, 13).write_bytes(b"not parquet")
    with pytest.raises(ContractViolation):
        ingest_hour("wms_intraday", day, 13, root)
    assert snapshot_hour(14) == {9}


def test_the_nightly_never_takes_the_hourly_sources(landed, world, tmp_path):
    root = str(tmp_path / "root")
    shutil.copytree(landed, root)
    previous = landing_days(world)[-2]
    assert [r.contract_id for r in ingest_source("pos", previous, root=root)] == ["pos_sales"]
    with pytest.raises(ValueError, match="'pos_intraday' is delivered by the hour"):
        ingest_source("pos_intraday", previous, root=root)


def test_ingest_hour_refuses_a_daily_source_or_an_hour_out_of_range(root, day):
    with pytest.raises(ValueError, match="'pos' is not an hourly source"):
        ingest_hour("pos", day, 9, root)
    with pytest.raises(ValueError, match="hour must be an integer in 0..23, got 24"):
        ingest_hour("pos_intraday", day, 24, root)
    with pytest.raises(ValueError, match="'returns' is not an hourly source"):
        read_intraday("returns", day, 9, root)
