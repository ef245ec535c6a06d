"""Known demand drivers in the vectorised path: every declared regressor and the event calendar multiply
demand, the candidates forecast the driver-free demand, and each forecast step is multiplied back by the
drivers planned for it.

A period's multiplier is ``exp(sum of coefficient x driver)``, per series. How each column enters:

* ``promo`` (discount fraction): ``log(1 - promo)``, so ``-coefficient`` is the price elasticity of
  promoted demand (``promo_elasticity``) and a 30 % discount lifts demand by ``0.7 ** -elasticity``.
* ``price``: ``log(price / regular price)``, the regular price being the series' upper-quartile price;
  the coefficient is the log-log elasticity (negative when a lower price sells more).
* A column holding only 0 and 1 (deal, feature, display, SNAP days): an indicator.
* Any other numeric column (markdown amounts, temperature): standardised over the call.
* ``event`` (label or ``None``): one indicator per label, so Christmas Eve and a sporting final each
  get their own effect.

A missing value (``NaN``) means the regular level: no effect, in history (the period teaches nothing
about that driver) and in the future. A column that does not vary, or that is a near-linear copy of one
kept before it (the nightly's ``price`` is list price times ``1 - promo``), is left out, and its
coefficient is reported as ``NaN``. So is a driver group (each numeric column; the event labels
together) that does not improve an out-of-sample backtest of the call
(:mod:`models.forecasting.driver_backtest`): a column can fit the history and still forecast badly.
The coefficients of the drivers kept are estimated on the whole history of the call and shrunk toward
the series' item (ids ``location|sku``) and the shard (:mod:`models.forecasting.driver_estimation`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from models.forecasting.driver_backtest import backtest_cutoffs, useful_groups
from models.forecasting.driver_estimation import DriverDesign, estimate_effects, linear_predictor
from models.forecasting.inputs import Grid

__all__ = ["EVENT", "PRICE", "PROMO", "DriverFit", "driver_columns", "driver_names", "fit_drivers"]

PROMO = "promo"
PRICE = "price"
EVENT = "event"
#: Largest discount a promotion is taken to give (a 100 % discount has no finite log price).
MAX_DISCOUNT = 0.9
#: A driver whose within-series correlation with one already kept exceeds this is left out.
COLLINEAR = 0.99
#: Periods per baseline level block, by period length in days: drivers are measured against the level
#: of the surrounding four weeks (daily) or two months (weekly).
BLOCK_PERIODS = {1: 28, 7: 8}
#: Quantile of a series' prices taken as its regular price.
REGULAR_PRICE_QUANTILE = 0.75
#: Bound of a standardised driver, in standard deviations.
MAX_Z = 4.0


@dataclass
class DriverFit:
    """The drivers' effects on every series of a call.

    Attributes:
        regressors: The numeric regressors declared.
        kept: Those estimated (the others did not vary or copied one kept before them).
        labels: Event labels seen in history (coefficients after the numeric ones).
        coef: ``[n, len(kept) + len(labels)]`` log-demand coefficients per series.
        history: ``[n, T]`` multiplier of every period of the packed history.
        future: ``[n, horizon]`` multiplier of every forecast step (1 where nothing is planned).
        label_days: ``[n, len(labels)]`` periods of each label in each series' history.
        has_events: Whether the history has an ``event`` column (its labels may all have been left out).
    """

    regressors: list[str]
    kept: list[str]
    labels: list[str]
    coef: np.ndarray
    history: np.ndarray
    future: np.ndarray
    label_days: np.ndarray
    has_events: bool = False

    def series_columns(self) -> dict[str, np.ndarray]:
        """Columns for ``ForecastResult.series``: ``coef_<regressor>`` per declared regressor (``NaN`` when
        left out), ``coef_event`` (mean effect of the labels in the series' history, weighted by their
        days; the mean over labels where it has none) with an event column, and ``promo_elasticity``
        (``-coef_promo``, 0 when promotions were left out) when ``promo`` is declared. ``coef_event`` is
        ``NaN`` when the event labels were left out."""
        n = self.coef.shape[0]
        out: dict[str, np.ndarray] = {}
        for name in self.regressors:
            out[f"coef_{name}"] = self.coef[:, self.kept.index(name)] if name in self.kept else np.full(n, np.nan)
        if self.has_events and not self.labels:
            out["coef_event"] = np.full(n, np.nan)
        if self.labels:
            effects = self.coef[:, len(self.kept):]
            days = self.label_days.sum(axis=1)
            with np.errstate(invalid="ignore", divide="ignore"):
                weighted = (effects * self.label_days).sum(axis=1) / np.maximum(days, 1)
            out["coef_event"] = np.where(days > 0, weighted, effects.mean(axis=1))
        if PROMO in self.regressors:
            out["promo_elasticity"] = np.nan_to_num(-out[f"coef_{PROMO}"], nan=0.0)
        return out


def driver_columns(history: pd.DataFrame, regressors: Sequence[str]) -> bool:
    """Whether the call has drivers: declared regressors, or an ``event`` column with a label."""
    return bool(len(regressors)) or (EVENT in history.columns and history[EVENT].notna().any())


def driver_names(history: pd.DataFrame, regressors: Sequence[str]) -> list[str]:
    """The ``series`` columns :meth:`DriverFit.series_columns` gives for this call (for an empty result)."""
    names = [f"coef_{name}" for name in regressors]
    if EVENT in history.columns:
        names.append("coef_event")
    if PROMO in regressors:
        names.append("promo_elasticity")
    return names


def _packed_history(values: np.ndarray, grid: Grid) -> np.ndarray:
    out = np.full(len(grid.ids) * grid.n_periods, np.nan)
    out[grid.key] = values
    return out.reshape(len(grid.ids), grid.n_periods)


def _future_cells(future: pd.DataFrame, grid: Grid, horizon: int, period_days: int) -> tuple[np.ndarray, np.ndarray]:
    """Rows of ``future`` that fall on a forecast step of a known series: their index and flat cell."""
    row = pd.Index(grid.ids).get_indexer(future["unique_id"].astype(object))
    days = (pd.to_datetime(future["ds"]).to_numpy().astype("datetime64[D]") - np.datetime64(grid.origin, "D"))
    days = days.astype(np.int64)
    step = days // period_days - 1
    ok = (row >= 0) & (days % period_days == 0) & (step >= 0) & (step < horizon)
    return np.flatnonzero(ok), row[ok] * horizon + step[ok]


def _packed_future(values: np.ndarray, cells: tuple[np.ndarray, np.ndarray], n: int, horizon: int) -> np.ndarray:
    out = np.full(n * horizon, np.nan)
    rows, flat = cells
    out[flat] = values[rows]
    return out.reshape(n, horizon)


def _transform(name: str, hist: np.ndarray, fut: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The driver of column ``name`` in history and future (0 where missing: the regular level)."""
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        if name == PROMO:
            h, f = (np.log1p(-np.clip(v, 0.0, MAX_DISCOUNT)) for v in (hist, fut))
        elif name == PRICE:
            # NaN sorts last: the quantile of each row's known prices is a position in its sorted row.
            ranked = np.sort(np.where(hist > 0, hist, np.nan), axis=1)
            known = np.isfinite(ranked).sum(axis=1)
            at = np.floor(REGULAR_PRICE_QUANTILE * np.maximum(known - 1, 0)).astype(np.int64)
            regular = np.where(known > 0, np.take_along_axis(ranked, at[:, None], axis=1)[:, 0], np.nan)
            h, f = (np.clip(np.log(np.where(v > 0, v, np.nan) / regular[:, None]), -3.0, 3.0) for v in (hist, fut))
        elif np.isin(np.concatenate([hist[np.isfinite(hist)], fut[np.isfinite(fut)]]), (0.0, 1.0)).all():
            h, f = hist, fut
        else:
            # One scale for the whole call, so that the coefficients of different series are comparable
            # and can be pooled (markdown dollars of two stores mean the same thing).
            values = hist[np.isfinite(hist)]
            mean = values.mean() if values.size else 0.0
            sd = values.std() if values.size else 0.0
            scale = sd if sd > 0 else np.inf
            h, f = (np.clip((v - mean) / scale, -MAX_Z, MAX_Z) for v in (hist, fut))
    return np.where(np.isfinite(h), h, 0.0), np.where(np.isfinite(f), f, 0.0)


def _independent(features: list[np.ndarray], obs: np.ndarray) -> list[int]:
    """Indices of the features that vary within series and are not a near-linear copy of one kept before."""
    kept: list[int] = []
    centred: list[np.ndarray] = []
    count = np.maximum(obs.sum(axis=1, keepdims=True), 1)
    for i, x in enumerate(features):
        xo = np.where(obs, x, 0.0)
        c = np.where(obs, xo - xo.sum(axis=1, keepdims=True) / count, 0.0)
        sd = np.sqrt((c**2).sum())
        if not np.isfinite(sd) or sd <= 1e-9 * max(obs.sum(), 1) ** 0.5:
            continue
        if any(abs((c * other).sum()) / (sd * np.sqrt((other**2).sum())) > COLLINEAR for other in centred):
            continue
        kept.append(i)
        centred.append(c)
    return kept


def _event_codes(history: pd.DataFrame, future: pd.DataFrame | None, grid: Grid,
                 cells: tuple[np.ndarray, np.ndarray] | None, horizon: int) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Event labels of history, and the label code of every history period and forecast step (0: none)."""
    n = len(grid.ids)
    labels = history[EVENT].astype(object).where(history[EVENT].notna(), None)
    codes, uniques = pd.factorize(labels, sort=True)
    hist = _packed_history((codes + 1).astype(np.float64), grid)
    hist = np.where(np.isfinite(hist), hist, 0).astype(np.int64)
    fut = np.zeros((n, horizon), dtype=np.int64)
    if future is not None and cells is not None and EVENT in future.columns:
        fcodes = pd.Index(uniques).get_indexer(future[EVENT].astype(object)) + 1
        fut = _packed_future(fcodes.astype(np.float64), cells, n, horizon)
        fut = np.where(np.isfinite(fut), fut, 0).astype(np.int64)
    return [str(u) for u in uniques], hist, fut


def _items(ids: np.ndarray) -> np.ndarray:
    """Item code of each series (the part of ``location|sku`` after the last ``|``), ``-1`` for a series
    whose item has no other series in the call (it pools with the shard directly)."""
    names = pd.Series(ids, dtype=object).astype(str)
    item = names.str.rsplit("|", n=1).str[-1].where(names.str.contains("|", regex=False))
    shared = item.map(item.value_counts()).fillna(0).to_numpy() >= 2
    codes = pd.factorize(item.where(shared))[0]
    return np.where(shared, codes, -1).astype(np.int64)


def _parts(design: DriverDesign, coef: np.ndarray) -> list[np.ndarray]:
    """Each driver group's ``[n, T]`` log multiplier: every numeric driver, then the event labels together."""
    parts = [design.numeric[i] * coef[:, i, None] for i in range(design.numeric.shape[0])]
    if design.events is not None and design.n_labels:
        p = design.numeric.shape[0]
        parts.append(linear_predictor(np.zeros((0, *design.events.shape)), design.events, coef[:, p:]))
    return parts


def _useful(Y: np.ndarray, design: DriverDesign, n_numeric: int, horizon: int, m: int, backtest_windows: int,
            block: int) -> list[bool]:
    """Which driver groups pass the out-of-sample backtest (:mod:`models.forecasting.driver_backtest`)."""
    trusted = [True] * n_numeric + [False] * (1 if design.n_labels else 0)
    cutoffs = backtest_cutoffs(Y.shape[1], horizon, m, backtest_windows)
    if not cutoffs or not trusted:
        return trusted
    first = cutoffs[0]
    early = DriverDesign(design.numeric[:, :, :first], None if design.events is None else design.events[:, :first],
                         design.n_labels, design.item)
    parts = _parts(design, estimate_effects(Y[:, :first], early, block, m))
    window = np.zeros(Y.shape[1], dtype=bool)
    for c in cutoffs:
        window[c : c + horizon] = True
    moving = [bool(np.abs(design.numeric[i][:, window]).max(initial=0.0) > 0) for i in range(n_numeric)]
    if design.n_labels:
        moving.append(bool((design.events[:, window] > 0).any()))
    return useful_groups(Y, parts, moving, cutoffs, horizon, m, trusted)


def fit_drivers(history: pd.DataFrame, grid: Grid, Y: np.ndarray, regressors: Sequence[str],
                future: pd.DataFrame | None, *, horizon: int, season_length: int, period_days: int,
                backtest_windows: int) -> DriverFit:
    """Estimate the drivers' effects on every series and their multipliers in history and over the horizon.

    Args:
        history: The validated history (its rows are placed on the grid by ``grid``).
        grid: Where each history row sits in ``Y``.
        Y: ``[n, T]`` packed demand (``NaN``: unknown).
        regressors: Declared numeric regressor columns.
        future: ``unique_id, ds`` and the regressor (and ``event``) columns of the horizon, or ``None``
            (every step at the regular level).
        horizon: Forecast steps.
        season_length: Season in periods.
        period_days: Days per period.
        backtest_windows: Windows of the backtest that decides which drivers are used
            (:mod:`models.forecasting.driver_backtest`).
    """
    n = len(grid.ids)
    cells = _future_cells(future, grid, horizon, period_days) if future is not None else None
    features: list[tuple[np.ndarray, np.ndarray]] = []
    for name in regressors:
        hist = _packed_history(history[name].to_numpy(dtype=np.float64, na_value=np.nan), grid)
        fut = (_packed_future(future[name].to_numpy(dtype=np.float64, na_value=np.nan), cells, n, horizon)
               if cells is not None else np.full((n, horizon), np.nan))
        features.append(_transform(name, hist, fut))
    obs = np.isfinite(Y)
    keep = _independent([h for h, _ in features], obs)
    kept = [regressors[i] for i in keep]
    numeric = np.stack([features[i][0] for i in keep]) if keep else np.zeros((0, *Y.shape))
    numeric_future = np.stack([features[i][1] for i in keep]) if keep else np.zeros((0, n, horizon))
    labels: list[str] = []
    events = events_future = None
    if EVENT in history.columns:
        labels, events, events_future = _event_codes(history, future, grid, cells, horizon)
    items = _items(grid.ids)
    block = BLOCK_PERIODS.get(period_days, 28)
    design = DriverDesign(numeric, events if labels else None, len(labels), items)
    useful = _useful(Y, design, len(kept), horizon, season_length, backtest_windows, block)
    if not all(useful):
        p = len(kept)
        keep_num = [i for i in range(p) if useful[i]]
        kept = [kept[i] for i in keep_num]
        numeric, numeric_future = numeric[keep_num], numeric_future[keep_num]
        if labels and not useful[p]:
            labels, events, events_future = [], None, None
        design = DriverDesign(numeric, events if labels else None, len(labels), items)
    coef = estimate_effects(Y, design, block, season_length)
    label_days = np.zeros((n, len(labels)))
    if labels:
        cell = (np.arange(n)[:, None] * (len(labels) + 1) + events).ravel()
        counts = np.bincount(cell, weights=obs.ravel().astype(np.float64), minlength=n * (len(labels) + 1))
        label_days = counts.reshape(n, len(labels) + 1)[:, 1:]
    with np.errstate(over="ignore"):
        hist_mult = np.exp(linear_predictor(numeric, design.events, coef))
        fut_mult = np.exp(linear_predictor(numeric_future, events_future if labels else None, coef))
    return DriverFit(list(regressors), kept, labels, coef, hist_mult, fut_mult, label_days, EVENT in history.columns)
