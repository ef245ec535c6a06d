"""Returned units on their way back into sellable stock, as the nightly's replenishment counts them.

A ``return_disposition`` line released as ``restock_as_new`` puts its units back on the shelf where they
were received; one released as ``transfer_to`` sends them, as new, to the location where they sell. Other
dispositions (open box, refurbish, return to vendor, liquidate) never become new stock of the SKU. The
inventory snapshot shows a restocked unit only once the location has shelved it, ``lag_days`` after the
day it was returned (and a transferred one ``transfer_days`` later still); until then replenishment counts
it in the inventory position like stock in transit, so the night does not order what the returns desk is
about to put back.
"""

from __future__ import annotations

import datetime as dt
import math

import pandas as pd

__all__ = ["RESTOCKING_ACTIONS", "first_return_day", "returning_units"]

#: Disposition actions whose units become new stock of the SKU at the line's ``to_location``.
RESTOCKING_ACTIONS = ("restock_as_new", "transfer_to")
#: Columns of the released lines :func:`returning_units` reads.
RELEASED_COLUMNS = ("ds", "to_location", "sku", "action", "quantity")


def first_return_day(day: dt.date, *, lag_days: int, transfer_days: float) -> dt.date:
    """The earliest return day whose released units :func:`returning_units` may still count on ``day``'s
    night: a transferred unit's, the slowest to show (it shows ``lag_days + ceil(transfer_days)`` after)."""
    return day - dt.timedelta(days=lag_days + math.ceil(transfer_days) - 1)


def returning_units(released: pd.DataFrame, day: dt.date, *, lag_days: int, transfer_days: float) -> pd.DataFrame:
    """Units of released restocking dispositions not yet in ``day``'s inventory snapshot, per location and SKU.

    Args:
        released: released ``return_disposition`` lines (:data:`RELEASED_COLUMNS`; ``ds`` is the day the
            units were returned, the routing run's date); reversed lines are left out by the caller.
        day: the night whose inventory snapshot the position starts from.
        lag_days: days from a unit's return until the snapshot shows it shelved where it was received.
        transfer_days: days a transferred unit travels on top of that (rounded up to whole snapshots).

    Returns:
        ``location_id, sku, returning`` (units), one row per location and SKU with units still to show.
    """
    missing = [c for c in RELEASED_COLUMNS if c not in released.columns]
    if missing:
        raise ValueError(f"released return dispositions lack column(s) {missing}")
    if lag_days < 0 or transfer_days < 0:
        raise ValueError(f"lag_days and transfer_days must not be negative, got {lag_days}, {transfer_days}")
    lines = released[released["action"].isin(RESTOCKING_ACTIONS) & released["to_location"].notna()]
    returned = pd.to_datetime(lines["ds"]).dt.normalize()
    extra = (lines["action"] == "transfer_to").to_numpy() * math.ceil(transfer_days)
    shows = returned + pd.to_timedelta(lag_days + extra, unit="D")
    night = pd.Timestamp(day)
    coming = lines[((shows > night) & (returned <= night)).to_numpy()]
    out = (coming.assign(quantity=coming["quantity"].astype(float))
           .groupby(["to_location", "sku"], as_index=False)["quantity"].sum()
           .rename(columns={"to_location": "location_id", "quantity": "returning"}))
    return out[out["returning"] > 0].reset_index(drop=True)
