"""Adapter from the USAID SCMS delivery history (real purchase-order lines) to the receipts shape of
:mod:`include.procurement.leadtime`.

The file is read as delivered and never written. Mapping: ``Vendor`` -> ``supplier_id``, ``Country`` ->
``lane``, ``Shipment Mode`` -> ``mode`` ("N/A" or missing: ``"unknown"``, kept), ``Scheduled Delivery Date`` ->
``promised_at``, ``Delivered to Client Date`` -> ``received_at``, and ``ordered_at`` from ``PO Sent to Vendor
Date``. Lines shipped from SCMS's regional distribution centres have no PO to a vendor ("N/A - From RDC"),
and some direct lines say "Date Not Captured"; for those ``ordered_at`` falls back to ``PQ First Sent to
Client Date``, the price quote that precedes the order: the earliest real date at which the line was known,
so a prediction made then sees no receipt the order date would not have seen. ``ordered_at_source`` says
which date was used. Rows without a usable date are dropped and counted by reason in a :class:`LoadReport`.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

__all__ = ["DEFAULT_PATH", "LoadReport", "load_scms", "parse_dates"]

DEFAULT_PATH = Path("../shared/data/usaid_scms/SCMS_Delivery_History_Dataset.csv.zip")
#: The formats the file uses (``8/27/14`` and ``29-Aug-14``), then ISO; anything else is text, not a date.
DATE_FORMATS = ("%m/%d/%y", "%d-%b-%y", "%Y-%m-%d")
#: How the file writes a shipment mode it did not record.
MODE_NOT_RECORDED = ("N/A", "")
COLUMNS = {
    "ID": "line_id", "Vendor": "supplier_id", "Country": "lane", "Shipment Mode": "mode",
    "Fulfill Via": "fulfil_via", "PO Sent to Vendor Date": "po_sent", "PQ First Sent to Client Date": "quote_sent",
    "Scheduled Delivery Date": "promised_at", "Delivered to Client Date": "received_at",
}


@dataclass
class LoadReport:
    """What :func:`load_scms` read, kept and dropped.

    Attributes:
        rows_read: Rows in the file.
        rows_kept: Rows returned.
        dropped: Rows dropped per reason (each row counted once, under the first reason that applies).
        ordered_at_source: Rows kept per source of ``ordered_at`` (``po_sent`` or ``quote``).
        text_dates: Per date column, the non-date strings found and how often.
        mode_unknown: Rows kept with no shipment mode recorded.
    """

    rows_read: int = 0
    rows_kept: int = 0
    dropped: dict[str, int] = field(default_factory=dict)
    ordered_at_source: dict[str, int] = field(default_factory=dict)
    text_dates: dict[str, dict[str, int]] = field(default_factory=dict)
    mode_unknown: int = 0


def parse_dates(values: pd.Series) -> pd.Series:
    """Parse a column mixing real dates with text such as "Date Not Captured"; text becomes NaT.

    Each format of :data:`DATE_FORMATS` is tried on the values still unparsed, so ``3/4/10`` is always
    month-first (as the file writes it) and never guessed per row.
    """
    text = values.astype("string").str.strip()
    out = pd.Series(pd.NaT, index=values.index, dtype="datetime64[ns]")
    for fmt in DATE_FORMATS:
        todo = out.isna() & text.notna()
        if not todo.any():
            break
        out.loc[todo] = pd.to_datetime(text[todo], format=fmt, errors="coerce")
    return out


def _text_values(raw: pd.Series, parsed: pd.Series) -> dict[str, int]:
    bad = raw[parsed.isna()].fillna("<empty>").astype(str)
    return dict(Counter(bad).most_common())


def load_scms(path: str | Path = DEFAULT_PATH) -> tuple[pd.DataFrame, LoadReport]:
    """Load the SCMS delivery history as receipts for :func:`include.procurement.leadtime.predict_arrivals`.

    Args:
        path: The CSV (zipped or not) with the dataset's column names.

    Returns:
        The receipts (``line_id, supplier_id, lane, mode, fulfil_via, ordered_at, ordered_at_source,
        promised_at, received_at``) sorted by ``ordered_at`` then ``line_id``, and the :class:`LoadReport`.

    Raises:
        ValueError: The file lacks one of the columns the mapping reads.
    """
    raw = pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[""])
    missing = [c for c in COLUMNS if c not in raw.columns]
    if missing:
        raise ValueError(f"{path} lacks column(s) {missing}")
    frame = raw[list(COLUMNS)].rename(columns=COLUMNS)
    report = LoadReport(rows_read=len(frame))
    dates = {c: parse_dates(frame[c]) for c in ("po_sent", "quote_sent", "promised_at", "received_at")}
    report.text_dates = {c: _text_values(frame[c], d) for c, d in dates.items() if d.isna().any()}
    use_quote = dates["po_sent"].isna() & dates["quote_sent"].notna() & (dates["quote_sent"] <= dates["promised_at"])
    ordered = dates["po_sent"].where(dates["po_sent"].notna(), dates["quote_sent"].where(use_quote))
    frame = frame.assign(ordered_at=ordered, promised_at=dates["promised_at"], received_at=dates["received_at"],
                         ordered_at_source=pd.Series("po_sent", index=frame.index).where(~use_quote, "quote"))
    reasons = [
        ("scheduled delivery date is not a date", frame["promised_at"].isna()),
        ("delivered to client date is not a date", frame["received_at"].isna()),
        ("no PO-sent date and no quote date on or before the scheduled date", frame["ordered_at"].isna()),
        ("delivered before the order date", frame["received_at"] < frame["ordered_at"]),
    ]
    drop = pd.Series(False, index=frame.index)
    for reason, rows in reasons:
        fresh = rows & ~drop
        report.dropped[reason] = int(fresh.sum())
        drop |= fresh
    frame = frame.loc[~drop]
    no_mode = frame["mode"].isna() | frame["mode"].str.strip().isin(MODE_NOT_RECORDED)
    report.mode_unknown = int(no_mode.sum())
    frame = frame.assign(mode=frame["mode"].where(~no_mode, "unknown"), line_id=pd.to_numeric(frame["line_id"]))
    frame = frame.sort_values(["ordered_at", "line_id"], kind="stable").reset_index(drop=True)
    report.rows_kept = len(frame)
    report.ordered_at_source = {str(k): int(v) for k, v in frame["ordered_at_source"].value_counts().items()}
    cols = ["line_id", "supplier_id", "lane", "mode", "fulfil_via", "ordered_at", "ordered_at_source",
            "promised_at", "received_at"]
    return frame[cols], report
