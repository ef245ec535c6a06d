"""Data contracts: one YAML file per extract in ``data_contracts/``, loaded into typed objects.

The shape follows the Open Data Contract Standard in spirit (id, version, owner, schema with logical
types, keys, allowed values and ranges, references to master data, freshness and volume). Loading is
strict: an unknown key or a wrong type is a :class:`ContractError` naming the file and line, so a typo
fails the DAG parse test instead of silently switching a rule off.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from include.config import CONTRACTS_DIR

LOGICAL_TYPES = ("string", "integer", "number", "date", "timestamp", "boolean")
FORMATS = ("csv", "jsonl", "parquet")
SEVERITIES = ("error", "warning")

_CONTRACT_KEYS = {
    "id", "version", "owner", "description", "source", "file", "primary_key", "schema",
    "freshness", "volume", "max_quarantine_pct",
}
_COLUMN_KEYS = {
    "name", "type", "required", "description", "min", "max", "allowed_values", "references", "severity",
}


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
    #: Line of the column (of its ``references`` entry when it has one) in the contract file, for errors
    #: found only once every contract is loaded.
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
    for key in ("id", "version", "owner", "source", "file", "schema"):
        if key not in data:
            raise ContractError(f"{path}:1: missing required key {key!r}")
    if data["id"] != path.stem:
        raise fail("id", f"id {data['id']!r} must match the file name {path.stem!r}")
    file_spec = data["file"]
    if not isinstance(file_spec, dict) or set(file_spec) != {"name", "format"}:
        raise fail("file", "file must be a mapping with exactly 'name' and 'format'")
    if file_spec["format"] not in FORMATS:
        raise fail("file", f"file format {file_spec['format']!r} is not one of {', '.join(FORMATS)}")

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
    freshness = data.get("freshness") or {}
    volume = data.get("volume") or {}
    if set(freshness) - {"max_age_days"}:
        raise fail("freshness", f"unknown freshness keys {sorted(set(freshness) - {'max_age_days'})}")
    if set(volume) - {"min_rows"}:
        raise fail("volume", f"unknown volume keys {sorted(set(volume) - {'min_rows'})}")
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
        max_age_days=int(freshness.get("max_age_days", 0)),
        min_rows=int(volume.get("min_rows", 0)),
        max_quarantine_pct=float(data.get("max_quarantine_pct", 5.0)),
    )


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
