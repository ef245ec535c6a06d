"""Read one landing extract and type it by its contract, keeping every row's file and line.

Parsing is part of the contract. The file's encoding is decided first (:mod:`include.ingest.encoding`: a
byte order mark names it). A file without content (zero bytes, or blank lines only) is a delivery of zero
rows in every format, left to the contract's ``row_count`` rule. A file that cannot be read as a whole
(wrong encoding, wrong delimiter, a header that is not the contract's or names a column twice, a truncated
last line, a Parquet file that is not Parquet) raises :class:`ExtractUnreadable` with ``file:line:column``;
so does anything unforeseen that reading or typing a file raises, with the traceback logged. A single
broken line is kept as a row and flagged (``parse:fields`` for CSV, see :mod:`include.ingest.csv_file`;
``parse:record`` for JSON lines, see :mod:`include.ingest.jsonl`); a value that does not parse as its
logical type marks that row with a ``type:<column>`` breach. A number that is not finite (``inf``,
``NaN``, beyond the float range), an integer that does not fit in 64 bits and a date outside what a
nanosecond timestamp holds do not parse. Flagged rows are quarantined with the values they had, never
dropped. Missing or extra columns are reported as schema drift, and a column whose values mostly fail to
parse (or whose Parquet type changed) is reported as retyped.

The hot path is vectorised: CSV is read by Arrow's multithreaded reader as strings, and every non-string
column is dictionary-encoded by Arrow and typed once per distinct value. The delivered strings are kept in
that encoded form (a small integer code per row) and turned back into strings only for the rows that are
quarantined.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import fsspec
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from include.contracts.contract import Contract
from include.contracts.frames import ARROW_STRING, FIELDS_RULE, ParsedExtract, repeated_strings
from include.ingest.csv_file import read_csv
from include.ingest.encoding import decode_extract
from include.ingest.errors import ExtractUnreadable
from include.ingest.jsonl import RECORD_RULE, read_records
from include.storage import release_memory

__all__ = ["ExtractUnreadable", "corrections_file", "file_exists", "fill_missing_columns", "landing_file",
           "parse_extract", "parse_extracts", "retyped_by_share"]

log = logging.getLogger(__name__)

#: Share of a column's delivered values that must fail to parse before the column counts as retyped.
RETYPED_SHARE = 0.5
#: Rows from which parsing hands freed memory back to the operating system column by column.
_RELEASE_ROWS = 100_000
#: A decimal number as CSV exports write it (what ``float()`` reads, without inf and nan).
_NUMBER = r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$"
#: An integer that always fits in 64 bits, read exactly instead of through a float.
_DIGITS = r"^-?\d{1,18}$"
#: Integers from here on (in magnitude) do not fit in 64 bits.
_INT_LIMIT = 2.0**63
#: The days a nanosecond datetime holds, rounded inwards.
_FIRST_DAY, _LAST_DAY = np.datetime64("1678-01-01"), np.datetime64("2261-12-31")


def landing_file(root: str, contract: Contract, ds: str) -> str:
    """Path where a contract's extract for a logical date lands.

    Args:
        root: data root.
        contract: the extract's contract.
        ds: logical date.

    Returns:
        ``<root>/landing/<source>/ds=<ds>/<file name>``.
    """
    return f"{root}/landing/{contract.source}/ds={ds}/{contract.file_name}"


def corrections_file(root: str, contract: Contract, ds: str) -> str:
    """Path where a data engineer places corrected rows for a date (see README, "Data contracts").

    Args:
        root: data root.
        contract: the extract's contract.
        ds: logical date.

    Returns:
        ``<root>/landing/<source>/ds=<ds>/corrections/<file name>``.
    """
    return f"{root}/landing/{contract.source}/ds={ds}/corrections/{contract.file_name}"


def file_exists(path: str) -> bool:
    """Whether a file exists, on any filesystem fsspec reads (local, ``zip://``, object stores).

    Args:
        path: the file.

    Returns:
        True when it exists.
    """
    fs, _, paths = fsspec.get_fs_token_paths(path)
    return fs.exists(paths[0])


def _empty_frame(contract: Contract) -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype=ARROW_STRING) for c in contract.column_names})


def _read_bytes(path: str) -> bytes:
    with fsspec.open(path, "rb") as fh:
        return fh.read()


def _read_raw(contract: Contract, path: str) -> tuple[pd.DataFrame, np.ndarray, dict[int, str]]:
    """Read as delivered; return the frame, the line of each row, and rows with a broken structure.

    A file without content (no bytes at all, or only blank lines) is a delivery of zero rows in every
    format: the contract's ``row_count`` rule decides whether that is acceptable.
    """
    if contract.file_format == "parquet":
        return _read_parquet(contract, path)
    data = _read_bytes(path)
    if not data or data.isspace():  # isspace stops at the first printable byte; strip() would copy the file
        return _empty_frame(contract), np.zeros(0, dtype=np.int64), {}
    text = decode_extract(data, contract.encoding, path)
    del data
    if not text.data or text.data.isspace():  # a byte order mark and nothing else
        return _empty_frame(contract), np.zeros(0, dtype=np.int64), {}
    if text.marked is not None:
        log.info("%s: byte order mark of %s, read as such", path, text.marked)
    if contract.file_format == "csv":
        return read_csv(text, contract, path)
    return read_records(text.data.decode(text.encoding), path)


_EMPTY_TYPES = {"string": ARROW_STRING, "integer": "Int64", "number": "float64", "date": "datetime64[ns]",
                "timestamp": "datetime64[ns]", "boolean": "boolean"}


def _read_parquet(contract: Contract, path: str) -> tuple[pd.DataFrame, np.ndarray, dict[int, str]]:
    fs, _, paths = fsspec.get_fs_token_paths(path)
    if fs.size(paths[0]) == 0:
        # No schema to compare: the contract's own types, so that zero rows are not mistaken for drift.
        frame = pd.DataFrame({c.name: pd.Series(dtype=_EMPTY_TYPES[c.type]) for c in contract.columns})
        return frame, np.zeros(0, dtype=np.int64), {}
    try:
        with fsspec.open(path, "rb") as fh:
            names = pq.read_schema(fh).names
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ExtractUnreadable(f"{path}: duplicate columns {twice} in the Parquet schema: which one holds "
                                    "the values is unknown", "header")
        with fsspec.open(path, "rb") as fh:
            frame = pd.read_parquet(fh)
    except (ValueError, OSError, TypeError, pa.ArrowException) as exc:
        if isinstance(exc, ExtractUnreadable):
            raise
        raise ExtractUnreadable(f"{path}: cannot be read as parquet: {exc}", "format") from exc
    return frame, np.arange(1, len(frame) + 1, dtype=np.int64), {}


def _arrow(values: pd.Series) -> pa.ChunkedArray | None:
    """Zero-copy Arrow view of a column read by Arrow, else None."""
    if values.dtype == ARROW_STRING:
        return values.array._pa_array  # noqa: SLF001 - no public zero-copy accessor in pandas 2
    return None


def _blank(arr: pa.ChunkedArray | pa.Array) -> pa.ChunkedArray | pa.Array:
    """Which values are empty or whitespace only (what trimming would leave empty), without a trimmed copy."""
    return pc.or_(pc.equal(pc.binary_length(arr), 0), pc.utf8_is_space(arr))


def _blank_to_null(values: pd.Series) -> pd.Series:
    arr = _arrow(values)
    if arr is not None:
        blank = _blank(arr)
        if not pc.any(blank).as_py():
            return values
        return pd.Series(pd.array(pc.if_else(blank, None, arr), dtype=ARROW_STRING), index=values.index)
    out = values.astype("string")
    return out.mask(out.str.strip() == "")


def _parse_by_value(values: pd.Series, parse) -> pd.Series:
    """Parse each distinct value once: extracts repeat the same few dates on every row."""
    codes, uniques = pd.factorize(values, use_na_sentinel=True)
    parsed = parse(pd.Series(np.asarray(uniques, dtype=object)))
    out = parsed.to_numpy()[codes] if len(uniques) else np.full(len(values), np.datetime64("NaT"), "M8[ns]")
    out = np.where(codes < 0, np.datetime64("NaT"), out).astype("M8[ns]")
    return pd.Series(out, index=values.index)


def _dictionary(arr: pa.ChunkedArray) -> tuple[np.ndarray, pd.Series]:
    """Arrow's dictionary encoding of a string column: a code per row (-1 for null) and the distinct values."""
    encoded = pc.dictionary_encode(arr).combine_chunks()
    indices = encoded.indices
    codes = (indices.fill_null(-1) if indices.null_count else indices).to_numpy(zero_copy_only=False)
    dictionary = pd.Series(pd.array(encoded.dictionary.cast(pa.large_string()), dtype=ARROW_STRING))
    return codes.astype(np.int64, copy=False), dictionary


def _type_encoded(arr: pa.ChunkedArray, logical_type: str, index: pd.Index):
    """Type a delivered CSV column once per distinct value and spread the result over the rows.

    Returns:
        ``(typed, bad, raw, present, first_bad)``: the typed column, the mask of values that did not parse,
        the delivered strings as a categorical (one small code per row), the number of non-blank values
        and the first value that did not parse (None if all did).
    """
    codes, dictionary = _dictionary(arr)
    raw = pd.Series(pd.Categorical.from_codes(codes, categories=pd.Index(dictionary)), index=index)
    cleaned = _blank_to_null(dictionary)
    typed_values, bad_values = _type_column(cleaned, logical_type)
    counts = np.bincount(codes + 1, minlength=len(dictionary) + 1)[1:]
    present = int(counts[cleaned.notna().to_numpy()].sum())
    bad = np.append(bad_values, False)[codes]
    first_bad = None
    if bad_values.any():
        first_bad = str(dictionary.iloc[codes[np.argmax(bad)]])
    typed = pd.Series(typed_values.array.take(codes, allow_fill=True), index=index)
    return typed, bad, raw, present, first_bad


def _bounded_ns(values: pd.Series) -> tuple[pd.Series, np.ndarray]:
    """Datetimes in nanoseconds; values outside 1678..2261 (what nanoseconds hold) become NaT and are flagged.

    Returns:
        ``(typed, out_of_range)``.
    """
    raw = values.to_numpy()
    with np.errstate(invalid="ignore"):
        out = ~np.isnat(raw) & ((raw < _FIRST_DAY) | (raw > _LAST_DAY))
    typed = np.where(out, np.datetime64("NaT"), raw).astype("M8[ns]")
    return pd.Series(typed, index=values.index), out


def _parse_text_datetimes(values: pd.Series, logical_type: str) -> pd.Series:
    """Parse distinct date or timestamp strings; a timestamp with an offset is converted to UTC (naive)."""
    text = values.astype(str)
    if logical_type == "date":
        return _bounded_ns(pd.to_datetime(text, format="%Y-%m-%d", errors="coerce"))[0]
    parsed = pd.to_datetime(text, format="ISO8601", errors="coerce", utc=True)
    return _bounded_ns(parsed.dt.tz_localize(None))[0]


def _type_datetime(values: pd.Series, logical_type: str, present: np.ndarray) -> tuple[pd.Series, np.ndarray]:
    if pd.api.types.is_datetime64_any_dtype(values.dtype):
        # A typed file (Parquet): an aware timestamp is converted to UTC, as a text one with an offset is.
        aware = getattr(values.dt, "tz", None) is not None
        return _bounded_ns(values.dt.tz_convert(None) if aware else values)
    parsed = _parse_by_value(values, lambda u: _parse_text_datetimes(u, logical_type))
    return parsed, present & parsed.isna().to_numpy()


def _type_number(values: pd.Series, logical_type: str, present: np.ndarray) -> tuple[pd.Series, np.ndarray]:
    """Type an integer or number column; a value that is not finite, or not a 64-bit integer, does not parse.

    ``inf``, ``Infinity``, ``nan`` and numbers beyond the float range are flagged as values that are not
    numbers: they would pass every range a contract can state. An integer must fit in 64 bits exactly.
    """
    integer = logical_type == "integer"
    arrow = _arrow(values)
    exact = None  # integers read exactly, where known, and the mask of rows they hold
    if arrow is not None:
        try:
            # Fast path: a clean column casts in one Arrow call without creating Python objects.
            cast = pc.cast(arrow, pa.int64() if integer else pa.float64())
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            cast = None
        if cast is not None:
            out = pd.Series(cast.to_numpy(zero_copy_only=False), index=values.index) \
                if cast.null_count == 0 else pd.Series(cast.to_pandas(), index=values.index)
            if integer:
                return out.astype("Int64"), np.zeros(len(values), dtype=bool)
            numbers = out.to_numpy(dtype="float64", na_value=np.nan)
        else:
            # Some values are not numbers: keep the ones that look like numbers (RE2, vectorised) and cast.
            trimmed = pc.utf8_trim_whitespace(arrow)
            looks = pc.fill_null(pc.match_substring_regex(trimmed, _NUMBER), False)
            cast = pc.cast(pc.if_else(looks, trimmed, None), pa.float64())
            numbers = np.asarray(cast.to_numpy(zero_copy_only=False), dtype="float64")
            if integer:
                digits = pc.fill_null(pc.match_substring_regex(trimmed, _DIGITS), False)
                exact_values = pc.cast(pc.if_else(digits, trimmed, None), pa.int64()).fill_null(0)
                exact = (exact_values.to_numpy(zero_copy_only=False), digits.to_numpy(zero_copy_only=False))
    elif pd.api.types.is_integer_dtype(values.dtype) and integer:
        return _typed_integers(values, present)
    else:
        numbers = _json_numbers(values)
    with np.errstate(invalid="ignore"):
        bad = present & ~np.isfinite(numbers)
        if integer:
            bad |= present & ~bad & ((np.abs(numbers) >= _INT_LIMIT) | (np.mod(numbers, 1) != 0))
    if not integer:
        return pd.Series(np.where(bad, np.nan, numbers), index=values.index), bad
    valid = present & ~bad
    ints = np.where(valid, numbers, 0).astype(np.int64)
    if exact is not None:
        exact_values, digits = exact
        ints = np.where(digits, exact_values, ints)
    return pd.Series(pd.arrays.IntegerArray(ints, ~valid), index=values.index), bad


def _typed_integers(values: pd.Series, present: np.ndarray) -> tuple[pd.Series, np.ndarray]:
    """A typed integer column (Parquet): unsigned values beyond the signed 64-bit range do not parse."""
    bad = np.zeros(len(values), dtype=bool)
    if pd.api.types.is_unsigned_integer_dtype(values.dtype):
        bad = present & (values.fillna(0).to_numpy(dtype=np.uint64) > np.uint64(2**63 - 1))
        values = values.mask(pd.Series(bad, index=values.index), 0)
        return values.astype("Int64").mask(pd.Series(bad, index=values.index)), bad
    return values.astype("Int64"), bad


def _json_numbers(values: pd.Series) -> np.ndarray:
    """Float values of an untyped column (JSON): text that is not a number, booleans, arrays and objects -> NaN."""
    if values.dtype == bool or isinstance(values.dtype, pd.BooleanDtype):
        return np.full(len(values), np.nan)
    if values.dtype == object:
        scalar = np.fromiter((not isinstance(v, bool | list | dict) for v in values), dtype=bool, count=len(values))
        values = values.where(scalar)
    numeric = pd.to_numeric(values, errors="coerce")
    return np.asarray(numeric.astype("float64"), dtype="float64")


def _type_column(values: pd.Series, logical_type: str) -> tuple[pd.Series, np.ndarray]:
    """Return the typed column and a mask of values that were present but did not parse."""
    present = values.notna().to_numpy()
    if logical_type == "string":
        if values.dtype == ARROW_STRING:
            return values, np.zeros(len(values), dtype=bool)
        out = values.astype("string")
        return out.mask(out.str.strip() == ""), np.zeros(len(values), dtype=bool)
    if logical_type in ("integer", "number"):
        return _type_number(values, logical_type, present)
    if logical_type in ("date", "timestamp"):
        return _type_datetime(values, logical_type, present)
    if logical_type == "boolean":
        mapped = values.astype("string").str.lower().map(
            {"true": True, "false": False, "1": True, "0": False, "t": True, "f": False}
        )
        return mapped.astype("boolean"), present & mapped.isna().to_numpy()
    raise ValueError(f"unknown logical type {logical_type!r}")


_PARQUET_KINDS = {"integer": "iu", "number": "iuf", "string": "OSU", "date": "MO", "timestamp": "M", "boolean": "b"}


def _parquet_retyped(values: pd.Series, logical_type: str) -> str | None:
    """The delivered type when a typed file (Parquet) changed a column's type, else None."""
    dtype = values.dtype
    kind = getattr(dtype, "kind", "O")
    if isinstance(dtype, pd.StringDtype | pd.ArrowDtype):
        kind = "O" if pd.api.types.is_string_dtype(dtype) else kind
    if kind not in _PARQUET_KINDS[logical_type]:
        # Name the delivered type in contract terms: pandas spells text 'object' or 'str' by version.
        return "string" if kind == "O" or pd.api.types.is_string_dtype(dtype) else str(dtype)
    if kind == "O" and logical_type in ("date",) and len(values.dropna()):
        sample = values.dropna().iloc[0]
        if isinstance(sample, str):
            return "string"
    return None


def fill_missing_columns(contract: Contract, parsed: ParsedExtract, only: Sequence[str] | None = None
                         ) -> ParsedExtract:
    """The extract with each missing contract column delivered empty: typed nulls, and null as delivered.

    What typing the rows together with a delivery that has the column gives them, for a load that parses
    a history in parts and decides schema drift on the whole, and for an optional column a file leaves out.

    Args:
        contract: the extract's contract.
        parsed: the parsed extract.
        only: fill only these of the missing columns (default: every one).

    Returns:
        The same extract (same objects) with the columns filled no longer missing.
    """
    fill = [c for c in parsed.missing_columns if only is None or c in only]
    if not fill:
        return parsed
    n = len(parsed.frame)
    nulls = repeated_strings([None], [n], ARROW_STRING)
    typed = {col.name: _type_column(nulls, col.type)[0].set_axis(parsed.frame.index)
             for col in contract.columns if col.name in fill}
    frame = parsed.frame
    order = [c for c in contract.column_names if c in typed or c in frame.columns] + \
        [c for c in frame.columns if c not in contract.column_names]
    parsed.frame = pd.DataFrame({c: typed[c] if c in typed else frame[c] for c in order}, copy=False)
    store = parsed._raw_store  # noqa: SLF001 - the compact store, not a materialised copy
    parsed.raw = pd.DataFrame({**{c: store[c] for c in store.columns},
                               **{c: nulls.set_axis(store.index) for c in typed}}, copy=False)
    parsed.missing_columns = [c for c in parsed.missing_columns if c not in typed]
    return parsed


def parse_extract(contract: Contract, path: str, ds: str) -> ParsedExtract:
    """Read and type one extract.

    Args:
        contract: the extract's contract.
        path: file to read.
        ds: logical date the file was delivered for.

    Returns:
        The parsed extract; rows whose values do not parse are kept and flagged, never dropped.

    Raises:
        ExtractUnreadable: when the file cannot be read at all.
    """
    return parse_extracts(contract, [(path, ds)])


def retyped_by_share(bad: int, present: int, first_bad: str | None, logical_type: str) -> str | None:
    """Why a column counts as retyped when most of its delivered values do not parse, else None.

    Args:
        bad: values that did not parse as ``logical_type``.
        present: values delivered (not blank).
        first_bad: the first value that did not parse (None when all did).
        logical_type: the contract's type of the column.

    Returns:
        The reason recorded in ``retyped_columns``, or None below :data:`RETYPED_SHARE`.
    """
    if bad and present >= 2 and bad >= RETYPED_SHARE * present:
        return f"{bad} of {present} values are not a valid {logical_type}, e.g. {first_bad[:40]!r}"
    return None


def _type_delivered(contract: Contract, name: str, logical_type: str, delivered: dict[str, pd.Series],
                    index: pd.Index) -> tuple[pd.Series, np.ndarray, int, str | None]:
    """Type one delivered column; a CSV column typed by value is replaced in ``delivered`` by its encoded form.

    Returns:
        ``(typed, bad, present, first_bad)`` as :func:`_type_encoded` counts them.
    """
    source = delivered[name]
    arrow = _arrow(source) if contract.file_format == "csv" else None
    if arrow is not None and len(source) and logical_type != "string":
        typed, bad, delivered[name], present, first_bad = _type_encoded(arrow, logical_type, index)
        return typed, bad, present, first_bad
    if arrow is not None and len(arrow) and arrow.null_count == len(arrow):
        # A column delivered empty (an optional one): shared blocks of nulls, no offsets per row.
        source = delivered[name] = repeated_strings([None], [len(arrow)], ARROW_STRING).set_axis(index)
    elif arrow is not None and arrow.num_chunks > 1:
        # One chunk per kept column: taking rows from many chunks concatenates them every time.
        source = delivered[name] = pd.Series(pd.array(arrow.combine_chunks(), dtype=ARROW_STRING), index=index)
    del arrow
    if contract.file_format == "csv":
        source = _blank_to_null(source)
    typed, bad = _type_column(source, logical_type)
    present = int(source.notna().sum())
    first_bad = str(source[bad].iloc[0]) if bad.any() else None
    return typed, bad, present, first_bad


#: What reading or typing a file can raise on data nobody foresaw: reported as a file that cannot be read
#: (with the traceback in the log), never as a crash of the run.
_UNEXPECTED = (ValueError, TypeError, OverflowError, KeyError, IndexError, UnicodeError, RecursionError,
               pa.ArrowException)


def _read_guarded(contract: Contract, path: str) -> tuple[pd.DataFrame, np.ndarray, dict[int, str]]:
    """:func:`_read_raw`, with anything unforeseen it raises turned into :class:`ExtractUnreadable`."""
    try:
        raw, lines, errors = _read_raw(contract, path)
    except ExtractUnreadable:
        raise
    except _UNEXPECTED as exc:
        log.exception("%s: cannot be read as %s", path, contract.file_format)
        raise ExtractUnreadable(f"{path}: cannot be read as {contract.file_format}: {type(exc).__name__}: {exc}",
                                "format") from exc
    twice = sorted({str(c) for c in raw.columns[raw.columns.duplicated()]})
    if twice:
        raise ExtractUnreadable(f"{path}: duplicate columns {twice}: which one holds the values is unknown",
                                "header")
    return raw, lines, errors


def parse_extracts(contract: Contract, files: list[tuple[str, str]], *,
                   decide_retyped: bool = True) -> ParsedExtract:
    """Read several deliveries of one extract (e.g. a batch of days of a history load) and type them together.

    Typing once over the concatenated rows is what keeps many small daily files fast.

    Args:
        contract: the extract's contract.
        files: ``(path, ds)`` of each delivery, in order.
        decide_retyped: whether a column most of whose values do not parse is reported as retyped; a
            caller parsing a delivery in parts decides on the parts' ``type_counts`` added up instead.

    Returns:
        One parsed extract; each row's ``_ds``, ``_source_file`` and ``_source_line`` say where it came from.

    Raises:
        ExtractUnreadable: naming the first file that cannot be read at all.
    """
    raws, lineage, structure = [], [], {}
    offset = 0
    for path, ds in files:
        raw, lines, errors = _read_guarded(contract, path)
        raws.append(raw)
        structure.update({offset + k: v for k, v in errors.items()})
        offset += len(raw)
        lineage.append((pd.Timestamp(ds), path, lines))
    raw = pd.concat(raws, ignore_index=True) if len(raws) > 1 else raws[0].reset_index(drop=True)
    del raws
    absent = [c.name for c in contract.columns if c.name not in raw.columns]
    extra = [str(c) for c in raw.columns if c not in contract.column_names]
    index = raw.index
    # The delivered values by column; a column typed by value is replaced by its compact (encoded) form as
    # soon as it is typed, so Arrow's strings of one column at a time are alive, not the whole file's.
    delivered = {c: raw[c] for c in raw.columns}
    del raw
    columns: dict[str, pd.Series] = {}
    type_errors: dict[str, np.ndarray] = {}
    type_counts: dict[str, tuple[int, int, str | None]] = {}
    retyped: dict[str, str] = {}
    for col in contract.columns:
        if col.name in absent:
            continue
        source = delivered[col.name]
        if contract.file_format == "parquet":
            found = _parquet_retyped(source, col.type)
            if found is not None:
                retyped[col.name] = f"{found}, contract says {col.type}"
        try:
            typed, bad, present, first_bad = _type_delivered(contract, col.name, col.type, delivered, index)
        except _UNEXPECTED as exc:
            log.exception("%s: column %s cannot be typed", files[0][0], col.name)
            raise ExtractUnreadable(f"{files[0][0]}: column {col.name!r} cannot be read as {col.type}: "
                                    f"{type(exc).__name__}: {exc}", "format") from exc
        columns[col.name] = typed
        if len(index) >= _RELEASE_ROWS:
            release_memory()  # this column's delivered strings, now encoded (or its chunks, now combined)
        type_counts[col.name] = (int(bad.sum()), present, first_bad)
        if bad.any():
            type_errors[col.name] = bad
            share = retyped_by_share(*type_counts[col.name], col.type) if decide_retyped else None
            if col.name not in retyped and share is not None:
                retyped[col.name] = share
        del source, typed, bad
    raw = pd.DataFrame(delivered, index=index, copy=False)
    del delivered
    # The file name is shared blocks, not a copy per row; a file without rows keeps the column type pandas
    # gives an empty broadcast column.
    shared = all(len(lines) for _, _, lines in lineage)
    stamps = [pd.DataFrame({"_ds": ds, "_source_line": lines} if shared else
                           {"_ds": ds, "_source_file": path, "_source_line": lines}) for ds, path, lines in lineage]
    stamp = pd.concat(stamps, ignore_index=True) if len(stamps) > 1 else stamps[0]
    del stamps
    columns["_ds"] = stamp["_ds"].set_axis(index)
    columns["_source_file"] = repeated_strings([path for _, path, _ in lineage],
                                               [len(lines) for _, _, lines in lineage]).set_axis(index) \
        if shared else pd.Series(stamp["_source_file"].to_numpy(), index=index)
    columns["_source_line"] = stamp["_source_line"].set_axis(index)
    # Without consolidation: stacking same-typed columns into one block would copy them all.
    frame = pd.DataFrame(columns, index=index, copy=False)
    del columns, stamp
    if len(index) >= _RELEASE_ROWS:
        release_memory()  # the file's bytes and Arrow's strings of the typed columns
    if extra:
        log.warning("%s: columns not in contract %s v%s: %s", files[0][0], contract.id, contract.version, extra)
    parsed = ParsedExtract(frame=frame, raw=raw, type_errors=type_errors, structure_errors=structure,
                           structure_rule=RECORD_RULE if contract.file_format == "jsonl" else FIELDS_RULE,
                           missing_columns=absent, extra_columns=extra,
                           retyped_columns=retyped, column_types={c.name: c.type for c in contract.columns},
                           type_counts=type_counts)
    # An optional column the file leaves out is delivered empty; any other missing column is drift.
    return fill_missing_columns(contract, parsed, [c.name for c in contract.columns if c.optional])
