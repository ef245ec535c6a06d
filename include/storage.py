"""Partitioned Parquet reads and writes under the data root, through fsspec.

A partition is a folder ``<zone>/<dataset>/ds=YYYY-MM-DD`` holding one ``part-0.parquet``. Writing a
partition replaces it whole, which is what makes re-runs and backfills idempotent.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import datetime as dt
import gc
import json
import logging
from typing import Any

import fsspec
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from include.config import as_date, partition_path

log = logging.getLogger(__name__)

PART_FILE = "part-0.parquet"
#: Rows converted to Arrow and written at a time: Parquet's default row group, so the file's layout is
#: the same as writing the whole table at once, with only one row group's Arrow copy alive at a time.
_WRITE_ROWS = 1024 * 1024
#: Rows from which a write hands its buffers back to the operating system when it is done.
_RELEASE_ROWS = 100_000
#: Columns unique on every row, for which Parquet's dictionary encoding never pays off: the writer would
#: still build a dictionary of each row group's values (tens of MB for a million line numbers) before
#: falling back to plain encoding.
_NO_DICTIONARY = frozenset({"_source_line"})


def _dictionary_columns(schema: pa.Schema) -> list[str] | bool:
    names = [name for name in schema.names if name not in _NO_DICTIONARY]
    return True if len(names) == len(schema.names) else names


def _load_libc():
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return libc if hasattr(libc, "malloc_trim") else None
    except OSError:  # no C library to load (not Linux): nothing to trim
        return None


_LIBC = _load_libc()


def release_memory(collect: bool = False) -> None:
    """Give freed memory back to the operating system between the stages of a large extract.

    Arrow's pool and glibc's malloc keep freed blocks for reuse (glibc per thread, and the CSV reader and
    pandas allocate from several), so without this the file's strings and the stage's intermediates stay
    resident on top of what the next stage allocates. ``collect`` also collects reference cycles first
    (GX's validation objects hold the frame they validated).
    """
    if collect:
        gc.collect()
    pa.default_memory_pool().release_unused()
    if _LIBC is not None:
        _LIBC.malloc_trim(0)


def _fs(path: str) -> tuple[fsspec.AbstractFileSystem, str]:
    fs, _, paths = fsspec.get_fs_token_paths(path)
    return fs, paths[0]


def write_partition(
    df: pd.DataFrame, zone: str, dataset: str, ds: str | dt.date, root: str | None = None
) -> str:
    """Replace one dataset's partition for a logical date with ``df``.

    Args:
        df: rows to write (may be empty; an empty partition still records that the stage ran).
        zone: data zone (``curated``, ``quarantine``, ``forecasts``, ``reports``).
        dataset: dataset name inside the zone.
        ds: logical date of the partition.
        root: data root; defaults to ``SHELFWISE_DATA_ROOT``.

    Returns:
        The path of the written file.
    """
    folder = partition_path(zone, dataset, ds, root)
    fs, local = _fs(folder)
    if fs.exists(local):
        fs.rm(local, recursive=True)
    fs.makedirs(local, exist_ok=True)
    target = f"{local}/{PART_FILE}"
    frame = df.reset_index(drop=True)
    if len(frame) > _WRITE_ROWS:
        with fs.open(target, "wb") as fh:
            written = _write_sliced(frame, fh)
    else:
        written = False
    if not written:
        table = _to_arrow(frame)
        with fs.open(target, "wb") as fh:
            pq.write_table(table, fh, use_dictionary=_dictionary_columns(table.schema))
        del table
    if len(frame) >= _RELEASE_ROWS:
        release_memory()  # the Arrow copies and the writer's buffers
    log.info("wrote %s/%s ds=%s: %d rows", zone, dataset, as_date(ds), len(df))
    return f"{folder}/{PART_FILE}"


def _unit_us(frame: pd.DataFrame) -> pd.DataFrame:
    """One time unit for every partition, so a range of partitions concatenates cleanly."""
    columns = [col for col in frame.columns if pd.api.types.is_datetime64_any_dtype(frame[col])]
    if not columns:
        return frame
    out = frame.copy(deep=False)
    for col in columns:
        out[col] = out[col].astype("datetime64[us]")
    return out


def _to_arrow(frame: pd.DataFrame) -> pa.Table:
    """A frame as Arrow; columns already held by Arrow are passed through without a copy."""
    return pa.Table.from_pandas(_unit_us(frame), preserve_index=False)


def _write_sliced(frame: pd.DataFrame, fh) -> bool:
    """Write a large frame one row group at a time, converting one slice to Arrow at a time.

    Returns:
        False (the file is to be written again whole) when a later slice infers other column types than
        the first, e.g. an object column empty at the start: then the whole frame decides the schema.
    """
    first = _to_arrow(frame.iloc[:_WRITE_ROWS])
    with pq.ParquetWriter(fh, first.schema, use_dictionary=_dictionary_columns(first.schema)) as writer:
        writer.write_table(first)
        del first
        for start in range(_WRITE_ROWS, len(frame), _WRITE_ROWS):
            table = _to_arrow(frame.iloc[start:start + _WRITE_ROWS])
            if not table.schema.equals(writer.schema, check_metadata=False):
                return False
            writer.write_table(table)
    return True


def partition_exists(zone: str, dataset: str, ds: str | dt.date, root: str | None = None) -> bool:
    """Whether a partition was written for that date."""
    fs, local = _fs(partition_path(zone, dataset, ds, root))
    return fs.exists(f"{local}/{PART_FILE}")


def read_partition(
    zone: str, dataset: str, ds: str | dt.date, root: str | None = None, *, missing_ok: bool = False,
    columns: list[str] | None = None,
) -> pd.DataFrame:
    """Read one partition (only ``columns`` when given).

    Raises:
        FileNotFoundError: naming the partition when it is absent and ``missing_ok`` is false.
    """
    folder = partition_path(zone, dataset, ds, root)
    fs, local = _fs(folder)
    target = f"{local}/{PART_FILE}"
    if not fs.exists(target):
        if missing_ok:
            return pd.DataFrame()
        raise FileNotFoundError(f"partition {folder} does not exist: has the stage that writes it run?")
    with fs.open(target, "rb") as fh:
        return pq.read_table(fh, columns=columns).to_pandas()


def read_range(
    zone: str,
    dataset: str,
    start: str | dt.date,
    end: str | dt.date,
    root: str | None = None,
) -> pd.DataFrame:
    """Read every existing partition with ``start <= ds <= end``, concatenated.

    Only dates up to ``end`` are read, so a run never sees data from after its logical date.
    """
    start_d, end_d = as_date(start), as_date(end)
    fs, base = _fs(partition_path(zone, dataset, end_d, root).rsplit("/ds=", 1)[0])
    if not fs.exists(base):
        return pd.DataFrame()
    tables = []
    for entry in sorted(fs.ls(base, detail=False)):
        name = entry.rstrip("/").rsplit("/", 1)[-1]
        if not name.startswith("ds="):
            continue
        day = as_date(name[3:])
        if start_d <= day <= end_d and fs.exists(f"{entry}/{PART_FILE}"):
            with fs.open(f"{entry}/{PART_FILE}", "rb") as fh:
                tables.append(pq.read_table(fh))
    if not tables:
        return pd.DataFrame()
    return pa.concat_tables(tables, promote_options="permissive").to_pandas()


def write_json(obj: Any, zone: str, dataset: str, ds: str | dt.date, name: str, root: str | None = None) -> str:
    """Write ``obj`` as ``<name>.json`` in one partition folder, beside whatever else the folder holds.

    Returns:
        The path of the written file.
    """
    folder = partition_path(zone, dataset, ds, root)
    fs, local = _fs(folder)
    fs.makedirs(local, exist_ok=True)
    with fs.open(f"{local}/{name}.json", "w") as fh:
        json.dump(obj, fh, indent=2, default=str)
    return f"{folder}/{name}.json"


def read_json_files(zone: str, dataset: str, ds: str | dt.date, root: str | None = None) -> dict[str, Any]:
    """Every ``<name>.json`` of one partition folder, keyed by name (empty when the folder is absent)."""
    fs, local = _fs(partition_path(zone, dataset, ds, root))
    if not fs.exists(local):
        return {}
    out = {}
    for path in sorted(fs.ls(local, detail=False)):
        if path.endswith(".json"):
            with fs.open(path, "r") as fh:
                out[path.rsplit("/", 1)[-1][:-5]] = json.load(fh)
    return out


def write_text(text: str | bytes, zone: str, dataset: str, ds: str | dt.date, name: str,
               root: str | None = None) -> str:
    """Write a report file (Markdown, PNG bytes...) named ``name`` in one partition folder."""
    folder = partition_path(zone, dataset, ds, root)
    fs, local = _fs(folder)
    fs.makedirs(local, exist_ok=True)
    with fs.open(f"{local}/{name}", "wb" if isinstance(text, bytes) else "w") as fh:
        fh.write(text)
    return f"{folder}/{name}"


#: Columns of proposal frames that hold free-form nested values (Parquet cannot hold them across rows).
NESTED_COLUMNS = ("explanation", "tier_reasons")


def write_nested_partition(frame: pd.DataFrame, zone: str, dataset: str, ds: str | dt.date,
                           root: str | None = None) -> str:
    """:func:`write_partition` with the nested columns (:data:`NESTED_COLUMNS`) kept as JSON text."""
    out = frame.copy()
    for col in NESTED_COLUMNS:
        if col in out.columns:
            out[col] = out[col].map(lambda v: json.dumps(v, default=str))
    return write_partition(out, zone, dataset, ds, root)


def read_nested_partition(zone: str, dataset: str, ds: str | dt.date, root: str | None = None) -> pd.DataFrame:
    """Read a partition written by :func:`write_nested_partition`, nested columns parsed back."""
    frame = read_partition(zone, dataset, ds, root)
    for col in NESTED_COLUMNS:
        if col in frame.columns:
            frame[col] = frame[col].map(json.loads)
    return frame
