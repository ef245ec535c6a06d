"""Partitioned Parquet reads and writes under the data root, through fsspec.

A partition is a folder ``<zone>/<dataset>/ds=YYYY-MM-DD`` holding one ``part-0.parquet``, or one
``part-shard-SSSS-of-NNNN.parquet`` per shard of series when the stage that writes it works shard by shard
(:func:`write_shard`). Writing a whole partition replaces it, and a shard replaces only its own file, which
is what makes re-runs, retries and backfills idempotent. Reads take every part file of the folder, so a
reader does not care how the partition was written; :func:`read_shard` reads one shard's file only.

A partition may instead hold a stand-in: ``part-substitute-YYYY-MM-DD.parquet``, the rows of an earlier
date's partition put in place of an extract that did not arrive (:mod:`include.ingest.substitute`). A
reader of the date reads it like any part file; a reader of a range that also holds that earlier date
skips it (:func:`iter_range`), so no row is counted twice.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import datetime as dt
import gc
import json
import logging
import numbers
from typing import Any

import fsspec
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from include.config import as_date, partition_path

log = logging.getLogger(__name__)

PART_FILE = "part-0.parquet"
#: The part file of a stand-in partition is named after the date its rows come from.
SUBSTITUTE_PREFIX = "part-substitute-"
#: The part files of a partition (a whole one, or one per shard).
PART_GLOB = "part-*.parquet"
#: Rows converted to Arrow and written at a time, so that only one slice's Arrow copy is alive at a time; the
#: file's layout is the same as writing the whole table at once.
_WRITE_ROWS = 1024 * 1024
#: Rows per Parquet row group. Partitions are written sorted by series, so a reader that wants one series
#: (a line's chart on the approvals page) decodes one group of this size, not a million rows; a whole-
#: partition read costs the same.
_ROW_GROUP_ROWS = 128 * 1024
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
    clear_partition(zone, dataset, ds, root)
    path = _write_file(df, zone, dataset, ds, PART_FILE, root)
    log.info("wrote %s/%s ds=%s: %d rows", zone, dataset, as_date(ds), len(df))
    return path


def _write_file(df: pd.DataFrame, zone: str, dataset: str, ds: str | dt.date, name: str, root: str | None) -> str:
    """Write ``df`` as the Parquet file ``name`` of a partition folder (created if absent); its path."""
    return _write_in(df, partition_path(zone, dataset, ds, root), name)


def _write_in(df: pd.DataFrame, folder: str, name: str) -> str:
    """Write ``df`` as the Parquet file ``name`` of ``folder`` (created if absent); its path."""
    fs, local = _fs(folder)
    fs.makedirs(local, exist_ok=True)
    target = f"{local}/{name}"
    frame = df.reset_index(drop=True)
    if len(frame) > _WRITE_ROWS:
        with fs.open(target, "wb") as fh:
            written = _write_sliced(frame, fh)
    else:
        written = False
    if not written:
        table = _to_arrow(frame)
        with fs.open(target, "wb") as fh:
            pq.write_table(table, fh, use_dictionary=_dictionary_columns(table.schema), row_group_size=_ROW_GROUP_ROWS)
        del table
    if len(frame) >= _RELEASE_ROWS:
        release_memory()  # the Arrow copies and the writer's buffers
    return f"{folder}/{name}"


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
        writer.write_table(first, row_group_size=_ROW_GROUP_ROWS)
        del first
        for start in range(_WRITE_ROWS, len(frame), _WRITE_ROWS):
            table = _to_arrow(frame.iloc[start:start + _WRITE_ROWS])
            if not table.schema.equals(writer.schema, check_metadata=False):
                return False
            writer.write_table(table, row_group_size=_ROW_GROUP_ROWS)
    return True


def shard_file(shard: int, n_shards: int) -> str:
    """The file name of one shard's part of a partition."""
    return f"part-shard-{shard:04d}-of-{n_shards:04d}.parquet"


def substitute_file(source_day: str | dt.date) -> str:
    """The file name of a stand-in partition whose rows are those of ``source_day``."""
    return f"{SUBSTITUTE_PREFIX}{as_date(source_day).isoformat()}.parquet"


def substituted_from(path: str) -> dt.date | None:
    """The date a stand-in part file's rows come from; None for a part file written for its own date."""
    name = path.rstrip("/").rsplit("/", 1)[-1]
    if not name.startswith(SUBSTITUTE_PREFIX):
        return None
    return as_date(name[len(SUBSTITUTE_PREFIX):-len(".parquet")])


def clear_partition(zone: str, dataset: str, ds: str | dt.date, root: str | None = None) -> None:
    """Remove a partition (before its shards are written anew, so no shard of an earlier plan survives)."""
    fs, local = _fs(partition_path(zone, dataset, ds, root))
    if fs.exists(local):
        fs.rm(local, recursive=True)


def write_shard(df: pd.DataFrame, zone: str, dataset: str, ds: str | dt.date, shard: int, n_shards: int,
                root: str | None = None) -> str:
    """Replace one shard's file of a partition, leaving the other shards' files alone.

    Returns:
        The path of the written file.
    """
    return _write_file(df, zone, dataset, ds, shard_file(shard, n_shards), root)


def _part_files(fs: fsspec.AbstractFileSystem, local: str) -> list[str]:
    return sorted(fs.glob(f"{local}/{PART_GLOB}")) if fs.exists(local) else []


def list_shards(zone: str, dataset: str, ds: str | dt.date, root: str | None = None) -> list[dict[str, int]]:
    """The shards a partition was written in (``{"shard": i, "n_shards": n}``), in order; empty if whole."""
    fs, local = _fs(partition_path(zone, dataset, ds, root))
    out = []
    for path in _part_files(fs, local):
        name = path.rsplit("/", 1)[-1]
        if name.startswith("part-shard-"):
            shard, n_shards = name[len("part-shard-"):-len(".parquet")].split("-of-")
            out.append({"shard": int(shard), "n_shards": int(n_shards)})
    return out


def delivered_rows(zone: str, dataset: str, ds: str | dt.date, root: str | None = None) -> int | None:
    """Rows of a partition written whole for its own date, from the Parquet footer; None when there is none
    (no partition, a sharded one, or a stand-in)."""
    fs, local = _fs(f"{partition_path(zone, dataset, ds, root)}/{PART_FILE}")
    if not fs.exists(local):
        return None
    with fs.open(local, "rb") as fh:
        return pq.ParquetFile(fh).metadata.num_rows


def partition_exists(zone: str, dataset: str, ds: str | dt.date, root: str | None = None) -> bool:
    """Whether a partition was written for that date (whole or in shards)."""
    fs, local = _fs(partition_path(zone, dataset, ds, root))
    return bool(_part_files(fs, local))


def _read_files(fs: fsspec.AbstractFileSystem, paths: list[str], columns: list[str] | None,
                filters: Any) -> pa.Table | None:
    tables = []
    for path in paths:
        with fs.open(path, "rb") as fh:
            tables.append(pq.read_table(fh, columns=columns, filters=filters))
    if not tables:
        return None
    # A shard with no rows says nothing about a column's type (pandas writes its empty columns as null or
    # double): only the shards with rows decide it.
    rows = [t for t in tables if t.num_rows] or tables[:1]
    return rows[0] if len(rows) == 1 else pa.concat_tables(rows, promote_options="permissive")


def read_partition(
    zone: str, dataset: str, ds: str | dt.date, root: str | None = None, *, missing_ok: bool = False,
    columns: list[str] | None = None, filters: Any = None,
) -> pd.DataFrame:
    """Read one partition, every part file of it (only ``columns``, only rows passing ``filters``).

    Args:
        filters: pyarrow filters (``[("ds", ">=", day)]``), applied while reading.

    Raises:
        FileNotFoundError: naming the partition when it is absent and ``missing_ok`` is false.
    """
    folder = partition_path(zone, dataset, ds, root)
    fs, local = _fs(folder)
    table = _read_files(fs, _part_files(fs, local), columns, filters)
    if table is None:
        if missing_ok:
            return pd.DataFrame()
        raise FileNotFoundError(f"partition {folder} does not exist: has the stage that writes it run?")
    return table.to_pandas()


def read_key(zone: str, dataset: str, ds: str | dt.date, column: str, value: Any, root: str | None = None, *,
             columns: list[str] | None = None) -> pd.DataFrame:
    """The rows of one partition whose ``column`` equals ``value``, reading only the row groups whose
    statistics say they may hold it (one series of a partition written sorted by series: a group or two).

    ``read_partition`` with an equality filter gives the same rows; it decodes every row group's ``column``.
    A part file without statistics is read whole. A missing partition gives no rows.

    Args:
        columns: the columns returned (``column`` is read for the match either way).
    """
    import pyarrow.compute as pc

    folder = partition_path(zone, dataset, ds, root)
    fs, local = _fs(folder)
    wanted = None if columns is None else list(dict.fromkeys([*columns, column]))
    tables = []
    for path in _part_files(fs, local):
        with fs.open(path, "rb") as fh:
            pf = pq.ParquetFile(fh)
            paths = [pf.metadata.schema.column(i).path for i in range(pf.metadata.num_columns)]
            if column not in paths:
                raise KeyError(f"{path} has no column {column!r}")
            index = paths.index(column)
            groups = []
            for i in range(pf.metadata.num_row_groups):
                stats = pf.metadata.row_group(i).column(index).statistics
                if stats is None or not stats.has_min_max or stats.min <= value <= stats.max:
                    groups.append(i)
            if groups:
                table = pf.read_row_groups(groups, columns=wanted)
                tables.append(table.filter(pc.equal(table[column], value)))
    rows = [t for t in tables if t.num_rows]
    if not rows:
        return pd.DataFrame(columns=columns or [])
    frame = (rows[0] if len(rows) == 1 else pa.concat_tables(rows, promote_options="permissive")).to_pandas()
    return frame if columns is None else frame[columns]


def newest_partition(zone: str, dataset: str, day: str | dt.date, max_age_days: int, root: str | None = None, *,
                     missing_ok: bool = False) -> pd.DataFrame | None:
    """The newest partition of ``dataset`` dated ``day`` or up to ``max_age_days`` before it.

    For data a workflow reads from another one (a master, a catalogue) that need not be delivered every day.

    Raises:
        FileNotFoundError: none in that window, naming it (``missing_ok``: returns ``None`` instead).
    """
    day = day if isinstance(day, dt.date) else dt.date.fromisoformat(str(day)[:10])
    for back in range(max_age_days + 1):
        on = day - dt.timedelta(days=back)
        if partition_exists(zone, dataset, on, root):
            return read_partition(zone, dataset, on, root)
    if missing_ok:
        return None
    raise FileNotFoundError(f"no {zone}/{dataset} partition from {day - dt.timedelta(days=max_age_days)} to {day}: "
                            "has the workflow that writes it run?")


def read_shard(zone: str, dataset: str, ds: str | dt.date, shard: int, n_shards: int, root: str | None = None, *,
               missing_ok: bool = False, columns: list[str] | None = None) -> pd.DataFrame:
    """Read one shard's file of a partition written by :func:`write_shard`.

    Raises:
        FileNotFoundError: naming the file when it is absent and ``missing_ok`` is false.
    """
    folder = partition_path(zone, dataset, ds, root)
    fs, local = _fs(folder)
    path = f"{local}/{shard_file(shard, n_shards)}"
    if not fs.exists(path):
        if missing_ok:
            return pd.DataFrame()
        raise FileNotFoundError(f"shard {folder}/{shard_file(shard, n_shards)} does not exist")
    return _read_files(fs, [path], columns, None).to_pandas()


def iter_shards(zone: str, dataset: str, ds: str | dt.date, root: str | None = None, *,
                columns: list[str] | None = None, filters: Any = None):
    """Yield each part file's rows of a partition in turn: one shard at a time (the whole partition once
    when it was written whole), so a reader of every series holds one shard, not the retailer."""
    fs, local = _fs(partition_path(zone, dataset, ds, root))
    for path in _part_files(fs, local):
        yield _read_files(fs, [path], columns, filters).to_pandas()


def iter_range(zone: str, dataset: str, start: str | dt.date, end: str | dt.date, root: str | None = None, *,
               columns: list[str] | None = None):
    """Yield ``(day, table)`` for every existing partition with ``start <= ds <= end``, oldest first.

    One day's Arrow table at a time (only ``columns`` where the partition has them), so a reader that
    streams over a year holds one day, not the year. A stand-in partition whose rows come from a day of
    the range is skipped: those rows are read once, on their own day.
    """
    start_d, end_d = as_date(start), as_date(end)
    fs, base = _fs(partition_path(zone, dataset, end_d, root).rsplit("/ds=", 1)[0])
    if not fs.exists(base):
        return
    for entry in sorted(fs.ls(base, detail=False)):
        name = entry.rstrip("/").rsplit("/", 1)[-1]
        if not name.startswith("ds="):
            continue
        day = as_date(name[3:])
        paths = _part_files(fs, entry) if start_d <= day <= end_d else []
        paths = [p for p in paths if not start_d <= (substituted_from(p) or dt.date.min) <= end_d]
        if paths:
            with fs.open(paths[0], "rb") as fh:
                present = pq.read_schema(fh).names
            wanted = None if columns is None else [c for c in columns if c in present]
            yield day, _read_files(fs, paths, wanted, None)


def read_range(
    zone: str,
    dataset: str,
    start: str | dt.date,
    end: str | dt.date,
    root: str | None = None,
    *,
    columns: list[str] | None = None,
) -> pd.DataFrame:
    """Read every existing partition with ``start <= ds <= end``, concatenated (only ``columns``).

    Only dates up to ``end`` are read, so a run never sees data from after its logical date.
    """
    tables = [table for _, table in iter_range(zone, dataset, start, end, root, columns=columns)]
    if not tables:
        return pd.DataFrame()
    return pa.concat_tables(tables, promote_options="permissive").to_pandas()


#: Folder of one hour inside a date partition of an intraday dataset (``hour=07``).
HOUR_PREFIX = "hour="


def hour_partition_path(zone: str, dataset: str, ds: str | dt.date, hour: int, root: str | None = None) -> str:
    """Path of one hour's partition of an intraday dataset: ``<root>/<zone>/<dataset>/ds=YYYY-MM-DD/hour=HH``.

    Raises:
        ValueError: for an hour outside 0..23.
    """
    if isinstance(hour, bool) or not isinstance(hour, numbers.Integral) or not 0 <= hour <= 23:
        raise ValueError(f"hour must be an integer in 0..23, got {hour!r}")
    return f"{partition_path(zone, dataset, ds, root)}/{HOUR_PREFIX}{int(hour):02d}"


def write_hour_partition(df: pd.DataFrame, zone: str, dataset: str, ds: str | dt.date, hour: int,
                         root: str | None = None) -> str:
    """Replace one hour's partition of an intraday dataset with ``df``; the date's other hours stay.

    Returns:
        The path of the written file.
    """
    folder = hour_partition_path(zone, dataset, ds, hour, root)
    fs, local = _fs(folder)
    if fs.exists(local):
        fs.rm(local, recursive=True)
    path = _write_in(df, folder, PART_FILE)
    log.info("wrote %s/%s ds=%s hour=%02d: %d rows", zone, dataset, as_date(ds), int(hour), len(df))
    return path


def partition_hours(zone: str, dataset: str, ds: str | dt.date, root: str | None = None) -> list[int]:
    """Hours of a date that have a partition of an intraday dataset (empty ones included), in order."""
    fs, local = _fs(partition_path(zone, dataset, ds, root))
    if not fs.exists(local):
        return []
    hours = []
    for entry in fs.ls(local, detail=False):
        name = entry.rstrip("/").rsplit("/", 1)[-1]
        # Hidden folders of an interrupted publish (``.superseded-hour=07-...``) are not hours.
        if name.startswith(HOUR_PREFIX) and name[len(HOUR_PREFIX):].isdigit() and _part_files(fs, entry):
            hours.append(int(name[len(HOUR_PREFIX):]))
    return sorted(hours)


def read_hours(zone: str, dataset: str, ds: str | dt.date, hours: list[int], root: str | None = None) -> pd.DataFrame:
    """The rows of some hours' partitions of a date, concatenated in hour order; absent hours give nothing."""
    fs, _ = _fs(partition_path(zone, dataset, ds, root))
    paths = [path for hour in sorted(hours)
             for path in _part_files(fs, _fs(hour_partition_path(zone, dataset, ds, hour, root))[1])]
    table = _read_files(fs, paths, None, None)
    return pd.DataFrame() if table is None else table.to_pandas()


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
