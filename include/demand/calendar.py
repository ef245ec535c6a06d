"""The retail event calendar: the days on which demand follows its own rules.

Each day of an event window gets its own label (``black_friday``, ``christmas_eve-3``, ``easter+1``),
so a model that learns one effect per label (prophet's ``holidays``) learns the shape of the window,
not one average over it. Labels repeat every year, which is what lets last year's Black Friday teach
this year's forecast. Dates are computed by rule, so the calendar needs no download and reaches as
far ahead as any horizon.

The calendar is a US/UK-style general-merchandise one. A retailer with its own events (a store
anniversary sale, a local festival) adds them with :data:`EXTRA_EVENTS_ENV`, a CSV of ``event, ds``.
"""

from __future__ import annotations

import datetime as dt
import os

import pandas as pd

from include.config import as_date

__all__ = ["EXTRA_EVENTS_ENV", "easter", "event_labels", "retail_events"]

#: Environment variable naming an optional CSV (``event, ds``) of the retailer's own events.
EXTRA_EVENTS_ENV = "SHELFWISE_EVENTS_FILE"

#: Days before Christmas Eve that carry their own label (the run-up builds day by day).
CHRISTMAS_RUN_UP_DAYS = 14
#: Days around Easter Sunday that carry their own label.
EASTER_WINDOW = range(-14, 2)


def easter(year: int) -> dt.date:
    """Easter Sunday (anonymous Gregorian algorithm)."""
    a, b, c = year % 19, year // 100, year % 100
    d, e = b // 4, b % 4
    g = (b - (b + 8) // 25 + 1) // 3
    h = (19 * a + b - d - g + 15) % 30
    i, k = c // 4, c % 4
    ell = (32 + 2 * e + 2 * i - h - k) % 7
    m = (a + 11 * h + 22 * ell) // 451
    month = (h + ell - 7 * m + 114) // 31
    return dt.date(year, month, (h + ell - 7 * m + 114) % 31 + 1)


def _year_events(year: int) -> list[tuple[str, dt.date]]:
    nov1 = dt.date(year, 11, 1)
    thanksgiving = nov1 + dt.timedelta(days=(3 - nov1.weekday()) % 7 + 21)
    black_friday = thanksgiving + dt.timedelta(days=1)
    events = [
        ("thanksgiving", thanksgiving),
        ("black_friday", black_friday),
        ("black_friday+1", black_friday + dt.timedelta(days=1)),
        ("black_friday+2", black_friday + dt.timedelta(days=2)),
        ("cyber_monday", black_friday + dt.timedelta(days=3)),
        ("christmas_eve", dt.date(year, 12, 24)),
        ("christmas_day", dt.date(year, 12, 25)),
        ("boxing_day", dt.date(year, 12, 26)),
        ("new_year", dt.date(year, 1, 1)),
    ]
    events += [(f"christmas_eve-{k}", dt.date(year, 12, 24) - dt.timedelta(days=k))
               for k in range(1, CHRISTMAS_RUN_UP_DAYS + 1)]
    events += [(f"year_end-{31 - d}" if d < 31 else "year_end", dt.date(year, 12, d)) for d in range(27, 32)]
    sunday = easter(year)
    events += [("easter" if k == 0 else f"easter{k:+d}", sunday + dt.timedelta(days=k)) for k in EASTER_WINDOW]
    return events


def _extra_events(start: dt.date, end: dt.date) -> pd.DataFrame:
    path = os.environ.get(EXTRA_EVENTS_ENV)
    if not path:
        return pd.DataFrame(columns=["event", "ds"])
    try:
        extra = pd.read_csv(path, dtype={"event": str})
    except (OSError, ValueError) as exc:
        raise ValueError(f"{EXTRA_EVENTS_ENV}={path}: cannot be read: {exc}") from exc
    missing = {"event", "ds"} - set(extra.columns)
    if missing:
        raise ValueError(f"{EXTRA_EVENTS_ENV}={path}: missing column(s) {sorted(missing)} (expected event, ds)")
    days = pd.to_datetime(extra["ds"], errors="coerce")
    bad = days.isna() | extra["event"].isna()
    if bad.any():
        row = int(bad.to_numpy().argmax()) + 2  # the header is line 1
        raise ValueError(f"{EXTRA_EVENTS_ENV}={path}, line {row}: event and ds (YYYY-MM-DD) are required")
    out = pd.DataFrame({"event": extra["event"].str.strip(), "ds": days.dt.normalize()})
    return out[(out["ds"] >= pd.Timestamp(start)) & (out["ds"] <= pd.Timestamp(end))]


def retail_events(start: str | dt.date, end: str | dt.date) -> pd.DataFrame:
    """Every event day from ``start`` to ``end`` inclusive.

    Returns:
        ``event`` (label) and ``ds`` (datetime64), sorted by ``ds``; a day in two windows keeps the
        label listed first (Black Friday before the retailer's own events).
    """
    start, end = as_date(start), as_date(end)
    rows = [(name, day) for year in range(start.year, end.year + 1) for name, day in _year_events(year)
            if start <= day <= end]
    frame = pd.DataFrame(rows, columns=["event", "ds"])
    frame["ds"] = pd.to_datetime(frame["ds"])
    extra = _extra_events(start, end)
    if len(extra):
        frame = pd.concat([frame, extra], ignore_index=True)
    return frame.drop_duplicates("ds", keep="first").sort_values("ds", ignore_index=True)


def event_labels(days: pd.DatetimeIndex | pd.Series) -> pd.Series:
    """The event label of each day (``None`` on ordinary days), aligned with ``days``."""
    days = pd.DatetimeIndex(days)
    if len(days) == 0:
        return pd.Series([], dtype=object)
    table = retail_events(days.min().date(), days.max().date())
    labels = pd.Series(table["event"].to_numpy(dtype=object), index=table["ds"])
    values = labels.reindex(days.normalize()).to_numpy(dtype=object, copy=True)
    values[pd.isna(values)] = None
    return pd.Series(values, dtype=object)
