"""One intraday reading: sales so far against the night's forecast, surges, and who will run short.

:func:`sense_day` spreads each series' forecast for today over the hours by the intraday profile, runs the
sequential test (:mod:`include.intraday.sensing`) on the hours seen, and for the series that alarm
re-forecasts the rest of today and the next days (:mod:`include.intraday.outlook`).
:func:`receivers_and_donors` turns that into what :func:`include.intraday.moves.propose_urgent_moves`
needs: the surging series that will run short before their next regular delivery (and, with a
:class:`Rescue`, the series running dry today without a surge), and the spare stock of every other
location of the same SKUs.

A series is a location x SKU; its channel follows the location: ``online`` for the ecommerce fulfilment
centre, ``store`` for a store. One store sells too little of most SKUs for an hour or two to tell a surge
from chance, but a surge across a region (a local event, a regional promotion) adds up over its stores: so
when the stores' regions are given, the test also reads every region x SKU with its stores' sales and
forecasts summed, and a region that alarms flags those of its stores whose own sales since favour the surge. The false-alarm budget is split
evenly between the two levels, so together they keep the policy's rate.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from statistics import NormalDist

import numpy as np
import pandas as pd

from include.demand.history import series_id
from include.intraday.calibration import day_level, day_spread
from include.intraday.outlook import hours_to_stockout, reforecast, short_after
from include.intraday.profile import HOURS, IntradayProfile
from include.intraday.sensing import RATIO_PRIOR_UNITS, SensingParams, dispersion, sense

#: Columns of the night's forecast :func:`sense_day` reads: one row per series and day ahead (step 1: today).
FORECAST_COLUMNS = ["location_id", "sku", "channel", "step", "mean", "sigma"]


@dataclass(frozen=True)
class DayParams:
    """How a surge is read and projected.

    Attributes:
        sensing: The test's sensitivity (:class:`SensingParams`).
        persistence: Share of a surge's surplus kept from one day to the next.
        cover_days: Days after today until the next regular delivery: the window a receiver must cover.
        transfer_hours: Hours a store transfer proposed now takes to arrive.
        expedite_hours: Hours an expedited DC delivery proposed now takes to arrive.
        ship_hours: Hours until the web shop's orders are served from a store's shelf once a store gives it
            units (``None``: stores do not ship web orders).
    """

    sensing: SensingParams = SensingParams()
    persistence: float = 0.5
    cover_days: int = 1
    transfer_hours: float = 4.0
    expedite_hours: float = 6.0
    ship_hours: float | None = None

    @classmethod
    def from_policy(cls, intraday) -> DayParams:  # noqa: ANN001
        """The policy file's ``intraday`` section (:class:`include.governance.policy.Intraday`)."""
        return cls(sensing=SensingParams(shock_ratio=float(intraday.shock_ratio),
                                         false_alarms_per_1000_series_day=float(intraday.false_alarms_per_1000_series_day)),
                   persistence=float(intraday.persistence), cover_days=int(intraday.cover_days),
                   transfer_hours=float(intraday.transfer_hours), expedite_hours=float(intraday.expedite_hours),
                   ship_hours=None if intraday.ship_from_store_hours is None else float(intraday.ship_from_store_hours))


def sense_day(forecast: pd.DataFrame, hourly: pd.DataFrame, on_hand: pd.DataFrame, profile: IntradayProfile, *,
              weekday: int, hour: int, params: DayParams = DayParams(),
              regions: pd.DataFrame | None = None, seed: int = 0) -> pd.DataFrame:
    """Read every series' sales through ``hour`` against its forecast.

    Args:
        forecast: The night's forecast (:data:`FORECAST_COLUMNS`); ``sigma`` is the error of one day.
        hourly: Units sold so far today: ``location_id, sku, hour, units``, and ``orders`` (order lines
            behind the units; missing for item movement): a channel whose profile learned its order size
            is read in orders (:mod:`include.intraday.profile`), the others in units.
        on_hand: Latest stock: ``location_id, sku, on_hand`` (sales since the snapshot already taken off).
        profile: The intraday profile.
        weekday: Today's weekday (Monday 0).
        hour: The last hour seen (0-23).
        params: :class:`DayParams`.
        regions: ``location_id, region`` of the stores: also test each region x SKU (see the module).
        seed: Seed of the threshold's calibration (:func:`include.intraday.sensing.calibrated_threshold`).

    Returns:
        One row per series with a forecast for today: ``location_id, sku, channel, forecast_today,
        forecast_sigma, day_level, day_spread`` (its channel's level and the coefficient of variation its
        forecast multiplier strays by today beyond its error, :mod:`include.intraday.calibration`),
        ``clumping`` (its channel's, from the profile), ``sold_today, expected_so_far`` (at the day level),
        ``alarm, onset_hour, alarm_hour, statistic, ratio, sold_since_onset, expected_since_onset, rest_of_today, need_in_window, on_hand, hours_to_stockout, level``
        (``level``: ``series`` or ``region``, the test that flagged it; empty without alarm),
        ``short_after_transfer, short_after_expedite`` (units still short over the window once a store
        transfer or a DC expedite proposed now arrives: :func:`include.intraday.outlook.short_after`; with
        ``params.ship_hours``, ``short_after_ship`` too: once web orders are served from a store), ``threshold``
        (what the statistic of that test was held to); ``attrs["thresholds"]`` holds each level's.
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
    sigma = today.reindex(wide.index).fillna(0.0).to_numpy(float)
    sensing = params.sensing
    if regions is not None:
        sensing = replace(sensing, false_alarms_per_1000_series_day=sensing.false_alarms_per_1000_series_day / 2)
    # Today's expectation follows the channel's day level; the test counts the channel's orders where its
    # sales say how many (the web shop's order lines), else its units in the channel's lumps.
    level = day_level(sold, expected, channels)
    lump = profile.clumping_of(channels)
    count, by_orders = profile.counting(channels, series_id(keys["location_id"].astype(str),
                                                            keys["sku"].astype(str)).to_numpy(),
                                        orders="orders" in hourly.columns)
    today_mean = means[:, 0] * level
    scaled = [a * (level / count).reshape(-1, *[1] * (a.ndim - 1))
              for a in (expected, means[:, :1] * shares[:, 0, :], means[:, 0], sigma)]
    expected_u, day, mean_u, sigma_u = scaled
    sold_u = sold / lump[:, None]
    if by_orders.any():
        sold_u = np.where(by_orders[:, None], _hourly_matrix(hourly, keys, hour, "orders"), sold_u)
    # The day's forecast multiplier is the same whatever is counted: its shape from the units in lumps.
    shape = dispersion(today_mean / lump, sigma * level / lump)
    spread = day_spread(sold_u, expected_u, shape, channels)
    series = sense(sold_u, expected_u, 1.0 / (1.0 / shape + spread), sensing, day_expected=day, seed=seed)
    found = _as_frame(series)
    found["level"] = np.where(found["alarm"], "series", "")
    thresholds = {"series": series.threshold}
    if regions is not None:
        thresholds["region"] = _pool_regions(found, keys, regions, sold_u, expected_u, day, mean_u, sigma_u, sensing,
                                             seed)
    # What was sold and expected since the onset, and the surge's multiple, in units.
    alarmed = found["alarm"].to_numpy(bool)
    since = np.arange(sold.shape[1])[None, :] >= np.where(alarmed, found["onset_hour"].to_numpy(int),
                                                          sold.shape[1])[:, None]
    found["sold_since_onset"] = (sold * since).sum(axis=1)
    found["expected_since_onset"] = (expected * level[:, None] * since).sum(axis=1)
    found["ratio"] = np.where(alarmed, (found["sold_since_onset"] + RATIO_PRIOR_UNITS * lump)
                              / (found["expected_since_onset"] + RATIO_PRIOR_UNITS * lump), 1.0)
    outlook = reforecast(np.column_stack([today_mean, means[:, 1:]]), shares, hour=hour, sold_today=sold.sum(axis=1),
                         ratio=found["ratio"].to_numpy(), persistence=params.persistence)
    stock = keys.merge(on_hand[["location_id", "sku", "on_hand"]], on=["location_id", "sku"], how="left")["on_hand"]
    stock = stock.fillna(0.0).to_numpy(float)
    out = keys.assign(
        forecast_today=means[:, 0], forecast_sigma=sigma, day_level=level, day_spread=np.sqrt(spread), clumping=lump,
        sold_today=sold.sum(axis=1), expected_so_far=(expected * level[:, None]).sum(axis=1), **{c: found[c].to_numpy() for c in _FOUND if c != "level"},
        rest_of_today=outlook.rest_of_today, need_in_window=outlook.hourly[:, hour + 1:].sum(axis=1), on_hand=stock,
        hours_to_stockout=hours_to_stockout(outlook.hourly, stock, hour=hour), level=found["level"].to_numpy(),
        short_after_transfer=short_after(outlook.hourly, stock, hour=hour, hours=params.transfer_hours),
        short_after_expedite=short_after(outlook.hourly, stock, hour=hour, hours=params.expedite_hours),
        **({} if params.ship_hours is None else
           {"short_after_ship": short_after(outlook.hourly, stock, hour=hour, hours=params.ship_hours)}),
        threshold=found["level"].map(thresholds).fillna(thresholds["series"]).to_numpy(float),
    )
    out.attrs["thresholds"] = thresholds
    return out


#: How strongly a store's own sales since its region's surge began must favour the surge to be part of it.
MEMBER_ODDS = 4.0

_FOUND = ["alarm", "onset_hour", "alarm_hour", "statistic", "ratio", "sold_since_onset", "expected_since_onset",
          "level"]


def _as_frame(found) -> pd.DataFrame:
    return pd.DataFrame({c: getattr(found, c) for c in _FOUND if c != "level"})


def _pool_regions(found: pd.DataFrame, keys: pd.DataFrame, regions: pd.DataFrame, sold: np.ndarray,
                  expected: np.ndarray, day: np.ndarray, mean: np.ndarray, sigma: np.ndarray, sensing: SensingParams,
                  seed: int) -> float:
    """Test every region x SKU of stores, summed; flag the stores of the ones that alarm (in place).
    Returns the threshold the regions were held to.

    A store flagged by its own test keeps its own reading. The region's forecast error is that of a sum of
    independent store errors (``sqrt`` of the summed variances).
    """
    region = keys["location_id"].map(regions.set_index("location_id")["region"])
    stores = np.flatnonzero((keys["channel"] == "store").to_numpy() & region.notna().to_numpy())
    if len(stores) == 0:
        return float("nan")
    group, labels = pd.factorize(pd.MultiIndex.from_arrays(
        [region.to_numpy(object)[stores], keys["sku"].to_numpy(object)[stores]]))
    n = len(labels)

    def total(values: np.ndarray) -> np.ndarray:
        out = np.zeros((n,) + values.shape[1:])
        np.add.at(out, group, values[stores])
        return out

    shape = dispersion(total(mean), np.sqrt(total(sigma**2)))
    spread = day_spread(total(sold), total(expected), shape, np.full(n, "region", dtype=object))
    pooled = sense(total(sold), total(expected), 1.0 / (1.0 / shape + spread), sensing, day_expected=total(day),
                   seed=seed + 1)
    flagged = pooled.alarm[group] & ~found["alarm"].to_numpy()[stores]
    rows, of = stores[flagged], group[flagged]
    # What each store itself sold and was expected to sell since its region's surge began. A store is part
    # of the surge when its own sales since favour the surge over the forecast by MEMBER_ODDS (Poisson
    # likelihood ratio at the tuned multiple); the others may donate instead. A surge at one store lifts
    # its region's sum, and weaker odds would flag its neighbours' ordinary good hours with it.
    since = np.arange(sold.shape[1])[None, :] >= pooled.onset_hour[of][:, None]
    own_sold, own_expected = (sold[rows] * since).sum(axis=1), (expected[rows] * since).sum(axis=1)
    rho = sensing.shock_ratio
    part = own_sold * np.log(rho) - (rho - 1.0) * own_expected >= np.log(MEMBER_ODDS)
    rows, of = rows[part], of[part]
    # What each store sold since the onset, and its multiple, are read by sense_day for every alarm.
    for column in ("alarm", "onset_hour", "alarm_hour", "statistic"):
        found.loc[rows, column] = getattr(pooled, column)[of]
    found.loc[rows, "level"] = "region"
    return pooled.threshold


def _hourly_matrix(hourly: pd.DataFrame, keys: pd.DataFrame, hour: int, column: str = "units") -> np.ndarray:
    """``[n, hour + 1]`` units (or the ``column`` given) sold per series and hour (hours after ``hour`` are
    not read; missing values count 0)."""
    out = np.zeros((len(keys), hour + 1))
    if hourly.empty:
        return out
    index = pd.MultiIndex.from_frame(keys[["location_id", "sku"]])
    seen = hourly[hourly["hour"].between(0, hour)]
    rows = index.get_indexer(pd.MultiIndex.from_frame(seen[["location_id", "sku"]]))
    known = rows >= 0
    values = np.nan_to_num(pd.to_numeric(seen[column], errors="coerce").to_numpy(float))
    np.add.at(out, (rows[known], seen["hour"].to_numpy(int)[known]), values[known])
    return out


#: A receiver already sent stock today gets more only when what it still lacks is at least this share of
#: what is on its way: a surge outgrowing its move is topped up, a shortfall creeping up by a unit an hour is not.
TOPUP_MIN_SHARE = 0.2
#: Columns of the moves already decided today (:func:`receivers_and_donors`'s ``committed``).
COMMITTED_COLUMNS = ["location_id", "sku", "moving_in", "moving_out", "on_order"]
#: A receiver's ``reason``: its sales surge, or its shelf runs dry without one (:class:`Rescue`).
SURGE, STOCKOUT = "surge", "stockout"


@dataclass(frozen=True)
class Rescue:
    """When a series that is not surging is sent stock today: it runs dry before anything else can help.

    A shelf that empties at noon loses the afternoon's sales whether its demand surged or not, and a surge
    that hits an empty shelf sells nothing a sales-based test could read. The nightly's orders arrive days
    later; a store-to-store transfer or a shipment from a store's shelf arrives today.

    Attributes:
        min_units: Units short before the next delivery from which a dry series is a receiver (a unit or two
            short is left to the next delivery: a transfer line has a fixed cost in the stores' hands).
        within_hours: A series is rescued only when its stock is expected to run out within this many hours
            (later ones are the next night's to plan).
    """

    min_units: float = 3.0
    within_hours: float = 12.0


def receivers_and_donors(sensed: pd.DataFrame, *, service: float = 0.95, dc_keep: float = 0.25,
                         committed: pd.DataFrame | None = None, rescue: Rescue | None = None,
                         closed: Iterable[str] = ()) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The series that will run short, and what every other location of their SKUs can spare.

    A surging series is short by its projected demand until its next regular delivery less its stock and
    what today's decided moves are bringing it. With ``rescue``, so is a series that is not surging but
    runs dry within ``rescue.within_hours`` by at least ``rescue.min_units``, with nothing on its way (its
    ``reason`` is ``stockout``; a surge's is ``surge``). Any other location holding the SKU can spare what
    it holds beyond its own need over the same window at the ``service`` quantile of that need's
    uncertainty (:func:`donor_keep`); a DC, which forecasts nothing of its own here, keeps ``dc_keep`` of
    its stock. A series already sent stock today is a receiver again only when it surges and still lacks at
    least :data:`TOPUP_MIN_SHARE` of what is on its way (its surge outgrew the move).

    Args:
        sensed: :func:`sense_day`'s frame, plus DC rows (``channel`` ``dc``, ``need_in_window`` 0) where
            DC stock may be used.
        service: Chance a donor still covers its own demand over the window after giving.
        dc_keep: Share of its stock a DC keeps.
        committed: Today's decided moves that ``on_hand`` does not show yet (:data:`COMMITTED_COLUMNS`):
            units ``moving_in`` to a location and ``moving_out`` of it, per SKU, and raised orders
            ``on_order`` (:func:`include.intraday.moves.committed_moves`).
        rescue: Also rescue series that run dry without a surge (:class:`Rescue`); ``None``: surges only.
        closed: Channels not trading this hour (:func:`include.config.channels_closed`): their series neither
            receive nor give (a closed store's shelf is out of reach until it opens).

    Returns:
        ``(receivers, donors)`` in the shapes :func:`include.intraday.moves.propose_urgent_moves` reads; a
        receiver says what is ``moving_in`` and its ``reason``; a donor also says what it ``keep``s and its
        own ``need`` (0 for a DC), for the line's explanation.
    """
    sensed = _with_committed(sensed, committed)
    sensed = sensed[~sensed["channel"].isin(list(closed))]
    coming = sensed["moving_in"]
    short = (sensed["need_in_window"] - sensed["on_hand"] - coming).clip(lower=0.0)
    alarm = sensed["alarm"].fillna(False).astype(bool)
    surging = alarm & (short > 0) & ((coming <= 0) | (short >= TOPUP_MIN_SHARE * coming))
    dry = pd.Series(False, index=sensed.index)
    if rescue is not None:
        dry = (~alarm & sensed["channel"].isin(["store", "online"]) & (coming <= 0) & (short >= rescue.min_units)
               & (sensed["hours_to_stockout"] <= rescue.within_hours))
    receivers = sensed.assign(
        shortfall=short, reason=np.where(alarm, SURGE, STOCKOUT),
        **{c: (sensed[c] - coming).clip(lower=0.0) for c in sensed if str(c).startswith("short_after_")})[surging | dry]
    others = sensed[sensed["sku"].isin(receivers["sku"]) & ~alarm & ~dry]
    others = others.assign(on_hand=(others["on_hand"] - others["moving_out"]).clip(lower=0.0))
    dc = (others["channel"] == "dc").to_numpy()
    keep = np.where(dc, dc_keep * others["on_hand"], donor_keep(others, service))
    donors = others.assign(spare=np.floor((others["on_hand"] - keep).clip(lower=0.0)), keep=np.round(keep, 1),
                           need=others["need_in_window"].round(1))
    columns = ["location_id", "sku", "spare", "keep", "need"]
    return receivers.reset_index(drop=True), donors[donors["spare"] >= 1][columns].reset_index(drop=True)


def _with_committed(sensed: pd.DataFrame, committed: pd.DataFrame | None) -> pd.DataFrame:
    """``sensed`` with each row's committed units (0 where nothing is committed)."""
    amounts = COMMITTED_COLUMNS[2:]
    sensed = sensed.drop(columns=amounts, errors="ignore")
    if committed is None or committed.empty:
        return sensed.assign(**dict.fromkeys(amounts, 0.0))
    moving = committed.reindex(columns=COMMITTED_COLUMNS).fillna({c: 0.0 for c in amounts})
    moving = moving.groupby(["location_id", "sku"], as_index=False)[amounts].sum()
    out = sensed.merge(moving, on=["location_id", "sku"], how="left")
    return out.assign(**{c: out[c].fillna(0.0) for c in amounts})


def donor_keep(rows: pd.DataFrame, service: float) -> np.ndarray:
    """Stock a location keeps for itself: its need over the window plus ``z(service)`` times its spread.

    The need's variance is the counting noise of its units, in the channel's lumps (``clumping * need``),
    plus the day's multiplier on it squared: the forecast's own error beyond counting
    (``(sigma^2 - forecast) / forecast^2`` of a day) and what the whole channel strays by today
    (``day_spread``). A flat share of the need left small donors (a few units' need, a Poisson spread of
    about its square root) short on a day that ran high, and made large ones keep more than they risk.
    """
    need = rows["need_in_window"].to_numpy(float)
    n = len(rows)

    def column(name: str, default: float) -> np.ndarray:
        return rows[name].fillna(default).to_numpy(float) if name in rows.columns else np.full(n, default)

    forecast, sigma = column("forecast_today", 0.0), column("forecast_sigma", 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        beyond = np.where(forecast > 0, np.maximum(sigma**2 - forecast, 0.0) / forecast**2, 0.0)
    spread = np.sqrt(column("clumping", 1.0) * need + (beyond + column("day_spread", 0.0) ** 2) * need**2)
    return need + NormalDist().inv_cdf(service) * spread


__all__ = ["COMMITTED_COLUMNS", "FORECAST_COLUMNS", "HOURS", "STOCKOUT", "SURGE", "TOPUP_MIN_SHARE", "DayParams", "Rescue",
           "donor_keep", "receivers_and_donors", "sense_day"]
