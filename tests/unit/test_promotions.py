"""Unit tests for the promotion lift of the vectorised forecasting path (the ``promo`` driver).

A promotion that takes ``d`` off the price multiplies demand by ``(1 - d) ** -e``; ``promo_elasticity`` in
``ForecastResult.series`` is the ``e`` estimated per series (see :mod:`models.forecasting.drivers`).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from models.forecasting import forecast

START = pd.Timestamp("2025-01-06")  # a Monday
WEEK = np.array([0.9, 0.9, 1.0, 1.0, 1.1, 1.3, 0.8])


def _series(uid: str, level: float, elasticity: float, n_days: int = 364, promo_every: int = 35,
            seed: int = 0, depth: float = 0.3, horizon: int = 28) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Poisson demand with a weekly shape, multiplied by (1 - depth) ** -elasticity on promoted weeks."""
    rng = np.random.default_rng(seed)
    t = np.arange(n_days + horizon)
    promo = np.where((t % promo_every) < 7, depth, 0.0)
    y = rng.poisson(level * WEEK[t % 7] * (1 - promo) ** -elasticity).astype(float)
    frame = pd.DataFrame({"unique_id": uid, "ds": START + pd.to_timedelta(t, unit="D"), "y": y, "promo": promo})
    return frame.iloc[:n_days].reset_index(drop=True), frame.iloc[n_days:][["unique_id", "ds", "promo"]]


def _elasticity(parts: list[tuple[pd.DataFrame, pd.DataFrame]]) -> pd.Series:
    history = pd.concat([p[0] for p in parts], ignore_index=True)
    future = pd.concat([p[1] for p in parts], ignore_index=True)
    result = forecast(history, 28, regressors=["promo"], future=future)
    return result.series.set_index("unique_id")["promo_elasticity"]


def test_the_elasticity_of_each_series_is_recovered_from_its_promoted_days():
    e = _elasticity([_series("S1|A", 20.0, 2.0, seed=1), _series("S1|B", 30.0, 0.5, seed=2)])
    assert e["S1|A"] == pytest.approx(2.0, abs=0.3)
    assert e["S1|B"] == pytest.approx(0.5, abs=0.3)


def test_series_with_too_little_promoted_history_borrow_the_pooled_elasticity():
    rich = _series("S1|A", 40.0, 2.0, seed=3)
    thin = _series("S2|B", 0.5, 0.0, seed=4, promo_every=400)  # one promoted week of a slow item
    never = (rich[0].assign(unique_id="S3|C", promo=0.0), rich[1].assign(unique_id="S3|C"))
    e = _elasticity([rich, thin, never])
    assert e["S1|A"] == pytest.approx(2.0, abs=0.3)
    # Neither teaches anything of its own: both take (close to) the shard's, which "rich" dominates.
    assert e["S3|C"] == pytest.approx(e["S1|A"], abs=0.3)
    assert e["S2|B"] == pytest.approx(e["S1|A"], abs=0.4)


def test_nothing_promoted_anywhere_means_no_lift_at_all():
    history, future = _series("S1|A", 20.0, 0.0, seed=9)
    history = history.assign(promo=0.0)
    result = forecast(history, 28, regressors=["promo"], future=future)
    assert result.series.loc[0, "promo_elasticity"] == 0.0 and np.isnan(result.series.loc[0, "coef_promo"])
    plain = forecast(history[["unique_id", "ds", "y"]], 28)
    assert np.allclose(result.forecasts["mean"], plain.forecasts["mean"])


def test_a_thin_series_takes_its_items_elasticity_before_the_shards():
    # Item X sells at two locations: one with a rich promoted history (elasticity 2.5), one thin. Item Y's
    # only location has a rich history with elasticity 0.5, which weighs heavily in the pool over
    # everything. The thin series of items X and Z both truly have elasticity 2.5, but one promoted week
    # of a slow item cannot show it.
    e = _elasticity([_series("S1|X", 15.0, 2.5, seed=5), _series("S2|X", 0.5, 2.5, seed=6, promo_every=400),
                     _series("S1|Y", 60.0, 0.5, seed=7), _series("S2|Z", 0.5, 2.5, seed=8, promo_every=400)])
    assert e["S1|X"] == pytest.approx(2.5, abs=0.4)
    assert e["S2|X"] == pytest.approx(e["S1|X"], abs=0.3)  # its item's
    assert e["S2|Z"] < e["S2|X"] - 0.8  # no promoted history of its item: near the shard's, pulled to Y's 0.5


def test_every_forecast_column_is_multiplied_by_the_planned_lift():
    history, future = _series("S1|A", 20.0, 2.0, seed=5)
    aware = forecast(history, 28, regressors=["promo"], future=future)
    unplanned = forecast(history, 28, regressors=["promo"], future=future.assign(promo=0.0))
    e = aware.series.loc[0, "promo_elasticity"]
    on = future["promo"].to_numpy() > 0
    lift = np.where(on, 0.7**-e, 1.0)
    for col in ("mean", "q50", "q80", "q95"):
        assert np.allclose(aware.forecasts[col], unplanned.forecasts[col] * lift)
    assert on.any() and (~on).any()


def test_the_forecast_rises_on_the_planned_promotion_by_the_estimated_lift():
    history, future = _series("S1|A", 20.0, 2.0, seed=5)
    plain = forecast(history[["unique_id", "ds", "y"]], 28)
    aware = forecast(history, 28, regressors=["promo"], future=future)
    mean = aware.forecasts["mean"].to_numpy()
    on = future["promo"].to_numpy() > 0
    lift = mean[on].mean() / mean[~on].mean()
    assert lift == pytest.approx(0.7**-2, rel=0.2)
    assert aware.series.loc[0, "promo_elasticity"] == pytest.approx(2.0, abs=0.3)
    truth = 20.0 * WEEK[np.arange(364, 392) % 7] * (1 - future["promo"]) ** -2
    assert np.abs(mean - truth).mean() < np.abs(plain.forecasts["mean"].to_numpy() - truth).mean() / 2
