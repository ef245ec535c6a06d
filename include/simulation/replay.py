"""Period-by-period replay of demand history under Shelfwise's policy and two classic reorder rules.

Actual demand hits the stock of each series; what cannot be served is lost. At every review the policy
under test compares the inventory position (on hand + on order) with its reorder point and orders;
the order arrives after the series' lead time, fixed or sampled per order (the same draws for every
policy, so they face the same suppliers).

Shelfwise's policy is the one the nightly runs: at each review origin (every review, or every
``reforecast_every`` reviews) the production forecaster forecasts every series from the history so far,
and the replenishment core sizes the order-up-to level for each fill-rate target of the sweep
(:mod:`include.simulation.forecasts`). The baselines are an Odoo-style min/max and an ERPNext-style
reorder level (:mod:`include.simulation.baselines`). Every policy and parameter value is simulated in
one pass: their series are stacked along the first axis of the state arrays, and the only Python loop
is over periods.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from include.decisions.service import ServiceFeedback, ServiceLedger
from include.demand.history_file import HORIZON
from include.simulation import metrics
from include.simulation.baselines import Levels, erpnext_reorder_levels, odoo_min_max_levels
from include.simulation.forecasts import OriginForecasts, ReviewForecasts, rolling_forecasts
from include.simulation.panel import DemandPanel, panel_from_frame, panel_from_history

__all__ = ["DEFAULT_SWEEP", "POLICIES", "DemandPanel", "ReplayConfig", "ReplayResult", "compare", "dominates",
           "fill_error", "inventory_at_fill_rate", "panel_from_frame", "panel_from_history", "replay", "simulate"]

POLICIES = ("shelfwise", "odoo_min_max", "erpnext_reorder_level")
#: Fill-rate targets over which the policy must hit its target (the calibration check).
CALIBRATION_RANGE = (0.90, 0.99)
#: Default sweep of each policy's service parameter: fill-rate target for Shelfwise, safety periods
#: (days or weeks of average demand) for the reorder rules; dense wherever a dataset's curves cross 98%
#: (the baselines reach it at 14 to 28 days on M5 and the worlds), since inventory at a fill rate is read
#: between two points of a convex curve.
DEFAULT_SWEEP = {
    "D": {"shelfwise": (0.8, 0.9, 0.93, 0.95, 0.97, 0.975, 0.98, 0.985, 0.99, 0.995, 0.998, 0.999, 0.9995, 0.9999),
          "odoo_min_max": (*range(0, 31), 33, 36, 42),
          "erpnext_reorder_level": (*range(0, 31), 33, 36, 42)},
    "W": {"shelfwise": (0.8, 0.9, 0.93, 0.95, 0.97, 0.975, 0.98, 0.985, 0.99, 0.995, 0.998, 0.999, 0.9995, 0.9999),
          "odoo_min_max": (*np.arange(0, 4.01, 0.25).tolist(), 5, 6, 8),
          "erpnext_reorder_level": (*np.arange(0, 4.01, 0.25).tolist(), 5, 6, 8)},
}


@dataclass
class ReplayConfig:
    """How to replay.

    Attributes:
        lead_time: Lead time in periods for series without their own.
        lead_time_sd: Spread of sampled lead times in periods (0: fixed lead times); Shelfwise's policy
            is told this spread, as the nightly is told its suppliers' measured spread.
        review: Periods between reviews (the same for every policy).
        warmup: Periods of history used only to start the policies; scoring starts after it.
        pack: Order multiple (1 rounds orders up to whole units; 0 leaves them continuous).
        seed: Seed of the lead-time draws.
        erpnext_refresh: Periods between re-settings of the ERPNext reorder levels (None: set once).
        reforecast_every: Reviews between two runs of the forecaster (1: at every review). In between,
            a review reads the latest forecast from its own period on.
        horizon: Periods each forecast covers (default: the nightly's, 28 days or 13 weeks, extended to
            cover the protection interval of every review it serves).
        sweep: Service parameter values per policy (defaults: :data:`DEFAULT_SWEEP`).
        calibrate: Size Shelfwise's levels with the measured error of its earlier forecasts
            (:mod:`include.decisions.calibration`); False: the backtest's ``sigma_cum`` and a normal error.
        overstock_cover: Periods of a series' mean demand (over the scored window) beyond which its stock
            is overstock, what a clearance would have to mark down; the curves then carry
            ``overstock_units`` and ``overstock_value`` (averages over the scored periods). None: neither.
        service_feedback: How each target's effective target follows the fill achieved so far
            (:mod:`include.decisions.service`), as the nightly's does; ``None``: every review plans with
            the target as it is.
        burn_in: Periods after the warm-up simulated under every policy but not scored: the stock
            positions settle from their start and the service ledger learns, as a deployment that has
            run a while has.
        infer_stockouts: The panel holds sales without stock: Shelfwise's forecaster and calibration take
            the zero runs only a stock-out explains as stock-out days
            (:func:`include.demand.stockouts.zero_run_stockouts`), as the nightly takes the days its stock
            records show empty. False: every zero is demand. The baselines read the sales as they are.
    """

    lead_time: int = 7
    lead_time_sd: float = 0.0
    review: int = 7
    warmup: int = 182
    pack: float = 1.0
    seed: int = 0
    erpnext_refresh: int | None = None
    reforecast_every: int = 1
    horizon: int | None = None
    sweep: dict[str, tuple[float, ...]] = field(default_factory=dict)
    calibrate: bool = True
    overstock_cover: float | None = None
    service_feedback: ServiceFeedback | None = field(default_factory=ServiceFeedback)
    burn_in: int = 0
    infer_stockouts: bool = True


@dataclass
class ReviewFeedback:
    """Shelfwise's variants whose levels :func:`simulate` sets at each review, from the effective targets
    their service ledger asks for after the periods served so far.

    Attributes:
        variants: Index of each of these variants in the ``levels`` given to :func:`simulate`.
        inputs: The forecasts and calibration of every review.
        ledger: One target per variant, in the order of ``variants``.
        feedback: How the effective targets follow the fill achieved.
    """

    variants: list[int]
    inputs: ReviewForecasts
    ledger: ServiceLedger
    feedback: ServiceFeedback

    def levels(self, r: int) -> np.ndarray:
        """``[variants, n]`` order-up-to levels of review ``r`` at the effective targets in force."""
        return np.stack([self.inputs.levels(float(t), r)[0] for t in self.ledger.effective_target])


@dataclass
class ReplayResult:
    """The curves of a replay and the forecasts behind Shelfwise's.

    Attributes:
        curves: One row per policy x parameter: ``policy, parameter`` and the metrics of
            :func:`include.simulation.metrics.summarize`, scored after the warm-up.
        forecasts: The production forecasts at every origin (``None`` when Shelfwise was not swept).
    """

    curves: pd.DataFrame
    forecasts: OriginForecasts | None


def _lead_times(panel: DemandPanel, cfg: ReplayConfig) -> np.ndarray:
    n = len(panel.ids)
    lead = panel.lead_time if panel.lead_time is not None else np.full(n, float(cfg.lead_time))
    lead = np.where(np.isfinite(lead), lead, cfg.lead_time)
    return np.maximum(np.round(lead), 1).astype(int)


def _variants(panel: DemandPanel, cfg: ReplayConfig, lead: np.ndarray,
              ) -> tuple[list[tuple[str, float, Levels]], OriginForecasts | None, ReviewFeedback | None]:
    D = panel.served_demand
    n, T = D.shape
    sweep = {**DEFAULT_SWEEP[panel.freq], **cfg.sweep}
    out: list[tuple[str, float, Levels]] = []
    fc, feedback = None, None
    if sweep.get("shelfwise"):
        reviews = np.arange(cfg.warmup, T, cfg.review)
        every = max(int(cfg.reforecast_every), 1)
        protection = int(lead.max()) + cfg.review + int(np.ceil(2 * cfg.lead_time_sd))
        horizon = max(cfg.horizon or HORIZON[panel.freq], (every - 1) * cfg.review + protection)
        fc = rolling_forecasts(panel, reviews[::every], horizon, infer_stockouts=cfg.infer_stockouts)
        targets = [float(t) for t in sweep["shelfwise"]]
        inputs = ReviewForecasts.of(fc, reviews, lead=lead, lead_sd=cfg.lead_time_sd, review=cfg.review,
                                    demand=panel.demand if cfg.calibrate else None, pack=cfg.pack,
                                    stockouts_period_days=panel.period_days if cfg.infer_stockouts else None)
        if cfg.service_feedback is not None:
            feedback = ReviewFeedback(list(range(len(targets))), inputs,
                                      ServiceLedger.start(targets, days=float(panel.period_days)),
                                      cfg.service_feedback)
        for target in targets:
            up = np.zeros((n, T))
            if feedback is None:
                up[:, reviews] = inputs.levels(target).T
            # The replay starts with the first review's level on hand.
            up[:, cfg.warmup - 1] = up[:, cfg.warmup] if feedback is None else inputs.levels(target, 0)[0]
            out.append(("shelfwise", float(target), Levels(up, up)))
    for value in sweep.get("odoo_min_max", ()):
        out.append(("odoo_min_max", float(value), odoo_min_max_levels(D, lead, value, cfg.review)))
    for value in sweep.get("erpnext_reorder_level", ()):
        out.append(("erpnext_reorder_level", float(value),
                    erpnext_reorder_levels(D, lead, value, cfg.review, cfg.warmup,
                                           refresh=cfg.erpnext_refresh)))
    return out, fc, feedback


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
    feedback: ReviewFeedback | None = None,
) -> dict[str, np.ndarray]:
    """Replay ``demand`` under every entry of ``levels`` at once.

    Args:
        demand: ``[n, T]`` demand per series and period.
        levels: One :class:`Levels` (``[n, T]`` arrays) per policy variant.
        lead: ``[n]`` lead time of each series in periods (>= 1), or ``[n, T]`` the lead time of an order
            placed in each period (a supplier whose deliveries slip over time).
        review: Periods between reviews; the first review is at ``warmup``.
        warmup: First scored period; stock starts at each variant's order-up-to level of ``warmup - 1``.
        lead_time_sd: Sampled lead time = round(lead + sd * N(0, 1)), at least 1 (with either form of
            ``lead``, the same draws).
        pack: Order multiple (0: continuous).
        seed: Seed of the lead-time draws (shared by all variants).
        feedback: Variants whose levels are set at each review from their service ledger, which records
            every period's units lost and demand (their ``levels`` give only the starting stock).

    Returns:
        ``served, on_hand, orders`` as ``[variants, n, T - warmup]`` arrays; with ``feedback``, also
        ``effective_target``, ``[reviews, variants of the feedback]`` the targets planned at each review.
    """
    n, T = demand.shape
    k = len(levels)
    rp = np.concatenate([lv.reorder_point for lv in levels])
    up = np.concatenate([lv.order_up_to for lv in levels])
    mo = np.concatenate([lv.min_order if lv.min_order is not None else np.zeros((n, T)) for lv in levels])
    D = np.tile(demand, (k, 1))
    lead = np.maximum(np.round(np.asarray(lead, float)), 1).astype(int)
    if lead.shape not in ((n,), (n, T)):
        raise ValueError(f"lead must be [n] or [n, T] = [{n}] or [{n}, {T}], got shape {list(lead.shape)}")
    rng = np.random.default_rng(seed)
    noise = rng.standard_normal((n, T)) if lead_time_sd > 0 else np.zeros((n, T))
    per_order = lead if lead.ndim == 2 else lead[:, None]
    lt = np.maximum(np.round(per_order + lead_time_sd * noise), 1).astype(int)
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
    blocks = [] if feedback is None else [slice(v * n, (v + 1) * n) for v in feedback.variants]
    planned = []
    for t in range(warmup, T):
        arriving = arrivals[:, t]
        on_hand += arriving
        on_order -= arriving
        sold = np.minimum(on_hand, D[:, t])
        on_hand -= sold
        j = t - warmup
        served[:, j] = sold
        stock[:, j] = on_hand
        if blocks:
            lost = np.array([(D[b, t] - sold[b]).sum() for b in blocks])
            feedback.ledger = feedback.ledger.record(lost, np.full(len(blocks), demand[:, t].sum()), feedback.feedback)
        if j % review == 0:
            if blocks:
                if j > 0:
                    feedback.ledger = feedback.ledger.update(feedback.feedback)
                planned.append(feedback.ledger.effective_target)
                for b, level in zip(blocks, feedback.levels(j // review), strict=True):
                    rp[b, t] = up[b, t] = level
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
    out = {"served": served.reshape(shape), "on_hand": stock.reshape(shape), "orders": orders.reshape(shape)}
    if blocks:
        out["effective_target"] = np.array(planned)
    return out


def replay(panel: DemandPanel, cfg: ReplayConfig | None = None) -> ReplayResult:
    """Replay the panel under every policy and service parameter of the sweep.

    Raises:
        ValueError: when the history is not longer than the warm-up plus one protection interval, or the
            warm-up is shorter than one period.
    """
    cfg = cfg or ReplayConfig()
    n, T = panel.demand.shape
    lead = _lead_times(panel, cfg)
    if cfg.warmup < 1:
        raise ValueError(f"warm-up must be at least 1 period, got {cfg.warmup}")
    if T <= cfg.warmup + int(lead.max()) + cfg.review:
        raise ValueError(f"history of {T} periods is too short for a warm-up of {cfg.warmup} periods "
                         f"plus lead time {int(lead.max())} and review {cfg.review}")
    variants, fc, feedback = _variants(panel, cfg, lead)
    demand = panel.served_demand
    sim = simulate(demand, [v[2] for v in variants], lead, review=cfg.review, warmup=cfg.warmup,
                   lead_time_sd=cfg.lead_time_sd, pack=cfg.pack, seed=cfg.seed, feedback=feedback)
    b = cfg.burn_in
    scored = demand[:, cfg.warmup + b:]
    rows = []
    for i, (policy, value, _) in enumerate(variants):
        m = metrics.summarize(scored, sim["served"][i][:, b:], sim["on_hand"][i][:, b:], sim["orders"][i][:, b:],
                              freq=panel.freq, unit_cost=panel.unit_cost)
        if cfg.overstock_cover is not None:
            m.update(metrics.overstock(scored, sim["on_hand"][i][:, b:], cfg.overstock_cover, unit_cost=panel.unit_cost))
        if feedback is not None and i in feedback.variants:
            m["effective_target"] = float(sim["effective_target"][-1, feedback.variants.index(i)])
        rows.append({"policy": policy, "parameter": value, **m})
    return ReplayResult(pd.DataFrame(rows), fc)


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


#: Fill rates over which Shelfwise's curve must need no more inventory than each baseline's.
DOMINANCE_RANGE = (0.90, 0.995)


def dominates(curve: pd.DataFrame, other: pd.DataFrame, column: str = "avg_on_hand_units",
              fill_range: tuple[float, float] = DOMINANCE_RANGE) -> bool:
    """True when ``curve`` needs no more inventory than ``other`` at every fill rate of ``fill_range``
    that ``other`` reaches (checked every tenth of a point and at ``other``'s own points).

    A fill rate ``other`` reaches and ``curve`` does not is a loss for ``curve``.
    """
    lo, hi = fill_range
    theirs_fr = other["fill_rate"].dropna()
    points = np.unique(np.concatenate([np.arange(lo, hi + 1e-9, 0.001), theirs_fr[(theirs_fr >= lo) & (theirs_fr <= hi)]]))
    for fr in points:
        theirs = inventory_at_fill_rate(other, float(fr), column)
        if theirs is None:
            continue
        mine = inventory_at_fill_rate(curve, float(fr), column)
        if mine is None or mine > theirs * (1 + 1e-9):
            return False
    return True


def fill_error(curve: pd.DataFrame, fill_range: tuple[float, float] = CALIBRATION_RANGE) -> float | None:
    """Largest gap between a fill-rate target of ``fill_range`` and the fill rate it achieved (``None``
    when no target of the sweep lies in the range)."""
    rows = curve[(curve["parameter"] >= fill_range[0] - 1e-9) & (curve["parameter"] <= fill_range[1] + 1e-9)]
    rows = rows.dropna(subset=["fill_rate"])
    return float((rows["fill_rate"] - rows["parameter"]).abs().max()) if len(rows) else None


def compare(result: pd.DataFrame, target: float = 0.98, column: str = "avg_on_hand_units") -> dict:
    """Inventory of each policy at the ``target`` fill rate, Shelfwise's saving on the best baseline,
    whether its curve dominates each baseline's, and how far its achieved fill rates are from its targets."""
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
            "saving_vs_best_baseline": saving, "dominates": dom, "fill_error_max": fill_error(shelf)}
