"""The other sources a planner may switch a line to: alternate suppliers of an order, other DCs of a transfer.

A replenishment line is proposed from the SKU's primary supplier and a transfer from the store's parent DC;
the planner who knows better (a supplier on strike, a DC short of labour) may approve the line from another
source instead (``include.erp.approvals.override_line``). The choices are fixed when the line is proposed and
kept in its explanation as ``source_options``, so the approval checks the planner's pick against what the
night saw, and the line carries the cost the night priced it at:

- an order's options are the SKU's best-ranked alternate suppliers of the supplier catalogue
  (:func:`include.procurement.alternates.rank_alternates`) with their cost, lead time, MOQ and reliability;
- a transfer's options are the other distribution centres whose free stock (on hand less allocated) of the
  SKU covers the line, those of the destination's region first, then by free stock.
"""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

__all__ = ["MAX_OPTIONS", "SUPPLIER_OPTION_FIELDS", "with_source_options"]

#: How many other sources a line offers.
MAX_OPTIONS = 3
#: The alternate's fields an order's option keeps.
SUPPLIER_OPTION_FIELDS = ("supplier_id", "unit_cost", "lead_time_days", "moq_units", "case_pack", "reliability")


def with_source_options(lines: pd.DataFrame, *, alternates: pd.DataFrame | None, inventory: pd.DataFrame,
                        locations: pd.DataFrame, top: int = MAX_OPTIONS) -> pd.DataFrame:
    """``lines`` with ``explanation["source_options"]`` on each replenishment and transfer line that has
    another source (lines without one are left as they are).

    Args:
        lines: proposal lines (``doc_type, sku, supplier_id, from_location, to_location, quantity,
            explanation``).
        alternates: ranked alternate suppliers per SKU, or ``None`` (orders get no options).
        inventory: the night's inventory snapshot (``location_id, sku, on_hand, allocated``).
        locations: the location master (``location_id, location_type, region``).
        top: at most this many options per line.
    """
    if not len(lines):
        return lines
    suppliers = _supplier_options(alternates, top)
    stocks = _dc_stock(inventory, locations)
    region = locations.set_index("location_id")["region"].to_dict() if len(locations) else {}
    explanations = []
    for doc_type, sku, supplier, origin, dest, qty, explanation in zip(
            lines["doc_type"], lines["sku"], lines["supplier_id"], lines["from_location"], lines["to_location"],
            lines["quantity"], lines["explanation"], strict=True):
        options: list[dict[str, Any]] = []
        if doc_type == "replenishment" and supplier:
            options = [o for o in suppliers.get(sku, []) if o["supplier_id"] != supplier]
        elif doc_type == "transfer" and origin:
            options = _dc_options(stocks.get(sku), float(qty), {origin, dest}, region.get(dest), top)
        if options and isinstance(explanation, dict):
            explanation = {**explanation, "source_options": options[:top]}
        explanations.append(explanation)
    return lines.assign(explanation=explanations)


def _supplier_options(alternates: pd.DataFrame | None, top: int) -> dict[str, list[dict[str, Any]]]:
    """SKU -> its best ``top`` alternates (one more, in case one is the line's own supplier), in rank order."""
    if alternates is None or not len(alternates):
        return {}
    ranked = alternates.sort_values(["sku", "rank"], kind="stable") if "rank" in alternates else alternates
    ranked = ranked[ranked.groupby("sku").cumcount() < top + 1]
    out: dict[str, list[dict[str, Any]]] = {}
    for row in ranked.itertuples(index=False):
        out.setdefault(row.sku, []).append({name: _plain(getattr(row, name, None)) for name in SUPPLIER_OPTION_FIELDS})
    return out


def _dc_stock(inventory: pd.DataFrame, locations: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """SKU -> the distribution centres holding it, with their free stock (``location_id, region, free``)."""
    if not len(inventory) or not len(locations):
        return {}
    dcs = locations.loc[locations["location_type"] == "dc", ["location_id", "region"]]
    stock = inventory.merge(dcs, on="location_id", how="inner")
    stock = stock.assign(free=stock["on_hand"].astype(float) - stock["allocated"].fillna(0).astype(float))
    stock = stock[stock["free"] > 0]
    return {sku: frame[["location_id", "region", "free"]] for sku, frame in stock.groupby("sku", sort=False)}


def _dc_options(stock: pd.DataFrame | None, quantity: float, exclude: set, region: str | None,
                top: int) -> list[dict[str, Any]]:
    """The DCs whose free stock covers ``quantity``: the destination's region first, then the most free stock."""
    if stock is None:
        return []
    found = stock[(stock["free"] >= quantity) & ~stock["location_id"].isin(exclude)]
    if not len(found):
        return []
    found = found.assign(away=(found["region"] != region).astype(int)).sort_values(
        ["away", "free", "location_id"], ascending=[True, False, True], kind="stable")
    return [{"from_location": str(r.location_id), "region": str(r.region), "free_stock": round(float(r.free), 2)}
            for r in found.head(top).itertuples(index=False)]


def _plain(value: Any) -> Any:
    """A JSON-ready scalar: numpy numbers as Python ones, NaN as ``None``."""
    if value is None:
        return None
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float):
        return None if math.isnan(value) else round(value, 4)
    return value
