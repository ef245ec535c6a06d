"""A stand-in for a missing or blocked extract of a non-critical source: its last good curated partition.

A contract's ``criticality`` says whether a night can go on without the extract of its date. A critical
one cannot: its blocked result stands, with a reason saying so. For a non-critical one the newest earlier
*good* partition no older than ``max_age_days`` is put in place as the curated partition of the date
(:func:`include.ingest.publish.publish_substitute`), so every stage still reads what exists as of the
logical date, and an on-time ingest of the date later replaces it like any earlier partition. The result
is recorded as ``substituted``, with the date used and why.

A good partition is one a delivery curated rows into (``part-0.parquet`` with at least one row): a missing
or blocked delivery leaves an empty partition, so it is never taken, and a stand-in is never taken for
another (the age of the rows would hide behind it).
"""

from __future__ import annotations

import datetime as dt
import logging

from include.config import as_date
from include.contracts.contract import Contract
from include.contracts.validate import SUBSTITUTED, ContractResult
from include.ingest.publish import publish_substitute
from include.storage import delivered_rows

log = logging.getLogger(__name__)


def last_good_partition(contract_id: str, ds: str | dt.date, max_age_days: int, root: str) -> dt.date | None:
    """The newest day before ``ds``, at most ``max_age_days`` earlier, whose curated partition is good.

    Args:
        contract_id: the curated dataset.
        ds: logical date.
        max_age_days: how many days back a stand-in may come from.
        root: data root.

    Returns:
        The day, or None when no day of the window has a good partition.
    """
    day = as_date(ds)
    for back in range(1, max_age_days + 1):
        candidate = day - dt.timedelta(days=back)
        if (delivered_rows("curated", contract_id, candidate, root) or 0) > 0:
            return candidate
    return None


def stand_in(contract: Contract, result: ContractResult, root: str) -> ContractResult:
    """Put the last good partition in place of a missing or blocked extract, when its contract allows.

    Args:
        contract: the extract's contract.
        result: its blocked result (its partitions of the date are already written, empty).
        root: data root.

    Returns:
        ``result``, now ``substituted`` with the date used and why; or still blocked, with a reason saying
        why nothing stands in (a critical source, or no good partition within ``max_age_days``).
    """
    day = as_date(result.ds)
    if contract.critical:
        result.reasons.append(f"critical: {contract.id} is a critical source (its data contract's criticality), "
                              f"so no earlier partition stands in for the extract {result.file} and the night stops")
        return result
    max_age = contract.criticality.max_age_days or 0
    found = last_good_partition(contract.id, day, max_age, root)
    if found is None:
        result.reasons.append(
            f"no stand-in: {contract.id} has no curated partition with rows from "
            f"{day - dt.timedelta(days=max_age)} to {day - dt.timedelta(days=1)} (max_age_days {max_age})")
        return result
    path = publish_substitute(contract.id, day, root, found)
    age = (day - found).days
    result.outcome, result.substituted_from = SUBSTITUTED, found.isoformat()
    result.reasons.append(f"substituted: the curated partition of {found} ({age} days old, max {max_age}) stands "
                          f"in for the extract of {day} ({path})")
    log.warning("%s ds=%s: extract missing or blocked; the curated partition of %s stands in (%d days old)",
                contract.id, day, found, age)
    return result
