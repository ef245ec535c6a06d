"""A late or broken non-critical extract no longer stops the night: contract criticality, stand-in
partitions, stale inputs tiered up, and the degraded night in summaries and the report."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pandas as pd
import pytest

from include.contracts.contract import ContractError, load_contract, load_contracts
from include.contracts.validate import BLOCKED, PASSED, SUBSTITUTED, ContractViolation
from include.governance.policy import assign_tier, load_policy
from include.ingest.pipeline import ingest_source
from include.ingest.substitute import last_good_partition
from include.reporting.kpis import night_state, render_report
from include.sample_data import PRESETS, generate_world, write_landing
from include.stages.summaries import degraded_entry, stale_sources
from include.storage import read_partition, read_range, write_partition

CONTRACTS = load_contracts()
RETURNS = Path(CONTRACTS["returns"].path).read_text()
ANCHOR = "criticality: {critical: false, max_age_days: 7}"


def _contract(tmp_path: Path, criticality: str | None) -> tuple[Path, str]:
    text = RETURNS.replace(ANCHOR, criticality) if criticality is not None else RETURNS.replace(ANCHOR + "\n", "")
    path = tmp_path / "returns.yaml"
    path.write_text(text)
    return path, text


def _line(text: str, marker: str) -> int:
    return next(i for i, line in enumerate(text.splitlines(), 1) if marker in line)


def test_project_contracts_say_which_sources_are_critical():
    critical = {cid for cid, c in CONTRACTS.items() if c.critical}
    assert {"pos_sales", "inventory_snapshot", "items", "locations", "ecommerce_orders"} <= critical
    assert {cid: c.criticality.max_age_days for cid, c in CONTRACTS.items() if not c.critical} == {
        "returns": 7, "suppliers": 7, "promotions": 7, "purchase_orders": 2, "receipts": 3}


def test_a_contract_without_criticality_is_critical(tmp_path):
    path, _ = _contract(tmp_path, None)
    contract = load_contract(path)
    assert contract.critical and contract.criticality.max_age_days is None


@pytest.mark.parametrize(("criticality", "message"), [
    ("criticality: {critical: false}",
     "criticality.max_age_days: a non-critical source needs max_age_days, the oldest stand-in partition it "
     "accepts (days before the logical date)"),
    ("criticality: {critical: true, max_age_days: 3}",
     "criticality.max_age_days: max_age_days applies only to a non-critical source (critical: false)"),
    ("criticality: {critical: false, max_age_days: 0}", "criticality.max_age_days: must be at least 1, got 0"),
    ("criticality: {critical: 'no', max_age_days: 3}", "criticality.critical: must be true or false, got 'no'"),
    ("criticality: {critical: false, max_days: 3}",
     "criticality: unknown key 'max_days' (allowed: critical, max_age_days)"),
])
def test_a_bad_criticality_names_file_line_and_field(tmp_path, criticality, message):
    path, text = _contract(tmp_path, criticality)
    with pytest.raises(ContractError) as caught:
        load_contract(path)
    assert str(caught.value) == f"{path}:{_line(text, 'criticality:')}: {message}"


# --- stand-in partitions -----------------------------------------------------------------------------------

DS = dt.date(2026, 3, 10)


def _rows(n: int, day: dt.date) -> pd.DataFrame:
    return pd.DataFrame({"return_id": [f"R{day:%d}{i}" for i in range(n)], "quantity": [1] * n})


def test_the_newest_good_partition_within_max_age_stands_in(tmp_path):
    root = str(tmp_path)
    write_partition(_rows(0, DS), "curated", "returns", DS - dt.timedelta(days=1), root)  # blocked: empty
    write_partition(_rows(3, DS), "curated", "returns", DS - dt.timedelta(days=2), root)
    write_partition(_rows(5, DS), "curated", "returns", DS - dt.timedelta(days=4), root)

    assert last_good_partition("returns", DS, 7, root) == DS - dt.timedelta(days=2)
    assert last_good_partition("returns", DS, 1, root) is None


def test_no_partition_older_than_max_age_stands_in(tmp_path):
    root = str(tmp_path)
    write_partition(_rows(3, DS), "curated", "returns", DS - dt.timedelta(days=8), root)

    assert last_good_partition("returns", DS, 7, root) is None
    assert last_good_partition("returns", DS, 8, root) == DS - dt.timedelta(days=8)


@pytest.fixture(scope="module")
def world():
    return generate_world(PRESETS["tiny"])


@pytest.fixture
def landed(world, tmp_path) -> tuple[str, dt.date]:
    end = world.config.end_date
    root = str(tmp_path)
    write_landing(world, root, days=[end - dt.timedelta(days=1), end])
    for day in (end - dt.timedelta(days=1), end):
        ingest_source("master", day, root=root, contracts=CONTRACTS)
    return root, end


def _landing(root: str, source: str, day: dt.date, name: str) -> Path:
    return Path(root) / "landing" / source / f"ds={day.isoformat()}" / name


def test_a_late_non_critical_extract_is_replaced_until_it_arrives(landed):
    root, end = landed
    yesterday = end - dt.timedelta(days=1)
    [delivered] = ingest_source("returns", yesterday, root=root, contracts=CONTRACTS)
    late = _landing(root, "returns", end, "returns.jsonl")
    held = late.read_bytes()
    late.unlink()

    [result] = ingest_source("returns", end, root=root, contracts=CONTRACTS)

    assert result.outcome == SUBSTITUTED and result.substituted_from == yesterday.isoformat()
    assert result.reasons[0] == f"freshness: no file for {end.isoformat()} at {late} (error)"
    assert result.reasons[1].startswith(f"substituted: the curated partition of {yesterday} (1 days old, max 7) "
                                        f"stands in for the extract of {end}")
    assert result.as_record()["substituted_from"] == yesterday.isoformat()
    today = read_partition("curated", "returns", end, root)
    assert len(today) == delivered.rows_passed > 0
    # A range that holds yesterday reads its rows once; the date alone reads the stand-in.
    assert len(read_range("curated", "returns", yesterday, end, root)) == delivered.rows_passed
    assert len(read_range("curated", "returns", end, end, root)) == delivered.rows_passed

    late.write_bytes(held)
    [on_time] = ingest_source("returns", end, root=root, contracts=CONTRACTS)
    assert on_time.outcome == PASSED and on_time.substituted_from is None
    files = sorted(p.name for p in (Path(root) / "curated" / "returns" / f"ds={end}").iterdir())
    assert files == ["part-0.parquet"]


def test_a_non_critical_extract_without_a_recent_good_partition_blocks(landed):
    root, end = landed
    late = _landing(root, "returns", end, "returns.jsonl")
    late.unlink()

    with pytest.raises(ContractViolation) as caught:
        ingest_source("returns", end, root=root, contracts=CONTRACTS)

    [result] = caught.value.results
    assert result.outcome == BLOCKED
    no_stand_in = (f"no stand-in: returns has no curated partition with rows from {end - dt.timedelta(days=7)} "
                   f"to {end - dt.timedelta(days=1)} (max_age_days 7)")
    assert result.reasons == [f"freshness: no file for {end.isoformat()} at {late} (error)", no_stand_in]
    assert f"returns v1.2.0 ds={end.isoformat()}: blocked" in str(caught.value)
    assert str(late) in str(caught.value) and no_stand_in in str(caught.value)


def test_a_missing_critical_extract_fails_naming_contract_file_and_reason(landed):
    root, end = landed
    ingest_source("pos", end - dt.timedelta(days=1), root=root, contracts=CONTRACTS)
    late = _landing(root, "pos", end, "pos_sales.csv")
    late.unlink()

    with pytest.raises(ContractViolation) as caught:
        ingest_source("pos", end, root=root, contracts=CONTRACTS)

    text = str(caught.value)
    assert f"pos_sales v1.2.0 ds={end.isoformat()}: blocked" in text
    assert f"freshness: no file for {end.isoformat()} at {late} (error)" in text
    assert (f"critical: pos_sales is a critical source (its data contract's criticality), so no earlier partition "
            f"stands in for the extract {late} and the night stops") in text
    assert len(read_partition("curated", "pos_sales", end, root)) == 0


# --- the degraded night downstream ---------------------------------------------------------------------------

STALE = {"purchase_orders": {"substituted_from": "2026-03-09", "reason": "substituted: ..."}}
SUMMARIES = {"ingest_supplier": {"source": "supplier", "degraded": True, "stale_sources": STALE},
             "ingest_pos": {"source": "pos"},
             "propose_decisions": {"lines": 3, "degraded": True, "stale_sources": STALE}}


def test_stages_name_the_stale_sources_they_read():
    assert stale_sources(SUMMARIES) == STALE
    assert degraded_entry(SUMMARIES, ("purchase_orders", "items")) == {"degraded": True, "stale_sources": STALE}
    assert degraded_entry(SUMMARIES, ("returns",)) == {}
    assert degraded_entry({"ingest_pos": {"source": "pos"}}) == {}


def test_lines_that_depend_on_a_stale_source_go_up_a_tier():
    policy = load_policy()
    replenishment = {"doc_type": "replenishment", "value": 10, "quantity": 1, "explanation": {}}
    transfer = {"doc_type": "transfer", "value": 10, "quantity": 1, "explanation": {}}
    big = {**replenishment, "value": 10_000}

    assert assign_tier(replenishment, policy) == ("low", [])
    assert assign_tier(replenishment, policy, frozenset({"purchase_orders"})) == \
        ("medium", ["stale_input:purchase_orders"])
    assert assign_tier(transfer, policy, frozenset({"purchase_orders", "returns"})) == ("low", [])
    assert assign_tier(big, policy, frozenset({"suppliers", "receipts"})) == \
        ("high", ["large_value", "medium_value", "stale_input:receipts", "stale_input:suppliers"])


def test_the_report_marks_a_degraded_night():
    kpis = {"ds": "2026-03-10", **night_state(stale_sources(SUMMARIES))}
    assert kpis["degraded"] is True and kpis["stale_sources"] == {"purchase_orders": "2026-03-09"}

    report = render_report(kpis, SUMMARIES)

    assert "**Degraded night**" in report
    assert "- `purchase_orders`: data of 2026-03-09 used; read by propose_decisions. substituted: ..." in report
    assert "Degraded" not in render_report({"ds": "2026-03-10", **night_state({})}, {})
