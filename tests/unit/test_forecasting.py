"""Unit tests for models.forecasting: selection, fallback, censoring, quantiles, validation."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from models.forecasting import CANDIDATES, FALLBACK_MOVING_AVERAGE, FALLBACK_ZERO, forecast

START = pd.Timestamp("2024-01-01")
WEEK = np.array([10.0, 10.0, 10.0, 12.0, 30.0, 50.0, 5.0])


def _frame(uid: str, y: np.ndarray, start: pd.Timestamp = START, censored: np.ndarray | None = None) -> pd.DataFrame:
    frame = pd.DataFrame({"unique_id": uid, "ds": pd.date_range(start, periods=len(y), freq="D"), "y": y})
    if censored is not None:
        frame["censored"] = censored
    return frame


def _seasonal(n_days: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.poisson(WEEK[np.arange(n_days) % 7]).astype(float)


def _intermittent(n_days: int, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.where(rng.random(n_days) < 0.12, rng.integers(1, 4, n_days), 0).astype(float)


def _series_row(result, uid: str) -> pd.Series:
    return result.series.set_index("unique_id").loc[uid]


def _mean_forecast(result, uid: str) -> np.ndarray:
    return result.forecasts.loc[result.forecasts["unique_id"] == uid, "mean"].to_numpy()


# ---------------------------------------------------------------------------------------------------
# Model selection
# ---------------------------------------------------------------------------------------------------


def test_seasonal_series_picks_seasonal_model_and_beats_moving_average():
    y = _seasonal(182)
    train, test = y[:-28], y[-28:]
    result = forecast(_frame("weekly", train), 28)

    row = _series_row(result, "weekly")
    assert row["model"] in {"seasonal_es", "seasonal_naive"}
    assert row["fallback_reason"] is None

    scores = result.scores.set_index("model")["backtest_mase"]
    assert row["backtest_mase"] == pytest.approx(scores[row["model"]])
    assert row["backtest_mase"] < scores["moving_average"]

    # Out of sample, on days the model never saw, it must beat the flat 28-day mean.
    model_mae = np.abs(_mean_forecast(result, "weekly") - test).mean()
    moving_average_mae = np.abs(train[-28:].mean() - test).mean()
    assert model_mae < 0.7 * moving_average_mae


def test_intermittent_series_is_classified_and_uses_croston():
    result = forecast(_frame("slow", _intermittent(200)), 14)

    row = _series_row(result, "slow")
    assert row["demand_class"] in {"intermittent", "lumpy"}
    assert row["model"] in {"croston_sba", FALLBACK_MOVING_AVERAGE}
    mean = _mean_forecast(result, "slow")
    # Croston forecasts a flat rate close to the average demand, not a spiky weekday pattern.
    assert np.allclose(mean, mean[0])
    assert 0.05 < mean[0] < 0.6


def test_smooth_series_is_classified_smooth():
    rng = np.random.default_rng(3)
    result = forecast(_frame("fast", rng.poisson(40, 120).astype(float)), 7)
    assert _series_row(result, "fast")["demand_class"] == "smooth"


def test_without_backtest_windows_the_class_default_is_used():
    result = forecast(_frame("weekly", _seasonal(120)), 14, backtest_windows=0)
    row = _series_row(result, "weekly")
    assert row["model"] == "seasonal_es"
    assert np.isnan(row["backtest_mase"])


# ---------------------------------------------------------------------------------------------------
# Fallback
# ---------------------------------------------------------------------------------------------------


def test_short_history_falls_back_with_reason():
    history = pd.concat(
        [_frame("long", _seasonal(120)), _frame("short", np.full(10, 5.0), start=START + pd.Timedelta(days=110))]
    )
    result = forecast(history, 7, min_history=28)

    row = _series_row(result, "short")
    assert row["model"] == FALLBACK_MOVING_AVERAGE
    assert row["fallback_reason"] == "short history: 10 observed days < min_history 28"
    assert row["n_obs"] == 10
    assert np.allclose(_mean_forecast(result, "short"), 5.0)
    assert _series_row(result, "long")["fallback_reason"] is None


def test_all_zero_and_fully_censored_series_fall_back_to_zero():
    n = 60
    history = pd.concat(
        [
            _frame("zeros", np.zeros(n), censored=np.zeros(n, dtype=bool)),
            _frame("never_in_stock", np.zeros(n), censored=np.ones(n, dtype=bool)),
        ]
    )
    result = forecast(history, 7)

    zeros = _series_row(result, "zeros")
    assert zeros["model"] == FALLBACK_ZERO
    assert zeros["fallback_reason"] == "all-zero history"
    never = _series_row(result, "never_in_stock")
    assert never["model"] == FALLBACK_ZERO
    assert never["n_obs"] == 0
    assert never["fallback_reason"].startswith("no observed days")
    assert (result.forecasts[["mean", "q50", "q80", "q95"]] == 0).all().all()


def test_non_finite_and_exploding_forecasts_fall_back(monkeypatch):
    history = pd.concat([_frame(uid, _seasonal(120, seed=i)) for i, uid in enumerate(["a_nan", "b_boom", "c_ok"])])
    n_days = 120

    def sabotage(model):
        def wrapped(Y, horizon, season_length):
            out = model(Y, horizon, season_length)
            if Y.shape[1] == n_days:  # only the final fit, so the backtest still selects normally
                out[0] = np.inf
                out[1] = out[1] * 1000.0
            return out

        return wrapped

    for name in list(CANDIDATES):
        monkeypatch.setitem(CANDIDATES, name, sabotage(CANDIDATES[name]))
    result = forecast(history, 7)

    nan_row = _series_row(result, "a_nan")
    assert nan_row["model"] == FALLBACK_MOVING_AVERAGE
    assert "produced a non-finite forecast" in nan_row["fallback_reason"]
    boom_row = _series_row(result, "b_boom")
    assert boom_row["model"] == FALLBACK_MOVING_AVERAGE
    assert "is more than 10x the series max" in boom_row["fallback_reason"]
    assert _series_row(result, "c_ok")["fallback_reason"] is None
    numbers = result.forecasts[["mean", "q50", "q80", "q95"]].to_numpy()
    assert np.isfinite(numbers).all()
    assert numbers.max() < 100


def test_failing_model_degrades_its_family_to_fallback(monkeypatch):
    def broken(Y, horizon, season_length):
        raise RuntimeError("boom")

    monkeypatch.setitem(CANDIDATES, "seasonal_naive", broken)
    history = pd.concat([_frame("weekly", _seasonal(120)), _frame("slow", _intermittent(120))])
    result = forecast(history, 7)

    weekly = _series_row(result, "weekly")
    assert weekly["model"] == FALLBACK_MOVING_AVERAGE
    assert weekly["fallback_reason"] == "seasonal_naive failed: RuntimeError: boom"
    # The intermittent family does not use seasonal_naive, so it is unaffected.
    slow = _series_row(result, "slow")
    assert slow["fallback_reason"] is None
    assert slow["model"] == "croston_sba"


def test_overflowing_values_never_raise():
    history = pd.concat([_frame("huge", np.full(60, 1.5e308)), _frame("fine", _seasonal(60))])
    result = forecast(history, 7)
    assert np.isfinite(result.forecasts[["mean", "q50", "q80", "q95"]].to_numpy()).all()
    assert _series_row(result, "fine")["fallback_reason"] is None


# ---------------------------------------------------------------------------------------------------
# Censoring and gaps
# ---------------------------------------------------------------------------------------------------


def test_censored_stockout_days_do_not_drag_the_forecast_down():
    rng = np.random.default_rng(7)
    y = rng.poisson(20, 120).astype(float)
    y[-10:] = 0.0  # ten days out of stock: zero sales, not zero demand
    censored = np.zeros(120, dtype=bool)
    censored[-10:] = True

    as_zeros = forecast(_frame("sku", y), 14)
    as_censored = forecast(_frame("sku", y, censored=censored), 14)

    level_zeros = _mean_forecast(as_zeros, "sku").mean()
    level_censored = _mean_forecast(as_censored, "sku").mean()
    assert level_censored == pytest.approx(20.0, rel=0.15)
    assert level_zeros < 0.8 * level_censored
    assert _series_row(as_censored, "sku")["n_obs"] == 110


def test_missing_days_count_as_zero_sales():
    frame = _frame("gappy", np.full(60, 4.0))
    # Drop every other day: missing rows are days without sales.
    result = forecast(frame.iloc[::2], 7)
    row = _series_row(result, "gappy")
    assert row["n_obs"] == 59  # first to last row, inclusive
    assert row["mean_daily"] == pytest.approx(4.0 * 30 / 59)


# ---------------------------------------------------------------------------------------------------
# Output shape, quantiles, dates, determinism
# ---------------------------------------------------------------------------------------------------


def test_quantiles_are_monotone_non_negative_and_named():
    history = pd.concat(
        [
            _frame("weekly", _seasonal(150)),
            _frame("slow", _intermittent(150)),
            _frame("short", np.array([0.0, 3.0, 1.0])),
        ]
    )
    result = forecast(history, 21, quantiles=(0.95, 0.05, 0.5, 0.8))
    fc = result.forecasts
    assert list(fc.columns) == ["unique_id", "ds", "step", "mean", "q5", "q50", "q80", "q95", "sigma_cum"]
    values = fc[["q5", "q50", "q80", "q95"]].to_numpy()
    assert np.isfinite(values).all()
    assert (values >= 0).all()
    assert (np.diff(values, axis=1) >= 0).all()
    assert (fc["mean"] >= 0).all()
    weekly = fc[fc["unique_id"] == "weekly"]
    assert (weekly["q95"] > weekly["q50"]).all()
    # Far steps are at least as uncertain as near ones.
    width = (weekly["q95"] - weekly["q50"]).to_numpy()
    assert width[-1] >= width[0]


def test_forecast_dates_follow_the_common_origin():
    history = pd.concat(
        [
            _frame("ends_at_origin", _seasonal(60)),
            # Ends five days earlier: those days are zero sales, the origin is shared.
            _frame("ends_early", _seasonal(55)),
        ]
    )
    result = forecast(history, 5)
    origin = START + pd.Timedelta(days=59)
    for uid in ("ends_at_origin", "ends_early"):
        rows = result.forecasts[result.forecasts["unique_id"] == uid]
        assert rows["step"].tolist() == [1, 2, 3, 4, 5]
        expected = [origin + pd.Timedelta(days=k) for k in range(1, 6)]
        assert [pd.Timestamp(d) for d in rows["ds"]] == expected
    assert len(result.series) == 2
    assert result.series["unique_id"].tolist() == ["ends_at_origin", "ends_early"]


def test_date_objects_are_accepted():
    frame = _frame("sku", _seasonal(40))
    frame["ds"] = [d.date() for d in frame["ds"]]
    result = forecast(frame, 3)
    assert pd.Timestamp(result.forecasts["ds"].iloc[0]) == pd.Timestamp(dt.date(2024, 2, 10))


def test_results_are_deterministic_and_independent_of_row_order():
    history = pd.concat([_frame(f"s{i}", _seasonal(100, seed=i)) for i in range(5)] + [_frame("x", _intermittent(100))])
    first = forecast(history, 14)
    again = forecast(history.sample(frac=1.0, random_state=3), 14)
    pd.testing.assert_frame_equal(first.forecasts, again.forecasts)
    pd.testing.assert_frame_equal(first.series, again.series)
    pd.testing.assert_frame_equal(first.scores, again.scores)


def test_empty_history_returns_empty_frames():
    empty = pd.DataFrame(
        {"unique_id": pd.Series(dtype=object), "ds": pd.Series(dtype="datetime64[ns]"), "y": pd.Series(dtype=float)}
    )
    result = forecast(empty, 7)
    assert result.forecasts.empty and result.series.empty
    assert list(result.forecasts.columns) == ["unique_id", "ds", "step", "mean", "q50", "q80", "q95", "sigma_cum"]
    assert list(result.series.columns) == [
        "unique_id",
        "model",
        "fallback_reason",
        "backtest_mase",
        "backtest_rmse",
        "n_obs",
        "demand_class",
        "mean_daily",
    ]
    full = forecast(_frame("sku", _seasonal(60)), 7)
    assert list(full.forecasts.columns) == list(result.forecasts.columns)
    assert list(full.series.columns) == list(result.series.columns)


def test_empty_history_with_drivers_has_the_driver_columns_of_a_full_result():
    columns = {"unique_id": pd.Series(dtype=object), "ds": pd.Series(dtype="datetime64[ns]"),
               "y": pd.Series(dtype=float), "promo": pd.Series(dtype=float), "event": pd.Series(dtype=object)}
    empty = forecast(pd.DataFrame(columns), 7, regressors=["promo"])
    frame = _frame("sku", _seasonal(60)).assign(promo=0.0, event=None)
    frame.loc[frame.index[::10], "promo"] = 0.2
    frame.loc[frame.index[5], "event"] = "sale"
    full = forecast(frame, 7, regressors=["promo"])
    assert empty.series.empty and list(empty.series.columns) == list(full.series.columns)
    assert {"coef_promo", "coef_event", "promo_elasticity"} <= set(full.series.columns)


# ---------------------------------------------------------------------------------------------------
# Input validation
# ---------------------------------------------------------------------------------------------------


def _valid() -> pd.DataFrame:
    return _frame("sku", np.arange(10, dtype=float))


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda f: f.drop(columns="y"), "history is missing required column(s): y"),
        (lambda f: f.assign(unique_id=1), "unique_id must hold strings, got dtype int64"),
        (lambda f: f.assign(unique_id=[None] + ["sku"] * 9), "unique_id has 1 missing value(s)"),
        (lambda f: f.assign(ds=f["ds"].dt.strftime("%Y-%m-%d")), "ds must be datetime64 or date"),
        (lambda f: f.assign(ds=f["ds"].dt.strftime("%Y-%m-%d").astype(object)), "ds must be datetime64 or date"),
        (lambda f: f.assign(ds=f["ds"] + pd.Timedelta(hours=6)), "ds must be daily dates without a time of day"),
        (lambda f: f.assign(ds=f["ds"].dt.tz_localize("UTC")), "ds must be timezone-naive"),
        (lambda f: f.assign(y=f["y"].astype(str)), "y must be numeric"),
        (lambda f: f.assign(censored=[None] * 10), "censored must be a bool column"),
        (
            lambda f: pd.concat([f, f.iloc[[3]]]),
            "history has 1 duplicate (unique_id, ds) pair(s), e.g. unique_id='sku' ds=2024-01-04",
        ),
    ],
)
def test_invalid_history_raises_with_a_clear_message(mutate, message):
    with pytest.raises(ValueError) as err:
        forecast(mutate(_valid()), 7)
    assert message in str(err.value)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"horizon": 0}, "horizon must be a positive integer, got 0"),
        ({"horizon": 7, "quantiles": (0.5, 1.2)}, "quantiles must be strictly between 0 and 1, got [1.2]"),
        ({"horizon": 7, "backtest_windows": -1}, "backtest_windows must be >= 0, got -1"),
        ({"horizon": 7, "min_history": 0}, "min_history must be >= 1, got 0"),
    ],
)
def test_invalid_arguments_raise_with_a_clear_message(kwargs, message):
    with pytest.raises(ValueError) as err:
        forecast(_valid(), **kwargs)
    assert message in str(err.value)


# ---------------------------------------------------------------------------------------------------
# The steps of forecast(), one module each
# ---------------------------------------------------------------------------------------------------


def test_selection_keeps_the_family_default_unless_another_candidate_wins_by_the_margin():
    from models.forecasting.selection import SELECTION_MARGIN, chosen_forecast, eligibility, select

    names = list(CANDIDATES)
    es, naive = names.index("seasonal_es"), names.index("seasonal_naive")
    classes = np.array(["smooth", "smooth", "intermittent"], dtype=object)
    eligible = eligibility(classes, names)
    assert eligible[0, es] and eligible[0, naive] and not eligible[2, es]
    mase = np.full((3, len(names)), np.nan)
    mase[0, [es, naive]] = [1.0, 1.0 / (1 + SELECTION_MARGIN) + 0.01]  # close, but not by the margin
    mase[1, [es, naive]] = [1.0, 0.5]
    best, chosen = select(mase, classes, names)
    assert [names[k] for k in best] == ["seasonal_es", "seasonal_naive", "croston_sba"]
    assert chosen[0] == 1.0 and chosen[1] == 0.5 and np.isnan(chosen[2])  # nothing scored: the default
    point = {"seasonal_es": np.full((3, 2), 1.0), "seasonal_naive": np.full((3, 2), 2.0)}
    assert np.array_equal(chosen_forecast(point, best, names, 2)[:2], [[1.0, 1.0], [2.0, 2.0]])
    assert np.isnan(chosen_forecast(point, best, names, 2)[2]).all()  # croston_sba did not run


def test_a_candidate_returning_the_wrong_shape_is_recorded_as_failed(monkeypatch):
    from models.forecasting.selection import backtest_candidates

    monkeypatch.setitem(CANDIDATES, "moving_average", lambda Y, h, m: np.zeros((1, h + 1)))
    bt = backtest_candidates(np.tile(WEEK, 10)[None, :], 7, 7, np.ones((1, 2), dtype=bool), 2,
                             ["seasonal_es", "moving_average"])
    assert bt.errors == {"moving_average": "moving_average failed: ValueError: returned shape (1, 8), expected (1, 7)"}
    assert "seasonal_es" in bt.point and np.isfinite(bt.mase[0, 0]) and bt.n_res[0, 0] == 14
    assert np.isnan(bt.mase[0, 1]) and bt.n_res[0, 1] == 0


def test_spread_uses_backtest_error_only_with_enough_residuals_and_quantiles_stay_monotone():
    from models.forecasting.quantiles import MIN_RESIDUALS, forecast_spread, quantile_columns, quantile_levels

    spread = forecast_spread(np.array([2.0, 2.0, 2.0, np.nan]), np.array([MIN_RESIDUALS, MIN_RESIDUALS - 1, 50, 50]),
                             np.array([False, False, True, False]), np.array([5.0, 5.0, 5.0, np.nan]), 7, 7)
    assert np.allclose(spread[:, 0], [2.0, 5.0, 5.0, 0.0])
    qcols = quantile_columns(np.full((4, 7), 1.0), spread, quantile_levels([0.95, 0.05, 0.5]))
    assert list(qcols) == ["q5", "q50", "q95"]
    assert (qcols["q5"] >= 0).all() and (qcols["q50"] >= qcols["q5"]).all() and (qcols["q95"] >= qcols["q50"]).all()


def test_check_arguments_fills_the_default_min_history_of_the_frequency():
    from models.forecasting.inputs import check_arguments

    assert check_arguments(7, 7, 2, "D", None) == 28 and check_arguments(4, 52, 2, "W", None) == 13
    assert check_arguments(7, 7, 2, "W", 5) == 5
    with pytest.raises(ValueError, match="min_history must be >= 1, got 0"):
        check_arguments(7, 7, 2, "D", 0)


# ---------------------------------------------------------------------------------------------------
# Naive and damped-trend candidates
# ---------------------------------------------------------------------------------------------------


def test_naive_repeats_the_last_observed_value():
    Y = np.array([[1.0, 2.0, 7.0, np.nan, np.nan], [3.0, 0.0, 4.0, 5.0, 0.0], [np.nan] * 5])
    fc = CANDIDATES["naive"](Y, 4, 7)
    assert fc.shape == (3, 4)
    assert (fc[0] == 7.0).all() and (fc[1] == 0.0).all() and np.isnan(fc[2]).all()


def test_damped_trend_follows_a_trend_then_flattens():
    t = np.arange(200)
    Y = (20.0 + 0.5 * t + np.random.default_rng(0).normal(0, 0.5, 200))[None, :]
    fc = CANDIDATES["damped_trend"](Y, 60, 1)[0]
    es = CANDIDATES["seasonal_es"](Y, 60, 1)[0]
    assert fc[0] == pytest.approx(20.0 + 0.5 * 200, rel=0.03)  # on the trend, where the flat level lags
    assert abs(es[0] - 120.0) > 2 * abs(fc[0] - 120.0)
    steps = np.diff(fc)
    assert (steps > 0).all() and (np.diff(steps) <= 1e-9).all()  # rising ever more slowly
    assert fc[-1] < 20.0 + 0.5 * 259  # below the straight line: the trend is damped


def test_damped_trend_keeps_the_weekly_shape_of_a_seasonal_series():
    y = _seasonal(140) * np.linspace(1.0, 1.5, 140)
    fc = CANDIDATES["damped_trend"](y[None, :], 14, 7)[0]
    # Phase 0 of the forecast continues the week where the history stopped (day 140 is a Monday-like 0).
    assert np.argmax(fc[:7]) == (5 - 140) % 7 and np.argmin(fc[:7]) == (6 - 140) % 7


def test_the_random_walk_needs_a_larger_margin_than_the_others():
    from models.forecasting.selection import CANDIDATE_MARGINS, SELECTION_MARGIN, select

    names = list(CANDIDATES)
    es, naive, ma = names.index("seasonal_es"), names.index("naive"), names.index("moving_average")
    beats = 1.0 / (1 + SELECTION_MARGIN) - 0.01  # wins by the common margin, not by naive's
    assert CANDIDATE_MARGINS["naive"] > SELECTION_MARGIN
    for k in (naive, ma):
        mase = np.full((1, len(names)), np.nan)
        mase[0, [es, k]] = [1.0, beats]
        best, _ = select(mase, np.array(["smooth"], dtype=object), names)
        assert best[0] == (ma if k == ma else es)


# ---------------------------------------------------------------------------------------------------
# Error over the protection interval
# ---------------------------------------------------------------------------------------------------


def test_the_growth_of_the_cumulative_error_is_one_for_independent_errors_and_root_k_for_a_level_error():
    from models.forecasting.quantiles import cumulative_growth

    rng = np.random.default_rng(0)
    n, w, h = 400, 2, 28
    independent = rng.normal(0, 2.0, (n, w, h))
    level = rng.normal(0, 2.0, (n, w, 1)) + rng.normal(0, 0.2, (n, w, h))
    cls = np.array(["smooth"] * n, dtype=object)
    rmse = np.sqrt((independent**2).mean(axis=(1, 2)))
    g = cumulative_growth(independent, rmse, np.ones(n, dtype=bool), cls)
    assert (g >= 1.0).all() and g[0, -1] == pytest.approx(1.0, abs=0.15)
    rmse = np.sqrt((level**2).mean(axis=(1, 2)))
    g = cumulative_growth(level, rmse, np.ones(n, dtype=bool), cls)
    assert g[0, -1] == pytest.approx(np.sqrt(h), rel=0.15)
    assert (np.diff(g, axis=1) >= 0).all()


def test_sigma_cum_pools_the_growth_by_demand_class_and_scales_with_the_multiplier():
    from models.forecasting.quantiles import cumulative_sigma

    rng = np.random.default_rng(1)
    n, w, h = 200, 2, 7
    res = np.concatenate([rng.normal(0, 1, (n // 2, w, h)), rng.normal(0, 1, (n // 2, w, 1)).repeat(h, axis=2)])
    cls = np.array(["smooth"] * (n // 2) + ["erratic"] * (n // 2), dtype=object)
    rmse = np.full(n, 2.0)
    scored = np.ones(n, dtype=bool)
    scored[0] = False  # a fallback: its recent spread stands in for the step RMSE
    recent = np.full(n, 5.0)
    mult = np.ones((n, h))
    mult[:, 3] = 2.0  # a promotion on step 4
    sigma = cumulative_sigma(res * 2.0, rmse, scored, recent, cls, None)
    lifted = cumulative_sigma(res * 2.0, rmse, scored, recent, cls, mult)
    k = np.arange(1, h + 1)
    assert np.isfinite(sigma).all() and (sigma >= 0).all() and (np.diff(lifted, axis=1) >= 0).all()
    assert (sigma[n // 2 :, -1] > 1.5 * 2.0 * np.sqrt(h)).all()  # correlated: wider than sqrt(k)
    assert sigma[1, -1] < 1.3 * 2.0 * np.sqrt(h)
    assert sigma[0] / sigma[1] == pytest.approx(np.full(h, 5.0 / 2.0))
    weight = np.sqrt(np.cumsum(mult[1] ** 2) / k)
    assert lifted[1] == pytest.approx(sigma[1] * weight)


def test_forecast_reports_sigma_cum_and_backtest_rmse():
    rng = np.random.default_rng(3)
    walk = np.maximum(50 + np.cumsum(rng.normal(0, 3, 300)), 1.0)  # a wandering level: errors persist
    history = pd.concat([_frame("walk", rng.poisson(walk).astype(float)), _frame("weekly", _seasonal(300)),
                         _frame("short", np.array([3.0, 1.0, 4.0, 1.0, 5.0]), start=START + pd.Timedelta(days=295))])
    result = forecast(history, 28)
    fc, s = result.forecasts, result.series.set_index("unique_id")
    sigma = fc.pivot(index="unique_id", columns="step", values="sigma_cum")
    assert np.isfinite(sigma.to_numpy()).all() and (sigma.to_numpy() >= 0).all()
    assert (np.diff(sigma.to_numpy(), axis=1) >= 0).all()
    assert s.loc["walk", "backtest_rmse"] > 0 and np.isnan(s.loc["short", "backtest_rmse"])
    assert sigma.loc["walk", 28] > 1.2 * np.sqrt(28) * s.loc["walk", "backtest_rmse"]
    assert sigma.loc["weekly", 1] >= s.loc["weekly", "backtest_rmse"] * 0.99
    assert sigma.loc["short", 28] > 0  # the fallback's recent spread
