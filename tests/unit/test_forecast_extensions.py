"""Unit tests for weekly forecasting, TSB, the optional per-series models and forecast monitoring."""

from __future__ import annotations

import logging
import time

import numpy as np
import pandas as pd
import pytest

from models.forecasting import CANDIDATES, forecast, heavy
from models.forecasting.heavy import HeavyModelUnavailable, refine
from models.forecasting.monitoring import SCORE_COLUMNS, flag_drift, score_forecasts

WEEKS = 156
DAILY = pd.Timestamp("2024-01-01")


def _weekly(uid: str, seed: int = 0, start: str = "2021-01-08") -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    t = np.arange(WEEKS)
    y = 100 * (1 + 0.5 * np.sin(2 * np.pi * t / 52)) + rng.normal(0, 3, WEEKS)
    return pd.DataFrame({"unique_id": uid, "ds": pd.date_range(start, periods=WEEKS, freq="7D"), "y": y})


def _daily(uid: str, level: float, n_days: int = 200, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    week = np.array([1.0, 1.0, 1.0, 1.1, 1.3, 1.6, 0.6])
    y = rng.poisson(level * week[np.arange(n_days) % 7]).astype(float)
    return pd.DataFrame({"unique_id": uid, "ds": pd.date_range(DAILY, periods=n_days, freq="D"), "y": y})


# ---------------------------------------------------------------------------------------------------
# Weekly frequency
# ---------------------------------------------------------------------------------------------------


def test_weekly_history_forecasts_weekly_steps_with_the_yearly_season():
    history = pd.concat([_weekly("a", 0), _weekly("b", 1)], ignore_index=True)
    result = forecast(history, 13, season_length=52, freq="W")

    fc = result.forecasts[result.forecasts["unique_id"] == "a"]
    last = history["ds"].max()
    assert list(fc["ds"]) == list(last + pd.to_timedelta(7 * np.arange(1, 14), unit="D"))
    # The yearly shape carries over: a year earlier the same weeks were within a few units of it.
    year_ago = history[history["unique_id"] == "a"]["y"].to_numpy()[WEEKS - 52 : WEEKS - 39]
    assert np.abs(fc["mean"].to_numpy() - year_ago).mean() < 15
    assert result.series["fallback_reason"].isna().all()
    assert set(result.series["model"]) <= set(CANDIDATES)


def test_weekly_dates_off_the_weekly_grid_raise():
    history = _weekly("a")
    history.loc[5, "ds"] += pd.Timedelta(days=1)
    with pytest.raises(ValueError, match="same weekday"):
        forecast(history, 4, season_length=52, freq="W")


def test_unknown_frequency_raises():
    with pytest.raises(ValueError, match="freq must be one of"):
        forecast(_daily("a", 5.0), 7, freq="M")


def test_daily_default_is_unchanged_by_the_weekly_option():
    history = _daily("a", 8.0)
    assert forecast(history, 14).forecasts.equals(forecast(history, 14, freq="D").forecasts)


def test_tsb_decays_for_an_item_that_stopped_selling():
    y = np.r_[np.where(np.arange(150) % 3 == 0, 2.0, 0.0), np.zeros(60)]
    Y = y[None, :]
    assert CANDIDATES["tsb"](Y, 7, 7)[0, 0] < CANDIDATES["croston_sba"](Y, 7, 7)[0, 0]


# ---------------------------------------------------------------------------------------------------
# Optional per-series models: failure isolation
# ---------------------------------------------------------------------------------------------------


@pytest.fixture
def base():
    history = pd.concat([_daily(f"s{i}", 5.0 + 5 * i, seed=i) for i in range(4)], ignore_index=True)
    return history, forecast(history, 14)


def _register(monkeypatch, fn):
    monkeypatch.setitem(heavy.HEAVY_MODELS, "mock", fn)


def test_heavy_model_replaces_the_top_value_series(monkeypatch, base):
    history, result = base
    _register(monkeypatch, lambda y, ds, h, m, reg, fut: np.full(h, 42.0))
    out = refine(history, result, model="mock", top_n=2)

    models = out.series.set_index("unique_id")["model"]
    assert list(models[models == "mock"].index) == ["s2", "s3"]  # highest mean_daily
    top = out.forecasts[out.forecasts["unique_id"] == "s3"]
    assert np.allclose(top["mean"], 42.0)
    assert (top["q95"] >= top["q80"]).all() and (top["q80"] >= top["q50"]).all()
    assert out.series["heavy_note"].isna().all()
    untouched = out.forecasts["unique_id"] == "s0"
    assert out.forecasts[untouched].equals(result.forecasts[untouched])


def test_a_raising_heavy_model_keeps_the_vectorised_forecast_for_that_series_only(monkeypatch, base):
    history, result = base

    def flaky(y, ds, h, m, reg, fut):
        if y.mean() > 15:
            raise RuntimeError("singular matrix")
        return np.full(h, 7.0)

    _register(monkeypatch, flaky)
    out = refine(history, result, model="mock", top_n=4)

    s = out.series.set_index("unique_id")
    assert s.loc["s3", "heavy_note"] == "mock failed: RuntimeError: singular matrix"
    assert s.loc["s3", "model"] == result.series.set_index("unique_id").loc["s3", "model"]
    assert s.loc["s0", "model"] == "mock"
    keep = out.forecasts["unique_id"] == "s3"
    assert out.forecasts[keep].equals(result.forecasts[keep])


@pytest.mark.parametrize(
    ("values", "note"),
    [
        (np.array([np.nan] * 14), "non-finite"),
        (np.full(14, 1e9), "more than 10x the series max"),
        (np.full(3, 1.0), "mis-shaped"),
    ],
)
def test_insane_heavy_forecasts_are_rejected(monkeypatch, base, values, note):
    history, result = base
    _register(monkeypatch, lambda y, ds, h, m, reg, fut: values)
    out = refine(history, result, model="mock", top_n=1)
    row = out.series.set_index("unique_id").loc["s3"]
    assert note in row["heavy_note"]
    assert row["model"] != "mock"


def test_a_slow_heavy_fit_times_out_and_keeps_the_vectorised_forecast(monkeypatch, base):
    history, result = base

    def slow(y, ds, h, m, reg, fut):
        time.sleep(1.0)
        return np.full(h, 1.0)

    _register(monkeypatch, slow)
    started = time.monotonic()
    out = refine(history, result, model="mock", top_n=1, timeout_s=0.05)
    assert time.monotonic() - started < 0.9
    assert "TimeoutError" in out.series.set_index("unique_id").loc["s3", "heavy_note"]


def test_a_model_wide_outage_degrades_every_series_loudly(monkeypatch, base, caplog):
    history, result = base
    calls = []

    def unavailable(y, ds, h, m, reg, fut):
        calls.append(1)
        raise HeavyModelUnavailable("prophet cannot be loaded: ImportError: no cmdstan")

    _register(monkeypatch, unavailable)
    with caplog.at_level(logging.WARNING, logger="models.forecasting.heavy"):
        out = refine(history, result, model="mock", top_n=3)

    assert len(calls) == 1  # no point retrying a missing library per series
    assert out.forecasts.equals(result.forecasts)
    notes = out.series.set_index("unique_id")["heavy_note"]
    assert notes[["s1", "s2", "s3"]].str.startswith("mock unavailable: prophet cannot be loaded").all()
    assert "unavailable" in caplog.text


def test_heavy_refine_validates_its_arguments(base):
    history, result = base
    with pytest.raises(ValueError, match="model must be one of"):
        refine(history, result, model="arima")
    with pytest.raises(ValueError, match="missing regressor column"):
        refine(history, result, regressors=["price"])


# ---------------------------------------------------------------------------------------------------
# Monitoring
# ---------------------------------------------------------------------------------------------------


def _monitoring_frames(over: float):
    hist = pd.concat([_daily("a", 10.0, 56), _daily("b", 2.0, 56, seed=3)], ignore_index=True)
    days = pd.date_range(hist["ds"].max() + pd.Timedelta(days=1), periods=7, freq="D")
    actuals = pd.DataFrame({"unique_id": np.repeat(["a", "b"], 7), "ds": np.tile(days, 2), "y": 10.0})
    fc = actuals.rename(columns={"y": "mean"}).assign(
        mean=lambda f: f["mean"] * over, demand_class=np.repeat(["smooth", "intermittent"], 7)
    )
    return fc, actuals, hist


def test_scores_by_segment_and_bias():
    fc, actuals, hist = _monitoring_frames(over=1.5)
    scores = score_forecasts(fc, actuals, hist, segment_col="demand_class")
    assert list(scores.columns) == SCORE_COLUMNS
    assert list(scores["segment"]) == ["intermittent", "smooth"]
    assert np.allclose(scores["bias"], 0.5)
    assert (scores["mase"] > 0).all() and (scores["rmsse"] > 0).all()
    perfect = score_forecasts(actuals.rename(columns={"y": "mean"}), actuals, hist)
    assert perfect.loc[0, "mase"] == 0 and perfect.loc[0, "bias"] == 0


def test_drift_is_flagged_past_the_threshold_only():
    fc, actuals, hist = _monitoring_frames(over=1.05)
    baseline = score_forecasts(fc, actuals, hist, segment_col="demand_class")
    worse_fc, _, _ = _monitoring_frames(over=2.0)
    current = score_forecasts(worse_fc, actuals, hist, segment_col="demand_class")

    drift = flag_drift(current, baseline).set_index("segment")
    assert drift["drift"].all()
    assert "x its baseline" in drift.loc["smooth", "reason"] and "bias +100%" in drift.loc["smooth", "reason"]
    steady = flag_drift(baseline, baseline).set_index("segment")
    assert not steady["drift"].any() and steady["reason"].isna().all()
    with pytest.raises(ValueError, match="metric must be"):
        flag_drift(current, baseline, metric="mape")
