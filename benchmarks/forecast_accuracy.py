"""Forecast accuracy on real retail data: Shelfwise's default selection against seasonal naive and AutoETS.

Datasets (read-only, from ``../shared/data/``, except the generated world):

* **M5 sample**: 50 Walmart item x store series, daily units; the last 28 days are held out (the M5
  evaluation horizon), one origin. Dates, events and SNAP days come from ``calendar.csv``.
* **Walmart**: weekly sales per store x department (series complete over the 143 weeks), season length
  52; the last 39 weeks are held out by rolling origin, 3 origins of 13 weeks each. Holiday weeks
  (``IsHoliday``) are its events.
* **world_small** (``--datasets world``): the generated ``small`` world's uncensored demand per location x
  SKU, with its promotion calendar, list prices and retail events as known regressors; the last 28 days
  (Black Friday 2026 and the weeks before it) are held out.
* ``--input FILE``: any long-format history (``unique_id, ds, y``; CSV or Parquet) with ``--freq``,
  ``--horizon``, ``--season-length`` and ``--origins``. Extra numeric columns are known regressors and
  an ``event`` column names events; they must cover the held-out periods too.

``shelfwise_default`` forecasts as the nightly does: with the dataset's known regressors (a ``promo``
discount column drives the vectorised path's promotion lift) and the policy's challenger (prophet with
the regressors and events on its ``top_n`` most valuable sensitive series, taking a series only where
it wins the backtest before the origin). ``shelfwise_vectorised`` is the vectorised selection on
``y`` alone, for comparison.

Every model sees exactly the same training data per origin. Series start at their first positive sale
(as the M5 scaling does) and negative values (net returns) count as zero demand for every model.
Metrics per series and origin, averaged with equal weight:

* RMSSE: RMSE over the horizon divided by the in-sample RMSE of the one-step naive forecast (M5).
* MASE: MAE over the horizon divided by the in-sample MAE of the seasonal naive forecast.

Prints one table and, as the last line, one JSON object with every figure, the core count and the data
sizes. ``statsforecast`` is a benchmark-only dependency (``requirements-bench.txt``); without it the
AutoETS row is reported as skipped.
"""

from __future__ import annotations

import argparse
import dataclasses
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

try:
    from benchmarks._common import SHARED_DATA, cpu_count, emit_json, ensure_project_on_path, format_table
except ModuleNotFoundError:  # run as a script: benchmarks/ itself is on sys.path
    from _common import SHARED_DATA, cpu_count, emit_json, ensure_project_on_path, format_table

ensure_project_on_path()

from models.forecasting import Challenger, challenger_counts, forecast  # noqa: E402

FREQ_DAYS = {"D": 1, "W": 7}


# --------------------------------------------------------------------------------------------------
# Data
# --------------------------------------------------------------------------------------------------


def load_m5(data_dir: Path) -> pd.DataFrame:
    """M5 sample in long format, dated by ``calendar.csv``, with its events and SNAP days.

    Known columns: ``event`` (``event_name_1``) and ``snap`` (1 on the SNAP days of the series' state).
    """
    wide = pd.read_csv(data_dir / "m5_sample50" / "m5_sample50_d1_d1969.csv.gz")
    calendar = pd.read_csv(data_dir / "m5_sample50" / "calendar.csv",
                           usecols=["date", "d", "event_name_1", "snap_CA", "snap_TX", "snap_WI"])
    days = [c for c in wide.columns if c.startswith("d_")]
    long = wide.melt(id_vars=["id", "state_id"], value_vars=days, var_name="d", value_name="y")
    long = long.merge(calendar, on="d", how="left", validate="many_to_one")
    if long["date"].isna().any():
        raise ValueError("calendar.csv does not cover every day column of the M5 sample")
    snap = np.select([long["state_id"] == s for s in ("CA", "TX", "WI")],
                     [long[f"snap_{s}"] for s in ("CA", "TX", "WI")], 0)
    return pd.DataFrame({
        "unique_id": long["id"].astype(str), "ds": pd.to_datetime(long["date"]), "y": long["y"].astype(float),
        "snap": snap.astype(float), "event": long["event_name_1"].astype(object).where(long["event_name_1"].notna(), None),
    })


def m5_holdout_events(data_dir: Path, start: pd.Timestamp, end: pd.Timestamp) -> list[str]:
    """Named events (holidays, sporting, cultural) that fall inside the held-out window."""
    cal = pd.read_csv(data_dir / "m5_sample50" / "calendar.csv", parse_dates=["date"])
    window = cal[(cal["date"] >= start) & (cal["date"] <= end)]
    names = pd.concat([window["event_name_1"], window["event_name_2"]]).dropna()
    return sorted(set(names))


def load_walmart(data_dir: Path) -> pd.DataFrame:
    """Walmart store x department weekly sales, series complete over the whole period only."""
    raw = pd.read_csv(data_dir / "walmart_recruiting" / "train.csv.zip", parse_dates=["Date"])
    # The four holiday weeks (Super Bowl, Labor Day, Thanksgiving, Christmas) fall in different months.
    event = ("holiday_week_" + raw["Date"].dt.month_name().str.lower()).where(raw["IsHoliday"].astype(bool), None)
    frame = pd.DataFrame(
        {
            "unique_id": raw["Store"].astype(str) + "_" + raw["Dept"].astype(str),
            "ds": raw["Date"],
            "y": raw["Weekly_Sales"].astype(float),
            "event": event.astype(object),
        }
    )
    weeks = frame["ds"].nunique()
    counts = frame.groupby("unique_id")["ds"].transform("size")
    return frame[counts == weeks].reset_index(drop=True)


def load_world(preset: str) -> pd.DataFrame:
    """A generated world's uncensored daily demand with its promotion depth, price and retail events."""
    from include.demand.regressors import known_regressors
    from include.sample_data.generator import PRESETS, generate_world

    world = generate_world(PRESETS[preset])
    td = world.true_demand
    frame = pd.DataFrame({"unique_id": td["location_id"] + "|" + td["sku"], "location_id": td["location_id"],
                          "sku": td["sku"], "ds": pd.to_datetime(td["date"]), "y": td["demand"].astype(float)})
    keys = frame[["unique_id", "location_id", "sku"]].drop_duplicates("unique_id")
    known = known_regressors(keys, pd.DatetimeIndex(np.sort(frame["ds"].unique())), world.promotions, world.items)
    return frame[["unique_id", "ds", "y"]].merge(known, on=["unique_id", "ds"], how="left", validate="one_to_one")


def load_file(path: Path) -> pd.DataFrame:
    """Long-format history from CSV or Parquet: ``unique_id, ds, y``, numeric regressors, ``event``."""
    frame = pd.read_parquet(path) if path.suffix in {".parquet", ".pq"} else pd.read_csv(path)
    missing = {"unique_id", "ds", "y"} - set(frame.columns)
    if missing:
        raise SystemExit(f"{path} is missing column(s) {sorted(missing)}; expected unique_id, ds, y")
    out = frame.assign(unique_id=frame["unique_id"].astype(str), ds=pd.to_datetime(frame["ds"]),
                       y=frame["y"].astype(float))
    extra = [c for c in out.columns if c not in ("unique_id", "ds", "y", "event")
             and pd.api.types.is_numeric_dtype(out[c]) and not pd.api.types.is_bool_dtype(out[c])]
    keep = ["unique_id", "ds", "y", *extra] + (["event"] if "event" in out.columns else [])
    if "event" in out.columns:
        out["event"] = out["event"].astype(object).where(out["event"].notna(), None)
    return out[keep]


def known_columns(history: pd.DataFrame) -> list[str]:
    """Numeric known-regressor columns of a loaded history (``event`` aside)."""
    return [c for c in history.columns if c not in ("unique_id", "ds", "y", "event")]


def prepare(history: pd.DataFrame) -> pd.DataFrame:
    """Clip net returns to zero demand and start each series at its first positive value (regressors kept)."""
    frame = history.assign(y=history["y"].clip(lower=0.0)).sort_values(["unique_id", "ds"], kind="stable")
    started = frame.groupby("unique_id")["y"].transform(lambda s: (s > 0).cummax())
    return frame[started.astype(bool)].reset_index(drop=True)


# --------------------------------------------------------------------------------------------------
# Models: each maps (train, horizon, season_length, freq, future) to a frame unique_id, ds, y_hat.
# ``train`` and ``future`` carry the dataset's known regressor and event columns, if any.
# --------------------------------------------------------------------------------------------------


def _wide(train: pd.DataFrame) -> pd.DataFrame:
    """Training history as a ``series x period`` frame; gaps inside a series count as zero sales."""
    wide = train.pivot(index="unique_id", columns="ds", values="y")
    started = wide.notna().cumsum(axis=1) > 0
    return wide.fillna(0.0).where(started)


def _future(ids: pd.Index, origin: pd.Timestamp, horizon: int, freq: str) -> pd.DataFrame:
    steps = np.arange(1, horizon + 1)
    dates = origin + pd.to_timedelta(steps * FREQ_DAYS[freq], unit="D")
    return pd.DataFrame({"unique_id": np.repeat(ids.to_numpy(), horizon), "ds": np.tile(dates, len(ids))})


def seasonal_naive_model(train: pd.DataFrame, horizon: int, m: int, freq: str, future: pd.DataFrame) -> pd.DataFrame:
    """Textbook seasonal naive: repeat the last ``m`` periods (the last value when history is shorter)."""
    wide = _wide(train)
    values = wide.to_numpy()
    last = values[:, -m:] if values.shape[1] >= m else values[:, -1:]
    last = np.where(np.isfinite(last), last, 0.0)
    y_hat = last[:, np.arange(horizon) % last.shape[1]]
    out = _future(wide.index, wide.columns.max(), horizon, freq)
    return out.assign(y_hat=y_hat.ravel())


def shelfwise_vectorised_model(train: pd.DataFrame, horizon: int, m: int, freq: str,
                               future: pd.DataFrame) -> pd.DataFrame:
    """Shelfwise's vectorised selection on ``y`` alone, with the data's frequency."""
    result = forecast(train[["unique_id", "ds", "y"]], horizon, season_length=m, freq=freq)
    return result.forecasts[["unique_id", "ds"]].assign(y_hat=result.forecasts["mean"].to_numpy())


#: What the challenger did in the last run, per dataset (filled by ``shelfwise_default_model``).
CHALLENGER_STATS: dict[str, int] = {}
#: ``--challenger-top-n``: the policy's ``top_n`` replaced, to see what a larger budget would buy.
CHALLENGER_TOP_N: list[int] = []


def shelfwise_default_model(train: pd.DataFrame, horizon: int, m: int, freq: str,
                            future: pd.DataFrame) -> pd.DataFrame:
    """As the nightly forecasts a shard: the known regressors (promotion lift in the vectorised path)
    and the policy's prophet challenger on its ``top_n`` most valuable promotion- or event-sensitive series."""
    from include.governance.policy import load_policy

    regs = known_columns(train)
    challenger = Challenger.from_policy(load_policy().challenger)
    if challenger is not None and CHALLENGER_TOP_N:
        challenger = dataclasses.replace(challenger, top_n=CHALLENGER_TOP_N[0])
    result = forecast(train, horizon, season_length=m, freq=freq, regressors=regs, future=future,
                      challenger=challenger)
    if challenger is not None:
        for key, n in challenger_counts(result.series, challenger.model).items():
            CHALLENGER_STATS[key] = CHALLENGER_STATS.get(key, 0) + n
    return result.forecasts[["unique_id", "ds"]].assign(y_hat=result.forecasts["mean"].to_numpy())


def autoets_model(train: pd.DataFrame, horizon: int, m: int, freq: str, future: pd.DataFrame) -> pd.DataFrame:
    """statsforecast AutoETS with the same season length (statsforecast drops seasonality above 24)."""
    from statsforecast import StatsForecast
    from statsforecast.models import AutoETS

    pandas_freq = "D" if freq == "D" else f"W-{train['ds'].iloc[0].day_name()[:3].upper()}"
    dense = _wide(train[["unique_id", "ds", "y"]]).stack().rename("y").reset_index()
    sf = StatsForecast(models=[AutoETS(season_length=m)], freq=pandas_freq, n_jobs=-1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fc = sf.forecast(df=dense, h=horizon)
    fc = fc.reset_index() if "unique_id" not in fc.columns else fc
    return pd.DataFrame({"unique_id": fc["unique_id"].astype(str), "ds": fc["ds"], "y_hat": fc["AutoETS"].clip(lower=0)})


MODELS: dict[str, Callable[[pd.DataFrame, int, int, str, pd.DataFrame], pd.DataFrame]] = {
    "seasonal_naive": seasonal_naive_model,
    "statsforecast_autoets": autoets_model,
    "shelfwise_vectorised": shelfwise_vectorised_model,
    "shelfwise_default": shelfwise_default_model,
}


# --------------------------------------------------------------------------------------------------
# Scoring
# --------------------------------------------------------------------------------------------------


def _scales(train: pd.DataFrame, m: int) -> pd.DataFrame:
    """Per series: mean squared one-step naive difference (RMSSE) and seasonal naive MAE (MASE)."""
    wide = _wide(train).to_numpy()
    with np.errstate(invalid="ignore"):
        d1 = np.diff(wide, axis=1)
        dm = wide[:, m:] - wide[:, :-m] if wide.shape[1] > m else np.full((len(wide), 1), np.nan)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        rmsse_scale = np.nanmean(d1**2, axis=1)
        mase_scale = np.nanmean(np.abs(dm), axis=1)
    ids = np.sort(train["unique_id"].unique())
    return pd.DataFrame({"unique_id": ids, "rmsse_scale": rmsse_scale, "mase_scale": mase_scale})


def score(pred: pd.DataFrame, test: pd.DataFrame, scales: pd.DataFrame) -> pd.DataFrame:
    """Per-series RMSSE and MASE of ``pred`` on ``test`` (series with a zero scale are left out)."""
    joined = test.merge(pred, on=["unique_id", "ds"], how="left")
    if joined["y_hat"].isna().any():
        missing = int(joined["y_hat"].isna().sum())
        raise RuntimeError(f"{missing} test point(s) have no forecast")
    err = joined.assign(se=(joined["y"] - joined["y_hat"]) ** 2, ae=(joined["y"] - joined["y_hat"]).abs())
    per = err.groupby("unique_id").agg(mse=("se", "mean"), mae=("ae", "mean")).reset_index()
    per = per.merge(scales, on="unique_id")
    per["rmsse"] = np.sqrt(per["mse"] / per["rmsse_scale"].where(per["rmsse_scale"] > 0))
    per["mase"] = per["mae"] / per["mase_scale"].where(per["mase_scale"] > 0)
    return per[["unique_id", "rmsse", "mase"]]


def evaluate(
    history: pd.DataFrame, *, freq: str, horizon: int, season_length: int, origins: int, models: list[str]
) -> dict[str, dict[str, float]]:
    """Rolling-origin evaluation: ``origins`` windows of ``horizon`` periods ending at the last date."""
    history = prepare(history)
    dates = np.sort(history["ds"].unique())
    if len(dates) <= origins * horizon:
        raise SystemExit(f"history has {len(dates)} periods, not enough for {origins} x {horizon} held out")
    per_model: dict[str, list[pd.DataFrame]] = {name: [] for name in models}
    seconds: dict[str, float] = dict.fromkeys(models, 0.0)
    skipped: dict[str, str] = {}
    n_series = 0
    for k in range(origins, 0, -1):
        cutoff = pd.Timestamp(dates[len(dates) - k * horizon - 1])
        test_end = pd.Timestamp(dates[len(dates) - (k - 1) * horizon - 1])
        train = history[history["ds"] <= cutoff]
        test = history[(history["ds"] > cutoff) & (history["ds"] <= test_end)]
        # Only series with history before the origin and actuals in every held-out period are scored.
        trained = set(train["unique_id"])
        full = test.groupby("unique_id")["ds"].size()
        keep = sorted(set(full[full == horizon].index) & trained)
        train = train[train["unique_id"].isin(keep)]
        test = test[test["unique_id"].isin(keep)]
        n_series = max(n_series, len(keep))
        scales = _scales(train, season_length)
        future = test.drop(columns="y")
        for name in models:
            if name in skipped:
                continue
            started = time.perf_counter()
            try:
                pred = MODELS[name](train, horizon, season_length, freq, future)
            except ImportError as exc:
                skipped[name] = f"not installed ({exc.name}); pip install -r requirements-bench.txt"
                continue
            seconds[name] += time.perf_counter() - started
            per_model[name].append(score(pred, test, scales))
    out: dict[str, dict[str, float]] = {}
    for name in models:
        if name in skipped:
            out[name] = {"skipped": skipped[name]}
            continue

        scored = pd.concat(per_model[name])
        out[name] = {
            "rmsse": float(scored["rmsse"].mean()),
            "mase": float(scored["mase"].mean()),
            "seconds": round(seconds[name], 3),
            "series": n_series,
        }
        if name == "shelfwise_default":
            out[name].update({f"challenger_{k}": v for k, v in CHALLENGER_STATS.items()})
            CHALLENGER_STATS.clear()
    return out


# --------------------------------------------------------------------------------------------------
# Entry point
# --------------------------------------------------------------------------------------------------


def _rows(dataset: str, results: dict[str, dict[str, float]]) -> list[dict[str, object]]:
    base = results.get("seasonal_naive", {}).get("rmsse")
    rows = []
    for name, res in results.items():
        if "skipped" in res:
            rows.append({"dataset": dataset, "model": name, "rmsse": None, "mase": None, "note": res["skipped"]})
            continue
        gain = None if not base else f"{(1 - res['rmsse'] / base):+.1%}"
        rows.append(
            {
                "dataset": dataset,
                "model": name,
                "rmsse": res["rmsse"],
                "mase": res["mase"],
                "rmsse_vs_snaive": gain,
                "seconds": res["seconds"],
                "series": res["series"],
                "note": (f"challenger took {res['challenger_taken']} of {res['challenger_tried']} tried"
                         if "challenger_tried" in res else None),
            }
        )
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", type=Path, default=SHARED_DATA, help="folder with m5_sample50/ and walmart_recruiting/")
    parser.add_argument("--datasets", default="m5,walmart,world",
                        help="comma list of m5, walmart, world (ignored with --input)")
    parser.add_argument("--world", default="small", help="generator preset of the world dataset")
    parser.add_argument("--input", type=Path, help="long-format history file (unique_id, ds, y), CSV or Parquet")
    parser.add_argument("--freq", choices=sorted(FREQ_DAYS), default="D", help="frequency of --input")
    parser.add_argument("--horizon", type=int, default=28, help="periods held out per origin for --input")
    parser.add_argument("--season-length", type=int, help="season length for --input (default 7 daily, 52 weekly)")
    parser.add_argument("--origins", type=int, default=1, help="rolling origins for --input")
    parser.add_argument("--walmart-series", type=int, default=300,
                        help="evenly spaced sample of Walmart series scored by every model (AutoETS with a "
                             "52-week season costs ~0.2 s per series and origin); 0: all")
    parser.add_argument("--models", default=",".join(MODELS), help=f"comma list of {', '.join(MODELS)}")
    parser.add_argument("--challenger-top-n", type=int,
                        help="series the challenger may try per call (default: the policy's top_n)")
    args = parser.parse_args(argv)
    if args.challenger_top_n is not None:
        CHALLENGER_TOP_N[:] = [args.challenger_top_n]
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    unknown = sorted(set(models) - set(MODELS))
    if unknown:
        parser.error(f"unknown model(s) {unknown}; choose from {sorted(MODELS)}")

    jobs: list[tuple[str, pd.DataFrame, dict[str, Any]]] = []
    if args.input:
        m = args.season_length or (7 if args.freq == "D" else 52)
        jobs.append((args.input.name, load_file(args.input),
                     {"freq": args.freq, "horizon": args.horizon, "season_length": m, "origins": args.origins}))
    else:
        wanted = {d.strip() for d in args.datasets.split(",")}
        if "m5" in wanted:
            jobs.append(("m5_sample50", load_m5(args.data_dir),
                         {"freq": "D", "horizon": 28, "season_length": 7, "origins": 1}))
        if "walmart" in wanted:
            walmart = load_walmart(args.data_dir)
            spec = {"freq": "W", "horizon": 13, "season_length": 52, "origins": 3}
            ids = np.sort(walmart["unique_id"].unique())
            if 0 < args.walmart_series < len(ids):
                picked = ids[np.linspace(0, len(ids) - 1, args.walmart_series).round().astype(int)]
                jobs.append((f"walmart_sample{len(picked)}", walmart[walmart["unique_id"].isin(picked)], spec))
                # The cheap models also run on every complete series, so the sample can be checked.
                cheap = {**spec, "models": [m for m in models if m != "statsforecast_autoets"]}
                jobs.append((f"walmart_all{len(ids)}", walmart, cheap))
            else:
                jobs.append((f"walmart_all{len(ids)}", walmart, spec))
        if "world" in wanted:
            jobs.append((f"world_{args.world}", load_world(args.world),
                         {"freq": "D", "horizon": 28, "season_length": 7, "origins": 1}))

    rows: list[dict[str, object]] = []
    payload: dict[str, object] = {"benchmark": "forecast_accuracy", "cores": cpu_count(),
                                  "challenger_top_n": args.challenger_top_n, "datasets": {}}
    for name, history, spec in jobs:
        spec = {"models": models, **spec}
        results = evaluate(history, **spec)  # type: ignore[arg-type]
        rows += _rows(name, results)
        payload["datasets"][name] = {  # type: ignore[index]
            **spec,
            "rows": int(len(history)),
            "series": int(history["unique_id"].nunique()),
            "models": results,
        }
        if name == "m5_sample50":
            last = history["ds"].max()
            events = m5_holdout_events(args.data_dir, last - pd.Timedelta(days=27), last)
            payload["datasets"][name]["holdout_events"] = events  # type: ignore[index]
    print(format_table(rows, ["dataset", "model", "rmsse", "mase", "rmsse_vs_snaive", "seconds", "series", "note"]))
    emit_json(payload)


if __name__ == "__main__":
    main()
