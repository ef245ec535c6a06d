"""Early warning of supplier disruptions from open purchase-order lines and recent receipts.

A disrupted supplier shows up first in what has *not* arrived: lines past their promised date with nothing
received. Receipts only tell the story once the late goods land, which for a supplier that has stopped
shipping is after the shelves are empty. So each supplier is judged on the lines promised in the last
``recent_days`` (up to ``grace_days`` ago): the share of them not received within ``grace_days`` of their
promise, as known on ``as_of`` (still open, or received later), against the same share over the supplier's
own earlier lines (a supplier that is always a few days late is not news). The count of late lines is
tested against that usual share with a one-sided binomial z-score; it must also be a clear majority of the
lines judged and span several purchase orders (one stuck shipment is one event). Beside it the lead-time
model's change test on the recent receipts (:func:`include.procurement.leadtime.predict_arrivals`) flags a
supplier whose delivered delays have moved up.

:func:`planning_lead_times` gives, per supplier, the lead time (mean, spread) a replenishment policy should
plan with: the lead-time model's prediction for a line ordered on ``as_of`` (recency-weighted, down-weighting
receipts before a detected change), raised for a flagged supplier to the age its overdue open lines have
already reached (a line open for 20 days will take at least 20).

Only rows known on ``as_of`` are read: lines ordered by then and receipts dated by then.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from include.procurement.leadtime import LeadTimeParams, predict_arrivals

__all__ = ["FLAG_COLUMNS", "LEAD_COLUMNS", "PO_COLUMNS", "RECEIPT_COLUMNS", "DisruptionParams",
           "flag_disruptions", "known_lines", "planning_lead_times"]

PO_COLUMNS = ("po_id", "po_line", "supplier_id", "order_date", "promised_date")
RECEIPT_COLUMNS = ("po_id", "po_line", "received_date")
FLAG_COLUMNS = [
    "supplier_id", "flagged", "overdue_flag", "receipt_drift", "lines_judged", "lines_late", "late_share",
    "usual_late_share", "z_score", "orders_late", "open_overdue", "oldest_overdue_days", "drift_shift_days",
    "evidence",
]
LEAD_COLUMNS = ["supplier_id", "lead_time_mean", "lead_time_sd", "predicted_delay_days", "overdue_floor_days",
                "flagged", "received_lines"]
#: Standard normal quantile of 0.9: the lead-time model's 80% interval spans 2 x 1.2816 sd.
_Z80 = 1.2815515655446004
#: The lead-time model reads receipts by supplier, then everything pooled (the extracts carry no lane/mode).
_LEAD_LEVELS = (("supplier_id",), ())


@dataclass(frozen=True)
class DisruptionParams:
    """Thresholds of :func:`flag_disruptions`.

    Attributes:
        grace_days: Days past its promise a line may go unreceived before it counts as late (0: a line
            not received by the end of its promised day is late; the supplier's usual share of such lines is
            the yardstick, so a supplier that is routinely a day late is not flagged for it).
        recent_days: Promise dates judged: ``(as_of - grace_days - recent_days, as_of - grace_days]``.
        baseline_days: Earlier promise dates, back this far, that give the supplier's usual late share.
        prior_lines: Weight, in lines, of the all-supplier late share mixed into a supplier's usual share
            (a supplier with little history is judged against everyone's).
        share_floor: Lowest usual late share used (a spotless record still has some variance).
        min_lines: Late lines needed.
        min_orders: Distinct purchase orders the late lines must span.
        min_share: Share of the judged lines that must be late.
        z_threshold: One-sided binomial z-score of the late count against the usual share.
        use_receipt_drift: Also flag a supplier whose recent receipts' delays moved up (the lead-time model's
            change test) by at least ``drift_min_shift_days``.
        drift_min_shift_days: Smallest upward shift of the receipts' median delay that flags.
        lookback_days: Receipts older than this are not read by the lead-time model.
        stale_days: Open lines promised longer ago than this are stale records (never closed in the ERP),
            not evidence: they are left out of ``open_overdue`` and the overdue floor of the lead time.
        leadtime: Knobs of the lead-time model.
    """

    grace_days: int = 0
    recent_days: int = 14
    baseline_days: int = 365
    prior_lines: float = 20.0
    share_floor: float = 0.03
    min_lines: int = 6
    min_orders: int = 2
    min_share: float = 0.4
    z_threshold: float = 4.0
    use_receipt_drift: bool = True
    drift_min_shift_days: float = 3.0
    lookback_days: int = 365
    stale_days: int = 90
    leadtime: LeadTimeParams = field(default_factory=lambda: LeadTimeParams(levels=_LEAD_LEVELS))

    def __post_init__(self) -> None:
        checks = {
            "grace_days": self.grace_days >= 0, "recent_days": self.recent_days >= 1,
            "baseline_days": self.baseline_days > self.recent_days, "prior_lines": self.prior_lines >= 0,
            "share_floor": 0 < self.share_floor < 1, "min_lines": self.min_lines >= 1,
            "min_orders": self.min_orders >= 1, "min_share": 0 <= self.min_share <= 1,
            "z_threshold": self.z_threshold > 0, "drift_min_shift_days": self.drift_min_shift_days >= 0,
            "lookback_days": self.lookback_days >= 1, "stale_days": self.stale_days >= 1,
        }
        bad = [name for name, ok in checks.items() if not ok]
        if bad:
            raise ValueError(f"DisruptionParams out of range: {', '.join(f'{b}={getattr(self, b)!r}' for b in bad)}")


# --------------------------------------------------------------------------------------------- inputs


def _dates(frame: pd.DataFrame, columns: tuple[str, ...], name: str) -> pd.DataFrame:
    """``frame[columns]`` with the ``*_date`` columns as midnight timestamps; ValueError naming what is wrong."""
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(f"{name} lacks column(s) {missing}; it needs {list(columns)}")
    out = frame[list(columns)].copy()
    for col in (c for c in columns if c.endswith("_date")):
        parsed = pd.to_datetime(out[col], errors="coerce")
        bad = (parsed.isna() & out[col].notna()).to_numpy()
        if bad.any():
            row = out.index[bad.argmax()]
            raise ValueError(f"{name}.{col} is not a date in row {row!r}: {out.at[row, col]!r}")
        if getattr(parsed.dt, "tz", None) is not None:
            parsed = parsed.dt.tz_convert("UTC").dt.tz_localize(None)
        out[col] = parsed.dt.normalize()
    return out


def known_lines(purchase_orders: pd.DataFrame, receipts: pd.DataFrame,
                as_of: str | dt.date | pd.Timestamp) -> pd.DataFrame:
    """Every purchase-order line ordered by ``as_of`` with its first receipt dated by ``as_of``.

    Args:
        purchase_orders: PO lines (``po_id, po_line, supplier_id, order_date, promised_date``; ``status``
            optional: lines ``cancelled`` are dropped, so it must be the lines' state as of ``as_of``).
        receipts: ``po_id, po_line, received_date``, one row per receipt (a line may have several).
        as_of: The day of the run; later orders and receipts are ignored.

    Returns:
        One row per line: the PO columns and ``first_received`` (``NaT``: nothing received by ``as_of``).

    Raises:
        ValueError: A column is missing or a date does not parse, naming it and the row.
    """
    cutoff = pd.Timestamp(as_of).normalize()
    po = _dates(purchase_orders, PO_COLUMNS, "purchase_orders")
    keep = (po["order_date"] <= cutoff).to_numpy()
    if "status" in purchase_orders.columns:
        keep = keep & (purchase_orders["status"].astype(str) != "cancelled").to_numpy()
    po = po.loc[keep].drop_duplicates(["po_id", "po_line"], keep="last")
    rc = _dates(receipts, RECEIPT_COLUMNS, "receipts")
    rc = rc[rc["received_date"] <= cutoff]
    first = rc.groupby(["po_id", "po_line"], sort=False, observed=True)["received_date"].min()
    first = first.rename("first_received").reset_index()
    # Keys typed alike on both sides, so an empty receipts frame (float columns) still joins.
    for frame in (po, first):
        frame["po_id"] = frame["po_id"].astype(str)
        frame["po_line"] = frame["po_line"].astype(np.int64)
    return po.merge(first, on=["po_id", "po_line"], how="left").reset_index(drop=True)


# --------------------------------------------------------------------------------------------- overdue test


def _overdue(lines: pd.DataFrame, cutoff: pd.Timestamp, params: DisruptionParams,
             suppliers: pd.Index) -> pd.DataFrame:
    """Per supplier: the recent lines judged, how many were late, against the usual late share."""
    code = suppliers.get_indexer(lines["supplier_id"].astype(str))
    day = pd.Timedelta(days=1)
    promised = lines["promised_date"]
    due_by = promised + params.grace_days * day
    received = lines["first_received"]
    late = (received.isna() | (received > due_by)).to_numpy()
    # A line can only be judged once its grace has run out.
    judged_end = cutoff - params.grace_days * day
    recent = ((promised <= judged_end) & (promised > judged_end - params.recent_days * day)).to_numpy()
    base = ((promised <= judged_end - params.recent_days * day)
            & (promised > judged_end - params.baseline_days * day)).to_numpy()
    n_sup = len(suppliers)

    def count(mask: np.ndarray) -> np.ndarray:
        return np.bincount(code[mask], minlength=n_sup).astype(float)

    n_recent, x_recent = count(recent), count(recent & late)
    n_base, x_base = count(base), count(base & late)
    pooled = x_base.sum() / n_base.sum() if n_base.sum() else params.share_floor
    usual = (x_base + params.prior_lines * pooled) / np.maximum(n_base + params.prior_lines, 1e-9)
    usual = np.clip(usual, params.share_floor, 1 - 1e-6)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = (x_recent - n_recent * usual) / np.sqrt(n_recent * usual * (1 - usual))
        share = np.where(n_recent > 0, x_recent / n_recent, 0.0)
    z = np.where(n_recent > 0, z, 0.0)
    # Lines of one PO travel together: the late ones must span several orders to be more than one event.
    late_recent = recent & late
    pairs = pd.DataFrame({"s": code[late_recent], "po": lines["po_id"].to_numpy()[late_recent]})
    orders = np.bincount(pairs.drop_duplicates()["s"].to_numpy(np.int64), minlength=n_sup)
    open_over = (received.isna() & (promised <= judged_end)
                 & (promised > cutoff - params.stale_days * day)).to_numpy()
    age = np.where(open_over, ((cutoff - lines["order_date"]) / day).to_numpy(float), -np.inf)
    oldest = np.full(n_sup, -np.inf)
    np.maximum.at(oldest, code, age)
    flag = ((x_recent >= params.min_lines) & (orders >= params.min_orders) & (share >= params.min_share)
            & (z >= params.z_threshold))
    return pd.DataFrame({
        "supplier_id": suppliers.to_numpy(object), "overdue_flag": flag,
        "lines_judged": n_recent.astype(np.int64), "lines_late": x_recent.astype(np.int64), "late_share": share,
        "usual_late_share": usual, "z_score": z, "orders_late": orders.astype(np.int64),
        "open_overdue": np.bincount(code[open_over], minlength=n_sup).astype(np.int64),
        "oldest_overdue_days": np.where(np.isfinite(oldest), oldest, np.nan),
    })


# --------------------------------------------------------------------------------------------- receipts


def _lead_model(lines: pd.DataFrame, cutoff: pd.Timestamp, params: DisruptionParams,
                suppliers: pd.Index) -> pd.DataFrame:
    """The lead-time model's prediction for a line of each supplier ordered on ``as_of``."""
    day = pd.Timedelta(days=1)
    got = lines[lines["first_received"].notna()
                & (lines["first_received"] > cutoff - params.lookback_days * day)]
    history = pd.DataFrame({
        "supplier_id": got["supplier_id"].astype(str).to_numpy(object), "lane": "-", "mode": "-",
        "ordered_at": got["order_date"].to_numpy(), "promised_at": got["promised_date"].to_numpy(),
        "received_at": got["first_received"].to_numpy(),
    })
    promise = (lines["promised_date"] - lines["order_date"]) / day
    promised_days = promise.groupby(lines["supplier_id"].astype(str)).median().reindex(suppliers).fillna(0.0)
    probe = pd.DataFrame({
        "supplier_id": suppliers.to_numpy(object), "lane": "-", "mode": "-", "ordered_at": cutoff,
        "promised_at": cutoff + pd.to_timedelta(promised_days.to_numpy(float), unit="D"),
    })
    if history.empty or not len(probe):
        # Nothing delivered yet (the lead-time model needs one receipt): the promise is all there is.
        return pd.DataFrame({"supplier_id": suppliers.to_numpy(object), "lead_time_mean": promised_days.to_numpy(float),
                             "lead_time_sd": 0.0, "predicted_delay_days": 0.0, "receipt_drift": False,
                             "drift_shift_days": np.nan})
    # Receipts dated as_of are known at its end: the model reads those strictly before the next day.
    pred = predict_arrivals(history, probe, params.leadtime, as_of=cutoff + day)
    lead = ((pred["predicted_arrival"] - probe["ordered_at"]) / day).to_numpy(float)
    spread = ((pred["interval_high"] - pred["interval_low"]) / day).to_numpy(float) / (2 * _Z80)
    shift = pred["drift_shift_days"].to_numpy(float)
    drift = pred["drift"].to_numpy(bool) & (np.nan_to_num(shift) >= params.drift_min_shift_days)
    return pd.DataFrame({"supplier_id": suppliers.to_numpy(object), "lead_time_mean": lead,
                         "lead_time_sd": np.nan_to_num(spread, nan=0.0),
                         "predicted_delay_days": pred["predicted_delay_days"].to_numpy(float),
                         "receipt_drift": drift & params.use_receipt_drift, "drift_shift_days": shift})


def _evidence(out: pd.DataFrame, params: DisruptionParams) -> pd.Series:
    text = pd.Series("", index=out.index, dtype=object)
    over = out["overdue_flag"].to_numpy()
    if over.any():
        f = out.loc[over]
        text.loc[over] = (f["lines_late"].astype(str) + " of " + f["lines_judged"].astype(str)
                          + f" lines promised in the last {params.recent_days} d not received within "
                          f"{params.grace_days} d (" + f["late_share"].map("{:.0%}".format) + " vs usual "
                          + f["usual_late_share"].map("{:.0%}".format) + ", z=" + f["z_score"].map("{:.1f}".format)
                          + ", " + f["orders_late"].astype(str) + " POs, " + f["open_overdue"].astype(str)
                          + " still open)")
    drift = out["receipt_drift"].to_numpy()
    if drift.any():
        f = out.loc[drift]
        sep = np.where(over[drift], "; ", "")
        text.loc[drift] = (text.loc[drift] + sep + "recent receipts' median delay up "
                           + f["drift_shift_days"].map("{:+.1f}".format) + " d")
    return text


def _suppliers(lines: pd.DataFrame, suppliers: pd.Series | list[str] | None) -> pd.Index:
    names = lines["supplier_id"].astype(str).unique() if suppliers is None else pd.Series(suppliers).astype(str)
    return pd.Index(sorted(set(names)), dtype=object)


def flag_disruptions(purchase_orders: pd.DataFrame, receipts: pd.DataFrame,
                     as_of: str | dt.date | pd.Timestamp, params: DisruptionParams | None = None, *,
                     suppliers: pd.Series | list[str] | None = None) -> pd.DataFrame:
    """Flag the suppliers whose deliveries are failing, from what is known at the end of ``as_of``.

    Args:
        purchase_orders: PO lines as of ``as_of`` (see :func:`known_lines`).
        receipts: Receipts (``po_id, po_line, received_date``); those dated after ``as_of`` are ignored.
        as_of: The day of the run.
        params: Thresholds; :class:`DisruptionParams` defaults when None.
        suppliers: Suppliers to report (default: those with a line ordered by ``as_of``); one without
            lines is reported unflagged.

    Returns:
        One row per supplier, sorted, with :data:`FLAG_COLUMNS`: ``flagged`` (either test fired),
        ``overdue_flag`` and its counts (recent lines judged and late, their share, the supplier's usual
        share, the z-score, POs spanned, lines still open past their grace and the oldest one's age in days
        since ordering), ``receipt_drift`` with the receipts' delay shift, and a readable ``evidence``.

    Raises:
        ValueError: A column is missing or a date does not parse.
    """
    params = params or DisruptionParams()
    cutoff = pd.Timestamp(as_of).normalize()
    lines = known_lines(purchase_orders, receipts, cutoff)
    names = _suppliers(lines, suppliers)
    lines = lines[lines["supplier_id"].astype(str).isin(names)]
    out = _overdue(lines, cutoff, params, names)
    model = _lead_model(lines, cutoff, params, names)
    out["receipt_drift"] = model["receipt_drift"].to_numpy(bool)
    out["drift_shift_days"] = model["drift_shift_days"].to_numpy(float)
    out["flagged"] = out["overdue_flag"] | out["receipt_drift"]
    out["evidence"] = _evidence(out, params)
    return out[FLAG_COLUMNS]


def planning_lead_times(purchase_orders: pd.DataFrame, receipts: pd.DataFrame,
                        as_of: str | dt.date | pd.Timestamp, params: DisruptionParams | None = None, *,
                        suppliers: pd.Series | list[str] | None = None) -> pd.DataFrame:
    """Per supplier, the lead time in days a replenishment policy should plan with on ``as_of``.

    ``lead_time_mean`` is the lead-time model's median lead time for a line ordered on ``as_of`` (promise
    plus predicted delay; after a detected change the older receipts barely count). For a flagged supplier
    it is at least ``overdue_floor_days``, the age its oldest overdue open line has reached: evidence the
    receipts do not carry yet. ``lead_time_sd`` is the model's 80% interval read as a normal spread.
    ``received_lines``: the supplier's received lines the model read (0: its prediction rests on the
    promise and the other suppliers' delays only).

    Args:
        purchase_orders, receipts, as_of, params, suppliers: As for :func:`flag_disruptions`.

    Returns:
        One row per supplier, sorted, with :data:`LEAD_COLUMNS`.
    """
    params = params or DisruptionParams()
    cutoff = pd.Timestamp(as_of).normalize()
    lines = known_lines(purchase_orders, receipts, cutoff)
    names = _suppliers(lines, suppliers)
    lines = lines[lines["supplier_id"].astype(str).isin(names)]
    over = _overdue(lines, cutoff, params, names)
    model = _lead_model(lines, cutoff, params, names)
    flagged = over["overdue_flag"].to_numpy(bool) | model["receipt_drift"].to_numpy(bool)
    floor = np.where(flagged, over["oldest_overdue_days"].to_numpy(float), np.nan)
    mean = model["lead_time_mean"].to_numpy(float)
    raised = np.where(np.isfinite(floor), np.fmax(mean, floor), mean)
    day = pd.Timedelta(days=1)
    read = lines["first_received"].notna() & (lines["first_received"] > cutoff - params.lookback_days * day)
    received = lines.loc[read, "supplier_id"].astype(str).value_counts().reindex(names, fill_value=0)
    return pd.DataFrame({"supplier_id": names.to_numpy(object), "lead_time_mean": raised,
                         "lead_time_sd": model["lead_time_sd"].to_numpy(float),
                         "predicted_delay_days": model["predicted_delay_days"].to_numpy(float),
                         "overdue_floor_days": floor, "flagged": flagged,
                         "received_lines": received.to_numpy(np.int64)})[LEAD_COLUMNS]
