"""The Great Expectations side of a contract: the suite built from it, and GX's verdict on an extract.

The contract is turned into an expectation suite at run time (never a committed suite). GX gives the
verdict of the row-level value rules, run on each column's distinct values (the same verdict as on every
row, at a fraction of the cost), and of the primary key, run on one integer code per row;
:mod:`include.contracts.validate` checks that the vectorised row split agrees with it.
"""

from __future__ import annotations

import os

import numpy as np
import pandas as pd

from include.contracts.contract import Contract

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


def verdict_frame(frame: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """Each column's distinct values (nulls included), cycled to a common length.

    Not-null, range, set, pattern and length expectations look at one value at a time, so GX reaches the
    same verdict on this frame as on the extract, in a fraction of the time on large extracts.

    Args:
        frame: the typed extract.
        columns: the columns to keep.

    Returns:
        A frame as long as the column with the most distinct values.
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
    code per row (:func:`include.contracts.row_rules.key_codes`), with ``ExpectColumnValuesToBeUnique``.
    References to master data are listed last with no GX verdict (None): they are enforced by the
    vectorised join alone.

    Args:
        frame: the typed extract.
        contract: its contract.
        refs: master data values by referenced ``(contract, column)``.
        keys: the primary key's code per row, or None when the contract has no primary key.

    Returns:
        ``(rules, verdict)``: rules as in :func:`build_suite`, and success by rule index.

    Raises:
        RuntimeError: when GX does not return one result per expectation.
    """
    import great_expectations as gx

    suite, rules = build_suite(contract, refs, with_primary_key=False, with_references=False)
    validation = run_gx(verdict_frame(frame, contract.column_names), suite, contract.id)
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
        key_validation = run_gx(pd.DataFrame({"_key": narrow}), key_suite, f"{contract.id}-key")
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


def run_gx(frame: pd.DataFrame, suite, name: str, result_format: str = "BOOLEAN_ONLY"):
    """Validate a frame with a suite in the process's GX context.

    Args:
        frame: the rows to validate.
        suite: the expectation suite.
        name: prefix of the data source, asset and batch names (made unique, then deleted).
        result_format: GX result format; ``BOOLEAN_ONLY`` gives the verdict alone.

    Returns:
        GX's validation result.
    """
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
