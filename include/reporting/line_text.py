"""What a staged line says to the person deciding it: one or two sentences of why it exists, and its numbers
with their units.

The sentences are written from the line and the explanation its workflow staged, when the page shows the line
(so every line staged since its workflow wrote those numbers reads the same way); a workflow that writes its
own sentence (``explanation["why"]``: fulfilment, returns, finance review) keeps it. :func:`line_numbers`
labels and formats every number of the explanation (units, days, hours, money in the policy's currency,
shares as percentages) and leaves out what is empty.

Example: ``SKU00008 at S0003 will run out in 2 days: 24 units in stock vs 41 forecast over the 4-day lead
time. Supplier SUP002 has been late on 20% of recent deliveries.``
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["line_numbers", "line_story", "usable_stock"]

#: The usable stock an explanation gives: these add, the others subtract.
_STOCK_IN, _STOCK_OUT = ("on_hand", "in_transit", "returns_to_stock"), ("allocated", "backorders")

#: Explanation keys that are not numbers for a reviewer: the sentence itself, what the override control offers,
#: and the markers the page shows otherwise (the critical badge).
HIDDEN = frozenset({"why", "source_options", "critical"})
#: Labels that say more than the key.
LABELS = {
    "forecast_over_lead_time": "forecast over lead time",
    "forecast_error_over_lead_time": "forecast error over lead time",
    "demand_sigma_with_lead_time_spread": "demand spread with lead-time variability",
    "fill_rate_target": "fill-rate target",
    "fill_rate_planned": "fill rate planned (after the fill achieved)",
    "usual_quantity": "usual quantity per order cycle",
    "backtest_mase": "backtest MASE",
    "supplier_late_rate": "supplier late rate",
    "surge_ratio": "sales vs forecast",
    "evidence_log_likelihood_ratio": "evidence (log-likelihood ratio)",
    "locations_solved_together": "locations solved together",
    "donor_need": "donor's own need until its next delivery",
    "lost_before_arrival": "units short before it arrives",
    "already_moving_in": "units already on their way from earlier moves",
    "expected_before_next_delivery": "expected to sell before the next delivery",
    "expected_so_far": "expected so far today",
    "returns_to_stock": "returned units going back to the shelf",
}
#: Keys of a kind their name does not tell.
KINDS = {
    "surge_ratio": "ratio", "safety_factor": "plain", "backtest_mase": "plain", "robust_z": "plain",
    "evidence_log_likelihood_ratio": "plain", "locations_solved_together": "count", "surge_onset_hour": "clock",
    "inventory_position": "units", "on_hand": "units", "in_transit": "units", "returns_to_stock": "units",
    "on_order": "units", "allocated": "units", "backorders": "units", "safety_stock": "units", "reorder_point": "units",
    "order_up_to": "units", "donor_excess": "units", "donor_spare": "units", "donor_keeps": "units",
    "donor_need": "units", "receiver_usable_stock": "units", "lost_before_arrival": "units",
    "already_moving_in": "units", "sold_today": "units", "expected_so_far": "units",
    "expected_before_next_delivery": "units",
    "receiver_shortfall": "units", "sold_since_onset": "units", "expected_since_onset": "units",
    "mean_daily_forecast": "units/day", "alternate_reliability": "plain", "alternate_reliability_delta": "plain",
    "fraud_score": "share", "fill_rate_planned": "share", "score": "plain", "review_rank": "count", "late_days": "days", "qty": "units",
}
_SUFFIX_KINDS = (
    (re.compile(r"(_days$|^days_)"), "days"),
    (re.compile(r"(^hours_|_hours$|_h$)"), "hours"),
    (re.compile(r"(rate|share|pct|_target)$"), "share"),
    (re.compile(r"(cost|value|margin|loss|losses|benefit|refund|price|amount|impact|spend|saving|recovery|credit)"),
     "money"),
    (re.compile(r"(units|quantity|forecast|demand|stock|sigma)"), "units"),
)


def line_story(line: Mapping[str, Any], currency: str = "USD") -> str | None:
    """One or two sentences of why ``line`` exists, from its fields and explanation (money in ``currency``);
    ``None`` when its document type has no story and its workflow wrote no sentence."""
    e = line.get("explanation") or {}
    if e.get("why"):
        return str(e["why"])
    doc, action = line.get("doc_type"), str(line.get("action") or "")
    if action.startswith("urgent_") or action in ("raise_order", "ship_from_store"):
        return _intraday(line, e, currency)
    if doc == "po_exception":
        return _po_exception(line, e, currency)
    if doc == "transfer" and action == "rebalance":
        return _rebalance(line, e, currency)
    if doc in ("replenishment", "transfer"):
        return _replenish(line, e)
    return None


def line_numbers(line: Mapping[str, Any], currency: str = "USD") -> list[tuple[str, str]]:
    """``(label, formatted value)`` of every number of the line's explanation, in its order; empty values
    (``None``, empty lists) and the keys of :data:`HIDDEN` left out."""
    out = []
    for key, value in (line.get("explanation") or {}).items():
        if key in HIDDEN:
            continue
        text = _format(key, value, currency)
        if text:
            # The unit is in the value: "lead time: 4 days", not "lead time days: 4 days".
            label = key.removesuffix("_days") if _kind(key) == "days" else key
            out.append((LABELS.get(key, label.replace("_", " ")), text))
    return out


def usable_stock(explanation: Mapping[str, Any], prefix: str = "") -> float | None:
    """On hand + in transit + returns to stock - allocated - backorders of an explanation (``prefix``: the source's, as
    ``source_on_hand``), a missing term taken as 0; ``None`` without ``on_hand``."""
    if _num(explanation, f"{prefix}on_hand") is None:
        return None
    total = sum(_num(explanation, f"{prefix}{k}") or 0.0 for k in _STOCK_IN)
    return total - sum(_num(explanation, f"{prefix}{k}") or 0.0 for k in _STOCK_OUT)


# --- the sentences -------------------------------------------------------------------------------------------


def _replenish(line: Mapping[str, Any], e: Mapping[str, Any]) -> str | None:
    """A supplier order or a DC -> store transfer: when the stock runs out against the forecast, and why
    its source may be late."""
    sku, at = line.get("sku"), line.get("to_location")
    lead, fc = _num(e, "lead_time_days"), _num(e, "forecast_over_lead_time")
    if lead is None or fc is None:
        return None
    usable = usable_stock(e) or 0.0
    daily = _num(e, "mean_daily_forecast")
    order = line.get("doc_type") != "transfer"
    cover = usable / daily if daily and daily > 0 else None
    if usable <= 0:
        first = f"{sku} at {at} is out of stock, with {_units(fc)} forecast over the {_days(lead, adjective=True)} lead time"
    elif cover is not None and cover < lead:
        first = (f"{sku} at {at} will run out in {_days(cover)}: {_units(usable)} in stock vs "
                 f"{_units(fc)} forecast over the {_days(lead, adjective=True)} lead time")
    else:
        position, point = _num(e, "inventory_position"), _num(e, "reorder_point")
        first = f"{sku} at {at} is below its reorder point"
        if position is not None and point is not None:
            first += (f": {_units(position)} in stock and on order vs {_units(point)} ({_units(fc)} forecast over "
                      f"the {_days(lead, adjective=True)} lead time plus safety stock)")
    up_to = _num(e, "order_up_to")
    if up_to is not None:
        origin = line.get("supplier_id") if order else line.get("from_location")
        first += f"; {'ordering' if order else 'moving'} {_units(line.get('quantity'))}" \
                 f"{' from ' + str(origin) if origin else ''} brings it up to {_units(up_to)}"
    first += "."
    second = []
    supplier, rate = line.get("supplier_id"), _num(e, "supplier_late_rate")
    if supplier and e.get("supplier_disruption_flagged"):
        second.append(f"Supplier {supplier} is flagged as disrupted")
    elif supplier and rate is not None and rate >= 0.1:
        second.append(f"Supplier {supplier} has been late on {rate:.0%} of recent deliveries")
    if e.get("anomalies"):
        second.append(f"demand anomal{'ies' if len(e['anomalies']) > 1 else 'y'} today: "
                      + ", ".join(str(a).replace("_", " ") for a in e["anomalies"]))
    return first + (" " + _sentence("; ".join(second)) if second else "")


def _rebalance(line: Mapping[str, Any], e: Mapping[str, Any], currency: str) -> str | None:
    """A store -> store move: the receiver's shortfall, the donor's excess, and what the move is worth."""
    short, excess = _num(e, "receiver_shortfall"), _num(e, "donor_excess")
    if short is None or excess is None:
        return None
    first = (f"{line.get('to_location')} is {_units(short)} short of {line.get('sku')} before its next delivery "
             f"({_units(_num(e, 'receiver_usable_stock'))} in stock vs "
             f"{_units(_num(e, 'receiver_forecast_over_lead_time'))} forecast), while {line.get('from_location')} "
             f"holds {_units(excess)} more than it needs.")
    margin, cost = _num(e, "margin_at_risk"), _num(e, "transfer_cost")
    if margin is None or cost is None:
        return first
    return first + (f" Moving {_units(line.get('quantity'))} keeps {_money(margin, currency)} of margin for "
                    f"{_money(cost, currency)} of transport.")


def _intraday(line: Mapping[str, Any], e: Mapping[str, Any], currency: str) -> str | None:
    """An urgent move of the day: the surge (or the shelf running dry), when the stock runs out, and when the
    move arrives."""
    ratio = _num(e, "surge_ratio")
    if e.get("reason") == "stockout":
        first = (f"{line.get('to_location')} runs out of {line.get('sku')} before its next delivery: "
                 f"{_units(_num(e, 'on_hand'))} in stock vs {_units(_num(e, 'expected_before_next_delivery'))} "
                 f"expected to sell ({_units(_num(e, 'sold_today'))} sold today vs "
                 f"{_units(_num(e, 'expected_so_far'))} expected, no surge)")
    elif ratio is None:
        return None
    else:
        onset = _num(e, "surge_onset_hour")
        first = (f"{str(e.get('channel') or '').capitalize() or 'Demand'} sales of {line.get('sku')} at "
                 f"{line.get('to_location')} run at {ratio:.1f}x the forecast"
                 + (f" since {int(onset):02d}:00" if onset is not None else "")
                 + f" ({_units(_num(e, 'sold_since_onset'))} sold vs {_units(_num(e, 'expected_since_onset'))} "
                 "expected)")
    hours, arrive = _num(e, "hours_to_stockout"), _num(e, "hours_to_arrive")
    if hours is not None:
        first += "; it is out of stock now" if hours <= 0 else f"; the stock runs out in {_hours(hours)}"
    if arrive is not None:
        how = {"raise_order": "the order", "urgent_expedite": "the expedite",
               "ship_from_store": f"shipping web orders from {line.get('from_location')}"}.get(
            str(line.get("action")), "the move")
        lost = _num(e, "lost_before_arrival")
        late = (f", too late for the {_units(lost)} short before then" if lost else ", too late for part of it")
        verb = "starts" if line.get("action") == "ship_from_store" else "arrives"
        first += f" and {how} {verb} in {_hours(arrive)}" + (late if e.get("arrives_after_stockout") else "")
    margin, cost = _num(e, "margin_at_stake"), _num(e, "move_cost")
    second = (f" It keeps {_money(margin, currency)} of margin for {_money(cost, currency)} of cost."
              if margin is not None and cost is not None else "")
    keeps, need = _num(e, "donor_keeps"), _num(e, "donor_need")
    if keeps is not None and need is not None and line.get("action") in ("urgent_transfer", "ship_from_store"):
        second += (f" {line.get('from_location')} keeps {_units(keeps)} for the {_units(need)} it expects to sell "
                   f"before its next delivery.")
    return first + "." + second


#: What each PO exception action does, as the second sentence.
_PO_ACTIONS: dict[str, Callable[[Mapping[str, Any], str], str]] = {
    "cancel": lambda e, c: "The stock on hand covers the wait: cancel the line.",
    "accept_delay": lambda e, c: "No sales are lost by waiting: accept the delay.",
    "expedite": lambda e, c: "Expedite it to keep those sales.",
    "move_supplier": lambda e, c: (f"Move it to {e.get('alternate_supplier')}"
                                   + (f" ({_days(_num(e, 'alternate_lead_time_days'))} lead time)"
                                      if _num(e, "alternate_lead_time_days") is not None else "")
                                   + _impact(e, c) + "."),
    "split": lambda e, c: f"Order the short part from {e.get('alternate_supplier')}{_impact(e, c)}.",
}


def _impact(e: Mapping[str, Any], currency: str) -> str:
    impact = _num(e, "margin_impact")
    return "" if impact is None else f", margin impact {_money(impact, currency)}"


def _po_exception(line: Mapping[str, Any], e: Mapping[str, Any], currency: str) -> str | None:
    """A late or short purchase-order line: how late or short, what it costs in sales, and what to do."""
    late, short = _num(e, "late_days") or 0, _num(e, "expected_short_units") or 0
    what = []
    if "late" in (e.get("reasons") or []):
        what.append(f"expected {_days(late)} late ({e.get('expected_arrival')}, promised {e.get('promised_date')})")
    if short > 0:
        what.append(f"{_units(short)} short")
    if not what:
        return None
    po = f"PO {line.get('po_id')} line {_id(line.get('po_line'))} from {line.get('supplier_id')} is {' and '.join(what)}"
    lost, cover = _num(e, "lost_units"), _num(e, "days_of_cover")
    if lost:
        po += (f": {line.get('to_location')} has {_days(cover)} of cover, so {_units(lost)} of sales are at risk"
               if cover is not None else f": {_units(lost)} of sales are at risk")
    action = _PO_ACTIONS.get(str(line.get("action")))
    return po + "." + (" " + action(e, currency) if action else "")


# --- formatting ----------------------------------------------------------------------------------------------


def _kind(key: str) -> str:
    if key in KINDS:
        return KINDS[key]
    for pattern, kind in _SUFFIX_KINDS:
        if pattern.search(key):
            return kind
    return "plain"


def _format(key: str, value: Any, currency: str) -> str:
    """``value`` for a reader, by what its key measures; ``""`` for nothing to show."""
    if value is None or value == [] or value == {} or value == "":
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list | tuple):
        return ", ".join(str(v).replace("_", " ") for v in value)
    if isinstance(value, dict):
        parts = ((k, _format(k, v, currency)) for k, v in value.items())
        return "; ".join(f"{k.replace('_', ' ')} {text}" for k, text in parts if text)
    if not isinstance(value, int | float):
        return str(value).replace("_", " ") if re.fullmatch(r"[a-z_]+", str(value)) else str(value)
    if isinstance(value, float) and not math.isfinite(value):
        return ""
    kind = _kind(key)
    if kind == "money":
        return _money(value, currency)
    if kind == "share" and -1.5 <= value <= 1.5:
        return f"{value:.1%}".replace(".0%", "%")
    if kind == "units":
        return _units(value)
    if kind == "units/day":
        return f"{_plain(value)} units/day"
    if kind == "days":
        return _days(value)
    if kind == "hours":
        return _hours(value)
    if kind == "ratio":
        return f"{value:.2f}x"
    if kind == "clock":
        return f"{int(value):02d}:00"
    return _plain(value)


def _num(e: Mapping[str, Any], key: str) -> float | None:
    value = e.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)


def _plain(value: float) -> str:
    """``1,234``, ``12.5``, ``0.25``: no trailing zeros, at most two decimals."""
    text = f"{value:,.2f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def _units(value: Any) -> str:
    if value is None:
        return "? units"
    value = float(value)
    return f"{_plain(round(value, 1))} unit{'' if value == 1 else 's'}"


def _days(value: float | None, *, adjective: bool = False) -> str:
    if value is None:
        return "? days"
    if adjective:
        return f"{_plain(round(value, 1))}-day"
    return f"{_plain(round(value, 1))} day{'' if value == 1 else 's'}"


def _hours(value: float) -> str:
    """Hours as ``3.5 h``; under an hour, in minutes (``15 min``)."""
    return f"{round(value * 60)} min" if 0 < value < 1 else f"{_plain(round(value, 1))} h"


def _money(value: float | None, currency: str) -> str:
    return "?" if value is None else f"{value:,.2f} {currency}"


def _id(value: Any) -> Any:
    """A line number as it was written: ``2``, not the ``2.0`` a frame with empty rows makes of it."""
    return int(value) if isinstance(value, float) and value.is_integer() else value


def _sentence(text: str) -> str:
    return text[:1].upper() + text[1:] + ("" if text.endswith(".") else ".")
