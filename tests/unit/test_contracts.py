"""Unit tests for data contracts: loading, parsing extracts and validating them with Great Expectations."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from pydantic import ValidationError

from include.config import CONTRACTS_DIR, PROJECT_ROOT
from include.contracts.contract import (
    FORMATS,
    LOGICAL_TYPES,
    QUALITY_RULES,
    SEVERITIES,
    ContractError,
    load_contract,
    load_contracts,
)
from include.contracts.validate import (
    BLOCKED,
    PASSED,
    WARNED,
    ContractResult,
    ContractViolation,
    validate_extract,
)
from include.ingest.parse import ExtractUnreadable, parse_extract, parse_extracts

DS = "2026-03-10"

# A contract in block style, so that every key sits on its own line.
BASE = """\
# Test contract: shipments from a made-up carrier.
kind: DataContract
apiVersion: v3.0.0
id: shipments
version: 2.1.0
owner: logistics
description: Shipments per store.
source: carrier
file: {name: shipments.csv, format: csv}
primary_key: [shipment_id]
schema:
  - name: shipment_id
    type: string
    required: true
  - name: store_id
    type: string
    required: true
    references: {contract: locations, column: location_id}
  - name: channel
    type: string
    allowed_values: [web, app]
  - name: units
    type: integer
    required: true
    min: 0
    max: 100
  - name: weight
    type: number
    min: 0
    severity: warning
  - name: shipped_on
    type: date
quality:
  - rule: freshness
    severity: error
  - rule: row_count
    min_rows: 1
  - rule: quarantine_share
    max_pct: 70
"""


def _write(folder: Path, text: str, name: str = "shipments") -> Path:
    path = folder / f"{name}.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def _line_of(text: str, fragment: str) -> int:
    """1-based number of the only line of ``text`` containing ``fragment``."""
    hits = [i + 1 for i, line in enumerate(text.splitlines()) if fragment in line]
    assert len(hits) == 1, f"{fragment!r} occurs on lines {hits}"
    return hits[0]


# ---------------------------------------------------------------------------------------------------
# Loading contracts
# ---------------------------------------------------------------------------------------------------


def test_every_project_contract_loads_with_its_references():
    contracts = load_contracts(CONTRACTS_DIR)

    assert sorted(contracts) == sorted(p.stem for p in CONTRACTS_DIR.glob("*.yaml"))
    assert sorted(contracts) == [
        "ecommerce_intraday", "ecommerce_orders", "inventory_snapshot", "items", "locations", "pos_intraday",
        "pos_sales", "promotions", "purchase_orders", "receipts", "returns", "suppliers", "wms_intraday",
    ]
    pos = contracts["pos_sales"]
    assert (pos.source, pos.file_name, pos.file_format) == ("pos", "pos_sales.csv", "csv")
    assert pos.primary_key == ("store_id", "sku", "business_date")
    assert pos.column("units_sold").min == 0 and pos.column("units_sold").type == "integer"
    assert pos.column("store_id").references == ("locations", "location_id")
    assert pos.min_rows == 1 and pos.max_quarantine_pct == 5.0
    assert contracts["items"].column("velocity_class").allowed_values == ("fast", "medium", "slow")
    assert contracts["inventory_snapshot"].file_format == "parquet"
    assert contracts["returns"].file_format == "jsonl"
    # Every project contract has the ODCS header and lists its extract-level rules with a severity.
    for contract in contracts.values():
        assert contract.version in ("1.0.0", "1.1.0", "1.2.0") and contract.status == "active"
        # An empty file is judged by row_count alone, so every contract states how many rows it needs.
        assert contract.rule("row_count") is not None, contract.id
        # A number past every range (1e308) or a huge integer is quarantined, never curated.
        for col in contract.columns:
            if col.type in ("integer", "number"):
                assert col.min is not None and col.max is not None, f"{contract.id}.{col.name}"
        assert contract.rule("freshness") is not None and contract.rule("quarantine_share") is not None
        assert contract.rule("duplicate_key").params == {"exact_repeat_severity": "warning"}
    assert pos.rule("freshness").params == {"column": "business_date", "max_age_days": 0}
    assert pos.rule("volume").severity == "warning"
    assert pos.column("promo_id").pattern == "^[A-Za-z0-9_-]{1,40}$"
    assert contracts["items"].column("description").max_length == 200


def test_base_contract_loads(tmp_path):
    contract = load_contract(_write(tmp_path, BASE))

    assert contract.id == "shipments" and contract.version == "2.1.0"
    assert contract.column_names == ["shipment_id", "store_id", "channel", "units", "weight", "shipped_on"]
    assert contract.column("weight").severity == "warning"
    assert contract.column("units").max == 100
    assert contract.max_quarantine_pct == 70.0
    assert contract.min_rows == 1
    assert [q.rule for q in contract.quality] == ["freshness", "row_count", "quarantine_share"]
    assert contract.rule("quarantine_share").params == {"max_pct": 70}
    assert contract.rule("volume") is None
    assert (contract.delimiter, contract.encoding, contract.status) == (",", "utf-8", "active")
    with pytest.raises(KeyError, match="contract shipments has no column 'colour'"):
        contract.column("colour")


_CONTRACT_KEYS = ("apiVersion, criticality, description, file, id, kind, owner, primary_key, quality, schema, source, "
                  "status, tags, version")
_COLUMN_KEYS = "allowed_values, description, max, max_length, min, name, optional, pattern, references, required, severity, type"


@pytest.mark.parametrize(
    ("old", "new", "marker", "message"),
    [
        pytest.param("owner: logistics\n", "owner: logistics\nownr: typo\n", "ownr: typo",
                     f"unknown key 'ownr' (allowed: {_CONTRACT_KEYS})", id="unknown-top-level-key"),
        pytest.param("    min: 0\n    max: 100\n", "    min: 0\n    maximum: 100\n", "maximum: 100",
                     f"schema[3]: unknown key 'maximum' (allowed: {_COLUMN_KEYS})", id="unknown-column-key"),
        pytest.param("  - name: shipped_on\n    type: date\n", "  - name: shipped_on\n    type: datetime\n",
                     "type: datetime",
                     "schema[5].type: must be one of string, integer, number, date, timestamp, boolean, got "
                     "'datetime'", id="bad-type"),
        pytest.param("    severity: warning\n", "    severity: fatal\n", "severity: fatal",
                     "schema[4].severity: must be one of error, warning, got 'fatal'", id="bad-severity"),
        pytest.param("id: shipments\n", "id: shipment\n", "id: shipment",
                     "id: 'shipment' must match the file name 'shipments'", id="id-not-file-name"),
        pytest.param("primary_key: [shipment_id]\n", "primary_key: [shipment_no]\n", "primary_key:",
                     "primary_key[0]: 'shipment_no' is not a column of the schema", id="primary-key-not-in-schema"),
        pytest.param("file: {name: shipments.csv, format: csv}\n", "file: {name: shipments.xls, format: xls}\n",
                     "file:", "file.format: must be one of csv, jsonl, parquet, got 'xls'", id="bad-format"),
        pytest.param("kind: DataContract\n", "kind: DataProduct\n", "kind:",
                     "kind: must be DataContract, got 'DataProduct'", id="bad-kind"),
        pytest.param("apiVersion: v3.0.0\n", "apiVersion: v2.2.0\n", "apiVersion:",
                     "apiVersion: must be v3.0.0, got 'v2.2.0'", id="bad-api-version"),
        pytest.param("  - rule: row_count\n", "  - rule: row_cont\n", "rule: row_cont",
                     "quality[1].rule: unknown rule 'row_cont' (allowed: duplicate_key, freshness, quarantine_share, "
                     "row_count, volume)", id="unknown-quality-rule"),
        pytest.param("    min_rows: 1\n", "    min_rows: one\n", "min_rows: one",
                     "quality[1].min_rows: must be a whole number, got 'one'", id="quality-param-type"),
        pytest.param("    max_pct: 70\n", "    max_pct: 70\n    threshold: 3\n", "threshold: 3",
                     "quality[2]: unknown key 'threshold' (allowed: description, max_pct, rule, severity)",
                     id="quality-unknown-param"),
        # A parameter of another rule: each rule accepts only its own.
        pytest.param("  - rule: freshness\n", "  - rule: freshness\n    min_rows: 3\n", "min_rows: 3",
                     "quality[0]: unknown key 'min_rows' (allowed: column, description, max_age_days, rule, "
                     "severity)", id="quality-parameter-of-another-rule"),
        pytest.param("  - rule: freshness\n    severity: error\n",
                     "  - rule: freshness\n    severity: fatal\n", "severity: fatal",
                     "quality[0].severity: must be one of error, warning, got 'fatal'", id="quality-bad-severity"),
        pytest.param("  - rule: freshness\n", "  - rule: freshness\n    column: store_id\n", "column: store_id",
                     "quality[0].column: 'store_id' must be a date or timestamp column of the schema",
                     id="freshness-column-not-a-date"),
        pytest.param("    type: string\n    required: true\n    references:",
                     "    type: string\n    required: true\n    pattern: '[a-'\n    references:", "pattern: '[a-'",
                     "schema[1].pattern: '[a-' is not a regular expression: unterminated character set at "
                     "position 0", id="bad-pattern"),
        # Wrong types are refused, never coerced: a quoted number, a boolean for a count, text for a flag.
        pytest.param("    min: 0\n    max: 100\n", "    min: '0'\n    max: 100\n", "min: '0'",
                     "schema[3].min: must be a number, got '0'", id="column-number-quoted"),
        pytest.param("    min_rows: 1\n", "    min_rows: true\n", "min_rows: true",
                     "quality[1].min_rows: must be a whole number, got True", id="quality-bool-for-int"),
        pytest.param("    min_rows: 1\n", "    min_rows: '1'\n", "min_rows: '1'",
                     "quality[1].min_rows: must be a whole number, got '1'", id="quality-int-quoted"),
        pytest.param("    min: 0\n    max: 100\n", "    min: 0\n    max: true\n", "max: true",
                     "schema[3].max: must be a number, got True", id="column-bool-for-number"),
        pytest.param("  - name: shipment_id\n    type: string\n",
                     "  - name: shipment_id\n    type: string\n    max_length: true\n", "max_length: true",
                     "schema[0].max_length: must be a whole number, got True", id="column-bool-for-int"),
        pytest.param("  - name: shipment_id\n    type: string\n    required: true\n",
                     "  - name: shipment_id\n    type: string\n    required: 'true'\n", "required: 'true'",
                     "schema[0].required: must be true or false, got 'true'", id="column-text-for-flag"),
        pytest.param("version: 2.1.0\n", "version: 2.1\n", "version: 2.1",
                     "version: must be a string, got 2.1", id="version-not-text"),
        pytest.param("    max_pct: 70\n", "    max_pct: 170\n", "max_pct: 170",
                     "quality[2].max_pct: must be at most 100, got 170", id="share-above-100"),
        pytest.param("file: {name: shipments.csv, format: csv}\n",
                     "file: {name: shipments.csv, format: csv, delimiter: ';;'}\n", "file:",
                     "file.delimiter: must be at most 1 character, got ';;'", id="long-delimiter"),
        pytest.param("  - name: shipped_on\n", "  - {name: units, type: integer}\n  - name: shipped_on\n",
                     "{name: units, type: integer}", "schema[5].name: duplicate column name 'units' (also schema[3])",
                     id="duplicate-column"),
        pytest.param("  - rule: quarantine_share\n", "  - {rule: row_count, severity: warning}\n"
                     "  - rule: quarantine_share\n", "{rule: row_count, severity: warning}",
                     "quality[2].rule: rule 'row_count' is listed twice (also quality[1])", id="rule-listed-twice"),
        pytest.param("  - rule: row_count\n    min_rows: 1\n", "  - min_rows: 1\n", "- min_rows: 1",
                     "quality[1]: missing required key 'rule'", id="quality-rule-without-name"),
        pytest.param("references: {contract: locations, column: location_id}",
                     "references: [locations, location_id]", "references:",
                     "schema[1].references: must be a mapping with 'contract' and 'column', got "
                     "['locations', 'location_id']", id="references-not-a-mapping"),
        pytest.param("  - name: weight\n", "  - weight\n  - name: weight\n", "- weight",
                     "schema[4]: must be a mapping, got 'weight'", id="column-not-a-mapping"),
        # yaml.safe_load would keep the last of two values silently.
        pytest.param("    min: 0\n    max: 100\n", "    min: 0\n    max: 100\n    min: 1\n", "min: 1",
                     "schema[3]: duplicate key 'min'", id="duplicate-key"),
        pytest.param("owner: logistics\n", "owner: logistics\nowner: planning\n", "owner: planning",
                     "duplicate key 'owner'", id="duplicate-top-level-key"),
    ],
)
def test_broken_contract_names_file_line_and_field(tmp_path, old, new, marker, message):
    assert old in BASE
    text = BASE.replace(old, new)
    path = _write(tmp_path, text)

    with pytest.raises(ContractError) as caught:
        load_contract(path)

    assert str(caught.value) == f"{path}:{_line_of(text, marker)}: {message}"


@pytest.mark.parametrize(
    ("edits", "problems"),
    [
        pytest.param([("version: 2.1.0\n", "version: 2\n"), ("column: location_id}", "col: location_id}"),
                      ("    min_rows: 1\n", "    min_rows: true\n")],
                     [("version: 2", "version: must be a string, got 2"),
                      ("references:", "schema[1].references: missing required key 'column'"),
                      ("references:", "schema[1].references: unknown key 'col' (allowed: column, contract)"),
                      ("min_rows: true", "quality[1].min_rows: must be a whole number, got True")],
                     id="across-the-file"),
        # Every unknown key of a mapping, and its other problems too: not only the first.
        pytest.param([("    min: 0\n    max: 100\n", "    min: '0'\n    maximum: 100\n    colour: red\n")],
                     [("min: '0'", "schema[3].min: must be a number, got '0'"),
                      ("maximum: 100", f"schema[3]: unknown key 'maximum' (allowed: {_COLUMN_KEYS})"),
                      ("colour: red", f"schema[3]: unknown key 'colour' (allowed: {_COLUMN_KEYS})")],
                     id="in-one-mapping"),
    ],
)
def test_every_problem_of_a_file_is_reported_in_file_order(tmp_path, edits, problems):
    text = BASE
    for old, new in edits:
        assert old in text
        text = text.replace(old, new)
    path = _write(tmp_path, text)

    with pytest.raises(ContractError) as caught:
        load_contract(path)

    assert str(caught.value).splitlines() == [f"{path}:{_line_of(text, marker)}: {message}"
                                              for marker, message in problems]


_LATIN_1 = BASE.replace("Shipments per store.", "Envíos por tienda.")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        pytest.param("- kind: DataContract\n", "{path}:1: a contract must be a mapping, got a list", id="a-list"),
        pytest.param("# nothing yet\n", "{path}:1: a contract must be a mapping, got None", id="empty"),
        pytest.param(_LATIN_1.encode("latin-1"), "{path}: cannot be read: 'utf-8' codec can't decode byte 0xed in "
                     f"position {_LATIN_1.index('í')}: invalid continuation byte", id="not-utf-8"),
        pytest.param(None, "{path}: cannot be read: [Errno 2] No such file or directory: '{path}'", id="missing"),
    ],
)
def test_a_file_that_is_not_a_readable_mapping_is_a_contract_error(tmp_path, content, message):
    path = tmp_path / "shipments.yaml"
    if content is not None:
        path.write_bytes(content if isinstance(content, bytes) else content.encode())

    with pytest.raises(ContractError) as caught:
        load_contract(path)

    assert str(caught.value) == message.format(path=path)


def test_missing_required_key_points_at_line_one(tmp_path):
    path = _write(tmp_path, BASE.replace("owner: logistics\n", ""))

    with pytest.raises(ContractError) as caught:
        load_contract(path)
    assert str(caught.value) == f"{path}:1: missing required key 'owner'"


def test_invalid_yaml_names_the_file_and_line(tmp_path):
    text = BASE.replace("schema:\n", "schema: [\n")
    path = _write(tmp_path, text)

    with pytest.raises(ContractError) as caught:
        load_contract(path)
    # The parser stops at the first column, on the line after the unclosed bracket.
    line = _line_of(text, "schema: [") + 1
    assert str(caught.value) == f"{path}:{line}: not valid YAML: expected the node content, but found '-'"


def test_contract_model_gives_lines_defaults_and_the_constants(tmp_path):
    text = BASE.replace("  - rule: row_count\n", "  - rule: volume\n  - rule: row_count\n")
    contract = load_contract(_write(tmp_path, text))

    assert contract.path == str(tmp_path / "shipments.yaml")
    assert contract.column("store_id").line == _line_of(text, "references:")
    assert contract.column("units").line == _line_of(text, "- name: units")
    assert contract.rule("volume").line == _line_of(text, "rule: volume")
    # Defaults are declared once, on each rule's model; params are what the file writes.
    volume = contract.rule("volume")
    assert (volume.trailing_days, volume.min_history, volume.min_ratio, volume.max_ratio) == (28, 7, 0.5, 2.0)
    assert volume.params == {}
    assert contract.rule("freshness").column is None and contract.max_age_days == 0
    assert contract.column("store_id").references == ("locations", "location_id")
    assert contract.primary_key == ("shipment_id",) and contract.column("channel").allowed_values == ("web", "app")
    assert LOGICAL_TYPES == ("string", "integer", "number", "date", "timestamp", "boolean")
    assert (FORMATS, SEVERITIES) == (("csv", "jsonl", "parquet"), ("error", "warning"))
    assert {rule: sorted(params) for rule, params in QUALITY_RULES.items()} == {
        "freshness": ["column", "max_age_days"], "row_count": ["min_rows"],
        "volume": ["max_ratio", "min_history", "min_ratio", "trailing_days"],
        "duplicate_key": ["exact_repeat_severity"], "quarantine_share": ["max_pct"],
    }
    with pytest.raises(ValidationError):
        contract.column("units").min = 5  # loaded contracts are immutable


@pytest.mark.parametrize("module", sorted(p.stem for p in (PROJECT_ROOT / "include" / "contracts").glob("*.py")))
def test_contracts_never_import_ingest(module):
    """Ingest depends on contracts, never the reverse: each module imports alone without include.ingest."""
    name = "include.contracts" if module == "__init__" else f"include.contracts.{module}"
    code = (f"import importlib, sys; importlib.import_module({name!r}); "
            "print(sorted(m for m in sys.modules if m == 'include.ingest' or m.startswith('include.ingest.')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=PROJECT_ROOT, env={**os.environ, "PYTHONPATH": str(PROJECT_ROOT)})
    assert out.stdout.strip().splitlines()[-1] == "[]"


def test_reference_to_unknown_contract_names_file_and_line(tmp_path):
    # Only the shipments contract is in the folder: 'locations' is unknown.
    path = _write(tmp_path, BASE)

    with pytest.raises(ContractError) as caught:
        load_contracts(tmp_path)

    line = _line_of(BASE, "references: {contract: locations")
    assert str(caught.value) == (
        f"{path}:{line}: schema[1].references: column 'store_id' references locations.location_id, which no "
        "contract defines"
    )


def test_reference_to_unknown_column_of_a_known_contract(tmp_path):
    (tmp_path / "locations.yaml").write_text((CONTRACTS_DIR / "locations.yaml").read_text())
    text = BASE.replace("column: location_id}", "column: store_code}")
    path = _write(tmp_path, text)

    with pytest.raises(ContractError) as caught:
        load_contracts(tmp_path)

    line = _line_of(text, "references: {contract: locations")
    assert str(caught.value) == (
        f"{path}:{line}: schema[1].references: column 'store_id' references locations.store_code, which no "
        "contract defines"
    )
    # With the right column the pair loads.
    _write(tmp_path, BASE)
    assert sorted(load_contracts(tmp_path)) == ["locations", "shipments"]


# ---------------------------------------------------------------------------------------------------
# Parsing extracts
# ---------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def shipments(tmp_path_factory):
    return load_contract(_write(tmp_path_factory.mktemp("contract"), BASE))


def _csv(folder: Path, body: str, name: str = "shipments.csv") -> str:
    path = folder / name
    path.write_text(body, encoding="utf-8")
    return str(path)


HEADER = "shipment_id,store_id,channel,units,weight,shipped_on\n"


def test_parse_csv_types_columns_and_stamps_lineage(shipments, tmp_path):
    path = _csv(tmp_path, HEADER + "S1,ST1,web,5,1.25,2026-03-01\nS2,ST2,,7,,2026-03-02\n")

    parsed = parse_extract(shipments, path, DS)

    frame = parsed.frame
    assert list(frame.columns) == [*shipments.column_names, "_ds", "_source_file", "_source_line"]
    assert str(frame["units"].dtype) == "Int64"
    assert str(frame["weight"].dtype) == "float64"
    assert str(frame["shipped_on"].dtype).startswith("datetime64")
    assert frame["units"].tolist() == [5, 7]
    assert frame["weight"].iloc[0] == 1.25 and pd.isna(frame["weight"].iloc[1])
    assert pd.isna(frame["channel"].iloc[1])  # an empty CSV cell is a null, not ""
    assert frame["shipped_on"].tolist() == [pd.Timestamp("2026-03-01"), pd.Timestamp("2026-03-02")]
    # The header is line 1, so the first data row is line 2.
    assert frame["_source_line"].tolist() == [2, 3]
    assert frame["_source_file"].tolist() == [path, path]
    assert frame["_ds"].tolist() == [pd.Timestamp(DS)] * 2
    assert parsed.row_breaches == {}
    assert parsed.missing_columns == [] and parsed.extra_columns == []
    assert parsed.raw["units"].tolist() == ["5", "7"]


def test_unparseable_values_become_type_breaches_with_row_and_value(shipments, tmp_path):
    path = _csv(tmp_path, HEADER + "S1,ST1,web,5,1,2026-03-01\n"
                                   "S2,ST1,web,abc,1,2026-03-01\n"
                                   "S3,ST1,web,2.5,x1,2026-02-30\n")

    parsed = parse_extract(shipments, path, DS)

    assert parsed.row_breaches == {
        1: [("type:units", "units='abc' is not a valid integer (line 3, column 4)")],
        2: [("type:units", "units='2.5' is not a valid integer (line 4, column 4)"),
            ("type:weight", "weight='x1' is not a valid number (line 4, column 5)"),
            ("type:shipped_on", "shipped_on='2026-02-30' is not a valid date (line 4, column 6)")],
    }
    # The rows are kept (typed as null), never dropped.
    assert len(parsed.frame) == 3
    assert parsed.frame["units"].isna().tolist() == [False, True, True]


def test_missing_and_extra_columns_are_reported(shipments, tmp_path):
    path = _csv(tmp_path, "shipment_id,store_id,channel,units,shipped_on,carrier\n"
                          "S1,ST1,web,5,2026-03-01,DHL\n")

    parsed = parse_extract(shipments, path, DS)

    assert parsed.missing_columns == ["weight"]
    assert parsed.extra_columns == ["carrier"]
    assert "weight" not in parsed.frame.columns and "carrier" not in parsed.frame.columns


def test_jsonl_lines_start_at_one_and_are_typed(tmp_path):
    contract = load_contracts(CONTRACTS_DIR)["ecommerce_orders"]
    path = tmp_path / "order_lines.jsonl"
    path.write_text(
        '{"order_id": "O1", "line_no": 1, "ordered_at": "2026-03-10T09:15:00", "channel": "web", "sku": "A",'
        ' "quantity": 2, "unit_price": 3.5, "fulfilment_location_id": "FC1", "status": "placed"}\n'
        '{"order_id": "O1", "line_no": 2, "ordered_at": "2026-03-10T09:15:00", "channel": "app", "sku": "B",'
        ' "quantity": "two", "unit_price": 1, "fulfilment_location_id": "FC1", "status": "shipped"}\n',
        encoding="utf-8",
    )

    parsed = parse_extract(contract, str(path), DS)

    assert parsed.frame["_source_line"].tolist() == [1, 2]
    assert parsed.frame["ordered_at"].iloc[0] == pd.Timestamp("2026-03-10 09:15:00")
    assert parsed.frame["quantity"].iloc[0] == 2 and pd.isna(parsed.frame["quantity"].iloc[1])
    assert parsed.row_breaches == {1: [("type:quantity", "quantity='two' is not a valid integer (line 2, column 6)")]}


def test_empty_jsonl_is_a_delivery_without_rows(tmp_path):
    contract = load_contracts(CONTRACTS_DIR)["returns"]
    path = tmp_path / "returns.jsonl"
    path.write_bytes(b"")

    parsed = parse_extract(contract, str(path), DS)

    assert len(parsed.frame) == 0
    assert parsed.missing_columns == [] and parsed.extra_columns == []
    assert list(parsed.frame.columns) == [*contract.column_names, "_ds", "_source_file", "_source_line"]


def test_parquet_is_read_with_its_types(tmp_path):
    contract = load_contracts(CONTRACTS_DIR)["inventory_snapshot"]
    path = tmp_path / "inventory_snapshot.parquet"
    pd.DataFrame({
        "snapshot_date": pd.to_datetime(["2026-03-10", "2026-03-10"]).date,
        "location_id": ["S1", "S2"], "sku": ["A", "A"],
        "on_hand": [4, 0], "allocated": [1, 0], "in_transit": [0, 6],
    }).to_parquet(path, index=False)

    parsed = parse_extract(contract, str(path), DS)

    assert parsed.row_breaches == {}
    assert parsed.frame["on_hand"].tolist() == [4, 0]
    assert str(parsed.frame["in_transit"].dtype) == "Int64"
    assert parsed.frame["snapshot_date"].tolist() == [pd.Timestamp("2026-03-10")] * 2
    assert parsed.frame["_source_line"].tolist() == [1, 2]


def test_parse_extracts_concatenates_days_with_their_lineage(shipments, tmp_path):
    first = _csv(tmp_path, HEADER + "S1,ST1,web,5,1,2026-03-01\nS2,ST1,web,6,1,2026-03-01\n", "a.csv")
    second = _csv(tmp_path, HEADER + "S3,ST1,web,x,1,2026-03-02\n", "b.csv")

    parsed = parse_extracts(shipments, [(first, "2026-03-01"), (second, "2026-03-02")])

    assert parsed.frame["shipment_id"].tolist() == ["S1", "S2", "S3"]
    assert parsed.frame["_source_file"].tolist() == [first, first, second]
    assert parsed.frame["_source_line"].tolist() == [2, 3, 2]
    assert parsed.frame["_ds"].tolist() == [pd.Timestamp("2026-03-01")] * 2 + [pd.Timestamp("2026-03-02")]
    assert parsed.row_breaches == {2: [("type:units", "units='x' is not a valid integer (line 2, column 4)")]}


@pytest.mark.parametrize("body", ["", "\n\n", "\ufeff"], ids=["zero-bytes", "blank-lines", "only-a-byte-order-mark"])
def test_empty_csv_is_a_delivery_without_rows(shipments, tmp_path, body):
    # One rule for every format: the contract's row_count decides whether zero rows are acceptable.
    path = _csv(tmp_path, body)

    parsed = parse_extract(shipments, path, DS)

    assert len(parsed.frame) == 0
    assert parsed.missing_columns == [] and parsed.extra_columns == [] and parsed.retyped_columns == {}


def test_duplicate_header_column_is_unreadable(shipments, tmp_path):
    path = _csv(tmp_path, "shipment_id,store_id,channel,units,units,weight,shipped_on\nS1,ST1,web,5,6,1,2026-03-01\n")

    with pytest.raises(ExtractUnreadable) as caught:
        parse_extract(shipments, path, DS)
    assert str(caught.value) == (f"{path}:1:36: duplicate column 'units' in the header (fields 4 and 5): which one "
                                 "holds the values is unknown")
    assert caught.value.kind == "header"


@pytest.mark.parametrize(("units", "weight", "breaches"), [
    ("1e20", "1", {"type:units": "units='1e20' is not a valid integer (line 2, column 4)"}),
    ("-9223372036854775809", "1", {"type:units": "units='-9223372036854775809' is not a valid integer (line 2, column 4)"}),
    ("5", "inf", {"type:weight": "weight='inf' is not a valid number (line 2, column 5)"}),
    ("5", "-Infinity", {"type:weight": "weight='-Infinity' is not a valid number (line 2, column 5)"}),
    ("5", "1e400", {"type:weight": "weight='1e400' is not a valid number (line 2, column 5)"}),
], ids=["int-1e20", "below-int64", "inf", "minus-infinity", "beyond-float"])
def test_numbers_that_do_not_fit_are_type_breaches(shipments, tmp_path, units, weight, breaches):
    # The other row keeps the column's fast path from succeeding, so both the fast and careful paths run.
    path = _csv(tmp_path, HEADER + f"S1,ST1,web,{units},{weight},2026-03-01\nS2,ST1,web,x,2,2026-03-01\n")

    parsed = parse_extract(shipments, path, DS)

    got = {rule: reason for rule, reason in parsed.row_breaches[0]}
    assert got == breaches


def test_big_integers_below_the_limit_are_read_exactly(shipments, tmp_path):
    path = _csv(tmp_path, HEADER + "S1,ST1,web,9007199254740993,1,2026-03-01\nS2,ST1,web,x,2,2026-03-01\n")

    parsed = parse_extract(shipments, path, DS)

    assert parsed.frame["units"].iloc[0] == 9007199254740993  # 2**53 + 1: no float on the way


def test_parquet_timestamps_out_of_range_and_with_time_zones(tmp_path):
    contract = load_contracts(CONTRACTS_DIR)["ecommerce_orders"]
    path = tmp_path / "order_lines.parquet"
    stamps = pd.Series(pd.to_datetime(["2026-03-10T09:00:00+01:00", "2026-03-10T10:00:00+01:00"]))
    pd.DataFrame({"ordered_at": stamps, "line_no": pd.array([1, 2**63 - 1], dtype="uint64")}).to_parquet(path)
    parquet = contract.model_copy(update={"file": contract.file.model_copy(update={"format": "parquet"})})

    parsed = parse_extract(parquet, str(path), DS)

    assert parsed.frame["ordered_at"].tolist() == [pd.Timestamp("2026-03-10 08:00"), pd.Timestamp("2026-03-10 09:00")]
    assert parsed.frame["line_no"].tolist() == [1, 2**63 - 1]


def test_bad_utf8_is_unreadable_and_names_the_file(shipments, tmp_path):
    path = tmp_path / "shipments.csv"
    path.write_bytes(HEADER.encode() + b"S1,ST\xff\xfe1,web,5,1,2026-03-01\n")

    with pytest.raises(ExtractUnreadable) as caught:
        parse_extract(shipments, str(path), DS)
    # Line 2, column 6 is where the undecodable byte sits.
    assert str(caught.value) == (f"{path}:2:6: not valid utf-8: byte 0xff cannot be decoded (was the file "
                                 "exported as latin-1 or cp1252?)")
    assert caught.value.kind == "encoding"


@pytest.mark.parametrize(("encoding", "bom"), [("utf-16-le", "\ufeff"), ("utf-16-be", "\ufeff"), ("utf-32-le", "\ufeff"),
                                             ("utf-8", "\ufeff")])
def test_a_byte_order_mark_names_the_encoding(shipments, tmp_path, encoding, bom):
    path = tmp_path / "shipments.csv"
    path.write_bytes((bom + HEADER + "S1,ST\u00e91,web,5,1,2026-03-01\n").encode(encoding))

    parsed = parse_extract(shipments, str(path), DS)

    assert parsed.frame["store_id"].tolist() == ["ST\u00e91"]
    assert parsed.frame["shipment_id"].tolist() == ["S1"]  # the mark is not part of the first column


def test_utf16_with_a_broken_byte_names_the_encoding_found(shipments, tmp_path):
    path = tmp_path / "shipments.csv"
    path.write_bytes(b"\xff\xfe" + (HEADER + "S1,").encode("utf-16-le") + b"\x00\xd8" + "x\n".encode("utf-16-le"))

    with pytest.raises(ExtractUnreadable) as caught:
        parse_extract(shipments, str(path), DS)
    # Line 2, character 4 is where the lone surrogate sits; byte 114 counts the mark.
    assert str(caught.value) == (f"{path}:2:4: not valid UTF-16 LE: bytes 00 d8 at byte 114 of the file cannot be "
                                 "decoded (illegal UTF-16 surrogate)")
    assert caught.value.kind == "encoding"


# ---------------------------------------------------------------------------------------------------
# Validation with Great Expectations (each call runs a real GX validation: keep them few)
# ---------------------------------------------------------------------------------------------------

# Data row i is on line i + 2. Comments say which rule each row breaks.
ROWS = [
    "S01,ST1,web,5,1.5,2026-03-01",  # good
    "S02,ST1,fax,5,1.0,2026-03-01",  # channel not in the allowed set
    "S03,ST1,web,500,1.0,2026-03-01",  # units above max
    "S04,,web,5,1.0,2026-03-01",  # store_id null but required
    "S05,ST9,app,5,1.0,2026-03-01",  # store_id not in the location master
    "S01,ST2,app,3,1.0,2026-03-01",  # repeats the primary key of row 0
    "S06,ST2,app,abc,1.0,2026-03-01",  # units does not parse
    "S07,ST2,web,2,-1.0,2026-03-01",  # weight below min, severity warning: kept
    "S08,ST1,app,1,0.5,2026-03-01",  # good
    "S09,ST2,web,1,0.5,2026-03-01",  # good
]
REFS = {("locations", "location_id"): ["ST1", "ST2"]}


@pytest.fixture(scope="module")
def mixed(shipments, tmp_path_factory):
    path = _csv(tmp_path_factory.mktemp("mixed"), HEADER + "\n".join(ROWS) + "\n")
    parsed = parse_extract(shipments, path, DS)
    result, curated, quarantine = validate_extract(shipments, parsed, DS, REFS)
    return path, parsed, result, curated, quarantine


def test_validation_splits_curated_and_quarantine(mixed):
    path, _, result, curated, quarantine = mixed

    assert curated["shipment_id"].tolist() == ["S01", "S07", "S08", "S09"]
    assert curated["_source_line"].tolist() == [2, 9, 10, 11]
    assert str(curated["units"].dtype) == "Int64"
    assert quarantine["shipment_id"].tolist() == ["S02", "S03", "S04", "S05", "S01", "S06"]
    assert quarantine["_source_line"].tolist() == [3, 4, 5, 6, 7, 8]
    assert quarantine["_source_file"].tolist() == [path] * 6
    assert quarantine["_rules"].tolist() == [
        "allowed:channel", "range:units", "required:store_id", "reference:store_id", "primary_key",
        "type:units",
    ]
    # The original values as delivered, including the one that did not parse.
    assert quarantine["units"].tolist() == ["5", "500", "5", "5", "3", "abc"]
    assert quarantine.loc[0, "channel"] == "fax"
    assert list(quarantine.columns) == [*HEADER.strip().split(","), "_ds", "_source_file", "_source_line",
                                        "_rules", "_reasons"]


def test_quarantine_reasons_name_rule_and_value(mixed):
    _, _, _, _, quarantine = mixed

    assert quarantine["_reasons"].tolist() == [
        "allowed:channel broken by channel='fax'",
        "range:units broken by units=500",
        "required:store_id broken by store_id=<NA>",
        "reference:store_id broken by store_id='ST9'",
        "primary_key broken by shipment_id='S01'",
        "units='abc' is not a valid integer (line 8, column 4)",
    ]


def test_validation_result_counts_and_outcome(mixed):
    path, _, result, _, _ = mixed

    assert (result.rows_in, result.rows_passed, result.rows_quarantined) == (10, 4, 6)
    assert result.breaches == {
        "allowed:channel": 1, "range:units": 1, "required:store_id": 1, "reference:store_id": 1,
        "primary_key": 1, "type:units": 1, "range:weight": 1,
    }
    # 60% quarantined is within this contract's 70%: the extract passes with a warning.
    assert result.outcome == WARNED
    assert result.reasons == []
    assert result.sample_keys == ["S02", "S03", "S04", "S05", "S01"]
    assert result.file == path
    assert result.summary() == (
        "shipments v2.1.0 ds=2026-03-10: warned; 10 rows in, 4 passed, 6 quarantined; breaches "
        "allowed:channel=1, primary_key=1, range:units=1, range:weight=1, reference:store_id=1, "
        "required:store_id=1, type:units=1; sample keys S02, S03, S04, S05, S01"
    )


def test_quarantine_above_the_contract_share_blocks(mixed, tmp_path):
    _, parsed, _, _, _ = mixed
    strict = load_contract(_write(tmp_path, BASE.replace("max_pct: 70", "max_pct: 50")))
    assert strict.max_quarantine_pct == 50.0

    result, curated, quarantine = validate_extract(strict, parsed, DS, REFS)

    assert result.outcome == BLOCKED
    assert result.reasons == ["quarantine_share: 60.0% of rows quarantined, above the contract's 50% (error)"]
    assert len(curated) == 4 and len(quarantine) == 6
    error = ContractViolation([result])
    assert str(error) == (
        "blocked by data contract: shipments v2.1.0 ds=2026-03-10: blocked; 10 rows in, 4 passed, "
        "6 quarantined; breaches allowed:channel=1, primary_key=1, quarantine_share=6, range:units=1, "
        "range:weight=1, reference:store_id=1, required:store_id=1, type:units=1; quarantine_share: 60.0% of "
        "rows quarantined, above the contract's 50% (error); sample keys S02, S03, S04, S05, S01 (every "
        "validation is recorded in ops.contract_runs)"
    )
    assert error.results == [result] and error.all_results == [result]


def test_clean_extract_passes_and_too_few_rows_block(shipments, tmp_path):
    path = _csv(tmp_path, HEADER + "S01,ST1,web,5,1.5,2026-03-01\n")
    parsed = parse_extract(shipments, path, DS)

    result, curated, quarantine = validate_extract(shipments, parsed, DS, REFS)
    assert result.outcome == PASSED
    assert (result.rows_in, result.rows_passed, result.rows_quarantined) == (1, 1, 0)
    assert result.breaches == {} and len(quarantine) == 0
    assert curated["shipment_id"].tolist() == ["S01"]

    (tmp_path / "needs_two").mkdir()
    needs_two = load_contract(_write(tmp_path / "needs_two", BASE.replace("min_rows: 1", "min_rows: 2")))
    assert needs_two.min_rows == 2
    result, _, _ = validate_extract(needs_two, parsed, DS, REFS)
    assert result.outcome == BLOCKED
    assert result.reasons == ["row_count: 1 rows, contract expects at least 2 (error)"]


def test_missing_column_blocks_and_quarantines_every_row(shipments, tmp_path):
    path = _csv(tmp_path, "shipment_id,store_id,channel,units,shipped_on\nS01,ST1,web,5,2026-03-01\n"
                          "S02,ST1,web,6,2026-03-01\n")
    parsed = parse_extract(shipments, path, DS)

    result, curated, quarantine = validate_extract(shipments, parsed, DS, REFS)

    assert result.outcome == BLOCKED
    assert result.breaches == {"schema:missing_columns": 1}
    assert result.reasons == ["schema:missing_columns: missing columns ['weight'] (schema drift, error)"]
    assert len(curated) == 0
    assert quarantine["_rules"].tolist() == ["schema:missing_columns"] * 2
    assert quarantine["_reasons"].tolist() == ["file lacks ['weight']"] * 2
    assert quarantine["_source_line"].tolist() == [2, 3]


def test_an_optional_column_may_be_left_out_and_reads_as_empty(tmp_path):
    text = BASE.replace("    min: 0\n    severity: warning", "    min: 0\n    severity: warning\n    optional: true")
    (tmp_path / "c").mkdir()
    optional = load_contract(_write(tmp_path / "c", text))
    assert optional.column("weight").optional and not optional.column("units").optional
    older = _csv(tmp_path, "shipment_id,store_id,channel,units,shipped_on\nS01,ST1,web,5,2026-03-01\n")
    parsed = parse_extract(optional, older, DS)
    assert parsed.missing_columns == []
    result, curated, quarantine = validate_extract(optional, parsed, DS, REFS)
    assert result.outcome == PASSED and len(quarantine) == 0
    assert curated["weight"].isna().all() and curated["weight"].dtype == float
    # Delivered, the column keeps its rules; a required column left out is still drift.
    newer = _csv(tmp_path, "shipment_id,store_id,channel,units,weight,shipped_on\nS01,ST1,web,5,-1,2026-03-01\n"
                           "S02,ST1,web,5,2.5,2026-03-01\n", name="newer.csv")
    result, curated, _ = validate_extract(optional, parse_extract(optional, newer, DS), DS, REFS)
    assert result.breaches == {"range:weight": 1} and curated["weight"].tolist() == [-1.0, 2.5]  # a warning rule
    no_units = _csv(tmp_path, "shipment_id,store_id,channel,shipped_on\nS01,ST1,web,2026-03-01\n", name="nu.csv")
    assert parse_extract(optional, no_units, DS).missing_columns == ["units"]
    with pytest.raises(ContractError, match="cannot be both required and optional"):
        load_contract(_write(tmp_path / "c", text.replace("    type: integer\n    required: true",
                                                            "    type: integer\n    required: true\n    optional: true")))


def test_contract_result_summary_and_violation_text():
    first = ContractResult("pos_sales", "1.0.0", DS, "/x/pos_sales.csv", rows_in=3, rows_passed=2,
                           rows_quarantined=1, breaches={"range:units_sold": 1}, outcome=BLOCKED,
                           reasons=["volume: 3 rows, contract expects at least 5"], sample_keys=["ST1/A/2026-03-10"],
                           quarantine_path="/q/part-0.parquet")
    second = ContractResult("receipts", "1.0.0", DS, "/x/receipts.csv")

    assert first.summary() == (
        "pos_sales v1.0.0 ds=2026-03-10: blocked; 3 rows in, 2 passed, 1 quarantined; breaches "
        "range:units_sold=1; volume: 3 rows, contract expects at least 5; sample keys ST1/A/2026-03-10; "
        "quarantined rows at /q/part-0.parquet"
    )
    assert second.summary() == "receipts v1.0.0 ds=2026-03-10: passed; 0 rows in, 0 passed, 0 quarantined"
    error = ContractViolation([first], [first, second])
    assert str(error) == ("blocked by data contract: " + first.summary()
                          + " (every validation is recorded in ops.contract_runs)")
    assert error.all_results == [first, second]
    assert first.as_record()["breaches"] == {"range:units_sold": 1}
