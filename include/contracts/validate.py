"""Run a data contract with Great Expectations Core and split the extract into curated and quarantine.

The contract is turned into an expectation suite at run time (never a committed suite) and GX gives the
verdict of the row-level value rules, run on each column's distinct values (the same verdict as on every
row, at a fraction of the cost), and of the primary key, run on one integer code per row. The row split
itself is computed with the same rules as vectorised pandas masks, because GX's per-row index lists cost
more than the whole validation on large extracts; the two must agree or the validation fails loudly.
References to master data are a vectorised lookup per distinct value (GX's set expectation costs seconds
for a master of tens of thousands of SKUs). Extract-level rules (freshness, row count,
volume against the trailing median, duplicate keys, schema drift, share of bad rows) then decide, by
their severity, whether the extract passes, warns or blocks everything downstream of its source.

The suite and GX's verdict are in :mod:`include.contracts.expectations`, the row masks in
:mod:`include.contracts.row_rules`, the extract-level rules in :mod:`include.contracts.extract_rules`; this
module puts them together and splits the rows. The row-level half (:func:`validate_rows`) and the verdict on
the whole delivery (:func:`judge_extract`) are also called apart, by a load that validates a long history in
parts and judges it once.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from include.contracts.contract import Contract
from include.contracts.expectations import gx_verdict
from include.contracts.extract_rules import ExtractStats, extract_rules
from include.contracts.frames import (
    LINEAGE_COLUMNS,
    ParsedExtract,
    constant_chunks,
    repeated_strings,
    take_rows,
)
from include.contracts.row_rules import key_codes, rule_mask
from include.storage import release_memory

log = logging.getLogger(__name__)

PASSED, WARNED, BLOCKED = "passed", "warned", "blocked"
#: A missing or blocked extract of a non-critical source whose last good partition stands in for it.
SUBSTITUTED = "substituted"
#: Rows from which a validation hands its intermediates back to the operating system between steps.
_LARGE = 100_000


class ContractViolation(Exception):
    """An extract broke its contract badly enough to block what depends on it.

    Deterministic: retrying cannot fix the data, so the DAG fails its task without a retry (a database
    blip in the same task still retries).
    """

    def __init__(self, results: list[ContractResult], all_results: list[ContractResult] | None = None):
        self.results = results
        self.all_results = all_results if all_results is not None else results
        lines = [r.summary() for r in results]
        super().__init__("blocked by data contract: " + " | ".join(lines)
                         + " (every validation is recorded in ops.contract_runs)")


@dataclass
class ContractResult:
    """What one validation found, as recorded in ``ops.contract_runs``."""

    contract_id: str
    contract_version: str
    ds: str
    file: str
    rows_in: int = 0
    rows_passed: int = 0
    rows_quarantined: int = 0
    breaches: dict[str, int] = field(default_factory=dict)
    outcome: str = PASSED
    reasons: list[str] = field(default_factory=list)
    sample_keys: list[str] = field(default_factory=list)
    quarantine_path: str | None = None
    #: Rows kept in curated although a warning rule flagged them.
    rows_warned: int = 0
    #: Row-level rules whose GX expectation failed (the recorded GX verdict).
    gx_failed: list[str] = field(default_factory=list)
    #: The date whose curated partition stands in for this one (outcome ``substituted``).
    substituted_from: str | None = None

    def summary(self) -> str:
        """One line for logs and error messages: outcome, counts, breaches, reasons, sample keys."""
        text = (f"{self.contract_id} v{self.contract_version} ds={self.ds}: {self.outcome}; "
                f"{self.rows_in} rows in, {self.rows_passed} passed, {self.rows_quarantined} quarantined")
        if self.breaches:
            text += "; breaches " + ", ".join(f"{k}={v}" for k, v in sorted(self.breaches.items()))
        if self.reasons:
            text += "; " + "; ".join(self.reasons)
        if self.sample_keys:
            text += "; sample keys " + ", ".join(self.sample_keys[:5])
        if self.quarantine_path:
            text += f"; quarantined rows at {self.quarantine_path}"
        return text

    def as_record(self) -> dict[str, Any]:
        """The row recorded in ``ops.contract_runs``."""
        return {
            "contract_id": self.contract_id, "contract_version": self.contract_version, "ds": self.ds,
            "file": self.file, "rows_in": self.rows_in, "rows_passed": self.rows_passed,
            "rows_quarantined": self.rows_quarantined, "breaches": dict(self.breaches),
            "outcome": self.outcome, "reasons": list(self.reasons), "sample_keys": list(self.sample_keys),
            "substituted_from": self.substituted_from,
        }


def _key_text(frame: pd.DataFrame, contract: Contract, idx: int) -> str:
    cols = list(contract.primary_key) or contract.column_names[:2]
    return "/".join(str(frame.at[idx, c]) if c in frame.columns else "?" for c in cols)


def _value_reasons(frame: pd.DataFrame, rule: str, column: str, rows: np.ndarray) -> list[str]:
    values = take_rows(frame[column], rows).astype(object).tolist() if column in frame.columns \
        else [None] * len(rows)
    out = []
    for value in values:
        if isinstance(value, np.generic):
            value = value.item()  # reasons read units=500, not units=np.int64(500)
        if value is None or value is pd.NA or (isinstance(value, float) and np.isnan(value)):
            value = pd.NA
        if isinstance(value, str) and len(value) > 80:
            value = value[:80] + "..."
        out.append(f"{rule} broken by {column}={value!r}")
    return out


def _key_reasons(frame: pd.DataFrame, contract: Contract, rows: np.ndarray) -> list[str]:
    if len(contract.primary_key) == 1:
        return _value_reasons(frame, "primary_key", contract.primary_key[0], rows)
    parts = frame[list(contract.primary_key)].iloc[rows].astype(str)
    keys = parts.agg("/".join, axis=1).tolist()
    return [f"primary_key broken by {'/'.join(contract.primary_key)}={key!r}" for key in keys]


@dataclass
class _Breaches:
    """Row-level breaches collected rule by rule: masks over the rows, reasons only for flagged rows."""

    n: int
    error_rules: list[tuple[str, np.ndarray, list[str]]] = field(default_factory=list)

    def add(self, rule: str, mask: np.ndarray, reasons: list[str]) -> None:
        self.error_rules.append((rule, mask, reasons))

    def clear(self) -> None:
        """Drop the masks and reasons (once quarantine is built: they are the size of the extract)."""
        self.error_rules.clear()

    def bad_mask(self) -> np.ndarray:
        out = np.zeros(self.n, dtype=bool)
        for _, mask, _ in self.error_rules:
            out |= mask
        return out

    def columns_for(self, rows: np.ndarray) -> tuple[list[str], list[str]]:
        """``_rules`` and ``_reasons`` texts of the given rows, in rule order."""
        rules = np.full(len(rows), "", dtype=object)
        reasons = np.full(len(rows), "", dtype=object)
        for rule, mask, texts in self.error_rules:
            # Object-array concatenation runs in numpy's loop: most rows break a single rule.
            pos = np.searchsorted(rows, np.flatnonzero(mask))  # rows are increasing
            first = rules[pos] == ""
            rules[pos] = np.where(first, rule, rules[pos] + (";" + rule))
            reasons[pos] = np.where(first, np.asarray(texts, dtype=object),
                                    reasons[pos] + " | " + np.asarray(texts, dtype=object))
        return rules.tolist(), reasons.tolist()


def validate_extract(
    contract: Contract,
    parsed: ParsedExtract,
    ds: str,
    reference_values: dict[tuple[str, str], list[str]] | None = None,
    *,
    history_counts: list[int] | None = None,
) -> tuple[ContractResult, pd.DataFrame, pd.DataFrame]:
    """Validate a parsed extract and split it.

    Schema drift blocks the whole delivery; otherwise parsing breaches and the row-level rules (with GX's
    verdict) sort the rows into curated and quarantine, and the extract-level rules decide the outcome.

    Args:
        contract: the extract's contract.
        parsed: output of :func:`include.ingest.parse.parse_extract`.
        ds: logical date.
        reference_values: master data values for reference checks.
        history_counts: rows delivered on earlier days (oldest first), for the ``volume`` rule; None
            skips it (a history load has no earlier days).

    Returns:
        ``(result, curated, quarantine)``: curated holds the rows that passed every error rule,
        typed; quarantine holds the other rows as delivered, with ``_rules`` and ``_reasons``.

    Raises:
        RuntimeError: when GX's verdict on a rule and the vectorised row split disagree.
    """
    frame = parsed.frame
    file = str(frame["_source_file"].iloc[0]) if len(frame) else ""
    result = ContractResult(contract.id, contract.version, ds, file, rows_in=len(frame))
    note_extra_columns(parsed.extra_columns, result)
    drift = _schema_drift(parsed)
    if drift:
        return _blocked_by_drift(contract, parsed, drift, result)
    curated, quarantine, stats = validate_rows(contract, parsed, reference_values or {}, result)
    judge_extract(contract, stats, ds, history_counts, result, extra_columns=parsed.extra_columns)
    return result, curated, quarantine


def validate_rows(
    contract: Contract,
    parsed: ParsedExtract,
    reference_values: dict[tuple[str, str], list[str]],
    result: ContractResult,
) -> tuple[pd.DataFrame, pd.DataFrame, ExtractStats]:
    """The row-level half of :func:`validate_extract`: parsing breaches and row rules, and the split.

    Counts the rows, their breaches, GX's failed rules and sample keys into ``result``; the extract-level
    rules are left to :func:`judge_extract`, so that a delivery validated in parts is judged once, whole.
    Schema drift is not looked at.

    Args:
        contract: the extract's contract.
        parsed: the rows, parsed.
        reference_values: master data values for reference checks.
        result: the result the row-level counts are added to.

    Returns:
        ``(curated, quarantine, stats)``: the split as :func:`validate_extract` returns it, and what the
        extract-level rules need to know about the rows.

    Raises:
        RuntimeError: when GX's verdict on a rule and the vectorised row split disagree.
    """
    frame = parsed.frame
    breaches = _Breaches(len(frame))
    type_bad = _parse_breaches(parsed, breaches, result)
    broken = np.zeros(len(frame), dtype=bool)
    broken[list(parsed.structure_errors)] = True
    warned, exact, conflicting = _row_rules(contract, frame, reference_values, type_bad, breaches, result, broken)
    if len(frame) >= _LARGE:
        release_memory()  # the rules' intermediates, before the split copies the good rows
    curated, quarantine, bad_mask = _split(contract, parsed, breaches, warned, result)
    stats = ExtractStats.of(contract, frame, warned=warned, exact=exact, conflicting=conflicting,
                            bad=bad_mask)
    return curated, quarantine, stats


def judge_extract(contract: Contract, stats: ExtractStats, ds: str, history_counts: list[int] | None,
                  result: ContractResult, *, extra_columns: list[str]) -> None:
    """Apply the extract-level rules to a delivery's row stats and set the result's outcome.

    Args:
        contract: the extract's contract.
        stats: the rows' stats (:func:`validate_rows`, added up over the parts of a delivery).
        ds: logical date.
        history_counts: rows delivered on earlier days, for the ``volume`` rule; None skips it.
        result: the result holding the row-level counts; fired rules and the outcome are added.
        extra_columns: delivered columns the contract does not know (a warning).
    """
    fired = extract_rules(contract, stats, ds, history_counts, result)
    if any(rule_severity == "error" for rule_severity, _ in fired):
        result.outcome = BLOCKED
    elif fired or result.rows_quarantined or stats.warned or extra_columns:
        result.outcome = WARNED


def note_extra_columns(extra_columns: list[str], result: ContractResult) -> None:
    """Columns the contract does not know are ignored, and recorded as a schema drift warning.

    Args:
        extra_columns: delivered columns the contract does not know.
        result: the result the warning is recorded in.
    """
    if extra_columns:
        result.breaches["schema:extra_columns"] = len(extra_columns)
        result.reasons.append(f"schema:extra_columns: extra columns {extra_columns} ignored (schema drift, "
                              "warning)")


def _schema_drift(parsed: ParsedExtract) -> list[tuple[str, list[str], str]]:
    """``(rule, columns, text)`` of each kind of drift that breaks every row: missing or retyped columns."""
    drift = [("schema:missing_columns", parsed.missing_columns, "missing columns"),
             ("schema:retyped_columns", list(parsed.retyped_columns), "retyped columns")]
    return [(rule, cols, text) for rule, cols, text in drift if cols]


def _blocked_by_drift(contract: Contract, parsed: ParsedExtract, drift: list[tuple[str, list[str], str]],
                      result: ContractResult) -> tuple[ContractResult, pd.DataFrame, pd.DataFrame]:
    """A column that is gone or changed type breaks every row: nothing of this delivery is trusted."""
    frame = parsed.frame
    result.outcome = BLOCKED
    every = np.arange(len(frame))
    texts = []
    for rule, cols, text in drift:
        result.breaches[rule] = len(cols)
        detail = cols if rule == "schema:missing_columns" else \
            "; ".join(f"{c} ({parsed.retyped_columns[c]})" for c in cols)
        result.reasons.append(f"{rule}: {text} {detail} (schema drift, error)")
        texts.append((rule, f"file {'lacks' if rule.endswith('missing_columns') else 'retyped'} {cols}"))
    breaches = _Breaches(len(frame))
    for rule, text in texts:
        breaches.add(rule, np.ones(len(frame), dtype=bool), [text] * len(frame))
    result.rows_quarantined = len(frame)
    result.sample_keys = [_key_text(frame, contract, i) for i in every[:5]]
    return result, frame.iloc[0:0], _quarantine(parsed, every, breaches)


def _parse_breaches(parsed: ParsedExtract, breaches: _Breaches, result: ContractResult) -> dict[str, np.ndarray]:
    """Broken lines (``parse:fields``, ``parse:record``) and values that did not parse; returns the latter by column."""
    n = len(parsed.frame)
    if parsed.structure_errors:
        mask = np.zeros(n, dtype=bool)
        rows = sorted(parsed.structure_errors)
        mask[rows] = True
        breaches.add(parsed.structure_rule, mask, [parsed.structure_errors[i] for i in rows])
        result.breaches[parsed.structure_rule] = len(rows)
    type_bad = {}
    for name, mask in parsed.type_errors.items():
        type_bad[name] = mask
        breaches.add(f"type:{name}", mask, parsed.type_reasons(name, mask))
        result.breaches[f"type:{name}"] = int(mask.sum())
    return type_bad


def _row_rules(contract: Contract, frame: pd.DataFrame, refs: dict[tuple[str, str], list[str]],
               type_bad: dict[str, np.ndarray], breaches: _Breaches,
               result: ContractResult, broken: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Apply every row-level rule: error rules add breaches, warning rules only flag rows.

    Rows whose line is broken (``broken``: the wrong number of fields, not one JSON object) are already
    quarantined for that; the value rules are not applied to what was cut out of them.

    Returns:
        ``(warned, exact, conflicting)``: rows a warning rule flagged, and the repeats of a primary key
        that are exact copies of an earlier row or conflict with it.
    """
    n = len(frame)
    warned = np.zeros(n, dtype=bool)
    exact = np.zeros(n, dtype=bool)
    conflicting = np.zeros(n, dtype=bool)
    if not n:
        return warned, exact, conflicting
    keys = key_codes(frame, [*contract.primary_key, "_ds"]) if contract.primary_key else None
    if n >= _LARGE:
        release_memory()  # the key columns' codes
    rules, verdict = gx_verdict(frame, contract, refs, keys)
    if n >= _LARGE:
        release_memory(collect=True)  # GX's copies of the keys and distinct values
    for index, (rule, column, severity) in enumerate(rules):
        mask = _agreed_mask(contract, frame, refs, keys, rule, column, verdict[index], result)
        if rule.startswith("required:") and column in type_bad:
            # A value that was delivered but did not parse is already a type breach, not a missing one.
            mask = mask & ~type_bad[column]
        mask = mask & ~broken
        if not mask.any():
            continue
        result.breaches[rule] = result.breaches.get(rule, 0) + int(mask.sum())
        if rule == "primary_key":
            exact, conflicting = _key_breaches(contract, frame, keys, mask, breaches)
        elif severity == "error":
            breaches.add(rule, mask, _value_reasons(frame, rule, column, np.flatnonzero(mask)))
        else:
            warned |= mask
    return warned, exact, conflicting


def _agreed_mask(contract: Contract, frame: pd.DataFrame, refs: dict[tuple[str, str], list[str]],
                 keys: np.ndarray | None, rule: str, column: str, verdict: bool | None,
                 result: ContractResult) -> np.ndarray:
    """Rows breaking one rule, checked against GX's verdict on it (None: the rule has no GX verdict).

    Raises:
        RuntimeError: when GX and the vectorised mask disagree on whether any row breaks the rule.
    """
    if rule == "primary_key":
        mask = pd.Series(keys).duplicated(keep="first").to_numpy()
    else:
        mask = rule_mask(frame, contract, rule, column, refs)
    if verdict is False:
        result.gx_failed.append(rule)
    if verdict is not None and verdict == bool(mask.any()):
        raise RuntimeError(f"{contract.id}: GX says {rule} {'passed' if verdict else 'failed'} but "
                           f"the row split finds {int(mask.sum())} breaking rows")
    return mask


def _key_breaches(contract: Contract, frame: pd.DataFrame, keys: np.ndarray, mask: np.ndarray,
                  breaches: _Breaches) -> tuple[np.ndarray, np.ndarray]:
    """Quarantine the repeats of a primary key (``mask``); returns ``(exact, conflicting)`` repeats.

    A duplicate delivery keeps its first row; the repeats go to quarantine. An exact repeat (the same poll
    sent twice) loses nothing, a conflicting one means nobody knows which is true.
    """
    rows = np.flatnonzero(mask)
    repeats = np.flatnonzero(pd.Series(keys).duplicated(keep=False).to_numpy())
    same = np.zeros(len(frame), dtype=bool)
    same[repeats] = frame.iloc[repeats].duplicated(subset=[*contract.column_names, "_ds"], keep="first").to_numpy()
    exact, conflicting = mask & same, mask & ~same
    reasons = _key_reasons(frame, contract, rows)
    reasons = [r + (" (exact repeat of an earlier row)" if exact[i] else "")
               for r, i in zip(reasons, rows.tolist(), strict=True)]
    breaches.add("primary_key", mask, reasons)
    return exact, conflicting


def _split(contract: Contract, parsed: ParsedExtract, breaches: _Breaches, warned: np.ndarray,
           result: ContractResult) -> tuple[pd.DataFrame, pd.DataFrame, np.ndarray]:
    """Split the rows into curated and quarantine and count them in the result.

    ``breaches`` is emptied once quarantine is built, so its masks are gone before the good rows are copied.

    Returns:
        ``(curated, quarantine, bad_mask)``.
    """
    frame = parsed.frame
    n = len(frame)
    bad_mask = breaches.bad_mask()
    bad = np.flatnonzero(bad_mask)
    # The few bad rows first: their intermediates are gone before the good rows are copied.
    quarantine = _quarantine(parsed, bad, breaches)
    breaches.clear()
    if n >= _LARGE:
        release_memory()
    curated = _select(frame, ~bad_mask)
    if n >= _LARGE:
        release_memory()
    result.rows_passed = int(n - len(bad))
    result.rows_quarantined = len(bad)
    result.rows_warned = int((warned & ~bad_mask).sum())
    result.sample_keys = [_key_text(frame, contract, i) for i in bad[:5].tolist()]
    return curated, quarantine, bad_mask


def _select(frame: pd.DataFrame, keep: np.ndarray) -> pd.DataFrame:
    """``frame[keep]`` with a fresh index; columns made of shared blocks stay made of shared blocks.

    The file name (and an optional column delivered empty) is one value per chunk of rows, so the kept
    rows' values are rebuilt per chunk (:func:`repeated_strings`) instead of copied on every kept row.
    """
    if not keep.any() or frame.columns.has_duplicates:
        return frame[keep].reset_index(drop=True)
    rebuilt = {}
    for name in frame.columns:
        runs = constant_chunks(frame[name])
        if runs is not None:
            values, lengths = runs
            starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
            kept = np.add.reduceat(keep, starts, dtype=np.int64)
            rebuilt[name] = repeated_strings(values, kept.tolist(), frame[name].dtype)
    # Column by column with the boolean mask, at the array level: no row indexer and no index is copied
    # (``frame[keep]`` builds both), and only one column's intermediates exist next to the kept copies.
    columns = {name: rebuilt[name] if name in rebuilt else pd.Series(frame[name].array[keep], copy=False)
               for name in frame.columns}
    return pd.DataFrame(columns, copy=False)


def _quarantine(parsed: ParsedExtract, rows: np.ndarray, breaches: _Breaches) -> pd.DataFrame:
    if not len(rows):
        cols = [*parsed.raw_columns, *LINEAGE_COLUMNS, "_rules", "_reasons"]
        return pd.DataFrame({c: pd.Series(dtype="string") for c in cols})
    out = parsed.raw_rows(rows)
    for col in LINEAGE_COLUMNS:
        out[col] = take_rows(parsed.frame[col], rows).to_numpy()
    out["_rules"], out["_reasons"] = breaches.columns_for(rows)
    return out

def missing_file_result(contract: Contract, ds: str, path: str) -> ContractResult:
    """The result recorded when an extract for the date never arrived (freshness).

    Args:
        contract: the extract's contract.
        ds: logical date.
        path: where the file was expected.

    Returns:
        A blocked result.
    """
    return ContractResult(
        contract.id, contract.version, ds, path, outcome=BLOCKED,
        breaches={"freshness": 1}, reasons=[f"freshness: no file for {ds} at {path} (error)"],
    )


def unreadable_result(contract: Contract, ds: str, path: str, error: Exception) -> ContractResult:
    """The result recorded when the file cannot be parsed at all (the reason carries file:line:column).

    Args:
        contract: the extract's contract.
        ds: logical date.
        path: the file.
        error: what parsing raised (its ``kind`` names the ``parse:<kind>`` breach).

    Returns:
        A blocked result.
    """
    rule = f"parse:{getattr(error, 'kind', 'unreadable')}"
    return ContractResult(
        contract.id, contract.version, ds, path, outcome=BLOCKED,
        breaches={rule: 1}, reasons=[f"{rule}: {error} (error)"],
    )
