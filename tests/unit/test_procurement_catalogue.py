"""The supplier catalogue: generator, data contract through the real ingest, alternate ranking, and PO
exceptions choosing among ranked alternates."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from include.contracts.contract import ContractError, load_contracts
from include.contracts.validate import BLOCKED, PASSED, ContractViolation
from include.decisions.po_exceptions import propose_po_exceptions
from include.ingest.pipeline import ingest_source
from include.procurement.alternates import ALTERNATE_COLUMNS, rank_alternates
from include.procurement.contracts import PROCUREMENT_CONTRACT_IDS, load_procurement_contracts
from include.procurement.scorecards import weekly_scorecards
from include.sample_data import procurement as sample_procurement
from include.sample_data.generator import PRESETS, generate_world, write_landing
from include.storage import read_partition

CONTRACTS = load_procurement_contracts()
MASTER = ("suppliers", "locations", "items", "promotions")


def _master(n_skus: int = 200, n_suppliers: int = 5) -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(3)
    suppliers = pd.DataFrame({"supplier_id": [f"SUP{i:03d}" for i in range(n_suppliers)],
                              "promised_lead_time_days": rng.choice([3, 7, 14], n_suppliers)})
    items = pd.DataFrame({"sku": [f"SKU{i:05d}" for i in range(n_skus)],
                          "supplier_id": suppliers["supplier_id"].to_numpy()[rng.integers(0, n_suppliers, n_skus)],
                          "unit_cost": np.round(rng.uniform(1, 50, n_skus), 2), "case_pack": 12, "moq_units": 24})
    return items, suppliers


# ---------------------------------------------------------------------------------------------------
# Generator
# ---------------------------------------------------------------------------------------------------


def test_the_catalogue_is_deterministic_for_a_seed():
    items, suppliers = _master()
    first = sample_procurement.supplier_catalogue((items, suppliers), 11)
    pd.testing.assert_frame_equal(first, sample_procurement.supplier_catalogue((items, suppliers), 11))
    assert not first.equals(sample_procurement.supplier_catalogue((items, suppliers), 12))
    assert list(first.columns) == sample_procurement.CATALOGUE_COLUMNS


def test_every_sku_has_its_primary_and_most_have_dearer_smaller_alternates():
    items, suppliers = _master()
    cat = sample_procurement.supplier_catalogue((items, suppliers), 11, valid_from=dt.date(2026, 2, 1))
    assert not cat.duplicated(["supplier_id", "sku"]).any()
    master = items.set_index("sku")
    is_primary = cat["supplier_id"].to_numpy() == master.loc[cat["sku"], "supplier_id"].to_numpy()
    primary = cat[is_primary].set_index("sku")
    assert sorted(primary.index) == sorted(items["sku"])
    assert (primary["unit_cost"] == master.loc[primary.index, "unit_cost"]).all()
    lead = suppliers.set_index("supplier_id")["promised_lead_time_days"]
    assert (primary["lead_time_days"].to_numpy() == lead.loc[primary["supplier_id"]].to_numpy()).all()
    alt = cat[~is_primary]
    per_sku = alt.groupby("sku").size()
    assert 0.45 <= len(per_sku) / len(items) <= 0.75 and set(per_sku) <= {1, 2}
    ratio = alt["unit_cost"].to_numpy() / primary.loc[alt["sku"], "unit_cost"].to_numpy()
    assert ((ratio > 1.015) & (ratio < 1.16)).all()
    assert (alt["capacity_units_per_week"].to_numpy() < primary.loc[alt["sku"], "capacity_units_per_week"]).all()
    delta = alt["lead_time_days"].to_numpy() - primary.loc[alt["sku"], "lead_time_days"].to_numpy()
    assert (delta < 0).any() and (delta > 0).any()
    assert (cat["valid_from"] == pd.Timestamp("2026-02-01")).all()
    assert (cat["moq_units"] >= 1).all() and (cat["case_pack"] >= 1).all()


def test_unknown_primary_supplier_is_an_error():
    items, suppliers = _master()
    with pytest.raises(ValueError, match="unknown suppliers"):
        sample_procurement.supplier_catalogue((items, suppliers.iloc[1:]), 1)


# ---------------------------------------------------------------------------------------------------
# Contract, through the real ingest
# ---------------------------------------------------------------------------------------------------


def test_the_nightly_does_not_load_the_procurement_contracts():
    assert not set(PROCUREMENT_CONTRACT_IDS) & set(load_contracts())
    contract = CONTRACTS["supplier_catalogue"]
    assert list(contract.column_names) == sample_procurement.CATALOGUE_COLUMNS
    source, name, fmt = sample_procurement.CATALOGUE_FILE
    assert (contract.source, contract.file.name, contract.file.format) == (source, name, fmt)
    assert contract.primary_key == ("supplier_id", "sku")


def test_a_procurement_contract_referencing_nothing_known_fails(tmp_path):
    text = Path(CONTRACTS["supplier_catalogue"].path).read_text().replace("contract: suppliers", "contract: vendors")
    (tmp_path / "supplier_catalogue.yaml").write_text(text)
    with pytest.raises(ContractError, match="vendors.supplier_id, which no contract defines"):
        load_procurement_contracts(tmp_path)


@pytest.fixture(scope="module")
def world():
    return generate_world(PRESETS["small"])


@pytest.fixture()
def landed(world, tmp_path):
    """Master data and the catalogue of the world's last day, landed, and master ingested."""
    day = world.config.end_date
    write_landing(world, str(tmp_path), days=[day])
    path = sample_procurement.write_supplier_catalogue(tmp_path, day, sample_procurement.supplier_catalogue(world, 5))
    assert path == tmp_path / "landing" / "procurement" / f"ds={day}" / "supplier_catalogue.csv"
    scope = {cid: CONTRACTS[cid] for cid in MASTER}
    assert [r.outcome for r in ingest_source("master", day, root=str(tmp_path), contracts=scope)] == [PASSED] * 4
    return path, day


def _ingest(root: Path, day: dt.date):
    scope = {cid: CONTRACTS[cid] for cid in (*MASTER, *PROCUREMENT_CONTRACT_IDS)}
    try:
        [result] = ingest_source("procurement", day, root=str(root), contracts=scope, substitute=False)
        return result, None
    except ContractViolation as exc:
        [result] = exc.all_results
        return result, exc


def _root(path: Path) -> Path:
    return path.parents[3]


def test_the_generated_catalogue_passes(landed):
    path, day = landed
    result, violation = _ingest(_root(path), day)
    assert violation is None and result.outcome == PASSED, result.reasons
    assert result.rows_in == result.rows_passed == len(pd.read_csv(path)) > 150
    curated = read_partition("curated", "supplier_catalogue", day, str(_root(path)))
    assert len(curated) == result.rows_passed


def test_the_curated_catalogue_feeds_scorecards_and_alternates(world, landed):
    path, day = landed
    _ingest(_root(path), day)
    curated = read_partition("curated", "supplier_catalogue", day, str(_root(path)))
    suppliers, _ = weekly_scorecards(world.purchase_orders, world.receipts, world.returns, world.items, curated, day)
    assert set(suppliers["supplier_id"]) <= set(world.suppliers["supplier_id"]) and len(suppliers) > 1
    assert suppliers["reliability"].between(0, 100).all() and suppliers["price_variance"].notna().all()
    ranked = rank_alternates(curated, world.items, suppliers)
    assert len(ranked) == len(curated) - len(world.items) and ranked["reliability"].notna().all()
    assert (ranked["supplier_id"] != ranked["primary_supplier_id"]).all()
    assert (ranked.groupby("sku")["rank"].min() == 1).all()


def test_bad_rows_are_quarantined_with_their_rule(landed):
    path, day = landed
    frame = pd.read_csv(path)
    frame.loc[0, "unit_cost"] = -1.5
    frame.loc[1, "supplier_id"] = "SUP_UNKNOWN"
    frame.loc[2, "lead_time_days"] = 400
    frame.to_csv(path, index=False)
    result, violation = _ingest(_root(path), day)
    assert violation is None and result.outcome != BLOCKED
    quarantine = read_partition("quarantine", "supplier_catalogue", day, str(_root(path)))
    got = dict(zip(quarantine["_source_line"].astype(int), quarantine["_rules"].astype(str), strict=True))
    assert set(got) == {2, 3, 4}  # the header is line 1
    assert "unit_cost" in got[2] and "supplier_id" in got[3] and "lead_time_days" in got[4]
    assert result.rows_quarantined == 3 and result.rows_in == len(frame) == result.rows_passed + 3
    curated = read_partition("curated", "supplier_catalogue", day, str(_root(path)))
    assert len(curated) == len(frame) - 3 and "SUP_UNKNOWN" not in set(curated["supplier_id"])


def test_conflicting_terms_for_one_supplier_and_sku_block(landed):
    path, day = landed
    frame = pd.read_csv(path)
    twin = frame.iloc[[0]].assign(unit_cost=frame["unit_cost"].iat[0] + 1.0)
    pd.concat([frame, twin]).to_csv(path, index=False)
    result, violation = _ingest(_root(path), day)
    assert result.outcome == BLOCKED and violation is not None
    message = str(violation)
    assert message.startswith("blocked by data contract: supplier_catalogue v")
    key = f"{frame['supplier_id'].iat[0]}/{frame['sku'].iat[0]}"
    assert "duplicate_key: 1 rows repeat a primary key with other values" in message and key in message
    assert result.breaches["duplicate_key"] == 1
    quarantine = read_partition("quarantine", "supplier_catalogue", day, str(_root(path)))
    assert "primary_key" in str(quarantine["_rules"].tolist())
    # Nothing is lost: every delivered row is curated or quarantined (a blocked extract curates none).
    assert result.rows_in == len(frame) + 1
    assert len(read_partition("curated", "supplier_catalogue", day, str(_root(path)), missing_ok=True)) == 0


def test_a_missing_column_blocks_naming_it(landed):
    path, day = landed
    pd.read_csv(path).drop(columns="capacity_units_per_week").to_csv(path, index=False)
    result, violation = _ingest(_root(path), day)
    assert result.outcome == BLOCKED and violation is not None
    assert any("schema:missing_columns" in r and "capacity_units_per_week" in r for r in result.reasons)
    assert result.rows_quarantined == result.rows_in > 0


# ---------------------------------------------------------------------------------------------------
# Alternates
# ---------------------------------------------------------------------------------------------------

ITEMS = pd.DataFrame({"sku": ["A", "B"], "supplier_id": ["S1", "S1"], "unit_cost": [2.0, 3.0],
                      "unit_price": [5.0, 6.0]})
CATALOGUE = pd.DataFrame([
    ("S1", "A", 2.00, 24, 12, 10, 1000, "2026-01-01"),
    ("S2", "A", 2.10, 12, 12, 2, 100, "2026-01-01"),
    ("S3", "A", 2.05, 12, 12, 6, 500, "2026-01-01"),
    ("S3", "A", 2.30, 12, 12, 6, 500, "2025-01-01"),  # an older contract of the same pair: superseded
    ("S2", "B", 3.30, 12, 12, 3, 100, "2026-01-01"),  # B's primary has no catalogue row
], columns=["supplier_id", "sku", "unit_cost", "moq_units", "case_pack", "lead_time_days",
            "capacity_units_per_week", "valid_from"])
CARDS = pd.DataFrame({"supplier_id": ["S1", "S2", "S3", "S3"], "reliability": [60.0, 90.0, 20.0, 40.0],
                      "week_end": pd.to_datetime(["2026-03-01", "2026-03-01", "2026-02-22", "2026-03-01"])})


def test_alternates_without_scorecards_rank_by_cost_then_lead_time():
    out = rank_alternates(CATALOGUE, ITEMS)
    assert list(out.columns) == ALTERNATE_COLUMNS
    assert out[["sku", "supplier_id", "rank"]].values.tolist() == [["A", "S3", 1], ["A", "S2", 2], ["B", "S2", 1]]
    a3 = out.iloc[0]
    assert (a3["unit_cost"], a3["primary_unit_cost"], a3["cost_delta_per_unit"]) == (2.05, 2.0, 0.05)
    assert (a3["lead_time_days"], a3["lead_time_delta_days"]) == (6, -4)
    assert np.isnan(a3["reliability"]) and np.isnan(a3["reliability_delta"])
    b = out.iloc[2]
    # No catalogue row for B's primary: its cost comes from the item master, its lead time is unknown.
    assert b["primary_unit_cost"] == 3.0 and b["cost_delta_per_unit"] == pytest.approx(0.3)
    assert np.isnan(b["lead_time_delta_days"])


def test_reliability_reorders_the_alternates():
    out = rank_alternates(CATALOGUE, ITEMS, CARDS)
    a = out[out["sku"] == "A"].set_index("supplier_id")
    # S2: 2.10 x (1 + 0.25 x 0.10) = 2.1525; S3 (latest week 40): 2.05 x (1 + 0.25 x 0.60) = 2.3575.
    assert a["rank"].to_dict() == {"S2": 1, "S3": 2}
    assert a.loc["S2", "expected_unit_cost"] == pytest.approx(2.1525)
    assert (a.loc["S3", "reliability"], a.loc["S3", "reliability_delta"]) == (40.0, -20.0)
    assert a.loc["S2", "reliability_delta"] == 30.0


# ---------------------------------------------------------------------------------------------------
# PO exceptions with the ranked frame
# ---------------------------------------------------------------------------------------------------

DS = dt.date(2026, 3, 10)
LOCATIONS = pd.DataFrame({"location_id": ["DC1", "S1"], "location_type": ["dc", "store"],
                          "region": ["North", "North"], "parent_dc": [None, "DC1"]})
SERIES = pd.DataFrame({"unique_id": ["S1|A"], "mean_daily": [5.0]})
SUPPLIERS = pd.DataFrame({"supplier_id": ["S1", "S2", "S3"], "promised_lead_time_days": [5, 2, 6]})
STATS = pd.DataFrame({"supplier_id": ["S1"], "mean_lead_time": [10.0], "std_lead_time": [2.0], "late_rate": [0.6]})
PO_COLUMNS = ["po_id", "po_line", "supplier_id", "sku", "destination_location_id", "order_date", "promised_date",
              "quantity_ordered", "quantity_received", "unit_cost", "status"]


def _late_line(quantity: int = 40) -> pd.DataFrame:
    # S1 takes 10 days, promises 5: expected 03-15, 5 days late. DC1 has 20 of A at 5 a day: 4 days of
    # cover, 1 day out of stock before the arrival, 5 units lost.
    return pd.DataFrame([("P1", 1, "S1", "A", "DC1", "2026-03-05", "2026-03-10", quantity, 0, 2.0, "open")],
                        columns=PO_COLUMNS)


def _propose(open_pos, alternates, items=ITEMS):
    inventory = pd.DataFrame({"location_id": ["DC1"], "sku": ["A"], "on_hand": [20], "allocated": [0],
                              "in_transit": [0]})
    return propose_po_exceptions(open_pos, STATS, SUPPLIERS, inventory, SERIES, LOCATIONS, DS,
                                 alternates=alternates, items=items)


def test_the_best_ranked_alternate_that_fits_takes_the_late_line():
    ranked = rank_alternates(CATALOGUE, ITEMS, CARDS)
    line = _propose(_late_line(), ranked).iloc[0]
    e = line["explanation"]
    assert line["action"] == "move_supplier" and e["alternate_supplier"] == "S2"
    assert (e["alternate_unit_cost"], e["alternate_lead_time_days"]) == (2.10, 2.0)
    # 40 units at 0.10 more each; 2 days against S1's measured 10.
    assert e["alternate_cost_delta"] == 4.0 and e["alternate_lead_time_delta_days"] == -8.0
    assert (e["alternate_reliability"], e["alternate_reliability_delta"]) == (90.0, 30.0)
    # Arriving in 2 days, within the 4 days of cover: the 5 lost units (margin 3.00 each) are saved.
    assert e["margin_impact"] == 5 * 3.0 - 4.0 and e["alternate_fits"] is True


def test_an_alternate_without_the_capacity_or_too_slow_is_skipped():
    # 150 units: over S2's weekly capacity of 100; S3 (capacity 500) is next, and arrives in 6 days,
    # after the expected arrival in 5: nobody fits, the line is expedited and the best candidate named.
    line = _propose(_late_line(150), rank_alternates(CATALOGUE, ITEMS, CARDS)).iloc[0]
    assert line["action"] == "expedite"
    e = line["explanation"]
    assert (e["alternate_supplier"], e["alternate_fits"], e["margin_impact"]) == ("S2", False, None)
    # With S3 faster than the arrival it takes the line.
    faster = CATALOGUE.assign(lead_time_days=CATALOGUE["lead_time_days"].replace(6, 3))
    line = _propose(_late_line(150), rank_alternates(faster, ITEMS, CARDS)).iloc[0]
    assert (line["action"], line["explanation"]["alternate_supplier"]) == ("move_supplier", "S3")
    assert line["explanation"]["alternate_cost_delta"] == round(150 * 0.05, 2)


def test_an_alternate_minimum_order_above_the_quantity_is_skipped():
    big_moq = CATALOGUE.assign(moq_units=[24, 48, 12, 12, 12])
    line = _propose(_late_line(40), rank_alternates(big_moq, ITEMS, CARDS)).iloc[0]
    # S2 needs 48 units at least: only 40 to move. S3 is too slow: expedite.
    assert line["action"] == "expedite"


def test_the_old_three_column_frame_and_no_items_still_work():
    old = pd.DataFrame({"sku": ["A", "A"], "supplier_id": ["S9", "S2"], "lead_time_days": [6, 2]})
    line = _propose(_late_line(), old, items=None).iloc[0]
    e = line["explanation"]
    assert line["action"] == "move_supplier" and e["alternate_supplier"] == "S2"
    assert (e["alternate_unit_cost"], e["alternate_cost_delta"], e["margin_impact"]) == (None, None, None)
    assert e["alternate_reliability"] is None
    line = _propose(_late_line(), None).iloc[0]
    assert line["action"] == "expedite" and line["explanation"]["alternate_supplier"] is None
    # The line's own supplier is never its alternate.
    own = pd.DataFrame({"sku": ["A"], "supplier_id": ["S1"], "lead_time_days": [1]})
    assert _propose(_late_line(), own).iloc[0]["action"] == "expedite"


def test_a_short_line_is_split_to_the_best_alternate_with_its_margin():
    # S1 delivers half of what it is ordered, on time (5 days). 40 open, 20 expected short; DC1 sells 5 a
    # day and has 10: arrival in 3 days, a new order takes 5 more: 8 days need 40 against 10 + 20, so
    # 10 units are lost. S2 (rank 1, MOQ 12 <= 20, capacity 100) takes the 20 at 0.10 more each.
    stats = pd.DataFrame({"supplier_id": ["S1"], "mean_lead_time": [5.0], "std_lead_time": [0.0],
                          "late_rate": [0.0], "fill_rate": [0.5]})
    open_pos = pd.DataFrame([("P7", 1, "S1", "A", "DC1", "2026-03-08", "2026-03-13", 40, 0, 2.0, "open")],
                            columns=PO_COLUMNS)
    inventory = pd.DataFrame({"location_id": ["DC1"], "sku": ["A"], "on_hand": [10], "allocated": [0],
                              "in_transit": [0]})
    out = propose_po_exceptions(open_pos, stats, SUPPLIERS, inventory, SERIES, LOCATIONS, DS,
                                alternates=rank_alternates(CATALOGUE, ITEMS, CARDS), items=ITEMS)
    line = out.iloc[0]
    e = line["explanation"]
    assert line["action"] == "split" and e["alternate_supplier"] == "S2"
    assert (e["lost_units_if_short"], e["alternate_cost_delta"]) == (10.0, 2.0)
    # The 10 lost units at a margin of 3.00 are saved, less the 2.00 extra.
    assert e["margin_impact"] == 28.0
