"""Stock-out reduction and markdowns avoided against the ERP's rule: the arithmetic on hand-worked replays,
the replay of the production policy on a small panel, and the weekly cadence of the nightly's replays."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from include.governance.policy import BaselineReplay, load_policy
from include.reporting import baseline_replay as br
from include.simulation import metrics
from include.simulation.panel import panel_from_frame
from include.storage import partition_exists, write_partition

SETTINGS = BaselineReplay()


def _result(mine: dict, theirs: dict, series: int = 30, total: int = 300) -> pd.DataFrame:
    base = {"fill_rate": 0.9, "lost_units": 10.0, "avg_inventory_value": 100.0, "series": series,
            "series_total": total, "window_start": "2026-01-01", "window_end": "2026-02-25"}
    return pd.DataFrame([{**base, "policy": "shelfwise", "parameter": 0.98, **mine},
                         {**base, "policy": "baseline", "parameter": 7.0, **theirs}])[br.RESULT_COLUMNS]


def test_overstock_is_stock_beyond_the_cover_of_each_series_mean_demand():
    demand = np.array([[2.0, 2.0, 2.0, 2.0], [0.0, 1.0, 0.0, 1.0]])     # means 2 and 0.5
    on_hand = np.array([[10.0, 4.0, 8.0, 0.0], [3.0, 1.0, 1.0, 0.0]])   # cover 3 periods: 6 and 1.5 allowed
    out = metrics.overstock(demand, on_hand, 3, unit_cost=np.array([2.0, 10.0]))
    # excess per period: series 1 [4, 0, 2, 0], series 2 [1.5, 0, 0, 0]
    assert out["overstock_units"] == pytest.approx((4 + 1.5 + 0 + 2 + 0) / 4)
    assert out["overstock_value"] == pytest.approx((4 * 2 + 1.5 * 10 + 2 * 2) / 4)
    assert metrics.overstock(demand, on_hand, 3)["overstock_value"] is None


def test_kpis_by_hand():
    kpis = br.baseline_kpis(_result({"stockout_rate": 0.01, "overstock_value": 400.0},
                                    {"stockout_rate": 0.04, "overstock_value": 1000.0}), SETTINGS, dt.date(2026, 2, 25))
    assert kpis["stockout_reduction"] == pytest.approx(1 - 0.01 / 0.04)
    # 600 less overstock at cost in a sample of 30 of 300 series, cleared at 30% of cost
    assert kpis["markdown_avoided_value"] == pytest.approx(600 * 0.3 * 10)
    section = kpis["baseline_replay"]
    assert section["measured_on"] == "2026-02-25" and section["series_total"] == 300
    assert section["erp_rule"]["parameter"] == 7.0 and section["shelfwise"]["stockout_rate"] == 0.01


def test_more_overstock_than_the_erp_rule_is_a_negative_markdown_avoided_and_no_stockouts_no_reduction():
    kpis = br.baseline_kpis(_result({"stockout_rate": 0.0, "overstock_value": 500.0},
                                    {"stockout_rate": 0.0, "overstock_value": 100.0}, series=10, total=10),
                            SETTINGS, dt.date(2026, 2, 25))
    assert kpis["markdown_avoided_value"] == pytest.approx(-400 * 0.3)
    assert kpis["stockout_reduction"] is None  # nothing to reduce: unknown, not 0% or 100%


def test_no_replay_gives_unknown_kpis_with_the_reason_and_the_report_says_it():
    kpis = br.baseline_kpis(None, SETTINGS, None, "50 days of demand are too few")
    assert kpis["stockout_reduction"] is None and kpis["markdown_avoided_value"] is None
    assert "Not measured: 50 days of demand are too few." in br.baseline_report_lines(kpis)


def test_the_sample_is_stable_and_bounded():
    ids = np.array([f"S{i}|I{j}" for i in range(20) for j in range(10)], dtype=object)
    sample = br.sample_ids(ids, 25)
    assert len(sample) == 25 and set(sample) <= set(ids)
    assert list(br.sample_ids(ids[::-1], 25)) == sorted(sample, key=list(ids[::-1]).index)  # order-free choice
    assert len(br.sample_ids(ids[:5], 25)) == 5


def _world(days: int, n: int = 6, seed: int = 3) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Daily Poisson demand of ``n`` series (2 stores x items) ending 2026-02-25, and their masters."""
    rng = np.random.default_rng(seed)
    dates = pd.date_range(end="2026-02-25", periods=days, freq="D")
    skus = [f"I{j}" for j in range(n // 2)]
    rows = [{"unique_id": f"{store}|{sku}", "sku": sku, "ds": d, "y": float(rng.poisson(4 + 2 * k)), "censored": False}
            for store in ("S1", "S2") for k, sku in enumerate(skus) for d in dates]
    items = pd.DataFrame({"sku": skus, "unit_cost": [2.0 + k for k in range(len(skus))], "supplier_id": "SUP1"})
    suppliers = pd.DataFrame({"supplier_id": ["SUP1"], "promised_lead_time_days": [5]})
    return pd.DataFrame(rows), items, suppliers


def test_replay_runs_the_production_policy_and_the_erp_rule_on_the_same_demand():
    demand, items, suppliers = _world(120)
    panel = br.replay_panel(demand, items, suppliers, max_series=4)
    assert len(panel.ids) == 4 and np.all(panel.lead_time == 5)
    # The ERP's rule with no safety stock: Shelfwise at a 98% fill rate must have fewer stock-outs.
    settings = SETTINGS.model_copy(update={"baseline_safety_days": 0.0})
    result = br.measure(panel, settings, fill_rate=0.98, review_days=7, series_total=6)
    assert list(result["policy"]) == ["shelfwise", "baseline"]
    assert result["window_end"].iloc[0] == "2026-02-25" and result["window_start"].iloc[0] == "2026-01-01"
    kpis = br.baseline_kpis(result, settings, dt.date(2026, 2, 25))
    assert kpis["stockout_reduction"] > 0.5
    assert kpis["baseline_replay"]["shelfwise"]["fill_rate"] > kpis["baseline_replay"]["erp_rule"]["fill_rate"]


def test_a_short_history_is_refused_with_what_it_needs():
    demand, items, suppliers = _world(40)
    with pytest.raises(ValueError, match="40 days of demand are too few"):
        br.measure(br.replay_panel(demand, items, suppliers, max_series=4), SETTINGS, fill_rate=0.98,
                   review_days=7, series_total=6)


def test_the_nightly_replays_once_a_week_and_reports_the_latest_replay_in_between(tmp_path, monkeypatch):
    root, day = str(tmp_path), dt.date(2026, 2, 25)
    demand, items, suppliers = _world(120)
    for on in (day, day + dt.timedelta(days=6), day + dt.timedelta(days=7)):
        write_partition(demand.assign(ds=demand["ds"] + pd.Timedelta(days=(on - day).days)), "curated", "demand", on,
                        root)
    write_partition(suppliers, "curated", "suppliers", day, root)
    calls = []
    measure = br.measure
    monkeypatch.setattr(br, "measure", lambda *a, **k: calls.append(1) or measure(*a, **k))

    first = br.weekly_kpis(day, items, root, load_policy())
    assert calls == [1] and partition_exists("reports", br.DATASET, day, root)
    assert first["baseline_replay"]["measured_on"] == day.isoformat()
    week = br.weekly_kpis(day + dt.timedelta(days=6), items, root, load_policy())
    assert calls == [1] and week == first  # the same replay, reported again
    later = br.weekly_kpis(day + dt.timedelta(days=7), items, root, load_policy())
    assert calls == [1, 1] and later["baseline_replay"]["measured_on"] == "2026-03-04"
    # The suppliers' master of that night is missing: the replay's default lead time, not a failure.
    assert later["stockout_reduction"] is not None


def test_an_empty_night_reports_no_replay(tmp_path):
    demand, items, _ = _world(60)
    write_partition(demand[demand["ds"] < "2026-02-01"], "curated", "demand", dt.date(2026, 2, 25), str(tmp_path))
    kpis = br.weekly_kpis(dt.date(2026, 2, 25), items, str(tmp_path), load_policy())
    assert kpis["stockout_reduction"] is None and kpis["baseline_replay"]["reason"] == "no demand on 2026-02-25"
    assert not partition_exists("reports", br.DATASET, dt.date(2026, 2, 25), str(tmp_path))


def test_panel_regressors_with_gaps_are_left_out():
    demand, items, suppliers = _world(60)
    demand["promo"] = 0.0
    demand["price"] = np.where(demand["sku"] == "I0", np.nan, 3.0)
    panel = br.replay_panel(demand, items, suppliers, max_series=6)
    assert list(panel.regressors) == ["promo"]
    assert panel_from_frame(demand, "D").demand.shape == panel.demand.shape
