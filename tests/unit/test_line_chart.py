"""A staged line's chart from the night's partitions and its explanation: history with stock-outs, the
forecast band, the stock run down without and with the line, both ends of a transfer, and what is missing."""

from __future__ import annotations

import datetime as dt
import xml.etree.ElementTree as ET

import pandas as pd
import pytest

from include.reporting.line_chart import chart_data, chart_svg
from include.storage import write_partition

DS = dt.date(2026, 4, 10)


@pytest.fixture
def root(tmp_path) -> str:
    """The night of ``DS``: 60 days of demand of two series (S1 with two stock-outs), 5 days of forecast."""
    days = pd.date_range(end=pd.Timestamp(DS), periods=60, freq="D")
    demand = pd.concat([pd.DataFrame({"unique_id": uid, "ds": days, "y": float(y),
                                      "censored": [d in (days[-3], days[-10]) and uid == "S1|A" for d in days]})
                        for uid, y in (("S1|A", 4), ("S2|A", 2), ("S1|B", 9))])
    write_partition(demand, "curated", "demand", DS, str(tmp_path))
    ahead = pd.date_range(pd.Timestamp(DS) + pd.Timedelta(days=1), periods=5, freq="D")
    forecast = pd.concat([pd.DataFrame({"unique_id": uid, "ds": ahead, "step": range(1, 6), "mean": m,
                                        "q50": m, "q80": m * 1.3, "q95": m * 1.6, "sigma_cum": 1.0})
                          for uid, m in (("S1|A", 4.0), ("S2|A", 2.0))])
    write_partition(forecast, "forecasts", "demand", DS, str(tmp_path))
    return str(tmp_path)


def _line(**kw) -> dict:
    return {"doc_type": "replenishment", "line_id": 7, "ds": DS.isoformat(), "sku": "A", "from_location": None,
            "to_location": "S1", "quantity": 12.0, "need_by": (DS + dt.timedelta(days=3)).isoformat(),
            "explanation": {"on_hand": 10.0, "in_transit": 4.0, "allocated": 1.0, "backorders": 1.0}, **kw}


def test_history_forecast_and_the_stock_with_and_without_the_line(root):
    data = chart_data(_line(), root)
    end = data["destination"]
    assert len(end["history"]) == 42 and end["history"][-1]["ds"] == DS.isoformat()
    assert [p["ds"] for p in end["history"] if p["censored"]] == ["2026-04-01", "2026-04-08"]
    assert [p["q95"] for p in end["forecast"]] == [6.4] * 5
    # usable stock 10 + 4 - 1 - 1 = 12, less 4 a day; the 12 units arrive on day 3 (2026-04-13)
    assert [p["stock"] for p in end["without"]] == [8, 4, 0, -4, -8]
    assert [p["stock"] for p in end["with"]] == [8, 4, 12, 8, 4]
    assert data["source"] is None and data["line"]["need_by"] == "2026-04-13"


def test_a_transfer_shows_both_ends_and_the_stock_leaving_the_source(root):
    line = _line(doc_type="transfer", from_location="S2", to_location="S1",
                 explanation={"on_hand": 2.0, "source_on_hand": 30.0, "source_in_transit": 0.0})
    data = chart_data(line, root)
    assert [p["stock"] for p in data["destination"]["with"]] == [-2, -6, 2, -2, -6]
    source = data["source"]
    assert source["location"] == "S2" and len(source["history"]) == 42
    assert [p["stock"] for p in source["with"]] == [16, 14, 12, 10, 8]  # 30 - 12 leaving on the next day - 2/day
    root_svg = ET.fromstring(chart_svg(data))
    assert root_svg.get("role") == "img" and "transfer #7" in root_svg.get("aria-label")
    texts = " ".join(t.text or "" for t in root_svg.iter("{http://www.w3.org/2000/svg}text"))
    assert "to S1" in texts and "from S2" in texts and "+12 on 2026-04-13" in texts


def test_what_the_night_did_not_write_is_said_not_failed(root, tmp_path):
    # A location without demand (a DC), a line whose explanation has no stock, and a night with no partitions.
    data = chart_data(_line(to_location="DC01", explanation={}), root)
    assert data["destination"]["history"] == [] and data["destination"]["with"] == []
    assert "wrote no demand or forecast" in chart_svg(data)
    empty = chart_data(_line(), str(tmp_path / "nothing"))
    assert empty["destination"]["forecast"] == [] and ET.fromstring(chart_svg(empty)) is not None


def test_text_in_the_chart_is_escaped(root):
    svg = chart_svg(chart_data(_line(sku="A<script>", line_id=1), root))
    assert "<script>" not in svg and "A&lt;script&gt;" in svg


def test_read_key_reads_only_the_groups_that_may_hold_the_series_and_finds_what_a_filter_finds(tmp_path, monkeypatch):
    import include.storage as storage
    from include.storage import read_key, read_partition, write_shard

    monkeypatch.setattr(storage, "_ROW_GROUP_ROWS", 100)  # many small groups per shard
    ids = [f"S{i:03d}|A" for i in range(40)]
    for shard in range(2):
        part = ids[shard * 20:(shard + 1) * 20]
        write_shard(pd.DataFrame({"unique_id": [u for u in part for _ in range(30)], "k": range(600),
                                  "y": 1.0}), "curated", "demand", DS, shard, 2, str(tmp_path))
    read = []
    real = storage.pq.ParquetFile.read_row_groups
    monkeypatch.setattr(storage.pq.ParquetFile, "read_row_groups",
                        lambda self, groups, **kw: read.extend(groups) or real(self, groups, **kw))
    got = read_key("curated", "demand", DS, "unique_id", "S025|A", str(tmp_path), columns=["k", "y"])
    expected = read_partition("curated", "demand", DS, str(tmp_path), columns=["k", "y"],
                              filters=[("unique_id", "==", "S025|A")])
    assert got.reset_index(drop=True).equals(expected.reset_index(drop=True)) and len(got) == 30
    assert len(read) <= 2  # of the 12 groups of the two shards
    assert read_key("curated", "demand", DS, "unique_id", "S999|A", str(tmp_path), columns=["k"]).empty
    assert read_key("curated", "demand", DS + dt.timedelta(days=1), "unique_id", "S025|A", str(tmp_path)).empty
