"""Period-by-period replay of demand history under competing replenishment policies.

Actual demand hits the stock of each series; what cannot be served is lost. At every review the policy
under test compares the inventory position (on hand + on order) with its reorder point and orders;
the order arrives after the series' lead time, fixed or sampled per order (the same draws for every
policy, so they face the same suppliers). Many policies and parameter values are simulated in one
pass: their series are stacked along the first axis of the state arrays, and the only Python loop is
over periods.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from include.simulation import metrics
from include.simulation.policies import (
    Levels,
    erpnext_reorder_levels,
    odoo_min_max_levels,
    rolling_forecast,
    shelfwise_levels,
)

POLICIES = ("shelfwise", "odoo_min_max", "erpnext_reorder_level")
#: Default sweep of each policy's service parameter: fill-rate target for Shelfwise, safety periods
#: (days or weeks of average demand) for the reorder rules.
DEFAULT_SWEEP = {
    "D": {"shelfwise": (0.8, 0.9, 0.95, 0.97, 0.98, 0.99, 0.995, 0.998, 0.999, 0.9995, 0.9999),
          "odoo_min_max": (0, 1, 2, 4, 7, 10, 14, 21, 28, 42),
          "erpnext_reorder_level": (0, 1, 2, 4, 7, 10, 14, 21, 28, 42)},
    "W": {"shelfwise": (0.8, 0.9, 0.95, 0.97, 0.98, 0.99, 0.995, 0.998, 0.999, 0.9995, 0.9999),
          "odoo_min_max": (0, 0.25, 0.5, 1, 1.5, 2, 3, 4, 6, 8),
          "erpnext_reorder_level": (0, 0.25, 0.5, 1, 1.5, 2, 3, 4, 6, 8)},
}


@dataclass
class DemandPanel:
    """Demand history packed as a dense matrix, one row per item x location."""

    ids: np.ndarray  # "location|item"
    dates: pd.DatetimeIndex
    demand: np.ndarray  # [series, periods], non-negative
    freq: str
    unit_cost: np.ndarray | None = None
    price: np.ndarray | None = None
    lead_time: np.ndarray | None = None  # periods, per series
    discount: np.ndarray | None = None  # [series, periods] planned promotion discount (0: none)

    @property
    def items(self) -> np.ndarray:
        """Item part of each ``location|item`` id (series of one item share a promotion response)."""
        return np.array([str(i).split("|", 1)[-1] for i in self.ids], dtype=object)


def load_demand(path: str) -> pd.DataFrame:
    """Read a long-format demand file (CSV or Parquet) into a frame."""
    if str(path).endswith((".parquet", ".pq")):
        return pd.read_parquet(path)
    return pd.read_csv(path)


def pack_demand(frame: pd.DataFrame, freq: str = "D") -> DemandPanel:
    """Validate a long frame ``item, location, date, units`` (+ optional ``unit_cost, price, lead_time,
    discount``).

    Missing periods are zero demand, negative units (returns) count as zero, duplicate rows are summed.
    ``lead_time`` is in periods of ``freq``; a series takes its median. ``discount`` is the promotion
    discount (fraction off) planned for the period, known ahead as a published promotion calendar.

    Raises:
        ValueError: on a missing column, an unknown ``freq`` or no rows.
    """
    if freq not in ("D", "W"):
        raise ValueError(f"freq must be 'D' or 'W', got {freq!r}")
    missing = {"item", "location", "date", "units"} - set(frame.columns)
    if missing:
        raise ValueError(f"demand frame lacks columns {sorted(missing)}")
    if frame.empty:
        raise ValueError("demand frame has no rows")
    df = frame.copy()
    df["date"] = pd.to_datetime(df["date"])
    if freq == "W":
        df["date"] = df["date"].dt.to_period("W").dt.start_time
    df["unique_id"] = df["location"].astype(str) + "|" + df["item"].astype(str)
    df["units"] = pd.to_numeric(df["units"], errors="coerce").fillna(0.0).clip(lower=0.0)
    dates = pd.date_range(df["date"].min(), df["date"].max(), freq="D" if freq == "D" else "7D")
    wide = df.pivot_table(index="unique_id", columns="date", values="units", aggfunc="sum", fill_value=0.0)
    wide = wide.reindex(columns=dates, fill_value=0.0).sort_index()
    per_series = df.groupby("unique_id")
    extra = {}
    for col in ("unit_cost", "price", "lead_time"):
        if col in df.columns:
            extra[col] = per_series[col].median().reindex(wide.index).to_numpy(float)
    if "discount" in df.columns:
        df["discount"] = pd.to_numeric(df["discount"], errors="coerce").fillna(0.0).clip(0.0, 0.95)
        disc = df.pivot_table(index="unique_id", columns="date", values="discount", aggfunc="max", fill_value=0.0)
        extra["discount"] = disc.reindex(index=wide.index, columns=dates, fill_value=0.0).to_numpy(float)
    return DemandPanel(ids=wide.index.to_numpy(), dates=dates, demand=wide.to_numpy(float), freq=freq, **extra)


@dataclass
class ReplayConfig:
    """How to replay.

    Attributes:
        lead_time: Lead time in periods for series without their own.
        lead_time_sd: Spread of sampled lead times in periods (0: fixed lead times).
        review: Periods between reviews (the same for every policy).
        warmup: Periods of history used only to start the policies; scoring starts after it.
        pack: Order multiple (1 rounds orders up to whole units; 0 leaves them continuous).
        seed: Seed of the lead-time draws.
        erpnext_refresh: Periods between re-settings of the ERPNext reorder levels (None: set once).
        sweep: Service parameter values per policy (defaults: :data:`DEFAULT_SWEEP`).
    """

    lead_time: int = 7
    lead_time_sd: float = 0.0
    review: int = 7
    warmup: int = 182
    pack: float = 1.0
    seed: int = 0
    erpnext_refresh: int | None = None
    sweep: dict[str, tuple[float, ...]] = field(default_factory=dict)


def _levels_for(panel: DemandPanel, cfg: ReplayConfig, lead: np.ndarray) -> list[tuple[str, float, Levels]]:
    D = panel.demand
    sweep = {**DEFAULT_SWEEP[panel.freq], **cfg.sweep}
    out: list[tuple[str, float, Levels]] = []
    if "shelfwise" in sweep:
        # The protection interval differs per series only through lead times; forecast per distinct one.
        forecasts = {}
        for lt in np.unique(lead):
            rows = lead == lt
            disc = panel.discount[rows] if panel.discount is not None else None
            forecasts[lt] = (rows, rolling_forecast(D[rows], int(lt) + cfg.review, panel.freq, discount=disc,
                                                    groups=panel.items[rows]))
        for target in sweep["shelfwise"]:
            rp = np.zeros_like(D)
            for rows, fc in forecasts.values():
                rp[rows] = shelfwise_levels(fc, target, cfg.review, lead_time_sd=cfg.lead_time_sd).order_up_to
            out.append(("shelfwise", float(target), Levels(rp, rp)))
    for value in sweep.get("odoo_min_max", ()):
        out.append(("odoo_min_max", float(value), odoo_min_max_levels(D, lead, value, cfg.review)))
    for value in sweep.get("erpnext_reorder_level", ()):
        out.append(("erpnext_reorder_level", float(value),
                    erpnext_reorder_levels(D, lead, value, cfg.review, cfg.warmup,
                                           refresh=cfg.erpnext_refresh)))
    return out


def simulate(
    demand: np.ndarray,
    levels: list[Levels],
    lead: np.ndarray,
    *,
    review: int,
    warmup: int,
    lead_time_sd: float = 0.0,
    pack: float = 1.0,
    seed: int = 0,
) -> dict[str, np.ndarray]:
    """Replay ``demand`` under every entry of ``levels`` at once.

    Args:
        demand: ``[n, T]`` demand per series and period.
        levels: One :class:`Levels` (``[n, T]`` arrays) per policy variant.
        lead: ``[n]`` lead times in periods (>= 1).
        review: Periods between reviews; the first review is at ``warmup``.
        warmup: First scored period; stock starts at each variant's order-up-to level of ``warmup - 1``.
        lead_time_sd: Sampled lead time = round(lead + sd * N(0, 1)), at least 1.
        pack: Order multiple (0: continuous).
        seed: Seed of the lead-time draws (shared by all variants).

    Returns:
        ``served, on_hand, orders`` as ``[variants, n, T - warmup]`` arrays.
    """
    n, T = demand.shape
    k = len(levels)
    rp = np.concatenate([lv.reorder_point for lv in levels])
    up = np.concatenate([lv.order_up_to for lv in levels])
    mo = np.concatenate([lv.min_order if lv.min_order is not None else np.zeros((n, T)) for lv in levels])
    D = np.tile(demand, (k, 1))
    lead = np.maximum(np.round(np.asarray(lead, float)), 1).astype(int)
    rng = np.random.default_rng(seed)
    noise = rng.standard_normal((n, T)) if lead_time_sd > 0 else np.zeros((n, T))
    lt = np.maximum(np.round(lead[:, None] + lead_time_sd * noise), 1).astype(int)
    lt = np.tile(lt, (k, 1))
    horizon = T + int(lt.max()) + 1
    arrivals = np.zeros((k * n, horizon))
    rows = np.arange(k * n)
    start = max(warmup - 1, 0)
    on_hand = np.maximum(up[:, start], 0.0).copy()
    on_order = np.zeros(k * n)
    scored = T - warmup
    served = np.zeros((k * n, scored))
    stock = np.zeros((k * n, scored))
    orders = np.zeros((k * n, scored), dtype=bool)
    for t in range(warmup, T):
        arriving = arrivals[:, t]
        on_hand += arriving
        on_order -= arriving
        sold = np.minimum(on_hand, D[:, t])
        on_hand -= sold
        j = t - warmup
        served[:, j] = sold
        stock[:, j] = on_hand
        if j % review == 0:
            position = on_hand + on_order
            qty = np.where(position < rp[:, t] - 1e-9, np.maximum(up[:, t] - position, mo[:, t]), 0.0)
            if pack > 0:
                qty = np.ceil(qty / pack - 1e-9) * pack
            place = qty > 0
            if place.any():
                np.add.at(arrivals, (rows[place], t + lt[place, t]), qty[place])
                on_order += qty
                orders[:, j] = place
    shape = (k, n, scored)
    return {"served": served.reshape(shape), "on_hand": stock.reshape(shape), "orders": orders.reshape(shape)}


def replay(panel: DemandPanel, cfg: ReplayConfig | None = None) -> pd.DataFrame:
    """Replay the panel under every policy and service parameter of the sweep.

    Returns:
        One row per policy x parameter: ``policy, parameter`` and the metrics of
        :func:`include.simulation.metrics.summarize`, scored after the warm-up.

    Raises:
        ValueError: when the history is not longer than the warm-up plus one protection interval.
    """
    cfg = cfg or ReplayConfig()
    n, T = panel.demand.shape
    lead = panel.lead_time if panel.lead_time is not None else np.full(n, float(cfg.lead_time))
    lead = np.where(np.isfinite(lead), lead, cfg.lead_time)
    lead = np.maximum(np.round(lead), 1).astype(int)
    if T <= cfg.warmup + int(lead.max()) + cfg.review:
        raise ValueError(f"history of {T} periods is too short for a warm-up of {cfg.warmup} periods "
                         f"plus lead time {int(lead.max())} and review {cfg.review}")
    variants = _levels_for(panel, cfg, lead)
    sim = simulate(panel.demand, [v[2] for v in variants], lead, review=cfg.review, warmup=cfg.warmup,
                   lead_time_sd=cfg.lead_time_sd, pack=cfg.pack, seed=cfg.seed)
    scored = panel.demand[:, cfg.warmup:]
    rows = []
    for i, (policy, value, _) in enumerate(variants):
        m = metrics.summarize(scored, sim["served"][i], sim["on_hand"][i], sim["orders"][i], freq=panel.freq,
                              unit_cost=panel.unit_cost)
        rows.append({"policy": policy, "parameter": value, **m})
    return pd.DataFrame(rows)


def inventory_at_fill_rate(curve: pd.DataFrame, target: float, column: str = "avg_on_hand_units") -> float | None:
    """Inventory a policy needs for ``target`` fill rate, interpolated linearly along its curve.

    The curve is made monotone first (the lowest inventory reaching at least each fill rate), so a noisy
    point does not bend the interpolation. ``None`` when the curve never reaches ``target``.
    """
    c = curve.dropna(subset=["fill_rate"]).sort_values("fill_rate")
    if c.empty or c["fill_rate"].max() < target:
        return None
    fr = c["fill_rate"].to_numpy()
    inv = np.minimum.accumulate(c[column].to_numpy()[::-1])[::-1]
    if target <= fr[0]:
        return float(inv[0])
    return float(np.interp(target, fr, inv))


def dominates(curve: pd.DataFrame, other: pd.DataFrame, column: str = "avg_on_hand_units") -> bool:
    """True when ``curve`` needs no more inventory than ``other`` at every fill rate both reach."""
    lo = max(curve["fill_rate"].min(), other["fill_rate"].min())
    hi = min(curve["fill_rate"].max(), other["fill_rate"].max())
    if not np.isfinite(lo) or hi <= lo:
        return False
    points = other[(other["fill_rate"] >= lo) & (other["fill_rate"] <= hi)]["fill_rate"].tolist() + [lo, hi]
    for fr in points:
        mine, theirs = inventory_at_fill_rate(curve, fr, column), inventory_at_fill_rate(other, fr, column)
        if mine is not None and theirs is not None and mine > theirs * (1 + 1e-9):
            return False
    return True


def compare(result: pd.DataFrame, target: float = 0.98, column: str = "avg_on_hand_units") -> dict:
    """Inventory of each policy at the ``target`` fill rate and Shelfwise's saving on the best baseline."""
    at = {p: inventory_at_fill_rate(result[result["policy"] == p], target, column) for p in POLICIES
          if (result["policy"] == p).any()}
    baselines = {p: v for p, v in at.items() if p != "shelfwise" and v is not None}
    best = min(baselines, key=baselines.get) if baselines else None
    mine = at.get("shelfwise")
    saving = None if best is None or mine is None or baselines[best] <= 0 else 1.0 - mine / baselines[best]
    shelf = result[result["policy"] == "shelfwise"]
    dom = {p: dominates(shelf, result[result["policy"] == p], column) for p in POLICIES
           if p != "shelfwise" and (result["policy"] == p).any()}
    return {"target_fill_rate": target, "inventory_at_target": at, "best_baseline": best,
            "saving_vs_best_baseline": saving, "dominates": dom}
