"""Unit tests for the replenishment core shared by the nightly and the replay, worked by hand."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import norm

from include.decisions.replenishment import (
    normal_loss,
    order_levels,
    order_quantity,
    protection_sums,
    safety_factor_for_fill_rate,
)


def test_normal_loss_matches_the_normal_distribution():
    k = np.array([-2.0, 0.0, 0.9, 2.5])
    expected = norm.pdf(k) - k * norm.sf(k)
    assert np.allclose(normal_loss(k), expected, atol=1e-4)
    # sigma 10, 100 a cycle at a 99% fill rate: G(k) = 0.1 -> k = 0.9 (tables: G(0.9) = 0.1004).
    k = safety_factor_for_fill_rate(0.99, np.array([10.0, 0.0]), np.array([100.0, 100.0]))
    assert k[0] == pytest.approx(0.90, abs=0.01)
    assert k[1] == 0.0  # no uncertainty, no safety stock
    # A low target over a long cycle needs less than the expected demand over the interval.
    assert safety_factor_for_fill_rate(0.8, np.array([1.0]), np.array([50.0]))[0] < 0


def test_protection_sums_interpolate_and_extend_past_the_horizon():
    mean = np.array([[1.0, 2.0, 3.0, 4.0]])
    sigma = np.array([[1.0, 2.0, 3.0, 4.0]])
    demand, sig, rate = protection_sums(mean, sigma, np.array([2.5]))
    assert (demand[0], sig[0]) == (1 + 2 + 1.5, 2.5)
    assert rate[0] == pytest.approx(4.5 / 2.5)
    # Past the horizon: the horizon's mean rate (10 / 4 a period), error growing with sqrt(length).
    demand, sig, _ = protection_sums(mean, sigma, np.array([8.0]))
    assert demand[0] == 10 + 4 * 2.5 and sig[0] == pytest.approx(4 * np.sqrt(2))
    # An empty interval sums to nothing and reports the horizon's rate.
    demand, sig, rate = protection_sums(mean, sigma, np.array([0.0]))
    assert (demand[0], sig[0], rate[0]) == (0.0, 0.0, 2.5)


def test_order_levels_for_periodic_and_nightly_review():
    mean = np.full((2, 28), 10.0)
    sigma = 3.0 * np.sqrt(np.arange(1, 29))[None, :].repeat(2, axis=0)
    # Replay: review every 7 days, lead 5 -> 11 days protected (orders arrive at the start of a day).
    rs = order_levels(mean, sigma, lead=5, lead_sd=0.0, review=7, fill_rate=np.array([0.95, 0.99]))
    assert rs.protection_periods.tolist() == [11.0, 11.0]
    assert rs.demand.tolist() == [110.0, 110.0]
    assert rs.sigma == pytest.approx(3 * np.sqrt(11))
    assert (rs.order_up_to == rs.reorder_point).all()  # (R, S): order up to the level at every review
    # At a high target the level is near the textbook one (expected units short over the interval
    # (1 - target) of the 70 units of a 7-day cycle), a little below it: losses before an order
    # arrives do not consume it.
    textbook = safety_factor_for_fill_rate(0.99, np.array([3 * np.sqrt(11)]), np.array([70.0]))[0]
    assert textbook - 0.3 < rs.safety_factor[1] < textbook
    assert rs.safety_stock[1] > rs.safety_stock[0]
    # Nightly: reviewed daily, a 7-day order cycle above the reorder point, lead-time spread 2 days.
    nightly = order_levels(mean, sigma, lead=5, lead_sd=2.0, review=1, order_cycle=7, fill_rate=0.98)
    assert nightly.demand.tolist() == [50.0, 50.0]
    assert nightly.sigma == pytest.approx(np.sqrt(9 * 5 + (10 * 2) ** 2))
    assert nightly.order_up_to == pytest.approx(nightly.reorder_point + 70)
    with pytest.raises(ValueError, match="fill_rate"):
        order_levels(mean, sigma, lead=5, lead_sd=0.0, review=7, fill_rate=1.0)


def test_order_quantity_packs_moq_and_room():
    up = np.array([20.0, 20.0, 20.0, 5.0, 20.0])
    position = np.array([3.0, 3.0, 3.0, 6.0, 3.0])
    qty = order_quantity(up, position, case_pack=np.array([12, 6, 0, 6, 12]), moq=np.array([0, 50, 0, 50, 0]),
                         room=np.array([np.inf, np.inf, np.inf, np.inf, 17.0]))
    # 17 short: 2 cases of 12; MOQ 50 in cases of 6 is 54; no pack: 17 exactly; at the level: nothing;
    # the shelf takes one case of 12 only.
    assert qty.tolist() == [24.0, 54.0, 17.0, 0.0, 12.0]


def _lost_sales_fill(level: float, mean: float, lead: int, review: int, periods: int = 30_000) -> float:
    """Fill rate of an order-up-to ``level`` reviewed every ``review`` periods, Poisson demand, lost sales."""
    demand = np.random.default_rng(7).poisson(mean, periods).astype(float)
    arriving = np.zeros(periods + lead + 1)
    on_hand, on_order, served = level, 0.0, 0.0
    for t in range(periods):
        on_hand += arriving[t]
        on_order -= arriving[t]
        sold = min(on_hand, demand[t])
        on_hand -= sold
        served += sold
        if t % review == 0 and on_hand + on_order < level:
            arriving[t + lead] += level - on_hand - on_order
            on_order += level - on_hand - on_order
    return served / demand.sum()


@pytest.mark.parametrize(("mean", "lead", "review"), [(10.0, 5, 7), (1.0, 5, 7), (10.0, 2, 1)])
def test_periodic_levels_meet_their_fill_rate_with_lost_sales(mean, lead, review):
    # Demand known exactly (Poisson: variance = mean each period): the level for each target, replayed
    # with lost sales, serves that share of demand. Without the lost-sales term a 90% target got 93%.
    horizon = 28
    means = np.full((1, horizon), mean)
    sigma_cum = np.sqrt(mean * np.arange(1, horizon + 1))[None, :]
    for target in (0.9, 0.95, 0.98):
        level = order_levels(means, sigma_cum, lead=lead, lead_sd=0.0, review=review, fill_rate=target).order_up_to[0]
        assert _lost_sales_fill(level, mean, lead, review) == pytest.approx(target, abs=0.015)


@pytest.mark.parametrize(("mean", "lead", "review"), [(5.0, 14, 7), (5.0, 21, 7)])
def test_lead_time_longer_than_review_with_lost_sales(mean, lead, review):
    # Several orders outstanding: the demand lost before an order arrives is that of the cycles whose end
    # the lead time holds. Treated as backorders, a 90% target at lead time 21 was served 94.8%.
    horizon = 40
    means = np.full((1, horizon), mean)
    sigma_cum = np.sqrt(mean * np.arange(1, horizon + 1))[None, :]
    for target in (0.9, 0.95, 0.98):
        level = order_levels(means, sigma_cum, lead=lead, lead_sd=0.0, review=review, fill_rate=target).order_up_to[0]
        assert _lost_sales_fill(level, mean, lead, review) == pytest.approx(target, abs=0.015)


def test_pooled_levels_share_one_safety_factor_and_need_less_stock():
    # A smooth and an erratic series with the same target: pooled, one safety factor serves 95% of the
    # two cycles' demand together (expected units short = 5% of it) with less stock than a level each.
    from include.decisions.replenishment import expected_shortfall

    mean = np.array([[10.0] * 14, [10.0] * 14])
    sigma_cum = np.array([np.sqrt(10 * np.arange(1, 15)), 8 * np.sqrt(10 * np.arange(1, 15))])
    own = order_levels(mean, sigma_cum, lead=7, lead_sd=0.0, review=1, order_cycle=7, fill_rate=0.95)
    pooled = order_levels(mean, sigma_cum, lead=7, lead_sd=0.0, review=1, order_cycle=7, fill_rate=0.95,
                          pool=np.zeros(2))
    assert pooled.safety_factor[0] == pytest.approx(pooled.safety_factor[1], abs=1e-6)
    short = (expected_shortfall(pooled.demand, pooled.sigma, pooled.reorder_point)
             - expected_shortfall(pooled.demand, pooled.sigma, pooled.reorder_point + 70.0))
    assert short.sum() == pytest.approx(0.05 * 140.0, rel=1e-4)
    assert pooled.reorder_point.sum() < own.reorder_point.sum() - 1.0
    # Two pools, or two targets in one pool, are solved apart: each alone is its own target.
    apart = order_levels(mean, sigma_cum, lead=7, lead_sd=0.0, review=1, order_cycle=7, fill_rate=0.95,
                         pool=np.array([0, 1]))
    assert apart.reorder_point == pytest.approx(own.reorder_point, abs=1e-3)
    mixed = order_levels(mean, sigma_cum, lead=7, lead_sd=0.0, review=1, order_cycle=7,
                         fill_rate=np.array([0.95, 0.99]), pool=np.zeros(2))
    assert mixed.reorder_point[0] == pytest.approx(own.reorder_point[0], abs=1e-3)


def test_pooled_levels_rounded_to_the_order_unit():
    mean = np.full((3, 14), 0.3)
    sigma_cum = np.sqrt(0.3 * np.arange(1, 15))[None, :].repeat(3, axis=0)
    levels = order_levels(mean, sigma_cum, lead=3, lead_sd=0.0, review=7, fill_rate=0.9, pool=np.zeros(3), unit=1.0)
    assert levels.order_up_to == pytest.approx(np.round(levels.order_up_to))


def test_calibration_scales_sigma_by_the_measured_error():
    from include.decisions.calibration import calibrate, error_class, rolling_calibration, standardized_errors

    rng = np.random.default_rng(3)
    forecast = np.full(2000, 100.0)
    sigma = np.full(2000, 10.0)
    actual = forecast + 1.5 * sigma * rng.standard_normal(2000)  # the backtest under-states the error 1.5x
    z = standardized_errors(forecast, sigma, actual)
    cal = calibrate(z, forecast, sigma)
    assert error_class(np.array([100.0]), np.array([10.0]))[0] == 0
    assert cal.scale_of(np.array([100.0]), np.array([10.0]))[0] == pytest.approx(1.5, abs=0.06)
    # A class without errors of its own takes the pooled scale; with too few errors at all, 1.
    assert cal.scale_of(np.array([10.0]), np.array([10.0]))[0] == pytest.approx(1.5, abs=0.06)
    assert calibrate(z[:10], forecast[:10], sigma[:10]).scale_of(np.array([100.0]), np.array([10.0]))[0] == 1.0
    # Rolling: a version sees only the errors known by then.
    later = np.where(np.arange(2000) < 1000, 0, 1)
    rolled = rolling_calibration(np.where(later == 0, 0.5 * z, 2.0 * z)[None], forecast[None], sigma[None],
                                 later[None], 2)
    assert rolled.scale_of(np.array([100.0]), np.array([10.0]), 0)[0] == pytest.approx(0.75, abs=0.05)
    assert rolled.scale_of(np.array([100.0]), np.array([10.0]), 1)[0] > 1.5
    # The levels use it: sigma_cum times the scale.
    mean = np.full((1, 10), 10.0)
    sc = np.sqrt(10 * np.arange(1, 11))[None, :]
    plain = order_levels(mean, sc, lead=3, lead_sd=0.0, review=1, order_cycle=7, fill_rate=0.98)
    scaled = order_levels(mean, sc, lead=3, lead_sd=0.0, review=1, order_cycle=7, fill_rate=0.98, calibration=cal)
    assert scaled.sigma[0] == pytest.approx(plain.sigma[0] * cal.scale[0])
