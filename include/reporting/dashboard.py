"""The executive dashboard: the KPIs of every night as time series, against the policy's targets.

Each night of ``retail_nightly`` records its KPIs in ``ops.kpi_history`` (one JSON document a night, with
whether the night was degraded and which extracts stood in). :data:`CATALOGUE` names the KPIs the dashboard
shows, where each sits in that document, its unit and which way is better; :func:`flatten_history` turns the
rows into one float column per KPI, where a KPI a night did not record stays a gap (NaN), never a zero.

**Segments.** A night's document may carry ``segments``: ``{"by_channel": {"store": {...}, "web": {...}},
"by_region": {"north": {...}}}``, each leaf a document of the same keys as the night's own (a subset is fine).
They become rows whose ``segment`` is ``channel:store``, ``region:north``; the whole business is ``all``.

**Decisions.** :func:`decision_effect` counts, per night, the staged lines approved (auto-approved and since
released included), rejected and expired, and the value released to the ERP.

**Targets** come from the governance policy's ``kpi_targets:`` (checked against :data:`KEYS` when the policy
loads), else :data:`DEFAULT_TARGETS`; the fill rate's default is the policy's own replenishment target
(:func:`policy_targets`).

The SQL is in :mod:`include.erp.kpis`; this module turns its rows into frames and pages.
"""

from __future__ import annotations

import datetime as dt
import math
import statistics
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd

from include.erp.kpis import OUTCOME_COLUMNS, kpi_history, line_outcomes
from include.reporting.dashboard_page import render_page

if TYPE_CHECKING:
    from include.governance.policy import Policy

__all__ = ["ALL", "CATALOGUE", "DEFAULT_TARGETS", "Kpi", "decision_effect", "flatten_history", "kpi_targets",
           "load_history", "policy_targets", "render_dashboard", "segments", "series_json", "synthetic_history",
           "time_dashboard"]

#: The ``segment`` of the whole business's rows.
ALL = "all"
Unit = Literal["share", "money", "hours", "days", "units", "times"]


@dataclass(frozen=True)
class Kpi:
    """One KPI of the dashboard.

    Attributes:
        key: its dotted path in the night's KPI document (``orchestration.fulfilment_cost_per_order``), also
            its column in the history frame and its key in ``kpi_targets:``.
        label: its name on the page.
        unit: ``share`` (a fraction shown as %), ``money``, ``hours``, ``days``, ``units`` or ``times`` (per
            year).
        higher_is_better: which way is good.
    """

    key: str
    label: str
    unit: Unit
    higher_is_better: bool

    @property
    def path(self) -> tuple[str, ...]:
        return tuple(self.key.split("."))

    def fmt(self, value: float | None) -> str:
        """``value`` for people: ``97.5%``, ``12.40``, ``3.2 h``, ``1.4 d``, ``1,200``, ``8.1x``; ``n/a`` when
        unknown."""
        if value is None or not math.isfinite(value):
            return "n/a"
        return {"share": f"{100 * value:.1f}%", "money": f"{value:,.2f}", "hours": f"{value:.1f} h",
                "days": f"{value:.1f} d", "units": f"{value:,.0f}", "times": f"{value:.1f}x"}[self.unit]


CATALOGUE: tuple[Kpi, ...] = (
    Kpi("stockout_rate_7d", "Stock-out rate (7 days)", "share", False),
    Kpi("stockout_reduction", "Stock-out reduction vs the ERP's rule", "share", True),
    Kpi("fill_rate", "Fill rate", "share", True),
    Kpi("lost_sales_units_est", "Lost sales (estimated)", "units", False),
    Kpi("inventory_turns", "Inventory turns", "times", True),
    Kpi("forecast_wape", "Forecast WAPE", "share", False),
    Kpi("gross_margin_rate", "Gross margin", "share", True),
    Kpi("markdown_avoided_value", "Markdown avoided vs the ERP's rule", "money", True),
    Kpi("orchestration.fulfilment_cost_per_order", "Fulfilment cost per order", "money", False),
    Kpi("fulfilment_cost_per_unit", "Fulfilment cost per unit", "money", False),
    Kpi("orchestration.on_time_promise_rate", "On-time promise rate", "share", True),
    Kpi("orchestration.split_rate", "Split-shipment rate", "share", False),
    Kpi("procurement.cycle_hours_median", "Procurement cycle time (median)", "hours", False),
    Kpi("procurement.otif", "Supplier OTIF", "share", True),
    Kpi("procurement.late_flagged_early_share", "Late POs flagged early", "share", True),
    Kpi("intraday.median_hours_onset_to_detection", "Surge detection time", "hours", False),
    Kpi("intraday.margin_saved_est", "Intraday margin saved (estimated)", "money", True),
    Kpi("returns.net_recovery", "Return recovery value", "money", True),
    Kpi("returns.recovery_rate", "Refunds recovered", "share", True),
    Kpi("returns.return_rate", "Return rate (7 days)", "share", False),
    Kpi("returns.fraud_losses_prevented_est", "Fraud losses prevented (estimated)", "money", True),
    Kpi("returns.days_receipt_to_disposition", "Days from receipt to disposition", "days", False),
    Kpi("reporting_cycle_hours", "Reporting cycle time", "hours", False),
    # The whole business's comes from the staged lines (decision_effect); a segment's from its document.
    Kpi("value_released", "Value released to the ERP", "money", True),
)
KEYS: tuple[str, ...] = tuple(k.key for k in CATALOGUE)
BY_KEY: dict[str, Kpi] = {k.key: k for k in CATALOGUE}
#: Targets until the policy's ``kpi_targets:`` sets them (the fill rate's is the policy's replenishment target).
DEFAULT_TARGETS: dict[str, float] = {
    "stockout_rate_7d": 0.02, "stockout_reduction": 0.20, "inventory_turns": 8.0, "forecast_wape": 0.35,
    "gross_margin_rate": 0.35, "orchestration.fulfilment_cost_per_order": 12.0,
    "orchestration.on_time_promise_rate": 0.95, "orchestration.split_rate": 0.10,
    "procurement.cycle_hours_median": 4.0, "procurement.otif": 0.90, "procurement.late_flagged_early_share": 0.70,
    "intraday.median_hours_onset_to_detection": 2.0, "reporting_cycle_hours": 6.0,
    "returns.days_receipt_to_disposition": 2.0,
}
EFFECT_COLUMNS = OUTCOME_COLUMNS


def kpi_targets(own: Mapping[str, float | None] | None = None, *, fill_rate: float | None = None) -> dict[str, float]:
    """The KPI targets: ``own`` (a policy's ``kpi_targets``, already checked) over :data:`DEFAULT_TARGETS`.

    Args:
        own: KPI key -> target; ``None`` as a target drops the default one (the chart shows no target).
        fill_rate: the fill rate's default target; the replenishment policy's default when None.

    Returns:
        KPI key -> target, for the KPIs that have one.
    """
    if fill_rate is None:
        from include.governance.policy import Replenishment

        fill_rate = Replenishment().fill_rate
    targets: dict[str, float | None] = {**DEFAULT_TARGETS, "fill_rate": fill_rate, **(own or {})}
    return {k: float(v) for k, v in targets.items() if v is not None}


def policy_targets(policy: Policy | None = None) -> dict[str, float]:
    """:func:`kpi_targets` of a governance policy: its ``kpi_targets`` and its replenishment fill rate.

    Args:
        policy: a loaded policy; None loads the policy file
            (``SHELFWISE_POLICY_FILE``, else the project's).

    Raises:
        include.governance.policy.PolicyError: the policy file is invalid (an unknown KPI key among them).
    """
    if policy is None:
        from include.governance.policy import load_policy

        policy = load_policy()
    return kpi_targets(policy.kpi_targets, fill_rate=policy.replenishment.fill_rate)


# --- reading -------------------------------------------------------------------------------------------------

def load_history(conn: Any, *, dag_id: str = "retail_nightly", since: dt.date | None = None,
                 until: dt.date | None = None, nights: int = 366) -> pd.DataFrame:
    """The KPI history of ``dag_id``: the newest ``nights`` nights between ``since`` and ``until`` (inclusive).

    Args:
        conn: a psycopg connection to the ERP staging database.

    Returns:
        :func:`flatten_history` of the rows, oldest night first.
    """
    return flatten_history(reversed(kpi_history(conn, dag_id=dag_id, since=since, until=until, nights=nights)))


def decision_effect(conn: Any, since: dt.date, until: dt.date, *, dag_id: str | None = None) -> pd.DataFrame:
    """What became of the lines staged for each night between ``since`` and ``until``, all workflows (or one).

    Returns:
        :data:`EFFECT_COLUMNS`: counts of lines approved (auto-approved and released included), of those
        auto-approved, rejected, expired, still pending and released, and the value released; one row per night
        with staged lines.
    """
    frame = pd.DataFrame(line_outcomes(conn, since, until, dag_id=dag_id), columns=list(EFFECT_COLUMNS))
    frame["ds"] = pd.to_datetime(frame["ds"])
    return frame.astype({c: float for c in EFFECT_COLUMNS[1:]})


def flatten_history(rows: Iterable[tuple[Any, Mapping | None, bool, Mapping | None]]) -> pd.DataFrame:
    """``ops.kpi_history`` rows as a frame: one row per night and segment, one float column per catalogue KPI.

    Args:
        rows: ``(ds, kpis, degraded, stale_sources)`` per night.

    Returns:
        ``ds`` (datetime), ``segment`` (categorical, :data:`ALL` for the whole business), ``degraded``,
        ``stale_sources`` (contract -> date that stood in) and :data:`KEYS`; NaN where a night has no value.
    """
    records = []
    for ds, kpis, degraded, stale in rows:
        kpis = kpis if isinstance(kpis, Mapping) else {}
        night = {"ds": ds, "degraded": bool(degraded), "stale_sources": dict(stale or {})}
        records.append({**night, "segment": ALL, **_values(kpis)})
        for kind, members in (kpis.get("segments") or {}).items():
            for name, doc in (members.items() if isinstance(members, Mapping) else ()):
                if isinstance(doc, Mapping):
                    records.append({**night, "segment": f"{str(kind).removeprefix('by_')}:{name}", **_values(doc)})
    frame = pd.DataFrame.from_records(records, columns=["ds", "segment", "degraded", "stale_sources", *KEYS])
    frame["ds"] = pd.to_datetime(frame["ds"])
    frame["degraded"] = frame["degraded"].astype(bool)
    frame["segment"] = frame["segment"].astype("category")
    return frame.astype(dict.fromkeys(KEYS, float))


def _values(doc: Mapping[str, Any]) -> dict[str, float]:
    out = {}
    for kpi in CATALOGUE:
        value: Any = doc
        for part in kpi.path:
            value = value.get(part) if isinstance(value, Mapping) else None
        numeric = isinstance(value, int | float) and not isinstance(value, bool)
        out[kpi.key] = float(value) if numeric and math.isfinite(value) else math.nan
    return out


def segments(history: pd.DataFrame) -> list[str]:
    """The segments the history holds, the whole business first."""
    if "segment" not in history:
        return [ALL]
    found = sorted(set(history["segment"].astype(str)) - {ALL})
    return [ALL, *found]


def _segment_rows(history: pd.DataFrame, segment: str | None) -> pd.DataFrame:
    """The rows of one segment, oldest first; a frame without ``segment`` is the whole business."""
    if "segment" in history:
        history = history[history["segment"].astype(str) == (segment or ALL)]
    return history.sort_values("ds", kind="stable").reset_index(drop=True)


def _with_effect(rows: pd.DataFrame, effect: pd.DataFrame | None, segment: str | None) -> pd.DataFrame:
    """The whole business's value released is the staged lines' (all workflows), where there are decisions;
    a night without staged lines is a gap. A segment keeps what its night recorded."""
    if effect is None or (segment or ALL) != ALL or not len(rows):
        return rows
    released = pd.to_datetime(rows["ds"]).map(effect.set_index(pd.to_datetime(effect["ds"]))["value_released"])
    return rows.assign(value_released=released.astype(float))


# --- output --------------------------------------------------------------------------------------------------


def render_dashboard(history: pd.DataFrame, effect: pd.DataFrame | None, targets: Mapping[str, float], *,
                     segment: str | None = None, nonce: str | None = None, title: str = "retail_nightly",
                     links: Mapping[str, str] | None = None, query: Mapping[str, str] | None = None) -> str:
    """The dashboard as a complete HTML page: a chart per KPI, the targets, degraded nights, the decisions.

    Args:
        history: :func:`flatten_history`'s frame (a frame without ``segment`` is the whole business).
        effect: :func:`decision_effect`'s frame, or None.
        targets: KPI key -> target (:func:`kpi_targets`).
        segment: ``channel:store``, ``region:north``...; None or :data:`ALL` for the whole business.
        nonce: the Content-Security-Policy nonce of the page's stylesheet.
        title: what the page is about (the DAG id).
        links: extra links for the page's foot (label -> URL), such as the JSON of the series.
        query: the request's parameters, kept by the segment selector.
    """
    rows = _with_effect(_segment_rows(history, segment), effect, segment)
    return render_page(rows, effect, targets, catalogue=CATALOGUE, segment=segment or ALL,
                       segments=segments(history), nonce=nonce, title=title, links=links or {},
                       query=query)


def series_json(history: pd.DataFrame, effect: pd.DataFrame | None, targets: Mapping[str, float], *,
                segment: str | None = None) -> dict[str, Any]:
    """The series of the dashboard as JSON: nights, degraded flags, each KPI's values (null for a gap)."""
    rows = _with_effect(_segment_rows(history, segment), effect, segment)
    stale = rows["stale_sources"] if "stale_sources" in rows else pd.Series([{}] * len(rows))

    def column(values: Iterable[Any]) -> list[float | None]:
        return [float(v) if v is not None and math.isfinite(v) else None for v in values]

    effects = [] if effect is None else [
        {**{c: float(r[c]) for c in EFFECT_COLUMNS[1:]}, "ds": pd.Timestamp(r["ds"]).date().isoformat()}
        for r in effect.to_dict("records")]
    return {
        "segment": segment or ALL, "segments": segments(history),
        "catalogue": [{"key": k.key, "label": k.label, "unit": k.unit, "higher_is_better": k.higher_is_better,
                       "target": targets.get(k.key)} for k in CATALOGUE],
        "nights": [d.date().isoformat() for d in pd.to_datetime(rows["ds"])],
        "degraded": [bool(v) for v in rows.get("degraded", pd.Series(False, index=rows.index))],
        "stale_sources": [dict(s or {}) for s in stale],
        "series": {k: column(rows[k].tolist() if k in rows else [None] * len(rows)) for k in KEYS},
        "decisions": effects,
    }


# --- measuring -----------------------------------------------------------------------------------------------


def synthetic_history(nights: int = 365, kpis: int = 20, *, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A history of ``nights`` nights of the first ``kpis`` catalogue KPIs (with gaps and degraded nights),
    and its decisions, for measuring the rendering."""
    if not 1 <= kpis <= len(CATALOGUE):
        raise ValueError(f"kpis must be between 1 and {len(CATALOGUE)} (the catalogue), got {kpis}")
    rng = np.random.default_rng(seed)
    days = pd.date_range("2026-01-01", periods=nights, freq="D")
    walk = 1.0 + 0.3 * rng.standard_normal((nights, kpis)).cumsum(axis=0) / np.sqrt(nights)
    walk[rng.random((nights, kpis)) < 0.03] = np.nan
    level = np.array([kpi_targets().get(k, 100.0) for k in KEYS[:kpis]])
    frame = pd.DataFrame(walk * level, columns=list(KEYS[:kpis])).reindex(columns=list(KEYS))
    frame["value_released"] = np.nan  # the decisions' (below), as from the database
    degraded = rng.random(nights) < 0.06
    frame.insert(0, "ds", days)
    frame.insert(1, "segment", pd.Categorical([ALL] * nights))
    frame.insert(2, "degraded", degraded)
    frame.insert(3, "stale_sources", [{"promotions": "2025-12-31"} if d else {} for d in degraded])
    counts = rng.poisson((40, 5, 2), (nights, 3)).astype(float)
    effect = pd.DataFrame({"ds": days, "approved": counts[:, 0], "auto_approved": counts[:, 0] * 0.7,
                           "rejected": counts[:, 1], "expired": counts[:, 2], "pending": 0.0,
                           "released": counts[:, 0], "value_released": counts[:, 0] * 250.0})
    return frame, effect


def time_dashboard(nights: int = 365, kpis: int = 20, repeats: int = 5) -> float:
    """Median milliseconds :func:`render_dashboard` takes on a synthetic history of ``nights`` x ``kpis``."""
    history, effect = synthetic_history(nights, kpis)
    targets = kpi_targets()
    samples = []
    for _ in range(max(repeats, 1)):
        start = time.perf_counter()
        render_dashboard(history, effect, targets)
        samples.append((time.perf_counter() - start) * 1000.0)
    return statistics.median(samples)
