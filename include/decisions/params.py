"""What every decision policy returns, a proposal line (:data:`PROPOSAL_COLUMNS`), and the knobs of the
policies (:class:`DecisionParams`)."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["DEFAULT_PARAMS", "PROPOSAL_COLUMNS", "Z_95", "DecisionParams"]

PROPOSAL_COLUMNS = [
    "doc_type", "business_key", "sku", "from_location", "to_location", "supplier_id", "po_id", "po_line",
    "action", "quantity", "unit_cost", "value", "need_by", "explanation",
]
Z_95 = 1.6449


@dataclass(frozen=True)
class DecisionParams:
    """Knobs of the decision policies."""

    review_days: int = 7
    service_z: float = Z_95
    po_late_threshold_days: int = 2
    rebalance_min_units: int = 1
    #: A supplier delivering less than this share of ordered units makes its open lines short.
    po_short_fill_rate: float = 0.9
    #: A late line is cancelled when stock covers this many days beyond its expected arrival.
    po_cancel_cover_days: int = 180


#: The default knobs, shared by every policy's signature (the instance is frozen).
DEFAULT_PARAMS = DecisionParams()
