"""Helpers shared by the forecasting benchmarks: a readable table, one JSON line, machine facts."""

from __future__ import annotations

import json
import os
import resource
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

#: Project root (benchmarks/ lives directly under it); the shared real data sits next to it.
ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("SHELFWISE_SHARED_DATA", ROOT.parent / "shared" / "data"))


def ensure_project_on_path() -> None:
    """Let ``python benchmarks/x.py`` import ``models`` without setting ``PYTHONPATH``."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))


def cpu_count() -> int:
    """Cores this process may run on (the affinity mask, not the machine's total)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, in MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def format_table(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> str:
    """Render ``rows`` as a fixed-width text table; floats get 4 significant digits."""

    def cell(value: Any) -> str:
        if isinstance(value, float):
            return f"{value:.4g}"
        return "" if value is None else str(value)

    body = [[cell(row.get(col)) for col in columns] for row in rows]
    widths = [max([len(col)] + [len(r[i]) for r in body]) for i, col in enumerate(columns)]
    lines = ["  ".join(col.ljust(w) for col, w in zip(columns, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)) for r in body]
    return "\n".join(lines)


def emit_json(payload: dict[str, Any]) -> None:
    """Print ``payload`` as the last line of output, one line, for machines to pick up."""
    print(json.dumps(payload, sort_keys=True, default=_json_default), flush=True)


def _json_default(value: Any) -> Any:
    if hasattr(value, "item"):
        return value.item()
    return str(value)
