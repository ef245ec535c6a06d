"""The demo's trading hour: after the night, ``retail_intraday`` reads the next day's afternoon and says what it sensed.

The demo world runs one day past the night (``DAY_AFTER``) with demand surges on that day. This lands the
hourly extracts of the days before (the hour-of-day profile learns from them, ingested as earlier hourly
runs would have) and of that day through ``HOUR``, then runs ``retail_intraday`` for the hour with
``airflow dags test``. Lines that wait for a planner keep the run at its gate (the policy's intraday
deadline), in the background like the night's; the summary is printed once they are staged.
"""

from __future__ import annotations

import datetime as dt
import subprocess
import time
from pathlib import Path

#: The afternoon hour the demo reads (14:00-15:00), and how many earlier days teach the hourly profile.
HOUR = 14
PROFILE_DAYS = 3


def land_intraday(world, root: str, day: dt.date, *, hour: int = HOUR, days: int = PROFILE_DAYS) -> None:
    """Land and ingest the hourly extracts of the ``days`` before ``day`` (the profile learns from them, as
    earlier hourly runs would have ingested them), and land ``day`` through ``hour``, not ingested yet."""
    from include.ingest.intraday import ingest_hour
    from include.sample_data.intraday_landing import write_intraday_landing

    for back in range(1, days + 1):
        earlier = day - dt.timedelta(days=back)
        write_intraday_landing(world, root, earlier)
        for h in range(24):
            for source in ("pos_intraday", "ecommerce_intraday"):
                ingest_hour(source, earlier, h, root=root)
    write_intraday_landing(world, root, day, hours=range(hour + 1))


def run_hour(airflow: str, env: dict[str, str], root: str, day: dt.date, log_path: Path,
             timeout: float = 600) -> tuple[subprocess.Popen, dict | None]:
    """Start ``retail_intraday`` for :data:`HOUR` of ``day``; return once its lines are staged (or it ended)."""
    from include.stages.summaries import read_stage_summaries

    stages = Path(root) / "reports" / "stages" / "retail_intraday" / f"ds={day}"
    for stale in stages.glob("*.json"):
        stale.unlink()
    logical = f"{day}T{HOUR + 1:02d}:00:00+00:00"
    with open(log_path, "w") as log:
        proc = subprocess.Popen([airflow, "dags", "test", "retail_intraday", logical], env=env, stdout=log,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + timeout
    while time.time() < deadline:
        summaries = read_stage_summaries("retail_intraday", day, root)
        if "stage_moves" in summaries or proc.poll() is not None:
            return proc, summaries
        time.sleep(2)
    return proc, None


def describe(day: dt.date, summaries: dict | None, log_path: Path) -> str:
    """What the hour sensed and proposed, for the demo's output."""
    if not summaries or "sense_demand" not in summaries:
        return f"retail_intraday did not sense {day} hour {HOUR:02d}; see {log_path}"
    sensed, proposed = summaries["sense_demand"], summaries.get("propose_moves", {})
    staged = summaries.get("stage_moves", {})
    lines = [
        "", f"Shelfwise demo: retail_intraday for {day}, hour {HOUR:02d}:00-{HOUR + 1:02d}:00", "=" * 64,
        f"Sensed {sensed['series']} series against the forecast of {sensed['forecast_origin']}: "
        f"{sensed['alarms']} surging ({sensed['alarms_by_level']}) in {sensed['skus_surging']} SKU(s); "
        f"thresholds {sensed['thresholds']}",
        f"Urgent moves: {proposed.get('lines', 0)} line(s) {proposed.get('by_action', {})}, "
        f"{proposed.get('units', 0):g} units, margin at stake {proposed.get('margin_at_stake', 0):g}",
        f"Staged in ERP: {staged.get('auto_approved', 0)} auto-approved, {staged.get('pending', 0)} waiting for a "
        "planner until the policy's intraday deadline",
        f"  log: {log_path}",
    ]
    return "\n".join(lines)
