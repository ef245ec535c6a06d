"""Rules an hourly delivery adds to its contract: every row belongs to the date and hour it is filed under.

A nightly file is judged by its newest date (``freshness``). An hourly file is judged row by row as well:
a row of another hour in it would be counted twice (once more in its own hour's file), or in the wrong hour
by whoever reads the day so far. A contract file has no place for the hour of the partition (its schema is
the nightly's, see :mod:`include.contracts.contract`), so the rules are declared here, by contract, and
reported like the row rules of the contract: a ``partition:<column>`` breach count in the result, the rule
and its reason on each quarantined row, and the rows counted against the contract's ``quarantine_share``.

:func:`validate_hour` is :func:`include.contracts.validate.validate_extract` with these rules added between
the row-level validation (GX's verdict included) and the verdict on the whole delivery.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd

from include.contracts.contract import Contract
from include.contracts.frames import LINEAGE_COLUMNS, ParsedExtract, take_rows
from include.contracts.validate import (
    ContractResult,
    judge_extract,
    note_extra_columns,
    validate_extract,
    validate_rows,
)

Scope = Literal["date", "hour", "through_hour"]


@dataclass(frozen=True)
class PartitionRule:
    """Where the values of one column must lie for a row to belong to the partition of ``(ds, hour)``.

    Attributes:
        column: a date, timestamp or (for ``hour``) integer column of the contract.
        scope: ``date``: on the date. ``hour``: in the hour (an integer column equals it, a timestamp lies
            within it). ``through_hour``: on the date and not after the end of the hour (a snapshot taken
            earlier in the day may be filed later, one from later may not).
    """

    column: str
    scope: Scope

    @property
    def name(self) -> str:
        """The rule as results and quarantined rows name it."""
        return f"partition:{self.column}"

    def bounds(self, ds: str, hour: int) -> tuple[pd.Timestamp, pd.Timestamp]:
        """``[start, end)`` of the values allowed (for an integer ``hour`` column: the hour, twice)."""
        day = pd.Timestamp(ds)
        if self.scope == "date":
            return day, day + pd.Timedelta(days=1)
        start = day + pd.Timedelta(hours=hour) if self.scope == "hour" else day
        return start, day + pd.Timedelta(hours=hour + 1)

    def expected(self, ds: str, hour: int, *, timed: bool = True) -> str:
        """What the rows of the partition hold, for the reasons (``timed``: of a date or timestamp column)."""
        if not timed:
            return f"hour {hour} only"
        if self.scope == "date":
            return f"{ds} only"
        start, end = self.bounds(ds, hour)
        return f"{start:%Y-%m-%d %H:%M} to before {end:%H:%M}" if self.scope == "hour" else \
            f"{ds} up to before {end:%H:%M}"

    def mask(self, frame: pd.DataFrame, ds: str, hour: int) -> np.ndarray:
        """Rows whose value lies outside the partition (a missing or unparsed value breaks other rules)."""
        values = frame[self.column]
        present = values.notna().to_numpy()
        if not pd.api.types.is_datetime64_any_dtype(values.dtype):
            numbers = values.to_numpy(dtype="float64", na_value=np.nan)
            with np.errstate(invalid="ignore"):
                return present & (numbers != hour)
        start, end = self.bounds(ds, hour)
        stamps = values.to_numpy(dtype="datetime64[ns]")
        with np.errstate(invalid="ignore"):
            return present & ((stamps < start.to_datetime64()) | (stamps >= end.to_datetime64()))

    def reasons(self, frame: pd.DataFrame, rows: np.ndarray, ds: str, hour: int) -> list[str]:
        """One reason per row of ``rows``: the value, and what the file of the hour holds."""
        values = take_rows(frame[self.column], rows).tolist()
        lines = frame["_source_line"].to_numpy()[rows].tolist()
        holds = self.expected(ds, hour, timed=pd.api.types.is_datetime64_any_dtype(frame[self.column].dtype))
        return [f"{self.name} broken by {self.column}={_text(value)!r} on line {line}: the file of {ds} "
                f"hour {hour:02d} holds {holds}" for value, line in zip(values, lines, strict=True)]


def _text(value) -> str | int:
    if isinstance(value, pd.Timestamp | dt.datetime):
        return value.isoformat()
    return int(value) if isinstance(value, int | np.integer) else str(value)


#: The partition rules of each hourly contract, by contract id.
PARTITION_RULES: dict[str, tuple[PartitionRule, ...]] = {
    "pos_intraday": (PartitionRule("business_date", "date"), PartitionRule("hour", "hour")),
    "ecommerce_intraday": (PartitionRule("ordered_at", "hour"),),
    "wms_intraday": (PartitionRule("snapshot_at", "through_hour"),),
}


def validate_hour(contract: Contract, parsed: ParsedExtract, ds: str, hour: int,
                  reference_values: dict[tuple[str, str], list[str]], *, file: str) -> tuple[
                      ContractResult, pd.DataFrame, pd.DataFrame]:
    """Validate one hour's delivery as the nightly validates a day's, plus the partition rules of its contract.

    Args:
        contract: the extract's contract.
        parsed: the delivery, parsed.
        ds: logical date.
        hour: the hour the file is filed under.
        reference_values: master data values for reference checks.
        file: the delivered file, recorded in the result.

    Returns:
        ``(result, curated, quarantine)`` as :func:`include.contracts.validate.validate_extract` gives them.

    Raises:
        RuntimeError: when GX's verdict on a rule and the vectorised row split disagree.
    """
    if parsed.missing_columns or parsed.retyped_columns:
        # Schema drift breaks every row: the nightly's verdict, and nothing for the partition rules to add.
        result, curated, quarantine = validate_extract(contract, parsed, ds, reference_values)
        result.file = file
        return result, curated, quarantine
    result = ContractResult(contract.id, contract.version, ds, file, rows_in=len(parsed.frame))
    note_extra_columns(parsed.extra_columns, result)
    curated, quarantine, stats = validate_rows(contract, parsed, reference_values, result)
    curated, quarantine, moved = apply_partition_rules(contract, parsed, ds, hour, curated, quarantine, result)
    stats.counted_bad += moved
    judge_extract(contract, stats, ds, None, result, extra_columns=parsed.extra_columns)
    return result, curated, quarantine


def apply_partition_rules(contract: Contract, parsed: ParsedExtract, ds: str, hour: int, curated: pd.DataFrame,
                          quarantine: pd.DataFrame, result: ContractResult) -> tuple[pd.DataFrame, pd.DataFrame, int]:
    """Quarantine the rows that do not belong to the partition; add the rule to rows quarantined already.

    Rows are matched between the parsed delivery and the split by their line (unique within one file).

    Args:
        contract: the extract's contract (its id selects :data:`PARTITION_RULES`).
        parsed: the delivery, parsed.
        ds: logical date.
        hour: the hour the file is filed under.
        curated: the rows that passed the contract's row rules.
        quarantine: the rows that did not, as delivered, with ``_rules`` and ``_reasons``.
        result: the counts and breaches, updated.

    Returns:
        ``(curated, quarantine, moved)``: the split with the partition rules applied, and how many rows
        moved from curated to quarantine.
    """
    frame = parsed.frame
    rules, reasons = np.full(len(frame), "", dtype=object), np.full(len(frame), "", dtype=object)
    broken = np.zeros(len(frame), dtype=bool)
    broken[list(parsed.structure_errors)] = True  # a broken line's values are what was cut out of it
    for rule in PARTITION_RULES.get(contract.id, ()):
        mask = rule.mask(frame, ds, hour) & ~broken
        if not mask.any():
            continue
        rows = np.flatnonzero(mask)
        result.breaches[rule.name] = int(mask.sum())
        first = rules[rows] == ""
        rules[rows] = np.where(first, rule.name, rules[rows] + ";" + rule.name)
        texts = np.asarray(rule.reasons(frame, rows, ds, hour), dtype=object)
        reasons[rows] = np.where(first, texts, reasons[rows] + " | " + texts)
    flagged = rules != ""
    if not flagged.any():
        return curated, quarantine, 0
    lines = frame["_source_line"].to_numpy()
    held = np.isin(lines, quarantine["_source_line"].to_numpy(dtype="int64")) if len(quarantine) else \
        np.zeros(len(frame), dtype=bool)
    quarantine = _append_rules(quarantine, lines[flagged & held], rules[flagged & held], reasons[flagged & held])
    moved = np.flatnonzero(flagged & ~held)
    if not len(moved):
        return curated, quarantine, 0
    out = parsed.raw_rows(moved)
    for col in LINEAGE_COLUMNS:
        out[col] = take_rows(frame[col], moved).to_numpy()
    out["_rules"], out["_reasons"] = rules[moved].tolist(), reasons[moved].tolist()
    quarantine = pd.concat([quarantine, out], ignore_index=True) if len(quarantine) else out
    quarantine = quarantine.sort_values("_source_line", kind="stable", ignore_index=True)
    keep = ~np.isin(curated["_source_line"].to_numpy(dtype="int64"), lines[moved])
    curated = curated[keep].reset_index(drop=True)
    result.rows_passed -= len(moved)
    result.rows_quarantined += len(moved)
    result.sample_keys = (result.sample_keys + [_key_text(frame, contract, i) for i in moved])[:5]
    return curated, quarantine, len(moved)


def _append_rules(quarantine: pd.DataFrame, lines: np.ndarray, rules: np.ndarray, reasons: np.ndarray) -> pd.DataFrame:
    """Rows already quarantined that also break a partition rule carry it after their other rules."""
    if not len(lines):
        return quarantine
    at = pd.Index(quarantine["_source_line"].to_numpy(dtype="int64")).get_indexer(lines)
    out = quarantine.copy()
    for column, extra, glue in (("_rules", rules, ";"), ("_reasons", reasons, " | ")):
        values = out[column].to_numpy(dtype=object).copy()
        values[at] = values[at] + glue + extra
        out[column] = values
    return out


def _key_text(frame: pd.DataFrame, contract: Contract, row: int) -> str:
    cols = list(contract.primary_key) or contract.column_names[:2]
    return "/".join(str(frame[c].iloc[row]) for c in cols)
