"""Forecast throughput: series per second end to end, and peak memory, for generated daily series.

Paths compared in the same run, on the same generated data (2 years of daily history, horizon 28):

* ``shelfwise_default``: the vectorised :func:`models.forecasting.forecast` (long frame in,
  validation, packing, backtest selection over every candidate, quantiles, long frame out).
  Sizes above ``--shard-size`` run as consecutive shards, as the nightly's dynamic task mapping does;
  every shard is timed end to end, generation excluded.
* ``shelfwise_nightly``: what the nightly runs per shard: the same, plus the promotion regressor and
  the policy's prophet challenger (``forecasting.challenger`` in ``policy.yaml``: its ``top_n``
  most valuable promotion-sensitive series per shard, each backtested and refitted).
* ``statsforecast_autoets``: statsforecast ``AutoETS(season_length=7)`` with ``n_jobs=-1`` (all cores
  this process may use), timed on ``--peer-sample`` series and extrapolated linearly.
* ``statsmodels_ets_loop``: one statsmodels ``ExponentialSmoothing`` (additive weekly season) per series,
  on ``--loop-sample`` series, extrapolated.
* ``prophet_loop``: one prophet model per series (weekly seasonality), on ``--prophet-sample`` series,
  extrapolated.

Each path runs in its own child process, so its peak resident memory (``peak_rss_mb``, interpreter and
imports included) is its own. Extrapolated rows say so in the ``measured_on`` column. Prints a table
and, as the last line, one JSON object with every figure, the core count and the data sizes.
"""

from __future__ import annotations

import argparse
import json
import logging
import subprocess
import sys
import time
import warnings

import numpy as np
import pandas as pd

try:
    from benchmarks._common import (
        ROOT,
        cpu_count,
        emit_json,
        ensure_project_on_path,
        format_table,
        peak_rss_mb,
    )
except ModuleNotFoundError:  # run as a script: benchmarks/ itself is on sys.path
    from _common import ROOT, cpu_count, emit_json, ensure_project_on_path, format_table, peak_rss_mb

ensure_project_on_path()

HISTORY_DAYS = 730
HORIZON = 28
START = pd.Timestamp("2024-01-01")
PATHS = ("shelfwise_default", "shelfwise_nightly", "statsforecast_autoets", "statsmodels_ets_loop", "prophet_loop")
#: Share of series that run promotions, and the promoted share of their days.
PROMOTED_SERIES, PROMOTED_DAYS = 0.3, 0.08


def generate(n_series: int, *, offset: int = 0, seed: int = 7) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Daily retail-like history: 60% smooth weekly-seasonal series, 40% intermittent, a few trends;
    30% of series run week-long promotions (20-40% off) that lift demand.

    Series ``offset .. offset + n_series - 1``; the same ids always get the same values.

    Returns:
        ``history`` (``unique_id, ds, y, promo``) and ``future`` (``unique_id, ds, promo`` over the
        horizon: the published promotion calendar).
    """
    rng = np.random.default_rng([seed, offset])
    days = HISTORY_DAYS + HORIZON
    t = np.arange(days)
    weekly = np.array([0.8, 0.85, 0.9, 1.0, 1.2, 1.5, 0.75])
    level = rng.lognormal(1.2, 1.0, n_series)
    trend = 1.0 + rng.normal(0.0, 0.25, n_series)[:, None] * t[None, :] / HISTORY_DAYS
    yearly = 1.0 + 0.2 * np.sin(2 * np.pi * (t[None, :] + rng.integers(0, 365, n_series)[:, None]) / 365.25)
    rate = level[:, None] * trend.clip(0.2) * yearly * weekly[t % 7][None, :]
    intermittent = rng.random(n_series) < 0.4
    rate[intermittent] *= 0.15
    promoted = rng.random(n_series) < PROMOTED_SERIES
    weeks = rng.random((n_series, days // 7 + 1)) < PROMOTED_DAYS
    promo = np.where(promoted[:, None] & np.repeat(weeks, 7, axis=1)[:, :days],
                     rng.choice([0.2, 0.3, 0.4], size=(n_series, 1)), 0.0)
    rate *= (1.0 - promo) ** -2.0  # price elasticity of -2
    y = rng.poisson(rate).astype(np.float64)
    ids = np.array([f"sku{offset + i:07d}" for i in range(n_series)], dtype=object)

    def frame(cols: slice, with_y: bool) -> pd.DataFrame:
        n_days = cols.stop - cols.start
        out = {"unique_id": pd.array(np.repeat(ids, n_days), dtype="string"),
               "ds": np.tile(pd.date_range(START + pd.Timedelta(days=cols.start), periods=n_days, freq="D")
                             .to_numpy(), n_series)}
        if with_y:
            out["y"] = y[:, cols].ravel()
        out["promo"] = promo[:, cols].ravel()
        return pd.DataFrame(out)

    return frame(slice(0, HISTORY_DAYS), True), frame(slice(HISTORY_DAYS, days), False)


# --------------------------------------------------------------------------------------------------
# Paths: each forecasts ``history`` (long frame) and returns the number of series forecast
# --------------------------------------------------------------------------------------------------


def run_shelfwise(history: pd.DataFrame, future: pd.DataFrame) -> int:
    from models.forecasting import forecast

    result = forecast(history[["unique_id", "ds", "y"]], HORIZON)
    return int(len(result.series))


#: What the challenger did over all shards of a ``shelfwise_nightly`` run.
CHALLENGED = {"tried": 0, "taken": 0}


def run_nightly(history: pd.DataFrame, future: pd.DataFrame) -> int:
    from include.governance.policy import load_policy
    from models.forecasting import Challenger, challenger_counts, forecast

    challenger = Challenger.from_policy(load_policy().challenger)
    result = forecast(history, HORIZON, regressors=["promo"], future=future, challenger=challenger)
    if challenger is not None:
        for key, n in challenger_counts(result.series, challenger.model).items():
            CHALLENGED[key] += n
    return int(len(result.series))


def run_autoets(history: pd.DataFrame, future: pd.DataFrame) -> int:
    from statsforecast import StatsForecast
    from statsforecast.models import AutoETS

    sf = StatsForecast(models=[AutoETS(season_length=7)], freq="D", n_jobs=-1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fc = sf.forecast(df=history[["unique_id", "ds", "y"]].assign(unique_id=history["unique_id"].astype(str)),
                         h=HORIZON)
    return int(fc["unique_id"].nunique() if "unique_id" in fc.columns else fc.index.nunique())


def run_statsmodels(history: pd.DataFrame, future: pd.DataFrame) -> int:
    from statsmodels.tsa.holtwinters import ExponentialSmoothing

    done = 0
    for _, group in history.groupby("unique_id", sort=False):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fit = ExponentialSmoothing(
                group["y"].to_numpy(), trend=None, seasonal="add", seasonal_periods=7, initialization_method="estimated"
            ).fit()
        fit.forecast(HORIZON)
        done += 1
    return done


def run_prophet(history: pd.DataFrame, future: pd.DataFrame) -> int:
    logging.getLogger("prophet.plot").setLevel(logging.CRITICAL)
    from prophet import Prophet

    for name in ("prophet", "cmdstanpy"):
        logging.getLogger(name).addFilter(lambda record: record.levelno >= logging.WARNING)
    done = 0
    for _, group in history.groupby("unique_id", sort=False):
        model = Prophet(weekly_seasonality=True, yearly_seasonality=True, daily_seasonality=False, uncertainty_samples=0)
        model.fit(group[["ds", "y"]])
        model.predict(model.make_future_dataframe(periods=HORIZON, include_history=False))
        done += 1
    return done


RUNNERS = {
    "shelfwise_default": run_shelfwise,
    "shelfwise_nightly": run_nightly,
    "statsforecast_autoets": run_autoets,
    "statsmodels_ets_loop": run_statsmodels,
    "prophet_loop": run_prophet,
}


def worker(path: str, n_series: int, measured: int, shard_size: int) -> dict[str, object]:
    """Run one path on ``measured`` series (in shards) and report its timing; runs in a child process."""
    if path == "statsforecast_autoets":
        # Compile statsforecast's numba kernels outside the timed region, as a long-lived worker would.
        run_autoets(*generate(4, offset=10**7))
    seconds = 0.0
    done = 0
    for offset in range(0, measured, shard_size):
        history, future = generate(min(shard_size, measured - offset), offset=offset)
        started = time.perf_counter()
        done += RUNNERS[path](history, future)
        seconds += time.perf_counter() - started
        del history, future
    rate = done / seconds if seconds > 0 else float("nan")
    return {
        "path": path,
        "series": n_series,
        "measured_series": done,
        "measured_on": "all" if done == n_series else f"sample of {done}, extrapolated",
        "seconds": seconds if done == n_series else n_series / rate,
        "series_per_second": rate,
        "peak_rss_mb": round(peak_rss_mb(), 1),
        **({"challenger_tried": CHALLENGED["tried"], "challenger_taken": CHALLENGED["taken"]}
           if path == "shelfwise_nightly" else {}),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="10000,100000", help="comma list of series counts (quick run: 2000)")
    parser.add_argument("--paths", default=",".join(PATHS), help=f"comma list of {', '.join(PATHS)}")
    parser.add_argument("--shard-size", type=int, default=5_000,
                        help="series per shelfwise shard (the nightly's shard_size default)")
    parser.add_argument("--peer-sample", type=int, default=2_000, help="series AutoETS is timed on")
    parser.add_argument("--loop-sample", type=int, default=100, help="series the statsmodels loop is timed on")
    parser.add_argument("--prophet-sample", type=int, default=10, help="series the prophet loop is timed on")
    parser.add_argument("--worker", nargs=2, metavar=("PATH", "SIZE"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.worker:
        path, size = args.worker[0], int(args.worker[1])
        sample = {
            "shelfwise_default": size,
            "shelfwise_nightly": size,
            "statsforecast_autoets": args.peer_sample,
            "statsmodels_ets_loop": args.loop_sample,
            "prophet_loop": args.prophet_sample,
        }[path]
        print(json.dumps(worker(path, size, min(size, sample), args.shard_size)))
        return

    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    paths = [p.strip() for p in args.paths.split(",") if p.strip()]
    unknown = sorted(set(paths) - set(PATHS))
    if unknown:
        parser.error(f"unknown path(s) {unknown}; choose from {list(PATHS)}")
    rows: list[dict[str, object]] = []
    for size in sizes:
        for path in paths:
            cmd = [sys.executable, str(ROOT / "benchmarks" / "forecast_throughput.py"), "--worker", path, str(size),
                   "--shard-size", str(args.shard_size), "--peer-sample", str(args.peer_sample),
                   "--loop-sample", str(args.loop_sample), "--prophet-sample", str(args.prophet_sample)]
            proc = subprocess.run(cmd, capture_output=True, text=True, check=False, cwd=ROOT)
            if proc.returncode != 0:
                last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
                rows.append({"path": path, "series": size, "measured_on": f"failed: {last}"})
                continue
            rows.append(json.loads(proc.stdout.strip().splitlines()[-1]))
            print(f"{path} x {size}: {rows[-1]['series_per_second']:.1f} series/s", file=sys.stderr, flush=True)
    print(format_table(rows, ["path", "series", "seconds", "series_per_second", "peak_rss_mb", "measured_on",
                              "challenger_tried", "challenger_taken"]))
    emit_json(
        {
            "benchmark": "forecast_throughput",
            "cores": cpu_count(),
            "history_days": HISTORY_DAYS,
            "horizon": HORIZON,
            "shard_size": args.shard_size,
            "promoted_series_share": PROMOTED_SERIES,
            "results": rows,
        }
    )


if __name__ == "__main__":
    main()
