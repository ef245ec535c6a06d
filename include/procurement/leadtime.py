"""Arrival prediction for open purchase-order lines from the recent receipts of the same supplier.

Each line is predicted from the receipts delivered strictly before its prediction time (its ``ordered_at``,
or a common ``as_of``), so a walk forward over history is honest by construction. Receipts are pooled over
a hierarchy of groups (by default supplier x lane x mode -> supplier x mode -> mode -> all): the last
``window`` receipts of each of the line's groups are weighted by recency (exponential half-life), the most
specific level with enough receipts is chosen and shrunk toward its parents by mixing in their receipts,
and the mixture's weighted median is the delay against the promise (or the lead time from the order date).
The interval is the mixture's weighted quantiles (of the delays, or of past prediction errors), widened
for the number of receipts behind it. A two-window test on a group's recent receipts flags a change in
delays; when it fires the receipts before it are down-weighted, so the prediction follows the new level.

Everything runs on packed ``[lines, window]`` numpy arrays, one pass per level: no loop over lines.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

__all__ = [
    "DEFAULT_LEVELS", "HISTORY_COLUMNS", "LINE_COLUMNS", "OUTPUT_COLUMNS", "LeadTimeParams",
    "predict_arrivals", "score", "walk_forward",
]

LINE_COLUMNS = ("supplier_id", "lane", "mode", "ordered_at", "promised_at")
HISTORY_COLUMNS = (*LINE_COLUMNS, "received_at")
DEFAULT_LEVELS = (("supplier_id", "lane", "mode"), ("supplier_id", "mode"), ("mode",), ())
OUTPUT_COLUMNS = [
    "predicted_arrival", "predicted_delay_days", "interval_low", "interval_high", "level", "level_receipts",
    "drift", "drift_shift_days", "drift_scale_days", "drift_evidence",
]
_DAY_NS = 86_400 * 10**9
_TIME_COLUMNS = ("ordered_at", "promised_at", "received_at")


@dataclass(frozen=True)
class LeadTimeParams:
    """Knobs of :func:`predict_arrivals`.

    Attributes:
        target: ``"delay"`` predicts ``received_at - promised_at`` and adds it to the promise;
            ``"lead_time"`` predicts ``received_at - ordered_at`` and adds it to the order date.
        levels: Grouping columns from the most specific level to the least; ``()`` pools everything.
        window: Most recent receipts of a group that are read (older ones carry little weight anyway).
        halflife_days: Age at which a receipt's weight halves.
        min_receipts: Receipts a level needs before its estimate is used rather than its parent's.
        shrink_receipts: Weight of the parent's estimate, in effective receipts, when shrinking a level.
        coverage: Nominal coverage of the interval (0.8 gives the 10% and 90% quantiles).
        drift_recent: Receipts in the recent window of the change test.
        drift_min_dates: Distinct delivery days the recent window must span (one shipment is one event).
        drift_min_older: Older receipts the change test needs beside the recent window.
        drift_threshold: Shift of the recent median, in robust standard deviations of the older delays,
            that counts as a change.
        drift_min_shift_days: Smallest shift, in days, that counts as a change (guards a zero spread).
        drift_downweight: Factor applied to the weights of the receipts before a detected change.
        interval_from: ``"residuals"``: the interval is the median plus the weighted quantiles of the
            group's past prediction errors (each receipt predicted on its own order date), which carry
            the horizon and the drift the model missed; ``"delays"``: the quantiles of the delays.
    """

    target: str = "delay"
    levels: tuple[tuple[str, ...], ...] = DEFAULT_LEVELS
    window: int = 80
    halflife_days: float = 180.0
    min_receipts: int = 5
    shrink_receipts: float = 3.0
    coverage: float = 0.8
    drift_recent: int = 4
    drift_min_dates: int = 4
    drift_min_older: int = 6
    drift_threshold: float = 3.0
    drift_min_shift_days: float = 7.0
    drift_downweight: float = 0.05
    interval_from: str = "delays"

    def __post_init__(self) -> None:
        if self.interval_from not in ("residuals", "delays"):
            raise ValueError(f"interval_from must be 'residuals' or 'delays', not {self.interval_from!r}")
        if self.target not in ("delay", "lead_time"):
            raise ValueError(f"target must be 'delay' or 'lead_time', not {self.target!r}")
        if not self.levels or self.levels[-1] != ():
            raise ValueError(f"levels must end with () (everything pooled), got {self.levels!r}")
        for level in self.levels:
            unknown = set(level) - {"supplier_id", "lane", "mode"}
            if unknown:
                raise ValueError(f"levels name unknown column(s) {sorted(unknown)}")
        checks = {
            "window": self.window >= 2, "halflife_days": self.halflife_days > 0,
            "min_receipts": self.min_receipts >= 1, "shrink_receipts": self.shrink_receipts >= 0,
            "coverage": 0 < self.coverage < 1, "drift_recent": self.drift_recent >= 1,
            "drift_min_dates": 1 <= self.drift_min_dates <= self.drift_recent,
            "drift_min_older": self.drift_min_older >= 1, "drift_threshold": self.drift_threshold > 0,
            "drift_min_shift_days": self.drift_min_shift_days >= 0,
            "drift_downweight": 0 <= self.drift_downweight <= 1,
        }
        bad = [name for name, ok in checks.items() if not ok]
        if bad:
            raise ValueError(f"LeadTimeParams out of range: {', '.join(f'{b}={getattr(self, b)!r}' for b in bad)}")
        if self.drift_recent + self.drift_min_older > self.window:
            raise ValueError(f"drift_recent + drift_min_older ({self.drift_recent + self.drift_min_older}) "
                             f"exceeds window ({self.window})")


# --------------------------------------------------------------------------------------------- validation


def _check_frame(frame: pd.DataFrame, columns: tuple[str, ...], name: str) -> pd.DataFrame:
    """A copy of ``frame[columns]`` with datetime columns parsed; ValueError naming column and row otherwise."""
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(f"{name} lacks column(s) {missing}; it needs {list(columns)}")
    out = frame[list(columns)].copy()
    for col in columns:
        empty = out[col].isna().to_numpy()
        if empty.any():
            raise ValueError(f"{name}.{col} is empty in row {out.index[empty.argmax()]!r}")
        if col in _TIME_COLUMNS and not pd.api.types.is_datetime64_any_dtype(out[col]):
            parsed = pd.to_datetime(out[col], errors="coerce")
            bad = parsed.isna().to_numpy()
            if bad.any():
                row = out.index[bad.argmax()]
                raise ValueError(f"{name}.{col} is not a date in row {row!r}: {out.at[row, col]!r}")
            out[col] = parsed
        if col in _TIME_COLUMNS and getattr(out[col].dt, "tz", None) is not None:
            out[col] = out[col].dt.tz_convert("UTC").dt.tz_localize(None)
    if "received_at" in columns:
        early = (out["received_at"] < out["ordered_at"]).to_numpy()
        if early.any():
            row = out.index[early.argmax()]
            raise ValueError(f"{name} row {row!r}: received_at {out.at[row, 'received_at']} is before "
                             f"ordered_at {out.at[row, 'ordered_at']}")
    return out


def _days(values: pd.Series) -> np.ndarray:
    """Timestamps as float days since the epoch."""
    return values.to_numpy("datetime64[ns]").astype("int64") / _DAY_NS


# --------------------------------------------------------------------------------------------- packed windows


def _group_codes(hist: pd.DataFrame, lines: pd.DataFrame, cols: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
    """Integer codes of each history row's and line's group at one level, shared across the two frames."""
    if not cols:
        return np.zeros(len(hist), np.int64), np.zeros(len(lines), np.int64)
    both = pd.concat([hist[list(cols)], lines[list(cols)]], ignore_index=True).astype(str)
    codes = both.groupby(list(cols), sort=False).ngroup().to_numpy(np.int64)
    return codes[: len(hist)], codes[len(hist):]


def _windows(h_code: np.ndarray, h_time: np.ndarray, l_code: np.ndarray, l_cut: np.ndarray,
             window: int) -> tuple[np.ndarray, np.ndarray]:
    """The last ``window`` receipts of each line's group received strictly before its cutoff.

    Returns:
        ``[lines, window]`` row numbers into the history (oldest first, newest in the last column) and
        the mask of those that exist.
    """
    if not len(h_time):
        return np.zeros((len(l_code), window), np.int64), np.zeros((len(l_code), window), bool)
    t0 = min(h_time.min(), l_cut.min())
    span = max(h_time.max(), l_cut.max()) - t0 + 2.0
    # One sorted composite key (group, time) lets a single searchsorted find every line's cutoff.
    h_key = h_code * span + (h_time - t0)
    order = np.argsort(h_key, kind="stable")
    h_key = h_key[order]
    start = np.searchsorted(h_key, l_code * span, side="left")
    stop = np.searchsorted(h_key, l_code * span + (l_cut - t0), side="left")
    idx = stop[:, None] - window + np.arange(window)[None, :]
    return order[np.clip(idx, 0, len(order) - 1)], idx >= start[:, None]


def _weighted_quantiles(values: np.ndarray, weights: np.ndarray, qs: np.ndarray) -> np.ndarray:
    """Row-wise weighted quantiles: ``qs`` is ``[rows, k]``; NaN where a row has no weight."""
    filled = np.where(weights > 0, values, np.inf)
    order = np.argsort(filled, axis=1, kind="stable")
    v = np.take_along_axis(filled, order, axis=1)
    cw = np.cumsum(np.take_along_axis(weights, order, axis=1), axis=1)
    total = cw[:, -1:]
    out = np.full(qs.shape, np.nan)
    for j in range(qs.shape[1]):
        # First sorted value whose cumulative weight reaches the share; a tiny slack absorbs round-off.
        pick = (cw >= qs[:, j : j + 1] * total * (1 - 1e-12)).argmax(axis=1)
        out[:, j] = v[np.arange(len(v)), pick]
    out[~np.isfinite(out)] = np.nan
    out[total[:, 0] <= 0, :] = np.nan
    return out


# --------------------------------------------------------------------------------------------- one level


def _drift(values: np.ndarray, times: np.ndarray, valid: np.ndarray,
           params: LeadTimeParams) -> dict[str, np.ndarray]:
    """Two-window change test: the median of the last ``drift_recent`` receipts against the older ones."""
    r = params.drift_recent
    n = valid.sum(axis=1)
    # Lines of one shipment arrive the same day with the same delay: they are one piece of evidence.
    days = np.floor(np.nan_to_num(times[:, -r:]))
    dates = 1 + (np.diff(days, axis=1) > 0).sum(axis=1)
    recent = np.zeros_like(valid)
    recent[:, -r:] = True
    older = valid & ~recent
    ones = older.astype(float)
    med_old = _weighted_quantiles(values, ones, np.full((len(values), 1), 0.5))[:, 0]
    mad = _weighted_quantiles(np.abs(values - med_old[:, None]), ones, np.full((len(values), 1), 0.5))[:, 0]
    med_recent = _weighted_quantiles(values, recent.astype(float) * valid, np.full((len(values), 1), 0.5))[:, 0]
    shift = med_recent - med_old
    scale = 1.4826 * mad
    enough = n >= r + params.drift_min_older
    big = (np.abs(shift) >= params.drift_threshold * scale) & (np.abs(shift) >= params.drift_min_shift_days)
    flag = enough & (dates >= params.drift_min_dates) & big
    return {"flag": flag, "shift": np.where(enough, shift, np.nan), "scale": np.where(enough, scale, np.nan),
            "recent": recent}


def _level_weights(values: np.ndarray, times: np.ndarray, valid: np.ndarray, cut: np.ndarray,
                   params: LeadTimeParams) -> dict[str, np.ndarray]:
    """Recency weights of one level's window (old receipts down-weighted after a change), for every line."""
    drift = _drift(values, times, valid, params)
    age = np.where(valid, cut[:, None] - times, 0.0)
    weights = np.where(valid, 0.5 ** (age / params.halflife_days), 0.0)
    old = ~drift["recent"] & drift["flag"][:, None]
    weights = np.where(old, weights * params.drift_downweight, weights)
    total, sq = weights.sum(axis=1), (weights**2).sum(axis=1)
    n_eff = np.divide(total**2, sq, out=np.zeros_like(total), where=sq > 0)
    share = np.divide(weights, total[:, None], out=np.zeros_like(weights), where=total[:, None] > 0)
    return {"share": share, "n_eff": n_eff, "n": valid.sum(axis=1), "drift": drift["flag"],
            "shift": drift["shift"], "scale": drift["scale"]}


def _mixture(levels: list[dict[str, np.ndarray]], first: np.ndarray, k: float) -> np.ndarray:
    """Weights over the concatenated windows of all levels that shrink each line's chosen level toward
    its parents.

    The chosen level ``first`` keeps ``n_eff / (n_eff + k)`` of the mass and hands the rest to its parent,
    which does the same, down to the pooled level. Mixing distributions rather than averaging quantiles
    keeps a median on an observed delay (a supplier that is always on time stays exactly on time) and
    gives the tails the parent's shape where the group is thin.
    """
    n = len(first)
    remaining = np.ones(n)
    weights = []
    for i, level in enumerate(levels):
        last = i == len(levels) - 1
        keep = np.ones(n) if last else level["n_eff"] / (level["n_eff"] + k) if k > 0 else (level["n_eff"] > 0) * 1.0
        mass = np.where(i >= first, remaining * keep, 0.0)
        remaining = remaining - mass
        weights.append(level["share"] * mass[:, None])
    return np.concatenate(weights, axis=1)


# --------------------------------------------------------------------------------------------- entry points


def _level_name(cols: tuple[str, ...]) -> str:
    return " x ".join(cols) if cols else "all"


def _observed(hist: pd.DataFrame, params: LeadTimeParams) -> tuple[np.ndarray, np.ndarray]:
    """Each receipt's delivery time and its target (delay against the promise, or lead time), in days."""
    h_time = _days(hist["received_at"])
    base_col = "promised_at" if params.target == "delay" else "ordered_at"
    return h_time, h_time - _days(hist[base_col])


def _pooled(hist: pd.DataFrame, lines: pd.DataFrame, cut: np.ndarray, params: LeadTimeParams,
            resid: np.ndarray | None = None) -> dict:
    """Per line: the most specific level with enough receipts, the median of its shrunk mixture and the
    interval from the mixture's quantiles (of the targets, or of ``resid`` around the median when given)."""
    h_time, h_value = _observed(hist, params)
    levels, values, residuals = [], [], []
    for cols in params.levels:
        h_code, l_code = _group_codes(hist, lines, cols)
        take, valid = _windows(h_code, h_time, l_code, cut, params.window)
        values.append(np.where(valid, h_value[take], np.nan))
        residuals.append(np.where(valid, resid[take], np.nan) if resid is not None else values[-1])
        levels.append(_level_weights(values[-1], np.where(valid, h_time[take], np.nan), valid, cut, params))
    counts = np.column_stack([lv["n"] for lv in levels])
    enough, any_rows = counts >= params.min_receipts, counts > 0
    # Most specific level with enough receipts; else the coarsest with any; else none (index len(levels)).
    last_any = len(levels) - 1 - np.argmax(any_rows[:, ::-1], axis=1)
    first = np.where(enough.any(axis=1), np.argmax(enough, axis=1),
                     np.where(any_rows.any(axis=1), last_any, len(levels)))
    weights = _mixture(levels, first, params.shrink_receipts)
    mid = _weighted_quantiles(np.concatenate(values, axis=1), weights, np.full((len(first), 1), 0.5))[:, 0]
    spread = np.concatenate(residuals, axis=1)
    weights = np.where(np.isnan(spread), 0.0, weights)
    total, sq = weights.sum(axis=1), (weights**2).sum(axis=1)
    n_eff = np.divide(total**2, sq, out=np.zeros_like(total), where=sq > 0)
    # Split-conformal correction: from n exchangeable receipts, the (1 + 1/n) inflated quantile level
    # covers the next one with the nominal probability, which plain sample quantiles fall short of.
    upper = np.minimum(1.0, (1 + params.coverage) / 2 * (1 + 1 / np.maximum(n_eff, 1.0)))
    q = _weighted_quantiles(spread, weights, np.column_stack([1 - upper, upper]))
    if resid is not None:
        q = q + mid[:, None]
    rows, pick = np.arange(len(first)), np.minimum(first, len(levels) - 1)
    names = np.array([_level_name(c) for c in params.levels] + ["none"], dtype=object)

    def at_chosen(key: str, empty: float) -> np.ndarray:
        return np.where(first < len(levels), np.column_stack([lv[key] for lv in levels])[rows, pick], empty)

    return {"low": q[:, 0], "mid": mid, "high": q[:, 1], "level": names[first],
            "n": at_chosen("n", 0).astype(np.int64), "drift": at_chosen("drift", 0).astype(bool),
            "shift": at_chosen("shift", np.nan), "scale": at_chosen("scale", np.nan)}


def _residuals(hist: pd.DataFrame, params: LeadTimeParams) -> np.ndarray:
    """Each receipt's error against the prediction made for it on its own order date (NaN: none made).

    Those predictions read only receipts delivered before that order date, hence before the receipt
    itself: a line predicted at ``t`` reads only residuals of receipts delivered before ``t``.
    """
    _, h_value = _observed(hist, params)
    return h_value - _pooled(hist, hist, _days(hist["ordered_at"]), params)["mid"]


def predict_arrivals(history: pd.DataFrame, open_lines: pd.DataFrame, params: LeadTimeParams | None = None,
                     as_of: pd.Timestamp | None = None) -> pd.DataFrame:
    """Predict each open line's arrival, with an interval, from receipts delivered before its prediction time.

    Args:
        history: Receipts: ``supplier_id, lane, mode, ordered_at, promised_at, received_at``.
        open_lines: Lines to predict: ``supplier_id, lane, mode, ordered_at, promised_at``.
        params: The knobs; :class:`LeadTimeParams` defaults when None.
        as_of: Prediction time of every line. None: each line at its own ``ordered_at``, which is what a
            walk forward over history needs. Only receipts with ``received_at`` strictly before it count.

    Returns:
        One row per open line (same index) with :data:`OUTPUT_COLUMNS`: the predicted arrival, the delay
        against the promise in days, the interval's dates, the hierarchy level used (``"none"`` when no
        receipt exists: the promise is kept and the interval is empty), the receipts it read, and the
        drift flag with its evidence (shift of the recent median and the older delays' robust spread).

    Raises:
        ValueError: A column is missing, empty or not a date, naming the column and the row; or a receipt
            arrives before it was ordered.
    """
    params = params or LeadTimeParams()
    hist = _check_frame(history, HISTORY_COLUMNS, "history")
    lines = _check_frame(open_lines, LINE_COLUMNS, "open_lines")
    cut = _days(lines["ordered_at"]) if as_of is None else np.full(len(lines), _days(pd.Series([as_of]))[0])
    resid = _residuals(hist, params) if params.interval_from == "residuals" else None
    est = _pooled(hist, lines, cut, params, resid)
    base = lines["promised_at"] if params.target == "delay" else lines["ordered_at"]
    mid = est["mid"]
    if params.target == "lead_time":
        # With no receipt at all the promise is the only estimate left.
        mid = np.where(np.isnan(mid), _days(lines["promised_at"]) - _days(lines["ordered_at"]), mid)
    else:
        mid = np.where(np.isnan(mid), 0.0, mid)

    def at(days: np.ndarray) -> pd.Series:
        return base + pd.to_timedelta(days, unit="D")

    arrival = at(mid)
    out = pd.DataFrame({
        "predicted_arrival": arrival,
        "predicted_delay_days": (arrival - lines["promised_at"]) / pd.Timedelta(days=1),
        "interval_low": at(est["low"]), "interval_high": at(est["high"]),
        "level": est["level"].astype(str), "level_receipts": est["n"].astype(np.int64),
        "drift": est["drift"].astype(bool), "drift_shift_days": est["shift"], "drift_scale_days": est["scale"],
    }, index=lines.index)
    out["drift_evidence"] = _evidence(out)
    return out[OUTPUT_COLUMNS]


def _evidence(out: pd.DataFrame) -> pd.Series:
    """A readable sentence for the lines whose delays changed; empty elsewhere."""
    text = pd.Series("", index=out.index, dtype=object)
    flagged = out["drift"].to_numpy()
    if flagged.any():
        f = out.loc[flagged]
        text.loc[flagged] = ("recent median moved " + f["drift_shift_days"].map("{:+.1f}".format) + " d against "
                             + f["drift_scale_days"].map("{:.1f}".format) + " d robust spread at level "
                             + f["level"] + " (" + f["level_receipts"].astype(str) + " receipts)")
    return text


def walk_forward(history: pd.DataFrame, params: LeadTimeParams | None = None,
                 start: pd.Timestamp | None = None, end: pd.Timestamp | None = None) -> pd.DataFrame:
    """Predict every receipt ordered in ``[start, end)`` as if it were open on its order date, and score it.

    Each line sees only the receipts delivered before its own ``ordered_at`` (see :func:`predict_arrivals`).

    Returns:
        The predictions with ``actual_arrival``, ``error_days`` (actual minus predicted), ``abs_error_days``
        and ``covered`` (actual within the interval, both ends inclusive; False when there is no interval).
    """
    hist = _check_frame(history, HISTORY_COLUMNS, "history")
    keep = np.ones(len(hist), bool)
    if start is not None:
        keep &= (hist["ordered_at"] >= pd.Timestamp(start)).to_numpy()
    if end is not None:
        keep &= (hist["ordered_at"] < pd.Timestamp(end)).to_numpy()
    lines = hist.loc[keep]
    pred = predict_arrivals(hist, lines, params)
    actual = lines["received_at"]
    error = (actual - pred["predicted_arrival"]) / pd.Timedelta(days=1)
    covered = (actual >= pred["interval_low"]) & (actual <= pred["interval_high"])
    return pred.assign(actual_arrival=actual, error_days=error, abs_error_days=error.abs(), covered=covered)


def score(result: pd.DataFrame) -> dict[str, float]:
    """Arrival-date MAE in days, interval coverage and the number of lines of a :func:`walk_forward` result."""
    return {"eta_mae_days": float(result["abs_error_days"].mean()),
            "interval_coverage": float(result["covered"].mean()), "lines": int(len(result))}
