"""Unit tests for the known drivers of the vectorised path: price, flags, other numeric columns and events
(models.forecasting.drivers, driver_estimation, driver_backtest)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from models.forecasting import forecast
from models.forecasting.driver_estimation import DriverDesign, estimate_effects
from models.forecasting.drivers import fit_drivers
from models.forecasting.inputs import pack_grid, validate_history

START = pd.Timestamp("2025-01-06")  # a Monday
H = 28
WEEK = np.array([0.9, 0.9, 1.0, 1.0, 1.1, 1.3, 0.8])
ELASTICITY, DISPLAY_LIFT = -1.5, 0.4


def _driven(uid: str, level: float, n_days: int = 420, seed: int = 0, elasticity: float = ELASTICITY,
            lift: float = DISPLAY_LIFT) -> pd.DataFrame:
    """Poisson demand ``level * week * (price / 10) ** elasticity * exp(lift * display)`` over history and
    horizon, with price cuts on random weeks and an independent display flag on random days."""
    rng = np.random.default_rng(seed)
    t = np.arange(n_days + H)
    cut = np.repeat(rng.random(len(t) // 7 + 1) < 0.25, 7)[: len(t)] * rng.choice([0.1, 0.2, 0.3], len(t))
    price = 10.0 * (1.0 - cut)
    display = (rng.random(len(t)) < 0.12).astype(float)
    rate = level * WEEK[t % 7] * (price / 10.0) ** elasticity * np.exp(lift * display)
    return pd.DataFrame({"unique_id": uid, "ds": START + pd.to_timedelta(t, unit="D"),
                         "y": rng.poisson(rate).astype(float), "price": price, "display": display,
                         "noise": rng.normal(0.0, 1.0, len(t))})


def _split(frame: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    origin = frame.groupby("unique_id")["ds"].transform("max") - pd.Timedelta(days=H)
    future = frame[frame["ds"] > origin].drop(columns="y").reset_index(drop=True)
    return frame[frame["ds"] <= origin].reset_index(drop=True), future


def test_price_elasticity_and_flag_lift_are_recovered_per_series():
    frame = pd.concat([_driven("S1|A", 30.0, seed=1), _driven("S2|B", 20.0, seed=2, elasticity=-0.5, lift=0.8)])
    history, future = _split(frame)
    s = forecast(history, H, regressors=["price", "display"], future=future).series.set_index("unique_id")
    assert s.loc["S1|A", "coef_price"] == pytest.approx(ELASTICITY, abs=0.25)
    assert s.loc["S1|A", "coef_display"] == pytest.approx(DISPLAY_LIFT, abs=0.1)
    assert s.loc["S2|B", "coef_price"] == pytest.approx(-0.5, abs=0.25)
    assert s.loc["S2|B", "coef_display"] == pytest.approx(0.8, abs=0.1)


def test_the_forecast_follows_the_planned_price_and_display():
    frame = _driven("S1|A", 30.0, seed=3)
    history, future = _split(frame)
    result = forecast(history, H, regressors=["price", "display"], future=future)
    plain = forecast(history[["unique_id", "ds", "y"]], H)
    price, display = future["price"].to_numpy(), future["display"].to_numpy()
    truth = 30.0 * WEEK[np.arange(420, 420 + H) % 7] * (price / 10.0) ** ELASTICITY * np.exp(DISPLAY_LIFT * display)
    mean = result.forecasts["mean"].to_numpy()
    assert ((price < 10) | (display > 0)).any()
    assert np.abs(mean - truth).mean() < 0.6 * np.abs(plain.forecasts["mean"].to_numpy() - truth).mean()


def test_a_short_series_borrows_its_items_effects():
    rich = _driven("S1|A", 30.0, seed=4)
    # Two months of history at the regular price and without display: nothing of its own to learn from.
    short = _driven("S2|A", 30.0, seed=5).iloc[-(60 + H):].reset_index(drop=True)
    short.loc[: 59, ["price", "display"]] = [10.0, 0.0]
    short.loc[: 59, "y"] = np.random.default_rng(5).poisson(30.0 * WEEK[np.arange(60) % 7]).astype(float)
    other = _driven("S1|B", 30.0, seed=6, elasticity=0.0, lift=0.0)
    history, future = _split(pd.concat([rich, short, other], ignore_index=True))
    result = forecast(history, H, regressors=["price", "display"], future=future)
    s = result.series.set_index("unique_id")
    assert s.loc["S2|A", "coef_price"] == pytest.approx(s.loc["S1|A", "coef_price"], abs=0.1)
    assert s.loc["S2|A", "coef_display"] == pytest.approx(s.loc["S1|A", "coef_display"], abs=0.1)
    assert s.loc["S1|A", "coef_price"] == pytest.approx(ELASTICITY, abs=0.25)
    assert s.loc["S1|B", "coef_price"] == pytest.approx(0.0, abs=0.25)
    # Its forecast follows the planned price cuts and displays at the item's effects.
    regular = forecast(history, H, regressors=["price", "display"], future=future.assign(price=10.0, display=0.0))
    mine = (result.forecasts["unique_id"] == "S2|A").to_numpy()
    plan = future[future["unique_id"] == "S2|A"]
    lift = result.forecasts.loc[mine, "mean"].to_numpy() / regular.forecasts.loc[mine, "mean"].to_numpy()
    expected = (plan["price"].to_numpy() / 10.0) ** s.loc["S2|A", "coef_price"] * np.exp(
        s.loc["S2|A", "coef_display"] * plan["display"].to_numpy())
    assert (expected > 1.1).any() and np.allclose(lift, expected)


def test_shrinkage_pulls_a_series_without_driver_variation_to_its_item():
    # Arrays straight into the estimator: series 0 and 1 share an item, series 1 never sees the driver.
    rng = np.random.default_rng(0)
    t = 300
    x = (rng.random((2, t)) < 0.2).astype(float)
    x[1] = 0.0
    Y = rng.poisson(20.0 * np.exp(0.7 * x)).astype(float)
    design = DriverDesign(x[None], None, 0, np.array([0, 0]))
    beta = estimate_effects(Y, design, block_len=28, m=7)
    assert beta[0, 0] == pytest.approx(0.7, abs=0.1)
    assert beta[1, 0] == pytest.approx(beta[0, 0], abs=0.1)
    alone = estimate_effects(Y[1:], DriverDesign(x[1:][None], None, 0, np.array([-1])), block_len=28, m=7)
    assert alone[0, 0] == 0.0  # no information anywhere: the prior mean


def test_a_near_copy_of_a_kept_regressor_is_left_out():
    frame = _driven("S1|A", 30.0, seed=7)
    frame["promo"] = 1.0 - frame["price"] / 10.0
    history, future = _split(frame)
    s = forecast(history, H, regressors=["promo", "price"], future=future).series
    assert np.isnan(s.loc[0, "coef_price"])
    assert s.loc[0, "promo_elasticity"] == pytest.approx(-ELASTICITY, abs=0.3)


def test_a_regressor_without_effect_is_dropped_by_the_backtest():
    frame = pd.concat([_driven("S1|A", 30.0, seed=8), _driven("S2|A", 20.0, seed=9)])
    history, future = _split(frame)
    s = forecast(history, H, regressors=["price", "noise"], future=future).series
    assert s["coef_noise"].isna().all()
    assert s["coef_price"].notna().all()


def test_a_driver_on_a_few_series_is_judged_on_those_series():
    # Price cuts on 2 of 32 series: pooled over all 32 their gain is diluted below the backtest's
    # margins (the price was dropped), over the two they touch it is plain.
    driven = [_driven(f"S{i}|P", 30.0, seed=20 + i, elasticity=-1.0) for i in range(2)]
    plain = [_driven(f"S{i}|Q", 30.0, seed=40 + i, elasticity=0.0, lift=0.0).assign(price=10.0)
             for i in range(30)]
    history, future = _split(pd.concat([*driven, *plain]))
    s = forecast(history, H, regressors=["price"], future=future).series.set_index("unique_id")
    assert s.loc[["S0|P", "S1|P"], "coef_price"].to_numpy() == pytest.approx([-1.0, -1.0], abs=0.3)


def test_missing_values_mean_the_regular_level():
    frame = _driven("S1|A", 30.0, seed=10)
    history, future = _split(frame)
    history.loc[history.index[-30:-20], "price"] = np.nan
    future.loc[future.index[:5], "price"] = np.nan
    future = future.drop(index=future.index[5])  # no row at all for step 6
    cols = validate_history(history)
    Y, grid = pack_grid(cols)
    fit = fit_drivers(history, grid, Y, ["price"], future, horizon=H, season_length=7, period_days=1,
                      backtest_windows=2)
    assert fit.kept == ["price"]
    assert np.allclose(fit.history[0, -30:-20], 1.0)
    assert np.allclose(fit.future[0, :6], 1.0)
    cut = future["price"].to_numpy()[5:] < 10
    assert (fit.future[0, 6:][cut] > 1.05).all() and np.allclose(fit.future[0, 6:][~cut], 1.0)


def test_a_standardised_column_and_event_labels_move_the_forecast():
    rng = np.random.default_rng(11)
    n_days = 420
    t = np.arange(n_days + H)
    frames = []
    for k in range(4):
        amount = np.where(rng.random(len(t)) < 0.3, rng.uniform(100, 500, len(t)), 0.0)  # markdown dollars
        event = np.where(t % 14 == 3, "sale", None).astype(object)
        rate = 25.0 * WEEK[t % 7] * np.exp(0.002 * amount) * np.where(event == "sale", 1.8, 1.0)
        frames.append(pd.DataFrame({"unique_id": f"S{k}|A", "ds": START + pd.to_timedelta(t, unit="D"),
                                    "y": rng.poisson(rate).astype(float), "markdown": amount, "event": event}))
    history, future = _split(pd.concat(frames, ignore_index=True))
    result = forecast(history, H, regressors=["markdown"], future=future)
    s = result.series
    assert (s["coef_markdown"] > 0.2).all()  # per standard deviation of the markdown amount
    assert s["coef_event"].to_numpy() == pytest.approx(np.log(1.8), abs=0.1)
    # Sales fall on every other Thursday: the sale Thursdays of the horizon get the lift, the others not.
    fc = result.forecasts.merge(future, on=["unique_id", "ds"])
    thursday = (fc["ds"].dt.dayofweek == 3) & (fc["markdown"] == 0)
    on_sale = fc.loc[thursday & (fc["event"] == "sale"), "mean"].mean()
    ordinary = fc.loc[thursday & fc["event"].isna(), "mean"].mean()
    assert on_sale / ordinary == pytest.approx(1.8, rel=0.15)


def test_without_drivers_the_result_has_the_plain_columns():
    frame = _driven("S1|A", 30.0, seed=12)
    history, future = _split(frame)
    plain = forecast(history[["unique_id", "ds", "y"]], H)
    assert list(plain.series.columns) == ["unique_id", "model", "fallback_reason", "backtest_mase", "backtest_rmse",
                                          "n_obs", "demand_class", "mean_daily"]
    assert list(plain.forecasts.columns) == ["unique_id", "ds", "step", "mean", "q50", "q80", "q95", "sigma_cum"]
    no_events = forecast(history[["unique_id", "ds", "y"]].assign(event=None), H)
    pd.testing.assert_frame_equal(no_events.forecasts, plain.forecasts)
    with_drivers = forecast(history, H, regressors=["price"], future=future)
    assert list(with_drivers.forecasts.columns) == list(plain.forecasts.columns)
    assert len(with_drivers.forecasts) == len(plain.forecasts)


def test_a_driver_first_seen_inside_the_backtest_windows_is_not_used_yet():
    # The display flag only starts 40 days before the origin: nothing before the backtest windows backs it.
    frames = [_driven(f"S{k}|A", 30.0, seed=20 + k) for k in range(3)]
    for frame in frames:
        frame.loc[frame.index[: 420 - 40], "display"] = 0.0
    history, future = _split(pd.concat(frames, ignore_index=True))
    s = forecast(history, H, regressors=["price", "display"], future=future).series
    assert s["coef_display"].isna().all() and s["coef_price"].notna().all()


def test_event_labels_the_backtest_windows_cannot_judge_are_left_out():
    # A yearly event seen once, months before the windows: one day per series is no base for a forecast.
    frames = []
    for k in range(3):
        frame = _driven(f"S{k}|A", 30.0, seed=30 + k)[["unique_id", "ds", "y"]]
        frame["event"] = np.where(np.arange(len(frame)) == 100, "fair", None).astype(object)
        frame.loc[frame.index[100], "y"] *= 3
        frames.append(frame)
    history, future = _split(pd.concat(frames, ignore_index=True))
    result = forecast(history, H, future=future)
    assert result.series["coef_event"].isna().all()
    plain = forecast(history[["unique_id", "ds", "y"]], H)
    assert np.allclose(result.forecasts["mean"], plain.forecasts["mean"])
