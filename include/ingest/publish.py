"""Replace a contract's curated and quarantine partitions of a date together, or not at all.

Every outcome of an ingest writes both partitions of the date: the split of a validated extract, or empty
ones for an extract that was rejected, never arrived or could not be processed. So no partition of an
earlier run of the date survives to look current. Both are first written under a hidden staging folder
(``<zone>/<contract>/.staging-<ds>-<token>/``, which no reader lists: readers take ``ds=`` folders) and
only then moved into place, one rename each; a failure while writing leaves the previous partitions as
they were, and the hidden folder is removed.
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid

import fsspec
import pandas as pd

from include.config import as_date, partition_path
from include.storage import write_partition

log = logging.getLogger(__name__)

ZONES = ("curated", "quarantine")
_STAGING = ".staging-"
_SUPERSEDED = ".superseded-"


def _fs(path: str) -> tuple[fsspec.AbstractFileSystem, str]:
    fs, _, paths = fsspec.get_fs_token_paths(path)
    return fs, paths[0]


def publish_partitions(contract_id: str, ds: str | dt.date, root: str,
                       frames: dict[str, pd.DataFrame]) -> dict[str, str]:
    """Write the curated and quarantine partitions of a date, replacing the earlier ones only once both exist.

    Args:
        contract_id: the dataset inside each zone.
        ds: logical date.
        root: data root.
        frames: the rows of each zone (``curated``, ``quarantine``); an empty frame writes an empty partition.

    Returns:
        The written file of each zone.
    """
    day = as_date(ds).isoformat()
    token = uuid.uuid4().hex[:12]
    staging = f"{contract_id}/{_STAGING}{day}-{token}"
    written: dict[str, str] = {}
    try:
        for zone, frame in frames.items():
            _drop_leftovers(zone, contract_id, day, root)
            staged = write_partition(frame, zone, staging, day, root)
            written[zone] = staged.replace(f"/{staging}/", f"/{contract_id}/")
        for zone in frames:
            _swap(partition_path(zone, staging, day, root), partition_path(zone, contract_id, day, root), token)
    finally:
        for zone in frames:
            fs, folder = _fs(partition_path(zone, staging, day, root).rsplit("/", 1)[0])
            if fs.exists(folder):
                fs.rm(folder, recursive=True)
    return written


def supersede_partitions(contract_id: str, ds: str | dt.date, root: str) -> None:
    """Replace both partitions of a date with empty ones (the extract of the date gave nothing usable).

    Args:
        contract_id: the dataset inside each zone.
        ds: logical date.
        root: data root.
    """
    publish_partitions(contract_id, ds, root, {zone: pd.DataFrame() for zone in ZONES})


def _swap(staged: str, final: str, token: str) -> None:
    """Move the staged partition folder to its place; the earlier folder is moved aside first, then removed."""
    fs, target = _fs(final)
    _, source = _fs(staged)
    parent, name = target.rsplit("/", 1)
    aside = f"{parent}/{_SUPERSEDED}{name}-{token}"
    if fs.exists(target):
        fs.mv(target, aside, recursive=True)
    fs.mv(source, target, recursive=True)
    if fs.exists(aside):
        fs.rm(aside, recursive=True)


def _drop_leftovers(zone: str, contract_id: str, day: str, root: str) -> None:
    """Remove staging and superseded folders of the date that a killed run left behind."""
    fs, base = _fs(partition_path(zone, contract_id, day, root).rsplit("/", 1)[0])
    if not fs.exists(base):
        return
    for pattern in (f"{_STAGING}{day}-*", f"{_SUPERSEDED}ds={day}-*"):
        for leftover in fs.glob(f"{base}/{pattern}"):
            log.warning("removing %s, left by an interrupted ingest", leftover)
            fs.rm(leftover, recursive=True)
