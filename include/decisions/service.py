"""Service feedback: the fill the policy achieved against the fill it planned, and the target it plans next.

The replenishment core (:mod:`include.decisions.replenishment`) sizes stock so that the expected units
short are ``(1 - target)`` of demand, under a model: a normal forecast error of measured scale, a normal
lead-time spread, lost sales in the steady state. Real errors are skewed and heavy-tailed above the
forecast, lead times come in whole days or weeks and orders overtake one another, and a season's peak is
missed by every series at once, so the fill achieved strays from the target by about a point: on the
replay, 91.1% for 90% and 97.9% for 99% on M5, 94.0% for 95% on Walmart (``benchmarks/README.md``).

The feedback closes that loop. For each target it keeps, exponentially weighted with a half-life, the units
lost and the units the policy *planned* to lose (``1 - effective target`` of each period's demand, at the
effective target then in force). Their ratio, shrunk toward 1 by a prior worth ``prior_days`` of planned
losses that fades as the periods recorded outweigh it, says how many times more (or fewer) units the
policy loses than it plans to; the next effective target divides the allowed shortfall by it::

    ratio = (lost + prior) / (planned + prior)        effective = 1 - (1 - target) / ratio

At the fixed point the units lost are ``(1 - target)`` of demand: the target is met, whatever part of the
model was wrong. The replay (:func:`include.simulation.replay.simulate`) records every period of each
target it sweeps; the nightly records each day's estimated lost sales (a stock-out day loses what the series
sells on an ordinary day, less what it sold) and keeps the ledger from one night to the next.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["LEDGER_COLUMNS", "TYPICAL_DAYS", "ServiceFeedback", "ServiceLedger", "day_of_service"]

#: Columns of a stored ledger, one row per target.
LEDGER_COLUMNS = ["target", "effective_target", "lost", "planned", "demand", "periods", "days"]


@dataclass(frozen=True)
class ServiceFeedback:
    """How fast the effective targets follow the fill achieved.

    Attributes:
        half_life_days: Half-life of the weights of past periods, in days (16 weekly reviews).
        prior_days: The ratio is shrunk toward 1 by this many days of planned losses (a fresh ledger
            moves half-way to what it measures after this many days).
        ratio_bounds: Bounds of the measured ratio.
        target_bounds: Bounds of an effective target.
        enabled: False: every effective target is its target.
        max_age_days: The nightly starts a fresh ledger when the last one kept is older than this.
    """

    half_life_days: float = 112.0
    prior_days: float = 14.0
    ratio_bounds: tuple[float, float] = (0.2, 5.0)
    target_bounds: tuple[float, float] = (0.5, 0.9999)
    enabled: bool = True
    max_age_days: int = 14

    @classmethod
    def from_policy(cls, section: Mapping[str, Any] | Any | None) -> ServiceFeedback:
        """The policy file's ``replenishment.service_feedback`` section (``None``: the defaults)."""
        if section is None:
            return cls()
        get = section.get if isinstance(section, Mapping) else lambda k, d: getattr(section, k, d)
        return cls(half_life_days=float(get("half_life_days", cls.half_life_days)),
                   prior_days=float(get("prior_days", cls.prior_days)), enabled=bool(get("enabled", True)),
                   max_age_days=int(get("max_age_days", cls.max_age_days)))


@dataclass(frozen=True)
class ServiceLedger:
    """Per target (each attribute ``[k]``): weighted units lost, planned to be lost, demand, the weighted
    count of periods recorded, and the effective target in force.

    Attributes:
        target: The targets, as the policy names them.
        effective_target: What the policy plans with now.
        lost, planned, demand, periods: Exponentially weighted sums.
        days: Days one period lasts (1 for the nightly and daily data, 7 for weekly data).
    """

    target: np.ndarray
    effective_target: np.ndarray
    lost: np.ndarray
    planned: np.ndarray
    demand: np.ndarray
    periods: np.ndarray
    days: float = 1.0

    @classmethod
    def start(cls, targets: np.ndarray | list[float], days: float = 1.0) -> ServiceLedger:
        """An empty ledger: every effective target is its target."""
        t = np.asarray(targets, float).reshape(-1)
        zero = np.zeros_like(t)
        return cls(t, t.copy(), zero, zero.copy(), zero.copy(), zero.copy(), float(days))

    def record(self, lost: np.ndarray, demand: np.ndarray, feedback: ServiceFeedback) -> ServiceLedger:
        """The ledger after one more period: the past weighs less by one period of the half-life, and
        the period's units lost and demand per target are added, planned at the effective targets in force."""
        keep = self._keep(feedback)
        demand = np.asarray(demand, float)
        return replace(self, lost=keep * self.lost + np.asarray(lost, float), demand=keep * self.demand + demand,
                       planned=keep * self.planned + (1.0 - self.effective_target) * demand,
                       periods=keep * self.periods + 1.0)

    def _keep(self, feedback: ServiceFeedback) -> float:
        """The weight one period leaves the past with."""
        return 0.5 ** (self.days / feedback.half_life_days)

    def ratio(self, feedback: ServiceFeedback) -> np.ndarray:
        """Units lost over units planned to be lost, shrunk toward 1 by the prior."""
        with np.errstate(divide="ignore", invalid="ignore"):
            per_period = np.where(self.periods > 0, self.demand / self.periods, 0.0)
        # The prior fades with the first period it stood for: the data weigh more with every period.
        fading = np.clip(1.0 - self.periods * (1.0 - self._keep(feedback)), 0.0, 1.0)
        prior = feedback.prior_days / self.days * (1.0 - self.target) * per_period * fading
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = np.where(self.planned + prior > 0, (self.lost + prior) / (self.planned + prior), 1.0)
        return np.clip(ratio, *feedback.ratio_bounds)

    def update(self, feedback: ServiceFeedback) -> ServiceLedger:
        """The ledger with the effective targets that its measured ratio asks for."""
        if not feedback.enabled:
            return replace(self, effective_target=self.target.copy())
        effective = np.clip(1.0 - (1.0 - self.target) / self.ratio(feedback), *feedback.target_bounds)
        return replace(self, effective_target=effective)

    def mapping(self) -> dict[float, float]:
        """``{target: effective target}``."""
        return {float(t): float(e) for t, e in zip(self.target, self.effective_target, strict=True)}

    def to_frame(self) -> pd.DataFrame:
        """One row per target (:data:`LEDGER_COLUMNS`), to keep until the next night."""
        return pd.DataFrame({"target": self.target, "effective_target": self.effective_target, "lost": self.lost,
                             "planned": self.planned, "demand": self.demand, "periods": self.periods,
                             "days": np.full(len(self.target), self.days)})

    @classmethod
    def from_frame(cls, frame: pd.DataFrame | None, targets: np.ndarray | list[float], days: float = 1.0
                   ) -> ServiceLedger:
        """The stored ledger for ``targets`` (a target it does not hold starts empty)."""
        fresh = cls.start(targets, days)
        if frame is None or frame.empty:
            return fresh
        known = frame.drop_duplicates("target").set_index("target")
        columns = {}
        for name in ("effective_target", "lost", "planned", "demand", "periods"):
            found = known[name].reindex(fresh.target).to_numpy(float)
            columns[name] = np.where(np.isfinite(found), found, getattr(fresh, name))
        return replace(fresh, **columns)


#: Days before a stock-out day whose ordinary sales say what the series would have sold on it.
TYPICAL_DAYS = 28


def day_of_service(demand: pd.DataFrame, day: pd.Timestamp | str, target: pd.Series) -> pd.DataFrame:
    """Units lost and demand on ``day`` per target, estimated from sales and stock-outs.

    Sales are demand on an ordinary day; on a stock-out day (``censored``) the series loses what it
    sells on an ordinary day of the ``TYPICAL_DAYS`` before (their mean), less what it sold.

    Args:
        demand: ``unique_id, ds, y, censored`` of ``day`` and the days before it.
        day: The day measured.
        target: Fill-rate target per ``unique_id`` (series without one are left out).

    Returns:
        ``target, lost, demand``, one row per target with series sold or short that day.
    """
    day = pd.Timestamp(day)
    window = demand[(demand["ds"] >= day - pd.Timedelta(days=TYPICAL_DAYS)) & (demand["ds"] <= day)]
    before = window[(window["ds"] < day) & ~window["censored"].astype(bool)]
    typical = before.groupby("unique_id", observed=True)["y"].mean()
    today = window[window["ds"] == day]
    sold = today["y"].to_numpy(float)
    usual = today["unique_id"].map(typical).fillna(0.0).to_numpy(float)
    lost = np.where(today["censored"].astype(bool).to_numpy(), np.maximum(usual - sold, 0.0), 0.0)
    frame = pd.DataFrame({"target": today["unique_id"].map(target).to_numpy(float), "lost": lost,
                          "demand": sold + lost}).dropna(subset=["target"])
    return frame.groupby("target", as_index=False)[["lost", "demand"]].sum()
