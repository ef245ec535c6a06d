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
from pathlib import Path

#: The DAG the demo runs one hour of.
DAG_ID = "retail_intraday"
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


def prepare_world(root: str, preset: str, ds: dt.date, hour: int, *, volume: float, shocks_per_day: int,
                  min_daily_units: float, history_days: int, shard_size: int, days: int = PROFILE_DAYS,
                  ingest_earlier_hours: bool = False):
    """A generated retailer with demand surges on ``ds``, as ``retail_intraday`` finds it at the end of ``hour``.

    Its history is loaded through the night before, that night's forecast made by the nightly's own stages
    (over ``history_days``, in shards of ``shard_size`` series), the hourly extracts of the ``days`` before
    ingested (the hourly profile learns from them) and the day's hours through ``hour`` landed, not yet
    ingested; with ``ingest_earlier_hours``, the hours before ``hour`` ingested too, as the day's earlier
    hourly runs would have, so that a run for ``hour`` finds only its own hour new.

    Returns:
        The world: it keeps the surges' ground truth (``world.shocks``).
    """
    import dataclasses

    from include.ingest.pipeline import load_history
    from include.runs import Run
    from include.sample_data.generator import PRESETS, generate_world, write_landing
    from include.sample_data.intraday import ShockConfig
    from include.stages import nightly

    config = dataclasses.replace(PRESETS[preset], end_date=ds, volume=volume,
                                 shocks=ShockConfig(days=1, per_day=shocks_per_day, min_daily_units=min_daily_units))
    world = generate_world(config)
    write_landing(world, root)
    night = ds - dt.timedelta(days=1)
    load_history(ds - dt.timedelta(days=config.history_days - 1), night, root=root)
    land_intraday(world, root, ds, hour=hour, days=days)
    if ingest_earlier_hours and hour > 0:
        from include.ingest.intraday import ingest_hour
        from include.stages.intraday import SOURCES, hours_to_ingest

        for source in SOURCES:
            for h in hours_to_ingest(source, ds.isoformat(), hour - 1, root):
                ingest_hour(source, ds, h, root=root)
    run = Run(dag_id="retail_nightly", run_id="intraday-world-night", ds=night.isoformat(), task_id="forecast",
              params={"history_days": history_days, "shard_size": shard_size})
    nightly.build_demand(run, root=root)
    for shard in nightly.plan_forecast_shards(run, root=root):
        nightly.forecast_demand(run, shard["shard"], shard["n_shards"], root=root)
    return world


def run(airflow: str, env: dict[str, str], root: str, day: dt.date, log_path: Path,
        timeout: float = 600) -> tuple[subprocess.Popen, dict | None]:
    """Start ``retail_intraday`` for :data:`HOUR` of ``day``; return once its lines are staged (or it ended)."""
    from airflow_services import dags_test_until

    return dags_test_until(airflow, env, root, DAG_ID, day, log_path, "stage_moves",
                           logical=f"{day}T{HOUR + 1:02d}:00:00+00:00", timeout=timeout)


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
        f"Urgent moves: {proposed.get('lines', 0)} line(s) {proposed.get('by_action', {})} for "
        f"{proposed.get('receivers', 0)} series short {proposed.get('receivers_by_reason', {})}, "
        f"{proposed.get('units', 0):g} units, margin at stake {proposed.get('margin_at_stake', 0):g}",
        f"Staged in ERP: {staged.get('auto_approved', 0)} auto-approved, {staged.get('pending', 0)} waiting for a "
        "planner until the policy's intraday deadline",
        f"  log: {log_path}",
    ]
    return "\n".join(lines)
