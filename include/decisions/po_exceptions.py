"""PO exceptions: open purchase order lines predicted to arrive late or short, each with the stock-out it
would cause and the action that limits it, ranked by the units it would lose.

:func:`propose_po_exceptions` is also importable from :mod:`include.decisions.propose`, with the other
decision policies.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from include.decisions.lead_times import supplier_lead_times
from include.decisions.params import DEFAULT_PARAMS, PROPOSAL_COLUMNS, DecisionParams

__all__ = ["propose_po_exceptions"]


def propose_po_exceptions(
    open_pos: pd.DataFrame,
    supplier_stats: pd.DataFrame,
    suppliers: pd.DataFrame,
    inventory: pd.DataFrame,
    series: pd.DataFrame,
    locations: pd.DataFrame,
    ds: dt.date,
    *,
    alternates: pd.DataFrame | None = None,
    items: pd.DataFrame | None = None,
    params: DecisionParams = DEFAULT_PARAMS,
) -> pd.DataFrame:
    """Open PO lines predicted to arrive late or short, ranked by the stock-out they would cause.

    The expected arrival is the order date plus the supplier's planning lead time (the disruption
    detector's prediction, else the measured mean, else the promised lead time:
    :func:`include.decisions.lead_times.supplier_lead_times`), and never before tomorrow for a line
    still open. A line late by at least ``po_late_threshold_days`` is late; a line whose supplier's fill
    rate (``fill_rate`` in ``supplier_stats``: received over ordered units, when measured) is below
    ``po_short_fill_rate`` is short by ``remaining x (1 - fill_rate)``.

    Lost units: a late line loses the destination's demand between running out (its usable stock over
    its daily demand, its stores' included) and the expected arrival; a short line loses what the
    missing units would have served before a new order from the same supplier could arrive. The action:

    - ``cancel``: late, and the stock already there lasts ``po_cancel_cover_days`` beyond the arrival;
    - ``accept_delay``: no stock-out follows;
    - ``move_supplier``: late, and an alternate supplier of the SKU delivers the remaining quantity before
      the expected arrival;
    - ``split``: short, and an alternate supplier can deliver the missing part;
    - ``expedite``: otherwise, when a stock-out follows.

    The alternate is the best one (lowest ``rank``; the fastest when the frame has no rank) other than the
    line's supplier that fits: it delivers before the expected arrival (a move), its
    ``capacity_units_per_week`` (when given) holds the quantity moved and its ``moq_units`` (when given)
    does not exceed it. The explanation names it (or, when none fits, the best candidate, for the
    reviewer) with its unit cost, the extra cost of moving the quantity (``alternate_cost_delta``), the lead
    time against the line's supplier, its reliability and that against the line's supplier, and for a move
    or split ``margin_impact``: the unit margin (``items``: ``unit_price - unit_cost``) of the lost units
    the alternate avoids, minus the extra cost (``None`` without ``items``).

    Args:
        alternates: optional alternate sources per SKU: the ranked frame of
            :func:`include.procurement.alternates.rank_alternates`, or just ``sku, supplier_id,
            lead_time_days``; without them, lines are expedited or accepted.
        items: optional item master (``sku, unit_price, unit_cost``), for ``margin_impact``.
    """
    if open_pos.empty:
        return pd.DataFrame(columns=PROPOSAL_COLUMNS)
    stats = supplier_stats.set_index("supplier_id") if len(supplier_stats) else pd.DataFrame()
    po, lead = _at_risk_lines(open_pos, stats, suppliers, ds, params)
    if po.empty:
        return pd.DataFrame(columns=PROPOSAL_COLUMNS)
    where = _Destinations.of(inventory, series, locations)
    candidates = _candidates(alternates)
    margin = _unit_margins(items)
    reliability = _reliabilities(alternates)
    rows = []
    for i, r in po.iterrows():
        lead_time = float(lead.lead_time.loc[i])
        outlook = _outlook(r, lead_time, where, ds, params)
        choice = _choose_alternate(r, outlook, candidates.get(r["sku"]), lead_time)
        rate = stats["late_rate"].get(r["supplier_id"]) if "late_rate" in stats else None
        action = _action(outlook, choice, params)
        explanation = _explanation(r, outlook, lead_time, (lead.source.loc[i], bool(lead.flagged.loc[i])), choice,
                                   rate)
        explanation.update(_alternate_economics(r, outlook, choice, action, lead_time, margin.get(r["sku"]),
                                                reliability.get(r["supplier_id"])))
        rows.append(_exception_line(r, action, explanation))
    out = pd.DataFrame(rows, columns=PROPOSAL_COLUMNS)
    rank = out["explanation"].map(lambda e: e["lost_units"])
    return out.iloc[np.argsort(-rank.to_numpy(), kind="stable")].reset_index(drop=True)


@dataclass(frozen=True)
class _LeadTimes:
    """Per open line (indexed like it): the supplier lead time used, its source and whether the supplier is
    flagged as disrupted (:func:`include.decisions.lead_times.supplier_lead_times`)."""

    lead_time: pd.Series
    source: pd.Series
    flagged: pd.Series


def _at_risk_lines(open_pos: pd.DataFrame, stats: pd.DataFrame, suppliers: pd.DataFrame, ds: dt.date,
                   params: DecisionParams) -> tuple[pd.DataFrame, _LeadTimes]:
    """The open lines late or short, with ``expected_arrival``, ``late_days``, ``fill_rate``, ``remaining``
    and ``short_units``; and every line's supplier lead time.

    Args:
        stats: ``supplier_stats`` indexed by ``supplier_id`` (empty when there are none).
    """
    po = open_pos.copy()
    promised_lt = po["supplier_id"].map(suppliers.set_index("supplier_id")["promised_lead_time_days"]).astype(float)
    supplier = supplier_lead_times(po["supplier_id"], stats, promised_lt)
    lt = supplier["lead"]
    fill = (po["supplier_id"].map(stats["fill_rate"]).astype(float)
            if len(stats) and "fill_rate" in stats else pd.Series(np.nan, index=po.index))
    order_date = pd.to_datetime(po["order_date"])
    promised_date = pd.to_datetime(po["promised_date"])
    tomorrow = pd.Timestamp(ds) + pd.Timedelta(days=1)
    expected = (order_date + pd.to_timedelta(np.round(lt), unit="D")).clip(lower=tomorrow)
    po["expected_arrival"] = expected
    po["late_days"] = (expected - promised_date).dt.days
    po["fill_rate"] = fill
    po["remaining"] = (po["quantity_ordered"] - po["quantity_received"]).astype(float)
    po["short_units"] = np.where(fill < params.po_short_fill_rate, np.floor(po["remaining"] * (1 - fill.fillna(1))),
                                 0.0)
    po = po[(po["late_days"] >= params.po_late_threshold_days) | (po["short_units"] > 0)]
    return po, _LeadTimes(lt, supplier["source"], supplier["flagged"])


@dataclass(frozen=True)
class _Destinations:
    """Stock and demand at the lines' destinations."""

    #: Usable stock (on hand + in transit - allocated) by ``(location_id, sku)``.
    usable: pd.Series
    #: Mean daily demand by ``unique_id`` (``location|sku``).
    mean_daily: pd.Series
    #: Locations by ``location_id``.
    loc: pd.DataFrame

    @classmethod
    def of(cls, inventory: pd.DataFrame, series: pd.DataFrame, locations: pd.DataFrame) -> _Destinations:
        inv = inventory.set_index(["location_id", "sku"])
        usable = (inv["on_hand"] + inv["in_transit"] - inv["allocated"]).astype(float)
        mean_daily = series.set_index("unique_id")["mean_daily"] if len(series) else pd.Series(dtype=float)
        return cls(usable, mean_daily, locations.set_index("location_id"))

    def daily_demand(self, dest: str, sku: str) -> float:
        """The destination's own mean daily demand of ``sku``; a DC's demand is its stores' demand."""
        loc, mean_daily = self.loc, self.mean_daily
        stores = loc.index[(loc["parent_dc"] == dest)].tolist() if "parent_dc" in loc else []
        return float(mean_daily.get(f"{dest}|{sku}", 0.0)) + sum(float(mean_daily.get(f"{s}|{sku}", 0.0))
                                                                 for s in stores)


def _candidates(alternates: pd.DataFrame | None) -> dict[str, pd.DataFrame]:
    """Alternate sources per SKU, best first: by ``rank`` when the frame is ranked, else by lead time."""
    if alternates is None or not len(alternates):
        return {}
    order = ["rank", "lead_time_days"] if "rank" in alternates else ["lead_time_days"]
    ranked = alternates.sort_values(order, kind="stable")
    return {sku: group for sku, group in ranked.groupby("sku", sort=False)}


def _unit_margins(items: pd.DataFrame | None) -> dict[str, float]:
    """``unit_price - unit_cost`` by SKU, when the item master is given."""
    if items is None or not {"sku", "unit_price", "unit_cost"} <= set(items.columns):
        return {}
    return dict(zip(items["sku"], (items["unit_price"] - items["unit_cost"]).astype(float), strict=True))


def _reliabilities(alternates: pd.DataFrame | None) -> dict[str, float]:
    """Reliability (0..100) of every supplier the ranked frame scores, as an alternate or as a primary."""
    if alternates is None or "reliability" not in alternates:
        return {}
    pairs = [alternates[["supplier_id", "reliability"]]]
    if {"primary_supplier_id", "primary_reliability"} <= set(alternates.columns):
        pairs.append(alternates[["primary_supplier_id", "primary_reliability"]].set_axis(
            ["supplier_id", "reliability"], axis=1))
    known = pd.concat(pairs).dropna().drop_duplicates("supplier_id")
    return dict(zip(known["supplier_id"], known["reliability"].astype(float), strict=True))


@dataclass(frozen=True)
class _Choice:
    """The alternate reported for one line: whether it fits, for what, and the quantity it would take."""

    alt: dict
    fits: bool
    need: str  # "move" (late), "split" (short) or "" (no stock-out to limit)
    quantity: float

    @property
    def supplier_id(self) -> str:
        return self.alt["supplier_id"]

    @property
    def lead_time_days(self) -> float:
        return float(self.alt["lead_time_days"])


def _fits(group: pd.DataFrame, quantity: float) -> np.ndarray:
    """Alternates whose weekly capacity holds ``quantity`` and whose minimum order does not exceed it."""
    ok = np.ones(len(group), dtype=bool)
    if "capacity_units_per_week" in group:
        cap = group["capacity_units_per_week"].to_numpy(float)
        ok &= np.isnan(cap) | (cap >= quantity)
    if "moq_units" in group:
        moq = group["moq_units"].to_numpy(float)
        ok &= np.isnan(moq) | (moq <= quantity)
    return ok


def _choose_alternate(r: pd.Series, o: _Outlook, group: pd.DataFrame | None, lead_time: float) -> _Choice | None:
    """The best alternate of line ``r`` that fits the move (late) or the split (short); else the best candidate."""
    if group is None:
        return None
    group = group[group["supplier_id"] != r["supplier_id"]]
    if group.empty:
        return None
    arrival = np.maximum(1.0, group["lead_time_days"].to_numpy(float))
    needs = []
    if o.lost_late > 0:
        needs.append(("move", float(r["remaining"]), arrival < o.days_to_arrival))
    if o.lost_short > 0:
        needs.append(("split", float(r["short_units"]), np.ones(len(group), dtype=bool)))
    for need, quantity, in_time in needs:
        ok = in_time & _fits(group, quantity)
        if ok.any():
            return _Choice(group.iloc[int(np.argmax(ok))].to_dict(), True, need, quantity)
    need, quantity = (needs[0][0], needs[0][1]) if needs else ("", float(r["remaining"]))
    return _Choice(group.iloc[0].to_dict(), False, need, quantity)


def _alternate_economics(r: pd.Series, o: _Outlook, choice: _Choice | None, action: str, lead_time: float,
                         unit_margin: float | None, supplier_reliability: float | None) -> dict:
    """Cost, lead time, reliability and margin of the reported alternate against the line's supplier."""
    def number(value) -> float | None:
        return None if value is None or pd.isna(value) else float(value)

    if choice is None:
        return {"alternate_unit_cost": None, "alternate_cost_delta": None, "alternate_lead_time_delta_days": None,
                "alternate_reliability": None, "alternate_reliability_delta": None, "alternate_fits": None,
                "margin_impact": None}
    unit_cost = number(choice.alt.get("unit_cost"))
    extra = None if unit_cost is None else round(choice.quantity * (unit_cost - float(r["unit_cost"])), 2)
    reliability = number(choice.alt.get("reliability"))
    delta = number(choice.alt.get("reliability_delta"))
    if reliability is not None and supplier_reliability is not None:
        delta = reliability - supplier_reliability  # against the line's supplier, not the SKU's primary
    margin = None
    if action in ("move_supplier", "split") and unit_margin is not None and extra is not None:
        arrival = max(1.0, choice.lead_time_days)
        if action == "move_supplier":
            still_lost = o.daily * max(0.0, arrival - o.cover_days) if math.isfinite(o.cover_days) else 0.0
            avoided = max(0.0, o.lost_late - still_lost)
        else:
            avoided = o.lost_short if arrival < o.days_to_arrival + lead_time else 0.0
        margin = round(avoided * unit_margin - extra, 2)
    return {
        "alternate_unit_cost": unit_cost, "alternate_cost_delta": extra,
        "alternate_lead_time_delta_days": round(choice.lead_time_days - lead_time, 1),
        "alternate_reliability": reliability,
        "alternate_reliability_delta": None if delta is None else round(delta, 2),
        "alternate_fits": choice.fits, "margin_impact": margin,
    }


@dataclass(frozen=True)
class _Outlook:
    """What one line's delay or shortfall does at its destination."""

    cover_days: float
    daily: float
    days_to_arrival: int
    late: bool
    stockout_days: float
    lost_late: float
    lost_short: float

    @property
    def lost(self) -> float:
        return self.lost_late + self.lost_short


def _outlook(r: pd.Series, lead_time: float, where: _Destinations, ds: dt.date, params: DecisionParams) -> _Outlook:
    """Days of cover at the destination of line ``r``, and the units lost to its delay and to its shortfall."""
    dest, sku = r["destination_location_id"], r["sku"]
    daily = where.daily_demand(dest, sku)
    stock = float(where.usable.get((dest, sku), 0.0))
    cover_days = stock / daily if daily > 0 else float("inf")
    days_to_arrival = (r["expected_arrival"] - pd.Timestamp(ds)).days
    late = r["late_days"] >= params.po_late_threshold_days
    stockout_days = max(0.0, days_to_arrival - cover_days) if late and math.isfinite(cover_days) else 0.0
    lost_late = stockout_days * daily
    remaining, short = float(r["remaining"]), float(r["short_units"])
    # The short part is missed until a new order from the same supplier could arrive.
    wait = days_to_arrival + lead_time
    lost_short = min(short, max(0.0, daily * wait - stock - (remaining - short))) if short > 0 else 0.0
    return _Outlook(cover_days, daily, days_to_arrival, late, stockout_days, lost_late, lost_short)


def _action(o: _Outlook, choice: _Choice | None, params: DecisionParams) -> str:
    """What to do about a line with outlook ``o``, given the alternate chosen for it."""
    # Unknown demand (no forecast) never cancels a line: cover is then infinite.
    if o.late and math.isfinite(o.cover_days) and o.cover_days - o.days_to_arrival >= params.po_cancel_cover_days:
        return "cancel"
    if o.lost <= 0:
        return "accept_delay"
    if choice is not None and choice.fits:
        return "move_supplier" if choice.need == "move" else "split"
    return "expedite"


def _explanation(r: pd.Series, o: _Outlook, lead_time: float, source: tuple[str, bool], alternate: _Choice | None,
                 late_rate: float | None) -> dict:
    """The numbers behind one exception line, rounded for a reviewer; ``source``: where the supplier lead
    time came from, and whether the supplier is flagged as disrupted."""
    short = float(r["short_units"])
    return {
        "reasons": (["late"] if o.late else []) + (["short"] if short > 0 else []),
        "promised_date": pd.Timestamp(r["promised_date"]).date().isoformat(),
        "expected_arrival": r["expected_arrival"].date().isoformat(),
        "late_days": int(r["late_days"]), "supplier_lead_time_days": float(lead_time),
        "supplier_lead_time_source": source[0], "supplier_disruption_flagged": source[1],
        "supplier_fill_rate": None if pd.isna(r["fill_rate"]) else float(r["fill_rate"]),
        "expected_short_units": short,
        "days_of_cover": None if not math.isfinite(o.cover_days) else round(o.cover_days, 1),
        "projected_stockout_days": round(o.stockout_days, 1),
        "lost_units_if_late": round(o.lost_late, 1),
        "lost_units_if_short": round(o.lost_short, 1),
        "lost_units": round(o.lost, 1),
        "alternate_supplier": None if alternate is None else alternate.supplier_id,
        "alternate_lead_time_days": None if alternate is None else alternate.lead_time_days,
        "supplier_late_rate": None if late_rate is None or pd.isna(late_rate) else float(late_rate),
        "anomalies": [],
    }


def _exception_line(r: pd.Series, action: str, explanation: dict) -> dict:
    """The ``po_exception`` proposal line of open line ``r``."""
    remaining = float(r["remaining"])
    return {
        "doc_type": "po_exception", "business_key": f"po:{r['po_id']}-{int(r['po_line'])}", "sku": r["sku"],
        "from_location": None, "to_location": r["destination_location_id"], "supplier_id": r["supplier_id"],
        "po_id": r["po_id"], "po_line": int(r["po_line"]), "action": action, "quantity": remaining,
        "unit_cost": float(r["unit_cost"]), "value": round(remaining * float(r["unit_cost"]), 2),
        "need_by": pd.Timestamp(r["promised_date"]).date(),
        "explanation": explanation,
    }
