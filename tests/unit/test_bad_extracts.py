"""Every broken extract in ``tests/fixtures/bad_extracts`` and exactly what its contract does with it.

Each case folder holds one delivery as it would land (plus, for one case, a ``corrections/`` file);
``manifest.yaml`` states the expected outcome, breaches, quarantined lines with their rules, and the
text of the reason or the blocking message. Master data comes from ``bad_extracts/master`` and is
ingested first, as the nightly does, so reference checks run against it.
"""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

import pandas as pd
import pytest
import yaml

from include.contracts.contract import load_contracts
from include.contracts.validate import BLOCKED, ContractViolation
from include.ingest.pipeline import ingest_source
from include.storage import read_partition, write_partition

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "bad_extracts"
MANIFEST = yaml.safe_load((FIXTURES / "manifest.yaml").read_text(encoding="utf-8"))
DS = MANIFEST["ds"]
CONTRACTS = load_contracts()
MASTER = ("suppliers", "locations", "items", "promotions")
#: The column of the rows an earlier run left in the date's partitions.
STALE = "_stale_marker"


def run_case(case: dict, root: Path, fixtures: Path = FIXTURES):
    """Land the case's files under ``root``, ingest master data then the case's source.

    Returns:
        ``(result, violation)``: the case contract's result and the ContractViolation raised, if any.
    """
    contract = CONTRACTS[case["contract"]]
    master_day = root / "landing" / "master" / f"ds={DS}"
    master_day.mkdir(parents=True)
    for name in ("suppliers", "locations", "items", "promotions"):
        shutil.copy(FIXTURES / "master" / f"{name}.csv", master_day / f"{name}.csv")
    folder = fixtures / case["id"]
    target = root / "landing" / contract.source / f"ds={DS}"
    target.mkdir(parents=True, exist_ok=True)
    for path in folder.rglob("*"):
        if path.is_file() and path.name != "README":
            dest = target / path.relative_to(folder)
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(path, dest)
    for back in range(1, case.get("history_days", 0) + 1):
        # Earlier curated days of the given size: what the volume rule compares against.
        day = dt.date.fromisoformat(DS) - dt.timedelta(days=back)
        write_partition(pd.DataFrame({"row": range(case["history_rows"])}), "curated", contract.id, day, str(root))
    # An earlier run of the date curated and quarantined rows: none of them may survive this run.
    for zone in ("curated", "quarantine"):
        write_partition(pd.DataFrame({STALE: ["from an earlier run"] * 3}), zone, contract.id, DS, str(root))
    scope = {cid: CONTRACTS[cid] for cid in (*MASTER, contract.id)}
    if contract.source != "master":
        master = ingest_source("master", DS, root=str(root), contracts=scope)
        assert [r.outcome for r in master] == ["passed"] * 4
    violation = None
    try:
        results = ingest_source(contract.source, DS, root=str(root), contracts=scope)
    except ContractViolation as exc:
        violation, results = exc, exc.all_results
    [result] = [r for r in results if r.contract_id == contract.id]
    return result, violation


def _ids(cases):
    return [c["id"] for c in cases]


def test_there_are_at_least_40_cases_each_with_a_folder():
    cases = MANIFEST["cases"]
    assert len(cases) >= 40
    assert len(set(_ids(cases))) == len(cases)
    for case in cases:
        assert (FIXTURES / case["id"]).is_dir(), case["id"]
    folders = {p.name for p in FIXTURES.iterdir() if p.is_dir()} - {"master"}
    assert folders == set(_ids(cases)), "every fixture folder is a case of the manifest"


@pytest.mark.parametrize("case", MANIFEST["cases"], ids=_ids(MANIFEST["cases"]))
def test_bad_extract_outcome(case, tmp_path):
    result, violation = run_case(case, tmp_path)
    expected = case["expect"]

    assert result.outcome == expected["outcome"]
    assert result.breaches == expected.get("breaches", {})
    assert (violation is not None) == (expected["outcome"] == BLOCKED)
    quarantine = read_partition("quarantine", case["contract"], DS, str(tmp_path), missing_ok=True)
    got = {int(line): rules for line, rules in zip(quarantine.get("_source_line", []), quarantine.get("_rules", []),
                                                    strict=True)}
    want = {int(k): v for k, v in (expected.get("quarantined") or {}).items()}
    if "quarantined_range" in expected:
        first, last, rule = expected["quarantined_range"]
        want.update({line: rule for line in range(first, last + 1)})
    assert got == want
    assert result.rows_quarantined == len(got)
    # Every row delivered is curated or quarantined; a rejected file is nothing of either.
    assert result.rows_in == result.rows_passed + result.rows_quarantined
    curated = read_partition("curated", case["contract"], DS, str(tmp_path))
    assert STALE not in curated.columns and STALE not in quarantine.columns, "an earlier run's rows are left"
    assert len(curated) == (0 if result.outcome == BLOCKED else result.rows_passed)
    if "rows_passed" in expected:
        assert result.rows_passed == expected["rows_passed"]
    for fragment in expected.get("reasons", []):
        assert fragment.format(file=result.file) in result.reasons
    for fragment in expected.get("quarantine_reasons", []):
        assert fragment in quarantine["_reasons"].tolist()
    if violation is not None:
        message = str(violation)
        assert message.startswith(f"blocked by data contract: {case['contract']} v")
        for fragment in expected.get("message", []):
            assert fragment.format(file=result.file) in message
    if "sample_keys" in expected:
        assert result.sample_keys == expected["sample_keys"]


def test_sql_looking_description_is_kept_verbatim(tmp_path):
    [case] = [c for c in MANIFEST["cases"] if c["id"] == "items_sql_looking_description"]
    run_case(case, tmp_path)

    items = read_partition("curated", "items", DS, str(tmp_path))
    assert items.loc[items["sku"] == "SKU00002", "description"].tolist() == ["Robert'); DROP TABLE items;--"]


def test_correction_replaces_the_quarantined_row_and_landing_is_untouched(tmp_path):
    [case] = [c for c in MANIFEST["cases"] if c["id"] == "pos_fixed_by_correction"]
    delivered = (FIXTURES / case["id"] / "pos_sales.csv").read_bytes()

    result, _ = run_case(case, tmp_path)

    landed = tmp_path / "landing" / "pos" / f"ds={DS}"
    assert (landed / "pos_sales.csv").read_bytes() == delivered
    curated = read_partition("curated", "pos_sales", DS, str(tmp_path))
    fixed = curated[curated["sku"] == "SKU00006"].set_index("store_id")
    assert fixed.loc["S0001", "units_sold"] == 2
    assert fixed.loc["S0001", "_source_file"] == str(landed / "corrections" / "pos_sales.csv")
    assert fixed.loc["S0001", "_source_line"] == 2
    assert len(read_partition("quarantine", "pos_sales", DS, str(tmp_path))) == 0
    assert (result.rows_in, result.rows_quarantined) == (20, 0)


def test_offsets_of_timestamps_are_converted_to_utc(tmp_path):
    [case] = [c for c in MANIFEST["cases"] if c["id"] == "ecommerce_timestamps_with_offsets"]
    run_case(case, tmp_path)

    curated = read_partition("curated", "ecommerce_orders", DS, str(tmp_path)).sort_values("_source_line")
    # Line 1 is 09:15+01:00, line 2 is 10:15Z (see the fixture).
    assert curated["ordered_at"].iloc[:2].tolist() == [pd.Timestamp("2026-11-27 08:15"), pd.Timestamp("2026-11-27 10:15")]


def test_utf16_file_curates_the_same_rows_as_utf8(tmp_path):
    runs = {}
    for name in ("pos_clean", "pos_utf16_le_bom"):
        [case] = [c for c in MANIFEST["cases"] if c["id"] == name]
        run_case(case, tmp_path / name)
        runs[name] = read_partition("curated", "pos_sales", DS, str(tmp_path / name)).drop(columns="_source_file")
    pd.testing.assert_frame_equal(runs["pos_clean"], runs["pos_utf16_le_bom"])


def test_a_line_longer_than_a_read_block_is_quarantined_not_fatal(tmp_path):
    """A 3 MB promo id: Arrow reads in 1 MB blocks, so the line straddles them."""
    lines = (FIXTURES / "pos_clean" / "pos_sales.csv").read_text().splitlines()
    lines[4] = lines[4] + "P" * 3_000_000
    folder = tmp_path / "fixtures"
    (folder / "pos_huge_line").mkdir(parents=True)
    (folder / "pos_huge_line" / "pos_sales.csv").write_text("\n".join(lines) + "\n")
    case = {"id": "pos_huge_line", "contract": "pos_sales"}

    result, violation = run_case(case, tmp_path / "root", fixtures=folder)

    assert (result.outcome, violation) == ("warned", None)
    assert (result.rows_in, result.rows_passed, result.rows_quarantined) == (20, 19, 1)
    assert result.breaches == {"pattern:promo_id": 1}
    [row] = read_partition("quarantine", "pos_sales", DS, str(tmp_path / "root")).to_dict("records")
    assert (row["_source_line"], len(row["promo_id"])) == (5, 3_000_000)
    assert row["_reasons"] == "pattern:promo_id broken by promo_id='" + "P" * 80 + "...'"
