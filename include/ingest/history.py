"""The initial history load of one contract, streamed in batches of days.

A year of a large retailer's daily extracts does not fit in memory at once: ten thousand series deliver
four million inventory rows a year, a hundred thousand series forty million. So the days of an extract are
parsed, validated and written in batches of about :data:`BATCH_ROWS` rows (whole days, at least one), and
memory follows the batch, not the length of the history or the size of the retailer. Small histories are
one batch.

The verdict is the one the whole period would get at once. Row-level rules look at one row at a time (and
the primary key includes the delivery date), so they split each batch as they would split the period.
The extract-level rules are judged once, on the batches' row stats added up. Schema drift is decided on
the period too: a column missing from every delivery, or retyped over all its rows (by type, or because
most of its values do not parse). Drift blocks the period, as it always did, so then the batches are
read a second time and every row is quarantined with the drift's reasons.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, field

import fsspec
import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from include.contracts.contract import Contract
from include.contracts.extract_rules import ExtractStats
from include.contracts.frames import LINEAGE_COLUMNS, ParsedExtract
from include.contracts.validate import (
    ContractResult,
    judge_extract,
    note_extra_columns,
    validate_extract,
    validate_rows,
)
from include.ingest.parse import (
    file_exists,
    fill_missing_columns,
    landing_file,
    parse_extracts,
    retyped_by_share,
)
from include.progress import Progress
from include.storage import read_partition, release_memory, write_partition

log = logging.getLogger(__name__)

#: Rows parsed and validated together. Enough that a small retailer's year is one batch (one GX run per
#: contract), few enough that a batch's frames stay within a few hundred MB.
BATCH_ROWS = 1_000_000


@dataclass
class Batch:
    """Consecutive days of one contract's history, loaded together.

    Attributes:
        days: the days whose partitions the batch writes (a day without a file gets empty ones).
        files: ``(path, ds)`` of the days that have a file, in order.
        rows: estimated rows of the files.
    """

    days: list[dt.date] = field(default_factory=list)
    files: list[tuple[str, str]] = field(default_factory=list)
    rows: int = 0


def plan_batches(contract: Contract, days: list[dt.date], root: str, *,
                 batch_rows: int = BATCH_ROWS) -> list[Batch]:
    """Cut the days of a contract's history into batches of about ``batch_rows`` rows.

    Args:
        contract: the extract's contract.
        days: the days of the history, in order.
        root: data root.
        batch_rows: rows per batch; a day with more is a batch of its own.

    Returns:
        The batches, covering every day; empty when no day has a file.
    """
    files = {day: landing_file(root, contract, day.isoformat()) for day in days}
    files = {day: path for day, path in files.items() if file_exists(path)}
    if not files:
        return []
    rows = _estimated_rows(contract, list(files.values()))
    batches = [Batch()]
    for day in days:
        current = batches[-1]
        if day in files and current.files and current.rows + rows[files[day]] > batch_rows:
            current = Batch()
            batches.append(current)
        current.days.append(day)
        if day in files:
            current.files.append((files[day], day.isoformat()))
            current.rows += rows[files[day]]
    return batches


def _estimated_rows(contract: Contract, paths: list[str]) -> dict[str, int]:
    """Rows of each file: from the footers for Parquet, else by size and the first file's bytes per line."""
    if contract.file_format == "parquet":
        out = {}
        for path in paths:
            with fsspec.open(path, "rb") as fh:
                out[path] = pq.ParquetFile(fh).metadata.num_rows
        return out
    fs, _, _ = fsspec.get_fs_token_paths(paths[0])
    sizes = {path: fs.size(path) for path in paths}
    with fsspec.open(paths[0], "rb") as fh:
        lines = max(fh.read().count(b"\n"), 1)
    per_line = max(sizes[paths[0]] / lines, 1.0)
    return {path: int(size / per_line) + 1 for path, size in sizes.items()}


@dataclass
class _Columns:
    """What parsing found about the delivered columns, added up over the batches of a history."""

    missing: list[str] | None = None
    extra: list[str] = field(default_factory=list)
    delivered: list[str] = field(default_factory=list)
    retyped_by_type: dict[str, str] = field(default_factory=dict)
    type_counts: dict[str, tuple[int, int, str | None]] = field(default_factory=dict)

    def add(self, parsed: ParsedExtract) -> None:
        self.missing = list(parsed.missing_columns) if self.missing is None else \
            [c for c in self.missing if c in parsed.missing_columns]
        self.extra += [c for c in parsed.extra_columns if c not in self.extra]
        self.delivered += [c for c in parsed.raw_columns if c not in self.delivered]
        for name, why in parsed.retyped_columns.items():  # parsed without the share decision: by type only
            self.retyped_by_type.setdefault(name, why)
        for name, (bad, present, first_bad) in parsed.type_counts.items():
            before = self.type_counts.get(name, (0, 0, None))
            self.type_counts[name] = (before[0] + bad, before[1] + present, before[2] or first_bad)

    def retyped(self, contract: Contract) -> dict[str, str]:
        """Columns retyped over the whole history, in contract order, as one parse of it would say."""
        out = {}
        for col in contract.columns:
            if col.name in self.retyped_by_type:
                out[col.name] = self.retyped_by_type[col.name]
            elif col.name in self.type_counts:
                share = retyped_by_share(*self.type_counts[col.name], col.type)
                if share is not None:
                    out[col.name] = share
        return out


def load_contract_history(contract: Contract, batches: list[Batch], refs: dict[tuple[str, str], list[str]],
                          ds: str, root: str, progress: Progress | None = None) -> ContractResult:
    """Parse, validate and write a contract's history batch by batch; the verdict on the whole period.

    Args:
        contract: the extract's contract.
        batches: the history's days (:func:`plan_batches`), at least one batch.
        refs: master data values for reference checks.
        ds: the date the history is validated for (its last day).
        root: data root.
        progress: stepped once per batch with its rows.

    Returns:
        The result over the whole history.

    Raises:
        ExtractUnreadable: when a file cannot be read at all (the batches before it are written).
        RuntimeError: when GX's verdict on a rule and the vectorised row split disagree.
    """
    total = ContractResult(contract.id, contract.version, ds, "")
    stats = ExtractStats()
    columns = _Columns()
    writer = _Writer(contract, root)
    for batch in batches:
        parsed = parse_extracts(contract, batch.files, decide_retyped=False)
        columns.add(parsed)
        parsed = fill_missing_columns(contract, parsed)  # drift is decided on the whole history, below
        part = ContractResult(contract.id, contract.version, ds, _first_file(parsed),
                              rows_in=len(parsed.frame))
        curated, quarantine, part_stats = validate_rows(contract, parsed, refs, part)
        del parsed
        writer.write(batch.days, curated, quarantine, delivered_rows=part.rows_in)
        del curated, quarantine
        release_memory(collect=True)  # the batch's frames and GX's objects, before the next batch is read
        _add_rows(total, part)
        stats.add(part_stats)
        if progress is not None:
            progress.step(part.rows_in)
    retyped = columns.retyped(contract)
    if columns.missing or retyped:
        return _load_blocked_by_drift(contract, batches, refs, ds, root, columns, retyped)
    writer.finish(columns.delivered)
    note_extra_columns(columns.extra, total)
    judge_extract(contract, stats, ds, None, total, extra_columns=columns.extra)
    return total


def _load_blocked_by_drift(contract: Contract, batches: list[Batch], refs: dict[tuple[str, str], list[str]],
                           ds: str, root: str, columns: _Columns, retyped: dict[str, str]) -> ContractResult:
    """Quarantine every row of the history with the drift found over it (reading the batches again)."""
    total = None
    writer = _Writer(contract, root)
    for batch in batches:
        parsed = parse_extracts(contract, batch.files, decide_retyped=False)
        parsed.missing_columns = [c for c in parsed.missing_columns if c not in columns.missing]
        parsed = fill_missing_columns(contract, parsed)
        parsed.missing_columns, parsed.retyped_columns = list(columns.missing), dict(retyped)
        parsed.extra_columns = list(columns.extra)
        part, curated, quarantine = validate_extract(contract, parsed, ds, refs)
        del parsed
        writer.write(batch.days, curated, quarantine, delivered_rows=part.rows_in)
        del curated, quarantine
        release_memory(collect=True)
        if total is None:
            total = part  # drift's breaches and reasons are the history's, the same in every batch
        else:
            total.rows_in += part.rows_in
            total.rows_quarantined += part.rows_quarantined
            total.sample_keys = (total.sample_keys + part.sample_keys)[:5]
    writer.finish(columns.delivered)
    log.warning("history %s: schema drift over the whole history, every row quarantined", contract.id)
    return total


def _first_file(parsed: ParsedExtract) -> str:
    frame = parsed.frame
    return str(frame["_source_file"].iloc[0]) if len(frame) else ""


def _add_rows(total: ContractResult, part: ContractResult) -> None:
    """Add a batch's row-level counts, breaches, GX failures and sample keys (in row order) to the total."""
    total.file = total.file or part.file
    total.rows_in += part.rows_in
    total.rows_passed += part.rows_passed
    total.rows_quarantined += part.rows_quarantined
    total.rows_warned += part.rows_warned
    for rule, count in part.breaches.items():
        total.breaches[rule] = total.breaches.get(rule, 0) + count
    total.gx_failed += [rule for rule in part.gx_failed if rule not in total.gx_failed]
    total.sample_keys = (total.sample_keys + part.sample_keys)[:5]


@dataclass
class _Writer:
    """Writes each day's curated and quarantine partitions, empty ones in the shape of the whole history's.

    A batch without rows for a zone has an empty frame of another shape than rows give: a text-only
    quarantine (quarantined rows carry typed ``_ds`` and ``_source_line``), a curated ``_source_file``
    without a type when the batch's files are empty. Validated whole, the history's empty days took the
    shape of its rows if it had any; so they do here: empty days written before a zone's first row are
    written again in its shape.
    """

    contract: Contract
    root: str
    empty: dict[str, pd.DataFrame] = field(default_factory=dict)
    shapeless: dict[str, list[dt.date]] = field(default_factory=dict)
    quarantine_columns: dict[dt.date, list[str]] = field(default_factory=dict)

    def write(self, days: list[dt.date], curated: pd.DataFrame, quarantine: pd.DataFrame, *,
              delivered_rows: int) -> None:
        """Replace the partitions of each day of a batch with that day's rows (maybe none).

        Args:
            days: the batch's days.
            curated: the batch's curated rows.
            quarantine: the batch's quarantined rows.
            delivered_rows: rows the batch's files held (curated is typed as they were, even when empty).
        """
        for zone, frame in (("curated", curated), ("quarantine", quarantine)):
            shaped = bool(delivered_rows) if zone == "curated" else bool(len(frame))
            if shaped and zone not in self.empty:
                self.empty[zone] = frame.iloc[0:0]
                for day in self.shapeless.pop(zone, []):
                    write_partition(self.empty[zone], zone, self.contract.id, day, self.root)
            if not shaped and zone not in self.empty:
                self.shapeless.setdefault(zone, []).extend(days)
            for day, rows in zip(days, _by_day(frame, days), strict=True):
                rows = rows if shaped else self.empty.get(zone, rows)
                write_partition(rows, zone, self.contract.id, day, self.root)
                if zone == "quarantine":
                    self.quarantine_columns[day] = [str(c) for c in rows.columns]

    def finish(self, delivered: list[str]) -> None:
        """Give every quarantine partition the columns delivered over the whole history, in their order.

        A column delivered on some days only (an extra one, or one missing some days) is in the quarantine
        of every day, null where the day's file lacks it, as when the history is read as one.

        Args:
            delivered: the columns of the history's files, in order of first appearance.
        """
        wanted = [*delivered, *LINEAGE_COLUMNS, "_rules", "_reasons"]
        for day, columns in self.quarantine_columns.items():
            if columns == wanted:
                continue
            frame = read_partition("quarantine", self.contract.id, day, self.root)
            for name in wanted:
                if name not in frame.columns:
                    frame[name] = pd.array([None] * len(frame), dtype="string")
            write_partition(frame[wanted], "quarantine", self.contract.id, day, self.root)


def _by_day(frame: pd.DataFrame, days: list[dt.date]) -> list[pd.DataFrame]:
    """The rows of each day (by ``_ds``), as slices of ``frame`` in row order."""
    if not len(frame):
        return [frame.iloc[0:0]] * len(days)
    stamps = frame["_ds"].to_numpy(dtype="datetime64[ns]")
    if (np.diff(stamps.view(np.int64)) < 0).any():
        order = np.argsort(stamps, kind="stable")  # not expected: files are read in day order
        frame, stamps = frame.iloc[order], stamps[order]
    wanted = np.asarray([np.datetime64(day, "ns") for day in days])
    starts = np.searchsorted(stamps, wanted, side="left")
    ends = np.searchsorted(stamps, wanted, side="right")
    return [frame.iloc[a:b] for a, b in zip(starts.tolist(), ends.tolist(), strict=True)]
