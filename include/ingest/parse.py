"""Read one landing extract and type it by its contract, keeping every row's file and line.

Parsing is part of the contract: a value that does not parse as its logical type does not fail the
file, it marks that row with a ``type:<column>`` breach, and the row is quarantined with the value it
had. Missing or extra columns are reported as schema drift.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import fsspec
import numpy as np
import pandas as pd

from include.contracts.contract import Contract

log = logging.getLogger(__name__)

LINEAGE_COLUMNS = ["_ds", "_source_file", "_source_line"]


class ExtractUnreadable(ValueError):
    """The file cannot be read at all (encoding, delimiter, truncation); names the file."""


@dataclass
class ParsedExtract:
    """A typed extract plus what parsing found wrong.

    Attributes:
        frame: typed columns in contract order, plus lineage columns ``_ds``, ``_source_file``,
            ``_source_line`` (1-based line in the file; for CSV the header is line 1).
        raw: the same rows as delivered (strings), for quarantine.
        row_breaches: per row index, list of ``(rule, reason)`` found while typing.
        missing_columns: contract columns absent from the file.
        extra_columns: file columns the contract does not know.
    """

    frame: pd.DataFrame
    raw: pd.DataFrame
    row_breaches: dict[int, list[tuple[str, str]]] = field(default_factory=dict)
    missing_columns: list[str] = field(default_factory=list)
    extra_columns: list[str] = field(default_factory=list)


def landing_file(root: str, contract: Contract, ds: str) -> str:
    """Path where a contract's extract for a logical date lands."""
    return f"{root}/landing/{contract.source}/ds={ds}/{contract.file_name}"


def file_exists(path: str) -> bool:
    fs, _, paths = fsspec.get_fs_token_paths(path)
    return fs.exists(paths[0])


def _read_raw(contract: Contract, path: str) -> tuple[pd.DataFrame, int]:
    """Read as delivered; return the frame and the line number of the first data row."""
    try:
        if contract.file_format == "csv":
            with fsspec.open(path, "r", encoding="utf-8", newline="") as fh:
                frame = pd.read_csv(fh, dtype=str, keep_default_na=False, na_values=[""])
            return frame, 2
        if contract.file_format == "jsonl":
            with fsspec.open(path, "r", encoding="utf-8") as fh:
                frame = pd.read_json(fh, lines=True, dtype=False, convert_dates=False)
            if frame.empty and len(frame.columns) == 0:
                # JSON lines carry no header: an empty file is a valid delivery of zero records.
                frame = pd.DataFrame({c: pd.Series(dtype="string") for c in contract.column_names})
            return frame, 1
        with fsspec.open(path, "rb") as fh:
            frame = pd.read_parquet(fh)
        return frame, 1
    except pd.errors.EmptyDataError as exc:
        raise ExtractUnreadable(f"{path}: file is empty (no header)") from exc
    except (UnicodeDecodeError, ValueError, pd.errors.ParserError, OSError) as exc:
        raise ExtractUnreadable(f"{path}: cannot be read as {contract.file_format}: {exc}") from exc


def _as_text(series: pd.Series) -> pd.Series:
    out = series.astype("string")
    return out.mask(out.str.strip() == "")


def _type_column(values: pd.Series, logical_type: str) -> tuple[pd.Series, np.ndarray]:
    """Return the typed column and a mask of values that were present but did not parse."""
    present = values.notna().to_numpy()
    if logical_type == "string":
        return _as_text(values), np.zeros(len(values), dtype=bool)
    if logical_type in ("integer", "number"):
        numeric = pd.to_numeric(values, errors="coerce").astype("float64")
        bad = present & numeric.isna().to_numpy()
        if logical_type == "integer":
            frac = np.isfinite(numeric.to_numpy()) & (np.mod(numeric.fillna(0).to_numpy(), 1) != 0)
            bad |= frac
            numeric = numeric.mask(pd.Series(frac, index=values.index))
            return numeric.astype("Int64"), bad
        return numeric, bad
    if logical_type == "date":
        parsed = pd.to_datetime(values.astype("string"), format="%Y-%m-%d", errors="coerce")
        return parsed, present & parsed.isna().to_numpy()
    if logical_type == "timestamp":
        parsed = pd.to_datetime(values.astype("string"), format="ISO8601", errors="coerce")
        return parsed, present & parsed.isna().to_numpy()
    if logical_type == "boolean":
        mapped = values.astype("string").str.lower().map(
            {"true": True, "false": False, "1": True, "0": False, "t": True, "f": False}
        )
        return mapped.astype("boolean"), present & mapped.isna().to_numpy()
    raise ValueError(f"unknown logical type {logical_type!r}")


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


def parse_extracts(contract: Contract, files: list[tuple[str, str]]) -> ParsedExtract:
    """Read several deliveries of one extract (e.g. a history load) and type them together.

    Typing once over the concatenated rows is what keeps a year of daily files fast.

    Raises:
        ExtractUnreadable: naming the first file that cannot be read at all.
    """
    raws, lineage = [], []
    for path, ds in files:
        raw, first_line = _read_raw(contract, path)
        raws.append(raw)
        lineage.append(pd.DataFrame({
            "_ds": pd.Timestamp(ds), "_source_file": path,
            "_source_line": np.arange(len(raw), dtype="int64") + first_line,
        }))
    raw = pd.concat(raws, ignore_index=True) if len(raws) > 1 else raws[0].reset_index(drop=True)
    lineage_frame = pd.concat(lineage, ignore_index=True) if len(lineage) > 1 else lineage[0]
    missing = [c for c in contract.column_names if c not in raw.columns]
    extra = [c for c in raw.columns if c not in contract.column_names]
    frame = pd.DataFrame(index=raw.index)
    breaches: dict[int, list[tuple[str, str]]] = {}
    for col in contract.columns:
        if col.name in missing:
            continue
        source = raw[col.name]
        if contract.file_format == "csv":
            source = source.mask(source.astype("string").str.strip() == "")
        typed, bad = _type_column(source, col.type)
        frame[col.name] = typed
        for idx in np.flatnonzero(bad):
            value = str(source.iloc[idx])[:80]
            breaches.setdefault(int(idx), []).append(
                (f"type:{col.name}", f"{col.name}={value!r} is not a valid {col.type}")
            )
    for col in LINEAGE_COLUMNS:
        frame[col] = lineage_frame[col].to_numpy()
    if extra:
        log.warning("%s: columns not in contract %s v%s: %s", files[0][0], contract.id, contract.version, extra)
    return ParsedExtract(frame=frame, raw=raw, row_breaches=breaches, missing_columns=missing,
                         extra_columns=extra)
