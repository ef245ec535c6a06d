"""The returns system's generated extract, its truth, and its contract through the real ingest.

Generated days pass; broken ones (bad grade, negative refund, unknown SKU or location) quarantine exactly
the bad rows naming the rule, a missing column blocks naming it, and every delivered row is either
curated or quarantined.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from include.contracts.contract import load_contracts
from include.contracts.validate import BLOCKED, PASSED, ContractViolation
from include.ingest.pipeline import ingest_source
from include.returns.contracts import RETURNS_CONTRACT_IDS, load_returns_contracts
from include.returns.params import DETAIL_COLUMNS, FRAUD_PATTERNS, PATTERNS, TRUTH_COLUMNS
from include.sample_data import returns as sample_returns
from include.sample_data.generator import PRESETS, generate_world, write_landing
from include.storage import read_partition

CONTRACTS = load_returns_contracts()
MASTER = ("suppliers", "locations", "items", "promotions")


@pytest.fixture(scope="module")
def world():
    return generate_world(PRESETS["tiny"])


@pytest.fixture(scope="module")
def month(world):
    return sample_returns.returns_detail(world, 30, seed=3, config=sample_returns.ReturnsConfig(returns_per_day=150))


@pytest.fixture()
def landed(world, month, tmp_path):
    """Master data and the returns detail of the world's last day, landed and master ingested."""
    day = world.config.end_date
    write_landing(world, str(tmp_path), days=[day])
    path = sample_returns.write_returns_detail(str(tmp_path), day, month[0])
    scope = {cid: CONTRACTS[cid] for cid in MASTER}
    assert [r.outcome for r in ingest_source("master", day, root=str(tmp_path), contracts=scope)] == [PASSED] * 4
    return tmp_path, day, path


def _ingest(root, day):
    scope = {cid: CONTRACTS[cid] for cid in (*MASTER, *RETURNS_CONTRACT_IDS)}
    try:
        return ingest_source("returns_system", day, root=str(root), contracts=scope), None
    except ContractViolation as exc:
        return exc.all_results, exc


def _rows(path):
    return [json.loads(line) for line in open(path).read().splitlines()]


def test_the_nightly_does_not_load_the_returns_contract():
    assert "returns_detail" not in load_contracts()
    contract = CONTRACTS["returns_detail"]
    assert list(contract.column_names) == list(DETAIL_COLUMNS)
    assert (contract.source, contract.file.name) == (sample_returns.SOURCE, sample_returns.FILE_NAME)


def test_extract_and_truth_line_up_with_a_few_percent_of_fraud(month):
    extract, truth = month
    assert list(extract.columns) == list(DETAIL_COLUMNS) and list(truth.columns) == list(TRUTH_COLUMNS)
    assert extract["return_id"].is_unique and (extract["return_id"].to_numpy() == truth["return_id"].to_numpy()).all()
    assert set(truth["pattern"].astype(str)) == set(PATTERNS)
    assert 0.01 < truth["is_fraud"].mean() < 0.08
    assert (truth["is_fraud"] == truth["pattern"].isin(FRAUD_PATTERNS)).all()
    assert (truth["fraud_value"][~truth["is_fraud"]] == 0).all()
    unmatched = ~extract["receipt_matched"]
    assert extract.loc[unmatched, "original_order_id"].isna().all()
    assert extract.loc[~unmatched, "original_order_date"].notna().all()
    assert (extract["refund_amount"] >= 0).all() and (extract["quantity"] >= 1).all()


def test_injected_patterns_look_as_described(month):
    extract, truth = month
    pattern = truth["pattern"].astype(str).to_numpy()
    paid = extract["unit_price"] * extract["quantity"]
    ring = extract[pattern == "return_ring"]
    assert (ring["refund_amount"] > paid[pattern == "return_ring"]).all()
    assert ring["customer_id"].nunique() <= sample_returns.ReturnsConfig().ring_size
    assert ring.groupby("customer_id", observed=True)["location_id"].nunique().max() >= 2
    receiptless = extract[pattern == "receiptless_high_value"]
    assert (~receiptless["receipt_matched"]).all()
    assert receiptless["unit_price"].median() > extract["unit_price"].median()
    defect = extract[pattern == "defect_batch"]
    assert defect["supplier_batch_id"].nunique() == 1 and (defect["reason_code"] == "defective").all()
    serial = extract[pattern == "serial_returner"]
    assert serial.groupby("customer_id", observed=True).size().max() >= 5


def test_ordinary_returns_follow_each_channels_sales_and_the_implied_volume_their_rates(world):
    sim = world._sim
    dept = world.items["department"].to_numpy(object)
    rate = np.array([sample_returns.DEPT_RETURN_RATE.get(d, sample_returns.DEPT_RETURN_RATE["*"]) for d in dept])

    def expected(days):
        return (sim.sales[days][:, sim.store_rows].sum(axis=(0, 1)) * rate,
                sim.sales[days][:, sim.fc_row].sum(axis=0) * rate * sample_returns.ONLINE_RETURN_FACTOR)

    def ordinary(per_day):
        extract, truth = sample_returns.returns_detail(
            world, 28, seed=4, config=sample_returns.ReturnsConfig(returns_per_day=per_day))
        lines = extract[truth["pattern"].isin(["normal", "apparel_size"]).to_numpy()]
        web = lines["purchase_channel"].astype(str).isin(["web", "app"]).to_numpy()
        sku = world.items["sku"].astype(str).to_numpy()
        return lines, web, pd.Index(sku).get_indexer(lines["sku"].astype(str))

    # Each SKU comes back from web orders in the share its web sales (2.5 times as likely to return) hold of
    # its returns over the world's history, not in one share for every item.
    in_store, on_web = expected(slice(None))
    lines, web, row = ordinary(2_000)
    units = lines["quantity"].to_numpy(float)
    returned = np.bincount(row, weights=units, minlength=len(rate))
    from_web = np.bincount(row, weights=units * web, minlength=len(rate))
    share = on_web / (in_store + on_web)
    busy = returned >= 500
    assert busy.sum() >= 5 and np.abs(from_web[busy] / returned[busy] - share[busy]).max() < 0.05

    # At the volume the sales imply, the units returned are what the 28 days sold at those rates.
    in_store, on_web = expected(slice(-28, None))
    lines, _, _ = ordinary(sample_returns.implied_returns_per_day(world, window=28))
    assert lines["quantity"].sum() == pytest.approx(in_store.sum() + on_web.sum(), rel=0.15)


def test_a_day_alone_equals_the_same_day_in_a_range(world, month):
    day = world.config.end_date
    alone, truth = sample_returns.returns_detail(world, [day], seed=3,
                                                 config=sample_returns.ReturnsConfig(returns_per_day=150))
    extract = month[0]
    in_range = extract[extract["returned_at"].to_numpy().astype("datetime64[D]") == np.datetime64(day, "D")]
    assert alone.astype(str).reset_index(drop=True).equals(in_range.astype(str).reset_index(drop=True))


def test_generated_day_passes_its_contract(landed):
    root, day, path = landed
    results, violation = _ingest(root, day)
    assert violation is None
    [result] = results
    assert result.outcome == PASSED, result.reasons
    assert result.rows_in == result.rows_passed == len(_rows(path)) > 60
    curated = read_partition("curated", "returns_detail", day, str(root))
    assert len(curated) == result.rows_passed


def test_broken_lines_are_quarantined_naming_the_rule(landed):
    root, day, path = landed
    rows = _rows(path)
    rows[0]["condition_grade"] = "E"
    rows[1]["refund_amount"] = -5.0
    rows[2]["sku"] = "SKU_UNKNOWN"
    rows[3]["location_id"] = "S9999"
    open(path, "w").write("".join(json.dumps(r) + "\n" for r in rows))
    results, violation = _ingest(root, day)
    assert violation is None
    [result] = results
    quarantine = read_partition("quarantine", "returns_detail", day, str(root))
    got = dict(zip(quarantine["_source_line"].astype(int), quarantine["_rules"].astype(str), strict=True))
    assert set(got) == {1, 2, 3, 4}
    for line, column in ((1, "condition_grade"), (2, "refund_amount"), (3, "sku"), (4, "location_id")):
        assert column in got[line], (line, got[line])
    curated = read_partition("curated", "returns_detail", day, str(root))
    assert result.rows_quarantined == 4 and result.rows_in == len(rows) == len(curated) + 4


def test_a_missing_column_blocks_and_keeps_every_row(landed):
    root, day, path = landed
    rows = _rows(path)
    for row in rows:
        row.pop("condition_grade")
    open(path, "w").write("".join(json.dumps(r) + "\n" for r in rows))
    results, violation = _ingest(root, day)
    [result] = results
    assert result.outcome == BLOCKED and violation is not None
    assert "condition_grade" in " ".join(result.reasons) and "returns_detail.jsonl" in str(violation)
    quarantine = read_partition("quarantine", "returns_detail", day, str(root))
    assert len(quarantine) == len(rows)
    assert quarantine["_rules"].astype(str).str.contains("schema:missing_columns").all()
