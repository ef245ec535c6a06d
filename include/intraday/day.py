"""One intraday reading: sales so far against the night's forecast, surges, and who will run short.

:func:`sense_day` spreads each series' forecast for today over the hours by the intraday profile, runs the
sequential test (:mod:`include.intraday.sensing`) on the hours seen, and for the series that alarm
re-forecasts the rest of today and the next days (:mod:`include.intraday.outlook`).
:func:`receivers_and_donors` turns that into what :func:`include.intraday.moves.propose_urgent_moves`
needs: the surging series that will run short before their next regular delivery, and the spare stock
of every other location of the same SKUs.

A series is a location x SKU; its channel follows the location: ``online`` for the ecommerce fulfilment
centre, ``store`` for a store.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from include.intraday.outlook import hours_to_stockout, reforecast
from include.intraday.profile import HOURS, IntradayProfile
from include.intraday.sensing import SensingParams, dispersion, sense

#: Columns of the night's forecast :func:`sense_day` reads: one row per series and day ahead (step 1: today).
FORECAST_COLUMNS = ["location_id", "sku", "channel", "step", "mean", "sigma"]


@dataclass(frozen=True)
class DayParams:
    """How a surge is read and projected.

    Attributes:
        sensing: The test's sensitivity (:class:`SensingParams`).
        persistence: Share of a surge's surplus kept from one day to the next.
        cover_days: Days after today until the next regular delivery: the window a receiver must cover.
    """

    sensing: SensingParams = SensingParams()
    persistence: float = 0.5
    cover_days: int = 1


def sense_day(forecast: pd.DataFrame, hourly: pd.DataFrame, on_hand: pd.DataFrame, profile: IntradayProfile, *,
              weekday: int, hour: int, params: DayParams = DayParams()) -> pd.DataFrame:
    """Read every series' sales through ``hour`` against its forecast.

    Args:
        forecast: The night's forecast (:data:`FORECAST_COLUMNS`); ``sigma`` is the error of one day.
        hourly: Units sold so far today: ``location_id, sku, hour, units``.
        on_hand: Latest stock: ``location_id, sku, on_hand`` (sales since the snapshot already taken off).
        profile: The intraday profile.
        weekday: Today's weekday (Monday 0).
        hour: The last hour seen (0-23).
        params: :class:`DayParams`.

    Returns:
        One row per series with a forecast for today: ``location_id, sku, channel, forecast_today,
        sold_today, expected_so_far, alarm, onset_hour, alarm_hour, statistic, ratio, sold_since_onset,
        expected_since_onset, rest_of_today, need_in_window, on_hand, hours_to_stockout``.
    """
    days = params.cover_days + 1
    wide = forecast[forecast["step"] <= days].pivot_table(index=["location_id", "sku", "channel"], columns="step",
                                                            values="mean", aggfunc="sum")
    wide = wide.reindex(columns=range(1, days + 1), fill_value=0.0).fillna(0.0)
    today = forecast[forecast["step"] == 1].set_index(["location_id", "sku", "channel"])["sigma"]
    keys = wide.index.to_frame(index=False)
    means = wide.to_numpy(float)
    channels = keys["channel"].to_numpy(object)
    shares = np.stack([profile.matrix(channels, np.full(len(keys), (weekday + d) % 7)) for d in range(days)], axis=1)
    sold = _hourly_matrix(hourly, keys, hour)
    expected = means[:, :1] * shares[:, 0, : hour + 1]
    shape = dispersion(means[:, 0], today.reindex(wide.index).fillna(0.0).to_numpy(float))
    found = sense(sold, expected, shape, params.sensing)
    outlook = reforecast(means, shares, hour=hour, sold_today=sold.sum(axis=1), ratio=found.ratio,
                         persistence=params.persistence)
    stock = keys.merge(on_hand[["location_id", "sku", "on_hand"]], on=["location_id", "sku"], how="left")["on_hand"]
    stock = stock.fillna(0.0).to_numpy(float)
    return keys.assign(
        forecast_today=means[:, 0], sold_today=sold.sum(axis=1), expected_so_far=expected.sum(axis=1),
        alarm=found.alarm, onset_hour=found.onset_hour, alarm_hour=found.alarm_hour, statistic=found.statistic,
        ratio=found.ratio, sold_since_onset=found.sold_since_onset, expected_since_onset=found.expected_since_onset,
        rest_of_today=outlook.rest_of_today, need_in_window=outlook.hourly[:, hour + 1:].sum(axis=1), on_hand=stock,
        hours_to_stockout=hours_to_stockout(outlook.hourly, stock, hour=hour),
    )


def _hourly_matrix(hourly: pd.DataFrame, keys: pd.DataFrame, hour: int) -> np.ndarray:
    """``[n, hour + 1]`` units sold per series and hour (hours after ``hour`` are not read)."""
    out = np.zeros((len(keys), hour + 1))
    if hourly.empty:
        return out
    index = pd.MultiIndex.from_frame(keys[["location_id", "sku"]])
    seen = hourly[hourly["hour"].between(0, hour)]
    rows = index.get_indexer(pd.MultiIndex.from_frame(seen[["location_id", "sku"]]))
    known = rows >= 0
    np.add.at(out, (rows[known], seen["hour"].to_numpy(int)[known]), seen["units"].to_numpy(float)[known])
    return out


def receivers_and_donors(sensed: pd.DataFrame, *, buffer: float = 0.25) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The surging series that will run short, and what every other location of their SKUs can spare.

    A surging series is short by its projected demand until its next regular delivery less its stock. Any
    other location holding the SKU can spare its stock beyond ``(1 + buffer)`` times its own projected
    need over the same window (a DC, which forecasts nothing of its own here, keeps ``buffer`` of its stock).

    Args:
        sensed: :func:`sense_day`'s frame, plus DC rows (``channel`` ``dc``, ``need_in_window`` 0) where
            DC stock may be used.
        buffer: Share of its own need a donor keeps on top of it.

    Returns:
        ``(receivers, donors)`` in the shapes :func:`include.intraday.moves.propose_urgent_moves` reads.
    """
    surging = sensed[sensed["alarm"]]
    short = (surging["need_in_window"] - surging["on_hand"]).clip(lower=0.0)
    receivers = surging.assign(shortfall=short)[short > 0]
    others = sensed[sensed["sku"].isin(receivers["sku"]) & ~sensed["alarm"]]
    keep = np.where(others["channel"] == "dc", buffer * others["on_hand"], (1.0 + buffer) * others["need_in_window"])
    donors = others.assign(spare=np.floor((others["on_hand"] - keep).clip(lower=0.0)))
    return receivers.reset_index(drop=True), donors[donors["spare"] >= 1][["location_id", "sku", "spare"]].reset_index(drop=True)


__all__ = ["FORECAST_COLUMNS", "HOURS", "DayParams", "receivers_and_donors", "sense_day"]
