"""Parameters of the order router and the columns its input frames must carry."""

from __future__ import annotations

from dataclasses import dataclass, fields

#: Required columns of each input frame of :func:`include.orchestration.router.route_orders`.
LINE_COLUMNS = ("order_id", "line_no", "sku", "quantity", "unit_price", "customer_zone", "promised_date",
                "ordered_at")
RATE_COLUMNS = ("origin_location_id", "zone", "cost_per_parcel", "cost_per_extra_item", "transit_days")
NODE_COLUMNS = ("location_id", "node_type", "ships_parcels", "pick_cost_per_line", "cutoff_hour", "pick_capacity")
ON_HAND_COLUMNS = ("location_id", "sku", "on_hand")
FORECAST_COLUMNS = ("location_id", "sku", "mean_daily", "sigma_daily")
NODE_TYPES = ("store", "ecom_fc", "dc")

#: Exception codes an assignment can carry.
SPLIT_ABOVE_N = "split_above_n"
STORE_BELOW_SAFETY = "store_below_safety_stock"
PROMISE_MISSED = "promise_cannot_be_met"
COST_ABOVE_THRESHOLD = "cost_above_threshold"
NO_STOCK = "no_node_with_stock"
EXCEPTION_CODES = (SPLIT_ABOVE_N, STORE_BELOW_SAFETY, PROMISE_MISSED, COST_ABOVE_THRESHOLD, NO_STOCK)


@dataclass(frozen=True)
class RoutingParams:
    """Costs, limits and solver settings of the router; every cost is in the currency of the rate card.

    Attributes:
        split_penalty: cost of each parcel beyond an order's first (customer contact, packaging), on top of
            the parcel's carrier cost.
        late_penalty_per_day: cost of a parcel arriving one day after its promise (service credit, contact).
        unfilled_penalty: cost of leaving a line without a node in this batch (it waits for the next one).
        overflow_penalty: cost of a line picked beyond a node's capacity (tomorrow's first wave), on top of
            the lateness it causes; a high value makes capacity a hard limit.
        protection_days: days of store demand a store's stock must cover until its next replenishment; the
            expected lost store sales are priced over this window.
        safety_z: service factor of a store's safety stock, ``mean + safety_z * sigma`` over the window.
        default_margin_rate: lost store margin per unit as a share of the online price, where the forecast
            frame carries no ``unit_margin``.
        aging_credit: share of a unit's price credited for shipping stock with markdown risk 1 (a preference
            for aged stock, not a rule).
        max_candidates: cheapest nodes with stock kept per line (the FC is kept besides, when it has stock).
        candidate_pool: nearest parcel-shipping nodes per customer zone that candidates are drawn from.
        max_parcels: an order shipping in more parcels than this is an exception.
        max_cost_per_order: an order whose fulfilment costs more than this is an exception.
        chunk_lines: lines per mixed-integer problem; a batch is solved as consecutive chunks.
        milp_max_lines: capacity collisions of a chunk solved exactly up to this many lines; beyond it
            the capacity prices' plan stands (see :mod:`include.orchestration.heuristic`).
        node_limit: branch-and-bound nodes per chunk at most; HiGHS then returns its best solution. A node
            limit, unlike the time limit, keeps the answer the same on a slow or busy machine.
        time_limit_s: HiGHS time limit per chunk.
        mip_rel_gap: relative optimality gap at which HiGHS stops.
    """

    split_penalty: float = 1.50
    late_penalty_per_day: float = 8.0
    unfilled_penalty: float = 60.0
    overflow_penalty: float = 1.0
    protection_days: float = 2.0
    safety_z: float = 1.28
    default_margin_rate: float = 0.35
    aging_credit: float = 0.05
    max_candidates: int = 4
    candidate_pool: int = 10
    max_parcels: int = 2
    max_cost_per_order: float = 25.0
    chunk_lines: int = 500
    milp_max_lines: int = 500
    node_limit: int = 50
    time_limit_s: float = 20.0
    mip_rel_gap: float = 1e-3

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, bool) or not isinstance(value, int | float) or value != value:
                raise ValueError(f"RoutingParams.{f.name} must be a number, got {value!r}")
            if value < 0:
                raise ValueError(f"RoutingParams.{f.name} must not be negative, got {value}")
        for name in ("max_candidates", "candidate_pool", "max_parcels", "chunk_lines", "milp_max_lines", "node_limit"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise ValueError(f"RoutingParams.{name} must be a whole number of at least 1, "
                                 f"got {getattr(self, name)!r}")
        if self.protection_days <= 0 or self.time_limit_s <= 0:
            raise ValueError("RoutingParams.protection_days and time_limit_s must be above 0, "
                             f"got {self.protection_days} and {self.time_limit_s}")
        if self.candidate_pool < self.max_candidates:
            raise ValueError(f"RoutingParams.candidate_pool ({self.candidate_pool}) must be at least "
                             f"max_candidates ({self.max_candidates})")
