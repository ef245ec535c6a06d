"""The executive dashboard without a database: flattening the KPI history, the page's SVG, targets, segments,
and the plugin's HTTP contract up to the point where it would read the database."""

from __future__ import annotations

import datetime as dt
import math
import re
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from include.reporting import dashboard as d


def _rows(n: int = 5, *, degraded: tuple[int, ...] = (), missing: dict[int, str] | None = None,
          segments: dict[str, dict[str, dict]] | None = None) -> list[tuple]:
    """``ops.kpi_history`` rows as psycopg gives them: (date, kpis dict, degraded, stale_sources)."""
    rows = []
    for i in range(n):
        kpis = {"fill_rate": 0.9 + i / 100, "stockout_rate_7d": 0.05 - i / 1000, "inventory_turns": 6 + i,
                "orchestration": {"ran": True, "fulfilment_cost_per_order": 10.0 + i},
                "procurement": {"otif": 0.8, "cycle_hours_median": 3.0}}
        if missing and i in missing:
            top, _, rest = missing[i].partition(".")
            kpis[top].pop(rest) if rest else kpis.pop(top)
        if segments:
            kpis["segments"] = segments
        stale = {"promotions": "2026-03-01"} if i in degraded else {}
        rows.append((dt.date(2026, 3, 1) + dt.timedelta(days=i), kpis, i in degraded, stale))
    return rows


def _effect(days: pd.Series) -> pd.DataFrame:
    n = len(days)
    return pd.DataFrame({"ds": days.to_numpy(), "approved": np.full(n, 4.0), "auto_approved": np.full(n, 3.0),
                         "rejected": np.ones(n), "expired": np.zeros(n), "pending": np.zeros(n),
                         "released": np.full(n, 4.0), "value_released": np.full(n, 1000.0)})


# --- catalogue and flattening ------------------------------------------------------------------------------


def test_catalogue_has_the_executive_kpis_with_unique_keys():
    assert len(d.CATALOGUE) >= 20 and len(set(d.KEYS)) == len(d.KEYS)
    for key in ("stockout_rate_7d", "stockout_reduction", "fill_rate", "orchestration.fulfilment_cost_per_order",
                "inventory_turns", "markdown_avoided_value", "procurement.cycle_hours_median", "returns.net_recovery",
                "reporting_cycle_hours", "gross_margin_rate", "forecast_wape", "value_released",
                "returns.recovery_rate", "returns.return_rate", "returns.fraud_losses_prevented_est",
                "returns.days_receipt_to_disposition"):
        assert key in d.BY_KEY
    assert {k.unit for k in d.CATALOGUE} <= {"share", "money", "hours", "days", "units", "times"}
    assert d.BY_KEY["returns.days_receipt_to_disposition"].fmt(1.25) == "1.2 d"


def test_catalogue_keys_the_nightly_records_are_produced_by_the_kpi_code():
    # A nested key's first part is one of the sections report_kpis adds to compute_kpis' flat dict.
    sections = {"orchestration", "procurement", "intraday", "returns"}
    for kpi in d.CATALOGUE:
        if "." in kpi.key:
            assert kpi.path[0] in sections, kpi.key


def test_flatten_reads_nested_keys_and_keeps_gaps_as_gaps():
    frame = d.flatten_history(_rows(4, missing={1: "fill_rate", 2: "orchestration.fulfilment_cost_per_order"}))
    assert list(frame["segment"].astype(str)) == [d.ALL] * 4
    assert frame["fill_rate"].dtype == float
    assert math.isnan(frame.loc[1, "fill_rate"]) and frame.loc[0, "fill_rate"] == pytest.approx(0.9)
    assert math.isnan(frame.loc[2, "orchestration.fulfilment_cost_per_order"])
    assert frame.loc[3, "orchestration.fulfilment_cost_per_order"] == 13.0
    assert frame["gross_margin_rate"].isna().all()  # not recorded: a gap on every night, never 0
    assert (frame["procurement.otif"] == 0.8).all()


def test_flatten_treats_non_numbers_as_gaps():
    rows = [(dt.date(2026, 3, 1), {"fill_rate": None, "inventory_turns": True, "forecast_wape": "0.3",
                                   "stockout_rate_7d": float("inf"), "orchestration": {"ran": False}}, False, {})]
    frame = d.flatten_history(rows)
    for key in ("fill_rate", "inventory_turns", "forecast_wape", "stockout_rate_7d",
                "orchestration.fulfilment_cost_per_order"):
        assert math.isnan(frame.loc[0, key]), key


def test_flatten_keeps_degraded_and_stale_sources():
    frame = d.flatten_history(_rows(3, degraded=(1,)))
    assert frame["degraded"].tolist() == [False, True, False]
    assert frame.loc[1, "stale_sources"] == {"promotions": "2026-03-01"}


class _Cursor:
    def __init__(self, rows):
        self.rows = rows

    def fetchall(self):
        return self.rows


class _Conn:
    """Answers every statement with the given rows and records what was asked."""

    def __init__(self, rows):
        self.rows, self.calls = rows, []

    def execute(self, sql, params):
        self.calls.append((sql, params))
        return _Cursor(self.rows)


def test_load_history_asks_newest_first_and_returns_oldest_first():
    conn = _Conn(list(reversed(_rows(3))))
    frame = d.load_history(conn, since=dt.date(2026, 3, 1), nights=30)
    sql, params = conn.calls[0]
    assert "ops.kpi_history" in sql and "ORDER BY ds DESC" in sql
    assert params == {"dag_id": "retail_nightly", "since": dt.date(2026, 3, 1), "until": None, "nights": 30}
    assert frame["ds"].is_monotonic_increasing and len(frame) == 3


def test_decision_effect_frame():
    conn = _Conn([(dt.date(2026, 3, 1), 5, 3, 1, 2, 0, 4, 1234.5)])
    effect = d.decision_effect(conn, dt.date(2026, 3, 1), dt.date(2026, 3, 2))
    assert "erp_staging.all_lines" in conn.calls[0][0]
    assert list(effect.columns) == list(d.EFFECT_COLUMNS)
    assert effect.loc[0, "value_released"] == 1234.5 and effect.loc[0, "expired"] == 2.0


# --- segments ----------------------------------------------------------------------------------------------


def test_segments_become_rows_and_are_selected():
    seg = {"by_channel": {"store": {"fill_rate": 0.5}, "web": {"fill_rate": 0.7}}, "by_region": {"north": {}}}
    history = d.flatten_history(_rows(3, segments=seg))
    assert d.segments(history) == [d.ALL, "channel:store", "channel:web", "region:north"]
    web = d.series_json(history, None, {}, segment="channel:web")
    assert web["series"]["fill_rate"] == [0.7, 0.7, 0.7]
    assert web["series"]["inventory_turns"] == [None, None, None]  # the segment did not record it
    page = d.render_dashboard(history, None, {}, segment="channel:store")
    assert '<option value="channel:store" selected>' in page
    assert 'data-kpi="fill_rate"><h2>Fill rate</h2><p class="latest"><strong>50.0%</strong>' in page


def test_unknown_segment_says_so():
    page = d.render_dashboard(d.flatten_history(_rows(3)), None, {}, segment="region:mars")
    assert "No night of segment region:mars in this period." in page


def test_value_released_comes_from_the_decisions_for_the_whole_business_only():
    history = d.flatten_history(_rows(3, segments={"by_channel": {"web": {}}}))
    effect = _effect(history.loc[history["segment"] == d.ALL, "ds"]).iloc[:2]
    assert d.series_json(history, effect, {})["series"]["value_released"] == [1000.0, 1000.0, None]
    assert d.series_json(history, effect, {}, segment="channel:web")["series"]["value_released"] == [None] * 3


# --- the page ----------------------------------------------------------------------------------------------


def _card(page: str, key: str) -> str:
    return re.search(rf'<section class="kpi [a-z]+" data-kpi="{re.escape(key)}">.*?</section>', page, re.S).group(0)


def test_degraded_nights_are_shaded_with_their_stale_sources():
    history = d.flatten_history(_rows(10, degraded=(3, 4, 8)))
    page = d.render_dashboard(history, _effect(history["ds"]), d.kpi_targets())
    chart = _card(page, "fill_rate")
    assert chart.count('<rect class="degraded"') == 2  # nights 3-4 are one band, night 8 another
    assert "2026-03-04: degraded (promotions of 2026-03-01)" in chart
    assert "degraded night" in page  # the legend
    assert "10 night(s), 2026-03-01 to 2026-03-10, 3 degraded" in page


def test_target_line_and_colour_follow_the_direction():
    history = d.flatten_history(_rows(5))  # fill rate ends at 0.94; stock-outs at 0.046; turns at 10
    page = d.render_dashboard(history, None, {"fill_rate": 0.98, "stockout_rate_7d": 0.05, "inventory_turns": 8})
    fill, stockouts, turns = (_card(page, k) for k in ("fill_rate", "stockout_rate_7d", "inventory_turns"))
    assert fill.startswith('<section class="kpi bad"') and "target 98.0%, higher is better" in fill
    assert stockouts.startswith('<section class="kpi good"') and "lower is better" in stockouts
    assert turns.startswith('<section class="kpi good"')
    assert '<line class="target"' in fill and "<title>target 98.0%</title>" in fill
    wape = _card(page, "forecast_wape")
    assert wape.startswith('<section class="kpi neutral"') and '<line class="target"' not in wape


def test_gaps_break_the_line():
    history = d.flatten_history(_rows(7, missing={3: "fill_rate"}))
    fill = _card(d.render_dashboard(history, None, {}), "fill_rate")
    assert fill.count('<polyline class="series"') == 2
    assert _card(d.render_dashboard(history, None, {}), "gross_margin_rate").count("not recorded on these nights") == 1


def test_a_missing_night_breaks_the_line_too():
    rows = _rows(6)
    del rows[2]
    fill = _card(d.render_dashboard(d.flatten_history(rows), None, {}), "fill_rate")
    assert fill.count('<polyline class="series"') == 2


def test_text_is_escaped():
    evil = '<script>alert("x")</script>'
    rows = [(dt.date(2026, 3, 1), {"fill_rate": 0.9, "segments": {"by_region": {evil: {"fill_rate": 0.1}}}},
             True, {evil: "2026-02-28"})]
    history = d.flatten_history(rows)
    page = d.render_dashboard(history, None, {}, segment=f"region:{evil}", title=evil, nonce='"n',
                              links={evil: f"/x?{evil}"}, query={"dag_id": evil})
    # The only script is the theme's, with the page's nonce; the evil text shows as text.
    assert page.count("<script") == 1 and '<script nonce="&quot;n">' in page and "&lt;script&gt;" in page
    assert 'nonce="&quot;n"' in page


def test_decisions_panel():
    history = d.flatten_history(_rows(5))
    page = d.render_dashboard(history, _effect(history["ds"]), {})
    panel = re.search(r'<section class="decisions">.*?</section>', page, re.S).group(0)
    assert "of which auto-approved 15" in panel and "5,000.00" in panel and "80.0%" in panel
    assert panel.count('<rect class="approved"') == 5 and panel.count('<rect class="rejected"') == 5
    assert "No line was staged" in d.render_dashboard(history, None, {})


def test_a_year_of_twenty_kpis_renders_a_page():
    history, effect = d.synthetic_history(365, 20)
    page = d.render_dashboard(history, effect, d.kpi_targets())
    assert page.startswith("<!doctype html>") and page.rstrip().endswith("</html>")
    assert page.count('<section class="kpi ') == len(d.CATALOGUE)
    assert d.time_dashboard(nights=30, kpis=3, repeats=1) > 0


def test_empty_history_renders():
    page = d.render_dashboard(d.flatten_history([]), None, {})
    assert "No night of segment all" in page and page.count("not recorded on these nights") == len(d.CATALOGUE)


# --- targets -----------------------------------------------------------------------------------------------


def test_targets_default_and_override():
    targets = d.kpi_targets({"forecast_wape": 0.3, "stockout_rate_7d": None}, fill_rate=0.97)
    assert targets["fill_rate"] == 0.97 and targets["forecast_wape"] == 0.3
    assert "stockout_rate_7d" not in targets
    assert d.kpi_targets()["inventory_turns"] == d.DEFAULT_TARGETS["inventory_turns"]


def test_the_projects_policy_gives_targets():
    from include.governance.policy import load_policy

    policy = load_policy()
    targets = d.policy_targets()
    assert targets == d.policy_targets(policy)
    assert targets["fill_rate"] == pytest.approx(policy.replenishment.fill_rate)
    for key, target in policy.kpi_targets.items():
        assert targets.get(key) == target, key


def test_targets_of_a_policy_file_are_checked_when_it_loads(tmp_path, monkeypatch):
    import yaml

    from include.config import policy_file
    from include.governance.policy import PolicyError

    doc = yaml.safe_load(Path(policy_file()).read_text())
    doc["kpi_targets"] = {"fill_rate": 0.9, "forecast_wape": None}
    path = tmp_path / "policy.yaml"
    path.write_text(yaml.safe_dump(doc))
    monkeypatch.setenv("SHELFWISE_POLICY_FILE", str(path))
    targets = d.policy_targets()
    assert targets["fill_rate"] == 0.9 and "forecast_wape" not in targets
    doc["kpi_targets"] = {"fill_rat": 0.9}
    path.write_text(yaml.safe_dump(doc))
    with pytest.raises(PolicyError, match=re.escape("'fill_rat' is not a KPI of the dashboard's catalogue")):
        d.policy_targets()


# --- the plugin --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def plugin():
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "plugins"))
    import shelfwise_dashboard

    return shelfwise_dashboard


def _client(plugin, role: str):
    import shelfwise_web
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser
    from fastapi.testclient import TestClient

    app = plugin.create_app()
    app.dependency_overrides[shelfwise_web.current_user] = lambda: SimpleAuthManagerUser(username="u", role=role)
    return TestClient(app)


def test_plugin_nav_entry(plugin):
    view = plugin.ShelfwiseDashboardPlugin.external_views[0]
    assert view["name"] == "Executive dashboard" and view["href"] == "/shelfwise-dashboard/dashboard"
    assert plugin.ShelfwiseDashboardPlugin.fastapi_apps[0]["url_prefix"] == "/shelfwise-dashboard"


def test_plugin_refuses_a_user_without_shelfwise_role(plugin):
    response = _client(plugin, "viewer").get("/dashboard")
    assert response.status_code == 403 and "may not read the dashboard" in response.json()["detail"]


@pytest.mark.parametrize("query", ["since=2026-13-01", "nights=0", "nights=1.5", "dag_id=a%20b", "colour=red",
                                   "since=2026-03-02&until=2026-03-01", "segment=a&segment=b"])
def test_plugin_refuses_bad_queries(plugin, query):
    response = _client(plugin, "user").get(f"/api/kpis?{query}")
    assert response.status_code == 422, response.text
    assert response.json()["errors"][0]["loc"][0] == "query"


def test_plugin_page_and_json(plugin, monkeypatch):
    history = d.flatten_history(_rows(4, degraded=(2,)))
    monkeypatch.setattr(plugin, "_load", lambda query: (history, _effect(history["ds"]), d.kpi_targets()))
    client = _client(plugin, "user")
    page = client.get("/dashboard?segment=all&nights=30")
    assert page.status_code == 200 and "Executive dashboard: retail_nightly" in page.text
    nonce = re.search(r"<style nonce=\"([^\"]+)\">", page.text).group(1)
    assert f"style-src 'nonce-{nonce}'" in page.headers["content-security-policy"]
    assert 'href="/shelfwise-dashboard/api/kpis?nights=30&amp;segment=all"' in page.text
    data = client.get("/api/kpis").json()
    assert data["nights"][0] == "2026-03-01" and data["degraded"] == [False, False, True, False]
    assert data["series"]["fill_rate"][0] == pytest.approx(0.9) and data["series"]["gross_margin_rate"][0] is None


def test_plugin_answers_503_with_security_headers_when_the_erp_is_unreachable(plugin, monkeypatch):
    from include.erp.db import ErpConnectionError

    def unreachable():
        raise ErpConnectionError("the ERP staging database at postgresql://erp is not reachable")

    monkeypatch.setattr(plugin.web, "connect", unreachable)
    response = _client(plugin, "user").get("/api/kpis")
    assert response.status_code == 503
    assert response.json() == {"detail": "the ERP staging database at postgresql://erp is not reachable"}
    assert response.headers["Content-Security-Policy"].startswith("default-src 'none'")
    assert (response.headers["X-Content-Type-Options"], response.headers["Cache-Control"]) == ("nosniff", "no-store")
