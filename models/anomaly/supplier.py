"""Supplier lead-time statistics and drift detection from received purchase-order lines.

Both functions look only at lines received on or before ``as_of``, so a re-run for a past date sees
what was known then. A supplier is compared with its own earlier history, not with other suppliers:
a slow but steady supplier is already priced into its safety stock; one that is getting slower is not.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

import numpy as np
import pandas as pd

__all__ = [
    "DRIFT_COLUMNS",
    "STATS_COLUMNS",
    "detect_lead_time_drift",
    "received_po_lines",
    "supplier_lead_time_stats",
    "supplier_stats",
    "with_fill_rate",
]

DRIFT_COLUMNS = [
    "supplier_id",
    "anomaly_type",
    "severity",
    "recent_mean_lead_time",
    "baseline_mean_lead_time",
    "promised_lead_time",
    "recent_late_rate",
    "baseline_late_rate",
    "p_value",
    "n_recent",
    "n_baseline",
    "explanation",
]
STATS_COLUMNS = ["supplier_id", "mean_lead_time", "std_lead_time", "late_rate", "n"]
_REQUIRED = ["supplier_id", "order_date", "received_date", "promised_lead_time_days"]


_TEXT_COLUMNS = {"supplier_id", "anomaly_type", "severity", "explanation"}
_COUNT_COLUMNS = {"n", "n_recent", "n_baseline"}


def _empty(columns: list[str]) -> pd.DataFrame:
    """A frame with ``columns`` and no rows, typed as a filled one would be."""
    def dtype(col: str) -> object:
        if col in _TEXT_COLUMNS:
            return object
        return np.int64 if col in _COUNT_COLUMNS else np.float64

    return pd.DataFrame({c: pd.Series(dtype=dtype(c)) for c in columns})


def _prepare(receipts: pd.DataFrame, as_of: str | dt.date | pd.Timestamp) -> tuple[pd.DataFrame, pd.Timestamp]:
    """Validate, keep lines received by ``as_of`` and add ``lead_time`` and ``late``.

    Raises:
        ValueError: on a missing column, unparsable dates or a non-numeric promised lead time.
    """
    missing = [c for c in _REQUIRED if c not in receipts.columns]
    if missing:
        raise ValueError(f"receipts is missing required column(s): {', '.join(missing)}")
    try:
        cutoff = pd.Timestamp(as_of).normalize()
    except (TypeError, ValueError) as exc:
        raise ValueError(f"as_of must be a date, got {as_of!r}") from exc
    df = receipts[_REQUIRED].copy()
    for col in ("order_date", "received_date"):
        try:
            df[col] = pd.to_datetime(df[col]).dt.normalize()
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{col} must hold dates: {exc}") from exc
    promised = df["promised_lead_time_days"]
    if pd.api.types.is_bool_dtype(promised) or not pd.api.types.is_numeric_dtype(promised):
        raise ValueError(f"promised_lead_time_days must be numeric, got dtype {promised.dtype}")

    # Open lines (no receipt yet) and receipts after as_of are unknown on as_of.
    df = df[df["received_date"].notna() & df["order_date"].notna() & (df["received_date"] <= cutoff)]
    df = df.assign(lead_time=(df["received_date"] - df["order_date"]).dt.days.astype(np.float64))
    df = df.assign(late=df["lead_time"] > df["promised_lead_time_days"].astype(np.float64))
    return df, cutoff


def supplier_lead_time_stats(
    receipts: pd.DataFrame,
    as_of: str | dt.date | pd.Timestamp,
    *,
    lookback_days: int | None = 365,
) -> pd.DataFrame:
    """Lead-time mean, spread and late rate per supplier, for safety stock.

    Args:
        receipts: One row per received PO line: ``supplier_id``, ``order_date``, ``received_date``,
            ``promised_lead_time_days``. Lines without ``received_date`` are ignored.
        as_of: Only lines received on or before this date count.
        lookback_days: Only lines received in the last ``lookback_days`` up to ``as_of`` count
            (``None``: all history), so a supplier's behaviour of years ago does not set today's stock.

    Returns:
        ``supplier_id, mean_lead_time, std_lead_time, late_rate, n`` sorted by ``supplier_id``. A
        supplier without received lines gets no row (callers fall back to the promised lead time);
        ``std_lead_time`` is ``NaN`` when ``n == 1``, since one receipt says nothing about spread.

    Raises:
        ValueError: on a missing column or unparsable dates.
    """
    df, cutoff = _prepare(receipts, as_of)
    if lookback_days is not None:
        df = df[df["received_date"] > cutoff - pd.Timedelta(days=lookback_days)]
    if df.empty:
        return _empty(STATS_COLUMNS)
    stats = (
        df.groupby("supplier_id", sort=True)
        .agg(
            mean_lead_time=("lead_time", "mean"),
            std_lead_time=("lead_time", "std"),
            late_rate=("late", "mean"),
            n=("lead_time", "size"),
        )
        .reset_index()
    )
    return stats.astype({"late_rate": np.float64, "n": np.int64})[STATS_COLUMNS]


def detect_lead_time_drift(
    receipts: pd.DataFrame,
    *,
    as_of: str | dt.date | pd.Timestamp,
    recent_days: int = 60,
    min_recent: int = 3,
    min_baseline: int = 5,
    alpha: float = 0.05,
    min_shift_days: float = 1.0,
) -> pd.DataFrame:
    """Flag suppliers whose recent lead times are longer than their own earlier ones.

    The recent window is lines received in the last ``recent_days`` up to ``as_of``; the baseline is
    everything received before it. A supplier drifts when its recent mean lead time is at least
    ``min_shift_days`` longer than the baseline mean and a one-sided Mann-Whitney U test (recent
    greater than baseline) gives ``p < alpha``. Getting faster is not flagged.

    Severity grows with the shift relative to the baseline mean and with the rise in late rate
    (lines received after ``order_date + promised``): ``high`` from a 50% shift or a 50-point late-rate
    rise, ``medium`` from 25% / 25 points, else ``low``.

    Args:
        receipts: One row per received PO line: ``supplier_id``, ``order_date``, ``received_date``,
            ``promised_lead_time_days``.
        as_of: The run's date; later receipts are ignored.
        recent_days: Length of the recent window in days.
        min_recent: Fewest recent lines for a supplier to be judged.
        min_baseline: Fewest baseline lines for a supplier to be judged.
        alpha: Significance level of the test.
        min_shift_days: Smallest mean shift (days) worth flagging, however significant.

    Returns:
        One row per drifting supplier with ``DRIFT_COLUMNS``, sorted by ``supplier_id``.
        ``promised_lead_time`` is the median promise on the recent lines.

    Raises:
        ValueError: on a missing column or unparsable dates.
    """
    # scipy.stats costs seconds to import; keep it off the import path of everything else here.
    from scipy.stats import mannwhitneyu

    df, cutoff = _prepare(receipts, as_of)
    df = df.assign(recent=df["received_date"] > cutoff - pd.Timedelta(days=recent_days))

    rows = []
    # Suppliers number in the hundreds, not the millions: a plain loop keeps the test readable.
    for supplier_id, group in df.groupby("supplier_id", sort=True):
        recent = group[group["recent"]]
        baseline = group[~group["recent"]]
        if len(recent) < min_recent or len(baseline) < min_baseline:
            continue
        recent_lt = recent["lead_time"].to_numpy()
        base_lt = baseline["lead_time"].to_numpy()
        recent_mean, base_mean = float(recent_lt.mean()), float(base_lt.mean())
        shift = recent_mean - base_mean
        if shift < min_shift_days:
            continue
        p_value = float(mannwhitneyu(recent_lt, base_lt, alternative="greater").pvalue)
        if not np.isfinite(p_value):
            # All lead times tied: no evidence of a shift.
            p_value = 1.0
        if p_value >= alpha:
            continue
        recent_late, base_late = float(recent["late"].mean()), float(baseline["late"].mean())
        rel_shift = shift / max(base_mean, 1.0)
        late_rise = recent_late - base_late
        if rel_shift >= 0.5 or late_rise >= 0.5:
            severity = "high"
        elif rel_shift >= 0.25 or late_rise >= 0.25:
            severity = "medium"
        else:
            severity = "low"
        promised = float(recent["promised_lead_time_days"].median())
        rows.append(
            {
                "supplier_id": supplier_id,
                "anomaly_type": "lead_time_drift",
                "severity": severity,
                "recent_mean_lead_time": recent_mean,
                "baseline_mean_lead_time": base_mean,
                "promised_lead_time": promised,
                "recent_late_rate": recent_late,
                "baseline_late_rate": base_late,
                "p_value": p_value,
                "n_recent": len(recent),
                "n_baseline": len(baseline),
                "explanation": (
                    f"lead time {recent_mean:.1f} days over the last {recent_days} days vs "
                    f"{base_mean:.1f} before ({shift:+.1f} days, promised {promised:g}); late "
                    f"{recent_late:.0%} vs {base_late:.0%}; p={p_value:.3g} "
                    f"({len(recent)} recent vs {len(baseline)} earlier receipts)"
                ),
            }
        )
    if not rows:
        return _empty(DRIFT_COLUMNS)
    return pd.DataFrame(rows, columns=DRIFT_COLUMNS)


#: The purchase-order snapshot columns the supplier statistics read.
PO_HISTORY_COLUMNS = ["po_id", "po_line", "supplier_id", "order_date", "status", "quantity_ordered",
                      "quantity_received", "_ds"]


def latest_po_lines(snapshots: Iterable[pd.DataFrame]) -> pd.DataFrame:
    """The latest state of every PO line seen in daily snapshots, read one snapshot at a time.

    :func:`received_po_lines` and :func:`with_fill_rate` only read each line's last snapshot, so a year
    of snapshots reduces to one row per line as it is read, never held whole.

    Args:
        snapshots: daily purchase-order snapshots, oldest first (an iterator: one day is held at a time).

    Returns:
        One row per ``po_id, po_line``: its latest snapshot, oldest line first.
    """
    latest = pd.DataFrame()
    for day in snapshots:
        if len(day):
            both = pd.concat([latest, day], ignore_index=True) if len(latest) else day
            latest = both.drop_duplicates(["po_id", "po_line"], keep="last").reset_index(drop=True)
    return latest


def received_po_lines(receipts: pd.DataFrame, po_history: pd.DataFrame, suppliers: pd.DataFrame) -> pd.DataFrame:
    """Received PO lines with their order date, supplier and the supplier's promised lead time.

    Args:
        receipts: curated receipts of the window (``po_id, po_line, received_date``).
        po_history: daily purchase-order snapshots of the window, oldest first.
        suppliers: curated supplier master (``supplier_id, promised_lead_time_days``).

    Returns:
        ``po_id, po_line, received_date, supplier_id, order_date, promised_lead_time_days``, one row
        per line (its first receipt); empty when either input is.
    """
    if receipts.empty or po_history.empty:
        return pd.DataFrame()
    # Snapshots are read oldest first: the last one of a line is its latest state.
    po = po_history.drop_duplicates(["po_id", "po_line"], keep="last")
    first = receipts.groupby(["po_id", "po_line"], as_index=False)["received_date"].min()
    merged = first.merge(po[["po_id", "po_line", "supplier_id", "order_date"]], on=["po_id", "po_line"])
    merged["promised_lead_time_days"] = merged["supplier_id"].map(
        suppliers.set_index("supplier_id")["promised_lead_time_days"])
    return merged.dropna(subset=["promised_lead_time_days"])


def with_fill_rate(stats: pd.DataFrame, po_history: pd.DataFrame) -> pd.DataFrame:
    """Add each supplier's fill rate: units received over units ordered on its closed PO lines."""
    if po_history.empty:
        return stats
    last = po_history.sort_values("_ds", kind="stable").drop_duplicates(["po_id", "po_line"], keep="last")
    # A line the supplier cancelled delivered nothing of what was ordered.
    closed = last[last["status"].isin(["received", "cancelled"])]
    if closed.empty:
        return stats
    sums = closed.groupby("supplier_id")[["quantity_received", "quantity_ordered"]].sum().astype(float)
    fill = (sums["quantity_received"] / sums["quantity_ordered"]).clip(upper=1.0).rename("fill_rate")
    if stats.empty:
        return fill.reset_index()
    return stats.merge(fill.reset_index(), on="supplier_id", how="left")


def supplier_stats(received: pd.DataFrame, po_history: pd.DataFrame, as_of: dt.date) -> pd.DataFrame:
    """Lead-time statistics (:func:`supplier_lead_time_stats`) and fill rate per supplier, as of a date."""
    stats = supplier_lead_time_stats(received, as_of=as_of) if len(received) else _empty(STATS_COLUMNS)
    return with_fill_rate(stats, po_history)
