"""The demo's summary says what each fill-rate target was planned at and how the forecast error was scaled."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))
import shelfwise  # noqa: E402 - scripts/ is not a package


def test_service_and_calibration_lines_read_the_decisions_summary():
    decisions = {
        "service": {"0.95": {"planned": 0.9612, "lost_vs_planned": 1.29},
                    "0.98": {"planned": 0.985, "lost_vs_planned": 1.333}},
        "calibration": {"intervals": 1200, "scales": {"cv 0-0.25": 1.31, "cv 0.25-0.5": 0.97}, "errors": {}},
    }
    service, calibration = shelfwise._service_lines(decisions)
    assert "0.95 -> 0.9612 (1.29)" in service and "0.98 -> 0.985 (1.333)" in service
    assert calibration == "Forecast error scaled from 1200 past intervals: cv 0-0.25 x1.31, cv 0.25-0.5 x0.97"


def test_a_night_without_history_says_the_error_is_not_scaled():
    lines = shelfwise._service_lines({"service": {}, "calibration": "none: 3 past intervals"})
    assert lines == ["Forecast error not scaled (none: 3 past intervals)"]
    assert shelfwise._service_lines({}) == []
