"""Entry checks of :func:`models.forecasting.forecast`: arguments, the long history's columns and dtypes,
regressors; and the packing of the validated history into a dense ``[n_series, T]`` matrix.

Every check raises ``ValueError`` naming the column or argument and the problem, before any work is done.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from models.forecasting.windows import DEFAULT_MIN_HISTORY, FREQUENCIES

__all__ = ["Columns", "Grid", "check_arguments", "grid", "pack", "pack_grid", "validate_history", "validate_regressors"]


def check_arguments(horizon: int, season_length: int, backtest_windows: int, freq: str,
                    min_history: int | None) -> int:
    """Check the scalar arguments of :func:`~models.forecasting.forecast`.

    Returns:
        ``min_history``, or the frequency's default when it is ``None``.

    Raises:
        ValueError: naming the argument and its value.
    """
    if not isinstance(horizon, (int, np.integer)) or horizon < 1:
        raise ValueError(f"horizon must be a positive integer, got {horizon!r}")
    if season_length < 1:
        raise ValueError(f"season_length must be >= 1, got {season_length}")
    if backtest_windows < 0:
        raise ValueError(f"backtest_windows must be >= 0, got {backtest_windows}")
    if freq not in FREQUENCIES:
        raise ValueError(f"freq must be one of {sorted(FREQUENCIES)}, got {freq!r}")
    if min_history is None:
        min_history = DEFAULT_MIN_HISTORY[freq]
    if min_history < 1:
        raise ValueError(f"min_history must be >= 1, got {min_history}")
    return min_history


@dataclass
class Columns:
    """Validated input columns as arrays (no copy of the caller's frame)."""

    unique_id: pd.Series
    day: np.ndarray  # int64 days since the epoch
    y: np.ndarray  # float64
    censored: np.ndarray | None  # bool


def validate_history(history: pd.DataFrame) -> Columns:
    """Check columns and dtypes and return the columns as arrays.

    Raises:
        ValueError: naming the column and the problem.
    """
    if not isinstance(history, pd.DataFrame):
        raise ValueError(f"history must be a pandas DataFrame, got {type(history).__name__}")
    missing = [c for c in ("unique_id", "ds", "y") if c not in history.columns]
    if missing:
        raise ValueError(f"history is missing required column(s): {', '.join(missing)}")

    uid = history["unique_id"]
    if uid.isna().any():
        raise ValueError(f"unique_id has {int(uid.isna().sum())} missing value(s)")
    if not pd.api.types.is_string_dtype(uid):
        raise ValueError(f"unique_id must hold strings, got dtype {uid.dtype}")

    ds = history["ds"]
    if isinstance(ds.dtype, pd.DatetimeTZDtype):
        raise ValueError("ds must be timezone-naive dates, got a timezone-aware column")
    if not pd.api.types.is_datetime64_dtype(ds):
        # Only date/datetime objects are converted: parsing strings would hide a format the
        # upstream extract should have fixed.
        if ds.dtype != object or pd.api.types.infer_dtype(ds, skipna=True) not in ("date", "datetime", "datetime64"):
            raise ValueError(f"ds must be datetime64 or date, got dtype {ds.dtype}")
        try:
            ds = pd.to_datetime(ds)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"ds must be datetime64 or date, could not convert: {exc}") from exc
    if ds.isna().any():
        raise ValueError(f"ds has {int(ds.isna().sum())} missing value(s)")
    stamps = ds.to_numpy()
    days = stamps.astype("datetime64[D]")
    if (stamps != days).any():
        raise ValueError("ds must be daily dates without a time of day")

    y = history["y"]
    if pd.api.types.is_bool_dtype(y) or not pd.api.types.is_numeric_dtype(y):
        raise ValueError(f"y must be numeric, got dtype {y.dtype}")

    censored = None
    if "censored" in history.columns:
        cens = history["censored"]
        if cens.isna().any() or not pd.api.types.is_bool_dtype(cens):
            raise ValueError(f"censored must be a bool column without missing values, got dtype {cens.dtype}")
        censored = cens.to_numpy(dtype=bool)
    return Columns(
        unique_id=uid,
        day=days.view(np.int64),
        y=y.to_numpy(dtype=np.float64, na_value=np.nan),
        censored=censored,
    )


@dataclass(frozen=True)
class Grid:
    """Where each history row falls on the packed ``[n_series, T]`` grid (see :func:`grid`)."""

    codes: np.ndarray  # row index of each history row's series
    period: np.ndarray  # column index of each history row
    ids: np.ndarray  # sorted series ids, one per row of the grid
    n_periods: int
    origin: pd.Timestamp

    @property
    def key(self) -> np.ndarray:
        """Flat cell index of each history row in a C-ordered ``[n_series, T]`` matrix."""
        return self.codes.astype(np.int64) * self.n_periods + self.period


def grid(cols: Columns, period_days: int = 1) -> Grid:
    """The packed grid of the validated history: series sorted by id, periods ending at the origin.

    Raises:
        ValueError: on weekly dates off the weekly grid.
    """
    codes, ids = pd.factorize(cols.unique_id, sort=True)
    start = int(cols.day.min())
    offset = cols.day - start
    if period_days > 1:
        off_grid = offset % period_days != 0
        if off_grid.any():
            bad = np.datetime64(int(cols.day[np.flatnonzero(off_grid)[0]]), "D")
            raise ValueError(
                f"weekly history must have every ds on the same weekday as the first "
                f"({np.datetime64(start, 'D')}); {int(off_grid.sum())} row(s) are not, e.g. ds={bad}"
            )
    period = offset // period_days
    t = int(period.max()) + 1
    origin = pd.Timestamp(np.datetime64(start + (t - 1) * period_days, "D"))
    return Grid(codes, period, np.asarray(ids, dtype=object), t, origin)


def pack(cols: Columns, period_days: int = 1) -> tuple[np.ndarray, np.ndarray, pd.Timestamp]:
    """:func:`pack_grid` without the grid: ``(Y, ids, origin)``."""
    Y, g = pack_grid(cols, period_days)
    return Y, g.ids, g.origin


def pack_grid(cols: Columns, period_days: int = 1) -> tuple[np.ndarray, Grid]:
    """Pack long history into ``Y[n_series, T]`` on a common index of periods ending at the origin.

    A period is ``period_days`` days (1: daily, 7: weekly); every ``ds`` must fall on the grid that
    starts at the earliest ``ds``, so weekly data must be stamped on one weekday.

    Days between a series' first row and the origin without a row are zero sales; days before its
    first row, censored days and non-finite ``y`` are ``NaN`` (unknown demand). Negative ``y`` (net
    returns) count as zero demand: returns are not negative customer demand.

    Returns:
        ``(Y, grid)``: the matrix and where each history row sits in it (``grid.ids`` sorted, matching
        the rows of ``Y``).

    Raises:
        ValueError: on duplicate ``(unique_id, ds)`` rows, or weekly dates off the weekly grid.
    """
    g = grid(cols, period_days)
    n, t = len(g.ids), g.n_periods
    # Duplicate check on the packed key: a bincount over the cells is far cheaper than a frame-level
    # duplicated() on millions of rows.
    key = g.key
    counts = np.bincount(key, minlength=n * t)
    if (counts > 1).any():
        cell = int(np.flatnonzero(counts > 1)[0])
        first_day = g.origin - pd.Timedelta(days=(t - 1 - cell % t) * period_days)
        raise ValueError(
            f"history has {int((counts > 1).sum())} duplicate (unique_id, ds) pair(s), "
            f"e.g. unique_id={g.ids[cell // t]!r} ds={np.datetime64(first_day, 'D')}"
        )
    del counts

    first = np.full(n, t, dtype=np.int64)
    np.minimum.at(first, g.codes, g.period)
    Y = np.where(np.arange(t)[None, :] >= first[:, None], 0.0, np.nan)
    flat = Y.ravel()
    y = cols.y
    with np.errstate(invalid="ignore"):
        flat[key] = np.where(np.isfinite(y), np.maximum(y, 0.0), np.nan)
    if cols.censored is not None:
        flat[key[cols.censored]] = np.nan
    return Y, g


def validate_regressors(history: pd.DataFrame, future: pd.DataFrame | None, regressors: Sequence[str]) -> None:
    """Regressor columns exist and are numeric in ``history`` and ``future``.

    Raises:
        ValueError: naming the frame and the column.
    """
    if isinstance(regressors, str):
        raise ValueError(f"regressors must be a sequence of column names, got the string {regressors!r}")
    for frame_name, frame in (("history", history), ("future", future)):
        if frame is None:
            continue
        needed = ["unique_id", "ds"] if frame_name == "future" else []
        missing = [c for c in [*needed, *regressors] if c not in frame.columns]
        if missing:
            raise ValueError(f"{frame_name} is missing regressor column(s): {', '.join(missing)}")
        for col in regressors:
            if pd.api.types.is_bool_dtype(frame[col]) or not pd.api.types.is_numeric_dtype(frame[col]):
                raise ValueError(f"{frame_name}.{col} must be numeric, got dtype {frame[col].dtype}")
