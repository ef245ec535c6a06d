"""Weekly supplier scorecards: delivery, lead time, price and quality metrics and a 0..100 reliability score.

A scorecard row describes one supplier (or one supplier x SKU) for the week ending ``week_end``
(inclusive), over the trailing window of ``weeks`` weeks ``[week_end - 7 * weeks + 1, week_end]``. Only
what is known on ``week_end`` is used: receipts dated after it are ignored (a line due in the window but
received later is not received), and the purchase orders' own ``quantity_received`` (the portal's current
figure) is never read; received units come from the receipts. A PO line may have several receipts.

Metrics (columns of :data:`SUPPLIER_COLUMNS`):

* ``lines_due``: PO lines not cancelled whose ``promised_date`` falls in the window;
  ``lines_received``: those of them that had received anything by ``week_end``;
* ``otif``: share of the lines due received complete (cumulative receipts >= ordered) by their promised date;
* ``fill_rate``: units received by ``week_end`` (capped at the ordered units per line) over units ordered,
  of the lines due;
* ``n_receipts``, ``lead_time_mean``, ``lead_time_p90``, ``lead_time_cv``: lead time (``received_date -
  order_date``, days) of the receipts dated in the window; the coefficient of variation needs two receipts;
* ``lead_time_trend_days_per_week``: Theil-Sen slope of the weekly median lead time against the receipt
  week (robust to an odd shipment), ``NaN`` with fewer than ``trend_min_weeks`` weeks with receipts;
* ``price_variance``: ``sum(q * (po_cost - contract_cost)) / sum(q * contract_cost)`` over the lines ordered
  in the window with a catalogue row for their supplier and SKU: the spend-weighted mean relative difference
  between the PO unit cost and the contract cost (positive: paying more than the contract); ``NaN``
  without a catalogue or without such lines;
* ``units_defective``, ``defect_rate``: units returned in the window with a defect reason
  (:data:`DEFECT_REASONS`) over units received in the window. A SKU's defective returns are shared among
  its suppliers in proportion to the units each delivered in the window (all to the item's primary
  supplier when nobody delivered it);
* ``reliability``: the weighted mean of the sub-scores (see :class:`ScorecardWeights`) times 100.

Per-window work is a handful of ``bincount``/``groupby`` passes over the window's rows; there is no loop
over lines or receipts. :func:`scorecard_history` normalises the inputs once and slices them per week.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from dataclasses import dataclass

import numpy as np
import pandas as pd

__all__ = [
    "DEFECT_REASONS", "SUPPLIER_COLUMNS", "SUPPLIER_ITEM_COLUMNS", "ScorecardWeights", "scorecard_history",
    "weekly_scorecards",
]

#: Return reasons that count against the supplier (``include.sample_data.generator`` return reasons);
#: ``changed_mind``, ``wrong_item``, ``not_as_described`` and ``late_delivery`` are the retailer's.
DEFECT_REASONS: tuple[str, ...] = ("defective", "damaged")

_METRICS = [
    "week_end", "weeks", "lines_due", "lines_received", "lines_otif", "otif", "units_ordered", "units_received",
    "fill_rate", "n_receipts", "lead_time_mean", "lead_time_p90", "lead_time_cv", "lead_time_trend_days_per_week",
    "price_variance", "units_defective", "defect_rate", "reliability",
]
#: Columns of the per-supplier scorecard.
SUPPLIER_COLUMNS: list[str] = ["supplier_id", *_METRICS]
#: Columns of the per supplier x SKU scorecard.
SUPPLIER_ITEM_COLUMNS: list[str] = ["supplier_id", "sku", *_METRICS]

_WEIGHT_FIELDS = ("otif", "fill_rate", "lead_time_variability", "lead_time_trend", "price_variance", "defect_rate")


@dataclass(frozen=True)
class ScorecardWeights:
    """Weights of the reliability score and the scales that map each metric to a 0..1 sub-score.

    Sub-scores (each clipped to ``[0, 1]``, 1 is best)::

        otif                   = otif
        fill_rate              = fill_rate
        lead_time_variability  = 1 - lead_time_cv / cv_scale
        lead_time_trend        = 1 - max(lead_time_trend_days_per_week, 0) / trend_scale_days_per_week
        price_variance         = 1 - max(price_variance, 0) / price_scale
        defect_rate            = 1 - defect_rate / defect_scale

    ``reliability = 100 * sum(w_i * s_i) / sum(w_i)`` over the sub-scores that are present: a ``NaN``
    metric (no receipts, no catalogue...) drops out and the weights of the others are renormalised, so a
    missing metric neither rewards nor punishes. With no sub-score present, reliability is ``NaN``. A
    lead time that shortens, or a price below the contract, scores 1 (no bonus above it).

    Attributes:
        otif, fill_rate, lead_time_variability, lead_time_trend, price_variance, defect_rate: weights (>= 0,
            summing above 0; they need not sum to 1).
        cv_scale: lead-time coefficient of variation that scores 0.
        trend_scale_days_per_week: lead-time growth (days per week) that scores 0.
        price_scale: relative overpayment against the contract that scores 0.
        defect_scale: defect rate that scores 0.
        trend_min_weeks: weeks with receipts the trend needs (else ``NaN``).
    """

    otif: float = 0.35
    fill_rate: float = 0.2
    lead_time_variability: float = 0.15
    lead_time_trend: float = 0.1
    price_variance: float = 0.1
    defect_rate: float = 0.1
    cv_scale: float = 0.5
    trend_scale_days_per_week: float = 1.0
    price_scale: float = 0.10
    defect_scale: float = 0.05
    trend_min_weeks: int = 3

    def __post_init__(self) -> None:
        for name in _WEIGHT_FIELDS:
            if not getattr(self, name) >= 0:
                raise ValueError(f"ScorecardWeights.{name} must be >= 0, got {getattr(self, name)}")
        if not sum(getattr(self, name) for name in _WEIGHT_FIELDS) > 0:
            raise ValueError("ScorecardWeights: the weights must sum to more than 0")
        for name in ("cv_scale", "trend_scale_days_per_week", "price_scale", "defect_scale"):
            if not getattr(self, name) > 0:
                raise ValueError(f"ScorecardWeights.{name} must be > 0, got {getattr(self, name)}")
        if self.trend_min_weeks < 2:
            raise ValueError(f"ScorecardWeights.trend_min_weeks must be at least 2, got {self.trend_min_weeks}")

    @classmethod
    def from_mapping(cls, values: dict) -> ScorecardWeights:
        """Weights from a mapping (a policy file section); keys left out keep their defaults.

        Raises:
            ValueError: for an unknown key (named), a negative weight, weights summing to 0 or a scale <= 0.
        """
        known = {f.name for f in dataclasses.fields(cls)}
        for key in values:
            if key not in known:
                raise ValueError(f"unknown scorecard weight {key!r}; expected one of {', '.join(sorted(known))}")
        return cls(**values)

    def reliability(self, card: pd.DataFrame) -> pd.Series:
        """The 0..100 reliability of each row of a scorecard (``NaN`` sub-scores renormalised away)."""
        def clip(values: pd.Series) -> pd.Series:
            return values.astype(float).clip(0.0, 1.0)

        scores = {
            "otif": clip(card["otif"]),
            "fill_rate": clip(card["fill_rate"]),
            "lead_time_variability": clip(1 - card["lead_time_cv"] / self.cv_scale),
            "lead_time_trend": clip(1 - card["lead_time_trend_days_per_week"].clip(lower=0)
                                    / self.trend_scale_days_per_week),
            "price_variance": clip(1 - card["price_variance"].clip(lower=0) / self.price_scale),
            "defect_rate": clip(1 - card["defect_rate"] / self.defect_scale),
        }
        s = np.column_stack([scores[n].to_numpy(float) for n in _WEIGHT_FIELDS])
        w = np.broadcast_to(np.array([getattr(self, n) for n in _WEIGHT_FIELDS], float), s.shape)
        present = ~np.isnan(s)
        total = np.where(present, w, 0.0).sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            out = 100.0 * np.where(present, w * s, 0.0).sum(axis=1) / total
        return pd.Series(np.where(total > 0, out, np.nan), index=card.index)


@dataclass(frozen=True)
class _Inputs:
    """The extracts normalised once: dates as day numbers, receipts joined to their PO line."""

    lines: pd.DataFrame  # supplier_id, sku, order_day, promised_day, ordered, unit_cost, cancelled
    receipts: pd.DataFrame  # line (index into lines), received_day, qty
    returns: pd.DataFrame  # sku, day, qty (defective reasons only)
    primary: pd.Series  # supplier_id by sku
    contract: pd.DataFrame | None  # supplier_id, sku, valid_day, contract_cost


def _days(values: pd.Series) -> np.ndarray:
    """Day numbers of dates or timestamps (a zoned timestamp counts on its local date)."""
    stamps = pd.to_datetime(pd.Series(values))
    if stamps.dt.tz is not None:
        stamps = stamps.dt.tz_localize(None)
    return stamps.to_numpy().astype("datetime64[D]").astype(np.int64)


def _num(values: pd.Series) -> np.ndarray:
    """Floats of a numeric column of any dtype (nullable integers included)."""
    return pd.Series(values).to_numpy(dtype=float, na_value=np.nan)


def _prepare(purchase_orders: pd.DataFrame, receipts: pd.DataFrame, returns: pd.DataFrame, items: pd.DataFrame,
             catalogue: pd.DataFrame | None, defect_reasons: tuple[str, ...]) -> _Inputs:
    po = purchase_orders.drop_duplicates(["po_id", "po_line"]).reset_index(drop=True)
    lines = pd.DataFrame({
        "supplier_id": po["supplier_id"].astype(str).to_numpy(object), "sku": po["sku"].astype(str).to_numpy(object),
        "order_day": _days(po["order_date"]), "promised_day": _days(po["promised_date"]),
        "ordered": _num(po["quantity_ordered"]), "unit_cost": _num(po["unit_cost"]),
        "cancelled": (po["status"].astype(str) == "cancelled").to_numpy() if "status" in po else False,
    })
    index = pd.MultiIndex.from_arrays([po["po_id"].astype(str), po["po_line"].astype(np.int64)])
    line = index.get_indexer(pd.MultiIndex.from_arrays([receipts["po_id"].astype(str),
                                                        receipts["po_line"].astype(np.int64)]))
    known = line >= 0  # a receipt of a line nobody ordered cannot be scored
    rec = pd.DataFrame({"line": line[known], "received_day": _days(receipts["received_date"])[known],
                        "qty": _num(receipts["quantity_received"])[known]})
    bad = returns["reason"].astype(str).isin(defect_reasons).to_numpy()
    ret = pd.DataFrame({"sku": returns["sku"].astype(str).to_numpy(object)[bad],
                        "day": _days(returns["returned_at"])[bad], "qty": _num(returns["quantity"])[bad]})
    primary = pd.Series(items["supplier_id"].astype(str).to_numpy(object), index=items["sku"].astype(str))
    contract = None
    if catalogue is not None and len(catalogue):
        contract = pd.DataFrame({
            "supplier_id": catalogue["supplier_id"].astype(str).to_numpy(object),
            "sku": catalogue["sku"].astype(str).to_numpy(object),
            "valid_day": _days(catalogue["valid_from"]) if "valid_from" in catalogue
            else np.full(len(catalogue), np.iinfo(np.int64).min),
            "contract_cost": _num(catalogue["unit_cost"]),
        }).sort_values("valid_day", kind="stable")
    return _Inputs(lines, rec, ret, primary[~primary.index.duplicated()], contract)


def weekly_scorecards(purchase_orders: pd.DataFrame, receipts: pd.DataFrame, returns: pd.DataFrame,
                      items: pd.DataFrame, catalogue: pd.DataFrame | None, week_end: dt.date, *, weeks: int = 13,
                      weights: ScorecardWeights = ScorecardWeights(),
                      defect_reasons: tuple[str, ...] = DEFECT_REASONS) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Scorecards of every supplier, and of every supplier x SKU, for the week ending ``week_end``.

    Args:
        purchase_orders: PO lines (``po_id, po_line, supplier_id, sku, order_date, promised_date,
            quantity_ordered, unit_cost, status``), every line of the window and before it.
        receipts: receipts (``po_id, po_line, received_date, quantity_received``); later ones are ignored.
        returns: customer returns (``returned_at, sku, quantity, reason``).
        items: item master (``sku, supplier_id``: the primary supplier).
        catalogue: supplier catalogue (``supplier_id, sku, unit_cost``, optional ``valid_from``), or None.
        week_end: last day of the week scored (inclusive).
        weeks: length of the trailing window in weeks.
        weights: reliability weights and sub-score scales.
        defect_reasons: return reasons counted as defects.

    Returns:
        ``(suppliers, supplier_items)`` with columns :data:`SUPPLIER_COLUMNS` and
        :data:`SUPPLIER_ITEM_COLUMNS`, one row per supplier (x SKU) with a line due or a receipt in the window.

    Raises:
        ValueError: when ``weeks`` is below 1.
    """
    inputs = _prepare(purchase_orders, receipts, returns, items, catalogue, defect_reasons)
    return _score(inputs, week_end, weeks, weights)


def scorecard_history(purchase_orders: pd.DataFrame, receipts: pd.DataFrame, returns: pd.DataFrame,
                      items: pd.DataFrame, catalogue: pd.DataFrame | None, week_ends: list[dt.date], *,
                      weeks: int = 13, weights: ScorecardWeights = ScorecardWeights(),
                      defect_reasons: tuple[str, ...] = DEFECT_REASONS) -> tuple[pd.DataFrame, pd.DataFrame]:
    """:func:`weekly_scorecards` of several weeks (a backfill), stacked; inputs are normalised once.

    Each week sees only what was known on its own ``week_end``, exactly as a weekly run would have.

    Returns:
        ``(suppliers, supplier_items)`` of every week, sorted by ``week_end`` then keys.
    """
    inputs = _prepare(purchase_orders, receipts, returns, items, catalogue, defect_reasons)
    cards = [_score(inputs, d, weeks, weights) for d in sorted(set(week_ends))]
    if not cards:
        return (pd.DataFrame(columns=SUPPLIER_COLUMNS), pd.DataFrame(columns=SUPPLIER_ITEM_COLUMNS))
    return (pd.concat([c[0] for c in cards], ignore_index=True),
            pd.concat([c[1] for c in cards], ignore_index=True))


def _score(inputs: _Inputs, week_end: dt.date, weeks: int, weights: ScorecardWeights
           ) -> tuple[pd.DataFrame, pd.DataFrame]:
    if weeks < 1:
        raise ValueError(f"weeks must be at least 1, got {weeks}")
    end = int(np.datetime64(week_end, "D").astype(np.int64))
    start = end - 7 * weeks + 1
    lines, rec = inputs.lines, inputs.receipts
    rec = rec[rec["received_day"].to_numpy() <= end]  # nothing after week_end is known
    n = len(lines)
    line = rec["line"].to_numpy()
    by_promise = rec["received_day"].to_numpy() <= lines["promised_day"].to_numpy()[line]
    on_time = np.bincount(line[by_promise], rec["qty"].to_numpy()[by_promise], minlength=n)
    received = np.bincount(line, rec["qty"].to_numpy(), minlength=n)
    ordered = lines["ordered"].to_numpy()
    due = lines[(lines["promised_day"].between(start, end)) & ~lines["cancelled"]].assign(
        received_any=lambda f: received[f.index] > 0, otif_line=lambda f: on_time[f.index] >= ordered[f.index],
        units_received=lambda f: np.minimum(received[f.index], ordered[f.index]))
    window = rec[rec["received_day"].to_numpy() >= start]
    win_lines = lines.iloc[window["line"].to_numpy()]
    arrivals = pd.DataFrame({
        "supplier_id": win_lines["supplier_id"].to_numpy(), "sku": win_lines["sku"].to_numpy(),
        "lead": (window["received_day"].to_numpy() - win_lines["order_day"].to_numpy()).astype(float),
        "week": (window["received_day"].to_numpy() - start) // 7, "qty": window["qty"].to_numpy(),
    })
    ordered_in = lines[lines["order_day"].between(start, end) & ~lines["cancelled"]]
    priced = _priced(ordered_in, inputs.contract, end)
    defects = _defects(inputs, arrivals, start, end)
    cards = []
    for keys, columns in ((["supplier_id"], SUPPLIER_COLUMNS), (["supplier_id", "sku"], SUPPLIER_ITEM_COLUMNS)):
        card = _card(keys, due, arrivals, priced, defects, weights)
        card["week_end"], card["weeks"] = pd.Timestamp(week_end), weeks
        card["reliability"] = weights.reliability(card).round(2)
        cards.append(card[columns].sort_values(keys, kind="stable").reset_index(drop=True))
    return cards[0], cards[1]


def _priced(ordered_in: pd.DataFrame, contract: pd.DataFrame | None, end: int) -> pd.DataFrame:
    """Lines ordered in the window with the contract cost in force on ``end`` for their supplier and SKU."""
    if contract is None:
        return ordered_in.iloc[0:0].assign(spend=0.0, extra=0.0)
    valid = contract[contract["valid_day"] <= end].drop_duplicates(["supplier_id", "sku"], keep="last")
    merged = ordered_in.merge(valid[["supplier_id", "sku", "contract_cost"]], on=["supplier_id", "sku"])
    return merged.assign(spend=merged["ordered"] * merged["contract_cost"],
                         extra=merged["ordered"] * (merged["unit_cost"] - merged["contract_cost"]))


def _defects(inputs: _Inputs, arrivals: pd.DataFrame, start: int, end: int) -> pd.DataFrame:
    """Defective units returned in the window per supplier x SKU, shared by units delivered in the window."""
    ret = inputs.returns
    by_sku = ret[ret["day"].between(start, end)].groupby("sku")["qty"].sum()
    if by_sku.empty:
        return pd.DataFrame(columns=["supplier_id", "sku", "units_defective"])
    delivered = arrivals.groupby(["supplier_id", "sku"], as_index=False)["qty"].sum()
    delivered = delivered[delivered["sku"].isin(by_sku.index)]
    share = delivered["qty"] / delivered.groupby("sku")["qty"].transform("sum")
    shared = delivered.assign(units_defective=share * delivered["sku"].map(by_sku).to_numpy())
    orphan = by_sku[~by_sku.index.isin(delivered["sku"]) & by_sku.index.isin(inputs.primary.index)]
    orphans = pd.DataFrame({"supplier_id": inputs.primary.reindex(orphan.index).to_numpy(),
                            "sku": orphan.index.to_numpy(object), "units_defective": orphan.to_numpy()})
    return pd.concat([shared[["supplier_id", "sku", "units_defective"]], orphans], ignore_index=True)


def _card(keys: list[str], due: pd.DataFrame, arrivals: pd.DataFrame, priced: pd.DataFrame, defects: pd.DataFrame,
          weights: ScorecardWeights) -> pd.DataFrame:
    """Metrics per ``keys`` from the window's lines due, arrivals, priced lines and defective returns."""
    delivery = due.groupby(keys).agg(lines_due=("ordered", "size"), lines_received=("received_any", "sum"),
                                     lines_otif=("otif_line", "sum"), units_ordered=("ordered", "sum"),
                                     units_received=("units_received", "sum"))
    lead = arrivals.groupby(keys)["lead"]
    timing = pd.DataFrame({"n_receipts": lead.size(), "lead_time_mean": lead.mean(),
                           "lead_time_p90": lead.quantile(0.9), "lead_time_sd": lead.std(ddof=1),
                           "units_arrived": arrivals.groupby(keys)["qty"].sum()})
    price = priced.groupby(keys)[["spend", "extra"]].sum()
    defect = defects.groupby(keys)["units_defective"].sum()
    card = delivery.join([timing, price, defect.rename("units_defective")], how="outer")
    trend = _trend(keys, arrivals, weights.trend_min_weeks)
    card["lead_time_trend_days_per_week"] = trend.reindex(card.index).to_numpy() if len(trend) else np.nan
    for column in ("lines_due", "lines_received", "lines_otif", "n_receipts"):
        card[column] = card[column].fillna(0).astype(np.int64)
    for column in ("units_ordered", "units_received", "units_defective"):
        card[column] = card[column].fillna(0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        card["otif"] = card["lines_otif"] / card["lines_due"].where(card["lines_due"] > 0)
        card["fill_rate"] = card["units_received"] / card["units_ordered"].where(card["units_ordered"] > 0)
        card["lead_time_cv"] = card["lead_time_sd"] / card["lead_time_mean"].where(card["lead_time_mean"] > 0)
        card["price_variance"] = card["extra"] / card["spend"].where(card["spend"] > 0)
        card["defect_rate"] = card["units_defective"] / card["units_arrived"].where(card["units_arrived"] > 0)
    card = card[(card["lines_due"] > 0) | (card["n_receipts"] > 0)]
    return card.reset_index()


def _trend(keys: list[str], arrivals: pd.DataFrame, min_weeks: int) -> pd.Series:
    """Theil-Sen slope (days per week) of the weekly median lead time per ``keys``; ``NaN`` when too few weeks."""
    name = "lead_time_trend_days_per_week"
    weekly = arrivals.groupby([*keys, "week"], as_index=False)["lead"].median()
    counts = weekly.groupby(keys)["week"].transform("size")
    weekly = weekly[counts >= min_weeks]
    if weekly.empty:
        return pd.Series(dtype=float, name=name)
    # At most weeks * (weeks - 1) / 2 pairs per group: the weekly medians keep this small.
    pairs = weekly.merge(weekly, on=keys, suffixes=("_a", "_b"))
    pairs = pairs[pairs["week_a"] < pairs["week_b"]]
    slope = (pairs["lead_b"] - pairs["lead_a"]) / (pairs["week_b"] - pairs["week_a"])
    return slope.groupby([pairs[k] for k in keys]).median().rename(name)
