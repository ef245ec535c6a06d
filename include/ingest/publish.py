"""Replace a contract's curated and quarantine partitions of a date together, or not at all.

Every outcome of an ingest writes both partitions of the date: the split of a validated extract, or empty
ones for an extract that was rejected, never arrived or could not be processed. So no partition of an
earlier run of the date survives to look current. Both are first written under a hidden staging folder
(``<zone>/<contract>/.staging-<ds>-<token>/``, which no reader lists: readers take ``ds=`` folders) and
only then moved into place, one rename each; a failure while writing leaves the previous partitions as
they were, and the hidden folder is removed.

An hourly extract publishes one hour at a time (``hour=``): the hour's folder inside the date partition
(``<zone>/<contract>/ds=<ds>/hour=HH``) is replaced the same way, and the date's other hours stay.
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from collections.abc import Callable

import fsspec
import pandas as pd

from include.config import as_date, partition_path
from include.storage import (
    HOUR_PREFIX,
    PART_FILE,
    hour_partition_path,
    substitute_file,
    write_hour_partition,
    write_partition,
)

log = logging.getLogger(__name__)

ZONES = ("curated", "quarantine")
_STAGING = ".staging-"
_SUPERSEDED = ".superseded-"


def _fs(path: str) -> tuple[fsspec.AbstractFileSystem, str]:
    fs, _, paths = fsspec.get_fs_token_paths(path)
    return fs, paths[0]


def publish_partitions(contract_id: str, ds: str | dt.date, root: str,
                       frames: dict[str, pd.DataFrame], *, hour: int | None = None) -> dict[str, str]:
    """Write the curated and quarantine partitions of a date, replacing the earlier ones only once both exist.

    Args:
        contract_id: the dataset inside each zone.
        ds: logical date.
        root: data root.
        frames: the rows of each zone (``curated``, ``quarantine``); an empty frame writes an empty partition.
        hour: publish this hour's partitions of the date (an hourly extract) instead of the date's.

    Returns:
        The written file of each zone.
    """
    if hour is not None:
        return _publish(contract_id, ds, root, list(frames), lambda zone, staging, day: write_hour_partition(
            frames[zone], zone, staging, day, hour, root), hour=hour)
    return _publish(contract_id, ds, root, list(frames),
                    lambda zone, staging, day: write_partition(frames[zone], zone, staging, day, root))


def publish_substitute(contract_id: str, ds: str | dt.date, root: str, source_day: str | dt.date) -> str:
    """Put the curated rows of ``source_day`` in place as the curated partition of ``ds`` (a stand-in).

    The file is copied as it is, under the stand-in name of :func:`include.storage.substitute_file`, so
    range readers tell it from a delivery; the quarantine partition of ``ds`` is left as the ingest wrote it.
    A later ingest of ``ds`` replaces the stand-in like any earlier partition.

    Returns:
        The stand-in file.
    """
    name = substitute_file(source_day)
    _, source = _fs(f"{partition_path('curated', contract_id, source_day, root)}/{PART_FILE}")

    def copy(zone: str, staging: str, day: str) -> str:
        folder = partition_path(zone, staging, day, root)
        fs, local = _fs(folder)
        fs.makedirs(local, exist_ok=True)
        fs.copy(source, f"{local}/{name}")
        return f"{folder}/{name}"

    return _publish(contract_id, ds, root, ["curated"], copy)["curated"]


def _publish(contract_id: str, ds: str | dt.date, root: str, zones: list[str],
             write: Callable[[str, str, str], str], *, hour: int | None = None) -> dict[str, str]:
    """Write each zone's partition under a hidden staging folder with ``write(zone, staging, day)``, then
    move them all into place; the staging folders are removed whatever happens. With ``hour``, the hour's
    folder of the date partition is what is staged and moved."""
    day = as_date(ds).isoformat()
    token = uuid.uuid4().hex[:12]
    label = day if hour is None else f"{day}-{HOUR_PREFIX}{hour:02d}"
    staging = f"{contract_id}/{_STAGING}{label}-{token}"
    written: dict[str, str] = {}
    try:
        for zone in zones:
            _drop_leftovers(zone, contract_id, day, root, hour)
            written[zone] = write(zone, staging, day).replace(f"/{staging}/", f"/{contract_id}/")
        for zone in zones:
            _swap(_folder(zone, staging, day, root, hour), _folder(zone, contract_id, day, root, hour), token)
    finally:
        for zone in zones:
            fs, folder = _fs(partition_path(zone, staging, day, root).rsplit("/", 1)[0])
            if fs.exists(folder):
                fs.rm(folder, recursive=True)
    return written


def supersede_partitions(contract_id: str, ds: str | dt.date, root: str, *, hour: int | None = None) -> None:
    """Replace both partitions of a date with empty ones (the extract of the date gave nothing usable).

    Args:
        contract_id: the dataset inside each zone.
        ds: logical date.
        root: data root.
        hour: replace this hour's partitions of the date (an hourly extract) instead of the date's.
    """
    publish_partitions(contract_id, ds, root, {zone: pd.DataFrame() for zone in ZONES}, hour=hour)


def _folder(zone: str, dataset: str, day: str, root: str, hour: int | None) -> str:
    """The folder a publish replaces: the date partition, or the hour's folder in it."""
    return partition_path(zone, dataset, day, root) if hour is None else \
        hour_partition_path(zone, dataset, day, hour, root)


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


def _drop_leftovers(zone: str, contract_id: str, day: str, root: str, hour: int | None = None) -> None:
    """Remove staging and superseded folders of the date (or hour) that a killed run left behind."""
    fs, base = _fs(partition_path(zone, contract_id, day, root).rsplit("/", 1)[0])
    if not fs.exists(base):
        return
    # An hour's own leftovers only: another hour of the date may be publishing at the same time.
    patterns = (f"{_STAGING}{day}-*", f"{_SUPERSEDED}ds={day}-*") if hour is None else \
        (f"{_STAGING}{day}-{HOUR_PREFIX}{hour:02d}-*", f"ds={day}/{_SUPERSEDED}{HOUR_PREFIX}{hour:02d}-*")
    for pattern in patterns:
        for leftover in fs.glob(f"{base}/{pattern}"):
            log.warning("removing %s, left by an interrupted ingest", leftover)
            fs.rm(leftover, recursive=True)
