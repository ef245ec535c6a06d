"""The real Walmart weekly sales file through a contract written for its shape.

The 1,285 rows with negative weekly sales are weeks where returns exceeded sales. A retailer keeps them:
they are real, they belong in the demand history (dropping them would overstate sales), and they are
worth counting. So the contract's ``Weekly_Sales >= 0`` rule has severity ``warning``: the extract is
``warned`` with the count recorded, and no row is quarantined.
"""

from __future__ import annotations

from include.config import CONTRACTS_DIR
from include.contracts.contract import load_contract, load_contracts
from include.contracts.validate import WARNED, validate_extract
from include.ingest.parse import parse_extract
from tests.shared_data import shared_data

DATA = "walmart_recruiting/train.csv.zip"  # in ../shared/data
CONTRACT = CONTRACTS_DIR / "external" / "walmart_weekly_sales.yaml"

def test_external_contracts_are_not_loaded_by_the_nightly():
    assert "walmart_weekly_sales" not in load_contracts()


def test_negative_weekly_sales_are_kept_and_counted_as_net_returns():
    contract = load_contract(CONTRACT)
    # Read inside the zip as published: the real file is never copied.
    parsed = parse_extract(contract, f"zip://train.csv::{shared_data(DATA).as_posix()}", "2012-10-26")

    result, curated, quarantine = validate_extract(contract, parsed, "2012-10-26")

    assert result.rows_in == 421_570
    assert result.outcome == WARNED
    assert result.breaches == {"range:Weekly_Sales": 1_285}
    assert result.rows_warned == 1_285
    assert (result.rows_passed, result.rows_quarantined) == (421_570, 0)
    assert len(quarantine) == 0
    negative = curated[curated["Weekly_Sales"] < 0]
    assert len(negative) == 1_285
    assert negative["Weekly_Sales"].min() < -1000  # the largest net return week is kept as delivered
    assert result.reasons == []
    assert "range:Weekly_Sales" in result.gx_failed  # GX's verdict agrees: the expectation failed
