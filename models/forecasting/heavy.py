"""Per-series challengers (prophet with promotion, price and event regressors; statsmodels exponential
smoothing) for the series where they can pay off.

The vectorised :func:`models.forecasting.forecast` gives every series a forecast in well under a
millisecond. A per-series model costs far more (prophet ~0.07 s a fit, see
``benchmarks/forecast_throughput.py``), so :func:`challenge` spends it only where it can matter:

1. **Eligible**: a modelled series (no fallback) of a class the model suits (smooth or erratic by
   default: prophet chases the zeros of intermittent demand) with enough history for a backtest.
2. **Regressors matter** (for a model that uses them): in the series' own history, demand on the days
   a regressor was off its usual value (promoted, discounted) or an event happened differs from the
   other days by at least ``min_lift`` (see :func:`regressor_lifts`).
3. **Worth the cost**: the ``top_n`` of those by value (mean demand times median price, or units).
4. **Backtest**: over the last ``windows`` rolling origins, each ``horizon`` periods apart, the
   vectorised selection, the challenger and the average of the two forecast the periods after the
   origin (regressors as they were).
5. **One decision, pooled**: over all the series tried, the average of both models takes them if
   its mean backtest MASE is lower than the vectorised one's by ``margin``; the challenger alone only
   if it also beats the average by ``margin`` (or beats the vectorised choice by ``margin`` when the
   average does not); with fewer than ``min_series`` series the vectorised choice stands. Two short windows of one series are too noisy to choose on: picking per series
   lost accuracy on the held-out month of the generated world, while the pooled average won
   (``benchmarks/forecast_accuracy.py``). ``challenger_note`` records the pooled and the series' own
   scores either way.

Failure isolation, per series: a fit that raises, exceeds ``timeout_s``, or returns non-finite,
mis-shaped or absurd values leaves the vectorised forecast in place and says why. A model-wide outage
(the library cannot be loaded) leaves every vectorised forecast in place with a loud warning, and
``ForecastResult.notes`` carries it to the stage summary; the run completes.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from models.forecasting.core import ABSURD_FACTOR, FREQUENCIES, ForecastResult

__all__ = ["HEAVY_MODELS", "Challenger", "HeavyModel", "HeavyModelUnavailable", "challenge", "challenger_counts"]

log = logging.getLogger(__name__)

#: ``(train, future, season_length, holidays) -> mean[len(future)]``: ``train`` holds ``ds, y`` and the
#: regressor columns, ``future`` holds ``ds`` and the same regressors, ``holidays`` is prophet-shaped
#: (``holiday, ds``) or ``None``.
HeavyFit = Callable[[pd.DataFrame, pd.DataFrame, int, pd.DataFrame | None], np.ndarray]


class HeavyModelUnavailable(RuntimeError):
    """The model's library cannot be loaded: every series keeps its vectorised forecast."""


@dataclass(frozen=True)
class HeavyModel:
    """A per-series model and whether it uses known regressors and events."""

    fit: HeavyFit
    uses_regressors: bool


@dataclass(frozen=True)
class Challenger:
    """Which per-series model challenges the vectorised selection, and how much time it may use.

    Attributes:
        model: A key of :data:`HEAVY_MODELS`.
        top_n: Most series challenged per call (per shard in the nightly), highest value first.
        margin: Fraction by which the pooled backtest MASE of the average (or of the challenger) must
            beat the vectorised one's.
        windows: Rolling-origin backtest windows of ``horizon`` periods, ending at the origin.
        min_series: Fewest series with a backtest before the pooled decision may take any; with fewer,
            the comparison is noise and the vectorised choice stands.
        min_lift: Smallest relative change of mean demand on regressor or event days, against the
            other days, that makes a series worth challenging (``0.15``: 15 %).
        min_effect_days: Fewest days of history on which a regressor is off its usual value (or an
            event happens) before its lift counts.
        classes: Demand classes the model may take.
        timeout_s: Longest one fit may take before the series keeps its vectorised forecast.
        budget_s: Total time for all fits of the call; series not reached keep theirs.
    """

    model: str = "prophet"
    top_n: int = 50
    margin: float = 0.02
    windows: int = 2
    min_series: int = 10
    min_lift: float = 0.15
    min_effect_days: int = 7
    classes: tuple[str, ...] = ("smooth", "erratic")
    timeout_s: float = 20.0
    budget_s: float = 300.0

    @classmethod
    def from_policy(cls, cfg: dict | None) -> Challenger | None:
        """The challenger of a policy's ``forecasting.challenger`` section (``None`` when switched off)."""
        if cfg is None:
            return None
        return cls(model=cfg["model"], top_n=cfg["top_n"], margin=cfg["margin"], windows=cfg["windows"],
                   min_series=cfg["min_series"],
                   min_lift=cfg["min_lift"], min_effect_days=cfg["min_effect_days"], classes=tuple(cfg["classes"]),
                   timeout_s=cfg["timeout_seconds"], budget_s=cfg["budget_seconds"])

    def __post_init__(self) -> None:
        if self.model not in HEAVY_MODELS:
            raise ValueError(f"challenger model must be one of {sorted(HEAVY_MODELS)}, got {self.model!r}")
        if (self.top_n < 0 or not 0 <= self.margin < 1 or self.min_lift < 0 or self.min_effect_days < 1
                or self.windows < 1 or self.min_series < 1):
            raise ValueError("challenger needs top_n >= 0, 0 <= margin < 1, min_lift >= 0, min_effect_days >= 1, "
                             f"windows >= 1 and min_series >= 1: {self}")
        if self.timeout_s <= 0 or self.budget_s <= 0:
            raise ValueError(f"challenger timeout_s and budget_s must be positive: {self}")


def _statsmodels_ets(train, future, season_length, holidays):  # noqa: ANN001, ARG001
    try:
        from statsmodels.tsa.holtwinters import ExponentialSmoothing
    except ImportError as exc:  # pragma: no cover - statsmodels is pinned
        raise HeavyModelUnavailable(f"statsmodels cannot be imported: {exc}") from exc
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = ExponentialSmoothing(
            train["y"].to_numpy(dtype=np.float64), trend="add", damped_trend=True, seasonal="add",
            seasonal_periods=season_length, initialization_method="estimated",
        ).fit()
    return np.asarray(fit.forecast(len(future)), dtype=np.float64)


def _warnings_only(record: logging.LogRecord) -> bool:
    return record.levelno >= logging.WARNING


_QUIET = _warnings_only


def _prophet(train, future, season_length, holidays):  # noqa: ANN001
    # prophet logs an ERROR at import when plotly (plots only) is absent; forecasts need no plots.
    logging.getLogger("prophet.plot").setLevel(logging.CRITICAL)
    try:
        from prophet import Prophet
    except Exception as exc:  # noqa: BLE001 - prophet fails to load in many ways (cmdstan, plotly, numpy ABI)
        raise HeavyModelUnavailable(f"prophet cannot be loaded: {type(exc).__name__}: {exc}") from exc
    for name in ("prophet", "cmdstanpy"):
        # cmdstanpy resets its own level on every fit; a filter holds where a level does not.
        quiet = logging.getLogger(name)
        if _QUIET not in quiet.filters:
            quiet.addFilter(_QUIET)
    model = Prophet(weekly_seasonality=season_length == 7, yearly_seasonality="auto", daily_seasonality=False,
                    holidays=holidays, uncertainty_samples=0)
    regressors = [c for c in train.columns if c not in ("ds", "y")]
    for col in regressors:
        model.add_regressor(col)
    model.fit(train)
    return np.asarray(model.predict(future[["ds", *regressors]])["yhat"], dtype=np.float64)


#: Per-series models by name; tests and deployments may register others.
HEAVY_MODELS: dict[str, HeavyModel] = {
    "statsmodels_ets": HeavyModel(_statsmodels_ets, uses_regressors=False),
    "prophet": HeavyModel(_prophet, uses_regressors=True),
}


def _run_with_timeout(fn: Callable[[], np.ndarray], timeout_s: float) -> np.ndarray:
    """Run ``fn`` in a daemon thread; raise ``TimeoutError`` when it is not done in ``timeout_s``.

    A fit that overruns is abandoned, not killed (Python cannot stop a thread): it finishes in the
    background and its result is dropped, which is why the total work is also bounded by ``budget_s``.
    """
    box: dict[str, object] = {}

    def target() -> None:
        try:
            box["value"] = fn()
        except BaseException as exc:  # noqa: BLE001 - handed back to the caller below
            box["error"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(timeout_s)
    if thread.is_alive():
        raise TimeoutError(f"no result after {timeout_s:g}s")
    if "error" in box:
        raise box["error"]  # type: ignore[misc]
    return box["value"]  # type: ignore[return-value]


def _sane(mean: np.ndarray, horizon: int, peak: float, model: str) -> str | None:
    """Why a fitted forecast cannot be used, or ``None``."""
    mean = np.asarray(mean, dtype=np.float64)
    if mean.shape != (horizon,) or not np.isfinite(mean).all():
        return f"{model} produced a non-finite or mis-shaped forecast"
    if mean.max() > ABSURD_FACTOR * max(peak, 1e-9):
        return f"{model} forecast {mean.max():.4g} is more than {ABSURD_FACTOR:g}x the series max {peak:.4g}"
    return None


def _usable_regressors(train: pd.DataFrame, regressors: Sequence[str]) -> list[str]:
    """Regressors that vary over the training rows and are not a linear copy of one already kept.

    A constant column teaches nothing, and with list prices fixed ``price`` is ``list * (1 - promo)``:
    fitting both would split one effect between two collinear terms.
    """
    kept: list[str] = []
    for col in regressors:
        values = train[col].to_numpy(dtype=np.float64)
        if not np.isfinite(values).all() or np.nanstd(values) == 0:
            continue
        if any(abs(np.corrcoef(values, train[k].to_numpy(dtype=np.float64))[0, 1]) > 0.99 for k in kept):
            continue
        kept.append(col)
    return kept


def _mase(actual: np.ndarray, predicted: np.ndarray, train: np.ndarray, m: int) -> float:
    """MASE of ``predicted`` on the finite ``actual`` values, scaled by the training seasonal-naive MAE."""
    ok = np.isfinite(actual)
    if not ok.any():
        return float("nan")
    diff = np.abs(train[m:] - train[:-m]) if len(train) > m else np.array([])
    diff = diff[np.isfinite(diff)]
    scale = diff.mean() if len(diff) and diff.mean() > 0 else max(float(np.nanmean(np.abs(train))), 1.0)
    return float(np.abs(actual[ok] - np.maximum(predicted[ok], 0.0)).mean() / scale)


def challenger_counts(series: pd.DataFrame, model: str) -> dict[str, int]:
    """How many series the challenger ``model`` was tried on, and how many it forecasts in the end.

    Taken series are counted from the final ``model`` column, so a later override (a drifting class's
    fallback rule) is not counted as taken.
    """
    tried = int(series["challenger_note"].notna().sum()) if "challenger_note" in series.columns else 0
    return {"tried": tried, "taken": int(series["model"].astype(str).str.startswith(model).sum())}


def regressor_lifts(history: pd.DataFrame, regressors: Sequence[str], min_days: int) -> pd.DataFrame:
    """How much each regressor and the events moved each series' demand in its own history.

    A regressor is "on" on the days it differs from the series' own most common value (a promotion's
    discount, a SNAP day, a price below list); events are on on labelled days. The lift is mean demand on those
    days over mean demand on the others, minus one; it is reported only with ``min_days`` on-days and
    some demand on the other days.

    Returns:
        ``unique_id, regressor, lift, days``: one row per series and regressor (``event`` for events).
    """
    parts = []
    names = [*regressors] + (["event"] if "event" in history.columns else [])
    for col in names:
        values = history[col]
        if col == "event":
            on = values.notna().to_numpy()
        else:
            # Each series' own usual value (its most common, the smallest on a tie): list prices differ
            # from item to item, so one value for the whole shard would call every day of most series "on".
            counts = history[["unique_id", col]].dropna().groupby(["unique_id", col]).size().reset_index(name="n")
            if counts.empty:
                continue
            usual = (counts.sort_values("n", ascending=False, kind="stable").drop_duplicates("unique_id")
                     .set_index("unique_id")[col])
            on = (values.notna() & (values != history["unique_id"].map(usual))).to_numpy()
        frame = pd.DataFrame({"unique_id": history["unique_id"].to_numpy(), "on": on,
                              "y": history["y"].to_numpy(dtype=np.float64)})
        stats = frame.groupby(["unique_id", "on"])["y"].agg(["mean", "size"]).unstack("on")
        if (True not in stats.columns.get_level_values(1)) or (False not in stats.columns.get_level_values(1)):
            continue
        on_mean, off_mean = stats[("mean", True)], stats[("mean", False)]
        days = stats[("size", True)].fillna(0).astype(np.int64)
        usable = (days >= min_days) & (off_mean > 0)
        parts.append(pd.DataFrame({"unique_id": stats.index[usable], "regressor": col,
                                   "lift": (on_mean / off_mean - 1.0)[usable].to_numpy(),
                                   "days": days[usable].to_numpy()}))
    if not parts:
        return pd.DataFrame({"unique_id": pd.Series(dtype=object), "regressor": pd.Series(dtype=object),
                             "lift": pd.Series(dtype=np.float64), "days": pd.Series(dtype=np.int64)})
    return pd.concat(parts, ignore_index=True)


def challenge(
    history: pd.DataFrame,
    result: ForecastResult,
    future: pd.DataFrame | None,
    challenger: Challenger,
    *,
    horizon: int,
    season_length: int = 7,
    freq: str = "D",
    regressors: Sequence[str] = (),
    forecast_fn: Callable[..., ForecastResult] | None = None,
) -> ForecastResult:
    """Let ``challenger`` take the series where regressors matter and value is high, if the backtest says so.

    Args:
        history: What :func:`forecast` was given: ``unique_id, ds, y``, optional ``censored``, the
            ``regressors`` columns and an optional ``event`` column (label or ``None``).
        result: What :func:`forecast` returned for ``history``.
        future: ``unique_id, ds``, the ``regressors`` and optional ``event`` over the horizon; needed
            by a model that uses regressors (without it such a model challenges nothing).
        challenger: The model and its limits.
        horizon: Periods forecast.
        season_length: Season in periods.
        freq: ``"D"`` or ``"W"``.
        regressors: Numeric known-regressor columns.
        forecast_fn: The vectorised forecaster, re-run at the backtest origin (default
            :func:`models.forecasting.forecast`).

    Returns:
        A new :class:`ForecastResult`: series taken get the challenger's mean, or its average with the
        vectorised mean (quantiles moved by the same amount, spread kept), ``model`` set to the
        challenger (``prophet``) or the pair (``prophet+seasonal_es``) and the matching backtest MASE;
        ``series`` gains ``challenger_note`` (``None`` for series not challenged); ``notes`` gains a
        line on a model-wide outage.
    """
    spec = HEAVY_MODELS[challenger.model]
    name = challenger.model
    series = result.series.copy()
    series["challenger_note"] = pd.Series([None] * len(series), dtype=object)
    forecasts = result.forecasts.copy()
    base = replace(result, forecasts=forecasts, series=series)
    if challenger.top_n == 0 or series.empty or (spec.uses_regressors and future is None):
        return base

    period = pd.Timedelta(days=FREQUENCIES[freq].period_days)
    hist = history
    if "censored" in hist.columns:
        hist = hist[~hist["censored"].astype(bool)]
    has_events = "event" in hist.columns
    origin = pd.Timestamp(history["ds"].max())
    cutoffs = [origin - k * horizon * period for k in range(challenger.windows, 0, -1)]

    # 1-3: eligible, regressors matter, worth the cost.
    ok = series["fallback_reason"].isna() & series["demand_class"].isin(challenger.classes)
    n_train = hist[hist["ds"] <= cutoffs[0]].groupby("unique_id").size()
    ok &= series["unique_id"].map(n_train).fillna(0).to_numpy() >= season_length + 2 * horizon
    lift_text: dict[str, str] = {}
    if spec.uses_regressors:
        lifts = regressor_lifts(hist, regressors, challenger.min_effect_days)
        strong = lifts[lifts["lift"].abs() >= challenger.min_lift]
        ok &= series["unique_id"].isin(strong["unique_id"]).to_numpy()
        lift_text = {uid: ", ".join(f"{r} {v:+.0%} over {n} days" for r, v, n in zip(g["regressor"], g["lift"], g["days"], strict=True))
                     for uid, g in strong.groupby("unique_id", sort=False)}
    candidates = series[ok]
    if candidates.empty:
        return base
    worth = candidates["mean_daily"].fillna(0.0)
    if "price" in hist.columns:
        worth = worth * candidates["unique_id"].map(hist.groupby("unique_id")["price"].median()).fillna(1.0)
    chosen = candidates.assign(_worth=worth.to_numpy()).nlargest(challenger.top_n, "_worth")["unique_id"].tolist()

    # 4: the vectorised selection's own forecasts from each backtest origin.
    if forecast_fn is None:
        from models.forecasting.core import forecast as forecast_fn
    cols = ["unique_id", "ds", "y"] + (["censored"] if "censored" in history.columns else []) + list(regressors)
    mine = history[history["unique_id"].isin(chosen)]
    vec_bt = []
    for cutoff in cutoffs:
        # The regressors of the backtest window are what was planned for it: the history's own values.
        ahead = mine.loc[(mine["ds"] > cutoff) & (mine["ds"] <= cutoff + horizon * period),
                         ["unique_id", "ds", *regressors]]
        fc = forecast_fn(mine.loc[mine["ds"] <= cutoff, cols], horizon, season_length=season_length, freq=freq,
                         regressors=tuple(regressors), future=ahead)
        vec_bt.append({uid: g["mean"].to_numpy() for uid, g in fc.forecasts.groupby("unique_id", sort=False)})

    groups = dict(tuple(mine.sort_values(["unique_id", "ds"]).groupby("unique_id", sort=False)))
    fut_groups = (dict(tuple(future[future["unique_id"].isin(chosen)].sort_values("ds").groupby("unique_id", sort=False)))
                  if future is not None else {})
    qcols = [c for c in forecasts.columns if c.startswith("q") and c[1:].isdigit()]
    row_of = {uid: i for i, uid in enumerate(series["unique_id"])}
    rows_of = forecasts.groupby("unique_id", sort=False).indices
    deadline = time.monotonic() + challenger.budget_s
    notes: dict[str, str] = {}
    trials: dict[str, dict] = {}
    outage: str | None = None

    def fit(train: pd.DataFrame, steps: pd.DataFrame, holidays: pd.DataFrame | None) -> np.ndarray:
        return np.asarray(_run_with_timeout(lambda: spec.fit(train, steps, season_length, holidays),
                                            challenger.timeout_s), dtype=np.float64)

    def down(exc: HeavyModelUnavailable) -> str:
        message = f"{name} unavailable, the vectorised selection stands for every series: {exc}"
        log.warning("FORECAST CHALLENGER DOWN: %s", message)
        for other in chosen:
            notes.setdefault(other, f"{name} unavailable: {exc}")
        return message

    # 4a: backtest every chosen series: MASE per window of the vectorised choice, the challenger and
    # their average, the regressors of each window being what was planned for it.
    for uid in chosen:
        if time.monotonic() > deadline:
            notes[uid] = f"{name} not tried: budget of {challenger.budget_s:g}s used up"
            continue
        group = groups.get(uid)
        idx = rows_of.get(uid)
        if group is None or idx is None:
            continue
        observed = group[~group["censored"].astype(bool)] if "censored" in group.columns else group
        regs = _usable_regressors(observed, regressors) if spec.uses_regressors else []
        train_all = observed[["ds", "y", *regs]].assign(y=observed["y"].clip(lower=0.0))
        fut = None
        if spec.uses_regressors:
            fut = fut_groups.get(uid)
            if fut is None or len(fut) != len(idx):
                notes[uid] = f"{name} not tried: {0 if fut is None else len(fut)} future rows for {len(idx)} steps"
                continue
            if fut[list(regs)].isna().to_numpy().any():
                notes[uid] = f"{name} not tried: missing future values of {', '.join(regs)}"
                continue
        holidays = None
        if spec.uses_regressors and has_events:
            days = pd.concat([group[["event", "ds"]], fut[["event", "ds"]] if "event" in fut.columns else None])
            holidays = days.dropna(subset=["event"]).rename(columns={"event": "holiday"})
            holidays = holidays if len(holidays) else None
        try:
            scores = np.zeros(3)
            for w, cutoff in enumerate(cutoffs):
                train = train_all[train_all["ds"] <= cutoff]
                steps = pd.DataFrame({"ds": cutoff + period * np.arange(1, horizon + 1)})
                if regs:
                    steps = steps.merge(group[["ds", *regs]], on="ds", how="left").ffill().bfill()
                ch = fit(train, steps, holidays)
                actual = steps[["ds"]].merge(train_all[["ds", "y"]], on="ds", how="left")["y"].to_numpy(np.float64)
                vec = vec_bt[w].get(uid, np.full(horizon, np.nan))
                train_y = train["y"].to_numpy(dtype=np.float64)
                scores += [_mase(actual, p, train_y, season_length) for p in (vec, ch, (vec + ch) / 2)]
        except HeavyModelUnavailable as exc:
            outage = down(exc)
            break
        except Exception as exc:  # noqa: BLE001 - one bad series keeps its vectorised forecast
            notes[uid] = f"{name} failed: {type(exc).__name__}: {exc}"
            continue
        trials[uid] = {
            "scores": scores / len(cutoffs), "train": train_all, "holidays": holidays, "idx": idx,
            "future": (fut[["ds", *regs]] if fut is not None
                       else pd.DataFrame({"ds": origin + period * np.arange(1, len(idx) + 1)})),
            "about": (f"regressors: {', '.join(regs) or 'none'}{', events' if holidays is not None else ''}"
                      + (f"; history shows {lift_text[uid]}" if uid in lift_text else "")),
        }

    # 4b: one decision for all the series tried, on their pooled backtest: one series' two windows
    # are too few to choose on, and choosing on noise loses accuracy. The average of both models is the
    # robust choice; the challenger alone must also beat the average by the margin.
    table = np.array([t["scores"] for t in trials.values()]).reshape(-1, 3)
    usable = np.isfinite(table).all(axis=1)
    pooled = table[usable].mean(axis=0) if usable.any() else np.full(3, np.nan)
    keep = 1 - challenger.margin
    enough = int(usable.sum()) >= challenger.min_series
    choice = 0
    if enough and pooled[2] < keep * pooled[0]:
        choice = 1 if pooled[1] < keep * pooled[2] else 2
    elif enough and pooled[1] < keep * pooled[0]:
        choice = 1
    verdict = ("kept the vectorised choice", f"took {name}", f"took the average of {name} and the vectorised choice")
    pooled_text = (f"pooled backtest MASE over {int(usable.sum())} series and {len(cutoffs)} window(s): vectorised "
                   f"{pooled[0]:.3f}, {name} {pooled[1]:.3f}, average {pooled[2]:.3f}"
                   + ("" if enough else f" (fewer than {challenger.min_series} series: too few to decide on)"))

    # 4c: refit on the whole history and forecast the horizon where the pooled decision says so.
    taken = 0
    for k, (uid, trial) in enumerate(trials.items()):
        m_vec, m_ch, m_blend = trial["scores"]
        vec_model = series.loc[row_of[uid], "model"]
        mine_text = f"this series: {vec_model} {m_vec:.3f}, {name} {m_ch:.3f}, average {m_blend:.3f}"
        if choice == 0 or not usable[k] or outage:
            notes.setdefault(uid, f"kept {vec_model}: {pooled_text}; {mine_text} ({trial['about']})")
            continue
        if time.monotonic() > deadline:
            notes[uid] = f"kept {vec_model}: budget of {challenger.budget_s:g}s used up before the final fit"
            continue
        idx = trial["idx"]
        try:
            mean = fit(trial["train"], trial["future"], trial["holidays"])
        except HeavyModelUnavailable as exc:
            outage = down(exc)
            break
        except Exception as exc:  # noqa: BLE001 - one bad series keeps its vectorised forecast
            notes[uid] = f"{name} failed: {type(exc).__name__}: {exc}"
            continue
        problem = _sane(mean, len(idx), float(trial["train"]["y"].max()), name)
        if problem:
            notes[uid] = problem
            continue
        current = forecasts["mean"].to_numpy()[idx]
        mean = np.maximum(mean, 0.0)
        label = name
        if choice == 2:
            mean, label = (mean + current) / 2, f"{name}+{vec_model}"
        shift = mean - current
        forecasts.loc[forecasts.index[idx], "mean"] = mean
        running = np.zeros(len(idx))
        for col in qcols:
            running = np.maximum(running, np.maximum(forecasts[col].to_numpy()[idx] + shift, 0.0))
            forecasts.loc[forecasts.index[idx], col] = running
        row = row_of[uid]
        series.loc[row, "model"] = label
        series.loc[row, "backtest_mase"] = (m_vec, m_ch, m_blend)[choice]
        notes[uid] = f"taken ({label}): {pooled_text}; {mine_text} ({trial['about']})"
        taken += 1
    for uid, note in notes.items():
        series.loc[row_of[uid], "challenger_note"] = note
    log.info("challenger %s: %s; %s on %d of %d series", name, pooled_text, verdict[choice], taken, len(chosen))
    out_notes = list(result.notes) + ([outage] if outage else [])
    decision = f"{pooled_text}: {verdict[choice]} on {taken} of {len(chosen)} series" if trials else None
    return replace(result, forecasts=forecasts, series=series, notes=out_notes, decision=decision)
