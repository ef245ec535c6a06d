"""What a surge means for the rest of today and the next days: a re-forecast and the hours to stock-out.

A surge sensed at hour ``t`` (:mod:`include.intraday.sensing`) multiplies the rest of today's forecast by
its estimated ratio; on the following days the surplus fades by ``persistence`` per day (a promotion's
second day sells less above plan than its first; a viral item cools). Hours to stock-out walk the hourly
demand forward from the next hour, today's profile then each following day's, until it exceeds the stock
on hand. :func:`short_after` says how many units a series still lacks once a move proposed now could
arrive: what it needs before then is served from its own stock or lost, whatever the move.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

HOURS = 24


@dataclass(frozen=True)
class Outlook:
    """The re-forecast of every series (arrays ``[n]`` or ``[n, days]``).

    Attributes:
        rest_of_today: Units expected from the next hour to the end of today.
        daily: ``[n, days]`` units expected per day, today (whole day, sold included) first.
        hourly: ``[n, days * 24]`` units expected per hour from midnight today (hours past: 0).
    """

    rest_of_today: np.ndarray
    daily: np.ndarray
    hourly: np.ndarray


def reforecast(daily_mean: np.ndarray, shares: np.ndarray, *, hour: int, sold_today: np.ndarray, ratio: np.ndarray,
               persistence: float) -> Outlook:
    """Re-forecast flagged series from the hour after ``hour``.

    Args:
        daily_mean: ``[n, days]`` the night's forecast per day, today first.
        shares: ``[n, days, 24]`` hourly shares of each day (the profile of its channel and weekday).
        hour: The last hour seen today (0-23).
        sold_today: ``[n]`` units sold through ``hour``.
        ratio: ``[n]`` the surge multiple (1: as forecast).
        persistence: Share of the surplus kept from one day to the next, in [0, 1].

    Returns:
        The :class:`Outlook`.
    """
    if not 0.0 <= persistence <= 1.0:
        raise ValueError(f"persistence must lie in [0, 1], got {persistence}")
    if not 0 <= hour < HOURS:
        raise ValueError(f"hour must lie in 0..23, got {hour}")
    daily_mean = np.maximum(np.asarray(daily_mean, float), 0.0)
    shares = np.asarray(shares, float)
    n, days = daily_mean.shape
    ratio = np.maximum(np.asarray(ratio, float), 0.0).reshape(n, 1)
    surplus = (ratio - 1.0) * persistence ** np.arange(days)[None, :]
    hourly = (daily_mean * (1.0 + surplus))[:, :, None] * shares
    hourly[:, 0, : hour + 1] = 0.0
    hourly = np.maximum(hourly, 0.0).reshape(n, days * HOURS)
    rest = hourly[:, :HOURS].sum(axis=1)
    daily = hourly.reshape(n, days, HOURS).sum(axis=2)
    daily[:, 0] += np.maximum(np.asarray(sold_today, float), 0.0)
    return Outlook(rest_of_today=rest, daily=daily, hourly=hourly)


def hours_to_stockout(hourly: np.ndarray, on_hand: np.ndarray, *, hour: int) -> np.ndarray:
    """Hours from the end of ``hour`` until expected demand exceeds ``on_hand`` (``inf``: not within the outlook).

    Args:
        hourly: ``[n, H]`` expected units per hour from midnight today (:attr:`Outlook.hourly`).
        on_hand: ``[n]`` units available now.
        hour: The last hour seen today.
    """
    ahead = np.asarray(hourly, float)[:, hour + 1:]
    on_hand = np.maximum(np.asarray(on_hand, float), 0.0)
    cum = np.cumsum(ahead, axis=1)
    out = cum > on_hand[:, None]
    first = np.where(out.any(axis=1), out.argmax(axis=1), -1)
    rows = np.arange(len(on_hand))
    prior = np.where(first > 0, cum[rows, np.maximum(first - 1, 0)], 0.0)
    within = np.where(first >= 0, ahead[rows, np.maximum(first, 0)], 1.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        frac = np.where(within > 0, (on_hand - prior) / within, 0.0)
    return np.where(first >= 0, first + np.clip(frac, 0.0, 1.0), np.inf)


def need_within(hourly: np.ndarray, *, hour: int, hours: float) -> np.ndarray:
    """Units expected in the ``hours`` after the end of ``hour`` (a fraction of an hour counts pro rata).

    Args:
        hourly: ``[n, H]`` expected units per hour from midnight today (:attr:`Outlook.hourly`).
        hour: The last hour seen today.
        hours: How far ahead, in hours (beyond the outlook: all of it).
    """
    ahead = np.asarray(hourly, float)[:, hour + 1:]
    whole = int(np.clip(np.floor(hours), 0, ahead.shape[1]))
    part = ahead[:, whole] * (hours - whole) if whole < ahead.shape[1] else 0.0
    return ahead[:, :whole].sum(axis=1) + part


def short_after(hourly: np.ndarray, on_hand: np.ndarray, *, hour: int, hours: float) -> np.ndarray:
    """Units a series still lacks over the outlook once a move proposed now arrives, ``hours`` from now.

    Demand before the arrival is served from ``on_hand`` or lost whatever the move brings, so the move can
    serve only the demand after it, less the stock left by then:
    ``need - max(on_hand, need before the arrival)``, at least 0 (``hours`` 0: the whole shortfall).
    """
    need = np.asarray(hourly, float)[:, hour + 1:].sum(axis=1)
    before = need_within(hourly, hour=hour, hours=hours)
    return np.maximum(need - np.maximum(np.maximum(np.asarray(on_hand, float), 0.0), before), 0.0)
