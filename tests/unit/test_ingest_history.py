"""Unit tests for include.ingest.history: a history loaded in batches is the history loaded whole."""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from include.contracts.contract import load_contracts
from include.contracts.validate import BLOCKED
from include.ingest.history import load_contract_history, plan_batches
from include.ingest.pipeline import ingest_source, load_history, reference_values
from include.sample_data import PRESETS, generate_world, write_landing
from include.storage import read_partition

CONTRACTS = load_contracts()
DAYS = 6


@pytest.fixture(scope="module")
def world():
    return generate_world(PRESETS["tiny"])


@pytest.fixture
def end(world) -> dt.date:
    return world.config.end_date


@pytest.fixture
def days(end) -> list[dt.date]:
    return [end - dt.timedelta(days=DAYS - i) for i in range(DAYS)]


@pytest.fixture
def root(world, end, days, tmp_path) -> str:
    root = str(tmp_path / "daily")
    write_landing(world, root, days=[*days, end])
    ingest_source("master", end, root=root, contracts=CONTRACTS)
    return root


def _csv(root: str, source: str, day: dt.date, name: str) -> Path:
    return Path(root) / "landing" / source / f"ds={day.isoformat()}" / name


def _edit(path: Path, edit) -> None:
    lines = path.read_text().splitlines()
    path.write_text("\n".join(edit(lines)) + "\n")


def _set_column(lines: list[str], column: str, value: str, rows: slice = slice(1, None)) -> list[str]:
    at = lines[0].split(",").index(column)
    out = [line.split(",") for line in lines]
    for cells in out[rows]:
        cells[at] = value
    return [",".join(cells) for cells in out]


def _partitions(root: str, contract_id: str) -> dict[str, object]:
    """Every partition of a contract as a table, by zone and day (file paths relative to the root)."""
    out = {}
    for zone in ("curated", "quarantine"):
        for part in sorted((Path(root) / zone / contract_id).glob("ds=*/part-0.parquet")):
            table = pq.read_table(part)
            if "_source_file" in table.column_names:
                files = [f.replace(root, "<root>") if f else f for f in table["_source_file"].to_pylist()]
                table = table.drop(["_source_file"]).append_column("_source_file", [files])
            out[f"{zone}/{part.parent.name}"] = table
    return out


def _load_both_ways(root: str, tmp_path: Path, contract_id: str, days: list[dt.date]):
    """The contract's history loaded one day per batch and whole, in two copies of the root.

    Returns:
        The two results' records and summaries, then the two sets of partitions (root paths replaced).
    """
    contract = CONTRACTS[contract_id]
    refs = reference_values(CONTRACTS, days[-1].isoformat(), root)
    other = str(tmp_path / "whole")
    shutil.copytree(root, other)
    daily = load_contract_history(contract, plan_batches(contract, days, root, batch_rows=1), refs,
                                  days[-1].isoformat(), root)
    whole = load_contract_history(contract, plan_batches(contract, days, other), refs, days[-1].isoformat(),
                                  other)
    assert str(daily.as_record()).replace(root, "<root>") == str(whole.as_record()).replace(other, "<root>")
    assert daily.summary().replace(root, "<root>") == whole.summary().replace(other, "<root>")
    return daily, _partitions(root, contract_id), _partitions(other, contract_id)


def test_plan_covers_every_day_in_batches_of_whole_days(root, days):
    contract = CONTRACTS["pos_sales"]
    _csv(root, "pos", days[2], "pos_sales.csv").unlink()

    one = plan_batches(contract, days, root)
    daily = plan_batches(contract, days, root, batch_rows=1)
    rows = sum(b.rows for b in daily)
    pairs = plan_batches(contract, days, root, batch_rows=rows * 2 // (DAYS - 1))

    assert [b.days for b in one] == [days]
    assert [len(b.files) for b in one] == [DAYS - 1]
    # A day over the budget is a batch of its own; the day without a file joins the batch before it.
    assert [b.days for b in daily] == [[days[0]], days[1:3], [days[3]], [days[4]], [days[5]]]
    assert all(len(b.files) == 1 for b in daily)
    assert [d for b in pairs for d in b.days] == days
    assert 1 < len(pairs) < len(daily)
    assert plan_batches(CONTRACTS["pos_sales"], [days[0] - dt.timedelta(days=30)], root) == []


def test_batches_split_and_judge_as_the_whole_history(root, days, tmp_path):
    # A bad value, an exact repeat, a conflicting repeat and an extra column, on different days.
    _edit(_csv(root, "pos", days[0], "pos_sales.csv"), lambda lines: _set_column(lines, "units_sold", "-4",
                                                                                   slice(1, 2)))
    _edit(_csv(root, "pos", days[1], "pos_sales.csv"), lambda lines: [*lines, lines[1]])
    _edit(_csv(root, "pos", days[3], "pos_sales.csv"),
          lambda lines: [*lines, ",".join(lines[2].split(",")[:3] + ["999"] + lines[2].split(",")[4:])])
    _edit(_csv(root, "pos", days[4], "pos_sales.csv"),
          lambda lines: [lines[0] + ",till"] + [line + ",7" for line in lines[1:]])
    _csv(root, "pos", days[2], "pos_sales.csv").unlink()

    daily, daily_parts, whole_parts = _load_both_ways(root, tmp_path, "pos_sales", days)

    assert daily.outcome == BLOCKED  # the conflicting repeat
    assert daily.breaches == {"range:units_sold": 1, "primary_key": 2, "duplicate_key": 1,
                              "duplicate_key:exact": 1, "schema:extra_columns": 1}
    assert daily_parts.keys() == whole_parts.keys()
    assert len(daily_parts) == 2 * DAYS
    for key, table in whole_parts.items():
        assert daily_parts[key].equals(table), key
    # Every day's quarantine has the extra column, null where the day's file did not deliver it.
    quarantine = read_partition("quarantine", "pos_sales", days[0], root)
    assert quarantine["till"].isna().all() and quarantine["_rules"].tolist() == ["range:units_sold"]


def test_a_column_retyped_on_one_day_is_bad_values_not_drift(root, days, tmp_path):
    _edit(_csv(root, "pos", days[1], "pos_sales.csv"), lambda lines: _set_column(lines, "units_sold", "n/a"))

    daily, daily_parts, whole_parts = _load_both_ways(root, tmp_path, "pos_sales", days)

    # A sixth of the rows is over the contract's share of bad rows, but not most of the column's values.
    day_rows = len(_csv(root, "pos", days[1], "pos_sales.csv").read_text().splitlines()) - 1
    assert daily.outcome == BLOCKED
    assert daily.breaches == {"type:units_sold": day_rows, "quarantine_share": day_rows}
    assert set(read_partition("quarantine", "pos_sales", days[1], root)["_rules"]) == {"type:units_sold"}
    for key, table in whole_parts.items():
        assert daily_parts[key].equals(table), key


def test_drift_over_the_whole_history_quarantines_every_row(root, days, tmp_path):
    for day in days:
        _edit(_csv(root, "pos", day, "pos_sales.csv"), lambda lines: _set_column(lines, "units_sold", "n/a"))

    daily, daily_parts, whole_parts = _load_both_ways(root, tmp_path, "pos_sales", days)

    assert daily.outcome == BLOCKED and daily.rows_passed == 0
    assert list(daily.breaches) == ["schema:retyped_columns"]
    assert "retyped columns units_sold" in daily.reasons[0]
    for key, table in whole_parts.items():
        assert daily_parts[key].equals(table), key
    assert len(read_partition("curated", "pos_sales", days[0], root)) == 0
    quarantine = read_partition("quarantine", "pos_sales", days[0], root)
    assert set(quarantine["_rules"]) == {"schema:retyped_columns"}


def test_load_history_counts_do_not_depend_on_the_batch_size(root, days, end):
    first = load_history(days[0], days[-1], root=root, contracts=CONTRACTS, batch_rows=1)
    second = load_history(days[0], days[-1], root=root, contracts=CONTRACTS)

    assert first == second
    assert first["pos_sales"] == sum(len(_csv(root, "pos", d, "pos_sales.csv").read_text().splitlines()) - 1
                                     for d in days)
