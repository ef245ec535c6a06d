"""Data contracts: one YAML file per extract in ``data_contracts/``, loaded into typed pydantic models.

The shape follows the Open Data Contract Standard (``kind``/``apiVersion`` header, id, version, status,
owner, description, schema with logical types, required, primary key, allowed values and ranges,
patterns, relationships to master data, and a ``quality`` list of extract-level rules with a severity:
freshness, row count, volume against the trailing median, duplicate keys, share of quarantined rows).
Loading is strict: an unknown key or a wrong type (``"5"`` for a number, ``true`` for a count) is a
:class:`ContractError` naming the file, line and field (worded by :mod:`include.yaml_errors`, as the
policy's are), so a typo fails the DAG parse test instead of silently switching a rule off. Each rule's parameters and their defaults are declared once, on its model.
"""

from __future__ import annotations

import codecs
import re
from pathlib import Path
from typing import Annotated, Any, Literal, NamedTuple, TypeVar, get_args

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationInfo,
    field_validator,
    model_validator,
)

from include.config import CONTRACTS_DIR
from include.yaml_errors import line_of, problem, read_yaml, validate

__all__ = [
    "FORMATS", "LOGICAL_TYPES", "MASTER_SOURCE", "QUALITY_RULES", "SEVERITIES", "Column", "Contract",
    "ContractError", "Criticality", "DuplicateKey", "FileSpec", "Freshness", "QualityRule", "QuarantineShare",
    "Reference", "RowCount", "Volume", "contracts_by_source", "load_contract", "load_contracts",
    "load_contracts_with",
]

LogicalType = Literal["string", "integer", "number", "date", "timestamp", "boolean"]
FileFormat = Literal["csv", "jsonl", "parquet"]
Severity = Literal["error", "warning"]
Status = Literal["draft", "active", "deprecated"]
Kind = Literal["DataContract"]
ApiVersion = Literal["v3.0.0"]
LOGICAL_TYPES: tuple[str, ...] = get_args(LogicalType)
FORMATS: tuple[str, ...] = get_args(FileFormat)
SEVERITIES: tuple[str, ...] = get_args(Severity)
STATUSES: tuple[str, ...] = get_args(Status)
KIND: str = get_args(Kind)[0]
API_VERSIONS: tuple[str, ...] = get_args(ApiVersion)

T = TypeVar("T")


class ContractError(ValueError):
    """A contract file that cannot be used; the message names the file, line and field."""


def _sequence(value: Any) -> Any:
    # A YAML sequence loads as a list; the models hold tuples, and strict mode takes only a tuple.
    return tuple(value) if isinstance(value, list) else value


#: A YAML list, held as a tuple.
Listed = Annotated[tuple[T, ...], BeforeValidator(_sequence)]


class _Strict(BaseModel):
    """No coercion, no unknown keys, immutable once loaded."""

    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)


class Reference(NamedTuple):
    """A column of another contract (master data) that holds every value of the referring column."""

    contract: str
    column: str


def _mapping(value: Any) -> Any:
    if isinstance(value, dict | tuple):
        return value
    raise problem("mapping", f"must be a mapping with 'contract' and 'column', got {value!r}")


class Column(_Strict):
    """One column of an extract and the row-level rules it carries.

    ``optional: true`` lets a delivery leave the column out altogether (it reads as empty on every row):
    a column added to a contract after its extracts were first delivered, so that the older systems'
    files still load. Any other column a file lacks is schema drift and blocks the file.
    """

    name: str
    type: LogicalType
    required: bool = False
    optional: bool = False
    description: str = ""
    min: float | None = None
    max: float | None = None
    allowed_values: Listed[str] | None = None
    references: Annotated[Reference, BeforeValidator(_mapping)] | None = None
    severity: Severity = "error"
    pattern: str | None = None
    max_length: Annotated[int, Field(ge=1)] | None = None
    #: Line of the column (of its ``references`` entry when it has one) in the contract file, for errors
    #: found only once every contract is loaded.
    _line: int = PrivateAttr(default=0)

    @property
    def line(self) -> int:
        """Line of the column (of its ``references`` entry when it has one) in its contract file."""
        return self._line

    @model_validator(mode="after")
    def _optional_is_not_required(self) -> Column:
        if self.optional and self.required:
            raise problem("optional", f"column {self.name!r} cannot be both required and optional (a file may "
                          "leave an optional column out)", ("optional",))
        return self

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, pattern: str | None) -> str | None:
        if pattern is not None:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise problem("pattern", f"{pattern!r} is not a regular expression: {exc}") from exc
        return pattern


class FileSpec(_Strict):
    """The extract file: its name in the landing folder and how to read it.

    ``encoding`` is the encoding of a file without a byte order mark. A byte order mark wins over it: a
    UTF-8 mark is dropped and the file read as UTF-8, a UTF-16 LE/BE (or UTF-32) mark decodes the file
    from that encoding, so a spreadsheet's "Unicode text" export is read as delivered. A file without a
    mark whose bytes do not decode, or that holds NUL bytes (UTF-16 without a mark), is rejected
    (``parse:encoding``) naming the file, line and column and the encoding found.

    A file without content (zero bytes, or blank lines only) is a delivery of zero rows whatever its
    format: the ``row_count`` rule's ``min_rows`` alone decides whether that blocks.
    """

    name: str
    format: FileFormat
    delimiter: Annotated[str, Field(min_length=1, max_length=1)] = ","
    encoding: str = "utf-8"

    @field_validator("encoding")
    @classmethod
    def _known_codec(cls, encoding: str) -> str:
        try:
            codecs.lookup(encoding)
        except LookupError as exc:
            raise problem("encoding", f"unknown encoding {encoding!r}") from exc
        return encoding


class QualityRule(_Strict):
    """One extract-level rule of the ``quality`` list; each rule is a subclass with its parameters."""

    rule: str
    severity: Severity = "error"
    description: str = ""
    _line: int = PrivateAttr(default=0)

    @property
    def line(self) -> int:
        """Line of the rule in its contract file."""
        return self._line

    @property
    def params(self) -> dict[str, Any]:
        """The rule's parameters as the contract writes them (defaults left out)."""
        return self.model_dump(exclude_unset=True, exclude=set(QualityRule.model_fields))


class Freshness(QualityRule):
    """The file for the date arrived, and its newest ``column`` date is not older than ``max_age_days``."""

    rule: Literal["freshness"]
    column: str | None = None
    max_age_days: Annotated[int, Field(ge=0)] = 0


class RowCount(QualityRule):
    """An absolute floor on the rows of one delivery; an empty file of any format has zero rows."""

    rule: Literal["row_count"]
    min_rows: Annotated[int, Field(ge=0)] = 0


class Volume(QualityRule):
    """Rows of the delivery against the median of the earlier delivered days."""

    rule: Literal["volume"]
    trailing_days: Annotated[int, Field(ge=1)] = 28
    min_history: Annotated[int, Field(ge=0)] = 7
    min_ratio: Annotated[float, Field(ge=0)] = 0.5
    max_ratio: Annotated[float, Field(ge=0)] = 2.0


class DuplicateKey(QualityRule):
    """Rows sharing a primary key; exact repeats (a file polled twice) are told apart from conflicting ones."""

    rule: Literal["duplicate_key"]
    exact_repeat_severity: Severity = "warning"


class QuarantineShare(QualityRule):
    """Share of quarantined rows (percent) above which the extract is blocked."""

    rule: Literal["quarantine_share"]
    max_pct: Annotated[float, Field(ge=0, le=100)] = 5.0


_RULE_MODELS = (Freshness, RowCount, Volume, DuplicateKey, QuarantineShare)
AnyQualityRule = Annotated[Freshness | RowCount | Volume | DuplicateKey | QuarantineShare,
                           Field(discriminator="rule")]
#: Extract-level rules and the parameters each accepts (besides ``rule``, ``severity``, ``description``).
QUALITY_RULES: dict[str, dict[str, Any]] = {
    get_args(model.model_fields["rule"].annotation)[0]: {
        name: field.annotation for name, field in model.model_fields.items() if name not in QualityRule.model_fields
    }
    for model in _RULE_MODELS
}


class Criticality(_Strict):
    """Whether a night can go on without the extract of its date, and on how old a stand-in.

    A critical extract (the default) that is missing or blocked stops the night. A non-critical one is
    replaced by its last good curated partition no older than ``max_age_days``
    (:mod:`include.ingest.substitute`), and the night is marked degraded.
    """

    critical: bool = True
    max_age_days: Annotated[int, Field(ge=1)] | None = None

    @model_validator(mode="after")
    def _age_goes_with_non_critical(self) -> Criticality:
        if self.critical and self.max_age_days is not None:
            raise problem("criticality", "max_age_days applies only to a non-critical source (critical: false)",
                          ("max_age_days",))
        if not self.critical and self.max_age_days is None:
            raise problem("criticality", "a non-critical source needs max_age_days, the oldest stand-in "
                          "partition it accepts (days before the logical date)", ("max_age_days",))
        return self


class Contract(_Strict):
    """A data contract for one extract file, as its YAML file declares it."""

    kind: Kind
    api_version: ApiVersion = Field(alias="apiVersion")
    id: str
    version: str
    status: Status = "active"
    owner: str
    description: str = ""
    source: str
    file: FileSpec
    primary_key: Listed[str] = ()
    columns: Listed[Column] = Field(alias="schema", min_length=1)
    quality: Listed[AnyQualityRule] = ()
    tags: Listed[str] = ()
    criticality: Criticality = Field(default_factory=Criticality)
    _path: str = PrivateAttr(default="")

    @field_validator("id")
    @classmethod
    def _named_after_file(cls, value: str, info: ValidationInfo) -> str:
        stem = (info.context or {}).get("file_stem")
        if stem is not None and value != stem:
            raise problem("id", f"{value!r} must match the file name {stem!r}")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> Contract:
        names = self.column_names
        for index, name in enumerate(names):
            if name in names[:index]:
                raise problem("schema", f"duplicate column name {name!r} (also schema[{names.index(name)}])",
                              ("schema", index, "name"))
        for index, key in enumerate(self.primary_key):
            if key not in names:
                raise problem("primary_key", f"{key!r} is not a column of the schema", ("primary_key", index))
        seen: dict[str, int] = {}
        for index, rule in enumerate(self.quality):
            if rule.rule in seen:
                raise problem("quality", f"rule {rule.rule!r} is listed twice (also quality[{seen[rule.rule]}])",
                              ("quality", index, "rule"))
            seen[rule.rule] = index
        freshness = self.rule("freshness")
        if isinstance(freshness, Freshness) and freshness.column is not None:
            if freshness.column not in names or self.column(freshness.column).type not in ("date", "timestamp"):
                raise problem("freshness", f"{freshness.column!r} must be a date or timestamp column of the "
                              "schema", ("quality", seen["freshness"], "column"))
        return self

    @property
    def path(self) -> str:
        """The contract file."""
        return self._path

    @property
    def critical(self) -> bool:
        """Whether a missing or blocked extract stops the night (no stand-in partition is used)."""
        return self.criticality.critical

    @property
    def file_name(self) -> str:
        """Name of the extract file in the landing folder."""
        return self.file.name

    @property
    def file_format(self) -> str:
        """``csv``, ``jsonl`` or ``parquet``."""
        return self.file.format

    @property
    def delimiter(self) -> str:
        """Field delimiter of a CSV extract."""
        return self.file.delimiter

    @property
    def encoding(self) -> str:
        """Text encoding of the extract."""
        return self.file.encoding

    @property
    def max_age_days(self) -> int:
        """Days the newest date of a delivery may lag its logical date (``freshness``)."""
        rule = self.rule("freshness")
        return rule.max_age_days if isinstance(rule, Freshness) else Freshness.model_fields["max_age_days"].default

    @property
    def min_rows(self) -> int:
        """Fewest rows a delivery may have (``row_count``)."""
        rule = self.rule("row_count")
        return rule.min_rows if isinstance(rule, RowCount) else RowCount.model_fields["min_rows"].default

    @property
    def max_quarantine_pct(self) -> float:
        """Share of quarantined rows above which the whole extract is blocked (``quarantine_share``)."""
        rule = self.rule("quarantine_share")
        return rule.max_pct if isinstance(rule, QuarantineShare) else QuarantineShare.model_fields["max_pct"].default

    @property
    def column_names(self) -> list[str]:
        """Names of the schema's columns, in order."""
        return [c.name for c in self.columns]

    def rule(self, name: str) -> QualityRule | None:
        """The contract's quality rule called ``name``.

        Args:
            name: the rule (``freshness``, ``volume``...).

        Returns:
            The rule, typed by its model (:class:`Volume`...), or None when the contract does not list it.
        """
        for rule in self.quality:
            if rule.rule == name:
                return rule
        return None

    def column(self, name: str) -> Column:
        """The schema's column called ``name``.

        Args:
            name: the column.

        Returns:
            The column.

        Raises:
            KeyError: when the schema has no such column.
        """
        for col in self.columns:
            if col.name == name:
                return col
        raise KeyError(f"contract {self.id} has no column {name!r}")


def load_contract(path: str | Path) -> Contract:
    """Load and check one contract file.

    Args:
        path: the YAML file.

    Returns:
        The contract.

    Raises:
        ContractError: naming the file, line and field of each problem found.
    """
    file = read_yaml(path, ContractError, "a contract")
    contract = validate(Contract, file, ContractError, file_stem=file.path.stem)
    contract._path = str(file.path)
    for index, col in enumerate(contract.columns):
        col._line = line_of(file.root, ("schema", index, *(("references",) if col.references else ())))
    for index, rule in enumerate(contract.quality):
        rule._line = line_of(file.root, ("quality", index))
    return contract


def load_contracts(directory: str | Path = CONTRACTS_DIR) -> dict[str, Contract]:
    """Load every contract in a folder, keyed by id, and check references between them.

    Args:
        directory: the folder; its ``*.yaml`` files are contracts (subfolders are not read).

    Returns:
        The contracts by id.

    Raises:
        ContractError: for the first bad file, or a reference to an unknown contract or column.
    """
    contracts = {c.id: c for c in (load_contract(p) for p in sorted(Path(directory).glob("*.yaml")))}
    check_references(contracts.values(), contracts)
    return contracts


def load_contracts_with(directory: str | Path, base: str | Path = CONTRACTS_DIR) -> dict[str, Contract]:
    """The contracts of ``base`` plus those of ``directory`` (a subfolder the nightly does not read).

    Args:
        directory: folder of the extra contracts (its ``*.yaml`` files).
        base: folder of the contracts they may reference (master data).

    Returns:
        Every contract by id, references checked across both folders.

    Raises:
        ContractError: for a bad file, an id defined twice, or a reference no contract defines.
    """
    contracts = load_contracts(base)
    extra = [load_contract(p) for p in sorted(Path(directory).glob("*.yaml"))]
    for contract in extra:
        if contract.id in contracts:
            raise ContractError(f"{contract.path}: id {contract.id!r} is already defined in {base}")
        contracts[contract.id] = contract
    check_references(extra, contracts)
    return contracts


def check_references(checked, contracts: dict[str, Contract]) -> None:
    """Raise :class:`ContractError` for the first column of ``checked`` referencing a contract or column
    that ``contracts`` does not define."""
    for contract in checked:
        for index, col in enumerate(contract.columns):
            if col.references is None:
                continue
            ref_id, ref_col = col.references
            if ref_id not in contracts or ref_col not in contracts[ref_id].column_names:
                raise ContractError(
                    f"{contract.path}:{col.line}: schema[{index}].references: column {col.name!r} references "
                    f"{ref_id}.{ref_col}, which no contract defines"
                )


#: Master data contracts are validated first: the others check references against them.
MASTER_SOURCE = "master"


def contracts_by_source(contracts: dict[str, Contract]) -> dict[str, list[Contract]]:
    """Group contracts by the landing source folder they read.

    Args:
        contracts: contracts by id.

    Returns:
        The contracts of each source, in the order given.
    """
    out: dict[str, list[Contract]] = {}
    for contract in contracts.values():
        out.setdefault(contract.source, []).append(contract)
    return out
