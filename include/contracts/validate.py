"""Run a data contract with Great Expectations Core and split the extract into curated and quarantine.

The contract is turned into an expectation suite at run time (never a committed suite). Row-level
breaches come from GX's unexpected indexes; extract-level rules (missing file, schema drift, volume,
share of bad rows) decide whether the extract blocks everything downstream of its source.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from include.contracts.contract import Contract
from include.ingest.parse import LINEAGE_COLUMNS, ParsedExtract

log = logging.getLogger(__name__)

PASSED, WARNED, BLOCKED = "passed", "warned", "blocked"


class ContractViolation(Exception):
    """An extract broke its contract badly enough to block what depends on it.

    Deterministic: retrying cannot fix the data, so tasks raising it run with retries off.
    """

    def __init__(self, results: list[ContractResult], all_results: list[ContractResult] | None = None):
        self.results = results
        self.all_results = all_results if all_results is not None else results
        lines = [r.summary() for r in results]
        super().__init__("blocked by data contract: " + " | ".join(lines))


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

    def summary(self) -> str:
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
        return {
            "contract_id": self.contract_id, "contract_version": self.contract_version, "ds": self.ds,
            "file": self.file, "rows_in": self.rows_in, "rows_passed": self.rows_passed,
            "rows_quarantined": self.rows_quarantined, "breaches": dict(self.breaches),
            "outcome": self.outcome, "reasons": list(self.reasons), "sample_keys": list(self.sample_keys),
        }


_CONTEXT = None


def gx_context():
    """One ephemeral GX context per process: suites and batches are built in memory, nothing on disk."""
    global _CONTEXT
    if _CONTEXT is None:
        os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
        import great_expectations as gx

        _CONTEXT = gx.get_context(mode="ephemeral")
        try:
            _CONTEXT.variables.progress_bars = {"globally": False}
        except Exception:  # noqa: BLE001 - cosmetic only; some contexts lack the setting
            pass
    return _CONTEXT


def build_suite(contract: Contract, reference_values: dict[tuple[str, str], list[str]]):
    """Turn a contract into a GX expectation suite.

    Args:
        contract: the contract.
        reference_values: allowed values of referenced master columns, keyed by (contract, column);
            a reference whose master data is not given is not checked.

    Returns:
        ``(suite, rules)`` where ``rules[i]`` names the contract rule behind expectation ``i`` as
        ``(rule_name, column, severity)``; expectation ``i`` carries ``meta["rule_index"] = i``, because
        GX reports results grouped by column, not in the order the suite lists them.
    """
    import great_expectations as gx

    gx_context()
    suite = gx.ExpectationSuite(name=f"{contract.id}-{contract.version}")
    rules: list[tuple[str, str, str]] = []

    def add(expectation, rule: str, column: str, severity: str) -> None:
        expectation.meta = {"rule_index": len(rules)}
        suite.add_expectation(expectation)
        rules.append((rule, column, severity))

    e = gx.expectations
    for col in contract.columns:
        if col.required:
            add(e.ExpectColumnValuesToNotBeNull(column=col.name), f"required:{col.name}", col.name, "error")
        if col.min is not None or col.max is not None:
            add(e.ExpectColumnValuesToBeBetween(column=col.name, min_value=col.min, max_value=col.max),
                f"range:{col.name}", col.name, col.severity)
        if col.allowed_values is not None:
            add(e.ExpectColumnValuesToBeInSet(column=col.name, value_set=list(col.allowed_values)),
                f"allowed:{col.name}", col.name, col.severity)
        if col.references is not None and col.references in reference_values:
            add(e.ExpectColumnValuesToBeInSet(column=col.name, value_set=reference_values[col.references]),
                f"reference:{col.name}", col.name, col.severity)
    if contract.primary_key:
        if len(contract.primary_key) == 1:
            add(e.ExpectColumnValuesToBeUnique(column=contract.primary_key[0]), "primary_key",
                contract.primary_key[0], "error")
        else:
            add(e.ExpectCompoundColumnsToBeUnique(column_list=list(contract.primary_key)), "primary_key",
                ",".join(contract.primary_key), "error")
    return suite, rules


def _run_gx(frame: pd.DataFrame, suite, name: str):
    import uuid

    context = gx_context()
    # Unique names: one context serves every validation of the process.
    unique = f"{name}-{uuid.uuid4().hex[:8]}"
    source = context.data_sources.add_pandas(unique)
    asset = source.add_dataframe_asset(unique)
    batch = asset.add_batch_definition_whole_dataframe(unique).get_batch(batch_parameters={"dataframe": frame})
    try:
        return batch.validate(suite, result_format={"result_format": "COMPLETE"})
    finally:
        context.data_sources.delete(unique)


def _key_text(frame: pd.DataFrame, contract: Contract, idx: int) -> str:
    cols = list(contract.primary_key) or contract.column_names[:2]
    return "/".join(str(frame.at[idx, c]) if c in frame.columns else "?" for c in cols)


def validate_extract(
    contract: Contract,
    parsed: ParsedExtract,
    ds: str,
    reference_values: dict[tuple[str, str], list[str]] | None = None,
) -> tuple[ContractResult, pd.DataFrame, pd.DataFrame]:
    """Validate a parsed extract and split it.

    Args:
        contract: the extract's contract.
        parsed: output of :func:`include.ingest.parse.parse_extract`.
        ds: logical date.
        reference_values: master data values for reference checks.

    Returns:
        ``(result, curated, quarantine)``: curated holds the rows that passed every error rule,
        typed; quarantine holds the other rows as delivered, with ``_rules`` and ``_reasons``.
    """
    frame = parsed.frame
    file = str(frame["_source_file"].iloc[0]) if len(frame) else ""
    result = ContractResult(contract.id, contract.version, ds, file, rows_in=len(frame))
    if parsed.missing_columns:
        result.outcome = BLOCKED
        result.breaches["schema:missing_columns"] = len(parsed.missing_columns)
        result.reasons.append(f"missing columns {parsed.missing_columns} (schema drift)")
        return result, frame.iloc[0:0], _quarantine(parsed, list(range(len(frame))), {
            i: [("schema:missing_columns", f"file lacks {parsed.missing_columns}")] for i in range(len(frame))
        })
    if parsed.extra_columns:
        result.breaches["schema:extra_columns"] = len(parsed.extra_columns)
        result.reasons.append(f"extra columns {parsed.extra_columns} ignored (schema drift)")

    row_breaches: dict[int, list[tuple[str, str]]] = {k: list(v) for k, v in parsed.row_breaches.items()}
    for rule, _ in (b for bs in parsed.row_breaches.values() for b in bs):
        result.breaches[rule] = result.breaches.get(rule, 0) + 1
    warned_rows: set[int] = set()
    if len(frame):
        suite, rules = build_suite(contract, reference_values or {})
        validation = _run_gx(frame[contract.column_names], suite, contract.id)
        if len(validation.results) != len(rules):
            raise RuntimeError(f"{contract.id}: GX returned {len(validation.results)} results for "
                               f"{len(rules)} expectations")
        for er in validation.results:
            rule, column, severity = rules[int(er.expectation_config.meta["rule_index"])]
            if er.success:
                continue
            indexes = [int(i) for i in (er.result.get("unexpected_index_list") or [])]
            if rule == "primary_key":
                # A duplicate delivery keeps its first row; only the repeats are quarantined. Keys are
                # unique per delivery: a history load validates many days of a snapshot extract at once.
                dup = frame.duplicated(subset=[*contract.primary_key, "_ds"], keep="first").to_numpy()
                indexes = [int(i) for i in np.flatnonzero(dup)]
            elif rule.startswith("required:"):
                # A value that was delivered but did not parse is already a type breach, not a missing one.
                indexes = [i for i in indexes
                           if f"type:{column}" not in (r for r, _ in parsed.row_breaches.get(i, ()))]
            if not indexes:
                continue
            result.breaches[rule] = result.breaches.get(rule, 0) + len(indexes)
            for idx in indexes:
                value = frame.at[idx, column] if column in frame.columns else None
                if isinstance(value, np.generic):
                    value = value.item()  # reasons read units=500, not units=np.int64(500)
                reason = f"{rule} broken by {column}={value!r}"
                if severity == "error":
                    row_breaches.setdefault(idx, []).append((rule, reason))
                else:
                    warned_rows.add(idx)
    bad = sorted(row_breaches)
    good_mask = np.ones(len(frame), dtype=bool)
    good_mask[bad] = False
    curated = frame[good_mask].reset_index(drop=True)
    quarantine = _quarantine(parsed, bad, row_breaches)
    result.rows_passed = int(good_mask.sum())
    result.rows_quarantined = len(bad)
    result.sample_keys = [_key_text(frame, contract, i) for i in bad[:5]]
    pct = 100.0 * len(bad) / len(frame) if len(frame) else 0.0
    if len(frame) < contract.min_rows:
        result.outcome = BLOCKED
        result.reasons.append(f"volume: {len(frame)} rows, contract expects at least {contract.min_rows}")
    elif pct > contract.max_quarantine_pct:
        result.outcome = BLOCKED
        result.reasons.append(
            f"{pct:.1f}% of rows quarantined, above the contract's {contract.max_quarantine_pct:g}%"
        )
    elif bad or warned_rows or parsed.extra_columns:
        result.outcome = WARNED
    return result, curated, quarantine


def _quarantine(parsed: ParsedExtract, rows: list[int], breaches: dict[int, list[tuple[str, str]]]):
    if not rows:
        cols = [*map(str, parsed.raw.columns), *LINEAGE_COLUMNS, "_rules", "_reasons"]
        return pd.DataFrame({c: pd.Series(dtype="string") for c in cols})
    out = parsed.raw.iloc[rows].astype("string").reset_index(drop=True)
    for col in LINEAGE_COLUMNS:
        out[col] = parsed.frame[col].iloc[rows].to_numpy()
    out["_rules"] = [";".join(r for r, _ in breaches[i]) for i in rows]
    out["_reasons"] = [" | ".join(t for _, t in breaches[i]) for i in rows]
    return out


def missing_file_result(contract: Contract, ds: str, path: str) -> ContractResult:
    """The result recorded when an extract for the date never arrived (freshness)."""
    return ContractResult(
        contract.id, contract.version, ds, path, outcome=BLOCKED,
        breaches={"freshness": 1}, reasons=[f"freshness: no file for {ds} at {path}"],
    )


def unreadable_result(contract: Contract, ds: str, path: str, error: Exception) -> ContractResult:
    """The result recorded when the file cannot be parsed at all."""
    return ContractResult(
        contract.id, contract.version, ds, path, outcome=BLOCKED,
        breaches={"parse:unreadable": 1}, reasons=[str(error)],
    )
