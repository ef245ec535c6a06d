"""Partitioned Parquet reads and writes under the data root, through fsspec.

A partition is a folder ``<zone>/<dataset>/ds=YYYY-MM-DD`` holding one ``part-0.parquet``. Writing a
partition replaces it whole, which is what makes re-runs and backfills idempotent.
"""

from __future__ import annotations

import datetime as dt
import logging

import fsspec
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from include.config import as_date, partition_path

log = logging.getLogger(__name__)

PART_FILE = "part-0.parquet"


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
    for col in frame.columns:
        # One time unit for every partition, so a range of partitions concatenates cleanly.
        if pd.api.types.is_datetime64_any_dtype(frame[col]):
            frame[col] = frame[col].astype("datetime64[us]")
    table = pa.Table.from_pandas(frame, preserve_index=False)
    with fs.open(target, "wb") as fh:
        pq.write_table(table, fh)
    log.info("wrote %s/%s ds=%s: %d rows", zone, dataset, as_date(ds), len(df))
    return f"{folder}/{PART_FILE}"


def partition_exists(zone: str, dataset: str, ds: str | dt.date, root: str | None = None) -> bool:
    """Whether a partition was written for that date."""
    fs, local = _fs(partition_path(zone, dataset, ds, root))
    return fs.exists(f"{local}/{PART_FILE}")


def read_partition(
    zone: str, dataset: str, ds: str | dt.date, root: str | None = None, *, missing_ok: bool = False
) -> pd.DataFrame:
    """Read one partition.

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
        return pq.read_table(fh).to_pandas()


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
