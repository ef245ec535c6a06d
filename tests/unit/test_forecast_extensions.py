"""Unit tests for weekly forecasting, TSB, the per-series challengers and forecast monitoring."""

from __future__ import annotations

import logging
import os
import re
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from models.forecasting import (
    CANDIDATES,
    HEAVY_MODELS,
    Challenger,
    HeavyModel,
    HeavyModelUnavailable,
    challenge,
    forecast,
)
from models.forecasting.challenger import regressor_lifts
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
# Per-series challengers: who is tried, the backtest decides, failures stay isolated
# ---------------------------------------------------------------------------------------------------

H = 14


def _promoted(uid: str, level: float, lift: float, n_days: int = 200, seed: int = 0, promo_every: int = 20):
    """A series whose demand jumps by ``lift`` units on promoted days (8 of every ``promo_every``)."""
    rng = np.random.default_rng(seed)
    t = np.arange(n_days + H)
    promo = ((t % promo_every) < 8).astype(float) * 0.3
    y = level + lift * (promo > 0) + rng.normal(0, 0.5, len(t))
    days = pd.date_range(DAILY, periods=n_days + H, freq="D")
    frame = pd.DataFrame({"unique_id": uid, "ds": days, "y": np.maximum(y, 0), "promo": promo})
    return frame.iloc[:n_days].reset_index(drop=True), frame.iloc[n_days:][["unique_id", "ds", "promo"]]


@pytest.fixture
def promo_world():
    """Two series promotions lift, one they do not move, one never promoted, and the horizon's promotions."""
    parts = [_promoted("p_big", 40.0, 30.0, seed=1), _promoted("p_small", 10.0, 8.0, seed=2),
             _promoted("p_dud", 30.0, 0.0, seed=5)]
    flat = _daily("flat", 20.0, seed=3).assign(promo=0.0)
    history = pd.concat([*(p[0] for p in parts), flat], ignore_index=True)
    future_flat = pd.DataFrame({"unique_id": "flat", "ds": parts[0][1]["ds"], "promo": 0.0})
    future = pd.concat([*(p[1] for p in parts), future_flat], ignore_index=True)
    return history, future


def _regression(train, future, m, holidays):  # noqa: ARG001
    """Least squares on the regressors: the model that knows how promotions work."""
    cols = [c for c in train.columns if c not in ("ds", "y")]
    X = np.c_[np.ones(len(train)), train[cols].to_numpy()]
    beta = np.linalg.lstsq(X, train["y"].to_numpy(), rcond=None)[0]
    return np.c_[np.ones(len(future)), future[cols].to_numpy()] @ beta


def _register(monkeypatch, fn, uses_regressors: bool = True):
    monkeypatch.setitem(HEAVY_MODELS, "mock", HeavyModel(fn, uses_regressors))


def _vectorised(history, future):
    return forecast(history, H, regressors=["promo"], future=future)


def _run(history, future, **kw):
    kw = {"min_series": 1, **kw}  # these worlds hold a handful of series
    return forecast(history, H, regressors=["promo"], future=future, challenger=Challenger(model="mock", **kw))


def test_the_challenger_takes_promoted_series_when_it_wins_the_backtest(monkeypatch, promo_world):
    history, future = promo_world
    _register(monkeypatch, _regression)
    plain = _vectorised(history, future)
    out = _run(history, future)

    s = out.series.set_index("unique_id")
    # Taken alone or averaged with the vectorised choice: the promotion-aware vectorised path is close
    # enough to the true regression that the average may win.
    assert s.loc["p_big", "model"] in ("mock", "mock+seasonal_es")
    assert s.loc["p_small", "challenger_note"] is not None  # tried; the promotion-aware vectorised path may hold
    assert s.loc["p_big", "challenger_note"].startswith(f"taken ({s.loc['p_big', 'model']}): pooled backtest MASE over "
                                                        "2 series and 2 window(s)")
    assert "; this series: " in s.loc["p_big", "challenger_note"]
    assert re.search(r": took (mock|the average of mock and the vectorised choice) on 2 of 2 series$", out.decision)
    assert "(regressors: promo; history shows promo +75% over 80 days)" in s.loc["p_big", "challenger_note"]
    assert s.loc["p_big", "backtest_mase"] < plain.series.set_index("unique_id").loc["p_big", "backtest_mase"]
    # Never promoted, or promoted without any effect on demand: regressors do not matter, so the
    # challenger is not even tried, though p_dud is worth more than p_small.
    assert s.loc["flat", "model"] != "mock" and s.loc["flat", "challenger_note"] is None
    assert s.loc["p_dud", "model"] != "mock" and s.loc["p_dud", "challenger_note"] is None
    big = out.forecasts[out.forecasts["unique_id"] == "p_big"]
    on_promo = future[future["unique_id"] == "p_big"]["promo"].to_numpy() > 0
    assert big["mean"].to_numpy()[on_promo].mean() - big["mean"].to_numpy()[~on_promo].mean() == pytest.approx(30, abs=2)
    assert (big["q95"] >= big["q80"]).all() and (big["q80"] >= big["q50"]).all() and (big["q50"] >= 0).all()
    flat = out.forecasts["unique_id"] == "flat"
    assert out.forecasts[flat].equals(plain.forecasts[flat])


def test_a_challenger_that_loses_the_backtest_changes_nothing(monkeypatch, promo_world):
    history, future = promo_world
    _register(monkeypatch, lambda train, fut, m, hol: np.full(len(fut), train["y"].mean() * 3))
    out = _run(history, future)
    assert out.forecasts.equals(_vectorised(history, future).forecasts)
    note = out.series.set_index("unique_id").loc["p_big", "challenger_note"]
    assert note.startswith("kept ") and ", mock " in note and ", average " in note
    assert out.decision.endswith(": kept the vectorised choice on all 2 series")


def test_too_few_series_to_pool_keep_the_vectorised_choice(monkeypatch, promo_world):
    history, future = promo_world
    _register(monkeypatch, _regression)
    out = _run(history, future, min_series=3)
    assert out.forecasts.equals(_vectorised(history, future).forecasts)
    note = out.series.set_index("unique_id").loc["p_big", "challenger_note"]
    assert note.startswith("kept ") and "over 2 series" in note and "(fewer than 3 series: too few to decide on)" in note


def test_top_n_tries_the_most_valuable_series_first(monkeypatch, promo_world):
    history, future = promo_world
    _register(monkeypatch, _regression)
    s = _run(history, future, top_n=1).series.set_index("unique_id")
    assert s.loc["p_big", "model"].startswith("mock") and s.loc["p_small", "challenger_note"] is None


def test_a_raising_challenger_keeps_the_vectorised_forecast_for_that_series_only(monkeypatch, promo_world):
    history, future = promo_world

    def flaky(train, fut, m, hol):
        if train["y"].mean() < 30:
            raise RuntimeError("singular matrix")
        return _regression(train, fut, m, hol)

    _register(monkeypatch, flaky)
    out = _run(history, future)
    s = out.series.set_index("unique_id")
    assert s.loc["p_small", "challenger_note"] == "mock failed: RuntimeError: singular matrix"
    assert s.loc["p_big", "model"].startswith("mock")
    keep = out.forecasts["unique_id"] == "p_small"
    assert out.forecasts[keep].equals(_vectorised(history, future).forecasts[keep])


@pytest.mark.parametrize(
    ("values", "note"),
    [(lambda n: np.full(n, np.nan), "non-finite"), (lambda n: np.full(n, 1e9), "more than 10x the series max"),
     (lambda n: np.ones(3), "mis-shaped")],
)
def test_insane_final_forecasts_are_rejected(monkeypatch, promo_world, values, note):
    history, future = promo_world
    calls = []

    def fit(train, fut, m, hol):  # wins both backtest windows, then returns nonsense for the horizon
        calls.append(1)
        return _regression(train, fut, m, hol) if len(calls) <= 2 else values(len(fut))

    _register(monkeypatch, fit)
    row = _run(history, future, top_n=1).series.set_index("unique_id").loc["p_big"]
    assert note in row["challenger_note"] and row["model"] != "mock"


def test_a_slow_fit_times_out_and_keeps_the_vectorised_forecast(monkeypatch, promo_world):
    history, future = promo_world

    def slow(train, fut, m, hol):
        time.sleep(1.0)
        return np.full(len(fut), 1.0)

    _register(monkeypatch, slow)
    started = time.monotonic()
    out = _run(history, future, top_n=1, timeout_s=0.05)
    assert time.monotonic() - started < 0.9
    assert "TimeoutError" in out.series.set_index("unique_id").loc["p_big", "challenger_note"]


def test_a_model_wide_outage_keeps_every_vectorised_forecast_loudly(monkeypatch, promo_world, caplog):
    history, future = promo_world
    calls = []

    def unavailable(train, fut, m, hol):
        calls.append(1)
        raise HeavyModelUnavailable("prophet cannot be loaded: ImportError: no cmdstan")

    _register(monkeypatch, unavailable)
    with caplog.at_level(logging.WARNING, logger="models.forecasting.challenger"):
        out = _run(history, future)

    assert len(calls) == 1  # no point retrying a missing library per series
    assert out.forecasts.equals(_vectorised(history, future).forecasts)
    notes = out.series.set_index("unique_id")["challenger_note"]
    assert notes[["p_big", "p_small"]].str.startswith("mock unavailable: prophet cannot be loaded").all()
    assert out.notes and "vectorised selection stands for every series" in out.notes[0]
    assert "FORECAST CHALLENGER DOWN" in caplog.text


def test_a_challenger_without_regressors_is_tried_on_any_valuable_series(monkeypatch):
    history = pd.concat([_daily(f"s{i}", 5.0 + 5 * i, seed=i) for i in range(3)], ignore_index=True)
    _register(monkeypatch, lambda train, fut, m, hol: np.full(len(fut), 1e-3), uses_regressors=False)
    out = forecast(history, H, challenger=Challenger(model="mock", top_n=2))
    notes = out.series.set_index("unique_id")["challenger_note"]
    assert notes[["s1", "s2"]].str.startswith("kept ").all() and notes["s0"] is None


def test_the_average_of_both_models_wins_when_their_errors_cancel(monkeypatch):
    """Vectorised forecasts 4 under, the challenger 4 over: their average is exact, so it is taken."""
    history = pd.DataFrame({"unique_id": "c", "ds": pd.date_range(DAILY, periods=120, freq="D"), "y": 10.0})
    result = forecast(history, H)
    _register(monkeypatch, lambda train, fut, m, hol: np.full(len(fut), 14.0), uses_regressors=False)

    def under(train, horizon, **kw):
        fc = forecast(train, horizon, **kw)
        fc.forecasts["mean"] = 6.0
        return fc

    out = challenge(history, result, None, Challenger(model="mock", min_series=1), horizon=H, forecast_fn=under)
    row = out.series.iloc[0]
    assert row["model"] == f"mock+{result.series.iloc[0]['model']}"
    assert row["challenger_note"].startswith(f"taken ({row['model']}): ") and row["backtest_mase"] == 0
    assert np.allclose(out.forecasts["mean"], (14.0 + result.forecasts["mean"]) / 2)


def test_regressor_lifts_measure_each_series_against_its_own_ordinary_days(promo_world):
    history, _ = promo_world
    history = history.assign(event=np.where(history["ds"].dt.day == 1, "month_start", None))
    lifts = regressor_lifts(history, ["promo"], min_days=8).set_index(["unique_id", "regressor"])
    assert lifts.loc[("p_big", "promo"), "lift"] == pytest.approx(30 / 40, abs=0.03)
    assert lifts.loc[("p_big", "promo"), "days"] == 80
    assert abs(lifts.loc[("p_dud", "promo"), "lift"]) < 0.03
    assert ("flat", "promo") not in lifts.index  # never off its usual value
    assert ("p_big", "event") not in lifts.index  # 7 month starts in 200 days: fewer than min_days
    assert ("p_big", "event") in regressor_lifts(history, ["promo"], min_days=7).set_index(
        ["unique_id", "regressor"]).index
    # A price is on when it leaves the series' own list price, whatever the other items cost.
    priced = history.assign(price=np.where(history["unique_id"] == "p_big", 8.0, 3.0) * (1 - history["promo"]))
    by_price = regressor_lifts(priced, ["price"], min_days=8).set_index(["unique_id", "regressor"])
    assert by_price.loc[("p_big", "price"), "lift"] == pytest.approx(lifts.loc[("p_big", "promo"), "lift"])
    assert by_price.loc[("p_small", "price"), "lift"] == pytest.approx(lifts.loc[("p_small", "promo"), "lift"])


def test_a_series_usual_value_is_its_most_common_the_smallest_on_a_tie_and_unknown_days_are_never_on():
    days = pd.date_range("2026-01-01", periods=40)
    # "tie": 20 days at 5.0 and 20 at 4.0, so 4.0 is usual and the 5.0 days are on; "gaps": usual 2.0,
    # with 10 days at 1.0 and 10 unknown prices that count as neither.
    history = pd.DataFrame({
        "unique_id": ["tie"] * 40 + ["gaps"] * 40, "ds": list(days) * 2,
        "y": [3.0] * 20 + [1.0] * 20 + [4.0] * 10 + [1.0] * 20 + [9.0] * 10,
        "price": [5.0] * 20 + [4.0] * 20 + [1.0] * 10 + [2.0] * 20 + [np.nan] * 10})
    lifts = regressor_lifts(history, ["price"], min_days=5).set_index("unique_id")
    assert lifts.loc["tie", "days"] == 20 and lifts.loc["tie", "lift"] == pytest.approx(3.0 / 1.0 - 1)
    # Off days are the usual price's and the unknown ones: (20 x 1 + 10 x 9) / 30.
    assert lifts.loc["gaps", "days"] == 10 and lifts.loc["gaps", "lift"] == pytest.approx(4.0 / (110 / 30) - 1)


def test_regressors_and_challengers_are_validated(promo_world):
    history, future = promo_world
    with pytest.raises(ValueError, match="history is missing regressor column"):
        forecast(history, H, regressors=["price"])
    with pytest.raises(ValueError, match="future is missing regressor column"):
        forecast(history, H, regressors=["promo"], future=future.drop(columns="promo"))
    with pytest.raises(ValueError, match="must be numeric"):
        forecast(history.assign(promo="yes"), H, regressors=["promo"])
    with pytest.raises(ValueError, match="challenger model must be one of"):
        Challenger(model="arima")


def test_the_vectorised_core_imports_without_the_challenger_module():
    """The dependency runs one way: challenger, per_series -> core, so core loads alone in a fresh interpreter."""
    root = Path(__file__).resolve().parents[2]
    code = ("import sys, models.forecasting.core, models.forecasting; "
            "print(sorted(m for m in sys.modules if m.startswith('models.forecasting')))")
    done = subprocess.run([sys.executable, "-c", code], cwd=root, env={**os.environ, "PYTHONPATH": str(root)},
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert "models.forecasting.challenger" not in done.stdout
    assert "models.forecasting.per_series" not in done.stdout
    assert "'models.forecasting.core'" in done.stdout


def test_forecast_hands_its_result_to_the_challenger_object_it_is_given(promo_world):
    history, future = promo_world
    calls = []

    class Recording:
        def challenge(self, history, result, future, **kw):
            calls.append((history, future, kw))
            return replace(result, decision="recorded")

    out = forecast(history, H, season_length=7, regressors=["promo"], future=future, challenger=Recording())
    assert out.decision == "recorded"
    assert out.forecasts.equals(_vectorised(history, future).forecasts)
    [(seen_history, seen_future, kw)] = calls
    assert seen_history is history and seen_future is future
    assert kw == {"horizon": H, "season_length": 7, "freq": "D", "regressors": ("promo",)}


def test_prophet_learns_promotion_lift_and_events_from_the_history():
    """The real thing: prophet with a promotion regressor and an event beats the vectorised choice."""
    history, future = _promoted("p", 20.0, 25.0, n_days=360, seed=4, promo_every=23)
    assert history["ds"].max() > pd.Timestamp("2024-11-27")
    spike = history["ds"].dt.strftime("%m-%d") == "11-27"
    history.loc[spike, "y"] += 60
    history["event"] = np.where(spike, "black_friday", None)
    future["event"] = None
    out = forecast(history, H, regressors=["promo"], future=future,
                   challenger=Challenger(model="prophet", min_series=1))
    row = out.series.iloc[0]
    assert row["model"].startswith("prophet"), row["challenger_note"]
    assert "regressors: promo, events" in row["challenger_note"]
    fc = out.forecasts["mean"].to_numpy()
    on_promo = future["promo"].to_numpy() > 0
    assert fc[on_promo].mean() - fc[~on_promo].mean() == pytest.approx(25, rel=0.2)


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
