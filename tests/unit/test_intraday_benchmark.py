"""The pure helpers of the intraday benchmark: the hour-by-hour replay and the hours to a proposal."""

from __future__ import annotations

import numpy as np

from benchmarks.intraday import bucket, hours_to_proposal, nightly_hours, replay_hours, replay_web_fallback


def test_replay_serves_until_the_shelf_is_empty_then_a_transfer_refills_it():
    demand = np.array([[2.0, 3.0, 4.0, 5.0]])
    sold, lost = replay_hours(demand, np.array([6.0]), np.zeros((1, 4)))
    assert sold.tolist() == [[2.0, 3.0, 1.0, 0.0]] and lost.sum() == 8.0
    arrivals = np.array([[0.0, 0.0, 0.0, 5.0]])
    sold, lost = replay_hours(demand, np.array([6.0]), arrivals)
    assert sold.tolist() == [[2.0, 3.0, 1.0, 5.0]] and lost.sum() == 3.0


def test_a_donor_gives_stock_away_and_never_goes_below_zero():
    demand = np.array([[1.0, 1.0, 1.0]])
    sold, lost = replay_hours(demand, np.array([2.0]), np.array([[0.0, -5.0, 0.0]]))
    assert sold.tolist() == [[1.0, 0.0, 0.0]] and lost.sum() == 2.0


def test_hours_to_proposal_counts_the_alarm_hour_as_seen_at_its_end():
    assert hours_to_proposal(alarm_hour=13, onset_hour=13) == 1
    assert hours_to_proposal(alarm_hour=15, onset_hour=12) == 4
    assert nightly_hours(onset_hour=14) == 12  # 02:00 the next day


def test_buckets_cover_every_count():
    assert [bucket(u) for u in (0, 4.9, 5, 39.9, 40, 1e6)] == ["0-5", "0-5", "5-10", "20-40", ">=40", ">=40"]


def test_the_web_fallback_serves_what_the_fc_cannot_from_the_stores_beyond_their_own_need():
    web = np.array([2.0, 6.0, 6.0])
    stores = np.array([[1.0, 1.0, 1.0], [0.0, 0.0, 0.0]])
    keep = np.array([[5.0, 5.0, 5.0], [0.0, 0.0, 0.0]])
    web_lost, store_lost = replay_web_fallback(web, 4.0, stores, np.array([9.0, 3.0]), keep)
    # Hour 1: the FC's last 2, the second store's 3 (the most to spare) and 1 of the first's (it holds 7 and
    # keeps 5). Hour 2: the first store holds 5 after its own customer, all of it kept: 6 lost.
    assert web_lost.tolist() == [0.0, 0.0, 6.0] and store_lost.sum() == 0.0
    # The stores' own customers come first; a store never gives below what it keeps.
    web_lost, store_lost = replay_web_fallback(web, 0.0, stores, np.array([6.0, 0.0]), keep)
    assert web_lost.tolist() == [2.0, 6.0, 6.0] and store_lost.sum() == 0.0


def test_the_web_fallback_with_the_intraday_moves_serves_from_what_arrives_first():
    web = np.array([2.0, 6.0, 6.0])
    stores = np.array([[1.0, 1.0, 1.0], [0.0, 0.0, 0.0]])
    keep = np.array([[5.0, 5.0, 5.0], [0.0, 0.0, 0.0]])
    # Five units reach the FC at the start of hour 1 and the second store gives 3 away then (a transfer):
    # hour 1 takes the FC's 2 + 5 - 6 = 1 left, hour 2 that one and the first store's 1 spare: 4 lost.
    web_lost, store_lost = replay_web_fallback(web, 4.0, stores, np.array([9.0, 3.0]), keep,
                                               web_inflow=np.array([0.0, 5.0, 0.0]),
                                               store_inflow=np.array([[0.0, 0.0, 0.0], [0.0, -3.0, 0.0]]))
    assert web_lost.tolist() == [0.0, 0.0, 4.0] and store_lost.sum() == 0.0
    # No moves is the fallback alone.
    alone = replay_web_fallback(web, 4.0, stores, np.array([9.0, 3.0]), keep)
    moved_nothing = replay_web_fallback(web, 4.0, stores, np.array([9.0, 3.0]), keep, np.zeros(3), np.zeros((2, 3)))
    assert all(np.array_equal(a, b) for a, b in zip(alone, moved_nothing, strict=True))


def test_the_speed_section_times_the_moves_of_one_reading():
    from benchmarks.intraday import moves_speed, synthetic_stores
    from include.intraday.day import DayParams, sense_day
    from include.intraday.sensing import SensingParams

    rng = np.random.default_rng(0)
    kwargs, regions, _ = synthetic_stores(2_000, 15, rng)
    sensed = sense_day(**kwargs, params=DayParams(sensing=SensingParams(calibrate=False)))
    speed = moves_speed(sensed, regions, rng)
    # Shelves holding about two days' sales at 15:00: some run short, and each is sent stock or left to the night.
    assert speed["moves_seconds"] > 0 and speed["moves_receivers"] > 0 and speed["moves_lines"] > 0


def test_the_information_limit_flags_big_surges_and_almost_never_a_quiet_day():
    import datetime as dt
    from types import SimpleNamespace

    import pandas as pd

    from benchmarks.intraday import Day, detectable
    from include.intraday.profile import IntradayProfile, trading_shape
    from include.intraday.sensing import SensingParams

    profile = IntradayProfile(shares={}, fallback=trading_shape(8, 22))
    day = Day(index=3, date=dt.date(2026, 11, 18), hourly=pd.DataFrame(), demand=np.zeros(0), opening=np.zeros(0),
              store_sales=pd.DataFrame(), orders=pd.DataFrame())
    stores = ["S1", "S2", "S3"]
    forecast = pd.DataFrame({"location_id": stores, "sku": "K", "channel": "store", "step": 1, "mean": 40.0,
                             "sigma": 16.0})

    def chance(ratio: float, scope: str = "store", cells: str = "S1", onset: int = 11) -> float:
        shock = SimpleNamespace(shock_id="SH00007", sku="K", scope=scope, location_ids=cells, onset_hour=onset,
                                ratio=ratio)
        return detectable(forecast, profile, day, shock, {"series": 5.5, "region": 6.5}, 21, SensingParams(),
                          draws=2000)

    assert chance(5.0) > 0.95  # five times a 40-a-day store's rate from 11:00
    assert chance(1.0) < 0.01  # no surge: the series' own false alarms
    assert chance(2.5, onset=20) < chance(2.5, onset=11)  # two hours read of a late surge tell less
    # A surge across three stores is read both store by store and summed: it is found more often than at one.
    assert chance(2.2, "region", "S1;S2;S3") > chance(2.2)
