"""The sentences and numbers a line shows its reviewer, for every kind of line the workflows stage."""

from __future__ import annotations

from include.reporting.line_text import line_numbers, line_story

ORDER = {
    "doc_type": "replenishment", "action": "order", "sku": "SKU00008", "supplier_id": "SUP002", "from_location": None,
    "to_location": "DC01", "quantity": 120.0,
    "explanation": {
        "forecast_over_lead_time": 41.0, "forecast_error_over_lead_time": 6.25, "fill_rate_target": 0.98,
        "safety_factor": 1.645, "safety_stock": 12.0, "reorder_point": 53.0, "order_up_to": 150.0,
        "inventory_position": 30.0, "on_hand": 24.0, "in_transit": 0.0, "on_order": 6.0, "allocated": 0.0,
        "backorders": 0.0, "lead_time_days": 4.0, "lead_time_sd_days": 0.5, "mean_daily_forecast": 10.25,
        "model": "ses", "fallback_reason": None, "backtest_mase": None, "anomalies": [], "supplier_late_rate": 0.2,
        "supplier_lead_time_source": "recent_receipts", "supplier_disruption_flagged": False,
        "source_options": [{"supplier_id": "SUP004"}], "critical": True},
}


def test_an_order_says_when_the_stock_runs_out_and_why_its_supplier_matters():
    assert line_story(ORDER) == (
        "SKU00008 at DC01 will run out in 2.3 days: 24 units in stock vs 41 units forecast over the 4-day lead time;"
        " ordering 120 units from SUP002 brings it up to 150 units. Supplier SUP002 has been late on 20% of recent"
        " deliveries.")


def test_an_order_with_enough_cover_for_its_lead_time_is_below_its_reorder_point():
    e = {**ORDER["explanation"], "on_hand": 60.0, "supplier_late_rate": 0.02, "supplier_disruption_flagged": True,
         "anomalies": ["demand_spike"]}
    assert line_story({**ORDER, "explanation": e}) == (
        "SKU00008 at DC01 is below its reorder point: 30 units in stock and on order vs 53 units (41 units forecast "
        "over the 4-day lead time plus safety stock); ordering 120 units from SUP002 brings it up to 150 units. "
        "Supplier SUP002 is flagged as disrupted; demand anomaly today: demand spike.")


def test_returned_units_going_back_to_the_shelf_count_as_stock_and_are_named():
    e = {**ORDER["explanation"], "returns_to_stock": 4.0, "inventory_position": 34.0}
    story = line_story({**ORDER, "explanation": e})
    assert story.startswith("SKU00008 at DC01 will run out in 2.7 days: 28 units in stock vs 41 units")
    assert ("returned units going back to the shelf", "4 units") in line_numbers({**ORDER, "explanation": e})


def test_a_dc_to_store_transfer_has_no_supplier_sentence():
    line = {**ORDER, "doc_type": "transfer", "action": "replenish", "supplier_id": None, "from_location": "DC01",
            "to_location": "S0003", "quantity": 24.0}
    assert line_story(line) == ("SKU00008 at S0003 will run out in 2.3 days: 24 units in stock vs 41 units forecast"
                                " over the 4-day lead time; moving 24 units from DC01 brings it up to 150 units.")
    empty = {**line, "explanation": {**line["explanation"], "on_hand": 0.0, "backorders": 2.0}}
    assert line_story(empty).startswith("SKU00008 at S0003 is out of stock, with 41 units forecast over the 4-day"
                                        " lead time; moving 24 units from DC01")


def test_a_rebalance_names_both_stores_and_what_the_move_is_worth():
    line = {"doc_type": "transfer", "action": "rebalance", "sku": "SKU00002", "from_location": "S0004",
            "to_location": "S0001", "quantity": 6.0,
            "explanation": {"region": "North", "receiver_shortfall": 5.5, "receiver_usable_stock": 1.0,
                            "receiver_forecast_over_lead_time": 6.5, "donor_excess": 9.0,
                            "donor_forecast_over_lead_and_review": 12.0, "margin_at_risk": 18.0,
                            "transfer_cost": 2.4, "net_benefit": 15.6, "locations_solved_together": 4}}
    assert line_story(line, "EUR") == (
        "S0001 is 5.5 units short of SKU00002 before its next delivery (1 unit in stock vs 6.5 units forecast), while "
        "S0004 holds 9 units more than it needs. Moving 6 units keeps 18.00 EUR of margin for 2.40 EUR of transport.")


def test_a_po_exception_says_how_late_what_is_at_risk_and_what_to_do():
    line = {"doc_type": "po_exception", "action": "move_supplier", "sku": "SKU00005", "supplier_id": "SUP001",
            "po_id": "PO000123", "po_line": 2, "to_location": "DC02", "quantity": 80.0,
            "explanation": {"reasons": ["late", "short"], "promised_date": "2026-11-20", "expected_arrival": "2026-11-29",
                            "late_days": 9, "expected_short_units": 20.0, "days_of_cover": 3.5, "lost_units": 44.0,
                            "alternate_supplier": "SUP003", "alternate_lead_time_days": 5.0, "margin_impact": -31.2}}
    assert line_story(line) == (
        "PO PO000123 line 2 from SUP001 is expected 9 days late (2026-11-29, promised 2026-11-20) and 20 units short: "
        "DC02 has 3.5 days of cover, so 44 units of sales are at risk. Move it to SUP003 (5 days lead time), margin "
        "impact -31.20 USD.")
    accepted = {**line, "action": "accept_delay",
                "explanation": {**line["explanation"], "reasons": ["late"], "expected_short_units": 0.0, "lost_units": 0}}
    assert line_story(accepted) == ("PO PO000123 line 2 from SUP001 is expected 9 days late (2026-11-29, promised "
                                    "2026-11-20). No sales are lost by waiting: accept the delay.")


def test_an_intraday_move_says_how_fast_it_sells_and_when_the_move_arrives():
    line = {"doc_type": "transfer", "action": "urgent_transfer", "sku": "SKU00011", "from_location": "S0002",
            "to_location": "S0005", "quantity": 12.0,
            "explanation": {"channel": "store", "surge_ratio": 3.2, "surge_onset_hour": 11, "sold_since_onset": 16.0,
                            "expected_since_onset": 5.0, "hours_to_stockout": 3.5, "hours_to_arrive": 4.0,
                            "arrives_after_stockout": True, "margin_at_stake": 36.0, "move_cost": 4.8}}
    assert line_story(line) == (
        "Store sales of SKU00011 at S0005 run at 3.2x the forecast since 11:00 (16 units sold vs 5 units expected); "
        "the stock runs out in 3.5 h and the move arrives in 4 h, too late for part of it. It keeps 36.00 USD of "
        "margin for 4.80 USD of cost.")
    kept = {**line, "explanation": {**line["explanation"], "donor_keeps": 21.3, "donor_need": 14.0}}
    assert line_story(kept).endswith(
        "margin for 4.80 USD of cost. S0002 keeps 21.3 units for the 14 units it expects to sell before its next "
        "delivery.")
    assert dict(line_numbers(kept))["donor keeps"] == "21.3 units"
    timed = {**line, "explanation": {**line["explanation"], "lost_before_arrival": 1.5}}
    assert "the move arrives in 4 h, too late for the 1.5 units short before then. It keeps" in line_story(timed)
    assert dict(line_numbers(timed))["units short before it arrives"] == "1.5 units"
    empty = {**line, "action": "urgent_expedite", "explanation": {**line["explanation"], "hours_to_stockout": 0.0}}
    assert "(16 units sold vs 5 units expected); it is out of stock now and the expedite arrives in 4 h" in (
        line_story(empty))


def test_a_workflows_own_sentence_is_kept_and_a_line_without_one_has_none():
    assert line_story({"doc_type": "finance_review", "explanation": {"why": "Margin fell 9 points."}}) == (
        "Margin fell 9 points.")
    assert line_story({"doc_type": "fulfilment_assignment", "action": "assign", "explanation": {}}) is None
    assert line_story({"doc_type": "replenishment", "action": "order", "explanation": {"model": "ses"}}) is None


def test_numbers_carry_units_and_hide_what_is_empty():
    numbers = dict(line_numbers(ORDER, "EUR"))
    assert numbers["forecast over lead time"] == "41 units"
    assert numbers["fill-rate target"] == "98%"
    assert numbers["supplier late rate"] == "20%"
    assert numbers["lead time"] == "4 days" and numbers["lead time sd"] == "0.5 days"
    assert numbers["mean daily forecast"] == "10.25 units/day"
    assert numbers["safety factor"] == "1.65"
    assert numbers["supplier lead time source"] == "recent receipts"
    assert numbers["supplier disruption flagged"] == "no"
    for hidden in ("fallback reason", "backtest MASE", "anomalies", "source options", "critical", "why"):
        assert hidden not in numbers
    money = dict(line_numbers({"explanation": {"margin_at_stake": 1234.5, "refund_amount": 20, "surge_ratio": 2.5,
                                               "hours_to_stockout": 5.5, "surge_onset_hour": 9, "days_of_cover": 3.5,
                                               "net_recovery": 12.0, "fraud_score": 0.125}}, "EUR"))
    assert money == {"margin at stake": "1,234.50 EUR", "refund amount": "20.00 EUR", "sales vs forecast": "2.50x",
                     "hours to stockout": "5.5 h", "surge onset hour": "09:00", "days of cover": "3.5 days",
                     "net recovery": "12.00 EUR", "fraud score": "12.5%"}


def test_the_required_actions_text_lists_the_largest_lines_with_their_sentence():
    import pandas as pd

    from include.governance.review import review_markdown

    po = {"doc_type": "po_exception", "line_id": 9, "risk_tier": "high", "action": "expedite", "sku": "SKU00005",
          "supplier_id": "SUP001", "po_id": "PO7", "po_line": 1, "from_location": None, "to_location": "DC02",
          "quantity": 80.0, "value": 400.0, "tier_reasons": ["large_value"],
          "explanation": {"reasons": ["late"], "promised_date": "2026-11-20", "expected_arrival": "2026-11-29",
                          "late_days": 9, "expected_short_units": 0.0, "days_of_cover": 3.5, "lost_units": 44.0,
                          "anomalies": []}}
    bare = {**po, "doc_type": "fulfilment_assignment", "line_id": 3, "risk_tier": "medium", "action": "assign",
            "value": 12.5, "tier_reasons": ["a|b"], "explanation": {}}
    order = {**ORDER, "line_id": 4, "risk_tier": "medium", "po_id": None, "po_line": None, "value": 960.0,
             "tier_reasons": ["medium_value"], "explanation": {**ORDER["explanation"], "anomalies": ["spike"]}}
    text = review_markdown(pd.DataFrame([order, po, bare]), "2026-11-27", top=3, currency="EUR")
    assert text.startswith("**3 lines worth 1,372.50 EUR** wait for a planner for 2026-11-27.")
    assert ("| replenishment #4 | medium | 120 | 960.00 | SKU00008 at DC01 will run out in 2.3 days: 24 units in "
            "stock") in text
    assert ("| po_exception #9 | high | 80 | 400.00 | PO PO7 line 1 from SUP001 is expected 9 days late (2026-11-29,"
            " promised 2026-11-20): DC02 has 3.5 days of cover, so 44 units of sales are at risk. Expedite it to "
            "keep those sales. |") in text
    assert "| fulfilment_assignment #3 | medium | 80 | 12.50 | tier reasons: a\\|b |" in text
    assert "1 of these lines involve a demand anomaly." in text
    assert review_markdown(pd.DataFrame(), "2026-11-27") == ""


def test_a_store_shipping_web_orders_says_when_it_starts_and_what_the_store_keeps():
    line = {"doc_type": "transfer", "action": "ship_from_store", "sku": "SKU00068", "from_location": "S0004",
            "to_location": "FC01", "quantity": 18.0,
            "explanation": {"channel": "online", "surge_ratio": 4.4, "surge_onset_hour": 17, "sold_since_onset": 30.0,
                            "expected_since_onset": 7.0, "hours_to_stockout": 1.0, "hours_to_arrive": 0.25,
                            "arrives_after_stockout": False, "margin_at_stake": 90.0, "move_cost": 29.7,
                            "donor_keeps": 12.0, "donor_need": 9.0}}
    assert line_story(line) == (
        "Online sales of SKU00068 at FC01 run at 4.4x the forecast since 17:00 (30 units sold vs 7 units expected); "
        "the stock runs out in 1 h and shipping web orders from S0004 starts in 15 min. It keeps 90.00 USD of margin "
        "for 29.70 USD of cost. S0004 keeps 12 units for the 9 units it expects to sell before its next delivery.")


def test_a_move_to_a_shelf_running_dry_says_what_it_expects_to_sell_and_that_nothing_surges():
    line = {"doc_type": "transfer", "action": "urgent_transfer", "sku": "SKU00123", "from_location": "S0002",
            "to_location": "S0001", "quantity": 9.0,
            "explanation": {"channel": "store", "reason": "stockout", "expected_before_next_delivery": 18.4,
                            "sold_today": 12.0, "expected_so_far": 11.2, "on_hand": 2.0, "hours_to_stockout": 1.5,
                            "hours_to_arrive": 3.0, "arrives_after_stockout": True, "margin_at_stake": 27.0,
                            "move_cost": 5.85}}
    assert line_story(line) == (
        "S0001 runs out of SKU00123 before its next delivery: 2 units in stock vs 18.4 units expected to sell "
        "(12 units sold today vs 11.2 units expected, no surge); the stock runs out in 1.5 h and the move arrives "
        "in 3 h, too late for part of it. It keeps 27.00 USD of margin for 5.85 USD of cost.")
    numbers = dict(line_numbers(line))
    assert numbers["expected to sell before the next delivery"] == "18.4 units"
    assert numbers["expected so far today"] == "11.2 units" and numbers["sold today"] == "12 units"
