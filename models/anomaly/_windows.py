"""Shared input handling for the window-over-window detectors (margin leakage, return spikes).

Both compare a SKU x channel's recent window with its own baseline window just before it, on rows
keyed by a calendar ``date``; this module validates those inputs and labels each row with its window.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd

#: Sales arrive as ``store``/``ecommerce``; the returns contract books mail returns as ``web`` and the
#: order system knows ``web``/``app``. Both ecommerce spellings must meet the same sales to form a rate.
CHANNEL_ALIASES = {"web": "ecommerce", "app": "ecommerce"}
RECENT = "recent"
BASELINE = "baseline"

AsOf = str | dt.date | pd.Timestamp


def require(frame: pd.DataFrame, name: str, columns: list[str]) -> None:
    """Raise ``ValueError`` naming every column of ``columns`` missing from ``frame``."""
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(f"{name} is missing required column(s): {', '.join(missing)}")


def cutoff_date(as_of: AsOf) -> pd.Timestamp:
    """``as_of`` as a midnight timestamp; ``ValueError`` when it is not a date."""
    try:
        cutoff = pd.Timestamp(as_of)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"as_of must be a date, got {as_of!r}") from exc
    if pd.isna(cutoff):
        raise ValueError(f"as_of must be a date, got {as_of!r}")
    return cutoff.normalize()


def empty_frame(columns: list[str], text: set[str], counts: set[str]) -> pd.DataFrame:
    """A frame with ``columns`` and no rows, typed as a filled one would be."""

    def dtype(col: str) -> object:
        if col in text:
            return object
        return np.int64 if col in counts else np.float64

    return pd.DataFrame({c: pd.Series(dtype=dtype(c)) for c in columns})


def label_windows(
    frame: pd.DataFrame,
    name: str,
    columns: list[str],
    *,
    cutoff: pd.Timestamp,
    recent_days: int,
    baseline_days: int,
) -> pd.DataFrame:
    """``columns`` of ``frame`` with channels normalised and a ``window`` label, other days dropped.

    The recent window is the ``recent_days`` days ending on ``cutoff`` (inclusive); the baseline is the
    ``baseline_days`` days just before it. Rows after ``cutoff`` are unknown on that date and are dropped,
    so a re-run for a past date sees what was known then.

    Raises:
        ValueError: on non-positive window lengths or unparsable dates.
    """
    if recent_days < 1 or baseline_days < 1:
        raise ValueError(f"recent_days and baseline_days must be >= 1, got {recent_days} and {baseline_days}")
    df = frame[columns].copy()
    try:
        df["date"] = pd.to_datetime(df["date"]).dt.normalize()
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name}.date must hold dates: {exc}") from exc
    df["sku"] = df["sku"].astype(str)
    df["channel"] = df["channel"].astype(str).str.lower().replace(CHANNEL_ALIASES)
    recent_start = cutoff - pd.Timedelta(days=recent_days)
    baseline_start = recent_start - pd.Timedelta(days=baseline_days)
    dates = df["date"]
    window = np.select(
        [(dates > recent_start) & (dates <= cutoff), (dates > baseline_start) & (dates <= recent_start)],
        [RECENT, BASELINE],
        default="",
    )
    return df.assign(window=window)[window != ""]


def window_sums(frame: pd.DataFrame, keys: list[str], values: list[str]) -> pd.DataFrame:
    """Sum ``values`` per ``keys`` x window, widened to ``<value>_recent`` / ``<value>_baseline``.

    Keys seen in only one window get zeros in the other, so "nothing returned" is 0, not missing.
    """
    wide = frame.groupby([*keys, "window"], sort=True)[values].sum().unstack("window", fill_value=0)
    wide = wide.reindex(
        columns=pd.MultiIndex.from_product([values, [RECENT, BASELINE]]), fill_value=0
    ).astype(np.float64)
    wide.columns = [f"{value}_{window}" for value, window in wide.columns]
    return wide.reset_index()
