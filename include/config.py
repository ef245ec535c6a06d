"""Where Shelfwise keeps its data: one data root, partitioned by logical date.

The data root is an fsspec URL (a local folder by default, ``s3://...`` in production) taken from
``SHELFWISE_DATA_ROOT``. Every stage reads and writes under it through :func:`partition_path`, so a
re-run of a date replaces that date's outputs and never touches another date's.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Iterable
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATA_ROOT = PROJECT_ROOT / "data" / "shelfwise"
CONTRACTS_DIR = PROJECT_ROOT / "data_contracts"
POLICY_FILE = PROJECT_ROOT / "include" / "governance" / "policy.yaml"

#: Zones under the data root (DESIGN.md, "Stores").
ZONES = ("landing", "curated", "quarantine", "forecasts", "reports")


def data_root() -> str:
    """Return the data root URL without a trailing slash.

    Returns:
        ``SHELFWISE_DATA_ROOT`` when set, else ``<project>/data/shelfwise``.
    """
    return os.environ.get("SHELFWISE_DATA_ROOT", str(DEFAULT_DATA_ROOT)).rstrip("/")


def policy_file() -> Path:
    """The governance policy file: ``SHELFWISE_POLICY_FILE`` when set, else the one shipped in the project."""
    return Path(os.environ.get("SHELFWISE_POLICY_FILE") or POLICY_FILE)


def trading_hours() -> tuple[int, int, str]:
    """The stores' trading hours and their time zone: ``(open, close, tz)``.

    ``SHELFWISE_TRADING_HOURS`` (default ``8-22``: from 08:00 until 22:00) and ``SHELFWISE_TRADING_TZ``
    (default ``UTC``). ``retail_intraday`` runs at the end of every trading hour (and of the web shop's
    hours, :func:`online_hours`).

    Raises:
        ValueError: when the hours are not ``open-close`` with ``0 <= open < close <= 24``.
    """
    return (*_hours_setting("SHELFWISE_TRADING_HOURS", "8-22"), os.environ.get("SHELFWISE_TRADING_TZ") or "UTC")


def online_hours() -> tuple[int, int]:
    """The web shop's hours that ``retail_intraday`` reads and supplies the same day: ``(open, close)``.

    ``SHELFWISE_ONLINE_HOURS``, default ``8-24``: the web shop sells around the clock; its night is read by
    the first run after the night's forecast (09:00, hours 0 to 8) and its evening until midnight, after
    the stores close. On the trading clock (``SHELFWISE_TRADING_TZ``).

    Raises:
        ValueError: when the hours are not ``open-close`` with ``0 <= open < close <= 24``.
    """
    return _hours_setting("SHELFWISE_ONLINE_HOURS", "8-24")


def hours_read() -> tuple[int, ...]:
    """The hours ``retail_intraday`` reads, at the end of each: the stores' and the web shop's."""
    stores, online = trading_hours()[:2], online_hours()
    return tuple(sorted(set(range(*stores)) | set(range(*online))))


def channels_closed(hour: int) -> frozenset[str]:
    """The selling channels not trading in ``hour`` (0-23): ``store`` outside the stores' hours, ``online``
    outside the web shop's.

    Stock moves only between locations whose channel is open: a closed store neither gives nor receives,
    nor ships the web shop's orders, until it opens (the night's replenishment plans it meanwhile).
    """
    stores, online = trading_hours()[:2], online_hours()
    return frozenset(name for name, (first, last) in (("store", stores), ("online", online))
                     if not first <= hour < last)


def _hours_setting(name: str, default: str) -> tuple[int, int]:
    raw = os.environ.get(name, default).strip()
    parts = raw.split("-")
    if len(parts) != 2 or not all(p.strip().isdigit() for p in parts) or not 0 <= int(parts[0]) < int(parts[1]) <= 24:
        raise ValueError(f"{name} must be 'open-close' hours with 0 <= open < close <= 24, got {raw!r}")
    return int(parts[0]), int(parts[1])


def hourly_cron(hours: Iterable[int]) -> str:
    """The cron expression of a run at the end of each of ``hours`` (0-23): hour 8 is read at 09:00.

    The hour 23 is read at 00:00 (a day trading until midnight); every hour read: a run every hour.
    """
    hours = sorted({(h + 1) % 24 for h in hours})
    if not hours:
        raise ValueError("a schedule needs at least one hour to read")
    if len(hours) == 24:
        return "0 * * * *"
    spans: list[list[int]] = []
    for h in hours:
        if spans and h == spans[-1][1] + 1:
            spans[-1][1] = h
        else:
            spans.append([h, h])
    return "0 " + ",".join(str(a) if a == b else f"{a}-{b}" for a, b in spans) + " * * *"


def hour_read(interval_start: dt.datetime, tz: str) -> tuple[dt.date, int]:
    """The trading day and hour an hourly run reads: the start of its data interval on the trading clock.

    A run's interval comes in UTC; the extracts and the trading hours are on the retailer's clock (``tz``).
    The run at midnight reads 23:00-24:00 of the day before.
    """
    from zoneinfo import ZoneInfo

    if interval_start.tzinfo is None:
        raise ValueError(f"a data interval's start must carry its time zone, got {interval_start!r}")
    local = interval_start.astimezone(ZoneInfo(tz))
    return local.date(), local.hour


def shard_concurrency() -> dict[str, object]:
    """How the forecast shards of one run share the workers, from the environment.

    ``SHELFWISE_SHARD_PARALLELISM`` (default 2): most shards of one run at a time, so a night's memory is
    about that many shards' whatever the number of series; ``SHELFWISE_SHARD_POOL`` (default Airflow's
    ``default_pool``): the pool they take slots from, for a limit across runs and workflows.

    Raises:
        ValueError: when the parallelism is not a positive integer.
    """
    raw = os.environ.get("SHELFWISE_SHARD_PARALLELISM", "2")
    if not raw.isdigit() or int(raw) < 1:
        raise ValueError(f"SHELFWISE_SHARD_PARALLELISM must be a positive integer, got {raw!r}")
    return {"max_active_tis_per_dagrun": int(raw), "pool": os.environ.get("SHELFWISE_SHARD_POOL") or "default_pool"}


def as_date(value: str | dt.date | dt.datetime) -> dt.date:
    """Coerce a ``YYYY-MM-DD`` string, date or datetime to a date.

    Raises:
        ValueError: if a string is not an ISO date.
    """
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    return dt.date.fromisoformat(str(value)[:10])


def partition_path(zone: str, dataset: str, ds: str | dt.date, root: str | None = None) -> str:
    """Path of one dataset's partition for one logical date.

    Args:
        zone: one of :data:`ZONES`.
        dataset: dataset name inside the zone (``pos``, ``demand``, ``kpis``...).
        ds: the logical date the partition belongs to.
        root: data root; defaults to :func:`data_root`.

    Returns:
        ``<root>/<zone>/<dataset>/ds=YYYY-MM-DD``.

    Raises:
        ValueError: for an unknown zone.
    """
    if zone not in ZONES:
        raise ValueError(f"unknown zone {zone!r}; expected one of {', '.join(ZONES)}")
    return f"{root or data_root()}/{zone}/{dataset}/ds={as_date(ds).isoformat()}"

