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
    params: DecisionParams = DEFAULT_PARAMS,
) -> pd.DataFrame:
    """Open PO lines predicted to arrive late or short, ranked by the stock-out they would cause.

    The expected arrival is the order date plus the supplier's measured mean lead time (its promised
    lead time when it has no history), and never before tomorrow for a line still open. A line late by
    at least ``po_late_threshold_days`` is late; a line whose supplier's fill rate (``fill_rate`` in
    ``supplier_stats``: received over ordered units, when measured) is below
    ``po_short_fill_rate`` is short by ``remaining x (1 - fill_rate)``.

    Lost units: a late line loses the destination's demand between running out (its usable stock over
    its daily demand, its stores' included) and the expected arrival; a short line loses what the
    missing units would have served before a new order from the same supplier could arrive. The action:

    - ``cancel``: late, and the stock already there lasts ``po_cancel_cover_days`` beyond the arrival;
    - ``accept_delay``: no stock-out follows;
    - ``move_supplier``: late, and an alternate supplier of the SKU delivers before the expected arrival
      (``alternates``: ``sku, supplier_id, lead_time_days``);
    - ``split``: short, and an alternate supplier exists for the missing part;
    - ``expedite``: otherwise, when a stock-out follows.

    Args:
        alternates: optional alternate sources per SKU; without them, lines are expedited or accepted.
    """
    if open_pos.empty:
        return pd.DataFrame(columns=PROPOSAL_COLUMNS)
    stats = supplier_stats.set_index("supplier_id") if len(supplier_stats) else pd.DataFrame()
    po, lead = _at_risk_lines(open_pos, stats, suppliers, ds, params)
    if po.empty:
        return pd.DataFrame(columns=PROPOSAL_COLUMNS)
    where = _Destinations.of(inventory, series, locations)
    fastest = _fastest_alternates(alternates)
    rows = []
    for i, r in po.iterrows():
        outlook = _outlook(r, float(lead.lead_time.loc[i]), where, ds, params)
        alternate = fastest.get(r["sku"])
        rate = stats["late_rate"].get(r["supplier_id"]) if len(stats) else None
        explanation = _explanation(r, outlook, lead.lead_time.loc[i], lead.measured.loc[i], alternate, rate)
        rows.append(_exception_line(r, _action(outlook, alternate, params), explanation))
    out = pd.DataFrame(rows, columns=PROPOSAL_COLUMNS)
    rank = out["explanation"].map(lambda e: e["lost_units"])
    return out.iloc[np.argsort(-rank.to_numpy(), kind="stable")].reset_index(drop=True)


@dataclass(frozen=True)
class _LeadTimes:
    """Per open line (indexed like it): the supplier lead time used, and the measured one (``NaN`` when none)."""

    lead_time: pd.Series
    measured: pd.Series


def _at_risk_lines(open_pos: pd.DataFrame, stats: pd.DataFrame, suppliers: pd.DataFrame, ds: dt.date,
                   params: DecisionParams) -> tuple[pd.DataFrame, _LeadTimes]:
    """The open lines late or short, with ``expected_arrival``, ``late_days``, ``fill_rate``, ``remaining``
    and ``short_units``; and every line's supplier lead time.

    Args:
        stats: ``supplier_stats`` indexed by ``supplier_id`` (empty when there are none).
    """
    po = open_pos.copy()
    promised_lt = po["supplier_id"].map(suppliers.set_index("supplier_id")["promised_lead_time_days"]).astype(float)
    measured = po["supplier_id"].map(stats["mean_lead_time"]).astype(float) if len(stats) else promised_lt * np.nan
    lt = measured.fillna(promised_lt)
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
    return po, _LeadTimes(lt, measured)


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


def _fastest_alternates(alternates: pd.DataFrame | None) -> dict[str, tuple[str, float]]:
    """The fastest alternate ``(supplier_id, lead_time_days)`` of each SKU that has one."""
    alt_lt: dict[str, tuple[str, float]] = {}
    if alternates is not None and len(alternates):
        for alt in alternates.sort_values("lead_time_days").itertuples():
            alt_lt.setdefault(alt.sku, (alt.supplier_id, float(alt.lead_time_days)))
    return alt_lt


@dataclass(frozen=True)
class _Outlook:
    """What one line's delay or shortfall does at its destination."""

    cover_days: float
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
    return _Outlook(cover_days, days_to_arrival, late, stockout_days, lost_late, lost_short)


def _action(o: _Outlook, alternate: tuple[str, float] | None, params: DecisionParams) -> str:
    """What to do about a line with outlook ``o``, given the fastest alternate supplier of its SKU."""
    alt_arrival_days = None if alternate is None else max(1.0, alternate[1])
    # Unknown demand (no forecast) never cancels a line: cover is then infinite.
    if o.late and math.isfinite(o.cover_days) and o.cover_days - o.days_to_arrival >= params.po_cancel_cover_days:
        return "cancel"
    if o.lost <= 0:
        return "accept_delay"
    if o.lost_late > 0 and alt_arrival_days is not None and alt_arrival_days < o.days_to_arrival:
        return "move_supplier"
    if o.lost_short > 0 and alternate is not None:
        return "split"
    return "expedite"


def _explanation(r: pd.Series, o: _Outlook, lead_time: float, measured: float, alternate: tuple[str, float] | None,
                 late_rate: float | None) -> dict:
    """The numbers behind one exception line, rounded for a reviewer."""
    short = float(r["short_units"])
    return {
        "reasons": (["late"] if o.late else []) + (["short"] if short > 0 else []),
        "promised_date": pd.Timestamp(r["promised_date"]).date().isoformat(),
        "expected_arrival": r["expected_arrival"].date().isoformat(),
        "late_days": int(r["late_days"]), "supplier_lead_time_days": float(lead_time),
        "supplier_lead_time_source": "promised" if pd.isna(measured) else "measured",
        "supplier_fill_rate": None if pd.isna(r["fill_rate"]) else float(r["fill_rate"]),
        "expected_short_units": short,
        "days_of_cover": None if not math.isfinite(o.cover_days) else round(o.cover_days, 1),
        "projected_stockout_days": round(o.stockout_days, 1),
        "lost_units_if_late": round(o.lost_late, 1),
        "lost_units_if_short": round(o.lost_short, 1),
        "lost_units": round(o.lost, 1),
        "alternate_supplier": None if alternate is None else alternate[0],
        "alternate_lead_time_days": None if alternate is None else alternate[1],
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
