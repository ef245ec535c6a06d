"""The service ledger: what the fill achieved says about the target to plan with."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from include.decisions.service import ServiceFeedback, ServiceLedger, day_of_service

FAST = ServiceFeedback(half_life_days=28.0, prior_days=7.0)
NO_PRIOR = ServiceFeedback(half_life_days=28.0, prior_days=0.0)


def test_a_fresh_ledger_plans_every_target_as_it_is():
    ledger = ServiceLedger.start([0.9, 0.98]).update(FAST)
    assert ledger.effective_target.tolist() == [0.9, 0.98]


def test_losing_twice_what_was_planned_halves_the_shortfall_allowed():
    ledger = ServiceLedger.start([0.98])
    for _ in range(400):  # 2% planned, 4% lost: the model is off by two
        ledger = ledger.record([0.04 * 100], [100.0], NO_PRIOR)
    ledger = ledger.update(NO_PRIOR)
    assert ledger.ratio(NO_PRIOR)[0] == pytest.approx(2.0)
    assert ledger.effective_target[0] == pytest.approx(0.99)


def test_the_loop_settles_where_the_fill_achieved_is_the_target():
    # A policy that loses 1.5 times what it plans, and 0.6% more besides, whatever it plans.
    ledger = ServiceLedger.start([0.98])
    for _ in range(2000):
        lost = 1.5 * (1.0 - ledger.effective_target[0]) * 100 + 0.6
        ledger = ledger.record([lost], [100.0], FAST).update(FAST)
    achieved = 1.0 - (1.5 * (1.0 - ledger.effective_target[0]) * 100 + 0.6) / 100
    assert achieved == pytest.approx(0.98, abs=1e-4)


def test_losing_less_than_planned_lowers_the_target_planned():
    ledger = ServiceLedger.start([0.9])
    for _ in range(400):
        ledger = ledger.record([5.0], [100.0], NO_PRIOR)
    assert ledger.update(NO_PRIOR).effective_target[0] == pytest.approx(0.8)


def test_the_prior_holds_a_young_ledger_near_its_target_and_fades():
    ledger = ServiceLedger.start([0.98]).record([10.0], [100.0], FAST)  # one bad day: 10% lost against 2%
    keep = 0.5 ** (1 / 28)
    prior = 7 * 0.02 * 100 * (1 - (1 - keep))
    assert ledger.ratio(FAST)[0] == pytest.approx((10 + prior) / (2 + prior))  # far from the 5 one day says
    for _ in range(400):
        ledger = ledger.record([4.0], [100.0], FAST)
    assert ledger.ratio(FAST)[0] == pytest.approx(2.0, rel=1e-3)  # the prior no longer pulls toward 1


def test_the_past_weighs_half_after_a_half_life():
    ledger = ServiceLedger.start([0.95]).record([1.0], [10.0], FAST)
    for _ in range(28):
        ledger = ledger.record([0.0], [0.0], FAST)
    assert ledger.lost[0] == pytest.approx(0.5)
    assert ledger.demand[0] == pytest.approx(5.0)


def test_a_weekly_period_decays_seven_days():
    weekly = ServiceLedger.start([0.95], days=7.0).record([1.0], [10.0], FAST)
    for _ in range(4):
        weekly = weekly.record([0.0], [0.0], FAST)
    assert weekly.lost[0] == pytest.approx(0.5)


def test_the_planned_losses_follow_the_effective_target_in_force():
    ledger = ServiceLedger.start([0.98])
    ledger = ledger.record([0.0], [100.0], FAST)
    assert ledger.planned[0] == pytest.approx(2.0)
    ledger = ServiceLedger(**{**ledger.__dict__, "effective_target": np.array([0.99])})
    ledger = ledger.record([0.0], [100.0], FAST)
    keep = 0.5 ** (1 / 28)
    assert ledger.planned[0] == pytest.approx(keep * 2.0 + 1.0)


def test_effective_targets_stay_within_bounds():
    ledger = ServiceLedger.start([0.999])
    for _ in range(100):
        ledger = ledger.record([50.0], [100.0], FAST)
    # 50 times the planned losses, but the ratio is bounded at 5: 1 - 0.001 / 5.
    assert ledger.update(FAST).effective_target[0] == pytest.approx(0.9998)
    high = ServiceFeedback(ratio_bounds=(0.2, 100.0))
    assert ledger.update(high).effective_target[0] == pytest.approx(0.9999)


def test_feedback_switched_off_plans_the_target():
    off = ServiceFeedback(enabled=False)
    ledger = ServiceLedger.start([0.98])
    for _ in range(50):
        ledger = ledger.record([10.0], [100.0], off)
    assert ledger.update(off).effective_target[0] == 0.98


def test_a_kept_ledger_comes_back_and_a_new_target_starts_fresh():
    ledger = ServiceLedger.start([0.95, 0.98]).record([3.0, 4.0], [100.0, 100.0], FAST).update(FAST)
    back = ServiceLedger.from_frame(ledger.to_frame(), [0.95, 0.98, 0.99])
    assert back.lost.tolist() == [3.0, 4.0, 0.0]
    assert back.effective_target[:2].tolist() == ledger.effective_target.tolist()
    assert back.effective_target[2] == 0.99
    assert ServiceLedger.from_frame(None, [0.9]).lost.tolist() == [0.0]


def test_from_policy_reads_the_section():
    fb = ServiceFeedback.from_policy({"half_life_days": 30, "prior_days": 3, "enabled": False, "max_age_days": 5})
    assert (fb.half_life_days, fb.prior_days, fb.enabled, fb.max_age_days) == (30.0, 3.0, False, 5)
    assert ServiceFeedback.from_policy(None) == ServiceFeedback()


def test_a_stock_out_day_loses_what_the_series_usually_sells():
    days = pd.date_range("2026-01-01", periods=29, freq="D")
    rows = []
    for uid, usual in (("a", 10.0), ("b", 4.0)):
        for d in days[:-1]:
            rows.append({"unique_id": uid, "ds": d, "y": usual, "censored": False})
    rows.append({"unique_id": "a", "ds": days[-1], "y": 3.0, "censored": True})   # ran out: lost 7
    rows.append({"unique_id": "b", "ds": days[-1], "y": 6.0, "censored": False})  # a good day: lost nothing
    out = day_of_service(pd.DataFrame(rows), days[-1], pd.Series({"a": 0.98, "b": 0.95}))
    got = out.set_index("target")
    assert got.loc[0.98, "lost"] == 7.0 and got.loc[0.98, "demand"] == 10.0
    assert got.loc[0.95, "lost"] == 0.0 and got.loc[0.95, "demand"] == 6.0


def test_a_stock_out_day_is_not_counted_as_usual():
    days = pd.date_range("2026-01-01", periods=4, freq="D")
    frame = pd.DataFrame({"unique_id": "a", "ds": days, "y": [8.0, 0.0, 8.0, 2.0],
                          "censored": [False, True, False, True]})
    out = day_of_service(frame, days[-1], pd.Series({"a": 0.9}))
    assert out["lost"].tolist() == [6.0]  # usual 8 (the censored zero left out), sold 2


def test_series_without_a_target_are_left_out():
    frame = pd.DataFrame({"unique_id": ["x"], "ds": [pd.Timestamp("2026-01-01")], "y": [1.0], "censored": [False]})
    assert day_of_service(frame, "2026-01-01", pd.Series({"a": 0.9})).empty


def test_the_night_records_yesterday_and_plans_with_the_ledger(tmp_path, monkeypatch):
    """``propose_decisions``' service step on a hand-built data root: the latest day of the demand history
    is recorded per target, the ledger is kept under the night's date, and a re-run records it once."""
    import datetime as dt

    from include.decisions.params import DecisionParams
    from include.runs import Run
    from include.stages import nightly
    from include.storage import read_partition, write_partition

    root = str(tmp_path)
    day = dt.date(2026, 3, 30)
    days = pd.date_range("2026-03-01", "2026-03-30", freq="D")
    rows = []
    for uid, sku in (("S1|A", "A"), ("S1|B", "B")):
        for d in days:
            last = d == days[-1]
            rows.append({"unique_id": uid, "sku": sku, "ds": d, "y": 2.0 if (last and sku == "A") else 10.0,
                         "censored": bool(last and sku == "A")})
    write_partition(pd.DataFrame(rows), "curated", "demand", day, root)
    write_partition(pd.DataFrame({"unique_id": ["S1|A", "S1|B"], "demand_class": ["smooth", "lumpy"]}),
                    "forecasts", "series", day, root)
    curated = {"items": pd.DataFrame({"sku": ["A", "B"], "category": ["food", "food"]})}
    params = DecisionParams(fill_rate=0.98, fill_rate_by_demand_class={"lumpy": 0.95})
    run = Run(dag_id="retail_nightly", run_id="r1", ds=day.isoformat(), task_id="propose_decisions")
    planned, summary = nightly._service_feedback(run, day, curated, params, root)
    kept = read_partition("reports", "service_ledger", day, root).set_index("target")
    assert kept.loc[0.98, "lost"] == 8.0 and kept.loc[0.98, "demand"] == 10.0  # A ran out: 8 of its usual 10
    assert kept.loc[0.95, "lost"] == 0.0 and kept.loc[0.95, "demand"] == 10.0
    assert planned.planned_fill_rates[0.98] > 0.98 and planned.planned_fill_rates[0.95] < 0.95
    assert set(summary) == {"0.95", "0.98"}
    again, _ = nightly._service_feedback(run, day, curated, params, root)  # a re-run: the same day, once
    assert again.planned_fill_rates == planned.planned_fill_rates
    assert read_partition("reports", "service_ledger", day, root)["lost"].tolist() == kept["lost"].tolist()
