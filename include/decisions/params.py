"""What every decision policy returns, a proposal line (:data:`PROPOSAL_COLUMNS`), and the knobs of the
policies (:class:`DecisionParams`)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from include.governance.policy import Replenishment

__all__ = ["DEFAULT_PARAMS", "PROPOSAL_COLUMNS", "DecisionParams"]

PROPOSAL_COLUMNS = [
    "doc_type", "business_key", "sku", "from_location", "to_location", "supplier_id", "po_id", "po_line",
    "action", "quantity", "unit_cost", "value", "need_by", "explanation",
]


@dataclass(frozen=True)
class DecisionParams:
    """Knobs of the decision policies.

    Attributes:
        review_days: Days of demand a replenishment order adds above the reorder point (the order
            cycle); every series is reviewed every night.
        fill_rate: Target share of demand served from stock, for series no rule below names.
        fill_rate_by_category: Target per item category (the item master's ``category``); first match.
        fill_rate_by_demand_class: Target per demand class of the series' forecast (``smooth``,
            ``erratic``, ``intermittent``, ``lumpy``), when its category has none.
        fill_rate_per_series: Each series meets its own target. By default the night's series that share
            a target meet it together, with one safety factor: the least stock for that fill rate
            (:func:`include.decisions.replenishment.pooled_level_for_fill_rate`; what the policy replay
            measures).
        planned_fill_rates: The target each target is planned at tonight (``{target: effective}``, from
            the service ledger, :mod:`include.decisions.service`); a target it does not name is planned
            as it is.
    """

    review_days: int = 7
    fill_rate: float = 0.98
    fill_rate_by_category: Mapping[str, float] = field(default_factory=lambda: MappingProxyType({}))
    fill_rate_by_demand_class: Mapping[str, float] = field(default_factory=lambda: MappingProxyType({}))
    fill_rate_per_series: bool = False
    planned_fill_rates: Mapping[float, float] = field(default_factory=lambda: MappingProxyType({}))
    po_late_threshold_days: int = 2
    rebalance_min_units: int = 1
    #: A supplier delivering less than this share of ordered units makes its open lines short.
    po_short_fill_rate: float = 0.9
    #: A late line is cancelled when stock covers this many days beyond its expected arrival.
    po_cancel_cover_days: int = 180

    @classmethod
    def from_policy(cls, section: Replenishment) -> DecisionParams:
        """The knobs of the policy file's ``replenishment`` section (:class:`include.governance.policy.Replenishment`)."""
        return cls(review_days=section.review_days, fill_rate=section.fill_rate,
                   fill_rate_by_category=MappingProxyType(dict(section.fill_rate_by_category)),
                   fill_rate_by_demand_class=MappingProxyType(dict(section.fill_rate_by_demand_class)))

    def fill_rates(self, category: pd.Series, demand_class: pd.Series) -> np.ndarray:
        """The fill-rate target of each series, from its item's category, else its demand class, else the default."""
        by_class = demand_class.map(dict(self.fill_rate_by_demand_class)) if self.fill_rate_by_demand_class else None
        target = category.map(dict(self.fill_rate_by_category)) if self.fill_rate_by_category else None
        out = pd.Series(self.fill_rate, index=category.index, dtype=float)
        if by_class is not None:
            out = by_class.astype(float).fillna(out)
        if target is not None:
            out = target.astype(float).fillna(out)
        return out.to_numpy(float)

    def series_fill_rates(self, sku: pd.Series, demand_class: pd.Series, category: pd.Series | None) -> np.ndarray:
        """:meth:`fill_rates` of series given by their SKU: ``category`` maps a SKU to its item's category
        (``None``: the item master has none)."""
        of_item = sku.map(category) if category is not None else pd.Series(None, index=sku.index, dtype=object)
        return self.fill_rates(of_item, demand_class)

    def targets(self) -> list[float]:
        """Every fill-rate target the policy names, smallest first."""
        return sorted({float(self.fill_rate), *map(float, self.fill_rate_by_category.values()),
                       *map(float, self.fill_rate_by_demand_class.values())})

    def planned(self, fill_rate: np.ndarray) -> np.ndarray:
        """The target each series is planned at: its target through :attr:`planned_fill_rates`."""
        fill_rate = np.asarray(fill_rate, float)
        if not self.planned_fill_rates:
            return fill_rate
        return pd.Series(fill_rate).map(dict(self.planned_fill_rates)).fillna(pd.Series(fill_rate)).to_numpy(float)


#: The default knobs, shared by every policy's signature (the instance is frozen).
DEFAULT_PARAMS = DecisionParams()
