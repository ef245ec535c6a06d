"""Datasets of the forecast accuracy benchmark (in the shape of an analyst history file), windows and scores.

Every loader returns a :class:`Dataset` whose frame has the columns of
:class:`include.demand.history_file.HistoryFile` (``unique_id`` as ``"<location>|<item>"``, ``item``,
``location``, ``ds``, ``y``, the regressor columns) and, where the data names events, an ``event`` column
(event label or ``None``) that the models read as calendar events.

* **M5 sample**: 50 Walmart item x store series, daily units; regressors ``snap`` (1 on the SNAP days
  of the series' state) and the calendar's events (``event_name_1``); the last 28 days are held out.
* **Walmart**: weekly sales per store x department, series complete over the 143 weeks; regressors
  ``markdown1..5`` (``features.csv`` MarkDown1..5 in tens of thousands of dollars, NaN = 0) and
  ``holiday`` (IsHoliday as 0/1), the holiday weeks also as events; 3 rolling origins of 13 weeks.
* **world**: a generated world's uncensored demand with its promotion depth, price and retail events.
* **file**: any history file (:func:`include.demand.history_file.read_history_file`), with the
  regressors it names.

Below them, the rolling-origin windows and the scores (RMSSE, MASE) every model is measured with.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

KEYS = ["unique_id", "item", "location", "ds", "y"]


class DatasetError(ValueError):
    """A dataset that cannot be evaluated as asked (too short, or an unknown regressor)."""


@dataclass
class Dataset:
    """One benchmark dataset: history, frequency, evaluation windows and known regressors."""

    name: str
    frame: pd.DataFrame
    freq: str
    horizon: int
    season_length: int
    origins: int
    regressors: tuple[str, ...] = ()
    models: list[str] | None = None  # None: every model asked for
    extra: dict[str, object] = field(default_factory=dict)


def load_m5(data_dir: Path) -> Dataset:
    """M5 sample in long format, dated by ``calendar.csv``, with SNAP days and events."""
    wide = pd.read_csv(data_dir / "m5_sample50" / "m5_sample50_d1_d1969.csv.gz")
    calendar = pd.read_csv(data_dir / "m5_sample50" / "calendar.csv",
                           usecols=["date", "d", "event_name_1", "event_name_2", "snap_CA", "snap_TX", "snap_WI"])
    days = [c for c in wide.columns if c.startswith("d_")]
    long = wide.melt(id_vars=["item_id", "store_id", "state_id"], value_vars=days, var_name="d", value_name="y")
    long = long.merge(calendar, on="d", how="left", validate="many_to_one")
    if long["date"].isna().any():
        raise ValueError("calendar.csv does not cover every day column of the M5 sample")
    snap = np.select([long["state_id"] == s for s in ("CA", "TX", "WI")],
                     [long[f"snap_{s}"] for s in ("CA", "TX", "WI")], 0)
    event = long["event_name_1"].astype(object)
    frame = pd.DataFrame({
        "unique_id": (long["store_id"] + "|" + long["item_id"]).astype(str), "item": long["item_id"].astype(str),
        "location": long["store_id"].astype(str), "ds": pd.to_datetime(long["date"]).astype("datetime64[ns]"),
        "y": long["y"].astype(float), "snap": snap.astype(float), "event": event.where(event.notna(), None),
    })
    last = frame["ds"].max()
    window = calendar[pd.to_datetime(calendar["date"]).between(last - pd.Timedelta(days=27), last)]
    events = sorted(set(pd.concat([window["event_name_1"], window["event_name_2"]]).dropna()))
    return Dataset("m5_sample50", frame.sort_values(["unique_id", "ds"], ignore_index=True), "D", 28, 7, 1,
                   ("snap",), extra={"holdout_events": events})


#: Walmart's known regressors: the five markdowns and the holiday flag.
WALMART_REGRESSORS = tuple(f"markdown{i}" for i in range(1, 6)) + ("holiday",)


def load_walmart(data_dir: Path, regressors: Sequence[str] = WALMART_REGRESSORS) -> Dataset:
    """Walmart store x department weekly sales (complete series only) with markdowns and holidays.

    Args:
        data_dir: the shared data folder.
        regressors: which of :data:`WALMART_REGRESSORS` the models get.

    Raises:
        DatasetError: for a regressor Walmart does not have.
    """
    unknown = sorted(set(regressors) - set(WALMART_REGRESSORS))
    if unknown:
        raise DatasetError(f"Walmart has no regressor {unknown[0]!r}; choose from {', '.join(WALMART_REGRESSORS)}")
    folder = data_dir / "walmart_recruiting"
    raw = pd.read_csv(folder / "train.csv.zip", parse_dates=["Date"])
    features = pd.read_csv(folder / "features.csv", parse_dates=["Date"])
    marks = [f"MarkDown{i}" for i in range(1, 6)]
    raw = raw.merge(features[["Store", "Date", *marks]], on=["Store", "Date"], how="left", validate="many_to_one")
    # The four holiday weeks (Super Bowl, Labor Day, Thanksgiving, Christmas) fall in different months.
    holiday = raw["IsHoliday"].astype(bool)
    event = ("holiday_week_" + raw["Date"].dt.month_name().str.lower()).where(holiday, None)
    frame = pd.DataFrame({
        "unique_id": raw["Store"].astype(str) + "|" + raw["Dept"].astype(str), "item": raw["Dept"].astype(str),
        "location": raw["Store"].astype(str), "ds": raw["Date"].astype("datetime64[ns]"),
        "y": raw["Weekly_Sales"].astype(float),
        **{f"markdown{i}": raw[f"MarkDown{i}"].fillna(0.0).clip(lower=0.0) / 1e4 for i in range(1, 6)},
        "holiday": holiday.astype(float), "event": event.astype(object),
    })
    counts = frame.groupby("unique_id")["ds"].transform("size")
    frame = frame[counts == frame["ds"].nunique()].sort_values(["unique_id", "ds"], ignore_index=True)
    return Dataset(f"walmart_all{frame['unique_id'].nunique()}", frame, "W", 13, 52, 3, tuple(regressors))


def sample_series(data: Dataset, n: int, name: str) -> Dataset:
    """An evenly spaced sample of ``n`` series of ``data`` (all of them when ``n`` is 0 or too large)."""
    ids = np.sort(data.frame["unique_id"].unique())
    if not 0 < n < len(ids):
        return data
    picked = ids[np.linspace(0, len(ids) - 1, n).round().astype(int)]
    frame = data.frame[data.frame["unique_id"].isin(picked)].reset_index(drop=True)
    return Dataset(f"{name}{n}", frame, data.freq, data.horizon, data.season_length, data.origins,
                   data.regressors, data.models, dict(data.extra))


def load_world(preset: str | Mapping[str, int]) -> Dataset:
    """A generated world's uncensored daily demand with its promotion depth, list price and retail events,
    and each series' unit cost and lead time (its SKU's supplier's promised days).

    Args:
        preset: A generator preset name, or the fields of a :class:`~include.sample_data.generator.WorldConfig`.
    """
    from include.demand.regressors import REGRESSORS, known_regressors
    from include.sample_data.generator import PRESETS, WorldConfig, generate_world

    world = generate_world(PRESETS[preset] if isinstance(preset, str) else WorldConfig(**preset))
    td = world.true_demand
    frame = pd.DataFrame({"unique_id": (td["location_id"] + "|" + td["sku"]).astype(str), "item": td["sku"].astype(str),
                          "location": td["location_id"].astype(str),
                          "ds": pd.to_datetime(td["date"]).astype("datetime64[ns]"), "y": td["demand"].astype(float)})
    keys = frame[["unique_id", "location", "item"]].drop_duplicates("unique_id")
    keys = keys.rename(columns={"location": "location_id", "item": "sku"})
    known = known_regressors(keys, pd.DatetimeIndex(np.sort(frame["ds"].unique())), world.promotions, world.items)
    known["ds"] = known["ds"].astype("datetime64[ns]")
    frame = frame.merge(known, on=["unique_id", "ds"], how="left", validate="one_to_one")
    items = world.items.set_index("sku")
    lead = items["supplier_id"].map(world.suppliers.set_index("supplier_id")["promised_lead_time_days"])
    frame["lead_time"] = frame["item"].map(lead).astype(float)
    frame["unit_cost"] = frame["item"].map(items["unit_cost"]).astype(float)
    name = f"world_{preset}" if isinstance(preset, str) else "world"
    return Dataset(name, frame.sort_values(["unique_id", "ds"], ignore_index=True), "D", 28, 7, 1, tuple(REGRESSORS))


def from_history_file(history, *, horizon: int, season_length: int | None, origins: int) -> Dataset:
    """A :class:`~include.demand.history_file.HistoryFile` as a dataset (no events: the format has none)."""
    frame = history.frame[[*KEYS, *history.regressors]]
    return Dataset(history.path.name, frame, history.freq, horizon, season_length or history.season_length,
                   origins, tuple(history.regressors))


# --------------------------------------------------------------------------------------------------
# Held-out windows and scores
# --------------------------------------------------------------------------------------------------



def dense(train: pd.DataFrame) -> pd.DataFrame:
    """Training history as a ``series x period`` frame; missing periods inside a series count as zero."""
    wide = train.pivot(index="unique_id", columns="ds", values="y")
    started = wide.notna().cumsum(axis=1) > 0
    return wide.fillna(0.0).where(started)


def prepare(frame: pd.DataFrame) -> pd.DataFrame:
    """Clip net returns to zero demand and start each series at its first positive value."""
    frame = frame.assign(y=frame["y"].clip(lower=0.0)).sort_values(["unique_id", "ds"], kind="stable")
    started = (frame["y"] > 0).groupby(frame["unique_id"]).cummax()
    return frame[started.to_numpy(bool)].reset_index(drop=True)


def scales(train: pd.DataFrame, m: int) -> pd.DataFrame:
    """Per series: mean squared one-step naive difference (RMSSE) and seasonal naive MAE (MASE)."""
    wide = dense(train)
    values = wide.to_numpy()
    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        dm = values[:, m:] - values[:, :-m] if values.shape[1] > m else np.full((len(values), 1), np.nan)
        rmsse_scale = np.nanmean(np.diff(values, axis=1) ** 2, axis=1)
        mase_scale = np.nanmean(np.abs(dm), axis=1)
    return pd.DataFrame({"unique_id": wide.index, "rmsse_scale": rmsse_scale, "mase_scale": mase_scale})


def score(pred: pd.DataFrame, test: pd.DataFrame, scales: pd.DataFrame) -> pd.DataFrame:
    """Per-series RMSSE and MASE of ``pred`` on ``test`` (series with a zero scale are left out)."""
    joined = test[["unique_id", "ds", "y"]].merge(pred, on=["unique_id", "ds"], how="left")
    if joined["y_hat"].isna().any():
        raise RuntimeError(f"{int(joined['y_hat'].isna().sum())} test point(s) have no forecast")
    err = joined.assign(se=(joined["y"] - joined["y_hat"]) ** 2, ae=(joined["y"] - joined["y_hat"]).abs())
    per = err.groupby("unique_id").agg(mse=("se", "mean"), mae=("ae", "mean")).reset_index()
    per = per.merge(scales, on="unique_id")
    per["rmsse"] = np.sqrt(per["mse"] / per["rmsse_scale"].where(per["rmsse_scale"] > 0))
    per["mase"] = per["mae"] / per["mase_scale"].where(per["mase_scale"] > 0)
    return per[["unique_id", "rmsse", "mase"]]


def origins(data: Dataset, history: pd.DataFrame) -> Iterator[tuple[pd.DataFrame, pd.DataFrame]]:
    """Yield each origin's (train, test), keeping series with history before it and every actual after it."""
    dates = np.sort(history["ds"].unique())
    if len(dates) <= data.origins * data.horizon:
        raise DatasetError(f"{data.name}: history has {len(dates)} periods, not enough for {data.origins} x "
                         f"{data.horizon} held out; lower --horizon or --origins")
    for k in range(data.origins, 0, -1):
        cutoff = pd.Timestamp(dates[len(dates) - k * data.horizon - 1])
        test_end = pd.Timestamp(dates[len(dates) - (k - 1) * data.horizon - 1])
        train = history[history["ds"] <= cutoff]
        test = history[(history["ds"] > cutoff) & (history["ds"] <= test_end)]
        full = test[test["y"].notna()].groupby("unique_id")["ds"].size()
        keep = set(full[full == data.horizon].index) & set(train["unique_id"])
        yield train[train["unique_id"].isin(keep)], test[test["unique_id"].isin(keep)]
