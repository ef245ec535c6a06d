"""Returned units on their way back into sellable stock, as the nightly's replenishment counts them.

A ``return_disposition`` line released as ``restock_as_new`` puts its units back on the shelf where they
were received; one released as ``transfer_to`` sends them, as new, to the location where they sell. Other
dispositions (open box, refurbish, return to vendor, liquidate) never become new stock of the SKU. The
inventory snapshot shows a restocked unit only once the location has shelved it, ``lag_days`` after the
day it was returned (and a transferred one its transfer's days later still: the location master's
``transfer_lead_time_days`` of where it goes, as the routing priced it); until then replenishment counts
it in the inventory position like stock in transit, so the night does not order what the returns desk is
about to put back.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping

import numpy as np
import pandas as pd

__all__ = ["RESTOCKING_ACTIONS", "first_return_day", "returning_units", "transfer_days_by_location"]

#: Disposition actions whose units become new stock of the SKU at the line's ``to_location``.
RESTOCKING_ACTIONS = ("restock_as_new", "transfer_to")
#: Columns of the released lines :func:`returning_units` reads.
RELEASED_COLUMNS = ("ds", "to_location", "sku", "action", "quantity")


#: Days of a transfer: one figure for every destination, or destination -> days (``"*"``: the others).
TransferDays = float | Mapping[str, float]


def first_return_day(day: dt.date, *, lag_days: int, transfer_days: TransferDays) -> dt.date:
    """The earliest return day whose released units :func:`returning_units` may still count on ``day``'s
    night: a transferred unit's, the slowest to show (it shows ``lag_days + ceil(transfer_days)`` after)."""
    return day - dt.timedelta(days=lag_days + math.ceil(max(_by_place(transfer_days).values(), default=0.0)) - 1)


def _by_place(transfer_days: TransferDays) -> Mapping[str, float]:
    """``transfer_days`` as destination -> days, ``"*"`` for the destinations not named."""
    return transfer_days if isinstance(transfer_days, Mapping) else {"*": transfer_days}


def transfer_days_by_location(locations: pd.DataFrame, default: float) -> dict[str, float]:
    """The location master's ``transfer_lead_time_days`` per location, ``default`` for the rest (``"*"``)."""
    days = pd.to_numeric(locations.get("transfer_lead_time_days", pd.Series(dtype=float)), errors="coerce")
    known = days.notna() & (days >= 0)
    return {"*": float(default), **dict(zip(locations.loc[known, "location_id"].astype(str), days[known].astype(float),
                                            strict=True))}


def returning_units(released: pd.DataFrame, day: dt.date, *, lag_days: int, transfer_days: TransferDays
                    ) -> pd.DataFrame:
    """Units of released restocking dispositions not yet in ``day``'s inventory snapshot, per location and SKU.

    Args:
        released: released ``return_disposition`` lines (:data:`RELEASED_COLUMNS`; ``ds`` is the day the
            units were returned, the routing run's date); reversed lines are left out by the caller.
        day: the night whose inventory snapshot the position starts from.
        lag_days: days from a unit's return until the snapshot shows it shelved where it was received.
        transfer_days: days a transferred unit travels on top of that (rounded up to whole snapshots), one
            figure or per destination (``"*"`` for those not named).

    Returns:
        ``location_id, sku, returning`` (units), one row per location and SKU with units still to show.
    """
    missing = [c for c in RELEASED_COLUMNS if c not in released.columns]
    if missing:
        raise ValueError(f"released return dispositions lack column(s) {missing}")
    by_place = _by_place(transfer_days)
    if lag_days < 0 or min(by_place.values(), default=0.0) < 0:
        raise ValueError(f"lag_days and transfer_days must not be negative, got {lag_days}, {transfer_days}")
    lines = released[released["action"].isin(RESTOCKING_ACTIONS) & released["to_location"].notna()]
    returned = pd.to_datetime(lines["ds"]).dt.normalize()
    travel = lines["to_location"].astype(str).map(by_place).fillna(by_place.get("*", 0.0)).to_numpy(float)
    extra = (lines["action"] == "transfer_to").to_numpy() * np.ceil(travel).astype(np.int64)
    shows = returned + pd.to_timedelta(lag_days + extra, unit="D")
    night = pd.Timestamp(day)
    coming = lines[((shows > night) & (returned <= night)).to_numpy()]
    out = (coming.assign(quantity=coming["quantity"].astype(float))
           .groupby(["to_location", "sku"], as_index=False)["quantity"].sum()
           .rename(columns={"to_location": "location_id", "quantity": "returning"}))
    return out[out["returning"] > 0].reset_index(drop=True)
