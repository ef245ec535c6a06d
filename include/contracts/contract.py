"""Data contracts: one YAML file per extract in ``data_contracts/``, loaded into typed objects.

The shape follows the Open Data Contract Standard (``kind``/``apiVersion`` header, id, version, status,
owner, description, schema with logical types, required, primary key, allowed values and ranges,
patterns, relationships to master data, and a ``quality`` list of extract-level rules with a severity:
freshness, row count, volume against the trailing median, duplicate keys, share of quarantined rows).
Loading is strict: an unknown key or a wrong type is a :class:`ContractError` naming the file and line,
so a typo fails the DAG parse test instead of silently switching a rule off.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from include.config import CONTRACTS_DIR

LOGICAL_TYPES = ("string", "integer", "number", "date", "timestamp", "boolean")
FORMATS = ("csv", "jsonl", "parquet")
SEVERITIES = ("error", "warning")

KIND = "DataContract"
API_VERSIONS = ("v3.0.0",)
STATUSES = ("draft", "active", "deprecated")

_CONTRACT_KEYS = {
    "kind", "apiVersion", "id", "version", "status", "owner", "description", "source", "file", "primary_key",
    "schema", "quality", "tags",
}
_REQUIRED_KEYS = ("kind", "apiVersion", "id", "version", "owner", "source", "file", "schema")
_FILE_KEYS = {"name", "format", "delimiter", "encoding"}
_COLUMN_KEYS = {
    "name", "type", "required", "description", "min", "max", "allowed_values", "references", "severity",
    "pattern", "max_length",
}
#: Extract-level rules and the parameters each accepts (besides ``rule``, ``severity``, ``description``).
QUALITY_RULES: dict[str, dict[str, type | tuple[type, ...]]] = {
    # The file for the date arrived, and its newest date is not older than ``max_age_days``.
    "freshness": {"column": str, "max_age_days": int},
    # An absolute floor on the rows of one delivery.
    "row_count": {"min_rows": int},
    # Rows of the delivery against the median of the earlier curated partitions.
    "volume": {"trailing_days": int, "min_history": int, "min_ratio": (int, float), "max_ratio": (int, float)},
    # Rows sharing a primary key; exact repeats (a file polled twice) are told apart from conflicting ones.
    "duplicate_key": {"exact_repeat_severity": str},
    # Share of quarantined rows above which the extract is blocked.
    "quarantine_share": {"max_pct": (int, float)},
}
_QUALITY_COMMON = {"rule", "severity", "description"}


class ContractError(ValueError):
    """A contract file that cannot be used; the message names the file and line."""


@dataclass(frozen=True)
class Column:
    """One column of an extract and the row-level rules it carries."""

    name: str
    type: str
    required: bool = False
    description: str = ""
    min: float | None = None
    max: float | None = None
    allowed_values: tuple[str, ...] | None = None
    references: tuple[str, str] | None = None  # (contract id, column)
    severity: str = "error"
    pattern: str | None = None
    max_length: int | None = None
    #: Line of the column (of its ``references`` entry when it has one) in the contract file, for errors
    #: found only once every contract is loaded.
    line: int = field(default=0, compare=False)


@dataclass(frozen=True)
class QualityRule:
    """One extract-level rule of the ``quality`` list."""

    rule: str
    severity: str = "error"
    description: str = ""
    params: dict[str, Any] = field(default_factory=dict, compare=False)
    line: int = field(default=0, compare=False)


@dataclass(frozen=True)
class Contract:
    """A data contract for one extract file."""

    id: str
    version: str
    owner: str
    description: str
    source: str
    file_name: str
    file_format: str
    primary_key: tuple[str, ...]
    columns: tuple[Column, ...]
    path: str
    max_age_days: int = 0
    min_rows: int = 0
    #: Share of quarantined rows above which the whole extract is blocked.
    max_quarantine_pct: float = 5.0
    extras: dict[str, Any] = field(default_factory=dict)
    quality: tuple[QualityRule, ...] = ()
    status: str = "active"
    delimiter: str = ","
    encoding: str = "utf-8"

    def rule(self, name: str) -> QualityRule | None:
        """The quality rule called ``name``, or None when the contract does not list it."""
        for rule in self.quality:
            if rule.rule == name:
                return rule
        return None

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]

    def column(self, name: str) -> Column:
        for col in self.columns:
            if col.name == name:
                return col
        raise KeyError(f"contract {self.id} has no column {name!r}")


def _line(node: yaml.Node | None) -> int:
    return node.start_mark.line + 1 if node is not None else 0


def _key_nodes(node: yaml.Node) -> dict[str, tuple[yaml.Node, yaml.Node]]:
    if not isinstance(node, yaml.MappingNode):
        return {}
    return {k.value: (k, v) for k, v in node.value}


def load_contract(path: str | Path) -> Contract:
    """Load and check one contract file.

    Args:
        path: the YAML file.

    Returns:
        The contract.

    Raises:
        ContractError: naming the file and line of the first problem found.
    """
    path = Path(path)
    text = path.read_text(encoding="utf-8")
    try:
        root = yaml.compose(text)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ContractError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(data, dict) or root is None:
        raise ContractError(f"{path}:1: a contract must be a mapping")
    nodes = _key_nodes(root)

    def fail(key: str, message: str, node: yaml.Node | None = None) -> ContractError:
        line = _line(node if node is not None else nodes.get(key, (None, None))[0])
        return ContractError(f"{path}:{line}: {message}")

    for key in data:
        if key not in _CONTRACT_KEYS:
            raise fail(key, f"unknown key {key!r} (allowed: {', '.join(sorted(_CONTRACT_KEYS))})")
    for key in _REQUIRED_KEYS:
        if key not in data:
            raise ContractError(f"{path}:1: missing required key {key!r}")
    if data["kind"] != KIND:
        raise fail("kind", f"kind {data['kind']!r} must be {KIND!r}")
    if str(data["apiVersion"]) not in API_VERSIONS:
        raise fail("apiVersion", f"apiVersion {data['apiVersion']!r} is not one of {', '.join(API_VERSIONS)}")
    status = data.get("status", "active")
    if status not in STATUSES:
        raise fail("status", f"status {status!r} is not one of {', '.join(STATUSES)}")
    if data["id"] != path.stem:
        raise fail("id", f"id {data['id']!r} must match the file name {path.stem!r}")
    file_spec = data["file"]
    if not isinstance(file_spec, dict) or not {"name", "format"} <= set(file_spec) or set(file_spec) - _FILE_KEYS:
        raise fail("file", f"file must be a mapping with 'name' and 'format' (allowed: {', '.join(sorted(_FILE_KEYS))})")
    if file_spec["format"] not in FORMATS:
        raise fail("file", f"file format {file_spec['format']!r} is not one of {', '.join(FORMATS)}")
    delimiter = str(file_spec.get("delimiter", ","))
    if len(delimiter) != 1:
        raise fail("file", f"file delimiter {delimiter!r} must be one character")

    schema_node = nodes["schema"][1]
    if not isinstance(data["schema"], list) or not data["schema"]:
        raise fail("schema", "schema must be a non-empty list of columns")
    columns: list[Column] = []
    for item, item_node in zip(data["schema"], schema_node.value, strict=True):
        columns.append(_column(item, item_node, fail))
    names = [c.name for c in columns]
    if len(set(names)) != len(names):
        raise fail("schema", f"duplicate column names in schema: {names}")
    pk = tuple(data.get("primary_key") or ())
    for key in pk:
        if key not in names:
            raise fail("primary_key", f"primary key column {key!r} is not in the schema")
    quality = _quality(data.get("quality"), nodes.get("quality", (None, None))[1], names, fail)
    by_rule = {q.rule: q for q in quality}
    freshness = by_rule.get("freshness")
    if freshness is not None and "column" in freshness.params:
        column = freshness.params["column"]
        kinds = {c.name: c.type for c in columns}
        if kinds.get(column) not in ("date", "timestamp"):
            raise fail("quality", f"freshness column {column!r} must be a date or timestamp column of the schema",
                       _node_at(nodes["quality"][1], quality.index(freshness)))
    return Contract(
        id=str(data["id"]),
        version=str(data["version"]),
        owner=str(data["owner"]),
        description=str(data.get("description", "")),
        source=str(data["source"]),
        file_name=str(file_spec["name"]),
        file_format=str(file_spec["format"]),
        primary_key=pk,
        columns=tuple(columns),
        path=str(path),
        max_age_days=int(freshness.params.get("max_age_days", 0)) if freshness else 0,
        min_rows=int(by_rule["row_count"].params.get("min_rows", 0)) if "row_count" in by_rule else 0,
        max_quarantine_pct=float(by_rule["quarantine_share"].params.get("max_pct", 5.0))
        if "quarantine_share" in by_rule else 5.0,
        quality=tuple(quality),
        status=str(status),
        delimiter=delimiter,
        encoding=str(file_spec.get("encoding", "utf-8")),
    )


def _node_at(node: yaml.Node | None, index: int) -> yaml.Node | None:
    if isinstance(node, yaml.SequenceNode) and index < len(node.value):
        return node.value[index]
    return node


def _quality(items: Any, node: yaml.Node | None, names: list[str], fail) -> list[QualityRule]:
    """Check the ``quality`` list: known rules, their parameters and types, one entry per rule."""
    if items is None:
        return []
    if not isinstance(items, list):
        raise fail("quality", "quality must be a list of rules")
    rules: list[QualityRule] = []
    for index, item in enumerate(items):
        item_node = _node_at(node, index)
        if not isinstance(item, dict) or "rule" not in item:
            raise fail("quality", "each quality entry must be a mapping with a 'rule'", item_node)
        keys = _key_nodes(item_node)
        name = item["rule"]
        if name not in QUALITY_RULES:
            raise fail("quality", f"unknown quality rule {name!r} (allowed: {', '.join(sorted(QUALITY_RULES))})",
                       keys["rule"][1])
        allowed = QUALITY_RULES[name]
        for key, value in item.items():
            if key in _QUALITY_COMMON:
                continue
            if key not in allowed:
                raise fail("quality", f"quality rule {name!r}: unknown key {key!r} (allowed: "
                           f"{', '.join(sorted({*allowed, *_QUALITY_COMMON}))})", keys[key][0])
            if isinstance(value, bool) or not isinstance(value, allowed[key]):
                raise fail("quality", f"quality rule {name!r}: {key} has the wrong type ({value!r})", keys[key][1])
        severity = item.get("severity", "error")
        if severity not in SEVERITIES:
            raise fail("quality", f"quality rule {name!r}: severity {severity!r} is not one of "
                       f"{', '.join(SEVERITIES)}", keys["severity"][1])
        if item.get("exact_repeat_severity", "warning") not in SEVERITIES:
            raise fail("quality", f"quality rule {name!r}: exact_repeat_severity must be one of "
                       f"{', '.join(SEVERITIES)}", keys["exact_repeat_severity"][1])
        if any(r.rule == name for r in rules):
            raise fail("quality", f"quality rule {name!r} is listed twice", item_node)
        params = {k: v for k, v in item.items() if k not in _QUALITY_COMMON}
        rules.append(QualityRule(name, severity, str(item.get("description", "")), params, _line(item_node)))
    return rules


def _column(item: Any, node: yaml.Node, fail) -> Column:
    if not isinstance(item, dict):
        raise fail("schema", "each schema entry must be a mapping", node)
    item_nodes = _key_nodes(node)
    for key in item:
        if key not in _COLUMN_KEYS:
            raise fail("schema", f"unknown column key {key!r} (allowed: {', '.join(sorted(_COLUMN_KEYS))})",
                       item_nodes[key][0])
    if "name" not in item or "type" not in item:
        raise fail("schema", "a column needs 'name' and 'type'", node)
    if item["type"] not in LOGICAL_TYPES:
        raise fail("schema", f"column {item['name']!r}: type {item['type']!r} is not one of "
                   f"{', '.join(LOGICAL_TYPES)}", item_nodes["type"][1])
    severity = item.get("severity", "error")
    if severity not in SEVERITIES:
        raise fail("schema", f"column {item['name']!r}: severity {severity!r} is not one of "
                   f"{', '.join(SEVERITIES)}", item_nodes["severity"][1])
    refs = item.get("references")
    if refs is not None and (not isinstance(refs, dict) or set(refs) != {"contract", "column"}):
        raise fail("schema", f"column {item['name']!r}: references needs 'contract' and 'column'",
                   item_nodes["references"][1])
    pattern = item.get("pattern")
    if pattern is not None:
        try:
            re.compile(str(pattern))
        except re.error as exc:
            raise fail("schema", f"column {item['name']!r}: pattern {pattern!r} is not a regular expression: "
                       f"{exc}", item_nodes["pattern"][1]) from exc
    max_length = item.get("max_length")
    if max_length is not None and (isinstance(max_length, bool) or not isinstance(max_length, int) or max_length < 1):
        raise fail("schema", f"column {item['name']!r}: max_length must be a positive integer",
                   item_nodes["max_length"][1])
    allowed = item.get("allowed_values")
    return Column(
        name=str(item["name"]),
        type=str(item["type"]),
        required=bool(item.get("required", False)),
        description=str(item.get("description", "")),
        min=item.get("min"),
        max=item.get("max"),
        allowed_values=tuple(str(v) for v in allowed) if allowed is not None else None,
        references=(str(refs["contract"]), str(refs["column"])) if refs else None,
        severity=severity,
        pattern=str(pattern) if pattern is not None else None,
        max_length=max_length,
        line=_line(item_nodes["references"][0] if "references" in item_nodes else node),
    )


def load_contracts(directory: str | Path = CONTRACTS_DIR) -> dict[str, Contract]:
    """Load every contract in a folder, keyed by id, and check references between them.

    Raises:
        ContractError: for the first bad file, or a reference to an unknown contract or column.
    """
    contracts = {c.id: c for c in (load_contract(p) for p in sorted(Path(directory).glob("*.yaml")))}
    for contract in contracts.values():
        for col in contract.columns:
            if col.references is None:
                continue
            ref_id, ref_col = col.references
            if ref_id not in contracts or ref_col not in contracts[ref_id].column_names:
                raise ContractError(
                    f"{contract.path}:{col.line}: column {col.name!r} references {ref_id}.{ref_col}, "
                    "which no contract defines"
                )
    return contracts


#: Master data contracts are validated first: the others check references against them.
MASTER_SOURCE = "master"


def contracts_by_source(contracts: dict[str, Contract]) -> dict[str, list[Contract]]:
    """Group contracts by the landing source folder they read."""
    out: dict[str, list[Contract]] = {}
    for contract in contracts.values():
        out.setdefault(contract.source, []).append(contract)
    return out
