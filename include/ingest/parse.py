"""Read one landing extract and type it by its contract, keeping every row's file and line.

Parsing is part of the contract. A file that cannot be read as a whole (empty, wrong encoding, wrong
delimiter, a header that is not the contract's, a truncated last line) raises :class:`ExtractUnreadable`
with ``file:line:column``. A single line with the wrong number of fields is kept as a row and flagged
``parse:fields``; a value that does not parse as its logical type marks that row with a ``type:<column>``
breach. Flagged rows are quarantined with the values they had, never dropped. Missing or extra columns
are reported as schema drift, and a column whose values mostly fail to parse (or whose Parquet type
changed) is reported as retyped.

The hot path is vectorised: CSV is read by Arrow's multithreaded reader as strings, line structure is
checked with numpy over the raw bytes, and every non-string column is dictionary-encoded by Arrow and typed
once per distinct value. The delivered strings are kept in that encoded form (a small integer code per row)
and turned back into strings only for the rows that are quarantined.
"""

from __future__ import annotations

import csv
import io
import logging

import fsspec
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from include.contracts.contract import Contract
from include.contracts.frames import ARROW_STRING, ParsedExtract, repeated_strings
from include.storage import release_memory

log = logging.getLogger(__name__)

#: Delimiters a CSV export is commonly switched to by mistake.
_OTHER_DELIMITERS = (";", "\t", "|")
#: Share of a column's delivered values that must fail to parse before the column counts as retyped.
RETYPED_SHARE = 0.5
_TO_PANDAS = {pa.string(): ARROW_STRING, pa.large_string(): ARROW_STRING}.get
#: Pool of the CSV reader's buffers. The reader allocates from its worker threads, and mimalloc (Arrow's
#: default) keeps what a worker allocated until that thread runs again: the file's strings would stay
#: resident long after they were typed. The system allocator returns them when they are freed.
_READ_POOL = pa.system_memory_pool()
#: Rows from which parsing hands freed memory back to the operating system column by column.
_RELEASE_ROWS = 100_000
#: A decimal number as CSV exports write it (what ``float()`` reads, without inf and nan).
_NUMBER = r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$"


class ExtractUnreadable(ValueError):
    """The file cannot be read at all; the message starts with ``file:line:column`` where known.

    Attributes:
        kind: short name of the problem (``empty``, ``encoding``, ``delimiter``, ``header``,
            ``truncated``, ``format``), recorded as the ``parse:<kind>`` breach.
    """

    def __init__(self, message: str, kind: str = "unreadable"):
        super().__init__(message)
        self.kind = kind


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


def _line_col(data: bytes, offset: int) -> tuple[int, int]:
    """1-based line and column of a byte offset."""
    line_start = data.rfind(b"\n", 0, offset) + 1
    return data.count(b"\n", 0, offset) + 1, offset - line_start + 1


def _check_encoding(data: bytes, encoding: str, path: str) -> None:
    if encoding.lower().replace("_", "-") in ("utf-8", "utf8") and data.isascii():
        return  # the common case, checked without decoding a copy of the file
    try:
        data.decode(encoding)
    except UnicodeDecodeError as exc:
        line, col = _line_col(data, exc.start)
        raise ExtractUnreadable(
            f"{path}:{line}:{col}: not valid {encoding}: byte 0x{data[exc.start]:02x} cannot be decoded "
            "(was the file exported as latin-1 or cp1252?)", "encoding") from exc


def _header(data: bytes, contract: Contract, path: str) -> list[str]:
    end = data.find(b"\n")
    first = (data if end < 0 else data[:end]).rstrip(b"\r").decode(contract.encoding, errors="replace")
    header = next(csv.reader([first], delimiter=contract.delimiter))
    if len(header) == 1:
        for other in _OTHER_DELIMITERS:
            if other != contract.delimiter and other in first:
                raise ExtractUnreadable(
                    f"{path}:1:{first.index(other) + 1}: wrong delimiter: the header is separated by {other!r}, "
                    f"the contract expects {contract.delimiter!r}", "delimiter")
    if not set(header) & set(contract.column_names):
        raise ExtractUnreadable(
            f"{path}:1:1: header does not match the contract: expected {','.join(contract.column_names)}, "
            f"found {','.join(h[:40] for h in header[:10])}", "header")
    return header


def _line_structure(data: bytes, contract: Contract, n_fields: int, path: str):
    """Find data lines whose field count differs from the header's, vectorised over the bytes.

    Returns:
        ``(starts, ends, bad)``: byte offsets of every data line and a mask of the malformed ones,
        or None when the file quotes values (then Arrow's reader is trusted with the structure).

    Raises:
        ExtractUnreadable: when the last line is cut short and the file does not end with a newline,
            the signature of a transfer that stopped half way.
    """
    header_end = data.find(b"\n")
    if data.find(b'"', header_end if header_end > 0 else 0) >= 0:
        return None
    buf = np.frombuffer(data, dtype=np.uint8)
    newlines = np.flatnonzero(buf == 10)
    end = len(data)
    # Trailing blank lines are not rows.
    while end and data[end - 1:end] in (b"\n", b"\r"):
        end -= 1
    starts = np.concatenate([[0], newlines + 1])
    starts = starts[starts < end]
    ends = np.concatenate([newlines, [len(data)]])[: len(starts)]
    ends = np.minimum(ends, end)
    # Delimiters per line from their positions: two binary searches instead of a pass per line.
    delims = np.flatnonzero(buf == ord(contract.delimiter))
    counts = np.searchsorted(delims, ends) - np.searchsorted(delims, starts)
    del delims
    bad = counts != n_fields - 1
    bad[0] = False  # the header
    last = len(starts) - 1
    truncated = data[-1:] not in (b"\n", b"\r") and last > 0 and bad[last] and counts[last] < n_fields - 1
    if truncated:
        line_text = data[starts[last]:ends[last]]
        raise ExtractUnreadable(
            f"{path}:{last + 1}:{len(line_text) + 1}: truncated last line: {counts[last] + 1} of {n_fields} "
            "fields and no newline at the end of the file (was the transfer cut?)", "truncated")
    return starts, ends, bad


def _content_end(data: bytes) -> int:
    end = len(data)
    while end and data[end - 1:end] in (b"\n", b"\r"):
        end -= 1
    return end


def _arrow_csv(data, contract: Contract, header: list[str], invalid_row_handler=None) -> pa.Table:
    """Read CSV bytes, or an open binary file, as strings."""
    return pacsv.read_csv(
        io.BytesIO(data) if isinstance(data, bytes) else data,
        read_options=pacsv.ReadOptions(encoding=contract.encoding, use_threads=True),
        parse_options=pacsv.ParseOptions(delimiter=contract.delimiter, newlines_in_values=True,
                                         invalid_row_handler=invalid_row_handler),
        convert_options=pacsv.ConvertOptions(
            column_types={name: pa.large_string() for name in header}, strings_can_be_null=True,
            null_values=[""], quoted_strings_can_be_null=True),
        memory_pool=_READ_POOL,
    )


def _simple_layout(data: bytes, contract: Contract, header: list[str], path: str) -> bool:
    """Whether the file is the common case: no quotes, no blank lines, a complete last line.

    Raises:
        ExtractUnreadable: when the last line is cut short and the file does not end with a newline.
    """
    end = _content_end(data)
    header_end = data.find(b"\n")
    if data.find(b'"', max(header_end, 0)) >= 0 or data.find(b"\n\n", 0, end) >= 0 \
            or data.find(b"\n\r\n", 0, end) >= 0:
        return False
    if end == len(data):
        # No newline at the end: the last line must still be complete.
        last_start = data.rfind(b"\n", 0, end) + 1
        found = data.count(contract.delimiter.encode(), last_start, end) + 1
        if last_start and found < len(header):
            line = data.count(b"\n", 0, end) + 1
            raise ExtractUnreadable(
                f"{path}:{line}:{end - last_start + 1}: truncated last line: {found} of "
                f"{len(header)} fields and no newline at the end of the file (was the transfer cut?)", "truncated")
    return True


def _read_simple(contract: Contract, header: list[str], path: str):
    """The common case in one Arrow pass, streamed from the file: every line with the header's fields.

    Returns:
        ``(raw, lines, {})``, or None when the file needs the line-by-line structure check.
    """
    invalid: list = []

    def skip(row) -> str:
        invalid.append(row)
        return "skip"

    try:
        with fsspec.open(path, "rb") as fh:
            table = _arrow_csv(fh, contract, header, skip)
    except (pa.ArrowInvalid, UnicodeDecodeError):
        return None
    if invalid:
        return None
    raw = table.to_pandas(types_mapper=_TO_PANDAS)
    return raw, np.arange(2, len(raw) + 2, dtype=np.int64), {}


def _read_csv(contract: Contract, path: str) -> tuple[pd.DataFrame, np.ndarray, dict[int, str]]:
    """Read a CSV as strings.

    Returns:
        ``(raw, lines, structure_errors)``: the rows, the 1-based line of each, and the reason of each row
        whose line had the wrong number of fields.
    """
    with fsspec.open(path, "rb") as fh:
        data = fh.read()
    if not data or data.isspace():  # isspace stops at the first printable byte; strip() would copy the file
        raise ExtractUnreadable(f"{path}:1:1: file is empty (no header)", "empty")
    _check_encoding(data, contract.encoding, path)
    header = _header(data, contract, path)
    if _simple_layout(data, contract, header, path):
        # Arrow reads the file again in blocks, so the bytes and the parsed strings are not alive together.
        del data
        fast = _read_simple(contract, header, path)
        if fast is not None:
            return fast
        with fsspec.open(path, "rb") as fh:
            data = fh.read()
    structure = _line_structure(data, contract, len(header), path)
    errors: dict[int, str] = {}
    malformed: list[tuple[int, list[str]]] = []
    if structure is not None:
        starts, ends, bad = structure
        lines = np.arange(1, len(starts) + 1, dtype=np.int64)
        if bad.any():
            # Rare: cut the malformed lines out for Arrow and keep them as rows of their own.
            keep = np.flatnonzero(~bad)
            pieces = [data[starts[i]:ends[i]] for i in keep]
            for i in np.flatnonzero(bad).tolist():
                text = data[starts[i]:ends[i]].decode(contract.encoding, errors="replace").rstrip("\r")
                malformed.append((i + 1, text.split(contract.delimiter) if text else []))
            data = b"\n".join(pieces) + b"\n"
            lines = lines[keep]
        lines = lines[1:]
    else:
        lines = None
    try:
        table = _arrow_csv(data, contract, header)
    except (pa.ArrowInvalid, UnicodeDecodeError) as exc:
        raise ExtractUnreadable(f"{path}: cannot be read as csv: {exc}", "format") from exc
    raw = table.to_pandas(types_mapper=_TO_PANDAS)
    del table
    if lines is None:
        lines = _quoted_lines(data, contract, len(raw))
    if malformed:
        extra = pd.DataFrame([(cells + [None] * len(header))[: len(header)] for _, cells in malformed],
                             columns=header).astype(ARROW_STRING)
        raw = pd.concat([raw, extra], ignore_index=True)
        lines = np.concatenate([lines, [n for n, _ in malformed]])
        order = np.argsort(lines, kind="stable")
        raw, lines = raw.iloc[order].reset_index(drop=True), lines[order]
        position = {n: i for i, n in enumerate(lines.tolist())}
        for number, cells in malformed:
            errors[position[number]] = f"line {number}: {len(cells)} fields, the header has {len(header)}"
    return raw, lines, errors


def _quoted_lines(data: bytes, contract: Contract, n_rows: int) -> np.ndarray:
    """First line of each record of a CSV that quotes values (a quoted value may span lines)."""
    reader = csv.reader(io.StringIO(data.decode(contract.encoding)), delimiter=contract.delimiter)
    lines, previous = [], 0
    for i, _ in enumerate(reader):
        if i:
            lines.append(previous + 1)
        previous = reader.line_num
    return np.asarray(lines[:n_rows], dtype=np.int64)


def _read_raw(contract: Contract, path: str) -> tuple[pd.DataFrame, np.ndarray, dict[int, str]]:
    """Read as delivered; return the frame, the line of each row, and rows with a broken structure."""
    if contract.file_format == "csv":
        return _read_csv(contract, path)
    try:
        if contract.file_format == "jsonl":
            with fsspec.open(path, "r", encoding=contract.encoding) as fh:
                frame = pd.read_json(fh, lines=True, dtype=False, convert_dates=False)
            if frame.empty and len(frame.columns) == 0:
                # JSON lines carry no header: an empty file is a valid delivery of zero records.
                frame = pd.DataFrame({c: pd.Series(dtype="string") for c in contract.column_names})
        else:
            with fsspec.open(path, "rb") as fh:
                frame = pd.read_parquet(fh)
    except UnicodeDecodeError as exc:
        raise ExtractUnreadable(f"{path}: not valid {contract.encoding}: {exc}", "encoding") from exc
    except (ValueError, OSError) as exc:
        raise ExtractUnreadable(f"{path}: cannot be read as {contract.file_format}: {exc}", "format") from exc
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


def _type_column(values: pd.Series, logical_type: str) -> tuple[pd.Series, np.ndarray]:
    """Return the typed column and a mask of values that were present but did not parse."""
    present = values.notna().to_numpy()
    if logical_type == "string":
        if values.dtype == ARROW_STRING:
            return values, np.zeros(len(values), dtype=bool)
        out = values.astype("string")
        return out.mask(out.str.strip() == ""), np.zeros(len(values), dtype=bool)
    if logical_type in ("integer", "number"):
        arrow = _arrow(values)
        if arrow is not None:
            try:
                # Fast path: a clean column casts in one Arrow call without creating Python objects.
                cast = pc.cast(arrow, pa.int64() if logical_type == "integer" else pa.float64())
                out = pd.Series(cast.to_numpy(zero_copy_only=False), index=values.index) \
                    if cast.null_count == 0 else pd.Series(cast.to_pandas(), index=values.index)
                if logical_type == "integer":
                    return out.astype("Int64"), np.zeros(len(values), dtype=bool)
                return out.astype("float64"), np.zeros(len(values), dtype=bool)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                pass
            # Some values are not numbers: keep the ones that look like numbers (RE2, vectorised) and cast.
            trimmed = pc.utf8_trim_whitespace(arrow)
            looks = pc.fill_null(pc.match_substring_regex(trimmed, _NUMBER), False)
            cast = pc.cast(pc.if_else(looks, trimmed, None), pa.float64())
            numeric = pd.Series(cast.to_numpy(zero_copy_only=False), index=values.index).astype("float64")
        else:
            numeric = pd.to_numeric(values, errors="coerce")
            numeric = pd.Series(np.asarray(numeric.astype("float64"), dtype="float64"), index=values.index)
        bad = present & numeric.isna().to_numpy()
        if logical_type == "integer":
            frac = np.isfinite(numeric.to_numpy()) & (np.mod(numeric.fillna(0).to_numpy(), 1) != 0)
            bad |= frac
            numeric = numeric.mask(pd.Series(frac, index=values.index))
            return numeric.astype("Int64"), bad
        return numeric, bad
    if logical_type in ("date", "timestamp"):
        if pd.api.types.is_datetime64_any_dtype(values.dtype):
            parsed = pd.to_datetime(values).dt.tz_localize(None) if getattr(values.dt, "tz", None) else \
                pd.to_datetime(values)
            return parsed.astype("datetime64[ns]"), np.zeros(len(values), dtype=bool)
        fmt = "%Y-%m-%d" if logical_type == "date" else "ISO8601"
        parsed = _parse_by_value(values, lambda u: pd.to_datetime(u.astype(str), format=fmt, errors="coerce"))
        return parsed, present & parsed.isna().to_numpy()
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


def fill_missing_columns(contract: Contract, parsed: ParsedExtract) -> ParsedExtract:
    """The extract with each missing contract column delivered empty: typed nulls, and null as delivered.

    What typing the rows together with a delivery that has the column gives them, for a load that parses
    a history in parts and decides schema drift on the whole.

    Args:
        contract: the extract's contract.
        parsed: the parsed extract.

    Returns:
        The same extract (same objects) with no missing columns.
    """
    if not parsed.missing_columns:
        return parsed
    n = len(parsed.frame)
    nulls = repeated_strings([None], [n], ARROW_STRING)
    typed = {col.name: _type_column(nulls, col.type)[0].set_axis(parsed.frame.index)
             for col in contract.columns if col.name in parsed.missing_columns}
    frame = parsed.frame
    order = [c for c in contract.column_names if c in typed or c in frame.columns] + \
        [c for c in frame.columns if c not in contract.column_names]
    parsed.frame = pd.DataFrame({c: typed[c] if c in typed else frame[c] for c in order}, copy=False)
    store = parsed._raw_store  # noqa: SLF001 - the compact store, not a materialised copy
    parsed.raw = pd.DataFrame({**{c: store[c] for c in store.columns},
                               **{c: nulls.set_axis(store.index) for c in typed}}, copy=False)
    parsed.missing_columns = []
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
        raw, lines, errors = _read_raw(contract, path)
        raws.append(raw)
        structure.update({offset + k: v for k, v in errors.items()})
        offset += len(raw)
        lineage.append((pd.Timestamp(ds), path, lines))
    raw = pd.concat(raws, ignore_index=True) if len(raws) > 1 else raws[0].reset_index(drop=True)
    del raws
    missing = [c for c in contract.column_names if c not in raw.columns]
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
        if col.name in missing:
            continue
        source = delivered[col.name]
        if contract.file_format == "parquet":
            found = _parquet_retyped(source, col.type)
            if found is not None:
                retyped[col.name] = f"{found}, contract says {col.type}"
        arrow = _arrow(source) if contract.file_format == "csv" else None
        if arrow is not None and len(source) and col.type != "string":
            typed, bad, delivered[col.name], present, first_bad = _type_encoded(arrow, col.type, index)
            del arrow
        else:
            if arrow is not None and len(arrow) and arrow.null_count == len(arrow):
                # A column delivered empty (an optional one): shared blocks of nulls, no offsets per row.
                source = delivered[col.name] = repeated_strings([None], [len(arrow)], ARROW_STRING).set_axis(index)
            elif arrow is not None and arrow.num_chunks > 1:
                # One chunk per kept column: taking rows from many chunks concatenates them every time.
                source = delivered[col.name] = pd.Series(
                    pd.array(arrow.combine_chunks(), dtype=ARROW_STRING), index=index)
            del arrow
            if contract.file_format == "csv":
                source = _blank_to_null(source)
            typed, bad = _type_column(source, col.type)
            present = int(source.notna().sum())
            first_bad = str(source[bad].iloc[0]) if bad.any() else None
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
    return ParsedExtract(frame=frame, raw=raw, type_errors=type_errors, structure_errors=structure,
                         missing_columns=missing, extra_columns=extra, retyped_columns=retyped,
                         column_types={c.name: c.type for c in contract.columns}, type_counts=type_counts)
