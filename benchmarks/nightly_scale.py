"""A retailer's scale: ``retail_nightly`` under Airflow's scheduler, per number of series, to the approval gate.

For each requested size, and each requested executor (``--executor local,celery`` runs both on the same
world), the benchmark:

1. generates a world of (stores + 1 ecommerce centre) x SKUs over a 365-day window
   (``include.sample_data.generator``) under a data root of its own, writes the landing files, and loads
   the history before the run date with ``include.ingest.pipeline.load_history`` in a child process,
   timing it and taking its peak resident memory (the child's ``ru_maxrss``, and psutil samples); a
   second executor reuses the world, with the run date's outputs of the first removed;
2. starts Airflow's whole stack with ``scripts/airflow_services.airflow_stack`` (API server, scheduler,
   DAG processor, triggerer; with the CeleryExecutor two ``airflow celery worker`` processes on the
   Redis broker and a queue of the run's own) on a fresh metadata DB (PostgreSQL
   ``<prefix>_airflow_scale``, or SQLite under the LocalExecutor) with a fresh ERP staging DB
   ``<prefix>_erp_scale``, and triggers ``retail_nightly`` for the run date through the REST API with
   ``{"mode": "live", "history_days": 365, "shard_size": 5000}``;
3. runs it to the approval gate: when ``review_batch`` (the Required Action) waits for input it is
   answered "I have reviewed the lines" (decides nothing) through the REST API, then the run goes on
   until ``wait_for_approval`` is deferred (or the run ends). Every ~0.5 s psutil samples the process
   tree of each running task: the task process (``airflow worker -- <task instance id>``) under its
   supervisor, which the LocalExecutor titles ``airflow worker -- LocalExecutor: <ti id>`` and a Celery
   worker's pool process ``airflow supervisor: <ti id>``; its children count, so each task's peak RSS is
   its own. Seconds per task come from the task instances' start and end dates in the REST API;
4. reads the lines the run staged in the ERP DB (``include.erp.staging.run_lines``) and, where two
   executors ran the same size, compares them;
5. prints a table per run and a summary against the issue's baseline and targets, and ends with one
   line of JSON holding every figure.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime as dt
import hashlib
import json
import math
import os
import re
import resource
import secrets
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.parse
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

try:
    from benchmarks._common import ROOT, cpu_count, emit_json, ensure_project_on_path, format_table
except ModuleNotFoundError:  # run as a script: benchmarks/ itself is on sys.path
    from _common import ROOT, cpu_count, emit_json, ensure_project_on_path, format_table

ensure_project_on_path()
# airflow_services: the stack `make celery` runs; required_action: the REST client `make approve` uses
sys.path.insert(0, str(ROOT / "scripts"))
from airflow_services import CELERY, LOCAL, airflow_stack, broker_problem, drop_queue  # noqa: E402

DAG_ID = "retail_nightly"
RUN_DATE = dt.date(2026, 11, 27)
HISTORY_DAYS = 365
SERVER_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
BROKER_URL = "redis://127.0.0.1:6379/0"
EXECUTORS = {"local": LOCAL, "celery": CELERY}
MB = 1024 * 1024
#: What two runs of one size must have staged alike: the ERP lines' business content (no ids, no status).
LINE_COLUMNS = ["doc_type", "business_key", "sku", "from_location", "to_location", "supplier_id", "action",
                "quantity", "value", "risk_tier"]
#: The issue's table of the code before this work (seconds to the gate, peak memory of the run).
BASELINE = [(1_950, 40, 1.2), (14_000, 127, 6.0), (32_000, 272, 11.6)]
TARGETS = {"series": 100_000, "seconds_to_gate": 15 * 60, "task_rss_mb": 4096, "history_load_mb": 4096,
           "flat_sizes": (30_000, 100_000, 300_000), "flat_within": 0.20}
#: Seconds to leave the scheduler after the deferring process of ``review_batch`` is gone (see run_to_gate).
ANSWER_SETTLE_S = 5.0
_TI_ID = r"([0-9a-f]{8}-[0-9a-f-]{27})"
#: A task's supervisor: the LocalExecutor's worker process (``LocalExecutor._run_worker``) or a Celery
#: worker's pool process (``BaseExecutor.run_workload``, which the CeleryExecutor's task calls).
SUPERVISOR_TITLE = re.compile(rf"airflow (?:worker -- LocalExecutor[^:]*|supervisor): {_TI_ID}")
#: The task process (``task_runner.startup``), or the supervisor's title it was forked with until it renames itself.
TASK_TITLE = re.compile(rf"airflow (?:worker -- (?:LocalExecutor[^:]*: )?|supervisor: ){_TI_ID}")


def log(msg: str) -> None:
    print(f"[nightly_scale {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------------------------------
# The world and its history (each in a child process, so its memory is its own)
# --------------------------------------------------------------------------------------------------


def world_config(series: int, ds: dt.date):
    """The world closest to ``series`` series: (stores + 1 ecommerce centre) x SKUs, about 10 SKUs per location.

    Stores come in regions of about eight (one DC each); suppliers grow with the assortment.
    """
    from include.sample_data.generator import WorldConfig

    stores = max(1, round(math.sqrt(series / 10)) - 1)
    regions = max(1, math.ceil(stores / 8))
    per_region = max(1, round(stores / regions))
    skus = max(1, round(series / (regions * per_region + 1)))
    return WorldConfig(n_regions=regions, stores_per_region=per_region, n_skus=skus,
                       n_suppliers=min(60, max(6, skus // 20)), history_days=HISTORY_DAYS, end_date=ds)


def worker_generate(series: int, root: str, ds: dt.date) -> dict[str, Any]:
    from include.sample_data.generator import generate_world, write_landing

    config = world_config(series, ds)
    started = time.perf_counter()
    world = generate_world(config)
    generated = time.perf_counter()
    files = write_landing(world, root)
    return {"generate_seconds": generated - started, "write_seconds": time.perf_counter() - generated,
            "files": len(files), "config": {k: str(v) for k, v in dataclasses.asdict(config).items()}}


def worker_load(root: str, ds: dt.date) -> dict[str, Any]:
    from include.ingest.pipeline import load_history

    started = time.perf_counter()
    counts = load_history(ds - dt.timedelta(days=HISTORY_DAYS - 1), ds - dt.timedelta(days=1), root=root)
    return {"seconds": time.perf_counter() - started, "rows": counts}


def run_child(args: list[str], log_path: Path) -> dict[str, Any]:
    """Run this script as ``--worker ...``; its JSON answer, with the psutil-sampled peak of its tree."""
    with log_path.open("a") as out:
        proc = subprocess.Popen([sys.executable, __file__, "--worker", *args], cwd=ROOT, stdout=subprocess.PIPE,
                                stderr=out, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
        with TreeSampler(proc.pid) as sampler:
            stdout, _ = proc.communicate()
    if proc.returncode != 0:
        raise RuntimeError(f"worker {args[0]} failed (exit {proc.returncode}); see {log_path}")
    result = json.loads(stdout.strip().splitlines()[-1])
    result["sampled_peak_mb"] = round(sampler.peak_total / MB, 1)
    return result


def data_sizes(root: Path) -> dict[str, Any]:
    """Landing files: bytes per source over every day."""
    sizes: dict[str, int] = {}
    for path in (root / "landing").rglob("*"):
        if path.is_file():
            source = path.relative_to(root / "landing").parts[0]
            sizes[source] = sizes.get(source, 0) + path.stat().st_size
    return {"landing_mb": {k: round(v / MB, 1) for k, v in sorted(sizes.items())}}


# --------------------------------------------------------------------------------------------------
# Memory of the running tasks
# --------------------------------------------------------------------------------------------------


class TreeSampler(threading.Thread):
    """Samples RSS of process trees every ``interval`` s: all of them, and each task instance's subtree.

    A task's subtree is the process carrying a task instance id in its title (:data:`TASK_TITLE`) whose
    parent is that task instance's supervisor (:data:`SUPERVISOR_TITLE`, same id), with its descendants.
    A Celery pool process keeps the title of its last task once it is done, so only a supervisor with
    such a child counts as running the task.
    """

    def __init__(self, roots: int | Iterable[int], interval: float = 0.5) -> None:
        super().__init__(daemon=True)
        self.roots, self.interval = [roots] if isinstance(roots, int) else list(roots), interval
        self.peak_total = self.peak_tasks_together = 0
        self.max_load = 0.0  # highest 1-minute load average seen
        self.live_ids: set[str] = set()  # task instance ids with a task process in the latest sample
        self.task_peaks: dict[str, int] = {}  # by task instance id
        self.pid_peaks: dict[int, int] = {}  # by task process id (the TI's ``pid``, also for earlier tries)
        self.task_titles: set[str] = set()  # "supervisor title > task title", ids replaced, as matched
        self._stop_event = threading.Event()

    def __enter__(self) -> TreeSampler:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop_event.set()
        self.join(timeout=5)

    def run(self) -> None:
        while not self._stop_event.is_set():
            with contextlib.suppress(Exception):  # processes come and go between two looks
                self.sample()
            self._stop_event.wait(self.interval)

    def sample(self) -> None:
        procs = _process_table(self.roots)
        self.peak_total = max(self.peak_total, sum(rss for _, _, rss in procs.values()))
        self.max_load = max(self.max_load, os.getloadavg()[0])
        together, live = 0, set()
        for pid, (ppid, title, _) in procs.items():
            parent = procs.get(ppid, (0, "", 0))[1]
            match, supervisor = TASK_TITLE.search(title), SUPERVISOR_TITLE.search(parent)
            if not (match and supervisor and supervisor[1] == match[1]):
                continue
            rss = _subtree_rss(pid, procs)
            together += rss
            live.add(match[1])
            self.task_peaks[match[1]] = max(self.task_peaks.get(match[1], 0), rss)
            self.pid_peaks[pid] = max(self.pid_peaks.get(pid, 0), rss)
            self.task_titles.add(re.sub(_TI_ID, "<ti>", f"{supervisor[0]} > {match[0]}"))
        self.live_ids = live
        self.peak_tasks_together = max(self.peak_tasks_together, together)


def _process_table(roots: list[int]) -> dict[int, tuple[int, str, int]]:
    """``pid -> (parent pid, command line, RSS)`` of the trees under ``roots`` (those still running)."""
    import psutil

    procs: dict[int, tuple[int, str, int]] = {}
    for root_pid in roots:
        with contextlib.suppress(psutil.Error):
            root = psutil.Process(root_pid)
            for p in [root, *root.children(recursive=True)]:
                with contextlib.suppress(psutil.Error):
                    procs[p.pid] = (p.ppid(), " ".join(p.cmdline()), p.memory_info().rss)
    return procs


def _subtree_rss(pid: int, procs: dict[int, tuple[int, str, int]]) -> int:
    """RSS of ``pid`` and its descendants, less the forks that have not run another program yet.

    Such a child (the task's command line still, as between ``fork`` and ``exec`` of a subprocess such
    as prophet's Stan binary) reports its parent's pages as its own: counting it once made a 390 MB
    forecast shard a 775 MB one in a sample.
    """
    total, todo = 0, [pid]
    while todo:
        current = todo.pop()
        ppid, cmdline, rss = procs[current]
        total += 0 if current != pid and cmdline == procs.get(ppid, (0, "", 0))[1] else rss
        todo += [p for p, (parent, _, _) in procs.items() if parent == current]
    return total


# --------------------------------------------------------------------------------------------------
# Databases and Airflow's services
# --------------------------------------------------------------------------------------------------


def db_url(server: str, name: str, driver: str = "postgresql") -> str:
    from sqlalchemy.engine import make_url

    if "_scale" not in name:
        raise ValueError(f"the benchmark only creates and drops databases named *_scale*, not {name!r}")
    return make_url(server).set(drivername=driver, database=name).render_as_string(hide_password=False)


def recreate_database(server: str, name: str, *, create: bool = True) -> None:
    """Drop (and create again) the database ``name``, which must contain ``_scale``."""
    import psycopg

    db_url(server, name)  # refuses any other name
    with psycopg.connect(server, autocommit=True, connect_timeout=10) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        if create:
            conn.execute(f'CREATE DATABASE "{name}"')


def database_names(prefix: str) -> tuple[str, str]:
    """The ERP staging DB and Airflow metadata DB of a run: ``<prefix>_erp_scale``, ``<prefix>_airflow_scale``."""
    return f"{prefix}_erp_scale", f"{prefix}_airflow_scale"


def services_env(home: Path, root: Path, *, erp_db: str, erp_url: str, metadata_url: str,
                 parallelism: int) -> dict[str, str]:
    """The services' environment: the project's own (``scripts/shelfwise.py``'s, as ``make celery``'s), on
    this run's Airflow home, data root and databases, with no scheduled night.

    The executor, API, secrets and broker are :func:`airflow_services.airflow_stack`'s to add.
    """
    from shelfwise import environment

    env = {**os.environ, **environment(airflow_home=home, data_root=root, erp_db=erp_db)}
    return {
        **env,
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": metadata_url,
        # The LocalExecutor's worker processes; the scheduler's cap on running tasks under Celery too.
        "AIRFLOW__CORE__PARALLELISM": str(parallelism),
        "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "False",  # only the triggered run, no scheduled night
        "AIRFLOW__LOGGING__LOGGING_LEVEL": "WARNING",
        "AIRFLOW_CONN_ERP_STAGING": erp_url,
        "ERP_STAGING_URL": erp_url,
    }


def admin_password(env: dict[str, str]) -> str:
    """The admin's password in the simple auth manager's passwords file of ``env``."""
    return json.loads(Path(env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"]).read_text())["admin"]


# --------------------------------------------------------------------------------------------------
# The run, through the REST API
# --------------------------------------------------------------------------------------------------


def task_instances(api, run_path: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    while True:
        page = api.call("GET", f"{run_path}/taskInstances", params={"limit": 100, "offset": len(out)})
        out += page["task_instances"]
        if not page["task_instances"] or len(out) >= page["total_entries"]:
            return out


def ready_api(base: str, password: str, timeout: float = 300):
    """The admin's session once ``retail_nightly`` is parsed; the DAG unpaused."""
    from required_action import AirflowApiError, ApiSession

    api = ApiSession.login(base, "admin", password)
    deadline = time.monotonic() + timeout
    while True:
        try:
            api.call("GET", f"/api/v2/dags/{DAG_ID}")
            break
        except AirflowApiError as exc:
            if exc.status != 404 or time.monotonic() > deadline:
                raise
            time.sleep(2)
    api.call("PATCH", f"/api/v2/dags/{DAG_ID}", body={"is_paused": False})
    return api


def run_to_gate(api, sampler: TreeSampler, ds: dt.date, conf: dict[str, Any], timeout: float) -> dict[str, Any]:
    """Trigger the run and follow it to the gate, answering its Required Action with the neutral choice.

    The answer waits until the process that deferred ``review_batch`` is gone and ``ANSWER_SETTLE_S`` more:
    a resumed task re-queued before the scheduler has read the executor's report of the deferral is
    failed by the scheduler ("finished with state success, but the task instance's state attribute is
    queued"), which a prompt answer triggered on this machine.
    """
    from required_action import answer

    from include.runs import REVIEW_DONE

    triggered = time.monotonic()
    run = api.call("POST", f"/api/v2/dags/{DAG_ID}/dagRuns",
                   body={"logical_date": f"{ds.isoformat()}T00:00:00+00:00", "conf": conf})
    run_path = f"/api/v2/dags/{DAG_ID}/dagRuns/{urllib.parse.quote(run['dag_run_id'], safe='')}"
    out: dict[str, Any] = {"run_id": run["dag_run_id"], "seconds_to_review": None, "seconds_to_gate": None,
                           "review_answered_after": None, "stopped": "timeout"}
    settled_since = None
    while time.monotonic() - triggered < timeout:
        now, state = time.monotonic(), api.call("GET", run_path)["state"]
        tis = {t["task_id"]: t for t in task_instances(api, run_path) if t["map_index"] == -1}
        review, gate = tis.get("review_batch") or {}, (tis.get("wait_for_approval") or {}).get("state")
        if review.get("state") == "awaiting_input" and out["review_answered_after"] is None:
            if out["seconds_to_review"] is None:
                out["seconds_to_review"] = now - triggered
                log(f"review_batch waits for input after {now - triggered:.0f} s")
            settled_since = (settled_since or now) if review["id"] not in sampler.live_ids else None
            if settled_since and now - settled_since >= ANSWER_SETTLE_S:
                answer(api, DAG_ID, run["dag_run_id"], REVIEW_DONE, timeout=120)
                out["review_answered_after"] = time.monotonic() - triggered - out["seconds_to_review"]
                log(f"answered {REVIEW_DONE!r} {out['review_answered_after']:.0f} s after it began waiting")
        if gate in ("deferred", "success") or state == "success":
            out["seconds_to_gate"], out["stopped"] = now - triggered, f"wait_for_approval {gate}"
            break
        if gate in ("failed", "upstream_failed", "skipped") or state == "failed":
            failed = sorted(k for k, t in tis.items() if t["state"] in ("failed", "upstream_failed"))
            out["stopped"] = f"failed before the gate: {', '.join(failed) or state}"
            break
        time.sleep(1)
    out["run_state"] = api.call("GET", run_path)["state"]
    out["tis"] = task_instances(api, run_path)
    out["tis"] += [t for ti in out["tis"] if (ti.get("try_number") or 0) > 1 for t in _tries(api, run_path, ti)]
    return out


def _tries(api, run_path: str, ti: dict[str, Any]) -> list[dict[str, Any]]:
    """Earlier tries of a retried task instance (matched to their processes by ``pid``)."""
    tries = api.call("GET", f"{run_path}/taskInstances/{ti['task_id']}/{ti['map_index']}/tries")
    return [{**t, "id": None, "earlier_try": True} for t in tries.get("task_instances", [])
            if t.get("try_number") != ti.get("try_number")]


def stage_rows(tis: list[dict[str, Any]], sampler: TreeSampler, in_process: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per task instance (and earlier try), ordered by start."""
    rows = []
    for ti in sorted(tis, key=lambda t: t.get("start_date") or "9"):
        name = ti["task_id"] + (f"[{ti['map_index']}]" if ti["map_index"] >= 0 else "")
        name += f" (try {ti['try_number']})" if ti.get("earlier_try") else ""
        seconds = None
        if ti.get("start_date") and ti.get("end_date"):
            seconds = (dt.datetime.fromisoformat(ti["end_date"]) - dt.datetime.fromisoformat(ti["start_date"]))
            seconds = round(seconds.total_seconds(), 1)
        peak = sampler.task_peaks.get(ti["id"]) or sampler.pid_peaks.get(ti.get("pid") or -1)
        metrics = None if ti.get("earlier_try") else in_process.get(ti["task_id"]) if ti["map_index"] < 0 else next(
            (v for k, v in in_process.items() if k.startswith(f"{ti['task_id']}_shard={ti['map_index']:04d}-")), None)
        rows.append({"stage": name, "state": ti["state"], "seconds": seconds,
                     "peak_rss_mb": round(peak / MB, 1) if peak else None,
                     "in_process_peak_mb": (metrics or {}).get("peak_rss_mb")})
    return rows


def own_metrics(root: Path, ds: dt.date) -> dict[str, Any]:
    """Stage metrics the tasks filed themselves (``ru_maxrss``) under ``reports/stage_metrics/``."""
    from include.stages.summaries import read_stage_metrics

    return read_stage_metrics(DAG_ID, ds, str(root))


def most_at_once(tis: list[dict[str, Any]], task_id: str) -> int:
    """The most instances of ``task_id`` (a mapped task's shards) that ran at the same time."""
    events = sorted((dt.datetime.fromisoformat(t[edge]), step) for t in tis
                    if t["task_id"] == task_id and t.get("start_date") and t.get("end_date")
                    and not t.get("earlier_try") for edge, step in (("start_date", 1), ("end_date", -1)))
    running = most = 0
    for _, step in events:  # at one instant, an end (-1) sorts before a start
        running += step
        most = max(most, running)
    return most


# --------------------------------------------------------------------------------------------------
# What the run staged
# --------------------------------------------------------------------------------------------------


def staged_lines(erp_url: str, ds: dt.date) -> pd.DataFrame:
    """The run's staged ERP lines, :data:`LINE_COLUMNS` as text, sorted: comparable across runs."""
    from include.erp import db
    from include.erp.staging import run_lines

    with db.connect(erp_url) as conn:
        lines = run_lines(conn, DAG_ID, ds)
    return lines.reindex(columns=LINE_COLUMNS).astype(str).sort_values(LINE_COLUMNS).reset_index(drop=True)


def lines_digest(lines: pd.DataFrame) -> str:
    """A short fingerprint of staged lines (what the JSON shows instead of the commercial rows)."""
    return hashlib.sha256(lines.to_csv(index=False).encode()).hexdigest()[:16]


def compare_staged(series: int, runs: dict[str, tuple[dict[str, Any], pd.DataFrame]]) -> list[dict[str, Any]]:
    """Each executor's staged lines against the first's, for one size: counts and keys, never rows.

    Args:
        series: the size.
        runs: ``executor -> (result, staged lines)``, in the order they ran.

    Returns:
        One comparison per executor after the first: ``identical`` (None when a run failed or stopped
        before the gate), line counts, and how many lines only one of the two staged.
    """
    (first, (first_result, first_lines)), *others = runs.items()
    out = []
    for name, (result, lines) in others:
        both = first_lines.merge(lines, how="outer", on=LINE_COLUMNS, indicator=True)["_merge"].value_counts()
        at_gate = all(str(r.get("stopped_at", "")).startswith("wait_for_approval") for r in (first_result, result))
        out.append({"series": series, "executors": [first, name], "both_reached_gate": at_gate,
                    "identical": first_lines.equals(lines) if at_gate else None,
                    "lines": {first: len(first_lines), name: len(lines)},
                    "only_in": {first: int(both.get("left_only", 0)), name: int(both.get("right_only", 0))}})
    return out


def clear_run_outputs(root: Path, ds: dt.date) -> int:
    """Remove the run date's partitions outside ``landing/`` (what a run writes), so that a kept world's or
    the other executor's run neither shows through nor is read back; the world and its history stay.

    Returns:
        How many partitions were removed.
    """
    parts = [p for zone in root.iterdir() if zone.is_dir() and zone.name != "landing"
             for p in zone.rglob(f"ds={ds.isoformat()}") if p.is_dir()]
    for part in parts:
        shutil.rmtree(part, ignore_errors=True)
    return len(parts)


# --------------------------------------------------------------------------------------------------
# One size under one executor
# --------------------------------------------------------------------------------------------------


def prepare_world(series: int, work: Path, ds: dt.date) -> dict[str, Any]:
    """Generate the world and load its history (reused when ``--keep`` left the same world behind)."""
    root = work / "shelfwise"
    stamp = work / f"world-{series}-{ds}.json"
    if stamp.exists():
        log(f"{series:,} series: reusing the world in {root}")
        return {**json.loads(stamp.read_text()), "reused": True}
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    log(f"{series:,} series: generating the world into {root}")
    generated = run_child(["generate", str(series), str(root), ds.isoformat()], work / "world.log")
    log(f"{series:,} series: loading {HISTORY_DAYS - 1} days of history (generation took "
        f"{generated['generate_seconds'] + generated['write_seconds']:.0f} s)")
    loaded = run_child(["load", str(root), ds.isoformat()], work / "world.log")
    world = {"generate": generated, "history_load": loaded, **data_sizes(root), "reused": False}
    stamp.write_text(json.dumps(world))
    return world


def fresh_databases(work: Path, executor: str, args: argparse.Namespace) -> tuple[str, str, str, Path]:
    """A new ERP staging DB (migrated), metadata DB and Airflow home: ``(erp_db, erp_url, metadata_url, home)``."""
    from include.erp import db

    erp_db, airflow_db = database_names(args.db_prefix)
    erp_url = db_url(args.server, erp_db)
    recreate_database(args.server, erp_db)
    with db.connect(erp_url) as conn:
        db.migrate(conn)
    home = work / f"airflow-{executor}"
    shutil.rmtree(home, ignore_errors=True)
    home.mkdir(parents=True)
    if args.metadata_db == "postgres":
        recreate_database(args.server, airflow_db)
        metadata_url = db_url(args.server, airflow_db, "postgresql+psycopg2")
    else:
        metadata_url = f"sqlite:///{home / 'airflow.db'}"
    return erp_db, erp_url, metadata_url, home


def measure_size(series: int, executor: str, args: argparse.Namespace) -> tuple[dict[str, Any], pd.DataFrame]:
    """Run the night of one size under one executor to the gate: its figures, and the lines it staged."""
    work = args.work_dir / str(series)
    world = prepare_world(series, work, args.ds)
    root = work / "shelfwise"
    config = world["generate"]["config"]
    actual = (int(config["n_regions"]) * int(config["stores_per_region"]) + 1) * int(config["n_skus"])
    erp_db, erp_url, metadata_url, home = fresh_databases(work, executor, args)
    env = services_env(home, root, erp_db=erp_db, erp_url=erp_url, metadata_url=metadata_url,
                       parallelism=args.parallelism)
    if cleared := clear_run_outputs(root, args.ds):
        log(f"{actual:,} series: removed {cleared} partitions an earlier run wrote for {args.ds}")
    conf = {"mode": "live", "history_days": HISTORY_DAYS, "shard_size": args.shard_size}
    celery = executor == CELERY
    queue = f"shelfwise-scale-{secrets.token_hex(4)}" if celery else None
    workers = f", {args.workers} workers x {worker_slots(args)} slots, queue {queue}" if celery else ""
    log(f"{actual:,} series: starting Airflow ({executor}{workers}, {args.metadata_db} metadata DB, "
        f"parallelism {args.parallelism}); logs in {home / 'services'}")
    try:
        with (airflow_stack(env, executor=executor, workers=args.workers, worker_concurrency=worker_slots(args),
                            broker_url=args.broker_url if celery else None, queue=queue) as stack,
              TreeSampler(proc.pid for proc in stack.processes.values()) as sampler):
            api = ready_api(stack.base_url, admin_password(env))
            log(f"{actual:,} series: triggering {DAG_ID} for {args.ds} with {conf}")
            run = run_to_gate(api, sampler, args.ds, conf, args.timeout)
    finally:
        if queue:
            drop_queue(args.broker_url, queue)
    log(f"{actual:,} series, {executor}: stopped at {run['stopped']!r}, {_round(run['seconds_to_gate'])} s after "
        f"the trigger; task processes matched as {sorted(sampler.task_titles) or 'none'}")
    lines = staged_lines(erp_url, args.ds)
    return summarise(series, actual, executor, world, run, sampler, lines, root, args), lines


def worker_slots(args: argparse.Namespace) -> int:
    """Task slots per Celery worker: the workers together have ``--parallelism`` slots, as the LocalExecutor."""
    return max(1, math.ceil(args.parallelism / args.workers))


def summarise(requested: int, series: int, executor: str, world: dict[str, Any], run: dict[str, Any],
              sampler: TreeSampler, lines: pd.DataFrame, root: Path, args: argparse.Namespace) -> dict[str, Any]:
    from include.stages.summaries import read_stage_summaries

    stages = stage_rows(run["tis"], sampler, own_metrics(root, args.ds))
    summaries = read_stage_summaries(DAG_ID, args.ds, str(root))
    # psutil's samples where the task processes were matched; else what the tasks filed themselves.
    source = "sampled" if any(r["peak_rss_mb"] is not None for r in stages) else "in_process"
    peak = "peak_rss_mb" if source == "sampled" else "in_process_peak_mb"
    top = max((r for r in stages if r[peak] is not None), key=lambda r: r[peak], default={"stage": None, peak: None})
    load = world["history_load"]
    cfg = world["generate"]["config"]
    return {
        "series": series, "requested_series": requested, "executor": executor,
        "world": {k: int(cfg[k]) for k in ("n_regions", "stores_per_region", "n_skus", "n_suppliers",
                                            "history_days")},
        "run_state": run["run_state"], "stopped_at": run["stopped"], "timed_out": run["stopped"] == "timeout",
        "seconds_to_review": _round(run["seconds_to_review"]), "seconds_to_gate": _round(run["seconds_to_gate"]),
        "review_answered_after_s": _round(run["review_answered_after"]),
        "max_load_average": round(sampler.max_load, 1),
        "peak_task_rss_mb": top[peak], "peak_task": top["stage"], "peak_task_rss_source": source,
        "peak_tasks_together_mb": round(sampler.peak_tasks_together / MB, 1),
        "peak_services_tree_mb": round(sampler.peak_total / MB, 1),
        "task_process_titles": sorted(sampler.task_titles),
        "forecast_shards": sum(t["task_id"] == "forecast_demand" and not t.get("earlier_try") for t in run["tis"]),
        "forecast_shards_at_once": most_at_once(run["tis"], "forecast_demand"),
        "history_load_seconds": _round(load["seconds"]),
        "history_load_peak_mb": max(load["peak_rss_mb"], load["sampled_peak_mb"]),
        "generate_seconds": _round(world["generate"]["generate_seconds"] + world["generate"]["write_seconds"]),
        "generate_peak_mb": world["generate"]["peak_rss_mb"], "world_reused": world["reused"],
        "stage_seconds": {r["stage"]: r["seconds"] for r in stages},
        "stage_peak_rss_mb": {r["stage"]: r["peak_rss_mb"] for r in stages},
        "stages": stages,
        "staged_lines": len(lines), "staged_lines_sha256": lines_digest(lines),
        "rows": {"history_curated": load["rows"],
                 "run_date_in": {s["source"]: s["rows_in"] for s in summaries.values() if "source" in s},
                 "demand": summaries.get("build_demand")},
        "landing_mb": world["landing_mb"],
    }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


# --------------------------------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------------------------------


def verdicts(results: list[dict[str, Any]]) -> dict[str, Any]:
    """The issue's targets against what this run measured ("not measured" where no size reached them)."""
    results = [r for r in results if "error" not in r]
    at_target = [r for r in results if r["series"] >= 0.95 * TARGETS["series"]]
    flat = [r for r in results if any(abs(r["series"] - s) <= 0.1 * s for s in TARGETS["flat_sizes"])]
    peaks = [r["peak_task_rss_mb"] for r in flat if r["peak_task_rss_mb"]]

    def check(ok: bool | None) -> str:
        return "not measured" if ok is None else ("pass" if ok else "FAIL")

    gate = [r["seconds_to_gate"] for r in at_target]
    return {
        "gate_100k_under_15_min": check(None if not at_target else all(g is not None and g < TARGETS[
            "seconds_to_gate"] for g in gate)),
        "task_peak_under_4_gb": check(None if not results else all(
            (r["peak_task_rss_mb"] or 0) < TARGETS["task_rss_mb"] for r in results)),
        "history_load_under_4_gb": check(None if not results else all(
            r["history_load_peak_mb"] < TARGETS["history_load_mb"] for r in results)),
        "task_peak_flat_30k_100k_300k": check(None if len(peaks) < 2 else
                                              max(peaks) <= (1 + TARGETS["flat_within"]) * min(peaks)),
    }


def print_report(results: list[dict[str, Any]], compared: list[dict[str, Any]], args: argparse.Namespace) -> None:
    for failed in (r for r in results if "error" in r):
        print(f"\n{failed['requested_series']:,} series, {failed['executor']}: FAILED: {failed['error']}")
    done = [r for r in results if "error" not in r]
    for r in done:
        print(f"\n{DAG_ID} at {r['series']:,} series ({r['world']['n_regions'] * r['world']['stores_per_region']}"
              f" stores + 1 ecommerce centre x {r['world']['n_skus']:,} SKUs, {HISTORY_DAYS} days) on the "
              f"{r['executor']}, stopped at: {r['stopped_at']}; highest load average {r['max_load_average']}")
        print(format_table(r["stages"], ["stage", "state", "seconds", "peak_rss_mb", "in_process_peak_mb"]))
        print(f"history load: {r['history_load_seconds']} s, peak {r['history_load_peak_mb']:,.0f} MB; "
              f"tasks together at most {r['peak_tasks_together_mb']:,.0f} MB; "
              f"forecast shards {r['forecast_shards']}, at most {r['forecast_shards_at_once']} at once; "
              f"review waiting after {r['seconds_to_review']} s (answered {r['review_answered_after_s']} s later), "
              f"gate after {r['seconds_to_gate']} s; {r['staged_lines']:,} lines staged")
    rows = [{"run": "baseline (issue)", "series": f"{n:,}", "seconds_to_gate": s,
             "peak_task_rss_mb": round(gb * 1024)} for n, s, gb in BASELINE]
    rows += [{"run": f"this run ({r['executor']})", "series": f"{r['series']:,}",
              "seconds_to_review": r["seconds_to_review"], "seconds_to_gate": r["seconds_to_gate"],
              "peak_task_rss_mb": r["peak_task_rss_mb"], "history_load_peak_mb": r["history_load_peak_mb"],
              "largest_task": r["peak_task"], "staged_lines": r["staged_lines"]} for r in done]
    print(f"\nSummary ({cpu_count()} cores, shard size {args.shard_size}, parallelism {args.parallelism}):")
    print(format_table(rows, ["run", "series", "seconds_to_review", "seconds_to_gate", "peak_task_rss_mb",
                              "history_load_peak_mb", "largest_task", "staged_lines"]))
    for c in compared:
        first, other = c["executors"]
        verdict = {True: "identical", False: "DIFFERENT", None: "not compared (a run did not reach the gate)"}
        print(f"staged lines at {c['series']:,} series, {first} vs {other}: {verdict[c['identical']]} "
              f"({c['lines'][first]:,} and {c['lines'][other]:,} lines; only under {first}: {c['only_in'][first]}, "
              f"only under {other}: {c['only_in'][other]})")
    print("targets: " + "; ".join(f"{k}: {v}" for k, v in verdicts(results).items()))


# --------------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------------


def worker_main(argv: list[str]) -> None:
    kind = argv[0]
    if kind == "generate":
        result = worker_generate(int(argv[1]), argv[2], dt.date.fromisoformat(argv[3]))
    else:
        result = worker_load(argv[1], dt.date.fromisoformat(argv[2]))
    result["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    print(json.dumps(result, default=str))


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--series", default="2000,10000", help="comma list of series counts (sizes)")
    parser.add_argument("--executor", default="local",
                        help="local, celery, or local,celery: each size under each, on the same world")
    parser.add_argument("--metadata-db", choices=("postgres", "sqlite"), default="postgres",
                        help="Airflow's metadata DB: PostgreSQL <prefix>_airflow_scale or SQLite in the Airflow "
                             "home (LocalExecutor only)")
    parser.add_argument("--server", default=SERVER_URL, help="PostgreSQL server for the *_scale databases")
    parser.add_argument("--db-prefix", default="shelfwise",
                        help="the databases are <prefix>_erp_scale and <prefix>_airflow_scale")
    parser.add_argument("--broker-url", default=BROKER_URL, help="Redis broker of the Celery workers")
    parser.add_argument("--workers", type=int, default=2, help="Celery workers")
    parser.add_argument("--shard-size", type=int, default=5000)
    parser.add_argument("--parallelism", type=int, default=4,
                        help="tasks at once: LocalExecutor worker processes, Celery slots of all workers together")
    parser.add_argument("--timeout", type=float, default=720, help="seconds from trigger to gate, per run")
    parser.add_argument("--ds", type=dt.date.fromisoformat, default=RUN_DATE, help="run date")
    parser.add_argument("--work-dir", type=Path, default=ROOT / "data" / "scale")
    parser.add_argument("--keep", action="store_true",
                        help="keep the generated worlds (reused by the next run) and the last run's databases")
    args = parser.parse_args(argv)
    names = [name.strip() for name in args.executor.split(",") if name.strip()]
    if not names or any(name not in EXECUTORS for name in names) or len(set(names)) < len(names):
        parser.error(f"--executor {args.executor!r}: one or both of {', '.join(EXECUTORS)}, comma-separated")
    args.executors = [EXECUTORS[name] for name in names]
    if CELERY in args.executors and args.metadata_db == "sqlite":
        parser.error("the CeleryExecutor needs the PostgreSQL metadata DB: drop --metadata-db sqlite")
    if args.parallelism < 2 or args.workers < 1:
        parser.error("--parallelism 2 or more (the forecast shards run two at a time), --workers 1 or more")
    return args


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--worker"]:
        worker_main(argv[1:])
        return
    args = parse_args(argv)
    if CELERY in args.executors and (problem := broker_problem(args.broker_url)):
        sys.exit(f"nightly_scale: {problem}; start Redis or pass --broker-url")
    results: list[dict[str, Any]] = []
    compared: list[dict[str, Any]] = []
    try:
        for size in [int(s) for s in args.series.split(",") if s.strip()]:
            runs: dict[str, tuple[dict[str, Any], pd.DataFrame]] = {}
            for executor in args.executors:
                try:
                    result, lines = measure_size(size, executor, args)
                    runs[executor] = (result, lines)
                    results.append(result)
                except Exception as exc:  # noqa: BLE001 - one run failing still reports the others
                    log(f"{size:,} series on the {executor} failed: {type(exc).__name__}: {exc}")
                    results.append({"requested_series": size, "executor": executor,
                                    "error": f"{type(exc).__name__}: {exc}"})
            if len(runs) > 1:
                compared += compare_staged(size, runs)
            if not args.keep:
                shutil.rmtree(args.work_dir / str(size), ignore_errors=True)
    finally:
        if not args.keep:
            for name in database_names(args.db_prefix):
                recreate_database(args.server, name, create=False)
    print_report(results, compared, args)
    emit_json({"benchmark": "nightly_scale", "cores": os.cpu_count(), "executor": ",".join(args.executors),
               "metadata_db": args.metadata_db, "shard_size": args.shard_size, "parallelism": args.parallelism,
               "celery_workers": args.workers if CELERY in args.executors else None,
               "celery_worker_slots": worker_slots(args) if CELERY in args.executors else None,
               "history_days": HISTORY_DAYS, "run_date": args.ds.isoformat(),
               "results": [{k: v for k, v in r.items() if k != "stages"} for r in results],
               "staged_lines_compared": compared,
               "baseline": [{"series": n, "seconds_to_gate": s, "peak_gb": gb} for n, s, gb in BASELINE],
               "targets": {k: list(v) if isinstance(v, tuple) else v for k, v in TARGETS.items()},
               "verdicts": verdicts(results)})


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # run the cleanup on a polite stop too
    main()
