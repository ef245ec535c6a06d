"""One input format for analysts: a long-format sales history file, read and checked once.

The file (CSV, or Parquet by its ``.parquet``/``.pq`` suffix) has one row per item, location and period:

* ``item``, ``location``: identifiers (text).
* ``date``: the period. A date (``2012-02-03``; a datetime is accepted at midnight only) or an integer
  period index. Integer periods count from :data:`PERIOD_ANCHOR` (Monday 2000-01-03): period ``p`` is
  ``p`` days after it with ``--freq D`` and ``p`` weeks after it with ``--freq W``. Weekly dates must all
  fall on one weekday (the day the retailer's week starts or ends).
* ``units``: units sold in the period. An empty cell, like a period without a row, is a missing
  period: unknown, not zero (``fill_missing="zero"`` makes both zero sales). Negative units (net
  returns) count as zero demand.
* Known regressors, only those named (``--regressors price,deal,feat``): numbers, or booleans
  ``True``/``False`` read as 1/0, known in every row (write 0 for "no promotion").
* ``unit_cost``, ``lead_time`` (optional, lead time in periods): used by the replay simulator only.

Other columns are ignored. The result is a complete grid per series, from its first row to the file's
last period; regressors and the optional columns of the periods the file does not hold carry the
series' previous value forward (a price holds until it changes). Every problem raises
:class:`HistoryFileError` (a ``ValueError``) whose message names the file, the column, the first
offending row (the 1-based line number for CSV, the 1-based row for Parquet) and the fix.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

REQUIRED = ("item", "location", "date", "units")
OPTIONAL = ("unit_cost", "lead_time")
FREQS = ("D", "W")
FILL_MISSING = ("missing", "zero")
HORIZON = {"D": 28, "W": 13}
SEASON_LENGTH = {"D": 7, "W": 52}
#: Day 0 / week 0 of an integer period index (a Monday).
PERIOD_ANCHOR = pd.Timestamp("2000-01-03")
_STEP = {"D": pd.Timedelta(days=1), "W": pd.Timedelta(days=7)}
_BOOLEANS = {"true": 1.0, "false": 0.0}
_INTEGER = re.compile(r"^[+-]?\d+$")

COLUMNS_HELP = (
    "The history file is long format, one row per item, location and period: item, location, date "
    "(YYYY-MM-DD, or an integer period counted in days or weeks from Monday 2000-01-03), units (units "
    "sold; an empty cell or absent period is unknown, negative units count as zero), the regressor "
    "columns named in --regressors (numbers or True/False, known in every row), and optionally "
    "unit_cost and lead_time (periods; replay only). Weekly dates all fall on one weekday."
)


class HistoryFileError(ValueError):
    """A history file that cannot be read as documented; the message says where and how to fix it."""


@dataclass(frozen=True)
class HistoryFile:
    """A checked history: one row per ``unique_id`` x period on a complete grid, sorted by ``unique_id, ds``.

    Attributes:
        frame: ``unique_id`` (``"<location>|<item>"``), ``item``, ``location``, ``ds`` (datetime64[ns]),
            ``y`` (float64, NaN for a missing period), one float64 column per regressor, and
            ``unit_cost`` / ``lead_time`` when the file has them.
        freq: ``"D"`` or ``"W"``.
        regressors: the regressor columns, in the order named.
        path: the file read.
    """

    frame: pd.DataFrame
    freq: str
    regressors: tuple[str, ...]
    path: Path

    @property
    def horizon(self) -> int:
        """Default forecast horizon: 28 days or 13 weeks."""
        return HORIZON[self.freq]

    @property
    def season_length(self) -> int:
        """Season in periods: 7 for daily data, 52 for weekly data."""
        return SEASON_LENGTH[self.freq]


@dataclass
class _Source:
    """The raw table and how to name its rows in messages."""

    path: Path
    raw: pd.DataFrame
    csv: bool

    def row(self, i: int) -> str:
        """Where row ``i`` (0-based data row) is: the file's line for CSV, the 1-based row for Parquet."""
        return f"line {i + 2}" if self.csv else f"row {i + 1}"

    def fail(self, message: str) -> HistoryFileError:
        return HistoryFileError(f"{self.path}: {message}")


def read_history_file(path: str | Path, *, freq: str = "D", regressors: Sequence[str] = (),
                      fill_missing: str = "missing") -> HistoryFile:
    """Read and check a history file (see the module docstring for its columns).

    Args:
        path: CSV file, or Parquet by its ``.parquet``/``.pq`` suffix.
        freq: ``"D"`` (daily) or ``"W"`` (weekly).
        regressors: columns to read as known regressors.
        fill_missing: ``"missing"`` (absent periods and empty ``units`` are NaN) or ``"zero"`` (zero sales).

    Returns:
        The history on a complete grid.

    Raises:
        HistoryFileError: naming the file, the column, the first offending row and the fix.
    """
    path = Path(path)
    if freq not in FREQS:
        raise HistoryFileError(f"{path}: freq must be 'D' or 'W', got {freq!r}")
    if fill_missing not in FILL_MISSING:
        raise HistoryFileError(f"{path}: fill_missing must be 'missing' or 'zero', got {fill_missing!r}")
    if isinstance(regressors, str):
        raise HistoryFileError(f"{path}: regressors must be a sequence of column names, got the string "
                               f"{regressors!r}")
    src = _read(path)
    regs = tuple(regressors)
    _check_columns(src, regs)
    if src.raw.empty:
        raise src.fail("the file has a header but no rows; it needs at least one row of item, location, date, units")
    item = _text(src, "item")
    location = _text(src, "location")
    dates = _dates(src, freq)
    _check_duplicates(src, item, location, dates)
    units = np.clip(_numbers(src, "units", allow_empty=True), 0.0, None)
    values = {name: _numbers(src, name, allow_empty=False, booleans=True) for name in regs}
    values.update({name: _numbers(src, name, allow_empty=True) for name in OPTIONAL if name in src.raw.columns})
    frame = _grid(item, location, dates, units, values, freq)
    if fill_missing == "zero":
        frame["y"] = frame["y"].fillna(0.0)
    return HistoryFile(frame=frame, freq=freq, regressors=regs, path=path)


def _read(path: Path) -> _Source:
    parquet = path.suffix.lower() in {".parquet", ".pq"}
    if not path.is_file():
        raise HistoryFileError(f"{path}: no such file; give the path of a CSV or Parquet history file")
    try:
        raw = pd.read_parquet(path) if parquet else pd.read_csv(path, dtype=str, skipinitialspace=True)
    except pd.errors.EmptyDataError:
        raise HistoryFileError(f"{path}: the file is empty; it needs a header line item,location,date,units "
                               f"and at least one row") from None
    except (ValueError, OSError) as exc:
        kind = "Parquet" if parquet else "CSV"
        raise HistoryFileError(f"{path}: cannot be read as {kind} ({exc}); save it as CSV with a header line, "
                               f"or as Parquet with a .parquet suffix") from None
    raw.columns = [str(c).strip() for c in raw.columns]
    return _Source(path=path, raw=raw.reset_index(drop=True), csv=not parquet)


def _check_columns(src: _Source, regressors: tuple[str, ...]) -> None:
    columns = list(src.raw.columns)
    listing = ", ".join(columns) if columns else "(none)"
    for name in REQUIRED:
        if name not in columns:
            raise src.fail(f"required column '{name}' is not in the file; its columns are {listing}. "
                           f"Rename the column that holds it to '{name}' (required: {', '.join(REQUIRED)})")
    for name in regressors:
        if name in REQUIRED or name in OPTIONAL:
            raise src.fail(f"column '{name}' (named in --regressors) is a reserved column, not a regressor. "
                           f"Drop it from --regressors")
        if name not in columns:
            raise src.fail(f"column '{name}' (named in --regressors) is not in the file; its columns are "
                           f"{listing}. Add it or drop it from --regressors")
    duplicated = sorted({c for c in columns if columns.count(c) > 1})
    if duplicated:
        raise src.fail(f"column '{duplicated[0]}' appears more than once in the header; rename or drop the copy")


def _text(src: _Source, column: str) -> np.ndarray:
    values = src.raw[column]
    empty = values.isna().to_numpy() | (values.astype("string").str.strip() == "").fillna(True).to_numpy()
    if empty.any():
        i = int(np.flatnonzero(empty)[0])
        raise src.fail(f"column '{column}' is empty at {src.row(i)}; every row needs an {column}")
    return values.astype(str).str.strip().to_numpy(dtype=object)


def _numbers(src: _Source, column: str, *, allow_empty: bool, booleans: bool = False) -> np.ndarray:
    """A column as float64; text that is no number (nor True/False where ``booleans``) is an error."""
    values = src.raw[column]
    if pd.api.types.is_bool_dtype(values) or pd.api.types.is_numeric_dtype(values):
        out = values.astype("float64").to_numpy()
        missing, bad = np.isnan(out), np.zeros(len(out), dtype=bool)
    else:
        text = values.astype("string").str.strip()
        missing = (text.isna() | (text == "")).fillna(True).to_numpy(dtype=bool)
        out = pd.to_numeric(text.mask(missing), errors="coerce").astype("float64").to_numpy()
        if booleans:
            flags = text.str.lower().map(_BOOLEANS).astype("float64").to_numpy()
            out = np.where(np.isnan(out), flags, out)
        bad = ~missing & np.isnan(out)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        kinds = "a number or True/False" if booleans else "a number"
        raise src.fail(f"column '{column}' holds {src.raw[column].iloc[i]!r} at {src.row(i)}, not {kinds}; "
                       f"fix that value")
    if not allow_empty and missing.any():
        i = int(np.flatnonzero(missing)[0])
        raise src.fail(f"column '{column}' is empty at {src.row(i)}; a regressor must be known in every row "
                       f"(write 0 where it does not apply)")
    return out


def _dates(src: _Source, freq: str) -> np.ndarray:
    """The ``date`` column as datetime64[ns]: dates, midnight datetimes or integer periods from the anchor."""
    values = src.raw["date"]
    step = _STEP[freq]
    if pd.api.types.is_integer_dtype(values):
        return _from_periods(values.to_numpy(dtype=np.int64), step)
    if pd.api.types.is_datetime64_any_dtype(values):
        parsed = pd.Series(values).dt.tz_localize(None) if getattr(values.dt, "tz", None) else pd.Series(values)
    else:
        text = values.astype("string").str.strip()
        if len(text) and text.fillna("").str.fullmatch(_INTEGER.pattern).all():
            return _from_periods(text.astype("int64").to_numpy(dtype=np.int64), step)
        parsed = pd.to_datetime(text, errors="coerce", format="ISO8601")
        retry = parsed.isna() & text.notna()
        if retry.any():
            parsed[retry] = pd.to_datetime(text[retry], errors="coerce", format="mixed")
        bad = parsed.isna().to_numpy()
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise src.fail(f"column 'date' holds {values.iloc[i]!r} at {src.row(i)}, which is not a date; "
                           f"write dates as YYYY-MM-DD or integer period numbers")
    parsed = pd.Series(pd.DatetimeIndex(parsed).tz_localize(None) if parsed.dt.tz else parsed)
    timed = (parsed != parsed.dt.normalize()).to_numpy()
    if timed.any():
        i = int(np.flatnonzero(timed)[0])
        raise src.fail(f"column 'date' holds {values.iloc[i]!r} at {src.row(i)}, a time of day; give one date "
                       f"per period (drop the time, or total the period's sales first)")
    out = parsed.to_numpy(dtype="datetime64[ns]")
    if freq == "W":
        _check_weekly(src, pd.DatetimeIndex(out))
    return out


def _from_periods(periods: np.ndarray, step: pd.Timedelta) -> np.ndarray:
    return np.datetime64(PERIOD_ANCHOR, "ns") + periods * np.timedelta64(step.value, "ns")


def _check_weekly(src: _Source, dates: pd.DatetimeIndex) -> None:
    weekdays = dates.weekday.to_numpy()
    if len(weekdays) == 0 or (weekdays == weekdays[0]).all():
        return
    counts = np.bincount(weekdays, minlength=7)
    usual = int(counts.argmax())
    names = list(pd.Timestamp("2000-01-03") + pd.to_timedelta(np.arange(7), unit="D"))
    if counts[usual] >= 0.9 * len(weekdays):
        i = int(np.flatnonzero(weekdays != usual)[0])
        raise src.fail(f"column 'date' holds {dates[i].date()} at {src.row(i)}, a {names[weekdays[i]].day_name()}, "
                       f"off the weekly grid of {names[usual].day_name()}s the other rows follow; move it to its "
                       f"week's {names[usual].day_name()} (and add its units to that week)")
    i = int(np.flatnonzero(weekdays != weekdays[0])[0])
    raise src.fail(f"column 'date' holds dates on {int((counts > 0).sum())} different weekdays (first "
                   f"{names[weekdays[0]].day_name()}, then a {names[weekdays[i]].day_name()} at {src.row(i)}); "
                   f"weekly dates must all fall on one weekday. Use --freq D for daily data, or total the sales "
                   f"per week dated by one weekday")


def _check_duplicates(src: _Source, item: np.ndarray, location: np.ndarray, dates: np.ndarray) -> None:
    keys = pd.DataFrame({"item": item, "location": location, "date": dates})
    repeated = keys.duplicated(keep=False).to_numpy()
    if not repeated.any():
        return
    later = keys.duplicated(keep="first").to_numpy()
    j = int(np.flatnonzero(later)[0])
    same = np.flatnonzero(repeated & (keys == keys.iloc[j]).all(axis=1).to_numpy())
    i = int(same[0])
    raise src.fail(f"columns 'item', 'location', 'date' repeat at {src.row(i)} and {src.row(j)} (item {item[j]!r}, "
                   f"location {location[j]!r}, date {pd.Timestamp(dates[j]).date()}); keep one row per item, "
                   f"location and period (add up the units of the repeated rows)")


def _grid(item: np.ndarray, location: np.ndarray, dates: np.ndarray, units: np.ndarray,
          values: dict[str, np.ndarray], freq: str) -> pd.DataFrame:
    """Scatter the rows onto each series' complete grid, from its first row to the file's last period."""
    step = _STEP[freq].value
    ids = pd.Series(location, dtype=object).astype(str) + "|" + pd.Series(item, dtype=object).astype(str)
    codes, uniques = pd.factorize(ids, sort=True)
    start = dates.min()
    period = ((dates - start).astype(np.int64) // step).astype(np.int64)
    n_series, n_periods = len(uniques), int(period.max()) + 1
    first = np.full(n_series, n_periods, dtype=np.int64)
    np.minimum.at(first, codes, period)
    dense_y = np.full((n_series, n_periods), np.nan)
    dense_y[codes, period] = units
    keep = np.arange(n_periods)[None, :] >= first[:, None]
    rows, cols = np.nonzero(keep)
    frame = pd.DataFrame({
        "unique_id": np.asarray(uniques, dtype=object)[rows],
        "ds": (start + cols.astype(np.int64) * step).astype("datetime64[ns]"),
        "y": dense_y[rows, cols],
    })
    series_item = np.empty(n_series, dtype=object)
    series_location = np.empty(n_series, dtype=object)
    series_item[codes], series_location[codes] = item, location
    frame.insert(1, "item", series_item[rows])
    frame.insert(2, "location", series_location[rows])
    for name in ("unique_id", "item", "location"):
        frame[name] = frame[name].astype(str)
    for name, column in values.items():
        dense = np.full((n_series, n_periods), np.nan)
        dense[codes, period] = column
        frame[name] = _carry_forward(dense, keep)[rows, cols]
    return frame


def _carry_forward(dense: np.ndarray, known: np.ndarray) -> np.ndarray:
    """Fill each row's NaN with its previous non-NaN value (the series' first value before it)."""
    has = ~np.isnan(dense) & known
    idx = np.where(has, np.arange(dense.shape[1])[None, :], 0)
    np.maximum.accumulate(idx, axis=1, out=idx)
    filled = dense[np.arange(dense.shape[0])[:, None], idx]
    return np.where(has | ~np.isnan(filled), filled, np.nan)


def add_history_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``--input``, ``--freq``, ``--regressors``, ``--fill-missing`` and ``--horizon`` to a parser.

    Args:
        parser: the command's parser; its epilog gets the description of the file's columns.
    """
    parser.add_argument("--input", required=True, type=Path, metavar="FILE",
                        help="history file, CSV or Parquet (.parquet suffix); its columns are described below")
    parser.add_argument("--freq", choices=FREQS, default="D",
                        help="D: daily periods; W: weekly periods (every date on one weekday)")
    parser.add_argument("--regressors", default="", metavar="A,B,C",
                        help="comma list of known-regressor columns of the file (numbers or True/False); "
                             "no column is used unless named here")
    parser.add_argument("--fill-missing", choices=FILL_MISSING, default="missing",
                        help="missing: a period without a row (or with empty units) is unknown; zero: it "
                             "sold nothing")
    parser.add_argument("--horizon", type=int, default=None, metavar="N",
                        help="periods to forecast or hold out (default 28 with --freq D, 13 with --freq W)")
    parser.epilog = ((parser.epilog + "\n\n") if parser.epilog else "") + COLUMNS_HELP


def history_from_args(args: argparse.Namespace) -> HistoryFile:
    """Read the history file named by the arguments of :func:`add_history_arguments`.

    Args:
        args: parsed arguments.

    Returns:
        The checked history.

    Raises:
        HistoryFileError: when the file or ``--horizon`` is not usable.
    """
    if args.horizon is not None and args.horizon < 1:
        raise HistoryFileError(f"{args.input}: --horizon must be at least 1, got {args.horizon}")
    regressors = tuple(r.strip() for r in str(args.regressors or "").split(",") if r.strip())
    return read_history_file(args.input, freq=args.freq, regressors=regressors, fill_missing=args.fill_missing)
