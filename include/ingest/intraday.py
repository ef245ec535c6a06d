"""Ingest and validate the hourly extracts of the trading day, one hour at a time, and read the day so far.

The tills send each hour's item movement, the web shop each hour's order lines, and the WMS a stock snapshot
a few times a day (:data:`include.ingest.pipeline.INTRADAY_SOURCES`). Each lands under
``landing/<source>/ds=<ds>/hour=HH/<file>`` and is validated by its own contract
(``data_contracts/<source>.yaml``) the way the nightly validates a day (GX included), plus the rules that
every row belongs to the date and hour it is filed under (:mod:`include.contracts.partition_rules`).

The valid rows replace ``curated/<source>/ds=<ds>/hour=HH``, the bad ones ``quarantine/<source>/...``, both
together (:mod:`include.ingest.publish`), so a re-run of the hour replaces it and leaves the other hours
alone. As in the nightly, a blocked or unreadable file leaves both empty and raises
:class:`ContractViolation` once they are written. An hour whose file has not arrived is not an error of the
file: it is reported (blocked, ``freshness``, "not delivered yet") without raising, and its partitions are
emptied so that nothing of an earlier run of the hour looks current.

References to master data are checked against the newest curated master on or before the date: during the
day that is the one the last night curated.
"""

from __future__ import annotations

import datetime as dt
import logging

import pandas as pd

from include.config import as_date, data_root
from include.contracts.contract import Contract, load_contracts
from include.contracts.partition_rules import validate_hour
from include.contracts.validate import BLOCKED, WARNED, ContractResult, ContractViolation, unreadable_result
from include.ingest.parse import ExtractUnreadable, file_exists, parse_extract
from include.ingest.pipeline import INTRADAY_SOURCES, log_summary, reference_values
from include.ingest.publish import publish_partitions, supersede_partitions
from include.storage import partition_exists, partition_hours, read_hours

log = logging.getLogger(__name__)

#: Sources whose deliveries are snapshots: the day so far is the latest one, not every hour added up.
SNAPSHOT_SOURCES = ("wms_intraday",)
#: Days back from the date to look for a curated master to check references against.
MASTER_LOOKBACK_DAYS = 7
#: The reason of an hour whose file has not arrived (not raised: the hour may simply not be over yet).
NOT_DELIVERED = "not delivered yet"


def hour_landing_file(root: str, contract: Contract, ds: str, hour: int) -> str:
    """Where the extract of one hour lands: ``<root>/landing/<source>/ds=<ds>/hour=HH/<file name>``.

    Args:
        root: data root.
        contract: the extract's contract.
        ds: logical date.
        hour: the hour, 0..23.

    Returns:
        The path.
    """
    return f"{root}/landing/{contract.source}/ds={ds}/hour={hour:02d}/{contract.file_name}"


def ingest_hour(source: str, ds: str | dt.date, hour: int, root: str | None = None, *,
                contracts: dict[str, Contract] | None = None, raise_on_block: bool = True) -> list[ContractResult]:
    """Parse, validate and split the extract of one source for one hour of a date.

    Args:
        source: one of :data:`include.ingest.pipeline.INTRADAY_SOURCES`.
        ds: logical date.
        hour: the hour the file is filed under, 0..23.
        root: data root; defaults to ``SHELFWISE_DATA_ROOT``.
        contracts: loaded contracts; defaults to ``data_contracts/``.
        raise_on_block: raise :class:`ContractViolation` when a delivered extract is blocked.

    Returns:
        One result per contract of the source; an hour not delivered yet is a blocked result whose reason
        says so, never raised.

    Raises:
        ContractViolation: when a delivered extract breaks an error rule (after writing its outputs).
        ValueError: for a source that is not delivered by the hour, or an hour outside 0..23.
    """
    if source not in INTRADAY_SOURCES:
        raise ValueError(f"{source!r} is not an hourly source; expected one of {', '.join(INTRADAY_SOURCES)}")
    if isinstance(hour, bool) or not isinstance(hour, int) or not 0 <= hour <= 23:
        raise ValueError(f"hour must be an integer in 0..23, got {hour!r}")
    root = root or data_root()
    ds = as_date(ds).isoformat()
    contracts = contracts or load_contracts()
    mine = sorted((c for c in contracts.values() if c.source == source), key=lambda c: c.id)
    if not mine:
        raise ValueError(f"no data contract reads landing source {source!r}")
    results, missing = [], []
    for contract in mine:
        path = hour_landing_file(root, contract, ds, hour)
        if not file_exists(path):
            results.append(not_delivered_result(contract, ds, hour, path))
            missing.append(results[-1])
            supersede_partitions(contract.id, ds, root, hour=hour)
            continue
        try:
            result, curated, quarantine = _validate_file(contract, contracts, path, ds, hour, root)
        except Exception:
            # Whatever went wrong, the hour's earlier partitions must not pass for this run's.
            supersede_partitions(contract.id, ds, root, hour=hour)
            raise
        if result.outcome == BLOCKED:
            curated = curated.iloc[0:0] if curated is not None else pd.DataFrame()
        written = publish_partitions(contract.id, ds, root, {
            "curated": curated if curated is not None else pd.DataFrame(),
            "quarantine": quarantine if quarantine is not None else pd.DataFrame()}, hour=hour)
        result.quarantine_path = written["quarantine"] if quarantine is not None and len(quarantine) else None
        results.append(result)
    log_summary(f"{source} hour={hour:02d}", ds, results)
    blocked = [r for r in results if r.outcome == BLOCKED and not any(r is m for m in missing)]
    if blocked and raise_on_block:
        raise ContractViolation(blocked, results)
    return results


def _validate_file(contract: Contract, contracts: dict[str, Contract], path: str, ds: str, hour: int,
                   root: str) -> tuple[ContractResult, pd.DataFrame | None, pd.DataFrame | None]:
    """Parse and validate one hour's file: ``(result, curated, quarantine)``; no rows when it is unreadable."""
    try:
        parsed = parse_extract(contract, path, ds)
    except ExtractUnreadable as exc:
        return unreadable_result(contract, ds, path, exc), None, None
    master_day = reference_day(contract, ds, root)
    refs = reference_values({contract.id: contract}, master_day, root) if master_day else {}
    result, curated, quarantine = validate_hour(contract, parsed, ds, hour, refs, file=path)
    if master_day is None and any(c.references for c in contract.columns):
        # Not a fault of the file, but its references went unchecked: say so rather than pass quietly.
        result.reasons.append(f"reference: no curated master data on or within {MASTER_LOOKBACK_DAYS} days "
                              f"before {ds}, references not checked (warning)")
        if result.outcome != BLOCKED:
            result.outcome = WARNED
    return result, curated, quarantine


def reference_day(contract: Contract, ds: str, root: str) -> str | None:
    """The newest date on or before ``ds`` with a curated partition of every master the contract references.

    Args:
        contract: the extract's contract.
        ds: logical date.
        root: data root.

    Returns:
        The date (ISO), or None when none of the last :data:`MASTER_LOOKBACK_DAYS` days has them all.
    """
    masters = {col.references.contract for col in contract.columns if col.references is not None}
    day = as_date(ds)
    for back in range(MASTER_LOOKBACK_DAYS + 1):
        candidate = day - dt.timedelta(days=back)
        if all(partition_exists("curated", master, candidate, root) for master in masters):
            return candidate.isoformat()
    return None


def not_delivered_result(contract: Contract, ds: str, hour: int, path: str) -> ContractResult:
    """The result of an hour whose file has not arrived: blocked by ``freshness``, with the path looked at.

    Args:
        contract: the extract's contract.
        ds: logical date.
        hour: the hour.
        path: where the file was expected.

    Returns:
        A blocked result; :func:`ingest_hour` reports it without raising.
    """
    return ContractResult(contract.id, contract.version, ds, path, outcome=BLOCKED, breaches={"freshness": 1},
                          reasons=[f"freshness: no file for {ds} hour {hour:02d} at {path}: {NOT_DELIVERED} (error)"])


def read_intraday(source: str, ds: str | dt.date, through_hour: int, root: str | None = None) -> pd.DataFrame:
    """The curated rows of a date's hours up to and including ``through_hour``.

    For a movement source (POS, ecommerce) every hour's rows, concatenated in hour order. For a snapshot
    source (WMS) the latest snapshot at or before the hour; an hour that was blocked or not delivered has no
    rows, so the one before it is taken.

    Args:
        source: one of :data:`include.ingest.pipeline.INTRADAY_SOURCES`.
        ds: logical date.
        through_hour: the last hour read, 0..23.
        root: data root; defaults to ``SHELFWISE_DATA_ROOT``.

    Returns:
        The rows with their lineage columns; an empty frame when no hour has any.

    Raises:
        ValueError: for a source that is not delivered by the hour.
    """
    if source not in INTRADAY_SOURCES:
        raise ValueError(f"{source!r} is not an hourly source; expected one of {', '.join(INTRADAY_SOURCES)}")
    hours = [h for h in partition_hours("curated", source, ds, root) if h <= through_hour]
    if source not in SNAPSHOT_SOURCES:
        return read_hours("curated", source, ds, hours, root)
    for hour in reversed(hours):
        snapshot = read_hours("curated", source, ds, [hour], root)
        if len(snapshot):
            return snapshot
    return pd.DataFrame()
