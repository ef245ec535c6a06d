"""Read a CSV extract as strings, keeping every row's line.

A file that cannot be read as a whole (wrong encoding, wrong delimiter, a header that is not the
contract's or names a column twice, a truncated last line) raises :class:`ExtractUnreadable` with
``file:line:column``. A single line with the wrong number of fields is kept as a row and flagged
``parse:fields``.

The common case is read by Arrow's multithreaded reader streaming from the file; line structure is checked
with numpy over the raw bytes only when the file is not the common case. A line longer than Arrow's read
block (a value of megabytes) is read with one block the size of the file instead of failing.
"""

from __future__ import annotations

import csv
import io

import fsspec
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv

from include.contracts.contract import Contract
from include.contracts.frames import ARROW_STRING
from include.ingest.encoding import Text
from include.ingest.errors import ExtractUnreadable

#: Delimiters a CSV export is commonly switched to by mistake.
_OTHER_DELIMITERS = (";", "\t", "|")
_TO_PANDAS = {pa.string(): ARROW_STRING, pa.large_string(): ARROW_STRING}.get
#: Pool of the CSV reader's buffers. The reader allocates from its worker threads, and mimalloc (Arrow's
#: default) keeps what a worker allocated until that thread runs again: the file's strings would stay
#: resident long after they were typed. The system allocator returns them when they are freed.
_READ_POOL = pa.system_memory_pool()
#: What Arrow says when a row does not fit in one read block.
_STRADDLING = "straddling"


def _field_limit(size: int) -> None:
    """Let Python's csv reader take a value as long as the file (its default stops at 128 KiB)."""
    if csv.field_size_limit() < size:
        csv.field_size_limit(size)


def read_header(text: Text, contract: Contract, path: str) -> list[str]:
    """The header's column names, checked against the contract.

    Args:
        text: the file's bytes.
        contract: the extract's contract.
        path: the file, for messages.

    Returns:
        The column names in file order.

    Raises:
        ExtractUnreadable: for a wrong delimiter (``delimiter``), a header without any contract column or
            with a column named twice (``header``).
    """
    data = text.data
    end = data.find(b"\n")
    first = (data if end < 0 else data[:end]).rstrip(b"\r").decode(text.encoding, errors="replace")
    _field_limit(len(first) + 1)
    header = next(csv.reader([first], delimiter=contract.delimiter), [])
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
    seen: dict[str, int] = {}
    for index, name in enumerate(header):
        if name in seen:
            column = sum(len(h) + 1 for h in header[:index]) + 1
            raise ExtractUnreadable(
                f"{path}:1:{column}: duplicate column {name[:40]!r} in the header (fields {seen[name] + 1} and "
                f"{index + 1}): which one holds the values is unknown", "header")
        seen[name] = index
    return header


def _content_end(data: bytes) -> int:
    end = len(data)
    while end and data[end - 1:end] in (b"\n", b"\r"):
        end -= 1
    return end


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
    end = _content_end(data)  # trailing blank lines are not rows
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


def _arrow_csv(data, encoding: str, contract: Contract, header: list[str], invalid_row_handler=None,
               block_size: int | None = None) -> pa.Table:
    """Read CSV bytes, or an open binary file, as strings."""
    options = {"block_size": block_size} if block_size else {}
    return pacsv.read_csv(
        io.BytesIO(data) if isinstance(data, bytes) else data,
        read_options=pacsv.ReadOptions(encoding=encoding, use_threads=True, **options),
        parse_options=pacsv.ParseOptions(delimiter=contract.delimiter, newlines_in_values=True,
                                         invalid_row_handler=invalid_row_handler),
        convert_options=pacsv.ConvertOptions(
            column_types={name: pa.large_string() for name in header}, strings_can_be_null=True,
            null_values=[""], quoted_strings_can_be_null=True),
        memory_pool=_READ_POOL,
    )


def _arrow_whole(data: bytes, encoding: str, contract: Contract, header: list[str], path: str) -> pa.Table:
    """Read CSV bytes in memory; a row longer than a read block is read in one block the size of the file."""
    try:
        try:
            return _arrow_csv(data, encoding, contract, header)
        except pa.ArrowInvalid as exc:
            if _STRADDLING not in str(exc):
                raise
            return _arrow_csv(data, encoding, contract, header, block_size=len(data) + 1)
    except (pa.ArrowInvalid, UnicodeDecodeError) as exc:
        raise ExtractUnreadable(f"{path}: cannot be read as csv: {exc}", "format") from exc


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


def _read_simple(source, encoding: str, contract: Contract, header: list[str]):
    """The common case in one Arrow pass: every line with the header's fields.

    Args:
        source: the file's path (streamed from it) or its bytes.

    Returns:
        ``(raw, lines, {})``, or None when the file needs the line-by-line structure check.
    """
    invalid: list = []

    def skip(row) -> str:
        invalid.append(row)
        return "skip"

    try:
        if isinstance(source, bytes):
            table = _arrow_csv(source, encoding, contract, header, skip)
        else:
            with fsspec.open(source, "rb") as fh:
                table = _arrow_csv(fh, encoding, contract, header, skip)
    except (pa.ArrowInvalid, UnicodeDecodeError):
        return None  # e.g. a row longer than a read block: the careful path reads it
    if invalid:
        return None
    raw = table.to_pandas(types_mapper=_TO_PANDAS)
    return raw, np.arange(2, len(raw) + 2, dtype=np.int64), {}


def read_csv(text: Text, contract: Contract, path: str) -> tuple[pd.DataFrame, np.ndarray, dict[int, str]]:
    """Read a CSV as strings.

    Args:
        text: the file's bytes, their encoding decided (:func:`include.ingest.encoding.decode_extract`).
        contract: the extract's contract.
        path: the file.

    Returns:
        ``(raw, lines, structure_errors)``: the rows, the 1-based line of each, and the reason of each row
        whose line had the wrong number of fields.

    Raises:
        ExtractUnreadable: when the file cannot be read as a whole.
    """
    data, encoding = text.data, text.encoding
    header = read_header(text, contract, path)
    if _simple_layout(data, contract, header, path):
        if text.as_delivered:
            # Arrow reads the file again in blocks, so the bytes and the parsed strings are not alive together.
            del data, text
            fast = _read_simple(path, encoding, contract, header)
            if fast is not None:
                return fast
            with fsspec.open(path, "rb") as fh:
                data = fh.read()
        else:
            fast = _read_simple(data, encoding, contract, header)
            if fast is not None:
                return fast
    return _read_structured(data, encoding, contract, header, path)


def _read_structured(data: bytes, encoding: str, contract: Contract, header: list[str],
                     path: str) -> tuple[pd.DataFrame, np.ndarray, dict[int, str]]:
    """The careful path: lines with the wrong number of fields cut out and kept as rows of their own."""
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
                line = data[starts[i]:ends[i]].decode(encoding, errors="replace").rstrip("\r")
                malformed.append((i + 1, line.split(contract.delimiter) if line else []))
            data = b"\n".join(pieces) + b"\n"
            lines = lines[keep]
        lines = lines[1:]
    else:
        lines = None
    table = _arrow_whole(data, encoding, contract, header, path)
    raw = table.to_pandas(types_mapper=_TO_PANDAS)
    del table
    if lines is None:
        lines = _quoted_lines(data, encoding, contract, len(raw), path)
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


def _quoted_lines(data: bytes, encoding: str, contract: Contract, n_rows: int, path: str) -> np.ndarray:
    """First line of each record of a CSV that quotes values (a quoted value may span lines).

    Raises:
        ExtractUnreadable: when Python's reader and Arrow's do not find the same records.
    """
    _field_limit(len(data) + 1)
    reader = csv.reader(io.StringIO(data.decode(encoding)), delimiter=contract.delimiter)
    lines, previous = [], 0
    try:
        for i, row in enumerate(reader):
            if i and row:  # a blank line is no record (Arrow skips it too)
                lines.append(previous + 1)
            previous = reader.line_num
    except csv.Error as exc:
        raise ExtractUnreadable(f"{path}:{reader.line_num}: cannot be read as csv: {exc}", "format") from exc
    if len(lines) != n_rows:
        raise ExtractUnreadable(
            f"{path}: cannot be read as csv: {n_rows} records, but the quoting splits the lines into "
            f"{len(lines)} (a quote left open?)", "format")
    return np.asarray(lines, dtype=np.int64)
