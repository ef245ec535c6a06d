"""Reading the day across a channel: its level, how far its series stray, and how units clump by the hour."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from include.intraday.calibration import LEVEL_MIN_SERIES, day_level, day_spread
from include.intraday.profile import learn_profile, trading_shape

STORE = trading_shape(8, 22)


def _channel(rng: np.random.Generator, n: int, lift: np.ndarray | float, mean: float = 20.0):
    expected = np.full(n, mean)
    return rng.poisson(expected * lift).astype(float), expected


def test_a_channel_wide_lift_sets_the_level_and_a_few_surges_do_not():
    rng = np.random.default_rng(1)
    sold, expected = _channel(rng, 400, 1.8)
    assert day_level(sold, expected, np.full(400, "store")) == pytest.approx(np.full(400, 1.8), rel=0.05)
    lift = np.where(np.arange(400) < 40, 4.0, 1.0)  # a tenth of the channel surging
    sold, expected = _channel(rng, 400, lift)
    assert day_level(sold, expected, np.full(400, "store"))[0] < 1.05


def test_a_slow_day_or_a_thin_channel_keeps_level_one():
    rng = np.random.default_rng(2)
    sold, expected = _channel(rng, 400, 0.6)
    assert (day_level(sold, expected, np.full(400, "store")) == 1.0).all()
    n = LEVEL_MIN_SERIES - 1
    sold, expected = _channel(rng, n, 2.5)
    assert (day_level(sold, expected, np.full(n, "online")) == 1.0).all()
    # Channels are read apart: a lifted web shop leaves the stores at 1.
    sold_s, expected_s = _channel(rng, 300, 1.0)
    sold_o, expected_o = _channel(rng, 300, 2.0)
    level = day_level(np.r_[sold_s, sold_o], np.r_[expected_s, expected_o], np.r_[["store"] * 300, ["online"] * 300])
    assert level[0] < 1.05 and level[-1] == pytest.approx(2.0, rel=0.05)


def test_the_spread_finds_how_far_series_stray_beyond_the_forecast_error():
    rng = np.random.default_rng(3)
    n, mean, shape = 2000, 30.0, 25.0  # the forecast says: multiplier CV 0.2
    channels = np.full(n, "store")
    ordinary = rng.poisson(mean * rng.gamma(shape, 1 / shape, n)).astype(float)
    assert day_spread(ordinary, np.full(n, mean), np.full(n, shape), channels)[0] < 0.01
    # Today every series strays with CV 0.5 (0.2 as claimed and sqrt(0.5^2 - 0.2^2) more).
    wide = rng.poisson(mean * rng.gamma(4.0, 1 / 4.0, n)).astype(float)
    extra = day_spread(wide, np.full(n, mean), np.full(n, shape), channels)[0]
    assert extra == pytest.approx(0.25 - 0.04, abs=0.04)
    # Series expected too little to read are left out, and a channel of them keeps 0.
    assert day_spread(wide / 20, np.full(n, mean / 20), np.full(n, shape), channels)[0] == 0.0


def _hourly(rng: np.random.Generator, lump: int, days: int = 14, series: int = 60, per_day: float = 24.0):
    rows = []
    for ds in pd.date_range("2026-10-01", periods=days):
        for s in range(series):
            orders = rng.poisson(per_day / lump)
            hours = rng.choice(24, size=orders, p=STORE)
            for h, count in zip(*np.unique(hours, return_counts=True), strict=True):
                rows.append(("store", ds, f"L{s % 5}", f"K{s}", int(h), float(count * lump)))
    return pd.DataFrame(rows, columns=["channel", "ds", "location_id", "sku", "hour", "units"])


def test_the_profile_learns_how_units_clump_by_the_hour():
    rng = np.random.default_rng(4)
    single = learn_profile(_hourly(rng, 1), fallback=STORE)
    lumps = learn_profile(_hourly(rng, 3), fallback=STORE)
    assert single.clumping["store"] == pytest.approx(1.0, abs=0.1)
    assert lumps.clumping["store"] == pytest.approx(3.0, rel=0.1)
    assert lumps.clumping_of(["store", "online"]).tolist() == [lumps.clumping["store"], 1.0]
    # Kept through the profile's JSON, and absent where the history was already summed over series.
    assert type(lumps).from_dict(lumps.as_dict()).clumping == lumps.clumping
    summed = _hourly(rng, 3).groupby(["channel", "ds", "hour"], as_index=False)["units"].sum()
    assert learn_profile(summed, fallback=STORE).clumping == {}


def test_the_profile_learns_the_web_shops_order_size_and_reads_the_stores_in_units():
    from include.intraday.profile import IntradayProfile, learn_profile, trading_shape

    days = pd.date_range("2026-11-02", periods=14)
    web = pd.DataFrame({"channel": "online", "ds": np.repeat(days, 16), "location_id": "FC1", "sku": "A",
                        "hour": np.tile(np.arange(8, 24), 14), "units": 3.0, "orders": 2.0})
    pos = web.assign(channel="store", location_id="S1", units=4.0, orders=np.nan)
    profile = learn_profile(pd.concat([web, pos], ignore_index=True), fallback=trading_shape(8, 22))
    assert profile.order_size == {"online": 1.5}
    assert np.isnan(profile.order_size_of(["store"])[0]) and profile.order_size_of(["online"])[0] == 1.5
    assert IntradayProfile.from_dict(profile.as_dict()).order_size == {"online": 1.5}
    # A profile kept before order sizes were learned reads every channel in units.
    kept = {k: v for k, v in profile.as_dict().items() if k != "order_size"}
    assert IntradayProfile.from_dict(kept).order_size == {}
