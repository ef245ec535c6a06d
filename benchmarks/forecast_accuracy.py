"""Forecast accuracy on real retail data: Shelfwise's default selection against named peers.

Datasets (:mod:`benchmarks.accuracy_data`; real ones read-only from ``../shared/data/``):

* **M5 sample** (daily, 50 series, last 28 days held out) with SNAP days and calendar events.
* **Walmart** (weekly store x department, 3 rolling origins of 13 weeks) with markdowns and holidays
  (``--walmart-regressors`` picks among them). The markdowns start in November 2011, so the first
  origin's training sees them only in holiday weeks: a model that learns from them can mistake the
  holiday lift for a markdown effect.
* **world** (``--datasets world``): the generated ``small`` world with promotion depth, price and events.
* ``--input FILE``: an analyst history file (``item, location, date, units`` and the regressors named in
  ``--regressors``; see :mod:`include.demand.history_file`) with ``--freq``, ``--fill-missing``,
  ``--horizon``, ``--season-length`` and ``--origins``.

Models, each given the same training data per origin:

* ``naive`` (last value) and ``seasonal_naive`` (last season repeated).
* ``statsforecast_autoets``, ``statsforecast_croston_sba`` and ``statsforecast_tsb`` (alpha_d = alpha_p =
  0.1), from statsforecast, a benchmark-only dependency (``requirements-bench.txt``); without it they
  are reported as skipped.
* ``ols_loglog``: per series, statsmodels OLS of ``log1p(y)`` on the dataset's regressors (the log of
  a strictly positive one such as a price, the others as they are), event dummies, a trend and season
  dummies (day of week for daily data; week of year for weekly data with two years of history, else
  three yearly Fourier pairs); the forecast is ``expm1`` of the prediction, clipped at 0.
* ``shelfwise_default``: the production ``models.forecasting.forecast`` as the nightly calls it, with the
  regressors, events and the policy's challenger (prophet on its ``top_n`` most valuable sensitive series).
* ``shelfwise_vectorised``: the same call without the challenger: the vectorised selection with the
  same regressors and events.

Series start at their first positive sale (as the M5 scaling does); negative values (net returns) count
as zero demand. Peers that need a complete series read a missing period (NaN) as zero sales; Shelfwise
leaves it out of fitting. A series is scored at an origin when every held-out period has an actual.
Metrics per series and origin, averaged with equal weight: RMSSE (RMSE over the horizon / in-sample RMSE
of the one-step naive forecast, as M5) and MASE (MAE / in-sample MAE of the seasonal naive forecast).

``--output OUT`` (CSV, or Parquet by suffix) writes every model's forecasts as ``item, location, date,
model, forecast`` (plus ``dataset`` when several datasets run) so they can be scored independently.
Prints one table and, as the last line, one JSON object: per dataset the models' figures and a
``targets`` block (M5: shelfwise_default at least 10% below seasonal naive and below AutoETS,
CrostonSBA and naive; Walmart and the others: below every peer).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

try:
    from benchmarks import accuracy_data
    from benchmarks._common import SHARED_DATA, cpu_count, emit_json, ensure_project_on_path, format_table
except ModuleNotFoundError:  # run as a script: benchmarks/ itself is on sys.path
    import accuracy_data
    from _common import SHARED_DATA, cpu_count, emit_json, ensure_project_on_path, format_table

ensure_project_on_path()

from include.demand.history_file import HistoryFileError, add_history_arguments, history_from_args  # noqa: E402
from models.forecasting import Challenger, challenger_counts, forecast  # noqa: E402

FREQ_DAYS = {"D": 1, "W": 7}
SHELFWISE = ("shelfwise_default", "shelfwise_vectorised")



@dataclasses.dataclass
class Task:
    """One origin of one dataset: what every model gets."""

    train: pd.DataFrame  # unique_id, ds, y, regressors, event (when the dataset has events)
    future: pd.DataFrame  # unique_id, ds, regressors, event over the horizon
    horizon: int
    season_length: int
    freq: str
    regressors: tuple[str, ...]


# --------------------------------------------------------------------------------------------------
# Models: each maps a Task to a frame unique_id, ds, y_hat.
# --------------------------------------------------------------------------------------------------


def _future(ids: pd.Index, origin: pd.Timestamp, horizon: int, freq: str) -> pd.DataFrame:
    dates = origin + pd.to_timedelta(np.arange(1, horizon + 1) * FREQ_DAYS[freq], unit="D")
    return pd.DataFrame({"unique_id": np.repeat(ids.to_numpy(), horizon), "ds": np.tile(dates, len(ids))})


def _repeat_last(task: Task, width: int) -> pd.DataFrame:
    wide = accuracy_data.dense(task.train)
    values = wide.to_numpy()
    last = values[:, -width:] if values.shape[1] >= width else values[:, -1:]
    last = np.where(np.isfinite(last), last, 0.0)
    y_hat = last[:, np.arange(task.horizon) % last.shape[1]]
    return _future(wide.index, wide.columns.max(), task.horizon, task.freq).assign(y_hat=y_hat.ravel())


def naive_model(task: Task) -> pd.DataFrame:
    """Random walk: the last observed period, repeated over the horizon."""
    return _repeat_last(task, 1)


def seasonal_naive_model(task: Task) -> pd.DataFrame:
    """Textbook seasonal naive: repeat the last season (the last value when history is shorter)."""
    return _repeat_last(task, task.season_length)


def _statsforecast(task: Task, model, column: str) -> pd.DataFrame:
    from statsforecast import StatsForecast

    pandas_freq = "D" if task.freq == "D" else f"W-{task.train['ds'].iloc[0].day_name()[:3].upper()}"
    long = accuracy_data.dense(task.train).stack().rename("y").reset_index()
    sf = StatsForecast(models=[model], freq=pandas_freq, n_jobs=-1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fc = sf.forecast(df=long, h=task.horizon)
    fc = fc.reset_index() if "unique_id" not in fc.columns else fc
    return pd.DataFrame({"unique_id": fc["unique_id"].astype(str), "ds": fc["ds"], "y_hat": fc[column].clip(lower=0)})


def autoets_model(task: Task) -> pd.DataFrame:
    """statsforecast AutoETS with the same season length (statsforecast drops seasonality above 24)."""
    from statsforecast.models import AutoETS

    return _statsforecast(task, AutoETS(season_length=task.season_length), "AutoETS")


def croston_sba_model(task: Task) -> pd.DataFrame:
    """statsforecast CrostonSBA (Syntetos-Boylan approximation), the intermittent-demand standard."""
    from statsforecast.models import CrostonSBA

    return _statsforecast(task, CrostonSBA(), "CrostonSBA")


def tsb_model(task: Task) -> pd.DataFrame:
    """statsforecast TSB (Teunter-Syntetos-Babai) with alpha_d = alpha_p = 0.1."""
    from statsforecast.models import TSB

    return _statsforecast(task, TSB(alpha_d=0.1, alpha_p=0.1), "TSB")


def _design(frame: pd.DataFrame, task: Task, events: list[str], logged: list[str], t0: pd.Timestamp,
            season: str) -> np.ndarray:
    """OLS drivers of the rows of ``frame``: regressors, event dummies, trend, season terms, intercept."""
    cols = [np.ones(len(frame)), ((frame["ds"] - t0).dt.days / 365.25).to_numpy()]
    cols += [np.log(frame[r].clip(lower=1e-6)).to_numpy() if r in logged else frame[r].to_numpy(float)
             for r in task.regressors]
    if "event" in frame.columns:
        cols += [(frame["event"] == e).to_numpy(float) for e in events]
    if task.freq == "D":
        cols += [(frame["ds"].dt.day_of_week == d).to_numpy(float) for d in range(1, 7)]
    if season == "weeks":
        week = ((frame["ds"].dt.day_of_year - 1) // 7).clip(upper=51).to_numpy()
        cols += [(week == w).astype(float) for w in range(1, 52)]
    elif season == "fourier":
        angle = 2 * np.pi * frame["ds"].dt.day_of_year.to_numpy() / 365.25
        cols += [f(k * angle) for k in (1, 2, 3) for f in (np.sin, np.cos)]
    return np.column_stack(cols)


def ols_loglog_model(task: Task) -> pd.DataFrame:
    """Per series: statsmodels OLS of log1p(y) on the drivers; forecast expm1 of the prediction, >= 0."""
    import statsmodels.api as sm

    train = task.train.assign(y=task.train["y"].clip(lower=0.0))
    logged = [r for r in task.regressors if (train[r] > 0).all() and train[r].nunique() > 2]
    out = []
    futures = dict(tuple(task.future.groupby("unique_id", sort=False)))
    for uid, part in train.groupby("unique_id", sort=False):
        part = part[part["y"].notna()]
        fut = futures[uid].sort_values("ds")
        events = []
        if "event" in part.columns:
            seen = set(part["event"].dropna())
            events = sorted(e for e in set(fut["event"].dropna()) if e in seen)
        season = "weeks" if task.freq == "W" and len(part) >= 2 * task.season_length else \
            "fourier" if task.freq == "W" or len(part) >= 365 else "none"
        t0 = part["ds"].min()
        x = _design(part, task, events, logged, t0, season)
        with warnings.catch_warnings():  # collinear dummies (an event always on a weekend) are expected
            warnings.simplefilter("ignore")
            fit = sm.OLS(np.log1p(part["y"].to_numpy()), x).fit()
        pred = np.expm1(fit.predict(_design(fut, task, events, logged, t0, season)))
        y_max = part["y"].max()
        out.append(pd.DataFrame({"unique_id": uid, "ds": fut["ds"].to_numpy(),
                                 "y_hat": np.clip(np.nan_to_num(pred, nan=0.0), 0.0, 10 * y_max + 1)}))
    return pd.concat(out, ignore_index=True)


def _shelfwise(task: Task, challenger) -> pd.DataFrame:
    cols = ["unique_id", "ds", "y", *task.regressors] + (["event"] if "event" in task.train.columns else [])
    result = forecast(task.train[cols], task.horizon, season_length=task.season_length, freq=task.freq,
                      regressors=list(task.regressors), future=task.future, challenger=challenger)
    if challenger is not None:
        for key, n in challenger_counts(result.series, challenger.model).items():
            CHALLENGER_STATS[key] = CHALLENGER_STATS.get(key, 0) + n
    return result.forecasts[["unique_id", "ds"]].assign(y_hat=result.forecasts["mean"].to_numpy())


#: What the challenger did in the last run of a dataset (filled by ``shelfwise_default_model``).
CHALLENGER_STATS: dict[str, int] = {}
#: ``--challenger-top-n``: the policy's ``top_n`` replaced, to see what a larger budget would buy.
CHALLENGER_TOP_N: list[int] = []


def shelfwise_vectorised_model(task: Task) -> pd.DataFrame:
    """The production forecast without the challenger: vectorised selection with regressors and events."""
    return _shelfwise(task, None)


def shelfwise_default_model(task: Task) -> pd.DataFrame:
    """As the nightly forecasts a shard: regressors, events and the policy's prophet challenger."""
    from include.governance.policy import load_policy

    challenger = Challenger.from_policy(load_policy().challenger)
    if challenger is not None and CHALLENGER_TOP_N:
        challenger = dataclasses.replace(challenger, top_n=CHALLENGER_TOP_N[0])
    return _shelfwise(task, challenger)


MODELS: dict[str, Callable[[Task], pd.DataFrame]] = {
    "naive": naive_model,
    "seasonal_naive": seasonal_naive_model,
    "statsforecast_autoets": autoets_model,
    "statsforecast_croston_sba": croston_sba_model,
    "statsforecast_tsb": tsb_model,
    "ols_loglog": ols_loglog_model,
    "shelfwise_vectorised": shelfwise_vectorised_model,
    "shelfwise_default": shelfwise_default_model,
}


# --------------------------------------------------------------------------------------------------
# Evaluation
# --------------------------------------------------------------------------------------------------


def evaluate(data: accuracy_data.Dataset, models: list[str]) -> tuple[dict[str, dict], pd.DataFrame]:
    """Rolling-origin evaluation of ``models`` on ``data``; the figures and every forecast made."""
    history = accuracy_data.prepare(data.frame)
    per_model: dict[str, list[pd.DataFrame]] = {name: [] for name in models}
    seconds = dict.fromkeys(models, 0.0)
    skipped: dict[str, str] = {}
    forecasts, n_series = [], 0
    for train, test in accuracy_data.origins(data, history):
        n_series = max(n_series, test["unique_id"].nunique())
        cols = ["unique_id", "ds", *data.regressors] + (["event"] if "event" in test.columns else [])
        task = Task(train.drop(columns=["item", "location"]), test[cols].reset_index(drop=True), data.horizon,
                    data.season_length, data.freq, data.regressors)
        scale = accuracy_data.scales(task.train, data.season_length)
        for name in models:
            if name in skipped:
                continue
            started = time.perf_counter()
            try:
                pred = MODELS[name](task)
            except ImportError as exc:
                skipped[name] = f"not installed ({exc.name}); pip install -r requirements-bench.txt"
                continue
            seconds[name] += time.perf_counter() - started
            pred = pred.assign(ds=pd.to_datetime(pred["ds"]).astype("datetime64[ns]"))
            per_model[name].append(accuracy_data.score(pred, test, scale))
            forecasts.append(pred.assign(model=name))
    out: dict[str, dict] = {}
    for name in models:
        if name in skipped:
            out[name] = {"skipped": skipped[name]}
            continue
        scored = pd.concat(per_model[name])
        out[name] = {"rmsse": float(scored["rmsse"].mean()), "mase": float(scored["mase"].mean()),
                     "seconds": round(seconds[name], 3), "series": n_series}
        if name == "shelfwise_default":
            out[name].update({f"challenger_{k}": v for k, v in CHALLENGER_STATS.items()})
            CHALLENGER_STATS.clear()
    return out, _labelled(forecasts, data.frame)


def _labelled(forecasts: list[pd.DataFrame], frame: pd.DataFrame) -> pd.DataFrame:
    """Forecasts as ``item, location, date, model, forecast``."""
    if not forecasts:
        return pd.DataFrame(columns=["item", "location", "date", "model", "forecast"])
    keys = frame[["unique_id", "item", "location"]].drop_duplicates("unique_id")
    fc = pd.concat(forecasts, ignore_index=True).merge(keys, on="unique_id", how="left")
    return pd.DataFrame({"item": fc["item"], "location": fc["location"], "date": fc["ds"].dt.date,
                         "model": fc["model"], "forecast": fc["y_hat"].astype(float)})


def targets(dataset: str, results: dict[str, dict]) -> dict[str, bool | None]:
    """Whether shelfwise_default meets its accuracy targets on ``dataset`` (None: a figure is missing).

    M5: at least 10% below seasonal naive and below AutoETS, CrostonSBA and naive. Every other dataset:
    below every peer run on it (Shelfwise's own vectorised path is not a peer).
    """
    def rmsse(name: str) -> float | None:
        return results.get(name, {}).get("rmsse")

    own = rmsse("shelfwise_default")
    checks: dict[str, bool | None] = {}
    if dataset.startswith("m5"):
        base = rmsse("seasonal_naive")
        checks["seasonal_naive_minus_10pct"] = None if own is None or base is None else own <= 0.9 * base
        peers = ["statsforecast_autoets", "statsforecast_croston_sba", "naive"]
    else:
        peers = [name for name in MODELS if name not in SHELFWISE and name in results]
    for peer in peers:
        other = rmsse(peer)
        checks[f"below_{peer}"] = None if own is None or other is None else own < other
    checks["met"] = None if any(v is None for v in checks.values()) else all(checks.values())
    return checks


# --------------------------------------------------------------------------------------------------
# Entry point
# --------------------------------------------------------------------------------------------------


def _rows(dataset: str, results: dict[str, dict]) -> list[dict[str, object]]:
    base = results.get("seasonal_naive", {}).get("rmsse")
    rows = []
    for name, res in results.items():
        if "skipped" in res:
            rows.append({"dataset": dataset, "model": name, "note": res["skipped"]})
            continue
        rows.append({"dataset": dataset, "model": name, "rmsse": res["rmsse"], "mase": res["mase"],
                     "rmsse_vs_snaive": None if not base else f"{(1 - res['rmsse'] / base):+.1%}",
                     "seconds": res["seconds"], "series": res["series"],
                     "note": (f"challenger took {res['challenger_taken']} of {res['challenger_tried']} tried"
                              if "challenger_tried" in res else None)})
    return rows


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="benchmarks/forecast_accuracy.py", description=__doc__.split("\n\n")[0])
    add_history_arguments(parser)
    for action in parser._actions:  # --input is one choice here; without it the built-in datasets run
        if action.dest == "input":
            action.required = False
    parser.add_argument("--season-length", type=int, help="season length for --input (default 7 daily, 52 weekly)")
    parser.add_argument("--origins", type=int, default=1, help="rolling origins for --input")
    parser.add_argument("--output", type=Path, help="write every forecast here (CSV, or Parquet by suffix)")
    parser.add_argument("--data-dir", type=Path, default=SHARED_DATA, help="folder with m5_sample50/ and walmart_recruiting/")
    parser.add_argument("--datasets", default="m5,walmart,world", help="comma list of m5, walmart, world (not with --input)")
    parser.add_argument("--world", default="small", help="generator preset of the world dataset")
    parser.add_argument("--walmart-series", type=int, default=300,
                        help="evenly spaced sample of Walmart series scored by every model (AutoETS with a 52-week "
                             "season costs ~0.2 s per series and origin); the other models also run on all; 0: all")
    parser.add_argument("--walmart-regressors", default=",".join(accuracy_data.WALMART_REGRESSORS),
                        help="Walmart regressors (markdown1..5, holiday) given to the models that take them")
    parser.add_argument("--models", default=",".join(MODELS), help=f"comma list of {', '.join(MODELS)}")
    parser.add_argument("--challenger-top-n", type=int, help="series the challenger may try per call (default: policy)")
    return parser


def _datasets(args: argparse.Namespace) -> list[accuracy_data.Dataset]:
    if args.input:
        history = history_from_args(args)
        return [accuracy_data.from_history_file(history, horizon=args.horizon or history.horizon,
                                        season_length=args.season_length, origins=args.origins)]
    wanted = {d.strip() for d in args.datasets.split(",")}
    jobs = []
    if "m5" in wanted:
        jobs.append(accuracy_data.load_m5(args.data_dir))
    if "walmart" in wanted:
        regressors = [r.strip() for r in args.walmart_regressors.split(",") if r.strip()]
        walmart = accuracy_data.load_walmart(args.data_dir, regressors)
        sample = accuracy_data.sample_series(walmart, args.walmart_series, "walmart_sample")
        if sample is not walmart:
            jobs.append(sample)
            # The cheaper models also run on every complete series, so the sample can be checked.
            walmart.models = [m for m in MODELS if m != "statsforecast_autoets"]
        jobs.append(walmart)
    if "world" in wanted:
        jobs.append(accuracy_data.load_world(args.world))
    return jobs


def _write(path: Path, frames: list[pd.DataFrame]) -> None:
    out = pd.concat(frames, ignore_index=True)
    out = out.drop(columns="dataset") if out["dataset"].nunique() == 1 else out[["dataset", *out.columns[:-1]]]
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix.lower() in {".parquet", ".pq"}:
        out.to_parquet(path, index=False)
    else:
        out.to_csv(path, index=False)


def _left_out(data: accuracy_data.Dataset, results: dict[str, dict]) -> str:
    """Why fewer series were scored than the dataset holds ("" when every series was)."""
    scored = max((r.get("series", 0) for r in results.values()), default=0)
    total = int(data.frame["unique_id"].nunique())
    if not scored or scored >= total:
        return ""
    return (f"{data.name}: {scored} of {total} series scored; the other {total - scored} lack a period of a held-out "
            "window or any history before it (a missing period is unknown, not zero sales: --fill-missing zero "
            "reads it as none sold)")


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; returns the exit code (2 on a bad input file or argument)."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.challenger_top_n is not None:
        CHALLENGER_TOP_N[:] = [args.challenger_top_n]
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    unknown = sorted(set(models) - set(MODELS))
    if unknown:
        parser.error(f"unknown model(s) {unknown}; choose from {sorted(MODELS)}")
    rows: list[dict[str, object]] = []
    written: list[pd.DataFrame] = []
    left_out: list[str] = []
    payload: dict[str, object] = {"benchmark": "forecast_accuracy", "cores": cpu_count(),
                                  "challenger_top_n": args.challenger_top_n, "datasets": {}}
    try:
        jobs = _datasets(args)
        for data in jobs:
            wanted = [m for m in models if data.models is None or m in data.models]
            results, forecasts = evaluate(data, wanted)
            rows += _rows(data.name, results)
            left_out.append(_left_out(data, results))
            written.append(forecasts.assign(dataset=data.name))
            payload["datasets"][data.name] = {  # type: ignore[index]
                "freq": data.freq, "horizon": data.horizon, "season_length": data.season_length,
                "origins": data.origins, "regressors": list(data.regressors), "rows": int(len(data.frame)),
                "series": int(data.frame["unique_id"].nunique()), "models": results,
                "targets": targets(data.name, results), **data.extra}
    except (HistoryFileError, accuracy_data.DatasetError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.output:
        _write(args.output, written)
    print(format_table(rows, ["dataset", "model", "rmsse", "mase", "rmsse_vs_snaive", "seconds", "series", "note"]))
    if any(left_out):
        print("".join(f"\n{line}" for line in left_out if line))
    emit_json(payload)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
