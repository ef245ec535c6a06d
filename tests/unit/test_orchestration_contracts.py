"""The order orchestration extracts against their contracts, through the real ingest and GX validation.

Generated extracts pass; broken ones quarantine exactly the bad rows with file, line and rule, or block
with a message naming the file, and every delivered row is either curated or quarantined.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pandas as pd
import pytest

from include.contracts.contract import ContractError, load_contracts
from include.contracts.validate import BLOCKED, PASSED, ContractViolation
from include.ingest.pipeline import ingest_source
from include.orchestration.contracts import ORCHESTRATION_CONTRACT_IDS, load_orchestration_contracts
from include.sample_data import orders as sample_orders
from include.sample_data.generator import PRESETS, generate_world, write_landing
from include.storage import read_partition

CONTRACTS = load_orchestration_contracts()
MASTER = ("suppliers", "locations", "items", "promotions")


@pytest.fixture(scope="module")
def world():
    return generate_world(PRESETS["tiny"])


@pytest.fixture()
def landed(world, tmp_path):
    """Master data and the orchestration extracts of the world's last day, landed and master ingested."""
    day = world.config.end_date
    write_landing(world, str(tmp_path), days=[day])
    sample_orders.write_order_landing(world, str(tmp_path), [day], sample_orders.OrderConfig(lines_per_day=200))
    scope = {cid: CONTRACTS[cid] for cid in MASTER}
    assert [r.outcome for r in ingest_source("master", day, root=str(tmp_path), contracts=scope)] == [PASSED] * 4
    return tmp_path, day


def _ingest(root: Path, day: dt.date, source: str):
    scope = {cid: CONTRACTS[cid] for cid in (*MASTER, *ORCHESTRATION_CONTRACT_IDS)}
    try:
        return ingest_source(source, day, root=str(root), contracts=scope), None
    except ContractViolation as exc:
        return exc.all_results, exc


def test_the_nightly_does_not_load_the_orchestration_contracts():
    nightly = load_contracts()
    assert not set(ORCHESTRATION_CONTRACT_IDS) & set(nightly)
    assert set(ORCHESTRATION_CONTRACT_IDS) <= set(CONTRACTS)
    assert {CONTRACTS[c].source for c in ORCHESTRATION_CONTRACT_IDS} == {"oms", "carrier", "labour", "wms_live"}


def test_the_contracts_match_the_generated_columns():
    for name, columns in sample_orders.ORDER_COLUMNS.items():
        contract = CONTRACTS[name]
        assert list(contract.column_names) == columns, name
        source, file_name, fmt = sample_orders.ORDER_FILES[name]
        assert (contract.source, contract.file.name, contract.file.format) == (source, file_name, fmt)


@pytest.mark.parametrize("source", ["oms", "carrier", "labour", "wms_live"])
def test_generated_extracts_pass(landed, source):
    root, day = landed
    results, violation = _ingest(root, day, source)
    assert violation is None
    for result in results:
        assert result.outcome == PASSED, (result.contract_id, result.reasons)
        assert result.rows_in == result.rows_passed > 0
        curated = read_partition("curated", result.contract_id, day, str(root))
        assert len(curated) == result.rows_passed


def test_bad_order_lines_are_quarantined_with_line_and_rule(landed):
    root, day = landed
    path = root / "landing" / "oms" / f"ds={day}" / "open_order_lines.jsonl"
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    assert len(rows) > 60, "enough rows that three bad ones stay under the 5% quarantine share"
    rows[0]["quantity"] = 0
    rows[1]["sku"] = "SKU_UNKNOWN"
    rows[2]["channel"] = "fax"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    results, violation = _ingest(root, day, "oms")
    assert violation is None
    [result] = results
    quarantine = read_partition("quarantine", "open_order_lines", day, str(root))
    got = dict(zip(quarantine["_source_line"].astype(int), quarantine["_rules"], strict=True))
    assert set(got) == {1, 2, 3}
    assert "quantity" in str(got[1]) and "sku" in str(got[2]) and "channel" in str(got[3])
    assert result.rows_quarantined == 3 and result.rows_in == len(rows) == result.rows_passed + 3
    curated = read_partition("curated", "open_order_lines", day, str(root))
    assert len(curated) == len(rows) - 3
    assert "fax" not in set(curated["channel"]) and "SKU_UNKNOWN" not in set(curated["sku"])


def test_a_rate_card_with_conflicting_lanes_blocks_naming_the_file(landed):
    root, day = landed
    path = root / "landing" / "carrier" / f"ds={day}" / "rate_card.csv"
    frame = pd.read_csv(path)
    twin = frame.iloc[[0]].assign(cost_per_parcel=frame["cost_per_parcel"].iat[0] + 1.0)
    pd.concat([frame, twin]).to_csv(path, index=False)
    results, violation = _ingest(root, day, "carrier")
    [result] = results
    assert result.outcome == BLOCKED and violation is not None
    assert str(violation).startswith("blocked by data contract: carrier_rate_card v")
    assert "rate_card.csv" in str(violation)
    assert len(read_partition("curated", "carrier_rate_card", day, str(root), missing_ok=True)) == 0


def test_negative_rates_and_capacities_are_quarantined(landed):
    root, day = landed
    path = root / "landing" / "labour" / f"ds={day}" / "labour_schedule.csv"
    frame = pd.read_csv(path)
    frame.loc[0, "pick_lines"] = -5
    frame.to_csv(path, index=False)
    results, _ = _ingest(root, day, "labour")
    by_id = {r.contract_id: r for r in results}
    assert by_id["node_capabilities"].outcome == PASSED
    labour = by_id["labour_schedule"]
    quarantine = read_partition("quarantine", "labour_schedule", day, str(root))
    assert quarantine["_source_line"].astype(int).tolist() == [2]  # the header is line 1
    assert "pick_lines" in str(quarantine["_rules"].iat[0])
    assert labour.rows_in == labour.rows_passed + 1


def test_a_contract_in_the_subfolder_that_references_nothing_known_fails(tmp_path):
    text = (Path(CONTRACTS["node_on_hand"].path)).read_text().replace("contract: items", "contract: widgets")
    (tmp_path / "node_on_hand.yaml").write_text(text)
    with pytest.raises(ContractError, match="widgets.sku, which no contract defines"):
        load_orchestration_contracts(tmp_path)
