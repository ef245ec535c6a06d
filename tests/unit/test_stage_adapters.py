"""The stage adapters stay adapters: small, one per task, and the owner functions hold the logic."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

from include.stages import nightly, orchestration

ROOT = Path(__file__).resolve().parents[2]


def _public_functions(module) -> list:
    return [f for name, f in inspect.getmembers(module, inspect.isfunction)
            if f.__module__ == module.__name__ and not name.startswith("_")]


def test_adapters_are_small():
    too_long = {f"{module.__name__}.{f.__name__}": n for module in (nightly, orchestration)
                for f in _public_functions(module) if (n := len(inspect.getsourcelines(f)[0])) > 25}
    assert too_long == {}, f"stage adapters over 25 lines hold more than glue: {too_long}"


def test_no_sql_outside_include_erp():
    """SQL lives in include/erp; everything else calls it."""
    offenders = []
    for path in (ROOT / "include").rglob("*.py"):
        if "erp" in path.relative_to(ROOT / "include").parts:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "execute" and node.args \
                    and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str) \
                    and node.args[0].value.lstrip().upper().startswith(("SELECT", "INSERT", "UPDATE", "DELETE")):
                offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert offenders == []


def test_no_parse_of_the_auth_manager_users_setting():
    """Roles come from the auth manager's user, whatever the auth manager."""
    hits = [str(p.relative_to(ROOT)) for folder in ("include", "plugins") for p in (ROOT / folder).rglob("*.py")
            if "SIMPLE_AUTH_MANAGER_USERS" in p.read_text()]
    assert hits == []


def test_every_recorded_stage_files_its_seconds_and_peak_memory(tmp_path):
    from include.runs import Run
    from include.stages.summaries import read_stage_metrics, read_stage_summaries, record

    run = Run(dag_id="retail_nightly", run_id="r1", ds="2026-11-27", task_id="tier_proposals", started=0.0)
    assert record(run, {"proposals": 3}, str(tmp_path)) == {"proposals": 3}
    assert read_stage_summaries("retail_nightly", "2026-11-27", str(tmp_path)) == {"tier_proposals": {"proposals": 3}}
    metrics = read_stage_metrics("retail_nightly", "2026-11-27", str(tmp_path))["tier_proposals"]
    assert metrics["seconds"] > 0 and metrics["peak_rss_mb"] > 50  # a Python process with pandas loaded


def test_progress_is_logged_at_a_steady_cadence_and_at_the_end(caplog):
    import logging

    from include.progress import Progress

    now = [0.0]
    progress = Progress("history load", 4, every_s=30, clock=lambda: now[0])
    with caplog.at_level(logging.INFO, logger="include.progress"):
        for t, rows in ((10, 100), (31, 200), (40, 300), (45, 400)):
            now[0] = t
            progress.step(rows)
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 2  # at 31 s (cadence) and at the last step
    assert lines[0].startswith("history load: 2/4 done, 300 rows in 31.0 s (10 rows/s), RSS ")
    assert lines[1].startswith("history load: 4/4 done, 1,000 rows in 45.0 s (22 rows/s), RSS ")


def test_the_report_lists_stages_slowest_first():
    from include.reporting.kpis import stage_table

    table = stage_table({"build_demand": {"seconds": 5.0, "peak_rss_mb": 900.0},
                         "combine_forecasts": {"seconds": 12.5, "peak_rss_mb": 1200.0}})
    assert table[-2:] == ["| combine_forecasts | 12.5 | 1,200 |", "| build_demand | 5.0 | 900 |"]
