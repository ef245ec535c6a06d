"""Progress a long task can be seen making: steps done, rows per second and memory, at a steady cadence.

Also the process's peak resident memory, which every stage summary records beside its seconds.
"""

from __future__ import annotations

import logging
import resource
import sys
import time

log = logging.getLogger(__name__)


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, in MB (``ru_maxrss``: KB on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return round(peak / (1024 * 1024 if sys.platform == "darwin" else 1024), 1)


def current_rss_mb() -> float:
    """Resident memory of this process now, in MB (from /proc; the peak where /proc is absent)."""
    try:
        with open("/proc/self/statm") as fh:
            pages = int(fh.read().split()[1])
        return round(pages * resource.getpagesize() / (1024 * 1024), 1)
    except OSError:
        return peak_rss_mb()


class Progress:
    """Log ``label: k/n steps, rows, rows/s, RSS`` at most every ``every_s`` seconds, and at the end.

    Args:
        label: what is being done (``history load``, ``forecast shard 3``...).
        total: steps expected.
        every_s: least seconds between two progress lines.
        clock: time source (tests pass their own).
    """

    def __init__(self, label: str, total: int, *, every_s: float = 30.0, clock=time.monotonic) -> None:
        self.label, self.total, self.every_s, self._clock = label, total, every_s, clock
        self.done = self.rows = 0
        self._start = self._last = clock()

    def step(self, rows: int = 0) -> None:
        """One step done, with ``rows`` processed; logs when the cadence is due or the last step is done."""
        self.done += 1
        self.rows += rows
        now = self._clock()
        if now - self._last >= self.every_s or self.done >= self.total:
            self._last = now
            log.info("%s", self.line(now))

    def line(self, now: float | None = None) -> str:
        """The progress line as it would be logged now."""
        elapsed = max((self._clock() if now is None else now) - self._start, 1e-9)
        return (f"{self.label}: {self.done}/{self.total} done, {self.rows:,} rows in {elapsed:.1f} s "
                f"({self.rows / elapsed:,.0f} rows/s), RSS {current_rss_mb():,.0f} MB")
