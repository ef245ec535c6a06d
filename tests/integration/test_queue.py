"""The approval queue against the real PostgreSQL: orders by impact, value, deadline and days to stock-out,
search, paging without gaps or repeats, and the counts per tier and document type, in the service and the API."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest

from include.erp.approvals import BadRequest, LineFilter, list_pending, queue_counts
from include.erp.staging import stage_batch

pytestmark = pytest.mark.integration
DS = dt.date(2026, 5, 16)


def _batch() -> pd.DataFrame:
    """Six pending lines with distinct values, need-by dates and cover, one of them critical; one auto-approved."""
    spec = [  # business key, doc type, tier, value, need-by in days, on hand, daily forecast, critical
        ("a", "replenishment", "medium", 300.0, 5, 10.0, 1.0, False),   # 10 days of cover
        ("b", "replenishment", "high", 100.0, 2, 2.0, 1.0, False),      # 2 days
        ("c", "transfer", "medium", 900.0, 9, 30.0, 2.0, False),        # 15 days
        ("d", "transfer", "low", 50.0, 1, 1.0, 4.0, True),              # 0.25 days, critical
        ("e", "po_exception", "medium", 600.0, None, None, None, False),  # cover unknown
        ("f", "replenishment", "medium", 200.0, 3, 6.0, 1.0, False),    # 6 days
        ("g", "replenishment", "low", 80.0, 4, 8.0, 1.0, False),        # auto-approved: not in the queue
    ]
    rows = []
    for i, (bk, doc, tier, value, need, on_hand, rate, critical) in enumerate(spec):
        explanation = {"model": "ses"} if on_hand is None else {"on_hand": on_hand, "mean_daily_forecast": rate}
        if critical:
            explanation["critical"] = True
        rows.append({"doc_type": doc, "business_key": f"q-{bk}", "sku": f"SKU{i:03d}", "from_location": "DC01",
                     "to_location": f"S{i:04d}", "supplier_id": "SUP_X" if doc != "transfer" else None,
                     "po_id": "PO7" if doc == "po_exception" else None, "po_line": i if doc == "po_exception" else None,
                     "action": "order", "quantity": 10.0, "unit_cost": value / 10, "value": value,
                     "need_by": DS + dt.timedelta(days=need) if need is not None else None,
                     "explanation": explanation, "risk_tier": tier, "tier_reasons": [],
                     "auto_approve": bk == "g"})
    return pd.DataFrame(rows)


@pytest.fixture
def run(conn, dag_id) -> LineFilter:
    stage_batch(conn, _batch(), dag_id=dag_id, run_id="r1", ds=DS)
    conn.commit()
    return LineFilter(dag_id=dag_id)


def _keys(lines: list[dict]) -> list[str]:
    return [ln["business_key"][2:] for ln in lines]


@pytest.mark.parametrize(("sort", "order"), [
    ("impact", "dbceaf"),    # critical first, then high, then medium by value
    ("value", "ceafbd"),
    ("deadline", "dbface"),  # need-by soonest first, none last
    ("cover", "dbface"),     # days to stock-out fewest first, unknown last
])
def test_the_queue_orders_by_what_the_planner_asks(conn, run, sort, order):
    assert "".join(_keys(list_pending(conn, run, sort=sort))) == order


def test_pages_cover_the_queue_once_and_counts_say_what_it_holds(conn, run):
    pages = [list_pending(conn, run, sort="value", limit=4, offset=o) for o in (0, 4, 8)]
    assert [len(p) for p in pages] == [4, 2, 0]
    assert "".join(_keys(pages[0] + pages[1])) == "ceafbd"
    assert queue_counts(conn, run) == {"total": 6, "value": 2150.0, "by_tier": {"high": 1, "medium": 4, "low": 1},
                                       "by_doc_type": {"replenishment": 3, "transfer": 2, "po_exception": 1}}
    assert queue_counts(conn, LineFilter(dag_id=run.dag_id, tier="medium"))["total"] == 4


def test_search_finds_text_in_the_line_and_takes_wildcards_literally(conn, run):
    def found(text):
        return _keys(list_pending(conn, LineFilter(dag_id=run.dag_id, search=text), sort="value"))

    assert found("sku002") == ["c"]
    assert found("S0003") == ["d"]
    assert found("sup_x") == ["e", "a", "f", "b"]
    assert found("q-f") == ["f"]
    assert found("%") == [] and found("SKU00_") == []  # no line holds "%" or "SKU00_"
    assert queue_counts(conn, LineFilter(dag_id=run.dag_id, search="dc01"))["total"] == 6


def test_bad_paging_and_sorts_are_refused(conn, run):
    for kwargs, message in (({"sort": "random"}, "unknown sort 'random'"), ({"offset": -1}, "offset must be"),
                            ({"offset": True}, "offset must be")):
        with pytest.raises(BadRequest, match=message):
            list_pending(conn, run, **kwargs)


def test_api_pages_and_counts_and_the_page_links_to_the_next(approvals_client, conn, run):
    client = approvals_client("planner", "user")
    page = client.get(f"/api/lines?dag_id={run.dag_id}&sort=cover&limit=2&offset=2").json()
    assert (page["total"], page["offset"], page["count"], page["sort"]) == (6, 2, 2, "cover")
    assert _keys(page["lines"]) == ["f", "a"] and page["by_tier"] == {"high": 1, "medium": 4, "low": 1}
    assert client.get(f"/api/lines?dag_id={run.dag_id}&sort=random").status_code == 422
    assert client.get(f"/api/lines?dag_id={run.dag_id}&offset=-2").status_code == 422
    html = client.get(f"/approvals?dag_id={run.dag_id}&search=sku00&limit=4&sort=value").text
    assert "<strong>6</strong> line(s) waiting, worth 2,150.00 USD" in html and "Showing 1 to 4." in html
    assert 'rel="next">next 4</a>' in html and "offset=4" in html and 'rel="prev"' not in html
    assert '<option value="value" selected>' in html


def test_api_serves_a_lines_chart_as_numbers_and_as_an_image(approvals_client, conn, run):
    client = approvals_client("analyst", "viewer")  # reading a chart needs no deciding role
    line = list_pending(conn, run, sort="value")[1]  # q-e, a PO exception: its numbers, without stock
    key = f"{line['doc_type']}:{line['line_id']}"
    data = client.get(f"/api/chart?line={key}").json()
    assert data["line"] == {"doc_type": "po_exception", "line_id": line["line_id"], "sku": "SKU004",
                            "ds": DS.isoformat(), "quantity": 10.0, "need_by": None}
    image = client.get(f"/api/chart.svg?line={key}")
    assert image.status_code == 200 and image.headers["content-type"].startswith("image/svg+xml")
    assert image.text.startswith("<svg") and "po_exception #" in image.text
    assert client.get("/api/chart.svg?line=replenishment:999999999").status_code == 404
    assert client.get("/api/chart.svg?line=../../etc").status_code == 422
    html = approvals_client("planner", "user").get(f"/approvals?dag_id={run.dag_id}").text
    assert html.count('<details class="chart">') == 5  # replenishments and transfers, not the PO exception
