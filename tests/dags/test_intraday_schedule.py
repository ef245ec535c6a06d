"""``retail_intraday`` runs at the end of every trading hour on the retailer's clock, midnight included."""

from __future__ import annotations

import datetime as dt

import pytest

from include.config import channels_closed, hour_read, hourly_cron, hours_read
from tests.dags.conftest import load_dag


@pytest.mark.parametrize(("stores", "online", "expression"), [
    (None, None, "0 0,9-23 * * *"),     # the defaults: stores 8-22, the web shop read until midnight
    ("8-22", "8-22", "0 9-22 * * *"),   # the runs at 09:00 to 22:00 read hours 8 to 21
    ("8-24", "8-22", "0 0,9-23 * * *"), # a day trading until midnight has its last run at 00:00
    ("0-24", "8-24", "0 * * * *"),      # around the clock
    ("9-17", "10-12", "0 10-17 * * *"),
])
def test_the_schedule_runs_after_every_hour_the_stores_or_the_web_shop_trade(monkeypatch, stores, online, expression):
    for name, value in (("SHELFWISE_TRADING_HOURS", stores), ("SHELFWISE_ONLINE_HOURS", online)):
        if value is None:
            monkeypatch.delenv(name, raising=False)
        else:
            monkeypatch.setenv(name, value)
    monkeypatch.setenv("SHELFWISE_TRADING_TZ", "Europe/Berlin")
    dag = load_dag("retail_intraday")
    assert (dag.timetable.expression, str(dag.timetable.timezone)) == (expression, "Europe/Berlin")
    assert hourly_cron(hours_read()) == expression


def test_after_the_stores_close_only_the_web_shop_trades(monkeypatch):
    monkeypatch.delenv("SHELFWISE_TRADING_HOURS", raising=False)
    monkeypatch.delenv("SHELFWISE_ONLINE_HOURS", raising=False)
    assert hours_read() == tuple(range(8, 24))
    assert channels_closed(14) == frozenset()
    assert channels_closed(22) == {"store"}
    assert channels_closed(3) == {"store", "online"}
    monkeypatch.setenv("SHELFWISE_ONLINE_HOURS", "8-25")
    with pytest.raises(ValueError, match="SHELFWISE_ONLINE_HOURS must be 'open-close'"):
        hours_read()


def test_a_run_reads_the_hour_that_closed_on_the_trading_clock():
    utc = dt.UTC
    # 07:00 UTC on a winter day is 08:00 in Berlin: the run at 09:00 there reads the hour 8.
    assert hour_read(dt.datetime(2026, 12, 1, 7, tzinfo=utc), "Europe/Berlin") == (dt.date(2026, 12, 1), 8)
    # The run at midnight reads 23:00-24:00 of the day before, wherever the clock is.
    assert hour_read(dt.datetime(2026, 11, 30, 23, tzinfo=utc), "UTC") == (dt.date(2026, 11, 30), 23)
    assert hour_read(dt.datetime(2026, 12, 1, 4, tzinfo=utc), "America/New_York") == (dt.date(2026, 11, 30), 23)
    with pytest.raises(ValueError, match="time zone"):
        hour_read(dt.datetime(2026, 12, 1, 7), "UTC")


def test_the_gate_waits_for_the_lines_of_the_day_the_stage_staged():
    gate = load_dag("retail_intraday").get_task("wait_for_approval")
    assert gate.ds == "{{ ti.xcom_pull(task_ids='stage_moves')['ds'] }}"
    assert gate.run_scoped
