"""Ingest and validate the extracts of one source for one logical date.

Landing files are only read, never changed. Each contract's valid rows replace the curated partition
``curated/<contract>/ds=<ds>``, its bad rows replace ``quarantine/<contract>/ds=<ds>``, and the result
of every validation is returned for recording. Both partitions are replaced together
(:mod:`include.ingest.publish`): a blocked, missing or unreadable extract leaves them empty, and an
extract whose processing fails leaves them empty before the error propagates, so nothing of an earlier
run of the date looks current. A blocked extract raises :class:`ContractViolation` after everything has
been written, so what was kept and why is always on disk.

Corrected rows placed under ``landing/<source>/ds=<ds>/corrections/<file>`` replace the delivered rows
with the same primary key when the date is ingested again (``python -m include.ingest reingest``).
"""

from __future__ import annotations

import datetime as dt
import logging

import numpy as np
import pandas as pd

from include.config import as_date, data_root
from include.contracts.contract import MASTER_SOURCE, Contract, load_contracts
from include.contracts.frames import ParsedExtract
from include.contracts.validate import (
    BLOCKED,
    ContractResult,
    ContractViolation,
    missing_file_result,
    unreadable_result,
    validate_extract,
)
from include.ingest.history import BATCH_ROWS, load_contract_history, plan_batches
from include.ingest.parse import (
    ExtractUnreadable,
    corrections_file,
    file_exists,
    landing_file,
    parse_extracts,
)
from include.ingest.publish import publish_partitions, supersede_partitions
from include.ingest.substitute import stand_in
from include.progress import Progress
from include.storage import delivered_rows, read_partition

log = logging.getLogger(__name__)

#: Master contracts in dependency order: later ones reference earlier ones.
MASTER_ORDER = ("suppliers", "locations", "items", "promotions")
SOURCES = ("master", "pos", "ecommerce", "wms", "supplier", "returns")
#: Sources delivered by the hour (``ds=<ds>/hour=HH``): ingested by :mod:`include.ingest.intraday`, never here.
INTRADAY_SOURCES = ("pos_intraday", "ecommerce_intraday", "wms_intraday")


def _ordered(contracts: list[Contract]) -> list[Contract]:
    rank = {cid: i for i, cid in enumerate(MASTER_ORDER)}
    return sorted(contracts, key=lambda c: (rank.get(c.id, len(rank)), c.id))


def reference_values(contracts: dict[str, Contract], ds: str, root: str) -> dict[tuple[str, str], list[str]]:
    """Values of every referenced master column, from the curated master partitions of ``ds``.

    Args:
        contracts: the contracts whose references are looked up.
        ds: logical date.
        root: data root.

    Returns:
        Sorted distinct values by referenced ``(contract, column)``; a master not curated yet is left out.
    """
    refs: dict[tuple[str, str], list[str]] = {}
    for contract in contracts.values():
        for col in contract.columns:
            if col.references is None or col.references in refs:
                continue
            ref_id, ref_col = col.references
            master = read_partition("curated", ref_id, ds, root, missing_ok=True)
            if ref_col in master.columns:
                refs[col.references] = sorted(master[ref_col].dropna().astype(str).unique().tolist())
    return refs


def ingest_source(
    source: str,
    ds: str | dt.date,
    *,
    root: str | None = None,
    contracts: dict[str, Contract] | None = None,
    raise_on_block: bool = True,
    substitute: bool = True,
) -> list[ContractResult]:
    """Parse, validate and split every extract of one source for one date.

    A missing or blocked extract of a non-critical contract is replaced by its last good curated partition
    (:mod:`include.ingest.substitute`) and its result is ``substituted``; only the others block.

    Args:
        source: landing source folder (``pos``, ``wms``, ``master``...).
        ds: logical date.
        root: data root; defaults to ``SHELFWISE_DATA_ROOT``.
        contracts: loaded contracts; defaults to ``data_contracts/``.
        raise_on_block: raise :class:`ContractViolation` when any extract is blocked.
        substitute: put a stand-in in place of a missing or blocked non-critical extract.

    Returns:
        One result per contract of the source.

    Raises:
        ContractViolation: when an extract breaks an error rule (after writing its outputs).
        ValueError: for a source no contract reads, or one delivered by the hour (:data:`INTRADAY_SOURCES`).
    """
    if source in INTRADAY_SOURCES:
        raise ValueError(f"{source!r} is delivered by the hour: ingest it with include.ingest.intraday.ingest_hour")
    root = root or data_root()
    ds = as_date(ds).isoformat()
    contracts = contracts or load_contracts()
    mine = _ordered([c for c in contracts.values() if c.source == source])
    if not mine:
        raise ValueError(f"no data contract reads landing source {source!r}")
    results = []
    for contract in mine:
        try:
            result, curated, quarantine = _validate_contract(contract, contracts, mine, source, ds, root)
        except Exception:
            # Whatever went wrong, the date's earlier partitions must not pass for this run's.
            supersede_partitions(contract.id, ds, root)
            raise
        if result.outcome == BLOCKED:
            # A blocked extract must not leave an older curated partition that looks current.
            curated = curated.iloc[0:0] if curated is not None else pd.DataFrame()
        # Both written even when empty, so a re-run clears what an earlier run curated or quarantined.
        written = publish_partitions(contract.id, ds, root, {
            "curated": curated if curated is not None else pd.DataFrame(),
            "quarantine": quarantine if quarantine is not None else pd.DataFrame()})
        result.quarantine_path = written["quarantine"] if quarantine is not None and len(quarantine) else None
        if result.outcome == BLOCKED and substitute:
            # In the loop: a later master contract checks its references against this stand-in.
            result = stand_in(contract, result, root)
        results.append(result)
    log_summary(source, ds, results)
    blocked = [r for r in results if r.outcome == BLOCKED]
    if blocked and raise_on_block:
        raise ContractViolation(blocked, results)
    return results


def _validate_contract(contract: Contract, contracts: dict[str, Contract], mine: list[Contract], source: str,
                       ds: str, root: str) -> tuple[ContractResult, pd.DataFrame | None, pd.DataFrame | None]:
    """Parse and validate one contract's extract of the date: ``(result, curated, quarantine)``.

    A missing or unreadable file gives a blocked result and no rows (None).
    """
    path = landing_file(root, contract, ds)
    if not file_exists(path):
        return missing_file_result(contract, ds, path), None, None
    try:
        parsed = parse_with_corrections(contract, path, corrections_file(root, contract, ds), ds)
    except ExtractUnreadable as exc:
        return unreadable_result(contract, ds, path, exc), None, None
    refs = reference_values(contracts, ds, root) if source != MASTER_SOURCE else \
        reference_values({c.id: c for c in mine if c.id == contract.id}, ds, root)
    return validate_extract(contract, parsed, ds, refs, history_counts=delivered_counts(contract, ds, root))


def parse_with_corrections(contract: Contract, path: str, corrections: str, ds: str) -> ParsedExtract:
    """Parse the delivered file, with corrected rows (if any) replacing the rows of the same key.

    The landing file stays as delivered; the corrections file is a second delivery that wins for the
    keys it holds, so a fixed quarantined row reaches curated with its correction as its source.

    Args:
        contract: the extract's contract.
        path: the delivered file.
        corrections: where corrected rows would be.
        ds: logical date.

    Returns:
        The parsed extract, corrections included.

    Raises:
        ExtractUnreadable: when either file cannot be read at all.
    """
    if not file_exists(corrections):
        return parse_extracts(contract, [(path, ds)])
    parsed = parse_extracts(contract, [(path, ds), (corrections, ds)])
    key = list(contract.primary_key) or contract.column_names
    raw_key = parsed.raw[key].astype("string").fillna("").agg("|".join, axis=1)
    is_fix = (parsed.frame["_source_file"] == corrections).to_numpy()
    replaced = raw_key.isin(set(raw_key[is_fix])).to_numpy() & ~is_fix
    keep = np.flatnonzero(~replaced)
    log.info("%s: %d corrected rows from %s replace %d delivered rows", contract.id, int(is_fix.sum()),
             corrections, int(replaced.sum()))
    return parsed.take(keep)


def delivered_counts(contract: Contract, ds: str, root: str) -> list[int] | None:
    """Rows delivered (curated + quarantined) on each earlier day of the volume window, oldest first.

    Read from the Parquet footers only, so the check costs a few small reads. Only days before ``ds``
    count: a re-run of the date does not compare the delivery with itself.

    Args:
        contract: the extract's contract.
        ds: logical date.
        root: data root.

    Returns:
        Rows of each earlier day that has partitions, or None when the contract has no ``volume`` rule.
    """
    rule = contract.rule("volume")
    if rule is None:
        return None
    day = as_date(ds)
    counts = []
    for back in range(rule.trailing_days, 0, -1):
        rows = [delivered_rows(zone, contract.id, day - dt.timedelta(days=back), root)
                for zone in ("curated", "quarantine")]
        if any(n is not None for n in rows):
            counts.append(sum(n or 0 for n in rows))
    return counts


def log_summary(source: str, ds: str, results: list[ContractResult]) -> None:
    """A few lines in the task log: one per contract, then the totals of the source.

    Args:
        source: landing source folder.
        ds: logical date.
        results: one per contract of the source.
    """
    for r in results:
        log.info("contract %s", r.summary())
    log.info("source %s ds=%s: %d contracts, %d rows in, %d passed, %d quarantined, outcomes %s", source, ds,
             len(results), sum(r.rows_in for r in results), sum(r.rows_passed for r in results),
             sum(r.rows_quarantined for r in results),
             ", ".join(f"{r.contract_id}={r.outcome}" for r in results))


def load_history(
    start: str | dt.date,
    end: str | dt.date,
    *,
    root: str | None = None,
    contracts: dict[str, Contract] | None = None,
    batch_rows: int = BATCH_ROWS,
) -> dict[str, int]:
    """Initial load: ingest every landed day in ``[start, end]`` for the transactional sources.

    Used once when a retailer starts with Shelfwise (and by the demo) so that forecasting has
    history. Each extract is streamed in batches of days (:mod:`include.ingest.history`): parsed,
    validated and written to its daily partitions a batch at a time, with the verdict of one validation
    over the whole period, so memory follows the batch and not the history. Master data is loaded for
    ``end`` only.

    Args:
        start: first day.
        end: last day.
        root: data root; defaults to ``SHELFWISE_DATA_ROOT``.
        contracts: loaded contracts; defaults to ``data_contracts/``.
        batch_rows: rows parsed and validated together.

    Returns:
        Rows curated per contract.

    Raises:
        ExtractUnreadable: when a landed file cannot be read at all.
    """
    root = root or data_root()
    contracts = contracts or load_contracts()
    start_d, end_d = as_date(start), as_date(end)
    ingest_source(MASTER_SOURCE, end_d, root=root, contracts=contracts)
    refs = reference_values(contracts, end_d.isoformat(), root)
    days = [start_d + dt.timedelta(days=i) for i in range((end_d - start_d).days + 1)]
    transactional = [c for c in contracts.values() if c.source not in (MASTER_SOURCE, *INTRADAY_SOURCES)]
    plans = {c.id: plan_batches(c, days, root, batch_rows=batch_rows) for c in transactional}
    progress = Progress(f"history load {start_d}..{end_d}", sum(len(b) for b in plans.values()))
    counts: dict[str, int] = {}
    for contract in transactional:
        if not plans[contract.id]:
            counts[contract.id] = 0
            continue
        result = load_contract_history(contract, plans[contract.id], refs, end_d.isoformat(), root, progress)
        log.info("history %s", result.summary())
        counts[contract.id] = result.rows_passed
    return counts
