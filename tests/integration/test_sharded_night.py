"""A night in many shards decides what it decides in one: the shard-by-shard stages on the tiny world."""

from __future__ import annotations

import datetime as dt
import shutil

import pandas as pd
import pytest

from include.config import POLICY_FILE
from include.runs import Run
from include.stages import nightly
from include.storage import list_shards, read_nested_partition, read_partition, write_partition
from tests.worlds import tiny_world

pytestmark = pytest.mark.integration
DS = dt.date(2026, 9, 30)


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> str:
    return tiny_world(str(tmp_path_factory.mktemp("sharded") / "shelfwise"), DS, history_through=DS)


def _night(root: str, shard_size: int) -> dict:
    """The stages from demand to proposals, every shard's task in turn, as the scheduler would map them."""
    def run(task_id: str) -> Run:
        return Run(dag_id="retail_nightly", run_id=f"test__{DS}", ds=DS.isoformat(), task_id=task_id,
                   params={"history_days": 120, "horizon": 14, "shard_size": shard_size})

    demand = nightly.build_demand(run("build_demand"), root=root)
    shards = nightly.plan_forecast_shards(run("plan_forecast_shards"), root=root)
    summaries = [nightly.forecast_demand(run("forecast_demand"), s["shard"], s["n_shards"], root=root) for s in shards]
    combined = nightly.combine_forecasts(run("combine_forecasts"), summaries, root=root)
    nightly.detect_anomalies(run("detect_anomalies"), root=root)
    nightly.propose_decisions(run("propose_decisions"), root=root)
    return {"demand": demand, "shards": shards, "combined": combined}


def _key(frame: pd.DataFrame, cols: list[str]) -> pd.DataFrame:
    return frame[cols].astype({c: str for c in cols if frame[c].dtype != float}).sort_values(cols).reset_index(drop=True)


def test_many_shards_forecast_and_propose_what_one_shard_does(world, tmp_path, monkeypatch):
    # Two things are decided over a shard's series together, by design: the challenger's pooled
    # decision, and the promotion elasticity of an item with too little promoted history of its own. With
    # the challenger off and no promotion calendar, every forecast is the series' own.
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY_FILE.read_text().replace("    enabled: true", "    enabled: false"))
    monkeypatch.setenv("SHELFWISE_POLICY_FILE", str(policy))
    promotions = read_partition("curated", "promotions", DS, world)
    write_partition(promotions.iloc[0:0], "curated", "promotions", DS, world)
    other = str(tmp_path / "copy")
    shutil.copytree(world, other)

    one, many = _night(world, 100_000), _night(other, 7)

    assert len(one["shards"]) == 1 and len(many["shards"]) > 3
    # Shards hold whole SKUs, so a shard can come out empty; it is not planned.
    assert len({s["n_shards"] for s in many["shards"]}) == 1 and many["shards"][0]["n_shards"] >= len(many["shards"])
    assert len(list_shards("curated", "demand", DS, other)) == len(many["shards"])
    assert {k: v for k, v in one["demand"].items() if k != "shards"} == \
        {k: v for k, v in many["demand"].items() if k != "shards"}
    assert one["combined"]["series"] == many["combined"]["series"] == one["demand"]["series"]
    fc_cols = ["unique_id", "ds", "step", "mean", "q95"]
    pd.testing.assert_frame_equal(_key(read_partition("forecasts", "demand", DS, world), fc_cols),
                                  _key(read_partition("forecasts", "demand", DS, other), fc_cols))
    line = ["doc_type", "business_key", "quantity"]
    a, b = (read_nested_partition("curated", "proposals", DS, r) for r in (world, other))
    assert len(a) > 0
    pd.testing.assert_frame_equal(_key(a, line), _key(b, line))
    # PO exceptions keep one ranking across shards: by the units they would lose.
    lost = b.loc[b["doc_type"] == "po_exception", "explanation"].map(lambda e: e["lost_units"]).tolist()
    assert lost == sorted(lost, reverse=True)
    anomalies = [read_partition("reports", "demand_anomalies", DS, r, missing_ok=True) for r in (world, other)]
    assert len(anomalies[0]) == len(anomalies[1])
