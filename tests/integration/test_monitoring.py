"""Forecast monitoring against the real PostgreSQL: earlier forecasts scored, drift raised and stored."""

from __future__ import annotations

import datetime as dt
import uuid

import pandas as pd
import pytest

from include.erp import db
from include.runs import Run
from include.stages import nightly
from include.stages.summaries import read_stage_summaries
from include.storage import read_partition, write_partition
from models.forecasting import forecast
from tests.worlds import tiny_world

pytestmark = pytest.mark.integration
DS = dt.date(2026, 9, 30)


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> str:
    root = tiny_world(str(tmp_path_factory.mktemp("monitoring") / "shelfwise"), DS, history_through=DS)
    nightly.build_demand(_run("build_demand", params={"history_days": 120}), root=root)
    demand = read_partition("curated", "demand", DS, root)
    for weeks_back in (4, 3, 2, 1):
        origin = DS - dt.timedelta(days=7 * weeks_back)
        history = demand[demand["ds"] <= pd.Timestamp(origin)][["unique_id", "ds", "y", "censored"]]
        result = forecast(history, 28)
        write_partition(result.forecasts, "forecasts", "demand", origin, root)
        write_partition(result.series, "forecasts", "series", origin, root)
    return root


def _run(task_id: str, dag_id: str = "retail_nightly", ds: dt.date = DS, **kwargs) -> Run:
    return Run(dag_id=dag_id, run_id=f"test__{ds}", ds=ds.isoformat(), task_id=task_id, **kwargs)


def monitor_forecasts(ds: str, *, dag_id: str, conn_factory, root: str) -> dict:
    return nightly.monitor_forecasts(_run("monitor_forecasts", dag_id, dt.date.fromisoformat(ds)),
                                     conn_factory=conn_factory, root=root)


def forecast_shard(ds: str, shard: int, n_shards: int, *, root: str, dag_id: str = "retail_nightly") -> dict:
    return nightly.forecast_demand(_run("forecast_demand", dag_id, dt.date.fromisoformat(ds)), shard, n_shards,
                                   root=root)


def _scores(dag_id: str) -> list[tuple]:
    with db.connect() as conn:
        return conn.execute("SELECT segment, drift, reason FROM ops.forecast_scores WHERE dag_id=%s AND ds=%s"
                            " ORDER BY segment", (dag_id, DS)).fetchall()


def test_scores_are_stored_per_demand_class_without_drift_on_steady_forecasts(root):
    dag_id = f"monitor_{uuid.uuid4().hex[:8]}"
    summary = monitor_forecasts(DS.isoformat(), dag_id=dag_id, conn_factory=db.connect, root=root)
    assert summary["scored"] is True and summary["origin"] == (DS - dt.timedelta(days=7)).isoformat()
    rows = _scores(dag_id)
    assert {r[0] for r in rows} == set(summary["mase"]) and len(rows) == summary["segments"] > 0
    assert all(v is None or 0 < v < 5 for v in summary["mase"].values())
    # Re-running the date replaces its scores.
    monitor_forecasts(DS.isoformat(), dag_id=dag_id, conn_factory=db.connect, root=root)
    assert len(_scores(dag_id)) == len(rows)


def test_a_segment_whose_forecast_went_wrong_raises_a_drift_alert(root, tmp_path):
    origin = DS - dt.timedelta(days=7)
    good = read_partition("forecasts", "demand", origin, root)
    try:
        write_partition(good.assign(mean=good["mean"] * 4 + 2), "forecasts", "demand", origin, root)
        dag_id = f"monitor_{uuid.uuid4().hex[:8]}"
        summary = monitor_forecasts(DS.isoformat(), dag_id=dag_id, conn_factory=db.connect, root=root)
    finally:
        write_partition(good, "forecasts", "demand", origin, root)
    assert summary["alerts"], summary
    assert any("baseline" in a or "bias" in a for a in summary["alerts"])
    assert any(r[1] for r in _scores(dag_id))


def test_first_night_has_nothing_to_score(root):
    summary = monitor_forecasts((DS - dt.timedelta(days=40)).isoformat(), dag_id="monitor_first",
                                conn_factory=None, root=root)
    assert summary == {"scored": False, "alerts": [],
                       "reason": f"no forecast made on {DS - dt.timedelta(days=47)} to score yet"}


def test_a_drifting_demand_class_is_forecast_by_the_fallback_rule(root):
    origin = DS - dt.timedelta(days=7)
    good = read_partition("forecasts", "demand", origin, root)
    try:
        write_partition(good.assign(mean=good["mean"] * 4 + 2), "forecasts", "demand", origin, root)
        dag_id = f"monitor_{uuid.uuid4().hex[:8]}"
        summary = monitor_forecasts(DS.isoformat(), dag_id=dag_id, conn_factory=None, root=root)
    finally:
        write_partition(good, "forecasts", "demand", origin, root)
    drifting = summary["fallback_segments"]
    assert drifting
    # The forecast of the same run reads the monitoring summary filed under its task id.
    forecast_shard(DS.isoformat(), 0, 1, root=root, dag_id=dag_id)
    series = read_partition("forecasts", "series", DS, root)
    hit = series[series["demand_class"].isin(list(drifting))]
    assert len(hit) and (hit["model"] == "fallback_moving_average").all()
    assert hit["fallback_reason"].str.startswith("demand class ").all()
    assert hit["fallback_reason"].str.contains("in forecast drift").all()
    others = series[~series["demand_class"].isin(list(drifting))]
    assert not others["fallback_reason"].fillna("").str.contains("drift").any()
    fc = read_partition("forecasts", "demand", DS, root)
    mine = fc[fc["unique_id"].isin(set(hit["unique_id"]))]
    # Flat over the horizon, quantiles above the mean.
    assert (mine.groupby("unique_id")["mean"].nunique() == 1).all()
    assert (mine["q95"] >= mine["mean"]).all()


def test_prophet_challenges_the_series_whose_promotions_move_demand(root, tmp_path, monkeypatch):
    from include.config import POLICY_FILE
    demand = read_partition("curated", "demand", DS, root)
    assert {"promo", "price", "event"} <= set(demand.columns) and (demand["promo"] > 0).any()
    steady = monitor_forecasts(DS.isoformat(), dag_id="retail_nightly", conn_factory=None, root=root)
    assert not {"smooth", "erratic"} & set(steady["fallback_segments"])  # the classes prophet may take
    summary = forecast_shard(DS.isoformat(), 0, 1, root=root)
    challenger = summary["challenger"]
    assert challenger["model"] == "prophet" and challenger["warnings"] == []
    assert challenger["tried"] >= 1, "the tiny world has smooth series that promotions lift"
    series = read_partition("forecasts", "series", DS, root)
    tried = series[series["challenger_note"].notna()]
    assert len(tried) == challenger["tried"]
    assert tried["challenger_note"].str.contains("history shows promo ").all()
    assert (series["model"].str.startswith("prophet").sum()) == challenger["taken"]
    fc = read_partition("forecasts", "demand", DS, root)
    assert fc[["mean", "q50", "q80", "q95"]].notna().all().all()
    assert ((fc["q95"] >= fc["q80"]) & (fc["q80"] >= fc["q50"]) & (fc["q50"] >= 0)).all()

    # Switched off in the policy: the vectorised selection alone.
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY_FILE.read_text().replace("    enabled: true", "    enabled: false"))
    monkeypatch.setenv("SHELFWISE_POLICY_FILE", str(policy))
    off = forecast_shard(DS.isoformat(), 0, 1, root=root)
    assert off["challenger"] is None and not any(m.startswith("prophet") for m in off["models"])


def test_a_prophet_outage_keeps_the_vectorised_forecasts_and_says_so_in_the_run_summary(root, monkeypatch):
    from models.forecasting import HEAVY_MODELS, HeavyModel, HeavyModelUnavailable

    def no_prophet(train, future, season_length, holidays):
        raise HeavyModelUnavailable("prophet cannot be loaded: ImportError: no cmdstan")

    monkeypatch.setitem(HEAVY_MODELS, "prophet", HeavyModel(no_prophet, uses_regressors=True))
    shard = forecast_shard(DS.isoformat(), 0, 1, root=root)
    assert shard["challenger"]["taken"] == 0 and shard["fallback"] < shard["series"]
    assert shard["challenger"]["warnings"] == [
        "prophet unavailable, the vectorised selection stands for every series: "
        "prophet cannot be loaded: ImportError: no cmdstan"]
    nightly.combine_forecasts(_run("combine_forecasts"), [shard], root=root)
    summary = read_stage_summaries("retail_nightly", DS, root)["combine_forecasts"]
    assert summary["challenger"]["warnings"] == shard["challenger"]["warnings"]
    series = read_partition("forecasts", "series", DS, root)
    assert series["challenger_note"].dropna().str.startswith("prophet unavailable: ").all()
