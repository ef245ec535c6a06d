"""The demand history a replay runs on: one dense ``[series, periods]`` matrix and what is known about it.

A panel is built from the analyst's long-format history file (:mod:`include.demand.history_file`) by
:func:`panel_from_history`, or from a frame of the same shape by :func:`panel_from_frame`. It keeps the
difference between a period with no sales (0) and a period the history does not cover (``NaN``): the
forecaster learns nothing from the latter, and the replay counts it as no demand.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from include.demand.history_file import HistoryFile

__all__ = ["DemandPanel", "panel_from_frame", "panel_from_history"]

PERIOD = {"D": "D", "W": "7D"}


@dataclass
class DemandPanel:
    """Demand history packed as a dense matrix, one row per ``location|item`` series.

    Attributes:
        ids: ``[n]`` series ids, ``location|item``, sorted.
        dates: ``[T]`` period start dates.
        demand: ``[n, T]`` demand per period, ``NaN`` where the history says nothing (before a series
            starts, or a missing period).
        freq: ``"D"`` or ``"W"``.
        unit_cost: ``[n]`` cost per unit (inventory value), when known.
        lead_time: ``[n]`` lead time in periods, when known per series.
        regressors: Known-in-advance driver matrices ``[n, T]`` by column name (price, promotion depth,
            deal and feature flags, markdowns...), known over the whole history as a published plan is.
        events: ``[n, T]`` event label per period (``None`` when none), when the history has events.
    """

    ids: np.ndarray
    dates: pd.DatetimeIndex
    demand: np.ndarray
    freq: str
    unit_cost: np.ndarray | None = None
    lead_time: np.ndarray | None = None
    regressors: dict[str, np.ndarray] = field(default_factory=dict)
    events: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.freq not in PERIOD:
            raise ValueError(f"freq must be 'D' or 'W', got {self.freq!r}")
        n, t = self.demand.shape
        if len(self.ids) != n or len(self.dates) != t:
            raise ValueError(f"demand is {n} x {t} but there are {len(self.ids)} ids and {len(self.dates)} dates")
        for name, values in self.regressors.items():
            if values.shape != (n, t):
                raise ValueError(f"regressor {name!r} is {values.shape}, expected {(n, t)}")

    @property
    def period_days(self) -> int:
        """Days one period lasts."""
        return 7 if self.freq == "W" else 1

    @property
    def served_demand(self) -> np.ndarray:
        """Demand the replay serves: unknown periods are no demand."""
        return np.nan_to_num(self.demand, nan=0.0)


def panel_from_frame(frame: pd.DataFrame, freq: str, *, regressors: Sequence[str] = (),
                     events: str | None = None) -> DemandPanel:
    """A panel from a long frame ``unique_id, ds, y`` plus the named regressor columns and, when present,
    ``unit_cost`` and ``lead_time`` (a series takes its median) and an ``events`` label column.

    Rows must be unique per ``unique_id, ds``; ``y`` may be ``NaN`` (unknown) and negative ``y`` counts as
    zero demand. Periods with no row are unknown demand.

    Raises:
        ValueError: on a missing column, duplicate rows or no rows.
    """
    if freq not in PERIOD:
        raise ValueError(f"freq must be 'D' or 'W', got {freq!r}")
    needed = ["unique_id", "ds", "y", *regressors, *([events] if events else [])]
    missing = [c for c in needed if c not in frame.columns]
    if missing:
        raise ValueError(f"demand frame lacks column(s) {missing}")
    if frame.empty:
        raise ValueError("demand frame has no rows")
    ds = pd.to_datetime(frame["ds"])
    ids, codes = np.unique(frame["unique_id"].astype(str).to_numpy(), return_inverse=True)
    dates = pd.date_range(ds.min(), ds.max(), freq=PERIOD[freq])
    col = dates.get_indexer(ds)
    if (col < 0).any():
        raise ValueError(f"{int((col < 0).sum())} row(s) are off the {freq} grid starting {dates[0].date()}")
    key = codes.ravel() * len(dates) + col
    if len(np.unique(key)) != len(key):
        raise ValueError("demand frame has duplicate (unique_id, ds) rows")

    def dense(values: np.ndarray, fill: float = np.nan) -> np.ndarray:
        out = np.full((len(ids), len(dates)), fill)
        out.ravel()[key] = values
        return out

    y = pd.to_numeric(frame["y"], errors="coerce").to_numpy(float)
    demand = dense(np.where(np.isfinite(y), np.maximum(y, 0.0), np.nan))
    regs = {name: dense(np.nan_to_num(pd.to_numeric(frame[name], errors="coerce").to_numpy(float)), 0.0)
            for name in regressors}
    labels = None
    if events:
        labels = np.full((len(ids), len(dates)), None, dtype=object)
        labels.ravel()[key] = frame[events].astype(object).where(frame[events].notna(), None).to_numpy()
    extra = {}
    for name in ("unit_cost", "lead_time"):
        if name in frame.columns:
            per = pd.Series(pd.to_numeric(frame[name], errors="coerce").to_numpy(float)).groupby(codes.ravel())
            extra[name] = per.median().reindex(range(len(ids))).to_numpy(float)
    return DemandPanel(ids=ids.astype(object), dates=dates, demand=demand, freq=freq, regressors=regs, events=labels,
                       **extra)


def panel_from_history(history: HistoryFile, *, lead_time_default: float | None = None) -> DemandPanel:
    """The panel of an analyst's history file, with the regressors it names.

    Args:
        history: The file, read and checked.
        lead_time_default: Lead time in periods for series whose ``lead_time`` column is empty (only
            when the file has that column; otherwise the replay's configured lead time applies).
    """
    panel = panel_from_frame(history.frame, history.freq, regressors=history.regressors)
    if panel.lead_time is not None and lead_time_default is not None:
        panel.lead_time = np.where(np.isfinite(panel.lead_time), panel.lead_time, float(lead_time_default))
    return panel
