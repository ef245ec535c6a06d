"""Read a JSON-lines extract record by record, keeping every record's line.

Each non-blank line must hold one JSON object. A line that is not valid JSON, or holds ``null``, an array,
a string or a number, is kept as a row of its own (its values empty) and flagged with ``parse:record``, so
it is quarantined with its line and why, and the other records go through. A last line that is not valid
JSON and has no newline after it is a cut transfer: the file is rejected, as a CSV cut short is. The
non-standard constants ``NaN`` and ``Infinity`` are kept as the text they are, so typing reports them as
values that are not numbers instead of reading them as floats.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from include.ingest.errors import ExtractUnreadable

#: The rule recorded for a line that is not one JSON object.
RECORD_RULE = "parse:record"
#: Characters of a bad line quoted in its reason.
_QUOTED = 60


def _kind(value) -> str:
    if value is None:
        return "null"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, str):
        return "a string"
    return "a number"


def _keep_constant(name: str) -> str:
    return name  # NaN, Infinity, -Infinity stay text: typing flags them, they never become floats


def read_records(text: str, path: str) -> tuple[pd.DataFrame, np.ndarray, dict[int, str]]:
    """Parse the decoded text of a JSON-lines file.

    Args:
        text: the file's text.
        path: the file, for messages.

    Returns:
        ``(raw, lines, errors)``: one row per non-blank line (columns in order of first appearance), the
        1-based line of each row, and the reason of each row whose line is not one JSON object.

    Raises:
        ExtractUnreadable: (``truncated``) when the last line is cut short.
    """
    lines = text.split("\n")
    last = max((i for i, line in enumerate(lines) if line.strip()), default=-1)
    cut = not text.endswith(("\n", "\r"))
    records: list[dict] = []
    numbers: list[int] = []
    errors: dict[int, str] = {}
    for i, line in enumerate(lines):
        stripped = line.strip()
        if not stripped:
            continue
        try:
            value = json.loads(stripped, parse_constant=_keep_constant)
        except RecursionError:
            why = f"line {i + 1}: the record is nested too deeply to be read"
        except ValueError as exc:  # JSONDecodeError, and integers longer than Python reads
            if i == last and cut:
                raise ExtractUnreadable(
                    f"{path}:{i + 1}:{len(line) + 1}: truncated last line: not valid JSON and no newline at the "
                    "end of the file (was the transfer cut?)", "truncated") from exc
            detail = f"{exc.msg} at column {exc.colno}" if isinstance(exc, json.JSONDecodeError) else str(exc)
            why = f"line {i + 1}: not valid JSON ({detail}): {stripped[:_QUOTED]!r}"
        else:
            why = None if isinstance(value, dict) else \
                f"line {i + 1}: the record is {_kind(value)}, not a JSON object: {stripped[:_QUOTED]!r}"
        if why is not None:
            errors[len(records)] = why
            value = {}
        records.append(value)
        numbers.append(i + 1)
    frame = pd.DataFrame.from_records(records) if records else pd.DataFrame()
    if len(frame.columns) == 0:
        frame = pd.DataFrame(index=pd.RangeIndex(len(records)))
    return frame, np.asarray(numbers, dtype=np.int64), errors
