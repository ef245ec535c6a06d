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

The models themselves, their registry :data:`HEAVY_MODELS` and the guards around one fit (timeout,
usable regressors, sanity of the result) live in :mod:`models.forecasting.per_series`; this module
chooses the series, backtests and decides. Both depend on :mod:`models.forecasting.core`, never the other
way round: ``forecast()`` reaches the challenger only through the :class:`Challenger` object it is given
(:meth:`Challenger.challenge`).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd

from models.forecasting.core import FREQUENCIES, ForecastResult, forecast
from models.forecasting.per_series import (
    HEAVY_MODELS,
    HeavyModel,
    HeavyModelUnavailable,
    run_with_timeout,
    unusable_reason,
    usable_regressors,
)

__all__ = ["HEAVY_MODELS", "Challenger", "HeavyModel", "HeavyModelUnavailable", "challenge", "challenger_counts"]

log = logging.getLogger(__name__)


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
    def from_policy(cls, cfg: Any, *, n_shards: int = 1) -> Challenger | None:
        """The challenger of a policy's ``forecasting.challenger`` section, for one of ``n_shards`` shards.

        Args:
            cfg: The section as :func:`include.governance.policy.load_policy` returns it (attributes
                ``model``, ``top_n``, ``margin``, ``windows``, ``min_series``, ``min_lift``,
                ``min_effect_days``, ``classes``, ``timeout_seconds``, ``budget_seconds`` and optionally
                ``night_budget_seconds``), or ``None`` when the challenger is switched off.
            n_shards: shards of the night; each gets the smaller of ``budget_seconds`` and an equal
                share of ``night_budget_seconds``.

        Returns:
            The challenger, or ``None`` when ``cfg`` is ``None``.
        """
        if cfg is None:
            return None
        return cls(model=cfg.model, top_n=cfg.top_n, margin=cfg.margin, windows=cfg.windows,
                   min_series=cfg.min_series, min_lift=cfg.min_lift, min_effect_days=cfg.min_effect_days,
                   classes=tuple(cfg.classes), timeout_s=cfg.timeout_seconds,
                   budget_s=min(cfg.budget_seconds,
                                getattr(cfg, "night_budget_seconds", math.inf) / max(n_shards, 1)))

    def __post_init__(self) -> None:
        if self.model not in HEAVY_MODELS:
            raise ValueError(f"challenger model must be one of {sorted(HEAVY_MODELS)}, got {self.model!r}")
        if (self.top_n < 0 or not 0 <= self.margin < 1 or self.min_lift < 0 or self.min_effect_days < 1
                or self.windows < 1 or self.min_series < 1):
            raise ValueError("challenger needs top_n >= 0, 0 <= margin < 1, min_lift >= 0, min_effect_days >= 1, "
                             f"windows >= 1 and min_series >= 1: {self}")
        if self.timeout_s <= 0 or self.budget_s <= 0:
            raise ValueError(f"challenger timeout_s and budget_s must be positive: {self}")

    def challenge(
        self,
        history: pd.DataFrame,
        result: ForecastResult,
        future: pd.DataFrame | None,
        *,
        horizon: int,
        season_length: int = 7,
        freq: str = "D",
        regressors: Sequence[str] = (),
        forecast_fn: Callable[..., ForecastResult] | None = None,
    ) -> ForecastResult:
        """Challenge the vectorised ``result`` of ``history``: :func:`challenge` with this challenger.

        This is what :func:`models.forecasting.forecast` calls, so the vectorised core never imports
        this module.

        Args:
            history: What :func:`~models.forecasting.forecast` was given.
            result: What it returned for ``history``.
            future: The horizon's ``unique_id, ds``, regressors and optional ``event``, or ``None``.
            horizon: Periods forecast.
            season_length: Season in periods.
            freq: ``"D"`` or ``"W"``.
            regressors: Numeric known-regressor columns.
            forecast_fn: The vectorised forecaster re-run at the backtest origins (default ``forecast``).

        Returns:
            ``result`` with the series this challenger takes replaced, as :func:`challenge` describes.
        """
        return challenge(history, result, future, self, horizon=horizon, season_length=season_length, freq=freq,
                         regressors=regressors, forecast_fn=forecast_fn)


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
    names = [*regressors] + (["event"] if "event" in history.columns else [])
    # Series as integer codes (sorted ids), so that every count below is a bincount, not a string groupby.
    codes, ids = pd.factorize(history["unique_id"], sort=True)
    n = len(ids)
    y = history["y"].to_numpy(dtype=np.float64)
    seen = ~np.isnan(y)
    parts = []
    for col in names:
        if col == "event":
            on = history[col].notna().to_numpy()
        else:
            # Each series' own usual value (its most common, the smallest on a tie): list prices differ
            # from item to item, so one value for the whole shard would call every day of most series "on".
            value, _ = pd.factorize(history[col], sort=True, use_na_sentinel=True)
            known = value >= 0
            if not known.any():
                continue
            width = int(value.max()) + 1
            pairs, count = np.unique(codes[known].astype(np.int64) * width + value[known], return_counts=True)
            series, level = np.divmod(pairs, width)
            # Per series, its pairs by count (most first), then value (smallest first): the first is usual.
            first = np.lexsort((level, -count, series))
            keep = first[np.r_[True, series[first][1:] != series[first][:-1]]]
            usual = np.full(n, -1, np.int64)
            usual[series[keep]] = level[keep]
            on = known & (value != usual[codes])
        if on.all() or not on.any():
            continue
        days = np.bincount(codes, weights=on, minlength=n)
        sold_on = np.bincount(codes, weights=np.where(on & seen, y, 0.0), minlength=n)
        sold_off = np.bincount(codes, weights=np.where(~on & seen, y, 0.0), minlength=n)
        with np.errstate(divide="ignore", invalid="ignore"):
            on_mean = sold_on / np.bincount(codes, weights=on & seen, minlength=n)
            off_mean = sold_off / np.bincount(codes, weights=~on & seen, minlength=n)
        usable = (days >= min_days) & (off_mean > 0)
        parts.append(pd.DataFrame({"unique_id": np.asarray(ids)[usable], "regressor": col,
                                   "lift": (on_mean / off_mean - 1.0)[usable],
                                   "days": days[usable].astype(np.int64)}))
    if not parts:
        return pd.DataFrame({"unique_id": pd.Series(dtype=object), "regressor": pd.Series(dtype=object),
                             "lift": pd.Series(dtype=np.float64), "days": pd.Series(dtype=np.int64)})
    return pd.concat(parts, ignore_index=True)


#: What the pooled decision did, by its choice: 0 vectorised, 1 challenger, 2 the average of both.
_VERDICTS = ("kept the vectorised choice", "took {name}", "took the average of {name} and the vectorised choice")


@dataclass(frozen=True)
class _Plan:
    """The fixed facts of one :func:`challenge` call: model, limits, horizon and backtest origins."""

    challenger: Challenger
    spec: HeavyModel
    horizon: int
    season_length: int
    freq: str
    regressors: tuple[str, ...]
    origin: pd.Timestamp
    period: pd.Timedelta
    cutoffs: list[pd.Timestamp]

    @classmethod
    def of(cls, history: pd.DataFrame, challenger: Challenger, horizon: int, season_length: int, freq: str,
           regressors: Sequence[str]) -> _Plan:
        """The plan for ``history``: backtest origins ``horizon`` periods apart, ending at its last day."""
        period = pd.Timedelta(days=FREQUENCIES[freq].period_days)
        origin = pd.Timestamp(history["ds"].max())
        cutoffs = [origin - k * horizon * period for k in range(challenger.windows, 0, -1)]
        return cls(challenger, HEAVY_MODELS[challenger.model], horizon, season_length, freq, tuple(regressors),
                   origin, period, cutoffs)

    @property
    def name(self) -> str:
        return self.challenger.model


@dataclass
class _Run:
    """One call's fits under its time limits, with what they found: a note per series, an outage."""

    plan: _Plan
    chosen: list[str]
    deadline: float
    notes: dict[str, str] = field(default_factory=dict)
    outage: str | None = None

    def out_of_time(self) -> bool:
        return time.monotonic() > self.deadline

    def fit(self, train: pd.DataFrame, steps: pd.DataFrame, holidays: pd.DataFrame | None) -> np.ndarray:
        plan = self.plan
        return np.asarray(run_with_timeout(lambda: plan.spec.fit(train, steps, plan.season_length, holidays),
                                            plan.challenger.timeout_s), dtype=np.float64)

    def down(self, exc: HeavyModelUnavailable) -> None:
        """Record a model-wide outage: every chosen series keeps its vectorised forecast."""
        name = self.plan.name
        self.outage = f"{name} unavailable, the vectorised selection stands for every series: {exc}"
        log.warning("FORECAST CHALLENGER DOWN: %s", self.outage)
        for other in self.chosen:
            self.notes.setdefault(other, f"{name} unavailable: {exc}")


@dataclass(frozen=True)
class _Inputs:
    """What the challenger fits one series on: observed rows, usable regressors, the horizon's rows, holidays."""

    regs: list[str]
    train: pd.DataFrame
    future: pd.DataFrame | None
    holidays: pd.DataFrame | None


@dataclass(frozen=True)
class _Trial:
    """One series' backtest: mean MASE of the vectorised choice, the challenger and their average."""

    scores: np.ndarray
    inputs: _Inputs
    future: pd.DataFrame
    idx: np.ndarray
    about: str


@dataclass(frozen=True)
class _Decision:
    """The pooled decision: ``choice`` 0 (vectorised), 1 (challenger) or 2 (average), and why."""

    choice: int
    usable: np.ndarray
    text: str


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
    series = result.series.copy()
    series["challenger_note"] = pd.Series([None] * len(series), dtype=object)
    forecasts = result.forecasts.copy()
    base = replace(result, forecasts=forecasts, series=series)
    uses_regressors = HEAVY_MODELS[challenger.model].uses_regressors
    if challenger.top_n == 0 or series.empty or (uses_regressors and future is None):
        return base
    plan = _Plan.of(history, challenger, horizon, season_length, freq, regressors)
    chosen, lift_text = _choose_series(plan, series, _observed(history))
    if not chosen:
        return base

    mine = history[history["unique_id"].isin(chosen)]
    vec_bt = _vectorised_backtests(plan, mine, forecast if forecast_fn is None else forecast_fn)
    groups = _by_series(mine, ["unique_id", "ds"])
    fut_groups = _by_series(future[future["unique_id"].isin(chosen)], "ds") if future is not None else {}
    rows_of = forecasts.groupby("unique_id", sort=False).indices
    run = _Run(plan, chosen, deadline=time.monotonic() + challenger.budget_s)
    trials = _backtest_chosen(run, groups, fut_groups, rows_of, vec_bt, lift_text,
                              has_events="event" in history.columns)
    decision = _pooled_decision(plan, trials)
    row_of = {uid: i for i, uid in enumerate(series["unique_id"])}
    taken = _take_decided(run, trials, decision, series, forecasts, row_of)
    for uid, note in run.notes.items():
        series.loc[row_of[uid], "challenger_note"] = note
    verdict = _VERDICTS[decision.choice].format(name=plan.name)
    # Kept, the vectorised choice stands on every series tried; taken, on those the final fit served.
    verdict += f" on all {len(chosen)} series" if decision.choice == 0 else f" on {taken} of {len(chosen)} series"
    log.info("challenger %s: %s; %s", plan.name, decision.text, verdict)
    out_notes = list(result.notes) + ([run.outage] if run.outage else [])
    summary = f"{decision.text}: {verdict}" if trials else None
    return replace(result, forecasts=forecasts, series=series, notes=out_notes, decision=summary)


def _observed(history: pd.DataFrame) -> pd.DataFrame:
    """``history`` without its censored (stocked-out) rows, whose sales are not demand."""
    if "censored" in history.columns:
        return history[~history["censored"].astype(bool)]
    return history


def _by_series(frame: pd.DataFrame, order: str | list[str]) -> dict[str, pd.DataFrame]:
    """``frame`` sorted by ``order`` and split by ``unique_id``."""
    return dict(tuple(frame.sort_values(order).groupby("unique_id", sort=False)))


def _choose_series(plan: _Plan, series: pd.DataFrame, hist: pd.DataFrame) -> tuple[list[str], dict[str, str]]:
    """Steps 1-3: eligible series on which regressors matter, the ``top_n`` most valuable first.

    Args:
        plan: The call's model, limits and backtest origins.
        series: The vectorised result's per-series facts.
        hist: The observed (uncensored) history.

    Returns:
        The chosen ``unique_id`` values, and per series the lifts that made it worth challenging.
    """
    challenger = plan.challenger
    ok = series["fallback_reason"].isna() & series["demand_class"].isin(challenger.classes)
    n_train = hist[hist["ds"] <= plan.cutoffs[0]].groupby("unique_id").size()
    ok &= series["unique_id"].map(n_train).fillna(0).to_numpy() >= plan.season_length + 2 * plan.horizon
    lift_text: dict[str, str] = {}
    if plan.spec.uses_regressors:
        lifts = regressor_lifts(hist, plan.regressors, challenger.min_effect_days)
        strong = lifts[lifts["lift"].abs() >= challenger.min_lift]
        ok &= series["unique_id"].isin(strong["unique_id"]).to_numpy()
        lift_text = {uid: ", ".join(f"{r} {v:+.0%} over {n} days"
                                    for r, v, n in zip(g["regressor"], g["lift"], g["days"], strict=True))
                     for uid, g in strong.groupby("unique_id", sort=False)}
    candidates = series[ok]
    if candidates.empty:
        return [], lift_text
    worth = candidates["mean_daily"].fillna(0.0)
    if "price" in hist.columns:
        worth = worth * candidates["unique_id"].map(hist.groupby("unique_id")["price"].median()).fillna(1.0)
    chosen = candidates.assign(_worth=worth.to_numpy()).nlargest(challenger.top_n, "_worth")["unique_id"].tolist()
    return chosen, lift_text


def _vectorised_backtests(plan: _Plan, mine: pd.DataFrame,
                          forecast_fn: Callable[..., ForecastResult]) -> list[dict[str, np.ndarray]]:
    """Step 4: the vectorised selection's own mean forecast of each chosen series from each origin."""
    known = [*plan.regressors, *(["event"] if "event" in mine.columns else [])]
    cols = ["unique_id", "ds", "y"] + (["censored"] if "censored" in mine.columns else []) + known
    vec_bt = []
    for cutoff in plan.cutoffs:
        # The regressors and events of the backtest window are what was planned for it: the history's own.
        ahead = mine.loc[(mine["ds"] > cutoff) & (mine["ds"] <= cutoff + plan.horizon * plan.period),
                         ["unique_id", "ds", *known]]
        fc = forecast_fn(mine.loc[mine["ds"] <= cutoff, cols], plan.horizon, season_length=plan.season_length,
                         freq=plan.freq, regressors=tuple(plan.regressors), future=ahead)
        vec_bt.append({uid: g["mean"].to_numpy() for uid, g in fc.forecasts.groupby("unique_id", sort=False)})
    return vec_bt


def _series_inputs(plan: _Plan, group: pd.DataFrame, fut: pd.DataFrame | None, n_steps: int,
                   has_events: bool) -> _Inputs | str:
    """What the challenger fits one series on, or why the series is not tried."""
    observed = _observed(group)
    regs = usable_regressors(observed, plan.regressors) if plan.spec.uses_regressors else []
    train = observed[["ds", "y", *regs]].assign(y=observed["y"].clip(lower=0.0))
    if not plan.spec.uses_regressors:
        return _Inputs(regs, train, None, None)
    if fut is None or len(fut) != n_steps:
        return f"{plan.name} not tried: {0 if fut is None else len(fut)} future rows for {n_steps} steps"
    if fut[list(regs)].isna().to_numpy().any():
        return f"{plan.name} not tried: missing future values of {', '.join(regs)}"
    holidays = None
    if has_events:
        days = pd.concat([group[["event", "ds"]], fut[["event", "ds"]] if "event" in fut.columns else None])
        holidays = days.dropna(subset=["event"]).rename(columns={"event": "holiday"})
        holidays = holidays if len(holidays) else None
    return _Inputs(regs, train, fut, holidays)


def _backtest_scores(run: _Run, uid: str, group: pd.DataFrame, inputs: _Inputs,
                     vec_bt: list[dict[str, np.ndarray]]) -> np.ndarray:
    """Mean MASE over the backtest windows of the vectorised choice, the challenger and their average.

    Raises:
        HeavyModelUnavailable: when the model cannot be loaded; any error of the fit itself.
    """
    plan = run.plan
    scores = np.zeros(3)
    for w, cutoff in enumerate(plan.cutoffs):
        train = inputs.train[inputs.train["ds"] <= cutoff]
        steps = pd.DataFrame({"ds": cutoff + plan.period * np.arange(1, plan.horizon + 1)})
        if inputs.regs:
            steps = steps.merge(group[["ds", *inputs.regs]], on="ds", how="left").ffill().bfill()
        ch = run.fit(train, steps, inputs.holidays)
        actual = steps[["ds"]].merge(inputs.train[["ds", "y"]], on="ds", how="left")["y"].to_numpy(np.float64)
        vec = vec_bt[w].get(uid, np.full(plan.horizon, np.nan))
        train_y = train["y"].to_numpy(dtype=np.float64)
        scores += [_mase(actual, p, train_y, plan.season_length) for p in (vec, ch, (vec + ch) / 2)]
    return scores / len(plan.cutoffs)


def _backtest_chosen(
    run: _Run,
    groups: dict[str, pd.DataFrame],
    fut_groups: dict[str, pd.DataFrame],
    rows_of: dict[str, np.ndarray],
    vec_bt: list[dict[str, np.ndarray]],
    lift_text: dict[str, str],
    *,
    has_events: bool,
) -> dict[str, _Trial]:
    """Step 4a: backtest every chosen series within the budget; a failure notes that series only."""
    plan = run.plan
    trials: dict[str, _Trial] = {}
    for uid in run.chosen:
        if run.out_of_time():
            run.notes[uid] = f"{plan.name} not tried: budget of {plan.challenger.budget_s:g}s used up"
            continue
        group, idx = groups.get(uid), rows_of.get(uid)
        if group is None or idx is None:
            continue
        inputs = _series_inputs(plan, group, fut_groups.get(uid), len(idx), has_events)
        if isinstance(inputs, str):
            run.notes[uid] = inputs
            continue
        try:
            scores = _backtest_scores(run, uid, group, inputs, vec_bt)
        except HeavyModelUnavailable as exc:
            run.down(exc)
            break
        except Exception as exc:  # noqa: BLE001 - one bad series keeps its vectorised forecast
            run.notes[uid] = f"{plan.name} failed: {type(exc).__name__}: {exc}"
            continue
        future = (inputs.future[["ds", *inputs.regs]] if inputs.future is not None
                  else pd.DataFrame({"ds": plan.origin + plan.period * np.arange(1, len(idx) + 1)}))
        events = ", events" if inputs.holidays is not None else ""
        about = (f"regressors: {', '.join(inputs.regs) or 'none'}{events}"
                 + (f"; history shows {lift_text[uid]}" if uid in lift_text else ""))
        trials[uid] = _Trial(scores, inputs, future, idx, about)
    return trials


def _pooled_decision(plan: _Plan, trials: dict[str, _Trial]) -> _Decision:
    """Step 4b: one decision for all the series tried, on their pooled backtest.

    One series' two windows are too few to choose on, and choosing on noise loses accuracy. The
    average of both models is the robust choice; the challenger alone must also beat the average by
    the margin.
    """
    challenger = plan.challenger
    table = np.array([t.scores for t in trials.values()]).reshape(-1, 3)
    usable = np.isfinite(table).all(axis=1)
    pooled = table[usable].mean(axis=0) if usable.any() else np.full(3, np.nan)
    keep = 1 - challenger.margin
    enough = int(usable.sum()) >= challenger.min_series
    choice = 0
    if enough and pooled[2] < keep * pooled[0]:
        choice = 1 if pooled[1] < keep * pooled[2] else 2
    elif enough and pooled[1] < keep * pooled[0]:
        choice = 1
    text = (f"pooled backtest MASE over {int(usable.sum())} series and {len(plan.cutoffs)} window(s): vectorised "
            f"{pooled[0]:.3f}, {plan.name} {pooled[1]:.3f}, average {pooled[2]:.3f}"
            + ("" if enough else f" (fewer than {challenger.min_series} series: too few to decide on)"))
    return _Decision(choice, usable, text)


def _final_fit(run: _Run, uid: str, trial: _Trial) -> np.ndarray | None:
    """The challenger's forecast of the horizon, fitted on the whole history; ``None`` when unusable.

    Why a forecast is unusable goes to the run's notes (or, for a model-wide outage, its ``outage``).
    """
    name = run.plan.name
    try:
        mean = run.fit(trial.inputs.train, trial.future, trial.inputs.holidays)
    except HeavyModelUnavailable as exc:
        run.down(exc)
        return None
    except Exception as exc:  # noqa: BLE001 - one bad series keeps its vectorised forecast
        run.notes[uid] = f"{name} failed: {type(exc).__name__}: {exc}"
        return None
    problem = unusable_reason(mean, len(trial.idx), float(trial.inputs.train["y"].max()), name)
    if problem:
        run.notes[uid] = problem
        return None
    return mean


def _move_forecast(forecasts: pd.DataFrame, idx: np.ndarray, mean: np.ndarray, current: np.ndarray) -> None:
    """Set one series' mean to ``mean`` and move its quantiles by the same amount, kept monotone and >= 0."""
    qcols = [c for c in forecasts.columns if c.startswith("q") and c[1:].isdigit()]
    shift = mean - current
    forecasts.loc[forecasts.index[idx], "mean"] = mean
    running = np.zeros(len(idx))
    for col in qcols:
        running = np.maximum(running, np.maximum(forecasts[col].to_numpy()[idx] + shift, 0.0))
        forecasts.loc[forecasts.index[idx], col] = running


def _take_decided(run: _Run, trials: dict[str, _Trial], decision: _Decision, series: pd.DataFrame,
                  forecasts: pd.DataFrame, row_of: dict[str, int]) -> int:
    """Step 4c: refit and forecast the series the pooled decision takes; how many were taken."""
    plan = run.plan
    taken = 0
    for k, (uid, trial) in enumerate(trials.items()):
        m_vec, m_ch, m_blend = trial.scores
        vec_model = series.loc[row_of[uid], "model"]
        mine_text = f"this series: {vec_model} {m_vec:.3f}, {plan.name} {m_ch:.3f}, average {m_blend:.3f}"
        if decision.choice == 0 or not decision.usable[k] or run.outage:
            run.notes.setdefault(uid, f"kept {vec_model}: {decision.text}; {mine_text} ({trial.about})")
            continue
        if run.out_of_time():
            budget = plan.challenger.budget_s
            run.notes[uid] = f"kept {vec_model}: budget of {budget:g}s used up before the final fit"
            continue
        mean = _final_fit(run, uid, trial)
        if run.outage:
            break
        if mean is None:
            continue
        current = forecasts["mean"].to_numpy()[trial.idx]
        mean = np.maximum(mean, 0.0)
        label = plan.name
        if decision.choice == 2:
            mean, label = (mean + current) / 2, f"{plan.name}+{vec_model}"
        _move_forecast(forecasts, trial.idx, mean, current)
        series.loc[row_of[uid], "model"] = label
        series.loc[row_of[uid], "backtest_mase"] = (m_vec, m_ch, m_blend)[decision.choice]
        run.notes[uid] = f"taken ({label}): {decision.text}; {mine_text} ({trial.about})"
        taken += 1
    return taken
