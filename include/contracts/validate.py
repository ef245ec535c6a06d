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
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.compute as pc

from include.contracts.contract import Contract, QualityRule
from include.ingest.parse import LINEAGE_COLUMNS, ParsedExtract, constant_chunks, repeated_strings, take_rows
from include.storage import release_memory

log = logging.getLogger(__name__)

PASSED, WARNED, BLOCKED = "passed", "warned", "blocked"
#: Rows from which a validation hands its intermediates back to the operating system between steps.
_LARGE = 100_000


class ContractViolation(Exception):
    """An extract broke its contract badly enough to block what depends on it.

    Deterministic: retrying cannot fix the data, so tasks raising it run with retries off.
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


def build_suite(contract: Contract, reference_values: dict[tuple[str, str], list[str]], *,
                with_primary_key: bool = True, with_references: bool = True):
    """Turn a contract into a GX expectation suite.

    Args:
        contract: the contract.
        reference_values: allowed values of referenced master columns, keyed by (contract, column);
            a reference whose master data is not given is not checked.
        with_primary_key: add the compound primary key expectation (over the key columns and ``_ds``).
        with_references: add the reference expectations (``ExpectColumnValuesToBeInSet`` over the master
            values).

    Returns:
        ``(suite, rules)`` where ``rules[i]`` names the contract rule behind expectation ``i`` as
        ``(rule_name, column, severity)``; expectation ``i`` carries ``meta["rule_index"] = i``, because
        GX reports results grouped by column, not in the order the suite lists them. The primary key is
        checked per delivery (with ``_ds``): a history load holds many days of a snapshot extract.
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
        if col.references is not None and col.references in reference_values and with_references:
            add(e.ExpectColumnValuesToBeInSet(column=col.name, value_set=reference_values[col.references]),
                f"reference:{col.name}", col.name, col.severity)
        if col.pattern is not None:
            add(e.ExpectColumnValuesToMatchRegex(column=col.name, regex=col.pattern),
                f"pattern:{col.name}", col.name, col.severity)
        if col.max_length is not None:
            add(e.ExpectColumnValueLengthsToBeBetween(column=col.name, max_value=col.max_length),
                f"length:{col.name}", col.name, col.severity)
    if contract.primary_key and with_primary_key:
        add(e.ExpectCompoundColumnsToBeUnique(column_list=[*contract.primary_key, "_ds"]), "primary_key",
            ",".join(contract.primary_key), "error")
    return suite, rules


def column_codes(values: pd.Series) -> tuple[np.ndarray, pd.Index]:
    """Integer code per row and the distinct values; a null gets code -1 (Arrow's encoder when possible)."""
    if isinstance(values.dtype, np.dtype) and len(values):
        raw = values.to_numpy()
        if raw.dtype.kind in "iufmM" and not values.isna().iloc[0] and (raw == raw[0]).all():
            # One value on every row (the delivery date of a daily file): no hashing needed.
            return np.zeros(len(values), dtype=np.int64), pd.Index(raw[:1])
    arrow = getattr(values.array, "_pa_array", None)
    if arrow is not None:
        encoded = pc.dictionary_encode(arrow).combine_chunks()
        codes = encoded.indices.to_numpy(zero_copy_only=False)
        codes = np.where(np.isnan(codes), -1, codes).astype(np.int64) if encoded.indices.null_count else \
            codes.astype(np.int64)
        return codes, pd.Index(encoded.dictionary.to_pylist(), dtype=object)
    codes, uniques = pd.factorize(values, use_na_sentinel=True)
    return codes.astype(np.int64), pd.Index(uniques)


def key_codes(frame: pd.DataFrame, columns: list[str]) -> np.ndarray:
    """One int64 per row that is equal exactly when the rows' values in ``columns`` are (nulls included)."""
    key = np.zeros(len(frame), dtype=np.int64)
    span = 1  # upper bound of the codes in ``key``
    for column in columns:
        codes, uniques = column_codes(frame[column])
        width = len(uniques) + 2
        if span * width >= 2**62:
            # Renumber densely before the combined code could overflow.
            key = pd.factorize(key)[0].astype(np.int64)
            span = int(key.max()) + 1 if len(key) else 1
        key *= width  # in place: no temporaries the size of the extract
        key += codes
        key += 1
        del codes
        span *= width
    return key


def verdict_frame(frame: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """Each column's distinct values (nulls included), cycled to a common length.

    Not-null, range, set, pattern and length expectations look at one value at a time, so GX reaches the
    same verdict on this frame as on the extract, in a fraction of the time on large extracts.
    """
    distinct = {}
    for column in columns:
        values = frame[column]
        if isinstance(values.dtype, pd.Int64Dtype):
            values = values.astype("float64")  # GX checks float ranges vectorised, nullable ints row by row
        distinct[column] = values.unique()
    length = max((len(v) for v in distinct.values()), default=0)
    return pd.DataFrame({
        c: pd.Series(v).iloc[np.arange(length) % len(v)].reset_index(drop=True) for c, v in distinct.items()
    })


def gx_verdict(frame: pd.DataFrame, contract: Contract, refs: dict[tuple[str, str], list[str]],
               keys: np.ndarray | None) -> tuple[list[tuple[str, str, str]], dict[int, bool]]:
    """GX's verdict on every row-level rule of the contract.

    Value rules run on :func:`verdict_frame`; the primary key runs on the full extract, as one integer
    code per row (:func:`key_codes`), with ``ExpectColumnValuesToBeUnique``. References to master data
    are listed last with no GX verdict (None): they are enforced by the vectorised join alone.

    Returns:
        ``(rules, verdict)``: rules as in :func:`build_suite`, and success by rule index.
    """
    import great_expectations as gx

    suite, rules = build_suite(contract, refs, with_primary_key=False, with_references=False)
    validation = _run_gx(verdict_frame(frame, contract.column_names), suite, contract.id)
    if len(validation.results) != len(rules):
        raise RuntimeError(f"{contract.id}: GX returned {len(validation.results)} results for "
                           f"{len(rules)} expectations")
    verdict: dict[int, bool | None] = {
        int(er.expectation_config.meta["rule_index"]): bool(er.success) for er in validation.results}
    if keys is not None:
        key_suite = gx.ExpectationSuite(name=f"{contract.id}-{contract.version}-key")
        key_suite.add_expectation(gx.expectations.ExpectColumnValuesToBeUnique(column="_key"))
        # The same codes in 32 bits when they fit: GX's uniqueness check hashes every row's code.
        narrow = keys.astype(np.int32) if len(keys) and 0 <= keys.min() and keys.max() < 2**31 else keys
        key_validation = _run_gx(pd.DataFrame({"_key": narrow}), key_suite, f"{contract.id}-key")
        del narrow
        verdict[len(rules)] = bool(key_validation.success)
        rules = [*rules, ("primary_key", ",".join(contract.primary_key), "error")]
    for col in contract.columns:
        if col.references is not None and col.references in refs:
            # A join against master data, checked vectorised: GX's set expectation costs seconds per
            # validation for a master of tens of thousands of SKUs, whatever the size of the extract.
            verdict[len(rules)] = None
            rules.append((f"reference:{col.name}", col.name, col.severity))
    return rules, verdict


def _run_gx(frame: pd.DataFrame, suite, name: str, result_format: str = "BOOLEAN_ONLY"):
    import uuid

    context = gx_context()
    # Unique names: one context serves every validation of the process.
    unique = f"{name}-{uuid.uuid4().hex[:8]}"
    source = context.data_sources.add_pandas(unique)
    asset = source.add_dataframe_asset(unique)
    batch = asset.add_batch_definition_whole_dataframe(unique).get_batch(batch_parameters={"dataframe": frame})
    try:
        return batch.validate(suite, result_format={"result_format": result_format})
    finally:
        context.data_sources.delete(unique)


def _isin(values: pd.Series, allowed: list[str] | tuple[str, ...]) -> np.ndarray:
    return values.isin(list(allowed)).to_numpy(dtype=bool, na_value=False)


def rule_mask(frame: pd.DataFrame, contract: Contract, rule: str, column: str,
              reference_values: dict[tuple[str, str], list[str]]) -> np.ndarray:
    """Rows breaking one row-level rule, as GX counts them (vectorised, no per-row Python)."""
    if rule == "primary_key":
        return frame.duplicated(subset=[*contract.primary_key, "_ds"], keep="first").to_numpy()
    values = frame[column]
    present = values.notna().to_numpy()
    kind, _, _ = rule.partition(":")
    col = contract.column(column)
    if kind == "required":
        return ~present
    if kind == "range":
        numbers = values.to_numpy(dtype="float64", na_value=np.nan)
        with np.errstate(invalid="ignore"):
            low = numbers < col.min if col.min is not None else np.zeros(len(values), dtype=bool)
            high = numbers > col.max if col.max is not None else np.zeros(len(values), dtype=bool)
        return present & (low | high)
    if kind == "allowed":
        return present & ~_isin(values, col.allowed_values or ())
    if kind == "reference":
        # Look up each distinct value once, not every row: an extract repeats a few thousand SKUs.
        codes, uniques = column_codes(values)
        known = np.append(uniques.isin(list(reference_values[col.references])), True)  # code -1: null
        return present & ~known[codes]
    text = values if isinstance(values.dtype, pd.StringDtype) else values.astype("string")
    if kind == "pattern":
        if not present.any():
            return present
        matched = text.str.contains(col.pattern, regex=True)
        return present & ~matched.to_numpy(dtype=bool, na_value=True)
    if kind == "length":
        lengths = text.str.len().to_numpy(dtype="float64", na_value=0)
        return present & (lengths > col.max_length)
    raise ValueError(f"unknown rule {rule!r}")


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


def _severity(rule: QualityRule | None, default: str = "error") -> str:
    return rule.severity if rule is not None else default


@dataclass
class _Breaches:
    """Row-level breaches collected rule by rule: masks over the rows, reasons only for flagged rows."""

    n: int
    error_rules: list[tuple[str, np.ndarray, list[str]]] = field(default_factory=list)

    def add(self, rule: str, mask: np.ndarray, reasons: list[str]) -> None:
        self.error_rules.append((rule, mask, reasons))

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
    """
    frame = parsed.frame
    refs = reference_values or {}
    file = str(frame["_source_file"].iloc[0]) if len(frame) else ""
    result = ContractResult(contract.id, contract.version, ds, file, rows_in=len(frame))
    drift = [("schema:missing_columns", parsed.missing_columns, "missing columns"),
             ("schema:retyped_columns", list(parsed.retyped_columns), "retyped columns")]
    drift = [(rule, cols, text) for rule, cols, text in drift if cols]
    if parsed.extra_columns:
        result.breaches["schema:extra_columns"] = len(parsed.extra_columns)
        result.reasons.append(f"schema:extra_columns: extra columns {parsed.extra_columns} ignored (schema drift, "
                              "warning)")
    if drift:
        # A column that is gone or changed type breaks every row: nothing of this delivery is trusted.
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

    n = len(frame)
    breaches = _Breaches(n)
    warned = np.zeros(n, dtype=bool)
    if parsed.structure_errors:
        mask = np.zeros(n, dtype=bool)
        rows = sorted(parsed.structure_errors)
        mask[rows] = True
        breaches.add("parse:fields", mask, [parsed.structure_errors[i] for i in rows])
        result.breaches["parse:fields"] = len(rows)
    type_bad = {}
    for name, mask in parsed.type_errors.items():
        type_bad[name] = mask
        breaches.add(f"type:{name}", mask, parsed.type_reasons(name, mask))
        result.breaches[f"type:{name}"] = int(mask.sum())
    exact = np.zeros(n, dtype=bool)
    conflicting = np.zeros(n, dtype=bool)
    keys = None
    if n:
        columns = [*contract.column_names, "_ds"]
        keys = key_codes(frame, [*contract.primary_key, "_ds"]) if contract.primary_key else None
        if n >= _LARGE:
            release_memory()  # the key columns' codes
        rules, verdict = gx_verdict(frame, contract, refs, keys)
        if n >= _LARGE:
            release_memory(collect=True)  # GX's copies of the keys and distinct values
        for index, (rule, column, severity) in enumerate(rules):
            if rule == "primary_key":
                mask = pd.Series(keys).duplicated(keep="first").to_numpy()
            else:
                mask = rule_mask(frame, contract, rule, column, refs)
            if verdict[index] is False:
                result.gx_failed.append(rule)
            if verdict[index] is not None and verdict[index] == bool(mask.any()):
                raise RuntimeError(f"{contract.id}: GX says {rule} {'passed' if verdict[index] else 'failed'} but "
                                   f"the row split finds {int(mask.sum())} breaking rows")
            if rule.startswith("required:") and column in type_bad:
                # A value that was delivered but did not parse is already a type breach, not a missing one.
                mask = mask & ~type_bad[column]
            if not mask.any():
                continue
            result.breaches[rule] = result.breaches.get(rule, 0) + int(mask.sum())
            rows = np.flatnonzero(mask)
            if rule == "primary_key":
                # A duplicate delivery keeps its first row; the repeats go to quarantine. An exact repeat
                # (the same poll sent twice) loses nothing, a conflicting one means nobody knows which is true.
                repeats = np.flatnonzero(pd.Series(keys).duplicated(keep=False).to_numpy())
                same = np.zeros(n, dtype=bool)
                same[repeats] = frame.iloc[repeats].duplicated(subset=columns, keep="first").to_numpy()
                exact, conflicting = mask & same, mask & ~same
                reasons = _key_reasons(frame, contract, rows)
                reasons = [r + (" (exact repeat of an earlier row)" if exact[i] else "")
                           for r, i in zip(reasons, rows.tolist(), strict=True)]
                breaches.add(rule, mask, reasons)
            elif severity == "error":
                breaches.add(rule, mask, _value_reasons(frame, rule, column, rows))
            else:
                warned |= mask
    del keys
    if n >= _LARGE:
        release_memory()  # the rules' intermediates, before the split copies the good rows
    bad_mask = breaches.bad_mask()
    bad = np.flatnonzero(bad_mask)
    # The few bad rows first: their intermediates are gone before the good rows are copied.
    quarantine = _quarantine(parsed, bad, breaches)
    del breaches
    if n >= _LARGE:
        release_memory()
    curated = _select(frame, ~bad_mask)
    if n >= _LARGE:
        release_memory()
    result.rows_passed = int(n - len(bad))
    result.rows_quarantined = len(bad)
    result.rows_warned = int((warned & ~bad_mask).sum())
    result.sample_keys = [_key_text(frame, contract, i) for i in bad[:5].tolist()]

    fired: list[tuple[str, str]] = []  # (severity, reason) of each extract-level rule that fired
    _extract_rules(contract, frame, ds, history_counts, exact, conflicting, bad_mask, result, fired)
    if any(sev == "error" for sev, _ in fired):
        result.outcome = BLOCKED
    elif fired or len(bad) or warned.any() or parsed.extra_columns:
        result.outcome = WARNED
    return result, curated, quarantine


def _extract_rules(contract: Contract, frame: pd.DataFrame, ds: str, history_counts: list[int] | None,
                   exact: np.ndarray, conflicting: np.ndarray, bad_mask: np.ndarray, result: ContractResult,
                   fired: list[tuple[str, str]]) -> None:
    """Apply the contract's extract-level ``quality`` rules; append what fired to ``fired`` and the result."""
    n = len(frame)

    def fire(rule: str, severity: str, reason: str, count: int = 1) -> None:
        fired.append((severity, reason))
        result.breaches[rule] = count
        result.reasons.append(f"{rule}: {reason} ({severity})")

    row_count = contract.rule("row_count")
    if n < contract.min_rows:
        fire("row_count", _severity(row_count), f"{n} rows, contract expects at least {contract.min_rows}")
    freshness = contract.rule("freshness")
    if freshness is not None and "column" in freshness.params and n:
        column = freshness.params["column"]
        newest = frame[column].max()
        oldest_ok = pd.Timestamp(ds) - pd.Timedelta(days=contract.max_age_days)
        if pd.notna(newest) and pd.Timestamp(newest).normalize() < oldest_ok:
            fire("freshness", freshness.severity,
                 f"newest {column} is {pd.Timestamp(newest).date()}, the file for {ds} must hold "
                 f"{oldest_ok.date()} or later (an earlier file sent again?)")
    volume = contract.rule("volume")
    if volume is not None and history_counts is not None:
        window = [c for c in history_counts if c > 0][-int(volume.params.get("trailing_days", 28)):]
        if len(window) >= int(volume.params.get("min_history", 7)):
            median = float(np.median(window))
            low, high = float(volume.params.get("min_ratio", 0.5)), float(volume.params.get("max_ratio", 2.0))
            ratio = n / median if median else float("inf")
            if not low <= ratio <= high:
                fire("volume", volume.severity,
                     f"{n} rows is {ratio:.2f}x the median of {median:g} over the last {len(window)} delivered "
                     f"days (expected {low:g}x to {high:g}x)", n)
    duplicates = contract.rule("duplicate_key")
    if duplicates is not None:
        if conflicting.any():
            fire("duplicate_key", duplicates.severity,
                 f"{int(conflicting.sum())} rows repeat a primary key with other values", int(conflicting.sum()))
        if exact.any():
            fire("duplicate_key:exact", duplicates.params.get("exact_repeat_severity", "warning"),
                 f"{int(exact.sum())} rows are exact repeats of earlier rows (first kept)", int(exact.sum()))
    # Exact repeats lose no information, so they do not count against the share of bad rows.
    counted = int((bad_mask & ~exact).sum())
    pct = 100.0 * counted / n if n else 0.0
    if pct > contract.max_quarantine_pct:
        share = contract.rule("quarantine_share")
        fire("quarantine_share", _severity(share),
             f"{pct:.1f}% of rows quarantined, above the contract's {contract.max_quarantine_pct:g}%", counted)


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
    """The result recorded when an extract for the date never arrived (freshness)."""
    return ContractResult(
        contract.id, contract.version, ds, path, outcome=BLOCKED,
        breaches={"freshness": 1}, reasons=[f"freshness: no file for {ds} at {path} (error)"],
    )


def unreadable_result(contract: Contract, ds: str, path: str, error: Exception) -> ContractResult:
    """The result recorded when the file cannot be parsed at all (the reason carries file:line:column)."""
    rule = f"parse:{getattr(error, 'kind', 'unreadable')}"
    return ContractResult(
        contract.id, contract.version, ds, path, outcome=BLOCKED,
        breaches={rule: 1}, reasons=[f"{rule}: {error} (error)"],
    )
