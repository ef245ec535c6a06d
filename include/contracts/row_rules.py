"""Row-level rules as vectorised masks: integer codes per value and per key, and the rows each rule breaks.

The masks count breaking rows as GX does (a null breaks only ``required``), without per-row Python:
references to master data are looked up once per distinct value.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow.compute as pc

from include.contracts.contract import Contract


def column_codes(values: pd.Series) -> tuple[np.ndarray, pd.Index]:
    """Integer code per row and the distinct values; a null gets code -1 (Arrow's encoder when possible).

    Args:
        values: one column.

    Returns:
        ``(codes, uniques)``: ``uniques[codes[i]]`` is row ``i``'s value.
    """
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
    """One int64 per row that is equal exactly when the rows' values in ``columns`` are (nulls included).

    Args:
        frame: the rows.
        columns: the key's columns.

    Returns:
        The key code of each row.
    """
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


def _isin(values: pd.Series, allowed: list[str] | tuple[str, ...]) -> np.ndarray:
    return values.isin(list(allowed)).to_numpy(dtype=bool, na_value=False)


def rule_mask(frame: pd.DataFrame, contract: Contract, rule: str, column: str,
              reference_values: dict[tuple[str, str], list[str]]) -> np.ndarray:
    """Rows breaking one row-level rule, as GX counts them (vectorised, no per-row Python).

    Args:
        frame: the typed extract.
        contract: its contract.
        rule: the rule as :func:`include.contracts.expectations.build_suite` names it (``range:units``).
        column: the rule's column.
        reference_values: master data values by referenced ``(contract, column)``.

    Returns:
        A boolean mask of the breaking rows.

    Raises:
        ValueError: for a rule this function does not know.
    """
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
