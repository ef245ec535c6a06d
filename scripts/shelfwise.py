"""Shelfwise's local runner: one entry point behind the Makefile targets.

    python scripts/shelfwise.py demo      # generate a world, run retail_nightly, print a summary
    python scripts/shelfwise.py approve   # the demo planner decides the waiting lines
    python scripts/shelfwise.py airflow   # airflow standalone with the demo users
    python scripts/shelfwise.py test      # the whole test suite
    python scripts/shelfwise.py env       # print the environment the others use

It resolves the ERP staging database's owner (``ERP_STAGING_OWNER_URL``; else ``ERP_STAGING_URL``; else a
server on 127.0.0.1:5432; else an embedded PostgreSQL 16 started from the ``pgserver`` wheel under the
data root), migrates it as the owner, points the DAGs at the least-privilege application role
(``shelfwise_app``), prepares an Airflow home with a SQLite metadata DB, and sets the variables Airflow and
the DAGs read.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = ROOT / ".venv" / "bin"
DEMO_DS = "2026-11-27"
#: user -> (password, Airflow role). ``lp`` (loss prevention), ``finance`` and ``ops`` (the operations manager)
#: get their Shelfwise role through the policy's ``user_roles`` (the simple auth manager has no role of its own
#: for them): ``lp`` decides return dispositions, ``finance`` finance review items, ``ops`` fulfilment
#: assignments, and nothing else.
DEMO_USERS = {"admin": ("admin", "admin"), "planner": ("planner", "user"), "manager": ("manager", "op"),
              "analyst": ("analyst", "viewer"), "lp": ("lp", "viewer"), "finance": ("finance", "viewer"),
              "ops": ("ops", "viewer")}

sys.path.insert(0, str(ROOT))


def _say(msg: str) -> None:
    print(f"[shelfwise] {msg}", flush=True)


def _port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def resolve_server_url(data_root: Path) -> str:
    """A URL of a PostgreSQL server (database ``postgres``) to hold the Shelfwise databases."""
    for variable in ("ERP_STAGING_OWNER_URL", "ERP_STAGING_URL"):
        if os.environ.get(variable):
            return os.environ[variable]
    if _port_open("127.0.0.1", 5432):
        return "postgresql://postgres@127.0.0.1:5432/postgres"
    import pgserver

    pgdata = data_root.parent / "pgdata"
    _say(f"no PostgreSQL on 127.0.0.1:5432: starting an embedded PostgreSQL in {pgdata}")
    server = pgserver.get_server(pgdata, cleanup_mode=None)
    return server.get_uri()


def with_database(url: str, name: str) -> str:
    """The same server URL pointing at database ``name``."""
    import psycopg

    info = psycopg.conninfo.conninfo_to_dict(url)
    info["dbname"] = name
    parts = {k: v for k, v in info.items() if v not in (None, "")}
    user = parts.pop("user", "postgres")
    password = parts.pop("password", "")
    host = parts.pop("host", "")
    port = parts.pop("port", "")
    dbname = parts.pop("dbname")
    auth = user + (f":{password}" if password else "")
    if host.startswith("/"):
        query = "&".join([f"host={host}"] + [f"{k}={v}" for k, v in parts.items()]
                         + ([f"port={port}"] if port else []))
        return f"postgresql://{auth}@/{dbname}?{query}"
    netloc = f"{host or '127.0.0.1'}" + (f":{port}" if port else "")
    query = "&".join(f"{k}={v}" for k, v in parts.items())
    return f"postgresql://{auth}@{netloc}/{dbname}" + (f"?{query}" if query else "")


#: The application role's generated password, under the Airflow home, readable by its owner only.
APP_PASSWORD_FILE = "erp_app_password"


def app_password(airflow_home: Path, owner_url: str) -> str | None:
    """The ``shelfwise_app`` login password: ``SHELFWISE_APP_DB_PASSWORD``, else none when the server lets
    the owner in without one (trust, peer), else one generated once and kept in the Airflow home (0600)."""
    import psycopg

    from include.erp import roles

    if os.environ.get(roles.APP_PASSWORD_ENV):
        return os.environ[roles.APP_PASSWORD_ENV]
    if not psycopg.conninfo.conninfo_to_dict(owner_url).get("password"):
        return None
    path = airflow_home / APP_PASSWORD_FILE
    if not path.exists():
        import secrets

        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_urlsafe(32) + "\n")
        _say(f"generated the ERP application role's password in {path}")
    return path.read_text().strip()


def environment(*, airflow_home: Path, data_root: Path, erp_db: str) -> dict[str, str]:
    """Variables for Airflow, the DAGs and the tests.

    The resolved server URL (the superuser on this machine) is the ERP staging owner, the migrator
    (``ERP_STAGING_OWNER_URL``, connection ``erp_staging_owner``); the DAGs, the plugin and the command
    line get the ``shelfwise_app`` role's URL (``ERP_STAGING_URL``, connection ``erp_staging``).
    """
    from include.erp import roles

    data_root.mkdir(parents=True, exist_ok=True)
    airflow_home.mkdir(parents=True, exist_ok=True)
    explicit = os.environ.get("ERP_STAGING_OWNER_URL") or os.environ.get("ERP_STAGING_URL")
    if explicit and erp_db == "shelfwise_erp":
        owner_url = explicit
    else:
        owner_url = with_database(resolve_server_url(data_root), erp_db)
    erp_url = roles.app_url(owner_url, app_password(airflow_home, owner_url))
    passwords = airflow_home / "simple_auth_manager_passwords.json"
    if not passwords.exists():
        fd = os.open(passwords, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(json.dumps({u: p for u, (p, _) in DEMO_USERS.items()}))
    env = {
        "AIRFLOW_HOME": str(airflow_home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(ROOT / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
        "AIRFLOW__CORE__PARALLELISM": os.environ.get("AIRFLOW__CORE__PARALLELISM", "4"),
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": ",".join(f"{u}:{r}" for u, (_, r) in DEMO_USERS.items()),
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords),
        "AIRFLOW__API__BASE_URL": os.environ.get("AIRFLOW__API__BASE_URL", "http://localhost:8080"),
        "AIRFLOW__LOGGING__LOGGING_LEVEL": os.environ.get("AIRFLOW__LOGGING__LOGGING_LEVEL", "INFO"),
        # A task's first call to the execution API claims it; on a busy small machine the 5 s default can time
        # out after the server claimed it, and the retry then finds the task taken and exits without running.
        "AIRFLOW__WORKERS__EXECUTION_API_TIMEOUT": os.environ.get("AIRFLOW__WORKERS__EXECUTION_API_TIMEOUT", "30"),
        "AIRFLOW_CONN_ERP_STAGING": erp_url,
        "ERP_STAGING_URL": erp_url,
        "AIRFLOW_CONN_ERP_STAGING_OWNER": owner_url,
        "ERP_STAGING_OWNER_URL": owner_url,
        "SHELFWISE_DATA_ROOT": str(data_root),
        "GX_ANALYTICS_ENABLED": "false",
        "PYTHONPATH": str(ROOT) + (os.pathsep + os.environ["PYTHONPATH"] if os.environ.get("PYTHONPATH") else ""),
        "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        "XDG_RUNTIME_DIR": os.environ.get("XDG_RUNTIME_DIR", "/tmp"),
    }
    return env


#: Variables only the migrator needs: Airflow and the DAGs run without them (least privilege).
OWNER_VARIABLES = ("ERP_STAGING_OWNER_URL", "AIRFLOW_CONN_ERP_STAGING_OWNER")


def service_env(env: dict[str, str]) -> dict[str, str]:
    """The environment a service (Airflow, a DAG run) starts with: ``env`` over ours, without the owner's URL."""
    merged = {**os.environ, **env}
    for name in OWNER_VARIABLES:
        merged.pop(name, None)
    return merged


def prepare_erp(env: dict[str, str]) -> None:
    """As the owner: create the ERP database, migrate it, give the login roles their passwords."""
    import psycopg

    from include.erp import db, roles

    db.ensure_database(env["ERP_STAGING_OWNER_URL"])
    with db.connect(env["ERP_STAGING_OWNER_URL"]) as conn:
        db.migrate(conn)
        roles.provision_roles(conn, app_password=psycopg.conninfo.conninfo_to_dict(env["ERP_STAGING_URL"]).get(
            "password"), reader_password=os.environ.get(roles.READER_PASSWORD_ENV) or None)


def prepare(env: dict[str, str]) -> None:
    """Create the ERP database and apply migrations as its owner; migrate the Airflow metadata DB once.

    Several environments may be prepared at once on one server (the test lanes): the login roles are the
    server's, so their provisioning is serialised by a lock file.
    """
    import fcntl
    import tempfile

    os.environ.update(env)
    with open(Path(tempfile.gettempdir()) / "shelfwise-prepare.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        prepare_erp(env)
    stamp = Path(env["AIRFLOW_HOME"]) / ".migrated-3.3.2"
    if not stamp.exists():
        _say("preparing the Airflow metadata DB (SQLite)")
        subprocess.run([str(VENV_BIN / "airflow"), "db", "migrate"], env={**os.environ, **env}, check=True,
                       stdout=subprocess.DEVNULL)
        stamp.write_text("ok\n")


def demo_env() -> dict[str, str]:
    data_root = Path(os.environ.get("SHELFWISE_DATA_ROOT", ROOT / "data" / "shelfwise"))
    return environment(airflow_home=ROOT / ".airflow", data_root=data_root, erp_db="shelfwise_erp")


def _pid_file(env: dict[str, str]) -> Path:
    return Path(env["SHELFWISE_DATA_ROOT"]).parent / "demo" / "nightly.pid"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    return True


def _stop_previous(env: dict[str, str]) -> None:
    for pid_file in (_pid_file(env), *(_pid_file(env).with_name(f"{name}.pid")
                                       for name in ("intraday", "finance", "returns"))):
        _stop(pid_file)


def _stop(pid_file: Path) -> None:
    if pid_file.exists():
        pid = int(pid_file.read_text().strip() or 0)
        if pid and _alive(pid):
            _say(f"stopping the previous demo run (process group {pid})")
            try:
                os.killpg(pid, signal.SIGKILL)
            except OSError:
                pass
        pid_file.unlink(missing_ok=True)


def cmd_demo(args: argparse.Namespace) -> int:
    t0 = time.time()
    env = demo_env()
    prepare(env)
    import finance_demo
    import intraday_demo
    import returns_demo

    from include.config import as_date
    from include.ingest.pipeline import load_history
    from include.sample_data.generator import PRESETS, generate_world, write_landing
    from include.sample_data.intraday import ShockConfig

    ds = as_date(args.ds)
    day_after = ds + dt.timedelta(days=1)
    root = env["SHELFWISE_DATA_ROOT"]
    config = PRESETS[args.preset]
    # One trading day past the night, with demand surges on it, for the demo's intraday hour.
    config = type(config)(**{**config.__dict__, "end_date": day_after, "shocks": ShockConfig(days=1, per_day=4)})
    import hashlib

    generator = b"".join((ROOT / "include" / "sample_data" / name).read_bytes()
                         for name in ("generator.py", "intraday.py", "intraday_landing.py", "procurement.py",
                                      "finance.py", "returns.py"))
    version = hashlib.sha256(generator).hexdigest()[:10]
    stamp = Path(root) / f".world-{args.preset}-{ds}-{config.seed}-{version}"
    world = generate_world(config)
    if not stamp.exists():
        _say(f"generating the '{args.preset}' retail world to {day_after} ({config.history_days} days)")
        write_landing(world, root)
        _say("initial history load: ingesting and validating the days before the run")
        load_history(day_after - dt.timedelta(days=config.history_days - 1), ds - dt.timedelta(days=1), root=root)
        _say(f"landing the hourly extracts of the days before {day_after} and of its morning")
        intraday_demo.land_intraday(world, root, day_after)
        from include.sample_data.procurement import supplier_catalogue, write_supplier_catalogue

        write_supplier_catalogue(root, ds - dt.timedelta(days=1), supplier_catalogue(world, seed=config.seed))
        _say("landing the finance extracts (shipment costs, substitutions, shrink) and curating their history")
        finance_demo.land(world, root, ds)
        _say("landing the returns system's extracts (returns, loss prevention's cases) and curating their history")
        returns_demo.land(world, root, ds)
        stamp.write_text("ok\n")
    else:
        _say(f"retail world for {ds} already generated ({stamp.name}); reusing it")

    _stop_previous(env)
    week = ds - dt.timedelta(days=1)
    cards_log = Path(root).parent / "demo" / f"supplier_scorecards_{week}.log"
    cards_log.parent.mkdir(parents=True, exist_ok=True)
    _say(f"running supplier_scorecards for the week to {week} with `airflow dags test` (log: {cards_log})")
    with open(cards_log, "w") as log:
        cards = subprocess.run([str(VENV_BIN / "airflow"), "dags", "test", "supplier_scorecards", week.isoformat()],
                               env=service_env(env), stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                               cwd=ROOT, check=False, timeout=args.timeout)
    if cards.returncode != 0:
        _say(f"supplier_scorecards failed; see {cards_log}")
        return 1
    stages_dir = Path(root) / "reports" / "stages" / "retail_nightly" / f"ds={ds}"
    shutil.rmtree(stages_dir, ignore_errors=True)
    log_path = Path(root).parent / "demo" / f"retail_nightly_{ds}.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    _say(f"running retail_nightly for {ds} with `airflow dags test` (log: {log_path})")
    with open(log_path, "w") as log:
        proc = subprocess.Popen([str(VENV_BIN / "airflow"), "dags", "test", "retail_nightly", ds.isoformat()],
                                env=service_env(env), stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True, cwd=ROOT)
    _pid_file(env).write_text(str(proc.pid))
    waiting = False
    deadline = time.time() + args.timeout
    while time.time() < deadline:
        code = proc.poll()
        if code is not None:
            break
        stage_file = stages_dir / "stage_proposals.json"
        text = log_path.read_text(errors="replace") if stage_file.exists() else ""
        if "Waiting for Human-in-the-loop input" in text or "wait for a planner" in text:
            waiting = True
            break
        time.sleep(2)
    else:
        _say(f"the run did not reach the approval gate in {args.timeout} s; see {log_path}")
        return 1
    summaries = _summaries(ds, root)
    if not waiting:
        text = log_path.read_text(errors="replace")
        if proc.returncode != 0 or "failed" in text.rsplit("\n", 40)[-1].lower() and "report_kpis" not in summaries:
            _say(f"retail_nightly failed; last lines of {log_path}:")
            print("\n".join(text.splitlines()[-40:]))
            return 1
    print(_format_summary(ds, root, summaries, env, waiting, time.time() - t0))
    print(_format_scorecards(week, root))
    # The day's other workflows, each left waiting at its gate for the demo user who decides its lines.
    for part, day, what, pid in ((intraday_demo, day_after, f"{day_after} {intraday_demo.HOUR:02d}:00", "intraday"),
                                 (finance_demo, ds, f"the week to {ds}", "finance"),
                                 (returns_demo, ds, str(ds), "returns")):
        part_log = Path(root).parent / "demo" / f"{part.DAG_ID}_{day}.log"
        _say(f"running {part.DAG_ID} for {what} with `airflow dags test` (log: {part_log})")
        part_proc, part_summaries = part.run(str(VENV_BIN / "airflow"), service_env(env), root, day, part_log)
        _pid_file(env).with_name(f"{pid}.pid").write_text(str(part_proc.pid))
        print(part.describe(day, part_summaries, part_log))
    return 0


def _summaries(ds, root: str) -> dict:
    from include.stages.summaries import read_stage_summaries

    return read_stage_summaries("retail_nightly", ds, root)


def _format_scorecards(week, root: str) -> str:
    from include.stages.summaries import read_stage_summaries

    score = read_stage_summaries("supplier_scorecards", week, root).get("score_suppliers") or {}
    worst = ", ".join(f"{w['supplier_id']} {w['reliability']} (OTIF {w['otif']})" for w in score.get("least_reliable", []))
    return (f"Supplier scorecards, week to {week}: {score.get('suppliers', 0)} suppliers and "
            f"{score.get('supplier_items', 0)} supplier x SKU cards over {score.get('weeks')} weeks, kept in "
            f"ops.supplier_scorecards; median reliability {score.get('median_reliability')}; least reliable: "
            f"{worst or 'none'}. PO exceptions rank alternate suppliers with them (catalogue: "
            f"{score.get('catalogue')} supplier x SKU terms).")


def _service_lines(decisions: dict) -> list[str]:
    """What the night planned each fill-rate target at (the service ledger) and how the forecast error was
    scaled (the calibration), from ``propose_decisions``' summary; nothing when the stage did not run."""
    lines = []
    service = decisions.get("service") or {}
    if service:
        lines.append("Fill-rate targets planned at (service ledger: units lost over units planned to lose): "
                     + ", ".join(f"{t} -> {v['planned']:g} ({v['lost_vs_planned']:g})" for t, v in service.items()))
    calibration = decisions.get("calibration")
    if isinstance(calibration, dict):
        lines.append(f"Forecast error scaled from {calibration['intervals']} past intervals: "
                     + ", ".join(f"{c} x{x:g}" for c, x in calibration["scales"].items()))
    elif calibration:
        lines.append(f"Forecast error not scaled ({calibration})")
    return lines


def _format_summary(ds, root: str, s: dict, env: dict[str, str], waiting: bool, seconds: float) -> str:
    lines = ["", f"Shelfwise demo: retail_nightly for {ds}  ({seconds:.0f} s)", "=" * 64, "Rows ingested per source:"]
    for source in ("master", "pos", "ecommerce", "wms", "supplier", "returns"):
        ing = s.get(f"ingest_{source}")
        if ing:
            outcomes = ", ".join(f"{c}: {v['outcome']}" for c, v in ing["contracts"].items())
            lines.append(f"  {source:<10} {ing['rows_in']:>8} in, {ing['rows_passed']:>8} passed, "
                         f"{ing['rows_quarantined']:>5} quarantined   ({outcomes})")
    dem, fc = s.get("build_demand", {}), s.get("combine_forecasts", {})
    inferred = dem.get("stockouts_inferred_days", 0)
    lines.append(f"Demand: {dem.get('series', 0)} series, {dem.get('censored_days', 0)} stock-out days censored"
                 + (f" ({inferred} read off zero runs on days without a stock snapshot)" if inferred else ""))
    lines.append(f"Forecast: {fc.get('series', 0)} series in {fc.get('shards', 0)} shard(s); models "
                 f"{fc.get('models', {})}; {fc.get('fallback_series', 0)} on the fallback rule")
    ch = fc.get("challenger")
    if ch:
        lines.append(f"  challenger {ch['model']} (promotions, price, events): tried on {ch['tried']} valuable "
                     f"series, took {ch['taken']}")
        lines += [f"    {d}" for d in ch.get("decisions", [])]
        lines += [f"  WARNING {w}" for w in ch.get("warnings", [])]
    an = s.get("detect_anomalies", {})
    lines.append(f"Anomalies: {an.get('demand_anomalies', 0)} demand {an.get('by_type', {})}, "
                 f"{an.get('supplier_anomalies', 0)} supplier lead-time drift, "
                 f"{an.get('margin_anomalies', 0)} margin leakage, {an.get('return_anomalies', 0)} return spikes")
    lines += _service_lines(s.get("propose_decisions", {}))
    tier = s.get("tier_proposals", {})
    lines.append("Proposals by type and risk tier:")
    for key, n in sorted(tier.get("by_type_and_tier", {}).items()):
        lines.append(f"  {key:<28} {n:>6}")
    st = s.get("stage_proposals", {})
    lines.append(f"Staged in ERP: {st.get('auto_approved', 0)} lines auto-approved, "
                 f"{st.get('pending', 0)} waiting for a planner"
                 + (f", {st['kept_decided']} already decided or released and kept as they were"
                    if st.get("kept_decided") else ""))
    if "release_approved" in s:
        lines.append(f"Released to the ERP: {s['release_approved'].get('released')}")
    if "report_kpis" in s:
        lines.append(f"KPIs: {json.dumps(s['report_kpis']['kpis'])}")
    from include.stages.summaries import read_stage_metrics

    metrics = read_stage_metrics("retail_nightly", ds, root)
    if metrics:
        slowest = sorted(metrics.items(), key=lambda item: -item[1]["seconds"])[:5]
        lines.append("Slowest stages: " + ", ".join(f"{name} {m['seconds']:.1f} s" for name, m in slowest)
                     + f"; peak memory {max(m['peak_rss_mb'] for m in metrics.values()):,.0f} MB")
    lines += ["", "Outputs:", f"  data root       {root}", f"  ERP staging     {_redact(env['ERP_STAGING_URL'])}"
              " (schema erp_staging)"]
    if "report_kpis" in s:
        lines.append(f"  report          {s['report_kpis']['report']}")
    if waiting:
        lines += [
            "",
            "The run is waiting for a planner: a Required Action (review_batch) in the Airflow UI, then the",
            "approval gate (wait_for_approval) until no line is pending.",
            "  See it in the Airflow UI:   make airflow   then http://localhost:8080 "
            "(planner / planner, manager / manager)",
            "  Approve as the demo planner from the command line, so release and KPIs complete:",
            "                              make approve",
        ]
    return "\n".join(lines)


def _redact(url: str) -> str:
    import re

    return re.sub(r"://([^:@/]+):[^@/]+@", r"://\1:***@", url)


def cmd_approve(args: argparse.Namespace) -> int:
    env = demo_env()
    prepare(env)
    os.environ.update(env)
    from include.erp import db
    from include.erp.staging import pending_count
    from include.governance.policy import load_policy
    from include.governance.review import apply_review
    from include.runs import REVIEW_APPROVE_ALL, REVIEW_REJECT_ALL

    sys.path.insert(0, str(ROOT / "scripts"))
    import required_action

    choice = REVIEW_REJECT_ALL if args.reject else REVIEW_APPROVE_ALL
    role = DEMO_USERS.get(args.user, (None, "viewer"))[1]
    try:
        run_id = _answer_required_action(env, args.user, args.ds, choice)
    except (required_action.AirflowApiError, RuntimeError, OSError) as exc:
        _say(f"{args.user} (role {role}) could not answer the run's Required Action: {exc}")
        return 1
    if run_id:
        _say(f"{args.user} answered the Required Action of {run_id} through Airflow's REST API: {choice!r}")
        deadline = time.time() + 120
        while time.time() < deadline:
            summary = _summaries(args.ds, env["SHELFWISE_DATA_ROOT"]).get("apply_review")
            if summary:
                break
            time.sleep(2)
    else:
        policy = load_policy()
        result = apply_review(lambda: db.connect(env["ERP_STAGING_URL"]), "retail_nightly", args.ds, choice=choice,
                              user=args.user, roles=policy.shelfwise_roles(role, args.user), policy=policy)
        _say(f"{args.user}: {result['decided']} pending lines decided ({choice!r})")
    with db.connect(env["ERP_STAGING_URL"]) as conn:
        left = pending_count(conn, "retail_nightly", args.ds)
    if left:
        _say(f"{left} lines are of a tier {args.user} may not decide; decide them as a manager: "
             "make approve APPROVER=manager")
        return 0
    pid_file = _pid_file(env)
    pid = int(pid_file.read_text()) if pid_file.exists() else 0
    if pid and _alive(pid):
        _say("waiting for the run to release and report")
        deadline = time.time() + 600
        while _alive(pid) and time.time() < deadline:
            time.sleep(2)
            try:
                os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                pass
    s = _summaries(args.ds, env["SHELFWISE_DATA_ROOT"])
    if "release_approved" in s:
        _say(f"released to the ERP: {s['release_approved'].get('released')}")
    if "report_kpis" in s:
        _say(f"KPIs: {json.dumps(s['report_kpis']['kpis'])}")
        _say(f"report: {s['report_kpis']['report']}  chart: {s['report_kpis']['chart']}")
    return 0


def exposure_problem(bind: str, passwords_file: Path, *, demo: bool) -> str | None:
    """Why ``airflow standalone`` must not listen on ``bind`` with the users of ``passwords_file``.

    Args:
        bind: the address the API server listens on (``SHELFWISE_BIND``).
        passwords_file: the simple auth manager's passwords.
        demo: ``SHELFWISE_DEMO=1``: the demo passwords are knowingly exposed.

    Returns:
        ``None`` on loopback, or when no user has its published demo password (or ``demo``); else the
        reason, naming the users and what to do.
    """
    import ipaddress

    try:
        loopback = bind == "localhost" or ipaddress.ip_address(bind).is_loopback
    except ValueError:
        return f"SHELFWISE_BIND={bind!r} is not an IP address (e.g. 127.0.0.1, or 0.0.0.0 for every interface)"
    if loopback or demo:
        return None
    passwords = json.loads(passwords_file.read_text()) if passwords_file.exists() else {}
    known = sorted(u for u, (password, _) in DEMO_USERS.items() if passwords.get(u) == password)
    if not known:
        return None
    return (f"refusing to listen on {bind} while {', '.join(known)} keep the demo passwords of the README: "
            f"set other passwords in {passwords_file}, or set SHELFWISE_DEMO=1 to expose the demo anyway")


def cmd_airflow(args: argparse.Namespace) -> int:
    """``make airflow``: ``airflow standalone`` on the demo's Airflow home, with the demo users.

    The API server listens on 127.0.0.1 unless ``SHELFWISE_BIND`` names another address, and refuses
    any other address while a demo user keeps its demo password (unless ``SHELFWISE_DEMO=1``). The
    home's Fernet key, secret key and JWT secret are its own, made on its first start
    (``airflow_services.home_secrets``).

    Returns:
        1 when the address or the home's keys are refused; otherwise it becomes ``airflow standalone``.
    """
    import airflow_services as services

    env = demo_env()
    prepare(env)
    bind = os.environ.get("SHELFWISE_BIND") or "127.0.0.1"
    passwords_file = Path(env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"])
    if problem := exposure_problem(bind, passwords_file, demo=os.environ.get("SHELFWISE_DEMO") == "1"):
        _say(problem)
        return 1
    try:
        keys = services.home_secrets(Path(env["AIRFLOW_HOME"]))
    except services.ExposedSecrets as exc:
        _say(str(exc))
        return 1
    env.update({**keys, "AIRFLOW__API__HOST": bind,
                "AIRFLOW__API_AUTH__JWT_EXPIRATION_TIME": os.environ.get("AIRFLOW__API_AUTH__JWT_EXPIRATION_TIME")
                or services.UI_TOKEN_SECONDS})
    port = os.environ.get("AIRFLOW__API__PORT", "8080")
    _say(f"starting airflow standalone on http://{bind}:{port} (SHELFWISE_BIND; Ctrl-C stops it)")
    passwords = json.loads(passwords_file.read_text()) if passwords_file.exists() else {}
    for user, (password, role) in DEMO_USERS.items():
        shown = password if passwords.get(user) == password else f"(see {passwords_file.name})"
        _say(f"  user {user:<8} password {shown:<8} role {role}")
    os.execvpe(str(VENV_BIN / "airflow"), [str(VENV_BIN / "airflow"), "standalone"], service_env(env))


def cmd_celery(args: argparse.Namespace) -> int:
    """``make celery``: the demo on Airflow's CeleryExecutor, on this machine's PostgreSQL and Redis.

    Prepares the demo environment (its world, ERP database and users) and a PostgreSQL metadata DB, then
    runs the API server, scheduler, DAG processor, triggerer and ``args.workers`` Celery workers on
    127.0.0.1 until Ctrl-C, which stops them all.

    Returns:
        0 once stopped by Ctrl-C; 1 when Redis or the port is not available or a service exits by itself.
    """
    import airflow_services as services

    from include.erp import db

    if problem := services.broker_problem(args.broker_url):
        _say(f"{problem}. Start Redis (`apt-get install redis-server`, then `redis-server --daemonize yes "
             "--bind 127.0.0.1 --port 6379 --save ''`), pass --broker-url, or use `docker compose up -d`")
        return 1
    if args.port and _port_open("127.0.0.1", args.port):
        _say(f"127.0.0.1:{args.port} is taken (`make airflow`?): pass --port N, or --port 0 for a free one")
        return 1
    data_root = Path(os.environ.get("SHELFWISE_DATA_ROOT", ROOT / "data" / "shelfwise"))
    ds, home = dt.date.fromisoformat(args.ds), Path(args.airflow_home)
    env = environment(airflow_home=home, data_root=data_root, erp_db=args.erp_db)
    prepare_erp(env)
    metadata_url = with_database(resolve_server_url(data_root), args.metadata_db)
    db.ensure_database(metadata_url)
    if not (data_root / "landing" / "pos" / f"ds={ds}").exists():  # no `make demo` yet
        from include.ingest.pipeline import load_history
        from include.sample_data.generator import PRESETS, generate_world, write_landing

        config = type(PRESETS[args.preset])(**{**PRESETS[args.preset].__dict__, "end_date": ds})
        _say(f"generating the '{args.preset}' retail world to {ds} and loading its history into {data_root}")
        write_landing(generate_world(config), str(data_root))
        load_history(ds - dt.timedelta(days=config.history_days - 1), ds - dt.timedelta(days=1), root=str(data_root))
    # The home's keys (Fernet, secret key, JWT secret) are made on its first start and kept in its
    # airflow.cfg: airflow_stack reads them (airflow_services.home_secrets).
    env.update({"AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": services.sqlalchemy_url(metadata_url),
                # Only the nights you trigger: switching retail_nightly on starts no scheduled night.
                "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "False"})
    _say(f"starting Airflow with the CeleryExecutor and {args.workers} workers (metadata DB {args.metadata_db}, "
         f"broker {args.broker_url}); logs in {home / 'services'}")
    try:
        with services.airflow_stack(service_env(env), executor=services.CELERY, workers=args.workers,
                                    port=args.port, broker_url=args.broker_url) as stack:
            users = ", ".join(f"{u} / {p} ({r})" for u, (p, r) in DEMO_USERS.items())
            replay = services.trigger_commands(stack.base_url, "retail_nightly", args.ds, {"mode": "replay"},
                                      user="admin", password=DEMO_USERS["admin"][0])
            print(f"\nAirflow UI: {stack.base_url}   (Ctrl-C stops every service)\nusers: {users}\n"
                  f"Run retail_nightly for {args.ds}: in the UI switch it on and Trigger it for that logical date "
                  "(a live night then waits for a planner: decide on /shelfwise/approvals), or replay it "
                  f"(computes, stages nothing) from a shell:\n{replay}\n", flush=True)
            exited = services.serve_until_stopped(stack)
            _say(f"services exited: {exited}; stopping the rest (logs in {stack.log_dir})" if exited else "stopping")
    except KeyboardInterrupt:  # while starting
        exited = {}
    except (RuntimeError, ValueError) as exc:
        _say(str(exc))
        return 1
    _say("stopped")
    return 1 if exited else 0


def cmd_test(args: argparse.Namespace) -> int:
    # The same environment plain `pytest` prepares on demand (tests/conftest.py holds its one definition).
    from tests.conftest import suite_environment

    env = suite_environment()
    prepare(env)
    # Installs nothing: the browser tests use the chromium `make browser` installed, or skip (fail under CI).
    run_env = {**os.environ, **env, "SHELFWISE_TEST_ENV": "1"}
    pytest = [str(VENV_BIN / "python"), "-m", "pytest"]
    if args.pytest_args:
        phases = [([*pytest, *args.pytest_args], run_env)]
    else:
        # The tests that need no server run on every core (pytest-xdist). Those that run DAGs and Airflow's
        # services spend much of their time waiting (on a scheduler loop, a task process, a page), so they
        # run in two lanes, each with a database, an Airflow home and a data root of its own
        # (tests/conftest.py); a module stays in one lane, and the longest ones (tests/e2e) start first.
        lanes_env = {**run_env, "SHELFWISE_TEST_LANES": "1"}
        import psycopg

        from include.erp import roles

        app_password = psycopg.conninfo.conninfo_to_dict(env["ERP_STAGING_URL"]).get("password")
        if app_password:  # the lanes' homes must not each generate a password for the server's one app role
            lanes_env.setdefault(roles.APP_PASSWORD_ENV, app_password)
        phases = [([*pytest, "-n", str(min(os.cpu_count() or 1, 4)), "tests/unit", "tests/dags"], run_env),
                  ([*pytest, "-n", "2", "--dist", "loadfile", "tests/e2e", "tests/integration"], lanes_env)]
    status = 0
    for cmd, cmd_env in phases:
        _say("running " + " ".join(cmd[2:]))
        status = subprocess.call(cmd, env=cmd_env, cwd=ROOT) or status
    return status


def cmd_env(args: argparse.Namespace) -> int:
    env = demo_env()
    for key, value in sorted(env.items()):
        print(f"export {key}={value!r}")
    return 0


def _answer_required_action(env: dict[str, str], user: str, ds: str, choice: str) -> str | None:
    """Answer the demo run's Required Action as ``user`` through Airflow's REST API.

    Signs in with the demo password of ``user`` (the Airflow home's simple auth manager passwords file).

    Returns:
        The id of the run answered, or ``None`` when no run of ``ds`` waits for an answer.

    Raises:
        required_action.AirflowApiError: the API refused (bad password, a role that may not answer...).
        RuntimeError: no demo password for ``user``, or no API server could be started.
    """
    import required_action

    passwords_file = Path(env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"])
    passwords = json.loads(passwords_file.read_text())
    if user not in passwords:
        raise RuntimeError(f"no password for {user!r} in {passwords_file}; demo users: {', '.join(passwords)}")
    with _demo_api_server(env) as base_url:
        api = required_action.ApiSession.login(base_url, user, passwords[user])
        run_id = required_action.awaiting_run_id(api, "retail_nightly", ds)
        if run_id:
            required_action.answer(api, "retail_nightly", run_id, choice)
    return run_id


def _demo_api_server(env: dict[str, str]):
    """A context giving the base URL of an API server on the demo's metadata DB.

    The one at ``AIRFLOW__API__BASE_URL`` when its health endpoint answers (``make airflow`` runs);
    otherwise ``airflow api-server`` alone, started on a free loopback port for the demo's Airflow home
    and stopped when the context ends.
    """
    from contextlib import nullcontext

    from airflow_services import api_server, health_status

    base_url = env["AIRFLOW__API__BASE_URL"].rstrip("/")
    if health_status(base_url) == 200:
        _say(f"answering through the Airflow API server at {base_url}")
        return nullcontext(base_url)
    _say(f"no Airflow API server at {base_url}: starting one on loopback for {env['AIRFLOW_HOME']}")
    return api_server(service_env(env))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="shelfwise", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="generate a world and run retail_nightly")
    demo.add_argument("--ds", default=DEMO_DS, help="logical date of the run (YYYY-MM-DD)")
    demo.add_argument("--preset", default="small", help="world size: tiny, small or large")
    demo.add_argument("--timeout", type=int, default=900, help="seconds to wait for the approval gate")
    demo.set_defaults(func=cmd_demo)
    approve = sub.add_parser("approve", help="decide the lines waiting at the demo run's gate")
    approve.add_argument("--ds", default=DEMO_DS)
    approve.add_argument("--user", default="planner",
                         help="demo user deciding: planner (low, medium) or manager (every tier)")
    approve.add_argument("--reject", action="store_true")
    approve.add_argument("--note", default="approved from the command line")
    approve.set_defaults(func=cmd_approve)
    sub.add_parser("airflow", help="airflow standalone with the demo users, on 127.0.0.1 unless SHELFWISE_BIND says"
                   ).set_defaults(func=cmd_airflow)
    celery = sub.add_parser("celery", help="the demo on the CeleryExecutor (PostgreSQL, Redis, N workers)")
    celery.add_argument("--ds", default=DEMO_DS, help="the demo night's logical date (YYYY-MM-DD)")
    celery.add_argument("--preset", default="small", help="world size, when no world exists yet: tiny, small, large")
    celery.add_argument("--workers", type=int, default=2, help="Celery workers to start")
    celery.add_argument("--port", type=int, default=8080, help="the UI's port on 127.0.0.1; 0 for a free one")
    celery.add_argument("--broker-url", default=os.environ.get("SHELFWISE_REDIS_URL", "redis://127.0.0.1:6379/0"),
                        help="Redis broker (default: SHELFWISE_REDIS_URL, else database 0 on 127.0.0.1:6379)")
    celery.add_argument("--metadata-db", default="shelfwise_airflow", help="PostgreSQL metadata database")
    celery.add_argument("--erp-db", default="shelfwise_erp", help="ERP staging database (the demo's)")
    celery.add_argument("--airflow-home", default=str(ROOT / "data" / "airflow-celery"),
                        help="Airflow home: config, Fernet key, task and service logs")
    celery.set_defaults(func=cmd_celery)
    test = sub.add_parser("test", help="run the test suite")
    test.add_argument("pytest_args", nargs="*")
    test.set_defaults(func=cmd_test)
    sub.add_parser("env", help="print the environment").set_defaults(func=cmd_env)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
