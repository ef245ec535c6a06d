"""The generated finance world, its truth, and its extracts through the real ingest against their contracts.

Generated days pass their contracts; broken rows (unknown service level, negative extra cost, unknown SKU or
location) are quarantined naming the rule, and a missing column blocks naming it.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from include.contracts.contract import load_contracts
from include.contracts.validate import BLOCKED, PASSED, WARNED, ContractViolation
from include.finance.bridge import margin_bridge
from include.finance.contracts import FINANCE_CONTRACT_IDS, load_finance_contracts
from include.finance.params import SHIPMENT_COLUMNS, SHRINK_COLUMNS, SUBSTITUTION_COLUMNS, BridgeParams
from include.ingest.pipeline import ingest_source
from include.sample_data import finance as sample_finance
from include.sample_data.generator import WorldConfig, generate_world, write_landing
from include.storage import read_partition

CONTRACTS = load_finance_contracts()
MASTER = ("suppliers", "locations", "items", "promotions")
CONFIG = sample_finance.FinanceConfig(events_per_kind=1, event_weeks=(1, 2), first_start=30,
                                      min_cell_weekly_sales=300.0)


#: A small retailer selling enough online for a hundred shipments a day.
WORLD = WorldConfig(n_regions=2, stores_per_region=2, n_skus=30, n_suppliers=3, history_days=120, volume=3.0)


@pytest.fixture(scope="module")
def fw():
    return sample_finance.finance_world(generate_world(WORLD), seed=2, config=CONFIG)


@pytest.fixture(scope="module")
def master(fw, tmp_path_factory):
    """Master data of the world's last day, landed and ingested once."""
    root, day = tmp_path_factory.mktemp("finance"), fw.world.config.end_date
    write_landing(fw.world, str(root), days=[day])
    scope = {cid: CONTRACTS[cid] for cid in MASTER}
    assert [r.outcome for r in ingest_source("master", day, root=str(root), contracts=scope)] == [PASSED] * 4
    return root, day


@pytest.fixture()
def landed(fw, master):
    """The finance extracts of the world's last day, landed afresh over the ingested master data."""
    root, day = master
    paths = sample_finance.write_finance_landing(str(root), day, fw)
    return root, day, dict(zip(("shipment_costs", "fulfilment_substitutions", "shrink_adjustments"), paths,
                               strict=True))


def _ingest(root, day):
    scope = {cid: CONTRACTS[cid] for cid in (*MASTER, *FINANCE_CONTRACT_IDS)}
    try:
        return {r.contract_id: r for r in ingest_source("finance", day, root=str(root), contracts=scope)}, None
    except ContractViolation as exc:
        return {r.contract_id: r for r in exc.all_results}, exc


def test_the_nightly_does_not_load_the_finance_contracts():
    nightly = load_contracts()
    for cid, columns in zip(("shipment_costs", "fulfilment_substitutions", "shrink_adjustments"),
                            (SHIPMENT_COLUMNS, SUBSTITUTION_COLUMNS, SHRINK_COLUMNS), strict=True):
        assert cid not in nightly
        assert list(CONTRACTS[cid].column_names) == list(columns)
        assert (CONTRACTS[cid].source, CONTRACTS[cid].file.name) == (sample_finance.SOURCE, sample_finance.FILES[cid])


def test_events_are_kept_apart_on_their_own_cells(fw):
    events = fw.events
    assert list(events.columns) == sample_finance.EVENT_COLUMNS
    assert sorted(events["cause"]) == sorted(sample_finance.EVENT_KINDS)
    assert not events[["category", "channel", "location_id"]].duplicated().any()
    kinds = events.set_index("cause")["channel"]
    assert kinds["shrink"] == "store" and kinds["expedited_shipping"] != "store"
    for frame in (fw.shipments, fw.substitutions, fw.shrink):
        assert "event_id" not in frame.columns and "magnitude" not in frame.columns


def test_injected_events_show_in_the_extracts(fw):
    cat = fw.world.items.set_index("sku")["category"]
    e = fw.events.set_index("cause")
    exp = e.loc["expedited_shipping"]
    s = fw.shipments[(fw.shipments["sku"].map(cat) == exp["category"]) & (fw.shipments["channel"] == exp["channel"])]
    during = s["shipped_at"].dt.normalize().between(exp["start"], exp["end"])
    assert (s.loc[during, "service_level"] == "expedited").mean() > 0.5 > (s.loc[~during, "service_level"]
                                                                          == "expedited").mean()
    md = e.loc["price_markdown"]
    sales = fw.frames().sales
    cell = sales[(sales["sku"].map(cat) == md["category"]) & (sales["channel"] == md["channel"])
                 & (sales["location_id"] == md["location_id"])]
    inside = cell["date"].between(md["start"], md["end"])
    assert cell.loc[inside, "markdown_amount"].sum() > 0 and cell.loc[~inside, "markdown_amount"].sum() == 0
    sh = e.loc["shrink"]
    lost = fw.shrink[(fw.shrink["location_id"] == sh["location_id"]) & (fw.shrink["sku"].map(cat) == sh["category"])]
    inside = lost["adjusted_at"].dt.normalize().between(sh["start"], sh["end"])
    assert lost.loc[inside, "value_at_cost"].sum() < 5 * lost.loc[~inside, "value_at_cost"].sum() / len(inside)
    assert (fw.shrink["value_at_cost"] == (fw.shrink["quantity"] * fw.shrink["unit_cost"]).round(2)).all()


def test_the_bridge_of_the_world_reconciles(fw):
    night = np.datetime64(fw.world.config.end_date, "D")
    bridge = margin_bridge(fw.frames(), [night - 1, night], BridgeParams(baseline_weeks=4))
    assert len(bridge) > 20 and bridge["residual"].abs().max() < 1e-6


def test_generated_day_passes_its_contracts(landed):
    root, day, paths = landed
    results, violation = _ingest(root, day)
    assert violation is None
    for cid in FINANCE_CONTRACT_IDS:
        result = results[cid]
        assert result.outcome == PASSED, result.reasons
        rows = len(pd.read_csv(paths[cid]))
        assert result.rows_in == result.rows_passed == rows
        assert len(read_partition("curated", cid, day, str(root))) == rows
    assert results["shipment_costs"].rows_in > 60 and results["shrink_adjustments"].rows_in >= 1


def test_broken_rows_are_quarantined_and_a_missing_column_blocks_naming_them(landed):
    root, day, paths = landed
    ships = pd.read_csv(paths["shipment_costs"])
    ships.loc[0, "service_level"] = "overnight"
    ships.loc[1, "shipping_cost"] = -3.0
    ships.loc[2, "sku"] = "SKU_UNKNOWN"
    ships.loc[3, "location_id"] = "S9999"
    ships.to_csv(paths["shipment_costs"], index=False)
    subs = pd.read_csv(paths["fulfilment_substitutions"]).drop(columns="extra_cost")
    subs.to_csv(paths["fulfilment_substitutions"], index=False)
    results, violation = _ingest(root, day)
    quarantine = read_partition("quarantine", "shipment_costs", day, str(root))
    got = dict(zip(quarantine["_source_line"].astype(int), quarantine["_rules"].astype(str), strict=True))
    assert set(got) == {2, 3, 4, 5}  # the header is line 1
    for line, column in ((2, "service_level"), (3, "shipping_cost"), (4, "sku"), (5, "location_id")):
        assert column in got[line], (line, got[line])
    assert results["shipment_costs"].outcome == WARNED and results["shipment_costs"].rows_quarantined == 4
    assert results["shrink_adjustments"].outcome == PASSED
    blocked = results["fulfilment_substitutions"]
    assert blocked.outcome == BLOCKED and violation is not None
    assert "missing columns ['extra_cost']" in " ".join(blocked.reasons)
    # Not critical, but without an earlier good partition there is no stand-in: the night's violation names it.
    assert "no stand-in" in " ".join(blocked.reasons) and "fulfilment_substitutions" in str(violation)
