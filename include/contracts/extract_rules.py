"""Extract-level rules: freshness, row count, volume, duplicate keys and the share of quarantined rows.

They judge a whole delivery from a few numbers (:class:`ExtractStats`) that the row-level validation
counts, not from the rows themselves. So a delivery validated in parts (the history load validates a
year in batches of days) is judged once, on the parts' stats added up, exactly as if it had been
validated whole.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from include.contracts.contract import Contract, QualityRule, Volume

if TYPE_CHECKING:
    from include.contracts.validate import ContractResult


@dataclass
class ExtractStats:
    """What the extract-level rules need to know about the rows of a delivery.

    Attributes:
        rows: rows delivered.
        warned: rows a warning rule flagged (quarantined or not).
        exact: repeats of a primary key that are exact copies of an earlier row.
        conflicting: repeats of a primary key with other values.
        counted_bad: quarantined rows that count against the share of bad rows (exact repeats do not).
        newest: newest value of the freshness rule's column (None: no such rule, or no value).
    """

    rows: int = 0
    warned: int = 0
    exact: int = 0
    conflicting: int = 0
    counted_bad: int = 0
    newest: Any = None

    @classmethod
    def of(cls, contract: Contract, frame: pd.DataFrame, *, warned: np.ndarray, exact: np.ndarray,
           conflicting: np.ndarray, bad: np.ndarray) -> ExtractStats:
        """The stats of validated rows.

        Args:
            contract: the extract's contract.
            frame: the typed rows.
            warned: rows a warning rule flagged.
            exact: exact repeats of a primary key.
            conflicting: conflicting repeats of a primary key.
            bad: quarantined rows.

        Returns:
            The counts, and the newest value of the freshness column.
        """
        freshness = contract.rule("freshness")
        newest = None
        if freshness is not None and freshness.column is not None and len(frame):
            newest = frame[freshness.column].max()
            newest = newest if pd.notna(newest) else None
        return cls(rows=len(frame), warned=int(warned.sum()), exact=int(exact.sum()),
                   conflicting=int(conflicting.sum()), counted_bad=int((bad & ~exact).sum()), newest=newest)

    def add(self, other: ExtractStats) -> None:
        """Add the stats of another part of the same delivery (later rows)."""
        self.rows += other.rows
        self.warned += other.warned
        self.exact += other.exact
        self.conflicting += other.conflicting
        self.counted_bad += other.counted_bad
        if other.newest is not None and (self.newest is None or other.newest > self.newest):
            self.newest = other.newest


def severity(rule: QualityRule | None, default: str = "error") -> str:
    """The rule's severity, or ``default`` when the contract does not list the rule."""
    return rule.severity if rule is not None else default


def extract_rules(contract: Contract, stats: ExtractStats, ds: str, history_counts: list[int] | None,
                  result: ContractResult) -> list[tuple[str, str]]:
    """Apply the contract's extract-level ``quality`` rules, recording in the result those that fire.

    Args:
        contract: the extract's contract.
        stats: the delivery's rows, counted by the row-level validation.
        ds: logical date.
        history_counts: rows delivered on earlier days (oldest first); None skips the volume rule.
        result: where fired rules add their breach count and reason.

    Returns:
        ``(severity, reason)`` of each rule that fired.
    """
    n = stats.rows
    fired: list[tuple[str, str]] = []

    def fire(rule: str, rule_severity: str, reason: str, count: int = 1) -> None:
        fired.append((rule_severity, reason))
        result.breaches[rule] = count
        result.reasons.append(f"{rule}: {reason} ({rule_severity})")

    if n < contract.min_rows:
        fire("row_count", severity(contract.rule("row_count")),
             f"{n} rows, contract expects at least {contract.min_rows}")
    freshness = contract.rule("freshness")
    if freshness is not None and freshness.column is not None and stats.newest is not None:
        newest = stats.newest
        oldest_ok = pd.Timestamp(ds) - pd.Timedelta(days=contract.max_age_days)
        if pd.Timestamp(newest).normalize() < oldest_ok:
            fire("freshness", freshness.severity,
                 f"newest {freshness.column} is {pd.Timestamp(newest).date()}, the file for {ds} must hold "
                 f"{oldest_ok.date()} or later (an earlier file sent again?)")
    volume = contract.rule("volume")
    if volume is not None and history_counts is not None:
        _volume_rule(volume, n, history_counts, fire)
    duplicates = contract.rule("duplicate_key")
    if duplicates is not None:
        if stats.conflicting:
            fire("duplicate_key", duplicates.severity,
                 f"{stats.conflicting} rows repeat a primary key with other values", stats.conflicting)
        if stats.exact:
            fire("duplicate_key:exact", duplicates.exact_repeat_severity,
                 f"{stats.exact} rows are exact repeats of earlier rows (first kept)", stats.exact)
    # Exact repeats lose no information, so they do not count against the share of bad rows.
    pct = 100.0 * stats.counted_bad / n if n else 0.0
    if pct > contract.max_quarantine_pct:
        fire("quarantine_share", severity(contract.rule("quarantine_share")),
             f"{pct:.1f}% of rows quarantined, above the contract's {contract.max_quarantine_pct:g}%",
             stats.counted_bad)
    return fired


def _volume_rule(volume: Volume, n: int, history_counts: list[int], fire) -> None:
    """Rows of the delivery against the median of the earlier delivered days in the rule's window."""
    window = [c for c in history_counts if c > 0][-volume.trailing_days:]
    if len(window) < volume.min_history:
        return
    median = float(np.median(window))
    low, high = volume.min_ratio, volume.max_ratio
    ratio = n / median if median else float("inf")
    if not low <= ratio <= high:
        fire("volume", volume.severity,
             f"{n} rows is {ratio:.2f}x the median of {median:g} over the last {len(window)} delivered "
             f"days (expected {low:g}x to {high:g}x)", n)
