"""``retail_intraday`` runs at the end of every trading hour on the retailer's clock, midnight included."""

from __future__ import annotations

import datetime as dt

import pytest

from include.config import hour_read, hourly_cron
from tests.dags.conftest import load_dag


@pytest.mark.parametrize(("hours", "expression"), [
    ("8-22", "0 9-22 * * *"),     # the default: the runs at 09:00 to 22:00 read hours 8 to 21
    ("8-24", "0 0,9-23 * * *"),   # a day trading until midnight has its last run at 00:00
    ("0-24", "0 * * * *"),        # around the clock
    ("6-7", "0 7 * * *"),
])
def test_the_schedule_runs_after_every_trading_hour(monkeypatch, hours, expression):
    monkeypatch.setenv("SHELFWISE_TRADING_HOURS", hours)
    monkeypatch.setenv("SHELFWISE_TRADING_TZ", "Europe/Berlin")
    dag = load_dag("retail_intraday")
    assert (dag.timetable.expression, str(dag.timetable.timezone)) == (expression, "Europe/Berlin")
    assert hourly_cron(range(*map(int, hours.split("-")))) == expression


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
