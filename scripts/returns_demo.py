"""The demo's returns routing: the returns system's extracts of the demo world, and one ``returns_routing`` run.

:func:`land` writes the returns system's extract (every returned line with its grade, reason and receipt) and
loss prevention's closed cases for the policy's ``returns.history_days`` before the night and the night itself,
and curates those before the night, as earlier runs would have; :func:`run` starts ``returns_routing`` for
the night with ``airflow dags test`` and returns once the routine dispositions are released, leaving the held
lines waiting for loss prevention (the demo user ``lp``) at the gate.
"""

from __future__ import annotations

import datetime as dt
import subprocess
from pathlib import Path

DAG_ID = "returns_routing"


def land(world, root: str, ds: dt.date, *, through: dt.date | None = None, returns_per_day: int | None = None,
         seed: int | None = None) -> None:
    """Land the returns and closed loss-prevention cases of the policy's history before ``ds`` and of the days
    from ``ds`` to ``through`` (default ``ds``), and curate those before ``ds``.

    Args:
        world: the generated world.
        root: data root.
        ds: the first day left for ``returns_routing`` to ingest.
        through: the last day landed.
        returns_per_day: ordinary returned lines of an average day (default: what the world's sales imply
            at the departments' return rates, :func:`include.sample_data.returns.implied_returns_per_day`).
        seed: the returns' seed (default: the world's).
    """
    from include.governance.policy import load_policy
    from include.ingest.pipeline import load_history
    from include.returns.contracts import load_returns_contracts
    from include.sample_data import returns as sample_returns

    history = int(load_policy().returns.history_days)
    first = ds - dt.timedelta(days=history + 1)
    days = [first + dt.timedelta(days=i) for i in range(((through or ds) - first).days + 1)]
    seed = world.config.seed if seed is None else seed
    if returns_per_day is None:
        returns_per_day = sample_returns.implied_returns_per_day(world)
    extract, truth = sample_returns.returns_detail(
        world, days, seed=seed, config=sample_returns.ReturnsConfig(returns_per_day=returns_per_day))
    cases = sample_returns.lp_cases(extract, truth, seed=seed)
    for day in days:
        sample_returns.write_returns_detail(root, day, extract)
        sample_returns.write_lp_cases(root, day, cases)
    contracts = load_returns_contracts()
    load_history(days[0], ds - dt.timedelta(days=1), root=root,
                 contracts={c: contracts[c] for c in ("items", "locations", "returns_detail", "lp_cases")})


def run(airflow: str, env: dict[str, str], root: str, ds: dt.date, log_path: Path,
        timeout: float = 600) -> tuple[subprocess.Popen, dict | None]:
    """Start ``returns_routing`` for ``ds``; return once its routine dispositions are released (or it ended)."""
    from airflow_services import dags_test_until

    return dags_test_until(airflow, env, root, DAG_ID, ds, log_path, "release_within_policy", timeout=timeout)


def describe(ds: dt.date, summaries: dict | None, log_path: Path) -> str:
    """What the routing scored, routed, released and held, for the demo's output."""
    if not summaries or "route_returns" not in summaries:
        return f"returns_routing did not route {ds}; see {log_path}"
    r, released = summaries["route_returns"], summaries.get("release_within_policy", {})
    kept = (summaries.get("stage_dispositions") or {}).get("kept_decided", 0)
    patterns = (summaries.get("classify_return_patterns") or {}).get("patterns") or {}
    rate = r.get("return_rate")
    return "\n".join([
        "", f"Shelfwise demo: returns_routing for {ds}", "=" * 64,
        f"Returns: {r['returns']} line(s), refunds {r['refunds']:,.2f}; fraud scored by the {r['scorer']} "
        f"({r.get('confirmed_cases')} confirmed cases behind it); return rate over 7 days "
        f"{'n/a' if rate is None else f'{rate:.1%}'}",
        f"Dispositions: {r['actions']}; recovered {r['net_recovery']:,.2f} net "
        f"({(r.get('recovery_rate') or 0):.1%} of the refunds); {r.get('suppliers_taking_returns', 0)} supplier(s) "
        "take units back",
        f"Store demand: {_split(r.get('store_split_weight'))}",
        f"Return patterns of the week: {patterns or 'none unusual'}",
        f"Staged in ERP: {released.get('released', 0)} routine disposition(s) released"
        + (f" ({kept} released by an earlier run and kept as they were)" if kept else "")
        + f"; {r['pending']} held ({r['held_fraud']} for fraud risk, {r['held_high_value']} high value) for loss "
        "prevention (demo user lp / lp) on the approvals page until the policy's returns deadline",
        f"  log: {log_path}",
    ])


def _split(weight: float | None) -> str:
    """How the stores' forecasts were weighed against each item's split by store."""
    if weight is None:
        return "each store's own forecast (no night four weeks back with the sales since, to weigh it against the split)"
    return (f"each store's forecast at {weight:.0%}, the item's split by store share at {1 - weight:.0%} "
            "(what predicted best the stores' sales since the night four weeks back)")
