"""Unit tests for the promotion lift of the vectorised forecasting path."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from models.forecasting import forecast
from models.forecasting.promotions import MIN_PROMO_MASS, depromote, promotion_elasticity, repromote

START = pd.Timestamp("2025-01-06")  # a Monday


def _series(uid: str, level: float, elasticity: float, n_days: int = 364, promo_every: int = 35,
            seed: int = 0, depth: float = 0.3, horizon: int = 28) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Poisson demand with a weekly shape, multiplied by (1 - depth) ** -elasticity on promoted weeks."""
    rng = np.random.default_rng(seed)
    t = np.arange(n_days + horizon)
    promo = np.where((t % promo_every) < 7, depth, 0.0)
    week = np.array([0.9, 0.9, 1.0, 1.0, 1.1, 1.3, 0.8])[t % 7]
    y = rng.poisson(level * week * (1 - promo) ** -elasticity).astype(float)
    frame = pd.DataFrame({"unique_id": uid, "ds": START + pd.to_timedelta(t, unit="D"), "y": y, "promo": promo})
    return frame.iloc[:n_days].reset_index(drop=True), frame.iloc[n_days:][["unique_id", "ds", "promo"]]


def test_the_elasticity_of_each_series_is_recovered_from_its_promoted_days():
    a, _ = _series("a", 20.0, 2.0, seed=1)
    b, _ = _series("b", 30.0, 0.5, seed=2)
    e = promotion_elasticity(pd.concat([a, b], ignore_index=True))
    assert e["a"] == pytest.approx(2.0, abs=0.3)
    assert e["b"] == pytest.approx(0.5, abs=0.3)


def test_series_with_too_little_promoted_history_take_the_pooled_elasticity():
    rich, _ = _series("rich", 40.0, 2.0, seed=3)
    thin, _ = _series("thin", 0.5, 0.0, seed=4, promo_every=400)  # one promoted week of a slow item
    never = rich.assign(unique_id="never", promo=0.0)
    history = pd.concat([rich, thin, never], ignore_index=True)
    e = promotion_elasticity(history)
    thin_mass = 0.5 * 7
    assert thin_mass < MIN_PROMO_MASS
    assert e["thin"] == e["rich"] == e["never"]  # pooled over the shard, dominated by "rich"
    assert promotion_elasticity(never).eq(0.0).all()  # nothing promoted anywhere: no lift at all


def test_a_thin_series_takes_its_items_elasticity_before_the_shards():
    # Item X sells at two locations: one with a rich promoted history (elasticity 2.5), one thin. Item Y's
    # only location has a rich history with elasticity 0.5, which dominates the pool over everything.
    x_rich, _ = _series("S1|X", 15.0, 2.5, seed=5)
    x_thin, _ = _series("S2|X", 0.5, 0.0, seed=6, promo_every=400)
    y_rich, _ = _series("S1|Y", 60.0, 0.5, seed=7)
    z_thin, _ = _series("S2|Z", 0.5, 0.0, seed=8, promo_every=400)

    e = promotion_elasticity(pd.concat([x_rich, x_thin, y_rich, z_thin], ignore_index=True))

    assert e["S2|X"] == pytest.approx(e["S1|X"], abs=0.25) and e["S1|X"] == pytest.approx(2.5, abs=0.3)
    assert e["S2|Z"] != e["S2|X"] and e["S2|Z"] < 1.5  # no promoted history of its item: the pool


def test_depromote_and_repromote_are_inverse_on_promoted_days():
    history, future = _series("a", 10.0, 2.0)
    e = pd.Series({"a": 2.0})
    flat = depromote(history, e)
    promoted = history["promo"] > 0
    assert np.allclose(flat.loc[promoted, "y"], history.loc[promoted, "y"] * 0.7**2)
    assert flat.loc[~promoted, "y"].equals(history.loc[~promoted, "y"])
    fc = future[["unique_id", "ds"]].assign(mean=1.0, q50=1.0, q95=2.0, step=np.arange(1, len(future) + 1))
    out = repromote(fc, future, e)
    on = future["promo"].to_numpy() > 0
    assert np.allclose(out["mean"].to_numpy()[on], 0.7**-2) and np.allclose(out["q95"].to_numpy()[on], 2 * 0.7**-2)
    assert (out["mean"].to_numpy()[~on] == 1.0).all() and out["step"].equals(fc["step"])


def test_the_forecast_rises_on_the_planned_promotion_by_the_estimated_lift():
    history, future = _series("a", 20.0, 2.0, seed=5)
    plain = forecast(history[["unique_id", "ds", "y"]], 28)
    aware = forecast(history, 28, regressors=["promo"], future=future)
    mean = aware.forecasts["mean"].to_numpy()
    on = future["promo"].to_numpy() > 0
    assert on.any() and (~on).any()
    lift = mean[on].mean() / mean[~on].mean()
    assert lift == pytest.approx(0.7**-2, rel=0.2)
    assert aware.series.loc[0, "promo_elasticity"] == pytest.approx(2.0, abs=0.3)
    truth = 20.0 * np.array([0.9, 0.9, 1.0, 1.0, 1.1, 1.3, 0.8])[np.arange(364, 392) % 7] * (1 - future["promo"]) ** -2
    assert np.abs(mean - truth).mean() < np.abs(plain.forecasts["mean"].to_numpy() - truth).mean() / 2
